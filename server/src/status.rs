//! The one place where a server function's error gets its HTTP status.
//!
//! The server-function framework answers every error with 500 and the error, encoded as JSON, in
//! the body (marked with the `serverfnerror` header). This layer reads that [`AppError`] back and
//! sets the status it stands for ([`AppError::status`]: 400 undecodable, 401, 403, 404, 409, 413,
//! 422, 429 with `Retry-After`, and 5xx only for faults). It sees every server function, the
//! framework's own decode errors included, so no server function sets a status itself. Plain
//! form posts (no JavaScript) are redirected back by the framework and keep their redirect.
//!
//! [`error_response`] builds the same response for refusals made before a server function runs
//! (a body over its limit, too many sign-ins).

use app::error::AppError;
use axum::{
    body::Body,
    extract::Request,
    http::{header, HeaderValue, StatusCode},
    middleware::Next,
    response::{IntoResponse, Response},
};
use leptos::server_fn::error::SERVER_FN_ERROR_HEADER;

/// Error bodies are a short JSON value; anything longer is not one of ours.
const MAX_ERROR_BODY: usize = 64 * 1024;

pub async fn server_fn_errors(req: Request, next: Next) -> Response {
    let res = next.run(req).await;
    if res.status() != StatusCode::INTERNAL_SERVER_ERROR
        || !res.headers().contains_key(SERVER_FN_ERROR_HEADER)
    {
        return res;
    }
    let (mut parts, body) = res.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_ERROR_BODY).await else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    if let Ok(err) = serde_json::from_slice::<AppError>(&bytes) {
        parts.status = err.status();
        if let Some(secs) = err.retry_after_secs() {
            parts.headers.insert(header::RETRY_AFTER, secs.into());
        }
    }
    Response::from_parts(parts, Body::from(bytes))
}

/// The response to `err` for a request to `path`: for server functions (`/api/…`) the JSON
/// [`AppError`] the browser client decodes, otherwise (a page, a sign-in link, a plain form post
/// that wants HTML) the error's sentence as text. Either way with its status and `Retry-After`.
pub fn error_response(err: &AppError, path: &str, wants_html: bool) -> Response {
    let mut res = if path.starts_with("/api/") && !wants_html {
        let mut res = (
            err.status(),
            [(header::CONTENT_TYPE, "application/json")],
            serde_json::to_string(err).unwrap_or_default(),
        )
            .into_response();
        if let Ok(v) = HeaderValue::from_str(path) {
            res.headers_mut().insert(SERVER_FN_ERROR_HEADER, v);
        }
        res
    } else {
        (
            err.status(),
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            err.to_string(),
        )
            .into_response()
    };
    if let Some(secs) = err.retry_after_secs() {
        res.headers_mut().insert(header::RETRY_AFTER, secs.into());
    }
    res
}

/// Whether the request is a plain form post or page load that expects HTML back.
pub fn wants_html(req: &Request) -> bool {
    req.headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/html"))
}
