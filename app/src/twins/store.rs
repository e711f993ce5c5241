//! Every query on `twins` and `shades`. No other module writes these tables.

use crate::auth::UserId;
use crate::domain::{ShadeDraft, ShadeSource, Twin};
use crate::infra::{db::Db, new_id, now_ms};
use crate::with_pool;

/// A Shade as stored: plain values (Shades imported from SecondMe were not written through the
/// twin form's validation, so they are read back as drafts, not as parsed Shades).
#[derive(Debug, Clone, PartialEq)]
pub struct NewShade {
    pub name: String,
    pub icon: String,
    pub description: String,
    /// 0..1.
    pub confidence: f64,
    pub topics: Vec<String>,
    pub source: ShadeSource,
    pub public: bool,
}

impl From<&crate::domain::Shade> for NewShade {
    fn from(s: &crate::domain::Shade) -> Self {
        NewShade {
            name: s.name.to_string(),
            icon: s.icon.as_str().to_string(),
            description: s.description.to_string(),
            confidence: f64::from(s.confidence.get()),
            topics: s.topics.iter().map(|t| t.to_string()).collect(),
            source: s.source,
            public: s.public,
        }
    }
}

/// A twin as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct TwinRow {
    pub id: String,
    pub name: String,
    pub bio: String,
    pub matchable: bool,
    pub updated_at: i64,
    pub shades: Vec<ShadeDraft>,
}

type ShadeRow = (
    String,
    String,
    String,
    f64,
    sqlx::types::Json<Vec<String>>,
    String,
    i32,
);

/// `owner`'s twin with its Shades in order, if they have one.
pub async fn find(db: &Db, owner: &UserId) -> Result<Option<TwinRow>, sqlx::Error> {
    find_where(db, "owner_id", &owner.0).await
}

/// `owner`'s twin in brief, for the dashboard: (display name, open to matches, number of Shades).
pub async fn summary(db: &Db, owner: &UserId) -> Result<Option<(String, bool, i64)>, sqlx::Error> {
    let row: Option<(String, i32, i64)> = with_pool!(db, pool => {
        sqlx::query_as(
            "SELECT t.display_name, t.matchable, (SELECT COUNT(*) FROM shades s WHERE s.twin_id = t.id) \
             FROM twins t WHERE t.owner_id = $1",
        )
        .bind(&owner.0)
        .fetch_optional(pool)
        .await?
    });
    Ok(row.map(|(name, matchable, shades)| (name, matchable != 0, shades)))
}

/// The twin `id` with its Shades in order, and its owner, whoever that is. For matching, which
/// decides what of it may be used.
pub async fn find_by_id(db: &Db, id: &str) -> Result<Option<(UserId, TwinRow)>, sqlx::Error> {
    let owner: Option<(String,)> = with_pool!(db, pool => {
        sqlx::query_as("SELECT owner_id FROM twins WHERE id = $1")
            .bind(id)
            .fetch_optional(pool)
            .await?
    });
    let Some((owner,)) = owner else {
        return Ok(None);
    };
    let owner = UserId(owner);
    Ok(find(db, &owner).await?.map(|t| (owner, t)))
}

/// How many entries of each word are read, heaviest first: a word most twins share says
/// little, and reading all its entries would make ranking cost grow with the number of twins.
pub const POSTINGS_PER_TERM: i64 = 400;
/// How many of the best-ranked twins are looked up to drop the asker's own and closed ones.
const SHORTLIST: i64 = 200;
/// The most words one ranking reads.
pub const MAX_QUERY_TERMS: usize = 32;

/// Other people's twins open to matches that share the most weighted words with `terms`, best
/// first: (twin id, owner, display name, overlap), at most `limit`. Each word's heaviest
/// [`POSTINGS_PER_TERM`] entries are summed per twin (an index range scan per word), the best
/// [`SHORTLIST`] looked up: bounded work whatever the number of twins.
pub async fn candidates(
    db: &Db,
    not_owner: &UserId,
    terms: &[String],
    limit: i64,
) -> Result<Vec<(String, String, String, i64)>, sqlx::Error> {
    let terms = &terms[..terms.len().min(MAX_QUERY_TERMS)];
    if terms.is_empty() {
        return Ok(Vec::new());
    }
    let postings: Vec<String> = (0..terms.len())
        .map(|i| {
            format!(
                "SELECT * FROM (SELECT twin_id, weight FROM twin_terms WHERE term = ${} \
                 ORDER BY weight DESC, twin_id LIMIT {POSTINGS_PER_TERM}) AS p{i}",
                i + 3
            )
        })
        .collect();
    let sql = format!(
        "SELECT s.twin_id, t.owner_id, t.display_name, s.overlap FROM ( \
           SELECT u.twin_id, CAST(SUM(u.weight) AS BIGINT) AS overlap FROM ({}) AS u \
           GROUP BY u.twin_id ORDER BY overlap DESC, u.twin_id LIMIT {SHORTLIST} \
         ) AS s JOIN twins t ON t.id = s.twin_id \
         WHERE t.matchable = 1 AND t.owner_id <> $1 \
         ORDER BY s.overlap DESC, s.twin_id LIMIT $2",
        postings.join(" UNION ALL ")
    );
    with_pool!(db, pool => {
        let mut q = sqlx::query_as::<_, (String, String, String, i64)>(&sql)
            .bind(&not_owner.0)
            .bind(limit);
        for t in terms {
            q = q.bind(t);
        }
        q.fetch_all(pool).await
    })
}

async fn find_where(db: &Db, column: &str, value: &str) -> Result<Option<TwinRow>, sqlx::Error> {
    let sql = format!(
        "SELECT id, display_name, bio, matchable, updated_at FROM twins WHERE {column} = $1"
    );
    with_pool!(db, pool => {
        async {
            let twin: Option<(String, String, String, i32, i64)> = sqlx::query_as(&sql)
            .bind(value)
            .fetch_optional(pool)
            .await?;
            let Some((id, name, bio, matchable, updated_at)) = twin else {
                return Ok(None);
            };
            let rows: Vec<ShadeRow> = sqlx::query_as(
                "SELECT name, icon, description, confidence, topics, source, is_public FROM shades \
                 WHERE twin_id = $1 ORDER BY position, created_at",
            )
            .bind(&id)
            .fetch_all(pool)
            .await?;
            let shades = rows
                .into_iter()
                .map(|(name, icon, description, confidence, topics, source, public)| ShadeDraft {
                    name,
                    icon,
                    description,
                    confidence: confidence as f32,
                    topics: topics.0.join(", "),
                    source: ShadeSource::parse(&source),
                    public: public != 0,
                })
                .collect();
            Ok(Some(TwinRow { id, name, bio, matchable: matchable != 0, updated_at, shades }))
        }
        .await
    })
}

/// Saves `owner`'s twin (created if they have none yet) with exactly these Shades, in this
/// order, in one transaction. Returns when it was saved (epoch ms).
pub async fn save(db: &Db, owner: &UserId, twin: &Twin) -> Result<i64, sqlx::Error> {
    let now = now_ms();
    let shades: Vec<NewShade> = twin.shades.iter().map(NewShade::from).collect();
    with_pool!(db, pool => {
        async {
            let mut tx = pool.begin().await?;
            sqlx::query(
                "INSERT INTO twins (id, owner_id, display_name, bio, matchable, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $6) ON CONFLICT (owner_id) DO UPDATE SET \
                 display_name = excluded.display_name, bio = excluded.bio, \
                 matchable = excluded.matchable, updated_at = excluded.updated_at",
            )
            .bind(new_id())
            .bind(&owner.0)
            .bind(twin.name.as_str())
            .bind(twin.bio.as_str())
            .bind(i32::from(twin.matchable))
            .bind(now)
            .execute(&mut *tx)
            .await?;
            let (twin_id,): (String,) = sqlx::query_as("SELECT id FROM twins WHERE owner_id = $1")
                .bind(&owner.0)
                .fetch_one(&mut *tx)
                .await?;
            sqlx::query("DELETE FROM shades WHERE twin_id = $1").bind(&twin_id).execute(&mut *tx).await?;
            for (i, s) in shades.iter().enumerate() {
                insert_shade(&twin_id, i, s, now).execute(&mut *tx).await?;
            }
            // The matching words of the public Shades, for candidate ranking: none for a twin
            // closed to matches.
            sqlx::query("DELETE FROM twin_terms WHERE twin_id = $1").bind(&twin_id).execute(&mut *tx).await?;
            let words = if twin.matchable { public_terms(twin) } else { Vec::new() };
            for (term, weight) in words {
                sqlx::query("INSERT INTO twin_terms (twin_id, term, weight) VALUES ($1, $2, $3)")
                    .bind(&twin_id)
                    .bind(term)
                    .bind(weight)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok(now)
        }
        .await
    })
}

/// The most words a twin is indexed by.
pub const MAX_TERMS: usize = 200;

/// The words of `twin`'s public Shades with their weights: a word in a name or a topic counts
/// three, in a description one; summed over the Shades.
pub fn public_terms(twin: &Twin) -> Vec<(String, i32)> {
    use crate::domain::terms;
    let mut out: Vec<(String, i32)> = Vec::new();
    let mut add = |text: &str, weight: i32| {
        for t in terms(text, MAX_TERMS) {
            if let Some(i) = out.iter().position(|(x, _)| *x == t) {
                out[i].1 += weight;
            } else if out.len() < MAX_TERMS {
                out.push((t, weight));
            }
        }
    };
    for s in twin.shades.iter().filter(|s| s.public) {
        add(s.name.as_str(), 3);
        for t in &s.topics {
            add(t.as_str(), 3);
        }
        add(s.description.as_str(), 1);
    }
    out
}

/// The one INSERT into `shades`: Shade `s` at `position` of twin `twin_id`.
fn insert_shade<'q, DB: sqlx::Database>(
    twin_id: &'q str,
    position: usize,
    s: &'q NewShade,
    now: i64,
) -> sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments<'q>>
where
    &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    String: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    f64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    i32: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    sqlx::types::Json<&'q Vec<String>>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    sqlx::query(
        "INSERT INTO shades (id, twin_id, name, icon, description, confidence, topics, position, \
         created_at, updated_at, source, is_public) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, $10, $11)",
    )
    .bind(new_id())
    .bind(twin_id)
    .bind(s.name.as_str())
    .bind(s.icon.as_str())
    .bind(s.description.as_str())
    .bind(s.confidence)
    .bind(sqlx::types::Json(&s.topics))
    .bind(position as i32)
    .bind(now)
    .bind(s.source.as_str())
    .bind(i32::from(s.public))
}

/// Replaces the Shades of `owner`'s twin that came from SecondMe with `shades` (placed after the
/// others), keeping every Shade the user wrote or accepted; creates the twin (without a display
/// name yet) if they have none. One transaction.
pub async fn replace_secondme_shades(
    db: &Db,
    owner: &UserId,
    shades: &[NewShade],
) -> Result<(), sqlx::Error> {
    let now = now_ms();
    with_pool!(db, pool => {
        async {
            let mut tx = pool.begin().await?;
            sqlx::query(
                "INSERT INTO twins (id, owner_id, display_name, bio, created_at, updated_at) \
                 VALUES ($1, $2, '', '', $3, $3) ON CONFLICT (owner_id) DO UPDATE SET updated_at = excluded.updated_at",
            )
            .bind(new_id())
            .bind(&owner.0)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            let (twin_id,): (String,) = sqlx::query_as("SELECT id FROM twins WHERE owner_id = $1")
                .bind(&owner.0)
                .fetch_one(&mut *tx)
                .await?;
            sqlx::query("DELETE FROM shades WHERE twin_id = $1 AND source = 'secondme'")
                .bind(&twin_id)
                .execute(&mut *tx)
                .await?;
            let (kept,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM shades WHERE twin_id = $1")
                .bind(&twin_id)
                .fetch_one(&mut *tx)
                .await?;
            for (i, s) in shades.iter().enumerate() {
                insert_shade(&twin_id, kept as usize + i, s, now).execute(&mut *tx).await?;
            }
            tx.commit().await
        }
        .await
    })
}
