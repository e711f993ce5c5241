//! The digital twin: one per user, the self they bring into the product — a display name, a
//! short bio and its Shades (facets of personality, each with a confidence, the topics it came
//! from, where it came from and whether other people's matches may use it).
//!
//! This module holds what crosses the wire (the view and the `#[server]` functions); the
//! behaviour is in [`service`] and every query on `twins` and `shades` in [`store`].

use crate::domain::{ShadeDraft, ShadeQuestionnaire, TwinDraft};
use crate::error::AppError;
use leptos::prelude::*;
use leptos::server_fn::codec::Json;
use serde::{Deserialize, Serialize};

#[cfg(feature = "ssr")]
pub mod service;
#[cfg(feature = "ssr")]
pub mod store;

/// The signed-in user's twin as the twin page edits it.
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TwinView {
    /// False until the twin is first saved (or its Shades imported): the page then offers to
    /// create one, starting from the user's own name.
    pub exists: bool,
    pub draft: TwinDraft,
    /// Whether the user signed in with SecondMe, so their Shades can be synced from it.
    pub secondme: bool,
    /// When it was last saved (epoch ms; 0 before).
    pub updated_at: i64,
}

/// Shades suggested for review: nothing is saved until the user accepts and saves them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Suggestions {
    pub shades: Vec<ShadeDraft>,
    /// Written by the offline writer (labelled so on the page).
    pub offline: bool,
}

/// The signed-in user's twin in brief, for the dashboard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TwinBrief {
    pub name: String,
    pub matchable: bool,
    pub shades: i64,
}

/// The signed-in user's twin in brief (`None` before they have one). One query.
#[server(endpoint = "twins/summary")]
pub async fn twin_summary() -> Result<Option<TwinBrief>, AppError> {
    service::summary().await
}

#[server(endpoint = "twins/get")]
pub async fn get_twin() -> Result<TwinView, AppError> {
    service::get().await
}

/// Saves the signed-in user's twin — name, bio, whether it is matchable, and exactly these
/// Shades in this order (validated as in the browser; field errors keyed `shades.{i}.{field}`).
#[server(endpoint = "twins/save", input = Json)]
pub async fn save_twin(twin: TwinDraft) -> Result<TwinView, AppError> {
    service::save(twin).await
}

/// Suggests Shades from questionnaire answers and/or a pasted bio, for the user to review.
/// `variation` asks for another take on the same answers.
#[server(endpoint = "twins/suggest", input = Json)]
pub async fn suggest_shades(
    questionnaire: ShadeQuestionnaire,
    variation: u64,
) -> Result<Suggestions, AppError> {
    service::suggest(questionnaire, variation).await
}

/// Reads the user's Shades from SecondMe again, replacing those that came from it and keeping
/// every Shade the user wrote or accepted.
#[server(endpoint = "twins/sync_secondme")]
pub async fn sync_secondme_shades() -> Result<TwinView, AppError> {
    service::sync_secondme().await
}
