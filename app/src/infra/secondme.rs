//! SecondMe sign-in and Shades import. OAuth 2.0 authorization code (PKCE sent as well); every
//! response is wrapped as `{code: 0, data: …}` (a non-zero `code` is an error); access tokens
//! live about two hours and are refreshed with the refresh token when they expire; a user's
//! Shades (personality facets) are imported into their twin when the Shades scope was granted.

use super::config::SecondMeConfig;
use super::crypto::TokenCipher;
use super::db::Db;
use super::{new_id, now_ms};
use crate::with_pool;
use serde::Deserialize;
use serde_json::Value;

pub const ID: &str = "secondme";
const SHADES_SCOPE: &str = "user.info.shades";

#[derive(Debug)]
pub struct Failure(pub String);

/// `{code: 0, data: X}` → X; a bare object is taken as it is (some endpoints are unwrapped).
pub fn unwrap(v: Value) -> Result<Value, Failure> {
    match (v.get("code"), v.get("data")) {
        (Some(code), data) if code.is_i64() || code.is_u64() => {
            if code.as_i64() == Some(0) {
                Ok(data.cloned().unwrap_or(Value::Null))
            } else {
                Err(Failure(format!(
                    "SecondMe error {code}: {}",
                    v.get("message")
                        .or_else(|| v.get("msg"))
                        .cloned()
                        .unwrap_or_default()
                )))
            }
        }
        _ => Ok(v),
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct Tokens {
    #[serde(alias = "accessToken")]
    pub access_token: String,
    #[serde(alias = "refreshToken", default)]
    pub refresh_token: Option<String>,
    #[serde(alias = "expiresIn", default)]
    pub expires_in: Option<u64>,
    #[serde(default)]
    pub scope: Option<Value>,
}

impl Tokens {
    pub fn scopes(&self) -> Option<String> {
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
pub struct Profile {
    #[serde(alias = "userId", alias = "id", alias = "sub")]
    pub user_id: Value,
    #[serde(alias = "nickname", alias = "displayName", default)]
    pub name: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
}

async fn post_form(
    http: &reqwest::Client,
    url: &str,
    form: &[(&str, &str)],
) -> Result<Value, Failure> {
    let res = http
        .post(url)
        .header("accept", "application/json")
        .form(form)
        .send()
        .await
        .map_err(|e| Failure(format!("POST {url}: {e}")))?;
    let status = res.status();
    let body: Value = res
        .json()
        .await
        .map_err(|e| Failure(format!("POST {url}: {status}: {e}")))?;
    if !status.is_success() {
        return Err(Failure(format!("POST {url}: {status}: {body}")));
    }
    unwrap(body)
}

async fn get(http: &reqwest::Client, url: &str, token: &str) -> Result<Value, Failure> {
    let res = http
        .get(url)
        .bearer_auth(token)
        .header("accept", "application/json")
        .send()
        .await
        .map_err(|e| Failure(format!("GET {url}: {e}")))?;
    let status = res.status();
    let body: Value = res
        .json()
        .await
        .map_err(|e| Failure(format!("GET {url}: {status}: {e}")))?;
    if !status.is_success() {
        return Err(Failure(format!("GET {url}: {status}: {body}")));
    }
    unwrap(body)
}

/// Exchanges an authorization code.
pub async fn exchange(
    http: &reqwest::Client,
    cfg: &SecondMeConfig,
    code: &str,
    redirect_uri: &str,
    verifier: &str,
) -> Result<Tokens, Failure> {
    let v = post_form(
        http,
        &cfg.token_url,
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect_uri),
            ("client_id", &cfg.client_id),
            ("client_secret", cfg.client_secret.expose()),
            ("code_verifier", verifier),
        ],
    )
    .await?;
    serde_json::from_value(v).map_err(|e| Failure(format!("token response: {e}")))
}

pub async fn profile(
    http: &reqwest::Client,
    cfg: &SecondMeConfig,
    token: &str,
) -> Result<Profile, Failure> {
    let v = get(http, &cfg.userinfo_url, token).await?;
    serde_json::from_value(v).map_err(|e| Failure(format!("user info: {e}")))
}

/// Subject as text, whether SecondMe sends a number or a string.
pub fn subject(p: &Profile) -> String {
    match &p.user_id {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Whether the granted scopes include Shades.
pub fn has_shades_scope(granted: Option<&str>, requested: &[String]) -> bool {
    match granted {
        Some(g) => g.split_whitespace().any(|s| s == SHADES_SCOPE),
        None => requested.iter().any(|s| s == SHADES_SCOPE),
    }
}

/// The encrypted access and refresh tokens and the access token's expiry.
type StoredTokens = (Option<Vec<u8>>, Option<Vec<u8>>, Option<i64>);

/// A valid access token for `user_id`'s SecondMe identity, refreshed first if it has expired.
pub async fn access_token(
    http: &reqwest::Client,
    cfg: &SecondMeConfig,
    cipher: &TokenCipher,
    db: &Db,
    user_id: &str,
) -> Result<String, Failure> {
    let row: Option<StoredTokens> = with_pool!(db, pool => {
        sqlx::query_as(
            "SELECT access_token_enc, refresh_token_enc, token_expires_at FROM oauth_identities \
             WHERE provider = $1 AND user_id = $2",
        )
        .bind(ID)
        .bind(user_id)
        .fetch_optional(pool)
        .await
    })
    .map_err(|e| Failure(format!("load tokens: {e}")))?;
    let Some((access, refresh, expires)) = row else {
        return Err(Failure("no SecondMe identity".into()));
    };
    let access = access.and_then(|a| cipher.decrypt(&a));
    // A minute's margin, so a token does not expire on its way.
    let fresh = expires.is_none_or(|t| t > now_ms() + 60_000);
    if let (Some(a), true) = (&access, fresh) {
        return Ok(a.clone());
    }
    let refresh = refresh
        .and_then(|r| cipher.decrypt(&r))
        .ok_or_else(|| Failure("access token expired and no refresh token".into()))?;
    let v = post_form(
        http,
        &cfg.refresh_url,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh),
            ("client_id", &cfg.client_id),
            ("client_secret", cfg.client_secret.expose()),
        ],
    )
    .await?;
    let tokens: Tokens =
        serde_json::from_value(v).map_err(|e| Failure(format!("refresh response: {e}")))?;
    let new_refresh = tokens.refresh_token.clone().unwrap_or(refresh);
    with_pool!(db, pool => {
        sqlx::query(
            "UPDATE oauth_identities SET access_token_enc = $1, refresh_token_enc = $2, token_expires_at = $3, \
             updated_at = $4 WHERE provider = $5 AND user_id = $6",
        )
        .bind(cipher.encrypt(&tokens.access_token))
        .bind(cipher.encrypt(&new_refresh))
        .bind(tokens.expires_in.map(|s| now_ms() + s as i64 * 1000))
        .bind(now_ms())
        .bind(ID)
        .bind(user_id)
        .execute(pool)
        .await
        .map(|_| ())
    })
    .map_err(|e| Failure(format!("store refreshed tokens: {e}")))?;
    tracing::info!(user_id, "SecondMe access token refreshed");
    Ok(tokens.access_token)
}

#[derive(Debug, Deserialize)]
struct RawShade {
    #[serde(alias = "shadeName", alias = "name")]
    name: String,
    #[serde(alias = "shadeIcon", alias = "icon", default)]
    icon: Option<String>,
    #[serde(
        alias = "shadeDescription",
        alias = "description",
        alias = "shadeDescriptionThirdView",
        default
    )]
    description: Option<String>,
    #[serde(alias = "confidenceLevel", alias = "confidence", default)]
    confidence: Option<Value>,
    #[serde(alias = "sourceTopics", alias = "topics", default)]
    topics: Option<Vec<String>>,
}

/// Confidence as 0..1, from a number (0..1 or 0..100) or a level ("HIGH", "MEDIUM", "LOW").
fn confidence(v: Option<&Value>) -> f64 {
    match v {
        Some(Value::Number(n)) => {
            let x = n.as_f64().unwrap_or(0.5);
            (if x > 1.0 { x / 100.0 } else { x }).clamp(0.0, 1.0)
        }
        Some(Value::String(s)) => match s.to_ascii_uppercase().as_str() {
            "VERY_HIGH" | "HIGH" => 0.9,
            "MEDIUM" => 0.6,
            "LOW" | "VERY_LOW" => 0.3,
            _ => 0.5,
        },
        _ => 0.5,
    }
}

/// Imports the user's Shades into their twin, replacing what was there. Returns how many.
pub async fn import_shades(
    http: &reqwest::Client,
    cfg: &SecondMeConfig,
    cipher: &TokenCipher,
    db: &Db,
    user_id: &str,
) -> Result<usize, Failure> {
    let token = access_token(http, cfg, cipher, db, user_id).await?;
    let v = get(http, &cfg.shades_url, &token).await?;
    let list = v.get("shades").cloned().unwrap_or(v);
    let shades: Vec<RawShade> =
        serde_json::from_value(list).map_err(|e| Failure(format!("shades: {e}")))?;
    let now = now_ms();
    let store = with_pool!(db, pool => {
        async {
            let mut tx = pool.begin().await?;
            sqlx::query(
                "INSERT INTO twins (id, owner_id, bio, created_at, updated_at) VALUES ($1, $2, '', $3, $3) \
                 ON CONFLICT (owner_id) DO NOTHING",
            )
            .bind(new_id())
            .bind(user_id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            let (twin_id,): (String,) = sqlx::query_as("SELECT id FROM twins WHERE owner_id = $1")
                .bind(user_id)
                .fetch_one(&mut *tx)
                .await?;
            sqlx::query("DELETE FROM shades WHERE twin_id = $1").bind(&twin_id).execute(&mut *tx).await?;
            for (i, s) in shades.iter().enumerate() {
                sqlx::query(
                    "INSERT INTO shades (id, twin_id, name, icon, description, confidence, topics, position, \
                     created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)",
                )
                .bind(new_id())
                .bind(&twin_id)
                .bind(s.name.trim())
                .bind(s.icon.clone().unwrap_or_else(|| "✨".into()))
                .bind(s.description.clone().unwrap_or_default())
                .bind(confidence(s.confidence.as_ref()))
                .bind(sqlx::types::Json(s.topics.clone().unwrap_or_default()))
                .bind(i as i32)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await
        }
        .await
    });
    store.map_err(|e| Failure(format!("store shades: {e}")))?;
    tracing::info!(user_id, count = shades.len(), "SecondMe Shades imported");
    Ok(shades.len())
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
            .0
            .contains("expired"));
        assert_eq!(
            unwrap(json!({"access_token": "x"})).unwrap(),
            json!({"access_token": "x"})
        );
    }

    #[test]
    fn confidence_levels() {
        assert_eq!(confidence(Some(&json!(0.8))), 0.8);
        assert_eq!(confidence(Some(&json!(80))), 0.8);
        assert_eq!(confidence(Some(&json!("HIGH"))), 0.9);
        assert_eq!(confidence(None), 0.5);
    }
}
