//! Routes that are not server functions.

use crate::status::error_response;
use app::auth::providers::{CallbackQuery, ProviderError};
use app::auth::UserId;
use app::characters::cards::{self, ExportFormat};
use app::characters::pictures;
use app::chat::service::ChatExport;
use app::error::{AppError, OrInternal};
use app::infra::AppState;
use app::play::service::RunExport;
use axum::{
    extract::{Path, Query, State},
    http::{header, StatusCode},
    response::{IntoResponse, Redirect, Response},
    routing::{get, post},
    Json, Router,
};
use serde::{Deserialize, Serialize};
use tower_sessions::Session;

pub fn api(state: AppState) -> Router<AppState> {
    let _ = state;
    Router::new()
        .route("/api/health", get(health))
        .route("/api/health/live", get(live))
        .route("/api/health/ready", get(ready))
        .route("/auth/{provider}/start", get(auth_start))
        .route("/auth/{provider}/callback", get(auth_callback))
        .route(
            "/characters/{id}/card.json",
            get(|State(state): State<AppState>, session: Session, Path(id): Path<String>| async move {
                export(&state, &session, &id, ExportFormat::Json).await
            }),
        )
        .route(
            "/characters/{id}/card.png",
            get(|State(state): State<AppState>, session: Session, Path(id): Path<String>| async move {
                export(&state, &session, &id, ExportFormat::Png).await
            }),
        )
        .route("/characters/cards.zip", get(export_all))
        .route(
            "/pictures/{id}/portrait.jpg",
            get(|State(state): State<AppState>, session: Session, headers: axum::http::HeaderMap, Path(id): Path<String>| async move {
                picture(&state, &session, &headers, &id, pictures::Size::Portrait).await
            }),
        )
        .route(
            "/pictures/{id}/thumb.jpg",
            get(|State(state): State<AppState>, session: Session, headers: axum::http::HeaderMap, Path(id): Path<String>| async move {
                picture(&state, &session, &headers, &id, pictures::Size::Thumb).await
            }),
        )
        .route(app::pages::dashboard::SELECTION, post(selection))
        .route(
            "/chats/{id}/chat.jsonl",
            get(|State(state): State<AppState>, session: Session, Path(id): Path<String>| async move {
                export_chat(&state, &session, &id, ChatExport::Jsonl).await
            }),
        )
        .route(
            "/chats/{id}/chat.md",
            get(|State(state): State<AppState>, session: Session, Path(id): Path<String>| async move {
                export_chat(&state, &session, &id, ChatExport::Markdown).await
            }),
        )
        .route(
            "/play/{id}/story.md",
            get(|State(state): State<AppState>, session: Session, Path(id): Path<String>| async move {
                export_run(&state, &session, &id, RunExport::Markdown).await
            }),
        )
        .route(
            "/play/{id}/story.json",
            get(|State(state): State<AppState>, session: Session, Path(id): Path<String>| async move {
                export_run(&state, &session, &id, RunExport::Json).await
            }),
        )
}

/// A chat as a file to download (SillyTavern JSONL, or Markdown): signed in (401), the owner's
/// (404 for anyone else's, a missing one or one in the trash, alike).
async fn export_chat(
    state: &AppState,
    session: &Session,
    id: &str,
    format: ChatExport,
) -> Response {
    let path = "/chats/export";
    let user = match signed_in(session, state, path).await {
        Ok(user) => user,
        Err(response) => return response,
    };
    match app::chat::service::export_for(&state.db, &user, id, format).await {
        Ok(Some((bytes, file_name))) => download(export_type(format), &file_name, bytes),
        Ok(None) => error_response(&AppError::NotFound, path, false),
        Err(e) => error_response(&e, path, false),
    }
}

/// The media type of a chat file.
pub fn export_type(format: ChatExport) -> &'static str {
    match format {
        // What SillyTavern and most tools send a `.jsonl` file as.
        ChatExport::Jsonl => "application/jsonl; charset=utf-8",
        ChatExport::Markdown => "text/markdown; charset=utf-8",
    }
}

/// A play run as a file to download: signed in (401), the owner's (404 for anyone else's or a
/// missing one, alike).
async fn export_run(state: &AppState, session: &Session, id: &str, format: RunExport) -> Response {
    let path = "/play/story";
    let user = match signed_in(session, state, path).await {
        Ok(user) => user,
        Err(response) => return response,
    };
    match app::play::service::export(state, &user, id, format).await {
        Ok(Some((bytes, file_name))) => {
            let content_type = match format {
                RunExport::Json => "application/json",
                RunExport::Markdown => "text/markdown; charset=utf-8",
            };
            download(content_type, &file_name, bytes)
        }
        Ok(None) => error_response(&AppError::NotFound, path, false),
        Err(e) => error_response(&e, path, false),
    }
}

/// The signed-in user of a plain (non-server-function) route, or the response to send instead:
/// 401 signed out, the fault's status if the lookup failed.
async fn signed_in(session: &Session, state: &AppState, path: &str) -> Result<UserId, Response> {
    match app::auth::service::user_of_session(session, state).await {
        Ok(Some(user)) => Ok(UserId(user.id)),
        Ok(None) => Err(error_response(&AppError::Unauthorized, path, false)),
        Err(e) => Err(error_response(&e, path, false)),
    }
}

/// A file to download, never cached.
pub fn download(content_type: &'static str, file_name: &str, bytes: Vec<u8>) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{file_name}\""),
            ),
            (header::CACHE_CONTROL, "no-store".to_string()),
        ],
        bytes,
    )
        .into_response()
}

/// A zip written to a temporary file, streamed from it as a download (never cached).
pub fn zip_download(zip: cards::ZipFile, file_name: &str) -> Response {
    let body = axum::body::Body::from_stream(tokio_util::io::ReaderStream::new(
        tokio::fs::File::from_std(zip.file),
    ));
    (
        [
            (header::CONTENT_TYPE, "application/zip".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{file_name}\""),
            ),
            (header::CONTENT_LENGTH, zip.len.to_string()),
            (header::CACHE_CONTROL, "no-store".to_string()),
        ],
        body,
    )
        .into_response()
}

/// Every character of the signed-in user as Character Card PNGs in a zip (401 signed out; 422
/// with a sentence over the bulk limit).
async fn export_all(State(state): State<AppState>, session: Session) -> Response {
    let path = "/characters/cards.zip";
    let user = match signed_in(&session, &state, path).await {
        Ok(user) => user,
        Err(response) => return response,
    };
    match cards::export_all(&state.db, &user)
        .await
        .or_internal("export all characters")
    {
        Ok(Some(zip)) => zip_download(zip, "personaflux-characters.zip"),
        Ok(None) => error_response(
            &AppError::BadRequest(format!(
                "You have more than {} characters; the bulk export holds at most that many.",
                cards::MAX_BULK_EXPORT
            )),
            path,
            false,
        ),
        Err(e) => error_response(&e, path, false),
    }
}

/// An uploaded picture, to its owner only (401 signed out; 404 for anyone else's or a missing one,
/// alike). A picture never changes (a new upload is a new id), so it is cached for a year, privately,
/// with an `ETag` answered by 304.
async fn picture(
    state: &AppState,
    session: &Session,
    headers: &axum::http::HeaderMap,
    id: &str,
    size: pictures::Size,
) -> Response {
    let path = "/pictures";
    let user = match signed_in(session, state, path).await {
        Ok(user) => user,
        Err(response) => return response,
    };
    let etag = format!(
        "\"{id}-{}\"",
        match size {
            pictures::Size::Portrait => "p",
            pictures::Size::Thumb => "t",
        }
    );
    let bytes = match pictures::get(&state.db, &user, id, size)
        .await
        .or_internal("load picture")
    {
        Ok(Some(bytes)) => bytes,
        Ok(None) => return error_response(&AppError::NotFound, path, false),
        Err(e) => return error_response(&e, path, false),
    };
    let cache = [
        (
            header::CACHE_CONTROL,
            "private, max-age=31536000, immutable".to_string(),
        ),
        (header::ETAG, etag.clone()),
    ];
    let seen = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    if seen {
        return (StatusCode::NOT_MODIFIED, cache).into_response();
    }
    (
        cache,
        [(header::CONTENT_TYPE, "image/jpeg".to_string())],
        bytes,
    )
        .into_response()
}

/// The dashboard's selection form (a plain form post, so it works without JavaScript): `action`
/// (delete, restore, tag, untag, favourite, unfavourite, export), `ids` (repeated, the ticked
/// characters), `tag` (a comma-separated list, for tag and untag) and `back` (the dashboard page
/// to return to). Signed in (401); the selection is counted (1 to 100) and the tags checked before
/// any character is looked at; only the user's own characters are touched. Answers with a
/// redirect back to the dashboard, saying what was done (`done`, `n`) or why nothing was
/// (`problem`) as codes the page turns into sentences; an export answers with the zip.
async fn selection(
    State(state): State<AppState>,
    session: Session,
    body: axum::body::Bytes,
) -> Response {
    use app::characters::service::{bulk_for, selection as checked, BulkAction};
    use app::domain::Tags;
    let path = app::pages::dashboard::SELECTION;
    let user = match signed_in(&session, &state, path).await {
        Ok(user) => user,
        Err(response) => return response,
    };
    let (mut action, mut tag, mut back) = (String::new(), String::new(), String::new());
    let mut ids = Vec::new();
    for (key, value) in form_urlencoded::parse(&body) {
        match &*key {
            "action" => action = value.into_owned(),
            "tag" => tag = value.into_owned(),
            "back" => back = value.into_owned(),
            // Counted here already: more than the limit is refused without reading on.
            "ids" if ids.len() <= app::characters::MAX_SELECTION => ids.push(value.into_owned()),
            _ => {}
        }
    }
    let back = dashboard_address(&back);
    let go = |pairs: &[(&str, String)]| {
        let mut to = back.clone();
        for (k, v) in pairs {
            to.push(if to.contains('?') { '&' } else { '?' });
            to.push_str(k);
            to.push('=');
            to.push_str(&form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>());
        }
        Redirect::to(&to).into_response()
    };
    let problem = |code: &str| go(&[("problem", code.to_string())]);
    if ids.is_empty() {
        return problem("none");
    }
    let ids = match checked(ids) {
        Ok(ids) => ids,
        Err(_) => return problem("too-many"),
    };
    let tags = || Tags::parse_list(&tag).ok().filter(|t| !t.is_empty());
    let (bulk, done) = match action.as_str() {
        "export" => {
            return match cards::export_some(&state.db, &user, &ids)
                .await
                .or_internal("export selected characters")
            {
                Ok(Some(zip)) => zip_download(zip, "personaflux-characters.zip"),
                // One of them is gone (or never was the user's): nothing exported, said so.
                Ok(None) => problem("gone"),
                Err(e) => error_response(&e, path, false),
            };
        }
        "delete" => (BulkAction::Delete, "deleted"),
        "restore" => (BulkAction::Restore, "restored"),
        "favourite" => (BulkAction::Favourite(true), "favourited"),
        "unfavourite" => (BulkAction::Favourite(false), "unfavourited"),
        "tag" | "untag" => match tags() {
            Some(t) if action == "tag" => (BulkAction::Tag(t), "tagged"),
            Some(t) => (BulkAction::Untag(t), "untagged"),
            None => return problem("tag"),
        },
        _ => return problem("action"),
    };
    match bulk_for(&state.db, &user, ids, &bulk).await {
        Ok(out) if !out.too_many_tags.is_empty() => go(&[
            ("done", "full".into()),
            ("n", out.too_many_tags.len().to_string()),
        ]),
        Ok(out) if !out.changed_meanwhile.is_empty() => problem("busy"),
        // Deleted: the dashboard offers Undo for exactly these.
        Ok(out) if done == "deleted" => go(&[("deleted", out.done.join(","))]),
        Ok(out) => go(&[("done", done.into()), ("n", out.done.len().to_string())]),
        Err(e) => error_response(&e, path, false),
    }
}

/// The dashboard address a selection came from, rebuilt from its search parameters only (so the
/// redirect can go nowhere else, and old notices are not repeated).
fn dashboard_address(back: &str) -> String {
    let query = back
        .strip_prefix("/dashboard")
        .and_then(|rest| rest.strip_prefix('?'))
        .unwrap_or("");
    let mut out = form_urlencoded::Serializer::new(String::new());
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        if matches!(
            &*k,
            "q" | "trait" | "language" | "tag" | "fav" | "sort" | "after"
        ) {
            out.append_pair(&k, &v);
        }
    }
    let query = out.finish();
    if query.is_empty() {
        "/dashboard".into()
    } else {
        format!("/dashboard?{query}")
    }
}

/// A character as a Character Card file to download: signed in (401), the owner's (404 for
/// anyone else's or a missing one, alike).
async fn export(state: &AppState, session: &Session, id: &str, format: ExportFormat) -> Response {
    let path = "/characters/card";
    let user = match signed_in(session, state, path).await {
        Ok(user) => user,
        Err(response) => return response,
    };
    match cards::export(&state.db, &user, id, format)
        .await
        .or_internal("export character")
    {
        Ok(Some((bytes, file_name))) => {
            let content_type = match format {
                ExportFormat::Json => "application/json",
                ExportFormat::Png => "image/png",
            };
            download(content_type, &file_name, bytes)
        }
        Ok(None) => error_response(&AppError::NotFound, path, false),
        Err(e) => error_response(&e, path, false),
    }
}

/// Looks up the signed-in user once for a page request, before the page renders
/// ([`app::auth::service::ResolvedUser`]): its header, its sign-in guard and its resources' server
/// functions all read that one answer. Server functions, sign-in routes and static files (a dot
/// in the last segment) look the user up themselves, if they need to.
pub async fn pages_know_their_user(
    State(state): State<AppState>,
    mut req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if is_page_request(&req) {
        if let Some(session) = req.extensions().get::<Session>().cloned() {
            let user = app::auth::service::user_of_session(&session, &state).await;
            if let Ok(Some(u)) = &user {
                crate::telemetry::record_user(&u.id);
            }
            req.extensions_mut()
                .insert(app::auth::service::ResolvedUser(user));
        }
    } else if is_server_function(&req) {
        // The session the server function will read anyway: its user id names the request's
        // log lines (the function itself still checks the sign-in).
        if let Some(session) = req.extensions().get::<Session>() {
            if let Some(id) = app::auth::service::session_user_hint(session).await {
                crate::telemetry::record_user(&id);
            }
        }
    }
    next.run(req).await
}

/// A server function's call: `/api/…` but not the REST API (which names its key's user) nor health.
fn is_server_function(req: &axum::extract::Request) -> bool {
    let path = req.uri().path();
    path.starts_with("/api/") && !path.starts_with("/api/v1/") && !path.starts_with("/api/health")
}

fn is_page_request(req: &axum::extract::Request) -> bool {
    let path = req.uri().path();
    let last = path.rsplit('/').next().unwrap_or_default();
    matches!(
        *req.method(),
        axum::http::Method::GET | axum::http::Method::HEAD
    ) && !["/api/", "/auth/", "/pkg/"]
        .iter()
        .any(|p| path.starts_with(p))
        && !last.contains('.')
}

#[derive(Deserialize)]
struct StartQuery {
    return_to: Option<String>,
}

fn failed(e: ProviderError) -> Response {
    Redirect::to(&format!("/signin?error={}", e.code())).into_response()
}

/// Leaves for the provider's sign-in page.
async fn auth_start(
    State(state): State<AppState>,
    session: Session,
    Path(provider): Path<String>,
    Query(q): Query<StartQuery>,
) -> Response {
    match state
        .providers
        .start(&session, &provider, q.return_to.as_deref())
        .await
    {
        Ok(url) => Redirect::to(url.as_str()).into_response(),
        Err(e) => failed(e),
    }
}

/// Comes back from the provider: verifies, signs in, and goes on to where the user was headed.
async fn auth_callback(
    State(state): State<AppState>,
    session: Session,
    Path(provider): Path<String>,
    Query(q): Query<CallbackQuery>,
) -> Response {
    match state
        .providers
        .callback(&state.db, &session, &provider, &q)
        .await
    {
        Ok(return_to) => Redirect::to(&return_to).into_response(),
        Err(e) => failed(e),
    }
}

#[derive(Serialize)]
struct Health {
    status: &'static str,
    database: &'static str,
    version: &'static str,
}

/// 200 when the database answers, 503 when it does not.
/// Liveness: the process answers (no dependency is checked, so a database outage does not get
/// healthy replicas restarted).
async fn live() -> impl IntoResponse {
    Json(serde_json::json!({"status": "ok", "version": env!("CARGO_PKG_VERSION")}))
}

/// Readiness: the database answers and has every migration this build expects; 503 otherwise,
/// so a load balancer sends no traffic here until both hold.
async fn ready(State(state): State<AppState>) -> impl IntoResponse {
    let check = async {
        state.db.ping().await?;
        state.db.migrations_applied().await
    };
    let (database, migrations) =
        match tokio::time::timeout(std::time::Duration::from_secs(3), check).await {
            Ok(Ok(true)) => ("ok", "applied"),
            Ok(Ok(false)) => ("ok", "behind"),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "readiness: database unreachable");
                ("unreachable", "unknown")
            }
            Err(_) => ("unreachable", "unknown"),
        };
    let ok = database == "ok" && migrations == "applied";
    (
        if ok {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        },
        Json(serde_json::json!({
            "status": if ok { "ok" } else { "unavailable" },
            "database": database,
            "migrations": migrations,
            "version": env!("CARGO_PKG_VERSION"),
        })),
    )
}

async fn health(State(state): State<AppState>) -> impl IntoResponse {
    let db_ok = match tokio::time::timeout(std::time::Duration::from_secs(3), state.db.ping()).await
    {
        Ok(Ok(())) => true,
        Ok(Err(e)) => {
            tracing::error!(error = %e, "health check: database unreachable");
            false
        }
        Err(_) => {
            tracing::error!("health check: database timed out");
            false
        }
    };
    let body = Health {
        status: if db_ok { "ok" } else { "unavailable" },
        database: if db_ok { "ok" } else { "unreachable" },
        version: env!("CARGO_PKG_VERSION"),
    };
    let code = if db_ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(body))
}
