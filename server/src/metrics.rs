//! Prometheus metrics for operators, at `GET /metrics` behind a bearer token (`METRICS_TOKEN`;
//! without one the route does not exist).
//!
//! Recorded where things happen: HTTP requests by route (the router's pattern, so ids do not
//! multiply the series), method and status, with a latency histogram (to the response's head: a
//! streamed reply's body is not included), and refusals by a limit (every 429) — here, in
//! [`track_http`]; model calls by provider, use and outcome, with their time and tokens — where
//! each call's usage is recorded (`app::usage::store::record`). Gauges read when scraped: replies
//! and scenes being written by this process, and the database pool's connections in use and idle.

use app::infra::{db::Db, AppState};
use axum::{
    extract::{MatchedPath, Request, State},
    http::{header, StatusCode},
    middleware::Next,
    response::{IntoResponse, Response},
};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;
use std::time::Instant;

/// The process's recorder (one per process: the tests start many servers in one).
pub fn handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Suffix("_seconds".into()),
                    &[
                        0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
                        60.0,
                    ],
                )
                .expect("bucket list is not empty")
                .build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was already installed");
            }
            handle
        })
        .clone()
}

/// Counts and times every request by its route pattern and status.
pub async fn track_http(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let method = req.method().as_str().to_string();
    let started = Instant::now();
    let res = next.run(req).await;
    let status = res.status();
    metrics::counter!("pf_http_requests_total", "method" => method.clone(), "route" => route.clone(), "status" => status.as_u16().to_string())
        .increment(1);
    metrics::histogram!("pf_http_request_duration_seconds", "method" => method, "route" => route.clone())
        .record(started.elapsed().as_secs_f64());
    if status == StatusCode::TOO_MANY_REQUESTS {
        metrics::counter!("pf_rate_limit_refusals_total", "route" => route).increment(1);
    }
    res
}

/// `GET /metrics`: the Prometheus text format, for a caller with the configured token.
pub async fn scrape(State(state): State<AppState>, req: Request) -> Response {
    let Some(token) = state.config.metrics_token.as_ref() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let sent = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if !same_secret(sent, token.expose()) {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer realm=\"metrics\"")],
        )
            .into_response();
    }
    metrics::gauge!("pf_streams_in_flight").set(state.running.len() as f64);
    let (size, idle) = pool_use(&state.db);
    metrics::gauge!("pf_db_connections", "state" => "in_use").set(size.saturating_sub(idle) as f64);
    metrics::gauge!("pf_db_connections", "state" => "idle").set(idle as f64);
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        handle().render(),
    )
        .into_response()
}

fn pool_use(db: &Db) -> (u32, u32) {
    match db {
        Db::Sqlite(p) => (p.size(), p.num_idle() as u32),
        Db::Postgres(p) => (p.size(), p.num_idle() as u32),
    }
}

/// Compares two secrets by their hashes, so the time taken says nothing about where they differ.
fn same_secret(a: &str, b: &str) -> bool {
    use sha2::{Digest, Sha256};
    Sha256::digest(a.as_bytes()) == Sha256::digest(b.as_bytes())
}
