//! OpenID Connect providers (a generic issuer, and Google): metadata and signing keys found by
//! discovery from the issuer and cached ([`Discovery`]); the ID token verified by the
//! `openidconnect` crate — signature against the provider's keys, issuer, audience, expiry and
//! nonce.
//!
//! The cache is refreshed when it is older than [`MAX_AGE`], and when an ID token names a key it
//! does not hold (the provider rotated its keys) — at most once per [`FORCED_REFRESH_INTERVAL`].
//! A failed discovery is remembered for [`FAILURE_BACKOFF`], so anonymous requests cannot make
//! the server call out on every hit; meanwhile keys already held go on being used.

use super::{Authorize, Callback, Identity, ProviderError};
use crate::infra::config::{OidcProviderConfig, Secret};
use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreProviderMetadata, CoreUserInfoClaims,
};
use openidconnect::{
    AuthorizationCode, ClaimsVerificationError, ClientId, ClientSecret, EndpointMaybeSet,
    EndpointNotSet, EndpointSet, IssuerUrl, Nonce, OAuth2TokenResponse, PkceCodeVerifier,
    RedirectUrl, Scope, SignatureVerificationError, TokenResponse,
};
use std::time::{Duration, Instant};
use url::Url;

type Client = CoreClient<
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// Metadata and keys older than this are fetched again.
pub const MAX_AGE: Duration = Duration::from_secs(3600);
/// A failed discovery is not retried sooner than this.
pub const FAILURE_BACKOFF: Duration = Duration::from_secs(30);
/// An ID token with an unknown key makes the keys be refetched at most this often.
pub const FORCED_REFRESH_INTERVAL: Duration = Duration::from_secs(30);

pub struct Oidc {
    label: String,
    issuer: String,
    client_id: String,
    client_secret: Secret,
    redirect: Url,
    /// Held across a discovery, so concurrent requests wait for one fetch instead of each making
    /// their own.
    discovery: tokio::sync::Mutex<Discovery>,
}

/// What is known from discovery, and when.
#[derive(Default)]
struct Discovery {
    /// The metadata (with the JWKS) and when it was fetched.
    current: Option<(CoreProviderMetadata, Instant)>,
    /// When discovery last failed, and why.
    failed: Option<(Instant, String)>,
    /// When an unknown key last made the keys be refetched.
    forced: Option<Instant>,
}

/// What to do on a request for the metadata.
#[derive(Debug, PartialEq, Eq)]
enum Next {
    /// Use what is held.
    Use,
    /// Fetch (again).
    Fetch,
    /// Fail with the remembered error, without calling out.
    Fail(String),
}

impl Discovery {
    /// `force`: an ID token named a key that is not held.
    fn next(&self, now: Instant, force: bool) -> Next {
        let within = |t: Option<Instant>, d: Duration| t.is_some_and(|t| now.duration_since(t) < d);
        let backing_off = within(self.failed.as_ref().map(|f| f.0), FAILURE_BACKOFF);
        match &self.current {
            None if backing_off => Next::Fail(
                self.failed
                    .as_ref()
                    .map(|f| f.1.clone())
                    .unwrap_or_default(),
            ),
            None => Next::Fetch,
            Some(_) if backing_off => Next::Use,
            Some(_) if force => {
                if within(self.forced, FORCED_REFRESH_INTERVAL) {
                    Next::Use
                } else {
                    Next::Fetch
                }
            }
            Some((_, at)) if now.duration_since(*at) >= MAX_AGE => Next::Fetch,
            Some(_) => Next::Use,
        }
    }
}

impl Oidc {
    pub(super) fn new(config: OidcProviderConfig, redirect: Url) -> Self {
        Self {
            label: config.label,
            issuer: config.issuer,
            client_id: config.client_id,
            client_secret: config.client_secret,
            redirect,
            discovery: Default::default(),
        }
    }

    pub fn label(&self) -> &str {
        &self.label
    }

    /// The provider's metadata and keys, from the cache or discovery. `force`: refetch because an
    /// ID token named a key not held.
    async fn metadata(
        &self,
        http: &reqwest::Client,
        force: bool,
    ) -> Result<CoreProviderMetadata, ProviderError> {
        let mut d = self.discovery.lock().await;
        let now = Instant::now();
        match d.next(now, force) {
            Next::Use => {
                if let Some((m, _)) = &d.current {
                    return Ok(m.clone());
                }
            }
            Next::Fail(why) => return Err(ProviderError::Provider(why)),
            Next::Fetch => {}
        }
        if force {
            d.forced = Some(now);
        }
        let issuer = IssuerUrl::new(self.issuer.clone())
            .map_err(|e| ProviderError::internal("bad issuer URL", &e))?;
        match CoreProviderMetadata::discover_async(issuer, http).await {
            Ok(m) => {
                d.current = Some((m.clone(), Instant::now()));
                d.failed = None;
                Ok(m)
            }
            Err(e) => {
                let e = ProviderError::provider("OpenID Connect discovery", &e);
                let why = match &e {
                    ProviderError::Provider(why) => why.clone(),
                    other => other.to_string(),
                };
                d.failed = Some((Instant::now(), why));
                match &d.current {
                    // Stale keys beat none: keep signing people in until the provider is back.
                    Some((m, _)) => {
                        tracing::warn!(issuer = %self.issuer, error = %e, "OpenID Connect discovery failed; using the keys held");
                        Ok(m.clone())
                    }
                    None => Err(e),
                }
            }
        }
    }

    async fn client(&self, http: &reqwest::Client, force: bool) -> Result<Client, ProviderError> {
        let metadata = self.metadata(http, force).await?;
        Ok(CoreClient::from_provider_metadata(
            metadata,
            ClientId::new(self.client_id.clone()),
            Some(ClientSecret::new(self.client_secret.expose().to_string())),
        )
        .set_redirect_uri(RedirectUrl::from_url(self.redirect.clone())))
    }

    pub(super) async fn authorize_url(
        &self,
        http: &reqwest::Client,
        request: Authorize,
    ) -> Result<Url, ProviderError> {
        let Authorize { state, nonce, pkce } = request;
        let (url, _, _) = self
            .client(http, false)
            .await?
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                move || state,
                move || nonce,
            )
            .add_scope(Scope::new("email".into()))
            .add_scope(Scope::new("profile".into()))
            .set_pkce_challenge(pkce)
            .url();
        Ok(url)
    }

    /// Exchanges the code (with the PKCE verifier) and verifies the ID token. Profile claims
    /// missing from the token come from the user-info endpoint, for the same subject.
    pub(super) async fn identity(
        &self,
        http: &reqwest::Client,
        callback: Callback,
    ) -> Result<Identity, ProviderError> {
        let mut client = self.client(http, false).await?;
        let token = client
            .exchange_code(AuthorizationCode::new(callback.code))
            .map_err(|e| ProviderError::provider("no token endpoint", &e))?
            .set_pkce_verifier(PkceCodeVerifier::new(callback.pkce_verifier))
            .request_async(http)
            .await
            .map_err(|e| ProviderError::token_request("code exchange", &e))?;
        let id_token = token
            .id_token()
            .ok_or_else(|| ProviderError::Token("token response without an ID token".into()))?;
        let nonce = Nonce::new(callback.nonce);
        let unknown_key = matches!(
            id_token.claims(&client.id_token_verifier(), &nonce),
            Err(ClaimsVerificationError::SignatureVerification(
                SignatureVerificationError::NoMatchingKey
            ))
        );
        if unknown_key {
            // The provider may have rotated its keys since they were fetched.
            tracing::info!(issuer = %self.issuer, "ID token signed with a key not held; refetching the provider's keys");
            client = self.client(http, true).await?;
        }
        let claims = id_token
            .claims(&client.id_token_verifier(), &nonce)
            .map_err(|e| ProviderError::Token(e.to_string()))?;
        let subject = claims.subject().as_str().to_string();
        let mut email = claims
            .email()
            .filter(|_| claims.email_verified().unwrap_or(false))
            .map(|e| e.as_str().to_string());
        let mut name = claims
            .name()
            .and_then(|n| n.get(None))
            .map(|n| n.as_str().to_string());
        // Many providers keep profile claims out of the ID token: ask the user-info endpoint,
        // for the same subject only.
        if name.is_none() || email.is_none() {
            if let Ok(request) =
                client.user_info(token.access_token().clone(), Some(claims.subject().clone()))
            {
                let info: Result<CoreUserInfoClaims, _> = request.request_async(http).await;
                match info {
                    Ok(info) => {
                        name = name.or_else(|| {
                            info.name()
                                .and_then(|n| n.get(None))
                                .map(|n| n.as_str().to_string())
                        });
                        if email.is_none() && info.email_verified().unwrap_or(false) {
                            email = info.email().map(|e| e.as_str().to_string());
                        }
                    }
                    Err(e) => {
                        tracing::warn!(issuer = %self.issuer, error = %e, "user-info request failed")
                    }
                }
            }
        }
        let name = name
            .or_else(|| email.clone())
            .unwrap_or_else(|| format!("{} user", self.label));
        Ok(Identity {
            subject,
            name,
            email,
            access_token: token.access_token().secret().clone(),
            refresh_token: token.refresh_token().map(|r| r.secret().clone()),
            expires_in: token.expires_in(),
            scopes: token
                .scopes()
                .map(|s| s.iter().map(|x| x.as_str()).collect::<Vec<_>>().join(" ")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metadata() -> CoreProviderMetadata {
        serde_json::from_value(serde_json::json!({
            "issuer": "https://id.example",
            "authorization_endpoint": "https://id.example/authorize",
            "jwks_uri": "https://id.example/jwks",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
        }))
        .unwrap()
    }

    #[test]
    fn the_cache_is_refreshed_when_old_or_a_key_is_unknown_and_failures_back_off() {
        let t0 = Instant::now();
        let s = |secs: u64| t0 + Duration::from_secs(secs);
        let mut d = Discovery::default();
        assert_eq!(d.next(t0, false), Next::Fetch, "nothing held");

        d.failed = Some((t0, "down".into()));
        assert_eq!(d.next(s(29), false), Next::Fail("down".into()));
        assert_eq!(d.next(s(29), true), Next::Fail("down".into()));
        assert_eq!(d.next(s(30), false), Next::Fetch, "back-off over");

        d.failed = None;
        d.current = Some((metadata(), t0));
        assert_eq!(d.next(s(60), false), Next::Use);
        assert_eq!(d.next(s(3599), false), Next::Use);
        assert_eq!(d.next(s(3600), false), Next::Fetch, "an hour old");
        assert_eq!(d.next(s(1), true), Next::Fetch, "an unknown key");
        d.forced = Some(s(1));
        assert_eq!(d.next(s(20), true), Next::Use, "at most once per interval");
        assert_eq!(d.next(s(31), true), Next::Fetch);

        // A failed refresh keeps the keys held, and is not retried at once.
        d.failed = Some((s(3600), "down".into()));
        assert_eq!(d.next(s(3610), false), Next::Use);
        assert_eq!(d.next(s(3610), true), Next::Use);
        assert_eq!(d.next(s(3630), false), Next::Fetch);
    }
}
