//! Replies across servers' lives: when a reply whose server stopped beating its heartbeat counts
//! as interrupted, and how long a shutdown lets the replies in flight finish.

use super::{parse_num, ConfigError, Env};
use std::time::Duration;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RepliesConfig {
    /// `REPLY_STALE_SECS`: a `streaming` reply whose heartbeat is older than this is taken for
    /// one whose server is gone, and marked `interrupted` (at start-up, and when its chat is
    /// opened or written to). Well above the heartbeat interval (500 ms) and any clock skew
    /// between servers.
    pub stale_after: Duration,
    /// `SHUTDOWN_GRACE_SECS`: on SIGTERM or Ctrl-C, how long replies in flight may go on before
    /// they are saved as `interrupted`.
    pub shutdown_grace: Duration,
    /// `CHAT_CONTEXT_TOKENS`: the most tokens a chat reply's prompt may take (system prompt,
    /// lorebook, summary and messages; estimated, see `chat::context`). Set it to the model's
    /// context window less `LLM_MAX_OUTPUT_TOKENS`, or lower to spend less. Defaults: 32,000 for
    /// Gemini, 8,000 for an OpenAI-compatible server (often a local model with a small window)
    /// and the offline writer.
    pub context_tokens: usize,
}

impl Default for RepliesConfig {
    fn default() -> Self {
        Self {
            stale_after: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(10),
            context_tokens: 8_000,
        }
    }
}

/// The least `CHAT_CONTEXT_TOKENS` may be: room for a system prompt and a few messages.
pub const MIN_CONTEXT_TOKENS: usize = 1_000;

pub(super) fn read(env: &impl Env, llm: &super::LlmConfig) -> Result<RepliesConfig, ConfigError> {
    let defaults = RepliesConfig::default();
    let secs = |key: &str, default: Duration| -> Result<Duration, ConfigError> {
        match env.var(key) {
            Some(v) => parse_num(key, &v).map(Duration::from_secs),
            None => Ok(default),
        }
    };
    let stale_after = secs("REPLY_STALE_SECS", defaults.stale_after)?;
    if stale_after < Duration::from_secs(1) {
        return Err(ConfigError::new(
            "REPLY_STALE_SECS must be at least 1: replies beat their heartbeat every 500 ms",
        ));
    }
    let context_tokens = match env.var("CHAT_CONTEXT_TOKENS") {
        Some(v) => parse_num("CHAT_CONTEXT_TOKENS", &v)? as usize,
        None => match llm {
            super::LlmConfig::Gemini(_) => 32_000,
            _ => defaults.context_tokens,
        },
    };
    if context_tokens < MIN_CONTEXT_TOKENS {
        return Err(ConfigError::new(format!(
            "CHAT_CONTEXT_TOKENS must be at least {MIN_CONTEXT_TOKENS}"
        )));
    }
    Ok(RepliesConfig {
        stale_after,
        shutdown_grace: secs("SHUTDOWN_GRACE_SECS", defaults.shutdown_grace)?,
        context_tokens,
    })
}
