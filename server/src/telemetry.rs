//! Logging: tracing with the request id on every line of a request, text or JSON.

use app::infra::config::LogFormat;
use axum::http::Request;
use tracing_subscriber::{fmt, prelude::*, EnvFilter};

/// Installs the global subscriber. `RUST_LOG` filters (default `info`).
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,tower_sessions=warn"));
    let registry = tracing_subscriber::registry().with(filter);
    let result = match format {
        LogFormat::Text => registry.with(fmt::layer().with_target(false)).try_init(),
        LogFormat::Json => registry
            .with(
                fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(true)
                    .with_span_list(false),
            )
            .try_init(),
    };
    // A second init (tests start many servers in one process) keeps the first subscriber.
    let _ = result;
}

/// The span of one HTTP request, carrying the id set by `SetRequestIdLayer`.
pub fn make_span<B>(req: &Request<B>) -> tracing::Span {
    let request_id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-");
    tracing::info_span!(
        "request",
        request_id = %request_id,
        method = %req.method(),
        path = %req.uri().path(),
    )
}
