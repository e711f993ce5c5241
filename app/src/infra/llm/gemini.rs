//! Google Gemini over its REST API (`v1beta`): `models/{model}:generateContent` for structured
//! output and `models/{model}:streamGenerateContent?alt=sse` for chat.
//!
//! Streaming: each SSE event is `data: {GenerateContentResponse}`; there is no `[DONE]` — the last
//! event carries `finishReason` and `usageMetadata` (its text may be empty). A stream that ends
//! without a finish reason was cut off. Sending, retries, timeouts and SSE framing are
//! [`super::http`]'s and [`super::sse`]'s; this module is the wire format only.

use super::http::{self, AttemptError, Limits, RetryPolicy};
use super::sse::{self, ChatEvents};
use super::*;
use reqwest::header::HeaderMap;
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

/// Gemini settings (environment variables `GEMINI_*` and `LLM_*`, see the README).
#[derive(Clone)]
pub struct GeminiConfig {
    pub api_key: crate::infra::config::Secret,
    pub model: String,
    /// e.g. `https://generativelanguage.googleapis.com/v1beta`
    pub base_url: String,
    /// Thinking tokens count against `maxOutputTokens`; 0 turns thinking off where the model
    /// allows it. `None` leaves the model's default.
    pub thinking_budget: Option<i32>,
    /// Threshold for every harm category (e.g. `BLOCK_ONLY_HIGH`); `None` keeps Gemini's defaults.
    pub safety_threshold: Option<String>,
    pub sampling: Sampling,
    /// Whole-request limit for `generateContent`; time to the response headers for streams.
    pub timeout: Duration,
    /// Longest silence allowed between two stream events.
    pub idle_timeout: Duration,
    pub retry: RetryPolicy,
}

impl std::fmt::Debug for GeminiConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeminiConfig")
            .field("model", &self.model)
            .field("base_url", &self.base_url)
            .field("api_key", &"<redacted>")
            .finish_non_exhaustive()
    }
}

#[derive(Clone)]
pub struct GeminiProvider {
    inner: Arc<Inner>,
}

struct Inner {
    cfg: GeminiConfig,
    client: reqwest::Client,
}

const HARM_CATEGORIES: [&str; 4] = [
    "HARM_CATEGORY_HARASSMENT",
    "HARM_CATEGORY_HATE_SPEECH",
    "HARM_CATEGORY_SEXUALLY_EXPLICIT",
    "HARM_CATEGORY_DANGEROUS_CONTENT",
];

impl GeminiProvider {
    pub fn new(cfg: GeminiConfig) -> Self {
        Self {
            inner: Arc::new(Inner {
                cfg,
                client: http::client(),
            }),
        }
    }

    fn url(&self, method: &str) -> String {
        let base = self.inner.cfg.base_url.trim_end_matches('/');
        let model = &self.inner.cfg.model;
        match method {
            "streamGenerateContent" => {
                format!("{base}/models/{model}:streamGenerateContent?alt=sse")
            }
            _ => format!("{base}/models/{model}:{method}"),
        }
    }

    /// The request body. Public so snapshot tests can pin exactly what each use sends.
    pub fn body(cfg: &GeminiConfig, system: &str, turns: &[Turn], schema: Option<&Value>) -> Value {
        let contents: Vec<Value> = turns
            .iter()
            .map(|t| {
                json!({
                    "role": match t.role { Role::User => "user", Role::Model => "model" },
                    "parts": [{"text": t.text}],
                })
            })
            .collect();
        let mut generation = json!({
            "temperature": cfg.sampling.temperature,
            "topP": cfg.sampling.top_p,
            "maxOutputTokens": cfg.sampling.max_output_tokens,
        });
        if let Some(budget) = cfg.thinking_budget {
            generation["thinkingConfig"] = json!({"thinkingBudget": budget});
        }
        if let Some(schema) = schema {
            generation["responseMimeType"] = json!("application/json");
            generation["responseJsonSchema"] = schema.clone();
        }
        let mut body = json!({
            "systemInstruction": {"parts": [{"text": system}]},
            "contents": contents,
            "generationConfig": generation,
        });
        if let Some(threshold) = &cfg.safety_threshold {
            body["safetySettings"] = HARM_CATEGORIES
                .iter()
                .map(|c| json!({"category": c, "threshold": threshold}))
                .collect();
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

    /// One POST of `body` to `url`, with the key.
    fn request(&self, url: &str, body: &Value) -> reqwest::RequestBuilder {
        self.inner
            .client
            .post(url)
            .header("x-goog-api-key", self.inner.cfg.api_key.expose())
            .json(body)
    }
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct GenerateContentResponse {
    #[serde(default)]
    candidates: Vec<Candidate>,
    prompt_feedback: Option<PromptFeedback>,
    usage_metadata: Option<UsageMetadata>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Candidate {
    content: Option<Content>,
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct Content {
    #[serde(default)]
    parts: Vec<Part>,
}

#[derive(Deserialize)]
struct Part {
    text: Option<String>,
    #[serde(default)]
    thought: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PromptFeedback {
    block_reason: Option<String>,
}

#[derive(Deserialize, Default, Clone, Copy)]
#[serde(rename_all = "camelCase")]
struct UsageMetadata {
    #[serde(default)]
    prompt_token_count: u32,
    #[serde(default)]
    candidates_token_count: u32,
    #[serde(default)]
    thoughts_token_count: u32,
}

impl From<UsageMetadata> for Usage {
    fn from(u: UsageMetadata) -> Self {
        Usage {
            input_tokens: u.prompt_token_count,
            output_tokens: u.candidates_token_count + u.thoughts_token_count,
        }
    }
}

impl GenerateContentResponse {
    /// The text of the first candidate, thoughts excluded.
    fn text(&self) -> String {
        self.candidates
            .first()
            .and_then(|c| c.content.as_ref())
            .map(|c| {
                c.parts
                    .iter()
                    .filter(|p| !p.thought)
                    .filter_map(|p| p.text.as_deref())
                    .collect::<String>()
            })
            .unwrap_or_default()
    }

    fn blocked(&self) -> Option<LlmError> {
        let reason = self.prompt_feedback.as_ref()?.block_reason.as_ref()?;
        Some(LlmError::PromptBlocked(reason.clone()))
    }

    fn finish(&self) -> Option<&str> {
        self.candidates.first()?.finish_reason.as_deref()
    }
}

/// Gemini's error body: `{"error": {"code", "message", "status", "details": [...]}}`.
pub fn classify_error(status: u16, _headers: &HeaderMap, body: &str) -> AttemptError {
    let v: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    let err = &v["error"];
    let message = err["message"].as_str().unwrap_or("").to_string();
    let api_status = err["status"].as_str().unwrap_or("").to_string();
    let detail = format!("HTTP {status} {api_status}: {message}");
    let details = err["details"].as_array().cloned().unwrap_or_default();
    fn of_type<'a>(details: &'a [Value], t: &'static str) -> impl Iterator<Item = &'a Value> {
        details
            .iter()
            .filter(move |d| d["@type"].as_str().is_some_and(|x| x.ends_with(t)))
    }
    match status {
        429 => {
            let daily = of_type(&details, "google.rpc.QuotaFailure").any(|d| {
                d["violations"].as_array().is_some_and(|vs| {
                    vs.iter().any(|v| {
                        v["quotaId"].as_str().is_some_and(|q| q.contains("PerDay"))
                            || v["quotaMetric"]
                                .as_str()
                                .is_some_and(|q| q.contains("per_day"))
                    })
                })
            });
            let retry_after = of_type(&details, "google.rpc.RetryInfo").find_map(|d| {
                d["retryDelay"]
                    .as_str()
                    .and_then(http::parse_proto_duration)
            });
            let error = LlmError::RateLimited { daily, detail };
            if daily {
                AttemptError::fatal(error)
            } else {
                AttemptError::retry(error, retry_after)
            }
        }
        500 | 503 | 504 => AttemptError::retry(LlmError::Unavailable(detail), None),
        400 | 401 | 403 | 404 => AttemptError::fatal(LlmError::Rejected(detail)),
        _ => AttemptError::fatal(LlmError::Unavailable(detail)),
    }
}

#[async_trait::async_trait]
impl LlmProvider for GeminiProvider {
    fn name(&self) -> &'static str {
        "gemini"
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
        );
        let url = self.url("generateContent");
        let parsed: GenerateContentResponse = http::call_json(
            "gemini.generateContent",
            self.limits(),
            || self.request(&url, &body),
            classify_error,
        )
        .await?;
        if let Some(blocked) = parsed.blocked() {
            return Err(blocked);
        }
        let Some(finish) = parsed.finish() else {
            return Err(LlmError::InvalidReply(
                "no candidate in the response".into(),
            ));
        };
        if let Some(reason) = FinishReason::from_gemini(finish) {
            return Err(LlmError::Finished(reason));
        }
        Ok(StructuredReply {
            raw: parsed.text(),
            usage: parsed.usage_metadata.unwrap_or_default().into(),
        })
    }

    fn stream_chat(&self, req: ChatRequest) -> BoxStream<'static, Result<ChatChunk, LlmError>> {
        let body = Self::body(&self.inner.cfg, &req.system, &req.wire_history(), None);
        self.stream(body, "gemini.streamGenerateContent")
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
        );
        self.stream(body, "gemini.streamGenerateContent(json)")
    }
}

impl GeminiProvider {
    /// `body` sent to `streamGenerateContent`, its events read as chunks.
    fn stream(
        &self,
        body: Value,
        call: &'static str,
    ) -> BoxStream<'static, Result<ChatChunk, LlmError>> {
        let this = self.clone();
        let open = async move {
            let url = this.url("streamGenerateContent");
            http::open_stream(
                call,
                this.limits(),
                || this.request(&url, &body),
                classify_error,
            )
            .await
        };
        sse::chat(open, self.limits(), StreamEvents)
    }
}

fn snippet(s: &str) -> String {
    s.chars().take(120).collect()
}

/// A stream's events: each a whole `GenerateContentResponse`; the one with a finish reason ends
/// the reply.
struct StreamEvents;

impl ChatEvents for StreamEvents {
    fn read(&mut self, data: &str) -> Vec<Result<ChatChunk, LlmError>> {
        let chunk: GenerateContentResponse = match serde_json::from_str(data) {
            Ok(c) => c,
            Err(e) => {
                return vec![Err(LlmError::CutOff(format!(
                    "unreadable event ({e}): {}",
                    snippet(data)
                )))]
            }
        };
        if let Some(blocked) = chunk.blocked() {
            return vec![Err(blocked)];
        }
        let mut out = Vec::new();
        let text = chunk.text();
        if !text.is_empty() {
            out.push(Ok(ChatChunk::Delta(text)));
        }
        if let Some(finish) = chunk.finish() {
            out.push(match FinishReason::from_gemini(finish) {
                None => Ok(ChatChunk::Done {
                    usage: chunk.usage_metadata.unwrap_or_default().into(),
                }),
                Some(reason) => Err(LlmError::Finished(reason)),
            });
        }
        out
    }

    /// There is no `[DONE]`: only a finish reason ends a reply.
    fn at_end(&mut self) -> Option<Result<ChatChunk, LlmError>> {
        None
    }
}
