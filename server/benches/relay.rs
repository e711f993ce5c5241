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

use app::chat::{ChatEvent, ChatView, EventLines};
use futures::StreamExt;
use mock_llm::{MockLlm, Reply};
use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

fn now_micros() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros()
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn report(label: &str, mut v: Vec<f64>, unit: &str) {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!(
        "{label}: n={} p50={:.3}{unit} p99={:.3}{unit} max={:.3}{unit}",
        v.len(),
        pct(&v, 0.5),
        pct(&v, 0.99),
        v[v.len() - 1]
    );
}

#[tokio::main]
async fn main() {
    let mock = MockLlm::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut env: HashMap<String, String> = HashMap::new();
    env.insert(
        "LEPTOS_TOML".into(),
        format!("{}/../Leptos.toml", env!("CARGO_MANIFEST_DIR")),
    );
    env.insert(
        "DATABASE_URL".into(),
        format!("sqlite://{}/bench.db", dir.path().display()),
    );
    env.insert(
        "DATA_DIR".into(),
        dir.path().join("data").display().to_string(),
    );
    env.insert("LLM_PROVIDER".into(), "gemini".into());
    env.insert("GEMINI_API_KEY".into(), "bench".into());
    env.insert("GEMINI_BASE_URL".into(), mock.base_url());
    let mut config = app::infra::config::Config::from_env(&env).unwrap();
    config.leptos.site_addr = "127.0.0.1:0".parse().unwrap();
    let server = server::Application::build(config).await.unwrap();
    let base = format!("http://{}", server.addr());
    tokio::spawn(server.run());

    let client = reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .unwrap();
    let post_form = |path: &str, form: Vec<(&str, String)>| {
        client
            .post(format!("{base}/api/{path}"))
            .header("accept", "application/json")
            .form(&form)
            .send()
    };
    post_form("auth/local", vec![]).await.unwrap();
    let draft = serde_json::json!({"name": "Bench", "traits": ["quick"], "age": "30", "gender": "other",
        "voice": "", "scenes": "10", "language": "English", "avatar": "", "backstory": "", "story_context": "",
        "opening_line": "", "start_options": [], "endings": []});
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
        "ms",
    );
    report(
        "same request straight to the mock (ms)",
        direct.clone(),
        "ms",
    );
    through_app.sort_by(|a, b| a.partial_cmp(b).unwrap());
    direct.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!(
        "app overhead per generation (p50 difference): {:.3}ms",
        pct(&through_app, 0.5) - pct(&direct, 0.5)
    );

    // Relay: stamped tokens through the streaming chat.
    let res = client.post(format!("{base}/api/characters/save")).json(&serde_json::json!({"draft": {
        "name": "Bench", "traits": ["quick"], "age": "30", "gender": "other", "voice": "", "scenes": "10",
        "language": "English", "avatar": "", "backstory": "b", "story_context": "c", "opening_line": "o",
        "start_options": ["1", "2", "3"], "endings": [{"kind": "a", "text": "a"}, {"kind": "b", "text": "b"}, {"kind": "c", "text": "c"}]}}))
        .send().await.unwrap();
    let id: String = res.json().await.unwrap();
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
    report("relay latency mock→app→client per token (ms)", lat, "ms");
}
