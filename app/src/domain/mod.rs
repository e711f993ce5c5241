//! Domain types that validate on construction.
//!
//! The same code runs in the wizard (instant feedback while typing) and in the server functions
//! (which parse again: a server function is a public endpoint). Each newtype has a private field
//! and a `parse` constructor; code downstream takes the parsed type and never re-checks.

pub mod avatar_art;
pub mod card;
mod character;
#[cfg(test)]
mod fuzz;
mod matching;
mod play;
pub mod schema;
mod text;
mod twin;

pub use character::*;
pub use matching::*;
pub use play::*;
pub use text::*;
pub use twin::*;

use serde::{Deserialize, Serialize};
use std::fmt;

/// Why a value was refused, in words meant for the person who typed it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

impl Invalid {
    pub fn new(msg: impl Into<String>) -> Self {
        Self(msg.into())
    }
}

/// One field's validation message, keyed by the form field it belongs to.
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

/// All the field errors of one form, so a form can show each message beside its field.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldErrors(pub Vec<FieldError>);

impl FieldErrors {
    pub fn push(&mut self, field: &str, err: Invalid) {
        self.0.push(FieldError {
            field: field.to_string(),
            message: err.0,
        });
    }

    /// Parse one field, recording its error under `field` and returning the value if it parsed.
    pub fn check<T>(&mut self, field: &str, result: Result<T, Invalid>) -> Option<T> {
        match result {
            Ok(v) => Some(v),
            Err(e) => {
                self.push(field, e);
                None
            }
        }
    }

    pub fn get(&self, field: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|e| e.field == field)
            .map(|e| e.message.as_str())
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for FieldErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .0
            .iter()
            .map(|e| format!("{}: {}", e.field, e.message))
            .collect();
        f.write_str(&parts.join("; "))
    }
}
