//! The public REST API, `/api/v1`: JSON over HTTP for scripts and tools, authenticated with an API
//! key (`Authorization: Bearer pf_…`, made on the settings page; `app::keys`).
//!
//! Each route calls the same service functions as the app's server functions (the `_for`
//! variants that take the caller instead of reading the browser session), so no business rule is
//! written twice. The OpenAPI 3.1 document is generated from the handlers and the app's own types
//! (`utoipa`): a route is registered and documented by the same `routes!` call, so neither can be
//! missing from the other. It is served at `/api/v1/openapi.json`, with a reference page at
//! `/api/v1/docs`.
//!
//! Errors are RFC 9457 `application/problem+json` with the status of [`AppError::status`], the
//! request id, and per-field errors for a 422. A read-only key that tries to change data gets a
//! 403; a missing, unknown, revoked or expired key a 401; someone else's data is a 404, as in the
//! app. Reads carry an `ETag` and answer `If-None-Match` with a 304.

use app::characters::{
    service as characters, service::BulkOutcome, CardImport, CharacterFilter, CharacterPage,
    CharacterSort, CharacterView, Rewritten,
};
use app::chat::{
    service as chats, ChatEvent, ChatList, ChatView, EventLines, MessagePage, MessageStatus,
    PromptView,
};
use app::domain::{CharacterDraft, FieldError};
use app::domain::{PersonaRef, PlayChoice, Section, TwinDraft};
use app::error::AppError;
use app::infra::AppState;
use app::keys::service::{authenticate, ApiCaller};
use app::matches::{MatchSummary, MatchView};
use app::play::{service as play, PlayEvent, RunSummary, RunView};
use app::twins::TwinView;
use app::usage::UsageReport;
use axum::{
    extract::{FromRequestParts, Path, Query, Request, State},
    http::{header, request::Parts, HeaderMap, HeaderValue, StatusCode},
    middleware::Next,
    response::{
        sse::{Event, KeepAlive, Sse},
        Html, IntoResponse, Response,
    },
    routing::get,
    Json, Router,
};
use serde::{Deserialize, Serialize};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{IntoParams, Modify, OpenApi, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

/// Where the API lives.
pub const BASE: &str = "/api/v1";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "PersonaFlux API",
        version = "1.0.0",
        description = "Characters and the signed-in user, for scripts and tools. Authenticate with an API key made on the settings page (/settings/keys): `Authorization: Bearer pf_…`. Errors are RFC 9457 problem details."
    ),
    modifiers(&BearerKey),
    security(("api_key" = [])),
    tags(
        (name = "user", description = "Who the key acts for"),
        (name = "characters", description = "The key owner's characters"),
        (name = "chats", description = "Chats with characters: messages, and replies streamed as Server-Sent Events"),
        (name = "play", description = "Play mode: a character leads a story scene by scene to one of its endings"),
        (name = "usage", description = "The key owner's model usage: calls, tokens, time and failures"),
        (name = "generate", description = "The model writes a character's story, or one section of it, from a draft; nothing is saved"),
        (name = "twin", description = "The key owner's digital twin and its Shades"),
        (name = "matches", description = "Compatibility matches between the owner's twin and other twins and characters"),
        (name = "cards", description = "Character Cards (V1, V2, V3; JSON or PNG) in and out")
    )
)]
struct ApiDoc;

struct BearerKey;

impl Modify for BearerKey {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("pf_…")
                    .description(Some("An API key from the settings page"))
                    .build(),
            ),
        );
    }
}

/// The API's routes and its OpenAPI document, from the same declarations.
pub fn parts() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(me))
        .routes(routes!(list_characters, create_character))
        .routes(routes!(get_character, update_character, delete_character))
        .routes(routes!(open_chat))
        .routes(routes!(list_chats, new_chat))
        .routes(routes!(get_chat, rename_chat, trash_chat))
        .routes(routes!(restore_chat))
        .routes(routes!(branch_chat))
        .routes(routes!(export_chat))
        .routes(routes!(search_chats))
        .routes(routes!(import_chat))
        .routes(routes!(list_messages, send_message))
        .routes(routes!(message_prompt))
        .routes(routes!(follow_reply))
        .routes(routes!(stop_reply))
        .routes(routes!(edit_chat_message, delete_chat_message))
        .routes(routes!(restore_chat_message))
        .routes(routes!(show_chat_version))
        .routes(routes!(regenerate_chat_reply))
        .routes(routes!(continue_chat_reply))
        .routes(routes!(start_run))
        .routes(routes!(list_runs))
        .routes(routes!(get_run))
        .routes(routes!(play_turn))
        .routes(routes!(usage))
        .routes(routes!(generate))
        .routes(routes!(generate_section))
        .routes(routes!(reroll_turn))
        .routes(routes!(get_twin, save_twin))
        .routes(routes!(list_matches, work_out_match))
        .routes(routes!(get_match))
        .routes(routes!(import_card))
        .routes(routes!(export_card))
        .routes(routes!(bulk_delete))
        .routes(routes!(bulk_export))
        .routes(routes!(set_labels))
        .routes(routes!(get_picture, put_picture))
        .routes(routes!(bulk_labels))
        .split_for_parts()
}

/// The `/api/v1` router: the documented routes behind the key check, and the document itself and
/// its reference page, which anyone may read.
pub fn router(state: AppState) -> Router<AppState> {
    let (api, doc) = parts();
    let doc_json = serde_json::to_string(&doc).unwrap_or_default();
    let page = reference_page(&doc);
    api.layer(axum::middleware::from_fn_with_state(state, require_key))
        .route(
            &format!("{BASE}/openapi.json"),
            get(move || {
                let doc = doc_json.clone();
                async move { ([(header::CONTENT_TYPE, "application/json")], doc) }
            }),
        )
        .route(
            &format!("{BASE}/docs"),
            get(move || {
                let page = page.clone();
                async move { Html(page) }
            }),
        )
}

/// Authenticates every documented route's request by its key before the handler runs.
async fn require_key(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let info = RequestInfo::of(req.headers(), req.uri().path());
    let authorization = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    match authenticate(&state.db, authorization).await {
        Ok(caller) => {
            crate::telemetry::record_user(&caller.user.0);
            req.extensions_mut().insert(caller);
            next.run(req).await
        }
        Err(e) => {
            let mut res = problem(&e, &info);
            res.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"personaflux\""),
            );
            res
        }
    }
}

/// What a problem response names: the request's id and path.
#[derive(Clone)]
struct RequestInfo {
    request_id: String,
    path: String,
}

impl RequestInfo {
    fn of(headers: &HeaderMap, path: &str) -> Self {
        Self {
            request_id: headers
                .get("x-request-id")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("-")
                .to_string(),
            path: path.to_string(),
        }
    }
}

/// An RFC 9457 problem.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem (`about:blank`: the status says it).
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    /// What went wrong, for a person.
    pub detail: String,
    /// The path of the request.
    pub instance: String,
    /// The request's id (`x-request-id`), to quote when reporting a fault.
    pub request_id: String,
    /// For a 422 from a form: each field's message.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

/// `err` as a problem response to a request for `path` (for the middleware in front of the API,
/// such as the body limit).
pub fn problem_for(err: &AppError, headers: &HeaderMap, path: &str) -> Response {
    problem(err, &RequestInfo::of(headers, path))
}

fn problem(err: &AppError, info: &RequestInfo) -> Response {
    let detail = match err {
        // The app's sentence names the reference; here the request id is its own field.
        AppError::Internal { .. } => {
            "Something went wrong on our side. Please try again, quoting the request id.".into()
        }
        AppError::Invalid(fields) => format!("Some fields are not valid: {fields}"),
        other => other.to_string(),
    };
    let errors = match err {
        AppError::Invalid(fields) => fields.0.clone(),
        _ => Vec::new(),
    };
    let mut res = problem_with(err.status(), detail, errors, info);
    if let Some(secs) = err.retry_after_secs() {
        res.headers_mut().insert(header::RETRY_AFTER, secs.into());
    }
    res
}

fn problem_with(
    status: StatusCode,
    detail: String,
    errors: Vec<FieldError>,
    info: &RequestInfo,
) -> Response {
    let body = Problem {
        kind: "about:blank".into(),
        title: status.canonical_reason().unwrap_or("Error").into(),
        status: status.as_u16(),
        detail,
        instance: info.path.clone(),
        request_id: info.request_id.clone(),
        errors,
    };
    (
        status,
        [(header::CONTENT_TYPE, "application/problem+json")],
        serde_json::to_string(&body).unwrap_or_default(),
    )
        .into_response()
}

/// A failed request, answered as a [`Problem`]: an [`AppError`], or a status of HTTP's own
/// (a precondition) with its sentence.
enum Failure {
    App(AppError, RequestInfo),
    Http(StatusCode, String, RequestInfo),
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        match self {
            Failure::App(e, info) => problem(&e, &info),
            Failure::Http(status, detail, info) => problem_with(status, detail, Vec::new(), &info),
        }
    }
}

/// What every handler gets: the state, the caller (authenticated by [`require_key`]) and what a
/// problem response names.
struct Ctx {
    state: AppState,
    caller: ApiCaller,
    info: RequestInfo,
}

impl Ctx {
    fn fail(&self, e: AppError) -> Failure {
        Failure::App(e, self.info.clone())
    }

    fn http(&self, status: StatusCode, detail: &str) -> Failure {
        Failure::Http(status, detail.to_string(), self.info.clone())
    }

    /// Refuses a read-only key where data would change.
    fn writer(&self) -> Result<(), Failure> {
        if self.caller.write {
            Ok(())
        } else {
            Err(self.fail(AppError::Forbidden(
                "This API key is read-only; make a key that may write to change data.".into(),
            )))
        }
    }
}

impl FromRequestParts<AppState> for Ctx {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let info = RequestInfo::of(&parts.headers, parts.uri.path());
        let caller = parts
            .extensions
            .get::<ApiCaller>()
            .cloned()
            .ok_or_else(|| problem(&AppError::Unauthorized, &info))?;
        Ok(Ctx {
            state: state.clone(),
            caller,
            info,
        })
    }
}

/// A query string read into `T`, or a 400 problem that says what was wrong with it.
struct Q<T>(T);

impl<T: serde::de::DeserializeOwned + Send> FromRequestParts<AppState> for Q<T> {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(q)) => Ok(Q(q)),
            Err(e) => Err(problem(
                &AppError::Transport(e.body_text()),
                &RequestInfo::of(&parts.headers, parts.uri.path()),
            )),
        }
    }
}

/// The strong `ETag` of a JSON body: a hash of its bytes.
fn etag_of(body: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(body);
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("\"{hex}\"")
}

/// Whether an `If-None-Match` / `If-Match` header value names `etag` (or is `*`).
fn names(header: Option<&HeaderValue>, etag: &str) -> bool {
    header
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"))
}

/// `value` as JSON with its `ETag`, or 304 when the client's `If-None-Match` already names it.
fn with_etag<T: Serialize>(headers: &HeaderMap, status: StatusCode, value: &T) -> Response {
    let body = serde_json::to_vec(value).unwrap_or_default();
    let etag = etag_of(&body);
    let mut res = if status == StatusCode::OK && names(headers.get(header::IF_NONE_MATCH), &etag) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
    };
    if let Ok(v) = HeaderValue::from_str(&etag) {
        res.headers_mut().insert(header::ETAG, v);
    }
    res.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-cache"),
    );
    res
}

/// Who the key acts for.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Me {
    pub id: String,
    pub display_name: String,
    /// Whether this key may change data.
    pub write: bool,
}

#[utoipa::path(
    get,
    path = "/api/v1/me",
    tag = "user",
    summary = "Who the key acts for",
    responses(
        (status = 200, description = "The key's owner", body = Me),
        (status = 401, description = "No valid key", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn me(ctx: Ctx) -> Result<Json<Me>, Failure> {
    let user = app::auth::store::find_user(&ctx.state.db, &ctx.caller.user.0)
        .await
        .map_err(|e| ctx.fail(AppError::internal("load user", e)))?
        .ok_or_else(|| ctx.fail(AppError::Unauthorized))?;
    Ok(Json(Me {
        id: user.id,
        display_name: user.display_name,
        write: ctx.caller.write,
    }))
}

/// A page of characters.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// The last character of the previous page (its `next`); none for the first.
    pub after: Option<String>,
    /// How many (1 to 100; 24 by default).
    pub limit: Option<u32>,
    /// Words to find in the name, traits, backstory or world: every word, each as a prefix.
    pub q: Option<String>,
    /// Only characters with this trait (any case).
    #[serde(rename = "trait")]
    #[param(rename = "trait")]
    pub trait_name: Option<String>,
    /// Only characters in this language.
    pub language: Option<String>,
    /// Only characters with this tag of the owner's (any case).
    pub tag: Option<String>,
    /// `true`: only the owner's favourites.
    pub favourite: Option<bool>,
    /// `created` (newest first, the default), `chatted` (most recently chatted with first) or
    /// `name` (A to Z).
    pub sort: Option<String>,
}

#[utoipa::path(
    get,
    path = "/api/v1/characters",
    tag = "characters",
    summary = "The key owner's characters, a page at a time: searched, filtered and ordered as on the dashboard",
    params(PageQuery),
    responses(
        (status = 200, description = "A page; `next` is the cursor for the one after", body = CharacterPage,
            headers(("ETag" = String, description = "Send back as If-None-Match"))),
        (status = 304, description = "Not modified since the ETag sent"),
        (status = 401, description = "No valid key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`after` is not one of the owner's characters", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "An unknown order, or a search, trait, tag or language longer than any can be", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn list_characters(
    ctx: Ctx,
    headers: HeaderMap,
    Q(q): Q<PageQuery>,
) -> Result<Response, Failure> {
    let sort = match q.sort.as_deref() {
        None | Some("") => CharacterSort::default(),
        Some(s) => CharacterSort::parse(s).ok_or_else(|| {
            ctx.fail(AppError::BadRequest(
                "The order is created, chatted or name.".into(),
            ))
        })?,
    };
    let filter = CharacterFilter {
        q: q.q.unwrap_or_default(),
        trait_name: q.trait_name.unwrap_or_default(),
        language: q.language.unwrap_or_default(),
        tag: q.tag.unwrap_or_default(),
        favourites: q.favourite.unwrap_or(false),
        sort,
    };
    let page = characters::search_for(&ctx.state.db, &ctx.caller.user, &filter, q.after, q.limit)
        .await
        .map_err(|e| ctx.fail(e))?;
    Ok(with_etag(&headers, StatusCode::OK, &page))
}

#[utoipa::path(
    get,
    path = "/api/v1/characters/{id}",
    tag = "characters",
    summary = "A character, whole",
    params(("id" = String, Path, description = "The character's id")),
    responses(
        (status = 200, description = "The character", body = CharacterView,
            headers(("ETag" = String, description = "Send back as If-None-Match"))),
        (status = 304, description = "Not modified since the ETag sent"),
        (status = 401, description = "No valid key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such character of the owner's", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn get_character(
    ctx: Ctx,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, Failure> {
    let c = characters::get_for(&ctx.state.db, &ctx.caller.user, &id)
        .await
        .map_err(|e| ctx.fail(e))?;
    Ok(with_etag(&headers, StatusCode::OK, &c))
}

/// The card a new character was made from.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ImportQuery {
    /// The id POST /api/v1/cards gave: the card's other fields are kept with the character.
    pub import: Option<String>,
}

#[utoipa::path(
    post,
    path = "/api/v1/characters",
    tag = "characters",
    summary = "Saves a new character (the wizard's fields, validated as in the app)",
    params(ImportQuery),
    request_body(content = CharacterDraft, description = "Every field as the wizard has it; backstory, world, opening line, start options and endings included"),
    responses(
        (status = 201, description = "Saved; `Location` names it", body = CharacterView),
        (status = 401, description = "No valid key", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "A read-only key", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The body is larger than any valid character", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Fields that are not valid, each with its message", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn create_character(
    ctx: Ctx,
    Q(q): Q<ImportQuery>,
    body: Result<Json<CharacterDraft>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, Failure> {
    ctx.writer()?;
    let Json(draft) = body.map_err(|e| ctx.fail(AppError::BadRequest(e.body_text())))?;
    let id = characters::save_for(&ctx.state.db, &ctx.caller.user, draft, q.import)
        .await
        .map_err(|e| ctx.fail(e))?;
    let c = characters::get_for(&ctx.state.db, &ctx.caller.user, &id)
        .await
        .map_err(|e| ctx.fail(e))?;
    tracing::info!(key_id = %ctx.caller.key_id, "character created through the API");
    let location = format!("{BASE}/characters/{id}");
    Ok((StatusCode::CREATED, [(header::LOCATION, location)], Json(c)).into_response())
}

#[utoipa::path(
    put,
    path = "/api/v1/characters/{id}",
    tag = "characters",
    summary = "Saves new fields over a character, if it has not changed since it was read",
    params(
        ("id" = String, Path, description = "The character's id"),
        ("If-Match" = String, Header, description = "The ETag of the character as read: the update is made only if it is still current"),
    ),
    request_body(content = CharacterDraft, description = "Every field, as for creating"),
    responses(
        (status = 200, description = "Saved", body = CharacterView,
            headers(("ETag" = String, description = "The new version's"))),
        (status = 401, description = "No valid key", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "A read-only key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such character of the owner's", body = Problem, content_type = "application/problem+json"),
        (status = 412, description = "The character changed since that ETag: read it again", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Fields that are not valid, each with its message", body = Problem, content_type = "application/problem+json"),
        (status = 428, description = "No If-Match: an update must say which version it replaces", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn update_character(
    ctx: Ctx,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Result<Json<CharacterDraft>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, Failure> {
    ctx.writer()?;
    let Json(draft) = body.map_err(|e| ctx.fail(AppError::BadRequest(e.body_text())))?;
    let db = &ctx.state.db;
    let user = &ctx.caller.user;
    let current = characters::get_for(db, user, &id)
        .await
        .map_err(|e| ctx.fail(e))?;
    let Some(if_match) = headers.get(header::IF_MATCH) else {
        return Err(ctx.http(
            StatusCode::PRECONDITION_REQUIRED,
            "Send If-Match with the character's ETag, so an update never overwrites a change you have not seen.",
        ));
    };
    let stale = || {
        ctx.http(
            StatusCode::PRECONDITION_FAILED,
            "The character changed since that version was read. Read it again, then update.",
        )
    };
    let etag = etag_of(&serde_json::to_vec(&current).unwrap_or_default());
    if !names(Some(if_match), &etag) {
        return Err(stale());
    }
    match characters::update_if(db, user, &id, draft, current.updated_at)
        .await
        .map_err(|e| ctx.fail(e))?
    {
        characters::Conditional::Updated => {}
        characters::Conditional::Changed => return Err(stale()),
    }
    let saved = characters::get_for(db, user, &id)
        .await
        .map_err(|e| ctx.fail(e))?;
    tracing::info!(key_id = %ctx.caller.key_id, "character updated through the API");
    Ok(with_etag(&headers, StatusCode::OK, &saved))
}

#[utoipa::path(
    delete,
    path = "/api/v1/characters/{id}",
    tag = "characters",
    summary = "Moves a character, with its chats, to the trash (restorable in the app for 30 days)",
    params(("id" = String, Path, description = "The character's id")),
    responses(
        (status = 204, description = "In the trash"),
        (status = 401, description = "No valid key", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "A read-only key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such character of the owner's", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn delete_character(ctx: Ctx, Path(id): Path<String>) -> Result<StatusCode, Failure> {
    ctx.writer()?;
    characters::delete_for(&ctx.state.db, &ctx.caller.user, &id)
        .await
        .map_err(|e| ctx.fail(e))?;
    tracing::info!(key_id = %ctx.caller.key_id, "character deleted through the API");
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    post,
    path = "/api/v1/characters/{id}/chat",
    tag = "chats",
    summary = "Opens the most recently active chat with a character (made, with its greeting, if there is none): its latest messages",
    params(("id" = String, Path, description = "The character's id")),
    responses(
        (status = 200, description = "The chat and its latest page of messages", body = ChatView),
        (status = 401, description = "No valid key", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "A read-only key (opening a chat the first time makes it)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such character of the owner's", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "No chat yet, and the owner has as many chats with the character as one may", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn open_chat(ctx: Ctx, Path(id): Path<String>) -> Result<Json<ChatView>, Failure> {
    ctx.writer()?;
    let view = chats::open_for(&ctx.state, &ctx.caller.user, &id)
        .await
        .map_err(|e| ctx.fail(e))?;
    Ok(Json(view))
}

/// Which page of a chat.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct BeforeQuery {
    /// The messages written before this message number (a chat's `earlier`); none for the latest.
    pub before: Option<i64>,
    /// Instead, the conversation up to and including this message (its id), on whichever branch
    /// it is: where a search result is.
    pub at: Option<String>,
}

#[utoipa::path(
    get,
    path = "/api/v1/chats/{session_id}/messages",
    tag = "chats",
    summary = "A page of a chat's messages, in the order written (the latest, those before `before`, or those up to `at`)",
    params(("session_id" = String, Path, description = "The chat's id"), BeforeQuery),
    responses(
        (status = 200, description = "The page; `earlier` is the cursor for the one before", body = MessagePage),
        (status = 401, description = "No valid key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such chat of the owner's (or no such message in it, for `at`)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`before` is not a message number", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn list_messages(
    ctx: Ctx,
    Path(session_id): Path<String>,
    Q(q): Q<BeforeQuery>,
) -> Result<Json<MessagePage>, Failure> {
    let page = match q.at {
        Some(at) => chats::at_for(&ctx.state.db, &ctx.caller.user, &session_id, &at).await,
        None => chats::earlier_for(&ctx.state.db, &ctx.caller.user, &session_id, q.before).await,
    }
    .map_err(|e| ctx.fail(e))?;
    Ok(Json(page))
}

#[utoipa::path(
    get,
    path = "/api/v1/chats/{session_id}/messages/{message_id}/prompt",
    tag = "chats",
    summary = "What the model saw for a reply: its system prompt, lorebook entries, summary, instructions and messages, with token counts",
    params(("session_id" = String, Path, description = "The chat's id"), ("message_id" = String, Path, description = "The reply's id")),
    responses(
        (status = 200, description = "The prompt, part by part (tokens are estimates)", body = PromptView),
        (status = 401, description = "No valid key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such chat of the owner's, or no prompt kept for that message (a greeting, the user's own)", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn message_prompt(
    ctx: Ctx,
    Path((session_id, message_id)): Path<(String, String)>,
) -> Result<Json<PromptView>, Failure> {
    let seen = chats::prompt_for(&ctx.state.db, &ctx.caller.user, &session_id, &message_id)
        .await
        .map_err(|e| ctx.fail(e))?;
    Ok(Json(seen))
}

/// A message to send.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
pub struct NewMessage {
    /// What the user says (1 to 4,000 characters).
    pub text: String,
    /// The chat's last message as the client knows it: if the chat has moved on since (another
    /// client sent, regenerated or switched a version), the message is refused with a 409.
    #[serde(default)]
    pub after: Option<String>,
}

/// One reply event as Server-Sent Events: `accepted` (id 0), `delta` (id: the reply's length so
/// far, in characters — what to send back as `Last-Event-ID` to resume), then `finished` or
/// `failed`.
fn sse_event(ev: &ChatEvent, sent: &mut usize) -> Event {
    match ev {
        ChatEvent::Accepted { .. } => Event::default()
            .event("accepted")
            .id("0")
            .json_data(ev)
            .unwrap_or_default(),
        // A reply written again or on: its text so far counts towards the ids that follow.
        ChatEvent::Replying { reply, .. } => {
            *sent = reply.content.chars().count();
            Event::default()
                .event("replying")
                .id(sent.to_string())
                .json_data(ev)
                .unwrap_or_default()
        }
        ChatEvent::Delta { text } => {
            *sent += text.chars().count();
            Event::default()
                .event("delta")
                .id(sent.to_string())
                .json_data(serde_json::json!({ "text": text }))
                .unwrap_or_default()
        }
        ChatEvent::Formatted { html } => Event::default()
            .event("formatted")
            .json_data(serde_json::json!({ "html": html }))
            .unwrap_or_default(),
        ChatEvent::Finished { status } => Event::default()
            .event("finished")
            .json_data(serde_json::json!({ "status": status }))
            .unwrap_or_default(),
        ChatEvent::Failed { message } => Event::default()
            .event("failed")
            .json_data(serde_json::json!({ "message": message }))
            .unwrap_or_default(),
    }
}

#[utoipa::path(
    post,
    path = "/api/v1/chats/{session_id}/messages",
    tag = "chats",
    summary = "Sends a message; the reply streams back as Server-Sent Events",
    description = "The message is saved before the model is called. Events: `accepted` (the saved message and the reply's id), `delta` (more text; its id is the reply's length so far), then `finished` (with the status) or `failed` (with a sentence). The reply is written and saved even if the client goes away; follow it again at /api/v1/replies/{reply_id}/events with Last-Event-ID.",
    params(("session_id" = String, Path, description = "The chat's id")),
    request_body(content = NewMessage),
    responses(
        (status = 200, description = "The reply's events", content_type = "text/event-stream", body = String),
        (status = 401, description = "No valid key", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "A read-only key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such chat of the owner's", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A reply is still being written in this chat; nothing was saved", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The message is empty or too long", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Over a model-call limit (with Retry-After); nothing was saved", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn send_message(
    ctx: Ctx,
    Path(session_id): Path<String>,
    body: Result<Json<NewMessage>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, Failure> {
    ctx.writer()?;
    let Json(msg) = body.map_err(|e| ctx.fail(AppError::BadRequest(e.body_text())))?;
    let stream = chats::send_for(
        &ctx.state,
        ctx.caller.user.clone(),
        session_id,
        msg.text,
        msg.after,
    )
    .await
    .map_err(|e| ctx.fail(e))?;
    Ok(as_sse(stream, sse_event))
}

/// A new version of a message.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
pub struct EditedMessage {
    /// The new text (1 to 4,000 characters for the user's message, to 20,000 for a reply).
    pub text: String,
}

/// Which version of a message's place to show.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
pub struct ChosenVersion {
    /// 1-based, in the order the versions were written (a message's `version` of `versions`).
    pub version: u32,
}

/// A chat's message changed without the model: the chat's latest page as it now is.
async fn changed_page(
    ctx: &Ctx,
    (session_id, message_id): (String, String),
    edit: chats::Edit,
) -> Result<Json<MessagePage>, Failure> {
    let page = chats::edit_for(&ctx.state, &ctx.caller.user, &session_id, &message_id, edit)
        .await
        .map_err(|e| ctx.fail(e))?;
    Ok(Json(page))
}

#[utoipa::path(
    patch,
    path = "/api/v1/chats/{session_id}/messages/{message_id}",
    tag = "chats",
    summary = "Edits a message: the edit is a new version, the old one kept; the chat then ends with it",
    params(
        ("session_id" = String, Path, description = "The chat's id"),
        ("message_id" = String, Path, description = "The message's id"),
    ),
    request_body(content = EditedMessage),
    responses(
        (status = 200, description = "The chat's latest page", body = MessagePage),
        (status = 401, description = "No valid key", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "A read-only key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such message in the owner's chat", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A reply is being written in this chat; nothing was changed", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The text is empty or too long", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn edit_chat_message(
    ctx: Ctx,
    Path(ids): Path<(String, String)>,
    body: Result<Json<EditedMessage>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<MessagePage>, Failure> {
    ctx.writer()?;
    let Json(edited) = body.map_err(|e| ctx.fail(AppError::BadRequest(e.body_text())))?;
    changed_page(&ctx, ids, chats::Edit::Text(edited.text)).await
}

#[utoipa::path(
    delete,
    path = "/api/v1/chats/{session_id}/messages/{message_id}",
    tag = "chats",
    summary = "Deletes a message and what follows it on its branch (restorable); another version takes its place if it has one",
    params(
        ("session_id" = String, Path, description = "The chat's id"),
        ("message_id" = String, Path, description = "The message's id"),
    ),
    responses(
        (status = 200, description = "The chat's latest page", body = MessagePage),
        (status = 401, description = "No valid key", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "A read-only key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such message in the owner's chat (or it is deleted)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A reply is being written in this chat; nothing was changed", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn delete_chat_message(
    ctx: Ctx,
    Path(ids): Path<(String, String)>,
) -> Result<Json<MessagePage>, Failure> {
    ctx.writer()?;
    changed_page(&ctx, ids, chats::Edit::Delete).await
}

#[utoipa::path(
    post,
    path = "/api/v1/chats/{session_id}/messages/{message_id}/restore",
    tag = "chats",
    summary = "Undoes a delete: the message and what followed it are shown again",
    params(
        ("session_id" = String, Path, description = "The chat's id"),
        ("message_id" = String, Path, description = "The deleted message's id"),
    ),
    responses(
        (status = 200, description = "The chat's latest page", body = MessagePage),
        (status = 401, description = "No valid key", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "A read-only key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such deleted message in the owner's chat", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A reply is being written in this chat; nothing was changed", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn restore_chat_message(
    ctx: Ctx,
    Path(ids): Path<(String, String)>,
) -> Result<Json<MessagePage>, Failure> {
    ctx.writer()?;
    changed_page(&ctx, ids, chats::Edit::Restore).await
}

#[utoipa::path(
    post,
    path = "/api/v1/chats/{session_id}/messages/{message_id}/version",
    tag = "chats",
    summary = "Shows another version of a message's place, with the latest conversation that followed it",
    params(
        ("session_id" = String, Path, description = "The chat's id"),
        ("message_id" = String, Path, description = "Any version's id"),
    ),
    request_body(content = ChosenVersion),
    responses(
        (status = 200, description = "The chat's latest page", body = MessagePage),
        (status = 401, description = "No valid key", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "A read-only key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such message in the owner's chat", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A reply is being written in this chat; nothing was changed", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "No such version", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn show_chat_version(
    ctx: Ctx,
    Path(ids): Path<(String, String)>,
    body: Result<Json<ChosenVersion>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<MessagePage>, Failure> {
    ctx.writer()?;
    let Json(chosen) = body.map_err(|e| ctx.fail(AppError::BadRequest(e.body_text())))?;
    changed_page(&ctx, ids, chats::Edit::Show(chosen.version)).await
}

#[utoipa::path(
    post,
    path = "/api/v1/chats/{session_id}/messages/{message_id}/regenerate",
    tag = "chats",
    summary = "Writes a new version of a reply (the old one kept), or a reply to a user message; streams it as Server-Sent Events",
    description = "Events: `replying` (the chat's latest page, ending with the message answered, and the new reply), `delta` (more text; its id is the reply's length so far), then `finished` or `failed`, as for a sent message.",
    params(
        ("session_id" = String, Path, description = "The chat's id"),
        ("message_id" = String, Path, description = "The reply to write again, or the user message to answer"),
    ),
    responses(
        (status = 200, description = "The reply's events", content_type = "text/event-stream", body = String),
        (status = 401, description = "No valid key", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "A read-only key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such message in the owner's chat", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A reply is still being written in this chat; nothing was saved", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The chat's first message answers nothing and cannot be regenerated", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many model calls; `Retry-After` says when to try again", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn regenerate_chat_reply(
    ctx: Ctx,
    Path(ids): Path<(String, String)>,
) -> Result<Response, Failure> {
    reply_again(ctx, ids, false).await
}

/// A reply written again (`more: false`) or on, streamed as Server-Sent Events.
async fn reply_again(
    ctx: Ctx,
    (session_id, message_id): (String, String),
    more: bool,
) -> Result<Response, Failure> {
    ctx.writer()?;
    let stream = chats::reply_again_for(
        &ctx.state,
        ctx.caller.user.clone(),
        &session_id,
        &message_id,
        more,
    )
    .await
    .map_err(|e| ctx.fail(e))?;
    Ok(as_sse(stream, sse_event))
}

#[utoipa::path(
    post,
    path = "/api/v1/chats/{session_id}/messages/{message_id}/continue",
    tag = "chats",
    summary = "Writes on at the end of the chat's last reply, appending to it; streams it as Server-Sent Events",
    description = "Events: `replying` (the reply with its text so far; that length is the first id), `delta`, then `finished` or `failed`.",
    params(
        ("session_id" = String, Path, description = "The chat's id"),
        ("message_id" = String, Path, description = "The chat's last message, a reply"),
    ),
    responses(
        (status = 200, description = "The reply's events", content_type = "text/event-stream", body = String),
        (status = 401, description = "No valid key", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "A read-only key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such message in the owner's chat", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A reply is still being written in this chat; nothing was saved", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Not a reply, or not the chat's last message", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many model calls; `Retry-After` says when to try again", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn continue_chat_reply(
    ctx: Ctx,
    Path(ids): Path<(String, String)>,
) -> Result<Response, Failure> {
    reply_again(ctx, ids, true).await
}

/// A streaming service's lines of events (`T`, one JSON line each, as the app's pages read
/// them) as Server-Sent Events, each made by `to_event` (which counts the text sent so far).
fn as_sse<T: serde::de::DeserializeOwned + Send + 'static>(
    stream: leptos::server_fn::codec::TextStream<AppError>,
    mut to_event: impl FnMut(&T, &mut usize) -> Event + Send + 'static,
) -> Response {
    use futures::StreamExt;
    let mut lines = EventLines::<T>::default();
    let mut sent = 0usize;
    let events = stream.into_inner().flat_map(move |chunk| {
        let out: Vec<Result<Event, std::convert::Infallible>> = match chunk {
            Ok(text) => lines
                .push(&text)
                .into_iter()
                .filter_map(Result::ok)
                .map(|ev| Ok(to_event(&ev, &mut sent)))
                .collect(),
            Err(_) => Vec::new(),
        };
        futures::stream::iter(out)
    });
    Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response()
}

/// How often a followed reply is read again while it is being written.
const FOLLOW_EVERY: std::time::Duration = std::time::Duration::from_millis(250);
/// How long a follower stays at most (longer than any reply may take).
const FOLLOW_FOR: std::time::Duration = std::time::Duration::from_secs(15 * 60);

#[utoipa::path(
    get,
    path = "/api/v1/replies/{reply_id}/events",
    tag = "chats",
    summary = "Follows a reply: its text after `Last-Event-ID` characters, as it is written, to its end",
    description = "Works from any server of a deployment, for a reply being written or one already finished: the text saved so far after the offset comes as one `delta`, then more `delta`s as it is saved (every half second), then `finished` with the final status.",
    params(
        ("reply_id" = String, Path, description = "The reply's id (from `accepted`)"),
        ("Last-Event-ID" = Option<String>, Header, description = "The id of the last `delta` received: the characters already had"),
    ),
    responses(
        (status = 200, description = "The reply's remaining events", content_type = "text/event-stream", body = String),
        (status = 401, description = "No valid key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such reply in the owner's chats", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn follow_reply(
    ctx: Ctx,
    headers: HeaderMap,
    Path(reply_id): Path<String>,
) -> Result<Response, Failure> {
    app::infra::check_id(&reply_id).map_err(|e| ctx.fail(e))?;
    let db = ctx.state.db.clone();
    let user = ctx.caller.user.clone();
    // Found (and the owner's) before the stream starts: a 404 is a status, not an event.
    app::chat::store::reply_state(&db, &user, &reply_id)
        .await
        .map_err(|e| ctx.fail(AppError::internal("load reply", e)))?
        .ok_or_else(|| ctx.fail(AppError::NotFound))?;
    let from: usize = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    let deadline = tokio::time::Instant::now() + FOLLOW_FOR;
    // (characters sent, done)
    let events = futures::stream::unfold((from, false, true), move |(sent, done, first)| {
        let (db, user, reply_id) = (db.clone(), user.clone(), reply_id.clone());
        async move {
            if done || tokio::time::Instant::now() >= deadline {
                return None;
            }
            if !first {
                tokio::time::sleep(FOLLOW_EVERY).await;
            }
            let (status, content) = match app::chat::store::reply_state(&db, &user, &reply_id).await
            {
                Ok(Some(found)) => found,
                // Gone, or the database out of reach: the stream ends; the client may follow again.
                _ => return None,
            };
            let mut out: Vec<Result<Event, std::convert::Infallible>> = Vec::new();
            let len = content.chars().count();
            let mut now_sent = sent;
            if len > sent {
                let more: String = content.chars().skip(sent).collect();
                out.push(Ok(sse_event(
                    &ChatEvent::Delta { text: more },
                    &mut now_sent,
                )));
            }
            let finished = status != MessageStatus::Streaming;
            if finished {
                out.push(Ok(sse_event(
                    &ChatEvent::Finished { status },
                    &mut now_sent,
                )));
            }
            Some((futures::stream::iter(out), (now_sent, finished, false)))
        }
    });
    use futures::StreamExt;
    Ok(Sse::new(events.flatten())
        .keep_alive(KeepAlive::default())
        .into_response())
}

#[utoipa::path(
    post,
    path = "/api/v1/replies/{reply_id}/stop",
    tag = "chats",
    summary = "Stops a reply being written, on whichever server writes it; its text so far is kept",
    params(("reply_id" = String, Path, description = "The reply's id")),
    responses(
        (status = 204, description = "Stopped (or it had already ended)"),
        (status = 401, description = "No valid key", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "A read-only key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such reply in the owner's chats", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn stop_reply(ctx: Ctx, Path(reply_id): Path<String>) -> Result<StatusCode, Failure> {
    ctx.writer()?;
    chats::stop_for(&ctx.state, &ctx.caller.user, reply_id)
        .await
        .map_err(|e| ctx.fail(e))?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    post,
    path = "/api/v1/characters/{id}/runs",
    tag = "play",
    summary = "Starts a story with a character, from its opening line and start options",
    params(("id" = String, Path, description = "The character's id")),
    responses(
        (status = 201, description = "The new run; `Location` names it", body = RunView),
        (status = 401, description = "No valid key", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "A read-only key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such character of the owner's", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn start_run(ctx: Ctx, Path(id): Path<String>) -> Result<Response, Failure> {
    ctx.writer()?;
    let run = play::start_for(&ctx.state.db, &ctx.caller.user, &id)
        .await
        .map_err(|e| ctx.fail(e))?;
    let view = play::get_for(&ctx.state, &ctx.caller.user, &run)
        .await
        .map_err(|e| ctx.fail(e))?;
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, format!("{BASE}/runs/{run}"))],
        Json(view),
    )
        .into_response())
}

/// Which runs.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RunsQuery {
    /// Only this character's runs.
    pub character_id: Option<String>,
    /// How many (1 to 50; 50 by default).
    pub limit: Option<i64>,
}

#[utoipa::path(
    get,
    path = "/api/v1/runs",
    tag = "play",
    summary = "The key owner's runs, most recently played first",
    params(RunsQuery),
    responses(
        (status = 200, description = "The runs, each with its state and the ending reached", body = [RunSummary]),
        (status = 401, description = "No valid key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`character_id` is not one of the owner's characters", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn list_runs(ctx: Ctx, Q(q): Q<RunsQuery>) -> Result<Json<Vec<RunSummary>>, Failure> {
    let runs = play::list_for(&ctx.state.db, &ctx.caller.user, q.character_id, q.limit)
        .await
        .map_err(|e| ctx.fail(e))?;
    Ok(Json(runs))
}

#[utoipa::path(
    get,
    path = "/api/v1/runs/{run_id}",
    tag = "play",
    summary = "A run with every scene played: its transcript, and what may be chosen next",
    params(("run_id" = String, Path, description = "The run's id")),
    responses(
        (status = 200, description = "The run", body = RunView,
            headers(("ETag" = String, description = "Send back as If-None-Match"))),
        (status = 304, description = "Not modified since the ETag sent"),
        (status = 401, description = "No valid key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such run of the owner's", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn get_run(
    ctx: Ctx,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, Failure> {
    let run = play::get_for(&ctx.state, &ctx.caller.user, &id)
        .await
        .map_err(|e| ctx.fail(e))?;
    Ok(with_etag(&headers, StatusCode::OK, &run))
}

/// The player's next move.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
pub struct NewTurn {
    /// The id of the run's last scene as the client saw it (empty before the first scene): a
    /// choice made on a stale view is refused (409), not played twice.
    #[serde(default)]
    pub after: String,
    /// One of the options on offer (0-based `option`), or an `action` of the player's own.
    pub choice: PlayChoice,
}

/// One play event as Server-Sent Events: `accepted` (the saved choice as a scene being written),
/// `delta` (more dialogue; its id is the dialogue's length so far, in characters), then
/// `finished` (the scene as saved, and whether the run has ended) or `failed`.
fn play_sse(ev: &PlayEvent, sent: &mut usize) -> Event {
    let named = |name: &'static str| Event::default().event(name);
    match ev {
        PlayEvent::Accepted { turn } => named("accepted").id("0").json_data(turn),
        PlayEvent::Delta { text } => {
            *sent += text.chars().count();
            named("delta")
                .id(sent.to_string())
                .json_data(serde_json::json!({ "text": text }))
        }
        PlayEvent::Finished { turn, run } => {
            named("finished").json_data(serde_json::json!({ "turn": turn, "run": run }))
        }
        PlayEvent::Failed { message, turn } => {
            named("failed").json_data(serde_json::json!({ "message": message, "turn": turn }))
        }
    }
    .unwrap_or_default()
}

#[utoipa::path(
    post,
    path = "/api/v1/runs/{run_id}/turns",
    tag = "play",
    summary = "Plays the next scene; it streams back as Server-Sent Events",
    description = "The choice is saved before the model is called. Events: `accepted` (the scene being written), `delta` (more of the character's dialogue), then `finished` (the scene with its three options, or at the last scene the ending reached; and the run's status) or `failed` (a sentence; the scene is kept, marked, and can be played again in the app). The scene is written and saved even if the client goes away.",
    params(("run_id" = String, Path, description = "The run's id")),
    request_body(content = NewTurn),
    responses(
        (status = 200, description = "The scene's events", content_type = "text/event-stream", body = String),
        (status = 401, description = "No valid key", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "A read-only key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such run of the owner's", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A scene is being written, or the story moved on since `after`; nothing saved", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "An option not on offer, both an option and an action, or an action too long", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Over a model-call limit (with Retry-After); nothing saved", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn play_turn(
    ctx: Ctx,
    Path(id): Path<String>,
    body: Result<Json<NewTurn>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, Failure> {
    ctx.writer()?;
    let Json(t) = body.map_err(|e| ctx.fail(AppError::BadRequest(e.body_text())))?;
    let stream = play::turn_for(&ctx.state, ctx.caller.user.clone(), id, t.after, t.choice)
        .await
        .map_err(|e| ctx.fail(e))?;
    Ok(as_sse(stream, play_sse))
}

/// A reference page for the document, rendered on the server (no script): each operation with
/// its parameters, body and responses, and a `curl` line to try it.
fn reference_page(doc: &utoipa::openapi::OpenApi) -> String {
    fn esc(s: &str) -> String {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
    }
    let mut ops = String::new();
    for (path, item) in doc.paths.paths.iter() {
        let methods = [
            ("GET", &item.get),
            ("POST", &item.post),
            ("PUT", &item.put),
            ("DELETE", &item.delete),
        ];
        for (method, op) in methods {
            let Some(op) = op else { continue };
            let summary = op.summary.clone().unwrap_or_default();
            let params: Vec<String> = op
                .parameters
                .iter()
                .flatten()
                .map(|p| {
                    format!(
                        "<li><code>{}</code> (in the {}){}</li>",
                        esc(&p.name),
                        match p.parameter_in {
                            utoipa::openapi::path::ParameterIn::Path => "path",
                            utoipa::openapi::path::ParameterIn::Query => "query",
                            utoipa::openapi::path::ParameterIn::Header => "header",
                            utoipa::openapi::path::ParameterIn::Cookie => "cookie",
                        },
                        p.description
                            .as_deref()
                            .map(|d| format!(": {}", esc(d)))
                            .unwrap_or_default()
                    )
                })
                .collect();
            let responses: Vec<String> = op
                .responses
                .responses
                .iter()
                .map(|(code, r)| {
                    let text = match r {
                        utoipa::openapi::RefOr::T(r) => r.description.clone(),
                        utoipa::openapi::RefOr::Ref(r) => r.ref_location.clone(),
                    };
                    format!("<li><code>{}</code> {}</li>", esc(code), esc(&text))
                })
                .collect();
            let body = if method == "POST" {
                " -H 'content-type: application/json' -d @character.json"
            } else {
                ""
            };
            ops.push_str(&format!(
                "<section><h2><code>{method} {}</code></h2><p>{}</p>{}<h3>Responses</h3><ul>{}</ul>\
                 <pre><code>curl -X {method} -H 'authorization: Bearer pf_…'{body} http://HOST{}</code></pre></section>",
                esc(path),
                esc(&summary),
                if params.is_empty() {
                    String::new()
                } else {
                    format!("<h3>Parameters</h3><ul>{}</ul>", params.join(""))
                },
                responses.join(""),
                esc(path),
            ));
        }
    }
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>PersonaFlux API</title>\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"></head><body><main>\
         <h1>PersonaFlux API</h1><p>{}</p><p>The machine-readable document: <a href=\"{BASE}/openapi.json\">openapi.json</a> \
         (OpenAPI {}). Make a key on <a href=\"/settings/keys\">the settings page</a>.</p>{ops}</main></body></html>",
        esc(doc.info.description.as_deref().unwrap_or("")),
        match doc.openapi {
            utoipa::openapi::OpenApiVersion::Version31 => "3.1",
        }
    )
}

/// The period of a usage report.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UsageQuery {
    /// 7, 30 or 90 (30 by default): the last so many days, today (UTC) included.
    pub days: Option<u16>,
}

#[utoipa::path(
    get,
    path = "/api/v1/usage",
    tag = "usage",
    summary = "The key owner's model usage over a period: per day, by use, provider, language and kind of failure",
    params(UsageQuery),
    responses(
        (status = 200, description = "The figures the usage page shows", body = UsageReport,
            headers(("ETag" = String, description = "Send back as If-None-Match"))),
        (status = 304, description = "Not modified since the ETag sent"),
        (status = 400, description = "`days` is not a number", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid key", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Not a period of 7, 30 or 90 days", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn usage(ctx: Ctx, headers: HeaderMap, Q(q): Q<UsageQuery>) -> Result<Response, Failure> {
    let report =
        app::usage::service::report_for(&ctx.state.db, &ctx.caller.user, q.days.unwrap_or(30))
            .await
            .map_err(|e| ctx.fail(e))?;
    Ok(with_etag(&headers, StatusCode::OK, &report))
}

/// What to write from: a draft (the wizard's fields) and which take.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
pub struct GenerateRequest {
    /// The character as far as it goes: name, traits, age, gender, language at least.
    pub draft: CharacterDraft,
    /// Another number gives another take (0 by default).
    #[serde(default)]
    pub variation: u64,
}

#[utoipa::path(
    post,
    path = "/api/v1/generate",
    tag = "generate",
    summary = "Writes a character's backstory, world, opening line, start options and endings from a draft",
    description = "Returns the draft with its story filled in, ready to POST to /api/v1/characters (nothing is saved). Counts against the model-call limits; a read-only key may not.",
    request_body(content = GenerateRequest),
    responses(
        (status = 200, description = "The draft with its story; `offline` when the built-in offline writer wrote it", body = Rewritten),
        (status = 401, description = "No valid key", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "A read-only key", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The draft's name, traits, age, gender or language are not valid (per field)", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Over a model-call limit (with Retry-After)", body = Problem, content_type = "application/problem+json"),
        (status = 502, description = "The model's answer could not be used, or its service failed", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn generate(
    ctx: Ctx,
    body: Result<Json<GenerateRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<Rewritten>, Failure> {
    ctx.writer()?;
    let Json(req) = body.map_err(|e| ctx.fail(AppError::BadRequest(e.body_text())))?;
    let g = characters::generate_for(
        &ctx.state,
        &ctx.caller.user,
        req.draft.clone(),
        req.variation,
    )
    .await
    .map_err(|e| ctx.fail(e))?;
    Ok(Json(Rewritten {
        draft: req.draft.with_story(&g.story),
        offline: g.offline,
    }))
}

#[utoipa::path(
    post,
    path = "/api/v1/generate/{section}",
    tag = "generate",
    summary = "Writes one section of a draft again, keeping every other field",
    description = "`section` is `backstory`, `story_context` (the world), `opening_line`, `start_options` or `endings`. The other fields go to the model as context, so the new section agrees with them. Nothing is saved: send the draft back with PUT /api/v1/characters/{id} (with If-Match) or POST /api/v1/characters.",
    params(("section" = String, Path, description = "backstory, story_context, opening_line, start_options or endings")),
    request_body(content = GenerateRequest),
    responses(
        (status = 200, description = "The draft with the new section", body = Rewritten),
        (status = 401, description = "No valid key", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "A read-only key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such section", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The draft is not valid, or longer than a character can be", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Over a model-call limit (with Retry-After)", body = Problem, content_type = "application/problem+json"),
        (status = 502, description = "The model's answer could not be used, or its service failed", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn generate_section(
    ctx: Ctx,
    Path(section): Path<String>,
    body: Result<Json<GenerateRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<Rewritten>, Failure> {
    ctx.writer()?;
    let section = Section::ALL
        .into_iter()
        .find(|s| s.key() == section)
        .ok_or_else(|| ctx.fail(AppError::NotFound))?;
    let Json(req) = body.map_err(|e| ctx.fail(AppError::BadRequest(e.body_text())))?;
    let r = characters::regenerate_section_for(
        &ctx.state,
        &ctx.caller.user,
        req.draft,
        section,
        req.variation,
    )
    .await
    .map_err(|e| ctx.fail(e))?;
    Ok(Json(r))
}

#[utoipa::path(
    post,
    path = "/api/v1/runs/{run_id}/turns/{turn_id}/reroll",
    tag = "play",
    summary = "Writes the run's last scene again (the old one kept, superseded); it streams back as Server-Sent Events",
    description = "The same events as playing a scene: `accepted`, `delta`, then `finished` or `failed`.",
    params(
        ("run_id" = String, Path, description = "The run's id"),
        ("turn_id" = String, Path, description = "The last scene's id"),
    ),
    responses(
        (status = 200, description = "The scene's events", content_type = "text/event-stream", body = String),
        (status = 401, description = "No valid key", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "A read-only key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such run of the owner's, or no such scene in it", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A scene is being written, or this is not the last scene", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Over a model-call limit (with Retry-After)", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn reroll_turn(
    ctx: Ctx,
    Path((run_id, turn_id)): Path<(String, String)>,
) -> Result<Response, Failure> {
    ctx.writer()?;
    let stream = play::reroll_for(&ctx.state, ctx.caller.user.clone(), &run_id, &turn_id)
        .await
        .map_err(|e| ctx.fail(e))?;
    Ok(as_sse(stream, play_sse))
}

#[utoipa::path(
    get,
    path = "/api/v1/twin",
    tag = "twin",
    summary = "The key owner's twin: name, bio, whether open to matches, and its Shades",
    responses(
        (status = 200, description = "The twin (`exists` is false until it is first saved; the draft then starts from the owner's name)", body = TwinView,
            headers(("ETag" = String, description = "Send back as If-None-Match"))),
        (status = 304, description = "Not modified since the ETag sent"),
        (status = 401, description = "No valid key", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn get_twin(ctx: Ctx, headers: HeaderMap) -> Result<Response, Failure> {
    let twin = app::twins::service::view(&ctx.state, &ctx.caller.user)
        .await
        .map_err(|e| ctx.fail(e))?;
    Ok(with_etag(&headers, StatusCode::OK, &twin))
}

#[utoipa::path(
    put,
    path = "/api/v1/twin",
    tag = "twin",
    summary = "Saves the key owner's twin (validated as on the twin page)",
    request_body(content = TwinDraft),
    responses(
        (status = 200, description = "The twin as saved", body = TwinView),
        (status = 401, description = "No valid key", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "A read-only key", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A field or a Shade is not valid (per field)", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn save_twin(
    ctx: Ctx,
    body: Result<Json<TwinDraft>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<TwinView>, Failure> {
    ctx.writer()?;
    let Json(draft) = body.map_err(|e| ctx.fail(AppError::BadRequest(e.body_text())))?;
    let twin = app::twins::service::save_for(&ctx.state, &ctx.caller.user, draft)
        .await
        .map_err(|e| ctx.fail(e))?;
    Ok(Json(twin))
}

#[utoipa::path(
    get,
    path = "/api/v1/matches",
    tag = "matches",
    summary = "The key owner's matches, each with the other side, the score (when current) and the reasoning's first sentence",
    responses(
        (status = 200, description = "The matches", body = [MatchSummary]),
        (status = 401, description = "No valid key", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn list_matches(ctx: Ctx) -> Result<Json<Vec<MatchSummary>>, Failure> {
    let list = app::matches::service::list_for(&ctx.state, &ctx.caller.user)
        .await
        .map_err(|e| ctx.fail(e))?;
    Ok(Json(list))
}

/// The two sides of a match to work out: one of them the key owner's twin.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
pub struct NewMatch {
    pub a: PersonaRef,
    pub b: PersonaRef,
}

#[utoipa::path(
    post,
    path = "/api/v1/matches",
    tag = "matches",
    summary = "Works out a match: a score from 0 to 100, the reasoning, strengths and challenges",
    description = "One side is the owner's twin; the other another open twin, or one of the owner's characters or their twin. Counts against the model-call limits.",
    request_body(content = NewMatch),
    responses(
        (status = 200, description = "The match", body = MatchView),
        (status = 401, description = "No valid key", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "A read-only key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "A side that is not there, or not open to matches", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "This match is being worked out right now", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Neither side is the owner's twin, or both are the same", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Over a model-call limit (with Retry-After)", body = Problem, content_type = "application/problem+json"),
        (status = 502, description = "The model's answer could not be used, or its service failed", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn work_out_match(
    ctx: Ctx,
    body: Result<Json<NewMatch>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<MatchView>, Failure> {
    ctx.writer()?;
    let Json(m) = body.map_err(|e| ctx.fail(AppError::BadRequest(e.body_text())))?;
    let view = app::matches::service::score_for(&ctx.state, &ctx.caller.user, m.a, m.b)
        .await
        .map_err(|e| ctx.fail(e))?;
    Ok(Json(view))
}

#[utoipa::path(
    get,
    path = "/api/v1/matches/{match_id}",
    tag = "matches",
    summary = "A whole match: both sides, score, reasoning, strengths, challenges, and its icebreaker if one was written",
    params(("match_id" = String, Path, description = "The match's id")),
    responses(
        (status = 200, description = "The match", body = MatchView,
            headers(("ETag" = String, description = "Send back as If-None-Match"))),
        (status = 304, description = "Not modified since the ETag sent"),
        (status = 401, description = "No valid key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such match with a side of the owner's", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn get_match(
    ctx: Ctx,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, Failure> {
    let view = app::matches::service::get_for(&ctx.state, &ctx.caller.user, &id)
        .await
        .map_err(|e| ctx.fail(e))?;
    Ok(with_etag(&headers, StatusCode::OK, &view))
}

#[utoipa::path(
    post,
    path = "/api/v1/cards",
    tag = "cards",
    summary = "Reads a Character Card file (V1, V2 or V3; JSON, or a PNG carrying one) into a draft",
    description = "Send the file itself as the body (up to 8 MiB). The card is kept as a pending import for a day: save the draft (after filling what cards have no field for — age, start options, endings; POST /api/v1/generate/{section} can write them) with POST /api/v1/characters?import={id}, and the card's other fields (lorebook, extensions, alternate greetings) are kept with the character.",
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "The card file"),
    responses(
        (status = 200, description = "The draft made from the card, and what the import could not fill", body = CardImport),
        (status = 401, description = "No valid key", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "A read-only key", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Over 8 MiB", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Not a card this app can read, with the reason", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn import_card(ctx: Ctx, body: axum::body::Body) -> Result<Json<CardImport>, Failure> {
    ctx.writer()?;
    // The body's size is bounded before this handler (`limits::body_limit`).
    let bytes = axum::body::to_bytes(body, app::domain::card::MAX_CARD_BYTES)
        .await
        .map_err(|_| {
            ctx.fail(AppError::Transport(
                "the card file could not be read".into(),
            ))
        })?;
    if bytes.is_empty() {
        return Err(ctx.fail(AppError::BadRequest(
            "Send the card file as the request's body.".into(),
        )));
    }
    let view = app::characters::cards::import_bytes(&ctx.state.db, &ctx.caller.user, &bytes)
        .await
        .map_err(|e| ctx.fail(e))?;
    Ok(Json(view))
}

/// Which file a card is exported as.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CardQuery {
    /// `png` (the default: the portrait carrying the V3 card and a V2 backfill) or `json` (V3).
    pub format: Option<String>,
}

#[utoipa::path(
    get,
    path = "/api/v1/characters/{id}/card",
    tag = "cards",
    summary = "A character as a Character Card: V3 JSON, or a PNG carrying V3 (`ccv3`) and V2 (`chara`)",
    params(("id" = String, Path, description = "The character's id"), CardQuery),
    responses(
        (status = 200, description = "The card file, named in Content-Disposition", content_type = "image/png", body = Vec<u8>),
        (status = 401, description = "No valid key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such character of the owner's", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A format other than png or json", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn export_card(
    ctx: Ctx,
    Path(id): Path<String>,
    Q(q): Q<CardQuery>,
) -> Result<Response, Failure> {
    use app::characters::cards::{self, ExportFormat};
    let (format, mime) = match q.format.as_deref().unwrap_or("png") {
        "png" => (ExportFormat::Png, "image/png"),
        "json" => (ExportFormat::Json, "application/json"),
        _ => return Err(ctx.fail(AppError::BadRequest("The format is png or json.".into()))),
    };
    let (bytes, name) = cards::export(&ctx.state.db, &ctx.caller.user, &id, format)
        .await
        .map_err(|e| ctx.fail(AppError::internal("export card", e)))?
        .ok_or_else(|| ctx.fail(AppError::NotFound))?;
    Ok((
        [
            (header::CONTENT_TYPE, mime.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        bytes,
    )
        .into_response())
}

/// Characters to act on, by id.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
pub struct Selection {
    /// 1 to 100 of the owner's characters.
    pub ids: Vec<String>,
}

impl Selection {
    /// The ids, counted before any is looked up; repeats dropped. (An id of no possible form is
    /// simply not found, as everywhere.)
    fn checked(self, ctx: &Ctx) -> Result<Vec<String>, Failure> {
        characters::selection(self.ids).map_err(|e| ctx.fail(e))
    }
}

/// What a bulk delete did, per character.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
pub struct BulkDeleted {
    /// Moved to the trash (restorable for 30 days in the app).
    pub deleted: Vec<String>,
    /// Not the owner's, or already in the trash: nothing done.
    pub not_found: Vec<String>,
}

#[utoipa::path(
    post,
    path = "/api/v1/characters/bulk/delete",
    tag = "characters",
    summary = "Moves several characters to the trash at once",
    request_body(content = Selection),
    responses(
        (status = 200, description = "Which were moved to the trash, and which were not found", body = BulkDeleted),
        (status = 401, description = "No valid key", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "A read-only key", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "No ids, or more than 100", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn bulk_delete(
    ctx: Ctx,
    body: Result<Json<Selection>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<BulkDeleted>, Failure> {
    ctx.writer()?;
    let Json(sel) = body.map_err(|e| ctx.fail(AppError::BadRequest(e.body_text())))?;
    let ids = sel.checked(&ctx)?;
    let mut out = BulkDeleted {
        deleted: Vec::new(),
        not_found: Vec::new(),
    };
    for id in ids {
        match characters::delete_for(&ctx.state.db, &ctx.caller.user, &id).await {
            Ok(()) => out.deleted.push(id),
            Err(AppError::NotFound) => out.not_found.push(id),
            Err(e) => return Err(ctx.fail(e)),
        }
    }
    tracing::info!(key_id = %ctx.caller.key_id, deleted = out.deleted.len(), "characters deleted in bulk through the API");
    Ok(Json(out))
}

#[utoipa::path(
    get,
    path = "/api/v1/characters/{id}/picture",
    tag = "characters",
    summary = "A character's uploaded picture: its 2:3 portrait as JPEG",
    params(("id" = String, Path, description = "The character's id")),
    responses(
        (status = 200, description = "The portrait", content_type = "image/jpeg", body = Vec<u8>,
            headers(("ETag" = String, description = "Send back as If-None-Match"))),
        (status = 304, description = "Not modified since the ETag sent"),
        (status = 401, description = "No valid key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such character of the owner's, or it shows a drawn avatar, not a picture", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn get_picture(
    ctx: Ctx,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, Failure> {
    use app::characters::pictures;
    let c = characters::get_for(&ctx.state.db, &ctx.caller.user, &id)
        .await
        .map_err(|e| ctx.fail(e))?;
    let picture = app::domain::Avatar::picture_of(&c.draft.avatar)
        .ok_or_else(|| ctx.fail(AppError::NotFound))?;
    let jpeg = pictures::get(
        &ctx.state.db,
        &ctx.caller.user,
        picture,
        pictures::Size::Portrait,
    )
    .await
    .map_err(|e| ctx.fail(AppError::internal("load picture", e)))?
    .ok_or_else(|| ctx.fail(AppError::NotFound))?;
    let etag = format!("\"{picture}-p\"");
    if names(headers.get(header::IF_NONE_MATCH), &etag) {
        return Ok((StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response());
    }
    Ok((
        [
            (header::CONTENT_TYPE, "image/jpeg".to_string()),
            (header::ETAG, etag),
        ],
        jpeg,
    )
        .into_response())
}

#[utoipa::path(
    put,
    path = "/api/v1/characters/{id}/picture",
    tag = "characters",
    summary = "Gives a character a picture of your own (PNG, JPEG or WebP, up to 5 MB)",
    description = "Send the file itself as the body. It is decoded, turned upright, stripped of its metadata and re-encoded as a 2:3 portrait and a thumbnail; the character's avatar becomes `upload:` and the picture's id. To go back to a drawn avatar, PUT the character with one of the presets.",
    params(("id" = String, Path, description = "The character's id")),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "The picture file"),
    responses(
        (status = 200, description = "The character, showing the picture", body = CharacterView),
        (status = 401, description = "No valid key", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "A read-only key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such character of the owner's", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Over 5 MB", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Not a PNG, JPEG or WebP picture, damaged, or over 8,000 pixels a side or 25 million in all", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn put_picture(
    ctx: Ctx,
    Path(id): Path<String>,
    body: axum::body::Body,
) -> Result<Json<CharacterView>, Failure> {
    ctx.writer()?;
    // The body's size is bounded before this handler (`limits::body_limit`).
    let bytes = axum::body::to_bytes(body, app::characters::pictures::MAX_UPLOAD_BYTES)
        .await
        .map_err(|_| ctx.fail(AppError::Transport("the picture could not be read".into())))?;
    if bytes.is_empty() {
        return Err(ctx.fail(AppError::BadRequest(
            "Send the picture file as the request's body.".into(),
        )));
    }
    let db = &ctx.state.db;
    app::characters::pictures::set_for(db, &ctx.caller.user, &id, bytes.to_vec())
        .await
        .map_err(|e| ctx.fail(e))?;
    tracing::info!(key_id = %ctx.caller.key_id, "character picture set through the API");
    let c = characters::get_for(db, &ctx.caller.user, &id)
        .await
        .map_err(|e| ctx.fail(e))?;
    Ok(Json(c))
}

/// New labels for a character: what is absent stays as it is.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
pub struct Labels {
    /// Replaces the tags: at most 12 distinct ones (ignoring case), each 1 to 30 characters on one
    /// line, without a comma.
    #[schema(max_items = 48)]
    pub tags: Option<Vec<String>>,
    /// Marks or unmarks the character as a favourite.
    pub favourite: Option<bool>,
}

/// The tags of a request, checked (a sentence naming what is wrong otherwise).
fn tags_of(ctx: &Ctx, tags: &[String]) -> Result<app::domain::Tags, Failure> {
    app::domain::Tags::parse(tags).map_err(|e| ctx.fail(AppError::BadRequest(e.to_string())))
}

#[utoipa::path(
    patch,
    path = "/api/v1/characters/{id}/labels",
    tag = "characters",
    summary = "Sets a character's tags and favourite mark, the owner's own labels (not an edit of the character)",
    params(("id" = String, Path, description = "The character's id")),
    request_body(content = Labels),
    responses(
        (status = 200, description = "The character with its new labels", body = CharacterView,
            headers(("ETag" = String, description = "The new version's"))),
        (status = 401, description = "No valid key", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "A read-only key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such character of the owner's", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Too many tags, or one that is too long, blank or holds a comma", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn set_labels(
    ctx: Ctx,
    Path(id): Path<String>,
    body: Result<Json<Labels>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, Failure> {
    ctx.writer()?;
    let Json(labels) = body.map_err(|e| ctx.fail(AppError::BadRequest(e.body_text())))?;
    let tags = labels
        .tags
        .as_deref()
        .map(|t| tags_of(&ctx, t))
        .transpose()?;
    let (db, user) = (&ctx.state.db, &ctx.caller.user);
    if let Some(tags) = &tags {
        characters::set_tags_for(db, user, &id, tags)
            .await
            .map_err(|e| ctx.fail(e))?;
    }
    if let Some(f) = labels.favourite {
        characters::set_favourite_for(db, user, &id, f)
            .await
            .map_err(|e| ctx.fail(e))?;
    }
    let c = characters::get_for(db, user, &id)
        .await
        .map_err(|e| ctx.fail(e))?;
    // The new version's tag; a conditional header of the request is not a reason for a 304 here.
    Ok(with_etag(&HeaderMap::new(), StatusCode::OK, &c))
}

/// What to do to the labels of several characters.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LabelAction {
    /// Add `tags` to each (those a character has already are not repeated).
    Tag,
    /// Remove `tags` from each.
    Untag,
    /// Mark each as a favourite.
    Favourite,
    /// Unmark each as a favourite.
    Unfavourite,
}

/// Several characters' labels to change at once.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
pub struct BulkLabels {
    /// 1 to 100 of the owner's characters.
    pub ids: Vec<String>,
    pub action: LabelAction,
    /// For `tag` and `untag`: 1 to 12 tags, each 1 to 30 characters without a comma.
    #[serde(default)]
    #[schema(max_items = 48)]
    pub tags: Vec<String>,
}

#[utoipa::path(
    post,
    path = "/api/v1/characters/bulk/labels",
    tag = "characters",
    summary = "Tags, untags, or (un)marks as favourites several characters at once",
    request_body(content = BulkLabels),
    responses(
        (status = 200, description = "Which were changed, which were not found, which already had as many tags as a character may, and which had their tags changed by someone else meanwhile (try those again)", body = BulkOutcome),
        (status = 401, description = "No valid key", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "A read-only key", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "No ids or more than 100, or no tags (or bad ones) for tag and untag", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn bulk_labels(
    ctx: Ctx,
    body: Result<Json<BulkLabels>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<BulkOutcome>, Failure> {
    use characters::BulkAction;
    ctx.writer()?;
    let Json(req) = body.map_err(|e| ctx.fail(AppError::BadRequest(e.body_text())))?;
    let ids = characters::selection(req.ids).map_err(|e| ctx.fail(e))?;
    let tags = || {
        let tags = tags_of(&ctx, &req.tags)?;
        if tags.is_empty() {
            return Err(ctx.fail(AppError::BadRequest(
                "Name the tags to add or remove.".into(),
            )));
        }
        Ok(tags)
    };
    let action = match req.action {
        LabelAction::Tag => BulkAction::Tag(tags()?),
        LabelAction::Untag => BulkAction::Untag(tags()?),
        LabelAction::Favourite => BulkAction::Favourite(true),
        LabelAction::Unfavourite => BulkAction::Favourite(false),
    };
    let out = characters::bulk_for(&ctx.state.db, &ctx.caller.user, ids, &action)
        .await
        .map_err(|e| ctx.fail(e))?;
    tracing::info!(key_id = %ctx.caller.key_id, changed = out.done.len(), "character labels changed in bulk through the API");
    Ok(Json(out))
}

/// Characters to export, by id.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExportQuery {
    /// 1 to 100 of the owner's character ids, separated by commas.
    pub ids: String,
}

#[utoipa::path(
    get,
    path = "/api/v1/characters/bulk/export",
    tag = "cards",
    summary = "Several characters as Character Card PNGs in one zip",
    params(ExportQuery),
    responses(
        (status = 200, description = "A zip of one card PNG per character", content_type = "application/zip", body = Vec<u8>),
        (status = 401, description = "No valid key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "One of them is not the owner's (nothing exported)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "No ids, or more than 100", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn bulk_export(ctx: Ctx, Q(q): Q<ExportQuery>) -> Result<Response, Failure> {
    let ids = Selection {
        ids: q.ids.split(',').map(|s| s.trim().to_string()).collect(),
    }
    .checked(&ctx)?;
    let zip = app::characters::cards::export_some(&ctx.state.db, &ctx.caller.user, &ids)
        .await
        .map_err(|e| ctx.fail(AppError::internal("export cards", e)))?
        .ok_or_else(|| ctx.fail(AppError::NotFound))?;
    Ok(crate::routes::zip_download(zip, "characters.zip"))
}

/// A page of chats.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ChatsQuery {
    /// Only the chats with this character (its id), or with the owner's twin (`twin`).
    pub with: Option<String>,
    /// The last chat of the previous page (its `next`); none for the most recent.
    pub after: Option<String>,
    /// How many (1 to 100; 24 by default).
    pub limit: Option<u32>,
}

#[utoipa::path(
    get,
    path = "/api/v1/chats",
    tag = "chats",
    summary = "The key owner's chats, most recently active first, a page at a time",
    params(ChatsQuery),
    responses(
        (status = 200, description = "A page; `next` is the cursor for the one after", body = ChatList,
            headers(("ETag" = String, description = "Send back as If-None-Match"))),
        (status = 304, description = "Not modified since the ETag sent"),
        (status = 401, description = "No valid key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`after` is not one of the owner's chats", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn list_chats(
    ctx: Ctx,
    headers: HeaderMap,
    Q(q): Q<ChatsQuery>,
) -> Result<Response, Failure> {
    let list = chats::list_for(
        &ctx.state.db,
        &ctx.caller.user,
        q.with.as_deref(),
        q.after,
        q.limit,
    )
    .await
    .map_err(|e| ctx.fail(e))?;
    Ok(with_etag(&headers, StatusCode::OK, &list))
}

/// A new chat.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
pub struct NewChat {
    /// The character it is with; none for the owner's twin.
    pub character_id: Option<String>,
    /// The chat's id, a UUID chosen by the client so that a retried request makes one chat;
    /// one is chosen for it without.
    pub id: Option<String>,
}

#[utoipa::path(
    post,
    path = "/api/v1/chats",
    tag = "chats",
    summary = "Starts a new chat with a character (or the owner's twin), its greeting first",
    request_body(content = NewChat),
    responses(
        (status = 201, description = "The new chat (or, for an `id` already made, that chat)", body = ChatView),
        (status = 422, description = "The id is not a UUID, or the owner has no twin yet", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid key", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "A read-only key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such character of the owner's, or the id is another chat's", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The owner has as many chats with the character as one may", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn new_chat(
    ctx: Ctx,
    body: Result<Json<NewChat>, axum::extract::rejection::JsonRejection>,
) -> Result<(StatusCode, Json<ChatView>), Failure> {
    ctx.writer()?;
    let Json(new) = body.map_err(|e| ctx.fail(AppError::BadRequest(e.body_text())))?;
    let id = new.id.unwrap_or_else(app::infra::new_id);
    let view = chats::start_for(
        &ctx.state,
        &ctx.caller.user,
        &id,
        new.character_id.as_deref(),
    )
    .await
    .map_err(|e| ctx.fail(e))?;
    Ok((StatusCode::CREATED, Json(view)))
}

#[utoipa::path(
    get,
    path = "/api/v1/chats/{session_id}",
    tag = "chats",
    summary = "A chat: who it is with, its title and its latest page of messages",
    params(("session_id" = String, Path, description = "The chat's id")),
    responses(
        (status = 200, description = "The chat", body = ChatView),
        (status = 401, description = "No valid key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such chat of the owner's (or it is in the trash)", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn get_chat(ctx: Ctx, Path(session_id): Path<String>) -> Result<Json<ChatView>, Failure> {
    let view = chats::view_for(&ctx.state, &ctx.caller.user, Some(&session_id), None, false)
        .await
        .map_err(|e| ctx.fail(e))?;
    Ok(Json(view))
}

/// A chat's new title.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
pub struct ChatRename {
    /// 1 to 100 characters, on one line.
    pub title: String,
}

#[utoipa::path(
    patch,
    path = "/api/v1/chats/{session_id}",
    tag = "chats",
    summary = "Renames a chat",
    params(("session_id" = String, Path, description = "The chat's id")),
    request_body(content = ChatRename),
    responses(
        (status = 204, description = "Renamed"),
        (status = 401, description = "No valid key", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "A read-only key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such chat of the owner's (or it is in the trash)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The title is empty, too long or on several lines", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn rename_chat(
    ctx: Ctx,
    Path(session_id): Path<String>,
    body: Result<Json<ChatRename>, axum::extract::rejection::JsonRejection>,
) -> Result<StatusCode, Failure> {
    ctx.writer()?;
    let Json(rename) = body.map_err(|e| ctx.fail(AppError::BadRequest(e.body_text())))?;
    chats::rename_for(&ctx.state.db, &ctx.caller.user, &session_id, &rename.title)
        .await
        .map_err(|e| ctx.fail(e))?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    delete,
    path = "/api/v1/chats/{session_id}",
    tag = "chats",
    summary = "Moves a chat to the trash (restorable for 30 days)",
    params(("session_id" = String, Path, description = "The chat's id")),
    responses(
        (status = 204, description = "In the trash"),
        (status = 401, description = "No valid key", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "A read-only key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such chat of the owner's outside the trash", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn trash_chat(ctx: Ctx, Path(session_id): Path<String>) -> Result<StatusCode, Failure> {
    ctx.writer()?;
    chats::trash_for(&ctx.state.db, &ctx.caller.user, &session_id)
        .await
        .map_err(|e| ctx.fail(e))?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    post,
    path = "/api/v1/chats/{session_id}/restore",
    tag = "chats",
    summary = "Takes a chat out of the trash",
    params(("session_id" = String, Path, description = "The chat's id")),
    responses(
        (status = 204, description = "Restored"),
        (status = 401, description = "No valid key", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "A read-only key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such chat of the owner's in the trash (or past its 30 days)", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn restore_chat(ctx: Ctx, Path(session_id): Path<String>) -> Result<StatusCode, Failure> {
    ctx.writer()?;
    chats::untrash_for(&ctx.state.db, &ctx.caller.user, &session_id)
        .await
        .map_err(|e| ctx.fail(e))?;
    Ok(StatusCode::NO_CONTENT)
}

/// A chat made by a branch.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
pub struct Branched {
    /// The new chat's id.
    pub session_id: String,
}

#[utoipa::path(
    post,
    path = "/api/v1/chats/{session_id}/messages/{message_id}/branch",
    tag = "chats",
    summary = "Starts a new chat holding this chat's conversation up to and including the message (copied; this chat is unchanged)",
    params(
        ("session_id" = String, Path, description = "The chat's id"),
        ("message_id" = String, Path, description = "The message the new chat ends with"),
    ),
    responses(
        (status = 201, description = "The new chat", body = Branched),
        (status = 409, description = "The owner has as many chats with the character as one may", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The message is a reply still being written", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid key", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "A read-only key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such message in the owner's chat (or it is deleted)", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn branch_chat(
    ctx: Ctx,
    Path((session_id, message_id)): Path<(String, String)>,
) -> Result<(StatusCode, Json<Branched>), Failure> {
    ctx.writer()?;
    let session_id = chats::branch_for(&ctx.state.db, &ctx.caller.user, &session_id, &message_id)
        .await
        .map_err(|e| ctx.fail(e))?;
    Ok((StatusCode::CREATED, Json(Branched { session_id })))
}

/// How a chat is downloaded.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ChatExportQuery {
    /// `jsonl` (SillyTavern's chat format; the default) or `markdown`.
    pub format: Option<String>,
}

#[utoipa::path(
    get,
    path = "/api/v1/chats/{session_id}/export",
    tag = "chats",
    summary = "A chat as a file: SillyTavern JSONL (the branch shown, each message with its other versions as swipes) or Markdown",
    params(("session_id" = String, Path, description = "The chat's id"), ChatExportQuery),
    responses(
        (status = 200, description = "The file", content_type = "application/jsonl"),
        (status = 401, description = "No valid key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such chat of the owner's (or it is in the trash)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "An unknown format", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn export_chat(
    ctx: Ctx,
    Path(session_id): Path<String>,
    Q(q): Q<ChatExportQuery>,
) -> Result<Response, Failure> {
    let format = match q.format.as_deref() {
        None | Some("jsonl") => chats::ChatExport::Jsonl,
        Some("markdown") => chats::ChatExport::Markdown,
        Some(_) => {
            return Err(ctx.fail(AppError::BadRequest(
                "The format is jsonl or markdown.".into(),
            )))
        }
    };
    let (bytes, file_name) =
        chats::export_for(&ctx.state.db, &ctx.caller.user, &session_id, format)
            .await
            .map_err(|e| ctx.fail(e))?
            .ok_or_else(|| ctx.fail(AppError::NotFound))?;
    Ok(crate::routes::download(
        crate::routes::export_type(format),
        &file_name,
        bytes,
    ))
}

/// Which chat an imported file goes to.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ChatImportQuery {
    /// The character's id, or `twin` for the owner's twin (required).
    pub with: Option<String>,
}

/// A chat brought in from a file.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
pub struct ImportedChat {
    /// The new chat's id.
    pub session_id: String,
    /// What was not brought in (system lines, empty messages, swipes beyond 50), one sentence each.
    pub notes: Vec<String>,
}

#[utoipa::path(
    post,
    path = "/api/v1/chats/import",
    tag = "chats",
    summary = "Brings a SillyTavern chat file (JSONL, the request body, at most 10 MB) in as a new chat with a character",
    params(ChatImportQuery),
    request_body(content = String, content_type = "application/jsonl", description = "The .jsonl file"),
    responses(
        (status = 201, description = "The new chat", body = ImportedChat),
        (status = 401, description = "No valid key", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "A read-only key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such character of the owner's", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The owner has as many chats with the character as one may", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Larger than 10 MB", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Not a chat file (the sentence names the line)", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn import_chat(
    ctx: Ctx,
    Q(q): Q<ChatImportQuery>,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<ImportedChat>), Failure> {
    ctx.writer()?;
    let with = q.with.ok_or_else(|| {
        ctx.fail(AppError::BadRequest(
            "`with` names the character (or `twin`) the chat is with.".into(),
        ))
    })?;
    let (session_id, notes) = chats::import_for(&ctx.state.db, &ctx.caller.user, &with, &body)
        .await
        .map_err(|e| ctx.fail(e))?;
    tracing::info!(key_id = %ctx.caller.key_id, "chat imported through the API");
    Ok((
        StatusCode::CREATED,
        Json(ImportedChat { session_id, notes }),
    ))
}

/// A search of one's chats.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ChatSearchQuery {
    /// Words, each found as a word or a word's start (at most 200 characters; the first 8 words).
    pub q: Option<String>,
}

#[utoipa::path(
    get,
    path = "/api/v1/chats/search",
    tag = "chats",
    summary = "The messages of the owner's chats holding every word searched, newest first (at most 30)",
    params(ChatSearchQuery),
    responses(
        (status = 200, description = "The messages found, each with its chat", body = Vec<app::chat::ChatHit>),
        (status = 401, description = "No valid key", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A search longer than 200 characters", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn search_chats(
    ctx: Ctx,
    Q(q): Q<ChatSearchQuery>,
) -> Result<Json<Vec<app::chat::ChatHit>>, Failure> {
    let hits = chats::search_for(
        &ctx.state.db,
        &ctx.caller.user,
        q.q.as_deref().unwrap_or_default(),
    )
    .await
    .map_err(|e| ctx.fail(e))?;
    Ok(Json(hits))
}
