//! Every query on `twins` and `shades`. No other module writes these tables.

use crate::auth::UserId;
use crate::infra::{db::Db, new_id, now_ms};
use crate::with_pool;

/// A Shade as the twin keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct NewShade {
    pub name: String,
    pub icon: String,
    pub description: String,
    /// 0..1.
    pub confidence: f64,
    pub topics: Vec<String>,
}

/// Replaces the Shades of `owner`'s twin (created if they have none yet), in order, in one
/// transaction.
pub async fn replace_shades(
    db: &Db,
    owner: &UserId,
    shades: &[NewShade],
) -> Result<(), sqlx::Error> {
    let now = now_ms();
    with_pool!(db, pool => {
        async {
            let mut tx = pool.begin().await?;
            sqlx::query(
                "INSERT INTO twins (id, owner_id, bio, created_at, updated_at) VALUES ($1, $2, '', $3, $3) \
                 ON CONFLICT (owner_id) DO NOTHING",
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
            sqlx::query("DELETE FROM shades WHERE twin_id = $1").bind(&twin_id).execute(&mut *tx).await?;
            for (i, s) in shades.iter().enumerate() {
                sqlx::query(
                    "INSERT INTO shades (id, twin_id, name, icon, description, confidence, topics, position, \
                     created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)",
                )
                .bind(new_id())
                .bind(&twin_id)
                .bind(&s.name)
                .bind(&s.icon)
                .bind(&s.description)
                .bind(s.confidence)
                .bind(sqlx::types::Json(&s.topics))
                .bind(i as i32)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await
        }
        .await
    })
}
