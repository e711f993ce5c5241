//! Security properties, numbered as in SECURITY.md: each test keeps one door shut.
//! (Tests that need a provider stand-in live with it: `oidc_faults.rs` for §6, `secondme.rs`
//! for §10.)

use crate::common::*;
use app::auth::{GetCurrentUser, GetSignInOptions, LocalSignIn};
use app::error::AppError;
use futures::StreamExt;
use std::time::Duration;

on_both_backends!(
    a_rebound_host_name_is_refused_before_any_handler,
    local_sign_in_refuses_forwarded_requests,
    origin_is_checked_against_the_public_url_not_the_host,
    anonymous_sign_in_starts_leave_no_lasting_sessions,
    an_active_session_slides_past_the_idle_window_but_not_its_lifetime,
    no_token_code_or_cookie_reaches_the_logs,
);

fn port(app: &TestApp) -> u16 {
    app.base.rsplit(':').next().unwrap().parse().unwrap()
}

async fn me(app: &TestApp) -> Option<app::auth::CurrentUser> {
    app.call(GetCurrentUser {}).await.unwrap()
}

// §1 DNS rebinding --------------------------------------------------------------------------

/// A page on `rb.example`, whose name the attacker points at 127.0.0.1, posts to the local
/// sign-in: the browser sends the attacker's name as `Host` and `Origin` and calls it same-origin.
async fn a_rebound_host_name_is_refused_before_any_handler(backend: Backend) {
    let app = spawn_app(backend).await;
    let port = port(&app);
    let rebound = format!("rb.example:{port}");
    let res = app
        .request(&app.client, LocalSignIn {})
        .header("host", &rebound)
        .header("origin", format!("http://{rebound}"))
        .header("sec-fetch-site", "same-origin")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 421, "the rebound request was answered");
    assert!(
        res.headers().get("set-cookie").is_none(),
        "no session for it"
    );
    assert_eq!(me(&app).await, None);
    assert_eq!(count(&app, "SELECT COUNT(*) FROM users").await, 0);
    // Every route, not only the sign-in: pages, health, static files.
    for path in ["/", "/signin", "/api/health", "/auth/github/start"] {
        let res = app
            .client
            .get(app.url(path))
            .header("host", &rebound)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 421, "{path}");
    }
    // The names the server is configured for answer.
    for host in [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        format!("[::1]:{port}"),
    ] {
        let res = app
            .client
            .get(app.url("/api/health"))
            .header("host", &host)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{host}");
    }
    // …and only with the port it listens on.
    let res = app
        .client
        .get(app.url("/api/health"))
        .header("host", "localhost")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 421);
}

/// A request that came through a proxy is not from this machine, whatever its `Host`.
async fn local_sign_in_refuses_forwarded_requests(backend: Backend) {
    let app = spawn_app(backend).await;
    for (name, value) in [
        ("forwarded", "for=203.0.113.7;proto=https"),
        ("x-forwarded-for", "203.0.113.7"),
        ("x-forwarded-host", "personaflux.example"),
        ("x-forwarded-proto", "https"),
        ("x-real-ip", "203.0.113.7"),
    ] {
        let res = app
            .request(&app.client, LocalSignIn {})
            .header(name, value)
            .send()
            .await
            .unwrap();
        match result::<()>(res).await {
            Err(AppError::Forbidden(msg)) => assert!(msg.contains("proxy"), "{msg}"),
            other => panic!("{name}: expected Forbidden, got {other:?}"),
        }
        assert_eq!(me(&app).await, None, "{name}");
        let res = app
            .request(&app.client, GetSignInOptions {})
            .header(name, value)
            .send()
            .await
            .unwrap();
        let options: app::auth::SignInOptions = result(res).await.unwrap();
        assert!(!options.local, "{name}: the page must not offer it");
        // The sign-in page's button is a plain form: its refusal comes back as a page that says why.
        let res = app
            .client
            .post(app.url(<LocalSignIn as leptos::server_fn::ServerFn>::PATH))
            .header("accept", "text/html,application/xhtml+xml")
            .header("content-type", "application/x-www-form-urlencoded")
            .header(name, value)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 302, "{name}");
        assert_eq!(location(&res), "/signin?error=local", "{name}");
        assert_eq!(me(&app).await, None, "{name}");
    }
    let page = app.html("/signin?error=local").await;
    assert!(
        page.contains(app::auth::flow_error_message("local")),
        "{page}"
    );
    assert_eq!(count(&app, "SELECT COUNT(*) FROM users").await, 0);
    // Without them it works.
    app.sign_in_local().await;
    assert!(me(&app).await.is_some());
}

/// Behind a proxy that rewrites `Host` to the listen address, the browser's `Origin` is the
/// public one: writes from it pass, writes from anywhere else do not.
async fn origin_is_checked_against_the_public_url_not_the_host(backend: Backend) {
    let app = spawn_app_with(
        backend,
        &[
            ("PUBLIC_URL", "https://personaflux.example"),
            ("COOKIE_SECURE", "false"),
        ],
        |_| {},
    )
    .await;
    let post = |origin: &str, host: &str| {
        app.request(&app.client, GetCurrentUser {})
            .header("origin", origin.to_string())
            .header("host", host.to_string())
            .header("sec-fetch-site", "same-origin")
            .send()
    };
    let direct = format!("127.0.0.1:{}", port(&app));
    // The proxy rewrites Host to the listen address, or keeps the public host.
    for host in [direct.as_str(), "personaflux.example"] {
        let res = post("https://personaflux.example", host).await.unwrap();
        assert_eq!(res.status(), 200, "{host}");
    }
    // Another origin is refused, even when Host says the same thing.
    for (origin, host) in [
        ("https://evil.example", direct.as_str()),
        ("http://personaflux.example", "personaflux.example"),
        (
            &format!("http://rb.example:{}", port(&app)),
            direct.as_str(),
        ),
    ] {
        let res = post(origin, host).await.unwrap();
        assert_eq!(res.status(), 403, "{origin} with Host {host}");
    }
    // And another host is not answered at all.
    let res = post("https://evil.example", "evil.example").await.unwrap();
    assert_eq!(res.status(), 421);
}

// §5 Unbounded growth -----------------------------------------------------------------------

/// Sessions whose expiry is more than `minutes` away.
async fn lasting_sessions(app: &TestApp, backend: Backend, minutes: u32) -> i64 {
    let sql = match backend {
        Backend::Sqlite => format!(
            "SELECT COUNT(*) FROM tower_sessions \
             WHERE datetime(expiry_date) > datetime('now', '+{minutes} minutes')"
        ),
        Backend::Postgres => format!(
            "SELECT COUNT(*) FROM tower_sessions.session \
             WHERE expiry_date > now() + interval '{minutes} minutes'"
        ),
    };
    count(app, &sql).await
}

async fn all_sessions(app: &TestApp, backend: Backend) -> i64 {
    count(
        app,
        match backend {
            Backend::Sqlite => "SELECT COUNT(*) FROM tower_sessions",
            Backend::Postgres => "SELECT COUNT(*) FROM tower_sessions.session",
        },
    )
    .await
}

/// An app with GitHub configured; nothing listens at its endpoints (starting a sign-in does not
/// call them).
async fn app_with_github(backend: Backend) -> TestApp {
    spawn_app_with(
        backend,
        &[
            ("GITHUB_CLIENT_ID", "gh-client"),
            ("GITHUB_CLIENT_SECRET", "gh-secret"),
            (
                "GITHUB_AUTH_URL",
                "http://127.0.0.1:9/login/oauth/authorize",
            ),
            (
                "GITHUB_TOKEN_URL",
                "http://127.0.0.1:9/login/oauth/access_token",
            ),
            ("GITHUB_API_URL", "http://127.0.0.1:9"),
        ],
        |_| {},
    )
    .await
}

/// Each anonymous `GET /auth/{provider}/start` keeps a pending sign-in in a session row; it must
/// not outlive the flow's ten minutes, or anyone can fill the table for two weeks at a time.
async fn anonymous_sign_in_starts_leave_no_lasting_sessions(backend: Backend) {
    let app = app_with_github(backend).await;
    // No cookie jar: every request is a new visitor.
    let anon = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let started = futures::stream::iter(0..1000)
        .map(|_| {
            let anon = anon.clone();
            let url = app.url("/auth/github/start");
            async move { anon.get(url).send().await.unwrap() }
        })
        .buffer_unordered(8)
        .filter(|res| {
            futures::future::ready(
                res.status().is_redirection() && location(res).starts_with("http://127.0.0.1:9/"),
            )
        })
        .count()
        .await;
    assert_eq!(started, 1000, "every start went to the provider");
    assert_eq!(all_sessions(&app, backend).await, 1000, "one row each");
    assert_eq!(
        lasting_sessions(&app, backend, 11).await,
        0,
        "pending sign-ins must expire with the flow"
    );

    // A failed callback leaves nothing behind either.
    let browser = app.another_browser();
    let res = browser
        .client
        .get(browser.url("/auth/github/start"))
        .send()
        .await
        .unwrap();
    assert!(res.status().is_redirection());
    let res = browser
        .client
        .get(browser.url("/auth/github/callback?code=x&state=forged"))
        .send()
        .await
        .unwrap();
    assert_eq!(location(&res), "/signin?error=state");
    assert_eq!(lasting_sessions(&app, backend, 11).await, 0);
    assert_eq!(all_sessions(&app, backend).await, 1000, "its row is gone");

    // A signed-in session still gets the full idle window.
    app.sign_in_local().await;
    assert_eq!(lasting_sessions(&app, backend, 11).await, 1);
}

// §7 Sliding idle expiry --------------------------------------------------------------------

/// Asks who is signed in with exactly `cookie`; returns the answer and whether the server
/// renewed the cookie.
async fn me_with(app: &TestApp, cookie: &str) -> (bool, bool) {
    let res = app
        .request(&new_client(), GetCurrentUser {})
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    let renewed = session_cookie(&res).is_some();
    let me: Option<app::auth::CurrentUser> = result(res).await.unwrap();
    (me.is_some(), renewed)
}

/// A user who keeps using the app stays signed in past the idle window (the expiry slides, at
/// most once per `SESSION_RENEW_SECS`), and is still signed out `SESSION_MAX_AGE_SECS` after
/// signing in.
async fn an_active_session_slides_past_the_idle_window_but_not_its_lifetime(backend: Backend) {
    let app = spawn_app_with(
        backend,
        &[
            ("SESSION_IDLE_SECS", "3"),
            ("SESSION_RENEW_SECS", "1"),
            ("SESSION_MAX_AGE_SECS", "9"),
        ],
        |_| {},
    )
    .await;
    let cookie = session_cookie(&app.send(LocalSignIn {}).await).unwrap();
    let signed_in = tokio::time::Instant::now();
    // Not renewed on every request: the sign-in itself was the last renewal.
    assert_eq!(me_with(&app, &cookie).await, (true, false));
    let mut renewals = 0;
    while signed_in.elapsed() < Duration::from_millis(7500) {
        let (ok, renewed) = me_with(&app, &cookie).await;
        assert!(ok, "signed out after {:?} of activity", signed_in.elapsed());
        renewals += renewed as u32;
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    // About one renewal a second, not one per request (about 18 requests).
    assert!((3..=9).contains(&renewals), "{renewals} renewals");
    tokio::time::sleep(Duration::from_millis(9300).saturating_sub(signed_in.elapsed())).await;
    assert!(
        !me_with(&app, &cookie).await.0,
        "the session outlived SESSION_MAX_AGE_SECS"
    );
}

// §8 Secrets in logs ------------------------------------------------------------------------

/// How the leaky provider's token endpoint fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Leak {
    /// 400 with a JSON error body that also carries the tokens.
    ErrorJson,
    /// 400 with a body that is not JSON and carries the tokens.
    NotJson,
    /// 200 with truncated JSON carrying the tokens.
    Malformed,
    /// 200 with JSON of the wrong shape carrying the tokens.
    WrongShape,
    /// The token exchange succeeds (the token is the marker); the next call fails with a body
    /// that repeats it.
    ApiFails,
}

struct Leaky {
    base: String,
    marker: String,
    leak: std::sync::Mutex<Leak>,
}

mod leaky {
    use super::{Leak, Leaky};
    use axum::{
        extract::{Query, State},
        http::StatusCode,
        response::{IntoResponse, Redirect, Response},
        Form, Json,
    };
    use std::collections::HashMap;
    use std::sync::Arc;

    pub async fn discovery(State(l): State<Arc<Leaky>>) -> Json<serde_json::Value> {
        let b = &l.base;
        Json(serde_json::json!({
            "issuer": b,
            "authorization_endpoint": format!("{b}/authorize"),
            "token_endpoint": format!("{b}/token"),
            "userinfo_endpoint": format!("{b}/userinfo"),
            "jwks_uri": format!("{b}/jwks"),
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
        }))
    }

    pub async fn jwks() -> Json<serde_json::Value> {
        Json(serde_json::json!({"keys": []}))
    }

    /// Approves at once, with a code that carries the marker.
    pub async fn authorize(
        State(l): State<Arc<Leaky>>,
        Query(q): Query<HashMap<String, String>>,
    ) -> Redirect {
        Redirect::to(&format!(
            "{}?code=code-{}&state={}",
            q["redirect_uri"], l.marker, q["state"]
        ))
    }

    fn json(status: StatusCode, body: String) -> Response {
        (status, [("content-type", "application/json")], body).into_response()
    }

    pub async fn token(
        State(l): State<Arc<Leaky>>,
        Form(f): Form<HashMap<String, String>>,
    ) -> Response {
        let m = &l.marker;
        let leak = *l.leak.lock().unwrap();
        let secondme = f.get("client_id").is_some_and(|c| c == "sm");
        match leak {
            Leak::ApiFails if secondme => json(
                StatusCode::OK,
                format!(
                    r#"{{"code":0,"data":{{"accessToken":"{m}","refreshToken":"{m}","expiresIn":7200}}}}"#
                ),
            ),
            Leak::ErrorJson => json(
                StatusCode::BAD_REQUEST,
                format!(
                    r#"{{"error":"invalid_grant","access_token":"{m}","refresh_token":"{m}","data":{{"accessToken":"{m}"}}}}"#
                ),
            ),
            Leak::NotJson => (
                StatusCode::BAD_REQUEST,
                format!("access_token={m}&refresh_token={m}"),
            )
                .into_response(),
            Leak::Malformed => json(
                StatusCode::OK,
                format!(r#"{{"access_token":"{m}","refresh_token":"{m}","token_type":"bea"#),
            ),
            Leak::WrongShape => json(
                StatusCode::OK,
                format!(
                    r#"{{"access_token":"{m}","refresh_token":"{m}","token_type":7,"expires_in":"{m}","id_token":"{m}","scope":7,"code":"{m}"}}"#
                ),
            ),
            Leak::ApiFails => json(
                StatusCode::OK,
                format!(r#"{{"access_token":"{m}","token_type":"bearer","refresh_token":"{m}"}}"#),
            ),
        }
    }

    /// GitHub's user API and SecondMe's user info: fail, quoting the token.
    pub async fn api(State(l): State<Arc<Leaky>>) -> Response {
        let m = &l.marker;
        json(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!(
                r#"{{"code":500,"message":"no","token":"{m}","data":{{"accessToken":"{m}"}}}}"#
            ),
        )
    }
}

async fn start_leaky() -> std::sync::Arc<Leaky> {
    use axum::routing::{get, post};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let leaky = std::sync::Arc::new(Leaky {
        base: format!("http://{}", listener.local_addr().unwrap()),
        marker: format!("SECRET-MARKER-{}", uuid::Uuid::new_v4().simple()),
        leak: std::sync::Mutex::new(Leak::ErrorJson),
    });
    let app = axum::Router::new()
        .route("/.well-known/openid-configuration", get(leaky::discovery))
        .route("/jwks", get(leaky::jwks))
        .route("/authorize", get(leaky::authorize))
        .route("/token", post(leaky::token))
        .route("/user", get(leaky::api))
        .route("/userinfo", get(leaky::api))
        .route("/shades", get(leaky::api))
        .with_state(leaky.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    leaky
}

/// Failed token exchanges with OpenID Connect, GitHub and SecondMe, whose responses carry the
/// tokens (and whose codes carry them too): the failure is logged, the secrets are not. The
/// session cookie does not reach the log either.
async fn no_token_code_or_cookie_reaches_the_logs(backend: Backend) {
    let leaky = start_leaky().await;
    let b = leaky.base.clone();
    let url = |p: &str| format!("{b}{p}");
    let (authorize, token, userinfo, shades) = (
        url("/authorize"),
        url("/token"),
        url("/userinfo"),
        url("/shades"),
    );
    let app = spawn_app_with(
        backend,
        &[
            ("OIDC_ISSUER", b.as_str()),
            ("OIDC_CLIENT_ID", "pf"),
            ("OIDC_CLIENT_SECRET", "pf-secret"),
            ("GITHUB_CLIENT_ID", "gh"),
            ("GITHUB_CLIENT_SECRET", "gh-secret"),
            ("GITHUB_AUTH_URL", authorize.as_str()),
            ("GITHUB_TOKEN_URL", token.as_str()),
            ("GITHUB_API_URL", b.as_str()),
            ("SECONDME_CLIENT_ID", "sm"),
            ("SECONDME_CLIENT_SECRET", "sm-secret"),
            ("SECONDME_AUTH_URL", authorize.as_str()),
            ("SECONDME_TOKEN_URL", token.as_str()),
            ("SECONDME_USERINFO_URL", userinfo.as_str()),
            ("SECONDME_SHADES_URL", shades.as_str()),
        ],
        |_| {},
    )
    .await;
    let mut cookies = Vec::new();
    let mut request_ids = Vec::new();
    for provider in ["oidc", "github", "secondme"] {
        for leak in [
            Leak::ErrorJson,
            Leak::NotJson,
            Leak::Malformed,
            Leak::WrongShape,
            Leak::ApiFails,
        ] {
            *leaky.leak.lock().unwrap() = leak;
            let res = app
                .client
                .get(app.url(&format!("/auth/{provider}/start")))
                .send()
                .await
                .unwrap();
            cookies.extend(session_cookie(&res));
            let res = app.client.get(location(&res)).send().await.unwrap();
            let callback = location(&res);
            assert!(callback.contains(&leaky.marker), "the code carries it");
            let request_id = uuid::Uuid::new_v4().to_string();
            let res = app
                .client
                .get(callback)
                .header("x-request-id", &request_id)
                .send()
                .await
                .unwrap();
            assert!(
                location(&res).starts_with("/signin?error="),
                "{provider} {leak:?}: {}",
                location(&res)
            );
            request_ids.push((provider, leak, request_id));
        }
    }
    assert_eq!(me(&app).await, None);
    let logs = captured_logs();
    // The capture works: each failure was logged, under its request id.
    for (provider, leak, id) in &request_ids {
        assert!(
            logs.lines()
                .any(|l| l.contains(id.as_str()) && l.contains("sign-in failed")),
            "{provider} {leak:?}: no log line for request {id}"
        );
    }
    let leaked: Vec<&str> = logs.lines().filter(|l| l.contains(&leaky.marker)).collect();
    assert!(leaked.is_empty(), "secrets in the log: {leaked:#?}");
    for cookie in &cookies {
        let value = cookie.trim_start_matches("pf_session=");
        assert!(!logs.contains(value), "a session cookie in the log");
    }
}

/// `DATABASE_URL`'s password is not in the error the server fails to start with.
#[tokio::test]
async fn a_database_url_password_never_shows_in_a_start_up_error() {
    let db = TestDb::new(Backend::Sqlite).await;
    let secret = format!("pw-{}", uuid::Uuid::new_v4().simple());
    for url in [
        format!("postgres://pf:{secret}@127.0.0.1:1/personaflux"),
        format!("postgres://pf:{secret}@127.0.0.1:notaport/personaflux"),
        format!("postgresql://pf:{secret}@[::1/personaflux"),
        format!("mysql://pf:{secret}@127.0.0.1/personaflux"),
        format!("pf:{secret}@127.0.0.1/personaflux"),
    ] {
        let env = test_env(&db, &[("DATABASE_URL", url.as_str())]);
        let err = match server::Application::build(config(&env)).await {
            Ok(_) => panic!("{url} started"),
            Err(e) => e,
        };
        for shown in [err.to_string(), format!("{err:?}")] {
            assert!(!shown.contains(&secret), "{shown}");
            assert!(shown.to_lowercase().contains("database"), "{shown}");
        }
    }
}

/// A client's `X-Request-Id` is kept only when it is a UUID; anything else is replaced.
#[tokio::test]
async fn client_request_ids_are_kept_only_when_they_are_uuids() {
    let app = spawn_app(Backend::Sqlite).await;
    let id_for = |sent: Option<&str>| {
        let mut req = app.client.get(app.url("/api/health"));
        if let Some(s) = sent {
            req = req.header("x-request-id", s);
        }
        async move {
            let res = req.send().await.unwrap();
            res.headers()["x-request-id"].to_str().unwrap().to_string()
        }
    };
    let uuid = uuid::Uuid::new_v4().to_string();
    assert_eq!(id_for(Some(&uuid)).await, uuid);
    for bad in [
        "not-a-uuid",
        "admin\" level=error msg=forged",
        "00000000000000000000000000000000",
        &format!("{{{uuid}}}"),
        &format!("{uuid} x"),
        "",
    ] {
        let got = id_for(Some(bad)).await;
        assert_ne!(got, bad);
        assert!(uuid::Uuid::try_parse(&got).is_ok(), "{got}");
    }
    let got = id_for(None).await;
    assert!(uuid::Uuid::try_parse(&got).is_ok(), "{got}");
}

// §10 Files on disk -------------------------------------------------------------------------

/// The SQLite database (and its WAL files), the data folder and the generated session key are
/// private to the server's user.
#[tokio::test]
async fn the_sqlite_database_and_the_data_folder_are_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let app = spawn_app(Backend::Sqlite).await;
    app.sign_in_local().await;
    let dir = app.data_dir().unwrap().to_path_buf();
    let mode = |p: &str| {
        std::fs::metadata(dir.join(p))
            .unwrap_or_else(|e| panic!("{p}: {e}"))
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode("data"), 0o700);
    assert_eq!(mode("data/session.key"), 0o600);
    for file in ["test.db", "test.db-wal", "test.db-shm"] {
        assert_eq!(mode(file), 0o600, "{file}");
    }
}
