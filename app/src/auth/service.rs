//! Sessions and the signed-in user: [`require_user`], the one check every server function that
//! touches user data makes first; the current user; the local sign-in of the embedded default;
//! starting a session after any sign-in, and signing out.

use super::{store, CurrentUser};
use crate::error::{AppError, OrInternal};
use crate::infra::{now_ms, AppState};
use tower_sessions::Session;

const USER_KEY: &str = "user_id";
const SIGNED_IN_AT: &str = "signed_in_at";
/// When the session's idle expiry was last pushed back (epoch ms).
const LAST_SEEN: &str = "last_seen";

/// The id of the signed-in user; the type every owner-scoped query takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserId(pub String);

async fn session() -> Result<Session, AppError> {
    leptos_axum::extract::<Session>()
        .await
        .or_internal("session layer missing")
}

/// The one way to get the current user: every server function that touches user data calls it
/// first and returns early when it fails.
pub async fn require_user() -> Result<UserId, AppError> {
    if let Some(resolved) = resolved_for_page() {
        return match resolved? {
            Some(user) => Ok(UserId(user.id)),
            None => Err(AppError::Unauthorized),
        };
    }
    let session = session().await?;
    let state = AppState::get()?;
    let Some(id) = session_user_id(&session, &state.config).await? else {
        return Err(AppError::Unauthorized);
    };
    match store::find_user(&state.db, &id)
        .await
        .or_internal("load user")?
    {
        Some(_) => Ok(UserId(id)),
        None => Err(AppError::Unauthorized),
    }
}

/// The user id in the session, if its sign-in has not outlived the absolute session lifetime
/// (`SESSION_MAX_AGE_SECS`; the idle limit is the session's expiry on inactivity).
///
/// Each signed-in request is activity: the idle expiry slides. A session is saved only when it
/// changes, so the time of the last renewal is kept in it and touched when it is older than
/// `SESSION_RENEW_SECS` — at most one write per session per interval, not one per request.
async fn session_user_id(
    session: &Session,
    config: &crate::infra::config::Config,
) -> Result<Option<String>, AppError> {
    let id: Option<String> = session.get(USER_KEY).await.or_internal("session read")?;
    let Some(id) = id else { return Ok(None) };
    let at: Option<i64> = session
        .get(SIGNED_IN_AT)
        .await
        .or_internal("session read")?;
    let now = now_ms();
    if at.is_none_or(|at| now - at > config.session_max_age.as_millis() as i64) {
        session.flush().await.or_internal("session flush")?;
        return Ok(None);
    }
    let last_seen: Option<i64> = session.get(LAST_SEEN).await.or_internal("session read")?;
    if last_seen.is_none_or(|t| now - t >= config.session_renew.as_millis() as i64) {
        session
            .insert(LAST_SEEN, now)
            .await
            .or_internal("session write")?;
    }
    Ok(Some(id))
}

/// The user id `session` holds, unchecked (for naming a request in the logs; access is decided
/// by [`require_user`]).
pub async fn session_user_hint(session: &Session) -> Option<String> {
    session.get::<String>(USER_KEY).await.ok().flatten()
}

/// Whether `session` holds a signed-in user (whether or not the sign-in is still valid).
pub async fn is_signed_in(session: &Session) -> bool {
    matches!(session.get::<String>(USER_KEY).await, Ok(Some(_)))
}

pub async fn current_user() -> Result<Option<CurrentUser>, AppError> {
    if let Some(resolved) = resolved_for_page() {
        return resolved;
    }
    user_of_session(&session().await?, &AppState::get()?).await
}

/// The user signed in to `session`, if any.
pub async fn user_of_session(
    session: &Session,
    state: &AppState,
) -> Result<Option<CurrentUser>, AppError> {
    let Some(id) = session_user_id(session, &state.config).await? else {
        return Ok(None);
    };
    store::find_user(&state.db, &id)
        .await
        .or_internal("load user")
}

/// The signed-in user of a page request, looked up once by the server before the page renders
/// (a request extension; see `server::pages_know_their_user`). The page's header, its sign-in
/// guard and the server functions its resources call all read this one answer instead of each
/// asking the session and the database again.
#[derive(Debug, Clone)]
pub struct ResolvedUser(pub Result<Option<CurrentUser>, AppError>);

/// This request's [`ResolvedUser`], when it is a page request.
pub fn resolved_for_page() -> Option<Result<Option<CurrentUser>, AppError>> {
    leptos::prelude::use_context::<http::request::Parts>()?
        .extensions
        .get::<ResolvedUser>()
        .map(|r| r.0.clone())
}

/// Headers a reverse proxy adds. Local sign-in trusts that whoever reaches the loopback port is
/// on this machine; a request that came through a proxy is not, whatever it says.
const FORWARDING_HEADERS: [&str; 5] = [
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-real-ip",
];

/// Whether the current request carries any forwarding header.
pub fn came_through_a_proxy() -> bool {
    leptos::prelude::use_context::<http::request::Parts>().is_some_and(|parts| {
        FORWARDING_HEADERS
            .iter()
            .any(|h| parts.headers.contains_key(*h))
    })
}

/// Whether this request may use the local sign-in: the server listens on loopback (and is not
/// published under a public URL), and the request did not come through a proxy.
pub fn local_sign_in_allowed() -> bool {
    AppState::get().is_ok_and(|s| s.config.local_sign_in_allowed()) && !came_through_a_proxy()
}

pub async fn local_sign_in() -> Result<(), AppError> {
    let state = AppState::get()?;
    if !state.config.local_sign_in_allowed() {
        return Err(AppError::Forbidden(
            "Local sign-in is only available while the server listens on loopback.".into(),
        ));
    }
    if came_through_a_proxy() {
        tracing::warn!("refused a local sign-in that came through a proxy");
        return Err(AppError::Forbidden(
            "Local sign-in is not available through a proxy.".into(),
        ));
    }
    let user = store::upsert_identity(&state.db, "local", "local", "Local user")
        .await
        .or_internal("local sign-in")?;
    sign_in_as(&user.id).await?;
    tracing::info!(user_id = %user.id, "signed in (local)");
    leptos_axum::redirect("/dashboard");
    Ok(())
}

/// For a plain form post (one that wants HTML back): sends it to the sign-in page with the reason
/// `err` as an error code ([`super::flow_error_message`]). Server-function callers get the error.
pub fn back_to_sign_in_with(err: &AppError) {
    let wants_html = leptos::prelude::use_context::<http::request::Parts>().is_some_and(|p| {
        p.headers
            .get(http::header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("text/html"))
    });
    if wants_html {
        let code = match err {
            AppError::Forbidden(_) => "local",
            AppError::Unavailable => "unavailable",
            _ => "failed",
        };
        leptos_axum::redirect(&format!("/signin?error={code}"));
    }
}

/// Starts a session for `user_id` in the current server function's session.
pub async fn sign_in_as(user_id: &str) -> Result<(), AppError> {
    start_session(&session().await?, user_id).await
}

/// Signs `user_id` in: a new session id (no fixation), the user, and the time of sign-in.
pub async fn start_session(session: &Session, user_id: &str) -> Result<(), AppError> {
    session.cycle_id().await.or_internal("session cycle")?;
    session
        .insert(USER_KEY, user_id)
        .await
        .or_internal("session write")?;
    let now = now_ms();
    session
        .insert(SIGNED_IN_AT, now)
        .await
        .or_internal("session write")?;
    session
        .insert(LAST_SEEN, now)
        .await
        .or_internal("session write")
}

pub async fn sign_out() -> Result<(), AppError> {
    let session = session().await?;
    session.flush().await.or_internal("session flush")?;
    leptos_axum::redirect("/");
    Ok(())
}
