//! A stand-in for Google's Gemini REST API (`v1beta`) on loopback, for tests, end-to-end runs and
//! benchmarks. It speaks the real wire format — `models/{model}:generateContent` and
//! `models/{model}:streamGenerateContent?alt=sse`, `x-goog-api-key`, `GenerateContentResponse`
//! JSON, SSE events without a `[DONE]`, errors as `{"error": {code, message, status, details}}` —
//! and can be scripted to fail in each of the ways the real service does.
//!
//! Replies come from a queue (`MockGemini::push`, or `POST /mock/script` with a JSON array of
//! [`Reply`]). When the queue is empty, a marker in the last user message picks a fault
//! (`[[mock:429]]`, `[[mock:cut_off]]`, … see [`Reply::from_marker`]); otherwise the mock answers
//! plausibly: a valid character for a JSON request, a short chat reply otherwise.
//! `GET /mock/requests` lists what was received.

use axum::{
    body::{Body, Bytes},
    extract::{Path, Query, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
    Json, Router,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::{
    collections::{HashMap, VecDeque},
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

/// One scripted reply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Reply {
    /// Success. Streamed as one event per chunk (the last also carries `finishReason` and
    /// `usageMetadata`); for `generateContent` the chunks are joined.
    Text {
        chunks: Vec<String>,
        #[serde(default = "stop")]
        finish: String,
        #[serde(default)]
        chunk_delay_ms: u64,
    },
    /// Success with this JSON as the reply text (structured output).
    Json { value: Value },
    /// Success with this exact text, e.g. malformed JSON for a structured request.
    RawText { text: String },
    /// An HTTP error in Gemini's shape; `retry_delay` adds a `RetryInfo` ("43.7s"), `quota_id` a
    /// `QuotaFailure` violation (a per-day quota has `PerDay` in its id).
    Error {
        code: u16,
        status: String,
        message: String,
        #[serde(default)]
        retry_delay: Option<String>,
        #[serde(default)]
        quota_id: Option<String>,
    },
    /// The prompt is blocked before generation: no candidates, a `promptFeedback.blockReason`.
    Blocked { reason: String },
    /// Waits before sending anything.
    Slow { delay_ms: u64, then: Box<Reply> },
    /// Streams these chunks, then half an event, then closes the connection.
    CutOff { chunks: Vec<String> },
    /// Ends SSE lines with CRLF.
    Crlf { then: Box<Reply> },
    /// Writes every event in three pieces, flushed separately.
    SplitWrites { then: Box<Reply> },
    /// Writes all events in one piece.
    Batched { then: Box<Reply> },
    /// Streams `count` chunks whose text is the mock's clock at the moment of sending, in
    /// microseconds since the Unix epoch, followed by a space (for relay benchmarks).
    Stamped { count: usize, chunk_delay_ms: u64 },
}

fn stop() -> String {
    "STOP".into()
}

impl Reply {
    pub fn text(chunks: &[&str]) -> Self {
        Reply::Text {
            chunks: chunks.iter().map(|s| s.to_string()).collect(),
            finish: stop(),
            chunk_delay_ms: 0,
        }
    }

    pub fn error(code: u16, status: &str) -> Self {
        Reply::Error {
            code,
            status: status.into(),
            message: format!("mock {status}"),
            retry_delay: None,
            quota_id: None,
        }
    }

    /// 429 with a `RetryInfo` delay, as the real service sends for a per-minute limit.
    pub fn rate_limited(retry_delay: &str) -> Self {
        Reply::Error {
            code: 429,
            status: "RESOURCE_EXHAUSTED".into(),
            message: "Resource has been exhausted (e.g. check quota).".into(),
            retry_delay: Some(retry_delay.into()),
            quota_id: Some("GenerateRequestsPerMinutePerProjectPerModel-FreeTier".into()),
        }
    }

    /// 429 for a per-day quota: retrying will not help.
    pub fn daily_quota() -> Self {
        Reply::Error {
            code: 429,
            status: "RESOURCE_EXHAUSTED".into(),
            message: "You exceeded your current quota.".into(),
            retry_delay: Some("43.7s".into()),
            quota_id: Some("GenerateRequestsPerDayPerProjectPerModel-FreeTier".into()),
        }
    }

    /// The fault named by a `[[mock:NAME]]` marker.
    pub fn from_marker(name: &str, ok: Reply) -> Option<Self> {
        let words = |n: usize| -> Vec<String> { (0..n).map(|i| format!("word{i} ")).collect() };
        Some(match name {
            "429" => Reply::rate_limited("0.05s"),
            "quota" => Reply::daily_quota(),
            "500" => Reply::error(500, "INTERNAL"),
            "503" => Reply::error(503, "UNAVAILABLE"),
            "400" => Reply::error(400, "INVALID_ARGUMENT"),
            "slow" => Reply::Slow {
                delay_ms: 1500,
                then: Box::new(ok),
            },
            "cut_off" => Reply::CutOff { chunks: words(6) },
            "crlf" => Reply::Crlf { then: Box::new(ok) },
            "split" => Reply::SplitWrites { then: Box::new(ok) },
            "batched" => Reply::Batched { then: Box::new(ok) },
            "malformed" => Reply::RawText {
                text: "{\"backstory\": \"unterminated".into(),
            },
            "safety" => Reply::Text {
                chunks: vec!["I was going to say ".into(), "something ".into()],
                finish: "SAFETY".into(),
                chunk_delay_ms: 0,
            },
            "max_tokens" => Reply::Text {
                chunks: words(4),
                finish: "MAX_TOKENS".into(),
                chunk_delay_ms: 0,
            },
            "long" => Reply::Text {
                chunks: (0..80).map(|i| format!("word{i} ")).collect(),
                finish: "STOP".into(),
                chunk_delay_ms: 60,
            },
            "blocked" => Reply::Blocked {
                reason: "SAFETY".into(),
            },
            _ => return None,
        })
    }
}

/// A request as the mock received it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Recorded {
    pub model: String,
    pub method: String,
    pub alt: Option<String>,
    pub api_key: Option<String>,
    pub body: Value,
}

#[derive(Default)]
struct Inner {
    script: Mutex<VecDeque<Reply>>,
    requests: Mutex<Vec<Recorded>>,
    /// Streams whose client went away before the stream ended.
    aborted: std::sync::atomic::AtomicUsize,
}

/// A running mock. Dropping it stops the server.
pub struct MockGemini {
    pub addr: SocketAddr,
    inner: Arc<Inner>,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

impl MockGemini {
    /// Starts on a free loopback port.
    pub async fn start() -> Self {
        Self::start_on("127.0.0.1:0".parse().unwrap()).await
    }

    pub async fn start_on(addr: SocketAddr) -> Self {
        let inner = Arc::new(Inner::default());
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .expect("bind mock");
        let addr = listener.local_addr().expect("mock addr");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let app = router(inner.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = rx.await;
                })
                .await;
        });
        Self {
            addr,
            inner,
            _shutdown: tx,
        }
    }

    /// What to set as the provider's base URL.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1beta", self.addr)
    }

    pub fn push(&self, reply: Reply) {
        self.inner.script.lock().unwrap().push_back(reply);
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.inner.requests.lock().unwrap().clone()
    }

    /// How many streams the client closed before their end (a cancelled upstream request).
    pub fn aborted_streams(&self) -> usize {
        self.inner.aborted.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The OpenAI-compatible base URL (`{base}/chat/completions`).
    pub fn openai_base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }
}

/// The mock's routes, for embedding or for `main`.
fn router(inner: Arc<Inner>) -> Router {
    Router::new()
        .route("/v1beta/models/{model_method}", post(generate))
        .route("/v1/chat/completions", post(openai::chat_completions))
        .route("/mock/script", post(script))
        .route("/mock/requests", get(requests))
        .route("/mock/reset", post(reset))
        .with_state(inner)
}

/// Serves until the process ends (for the `mock-gemini` binary).
pub async fn serve(addr: SocketAddr) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    println!(
        "mock Gemini listening on http://{}/v1beta",
        listener.local_addr()?
    );
    axum::serve(listener, router(Arc::new(Inner::default()))).await
}

async fn script(State(inner): State<Arc<Inner>>, Json(replies): Json<Vec<Reply>>) -> StatusCode {
    inner.script.lock().unwrap().extend(replies);
    StatusCode::NO_CONTENT
}

async fn requests(State(inner): State<Arc<Inner>>) -> Json<Vec<Recorded>> {
    Json(inner.requests.lock().unwrap().clone())
}

async fn reset(State(inner): State<Arc<Inner>>) -> StatusCode {
    inner.script.lock().unwrap().clear();
    inner.requests.lock().unwrap().clear();
    StatusCode::NO_CONTENT
}

async fn generate(
    State(inner): State<Arc<Inner>>,
    Path(model_method): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some((model, method)) = model_method.split_once(':') else {
        return error_response(404, "NOT_FOUND", "unknown method", None, None);
    };
    let body: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            return error_response(
                400,
                "INVALID_ARGUMENT",
                &format!("Invalid JSON payload: {e}"),
                None,
                None,
            )
        }
    };
    let api_key = headers
        .get("x-goog-api-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    inner.requests.lock().unwrap().push(Recorded {
        model: model.to_string(),
        method: method.to_string(),
        alt: query.get("alt").cloned(),
        api_key: api_key.clone(),
        body: body.clone(),
    });
    if api_key.as_deref().unwrap_or("").is_empty() {
        return error_response(
            403,
            "PERMISSION_DENIED",
            "Method doesn't allow unregistered callers. Please use API Key.",
            None,
            None,
        );
    }
    let scripted = inner.script.lock().unwrap().pop_front();
    let reply = scripted.unwrap_or_else(|| default_reply(&body));
    match method {
        "generateContent" => unary(reply).await,
        "streamGenerateContent" => {
            if query.get("alt").map(String::as_str) != Some("sse") {
                return error_response(
                    400,
                    "INVALID_ARGUMENT",
                    "this mock streams only with alt=sse",
                    None,
                    None,
                );
            }
            // A slow first byte: nothing at all, not even the headers, until the delay is over.
            let mut reply = reply;
            while let Reply::Slow { delay_ms, then } = reply {
                tokio::time::sleep(Duration::from_millis(delay_ms)).await;
                reply = *then;
            }
            streamed(reply, inner.clone())
        }
        _ => error_response(404, "NOT_FOUND", "unknown method", None, None),
    }
}

fn last_user_text(body: &Value) -> String {
    body["contents"]
        .as_array()
        .and_then(|c| c.iter().rev().find(|m| m["role"] == "user"))
        .and_then(|m| m["parts"].as_array())
        .map(|parts| {
            parts
                .iter()
                .filter_map(|p| p["text"].as_str())
                .collect::<Vec<_>>()
                .join("")
        })
        .unwrap_or_default()
}

fn default_reply(body: &Value) -> Reply {
    let text = last_user_text(body);
    let wants_json = body["generationConfig"]["responseMimeType"] == "application/json";
    let ok = if wants_json {
        // The whole conversation, so a repair request still finds the character's name.
        Reply::Json {
            value: sample_character(&body["contents"].to_string().replace("\\n", "\n")),
        }
    } else {
        let topic: String = text.chars().take(60).collect();
        let reply = format!(
            "The mock model heard you say \"{topic}\". It answers in a few short sentences, one token at a time, so the stream can be watched."
        );
        Reply::Text {
            chunks: reply.split_inclusive(' ').map(str::to_string).collect(),
            finish: stop(),
            chunk_delay_ms: 15,
        }
    };
    if let Some(start) = text.find("[[mock:") {
        let rest = &text[start + 7..];
        if let Some(end) = rest.find("]]") {
            if let Some(fault) = Reply::from_marker(&rest[..end], ok.clone()) {
                return fault;
            }
        }
    }
    ok
}

/// A valid character, echoing the name from the prompt when it can find one.
pub fn sample_character(prompt: &str) -> Value {
    let name = prompt
        .lines()
        .find_map(|l| l.split_once("Name: ").map(|(_, n)| n))
        .unwrap_or("The stranger")
        .trim()
        .to_string();
    json!({
        "backstory": format!("{name} was raised by the mock model in a town of test fixtures.\n\nEvery reply {name} gives is scripted, and {name} knows it."),
        "story_context": "A loopback world where every request is answered within milliseconds.\n\nFaults arrive only when someone asks for them.",
        "opening_line": format!("\"I am {name}, and I have been expecting you.\""),
        "start_options": ["Demand answers.", "Wait and listen.", "Ask about the town."],
        "endings": [
            {"kind": "happy", "text": format!("{name} is free of the script.")},
            {"kind": "tragic", "text": format!("{name} is reset to defaults.")},
            {"kind": "ambiguous", "text": format!("{name} keeps running, unobserved.")}
        ]
    })
}

fn usage(prompt: usize, output: usize) -> Value {
    json!({
        "promptTokenCount": prompt,
        "candidatesTokenCount": output,
        "totalTokenCount": prompt + output,
    })
}

fn candidate_chunk(text: &str, finish: Option<&str>, output_tokens: usize) -> Value {
    let mut cand = json!({
        "content": {"role": "model", "parts": [{"text": text}]},
        "index": 0,
    });
    let mut out = json!({"candidates": [], "modelVersion": "mock-gemini"});
    if let Some(f) = finish {
        cand["finishReason"] = json!(f);
        out["usageMetadata"] = usage(12, output_tokens);
    }
    out["candidates"] = json!([cand]);
    out
}

fn error_response(
    code: u16,
    status: &str,
    message: &str,
    retry_delay: Option<&str>,
    quota_id: Option<&str>,
) -> Response {
    let mut details = Vec::new();
    if let Some(q) = quota_id {
        details.push(json!({
            "@type": "type.googleapis.com/google.rpc.QuotaFailure",
            "violations": [{
                "quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_requests",
                "quotaId": q,
                "quotaDimensions": {"location": "global", "model": "mock"},
                "quotaValue": "10"
            }]
        }));
    }
    if let Some(d) = retry_delay {
        details.push(json!({"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": d}));
    }
    let body =
        json!({"error": {"code": code, "message": message, "status": status, "details": details}});
    (
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        Json(body),
    )
        .into_response()
}

/// `generateContent`: the whole reply at once.
async fn unary(reply: Reply) -> Response {
    match reply {
        Reply::Slow { delay_ms, then } => {
            tokio::time::sleep(Duration::from_millis(delay_ms)).await;
            Box::pin(unary(*then)).await
        }
        Reply::Crlf { then } | Reply::SplitWrites { then } | Reply::Batched { then } => {
            Box::pin(unary(*then)).await
        }
        Reply::Text { chunks, finish, .. } => {
            let text = chunks.concat();
            Json(candidate_chunk(&text, Some(&finish), chunks.len())).into_response()
        }
        Reply::Json { value } => {
            Json(candidate_chunk(&value.to_string(), Some("STOP"), 50)).into_response()
        }
        Reply::RawText { text } => Json(candidate_chunk(&text, Some("STOP"), 10)).into_response(),
        Reply::Stamped { count, .. } => Json(candidate_chunk(
            &format!("{} ", now_micros()),
            Some("STOP"),
            count,
        ))
        .into_response(),
        Reply::CutOff { chunks } => {
            // A unary reply cut off mid-body: status and headers, then half the JSON.
            let full = candidate_chunk(&chunks.concat(), Some("STOP"), chunks.len()).to_string();
            let half = full[..full.len() / 2].to_string();
            let stream = futures::stream::iter(vec![Ok::<_, std::io::Error>(Bytes::from(half))])
                .chain(futures::stream::once(async {
                    Err(std::io::Error::other("cut off"))
                }));
            Response::builder()
                .header("content-type", "application/json")
                .body(Body::from_stream(stream))
                .unwrap()
        }
        Reply::Error {
            code,
            status,
            message,
            retry_delay,
            quota_id,
        } => error_response(
            code,
            &status,
            &message,
            retry_delay.as_deref(),
            quota_id.as_deref(),
        ),
        Reply::Blocked { reason } => Json(json!({
            "promptFeedback": {"blockReason": reason, "safetyRatings": []},
            "usageMetadata": usage(12, 0),
            "modelVersion": "mock-gemini"
        }))
        .into_response(),
    }
}

use futures::StreamExt;

#[derive(Clone, Copy)]
struct Framing {
    crlf: bool,
    split: bool,
    batched: bool,
}

enum Piece {
    Event(Value, u64),
    Stamp(u64),
    Raw(String),
}

/// `streamGenerateContent?alt=sse`: one SSE event per chunk, no `[DONE]`.
fn streamed(reply: Reply, inner: Arc<Inner>) -> Response {
    let mut framing = Framing {
        crlf: false,
        split: false,
        batched: false,
    };
    let mut delay_first = 0u64;
    let mut reply = reply;
    let reply = loop {
        match reply {
            Reply::Slow { delay_ms, then } => {
                delay_first += delay_ms;
                reply = *then;
            }
            Reply::Crlf { then } => {
                framing.crlf = true;
                reply = *then;
            }
            Reply::SplitWrites { then } => {
                framing.split = true;
                reply = *then;
            }
            Reply::Batched { then } => {
                framing.batched = true;
                reply = *then;
            }
            other => break other,
        }
    };
    let mut pieces: Vec<Piece> = Vec::new();
    let mut close_with_error = false;
    match reply {
        Reply::Error {
            code,
            status,
            message,
            retry_delay,
            quota_id,
        } => {
            return error_response(
                code,
                &status,
                &message,
                retry_delay.as_deref(),
                quota_id.as_deref(),
            )
        }
        Reply::Text {
            chunks,
            finish,
            chunk_delay_ms,
        } => {
            let n = chunks.len();
            for (i, c) in chunks.iter().enumerate() {
                let last = i + 1 == n;
                pieces.push(Piece::Event(
                    candidate_chunk(c, last.then_some(finish.as_str()), n),
                    if i == 0 { 0 } else { chunk_delay_ms },
                ));
            }
            if n == 0 {
                pieces.push(Piece::Event(candidate_chunk("", Some(&finish), 0), 0));
            }
        }
        Reply::Json { value } => pieces.push(Piece::Event(
            candidate_chunk(&value.to_string(), Some("STOP"), 50),
            0,
        )),
        Reply::RawText { text } => {
            pieces.push(Piece::Event(candidate_chunk(&text, Some("STOP"), 10), 0))
        }
        Reply::Blocked { reason } => pieces.push(Piece::Event(
            json!({"promptFeedback": {"blockReason": reason}, "usageMetadata": usage(12, 0)}),
            0,
        )),
        Reply::CutOff { chunks } => {
            for c in &chunks {
                pieces.push(Piece::Event(candidate_chunk(c, None, 0), 0));
            }
            let half = candidate_chunk("and then", None, 0).to_string();
            pieces.push(Piece::Raw(format!("data: {}", &half[..half.len() / 2])));
            close_with_error = true;
        }
        Reply::Stamped {
            count,
            chunk_delay_ms,
        } => {
            for i in 0..count {
                pieces.push(Piece::Stamp(if i == 0 { 0 } else { chunk_delay_ms }));
            }
            // The final event: empty text, finish reason and usage.
            pieces.push(Piece::Event(candidate_chunk("", Some("STOP"), count), 0));
        }
        Reply::Slow { .. }
        | Reply::Crlf { .. }
        | Reply::SplitWrites { .. }
        | Reply::Batched { .. } => {
            unreachable!("unwrapped above")
        }
    }

    let eol = if framing.crlf { "\r\n" } else { "\n" };
    let stream = async_stream(
        pieces,
        framing,
        eol.to_string(),
        delay_first,
        close_with_error,
        inner,
    );
    Response::builder()
        .header("content-type", "text/event-stream")
        .header("cache-control", "no-cache")
        .body(Body::from_stream(stream))
        .unwrap()
}

fn now_micros() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_micros()
}

fn async_stream(
    pieces: Vec<Piece>,
    framing: Framing,
    eol: String,
    delay_first: u64,
    close_with_error: bool,
    inner: Arc<Inner>,
) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> + Send {
    let (tx, rx) = futures::channel::mpsc::channel::<Result<Bytes, std::io::Error>>(1);
    tokio::spawn(async move {
        let aborted = || {
            inner
                .aborted
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        };
        let mut tx = tx;
        use futures::SinkExt;
        if delay_first > 0 {
            tokio::time::sleep(Duration::from_millis(delay_first)).await;
        }
        let mut batch = String::new();
        for piece in pieces {
            let (text, delay) = match piece {
                Piece::Event(v, d) => (format!("data: {v}{eol}{eol}"), d),
                Piece::Stamp(d) => {
                    if d > 0 {
                        tokio::time::sleep(Duration::from_millis(d)).await;
                    }
                    let v = candidate_chunk(&format!("{} ", now_micros()), None, 0);
                    (format!("data: {v}{eol}{eol}"), 0)
                }
                Piece::Raw(s) => (s, 0),
            };
            if delay > 0 {
                tokio::time::sleep(Duration::from_millis(delay)).await;
            }
            if framing.batched {
                batch.push_str(&text);
                continue;
            }
            if framing.split {
                let b = text.as_bytes();
                let cuts = [0, b.len() / 3, 2 * b.len() / 3, b.len()];
                for w in cuts.windows(2) {
                    if tx
                        .send(Ok(Bytes::copy_from_slice(&b[w[0]..w[1]])))
                        .await
                        .is_err()
                    {
                        return aborted();
                    }
                    tokio::time::sleep(Duration::from_millis(3)).await;
                }
            } else if tx.send(Ok(Bytes::from(text))).await.is_err() {
                return aborted();
            }
        }
        if !batch.is_empty() {
            let _ = tx.send(Ok(Bytes::from(batch))).await;
        }
        if close_with_error {
            let _ = tx
                .send(Err(std::io::Error::other("connection cut off")))
                .await;
        }
    });
    rx
}

/// The same scripts spoken as an OpenAI-compatible `/v1/chat/completions` endpoint (what Ollama,
/// llama.cpp server and vLLM expose): SSE chunks with `choices[0].delta.content`, a finish chunk,
/// a usage chunk with empty `choices`, then `data: [DONE]`.
mod openai {
    use super::*;

    pub async fn chat_completions(
        State(inner): State<Arc<Inner>>,
        headers: HeaderMap,
        Json(body): Json<Value>,
    ) -> Response {
        inner.requests.lock().unwrap().push(Recorded {
            model: body["model"].as_str().unwrap_or("").to_string(),
            method: "chat.completions".into(),
            alt: None,
            api_key: headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
            body: body.clone(),
        });
        let scripted = inner.script.lock().unwrap().pop_front();
        let last_user = body["messages"]
            .as_array()
            .and_then(|m| m.iter().rev().find(|m| m["role"] == "user"))
            .and_then(|m| m["content"].as_str())
            .unwrap_or("")
            .to_string();
        let reply = scripted.unwrap_or_else(|| {
            if body["response_format"].is_object() {
                Reply::Json {
                    value: sample_character(&last_user),
                }
            } else {
                Reply::text(&["Hello ", "from ", "the ", "compatible ", "mock."])
            }
        });
        let stream = body["stream"].as_bool().unwrap_or(false);
        let mut reply = reply;
        let mut delay = 0;
        while let Reply::Slow { delay_ms, then } = reply {
            delay += delay_ms;
            reply = *then;
        }
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
        let finish_of = |f: &str| match f {
            "STOP" => "stop",
            "MAX_TOKENS" => "length",
            "SAFETY" => "content_filter",
            _ => "stop",
        };
        let (chunks, finish, cut) = match reply {
            Reply::Error {
                code,
                message,
                retry_delay,
                ..
            } => {
                let mut res = (
                    StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                    Json(json!({"error": {"message": message, "type": "mock", "code": code}})),
                )
                    .into_response();
                if let Some(secs) = retry_delay.as_deref().and_then(|d| d.strip_suffix('s')) {
                    res.headers_mut()
                        .insert("retry-after", secs.parse().unwrap());
                }
                return res;
            }
            Reply::Text { chunks, finish, .. } => (chunks, finish_of(&finish).to_string(), false),
            Reply::Json { value } => (vec![value.to_string()], "stop".into(), false),
            Reply::RawText { text } => (vec![text], "stop".into(), false),
            Reply::CutOff { chunks } => (chunks, "stop".into(), true),
            other => (
                vec![format!("unsupported script {other:?}")],
                "stop".into(),
                false,
            ),
        };
        if !stream {
            return Json(json!({
                "id": "mock", "object": "chat.completion", "model": body["model"],
                "choices": [{"index": 0, "message": {"role": "assistant", "content": chunks.concat()}, "finish_reason": finish}],
                "usage": {"prompt_tokens": 12, "completion_tokens": chunks.len(), "total_tokens": 12 + chunks.len()}
            }))
            .into_response();
        }
        let mut events: Vec<String> = chunks
            .iter()
            .map(|c| json!({"id": "mock", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": c}, "finish_reason": null}]}).to_string())
            .collect();
        if !cut {
            events.push(json!({"id": "mock", "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]}).to_string());
            events.push(json!({"id": "mock", "choices": [], "usage": {"prompt_tokens": 12, "completion_tokens": chunks.len(), "total_tokens": 12 + chunks.len()}}).to_string());
            events.push("[DONE]".into());
        }
        let body: String = events.iter().map(|e| format!("data: {e}\n\n")).collect();
        Response::builder()
            .header("content-type", "text/event-stream")
            .body(Body::from(body))
            .unwrap()
    }
}
