//! The one error type of the sign-in provider layer. Each variant is a `/signin?error=CODE` code
//! (the page turns it into words); the text it carries is for the log and is built here from
//! statuses, error codes and messages — never from a token response's body, so neither `Display`
//! nor `Debug` can print a token.

use oauth2::{ErrorResponse, RequestTokenError};

#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// No such provider, or it is not configured.
    #[error("unknown or unconfigured sign-in provider")]
    UnknownProvider,
    /// No flow in the session, or its state does not match (forged, replayed or expired).
    #[error("sign-in callback with a missing, wrong or expired state")]
    State,
    /// The provider reported an error (the user declined, …) or sent no code.
    #[error("the provider reported an error: {0}")]
    Denied(String),
    /// The provider could not be reached or answered wrongly.
    #[error("the provider failed: {0}")]
    Provider(String),
    /// The ID token failed verification.
    #[error("ID token rejected: {0}")]
    Token(String),
    /// Our side: configuration, the session, the database.
    #[error("internal: {0}")]
    Internal(String),
}

impl ProviderError {
    /// The code for `/signin?error=`.
    pub fn code(&self) -> &'static str {
        match self {
            ProviderError::UnknownProvider => "unknown_provider",
            ProviderError::State => "state",
            ProviderError::Denied(_) => "denied",
            ProviderError::Provider(_) => "provider",
            ProviderError::Token(_) => "token",
            ProviderError::Internal(_) => "internal",
        }
    }

    /// `Internal`, with the cause's description chain as context.
    pub(crate) fn internal(context: &str, cause: &dyn std::error::Error) -> Self {
        ProviderError::Internal(format!("{context}: {}", chain(cause)))
    }

    /// `Provider`, with the cause's description chain as context. Only for causes that cannot
    /// carry a token (transport errors, non-token responses).
    pub(crate) fn provider(context: &str, cause: &dyn std::error::Error) -> Self {
        ProviderError::Provider(format!("{context}: {}", chain(cause)))
    }

    /// A failed OAuth 2.0 token request: the error response's code and description, the
    /// transport failure, or where an unreadable response went wrong — never the body.
    pub(crate) fn token_request<RE, T>(context: &str, e: &RequestTokenError<RE, T>) -> Self
    where
        RE: std::error::Error + 'static,
        T: ErrorResponse + 'static,
    {
        let why = match e {
            RequestTokenError::ServerResponse(r) => format!("error response: {r}"),
            RequestTokenError::Request(re) => format!("request failed: {}", chain(re)),
            RequestTokenError::Parse(p, _body) => format!(
                "unreadable response at `{}` ({:?} error)",
                p.path(),
                p.inner().classify()
            ),
            RequestTokenError::Other(s) => s.clone(),
        };
        ProviderError::Provider(format!("{context}: {why}"))
    }

    /// Logs the failure once, at a level that fits it.
    pub(crate) fn log(&self, provider: &str) {
        match self {
            ProviderError::UnknownProvider | ProviderError::Denied(_) => {
                tracing::info!(provider, error = %self, "sign-in failed")
            }
            ProviderError::State | ProviderError::Provider(_) | ProviderError::Token(_) => {
                tracing::warn!(provider, error = %self, "sign-in failed")
            }
            ProviderError::Internal(_) => {
                tracing::error!(provider, error = %self, "sign-in failed")
            }
        }
    }
}

/// An error and its sources, as "outer: inner: …".
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}
