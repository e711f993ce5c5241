//! The model provider: which one (`LLM_PROVIDER`), its endpoint and key, sampling, timeouts and
//! retries. The provider-specific settings are the providers' own types (`infra::llm`).

use super::{parse_num, ConfigError, Env, Secret};
use crate::infra::llm::{gemini::GeminiConfig, http::RetryPolicy, openai::OpenAiConfig, Sampling};
use std::time::Duration;

#[derive(Clone, Debug)]
pub enum LlmConfig {
    /// The built-in offline writer: no key, no network. `token_delay` paces its streaming.
    Offline { token_delay: Duration },
    /// Google Gemini's REST API.
    Gemini(GeminiConfig),
    /// An OpenAI-compatible chat completions endpoint (Ollama, llama.cpp, vLLM).
    OpenAi(OpenAiConfig),
}

pub(super) fn read(env: &impl Env) -> Result<LlmConfig, ConfigError> {
    let num = |key: &str, default: &str| -> Result<u64, ConfigError> {
        parse_num(key, env.var(key).as_deref().unwrap_or(default))
    };
    let float = |key: &str, default: f32, max: f32| -> Result<f32, ConfigError> {
        match env.var(key) {
            None => Ok(default),
            Some(v) => v
                .trim()
                .parse::<f32>()
                .ok()
                .filter(|x| (0.0..=max).contains(x))
                .ok_or_else(|| {
                    ConfigError::new(format!("{key} must be a number from 0 to {max}, not {v:?}"))
                }),
        }
    };
    let required = |key: &str, provider: &str| -> Result<String, ConfigError> {
        env.var(key).ok_or_else(|| {
            ConfigError::new(format!("{key} is required when LLM_PROVIDER={provider}"))
        })
    };
    let sampling = || -> Result<Sampling, ConfigError> {
        Ok(Sampling {
            temperature: float("LLM_TEMPERATURE", 0.9, 2.0)?,
            top_p: float("LLM_TOP_P", 0.95, 1.0)?,
            max_output_tokens: num("LLM_MAX_OUTPUT_TOKENS", "2048")? as u32,
        })
    };
    let retry = || -> Result<RetryPolicy, ConfigError> {
        let max_attempts = num("LLM_MAX_ATTEMPTS", "4")? as usize;
        if max_attempts == 0 {
            return Err(ConfigError::new("LLM_MAX_ATTEMPTS must be at least 1"));
        }
        Ok(RetryPolicy {
            max_attempts,
            base_delay: Duration::from_millis(num("LLM_RETRY_BASE_MS", "500")?),
            max_delay: Duration::from_secs(20),
            budget: Duration::from_secs(num("LLM_RETRY_BUDGET_SECS", "60")?),
        })
    };
    let timeout = || num("LLM_TIMEOUT_SECS", "60").map(Duration::from_secs);
    let idle = || num("LLM_IDLE_TIMEOUT_SECS", "30").map(Duration::from_secs);
    Ok(
        match env.var("LLM_PROVIDER").as_deref().unwrap_or("offline") {
            "offline" => LlmConfig::Offline {
                token_delay: Duration::from_millis(num("OFFLINE_TOKEN_DELAY_MS", "30")?),
            },
            "gemini" => LlmConfig::Gemini(GeminiConfig {
                api_key: Secret::new(required("GEMINI_API_KEY", "gemini")?),
                model: env
                    .var("GEMINI_MODEL")
                    .unwrap_or_else(|| "gemini-2.5-flash".into()),
                base_url: env
                    .var("GEMINI_BASE_URL")
                    .unwrap_or_else(|| "https://generativelanguage.googleapis.com/v1beta".into()),
                thinking_budget: match env.var("GEMINI_THINKING_BUDGET").as_deref() {
                    None => Some(0),
                    Some("default") => None,
                    Some(v) => Some(v.trim().parse().map_err(|_| {
                        ConfigError::new(format!(
                            "GEMINI_THINKING_BUDGET must be a whole number or `default`, not {v:?}"
                        ))
                    })?),
                },
                safety_threshold: match env.var("GEMINI_SAFETY_THRESHOLD").as_deref() {
                    None => Some("BLOCK_ONLY_HIGH".into()),
                    Some("default") => None,
                    Some(v) => Some(v.trim().to_string()),
                },
                sampling: sampling()?,
                timeout: timeout()?,
                idle_timeout: idle()?,
                retry: retry()?,
            }),
            "openai" => LlmConfig::OpenAi(OpenAiConfig {
                base_url: required("OPENAI_BASE_URL", "openai")?,
                api_key: env.var("OPENAI_API_KEY").map(Secret::new),
                model: required("OPENAI_MODEL", "openai")?,
                sampling: sampling()?,
                timeout: timeout()?,
                idle_timeout: idle()?,
                retry: retry()?,
            }),
            other => {
                return Err(ConfigError::new(format!(
                    "LLM_PROVIDER={other} is not supported; use `offline`, `gemini` or `openai`"
                )))
            }
        },
    )
}
