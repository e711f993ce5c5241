//! The `api_keys` table: every query on it.

use super::ApiKeyView;
use crate::auth::UserId;
use crate::infra::{db::Db, new_id, now_ms};
use crate::with_pool;

#[derive(sqlx::FromRow)]
struct KeyRow {
    id: String,
    name: String,
    prefix: String,
    can_write: i32,
    created_at: i64,
    last_used_at: Option<i64>,
    expires_at: Option<i64>,
    revoked_at: Option<i64>,
}

impl From<KeyRow> for ApiKeyView {
    fn from(r: KeyRow) -> Self {
        ApiKeyView {
            id: r.id,
            name: r.name,
            prefix: r.prefix,
            write: r.can_write != 0,
            created_at: r.created_at,
            last_used_at: r.last_used_at,
            expires_at: r.expires_at,
            revoked: r.revoked_at.is_some(),
            expired: r.expires_at.is_some_and(|e| e <= now_ms()),
        }
    }
}

const COLUMNS: &str =
    "id, name, prefix, can_write, created_at, last_used_at, expires_at, revoked_at";

/// How many of `owner`'s keys are neither revoked nor expired at `now`.
pub async fn count_active(db: &Db, owner: &UserId, now: i64) -> Result<i64, sqlx::Error> {
    let n: i64 = with_pool!(db, pool => {
        sqlx::query_scalar(
            "SELECT COUNT(*) FROM api_keys WHERE owner_id = $1 AND revoked_at IS NULL \
             AND (expires_at IS NULL OR expires_at > $2)",
        )
        .bind(&owner.0)
        .bind(now)
        .fetch_one(pool)
        .await?
    });
    Ok(n)
}

/// Stores a key by the hash of its secret.
pub async fn insert(
    db: &Db,
    owner: &UserId,
    name: &str,
    prefix: &str,
    hash: &str,
    write: bool,
    expires_at: Option<i64>,
) -> Result<ApiKeyView, sqlx::Error> {
    let id = new_id();
    let now = now_ms();
    with_pool!(db, pool => {
        sqlx::query(
            "INSERT INTO api_keys (id, owner_id, name, prefix, hash, can_write, expires_at, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&id)
        .bind(&owner.0)
        .bind(name)
        .bind(prefix)
        .bind(hash)
        .bind(i32::from(write))
        .bind(expires_at)
        .bind(now)
        .execute(pool)
        .await
        .map(|_| ())?
    });
    Ok(ApiKeyView {
        id,
        name: name.to_string(),
        prefix: prefix.to_string(),
        write,
        created_at: now,
        last_used_at: None,
        expires_at,
        revoked: false,
        expired: false,
    })
}

/// `owner`'s keys, newest first (at most 100: the active ones are capped far below).
pub async fn list(db: &Db, owner: &UserId) -> Result<Vec<ApiKeyView>, sqlx::Error> {
    let rows: Vec<KeyRow> = with_pool!(db, pool => {
        sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM api_keys WHERE owner_id = $1 ORDER BY created_at DESC, id DESC LIMIT 100"
        ))
        .bind(&owner.0)
        .fetch_all(pool)
        .await?
    });
    Ok(rows.into_iter().map(ApiKeyView::from).collect())
}

/// Revokes `owner`'s key `id`; `false` if they have no such key.
pub async fn revoke(db: &Db, owner: &UserId, id: &str) -> Result<bool, sqlx::Error> {
    let n = with_pool!(db, pool => {
        sqlx::query(
            "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $1) WHERE id = $2 AND owner_id = $3",
        )
        .bind(now_ms())
        .bind(id)
        .bind(&owner.0)
        .execute(pool)
        .await?
        .rows_affected()
    });
    Ok(n == 1)
}

/// The key whose secret hashes to `hash`, if it is neither revoked nor expired at `now`: its id,
/// owner, whether it may write, and when it was last used.
pub async fn find_active(
    db: &Db,
    hash: &str,
    now: i64,
) -> Result<Option<(String, UserId, bool, Option<i64>)>, sqlx::Error> {
    let row: Option<(String, String, i32, Option<i64>)> = with_pool!(db, pool => {
        sqlx::query_as(
            "SELECT k.id, k.owner_id, k.can_write, k.last_used_at FROM api_keys k \
             WHERE k.hash = $1 AND k.revoked_at IS NULL AND (k.expires_at IS NULL OR k.expires_at > $2)",
        )
        .bind(hash)
        .bind(now)
        .fetch_optional(pool)
        .await?
    });
    Ok(row.map(|(id, owner, w, used)| (id, UserId(owner), w != 0, used)))
}

/// Records that key `id` was used at `now`.
pub async fn touch(db: &Db, id: &str, now: i64) -> Result<(), sqlx::Error> {
    with_pool!(db, pool => {
        sqlx::query("UPDATE api_keys SET last_used_at = $1 WHERE id = $2")
            .bind(now)
            .bind(id)
            .execute(pool)
            .await
            .map(|_| ())?
    });
    Ok(())
}
