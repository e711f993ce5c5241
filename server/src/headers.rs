//! Security headers on every response, and the per-response nonce that lets Leptos' inline
//! hydration scripts run under a Content-Security-Policy without `'unsafe-inline'`.
//!
//! A fresh nonce is made for each request and put in its extensions; the page shell reads it from
//! there (see `app::infra::csp`) so the `<script nonce=…>` tags Leptos writes carry the same value
//! this layer puts in the `Content-Security-Policy` header. A script injected into a page has no
//! nonce and does not run; the page cannot be framed; responses that may hold user data are never
//! cached.

use axum::{
    extract::{Request, State},
    http::{header, HeaderValue},
    middleware::Next,
    response::Response,
};
use leptos::nonce::Nonce;

/// What the headers depend on, fixed at start-up.
#[derive(Clone, Debug)]
pub struct SecurityHeaders {
    /// Send HSTS: only when the public URL is https (it would lock a plain-HTTP site out).
    pub hsts: bool,
}

/// The policy for a response whose scripts carry `nonce`. `'wasm-unsafe-eval'` lets the page
/// compile its own WebAssembly (it does not allow JavaScript `eval`).
pub fn content_security_policy(nonce: &str) -> String {
    format!(
        "default-src 'self'; script-src 'self' 'nonce-{nonce}' 'wasm-unsafe-eval'; \
         style-src 'self'; img-src 'self' data:; font-src 'self'; connect-src 'self'; \
         object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    )
}

pub async fn security_headers(
    State(cfg): State<SecurityHeaders>,
    mut req: Request,
    next: Next,
) -> Response {
    let nonce = Nonce::new();
    let csp = content_security_policy(&nonce.to_string());
    req.extensions_mut().insert(nonce);
    let mut res = next.run(req).await;

    let h = res.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&csp) {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    if cfg.hsts {
        h.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000; includeSubDomains"),
        );
    }
    // Pages, server-function answers and reply streams may carry a signed-in user's data: never
    // stored by a browser or a proxy. Static files (scripts, styles, pictures) keep their own.
    let dynamic = h
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_none_or(|ct| {
            ct.starts_with("text/html")
                || ct.starts_with("application/json")
                || ct.starts_with("text/plain")
                || ct.starts_with("application/x-ndjson")
        });
    if dynamic {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_allows_no_inline_script_without_the_nonce() {
        let p = content_security_policy("abc");
        let script = p
            .split(';')
            .map(str::trim)
            .find(|d| d.starts_with("script-src"))
            .unwrap();
        assert!(script.contains("'nonce-abc'"));
        assert!(!script.contains("unsafe-inline"));
        assert!(!script.contains("'unsafe-eval'"));
        assert!(p.contains("frame-ancestors 'none'"));
    }
}
