//! Compatibility matches between personas — a twin or a character: twin↔twin (other people's
//! twins, only when both owners opted in, using only Shades marked public), twin↔character and
//! character↔character (one's own). A match is a score from 0 to 100, a paragraph of reasoning,
//! three strengths and three challenges, written by the model, stored once per pair with the
//! provider, the time and a fingerprint of what the model was shown of both sides; when either
//! side changes the match is recomputed in the background and shown as "updating" meanwhile.
//!
//! This module holds what crosses the wire; the behaviour is in [`service`] and every query on
//! `matches` in [`store`] (twins' words for ranking are kept by [`crate::twins::store`]).

use crate::domain::{PersonaKind, PersonaRef};
use crate::error::AppError;
use leptos::prelude::*;
use serde::{Deserialize, Serialize};

#[cfg(feature = "ssr")]
pub mod service;
#[cfg(feature = "ssr")]
pub mod store;

/// Where a match stands.
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MatchState {
    /// Computed from both sides as they are now.
    Fresh,
    /// Being worked out (again); no score is shown as current.
    Updating,
    /// The last attempt failed; it can be retried.
    Failed,
}

impl MatchState {
    pub fn label(self) -> &'static str {
        match self {
            MatchState::Fresh => "fresh",
            MatchState::Updating => "updating",
            MatchState::Failed => "failed",
        }
    }
}

/// One side of a match as the viewer may see it.
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersonaInfo {
    pub persona: PersonaRef,
    pub name: String,
    /// The viewer's own twin or character.
    pub yours: bool,
}

/// A match on the list: the other side, the score (only when fresh) and the reasoning's first
/// sentence.
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MatchSummary {
    pub id: String,
    pub mine: PersonaInfo,
    pub other: PersonaInfo,
    pub state: MatchState,
    pub score: Option<u8>,
    pub first_line: String,
    pub updated_at: i64,
}

/// A whole match.
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MatchView {
    pub id: String,
    pub a: PersonaInfo,
    pub b: PersonaInfo,
    pub state: MatchState,
    /// Shown only when [`MatchState::Fresh`].
    pub score: Option<u8>,
    pub reasoning: String,
    pub strengths: Vec<String>,
    pub challenges: Vec<String>,
    /// Which model wrote it ("gemini-2.5-flash"; "offline" for the offline writer, labelled so).
    pub provider: String,
    pub computed_at: Option<i64>,
    /// The pair's conversation, if one was started (twin↔twin and twin↔character only).
    #[serde(default)]
    pub icebreaker: Option<Icebreaker>,
    /// Whether this pair can have an icebreaker.
    #[serde(default)]
    pub can_talk: bool,
}

/// How many lines an icebreaker has: each side speaks twice.
pub const ICEBREAKER_LINES: usize = 4;

/// One line of an icebreaker.
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IcebreakerLine {
    /// `a` or `b`: which side of the match speaks.
    pub speaker: String,
    pub text: String,
}

/// A match's conversation.
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Icebreaker {
    /// `writing`, `complete` or `failed` (the lines said before the failure are kept).
    pub status: String,
    pub lines: Vec<IcebreakerLine>,
}

/// One line of the icebreaker stream (newline-delimited JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum IcebreakerEvent {
    /// A piece of the line `speaker` is saying.
    Delta { speaker: String, text: String },
    /// That line is finished and saved.
    LineDone,
    /// All lines are said.
    Done,
    /// The conversation stopped; what was said is kept.
    Failed { message: String },
}

/// Starts (again) the conversation of match `id`: the two sides speak in turn, each line
/// streamed and saved as it is finished. Both owners of a twin↔twin match can read it.
#[server(endpoint = "matches/icebreaker", output = leptos::server_fn::codec::StreamingText)]
pub async fn start_icebreaker(
    id: String,
) -> Result<leptos::server_fn::codec::TextStream<AppError>, AppError> {
    service::icebreaker(id).await
}

/// Someone or something the viewer's twin could be matched with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Candidate {
    pub persona: PersonaRef,
    pub name: String,
    /// How many weighted words of the Shades they share (the ranking; no model involved).
    pub overlap: i64,
}

/// Who the viewer's twin could be matched with, ranked without calling the model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Candidates {
    /// The viewer's twin (none yet: there is nothing to match).
    pub twin: Option<PersonaRef>,
    /// Whether the viewer's twin is open to matches (needed to see other people's).
    pub matchable: bool,
    /// Other people's twins, open to matches, most words in common first.
    pub twins: Vec<Candidate>,
    /// The viewer's own characters, most words in common first.
    pub characters: Vec<Candidate>,
}

/// How many candidates of each kind are offered.
pub const CANDIDATES: i64 = 10;

#[server(endpoint = "matches/candidates")]
pub async fn match_candidates() -> Result<Candidates, AppError> {
    service::candidates().await
}

/// Works out (or again) the match of `a` and `b` (a plain form post sends `a[kind]`, `a[id]`,
/// `b[kind]`, `b[id]`): the viewer's twin or characters, or another
/// person's twin open to matches (with the viewer's twin, itself open). Waits for the model.
#[server(endpoint = "matches/score")]
pub async fn score_match(a: PersonaRef, b: PersonaRef) -> Result<MatchView, AppError> {
    service::score(a, b).await
}

/// The viewer's matches, most recently updated first. Stale ones are shown as updating and
/// recomputed in the background.
#[server(endpoint = "matches/list")]
pub async fn list_matches() -> Result<Vec<MatchSummary>, AppError> {
    service::list().await
}

#[server(endpoint = "matches/get")]
pub async fn get_match(id: String) -> Result<MatchView, AppError> {
    service::get(id).await
}

/// Words for a persona kind, for the page.
pub fn kind_label(kind: PersonaKind) -> &'static str {
    match kind {
        PersonaKind::Twin => "twin",
        PersonaKind::Character => "character",
    }
}
