//! SecondMe: OAuth 2.0 authorization code (PKCE sent as well); every response is wrapped as
//! `{code: 0, data: …}` (a non-zero `code` is an error). Access tokens live about two hours and
//! are refreshed with the refresh token when they expire. This module is SecondMe's HTTP side —
//! sign-in, refresh, reading the user's Shades; putting Shades into a twin is `twins::service`.

use super::{Authorize, Callback, Identity, ProviderError, ProviderId};
use crate::auth::{store, UserId};
use crate::infra::config::SecondMeConfig;
use crate::infra::crypto::{TokenCipher, TokenSlot};
use crate::infra::db::Db;
use crate::infra::now_ms;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;
use url::Url;

const SHADES_SCOPE: &str = "user.info.shades";

pub struct SecondMe {
    config: SecondMeConfig,
    redirect: Url,
}

/// A token response. Not `Debug`: it holds tokens.
#[derive(Clone, Deserialize)]
struct Tokens {
    #[serde(alias = "accessToken")]
    access_token: String,
    #[serde(alias = "refreshToken", default)]
    refresh_token: Option<String>,
    #[serde(alias = "expiresIn", default)]
    expires_in: Option<u64>,
    #[serde(default)]
    scope: Option<Value>,
}

impl Tokens {
    fn scopes(&self) -> Option<String> {
        match &self.scope {
            Some(Value::String(s)) => Some(s.replace(',', " ")),
            Some(Value::Array(a)) => Some(
                a.iter()
                    .filter_map(|x| x.as_str())
                    .collect::<Vec<_>>()
                    .join(" "),
            ),
            _ => None,
        }
    }
}

#[derive(Debug, Deserialize)]
struct Profile {
    #[serde(alias = "userId", alias = "id", alias = "sub", default)]
    user_id: Value,
    #[serde(alias = "nickname", alias = "displayName", default)]
    name: Option<String>,
    #[serde(default)]
    email: Option<String>,
}

impl Profile {
    /// Subject as text, whether SecondMe sends a number or a string. A missing, `null`, empty or
    /// non-scalar id is refused: every such user would otherwise be the same account.
    fn subject(&self) -> Result<String, ProviderError> {
        match &self.user_id {
            Value::String(s) if !s.trim().is_empty() => Ok(s.clone()),
            Value::Number(n) => Ok(n.to_string()),
            _ => Err(ProviderError::Provider(
                "SecondMe user info has no usable user id".into(),
            )),
        }
    }
}

/// One Shade (a facet of the user's personality) as SecondMe sends it.
#[derive(Debug, Deserialize)]
pub struct Shade {
    #[serde(alias = "shadeName", alias = "name")]
    pub name: String,
    #[serde(alias = "shadeIcon", alias = "icon", default)]
    pub icon: Option<String>,
    #[serde(
        alias = "shadeDescription",
        alias = "description",
        alias = "shadeDescriptionThirdView",
        default
    )]
    pub description: Option<String>,
    /// A number (0..1 or 0..100) or a level ("HIGH", "MEDIUM", "LOW").
    #[serde(alias = "confidenceLevel", alias = "confidence", default)]
    pub confidence: Option<Value>,
    #[serde(alias = "sourceTopics", alias = "topics", default)]
    pub topics: Option<Vec<String>>,
}

impl SecondMe {
    pub(super) fn new(config: SecondMeConfig, redirect: Url) -> Self {
        Self { config, redirect }
    }

    pub(super) fn authorize_url(&self, request: Authorize) -> Result<Url, ProviderError> {
        Url::parse_with_params(
            &self.config.auth_url,
            &[
                ("response_type", "code"),
                ("client_id", self.config.client_id.as_str()),
                ("redirect_uri", self.redirect.as_str()),
                ("scope", &self.config.scopes.join(" ")),
                ("state", request.state.secret()),
                ("code_challenge", request.pkce.as_str()),
                ("code_challenge_method", "S256"),
            ],
        )
        .map_err(|e| ProviderError::internal("bad SECONDME_AUTH_URL", &e))
    }

    /// Exchanges the code, then asks the user-info endpoint who this is.
    pub(super) async fn identity(
        &self,
        http: &reqwest::Client,
        callback: Callback,
    ) -> Result<Identity, ProviderError> {
        let v = post_form(
            http,
            &self.config.token_url,
            &[
                ("grant_type", "authorization_code"),
                ("code", &callback.code),
                ("redirect_uri", self.redirect.as_str()),
                ("client_id", &self.config.client_id),
                ("client_secret", self.config.client_secret.expose()),
                ("code_verifier", &callback.pkce_verifier),
            ],
        )
        .await?;
        let tokens: Tokens = token_response("token response", v)?;
        let profile: Profile = decode(
            "user info",
            get(http, &self.config.userinfo_url, &tokens.access_token).await?,
        )?;
        Ok(Identity {
            subject: profile.subject()?,
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

    /// Whether the granted scopes (or, when the provider did not say, the requested ones)
    /// include Shades.
    pub fn grants_shades(&self, granted: Option<&str>) -> bool {
        match granted {
            Some(g) => g.split_whitespace().any(|s| s == SHADES_SCOPE),
            None => self.config.scopes.iter().any(|s| s == SHADES_SCOPE),
        }
    }

    /// The user's Shades.
    pub(super) async fn shades(
        &self,
        http: &reqwest::Client,
        cipher: &TokenCipher,
        db: &Db,
        user: &UserId,
    ) -> Result<Vec<Shade>, ProviderError> {
        let token = self.access_token(http, cipher, db, user).await?;
        let v = get(http, &self.config.shades_url, &token).await?;
        let list = v.get("shades").cloned().unwrap_or(v);
        decode("shades", list)
    }

    /// A valid access token for the user's SecondMe identity, refreshed first if it has expired.
    async fn access_token(
        &self,
        http: &reqwest::Client,
        cipher: &TokenCipher,
        db: &Db,
        user: &UserId,
    ) -> Result<String, ProviderError> {
        let stored = store::tokens(db, ProviderId::SecondMe, &user.0)
            .await
            .map_err(|e| ProviderError::internal("load tokens", &e))?
            .ok_or_else(|| ProviderError::Internal("no SecondMe identity".into()))?;
        let provider = ProviderId::SecondMe.as_str();
        let access_slot = TokenSlot::access(provider, &stored.subject);
        let refresh_slot = TokenSlot::refresh(provider, &stored.subject);
        let access = stored
            .access_token_enc
            .and_then(|a| cipher.decrypt(&a, &access_slot));
        // A minute's margin, so a token does not expire on its way.
        let fresh = stored
            .token_expires_at
            .is_none_or(|t| t > now_ms() + 60_000);
        if let (Some(a), true) = (&access, fresh) {
            return Ok(a.clone());
        }
        let refresh = stored
            .refresh_token_enc
            .and_then(|r| cipher.decrypt(&r, &refresh_slot))
            .ok_or_else(|| {
                ProviderError::Provider("access token expired and no refresh token".into())
            })?;
        let v = post_form(
            http,
            &self.config.refresh_url,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", &refresh),
                ("client_id", &self.config.client_id),
                ("client_secret", self.config.client_secret.expose()),
            ],
        )
        .await?;
        let tokens: Tokens = token_response("refresh response", v)?;
        let new_refresh = tokens.refresh_token.clone().unwrap_or(refresh);
        store::replace_tokens(
            db,
            ProviderId::SecondMe,
            &user.0,
            &cipher.encrypt(&tokens.access_token, &access_slot),
            &cipher.encrypt(&new_refresh, &refresh_slot),
            tokens.expires_in.map(|s| now_ms() + s as i64 * 1000),
        )
        .await
        .map_err(|e| ProviderError::internal("store refreshed tokens", &e))?;
        tracing::info!(user_id = %user.0, "SecondMe access token refreshed");
        Ok(tokens.access_token)
    }
}

/// `{code: 0, data: X}` → X; a bare object is taken as it is (some endpoints are unwrapped).
/// A non-zero code is an error, described by its code and message only.
fn unwrap(v: Value) -> Result<Value, ProviderError> {
    match (v.get("code"), v.get("data")) {
        (Some(code), data) if code.is_i64() || code.is_u64() => {
            if code.as_i64() == Some(0) {
                Ok(data.cloned().unwrap_or(Value::Null))
            } else {
                Err(ProviderError::Provider(format!(
                    "SecondMe error {code}: {}",
                    message(&v)
                )))
            }
        }
        _ => Ok(v),
    }
}

/// The human-readable message of an error body, if it has one; never the rest of the body.
fn message(v: &Value) -> String {
    ["message", "msg", "error_description", "error"]
        .iter()
        .find_map(|k| v.get(k))
        .map(|m| match m {
            Value::String(s) => s.chars().take(200).collect(),
            other => other.to_string().chars().take(200).collect(),
        })
        .unwrap_or_default()
}

/// A response body read as `T` (not token responses: serde's message may quote a value).
fn decode<T: DeserializeOwned>(what: &str, v: Value) -> Result<T, ProviderError> {
    serde_json::from_value(v).map_err(|e| ProviderError::Provider(format!("{what}: {e}")))
}

/// A token response read as [`Tokens`]; a failure names where, never what was there.
fn token_response(what: &str, v: Value) -> Result<Tokens, ProviderError> {
    serde_json::from_value(v).map_err(|e| {
        ProviderError::Provider(format!(
            "{what} has an unexpected shape ({:?})",
            e.classify()
        ))
    })
}

/// A JSON response, unwrapped; a failure is described by status, code and message only.
async fn read(
    what: &str,
    res: Result<reqwest::Response, reqwest::Error>,
) -> Result<Value, ProviderError> {
    let res = res.map_err(|e| ProviderError::provider(what, &e))?;
    let status = res.status();
    let body: Value = res
        .json()
        .await
        .map_err(|_| ProviderError::Provider(format!("{what}: {status}: the body is not JSON")))?;
    if !status.is_success() {
        return Err(ProviderError::Provider(format!(
            "{what}: {status}: {}",
            message(&body)
        )));
    }
    unwrap(body)
}

async fn post_form(
    http: &reqwest::Client,
    url: &str,
    form: &[(&str, &str)],
) -> Result<Value, ProviderError> {
    let res = http
        .post(url)
        .header("accept", "application/json")
        .form(form)
        .send()
        .await;
    read(&format!("POST {url}"), res).await
}

async fn get(http: &reqwest::Client, url: &str, token: &str) -> Result<Value, ProviderError> {
    let res = http
        .get(url)
        .bearer_auth(token)
        .header("accept", "application/json")
        .send()
        .await;
    read(&format!("GET {url}"), res).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn envelopes() {
        assert_eq!(
            unwrap(json!({"code": 0, "data": {"a": 1}})).unwrap(),
            json!({"a": 1})
        );
        assert!(unwrap(json!({"code": 401, "message": "expired"}))
            .unwrap_err()
            .to_string()
            .contains("expired"));
        assert_eq!(
            unwrap(json!({"access_token": "x"})).unwrap(),
            json!({"access_token": "x"})
        );
    }

    #[test]
    fn a_profile_without_a_usable_id_has_no_subject() {
        let subject = |v: Value| serde_json::from_value::<Profile>(v).unwrap().subject().ok();
        assert_eq!(subject(json!({"userId": 90210})).as_deref(), Some("90210"));
        assert_eq!(subject(json!({"id": "u-1"})).as_deref(), Some("u-1"));
        for bad in [
            json!({}),
            json!({"userId": null}),
            json!({"userId": ""}),
            json!({"userId": " "}),
            json!({"userId": {}}),
            json!({"userId": [1]}),
            json!({"userId": false}),
        ] {
            assert_eq!(subject(bad.clone()), None, "{bad}");
        }
    }

    #[test]
    fn failures_never_quote_a_token_body() {
        let body =
            json!({"code": 0, "data": {"accessToken": 12345678, "refreshToken": "rt-secret"}});
        let err = match token_response("token response", unwrap(body).unwrap()) {
            Ok(_) => panic!("a numeric token is not a token"),
            Err(e) => e,
        };
        for shown in [err.to_string(), format!("{err:?}")] {
            assert!(
                !shown.contains("12345678") && !shown.contains("rt-secret"),
                "{shown}"
            );
        }
        let err =
            unwrap(json!({"code": 500, "accessToken": "at-secret", "msg": "busy"})).unwrap_err();
        assert!(!format!("{err:?}").contains("at-secret") && err.to_string().contains("busy"));
    }
}
