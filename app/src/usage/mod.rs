//! Usage analytics: one row in `generations` per model call (kind, provider, language, outcome,
//! time, tokens), written by the domains that call a model (characters, chat).
//!
//! Nothing here crosses the wire; the module exists so the table has one owner and its callers
//! share one vocabulary of outcomes. Server-only.

#[cfg(feature = "ssr")]
pub mod calls;
#[cfg(feature = "ssr")]
pub mod store;

#[cfg(feature = "ssr")]
use crate::infra::llm::{LlmError, Usage};

/// What one model call did, for the usage dashboard.
#[cfg(feature = "ssr")]
pub struct Record<'a> {
    pub owner_id: &'a str,
    pub kind: &'a str,
    pub provider: &'a str,
    pub language: Option<&'a str>,
    pub outcome: &'a str,
    pub duration_ms: i64,
    pub usage: Usage,
}

/// The outcome label of a result: `ok` or the error's kind.
#[cfg(feature = "ssr")]
pub fn outcome<T>(r: &Result<T, LlmError>) -> &'static str {
    use LlmError::*;
    match r {
        Ok(_) => "ok",
        Err(Unavailable(_)) => "unavailable",
        Err(Timeout(_)) => "timeout",
        Err(RateLimited { .. }) => "rate_limited",
        Err(Rejected(_)) => "rejected",
        Err(PromptBlocked(_)) => "blocked",
        Err(Finished(_)) => "finished_early",
        Err(CutOff(_)) => "cut_off",
        Err(InvalidReply(_)) => "invalid_reply",
    }
}

/// The span of one model call, a child of the request's: every line logged while the call runs
/// carries its `call_id` (with the request's id and user id), so one complaint can be followed
/// through every line of the call.
#[cfg(feature = "ssr")]
pub fn call_span(provider: &str, use_: &str) -> tracing::Span {
    tracing::info_span!(
        "model_call",
        call_id = %crate::infra::new_id(),
        provider,
        r#use = use_
    )
}
