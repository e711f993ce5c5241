//! API keys: what a script uses instead of a browser session to call the public REST API
//! (`/api/v1`, `server/src/rest.rs`).
//!
//! A user makes keys on the settings page (`/settings/keys`): a name, read-only or read and write,
//! an optional expiry. The secret is shown once, when the key is made; only its SHA-256 is stored
//! (a high-entropy random secret needs no slow hash) with its first characters (the prefix) to
//! recognise it by. Revoking takes effect at once on every server: each request looks its key up
//! in the database. Keys are managed only through these server functions, which accept only a
//! browser session — a key can never make, list or revoke keys, nor sign in.

use crate::error::AppError;
use leptos::prelude::*;
use serde::{Deserialize, Serialize};

#[cfg(feature = "ssr")]
pub mod service;
#[cfg(feature = "ssr")]
pub mod store;

/// How many keys a user may have that are neither revoked nor expired.
pub const MAX_ACTIVE_KEYS: i64 = 20;
/// The longest a key may be made to last, in days.
pub const MAX_EXPIRY_DAYS: u16 = 365;

/// A key as its owner sees it (never its secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeyView {
    pub id: String,
    pub name: String,
    /// The secret's first characters, to recognise it by.
    pub prefix: String,
    /// May change data (otherwise read only).
    pub write: bool,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub expires_at: Option<i64>,
    pub revoked: bool,
    /// Past its expiry (as of the listing).
    #[serde(default)]
    pub expired: bool,
}

/// A key just made, with its secret: shown once, never again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatedKey {
    pub key: ApiKeyView,
    pub secret: String,
}

/// Makes a key for the signed-in user. `expires_in_days`: 1 to 365, or 0 for a key that lasts
/// until revoked.
#[server(endpoint = "keys/create")]
pub async fn create_api_key(
    name: String,
    #[server(default)] write: bool,
    #[server(default)] expires_in_days: u16,
) -> Result<CreatedKey, AppError> {
    service::create(name, write, expires_in_days).await
}

/// The signed-in user's keys, newest first.
#[server(endpoint = "keys/list")]
pub async fn list_api_keys() -> Result<Vec<ApiKeyView>, AppError> {
    service::list().await
}

/// Revokes one of the signed-in user's keys, at once.
#[server(endpoint = "keys/revoke")]
pub async fn revoke_api_key(id: String) -> Result<(), AppError> {
    service::revoke(id).await
}
