//! A SecondMe stand-in that answers like SecondMe: every response wrapped as `{code: 0, data: …}`
//! (errors as another `code`, still HTTP 200), short-lived access tokens, a refresh grant, and
//! Shades. It signs in one fixed user (Lin Wei, id 90210) at once, with no login page; after a
//! refresh it has one Shade more.

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

/// The secret SecondMe expects from the app's client.
pub const CLIENT_SECRET: &str = "sm-secret";

/// The running stand-in.
#[derive(Default)]
pub struct SecondMe {
    base: String,
    codes: Mutex<HashMap<String, String>>,
    /// The access token currently valid; every refresh issues a new one.
    access: Mutex<String>,
    refreshes: Mutex<usize>,
    fail_user_info: Mutex<bool>,
    /// The `userId` user info answers with; `None` leaves the field out.
    user_id: Mutex<Option<serde_json::Value>>,
}

impl SecondMe {
    /// Starts the stand-in on a new loopback port.
    pub async fn start() -> Arc<Self> {
        let (listener, base) = super::bind().await;
        let sm = Arc::new(SecondMe {
            base,
            user_id: Mutex::new(Some(json!(90210))),
            ..Default::default()
        });
        let router = Router::new()
            .route("/oauth/authorize", get(authorize))
            .route("/oauth/token", post(token))
            .route("/api/user/info", get(user_info))
            .route("/api/user/shades", get(shades))
            .with_state(sm.clone());
        super::serve(listener, router);
        sm
    }

    /// The app's configuration for this stand-in, signing in with `client_secret`.
    pub fn env(&self, client_secret: &str) -> Vec<(&'static str, String)> {
        let url = |p: &str| format!("{}{p}", self.base);
        vec![
            ("SECONDME_CLIENT_ID", "sm-client".into()),
            ("SECONDME_CLIENT_SECRET", client_secret.into()),
            ("SECONDME_AUTH_URL", url("/oauth/authorize")),
            ("SECONDME_TOKEN_URL", url("/oauth/token")),
            ("SECONDME_USERINFO_URL", url("/api/user/info")),
            ("SECONDME_SHADES_URL", url("/api/user/shades")),
        ]
    }

    /// How many times a token was refreshed.
    pub fn refreshes(&self) -> usize {
        *self.refreshes.lock().unwrap()
    }

    /// From now on user info answers with this `userId` (`None`: the field is left out).
    pub fn set_user_id(&self, id: Option<serde_json::Value>) {
        *self.user_id.lock().unwrap() = id;
    }

    /// From now on the user info endpoint answers with a wrapped error.
    pub fn fail_user_info(&self) {
        *self.fail_user_info.lock().unwrap() = true;
    }
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
    if f["client_secret"] != CLIENT_SECRET {
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
