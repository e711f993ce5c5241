//! Google's Gemini REST API (`v1beta`): `models/{model}:generateContent` and
//! `models/{model}:streamGenerateContent?alt=sse`, `x-goog-api-key`, `GenerateContentResponse`
//! JSON, SSE events without a `[DONE]`, errors as `{"error": {code, message, status, details}}`.

use crate::script::{now_micros, sample_for, stop, with_marker, Reply};
use crate::{Inner, Recorded};
use axum::{
    body::{Body, Bytes},
    extract::{Path, Query, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use futures::StreamExt;
use serde_json::{json, Value};
use std::{collections::HashMap, sync::Arc, time::Duration};

/// `POST /v1beta/models/{model}:{method}`.
pub(crate) async fn generate(
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
    let reply = scripted
        .unwrap_or_else(|| default_reply(&body))
        .for_schema(&body["generationConfig"]["responseJsonSchema"]);
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
            value: sample_for(
                &body["generationConfig"]["responseJsonSchema"],
                &body["contents"].to_string().replace("\\n", "\n"),
            ),
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
    with_marker(&text, ok)
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
        // Resolved against the request's schema before it gets here (`Reply::for_schema`).
        Reply::FillSchema { .. } => {
            error_response(500, "INTERNAL", "unresolved FillSchema", None, None)
        }
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
        Reply::FillSchema { .. } => {
            return error_response(500, "INTERNAL", "unresolved FillSchema", None, None)
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
        // Streamed structured output (a play scene) arrives in pieces, as from a real model.
        Reply::Json { value } => {
            let parts = crate::script::pieces(&value.to_string(), 12);
            let n = parts.len();
            for (i, p) in parts.iter().enumerate() {
                let last = i + 1 == n;
                pieces.push(Piece::Event(
                    candidate_chunk(p, last.then_some("STOP"), n),
                    if i == 0 { 0 } else { 8 },
                ));
            }
        }
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
