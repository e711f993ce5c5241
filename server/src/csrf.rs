//! Refuses state-changing requests that a browser says come from another site.
//!
//! Browsers send `Sec-Fetch-Site` on every request and `Origin` on every cross-origin or
//! non-GET one. A POST (every server function is one) whose `Sec-Fetch-Site` is `cross-site` or
//! `same-site`, or whose `Origin` is not one of this server's configured origins (`PUBLIC_URL`'s,
//! or `http://` and a name the server answers to directly — see `host.rs`), is refused with 403
//! before it reaches a handler. `Origin` is never compared with `Host`: a DNS-rebinding page
//! controls both. Requests with neither header (API clients, curl) pass: they carry no ambient
//! browser cookies to abuse. SameSite=Lax cookies are the second line.

use crate::host::KnownHosts;
use axum::{
    extract::{Request, State},
    http::{header, Method, StatusCode},
    middleware::Next,
    response::{IntoResponse, Response},
};

pub async fn same_origin_only(
    State(known): State<KnownHosts>,
    req: Request,
    next: Next,
) -> Response {
    if is_cross_site_write(&known, &req) {
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

fn is_cross_site_write(known: &KnownHosts, req: &Request) -> bool {
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return false;
    }
    let headers = req.headers();
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        if !matches!(site, "same-origin" | "none") {
            return true;
        }
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        // `Origin: null` (sandboxed frames, some redirects) is never one of ours.
        return !origin.to_str().is_ok_and(|o| known.knows_origin(o));
    }
    false
}
