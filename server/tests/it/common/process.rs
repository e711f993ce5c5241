//! The real server binary as a child process, for what only a process can show: being killed
//! (SIGKILL) or asked to stop (SIGTERM) in the middle of a reply, and a new process taking over
//! the same database.
//!
//! Cargo builds `personaflux` for the integration tests of its package and names it in
//! `CARGO_BIN_EXE_personaflux`. The process gets only the variables given here (no inherited
//! environment, no `.env`: it runs in the test database's folder), listens on a free loopback port
//! and says which on stdout; everything it prints is kept for the test's failure message.

use super::{new_client, test_env, TestApp, TestDb};
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A running `personaflux` process and a browser talking to it.
pub struct ServerProcess {
    child: Child,
    output: Arc<Mutex<String>>,
    /// The process's address, its client (cookies) and the test's own pool on its database.
    pub app: TestApp,
}

impl ServerProcess {
    /// Starts the binary on `db` (its URL and data folder, as [`test_env`] sets them, plus
    /// `extra`) and waits until it listens. `client` is the browser to reach it with (pass the
    /// previous process's client to keep its cookies across a restart).
    pub async fn start(db: &TestDb, extra: &[(&str, &str)], client: reqwest::Client) -> Self {
        let mut env = test_env(db, extra);
        env.insert("LEPTOS_SITE_ADDR".into(), "127.0.0.1:0".into());
        env.entry("RUST_LOG".into())
            .or_insert_with(|| "info,sqlx=warn,tower_sessions=warn".into());
        let mut child = Command::new(env!("CARGO_BIN_EXE_personaflux"))
            .env_clear()
            .envs(&env)
            .current_dir(db.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the personaflux binary");
        let output = Arc::new(Mutex::new(String::new()));
        let (addr_tx, addr_rx) = std::sync::mpsc::channel::<String>();
        let stdout = child.stdout.take().expect("stdout");
        let out = output.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("PersonaFlux is running at ") {
                    let _ = addr_tx.send(url.trim().to_string());
                }
                let mut o = out.lock().unwrap_or_else(|e| e.into_inner());
                o.push_str(&line);
                o.push('\n');
            }
        });
        let mut stderr = child.stderr.take().expect("stderr");
        let out = output.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stderr.read(&mut buf) {
                if n == 0 {
                    break;
                }
                out.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        let base =
            tokio::task::spawn_blocking(move || addr_rx.recv_timeout(Duration::from_secs(60)))
                .await
                .unwrap()
                .unwrap_or_else(|_| {
                    panic!(
                        "the server process did not start:\n{}",
                        output.lock().unwrap()
                    )
                });
        let pool = app::infra::db::Db::connect(&db.url)
            .await
            .expect("the test's own pool on the process's database");
        let app = TestApp {
            base,
            client,
            db: pool,
            state: None,
            env,
            test_db: None,
            _shutdown: None,
        };
        Self { child, output, app }
    }

    /// [`ServerProcess::start`] with a new browser.
    pub async fn start_new(db: &TestDb, extra: &[(&str, &str)]) -> Self {
        Self::start(db, extra, new_client()).await
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the process printed so far.
    pub fn output(&self) -> String {
        self.output
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// SIGKILL: the process ends at once, with no chance to save anything.
    pub fn kill(&mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reap");
    }

    /// Sends `signal` (`"TERM"`, `"INT"`) to the process.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} failed");
    }

    /// Waits up to `limit` for the process to exit; its exit status.
    pub async fn exit_within(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the process did not exit within {limit:?}:\n{}",
                self.output()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
