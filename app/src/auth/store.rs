//! Every query on `users` and `oauth_identities`: finding and creating users by their identity,
//! and the provider tokens kept (encrypted) on an identity. No other module writes these tables.

use super::providers::ProviderId;
use super::CurrentUser;
use crate::infra::{db::Db, new_id, now_ms};
use crate::with_pool;

async fn find_identity(
    db: &Db,
    provider: &str,
    subject: &str,
) -> Result<Option<CurrentUser>, sqlx::Error> {
    let existing: Option<(String,)> = with_pool!(db, pool => {
        sqlx::query_as("SELECT user_id FROM oauth_identities WHERE provider = $1 AND subject = $2")
            .bind(provider)
            .bind(subject)
            .fetch_optional(pool)
            .await?
    });
    match existing {
        Some((id,)) => find_user(db, &id).await,
        None => Ok(None),
    }
}

#[derive(sqlx::FromRow)]
struct UserRow {
    id: String,
    display_name: String,
}

pub async fn find_user(db: &Db, id: &str) -> Result<Option<CurrentUser>, sqlx::Error> {
    let row: Option<UserRow> = with_pool!(db, pool => {
        sqlx::query_as("SELECT id, display_name FROM users WHERE id = $1")
            .bind(id)
            .fetch_optional(pool)
            .await?
    });
    Ok(row.map(|r| CurrentUser {
        id: r.id,
        display_name: r.display_name,
    }))
}

/// Finds the user signed in through (`provider`, `subject`), creating them on first sign-in.
/// `provider` is the identity's provider column: a sign-in provider's id, or `local`.
/// Two first sign-ins at once both end with the one user: the loser of the insert race finds
/// the winner's row.
pub async fn upsert_identity(
    db: &Db,
    provider: &str,
    subject: &str,
    display_name: &str,
) -> Result<CurrentUser, sqlx::Error> {
    if let Some(u) = find_identity(db, provider, subject).await? {
        return Ok(u);
    }
    let id = new_id();
    let now = now_ms();
    let created: Result<(), sqlx::Error> = with_pool!(db, pool => {
        async {
            let mut tx = pool.begin().await?;
            sqlx::query("INSERT INTO users (id, display_name, created_at, updated_at) VALUES ($1, $2, $3, $3)")
                .bind(&id)
                .bind(display_name)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "INSERT INTO oauth_identities (provider, subject, user_id, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $4)",
            )
            .bind(provider)
            .bind(subject)
            .bind(&id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            tx.commit().await
        }
        .await
    });
    match created {
        Ok(()) => {}
        Err(e)
            if e.as_database_error()
                .is_some_and(|d| d.is_unique_violation()) =>
        {
            if let Some(u) = find_identity(db, provider, subject).await? {
                return Ok(u);
            }
            return Err(e);
        }
        Err(e) => return Err(e),
    }
    Ok(CurrentUser {
        id,
        display_name: display_name.to_string(),
    })
}

/// What a provider sign-in leaves on its identity: the tokens (already encrypted), when the
/// access token expires (epoch ms), the scopes granted and the verified email.
pub struct SignInRecord<'a> {
    pub access_token_enc: Vec<u8>,
    pub refresh_token_enc: Option<Vec<u8>>,
    pub token_expires_at: Option<i64>,
    pub scopes: Option<&'a str>,
    pub email: Option<&'a str>,
}

/// Stores what a sign-in through `provider` brought on the identity (`provider`, `subject`).
pub async fn record_sign_in(
    db: &Db,
    provider: ProviderId,
    subject: &str,
    record: &SignInRecord<'_>,
) -> Result<(), sqlx::Error> {
    with_pool!(db, pool => {
        sqlx::query(
            "UPDATE oauth_identities SET access_token_enc = $1, refresh_token_enc = $2, token_expires_at = $3, \
             scopes = $4, email = $5, updated_at = $6 WHERE provider = $7 AND subject = $8",
        )
        .bind(&record.access_token_enc)
        .bind(&record.refresh_token_enc)
        .bind(record.token_expires_at)
        .bind(record.scopes)
        .bind(record.email)
        .bind(now_ms())
        .bind(provider.as_str())
        .bind(subject)
        .execute(pool)
        .await
        .map(|_| ())
    })
}

/// The encrypted tokens on a user's identity with one provider, and the identity's subject
/// (which, with the provider, they are bound to).
#[derive(sqlx::FromRow)]
pub struct StoredTokens {
    pub subject: String,
    pub access_token_enc: Option<Vec<u8>>,
    pub refresh_token_enc: Option<Vec<u8>>,
    /// When the access token expires (epoch ms); `None`: it does not say.
    pub token_expires_at: Option<i64>,
}

pub async fn tokens(
    db: &Db,
    provider: ProviderId,
    user_id: &str,
) -> Result<Option<StoredTokens>, sqlx::Error> {
    with_pool!(db, pool => {
        sqlx::query_as(
            "SELECT subject, access_token_enc, refresh_token_enc, token_expires_at FROM oauth_identities \
             WHERE provider = $1 AND user_id = $2",
        )
        .bind(provider.as_str())
        .bind(user_id)
        .fetch_optional(pool)
        .await
    })
}

/// Replaces the tokens on a user's identity with one provider (after a refresh).
pub async fn replace_tokens(
    db: &Db,
    provider: ProviderId,
    user_id: &str,
    access_token_enc: &[u8],
    refresh_token_enc: &[u8],
    token_expires_at: Option<i64>,
) -> Result<(), sqlx::Error> {
    with_pool!(db, pool => {
        sqlx::query(
            "UPDATE oauth_identities SET access_token_enc = $1, refresh_token_enc = $2, token_expires_at = $3, \
             updated_at = $4 WHERE provider = $5 AND user_id = $6",
        )
        .bind(access_token_enc)
        .bind(refresh_token_enc)
        .bind(token_expires_at)
        .bind(now_ms())
        .bind(provider.as_str())
        .bind(user_id)
        .execute(pool)
        .await
        .map(|_| ())
    })
}
