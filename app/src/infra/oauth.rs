//! Sign-in with OpenID Connect providers: authorization code with PKCE (S256), `state` and
//! `nonce` kept in the server-side session and destroyed on use, ID tokens verified (signature
//! against the provider's keys, issuer, audience, expiry, nonce) by the `openidconnect` crate.
//! The HTTP client follows no redirects. Provider tokens are stored encrypted.

use super::config::{OAuthConfig, OidcProviderConfig};
use super::crypto::TokenCipher;
use super::db::Db;
use super::now_ms;
use crate::with_pool;
use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreProviderMetadata};
use openidconnect::{
    AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce, OAuth2TokenResponse,
    PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope, TokenResponse,
};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use tokio::sync::OnceCell;
use tower_sessions::Session;

const FLOW_KEY: &str = "oauth_flow";
/// A sign-in must be completed within this time.
const FLOW_TTL_MS: i64 = 10 * 60 * 1000;

/// Why a sign-in failed, as a code for `/signin?error=` and words for the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlowError {
    UnknownProvider,
    /// No flow in the session, or its state does not match (forged, replayed or expired).
    State,
    /// The provider reported an error (the user declined, …).
    Denied,
    /// The provider could not be reached or answered wrongly.
    Provider,
    /// The ID token failed verification.
    Token,
    Internal,
}

impl FlowError {
    pub fn code(self) -> &'static str {
        match self {
            FlowError::UnknownProvider => "unknown_provider",
            FlowError::State => "state",
            FlowError::Denied => "denied",
            FlowError::Provider => "provider",
            FlowError::Token => "token",
            FlowError::Internal => "internal",
        }
    }
}

/// What the session holds between leaving for the provider and coming back.
#[derive(Serialize, Deserialize)]
struct Flow {
    provider: String,
    state: String,
    nonce: String,
    pkce_verifier: String,
    return_to: String,
    started_at: i64,
}

/// The configured providers, with their discovered metadata cached after first use.
pub struct OAuth {
    config: OAuthConfig,
    public_url: String,
    metadata: HashMap<String, OnceCell<CoreProviderMetadata>>,
    cipher: Option<TokenCipher>,
    http: reqwest::Client,
}

impl OAuth {
    /// `listening` is the bound address, the public URL's default.
    pub fn new(config: OAuthConfig, listening: std::net::SocketAddr) -> Self {
        let public_url = config
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{listening}"));
        let metadata = config
            .providers
            .iter()
            .map(|p| (p.id.clone(), OnceCell::new()))
            .collect();
        let cipher = config.token_key.as_deref().and_then(TokenCipher::new);
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(std::time::Duration::from_secs(15))
            .build()
            .expect("HTTP client");
        Self {
            config,
            public_url,
            metadata,
            cipher,
            http,
        }
    }

    /// (id, label) of each provider, for the sign-in page.
    pub fn buttons(&self) -> Vec<(String, String)> {
        self.config
            .providers
            .iter()
            .map(|p| (p.id.clone(), p.label.clone()))
            .collect()
    }

    fn provider(&self, id: &str) -> Result<&OidcProviderConfig, FlowError> {
        self.config
            .providers
            .iter()
            .find(|p| p.id == id)
            .ok_or(FlowError::UnknownProvider)
    }

    async fn client(
        &self,
        p: &OidcProviderConfig,
    ) -> Result<
        CoreClient<
            openidconnect::EndpointSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointMaybeSet,
            openidconnect::EndpointMaybeSet,
        >,
        FlowError,
    > {
        let cell = self.metadata.get(&p.id).ok_or(FlowError::UnknownProvider)?;
        let metadata = cell
            .get_or_try_init(|| async {
                let issuer = IssuerUrl::new(p.issuer.clone()).map_err(|e| {
                    tracing::error!(provider = %p.id, error = %e, "bad issuer URL");
                    FlowError::Internal
                })?;
                CoreProviderMetadata::discover_async(issuer, &self.http).await.map_err(|e| {
                    tracing::error!(provider = %p.id, error = ?e, "OpenID Connect discovery failed");
                    FlowError::Provider
                })
            })
            .await?
            .clone();
        let redirect = RedirectUrl::new(format!("{}/auth/{}/callback", self.public_url, p.id))
            .map_err(|_| FlowError::Internal)?;
        Ok(CoreClient::from_provider_metadata(
            metadata,
            ClientId::new(p.client_id.clone()),
            Some(ClientSecret::new(p.client_secret.expose().to_string())),
        )
        .set_redirect_uri(redirect))
    }

    /// Begins a sign-in: remembers the flow in the session and returns the provider URL to send
    /// the browser to.
    pub async fn start(
        &self,
        session: &Session,
        provider: &str,
        return_to: Option<&str>,
    ) -> Result<String, FlowError> {
        let p = self.provider(provider)?;
        let client = self.client(p).await?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let (url, state, nonce) = client
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                CsrfToken::new_random,
                Nonce::new_random,
            )
            .add_scope(Scope::new("email".into()))
            .add_scope(Scope::new("profile".into()))
            .set_pkce_challenge(challenge)
            .url();
        let flow = Flow {
            provider: p.id.clone(),
            state: state.secret().clone(),
            nonce: nonce.secret().clone(),
            pkce_verifier: verifier.secret().clone(),
            return_to: return_to
                .and_then(safe_return_to)
                .unwrap_or_else(|| "/dashboard".into()),
            started_at: now_ms(),
        };
        session.insert(FLOW_KEY, flow).await.map_err(|e| {
            tracing::error!(error = %e, "cannot save the sign-in flow");
            FlowError::Internal
        })?;
        Ok(url.to_string())
    }

    /// Completes a sign-in. The flow is removed from the session first, so a callback can be
    /// used once. Returns the signed-in user's id and where to send them.
    pub async fn callback(
        &self,
        db: &Db,
        session: &Session,
        provider: &str,
        query: &CallbackQuery,
    ) -> Result<(String, String), FlowError> {
        let flow: Option<Flow> = session.remove(FLOW_KEY).await.map_err(|e| {
            tracing::error!(error = %e, "cannot read the sign-in flow");
            FlowError::Internal
        })?;
        let Some(flow) = flow else {
            return Err(FlowError::State);
        };
        let state_ok = query
            .state
            .as_deref()
            .is_some_and(|s| constant_time_eq(s.as_bytes(), flow.state.as_bytes()));
        if !state_ok || flow.provider != provider || now_ms() - flow.started_at > FLOW_TTL_MS {
            tracing::warn!(
                provider,
                "sign-in callback with a missing, wrong or expired state"
            );
            return Err(FlowError::State);
        }
        if let Some(err) = &query.error {
            tracing::info!(provider, error = %err, "the provider reported an error");
            return Err(FlowError::Denied);
        }
        let code = query.code.clone().ok_or(FlowError::Denied)?;
        let p = self.provider(provider)?;
        let client = self.client(p).await?;
        let token = client
            .exchange_code(AuthorizationCode::new(code))
            .map_err(|e| {
                tracing::error!(error = %e, "provider has no token endpoint");
                FlowError::Provider
            })?
            .set_pkce_verifier(PkceCodeVerifier::new(flow.pkce_verifier))
            .request_async(&self.http)
            .await
            .map_err(|e| {
                tracing::warn!(provider, error = ?e, "code exchange failed");
                FlowError::Provider
            })?;
        let id_token = token.id_token().ok_or_else(|| {
            tracing::warn!(provider, "token response without an ID token");
            FlowError::Token
        })?;
        let claims = id_token
            .claims(&client.id_token_verifier(), &Nonce::new(flow.nonce))
            .map_err(|e| {
                tracing::warn!(provider, error = %e, "ID token rejected");
                FlowError::Token
            })?;
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
                let info: Result<openidconnect::core::CoreUserInfoClaims, _> =
                    request.request_async(&self.http).await;
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
                    Err(e) => tracing::warn!(provider, error = ?e, "user-info request failed"),
                }
            }
        }
        let name = name
            .or_else(|| email.clone())
            .unwrap_or_else(|| format!("{} user", p.label));

        let user = crate::auth::ssr::upsert_identity(db, provider, &subject, &name)
            .await
            .map_err(|e| {
                tracing::error!(error = ?e, "cannot save the identity");
                FlowError::Internal
            })?;
        let cipher = self.cipher.as_ref().ok_or(FlowError::Internal)?;
        let access = cipher.encrypt(token.access_token().secret());
        let refresh = token.refresh_token().map(|r| cipher.encrypt(r.secret()));
        let expires = token.expires_in().map(|d| now_ms() + d.as_millis() as i64);
        let scopes = token
            .scopes()
            .map(|s| s.iter().map(|x| x.as_str()).collect::<Vec<_>>().join(" "));
        let saved = with_pool!(db, pool => {
            sqlx::query(
                "UPDATE oauth_identities SET access_token_enc = $1, refresh_token_enc = $2, token_expires_at = $3, \
                 scopes = $4, email = $5, updated_at = $6 WHERE provider = $7 AND subject = $8",
            )
            .bind(access)
            .bind(refresh)
            .bind(expires)
            .bind(scopes)
            .bind(&email)
            .bind(now_ms())
            .bind(provider)
            .bind(&subject)
            .execute(pool)
            .await
            .map(|_| ())
        });
        if let Err(e) = saved {
            tracing::error!(error = ?e, "cannot store provider tokens");
            return Err(FlowError::Internal);
        }
        tracing::info!(provider, user_id = %user.id, "signed in");
        Ok((user.id, flow.return_to))
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct CallbackQuery {
    pub code: Option<String>,
    pub state: Option<String>,
    pub error: Option<String>,
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A "return to" target is accepted only as a same-origin relative path: one leading `/`, not
/// `//` or `/\` (which browsers treat as another host), no control characters, bounded length.
pub fn safe_return_to(target: &str) -> Option<String> {
    let ok = target.starts_with('/')
        && !target.starts_with("//")
        && !target.starts_with("/\\")
        && target.len() <= 512
        && !target.chars().any(|c| c.is_control() || c == '\\');
    ok.then(|| target.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn return_to_accepts_only_local_paths() {
        assert_eq!(
            safe_return_to("/characters/new").as_deref(),
            Some("/characters/new")
        );
        assert_eq!(
            safe_return_to("/dashboard?x=1#y").as_deref(),
            Some("/dashboard?x=1#y")
        );
        for bad in [
            "//evil.example",
            "/\\evil.example",
            "https://evil.example",
            "evil",
            "",
            "/a\nb",
            "/a\\b",
        ] {
            assert_eq!(safe_return_to(bad), None, "{bad:?}");
        }
    }

    proptest! {
        #[test]
        fn accepted_targets_never_leave_the_origin(s in "\\PC{0,40}") {
            if let Some(t) = safe_return_to(&s) {
                // Resolved against our origin, the target stays on it.
                prop_assert!(t.starts_with('/') && !t.starts_with("//"));
                prop_assert!(!t.contains('\\'));
            }
        }
    }
}
