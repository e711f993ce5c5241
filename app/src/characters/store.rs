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
        }
    }
}

const COLUMNS: &str = "id, name, traits, age, gender, voice, scenes, language, avatar, backstory, \
                       story_context, opening_line, start_options, endings, created_at, updated_at";

pub async fn insert(db: &Db, owner: &UserId, spec: &CharacterSpec) -> Result<String, sqlx::Error> {
    let id = new_id();
    let now = now_ms();
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
    with_pool!(db, pool => {
        sqlx::query(
            "INSERT INTO characters (id, owner_id, name, traits, age, gender, voice, scenes, language, \
             avatar, backstory, story_context, opening_line, start_options, endings, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $16)",
        )
        .bind(&id)
        .bind(&owner.0)
        .bind(spec.seed.name.as_str())
        .bind(&traits)
        .bind(spec.seed.age.get() as i32)
        .bind(spec.seed.gender.as_str())
        .bind(spec.voice.as_str())
        .bind(spec.scenes.get() as i32)
        .bind(spec.seed.language.as_str())
        .bind(spec.avatar.as_str())
        .bind(spec.story.backstory.as_str())
        .bind(spec.story.story_context.as_str())
        .bind(spec.story.opening_line.as_str())
        .bind(&options)
        .bind(&endings)
        .bind(now)
        .execute(pool)
        .await.map(|_| ())?
    });
    Ok(id)
}

pub async fn list_for(db: &Db, owner: &UserId) -> Result<Vec<CharacterSummary>, sqlx::Error> {
    let rows: Vec<CharacterRow> = with_pool!(db, pool => {
        sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM characters WHERE owner_id = $1 ORDER BY created_at DESC, id DESC"
        ))
        .bind(&owner.0)
        .fetch_all(pool)
        .await?
    });
    Ok(rows
        .into_iter()
        .map(|r| CharacterSummary {
            id: r.id,
            name: r.name,
            traits: r.traits.0,
            avatar: r.avatar,
            opening_line: r.opening_line,
            created_at: r.created_at,
        })
        .collect())
}

/// The character `id` if `owner` owns it; someone else's character is `None`, like a missing one.
pub async fn find(db: &Db, owner: &UserId, id: &str) -> Result<Option<CharacterView>, sqlx::Error> {
    let row: Option<CharacterRow> = with_pool!(db, pool => {
        sqlx::query_as(&format!("SELECT {COLUMNS} FROM characters WHERE id = $1 AND owner_id = $2"))
            .bind(id)
            .bind(&owner.0)
            .fetch_optional(pool)
            .await?
    });
    Ok(row.map(CharacterRow::into_view))
}
