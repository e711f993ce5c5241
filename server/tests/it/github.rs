//! Sign-in with GitHub (OAuth 2.0 + the user API), against a GitHub stand-in on loopback that checks
//! what GitHub checks: the client secret, single-use codes, the PKCE verifier.

use crate::common::*;
use axum::{
    extract::{Query, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Redirect, Response},
    routing::{get, post},
    Form, Json, Router,
};
use openidconnect::{PkceCodeChallenge, PkceCodeVerifier};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

#[derive(Default)]
struct GitHub {
    base: String,
    /// code -> PKCE challenge
    codes: Mutex<HashMap<String, String>>,
    /// The account the next sign-in is (id, login, name, verified primary email).
    account: Mutex<(u64, String, Option<String>, Option<String>)>,
}

async fn authorize(
    State(gh): State<Arc<GitHub>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    assert_eq!(q["code_challenge_method"], "S256");
    assert!(q["scope"].contains("user:email"), "{q:?}");
    let code = format!("gh-{}", uuid::Uuid::new_v4().simple());
    gh.codes
        .lock()
        .unwrap()
        .insert(code.clone(), q["code_challenge"].clone());
    Redirect::to(&format!(
        "{}?code={code}&state={}",
        q["redirect_uri"], q["state"]
    ))
    .into_response()
}

async fn access_token(
    State(gh): State<Arc<GitHub>>,
    headers: HeaderMap,
    Form(f): Form<HashMap<String, String>>,
) -> Response {
    // The client authenticates with HTTP Basic (client_id:client_secret).
    use base64::Engine;
    let expected = base64::engine::general_purpose::STANDARD.encode("gh-client:gh-secret");
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if auth != format!("Basic {expected}") {
        return (
            StatusCode::UNAUTHORIZED,
            Json(serde_json::json!({"error": "incorrect_client_credentials"})),
        )
            .into_response();
    }
    let Some(challenge) = gh.codes.lock().unwrap().remove(&f["code"]) else {
        return (
            StatusCode::BAD_REQUEST,
            Json(serde_json::json!({"error": "bad_verification_code"})),
        )
            .into_response();
    };
    let verifier = PkceCodeVerifier::new(f.get("code_verifier").cloned().unwrap_or_default());
    if PkceCodeChallenge::from_code_verifier_sha256(&verifier).as_str() != challenge {
        return (
            StatusCode::BAD_REQUEST,
            Json(serde_json::json!({"error": "invalid_grant"})),
        )
            .into_response();
    }
    Json(serde_json::json!({"access_token": "gho_test", "token_type": "bearer", "scope": "read:user,user:email"})).into_response()
}

async fn user(State(gh): State<Arc<GitHub>>, headers: HeaderMap) -> Response {
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some("Bearer gho_test") {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    assert!(
        headers.contains_key("user-agent"),
        "GitHub requires a User-Agent"
    );
    let (id, login, name, _) = gh.account.lock().unwrap().clone();
    Json(serde_json::json!({"id": id, "login": login, "name": name})).into_response()
}

async fn emails(State(gh): State<Arc<GitHub>>) -> Response {
    let (_, login, _, verified) = gh.account.lock().unwrap().clone();
    let mut list = vec![
        serde_json::json!({"email": format!("{login}@old.example"), "primary": false, "verified": true}),
        serde_json::json!({"email": format!("{login}@unverified.example"), "primary": true, "verified": false}),
    ];
    if let Some(v) = verified {
        list[1] = serde_json::json!({"email": v, "primary": true, "verified": true});
    }
    Json(list).into_response()
}

async fn start_github() -> Arc<GitHub> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let gh = Arc::new(GitHub {
        base,
        ..Default::default()
    });
    let app = Router::new()
        .route("/login/oauth/authorize", get(authorize))
        .route("/login/oauth/access_token", post(access_token))
        .route("/user", get(user))
        .route("/user/emails", get(emails))
        .with_state(gh.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    gh
}

async fn app_with_github(backend: Backend, secret: &str) -> (TestApp, Arc<GitHub>) {
    let gh = start_github().await;
    let (auth, token) = (
        format!("{}/login/oauth/authorize", gh.base),
        format!("{}/login/oauth/access_token", gh.base),
    );
    let app = spawn_app_with(
        backend,
        &[
            ("GITHUB_CLIENT_ID", "gh-client"),
            ("GITHUB_CLIENT_SECRET", secret),
            ("GITHUB_AUTH_URL", auth.as_str()),
            ("GITHUB_TOKEN_URL", token.as_str()),
            ("GITHUB_API_URL", gh.base.as_str()),
        ],
        |_| {},
    )
    .await;
    (app, gh)
}

on_both_backends!(
    github_sign_in_uses_the_user_api_and_the_verified_primary_email,
    a_wrong_client_secret_signs_nobody_in
);

async fn github_sign_in_uses_the_user_api_and_the_verified_primary_email(backend: Backend) {
    let (app, gh) = app_with_github(backend, "gh-secret").await;
    let options: app::auth::SignInOptions = result(app.call_form("auth/options", &[]).await)
        .await
        .unwrap();
    assert_eq!(
        options.providers,
        vec![("github".to_string(), "GitHub".to_string())]
    );

    *gh.account.lock().unwrap() = (
        4242,
        "octocat".into(),
        Some("Mona Octocat".into()),
        Some("mona@verified.example".into()),
    );
    assert_eq!(sign_in_via(&app, "github").await, "/dashboard");
    let me: Option<app::auth::CurrentUser> =
        result(app.call_form("auth/me", &[]).await).await.unwrap();
    assert_eq!(me.unwrap().display_name, "Mona Octocat");
    let (email,): (Option<String>,) = app::with_pool!(&app.db, pool => {
        sqlx::query_as("SELECT email FROM oauth_identities WHERE provider = 'github' AND subject = '4242'")
            .fetch_one(pool)
            .await
            .unwrap()
    });
    assert_eq!(email.as_deref(), Some("mona@verified.example"));

    // No name: the login. No verified primary email: none is kept.
    app.call_form("auth/signout", &[]).await;
    *gh.account.lock().unwrap() = (7, "hubot".into(), None, None);
    assert_eq!(sign_in_via(&app, "github").await, "/dashboard");
    let me: Option<app::auth::CurrentUser> =
        result(app.call_form("auth/me", &[]).await).await.unwrap();
    assert_eq!(me.unwrap().display_name, "hubot");
    let (email,): (Option<String>,) = app::with_pool!(&app.db, pool => {
        sqlx::query_as("SELECT email FROM oauth_identities WHERE provider = 'github' AND subject = '7'")
            .fetch_one(pool)
            .await
            .unwrap()
    });
    assert_eq!(email, None);
}

async fn a_wrong_client_secret_signs_nobody_in(backend: Backend) {
    let (app, gh) = app_with_github(backend, "not-the-secret").await;
    *gh.account.lock().unwrap() = (1, "eve".into(), None, None);
    assert_eq!(sign_in_via(&app, "github").await, "/signin?error=provider");
    let me: Option<app::auth::CurrentUser> =
        result(app.call_form("auth/me", &[]).await).await.unwrap();
    assert_eq!(me, None);
    assert_eq!(count(&app, "SELECT COUNT(*) FROM users").await, 0);
}
