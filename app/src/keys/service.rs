//! What the key server functions do, and how a request's `Authorization: Bearer` key is checked
//! ([`authenticate`]). Queries are in [`super::store`].

use super::{store, ApiKeyView, CreatedKey, MAX_ACTIVE_KEYS, MAX_EXPIRY_DAYS};
use crate::auth::{require_user, UserId};
use crate::domain::ApiKeyName;
use crate::error::{AppError, OrInternal};
use crate::infra::{db::Db, now_ms, AppState};
use base64::Engine;
use sha2::{Digest, Sha256};

/// Every secret starts with this, so a leaked one is recognisable (and secret scanners can
/// match it).
pub const SECRET_PREFIX: &str = "pf_";
/// How many characters of a secret are kept to recognise it by.
const SHOWN: usize = 11;
/// How often a key's "last used" is written (not on every request).
const TOUCH_EVERY_MS: i64 = 60_000;

/// Who a REST request acts for, and whether its key may change data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiCaller {
    pub user: UserId,
    pub key_id: String,
    pub write: bool,
}

fn hash(secret: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(secret.as_bytes()))
}

#[tracing::instrument(skip_all)]
pub async fn create(
    name: String,
    write: bool,
    expires_in_days: u16,
) -> Result<CreatedKey, AppError> {
    let user = require_user().await?;
    let name = ApiKeyName::parse(&name).map_err(|e| AppError::BadRequest(e.0))?;
    if expires_in_days > MAX_EXPIRY_DAYS {
        return Err(AppError::BadRequest(format!(
            "A key can last from 1 to {MAX_EXPIRY_DAYS} days, or until it is revoked."
        )));
    }
    let db = AppState::get()?.db;
    let now = now_ms();
    if store::count_active(&db, &user, now)
        .await
        .or_internal("count keys")?
        >= MAX_ACTIVE_KEYS
    {
        return Err(AppError::Conflict(format!(
            "You have {MAX_ACTIVE_KEYS} active keys, the most allowed. Revoke one you no longer use first."
        )));
    }
    let random: [u8; 32] = rand::random();
    let secret = format!(
        "{SECRET_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random)
    );
    let expires_at = (expires_in_days > 0).then(|| now + i64::from(expires_in_days) * 86_400_000);
    let key = store::insert(
        &db,
        &user,
        name.as_str(),
        &secret[..SHOWN],
        &hash(&secret),
        write,
        expires_at,
    )
    .await
    .or_internal("save key")?;
    tracing::info!(key_id = %key.id, write, "API key created");
    Ok(CreatedKey { key, secret })
}

#[tracing::instrument(skip_all)]
pub async fn list() -> Result<Vec<ApiKeyView>, AppError> {
    let user = require_user().await?;
    let db = AppState::get()?.db;
    store::list(&db, &user).await.or_internal("list keys")
}

#[tracing::instrument(skip_all)]
pub async fn revoke(id: String) -> Result<(), AppError> {
    let user = require_user().await?;
    crate::infra::check_id(&id)?;
    let db = AppState::get()?.db;
    if !store::revoke(&db, &user, &id)
        .await
        .or_internal("revoke key")?
    {
        return Err(AppError::NotFound);
    }
    tracing::info!(key_id = %id, "API key revoked");
    Ok(())
}

/// The caller of a request whose `Authorization` header is `authorization`: a `Bearer` key that
/// exists, is not revoked and has not expired. Anything else is [`AppError::Unauthorized`].
pub async fn authenticate(db: &Db, authorization: Option<&str>) -> Result<ApiCaller, AppError> {
    let secret = authorization
        .and_then(|h| h.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|s| s.starts_with(SECRET_PREFIX) && s.len() <= 128)
        .ok_or(AppError::Unauthorized)?;
    let now = now_ms();
    let (key_id, user, write, last_used) = store::find_active(db, &hash(secret), now)
        .await
        .or_internal("find key")?
        .ok_or(AppError::Unauthorized)?;
    if last_used.is_none_or(|t| now - t >= TOUCH_EVERY_MS) {
        if let Err(e) = store::touch(db, &key_id, now).await {
            tracing::warn!(error = ?e, "could not record the key's use");
        }
    }
    Ok(ApiCaller {
        user,
        key_id,
        write,
    })
}
