//! Sign-in with SecondMe against a stand-in on loopback that answers like SecondMe: every response
//! wrapped as `{code: 0, data: …}`, short-lived access tokens, a refresh grant, and Shades.

use crate::common::*;
use axum::{
    extract::{Query, State},
    http::HeaderMap,
    response::{IntoResponse, Redirect, Response},
    routing::{get, post},
    Form, Json, Router,
};
use serde_json::json;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

#[derive(Default)]
struct SecondMe {
    base: String,
    codes: Mutex<HashMap<String, String>>,
    /// The access token currently valid; every refresh issues a new one.
    access: Mutex<String>,
    refreshes: Mutex<usize>,
    fail_user_info: Mutex<bool>,
    /// The `userId` user info answers with; `None` leaves the field out.
    user_id: Mutex<Option<serde_json::Value>>,
}

async fn authorize(
    State(sm): State<Arc<SecondMe>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    assert!(q["scope"].contains("user.info.shades"), "{q:?}");
    let code = format!("sm-{}", uuid::Uuid::new_v4().simple());
    sm.codes
        .lock()
        .unwrap()
        .insert(code.clone(), q["code_challenge"].clone());
    Redirect::to(&format!(
        "{}?code={code}&state={}",
        q["redirect_uri"], q["state"]
    ))
    .into_response()
}

async fn token(
    State(sm): State<Arc<SecondMe>>,
    Form(f): Form<HashMap<String, String>>,
) -> Json<serde_json::Value> {
    if f["client_secret"] != "sm-secret" {
        return Json(json!({"code": 401, "message": "invalid client"}));
    }
    match f["grant_type"].as_str() {
        "authorization_code" => {
            if sm.codes.lock().unwrap().remove(&f["code"]).is_none() {
                return Json(json!({"code": 400, "message": "invalid code"}));
            }
            *sm.access.lock().unwrap() = "at-1".into();
            Json(
                json!({"code": 0, "data": {"accessToken": "at-1", "refreshToken": "rt-1", "expiresIn": 7200,
                "scope": ["user.info", "user.info.shades", "chat"]}}),
            )
        }
        "refresh_token" => {
            assert_eq!(f["refresh_token"], "rt-1");
            let mut n = sm.refreshes.lock().unwrap();
            *n += 1;
            let at = format!("at-refreshed-{n}");
            *sm.access.lock().unwrap() = at.clone();
            Json(json!({"code": 0, "data": {"accessToken": at, "expiresIn": 7200}}))
        }
        _ => Json(json!({"code": 400, "message": "unsupported grant"})),
    }
}

fn authorized(sm: &SecondMe, headers: &HeaderMap) -> bool {
    headers.get("authorization").and_then(|v| v.to_str().ok())
        == Some(&format!("Bearer {}", sm.access.lock().unwrap()))
}

async fn user_info(State(sm): State<Arc<SecondMe>>, headers: HeaderMap) -> Json<serde_json::Value> {
    if !authorized(&sm, &headers) || *sm.fail_user_info.lock().unwrap() {
        return Json(json!({"code": 401, "message": "token expired"}));
    }
    let mut data = json!({"name": "Lin Wei", "email": "lin@second.example"});
    if let Some(id) = sm.user_id.lock().unwrap().clone() {
        data["userId"] = id;
    }
    Json(json!({"code": 0, "data": data}))
}

async fn shades(State(sm): State<Arc<SecondMe>>, headers: HeaderMap) -> Json<serde_json::Value> {
    if !authorized(&sm, &headers) {
        return Json(json!({"code": 401, "message": "token expired"}));
    }
    let n = *sm.refreshes.lock().unwrap();
    let mut list = vec![
        json!({"shadeName": "Night Owl", "shadeIcon": "🦉", "shadeDescription": "Thinks best after midnight.",
               "confidenceLevel": "HIGH", "sourceTopics": ["sleep", "coding"]}),
        json!({"shadeName": "Trail Runner", "shadeIcon": "🏃", "shadeDescription": "Weekends in the hills.",
               "confidenceLevel": 0.55}),
    ];
    if n > 0 {
        list.push(json!({"shadeName": "Tea Person", "shadeIcon": "🍵", "shadeDescription": "Oolong, mostly."}));
    }
    Json(json!({"code": 0, "data": {"shades": list}}))
}

async fn start() -> Arc<SecondMe> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sm = Arc::new(SecondMe {
        base: format!("http://{}", listener.local_addr().unwrap()),
        user_id: Mutex::new(Some(json!(90210))),
        ..Default::default()
    });
    let app = Router::new()
        .route("/oauth/authorize", get(authorize))
        .route("/oauth/token", post(token))
        .route("/api/user/info", get(user_info))
        .route("/api/user/shades", get(shades))
        .with_state(sm.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    sm
}

async fn app_with_secondme(backend: Backend, secret: &str) -> (TestApp, Arc<SecondMe>) {
    let sm = start().await;
    let url = |p: &str| format!("{}{p}", sm.base);
    let (auth, token, info, shades) = (
        url("/oauth/authorize"),
        url("/oauth/token"),
        url("/api/user/info"),
        url("/api/user/shades"),
    );
    let app = spawn_app_with(
        backend,
        &[
            ("SECONDME_CLIENT_ID", "sm-client"),
            ("SECONDME_CLIENT_SECRET", secret),
            ("SECONDME_AUTH_URL", auth.as_str()),
            ("SECONDME_TOKEN_URL", token.as_str()),
            ("SECONDME_USERINFO_URL", info.as_str()),
            ("SECONDME_SHADES_URL", shades.as_str()),
        ],
        |_| {},
    )
    .await;
    (app, sm)
}

async fn shade_names(app: &TestApp) -> Vec<(String, String, f64)> {
    app::with_pool!(&app.db, pool => {
        sqlx::query_as("SELECT name, icon, confidence FROM shades ORDER BY position").fetch_all(pool).await.unwrap()
    })
}

on_both_backends!(
    signing_in_imports_shades_and_tokens_are_refreshed_when_expired,
    a_wrapped_error_signs_nobody_in,
    a_user_without_an_id_is_refused,
    tokens_copied_to_another_identity_do_not_decrypt,
);

async fn signing_in_imports_shades_and_tokens_are_refreshed_when_expired(backend: Backend) {
    let (app, sm) = app_with_secondme(backend, "sm-secret").await;
    let options: app::auth::SignInOptions = result(app.call_form("auth/options", &[]).await)
        .await
        .unwrap();
    assert_eq!(
        options.providers,
        vec![("secondme".to_string(), "SecondMe".to_string())]
    );

    assert_eq!(sign_in_via(&app, "secondme").await, "/dashboard");
    let me: Option<app::auth::CurrentUser> =
        result(app.call_form("auth/me", &[]).await).await.unwrap();
    let me = me.unwrap();
    assert_eq!(me.display_name, "Lin Wei");
    assert_eq!(
        shade_names(&app).await,
        vec![
            ("Night Owl".to_string(), "🦉".to_string(), 0.9),
            ("Trail Runner".to_string(), "🏃".to_string(), 0.55)
        ]
    );
    let (subject, scopes): (String, Option<String>) = app::with_pool!(&app.db, pool => {
        sqlx::query_as("SELECT subject, scopes FROM oauth_identities WHERE provider = 'secondme'").fetch_one(pool).await.unwrap()
    });
    assert_eq!(subject, "90210");
    assert_eq!(scopes.as_deref(), Some("user.info user.info.shades chat"));

    // While the token is valid, no refresh.
    let me = app::auth::UserId(me.id);
    assert_eq!(import_shades(&app, &me).await, 2);
    assert_eq!(*sm.refreshes.lock().unwrap(), 0);

    // Expired: refreshed once, the new token used, the new token stored encrypted.
    app::with_pool!(&app.db, pool => {
        sqlx::query("UPDATE oauth_identities SET token_expires_at = 0 WHERE provider = 'secondme'")
            .execute(pool)
            .await
            .map(|_| ())
            .unwrap()
    });
    assert_eq!(import_shades(&app, &me).await, 3);
    assert_eq!(*sm.refreshes.lock().unwrap(), 1);
    assert_eq!(shade_names(&app).await.len(), 3);
    assert_eq!(import_shades(&app, &me).await, 3);
    assert_eq!(
        *sm.refreshes.lock().unwrap(),
        1,
        "the refreshed token is kept and reused"
    );
    assert_eq!(count(&app, "SELECT COUNT(*) FROM twins").await, 1);
}

async fn a_wrapped_error_signs_nobody_in(backend: Backend) {
    let (app, _sm) = app_with_secondme(backend, "wrong-secret").await;
    assert_eq!(
        sign_in_via(&app, "secondme").await,
        "/signin?error=provider"
    );
    let (app, sm) = app_with_secondme(backend, "sm-secret").await;
    *sm.fail_user_info.lock().unwrap() = true;
    assert_eq!(
        sign_in_via(&app, "secondme").await,
        "/signin?error=provider"
    );
    let me: Option<app::auth::CurrentUser> =
        result(app.call_form("auth/me", &[]).await).await.unwrap();
    assert_eq!(me, None);
    assert_eq!(count(&app, "SELECT COUNT(*) FROM users").await, 0);
}

/// Imports the user's Shades again, through the providers the server built.
async fn import_shades(app: &TestApp, user: &app::auth::UserId) -> usize {
    let providers = &app.state.as_ref().expect("the server's state").providers;
    app::twins::service::import_secondme_shades(providers, &app.db, user)
        .await
        .unwrap()
}

/// SecondMe users whose id is missing, `null` or empty would all share one account (subject
/// `"null"`, …): such a sign-in is refused (SECURITY.md §10).
async fn a_user_without_an_id_is_refused(backend: Backend) {
    let (app, sm) = app_with_secondme(backend, "sm-secret").await;
    for id in [
        None,
        Some(serde_json::Value::Null),
        Some(json!("")),
        Some(json!("  ")),
        Some(json!({})),
        Some(json!(true)),
    ] {
        *sm.user_id.lock().unwrap() = id.clone();
        assert_eq!(
            sign_in_via(&app, "secondme").await,
            "/signin?error=provider",
            "{id:?}"
        );
        let me: Option<app::auth::CurrentUser> =
            result(app.call_form("auth/me", &[]).await).await.unwrap();
        assert_eq!(me, None, "{id:?}");
    }
    assert_eq!(count(&app, "SELECT COUNT(*) FROM users").await, 0);
    // A real id still signs in.
    *sm.user_id.lock().unwrap() = Some(json!("u-1"));
    assert_eq!(sign_in_via(&app, "secondme").await, "/dashboard");
}

type EncTokens = (Option<Vec<u8>>, Option<Vec<u8>>);

async fn enc_tokens(app: &TestApp, subject: &str) -> EncTokens {
    app::with_pool!(&app.db, pool => {
        sqlx::query_as("SELECT access_token_enc, refresh_token_enc FROM oauth_identities WHERE provider = 'secondme' AND subject = $1")
            .bind(subject).fetch_one(pool).await.unwrap()
    })
}

async fn set_enc_tokens(app: &TestApp, subject: &str, (access, refresh): &EncTokens) {
    app::with_pool!(&app.db, pool => {
        sqlx::query("UPDATE oauth_identities SET access_token_enc = $1, refresh_token_enc = $2 WHERE provider = 'secondme' AND subject = $3")
            .bind(access).bind(refresh).bind(subject).execute(pool).await.map(|_| ()).unwrap()
    })
}

/// Encrypted tokens are bound to their row (provider, subject, which token): ciphertexts copied
/// from one identity to another do not decrypt there, so the read and refresh path refuses them
/// rather than act with someone else's token (SECURITY.md §10).
async fn tokens_copied_to_another_identity_do_not_decrypt(backend: Backend) {
    let (app, sm) = app_with_secondme(backend, "sm-secret").await;
    *sm.user_id.lock().unwrap() = Some(json!(1));
    assert_eq!(sign_in_via(&app, "secondme").await, "/dashboard");
    let bob = app.another_browser();
    *sm.user_id.lock().unwrap() = Some(json!(2));
    assert_eq!(sign_in_via(&bob, "secondme").await, "/dashboard");
    let bob_id: Option<app::auth::CurrentUser> =
        result(bob.call_form("auth/me", &[]).await).await.unwrap();
    let bob_id = app::auth::UserId(bob_id.unwrap().id);
    let providers = &app.state.as_ref().expect("the server's state").providers;
    let import = || app::twins::service::import_secondme_shades(providers, &app.db, &bob_id);
    assert!(import().await.is_ok(), "Bob's own tokens work");

    let alices = enc_tokens(&app, "1").await;
    let bobs = enc_tokens(&app, "2").await;
    assert!(alices.0.is_some() && alices.1.is_some());
    set_enc_tokens(&app, "2", &alices).await;
    assert!(
        import().await.is_err(),
        "Alice's tokens in Bob's row must not decrypt"
    );
    // The access token alone, too: it is not used, and the refresh token cannot stand in.
    set_enc_tokens(&app, "2", &(alices.0.clone(), bobs.1.clone())).await;
    let refreshes = *sm.refreshes.lock().unwrap();
    assert!(import().await.is_ok());
    assert_eq!(
        *sm.refreshes.lock().unwrap(),
        refreshes + 1,
        "the copied access token was refused, so Bob's own refresh token was used"
    );
    // An access token in the refresh token's place does not decrypt either.
    set_enc_tokens(&app, "2", &(None, bobs.0.clone())).await;
    assert!(import().await.is_err());
}
