//! The one error type every server function returns.
//!
//! Each variant carries only words meant for the user. Causes (database, network, provider
//! errors) are logged on the server with the request id and never cross the wire: see
//! [`AppError::internal`].

use crate::domain::{FieldErrors, Invalid};
use leptos::server_fn::codec::JsonEncoding;
use leptos::server_fn::error::{FromServerFnError, ServerFnErrorErr};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum AppError {
    /// No signed-in user.
    #[error("Please sign in to continue.")]
    Unauthorized,
    /// The thing does not exist, or belongs to someone else (the two look the same on purpose).
    #[error("Not found.")]
    NotFound,
    /// The request was refused as it stands (e.g. local sign-in while not on loopback).
    #[error("{0}")]
    Forbidden(String),
    /// Input that failed validation, field by field.
    #[error("Please correct the highlighted fields: {0}")]
    Invalid(FieldErrors),
    /// Input that failed validation, not tied to a form field.
    #[error("{0}")]
    BadRequest(String),
    /// The model provider could not produce a result; the message says what the user can do.
    #[error("{0}")]
    Provider(String),
    /// Anything else. The cause is in the server log under `reference`.
    #[error("Something went wrong on our side. Please try again (reference {reference}).")]
    Internal { reference: String },
    /// The request could not be read or the response could not be delivered.
    #[error("The request could not be completed: {0}")]
    Transport(String),
    /// The request clashes with something in progress (a reply still being written in the
    /// chat); the sentence says what the user can do.
    #[error("{0}")]
    Conflict(String),
}

impl AppError {
    /// Logs `cause` with context and returns an opaque error carrying the request reference.
    #[cfg(feature = "ssr")]
    pub fn internal(context: &str, cause: impl std::fmt::Debug) -> Self {
        let reference = crate::infra::request_id::current();
        tracing::error!(%reference, context, cause = ?cause, "internal error");
        AppError::Internal { reference }
    }
}

/// Turns a failure whose cause must not reach the user into [`AppError::internal`]: the cause is
/// logged with `context` and the request id, the user gets an opaque reference.
///
/// `store::find(&db, id).await.or_internal("load character")?`
#[cfg(feature = "ssr")]
pub trait OrInternal<T> {
    fn or_internal(self, context: &'static str) -> Result<T, AppError>;
}

#[cfg(feature = "ssr")]
impl<T, E: std::fmt::Debug> OrInternal<T> for Result<T, E> {
    fn or_internal(self, context: &'static str) -> Result<T, AppError> {
        self.map_err(|e| AppError::internal(context, e))
    }
}

impl From<Invalid> for AppError {
    fn from(e: Invalid) -> Self {
        AppError::BadRequest(e.0)
    }
}

impl From<FieldErrors> for AppError {
    fn from(e: FieldErrors) -> Self {
        AppError::Invalid(e)
    }
}

impl FromServerFnError for AppError {
    type Encoder = JsonEncoding;

    fn from_server_fn_error(value: ServerFnErrorErr) -> Self {
        // These come from the framework (a body that did not deserialize, a dropped connection);
        // say what kind of failure it was without echoing internal detail.
        let what = match value {
            ServerFnErrorErr::Args(_) | ServerFnErrorErr::Deserialization(_) => {
                "the request was not in the expected form"
            }
            ServerFnErrorErr::Request(_) => "the server could not be reached",
            ServerFnErrorErr::Response(_) | ServerFnErrorErr::Serialization(_) => {
                "the response could not be read"
            }
            ServerFnErrorErr::MissingArg(_) => "a required value was missing",
            _ => "an unexpected error occurred",
        };
        AppError::Transport(what.to_string())
    }
}

pub type AppResult<T> = Result<T, AppError>;
