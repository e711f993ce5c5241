//! Access control over every endpoint. The matrix below must name every registered server
//! function: a new endpoint without an entry fails `every_endpoint_is_in_the_matrix`.

mod common;

use app::error::AppError;
use common::*;

/// Each server function: its path, whether anonymous callers may use it, and a body to call it
/// with (form fields, or JSON when `json` is set).
struct Entry {
    path: &'static str,
    public: bool,
    json: Option<fn() -> serde_json::Value>,
    form: &'static [(&'static str, &'static str)],
}

const MATRIX: &[Entry] = &[
    Entry {
        path: "/api/auth/me",
        public: true,
        json: None,
        form: &[],
    },
    Entry {
        path: "/api/auth/options",
        public: true,
        json: None,
        form: &[],
    },
    Entry {
        path: "/api/auth/local",
        public: true,
        json: None,
        form: &[],
    },
    Entry {
        path: "/api/auth/signout",
        public: true,
        json: None,
        form: &[],
    },
    Entry {
        path: "/api/characters/list",
        public: false,
        json: None,
        form: &[],
    },
    Entry {
        path: "/api/characters/get",
        public: false,
        json: None,
        form: &[("id", "x")],
    },
    Entry {
        path: "/api/characters/generate",
        public: false,
        json: Some(|| serde_json::json!({"draft": valid_draft("A"), "variation": 0})),
        form: &[],
    },
    Entry {
        path: "/api/characters/save",
        public: false,
        json: Some(|| serde_json::json!({"draft": valid_draft("A")})),
        form: &[],
    },
    Entry {
        path: "/api/chat/open",
        public: false,
        json: None,
        form: &[("character_id", "x")],
    },
    Entry {
        path: "/api/chat/send",
        public: false,
        json: None,
        form: &[("session_id", "x"), ("text", "hi")],
    },
    Entry {
        path: "/api/chat/stop",
        public: false,
        json: None,
        form: &[("reply_id", "x")],
    },
];

#[test]
fn every_endpoint_is_in_the_matrix() {
    let mut registered: Vec<&str> = leptos::server_fn::axum::server_fn_paths()
        .map(|(p, _)| p)
        .collect();
    registered.sort();
    let mut listed: Vec<&str> = MATRIX.iter().map(|e| e.path).collect();
    listed.sort();
    assert_eq!(
        registered, listed,
        "every server function needs an access-control entry"
    );
}

on_both_backends!(
    anonymous_callers_are_refused_everywhere,
    cross_site_writes_are_refused
);

async fn call(app: &TestApp, e: &Entry, client: &reqwest::Client) -> reqwest::Response {
    let req = client
        .post(app.url(e.path))
        .header("accept", "application/json");
    match e.json {
        Some(body) => req.json(&body()),
        None => req.form(e.form),
    }
    .send()
    .await
    .unwrap()
}

async fn anonymous_callers_are_refused_everywhere(backend: Backend) {
    let app = spawn_app(backend).await;
    for e in MATRIX.iter().filter(|e| !e.public) {
        let res = call(&app, e, &new_client()).await;
        assert!(!res.status().is_success(), "{}: {}", e.path, res.status());
        let err: AppError = serde_json::from_str(&res.text().await.unwrap()).unwrap();
        assert_eq!(err, AppError::Unauthorized, "{}", e.path);
    }
    // Signed in, the same calls with ids that are not the caller's are "not found".
    app.sign_in_local().await;
    for e in MATRIX.iter().filter(|e| !e.public && !e.form.is_empty()) {
        let res = call(&app, e, &app.client).await;
        let err: AppError = serde_json::from_str(&res.text().await.unwrap()).unwrap();
        assert_eq!(err, AppError::NotFound, "{}", e.path);
    }
}

async fn cross_site_writes_are_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    app.sign_in_local().await;
    let e = MATRIX
        .iter()
        .find(|e| e.path == "/api/characters/save")
        .unwrap();
    for (name, value) in [
        ("origin", "http://evil.example"),
        ("origin", "null"),
        ("sec-fetch-site", "cross-site"),
        ("sec-fetch-site", "same-site"),
    ] {
        let res = app
            .client
            .post(app.url(e.path))
            .header(name, value)
            .json(&(e.json.unwrap())())
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 403, "{name}: {value}");
    }
    // The same request from the page's own origin gets through to validation.
    let origin = app.base.clone();
    let res = app
        .client
        .post(app.url(e.path))
        .header("origin", origin)
        .header("sec-fetch-site", "same-origin")
        .json(&(e.json.unwrap())())
        .send()
        .await
        .unwrap();
    let err: AppError = serde_json::from_str(&res.text().await.unwrap()).unwrap();
    assert!(matches!(err, AppError::Invalid(_)), "{err:?}");
    // Reading pages is never refused.
    let res = app
        .client
        .get(app.url("/dashboard"))
        .header("sec-fetch-site", "cross-site")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}
