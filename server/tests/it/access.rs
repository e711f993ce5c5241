//! Access control over every endpoint. The matrix below must name every registered server
//! function: a new endpoint without an entry fails `every_endpoint_is_in_the_matrix`. Form values
//! `{character}`, `{session}` and `{reply}` are replaced by the ids of another user's data.
//! Pages are enumerated from the router itself: every page but the public ones sends an
//! anonymous visitor to sign in.

use crate::common::*;
use app::error::AppError;

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
        form: &[("id", "{character}")],
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
        form: &[("character_id", "{character}")],
    },
    Entry {
        path: "/api/chat/send",
        public: false,
        json: None,
        form: &[("session_id", "{session}"), ("text", "hi")],
    },
    Entry {
        path: "/api/chat/stop",
        public: false,
        json: None,
        form: &[("reply_id", "{reply}")],
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

/// Another user's character, chat session and reply.
struct Foreign {
    character: String,
    session: String,
    reply: String,
}

async fn call_with(
    app: &TestApp,
    e: &Entry,
    client: &reqwest::Client,
    ids: &Foreign,
) -> reqwest::Response {
    let req = client
        .post(app.url(e.path))
        .header("accept", "application/json");
    let form: Vec<(&str, String)> = e
        .form
        .iter()
        .map(|(k, v)| {
            let v = v
                .replace("{character}", &ids.character)
                .replace("{session}", &ids.session)
                .replace("{reply}", &ids.reply);
            (*k, v)
        })
        .collect();
    match e.json {
        Some(body) => req.json(&body()),
        None => req.form(&form),
    }
    .send()
    .await
    .unwrap()
}

/// Someone else's data, made through the store.
async fn someone_elses(app: &TestApp) -> Foreign {
    let other = app::auth::store::upsert_identity(&app.db, "test", "other", "Other")
        .await
        .unwrap();
    let owner = app::auth::UserId(other.id);
    let draft: app::domain::CharacterDraft = serde_json::from_value(valid_draft("Theirs")).unwrap();
    let story: app::domain::GeneratedCharacter = serde_json::from_value(
        app::infra::llm::offline::write_character(&draft.parse_seed().unwrap(), 0),
    )
    .unwrap();
    let spec = draft.with_story(&story).parse_spec().unwrap();
    let character = app::characters::store::insert(&app.db, &owner, &spec)
        .await
        .unwrap();
    let session = app::chat::store::open_session(&app.db, &owner, &character)
        .await
        .unwrap()
        .unwrap();
    let reply = app::chat::store::messages(&app.db, &session, None)
        .await
        .unwrap()[0]
        .id
        .clone();
    Foreign {
        character,
        session,
        reply,
    }
}

async fn anonymous_callers_are_refused_everywhere(backend: Backend) {
    let app = spawn_app(backend).await;
    let theirs = someone_elses(&app).await;
    for e in MATRIX.iter().filter(|e| !e.public) {
        let res = call_with(&app, e, &new_client(), &theirs).await;
        assert_eq!(res.status(), 401, "{}", e.path);
        let err: AppError = serde_json::from_str(&res.text().await.unwrap()).unwrap();
        assert_eq!(err, AppError::Unauthorized, "{}", e.path);
    }
    // Signed in, the same calls with another user's ids are "not found", like missing ones.
    app.sign_in_local().await;
    for e in MATRIX.iter().filter(|e| !e.public && !e.form.is_empty()) {
        for ids in [
            &theirs,
            &Foreign {
                character: "x".into(),
                session: "x".into(),
                reply: "x".into(),
            },
        ] {
            let res = call_with(&app, e, &app.client, ids).await;
            assert_eq!(res.status(), 404, "{}", e.path);
            let err: AppError = serde_json::from_str(&res.text().await.unwrap()).unwrap();
            assert_eq!(err, AppError::NotFound, "{}", e.path);
        }
    }
    // And their data is untouched: no message was added to their chat.
    assert_eq!(
        app::chat::store::messages(&app.db, &theirs.session, None)
            .await
            .unwrap()
            .len(),
        1
    );

    // Every page but the public ones sends an anonymous visitor to sign in.
    let anon = new_client();
    for route in leptos_axum::generate_route_list(app::App) {
        let path = route.path().replace(":id", &theirs.character);
        if PUBLIC_PAGES.contains(&route.path()) {
            continue;
        }
        let res = anon
            .get(app.url(&path))
            .header("accept", "text/html")
            .send()
            .await
            .unwrap();
        assert!(res.status().is_redirection(), "{path}: {}", res.status());
        assert_eq!(res.headers()["location"], "/signin", "{path}");
    }
}

/// Pages anyone may see.
const PUBLIC_PAGES: &[&str] = &["/", "/signin"];

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
    assert_eq!(res.status(), 422);
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
