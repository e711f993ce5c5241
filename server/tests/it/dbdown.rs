//! The database going away and coming back. On Postgres, the test runs its own throwaway cluster
//! (Debian's `postgresql` binaries, as the `postgres` user) so it can stop and start it in the
//! middle of a reply under load: requests meanwhile get a 503 with a "try again" sentence (never a
//! 500), health says the database is down, the reply's text keeps arriving and is saved whole once
//! the database is back, and the app heals by itself. On SQLite, many writers at once never
//! surface `database is locked`.

use crate::common::*;
use crate::reliability::{gemini_env, new_chat, start_reply, stored, with, words};
use app::characters::ListCharacters;
use app::chat::{ChatEvent, MessageStatus, OpenChat, SendMessage};
use app::error::AppError;
use mock_llm::MockLlm;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A Postgres cluster of the test's own, on a free loopback port, removed when dropped.
struct Cluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
}

impl Cluster {
    fn start_new() -> Self {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .ok()
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok())
            .map(|e| e.path().join("bin"))
            .filter(|b| b.join("initdb").exists())
            .max_by_key(|b| {
                b.parent()
                    .and_then(|v| v.file_name())
                    .and_then(|v| v.to_str())
                    .and_then(|v| v.parse::<u32>().ok())
                    .unwrap_or(0)
            })
            .expect(
                "Debian's postgresql binaries (/usr/lib/postgresql/*/bin/initdb) are needed to \
                 restart a database under load; the README's test command installs them",
            );
        let dir = tempfile::Builder::new()
            .prefix("pf-dbdown-")
            .tempdir()
            .expect("temp dir");
        if is_root() {
            run(Command::new("chown").arg("postgres:").arg(dir.path()));
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let cluster = Self { dir, bin, port };
        run(cluster.as_postgres("initdb").args([
            "-D",
            &cluster.data(),
            "-U",
            "postgres",
            "--auth=trust",
            "--no-sync",
            "-E",
            "UTF8",
        ]));
        cluster.start();
        cluster
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    fn as_postgres(&self, tool: &str) -> Command {
        let exe = self.bin.join(tool);
        if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(exe);
            c
        } else {
            Command::new(exe)
        }
    }

    fn start(&self) {
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("log").display().to_string();
        run(self.as_postgres("pg_ctl").args([
            "-D",
            &self.data(),
            "-l",
            &log,
            "-w",
            "-o",
            &opts,
            "start",
        ]));
    }

    /// A fast shutdown, as a restart or a failover does it: connections are cut at once.
    fn stop(&self) {
        run(self
            .as_postgres("pg_ctl")
            .args(["-D", &self.data(), "-m", "fast", "-w", "stop"]));
    }

    fn admin_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self
            .as_postgres("pg_ctl")
            .args(["-D", &self.data(), "-m", "immediate", "stop"])
            .output();
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

fn run(cmd: &mut Command) {
    let out = cmd.output().expect("run a Postgres tool");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

async fn health(app: &TestApp) -> u16 {
    match app.client.get(app.url("/api/health")).send().await {
        Ok(r) => r.status().as_u16(),
        Err(_) => 0,
    }
}

async fn wait_for_health(app: &TestApp, want: u16, limit: Duration) -> Duration {
    let started = Instant::now();
    loop {
        if health(app).await == want {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < limit,
            "health did not become {want} within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_postgres_restart_under_load_loses_no_reply_text_and_heals_by_itself() {
    let pg = Cluster::start_new();
    let db = TestDb::on_postgres(&pg.admin_url()).await;
    let mock = MockLlm::start().await;
    let env = gemini_env(&mock);
    let app = spawn_app_on(db, &with(&env, &[("LIMIT_MODEL_CALLS_PER_MINUTE", "0")])).await;
    let (character, session) = new_chat(&app).await;
    // Eight seconds of reply: it goes on while the database is down.
    mock.push(words(80, 100));
    let (mut reply, reply_id, first) = start_reply(&app, &session, "Tell me everything.").await;

    // Load: readers of the character list and the chat, all through the outage.
    let stop_load = Arc::new(AtomicBool::new(false));
    let mut load = Vec::new();
    for i in 0..4 {
        let (app, stop, character) = (app.another_browser(), stop_load.clone(), character.clone());
        app.sign_in_local().await;
        load.push(tokio::spawn(async move {
            let mut seen = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let res = if i % 2 == 0 {
                    app.send(ListCharacters {}).await
                } else {
                    app.send(OpenChat {
                        character_id: character.clone(),
                    })
                    .await
                };
                let status = res.status().as_u16();
                let retry_after = res.headers().get("retry-after").is_some();
                let body = res.text().await.unwrap_or_default();
                seen.push((status, retry_after, body));
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            seen
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    pg.stop();
    let down_after = wait_for_health(&app, 503, Duration::from_secs(15)).await;
    // A request made now is told to try again, with the user's sentence and a Retry-After.
    let res = app
        .send(OpenChat {
            character_id: character.clone(),
        })
        .await;
    let status = res.status().as_u16();
    let retry_after = res.headers().get("retry-after").is_some();
    let body = res.text().await.unwrap();
    assert_eq!(status, 503, "{body}");
    assert!(retry_after);
    let refusal: AppError = serde_json::from_str(&body).unwrap();
    assert_eq!(refusal, AppError::Unavailable);
    // A message sent now is refused before anything is taken from the user: nothing half-saved.
    let res = app
        .send(SendMessage {
            session_id: session.clone(),
            text: "are you there?".into(),
            after: None,
        })
        .await;
    assert!(
        [503, 409].contains(&res.status().as_u16()),
        "{}",
        res.status()
    );

    tokio::time::sleep(Duration::from_secs(2)).await;
    pg.start();
    let up_after = wait_for_health(&app, 200, Duration::from_secs(30)).await;
    stop_load.store(true, Ordering::Relaxed);
    let mut statuses = Vec::new();
    for task in load {
        statuses.extend(task.await.unwrap());
    }

    // The reply went on through the outage and is saved whole.
    let events = reply.rest().await;
    assert_eq!(
        events.last(),
        Some(&ChatEvent::Finished {
            status: MessageStatus::Complete
        }),
        "{events:?}"
    );
    let expected: String = (0..80).map(|i| format!("w{i} ")).collect();
    assert_eq!(format!("{first}{}", deltas(&events)), expected);
    assert_eq!(stored(&app, &reply_id).await, ("complete".into(), expected));

    // Under load, every answer was a success or a "try again": no 500, no internal text.
    let unavailable = serde_json::to_string(&AppError::Unavailable).unwrap();
    for (status, retry_after, body) in &statuses {
        match status {
            200 => {}
            503 => {
                assert!(retry_after, "503 without Retry-After");
                assert_eq!(body, &unavailable);
            }
            other => {
                let logs = captured_logs();
                let lines: Vec<&str> = logs
                    .lines()
                    .filter(|l| l.contains("internal error"))
                    .collect();
                panic!("status {other} under load: {body}\n{lines:#?}")
            }
        }
    }
    assert!(
        statuses.iter().any(|(s, ..)| *s == 503),
        "the load saw the outage"
    );
    assert!(statuses.iter().any(|(s, ..)| *s == 200));

    // And the app works again by itself: a new message gets a reply.
    mock.push(words(3, 1));
    let events = send_message(&app, &session, "still there?").await.0;
    assert_eq!(
        events.last(),
        Some(&ChatEvent::Finished {
            status: MessageStatus::Complete
        })
    );
    eprintln!(
        "health down {down_after:?} after the stop, up {up_after:?} after the start; {} requests under load",
        statuses.len()
    );
}

on_both_backends!(many_writers_at_once_never_see_a_locked_database);

/// Thirty-two browsers each save characters and send messages at once, through the app, on one
/// database file (SQLite's single writer) or Postgres: every request succeeds.
async fn many_writers_at_once_never_see_a_locked_database(backend: Backend) {
    let app = spawn_app_with(
        backend,
        &[
            ("LIMIT_MODEL_CALLS_PER_MINUTE", "0"),
            ("LIMIT_CONCURRENT_GENERATIONS", "0"),
            ("OFFLINE_TOKEN_DELAY_MS", "0"),
        ],
        |_| {},
    )
    .await;
    let mut tasks = Vec::new();
    for i in 0..32 {
        let app = app.another_browser();
        tasks.push(tokio::spawn(async move {
            app.sign_in_local().await;
            let mut failures = Vec::new();
            for j in 0..3 {
                // Generates (a model call, with its usage written) and saves.
                let id = save_character(&app, &format!("Writer {i} {j}")).await;
                let view = match app.call(OpenChat { character_id: id }).await {
                    Ok(v) => v,
                    Err(e) => {
                        failures.push(format!("open: {e:?}"));
                        continue;
                    }
                };
                let (events, _) = send_message(&app, &view.session_id, "hello").await;
                if !matches!(
                    events.last(),
                    Some(ChatEvent::Finished {
                        status: MessageStatus::Complete
                    })
                ) {
                    failures.push(format!("send: {events:?}"));
                }
            }
            failures
        }));
    }
    let mut failures = Vec::new();
    for t in tasks {
        failures.extend(t.await.unwrap());
    }
    assert!(failures.is_empty(), "{failures:#?}");
    assert!(
        !captured_logs().contains("database is locked"),
        "a writer met a locked database"
    );
    assert_eq!(count(&app, "SELECT COUNT(*) FROM characters").await, 96);
}
