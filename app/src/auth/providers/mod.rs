//! Sign-in providers as a type. The set this app knows is closed ([`ProviderId`]); which of them
//! are on is decided once, from configuration, when [`Providers`] is built; the `{provider}`
//! segment of `/auth/{provider}/start|callback` is parsed once into a configured [`Provider`]
//! (unknown → `unknown_provider`). Each provider only says how to send the user to it and how to
//! learn who came back ([`oidc`] for OpenID Connect and Google, [`github`], [`secondme`]); the flow
//! they share — state, PKCE, nonce, return-to, identity, token storage — is written once in
//! [`flow`]. Failures are one type, [`ProviderError`].

mod error;
mod flow;
pub mod github;
pub mod oidc;
pub mod secondme;

pub use error::ProviderError;
pub use flow::{safe_return_to, CallbackQuery};

use super::UserId;
use crate::infra::config::{AuthConfig, PublicUrl};
use crate::infra::crypto::TokenCipher;
use crate::infra::db::Db;
use openidconnect::{CsrfToken, Nonce, PkceCodeChallenge};
use serde::{Deserialize, Serialize};
use std::time::Duration;
use url::Url;

/// Every sign-in provider this app can use. The serialized name is the id in URLs, in the
/// identity's `provider` column and in the session's sign-in flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderId {
    GitHub,
    SecondMe,
    Google,
    Oidc,
}

impl ProviderId {
    pub const ALL: [ProviderId; 4] = [
        ProviderId::GitHub,
        ProviderId::SecondMe,
        ProviderId::Google,
        ProviderId::Oidc,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            ProviderId::GitHub => "github",
            ProviderId::SecondMe => "secondme",
            ProviderId::Google => "google",
            ProviderId::Oidc => "oidc",
        }
    }
}

impl std::str::FromStr for ProviderId {
    type Err = ProviderError;

    /// The one place a provider's name is read: a URL segment becomes the type.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|id| id.as_str() == s)
            .ok_or(ProviderError::UnknownProvider)
    }
}

impl std::fmt::Display for ProviderId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A configured sign-in provider.
pub enum Provider {
    GitHub(github::GitHub),
    SecondMe(secondme::SecondMe),
    Google(oidc::Oidc),
    Oidc(oidc::Oidc),
}

/// What the flow hands a provider to build the URL it sends the user to: the `state` and `nonce`
/// it will check on return and the PKCE challenge (S256). Providers without ID tokens ignore the
/// nonce.
pub(crate) struct Authorize {
    pub state: CsrfToken,
    pub nonce: Nonce,
    pub pkce: PkceCodeChallenge,
}

/// What comes back with the user: the authorization code, the PKCE verifier and the nonce the
/// flow kept.
pub(crate) struct Callback {
    pub code: String,
    pub pkce_verifier: String,
    pub nonce: String,
}

/// Who signed in, as a provider told us, and their tokens (stored encrypted, never printed).
pub(crate) struct Identity {
    pub subject: String,
    pub name: String,
    pub email: Option<String>,
    pub access_token: String,
    pub refresh_token: Option<String>,
    pub expires_in: Option<Duration>,
    pub scopes: Option<String>,
}

impl Provider {
    pub fn id(&self) -> ProviderId {
        match self {
            Provider::GitHub(_) => ProviderId::GitHub,
            Provider::SecondMe(_) => ProviderId::SecondMe,
            Provider::Google(_) => ProviderId::Google,
            Provider::Oidc(_) => ProviderId::Oidc,
        }
    }

    /// The button's words: "Continue with {label}".
    pub fn label(&self) -> &str {
        match self {
            Provider::GitHub(_) => "GitHub",
            Provider::SecondMe(_) => "SecondMe",
            Provider::Google(p) | Provider::Oidc(p) => p.label(),
        }
    }

    /// Where to send the user to sign in.
    async fn authorize_url(
        &self,
        http: &reqwest::Client,
        request: Authorize,
    ) -> Result<Url, ProviderError> {
        match self {
            Provider::GitHub(p) => p.authorize_url(request),
            Provider::SecondMe(p) => p.authorize_url(request),
            Provider::Google(p) | Provider::Oidc(p) => p.authorize_url(http, request).await,
        }
    }

    /// Exchanges the code and learns who signed in.
    async fn identity(
        &self,
        http: &reqwest::Client,
        callback: Callback,
    ) -> Result<Identity, ProviderError> {
        match self {
            Provider::GitHub(p) => p.identity(http, callback).await,
            Provider::SecondMe(p) => p.identity(http, callback).await,
            Provider::Google(p) | Provider::Oidc(p) => p.identity(http, callback).await,
        }
    }

    /// What a provider does once its user is signed in: SecondMe imports the user's Shades into
    /// their twin when that scope was granted. Sign-in goes on if it fails (it can be redone).
    async fn after_sign_in(
        &self,
        providers: &Providers,
        db: &Db,
        user: &UserId,
        granted: Option<&str>,
    ) {
        if let Provider::SecondMe(p) = self {
            if p.grants_shades(granted) {
                if let Err(e) =
                    crate::twins::service::import_secondme_shades(providers, db, user).await
                {
                    tracing::warn!(error = %e, "SecondMe Shades import failed");
                }
            }
        }
    }
}

/// The configured providers, in the order of their buttons, with what their flows share.
pub struct Providers {
    list: Vec<Provider>,
    cipher: Option<TokenCipher>,
    http: reqwest::Client,
}

impl Providers {
    /// The providers `config` turns on; redirect URIs are `{public_url}/auth/{id}/callback`.
    pub fn new(config: &AuthConfig, public_url: &PublicUrl) -> Self {
        let redirect = |id: ProviderId| public_url.join(&["auth", id.as_str(), "callback"]);
        let github = config
            .github
            .clone()
            .map(|c| Provider::GitHub(github::GitHub::new(c, redirect(ProviderId::GitHub))));
        let secondme = config.secondme.clone().map(|c| {
            Provider::SecondMe(secondme::SecondMe::new(c, redirect(ProviderId::SecondMe)))
        });
        let google = config
            .google
            .clone()
            .map(|c| Provider::Google(oidc::Oidc::new(c, redirect(ProviderId::Google))));
        let oidc = config
            .oidc
            .clone()
            .map(|c| Provider::Oidc(oidc::Oidc::new(c, redirect(ProviderId::Oidc))));
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(std::time::Duration::from_secs(15))
            .build()
            .expect("HTTP client");
        Self {
            list: [github, secondme, google, oidc]
                .into_iter()
                .flatten()
                .collect(),
            cipher: config.token_cipher.clone(),
            http,
        }
    }

    /// (id, label) of each provider, for the sign-in page.
    pub fn buttons(&self) -> Vec<(String, String)> {
        self.list
            .iter()
            .map(|p| (p.id().to_string(), p.label().to_string()))
            .collect()
    }

    /// The configured provider a URL segment names.
    pub fn find(&self, segment: &str) -> Result<&Provider, ProviderError> {
        let id: ProviderId = segment.parse()?;
        self.list
            .iter()
            .find(|p| p.id() == id)
            .ok_or(ProviderError::UnknownProvider)
    }

    fn cipher(&self) -> Result<&TokenCipher, ProviderError> {
        self.cipher
            .as_ref()
            .ok_or_else(|| ProviderError::Internal("no token key".into()))
    }

    /// The user's SecondMe Shades, read with their stored access token (refreshed first if it
    /// has expired).
    pub async fn secondme_shades(
        &self,
        db: &Db,
        user: &UserId,
    ) -> Result<Vec<secondme::Shade>, ProviderError> {
        let secondme = self
            .list
            .iter()
            .find_map(|p| match p {
                Provider::SecondMe(s) => Some(s),
                _ => None,
            })
            .ok_or(ProviderError::UnknownProvider)?;
        secondme.shades(&self.http, self.cipher()?, db, user).await
    }
}
