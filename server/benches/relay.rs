//! Benchmark (not a test): the cost the app adds around the model.
//!
//! 1. Relay overhead: the mock model server (speaking Gemini) stamps each streamed token with its
//!    clock at the moment it writes it; the client (same process, same clock) records when the
//!    token arrives through the app's streaming server function. Reports p50/p99/max over every token.
//! 2. Generation overhead: round-trip time of `characters/generate` through the app, against the
//!    same request sent straight to the mock (the "model time"); the difference is what the app
//!    adds (auth, validation, prompt building, parsing, the usage record, HTTP).
//!
//! Run: `cargo bench -p server --bench relay` (SQLite in a temp folder, everything on loopback).

mod support;

use app::chat::{ChatEvent, ChatView, EventLines};
use futures::StreamExt;
use mock_llm::{MockLlm, Reply};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use support::{pct, report};

fn now_micros() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros()
}

#[tokio::main]
async fn main() {
    let mock = MockLlm::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut env = support::base_env(
        &format!("sqlite://{}/bench.db", dir.path().display()),
        &dir.path().join("data"),
    );
    support::gemini_env(&mut env, &mock);
    let base = support::start_in_process(&env).await;
    let (client, _) = support::signed_in(&base).await;
    let post_form = |path: &str, form: Vec<(&str, String)>| {
        client
            .post(format!("{base}/api/{path}"))
            .header("accept", "application/json")
            .form(&form)
            .send()
    };
    let draft = support::draft();
    let generate = || {
        client
            .post(format!("{base}/api/characters/generate"))
            .json(&serde_json::json!({"draft": draft, "variation": 0}))
            .send()
    };

    // Warm up, then generation round trips through the app and straight to the mock.
    for _ in 0..20 {
        generate().await.unwrap().bytes().await.unwrap();
    }
    let n = 300;
    let mut through_app = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        let res = generate().await.unwrap();
        assert!(res.status().is_success());
        res.bytes().await.unwrap();
        through_app.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let direct_body = mock.requests().last().unwrap().body.clone();
    let direct_url = format!(
        "{}/models/gemini-2.5-flash:generateContent",
        mock.base_url()
    );
    let mut direct = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        let res = client
            .post(&direct_url)
            .header("x-goog-api-key", "bench")
            .json(&direct_body)
            .send()
            .await
            .unwrap();
        res.bytes().await.unwrap();
        direct.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    report(
        "generate_character through the app (ms)",
        through_app.clone(),
    );
    report("same request straight to the mock (ms)", direct.clone());
    through_app.sort_by(|a, b| a.partial_cmp(b).unwrap());
    direct.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!(
        "app overhead per generation (p50 difference): {:.3}ms",
        pct(&through_app, 0.5) - pct(&direct, 0.5)
    );

    // Relay: stamped tokens through the streaming chat.
    let id = support::save_character(&client, &base, "Bench").await;
    let view: ChatView = post_form("chat/open", vec![("character_id", id)])
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut lat = Vec::new();
    for round in 0..20 {
        mock.push(Reply::Stamped {
            count: 100,
            chunk_delay_ms: 5,
        });
        let res = post_form(
            "chat/send",
            vec![
                ("session_id", view.session_id.clone()),
                ("text", format!("round {round}")),
            ],
        )
        .await
        .unwrap();
        let mut body = res.bytes_stream();
        let mut lines = EventLines::default();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.unwrap();
            let arrived = now_micros();
            for ev in lines.push(std::str::from_utf8(&chunk).unwrap()) {
                if let Ok(ChatEvent::Delta { text }) = ev {
                    if round > 0 {
                        let sent: u128 = text.trim().parse().unwrap();
                        lat.push((arrived - sent) as f64 / 1000.0);
                    }
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    report("relay latency mock→app→client per token (ms)", lat);
}
