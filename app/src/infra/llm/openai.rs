//! Any OpenAI-compatible chat completions endpoint (Ollama, llama.cpp server, vLLM, …):
//! `{base}/chat/completions`, streamed as SSE ending in `data: [DONE]`, with the usage in a final
//! chunk whose `choices` is empty or missing (`stream_options.include_usage`). The key is optional.
//! Sending, retries, timeouts and SSE framing are [`super::http`]'s and [`super::sse`]'s; this
//! module is the wire format only.

use super::http::{self, AttemptError, Limits, RetryPolicy};
use super::sse::{self, ChatEvents};
use super::*;
use reqwest::header::HeaderMap;
use serde::Deserialize;
use serde_json::{json, Value};
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

    fn limits(&self) -> Limits {
        let cfg = &self.inner.cfg;
        Limits {
            timeout: cfg.timeout,
            idle_timeout: cfg.idle_timeout,
            retry: cfg.retry,
        }
    }

    /// One POST of `body` to `{base}/chat/completions`, with the key if there is one.
    fn request(&self, body: &Value) -> reqwest::RequestBuilder {
        let cfg = &self.inner.cfg;
        let url = format!("{}/chat/completions", cfg.base_url.trim_end_matches('/'));
        let req = self.inner.client.post(url).json(body);
        match &cfg.api_key {
            Some(key) => req.bearer_auth(key.expose()),
            None => req,
        }
    }
}

/// An error status: 429 and 5xx are retried (after `Retry-After` seconds when given), other 4xx
/// are the request's fault. The body's shape varies by server, so it is only quoted.
pub fn classify_error(status: u16, headers: &HeaderMap, body: &str) -> AttemptError {
    let retry_after = headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(Duration::from_secs_f64);
    let detail = format!(
        "HTTP {status}: {}",
        body.chars().take(300).collect::<String>()
    );
    match status {
        429 => AttemptError::retry(
            LlmError::RateLimited {
                daily: false,
                detail,
            },
            retry_after,
        ),
        500 | 502 | 503 | 504 => AttemptError::retry(LlmError::Unavailable(detail), retry_after),
        400..=499 => AttemptError::fatal(LlmError::Rejected(detail)),
        _ => AttemptError::fatal(LlmError::Unavailable(detail)),
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

    fn model(&self) -> String {
        self.inner.cfg.model.clone()
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
        let parsed: Completion = http::call_json(
            "openai.chat.completions",
            self.limits(),
            || self.request(&body),
            classify_error,
        )
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
        let body = Self::body(
            &self.inner.cfg,
            &req.system,
            &req.wire_history(),
            None,
            true,
        );
        self.stream(body, "openai.chat.completions(stream)")
    }

    fn stream_json(
        &self,
        req: StructuredRequest,
    ) -> BoxStream<'static, Result<ChatChunk, LlmError>> {
        let body = Self::body(
            &self.inner.cfg,
            &req.system,
            &req.turns(),
            Some(&req.schema),
            true,
        );
        self.stream(body, "openai.chat.completions(stream, json)")
    }
}

impl OpenAiProvider {
    /// `body` sent as a streamed chat completion, its events read as chunks.
    fn stream(
        &self,
        body: Value,
        call: &'static str,
    ) -> BoxStream<'static, Result<ChatChunk, LlmError>> {
        let this = self.clone();
        let open = async move {
            http::open_stream(call, this.limits(), || this.request(&body), classify_error).await
        };
        sse::chat(open, self.limits(), StreamEvents::default())
    }
}

/// A stream's events: deltas, a chunk with the finish reason, a usage chunk, then `[DONE]`. The
/// finish reason and usage are kept until the end.
#[derive(Default)]
struct StreamEvents {
    finish: Option<String>,
    usage: Usage,
}

impl StreamEvents {
    fn end(&self) -> Result<ChatChunk, LlmError> {
        match self.finish.as_deref() {
            None => Err(LlmError::CutOff(
                "stream ended without a finish reason".into(),
            )),
            Some(r) => match finish_error(r) {
                None => Ok(ChatChunk::Done { usage: self.usage }),
                Some(e) => Err(e),
            },
        }
    }
}

impl ChatEvents for StreamEvents {
    fn read(&mut self, data: &str) -> Vec<Result<ChatChunk, LlmError>> {
        let data = data.trim();
        if data == "[DONE]" {
            return vec![self.end()];
        }
        let chunk: Completion = match serde_json::from_str(data) {
            Ok(c) => c,
            Err(e) => return vec![Err(LlmError::CutOff(format!("unreadable event: {e}")))],
        };
        if let Some(u) = chunk.usage {
            self.usage = u.into();
        }
        let mut out = Vec::new();
        if let Some(choice) = chunk.choices.first() {
            if let Some(text) = choice.delta.as_ref().and_then(|d| d.content.clone()) {
                if !text.is_empty() {
                    out.push(Ok(ChatChunk::Delta(text)));
                }
            }
            if let Some(r) = &choice.finish_reason {
                self.finish = Some(r.clone());
            }
        }
        out
    }

    /// Some servers close without `[DONE]`: the reply is whole if a finish reason came.
    fn at_end(&mut self) -> Option<Result<ChatChunk, LlmError>> {
        Some(self.end())
    }
}
