//! Characters: generate, save, list, open.

use crate::domain::{CharacterDraft, GeneratedCharacter};
use crate::error::AppError;
use leptos::prelude::*;
use leptos::server_fn::codec::Json;
use serde::{Deserialize, Serialize};

/// A card on the dashboard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CharacterSummary {
    pub id: String,
    pub name: String,
    pub traits: Vec<String>,
    pub avatar: String,
    pub opening_line: String,
    pub created_at: i64,
}

/// A whole saved character.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CharacterView {
    pub id: String,
    pub draft: CharacterDraft,
    pub created_at: i64,
    pub updated_at: i64,
}

/// What generation returns: the story parts, and whether an offline writer produced them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Generated {
    pub story: GeneratedCharacter,
    pub offline: bool,
}

/// Writes the story parts (backstory, world, opening line, start options, endings) from the
/// first wizard step. `variation` picks a different take on the same inputs.
#[server(endpoint = "characters/generate", input = Json)]
pub async fn generate_character(
    draft: CharacterDraft,
    variation: u64,
) -> Result<Generated, AppError> {
    ssr::generate(draft, variation).await
}

/// Saves a new character; returns its id.
#[server(endpoint = "characters/save", input = Json)]
pub async fn save_character(draft: CharacterDraft) -> Result<String, AppError> {
    ssr::save(draft).await
}

/// The signed-in user's characters, newest first.
#[server(endpoint = "characters/list")]
pub async fn list_characters() -> Result<Vec<CharacterSummary>, AppError> {
    ssr::list().await
}

#[server(endpoint = "characters/get")]
pub async fn get_character(id: String) -> Result<CharacterView, AppError> {
    ssr::get(id).await
}

#[cfg(feature = "ssr")]
pub mod ssr {
    use super::*;
    use crate::auth::ssr::{require_user, UserId};
    use crate::domain::{CharacterSeed, CharacterSpec, DraftEnding};
    use crate::error::OrInternal;
    use crate::infra::{
        db::Db,
        llm::{prompts, LlmError, Repair},
        new_id, now_ms, usage, AppState,
    };
    use crate::with_pool;
    use sqlx::types::Json as SqlJson;
    use std::time::Instant;

    #[tracing::instrument(skip_all, fields(variation))]
    pub async fn generate(draft: CharacterDraft, variation: u64) -> Result<Generated, AppError> {
        let user = require_user().await?;
        let seed = draft.parse_seed()?;
        let state = AppState::get();
        let story = write_story(&state, &user, &seed, variation)
            .await
            .map_err(|e| {
                tracing::warn!(error = %e, "character generation failed");
                AppError::Provider(e.user_message().to_string())
            })?;
        Ok(Generated {
            story,
            offline: state.llm.is_offline(),
        })
    }

    /// Asks the model for a character's story parts, parses and validates the reply, and gives
    /// an invalid reply one repair attempt that names what was wrong. Every call is recorded.
    pub async fn write_story(
        state: &AppState,
        user: &UserId,
        seed: &CharacterSeed,
        variation: u64,
    ) -> Result<GeneratedCharacter, LlmError> {
        let mut request = prompts::character(seed, variation);
        for attempt in 1..=2 {
            let started = Instant::now();
            let result = state.llm.generate_json(request.clone()).await;
            let parsed = result
                .as_ref()
                .map_err(Clone::clone)
                .and_then(|r| parse_generated(&r.raw));
            usage::record(
                &state.db,
                usage::Record {
                    owner_id: &user.0,
                    kind: if attempt == 1 {
                        "character"
                    } else {
                        "character_repair"
                    },
                    provider: state.llm.name(),
                    language: Some(seed.language.as_str()),
                    outcome: usage::outcome(&parsed),
                    duration_ms: started.elapsed().as_millis() as i64,
                    usage: result.as_ref().map(|r| r.usage).unwrap_or_default(),
                },
            )
            .await;
            match (result, parsed) {
                (_, Ok(story)) => return Ok(story),
                (Ok(reply), Err(LlmError::InvalidReply(problem))) if attempt == 1 => {
                    tracing::warn!(%problem, "invalid structured reply; asking for one repair");
                    request.repair = Some(Repair {
                        previous: reply.raw,
                        problem,
                    });
                }
                (_, Err(e)) => return Err(e),
            }
        }
        unreachable!("the loop returns on its second attempt")
    }

    /// Parses and validates a generated character: JSON of the right shape, every text in bounds,
    /// exactly three start options and three endings of distinct kinds.
    pub fn parse_generated(raw: &str) -> Result<GeneratedCharacter, LlmError> {
        let invalid = |m: String| LlmError::InvalidReply(m);
        let value: serde_json::Value = serde_json::from_str(raw.trim())
            .map_err(|e| invalid(format!("the reply is not valid JSON ({e})")))?;
        let g: GeneratedCharacter =
            serde_json::from_value(value).map_err(|e| invalid(e.to_string()))?;
        g.check().map_err(|e| invalid(e.0))?;
        Ok(g)
    }

    #[tracing::instrument(skip_all)]
    pub async fn save(draft: CharacterDraft) -> Result<String, AppError> {
        let user = require_user().await?;
        let spec = draft.parse_spec()?;
        let db = AppState::get().db;
        insert(&db, &user, &spec)
            .await
            .or_internal("save character")
    }

    pub async fn list() -> Result<Vec<CharacterSummary>, AppError> {
        let user = require_user().await?;
        list_for(&AppState::get().db, &user)
            .await
            .or_internal("list characters")
    }

    pub async fn get(id: String) -> Result<CharacterView, AppError> {
        let user = require_user().await?;
        find(&AppState::get().db, &user, &id)
            .await
            .or_internal("get character")?
            .ok_or(AppError::NotFound)
    }

    // --- store ---------------------------------------------------------------------------

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

    pub async fn insert(
        db: &Db,
        owner: &UserId,
        spec: &CharacterSpec,
    ) -> Result<String, sqlx::Error> {
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
    pub async fn find(
        db: &Db,
        owner: &UserId,
        id: &str,
    ) -> Result<Option<CharacterView>, sqlx::Error> {
        let row: Option<CharacterRow> = with_pool!(db, pool => {
            sqlx::query_as(&format!("SELECT {COLUMNS} FROM characters WHERE id = $1 AND owner_id = $2"))
                .bind(id)
                .bind(&owner.0)
                .fetch_optional(pool)
                .await?
        });
        Ok(row.map(CharacterRow::into_view))
    }
}
