//! Benchmark (not a test): load and soak of the release server, run by `scripts/load.sh`.
//!
//! Starts the release `personaflux` binary as a child process (so its RSS and CPU, read from
//! `/proc`, are its own) against the mock model in this process, on loopback, signs in as the local
//! user, and measures in one run:
//!
//! 1. **SSR throughput**: `wrk -c64` against the dashboard of a user with 50 characters, and against
//!    a bare axum handler in this process that runs the same query (`characters::store::page_for`,
//!    first page) on the same database and writes the same bytes (the dashboard fetched once), and
//!    a second that makes the dashboard's four queries (session, user, characters, twin summary);
//!    req/s and p99 of each, and their ratio. Both use mimalloc, as the server binary does.
//! 2. **Concurrent streams**: `STREAMS` chats (2,000) each sending a message whose reply the mock
//!    streams slowly (`STREAM_SECS`), all at once; how many are held open together, errors, and the
//!    server's RSS and CPU while they are.
//! 3. **Soak** for `SOAK_SECS` (300): workers in a steady mix of dashboard and chat page views,
//!    sends read to the end, sends stopped after the first token, clients that disconnect mid-page
//!    and mid-reply; ops/s, RSS and CPU per window, and the panics in the server's log.
//!
//! Rate limits are off for the run (`LIMIT_*=0`): the point is the server's capacity, not the
//! per-user allowances. Configuration by environment: `PF_BIN`, `STREAMS`, `STREAM_SECS`,
//! `CONNS`, `WRK_SECS`, `SOAK_SECS`, `SOAK_WORKERS`, `WRK`, `LOAD_DATABASE_URL` (default: a SQLite
//! file in a temporary folder), `PHASES` (`ssr,streams,soak`).

mod support;

/// The same allocator as the server binary, so that the bare handler's figure is not lowered by a
/// slower malloc than the app's: the ratio compares the frameworks, not the allocators.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

use app::auth::UserId;
use app::chat::{ChatEvent, ChatView, EventLines, MessageStatus};
use app::infra::db::Db;
use futures::{stream, StreamExt};
use mock_llm::{MockLlm, Reply};
use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn var<T: std::str::FromStr>(key: &str, default: T) -> T {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The server process's resident memory and CPU time, from `/proc/<pid>`.
struct Proc {
    pid: u32,
    ticks_per_sec: f64,
}

#[derive(Clone, Copy)]
struct Sample {
    at: Instant,
    rss_mb: f64,
    cpu_secs: f64,
}

impl Proc {
    fn sample(&self) -> Sample {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid)).unwrap();
        let rss_kb: f64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid)).unwrap();
        // Fields after the command name (which may hold spaces) end with ')'.
        let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..]
            .split_whitespace()
            .collect();
        let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
        Sample {
            at: Instant::now(),
            rss_mb: rss_kb / 1024.0,
            cpu_secs: ticks / self.ticks_per_sec,
        }
    }
}

/// CPU use between two samples, in percent of one core.
fn cpu_pct(a: Sample, b: Sample) -> f64 {
    100.0 * (b.cpu_secs - a.cpu_secs) / (b.at - a.at).as_secs_f64().max(1e-9)
}

struct Server {
    child: Child,
    base: String,
    log: std::path::PathBuf,
    proc: Proc,
}

impl Server {
    async fn start(env: &HashMap<String, String>, dir: &std::path::Path) -> Self {
        let bin = std::env::var("PF_BIN").unwrap_or_else(|_| {
            support::target_dir()
                .join("release/personaflux")
                .display()
                .to_string()
        });
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = dir.join("server.log");
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new(&bin)
            .envs(env)
            .env("LEPTOS_SITE_ADDR", format!("127.0.0.1:{port}"))
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {bin}: {e} (build it: scripts/load.sh)"));
        let base = format!("http://127.0.0.1:{port}");
        let client = reqwest::Client::new();
        let start = Instant::now();
        loop {
            if let Ok(r) = client.get(format!("{base}/api/health")).send().await {
                if r.status().is_success() {
                    break;
                }
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "the server did not become healthy:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let ticks_per_sec = Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100.0);
        let pid = child.id();
        Server {
            child,
            base,
            log,
            proc: Proc { pid, ticks_per_sec },
        }
    }

    /// SIGTERM (a graceful shutdown), then waits.
    fn stop(mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        self.child.wait().unwrap()
    }

    /// Lines of the server's log containing `needle`.
    fn log_count(&self, needle: &str) -> usize {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains(needle))
            .count()
    }
}

/// One `wrk` run: requests per second and p99 latency in ms.
fn wrk(url: &str, cookie: &str, conns: usize, secs: u64) -> (f64, f64, String) {
    let bin = std::env::var("WRK").unwrap_or_else(|_| "wrk".into());
    let out = Command::new(&bin)
        .args([
            "-t2",
            &format!("-c{conns}"),
            &format!("-d{secs}s"),
            "--latency",
            "-H",
            &format!("Cookie: {cookie}"),
            "-H",
            "Accept: text/html",
            url,
        ])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {bin}: {e}"));
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let rps = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no Requests/sec in wrk's output:\n{text}"));
    let p99 = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("99%"))
        .map(|v| duration_ms(v.trim()))
        .unwrap_or_else(|| panic!("no 99% line in wrk's output:\n{text}"));
    (rps, p99, text)
}

/// wrk's `12.34ms`, `850.00us`, `1.20s`, in ms.
fn duration_ms(v: &str) -> f64 {
    let split = v.find(|c: char| c.is_ascii_alphabetic()).unwrap();
    let (n, unit) = v.split_at(split);
    let n: f64 = n.parse().unwrap();
    match unit {
        "us" => n / 1000.0,
        "ms" => n,
        "s" => n * 1000.0,
        "m" => n * 60_000.0,
        other => panic!("unit {other}"),
    }
}

#[tokio::main]
async fn main() {
    let phases = std::env::var("PHASES").unwrap_or_else(|_| "ssr,streams,soak".into());
    let mock = MockLlm::start().await;
    let dir = tempfile::tempdir().unwrap();
    let db_url = std::env::var("LOAD_DATABASE_URL")
        .unwrap_or_else(|_| format!("sqlite://{}/load.db", dir.path().display()));
    let mut env = support::base_env(&db_url, &dir.path().join("data"));
    support::gemini_env(&mut env, &mock);
    for (k, v) in [
        ("LIMIT_MODEL_CALLS_PER_MINUTE", "0"),
        ("LIMIT_CONCURRENT_GENERATIONS", "0"),
        ("LIMIT_DAILY_TOKENS", "0"),
        ("LIMIT_SIGN_INS_PER_MINUTE", "0"),
        ("LLM_TIMEOUT_SECS", "300"),
        ("LLM_IDLE_TIMEOUT_SECS", "120"),
        ("RUST_LOG", "warn"),
    ] {
        env.insert(k.into(), v.into());
    }
    let server = Server::start(&env, dir.path()).await;
    let base = server.base.clone();
    let (client, jar) = support::signed_in(&base).await;
    let cookie = {
        use reqwest::cookie::CookieStore;
        jar.cookies(&base.parse().unwrap())
            .unwrap()
            .to_str()
            .unwrap()
            .to_string()
    };
    let me: serde_json::Value = support::post_form(&client, &base, "auth/me", &[])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let owner = UserId(me["id"].as_str().unwrap().to_string());
    let db = Db::connect(&db_url).await.unwrap();
    let idle = server.proc.sample();
    println!(
        "server: pid {}, {}, database {}; rate limits off (LIMIT_*=0); idle RSS {:.1} MB",
        server.proc.pid,
        base,
        db_url.split(':').next().unwrap(),
        idle.rss_mb
    );

    // Characters 0..50 for the dashboard; the streams and the soak add their own.
    let _: Vec<String> = stream::iter(0..50)
        .map(|i| {
            let (client, base) = (client.clone(), base.clone());
            async move { support::save_character(&client, &base, &format!("Bench {i}")).await }
        })
        .buffered(8)
        .collect()
        .await;

    if phases.contains("ssr") {
        ssr(&server, &client, &db, &owner, &cookie).await;
    }
    if phases.contains("streams") {
        streams(&server, &client, &mock).await;
    }
    if phases.contains("soak") {
        soak(&server, &client).await;
    }

    let panics = server.log_count("panicked");
    let errors = server.log_count("ERROR");
    let end = server.proc.sample();
    let log = std::fs::read_to_string(&server.log).unwrap_or_default();
    for line in log.lines().filter(|l| l.contains("panicked")).take(5) {
        println!("  panic: {line}");
    }
    let status = server.stop();
    println!(
        "end: RSS {:.1} MB; server log: {panics} panics, {errors} ERROR lines; exit on SIGTERM: {status}",
        end.rss_mb
    );
    db.close().await;
}

/// 1. The dashboard through the app and through a bare axum handler, wrk at `CONNS` connections.
async fn ssr(server: &Server, client: &reqwest::Client, db: &Db, owner: &UserId, cookie: &str) {
    let conns: usize = var("CONNS", 64);
    let secs: u64 = var("WRK_SECS", 15);
    let url = format!("{}/dashboard", server.base);
    let res = client
        .get(&url)
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success(), "dashboard: {}", res.status());
    let bytes = res.bytes().await.unwrap();
    let html = String::from_utf8_lossy(&bytes);
    assert!(
        html.contains("Bench 49"),
        "the dashboard lists the characters"
    );

    // The bare handler: the same query on the same database, the same bytes, no framework.
    let state = Arc::new((db.clone(), owner.clone(), bytes.clone()));
    let bare =
        axum::Router::new()
            .route(
                "/dashboard",
                axum::routing::get(
                    |axum::extract::State(s): axum::extract::State<
                        Arc<(Db, UserId, bytes::Bytes)>,
                    >| async move {
                        let (list, _) = app::characters::store::page_for(
                            &s.0,
                            &s.1,
                            app::characters::store::After::Start,
                            app::characters::PAGE,
                        )
                        .await
                        .unwrap()
                        .unwrap();
                        assert_eq!(list.len() as i64, app::characters::PAGE);
                        (
                            [(axum::http::header::CONTENT_TYPE, "text/html; charset=utf-8")],
                            s.2.clone(),
                        )
                    },
                ),
            )
            .with_state(state);
    // The bare handler doing the dashboard's whole data work: the signed-in request's session
    // row (loaded and decoded by the same session store), its user, the first page of
    // characters and the twin summary — four queries, as the app makes — and the same bytes.
    let session_id: (String,) = app::with_pool!(db, pool => {
        sqlx::query_as(if matches!(db, Db::Sqlite(_)) {
            "SELECT id FROM tower_sessions ORDER BY expiry_date DESC LIMIT 1"
        } else {
            "SELECT id FROM tower_sessions.session ORDER BY expiry_date DESC LIMIT 1"
        })
        .fetch_one(pool)
        .await
        .unwrap()
    });
    let session_id: tower_sessions::session::Id = session_id.0.parse().unwrap();
    let store = app::infra::session::DbSessionStore::new(db).await.unwrap();
    let same = Arc::new((db.clone(), store, session_id, bytes.clone()));
    let bare = bare.merge(
        axum::Router::new()
            .route(
                "/dashboard-same-work",
                axum::routing::get(
                    |axum::extract::State(s): axum::extract::State<
                        Arc<(
                            Db,
                            app::infra::session::DbSessionStore,
                            tower_sessions::session::Id,
                            bytes::Bytes,
                        )>,
                    >| async move {
                        use tower_sessions::SessionStore;
                        let record = s.1.load(&s.2).await.unwrap().expect("the session");
                        let id: String =
                            serde_json::from_value(record.data["user_id"].clone()).unwrap();
                        let user = app::auth::store::find_user(&s.0, &id)
                            .await
                            .unwrap()
                            .unwrap();
                        let owner = UserId(user.id);
                        let (list, _) = app::characters::store::page_for(
                            &s.0,
                            &owner,
                            app::characters::store::After::Start,
                            app::characters::PAGE,
                        )
                        .await
                        .unwrap()
                        .unwrap();
                        assert_eq!(list.len() as i64, app::characters::PAGE);
                        let twin = app::twins::store::summary(&s.0, &owner).await.unwrap();
                        assert!(twin.is_none());
                        (
                            [(axum::http::header::CONTENT_TYPE, "text/html; charset=utf-8")],
                            s.3.clone(),
                        )
                    },
                ),
            )
            .with_state(same),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let bare_url = format!("http://{}/dashboard", listener.local_addr().unwrap());
    let same_url = format!("{bare_url}-same-work");
    tokio::spawn(async move { axum::serve(listener, bare).await });

    println!(
        "SSR: GET /dashboard ({} bytes, 50 characters, first page of {}), wrk -t2 -c{conns} -d{secs}s",
        bytes.len(),
        app::characters::PAGE
    );
    // Warm both up, then measure each in turn (wrk runs here, blocking a worker thread).
    let (u, c) = (url.clone(), cookie.to_string());
    tokio::task::spawn_blocking(move || wrk(&u, &c, conns, 3))
        .await
        .unwrap();
    let (u, c) = (bare_url.clone(), cookie.to_string());
    tokio::task::spawn_blocking(move || wrk(&u, &c, conns, 3))
        .await
        .unwrap();
    let before = server.proc.sample();
    let (u, c) = (url.clone(), cookie.to_string());
    let (app_rps, app_p99, app_out) = tokio::task::spawn_blocking(move || wrk(&u, &c, conns, secs))
        .await
        .unwrap();
    let after = server.proc.sample();
    let (u, c) = (bare_url.clone(), cookie.to_string());
    let (bare_rps, bare_p99, bare_out) =
        tokio::task::spawn_blocking(move || wrk(&u, &c, conns, secs))
            .await
            .unwrap();
    let (u, c) = (same_url.clone(), cookie.to_string());
    tokio::task::spawn_blocking(move || wrk(&u, &c, conns, 3))
        .await
        .unwrap();
    let (u, c) = (same_url.clone(), cookie.to_string());
    let (same_rps, same_p99, same_out) =
        tokio::task::spawn_blocking(move || wrk(&u, &c, conns, secs))
            .await
            .unwrap();
    for (label, out) in [
        ("app", &app_out),
        ("bare", &bare_out),
        ("same work", &same_out),
    ] {
        if let Some(l) = out
            .lines()
            .find(|l| l.contains("Non-2xx") || l.contains("Socket errors"))
        {
            println!("  {label}: wrk reports: {}", l.trim());
        }
    }
    println!(
        "  app (leptos SSR):  {app_rps:>9.0} req/s  p99 {app_p99:>7.2} ms  (server CPU {:.0}% of a core, RSS {:.1} MB)",
        cpu_pct(before, after),
        after.rss_mb
    );
    println!("  bare axum handler: {bare_rps:>9.0} req/s  p99 {bare_p99:>7.2} ms");
    println!(
        "  ratio app/bare: throughput {:.2} (target ≥ 0.5), p99 {:.2}x",
        app_rps / bare_rps,
        app_p99 / bare_p99
    );
    println!(
        "  bare handler, the dashboard's four queries (session, user, characters, twin): {same_rps:>9.0} req/s  p99 {same_p99:>7.2} ms"
    );
    println!(
        "  ratio app/same-work bare: throughput {:.2}, p99 {:.2}x",
        app_rps / same_rps,
        app_p99 / same_p99
    );
}

/// 2. `STREAMS` replies streaming at once, one per chat.
async fn streams(server: &Server, client: &reqwest::Client, mock: &MockLlm) {
    let n: usize = var("STREAMS", 2000);
    let reply_secs: u64 = var("STREAM_SECS", 60);
    let base = server.base.clone();
    let t = Instant::now();
    let sessions: Vec<String> = stream::iter(0..n)
        .map(|i| {
            let (client, base) = (client.clone(), base.clone());
            async move {
                let id = support::save_character(&client, &base, &format!("Stream {i}")).await;
                let view: ChatView =
                    support::post_form(&client, &base, "chat/open", &[("character_id", id)])
                        .send()
                        .await
                        .unwrap()
                        .json()
                        .await
                        .unwrap();
                view.session_id
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    println!(
        "streams: {n} chats made in {:.1}s; each reply streams a token every 500 ms for {reply_secs}s",
        t.elapsed().as_secs_f64()
    );
    for _ in 0..n {
        mock.push(Reply::Text {
            chunks: (0..reply_secs * 2).map(|i| format!("w{i} ")).collect(),
            finish: "STOP".into(),
            chunk_delay_ms: 500,
        });
    }
    let open = Arc::new(AtomicI64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let complete = Arc::new(AtomicU64::new(0));
    let before = server.proc.sample();
    let t = Instant::now();
    let tasks: Vec<_> = sessions
        .into_iter()
        .map(|session| {
            let (client, base) = (client.clone(), base.clone());
            let (open, errors, complete) = (open.clone(), errors.clone(), complete.clone());
            tokio::spawn(async move {
                let res = support::post_form(
                    &client,
                    &base,
                    "chat/send",
                    &[
                        ("session_id", session),
                        ("text", "Tell me a long story.".into()),
                    ],
                )
                .send()
                .await;
                let res = match res {
                    Ok(r) if r.status().is_success() => r,
                    Ok(r) => {
                        eprintln!("send: {}", r.status());
                        errors.fetch_add(1, Relaxed);
                        return;
                    }
                    Err(e) => {
                        eprintln!("send: {e}");
                        errors.fetch_add(1, Relaxed);
                        return;
                    }
                };
                open.fetch_add(1, Relaxed);
                let mut body = res.bytes_stream();
                let mut lines = EventLines::default();
                let mut finished = None;
                while let Some(chunk) = body.next().await {
                    let Ok(chunk) = chunk else { break };
                    for ev in lines.push(&String::from_utf8_lossy(&chunk)) {
                        match ev {
                            Ok(ChatEvent::Finished { status }) => finished = Some(status),
                            Ok(ChatEvent::Failed { .. }) | Err(_) => {
                                finished = Some(MessageStatus::Failed)
                            }
                            _ => {}
                        }
                    }
                }
                open.fetch_sub(1, Relaxed);
                if finished == Some(MessageStatus::Complete) {
                    complete.fetch_add(1, Relaxed);
                } else {
                    errors.fetch_add(1, Relaxed);
                }
            })
        })
        .collect();
    // Sample while they run.
    let mut peak_open = 0;
    let mut peak_rss: f64 = 0.0;
    let mut all_open_at: Option<Sample> = None;
    let mut held: Vec<(Sample, Sample)> = Vec::new();
    let mut last = before;
    let mut time_to_all = None;
    while !tasks.iter().all(|t| t.is_finished()) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let s = server.proc.sample();
        let now_open = open.load(Relaxed);
        peak_open = peak_open.max(now_open);
        peak_rss = peak_rss.max(s.rss_mb);
        if now_open as usize == n {
            time_to_all.get_or_insert(t.elapsed());
            all_open_at.get_or_insert(s);
            held.push((last, s));
        }
        last = s;
    }
    for task in tasks {
        task.await.unwrap();
    }
    let after = server.proc.sample();
    // Replies left in the queue by failed sends would otherwise go to the soak's.
    reqwest::Client::new()
        .post(format!("http://{}/mock/reset", mock.addr))
        .send()
        .await
        .unwrap();
    println!(
        "  streams open at once: peak {peak_open} of {n}{}; completed {}; errors {}",
        time_to_all
            .map(|d| format!(" (all open {:.1}s after the first send)", d.as_secs_f64()))
            .unwrap_or_default(),
        complete.load(Relaxed),
        errors.load(Relaxed)
    );
    if let (Some(first), Some(last)) = (held.first(), held.last()) {
        println!(
            "  while all {n} were open ({:.0}s): RSS {:.1}–{:.1} MB, CPU {:.0}% of a core",
            (last.1.at - first.0.at).as_secs_f64(),
            all_open_at.unwrap().rss_mb,
            last.1.rss_mb,
            cpu_pct(first.0, last.1)
        );
    }
    println!(
        "  peak RSS {peak_rss:.1} MB (target < 200 MB); CPU over the whole phase {:.0}% of a core; RSS after {:.1} MB",
        cpu_pct(before, after),
        after.rss_mb
    );
}

/// 3. A steady mix for `SOAK_SECS`.
async fn soak(server: &Server, client: &reqwest::Client) {
    let secs: u64 = var("SOAK_SECS", 300);
    let workers: usize = var("SOAK_WORKERS", 16);
    let base = server.base.clone();
    // Each worker: its own characters and chats (one reply at a time per chat). Sends go to its
    // first chat; a reply abandoned mid-way goes on for a few seconds, so those rotate over four.
    let mut chats = Vec::new();
    for w in 0..workers {
        let mut mine = Vec::new();
        for k in 0..5 {
            let id = support::save_character(client, &base, &format!("Soak {w}.{k}")).await;
            let view: ChatView =
                support::post_form(client, &base, "chat/open", &[("character_id", id.clone())])
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
            mine.push((id, view.session_id));
        }
        chats.push(mine);
    }
    let ops = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let busy = Arc::new(AtomicU64::new(0));
    let kinds: Arc<[AtomicU64; 7]> = Arc::new(Default::default());
    let deadline = Instant::now() + Duration::from_secs(secs);
    println!(
        "soak: {secs}s, {workers} workers, each cycling: dashboard ×3, chat page, send (read to the end), \
         send + Stop after the first token, disconnect mid-page, disconnect mid-reply"
    );
    let tasks: Vec<_> = chats
        .into_iter()
        .map(|mine| {
            let (client, base) = (client.clone(), base.clone());
            let (ops, errors, busy, kinds) =
                (ops.clone(), errors.clone(), busy.clone(), kinds.clone());
            tokio::spawn(async move {
                let mut step = 0usize;
                let mut ring = 0usize;
                while Instant::now() < deadline {
                    let kind = [0, 0, 0, 1, 2, 3, 4, 5][step % 8];
                    step += 1;
                    let ok = match kind {
                        0 => page(&client, &format!("{base}/dashboard")).await,
                        1 => page(&client, &format!("{base}/characters/{}", mine[0].0)).await,
                        2 => send(&client, &base, &mine[0].1, "Hello there.", Ending::Read).await,
                        3 => {
                            send(
                                &client,
                                &base,
                                &mine[0].1,
                                "[[mock:long]] Go on.",
                                Ending::Stop,
                            )
                            .await
                        }
                        4 => {
                            // Cancel the request somewhere between sending it and its last byte.
                            let wait = Duration::from_micros((step as u64 * 7919) % 4000);
                            let fut = client
                                .get(format!("{base}/dashboard"))
                                .header("accept", "text/html")
                                .send();
                            let _ = tokio::time::timeout(wait, async {
                                if let Ok(r) = fut.await {
                                    let _ = r.bytes().await;
                                }
                            })
                            .await;
                            Outcome::Ok
                        }
                        _ => {
                            ring += 1;
                            let chat = &mine[1 + ring % 4].1;
                            send(
                                &client,
                                &base,
                                chat,
                                "[[mock:long]] And then?",
                                Ending::Drop,
                            )
                            .await
                        }
                    };
                    kinds[kind].fetch_add(1, Relaxed);
                    match ok {
                        Outcome::Ok => {}
                        Outcome::Busy => {
                            busy.fetch_add(1, Relaxed);
                        }
                        Outcome::Error(e) => {
                            if errors.fetch_add(1, Relaxed) < 10 {
                                eprintln!("soak error: {e}");
                            }
                        }
                    }
                    ops.fetch_add(1, Relaxed);
                }
            })
        })
        .collect();
    let window = Duration::from_secs((secs / 10).clamp(1, 30));
    let start = server.proc.sample();
    let mut last = start;
    let mut last_ops = 0;
    let mut rows = Vec::new();
    println!(
        "  {:>6} {:>8} {:>8} {:>8}",
        "t (s)", "ops/s", "RSS MB", "CPU %"
    );
    while Instant::now() < deadline {
        tokio::time::sleep(
            window.min(
                deadline.saturating_duration_since(Instant::now()) + Duration::from_millis(10),
            ),
        )
        .await;
        let s = server.proc.sample();
        let n = ops.load(Relaxed);
        let rate = (n - last_ops) as f64 / (s.at - last.at).as_secs_f64();
        println!(
            "  {:>6.0} {:>8.0} {:>8.1} {:>8.0}",
            (s.at - start.at).as_secs_f64(),
            rate,
            s.rss_mb,
            cpu_pct(last, s)
        );
        rows.push((rate, s.rss_mb));
        last = s;
        last_ops = n;
    }
    for t in tasks {
        t.await.unwrap();
    }
    // Let the abandoned replies finish, then look at memory once more.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let settled = server.proc.sample();
    let k: Vec<u64> = kinds.iter().map(|a| a.load(Relaxed)).collect();
    println!(
        "  ops {} (dashboard {}, chat page {}, send {}, send+stop {}, cut mid-page {}, cut mid-reply {}); \
         errors {}; 409 busy {}",
        ops.load(Relaxed),
        k[0],
        k[1],
        k[2],
        k[3],
        k[4],
        k[5],
        errors.load(Relaxed),
        busy.load(Relaxed)
    );
    if rows.len() >= 2 {
        let (first, last) = (rows[0], rows[rows.len() - 1]);
        println!(
            "  first window {:.0} ops/s, RSS {:.1} MB → last window {:.0} ops/s ({:+.0}%), RSS {:.1} MB ({:+.1} MB); RSS after settling {:.1} MB",
            first.0,
            first.1,
            last.0,
            100.0 * (last.0 / first.0 - 1.0),
            last.1,
            last.1 - first.1,
            settled.rss_mb
        );
    }
    println!(
        "  panics in the server log so far: {}",
        server.log_count("panicked")
    );
}

enum Outcome {
    Ok,
    Busy,
    Error(String),
}

async fn page(client: &reqwest::Client, url: &str) -> Outcome {
    match client.get(url).header("accept", "text/html").send().await {
        Ok(r) if r.status().is_success() => match r.bytes().await {
            Ok(_) => Outcome::Ok,
            Err(e) => Outcome::Error(format!("{url}: {e}")),
        },
        Ok(r) => Outcome::Error(format!("{url}: {}", r.status())),
        Err(e) => Outcome::Error(format!("{url}: {e}")),
    }
}

#[derive(PartialEq)]
enum Ending {
    /// Read the reply to its end.
    Read,
    /// Stop it after the first token, then read to the end (it must end `stopped`).
    Stop,
    /// Drop the connection after the first token.
    Drop,
}

async fn send(
    client: &reqwest::Client,
    base: &str,
    session: &str,
    text: &str,
    ending: Ending,
) -> Outcome {
    let res = support::post_form(
        client,
        base,
        "chat/send",
        &[("session_id", session.to_string()), ("text", text.into())],
    )
    .send()
    .await;
    let res = match res {
        Ok(r) if r.status() == reqwest::StatusCode::CONFLICT => return Outcome::Busy,
        Ok(r) if r.status().is_success() => r,
        Ok(r) => return Outcome::Error(format!("send: {}", r.status())),
        Err(e) => return Outcome::Error(format!("send: {e}")),
    };
    let mut body = res.bytes_stream();
    let mut lines = EventLines::default();
    let mut reply_id = None;
    let mut stopped = false;
    while let Some(chunk) = body.next().await {
        let chunk = match chunk {
            Ok(c) => c,
            Err(e) => return Outcome::Error(format!("reply stream: {e}")),
        };
        for ev in lines.push(&String::from_utf8_lossy(&chunk)) {
            match ev {
                Ok(ChatEvent::Accepted { reply_id: id, .. }) => reply_id = Some(id),
                Ok(ChatEvent::Delta { .. }) if ending == Ending::Drop => return Outcome::Ok,
                Ok(ChatEvent::Delta { .. }) if ending == Ending::Stop && !stopped => {
                    stopped = true;
                    let id = reply_id.clone().unwrap_or_default();
                    match support::post_form(client, base, "chat/stop", &[("reply_id", id)])
                        .send()
                        .await
                    {
                        Ok(r) if r.status().is_success() => {}
                        Ok(r) => return Outcome::Error(format!("stop: {}", r.status())),
                        Err(e) => return Outcome::Error(format!("stop: {e}")),
                    }
                }
                Ok(ChatEvent::Finished { status }) => {
                    let want = match ending {
                        Ending::Stop => MessageStatus::Stopped,
                        _ => MessageStatus::Complete,
                    };
                    return if status == want {
                        Outcome::Ok
                    } else {
                        Outcome::Error(format!("reply ended {status:?}, wanted {want:?}"))
                    };
                }
                Ok(ChatEvent::Failed { message }) => {
                    return Outcome::Error(format!("reply failed: {message}"))
                }
                Err(e) => return Outcome::Error(format!("bad event: {e}")),
                _ => {}
            }
        }
    }
    Outcome::Error("reply stream ended without its last event".into())
}
