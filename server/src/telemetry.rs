//! Logging: tracing with the request id on every line of a request, text or JSON.
//!
//! The request id comes from the client's `x-request-id` only when it is a well-formed UUID;
//! anything else is replaced by a fresh one ([`only_uuid_request_ids`]), so a client cannot put
//! arbitrary text into every log line of its request or pose as another request.

use app::infra::config::LogFormat;
use axum::{extract::Request, middleware::Next, response::Response};
use tracing::Subscriber;
use tracing_subscriber::{
    fmt::{self, MakeWriter},
    prelude::*,
    registry::LookupSpan,
    EnvFilter, Layer,
};

/// `RUST_LOG`, or the default filter.
pub fn filter() -> EnvFilter {
    EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,tower_sessions=warn"))
}

/// The log line format, writing to `writer`; `ansi` colours text lines.
pub fn layer<S, W>(format: LogFormat, writer: W, ansi: bool) -> Box<dyn Layer<S> + Send + Sync>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    match format {
        LogFormat::Text => fmt::layer()
            .with_target(false)
            .with_ansi(ansi)
            .with_writer(writer)
            .boxed(),
        LogFormat::Json => fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .with_writer(writer)
            .boxed(),
    }
}

/// Installs the global subscriber. `RUST_LOG` filters (default `info`).
pub fn init(format: LogFormat) {
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    // A second init (tests start many servers in one process) keeps the first subscriber.
    let _ = tracing_subscriber::registry()
        .with(filter())
        .with(layer(format, std::io::stdout, ansi))
        .try_init();
}

/// The span of one HTTP request, carrying the id set by `SetRequestIdLayer`.
pub fn make_span<B>(req: &axum::http::Request<B>) -> tracing::Span {
    let request_id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-");
    // `user_id` is filled in once the request's user is known (`record_user`): every line of the
    // request then names who made it — an id, never a name, token or message text.
    tracing::info_span!(
        "request",
        request_id = %request_id,
        method = %req.method(),
        path = %req.uri().path(),
        user_id = tracing::field::Empty,
    )
}

/// Whether a client's request id is kept: a hyphenated UUID and nothing else.
pub fn acceptable_request_id(value: &[u8]) -> bool {
    value.len() == 36 && std::str::from_utf8(value).is_ok_and(|s| uuid::Uuid::try_parse(s).is_ok())
}

/// Drops a client-supplied `x-request-id` that is not a UUID, so a fresh one is made for it.
pub async fn only_uuid_request_ids(mut req: Request, next: Next) -> Response {
    let values = req.headers().get_all("x-request-id");
    let unacceptable =
        values.iter().count() > 1 || values.iter().any(|v| !acceptable_request_id(v.as_bytes()));
    if unacceptable {
        req.headers_mut().remove("x-request-id");
    }
    next.run(req).await
}

/// Names the user on the current request's span (see [`make_span`]).
pub fn record_user(user_id: &str) {
    tracing::Span::current().record("user_id", tracing::field::display(user_id));
}
