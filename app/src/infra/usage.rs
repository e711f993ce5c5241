//! Usage analytics: one row per model call (kind, provider, language, outcome, time, tokens).

use super::{db::Db, llm::Usage, new_id, now_ms};
use crate::with_pool;

/// What one model call did, for the usage dashboard.
pub struct Record<'a> {
    pub owner_id: &'a str,
    pub kind: &'a str,
    pub provider: &'a str,
    pub language: Option<&'a str>,
    pub outcome: &'a str,
    pub duration_ms: i64,
    pub usage: Usage,
}

/// Records a call. Failing to record is logged and never fails the user's request.
pub async fn record(db: &Db, r: Record<'_>) {
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

/// The outcome label of a result: `ok` or the error's kind.
pub fn outcome<T>(r: &Result<T, super::llm::LlmError>) -> &'static str {
    use super::llm::LlmError::*;
    match r {
        Ok(_) => "ok",
        Err(Unavailable(_)) => "unavailable",
        Err(Timeout(_)) => "timeout",
        Err(RateLimited { .. }) => "rate_limited",
        Err(Rejected(_)) => "rejected",
        Err(PromptBlocked(_)) => "blocked",
        Err(Finished(_)) => "finished_early",
        Err(CutOff(_)) => "cut_off",
        Err(InvalidReply(_)) => "invalid_reply",
    }
}
