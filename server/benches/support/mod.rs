//! What the benchmarks share: a server on a loopback port (in process, or the release binary as a
//! child process for the load benchmark, whose memory and CPU are its own), a signed-in client,
//! a character draft, and percentiles. Each bench uses a part, hence `dead_code` allowed.

#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The workspace's `Leptos.toml`.
pub fn leptos_toml() -> String {
    format!("{}/../Leptos.toml", env!("CARGO_MANIFEST_DIR"))
}

/// The environment of a server on `database_url` with its data folder under `dir`.
pub fn base_env(database_url: &str, data_dir: &Path) -> HashMap<String, String> {
    HashMap::from([
        ("LEPTOS_TOML".into(), leptos_toml()),
        ("DATABASE_URL".into(), database_url.into()),
        ("DATA_DIR".into(), data_dir.display().to_string()),
        ("LLM_PROVIDER".into(), "offline".into()),
    ])
}

/// The variables that point the server at the mock model (Gemini's protocol).
pub fn gemini_env(env: &mut HashMap<String, String>, mock: &mock_llm::MockLlm) {
    env.insert("LLM_PROVIDER".into(), "gemini".into());
    env.insert("GEMINI_API_KEY".into(), "bench".into());
    env.insert("GEMINI_BASE_URL".into(), mock.base_url());
}

/// Runs `run(label, database URL, data folder)` on SQLite in a temporary folder, then on Postgres
/// when `TEST_POSTGRES_URL` is set: on a fresh database named after `name`, dropped afterwards.
pub async fn on_each_database<F, Fut>(name: &str, run: F)
where
    F: Fn(&'static str, String, PathBuf) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    use sqlx::Connection;
    let dir = tempfile::tempdir().unwrap();
    let sqlite = format!("sqlite://{}/bench.db", dir.path().display());
    // `PF_BENCH_ONLY=postgres` skips SQLite; `PF_BENCH_KEEP_DB=1` keeps the Postgres database
    // (named in the output) to look into afterwards.
    if std::env::var("PF_BENCH_ONLY").as_deref() != Ok("postgres") {
        run("SQLite", sqlite, dir.path().join("data-SQLite")).await;
    }
    match std::env::var("TEST_POSTGRES_URL") {
        Ok(admin_url) => {
            let db = format!("pf_bench_{name}_{}", std::process::id());
            let mut admin = sqlx::PgConnection::connect(&admin_url).await.unwrap();
            sqlx::query(&format!("CREATE DATABASE {db}"))
                .execute(&mut admin)
                .await
                .unwrap();
            let (base, _) = admin_url.rsplit_once('/').unwrap();
            run(
                "Postgres",
                format!("{base}/{db}"),
                dir.path().join("data-Postgres"),
            )
            .await;
            if std::env::var("PF_BENCH_KEEP_DB").is_ok() {
                println!("Postgres: kept the database {db}");
            } else {
                sqlx::query(&format!("DROP DATABASE {db} WITH (FORCE)"))
                    .execute(&mut admin)
                    .await
                    .unwrap();
            }
        }
        Err(_) => println!("Postgres: skipped (TEST_POSTGRES_URL is not set)"),
    }
}

/// Starts the server in this process on a free loopback port; returns its base URL.
pub async fn start_in_process(env: &HashMap<String, String>) -> String {
    let mut config = app::infra::config::Config::from_env(env).unwrap();
    config.leptos.site_addr = "127.0.0.1:0".parse().unwrap();
    let server = server::Application::build(config).await.unwrap();
    let base = format!("http://{}", server.addr());
    tokio::spawn(server.run());
    base
}

/// The id of the user `client` is signed in as.
pub async fn user_id(client: &reqwest::Client, base: &str) -> String {
    let me: serde_json::Value = client
        .post(format!("{base}/api/auth/me"))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    me["id"].as_str().unwrap().to_string()
}

/// A client with a cookie jar, signed in as the local user (loopback only).
pub async fn signed_in(base: &str) -> (reqwest::Client, std::sync::Arc<reqwest::cookie::Jar>) {
    let jar = std::sync::Arc::new(reqwest::cookie::Jar::default());
    let client = reqwest::Client::builder()
        .cookie_provider(jar.clone())
        .pool_max_idle_per_host(usize::MAX)
        .build()
        .unwrap();
    let res = client
        .post(format!("{base}/api/auth/local"))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success(), "local sign-in: {}", res.status());
    (client, jar)
}

/// A server function called with a form body; answers JSON.
pub fn post_form(
    client: &reqwest::Client,
    base: &str,
    path: &str,
    form: &[(&str, String)],
) -> reqwest::RequestBuilder {
    client
        .post(format!("{base}/api/{path}"))
        .header("accept", "application/json")
        .form(form)
}

/// A wizard draft with only the fields the user types.
pub fn draft() -> serde_json::Value {
    serde_json::json!({"name": "Bench", "traits": ["quick"], "age": "30", "gender": "other",
        "voice": "", "scenes": "10", "language": "English", "avatar": "", "backstory": "",
        "story_context": "", "opening_line": "", "start_options": [], "endings": []})
}

/// A complete draft, ready for `characters/save` without a model call.
pub fn complete_draft(name: &str) -> serde_json::Value {
    serde_json::json!({
        "name": name, "traits": ["quick"], "age": "30", "gender": "other", "voice": "",
        "scenes": "10", "language": "English", "avatar": "", "backstory": "b", "story_context": "c",
        "opening_line": "o", "start_options": ["1", "2", "3"],
        "endings": [{"kind": "a", "text": "a"}, {"kind": "b", "text": "b"}, {"kind": "c", "text": "c"}]})
}

/// Saves a character through the app; returns its id.
pub async fn save_character(client: &reqwest::Client, base: &str, name: &str) -> String {
    let res = client
        .post(format!("{base}/api/characters/save"))
        .json(&serde_json::json!({ "draft": complete_draft(name) }))
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success(), "save: {}", res.status());
    res.json().await.unwrap()
}

/// The value at quantile `p` of sorted samples.
pub fn pct(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

/// Prints n, p50, p99 and max of samples in milliseconds.
pub fn report(label: &str, mut v: Vec<f64>) {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!(
        "  {label:<44} n={} p50={:.3}ms p99={:.3}ms max={:.3}ms",
        v.len(),
        pct(&v, 0.5),
        pct(&v, 0.99),
        v[v.len() - 1]
    );
}

/// The target directory (`CARGO_TARGET_DIR`, else the workspace's `target/`).
pub fn target_dir() -> PathBuf {
    std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(format!("{}/../target", env!("CARGO_MANIFEST_DIR"))))
}
