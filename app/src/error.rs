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
    /// The request body is larger than anything valid for its endpoint; it was not read.
    #[error("{0}")]
    TooLarge(String),
    /// The request conflicts with something in progress (e.g. a reply still being written).
    #[error("{0}")]
    Conflict(String),
    /// The database cannot be reached right now (restarting, network, pool exhausted). Nothing
    /// the user did: the same request will work once it is back. Answered 503 with `Retry-After`.
    #[error("PersonaFlux can't reach its database right now. Nothing you wrote is lost; please try again in a moment.")]
    Unavailable,
    /// A limit was reached (requests per minute, replies at once, tokens per day). The message
    /// says which and when to try again; `retry_after_secs` is sent as `Retry-After`.
    #[error("{message}")]
    RateLimited {
        retry_after_secs: u64,
        message: String,
    },
}

/// How long a client is asked to wait when the database is out of reach.
pub const UNAVAILABLE_RETRY_SECS: u64 = 5;

impl AppError {
    /// The HTTP status that says what kind of refusal or failure this is: 4xx for what the
    /// request did (400 undecodable, 401 not signed in, 403 refused, 404 missing or not yours,
    /// 409 conflicting, 413 too large, 422 invalid, 429 over a limit), 5xx only for faults (500
    /// ours, 502 the model provider's). The server applies it to every server function's error
    /// response in one place (`server::status`).
    pub fn status(&self) -> http::StatusCode {
        use http::StatusCode as S;
        match self {
            AppError::Transport(_) => S::BAD_REQUEST,
            AppError::Unauthorized => S::UNAUTHORIZED,
            AppError::Forbidden(_) => S::FORBIDDEN,
            AppError::NotFound => S::NOT_FOUND,
            AppError::Conflict(_) => S::CONFLICT,
            AppError::TooLarge(_) => S::PAYLOAD_TOO_LARGE,
            AppError::Invalid(_) | AppError::BadRequest(_) => S::UNPROCESSABLE_ENTITY,
            AppError::RateLimited { .. } => S::TOO_MANY_REQUESTS,
            AppError::Provider(_) => S::BAD_GATEWAY,
            AppError::Internal { .. } => S::INTERNAL_SERVER_ERROR,
            AppError::Unavailable => S::SERVICE_UNAVAILABLE,
        }
    }

    /// Seconds to wait before trying again, for the `Retry-After` header.
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            AppError::RateLimited {
                retry_after_secs, ..
            } => Some((*retry_after_secs).max(1)),
            AppError::Unavailable => Some(UNAVAILABLE_RETRY_SECS),
            _ => None,
        }
    }

    /// Logs `cause` with context and returns an opaque error carrying the request reference —
    /// or, when the cause is the database being out of reach, [`AppError::Unavailable`], so the
    /// user is told to try again rather than that something broke.
    #[cfg(feature = "ssr")]
    pub fn internal(context: &str, cause: impl std::fmt::Debug + 'static) -> Self {
        let reference = crate::infra::request_id::current();
        let any: &dyn std::any::Any = &cause;
        let unavailable = any
            .downcast_ref::<sqlx::Error>()
            .is_some_and(crate::infra::db::is_unavailable)
            || any
                .downcast_ref::<tower_sessions::session::Error>()
                .is_some_and(crate::infra::session::is_unavailable);
        if unavailable {
            tracing::warn!(%reference, context, cause = ?cause, "database unavailable");
            return AppError::Unavailable;
        }
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
impl<T, E: std::fmt::Debug + 'static> OrInternal<T> for Result<T, E> {
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
        // On the server, the framework's own errors are either the request's fault (a body that
        // did not decode: `Transport`, answered 400) or ours (a response that could not be built:
        // an opaque internal error, 500).
        #[cfg(feature = "ssr")]
        if !matches!(
            value,
            ServerFnErrorErr::Args(_)
                | ServerFnErrorErr::Deserialization(_)
                | ServerFnErrorErr::MissingArg(_)
        ) {
            return AppError::internal("server function framework", value);
        }
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
