//! Refuses state-changing requests that a browser says come from another site.
//!
//! Browsers send `Sec-Fetch-Site` on every request and `Origin` on every cross-origin or
//! non-GET one. A POST (every server function is one) whose `Sec-Fetch-Site` is `cross-site` or
//! `same-site`, or whose `Origin` names a different host than the request's `Host`, is refused
//! with 403 before it reaches a handler. Requests with neither header (API clients, curl) pass:
//! they carry no ambient browser cookies to abuse. SameSite=Lax cookies are the second line.

use axum::{
    extract::Request,
    http::{header, Method, StatusCode},
    middleware::Next,
    response::{IntoResponse, Response},
};

pub async fn same_origin_only(req: Request, next: Next) -> Response {
    if is_cross_site_write(&req) {
        tracing::warn!(
            origin = ?req.headers().get(header::ORIGIN),
            sec_fetch_site = ?req.headers().get("sec-fetch-site"),
            path = %req.uri().path(),
            "refused a cross-site state-changing request"
        );
        return (
            StatusCode::FORBIDDEN,
            "Cross-site requests are not allowed.",
        )
            .into_response();
    }
    next.run(req).await
}

fn is_cross_site_write(req: &Request) -> bool {
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return false;
    }
    let headers = req.headers();
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        if !matches!(site, "same-origin" | "none") {
            return true;
        }
    }
    if let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        let host = headers
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let origin_host = origin.split("://").nth(1).unwrap_or("");
        // `Origin: null` (sandboxed frames, some redirects) is never same-origin.
        if origin == "null" || !origin_host.eq_ignore_ascii_case(host) {
            return true;
        }
    }
    false
}
