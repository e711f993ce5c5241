//! The `characters` table: every query on it. Reads are scoped to their owner; someone else's
//! character reads as missing.

use super::{CharacterSummary, CharacterView};
use crate::auth::UserId;
use crate::domain::{CharacterDraft, CharacterSpec, DraftEnding};
use crate::infra::{db::Db, new_id, now_ms};
use crate::with_pool;
use sqlx::types::Json as SqlJson;

#[derive(sqlx::FromRow)]
struct CharacterRow {
    id: String,
    name: String,
    traits: SqlJson<Vec<String>>,
    age: i32,
    gender: String,
    voice: String,
    scenes: i32,
    language: String,
    avatar: String,
    backstory: String,
    story_context: String,
    opening_line: String,
    start_options: SqlJson<Vec<String>>,
    endings: SqlJson<Vec<DraftEnding>>,
    created_at: i64,
    updated_at: i64,
    /// The card it was imported from, if it was.
    card: Option<String>,
}

impl CharacterRow {
    fn into_view(self) -> CharacterView {
        CharacterView {
            id: self.id,
            draft: CharacterDraft {
                name: self.name,
                traits: self.traits.0,
                age: self.age.to_string(),
                gender: self.gender,
                voice: self.voice,
                scenes: self.scenes.to_string(),
                language: self.language,
                avatar: self.avatar,
                backstory: self.backstory,
                story_context: self.story_context,
                opening_line: self.opening_line,
                start_options: self.start_options.0,
                endings: self.endings.0,
            },
            created_at: self.created_at,
            updated_at: self.updated_at,
            lorebook: self
                .card
                .and_then(|c| serde_json::from_str(&c).ok())
                .map(|card| crate::domain::card::lorebook(&card))
                .unwrap_or_default(),
        }
    }
}

/// Binds a character's values where the INSERT and the UPDATE both expect them: `$1` its id, `$2`
/// its owner, `$3`–`$15` its fields (with `$lists` from [`lists`]), `$16` the time.
macro_rules! bind_character {
    ($query:expr, $id:expr, $owner:expr, $spec:expr, $lists:expr, $now:expr) => {
        $query
            .bind($id)
            .bind(&$owner.0)
            .bind($spec.seed.name.as_str())
            .bind(&$lists.0)
            .bind($spec.seed.age.get() as i32)
            .bind($spec.seed.gender.as_str())
            .bind($spec.voice.as_str())
            .bind($spec.scenes.get() as i32)
            .bind($spec.seed.language.as_str())
            .bind($spec.avatar.as_str())
            .bind($spec.story.backstory.as_str())
            .bind($spec.story.story_context.as_str())
            .bind($spec.story.opening_line.as_str())
            .bind(&$lists.1)
            .bind(&$lists.2)
            .bind($now)
    };
}

const COLUMNS: &str = "id, name, traits, age, gender, voice, scenes, language, avatar, backstory, \
                       story_context, opening_line, start_options, endings, created_at, updated_at, card";

pub async fn insert(db: &Db, owner: &UserId, spec: &CharacterSpec) -> Result<String, sqlx::Error> {
    let id = new_id();
    let now = now_ms();
    let lists = lists(spec);
    with_pool!(db, pool => {
        bind_character!(
            sqlx::query(
                "INSERT INTO characters (id, owner_id, name, traits, age, gender, voice, scenes, language, \
                 avatar, backstory, story_context, opening_line, start_options, endings, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $16)",
            ),
            &id, owner, spec, lists, now
        )
        .execute(pool)
        .await.map(|_| ())?
    });
    Ok(id)
}

type Lists = (
    SqlJson<Vec<String>>,
    SqlJson<Vec<String>>,
    SqlJson<Vec<DraftEnding>>,
);

/// The list columns of a character, as stored (JSON).
fn lists(spec: &CharacterSpec) -> Lists {
    let traits = SqlJson(spec.seed.traits.to_strings());
    let options = SqlJson(
        spec.story
            .start_options
            .iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>(),
    );
    let endings = SqlJson(
        spec.story
            .endings
            .iter()
            .map(DraftEnding::from)
            .collect::<Vec<_>>(),
    );
    (traits, options, endings)
}

/// Replaces every field of `owner`'s character `id` (not in the trash); `false` if there is none.
pub async fn update(
    db: &Db,
    owner: &UserId,
    id: &str,
    spec: &CharacterSpec,
    if_version: Option<i64>,
) -> Result<bool, sqlx::Error> {
    let lists = lists(spec);
    // `updated_at` is the row's version: it only grows, by at least 1 each update, so an update
    // made "if the version is still N" (`if_version`, the REST API's If-Match) cannot overwrite a
    // change made after N, even within the same millisecond.
    let n = with_pool!(db, pool => {
        bind_character!(
            sqlx::query(
            "UPDATE characters SET name = $3, traits = $4, age = $5, gender = $6, voice = $7, \
             scenes = $8, language = $9, avatar = $10, backstory = $11, story_context = $12, \
             opening_line = $13, start_options = $14, endings = $15, \
             updated_at = CASE WHEN $16 > updated_at THEN $16 ELSE updated_at + 1 END \
             WHERE id = $1 AND owner_id = $2 AND deleted_at IS NULL AND ($17 = 0 OR updated_at = $17)",
            ),
            id, owner, spec, lists, now_ms()
        )
        .bind(if_version.unwrap_or(0))
        .execute(pool)
        .await?
        .rows_affected()
    });
    Ok(n == 1)
}

/// Moves `owner`'s character `id` to the trash at `now`; `false` if there is no such character
/// out of the trash.
pub async fn trash(db: &Db, owner: &UserId, id: &str, now: i64) -> Result<bool, sqlx::Error> {
    let n = with_pool!(db, pool => {
        sqlx::query("UPDATE characters SET deleted_at = $3 WHERE id = $1 AND owner_id = $2 AND deleted_at IS NULL")
            .bind(id)
            .bind(&owner.0)
            .bind(now)
            .execute(pool)
            .await?
            .rows_affected()
    });
    Ok(n == 1)
}

/// Brings `owner`'s character `id` back from the trash if it was deleted at or after `cutoff`;
/// `false` if there is no such character in the trash.
pub async fn restore(
    db: &Db,
    owner: &UserId,
    id: &str,
    cutoff: i64,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let n = with_pool!(db, pool => {
        sqlx::query(
            "UPDATE characters SET deleted_at = NULL, updated_at = $4 \
             WHERE id = $1 AND owner_id = $2 AND deleted_at IS NOT NULL AND deleted_at >= $3",
        )
        .bind(id)
        .bind(&owner.0)
        .bind(cutoff)
        .bind(now)
        .execute(pool)
        .await?
        .rows_affected()
    });
    Ok(n == 1)
}

/// `owner`'s characters in the trash deleted at or after `cutoff`, most recently deleted first
/// (at most `limit`).
pub async fn trash_for(
    db: &Db,
    owner: &UserId,
    cutoff: i64,
    limit: i64,
) -> Result<Vec<super::TrashedCharacter>, sqlx::Error> {
    let rows: Vec<(String, String, String, i64)> = with_pool!(db, pool => {
        sqlx::query_as(
            "SELECT id, name, avatar, deleted_at FROM characters \
             WHERE owner_id = $1 AND deleted_at IS NOT NULL AND deleted_at >= $2 \
             ORDER BY deleted_at DESC, id DESC LIMIT $3",
        )
        .bind(&owner.0)
        .bind(cutoff)
        .bind(limit)
        .fetch_all(pool)
        .await?
    });
    Ok(rows
        .into_iter()
        .map(|(id, name, avatar, deleted_at)| super::TrashedCharacter {
            id,
            name,
            avatar,
            deleted_at,
        })
        .collect())
}

/// Removes for good every character (with its chats: they cascade) deleted before `cutoff`.
pub async fn purge_trash(db: &Db, cutoff: i64) -> Result<u64, sqlx::Error> {
    with_pool!(db, pool => {
        sqlx::query("DELETE FROM characters WHERE deleted_at IS NOT NULL AND deleted_at < $1")
            .bind(cutoff)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
    })
}

#[derive(sqlx::FromRow)]
struct SummaryRow {
    id: String,
    name: String,
    traits: SqlJson<Vec<String>>,
    avatar: String,
    opening_line: String,
    created_at: i64,
}

/// What [`page_for`] was asked to start after.
pub enum After<'a> {
    /// The first page.
    Start,
    /// After the character with this id (the last one of the previous page).
    Character(&'a str),
}

/// One page of `owner`'s characters, newest first by keyset on `(created_at, id)`: up to `limit`
/// after `after`, and whether more remain. `None` when `after` names a character `owner` does not
/// have (someone else's cursor reads as missing).
pub async fn page_for(
    db: &Db,
    owner: &UserId,
    after: After<'_>,
    limit: i64,
) -> Result<Option<(Vec<CharacterSummary>, bool)>, sqlx::Error> {
    let (created_at, id) = match after {
        After::Start => (i64::MAX, String::new()),
        After::Character(id) => {
            let found: Option<(i64,)> = with_pool!(db, pool => {
                sqlx::query_as("SELECT created_at FROM characters WHERE id = $1 AND owner_id = $2 AND deleted_at IS NULL")
                    .bind(id)
                    .bind(&owner.0)
                    .fetch_optional(pool)
                    .await?
            });
            let Some((created_at,)) = found else {
                return Ok(None);
            };
            (created_at, id.to_string())
        }
    };
    let mut rows: Vec<SummaryRow> = with_pool!(db, pool => {
        sqlx::query_as(
            "SELECT id, name, traits, avatar, opening_line, created_at FROM characters \
             WHERE owner_id = $1 AND deleted_at IS NULL \
             AND (created_at < $2 OR (created_at = $2 AND id < $3)) \
             ORDER BY created_at DESC, id DESC LIMIT $4",
        )
        .bind(&owner.0)
        .bind(created_at)
        .bind(&id)
        .bind(limit + 1)
        .fetch_all(pool)
        .await?
    });
    let more = rows.len() as i64 > limit;
    rows.truncate(limit.max(0) as usize);
    let list = rows
        .into_iter()
        .map(|r| CharacterSummary {
            id: r.id,
            name: r.name,
            traits: r.traits.0,
            avatar: r.avatar,
            opening_line: r.opening_line,
            created_at: r.created_at,
        })
        .collect();
    Ok(Some((list, more)))
}

/// The first page of `owner`'s characters at the largest page size, newest first.
pub async fn list_for(db: &Db, owner: &UserId) -> Result<Vec<CharacterSummary>, sqlx::Error> {
    let first = page_for(db, owner, After::Start, super::MAX_PAGE).await?;
    Ok(first.map(|(list, _)| list).unwrap_or_default())
}

/// The character `id` if `owner` owns it and it is not in the trash; someone else's character is
/// `None`, like a missing one.
pub async fn find(db: &Db, owner: &UserId, id: &str) -> Result<Option<CharacterView>, sqlx::Error> {
    let row: Option<CharacterRow> = with_pool!(db, pool => {
        sqlx::query_as(&format!("SELECT {COLUMNS} FROM characters WHERE id = $1 AND owner_id = $2 AND deleted_at IS NULL"))
            .bind(id)
            .bind(&owner.0)
            .fetch_optional(pool)
            .await?
    });
    Ok(row.map(CharacterRow::into_view))
}

/// Up to `limit` of `owner`'s characters not in the trash, oldest first, whole, each with the
/// card it was imported from (if any, as stored). For the bulk export.
pub async fn all_with_cards(
    db: &Db,
    owner: &UserId,
    limit: i64,
) -> Result<Vec<(CharacterView, Option<String>)>, sqlx::Error> {
    let rows: Vec<CharacterRow> = with_pool!(db, pool => {
        sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM characters WHERE owner_id = $1 AND deleted_at IS NULL \
             ORDER BY created_at, id LIMIT $2"
        ))
        .bind(&owner.0)
        .bind(limit)
        .fetch_all(pool)
        .await?
    });
    Ok(rows
        .into_iter()
        .map(|r| {
            let card = r.card.clone();
            (r.into_view(), card)
        })
        .collect())
}

/// How many characters `owner` has outside the trash.
pub async fn count_for(db: &Db, owner: &UserId) -> Result<i64, sqlx::Error> {
    with_pool!(db, pool => {
        sqlx::query_scalar("SELECT COUNT(*) FROM characters WHERE owner_id = $1 AND deleted_at IS NULL")
            .bind(&owner.0)
            .fetch_one(pool)
            .await
    })
}
