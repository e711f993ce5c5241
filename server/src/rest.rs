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

use app::characters::{service as characters, CharacterPage, CharacterView};
use app::domain::{CharacterDraft, FieldError};
use app::error::AppError;
use app::infra::AppState;
use app::keys::service::{authenticate, ApiCaller};
use axum::{
    extract::{FromRequestParts, Path, Query, Request, State},
    http::{header, request::Parts, HeaderMap, HeaderValue, StatusCode},
    middleware::Next,
    response::{Html, IntoResponse, Response},
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
        (name = "characters", description = "The key owner's characters")
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
    /// The last character of the previous page (its `next`); none for the newest.
    pub after: Option<String>,
    /// How many (1 to 100; 24 by default).
    pub limit: Option<u32>,
}

#[utoipa::path(
    get,
    path = "/api/v1/characters",
    tag = "characters",
    summary = "The key owner's characters, newest first, a page at a time",
    params(PageQuery),
    responses(
        (status = 200, description = "A page; `next` is the cursor for the one after", body = CharacterPage,
            headers(("ETag" = String, description = "Send back as If-None-Match"))),
        (status = 304, description = "Not modified since the ETag sent"),
        (status = 401, description = "No valid key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`after` is not one of the owner's characters", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn list_characters(
    ctx: Ctx,
    headers: HeaderMap,
    Query(q): Query<PageQuery>,
) -> Result<Response, Failure> {
    let page = characters::page_for(&ctx.state.db, &ctx.caller.user, q.after, q.limit)
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

#[utoipa::path(
    post,
    path = "/api/v1/characters",
    tag = "characters",
    summary = "Saves a new character (the wizard's fields, validated as in the app)",
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
    body: Result<Json<CharacterDraft>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, Failure> {
    ctx.writer()?;
    let Json(draft) = body.map_err(|e| ctx.fail(AppError::BadRequest(e.body_text())))?;
    let id = characters::save_for(&ctx.state.db, &ctx.caller.user, draft, None)
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
