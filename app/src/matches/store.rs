//! Every query on `matches`. A pair is stored once, in a fixed order (a < b), whoever asked.

use crate::auth::UserId;
use crate::domain::{MatchResult, PersonaKind, PersonaRef};
use crate::infra::{db::Db, new_id, now_ms};
use crate::with_pool;

/// A match as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct MatchRow {
    pub id: String,
    pub a: PersonaRef,
    pub a_owner: String,
    pub b: PersonaRef,
    pub b_owner: String,
    pub state: String,
    pub score: Option<i64>,
    pub reasoning: String,
    pub strengths: Vec<String>,
    pub challenges: Vec<String>,
    pub provider: String,
    pub fingerprint: String,
    pub computed_at: Option<i64>,
    pub updated_at: i64,
}

type Row = (
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    Option<i64>,
    String,
    sqlx::types::Json<Vec<String>>,
    sqlx::types::Json<Vec<String>>,
    String,
    String,
    Option<i64>,
    i64,
);

const COLUMNS: &str = "id, a_kind, a_id, a_owner, b_kind, b_id, b_owner, state, \
    CAST(score AS BIGINT), reasoning, strengths, challenges, provider, fingerprint, computed_at, updated_at";

fn from_row(r: Row) -> Option<MatchRow> {
    Some(MatchRow {
        id: r.0,
        a: PersonaRef {
            kind: PersonaKind::parse(&r.1)?,
            id: r.2,
        },
        a_owner: r.3,
        b: PersonaRef {
            kind: PersonaKind::parse(&r.4)?,
            id: r.5,
        },
        b_owner: r.6,
        state: r.7,
        score: r.8,
        reasoning: r.9,
        strengths: r.10 .0,
        challenges: r.11 .0,
        provider: r.12,
        fingerprint: r.13,
        computed_at: r.14,
        updated_at: r.15,
    })
}

/// The pair in its stored order.
pub fn ordered(x: PersonaRef, y: PersonaRef) -> (PersonaRef, PersonaRef) {
    if (x.kind, &x.id) <= (y.kind, &y.id) {
        (x, y)
    } else {
        (y, x)
    }
}

/// The match of an (ordered) pair, if there is one.
pub async fn find_pair(
    db: &Db,
    a: &PersonaRef,
    b: &PersonaRef,
) -> Result<Option<MatchRow>, sqlx::Error> {
    let sql = format!(
        "SELECT {COLUMNS} FROM matches WHERE a_kind = $1 AND a_id = $2 AND b_kind = $3 AND b_id = $4"
    );
    let row: Option<Row> = with_pool!(db, pool => {
        sqlx::query_as(&sql)
            .bind(a.kind.as_str())
            .bind(&a.id)
            .bind(b.kind.as_str())
            .bind(&b.id)
            .fetch_optional(pool)
            .await?
    });
    Ok(row.and_then(from_row))
}

/// Match `id` if `viewer` owns one of its sides.
pub async fn find(db: &Db, viewer: &UserId, id: &str) -> Result<Option<MatchRow>, sqlx::Error> {
    let sql =
        format!("SELECT {COLUMNS} FROM matches WHERE id = $1 AND (a_owner = $2 OR b_owner = $2)");
    let row: Option<Row> = with_pool!(db, pool => {
        sqlx::query_as(&sql).bind(id).bind(&viewer.0).fetch_optional(pool).await?
    });
    Ok(row.and_then(from_row))
}

/// The matches `viewer` owns a side of, most recently updated first, at most `limit`.
pub async fn list_for(db: &Db, viewer: &UserId, limit: i64) -> Result<Vec<MatchRow>, sqlx::Error> {
    let sql = format!(
        "SELECT {COLUMNS} FROM matches WHERE a_owner = $1 OR b_owner = $1 ORDER BY updated_at DESC, id LIMIT $2"
    );
    let rows: Vec<Row> = with_pool!(db, pool => {
        sqlx::query_as(&sql).bind(&viewer.0).bind(limit).fetch_all(pool).await?
    });
    Ok(rows.into_iter().filter_map(from_row).collect())
}

/// Claims the (ordered) pair for computing, creating its row in state `updating` if it has none:
/// true if this caller may compute it now — the pair is new, or not being computed by anyone
/// (no claim, or one older than `stale_ms`, whose server is taken to be gone). Across servers,
/// one computes a pair at a time. With `unless_current`, a pair already computed from exactly
/// that fingerprint is not claimed (a recompute raced by another that just finished). Returns
/// the row's id.
pub async fn claim(
    db: &Db,
    (a, a_owner): (&PersonaRef, &str),
    (b, b_owner): (&PersonaRef, &str),
    stale_ms: i64,
    unless_current: Option<&str>,
) -> Result<(String, bool), sqlx::Error> {
    let now = now_ms();
    let id = new_id();
    with_pool!(db, pool => {
        async {
            sqlx::query(
                "INSERT INTO matches (id, a_kind, a_id, a_owner, b_kind, b_id, b_owner, state, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, 'updating', $8, $8) \
                 ON CONFLICT (a_kind, a_id, b_kind, b_id) DO NOTHING",
            )
            .bind(&id)
            .bind(a.kind.as_str())
            .bind(&a.id)
            .bind(a_owner)
            .bind(b.kind.as_str())
            .bind(&b.id)
            .bind(b_owner)
            .bind(now)
            .execute(pool)
            .await?;
            let claimed = sqlx::query(
                "UPDATE matches SET state = 'updating', claimed_at = $1, updated_at = $1 \
                 WHERE a_kind = $2 AND a_id = $3 AND b_kind = $4 AND b_id = $5 \
                 AND (claimed_at IS NULL OR claimed_at < $6) \
                 AND NOT (state = 'fresh' AND fingerprint = $7)",
            )
            .bind(now)
            .bind(a.kind.as_str())
            .bind(&a.id)
            .bind(b.kind.as_str())
            .bind(&b.id)
            .bind(now - stale_ms)
            // No fingerprint is empty: without one, nothing is excluded.
            .bind(unless_current.unwrap_or(""))
            .execute(pool)
            .await?
            .rows_affected()
                == 1;
            let (id,): (String,) = sqlx::query_as(
                "SELECT id FROM matches WHERE a_kind = $1 AND a_id = $2 AND b_kind = $3 AND b_id = $4",
            )
            .bind(a.kind.as_str())
            .bind(&a.id)
            .bind(b.kind.as_str())
            .bind(&b.id)
            .fetch_one(pool)
            .await?;
            Ok((id, claimed))
        }
        .await
    })
}

/// Stores a computed result and releases the claim.
pub async fn complete(
    db: &Db,
    id: &str,
    result: &MatchResult,
    provider: &str,
    fingerprint: &str,
) -> Result<(), sqlx::Error> {
    let now = now_ms();
    let strengths: Vec<&str> = result.strengths.iter().map(|s| s.as_str()).collect();
    let challenges: Vec<&str> = result.challenges.iter().map(|s| s.as_str()).collect();
    with_pool!(db, pool => {
        sqlx::query(
            "UPDATE matches SET state = 'fresh', score = $1, reasoning = $2, strengths = $3, challenges = $4, \
             provider = $5, fingerprint = $6, claimed_at = NULL, computed_at = $7, updated_at = $7 WHERE id = $8",
        )
        .bind(i32::from(result.score.get()))
        .bind(result.reasoning.as_str())
        .bind(sqlx::types::Json(&strengths))
        .bind(sqlx::types::Json(&challenges))
        .bind(provider)
        .bind(fingerprint)
        .bind(now)
        .bind(id)
        .execute(pool)
        .await
        .map(|_| ())
    })
}

/// Marks a computation failed (the last good result, if any, is kept, never shown as current)
/// and releases the claim.
pub async fn fail(db: &Db, id: &str) -> Result<(), sqlx::Error> {
    let now = now_ms();
    with_pool!(db, pool => {
        sqlx::query("UPDATE matches SET state = 'failed', claimed_at = NULL, updated_at = $1 WHERE id = $2")
            .bind(now)
            .bind(id)
            .execute(pool)
            .await
            .map(|_| ())
    })
}

/// An icebreaker's lines: (speaker `a` or `b`, text).
pub type Lines = Vec<(String, String)>;

/// The icebreaker of match `id`: (status, lines, when last written).
pub async fn icebreaker(db: &Db, id: &str) -> Result<Option<(String, Lines, i64)>, sqlx::Error> {
    let row: Option<(String, sqlx::types::Json<Lines>, i64)> = with_pool!(db, pool => {
        sqlx::query_as("SELECT status, lines, updated_at FROM icebreakers WHERE match_id = $1")
            .bind(id)
            .fetch_optional(pool)
            .await?
    });
    Ok(row.map(|(s, l, u)| (s, l.0, u)))
}

/// Starts match `id`'s icebreaker afresh (its lines cleared) unless one is being written (a
/// heartbeat newer than `stale_ms`). True if started.
pub async fn begin_icebreaker(
    db: &Db,
    id: &str,
    by: &UserId,
    stale_ms: i64,
) -> Result<bool, sqlx::Error> {
    let now = now_ms();
    with_pool!(db, pool => {
        async {
            sqlx::query(
                "INSERT INTO icebreakers (match_id, started_by, status, lines, created_at, updated_at) \
                 VALUES ($1, $2, 'complete', '[]', $3, 0) ON CONFLICT (match_id) DO NOTHING",
            )
            .bind(id)
            .bind(&by.0)
            .bind(now)
            .execute(pool)
            .await?;
            let started = sqlx::query(
                "UPDATE icebreakers SET status = 'writing', started_by = $1, lines = '[]', created_at = $2, updated_at = $2 \
                 WHERE match_id = $3 AND (status <> 'writing' OR updated_at < $4)",
            )
            .bind(&by.0)
            .bind(now)
            .bind(id)
            .bind(now - stale_ms)
            .execute(pool)
            .await?
            .rows_affected()
                == 1;
            Ok(started)
        }
        .await
    })
}

/// Saves the icebreaker's lines so far and its status.
pub async fn save_icebreaker(
    db: &Db,
    id: &str,
    status: &str,
    lines: &[(String, String)],
) -> Result<(), sqlx::Error> {
    let now = now_ms();
    with_pool!(db, pool => {
        sqlx::query("UPDATE icebreakers SET status = $1, lines = $2, updated_at = $3 WHERE match_id = $4")
            .bind(status)
            .bind(sqlx::types::Json(lines))
            .bind(now)
            .bind(id)
            .execute(pool)
            .await
            .map(|_| ())
    })
}
