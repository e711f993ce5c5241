//! OpenID Connect providers (a generic issuer, and Google): metadata found by discovery from the
//! issuer and cached after first use; the ID token verified by the `openidconnect` crate —
//! signature against the provider's keys, issuer, audience, expiry and nonce.

use super::{Authorize, Callback, Identity, ProviderError};
use crate::infra::config::{OidcProviderConfig, Secret};
use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreProviderMetadata, CoreUserInfoClaims,
};
use openidconnect::{
    AuthorizationCode, ClientId, ClientSecret, EndpointMaybeSet, EndpointNotSet, EndpointSet,
    IssuerUrl, Nonce, OAuth2TokenResponse, PkceCodeVerifier, RedirectUrl, Scope, TokenResponse,
};
use tokio::sync::OnceCell;
use url::Url;

type Client = CoreClient<
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

pub struct Oidc {
    label: String,
    issuer: String,
    client_id: String,
    client_secret: Secret,
    redirect: Url,
    metadata: OnceCell<CoreProviderMetadata>,
}

impl Oidc {
    pub(super) fn new(config: OidcProviderConfig, redirect: Url) -> Self {
        Self {
            label: config.label,
            issuer: config.issuer,
            client_id: config.client_id,
            client_secret: config.client_secret,
            redirect,
            metadata: OnceCell::new(),
        }
    }

    pub fn label(&self) -> &str {
        &self.label
    }

    async fn client(&self, http: &reqwest::Client) -> Result<Client, ProviderError> {
        let metadata = self
            .metadata
            .get_or_try_init(|| async {
                let issuer = IssuerUrl::new(self.issuer.clone())
                    .map_err(|e| ProviderError::internal("bad issuer URL", &e))?;
                CoreProviderMetadata::discover_async(issuer, http)
                    .await
                    .map_err(|e| ProviderError::provider("OpenID Connect discovery", &e))
            })
            .await?
            .clone();
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
            .client(http)
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
        let client = self.client(http).await?;
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
        let claims = id_token
            .claims(&client.id_token_verifier(), &Nonce::new(callback.nonce))
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
