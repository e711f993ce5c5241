//! Test support: a real server on a free loopback port with its own fresh database, SQLite (a file
//! in a temporary folder) or Postgres (a new database on the server named by `TEST_POSTGRES_URL`).
//!
//! Postgres tests fail, not skip, when `TEST_POSTGRES_URL` is unset: the README's test command
//! always provides one.

#![allow(dead_code)]

pub mod client;
pub mod process;
pub mod standins;
#[allow(unused_imports)]
pub use client::*;

use app::infra::config::Config;
use app::infra::db::Db;
use server::Application;
use std::collections::HashMap;
use std::sync::OnceLock;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Runs each listed `async fn name(backend: Backend)` once per backend, as `sqlite::name` and
/// `postgres::name`.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::common::Backend::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::common::Backend::Postgres).await
                }
            )*
        }
    };
}

/// A fresh, empty database; dropped (Postgres) or deleted (SQLite) with the value.
pub struct TestDb {
    pub url: String,
    pub dir: tempfile::TempDir,
    pg: Option<(String, String)>,
}

impl TestDb {
    pub async fn new(backend: Backend) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        match backend {
            Backend::Sqlite => Self {
                url: format!("sqlite://{}/test.db", dir.path().display()),
                dir,
                pg: None,
            },
            Backend::Postgres => {
                let admin = std::env::var("TEST_POSTGRES_URL").expect(
                    "TEST_POSTGRES_URL is not set: the Postgres half of the suite needs a server. \
                     Run the README's test command (scripts/test.sh), which starts one.",
                );
                Self::on_postgres(&admin).await
            }
        }
    }

    /// A new database on the Postgres server at `admin` (an admin URL).
    pub async fn on_postgres(admin: &str) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let admin = admin.to_string();
        let name = format!("pf_test_{}", uuid::Uuid::new_v4().simple());
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(&admin)
            .await
            .expect("connect to the test Postgres server");
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .expect("create test database");
        let url = with_database(&admin, &name);
        Self {
            url,
            dir,
            pg: Some((admin, name)),
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some((admin, name)) = self.pg.take() {
            // Best effort, on its own thread: the test's runtime may be shutting down.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                rt.block_on(async move {
                    use sqlx::Connection;
                    if let Ok(mut conn) = sqlx::PgConnection::connect(&admin).await {
                        let _ =
                            sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                                .execute(&mut conn)
                                .await;
                    }
                });
            })
            .join();
        }
    }
}

/// `postgres://user@host:port/old?x` with the database replaced by `name`.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let path_start = base[scheme_end..].find('/').map(|i| i + scheme_end);
    let host = match path_start {
        Some(i) => &base[..i],
        None => base,
    };
    match query {
        Some(q) => format!("{host}/{name}?{q}"),
        None => format!("{host}/{name}"),
    }
}

pub fn leptos_toml() -> String {
    format!("{}/../Leptos.toml", env!("CARGO_MANIFEST_DIR"))
}

/// The configuration a test server runs with: loopback port 0, its own data folder, a fast
/// offline provider. `extra` overrides or adds variables.
pub fn test_env(db: &TestDb, extra: &[(&str, &str)]) -> HashMap<String, String> {
    let mut env: HashMap<String, String> = HashMap::new();
    env.insert("LEPTOS_TOML".into(), leptos_toml());
    env.insert("DATABASE_URL".into(), db.url.clone());
    env.insert(
        "DATA_DIR".into(),
        db.dir.path().join("data").display().to_string(),
    );
    env.insert("OFFLINE_TOKEN_DELAY_MS".into(), "5".into());
    // Every test signs in from 127.0.0.1, many times a minute; `limits.rs` tests the limit itself.
    env.insert("LIMIT_SIGN_INS_PER_MINUTE".into(), "0".into());
    for (k, v) in extra {
        env.insert(k.to_string(), v.to_string());
    }
    env
}

pub fn config(env: &HashMap<String, String>) -> Config {
    let mut config = Config::from_env(env).expect("test config");
    config.leptos.site_addr = "127.0.0.1:0".parse().unwrap();
    config
}

/// Every log line the test servers wrote, in the server's own text format and filter; also on
/// stdout when `TEST_LOG` is set. One global subscriber for the whole binary, because the servers'
/// spawned tasks log outside any test's thread-local subscriber: a test finds its own lines by a
/// marker it chose (a request id, a secret it planted).
static CAPTURED_LOGS: std::sync::Mutex<String> = std::sync::Mutex::new(String::new());

struct LogCapture;

impl std::io::Write for LogCapture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        CAPTURED_LOGS
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push_str(&String::from_utf8_lossy(buf));
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The log lines captured so far.
pub fn captured_logs() -> String {
    CAPTURED_LOGS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
}

pub fn init_logs() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        use app::infra::config::LogFormat;
        use server::telemetry::{filter, layer};
        use tracing_subscriber::prelude::*;
        let stdout = std::env::var("TEST_LOG")
            .is_ok()
            .then(|| layer(LogFormat::Text, std::io::stdout, false));
        let _ = tracing_subscriber::registry()
            .with(filter())
            .with(layer(LogFormat::Text, || LogCapture, false))
            .with(stdout)
            .try_init();
    });
}

/// A running server and a cookie-keeping client that does not follow redirects.
pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub db: Db,
    /// The server's state (its services), for tests that call a service directly.
    pub state: Option<app::infra::AppState>,
    /// The environment it was configured from (for [`TestApp::second_server`]).
    pub env: HashMap<String, String>,
    test_db: Option<TestDb>,
    _shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, &[], |_| {}).await
}

pub async fn spawn_app_with(
    backend: Backend,
    extra: &[(&str, &str)],
    adjust: impl FnOnce(&mut Config),
) -> TestApp {
    init_logs();
    let test_db = TestDb::new(backend).await;
    let env = test_env(&test_db, extra);
    let mut app = start(env, adjust).await;
    app.test_db = Some(test_db);
    app
}

/// [`spawn_app_with`] on a database the test made itself.
pub async fn spawn_app_on(test_db: TestDb, extra: &[(&str, &str)]) -> TestApp {
    init_logs();
    let env = test_env(&test_db, extra);
    let mut app = start(env, |_| {}).await;
    app.test_db = Some(test_db);
    app
}

/// Builds and serves an application configured from `env`.
async fn start(env: HashMap<String, String>, adjust: impl FnOnce(&mut Config)) -> TestApp {
    let mut config = config(&env);
    adjust(&mut config);
    let mut app = serve(config, new_client()).await;
    app.env = env;
    app
}

/// Builds and starts a server with `config`; the returned app owns no database.
async fn serve(config: Config, client: reqwest::Client) -> TestApp {
    let app = Application::build(config).await.expect("server starts");
    let addr = app.addr();
    let db = app.state().db.clone();
    let state = app.state().clone();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(app.run_until(async move {
        let _ = rx.await;
    }));
    TestApp {
        base: format!("http://127.0.0.1:{}", addr.port()),
        client,
        db,
        state: Some(state),
        env: HashMap::new(),
        test_db: None,
        _shutdown: Some(tx),
    }
}

/// [`spawn_app_with`] for configuration made at run time: a stand-in's `env()`.
pub async fn spawn_app_env(backend: Backend, env: &[(&str, String)]) -> TestApp {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    spawn_app_with(backend, &env, |_| {}).await
}

/// The configuration that points the app at `mock`, speaking Gemini, with quick retries
/// (`max_attempts` calls in all) and a short timeout.
pub fn gemini_env(mock: &mock_llm::MockLlm, max_attempts: u32) -> Vec<(&'static str, String)> {
    vec![
        ("LLM_PROVIDER", "gemini".into()),
        ("GEMINI_API_KEY", "test-key".into()),
        ("GEMINI_BASE_URL", mock.base_url()),
        ("LLM_RETRY_BASE_MS", "10".into()),
        ("LLM_MAX_ATTEMPTS", max_attempts.to_string()),
        ("LLM_TIMEOUT_SECS", "3".into()),
    ]
}

/// The app on Gemini (the mock model on loopback, see [`gemini_env`]), signed in locally.
pub async fn app_with_gemini(backend: Backend, max_attempts: u32) -> (TestApp, mock_llm::MockLlm) {
    let mock = mock_llm::MockLlm::start().await;
    let app = spawn_app_env(backend, &gemini_env(&mock, max_attempts)).await;
    app.sign_in_local().await;
    (app, mock)
}

pub fn new_client() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        // A request that hangs fails its test, naming the URL, instead of stalling the run.
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .expect("client")
}

impl TestApp {
    /// The HTML of the page at `path`, as this app's browser gets it.
    pub async fn html(&self, path: &str) -> String {
        self.client
            .get(self.url(path))
            .header("accept", "text/html,application/xhtml+xml")
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"))
            .text()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }

    /// The same server seen from another browser (its own cookies). The original keeps the server
    /// and its database alive.
    pub fn another_browser(&self) -> TestApp {
        TestApp {
            base: self.base.clone(),
            client: new_client(),
            db: self.db.clone(),
            state: self.state.clone(),
            env: self.env.clone(),
            test_db: None,
            _shutdown: None,
        }
    }

    /// Another server on the same database and data folder (so the same session secret), as in a
    /// deployment of several servers sharing one database, with `extra` variables on top of this
    /// one's. Its client shares this client's cookies (cookies do not depend on the port), so the
    /// same browser is signed in on both. This app keeps the database alive.
    pub async fn second_server(&self, extra: &[(&str, &str)]) -> TestApp {
        let mut env = self.env.clone();
        for (k, v) in extra {
            env.insert(k.to_string(), v.to_string());
        }
        let mut other = serve(config(&env), self.client.clone()).await;
        other.env = env;
        other
    }

    pub fn data_dir(&self) -> Option<&std::path::Path> {
        self.test_db.as_ref().map(|t| t.dir.path())
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Signs in with the one-click local sign-in.
    pub async fn sign_in_local(&self) {
        let res = self.send(app::auth::LocalSignIn {}).await;
        assert!(
            res.status().is_success() || res.status().is_redirection(),
            "local sign-in failed: {}",
            res.status()
        );
    }
}

/// Decodes a server function's result: `Ok(T)` on success, the server's `AppError` otherwise.
pub async fn result<T: serde::de::DeserializeOwned>(
    res: reqwest::Response,
) -> Result<T, app::error::AppError> {
    let status = res.status();
    let body = res.text().await.expect("body");
    if status.is_success() {
        Ok(
            serde_json::from_str(&body)
                .unwrap_or_else(|e| panic!("bad success body {body:?}: {e}")),
        )
    } else {
        Err(serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("bad error body ({status}) {body:?}: {e}")))
    }
}

/// A draft that passes every check.
pub fn valid_draft(name: &str) -> serde_json::Value {
    serde_json::json!({
        "name": name,
        "traits": ["brave", "curious"],
        "age": "31",
        "gender": "female",
        "voice": "Aoede",
        "scenes": "10",
        "language": "English",
        "avatar": "tide",
        "backstory": "",
        "story_context": "",
        "opening_line": "",
        "start_options": [],
        "endings": []
    })
}

/// [`valid_draft`] as the typed draft the server functions take.
pub fn draft(name: &str) -> app::domain::CharacterDraft {
    serde_json::from_value(valid_draft(name)).expect("a valid draft decodes")
}

/// A draft with its story written (by the offline writer): one that saves.
pub fn full_draft(name: &str) -> app::domain::CharacterDraft {
    let draft = draft(name);
    let story: app::domain::GeneratedCharacter = serde_json::from_value(
        app::infra::llm::offline::write_character(&draft.parse_seed().unwrap(), 0),
    )
    .unwrap();
    draft.with_story(&story)
}

/// Generates a character through the app and saves it; returns its id.
pub async fn save_character(app: &TestApp, name: &str) -> String {
    let draft = draft(name);
    let generated = app
        .call(app::characters::GenerateCharacter {
            draft: draft.clone(),
            variation: 1,
        })
        .await
        .unwrap();
    app.call(app::characters::SaveCharacter {
        draft: draft.with_story(&generated.story),
        import: None,
    })
    .await
    .unwrap()
}

/// Opens (or reopens, as a reload does) the chat with a character.
pub async fn open_chat(app: &TestApp, character_id: &str) -> app::chat::ChatView {
    app.call(app::chat::OpenChat {
        character_id: character_id.into(),
    })
    .await
    .unwrap()
}

/// Sends a message and collects the reply stream's events, and how many network chunks carried them.
pub async fn send_message(
    app: &TestApp,
    session_id: &str,
    text: &str,
) -> (Vec<app::chat::ChatEvent>, usize) {
    let mut reply = app
        .stream(app::chat::SendMessage {
            session_id: session_id.into(),
            text: text.into(),
            after: None,
        })
        .await;
    let events = reply.rest().await;
    (events, reply.chunks)
}

/// The reply text carried by a stream's events.
pub fn deltas(events: &[app::chat::ChatEvent]) -> String {
    events
        .iter()
        .filter_map(|e| match e {
            app::chat::ChatEvent::Delta { text } => Some(text.as_str()),
            _ => None,
        })
        .collect()
}

/// A `SELECT COUNT(*) …` on the app's database.
pub async fn count(app: &TestApp, sql: &str) -> i64 {
    app::with_pool!(&app.db, pool => {
        let n: i64 = sqlx::query_scalar(sql).fetch_one(pool).await.unwrap();
        n
    })
}

/// The `name=value` of the session cookie a response sets, if it sets one.
pub fn session_cookie(res: &reqwest::Response) -> Option<String> {
    res.headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_string())
        .find(|c| c.starts_with("pf_session="))
}

/// The session cookie a response must set.
pub fn session_cookie_of(res: &reqwest::Response) -> String {
    session_cookie(res).expect("a session cookie")
}

/// Waits, if need be, until at least `secs` seconds remain of the current clock minute, so a test
/// that counts calls against a per-minute limit (fixed one-minute windows) does not straddle two
/// windows and see its count reset halfway.
pub async fn within_one_rate_window(secs: u64) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    let into = now.as_secs() % 60;
    if 60 - into < secs {
        tokio::time::sleep(std::time::Duration::from_secs(60 - into + 1)).await;
    }
}

/// Where a redirect points.
pub fn location(res: &reqwest::Response) -> String {
    res.headers()
        .get("location")
        .unwrap_or_else(|| panic!("no redirect from {} ({})", res.url(), res.status()))
        .to_str()
        .unwrap()
        .to_string()
}

/// Signs in through `provider` when its authorize endpoint approves at once (the stand-ins):
/// start → provider → callback. Returns where the app sent the browser at the end.
pub async fn sign_in_via(app: &TestApp, provider: &str) -> String {
    let res = app
        .client
        .get(app.url(&format!("/auth/{provider}/start")))
        .send()
        .await
        .unwrap();
    let authorize = location(&res);
    assert!(
        authorize.starts_with("http") && authorize.contains("code_challenge_method=S256"),
        "start failed: {authorize}"
    );
    let res = app.client.get(&authorize).send().await.unwrap();
    let callback = location(&res);
    assert!(callback.starts_with(&app.base), "{callback}");
    location(&app.client.get(&callback).send().await.unwrap())
}

/// Signs `app`'s browser in as a user other than the local one: the local identity is pointed at
/// a new user before this browser's local sign-in.
pub async fn sign_in_as_someone_else(app: &TestApp) {
    let user = app::auth::store::upsert_identity(&app.db, "test", "someone", "Someone")
        .await
        .unwrap();
    app::with_pool!(&app.db, pool => {
        sqlx::query("UPDATE oauth_identities SET user_id = $1 WHERE provider = 'local'")
            .bind(&user.id)
            .execute(pool)
            .await
            .unwrap();
    });
    app.sign_in_local().await;
}
