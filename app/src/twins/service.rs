//! What the twin server functions do — open, save, suggest Shades (one model call, validated,
//! with one repair), sync from SecondMe — and the import of SecondMe Shades at sign-in.
//! Queries are in [`super::store`].

use super::store::{self, NewShade};
use super::{Suggestions, TwinView};
use crate::auth::providers::{secondme::Shade, ProviderError, ProviderId, Providers};
use crate::auth::{require_user, UserId};
use crate::domain::{ShadeQuestionnaire, ShadeSource, SuggestedShades, TwinDraft};
use crate::error::{AppError, OrInternal};
use crate::infra::db::Db;
use crate::infra::llm::{prompts, LlmError};
use crate::infra::AppState;
use crate::limits;
use crate::usage::calls::structured;
use serde_json::Value;

#[tracing::instrument(skip_all)]
pub async fn get() -> Result<TwinView, AppError> {
    let user = require_user().await?;
    let state = AppState::get()?;
    view(&state, &user).await
}

/// [`get`] for `user`, however they are signed in (the REST API reads the twin too).
pub async fn view(state: &AppState, user: &UserId) -> Result<TwinView, AppError> {
    let secondme = crate::auth::store::tokens(&state.db, ProviderId::SecondMe, &user.0)
        .await
        .or_internal("look up SecondMe identity")?
        .is_some();
    let row = store::find(&state.db, user)
        .await
        .or_internal("load twin")?;
    Ok(match row {
        Some(t) => {
            let name = if t.name.is_empty() {
                own_name(&state.db, user).await?
            } else {
                t.name
            };
            TwinView {
                exists: true,
                draft: TwinDraft {
                    name,
                    bio: t.bio,
                    matchable: t.matchable,
                    shades: t.shades,
                },
                secondme,
                updated_at: t.updated_at,
            }
        }
        None => TwinView {
            exists: false,
            draft: TwinDraft {
                name: own_name(&state.db, user).await?,
                ..TwinDraft::default()
            },
            secondme,
            updated_at: 0,
        },
    })
}

/// The user's own display name, which a new twin starts from (cut to a twin name's length).
async fn own_name(db: &Db, user: &UserId) -> Result<String, AppError> {
    let found = crate::auth::store::find_user(db, &user.0)
        .await
        .or_internal("load user")?;
    Ok(found
        .map(|u| {
            u.display_name
                .chars()
                .take(crate::domain::TwinName::MAX)
                .collect()
        })
        .unwrap_or_default())
}

#[tracing::instrument(skip_all)]
pub async fn summary() -> Result<Option<super::TwinBrief>, AppError> {
    let user = require_user().await?;
    let db = AppState::get()?.db;
    Ok(store::summary(&db, &user)
        .await
        .or_internal("load twin")?
        .map(|(name, matchable, shades)| super::TwinBrief {
            name: if name.is_empty() {
                "Your twin".into()
            } else {
                name
            },
            matchable,
            shades,
        }))
}

#[tracing::instrument(skip_all)]
pub async fn save(draft: TwinDraft) -> Result<TwinView, AppError> {
    let user = require_user().await?;
    save_for(&AppState::get()?, &user, draft).await
}

/// [`save`] for `user`, however they are signed in.
pub async fn save_for(
    state: &AppState,
    user: &UserId,
    draft: TwinDraft,
) -> Result<TwinView, AppError> {
    let (state, user) = (state.clone(), user.clone());
    let twin = draft.parse()?;
    store::save(&state.db, &user, &twin)
        .await
        .or_internal("save twin")?;
    tracing::info!(shades = twin.shades.len(), "twin saved");
    view(&state, &user).await
}

#[tracing::instrument(skip_all, fields(variation))]
pub async fn suggest(
    questionnaire: ShadeQuestionnaire,
    variation: u64,
) -> Result<Suggestions, AppError> {
    let user = require_user().await?;
    let q = questionnaire.parse()?;
    let state = AppState::get()?;
    let mut slot = limits::service::begin_model_call(&state, &user).await?;
    let request = prompts::shades(&q, variation);
    let schema = request.schema.clone();
    let kinds = ("shades", "shades_repair");
    let suggested = structured(&state, &user, request, kinds, None, |raw| {
        parse_suggestions(raw, &schema)
    })
    .await;
    slot.release().await;
    let suggested = suggested.map_err(|e| {
        tracing::warn!(error = %e, "Shade suggestion failed");
        AppError::Provider(e.user_message().to_string())
    })?;
    Ok(Suggestions {
        shades: suggested.into_drafts(),
        offline: state.llm.is_offline(),
    })
}

/// Reads a model's Shades: mends what needs no model ([`crate::domain::schema::recover`]), then
/// parses and checks; what is still wrong is an invalid reply (for the one repair).
fn parse_suggestions(raw: &str, schema: &Value) -> Result<SuggestedShades, LlmError> {
    let mut value: Value = serde_json::from_str(raw.trim())
        .map_err(|e| LlmError::InvalidReply(format!("the reply is not valid JSON ({e})")))?;
    crate::domain::schema::recover(&mut value, schema);
    let parsed: SuggestedShades = serde_json::from_value(value)
        .map_err(|e| LlmError::InvalidReply(format!("the reply does not fit the schema ({e})")))?;
    parsed.check().map_err(|e| LlmError::InvalidReply(e.0))?;
    Ok(parsed)
}

#[tracing::instrument(skip_all)]
pub async fn sync_secondme() -> Result<TwinView, AppError> {
    let user = require_user().await?;
    let state = AppState::get()?;
    // Only for someone who signed in with SecondMe: anyone else is told, not a fault.
    let linked = crate::auth::store::tokens(&state.db, ProviderId::SecondMe, &user.0)
        .await
        .or_internal("look up SecondMe identity")?
        .is_some();
    if !linked || state.providers.find(ProviderId::SecondMe.as_str()).is_err() {
        return Err(AppError::BadRequest(
            "Sign in with SecondMe first: your Shades are synced from your SecondMe account."
                .into(),
        ));
    }
    match import_secondme_shades(&state.providers, &state.db, &user).await {
        Ok(_) => view(&state, &user).await,
        Err(ImportError::SecondMe(e)) => {
            tracing::warn!(error = %e, "SecondMe Shades sync failed");
            Err(AppError::Provider(
                "SecondMe could not be reached with your sign-in. Sign in with SecondMe again, then sync."
                    .into(),
            ))
        }
        Err(ImportError::Store(e)) => Err(e).or_internal("store SecondMe Shades"),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("reading Shades from SecondMe: {0}")]
    SecondMe(#[from] ProviderError),
    #[error("storing Shades: {0}")]
    Store(#[from] sqlx::Error),
}

/// Imports (again) `owner`'s SecondMe Shades into their twin, replacing those that came from
/// SecondMe before and keeping the rest, refreshing the access token first if it has expired.
/// Returns how many.
pub async fn import_secondme_shades(
    providers: &Providers,
    db: &Db,
    owner: &UserId,
) -> Result<usize, ImportError> {
    let shades: Vec<NewShade> = providers
        .secondme_shades(db, owner)
        .await?
        .into_iter()
        .map(from_secondme)
        .collect();
    store::replace_secondme_shades(db, owner, &shades).await?;
    tracing::info!(user_id = %owner.0, count = shades.len(), "SecondMe Shades imported");
    Ok(shades.len())
}

fn from_secondme(s: Shade) -> NewShade {
    NewShade {
        name: s.name.trim().to_string(),
        icon: s.icon.unwrap_or_else(|| "✨".into()),
        description: s.description.unwrap_or_default(),
        confidence: confidence(s.confidence.as_ref()),
        topics: s.topics.unwrap_or_default(),
        source: ShadeSource::Secondme,
        public: false,
    }
}

/// Confidence as 0..1, from a number (0..1 or 0..100) or a level ("HIGH", "MEDIUM", "LOW").
fn confidence(v: Option<&Value>) -> f64 {
    match v {
        Some(Value::Number(n)) => {
            let x = n.as_f64().unwrap_or(0.5);
            (if x > 1.0 { x / 100.0 } else { x }).clamp(0.0, 1.0)
        }
        Some(Value::String(s)) => match s.to_ascii_uppercase().as_str() {
            "VERY_HIGH" | "HIGH" => 0.9,
            "MEDIUM" => 0.6,
            "LOW" | "VERY_LOW" => 0.3,
            _ => 0.5,
        },
        _ => 0.5,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn confidence_levels() {
        assert_eq!(confidence(Some(&json!(0.8))), 0.8);
        assert_eq!(confidence(Some(&json!(80))), 0.8);
        assert_eq!(confidence(Some(&json!("HIGH"))), 0.9);
        assert_eq!(confidence(None), 0.5);
    }
}
