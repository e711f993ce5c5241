//! Server-only plumbing shared by every domain: configuration, the database, sessions, the LLM
//! providers and the application state handed to server functions.

pub mod config;
pub mod crypto;
pub mod csp;
pub mod db;
pub mod llm;
pub mod request_id;
pub mod session;
pub mod state;

pub use state::AppState;

/// Milliseconds since the Unix epoch: the one timestamp format in the database.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

/// An id as the store could hold it (ids are UUIDs): anything empty or much longer is simply not
/// found, refused before any query.
pub fn check_id(id: &str) -> Result<(), crate::error::AppError> {
    if id.is_empty() || id.len() > 64 {
        return Err(crate::error::AppError::NotFound);
    }
    Ok(())
}

/// A file name from a name: letters, digits, `-` and `_` (others become `-`), at most 60
/// characters; `fallback` when nothing is left.
pub fn file_stem(name: &str, fallback: &str) -> String {
    let stem: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '-'
            }
        })
        .take(60)
        .collect();
    let stem = stem.trim_matches('-').to_string();
    if stem.is_empty() {
        fallback.into()
    } else {
        stem
    }
}

/// A new, time-ordered, unguessable id.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}
