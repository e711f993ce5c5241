//! The checks: [`begin_model_call`] before every call to the model (daily tokens, calls per
//! minute, calls at once, one reply at a time per chat) and [`sign_in_attempt`] before every
//! sign-in start. Queries are in [`super::store`]; the daily budget reads `generations` through
//! [`crate::usage::store`].

use super::store;
use crate::auth::UserId;
use crate::error::{AppError, OrInternal};
use crate::infra::{config::LimitsConfig, db::Db, new_id, now_ms, AppState};
use std::time::Duration;

const MINUTE_MS: i64 = 60_000;
const DAY_MS: i64 = 86_400_000;
/// How often a call in progress tells the database it is still alive…
const HEARTBEAT: Duration = Duration::from_secs(10);
/// …and how long after its last heartbeat it stops counting (its server went away).
const STALE_MS: i64 = 60_000;
/// What a refusal for too many calls at once suggests waiting.
const BUSY_RETRY_SECS: u64 = 10;

/// A model call in progress: counted against its user's concurrency limit (and its chat's one
/// reply at a time) until [`Slot::release`]d. Dropping it releases it too, in the background.
pub struct Slot {
    db: Db,
    id: String,
    heartbeat: tokio::task::AbortHandle,
    released: bool,
}

impl Slot {
    pub async fn release(&mut self) {
        if self.released {
            return;
        }
        self.released = true;
        self.heartbeat.abort();
        if let Err(e) = store::delete_slot(&self.db, &self.id).await {
            tracing::warn!(error = ?e, "could not release a generation slot");
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.heartbeat.abort();
        // Outside a runtime (shutting down) the row is left to go stale.
        if let (false, Ok(rt)) = (self.released, tokio::runtime::Handle::try_current()) {
            let (db, id) = (self.db.clone(), std::mem::take(&mut self.id));
            rt.spawn(async move {
                let _ = store::delete_slot(&db, &id).await;
            });
        }
    }
}

/// Checks, in order, that `user` has model tokens left today, has not made too many model calls
/// this minute (this call is counted), and is not over the calls-at-once limit. Returns the call's
/// [`Slot`]. (One reply at a time per chat is the database's own rule: see `chat::store`.)
pub async fn begin_model_call(state: &AppState, user: &UserId) -> Result<Slot, AppError> {
    let limits = &state.config.limits;
    let db = &state.db;
    let now = now_ms();

    if limits.daily_tokens > 0 {
        let today = now - now.rem_euclid(DAY_MS);
        let used = crate::usage::store::tokens_since(db, &user.0, today)
            .await
            .or_internal("read today's usage")?;
        if used >= limits.daily_tokens as i64 {
            let hours = ((today + DAY_MS - now) as f64 / 3_600_000.0).ceil() as u64;
            return Err(AppError::RateLimited {
                retry_after_secs: secs_until(today + DAY_MS, now),
                message: format!(
                    "You have used today's allowance of {} model tokens. It renews at midnight \
                     UTC, in about {hours} hour{}.",
                    thousands(limits.daily_tokens),
                    if hours == 1 { "" } else { "s" }
                ),
            });
        }
    }

    per_minute(
        db,
        &format!("model:{}", user.0),
        limits.model_calls_per_minute,
        now,
        |n, wait| {
            format!(
                "You are sending requests to the model too quickly (at most {n} a minute). \
                 Please try again in {wait} seconds."
            )
        },
    )
    .await?;

    let mut slot = acquire(db, &user.0, now).await?;
    let mine = store::live_slots(db, &user.0, now - STALE_MS)
        .await
        .or_internal("count generations in progress")?;
    if limits.concurrent_generations > 0 && mine > limits.concurrent_generations as i64 {
        slot.release().await;
        let n = limits.concurrent_generations;
        return Err(AppError::RateLimited {
            retry_after_secs: BUSY_RETRY_SECS,
            message: format!(
                "You already have {n} {} being written. Wait for {} to finish, then try again.",
                if n == 1 {
                    "reply or character"
                } else {
                    "replies or characters"
                },
                if n == 1 { "it" } else { "one" }
            ),
        });
    }
    Ok(slot)
}

/// Counts a sign-in start from `address` and refuses it over the per-minute limit.
pub async fn sign_in_attempt(
    db: &Db,
    limits: &LimitsConfig,
    address: &str,
) -> Result<(), AppError> {
    per_minute(
        db,
        &format!("sign-in:{address}"),
        limits.sign_ins_per_minute,
        now_ms(),
        |_, wait| {
            format!(
                "Too many sign-in attempts from your address. Please try again in {wait} seconds."
            )
        },
    )
    .await
}

/// Counts a request for `key` in the current minute; over `limit` (0: no limit) it is refused
/// with `message(limit, seconds to wait)`.
async fn per_minute(
    db: &Db,
    key: &str,
    limit: u64,
    now: i64,
    message: impl FnOnce(u64, u64) -> String,
) -> Result<(), AppError> {
    if limit == 0 {
        return Ok(());
    }
    let window = now - now.rem_euclid(MINUTE_MS);
    let hits = store::hit(db, key, window)
        .await
        .or_internal("count requests")?;
    if hits > limit as i64 {
        let wait = secs_until(window + MINUTE_MS, now);
        return Err(AppError::RateLimited {
            retry_after_secs: wait,
            message: message(limit, wait),
        });
    }
    Ok(())
}

/// Records the call in progress and starts its heartbeat; clears `owner`'s stale ones.
async fn acquire(db: &Db, owner: &str, now: i64) -> Result<Slot, AppError> {
    store::delete_stale(db, owner, now - STALE_MS)
        .await
        .or_internal("clear stale generations")?;
    let id = new_id();
    store::insert_slot(db, &id, owner, now)
        .await
        .or_internal("record generation in progress")?;
    let heartbeat = {
        let (db, id) = (db.clone(), id.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(HEARTBEAT);
            tick.tick().await;
            loop {
                tick.tick().await;
                if let Err(e) = store::heartbeat(&db, &id, now_ms()).await {
                    tracing::warn!(error = ?e, "generation heartbeat failed");
                }
            }
        })
        .abort_handle()
    };
    Ok(Slot {
        db: db.clone(),
        id,
        heartbeat,
        released: false,
    })
}

/// Whole seconds from `now` to `until` (both epoch ms), at least 1.
fn secs_until(until: i64, now: i64) -> u64 {
    (((until - now).max(0) + 999) / 1000).max(1) as u64
}

/// 200000 → "200,000".
fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_round_up_to_whole_seconds() {
        assert_eq!(secs_until(60_000, 0), 60);
        assert_eq!(secs_until(60_000, 59_999), 1);
        assert_eq!(secs_until(60_000, 59_000), 1);
        assert_eq!(secs_until(60_000, 58_500), 2);
        assert_eq!(secs_until(0, 10), 1);
    }

    #[test]
    fn numbers_read_with_separators() {
        assert_eq!(thousands(200_000), "200,000");
        assert_eq!(thousands(5_000), "5,000");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }
}
