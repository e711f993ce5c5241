//! Routes that are not server functions.

use app::infra::AppState;
use axum::{extract::State, http::StatusCode, response::IntoResponse, routing::get, Json, Router};
use serde::Serialize;

pub fn api(state: AppState) -> Router<AppState> {
    let _ = state;
    Router::new().route("/api/health", get(health))
}

#[derive(Serialize)]
struct Health {
    status: &'static str,
    database: &'static str,
    version: &'static str,
}

/// 200 when the database answers, 503 when it does not.
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
