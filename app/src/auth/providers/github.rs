//! GitHub: OAuth 2.0 with PKCE and no ID token; who signed in comes from the user API, the email
//! is the verified primary one. The endpoints are configuration (GitHub Enterprise, tests).

use super::{Authorize, Callback, Identity, ProviderError};
use crate::infra::config::GitHubConfig;
use oauth2::{
    AuthUrl, AuthorizationCode, ClientId, ClientSecret, EndpointNotSet, EndpointSet,
    PkceCodeVerifier, RedirectUrl, Scope, TokenResponse, TokenUrl,
};
use serde::Deserialize;
use url::Url;

type Client = oauth2::basic::BasicClient<
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
>;

pub struct GitHub {
    config: GitHubConfig,
    redirect: Url,
}

impl GitHub {
    pub(super) fn new(config: GitHubConfig, redirect: Url) -> Self {
        Self { config, redirect }
    }

    fn client(&self) -> Result<Client, ProviderError> {
        let bad =
            |e: url::ParseError| ProviderError::internal("bad GitHub endpoint configuration", &e);
        Ok(
            oauth2::basic::BasicClient::new(ClientId::new(self.config.client_id.clone()))
                .set_client_secret(ClientSecret::new(
                    self.config.client_secret.expose().to_string(),
                ))
                .set_auth_uri(AuthUrl::new(self.config.auth_url.clone()).map_err(bad)?)
                .set_token_uri(TokenUrl::new(self.config.token_url.clone()).map_err(bad)?)
                .set_redirect_uri(RedirectUrl::from_url(self.redirect.clone())),
        )
    }

    pub(super) fn authorize_url(&self, request: Authorize) -> Result<Url, ProviderError> {
        let Authorize { state, pkce, .. } = request;
        let (url, _) = self
            .client()?
            .authorize_url(move || state)
            .add_scope(Scope::new("read:user".into()))
            .add_scope(Scope::new("user:email".into()))
            .set_pkce_challenge(pkce)
            .url();
        Ok(url)
    }

    /// Exchanges the code with PKCE, then asks the user API who this is.
    pub(super) async fn identity(
        &self,
        http: &reqwest::Client,
        callback: Callback,
    ) -> Result<Identity, ProviderError> {
        let token = self
            .client()?
            .exchange_code(AuthorizationCode::new(callback.code))
            .set_pkce_verifier(PkceCodeVerifier::new(callback.pkce_verifier))
            .request_async(http)
            .await
            .map_err(|e| ProviderError::token_request("GitHub code exchange", &e))?;
        let access = token.access_token().secret().clone();
        let api = self.config.api_url.trim_end_matches('/');
        let get = |path: &str| {
            http.get(format!("{api}{path}"))
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
        let failed = |e: reqwest::Error| ProviderError::provider("GitHub user API", &e);
        let user: GhUser = get("/user")
            .await
            .and_then(|r| r.error_for_status())
            .map_err(failed)?
            .json()
            .await
            .map_err(failed)?;
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
