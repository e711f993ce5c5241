//! The `generations` table: every query on it.

use super::Record;
use crate::infra::{db::Db, new_id, now_ms};
use crate::with_pool;

/// Records a call (and counts it in the operators' metrics: calls by provider, use and outcome,
/// their time and tokens). Failing to record is logged and never fails the user's request.
pub async fn record(db: &Db, r: Record<'_>) {
    let (provider, kind) = (r.provider.to_string(), r.kind.to_string());
    metrics::counter!("pf_model_calls_total", "provider" => provider.clone(), "use" => kind.clone(), "outcome" => r.outcome.to_string())
        .increment(1);
    metrics::histogram!("pf_model_call_duration_seconds", "provider" => provider.clone(), "use" => kind.clone())
        .record(r.duration_ms as f64 / 1000.0);
    metrics::counter!("pf_model_tokens_total", "provider" => provider.clone(), "use" => kind.clone(), "direction" => "input")
        .increment(u64::from(r.usage.input_tokens));
    metrics::counter!("pf_model_tokens_total", "provider" => provider, "use" => kind, "direction" => "output")
        .increment(u64::from(r.usage.output_tokens));
    let res = with_pool!(db, pool => {
        sqlx::query(
            "INSERT INTO generations (id, owner_id, kind, provider, language, outcome, duration_ms, \
             input_tokens, output_tokens, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(new_id())
        .bind(r.owner_id)
        .bind(r.kind)
        .bind(r.provider)
        .bind(r.language)
        .bind(r.outcome)
        .bind(r.duration_ms)
        .bind(r.usage.input_tokens as i32)
        .bind(r.usage.output_tokens as i32)
        .bind(now_ms())
        .execute(pool)
        .await
        .map(|_| ())
    });
    if let Err(e) = res {
        tracing::warn!(error = ?e, "could not record model usage");
    }
}

/// Model tokens (input and output) `owner`'s calls recorded since `since` (epoch ms).
pub async fn tokens_since(db: &Db, owner: &str, since: i64) -> Result<i64, sqlx::Error> {
    with_pool!(db, pool => {
        sqlx::query_scalar(
            "SELECT COALESCE(SUM(input_tokens + output_tokens), 0) FROM generations \
             WHERE owner_id = $1 AND created_at >= $2",
        )
        .bind(owner)
        .bind(since)
        .fetch_one(pool)
        .await
    })
}
