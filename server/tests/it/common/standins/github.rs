//! A GitHub stand-in (OAuth 2.0 and the user API) that checks what GitHub checks: the client
//! secret (HTTP Basic), single-use codes, the PKCE verifier, a User-Agent on API calls. It signs
//! in whichever [`GitHubAccount`] the test set last, at once, with no login page.

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

/// The client the app is registered as.
const CLIENT_ID: &str = "gh-client";
/// The secret GitHub expects from that client.
pub const CLIENT_SECRET: &str = "gh-secret";

/// The GitHub account the next sign-in is.
#[derive(Debug, Clone, Default)]
pub struct GitHubAccount {
    pub id: u64,
    pub login: String,
    pub name: Option<String>,
    /// The primary email, verified; without one the primary email is unverified.
    pub verified_email: Option<String>,
}

/// The running stand-in.
#[derive(Default)]
pub struct GitHub {
    base: String,
    /// code -> PKCE challenge
    codes: Mutex<HashMap<String, String>>,
    account: Mutex<GitHubAccount>,
}

impl GitHub {
    /// Starts the stand-in on a new loopback port.
    pub async fn start() -> Arc<Self> {
        let (listener, base) = super::bind().await;
        let gh = Arc::new(GitHub {
            base,
            ..Default::default()
        });
        let router = Router::new()
            .route("/login/oauth/authorize", get(authorize))
            .route("/login/oauth/access_token", post(access_token))
            .route("/user", get(user))
            .route("/user/emails", get(emails))
            .with_state(gh.clone());
        super::serve(listener, router);
        gh
    }

    /// The app's configuration for this stand-in, signing in with `client_secret`.
    pub fn env(&self, client_secret: &str) -> Vec<(&'static str, String)> {
        vec![
            ("GITHUB_CLIENT_ID", CLIENT_ID.into()),
            ("GITHUB_CLIENT_SECRET", client_secret.into()),
            (
                "GITHUB_AUTH_URL",
                format!("{}/login/oauth/authorize", self.base),
            ),
            (
                "GITHUB_TOKEN_URL",
                format!("{}/login/oauth/access_token", self.base),
            ),
            ("GITHUB_API_URL", self.base.clone()),
        ]
    }

    /// Makes `account` the one the next sign-in is.
    pub fn sign_in_as(&self, account: GitHubAccount) {
        *self.account.lock().unwrap() = account;
    }
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
    let expected =
        base64::engine::general_purpose::STANDARD.encode(format!("{CLIENT_ID}:{CLIENT_SECRET}"));
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
    let a = gh.account.lock().unwrap().clone();
    Json(serde_json::json!({"id": a.id, "login": a.login, "name": a.name})).into_response()
}

async fn emails(State(gh): State<Arc<GitHub>>) -> Response {
    let a = gh.account.lock().unwrap().clone();
    let login = a.login;
    let mut list = vec![
        serde_json::json!({"email": format!("{login}@old.example"), "primary": false, "verified": true}),
        serde_json::json!({"email": format!("{login}@unverified.example"), "primary": true, "verified": false}),
    ];
    if let Some(v) = a.verified_email {
        list[1] = serde_json::json!({"email": v, "primary": true, "verified": true});
    }
    Json(list).into_response()
}
