//! The `generations` table and its two daily rollups, `usage_daily` and `usage_latency`: every
//! query on them.

use super::{bucket_of, Record, LATENCY_BOUNDS_MS};
use crate::infra::{db::Db, new_id, now_ms};
use crate::with_pool;

/// A UTC day, in milliseconds.
pub const DAY_MS: i64 = 86_400_000;

/// Records a call: its row in `generations` and its place in both rollups, in one transaction,
/// and counts it in the operators' metrics (calls by provider, use and outcome, their time and
/// tokens). Failing to record is logged and never fails the user's request.
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
    if let Err(e) = insert(db, &r, now_ms()).await {
        tracing::warn!(error = ?e, "could not record model usage");
    }
}

/// Writes one call made at `at` (epoch ms) to the table and the rollups.
pub async fn insert(db: &Db, r: &Record<'_>, at: i64) -> Result<(), sqlx::Error> {
    let day = at.div_euclid(DAY_MS);
    let (input, output) = (
        i64::from(r.usage.input_tokens),
        i64::from(r.usage.output_tokens),
    );
    let failed = i64::from(super::is_failure(r.outcome));
    let bucket = bucket_of(r.duration_ms) as i32;
    let language = r.language.unwrap_or("");
    with_pool!(db, pool => {
        let mut tx = pool.begin().await?;
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
        .bind(input as i32)
        .bind(output as i32)
        .bind(at)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO usage_daily (owner_id, day, kind, calls, failed, input_tokens, output_tokens) \
             VALUES ($1, $2, $3, 1, $4, $5, $6) \
             ON CONFLICT (owner_id, day, kind) DO UPDATE SET \
             calls = usage_daily.calls + 1, \
             failed = usage_daily.failed + excluded.failed, \
             input_tokens = usage_daily.input_tokens + excluded.input_tokens, \
             output_tokens = usage_daily.output_tokens + excluded.output_tokens",
        )
        .bind(r.owner_id)
        .bind(day)
        .bind(r.kind)
        .bind(failed)
        .bind(input)
        .bind(output)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO usage_daily_by (owner_id, day, dimension, key, calls, failed, input_tokens, output_tokens) \
             VALUES ($1, $2, 'provider', $3, 1, $6, $7, $8), ($1, $2, 'language', $4, 1, $6, $7, $8), \
             ($1, $2, 'outcome', $5, 1, $6, $7, $8) \
             ON CONFLICT (owner_id, day, dimension, key) DO UPDATE SET \
             calls = usage_daily_by.calls + 1, \
             failed = usage_daily_by.failed + excluded.failed, \
             input_tokens = usage_daily_by.input_tokens + excluded.input_tokens, \
             output_tokens = usage_daily_by.output_tokens + excluded.output_tokens",
        )
        .bind(r.owner_id)
        .bind(day)
        .bind(r.provider)
        .bind(language)
        .bind(r.outcome)
        .bind(failed)
        .bind(input)
        .bind(output)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO usage_latency (owner_id, day, dimension, key, bucket, calls) \
             VALUES ($1, $2, 'kind', $3, $5, 1), ($1, $2, 'provider', $4, $5, 1) \
             ON CONFLICT (owner_id, day, dimension, key, bucket) DO UPDATE SET \
             calls = usage_latency.calls + 1",
        )
        .bind(r.owner_id)
        .bind(day)
        .bind(r.kind)
        .bind(r.provider)
        .bind(bucket)
        .execute(&mut *tx)
        .await?;
        tx.commit().await
    })
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

/// Calls, failed calls and tokens, summed over some rollup lines.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, sqlx::FromRow)]
pub struct Sums {
    pub calls: i64,
    pub failed: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
}

/// The sums of one kind of call on one day.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct DayKindRow {
    pub day: i64,
    pub kind: String,
    #[sqlx(flatten)]
    pub sums: Sums,
}

/// The sums of one provider, language or outcome over the period.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct DimensionRow {
    /// `provider`, `language` or `outcome`.
    pub dimension: String,
    pub key: String,
    #[sqlx(flatten)]
    pub sums: Sums,
}

/// `owner`'s sums per day and kind of call from `from_day` on: at most a line per day and kind.
pub async fn by_day_and_kind(
    db: &Db,
    owner: &str,
    from_day: i64,
) -> Result<Vec<DayKindRow>, sqlx::Error> {
    with_pool!(db, pool => {
        sqlx::query_as(
            "SELECT day, kind, calls, failed, input_tokens, output_tokens FROM usage_daily \
             WHERE owner_id = $1 AND day >= $2",
        )
        .bind(owner)
        .bind(from_day)
        .fetch_all(pool)
        .await
    })
}

/// `owner`'s sums per provider, per language and per outcome from `from_day` on.
pub async fn by_dimension(
    db: &Db,
    owner: &str,
    from_day: i64,
) -> Result<Vec<DimensionRow>, sqlx::Error> {
    with_pool!(db, pool => {
        sqlx::query_as(
            "SELECT dimension, key, CAST(SUM(calls) AS BIGINT) AS calls, \
             CAST(SUM(failed) AS BIGINT) AS failed, CAST(SUM(input_tokens) AS BIGINT) AS input_tokens, \
             CAST(SUM(output_tokens) AS BIGINT) AS output_tokens FROM usage_daily_by \
             WHERE owner_id = $1 AND day >= $2 GROUP BY dimension, key",
        )
        .bind(owner)
        .bind(from_day)
        .fetch_all(pool)
        .await
    })
}

/// `owner`'s call times from `from_day` on: calls per kind or provider and bucket.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct LatencyRow {
    /// `kind` or `provider`.
    pub dimension: String,
    pub key: String,
    pub bucket: i32,
    pub calls: i64,
}

pub async fn latency_rows(
    db: &Db,
    owner: &str,
    from_day: i64,
) -> Result<Vec<LatencyRow>, sqlx::Error> {
    with_pool!(db, pool => {
        sqlx::query_as(
            "SELECT dimension, key, bucket, CAST(SUM(calls) AS BIGINT) AS calls FROM usage_latency \
             WHERE owner_id = $1 AND day >= $2 GROUP BY dimension, key, bucket",
        )
        .bind(owner)
        .bind(from_day)
        .fetch_all(pool)
        .await
    })
}

/// The SQL expression giving a `duration_ms`'s latency bucket (as [`bucket_of`] does).
pub fn bucket_sql() -> String {
    let whens: Vec<String> = LATENCY_BOUNDS_MS
        .iter()
        .enumerate()
        .map(|(i, b)| format!("WHEN duration_ms <= {b} THEN {i}"))
        .collect();
    format!(
        "CASE {} ELSE {} END",
        whens.join(" "),
        LATENCY_BOUNDS_MS.len()
    )
}

/// The SQL expression that is 1 for a failed call's `outcome` and 0 otherwise (as
/// [`super::is_failure`]).
pub fn failed_sql() -> String {
    let fine: Vec<String> = super::NOT_FAILURES
        .iter()
        .map(|o| format!("'{o}'"))
        .collect();
    format!(
        "CASE WHEN outcome IN ({}) THEN 0 ELSE 1 END",
        fine.join(", ")
    )
}

/// The migration that made the rollups, whose last part fills them from `generations`.
const MIGRATION: &str = include_str!("../../../migrations/sqlite/20261207090004_usage_rollups.sql");
const BACKFILL: &str = "-- The calls recorded before the rollups existed.";

/// Rebuilds the rollups from `generations` with the statements the migration that made them ran:
/// for the benchmark, which seeds `generations` in bulk, and the test that checks the rollups
/// kept call by call agree with the calls.
pub async fn rebuild_rollups(db: &Db) -> Result<(), sqlx::Error> {
    let backfill = MIGRATION
        .split_once(BACKFILL)
        .map(|(_, rest)| rest)
        .unwrap_or_default();
    with_pool!(db, pool => {
        let mut tx = pool.begin().await?;
        for table in ["usage_daily", "usage_daily_by", "usage_latency"] {
            sqlx::query(&format!("DELETE FROM {table}")).execute(&mut *tx).await?;
        }
        for statement in backfill.split(';').map(str::trim).filter(|s| !s.is_empty()) {
            sqlx::query(statement).execute(&mut *tx).await?;
        }
        tx.commit().await
    })
}

#[cfg(test)]
mod tests {
    /// The migration that made the rollups filled them with the same buckets and the same idea of
    /// a failure as the app keeps, the same on both databases.
    #[test]
    fn the_migration_buckets_and_fails_as_the_app_does() {
        let postgres =
            include_str!("../../../migrations/postgres/20261207090004_usage_rollups.sql");
        assert_eq!(super::MIGRATION, postgres);
        assert!(super::MIGRATION.contains(super::BACKFILL));
        assert_eq!(super::MIGRATION.matches(&super::bucket_sql()).count(), 4);
        assert_eq!(super::MIGRATION.matches(&super::failed_sql()).count(), 4);
    }
}
