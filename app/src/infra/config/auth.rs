//! Sign-in providers (generic OpenID Connect, Google, GitHub, SecondMe) and the key their tokens
//! are encrypted with at rest. Which providers exist is decided here, once; `auth::providers`
//! turns this into the provider set the routes use.

use super::{decode_secret, load_or_create_key, ConfigError, Env, Secret};
use crate::infra::crypto::TokenCipher;

/// Sign-in providers and what their flows need. Each is `None` when not configured.
#[derive(Clone, Debug)]
pub struct AuthConfig {
    /// Google (OpenID Connect, issuer `https://accounts.google.com`).
    pub google: Option<OidcProviderConfig>,
    /// Any OpenID Connect provider, by issuer.
    pub oidc: Option<OidcProviderConfig>,
    pub github: Option<GitHubConfig>,
    pub secondme: Option<SecondMeConfig>,
    /// The key for provider tokens at rest; present whenever a provider is.
    pub token_cipher: Option<TokenCipher>,
}

/// GitHub (OAuth 2.0). The endpoints are configurable for tests and GitHub Enterprise.
#[derive(Clone, Debug)]
pub struct GitHubConfig {
    pub client_id: String,
    pub client_secret: Secret,
    pub auth_url: String,
    pub token_url: String,
    pub api_url: String,
}

/// SecondMe (OAuth 2.0; responses wrapped as `{code: 0, data: …}`). Every endpoint is configuration.
#[derive(Clone, Debug)]
pub struct SecondMeConfig {
    pub client_id: String,
    pub client_secret: Secret,
    pub auth_url: String,
    pub token_url: String,
    pub refresh_url: String,
    pub userinfo_url: String,
    pub shades_url: String,
    pub scopes: Vec<String>,
}

/// An OpenID Connect provider, found by discovery from its issuer URL.
#[derive(Clone, Debug)]
pub struct OidcProviderConfig {
    /// Button label ("Google").
    pub label: String,
    pub issuer: String,
    pub client_id: String,
    pub client_secret: Secret,
}

pub(super) fn read(
    env: &impl Env,
    data_dir: &std::path::Path,
    loopback: bool,
) -> Result<AuthConfig, ConfigError> {
    let google = match env.var("GOOGLE_CLIENT_ID") {
        None => None,
        Some(client_id) => Some(OidcProviderConfig {
            label: "Google".into(),
            issuer: "https://accounts.google.com".into(),
            client_id,
            client_secret: Secret::new(env.var("GOOGLE_CLIENT_SECRET").ok_or_else(|| {
                ConfigError::new("GOOGLE_CLIENT_SECRET is required with GOOGLE_CLIENT_ID")
            })?),
        }),
    };
    let oidc = match env.var("OIDC_ISSUER") {
        None => None,
        Some(issuer) => {
            let need = |k: &str| {
                env.var(k)
                    .ok_or_else(|| ConfigError::new(format!("{k} is required with OIDC_ISSUER")))
            };
            Some(OidcProviderConfig {
                label: env
                    .var("OIDC_LABEL")
                    .unwrap_or_else(|| "OpenID Connect".into()),
                issuer,
                client_id: need("OIDC_CLIENT_ID")?,
                client_secret: Secret::new(need("OIDC_CLIENT_SECRET")?),
            })
        }
    };
    let github = match env.var("GITHUB_CLIENT_ID") {
        None => None,
        Some(client_id) => Some(GitHubConfig {
            client_id,
            client_secret: Secret::new(env.var("GITHUB_CLIENT_SECRET").ok_or_else(|| {
                ConfigError::new("GITHUB_CLIENT_SECRET is required with GITHUB_CLIENT_ID")
            })?),
            auth_url: env
                .var("GITHUB_AUTH_URL")
                .unwrap_or_else(|| "https://github.com/login/oauth/authorize".into()),
            token_url: env
                .var("GITHUB_TOKEN_URL")
                .unwrap_or_else(|| "https://github.com/login/oauth/access_token".into()),
            api_url: env
                .var("GITHUB_API_URL")
                .unwrap_or_else(|| "https://api.github.com".into()),
        }),
    };
    let secondme = match env.var("SECONDME_CLIENT_ID") {
        None => None,
        Some(client_id) => {
            let need = |k: &str| {
                env.var(k).ok_or_else(|| {
                    ConfigError::new(format!("{k} is required with SECONDME_CLIENT_ID"))
                })
            };
            let token_url = need("SECONDME_TOKEN_URL")?;
            Some(SecondMeConfig {
                client_id,
                client_secret: Secret::new(need("SECONDME_CLIENT_SECRET")?),
                auth_url: need("SECONDME_AUTH_URL")?,
                refresh_url: env
                    .var("SECONDME_REFRESH_URL")
                    .unwrap_or_else(|| token_url.clone()),
                token_url,
                userinfo_url: need("SECONDME_USERINFO_URL")?,
                shades_url: need("SECONDME_SHADES_URL")?,
                scopes: env
                    .var("SECONDME_SCOPES")
                    .unwrap_or_else(|| "user.info user.info.shades chat".into())
                    .split_whitespace()
                    .map(str::to_string)
                    .collect(),
            })
        }
    };
    let any_provider = google.is_some() || oidc.is_some() || github.is_some() || secondme.is_some();
    let token_key =
        match env.var("TOKEN_ENCRYPTION_KEY") {
            Some(k) => Some(decode_secret(&k)),
            None if !any_provider => None,
            None if loopback => Some(load_or_create_key(
                data_dir,
                "token.key",
                TokenCipher::KEY_LEN,
            )?),
            None => return Err(ConfigError::new(
                "TOKEN_ENCRYPTION_KEY is required with sign-in providers when not on loopback; \
                 generate one with `openssl rand -hex 32`",
            )),
        };
    let token_cipher = token_key
        .map(|k| {
            TokenCipher::new(&k).ok_or_else(|| {
                ConfigError::new(format!(
                    "TOKEN_ENCRYPTION_KEY must be {} bytes (64 hex digits); it has {}",
                    TokenCipher::KEY_LEN,
                    k.len()
                ))
            })
        })
        .transpose()?;
    Ok(AuthConfig {
        google,
        oidc,
        github,
        secondme,
        token_cipher,
    })
}
