//! Any OpenAI-compatible chat completions endpoint (Ollama, llama.cpp server, vLLM, …):
//! `{base}/chat/completions`, streamed as SSE ending in `data: [DONE]`, with the usage in a final
//! chunk whose `choices` is empty or missing (`stream_options.include_usage`). The key is optional.

use super::http::{self, Failure, RetryPolicy};
use super::*;
use eventsource_stream::Eventsource;
use futures::StreamExt;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

#[derive(Clone)]
pub struct OpenAiConfig {
    /// e.g. `http://127.0.0.1:11434/v1` for Ollama.
    pub base_url: String,
    pub api_key: Option<crate::infra::config::Secret>,
    pub model: String,
    pub sampling: Sampling,
    pub timeout: Duration,
    pub idle_timeout: Duration,
    pub retry: RetryPolicy,
}

impl std::fmt::Debug for OpenAiConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenAiConfig")
            .field("base_url", &self.base_url)
            .field("model", &self.model)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .finish_non_exhaustive()
    }
}

#[derive(Clone)]
pub struct OpenAiProvider {
    inner: Arc<Inner>,
}

struct Inner {
    cfg: OpenAiConfig,
    client: reqwest::Client,
}

impl OpenAiProvider {
    pub fn new(cfg: OpenAiConfig) -> Self {
        Self {
            inner: Arc::new(Inner {
                cfg,
                client: http::client(),
            }),
        }
    }

    /// The request body. Public so snapshot tests can pin exactly what each use sends.
    pub fn body(
        cfg: &OpenAiConfig,
        system: &str,
        turns: &[Turn],
        schema: Option<&Value>,
        stream: bool,
    ) -> Value {
        let mut messages = vec![json!({"role": "system", "content": system})];
        messages.extend(turns.iter().map(|t| {
            json!({
                "role": match t.role { Role::User => "user", Role::Model => "assistant" },
                "content": t.text,
            })
        }));
        let mut body = json!({
            "model": cfg.model,
            "messages": messages,
            "temperature": cfg.sampling.temperature,
            "top_p": cfg.sampling.top_p,
            "max_tokens": cfg.sampling.max_output_tokens,
            "stream": stream,
        });
        if stream {
            body["stream_options"] = json!({"include_usage": true});
        }
        if let Some(schema) = schema {
            body["response_format"] = json!({
                "type": "json_schema",
                "json_schema": {"name": "reply", "schema": schema},
            });
        }
        body
    }

    async fn post(&self, body: &Value, whole_timeout: bool) -> Result<reqwest::Response, Failure> {
        let cfg = &self.inner.cfg;
        let url = format!("{}/chat/completions", cfg.base_url.trim_end_matches('/'));
        let mut req = self.inner.client.post(url).json(body);
        if let Some(key) = &cfg.api_key {
            req = req.bearer_auth(key.expose());
        }
        if whole_timeout {
            req = req.timeout(cfg.timeout);
        }
        let res = http::send(req, cfg.timeout).await?;
        if res.status().is_success() {
            return Ok(res);
        }
        let status = res.status().as_u16();
        let retry_after = res
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|s| s.is_finite() && *s >= 0.0)
            .map(Duration::from_secs_f64);
        let text = res.text().await.unwrap_or_default();
        let detail = format!(
            "HTTP {status}: {}",
            text.chars().take(300).collect::<String>()
        );
        Err(match status {
            429 => Failure::retry(
                LlmError::RateLimited {
                    daily: false,
                    detail,
                },
                retry_after,
            ),
            500 | 502 | 503 | 504 => Failure::retry(LlmError::Unavailable(detail), retry_after),
            400..=499 => Failure::fatal(LlmError::Rejected(detail)),
            _ => Failure::fatal(LlmError::Unavailable(detail)),
        })
    }
}

#[derive(Deserialize)]
struct Completion {
    #[serde(default)]
    choices: Vec<Choice>,
    usage: Option<OaUsage>,
}

#[derive(Deserialize)]
struct Choice {
    message: Option<Message>,
    delta: Option<Message>,
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct Message {
    content: Option<String>,
}

#[derive(Deserialize, Clone, Copy, Default)]
struct OaUsage {
    #[serde(default)]
    prompt_tokens: u32,
    #[serde(default)]
    completion_tokens: u32,
}

impl From<OaUsage> for Usage {
    fn from(u: OaUsage) -> Self {
        Usage {
            input_tokens: u.prompt_tokens,
            output_tokens: u.completion_tokens,
        }
    }
}

/// `finish_reason` other than `stop` as an error.
fn finish_error(reason: &str) -> Option<LlmError> {
    match reason {
        "stop" | "eos" => None,
        "length" => Some(LlmError::Finished(FinishReason::MaxTokens)),
        "content_filter" => Some(LlmError::Finished(FinishReason::Safety)),
        other => Some(LlmError::Finished(FinishReason::Unknown(other.to_string()))),
    }
}

#[async_trait::async_trait]
impl LlmProvider for OpenAiProvider {
    fn name(&self) -> &'static str {
        "openai-compatible"
    }

    fn is_offline(&self) -> bool {
        false
    }

    async fn generate_json(&self, req: StructuredRequest) -> Result<StructuredReply, LlmError> {
        let body = Self::body(
            &self.inner.cfg,
            &req.system,
            &req.turns(),
            Some(&req.schema),
            false,
        );
        let parsed: Completion =
            http::with_retry(self.inner.cfg.retry, "openai.chat.completions", || async {
                let res = self.post(&body, true).await?;
                let bytes = res.bytes().await.map_err(http::transport)?;
                serde_json::from_slice::<Completion>(&bytes).map_err(|e| {
                    Failure::retry(
                        LlmError::Unavailable(format!("unreadable response: {e}")),
                        None,
                    )
                })
            })
            .await?;
        let choice = parsed
            .choices
            .first()
            .ok_or_else(|| LlmError::InvalidReply("no choices in the response".into()))?;
        if let Some(err) = choice.finish_reason.as_deref().and_then(finish_error) {
            return Err(err);
        }
        let raw = choice
            .message
            .as_ref()
            .and_then(|m| m.content.clone())
            .unwrap_or_default();
        Ok(StructuredReply {
            raw,
            usage: parsed.usage.unwrap_or_default().into(),
        })
    }

    fn stream_chat(&self, req: ChatRequest) -> BoxStream<'static, Result<ChatChunk, LlmError>> {
        let body = Self::body(&self.inner.cfg, &req.system, &req.history, None, true);
        futures::stream::unfold(State::Start(self.clone(), body), next_chunk).boxed()
    }
}

type Events = BoxStream<'static, Result<eventsource_stream::Event, String>>;

enum State {
    Start(OpenAiProvider, Value),
    Reading {
        events: Events,
        idle: Duration,
        pending: VecDeque<Result<ChatChunk, LlmError>>,
        finish: Option<String>,
        usage: Usage,
    },
    Done,
}

async fn next_chunk(state: State) -> Option<(Result<ChatChunk, LlmError>, State)> {
    let (mut events, idle, mut pending, mut finish, mut usage) = match state {
        State::Done => return None,
        State::Start(p, body) => {
            match http::with_retry(p.inner.cfg.retry, "openai.chat.completions(stream)", || {
                p.post(&body, false)
            })
            .await
            {
                Err(e) => return Some((Err(e), State::Done)),
                Ok(res) => (
                    res.bytes_stream()
                        .eventsource()
                        .map(|r| r.map_err(|e| e.to_string()))
                        .boxed(),
                    p.inner.cfg.idle_timeout,
                    VecDeque::new(),
                    None,
                    Usage::default(),
                ),
            }
        }
        State::Reading {
            events,
            idle,
            pending,
            finish,
            usage,
        } => (events, idle, pending, finish, usage),
    };
    loop {
        if let Some(item) = pending.pop_front() {
            let done = !matches!(item, Ok(ChatChunk::Delta(_)));
            let next = if done {
                State::Done
            } else {
                State::Reading {
                    events,
                    idle,
                    pending,
                    finish,
                    usage,
                }
            };
            return Some((item, next));
        }
        let end = |finish: &Option<String>, usage: Usage| -> Result<ChatChunk, LlmError> {
            match finish.as_deref() {
                None => Err(LlmError::CutOff(
                    "stream ended without a finish reason".into(),
                )),
                Some(r) => match finish_error(r) {
                    None => Ok(ChatChunk::Done { usage }),
                    Some(e) => Err(e),
                },
            }
        };
        let event = match tokio::time::timeout(idle, events.next()).await {
            Err(_) => {
                return Some((
                    Err(LlmError::CutOff(format!("no data for {idle:?}"))),
                    State::Done,
                ))
            }
            Ok(None) => return Some((end(&finish, usage), State::Done)),
            Ok(Some(Err(e))) => {
                return Some((
                    Err(LlmError::CutOff(format!("stream broke: {e}"))),
                    State::Done,
                ))
            }
            Ok(Some(Ok(ev))) => ev,
        };
        let data = event.data.trim();
        if data.is_empty() {
            continue;
        }
        if data == "[DONE]" {
            return Some((end(&finish, usage), State::Done));
        }
        let chunk: Completion = match serde_json::from_str(data) {
            Ok(c) => c,
            Err(e) => {
                return Some((
                    Err(LlmError::CutOff(format!("unreadable event: {e}"))),
                    State::Done,
                ))
            }
        };
        if let Some(u) = chunk.usage {
            usage = u.into();
        }
        if let Some(choice) = chunk.choices.first() {
            if let Some(text) = choice.delta.as_ref().and_then(|d| d.content.clone()) {
                if !text.is_empty() {
                    pending.push_back(Ok(ChatChunk::Delta(text)));
                }
            }
            if let Some(r) = &choice.finish_reason {
                finish = Some(r.clone());
            }
        }
    }
}
