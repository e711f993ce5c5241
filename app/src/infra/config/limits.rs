//! Limits on spending and on anonymous requests: model calls per user per minute, replies and
//! generations at once per user, model tokens per user per day, sign-ins per client address per
//! minute, and where the client address comes from behind a reverse proxy. The limits are
//! enforced by [`crate::limits`], with their counters in the database.

use super::{parse_num, ConfigError, Env};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LimitsConfig {
    /// `LIMIT_MODEL_CALLS_PER_MINUTE`: model calls (generations and chat messages) per user per
    /// minute. 0 turns the limit off.
    pub model_calls_per_minute: u64,
    /// `LIMIT_CONCURRENT_GENERATIONS`: replies and generations in progress at once per user.
    pub concurrent_generations: u64,
    /// `LIMIT_DAILY_TOKENS`: model tokens (input and output) per user per UTC day.
    pub daily_tokens: u64,
    /// `LIMIT_SIGN_INS_PER_MINUTE`: sign-in starts (provider or local) per client address per
    /// minute.
    pub sign_ins_per_minute: u64,
    /// `CLIENT_IP_HEADER`: the request header a trusted reverse proxy puts the client address in
    /// (`x-forwarded-for`: its last entry; `x-real-ip`). Unset: the peer address of the
    /// connection.
    pub client_ip_header: Option<String>,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            model_calls_per_minute: 20,
            concurrent_generations: 3,
            daily_tokens: 200_000,
            sign_ins_per_minute: 10,
            client_ip_header: None,
        }
    }
}

pub(super) fn read(env: &impl Env) -> Result<LimitsConfig, ConfigError> {
    let d = LimitsConfig::default();
    let num = |key: &str, default: u64| -> Result<u64, ConfigError> {
        env.var(key)
            .map(|v| parse_num(key, &v))
            .unwrap_or(Ok(default))
    };
    Ok(LimitsConfig {
        model_calls_per_minute: num("LIMIT_MODEL_CALLS_PER_MINUTE", d.model_calls_per_minute)?,
        concurrent_generations: num("LIMIT_CONCURRENT_GENERATIONS", d.concurrent_generations)?,
        daily_tokens: num("LIMIT_DAILY_TOKENS", d.daily_tokens)?,
        sign_ins_per_minute: num("LIMIT_SIGN_INS_PER_MINUTE", d.sign_ins_per_minute)?,
        client_ip_header: env
            .var("CLIENT_IP_HEADER")
            .map(|h| h.trim().to_ascii_lowercase()),
    })
}
