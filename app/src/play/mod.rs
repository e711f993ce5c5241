//! Play mode: the character leads a story, scene by scene, to one of its endings.
//!
//! A run starts from what the character already has — the opening line, the three start options,
//! the number of scenes and the endings — copied into the run, so editing the character later
//! does not rewrite a story being played. Each turn is one scene: the player's choice (an
//! offered option or an action of their own) is saved before the model is called, then the
//! model's answer streams in — the dialogue token by token (pulled out of the JSON as it arrives,
//! [`crate::domain::DialogueStream`]), the three options once the whole answer is complete and
//! validated (one repair if not). At the last scene the answer names the ending reached, which
//! ends the run. The generation runs in its own task, as a chat reply does: closing the tab
//! mid-turn finishes and saves the turn; a turn whose server died is marked interrupted.
//! Nothing is overwritten: re-rolling a turn keeps the old one (superseded) and writes anew.
//!
//! This module holds what crosses the wire; [`service`] starts runs and turns, [`relay`] writes
//! a turn, and [`store`] has every query on `play_runs` and `play_turns`.

use crate::domain::PlayChoice;
use crate::error::AppError;
use leptos::prelude::*;
use leptos::server_fn::codec::{Json, StreamingText, TextStream};
use serde::{Deserialize, Serialize};

#[cfg(feature = "ssr")]
mod relay;
#[cfg(feature = "ssr")]
pub mod service;
#[cfg(feature = "ssr")]
pub mod store;

/// Where a run stands.
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Playing,
    Ended,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Playing => "playing",
            RunStatus::Ended => "ended",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "playing" => RunStatus::Playing,
            "ended" => RunStatus::Ended,
            _ => return None,
        })
    }
}

/// Where a turn stands. A turn that did not finish keeps its text and says so.
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TurnStatus {
    /// Being written; the generating server beats a heartbeat on the row while it is.
    Streaming,
    Complete,
    /// The model failed, cut the scene off, or its options could not be used (even repaired).
    Failed,
    /// The server writing it stopped before the end.
    Interrupted,
}

impl TurnStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            TurnStatus::Streaming => "streaming",
            TurnStatus::Complete => "complete",
            TurnStatus::Failed => "failed",
            TurnStatus::Interrupted => "interrupted",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "streaming" => TurnStatus::Streaming,
            "complete" => TurnStatus::Complete,
            "failed" => TurnStatus::Failed,
            "interrupted" => TurnStatus::Interrupted,
            _ => return None,
        })
    }
}

/// One scene of a run.
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlayTurn {
    pub id: String,
    /// 1-based.
    pub scene: u8,
    /// What the player did, in words.
    pub choice: String,
    /// The offered option the player picked (0-based); `None` for an action they typed.
    pub option: Option<u8>,
    pub dialogue: String,
    /// What the player may do next (empty at the last scene, or while not complete).
    pub options: Vec<String>,
    /// At the last scene, the ending reached (1-based, into the run's endings).
    pub ending: Option<u8>,
    pub status: TurnStatus,
}

/// One of the endings a run can reach.
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunEnding {
    pub kind: String,
    pub text: String,
}

/// A run as its page shows it: what it started from and every scene played (re-rolled scenes
/// are kept in the database, not shown).
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunView {
    pub id: String,
    pub character_id: String,
    pub character_name: String,
    pub avatar: String,
    pub scenes: u8,
    pub opening_line: String,
    pub start_options: Vec<String>,
    pub endings: Vec<RunEnding>,
    pub status: RunStatus,
    /// The ending reached (1-based), once the run has ended.
    pub ending: Option<u8>,
    pub turns: Vec<PlayTurn>,
    /// Scenes are written by the offline writer (labelled in the UI).
    pub offline: bool,
    pub created_at: i64,
    /// A long run's running summary of scenes 1 to `summary_through`, which the model is given
    /// instead of those scenes (empty and 0 until the story outgrows a prompt).
    #[serde(default)]
    pub summary: String,
    #[serde(default)]
    pub summary_through: u8,
}

impl RunView {
    /// The options the player chooses among now ([`offered`]).
    pub fn offered(&self) -> Vec<String> {
        offered(&self.start_options, &self.turns)
    }

    /// The scene the player's next choice leads to ([`next_scene`]).
    pub fn next_scene(&self) -> u8 {
        next_scene(&self.turns)
    }

    /// The ending reached, if the run has ended.
    pub fn reached(&self) -> Option<&RunEnding> {
        let i = usize::from(self.ending?).checked_sub(1)?;
        self.endings.get(i)
    }
}

/// The options the player chooses among after `turns`: the last scene's, or the start options
/// before the first. None while a scene is unfinished, or after the end.
pub fn offered(start_options: &[String], turns: &[PlayTurn]) -> Vec<String> {
    match turns.last() {
        None => start_options.to_vec(),
        Some(t) if t.status == TurnStatus::Complete => t.options.clone(),
        Some(_) => Vec::new(),
    }
}

/// The scene the player's next choice after `turns` leads to (an unfinished scene is played
/// again through a re-roll, not a new choice).
pub fn next_scene(turns: &[PlayTurn]) -> u8 {
    turns.last().map_or(1, |t| match t.status {
        TurnStatus::Complete => t.scene + 1,
        _ => t.scene,
    })
}

/// A run in a list.
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunSummary {
    pub id: String,
    pub character_id: String,
    pub character_name: String,
    pub scenes: u8,
    /// Scenes played (complete).
    pub played: u8,
    pub status: RunStatus,
    /// The kind of the ending reached ("happy"), once ended.
    pub ending: Option<String>,
    pub updated_at: i64,
}

/// One line of a turn's stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum PlayEvent {
    /// The player's choice is saved; the scene is being written as `turn`.
    Accepted { turn: PlayTurn },
    /// More of the scene's dialogue.
    Delta { text: String },
    /// The scene as saved: its dialogue, its options (or the ending), its status.
    Finished { turn: PlayTurn, run: RunStatus },
    /// The scene failed; what arrived is kept and marked. `message` is for the player.
    Failed { message: String, turn: PlayTurn },
}

impl PlayEvent {
    /// One event as one line.
    pub fn to_line(&self) -> String {
        let mut s = serde_json::to_string(self).unwrap_or_default();
        s.push('\n');
        s
    }
}

/// How many runs a list shows.
pub const RUNS_PAGE: i64 = 50;

/// Starts a run of the character's story; returns its id (and sends a plain form post to the
/// run's page).
#[server(endpoint = "play/start")]
pub async fn start_run(character_id: String) -> Result<String, AppError> {
    service::start(character_id).await
}

/// A run with every scene played.
#[server(endpoint = "play/get")]
pub async fn get_run(id: String) -> Result<RunView, AppError> {
    service::get(id).await
}

/// The signed-in user's runs, most recently played first: of one character, or of all; at most
/// `limit` (default and most: [`RUNS_PAGE`]).
#[server(endpoint = "play/list")]
pub async fn list_runs(
    character_id: Option<String>,
    limit: Option<i64>,
) -> Result<Vec<RunSummary>, AppError> {
    service::list(character_id, limit).await
}

/// Plays the next scene: `choice` among the options on offer after scene `after` (the id of the
/// run's last scene, empty before the first), streamed as lines of [`PlayEvent`] JSON. Refused
/// with a 409, nothing saved, while a scene is being written or when the story has moved on.
#[server(endpoint = "play/turn", input = Json, output = StreamingText)]
pub async fn take_turn(
    run_id: String,
    after: String,
    choice: PlayChoice,
) -> Result<TextStream<AppError>, AppError> {
    service::turn(run_id, after, choice).await
}

/// The same as [`take_turn`] for a plain form post (no JavaScript): waits for the scene to be
/// written, then sends the browser back to the run.
#[server(endpoint = "play/choose")]
pub async fn choose(
    run_id: String,
    after: String,
    option: Option<u8>,
    action: Option<String>,
) -> Result<(), AppError> {
    service::choose(run_id, after, option, action.unwrap_or_default()).await
}

/// Writes the run's last scene again (a new version; the old one is kept): after a failure, or
/// for another take. Streamed like [`take_turn`].
#[server(endpoint = "play/reroll", output = StreamingText)]
pub async fn reroll_turn(
    run_id: String,
    turn_id: String,
) -> Result<TextStream<AppError>, AppError> {
    service::reroll(run_id, turn_id).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn turn(scene: u8, status: TurnStatus) -> PlayTurn {
        PlayTurn {
            id: format!("t{scene}"),
            scene,
            choice: "Go.".into(),
            option: Some(0),
            dialogue: "Hm.".into(),
            options: vec!["a".into(), "b".into(), "c".into()],
            ending: None,
            status,
        }
    }

    #[test]
    fn the_offer_follows_the_last_scene() {
        let mut run = RunView {
            id: "r".into(),
            character_id: "c".into(),
            character_name: "M".into(),
            avatar: String::new(),
            scenes: 5,
            opening_line: "Hi.".into(),
            start_options: vec!["x".into(), "y".into(), "z".into()],
            endings: vec![],
            status: RunStatus::Playing,
            ending: None,
            turns: vec![],
            offline: false,
            created_at: 0,
            summary: String::new(),
            summary_through: 0,
        };
        assert_eq!(run.offered(), ["x", "y", "z"]);
        assert_eq!(run.next_scene(), 1);
        run.turns.push(turn(1, TurnStatus::Complete));
        assert_eq!(run.offered(), ["a", "b", "c"]);
        assert_eq!(run.next_scene(), 2);
        run.turns.push(turn(2, TurnStatus::Failed));
        assert!(run.offered().is_empty());
        assert_eq!(run.next_scene(), 2);
        for s in [
            TurnStatus::Streaming,
            TurnStatus::Complete,
            TurnStatus::Failed,
            TurnStatus::Interrupted,
        ] {
            assert_eq!(TurnStatus::parse(s.as_str()), Some(s));
        }
        assert_eq!(TurnStatus::parse("done"), None);
        assert_eq!(RunStatus::parse("ended"), Some(RunStatus::Ended));
    }
}
