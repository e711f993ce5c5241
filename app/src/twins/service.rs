//! Importing a user's SecondMe Shades into their twin: read from SecondMe (through the sign-in
//! provider, which holds the tokens), turned into the twin's Shades, and stored in place of the
//! old ones. Runs after a SecondMe sign-in that granted the Shades scope, and again on demand.

use super::store::{self, NewShade};
use crate::auth::providers::{secondme::Shade, ProviderError, Providers};
use crate::auth::UserId;
use crate::infra::db::Db;
use serde_json::Value;

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("reading Shades from SecondMe: {0}")]
    SecondMe(#[from] ProviderError),
    #[error("storing Shades: {0}")]
    Store(#[from] sqlx::Error),
}

/// Imports (again) `owner`'s SecondMe Shades into their twin, replacing what was there, refreshing
/// the access token first if it has expired. Returns how many.
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
    store::replace_shades(db, owner, &shades).await?;
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
