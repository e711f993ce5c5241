//! The `rate_limits` and `generation_slots` tables: every query on them.

use crate::infra::db::Db;
use crate::with_pool;

/// Counts one more request for `key` in the window that starts at `window_start` and returns the
/// window's count including it: one atomic upsert, so servers sharing the database count
/// together. The first request of a window also deletes the key's older windows.
pub async fn hit(db: &Db, key: &str, window_start: i64) -> Result<i64, sqlx::Error> {
    let hits: i32 = with_pool!(db, pool => {
        sqlx::query_scalar(
            "INSERT INTO rate_limits (key, window_start, hits) VALUES ($1, $2, 1) \
             ON CONFLICT (key, window_start) DO UPDATE SET hits = rate_limits.hits + 1 \
             RETURNING hits",
        )
        .bind(key)
        .bind(window_start)
        .fetch_one(pool)
        .await?
    });
    if hits == 1 {
        with_pool!(db, pool => {
            sqlx::query("DELETE FROM rate_limits WHERE key = $1 AND window_start < $2")
                .bind(key)
                .bind(window_start)
                .execute(pool)
                .await
                .map(|_| ())?
        });
    }
    Ok(i64::from(hits))
}

/// Records a model call in progress for `owner`.
pub async fn insert_slot(db: &Db, id: &str, owner: &str, now: i64) -> Result<(), sqlx::Error> {
    with_pool!(db, pool => {
        sqlx::query(
            "INSERT INTO generation_slots (id, owner_id, started_at, heartbeat_at) \
             VALUES ($1, $2, $3, $3)",
        )
        .bind(id)
        .bind(owner)
        .bind(now)
        .execute(pool)
        .await
        .map(|_| ())
    })
}

/// `owner`'s calls in progress whose heartbeat is at or after `since`.
pub async fn live_slots(db: &Db, owner: &str, since: i64) -> Result<i64, sqlx::Error> {
    with_pool!(db, pool => {
        sqlx::query_scalar(
            "SELECT COUNT(*) FROM generation_slots WHERE owner_id = $1 AND heartbeat_at >= $2",
        )
        .bind(owner)
        .bind(since)
        .fetch_one(pool)
        .await
    })
}

/// Keeps a call in progress alive.
pub async fn heartbeat(db: &Db, id: &str, now: i64) -> Result<(), sqlx::Error> {
    with_pool!(db, pool => {
        sqlx::query("UPDATE generation_slots SET heartbeat_at = $1 WHERE id = $2")
            .bind(now)
            .bind(id)
            .execute(pool)
            .await
            .map(|_| ())
    })
}

/// Ends a call in progress.
pub async fn delete_slot(db: &Db, id: &str) -> Result<(), sqlx::Error> {
    with_pool!(db, pool => {
        sqlx::query("DELETE FROM generation_slots WHERE id = $1")
            .bind(id)
            .execute(pool)
            .await
            .map(|_| ())
    })
}

/// Forgets `owner`'s calls whose heartbeat stopped before `before` (their server went away).
pub async fn delete_stale(db: &Db, owner: &str, before: i64) -> Result<(), sqlx::Error> {
    with_pool!(db, pool => {
        sqlx::query("DELETE FROM generation_slots WHERE owner_id = $1 AND heartbeat_at < $2")
            .bind(owner)
            .bind(before)
            .execute(pool)
            .await
            .map(|_| ())
    })
}
