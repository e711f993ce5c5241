//! The same scripts spoken as an OpenAI-compatible `/v1/chat/completions` endpoint (what Ollama,
//! llama.cpp server and vLLM expose): SSE chunks with `choices[0].delta.content`, a finish chunk,
//! a usage chunk with empty `choices`, then `data: [DONE]`.

use crate::script::{sample_for, Reply};
use crate::{Inner, Recorded};
use axum::{
    body::Body,
    extract::State,
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use serde_json::{json, Value};
use std::{sync::Arc, time::Duration};
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
                value: sample_for(
                    &body["response_format"]["json_schema"]["schema"],
                    &last_user,
                ),
            }
        } else {
            Reply::text(&["Hello ", "from ", "the ", "compatible ", "mock."])
        }
    });
    let stream = body["stream"].as_bool().unwrap_or(false);
    let mut reply = reply.for_schema(&body["response_format"]["json_schema"]["schema"]);
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
        Reply::Json { value } if stream => (
            crate::script::pieces(&value.to_string(), 12),
            "stop".into(),
            false,
        ),
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
        events.push(
            json!({"id": "mock", "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
                .to_string(),
        );
        events.push(json!({"id": "mock", "choices": [], "usage": {"prompt_tokens": 12, "completion_tokens": chunks.len(), "total_tokens": 12 + chunks.len()}}).to_string());
        events.push("[DONE]".into());
    }
    let body: String = events.iter().map(|e| format!("data: {e}\n\n")).collect();
    Response::builder()
        .header("content-type", "text/event-stream")
        .body(Body::from(body))
        .unwrap()
}
