//! Sign-in with OpenID Connect providers: authorization code with PKCE (S256), `state` and
//! `nonce` kept in the server-side session and destroyed on use, ID tokens verified (signature
//! against the provider's keys, issuer, audience, expiry, nonce) by the `openidconnect` crate.
//! The HTTP client follows no redirects. Provider tokens are stored encrypted.

use super::config::{GitHubConfig, OAuthConfig, OidcProviderConfig};
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
        let secondme = self
            .config
            .secondme
            .as_ref()
            .map(|_| (super::secondme::ID.to_string(), "SecondMe".to_string()));
        let github = self
            .config
            .github
            .as_ref()
            .map(|_| (GITHUB.to_string(), "GitHub".to_string()));
        github
            .into_iter()
            .chain(secondme)
            .chain(
                self.config
                    .providers
                    .iter()
                    .map(|p| (p.id.clone(), p.label.clone())),
            )
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
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let (url, state, nonce) = if provider == super::secondme::ID {
            let sm = self
                .config
                .secondme
                .as_ref()
                .ok_or(FlowError::UnknownProvider)?;
            let state = CsrfToken::new_random();
            let url = reqwest::Url::parse_with_params(
                &sm.auth_url,
                &[
                    ("response_type", "code"),
                    ("client_id", sm.client_id.as_str()),
                    ("redirect_uri", &self.redirect_uri(provider)),
                    ("scope", &sm.scopes.join(" ")),
                    ("state", state.secret()),
                    ("code_challenge", challenge.as_str()),
                    ("code_challenge_method", "S256"),
                ],
            )
            .map_err(|e| {
                tracing::error!(error = %e, "bad SECONDME_AUTH_URL");
                FlowError::Internal
            })?;
            (url, state, Nonce::new(String::new()))
        } else if provider == GITHUB {
            let gh = self
                .config
                .github
                .as_ref()
                .ok_or(FlowError::UnknownProvider)?;
            let (url, state) = github_client(gh, &self.public_url)?
                .authorize_url(oauth2::CsrfToken::new_random)
                .add_scope(oauth2::Scope::new("read:user".into()))
                .add_scope(oauth2::Scope::new("user:email".into()))
                .set_pkce_challenge(challenge)
                .url();
            (url, state, Nonce::new(String::new()))
        } else {
            let p = self.provider(provider)?;
            self.client(p)
                .await?
                .authorize_url(
                    CoreAuthenticationFlow::AuthorizationCode,
                    CsrfToken::new_random,
                    Nonce::new_random,
                )
                .add_scope(Scope::new("email".into()))
                .add_scope(Scope::new("profile".into()))
                .set_pkce_challenge(challenge)
                .url()
        };
        let flow = Flow {
            provider: provider.to_string(),
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
        let id = if provider == super::secondme::ID {
            self.secondme_identity(code, flow.pkce_verifier).await?
        } else if provider == GITHUB {
            self.github_identity(code, flow.pkce_verifier).await?
        } else {
            self.oidc_identity(provider, code, flow.pkce_verifier, flow.nonce)
                .await?
        };
        let Identity {
            subject,
            name,
            email,
            access_token,
            refresh_token,
            expires_in,
            scopes,
        } = id;
        let user = crate::auth::ssr::upsert_identity(db, provider, &subject, &name)
            .await
            .map_err(|e| {
                tracing::error!(error = ?e, "cannot save the identity");
                FlowError::Internal
            })?;
        let cipher = self.cipher.as_ref().ok_or(FlowError::Internal)?;
        let access = cipher.encrypt(&access_token);
        let refresh = refresh_token.as_deref().map(|r| cipher.encrypt(r));
        let expires = expires_in.map(|d| now_ms() + d.as_millis() as i64);
        let saved = with_pool!(db, pool => {
            sqlx::query(
                "UPDATE oauth_identities SET access_token_enc = $1, refresh_token_enc = $2, token_expires_at = $3, \
                 scopes = $4, email = $5, updated_at = $6 WHERE provider = $7 AND subject = $8",
            )
            .bind(access)
            .bind(refresh)
            .bind(expires)
            .bind(&scopes)
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
        if provider == super::secondme::ID {
            self.import_secondme_shades_after_sign_in(db, &user.id, scopes.as_deref())
                .await;
        }
        tracing::info!(provider, user_id = %user.id, "signed in");
        Ok((user.id, flow.return_to))
    }

    fn redirect_uri(&self, provider: &str) -> String {
        format!("{}/auth/{provider}/callback", self.public_url)
    }

    /// SecondMe: exchanges the code, then asks its user-info endpoint who this is.
    async fn secondme_identity(
        &self,
        code: String,
        verifier: String,
    ) -> Result<Identity, FlowError> {
        use super::secondme;
        let sm = self
            .config
            .secondme
            .as_ref()
            .ok_or(FlowError::UnknownProvider)?;
        let failed = |e: secondme::Failure| {
            tracing::warn!(error = %e.0, "SecondMe sign-in failed");
            FlowError::Provider
        };
        let tokens = secondme::exchange(
            &self.http,
            sm,
            &code,
            &self.redirect_uri(secondme::ID),
            &verifier,
        )
        .await
        .map_err(failed)?;
        let profile = secondme::profile(&self.http, sm, &tokens.access_token)
            .await
            .map_err(failed)?;
        Ok(Identity {
            subject: secondme::subject(&profile),
            name: profile
                .name
                .clone()
                .filter(|n| !n.trim().is_empty())
                .unwrap_or_else(|| "SecondMe user".into()),
            email: profile.email.clone(),
            scopes: tokens.scopes(),
            access_token: tokens.access_token,
            refresh_token: tokens.refresh_token,
            expires_in: tokens.expires_in.map(std::time::Duration::from_secs),
        })
    }

    async fn import_secondme_shades_after_sign_in(
        &self,
        db: &Db,
        user_id: &str,
        granted: Option<&str>,
    ) {
        let Some(sm) = self.config.secondme.as_ref() else {
            return;
        };
        if !super::secondme::has_shades_scope(granted, &sm.scopes) {
            return;
        }
        // Sign-in goes on without them: the import can be retried later.
        if let Err(e) = self.import_secondme_shades(db, user_id).await {
            tracing::warn!(error = %e.0, "SecondMe Shades import failed");
        }
    }

    /// Imports (again) the user's SecondMe Shades into their twin, refreshing the access token
    /// first if it has expired.
    pub async fn import_secondme_shades(
        &self,
        db: &Db,
        user_id: &str,
    ) -> Result<usize, super::secondme::Failure> {
        let sm = self
            .config
            .secondme
            .as_ref()
            .ok_or_else(|| super::secondme::Failure("SecondMe is not configured".into()))?;
        let cipher = self
            .cipher
            .as_ref()
            .ok_or_else(|| super::secondme::Failure("no token key".into()))?;
        super::secondme::import_shades(&self.http, sm, cipher, db, user_id).await
    }

    /// Exchanges the code (with the PKCE verifier) and verifies the ID token: signature against the
    /// provider's keys, issuer, audience, expiry and nonce. Profile claims missing from the token
    /// come from the user-info endpoint, for the same subject.
    async fn oidc_identity(
        &self,
        provider: &str,
        code: String,
        verifier: String,
        nonce: String,
    ) -> Result<Identity, FlowError> {
        let p = self.provider(provider)?;
        let client = self.client(p).await?;
        let token = client
            .exchange_code(AuthorizationCode::new(code))
            .map_err(|e| {
                tracing::error!(error = %e, "provider has no token endpoint");
                FlowError::Provider
            })?
            .set_pkce_verifier(PkceCodeVerifier::new(verifier))
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
            .claims(&client.id_token_verifier(), &Nonce::new(nonce))
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

    /// GitHub (OAuth 2.0, no ID token): exchanges the code with PKCE, then asks the user API who
    /// this is; the email is the verified primary one.
    async fn github_identity(&self, code: String, verifier: String) -> Result<Identity, FlowError> {
        let gh = self
            .config
            .github
            .as_ref()
            .ok_or(FlowError::UnknownProvider)?;
        let token = github_client(gh, &self.public_url)?
            .exchange_code(AuthorizationCode::new(code))
            .set_pkce_verifier(PkceCodeVerifier::new(verifier))
            .request_async(&self.http)
            .await
            .map_err(|e| {
                tracing::warn!(error = ?e, "GitHub code exchange failed");
                FlowError::Provider
            })?;
        let access = token.access_token().secret().clone();
        let api = gh.api_url.trim_end_matches('/');
        let get = |path: &str| {
            self.http
                .get(format!("{api}{path}"))
                .bearer_auth(&access)
                .header("accept", "application/vnd.github+json")
                .header("user-agent", "PersonaFlux")
                .send()
        };
        #[derive(Deserialize)]
        struct GhUser {
            id: u64,
            login: String,
            name: Option<String>,
        }
        #[derive(Deserialize)]
        struct GhEmail {
            email: String,
            primary: bool,
            verified: bool,
        }
        let failed = |e: &dyn std::fmt::Debug| {
            tracing::warn!(error = ?e, "GitHub user API failed");
            FlowError::Provider
        };
        let user: GhUser = get("/user")
            .await
            .and_then(|r| r.error_for_status())
            .map_err(|e| failed(&e))?
            .json()
            .await
            .map_err(|e| failed(&e))?;
        let emails: Vec<GhEmail> =
            match get("/user/emails").await.and_then(|r| r.error_for_status()) {
                Ok(r) => r.json().await.unwrap_or_default(),
                Err(e) => {
                    tracing::info!(error = %e, "no access to GitHub emails");
                    Vec::new()
                }
            };
        let email = emails
            .into_iter()
            .find(|e| e.primary && e.verified)
            .map(|e| e.email);
        Ok(Identity {
            subject: user.id.to_string(),
            name: user
                .name
                .filter(|n| !n.trim().is_empty())
                .unwrap_or(user.login),
            email,
            access_token: access,
            refresh_token: token.refresh_token().map(|r| r.secret().clone()),
            expires_in: token.expires_in(),
            scopes: token
                .scopes()
                .map(|s| s.iter().map(|x| x.as_str()).collect::<Vec<_>>().join(" ")),
        })
    }
}

/// Who signed in, as a provider told us, and their tokens (stored encrypted).
struct Identity {
    subject: String,
    name: String,
    email: Option<String>,
    access_token: String,
    refresh_token: Option<String>,
    expires_in: Option<std::time::Duration>,
    scopes: Option<String>,
}

const GITHUB: &str = "github";

type GitHubClient = oauth2::basic::BasicClient<
    oauth2::EndpointSet,
    oauth2::EndpointNotSet,
    oauth2::EndpointNotSet,
    oauth2::EndpointNotSet,
    oauth2::EndpointSet,
>;

fn github_client(gh: &GitHubConfig, public_url: &str) -> Result<GitHubClient, FlowError> {
    let bad = |e: &dyn std::fmt::Display| {
        tracing::error!(error = %e, "bad GitHub endpoint configuration");
        FlowError::Internal
    };
    Ok(
        oauth2::basic::BasicClient::new(oauth2::ClientId::new(gh.client_id.clone()))
            .set_client_secret(oauth2::ClientSecret::new(
                gh.client_secret.expose().to_string(),
            ))
            .set_auth_uri(oauth2::AuthUrl::new(gh.auth_url.clone()).map_err(|e| bad(&e))?)
            .set_token_uri(oauth2::TokenUrl::new(gh.token_url.clone()).map_err(|e| bad(&e))?)
            .set_redirect_uri(
                oauth2::RedirectUrl::new(format!("{public_url}/auth/{GITHUB}/callback"))
                    .map_err(|e| bad(&e))?,
            ),
    )
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
