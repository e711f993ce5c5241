//! The task that writes one scene: it drives the model's streamed JSON to its end whether or not
//! the browser is still listening, forwards the dialogue as it arrives (pulled out of the JSON by
//! [`DialogueStream`]), saves it with a heartbeat every [`FLUSH_EVERY`], and at the end parses
//! and validates the whole answer — asking once for a repair if it cannot be used — before the
//! scene is saved with its options (or its ending) and the call's usage recorded.

use super::{store, PlayEvent, PlayTurn, RunStatus, TurnStatus};
use crate::auth::UserId;
use crate::domain::{DialogueStream, Pacing, TurnOutput};
use crate::error::AppError;
use crate::infra::{
    llm::{ChatChunk, LlmError, Repair, StructuredRequest, Usage},
    AppState,
};
use crate::usage;
use futures::{stream::BoxStream, StreamExt};
use std::time::{Duration, Instant};

/// How often a scene in progress is written to the database (its dialogue and heartbeat).
const FLUSH_EVERY: Duration = Duration::from_millis(500);
/// The longest one flush may take before it counts as failed.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(2);
/// How long the final save keeps trying while the database is out of reach.
const SAVE_RETRY_FOR: Duration = Duration::from_secs(120);

/// One scene being written.
pub(super) struct TurnJob {
    pub state: AppState,
    pub owner: UserId,
    pub run_id: String,
    pub turn: PlayTurn,
    pub pacing: Pacing,
    /// How many endings the run has (the last scene names one).
    pub endings: usize,
    pub request: StructuredRequest,
    pub tx: futures::channel::mpsc::UnboundedSender<Result<String, AppError>>,
    pub slot: crate::limits::service::Slot,
}

enum Outcome {
    Complete(TurnOutput),
    /// Given up as interrupted elsewhere, or this server is shutting down past its grace.
    Interrupted,
    Failed(LlmError),
}

impl TurnJob {
    fn send(&self, ev: PlayEvent) {
        // A closed channel means the browser went away; the scene is finished regardless.
        let _ = self.tx.unbounded_send(Ok(ev.to_line()));
    }

    pub async fn run(mut self, mut upstream: BoxStream<'static, Result<ChatChunk, LlmError>>) {
        let started = Instant::now();
        let db = self.state.db.clone();
        let interrupted = self.state.running.interrupted();
        let mut raw = String::new();
        let mut dialogue = String::new();
        let mut reader = DialogueStream::default();
        let mut flush =
            tokio::time::interval_at(tokio::time::Instant::now() + FLUSH_EVERY, FLUSH_EVERY);
        flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let streamed = loop {
            tokio::select! {
                biased;
                _ = interrupted.cancelled() => break Err(None),
                _ = flush.tick() => {
                    let write = store::flush(&db, &self.turn.id, &dialogue);
                    match tokio::time::timeout(FLUSH_TIMEOUT, write).await {
                        Ok(Ok(true)) => {}
                        Ok(Ok(false)) => break Err(None),
                        Ok(Err(e)) => tracing::warn!(error = ?e, "could not save the scene so far; keeping it in memory"),
                        Err(_) => tracing::warn!("saving the scene so far timed out; keeping it in memory"),
                    }
                }
                next = upstream.next() => match next {
                    Some(Ok(ChatChunk::Delta(t))) => {
                        raw.push_str(&t);
                        let text = reader.push(&t);
                        if !text.is_empty() {
                            dialogue.push_str(&text);
                            self.send(PlayEvent::Delta { text });
                        }
                    }
                    Some(Ok(ChatChunk::Done { usage })) => break Ok(usage),
                    Some(Err(e)) => break Err(Some(e)),
                    None => break Err(Some(LlmError::CutOff("stream ended without a final chunk".into()))),
                },
            }
        };
        drop(upstream);
        let provider = self.state.llm.name();
        let first = usage::Record {
            owner_id: &self.owner.0,
            kind: "play_turn",
            provider,
            language: None,
            outcome: "ok",
            duration_ms: started.elapsed().as_millis() as i64,
            usage: Usage::default(),
        };
        let (outcome, usage) = match streamed {
            Err(None) => {
                usage::store::record(
                    &db,
                    usage::Record {
                        outcome: "interrupted",
                        ..first
                    },
                )
                .await;
                (Outcome::Interrupted, Usage::default())
            }
            Err(Some(e)) => {
                let r: Result<(), LlmError> = Err(e.clone());
                usage::store::record(
                    &db,
                    usage::Record {
                        outcome: usage::outcome(&r),
                        ..first
                    },
                )
                .await;
                (Outcome::Failed(e), Usage::default())
            }
            Ok(u) => match TurnOutput::parse(&raw, self.pacing, self.endings) {
                Ok(out) => {
                    usage::store::record(&db, usage::Record { usage: u, ..first }).await;
                    (Outcome::Complete(out), u)
                }
                Err(problem) => {
                    usage::store::record(
                        &db,
                        usage::Record {
                            outcome: "invalid_reply",
                            usage: u,
                            ..first
                        },
                    )
                    .await;
                    tracing::warn!(%problem, "invalid play scene; asking for one repair");
                    let repaired = self.repair(raw.clone(), problem).await;
                    (
                        match repaired {
                            Ok(out) => Outcome::Complete(out),
                            Err(e) => Outcome::Failed(e),
                        },
                        u,
                    )
                }
            },
        };

        let (status, options, ending) = match &outcome {
            Outcome::Complete(out) => {
                dialogue = out.dialogue.as_str().to_string();
                (
                    TurnStatus::Complete,
                    out.options.iter().map(|o| o.as_str().to_string()).collect(),
                    out.ending,
                )
            }
            Outcome::Interrupted => (TurnStatus::Interrupted, Vec::new(), None),
            Outcome::Failed(_) => (TurnStatus::Failed, Vec::new(), None),
        };
        let saved = self
            .save_final(&store::Ending {
                dialogue: &dialogue,
                options: &options,
                ending,
                status,
                usage,
                provider,
            })
            .await
            .unwrap_or(status);
        self.slot.release().await;
        // A long run: what no longer fits in a scene's prompt goes into its running summary, in
        // the background, before the player has chosen the next scene.
        if saved == TurnStatus::Complete && ending.is_none() {
            let (state, owner, run_id) =
                (self.state.clone(), self.owner.clone(), self.run_id.clone());
            self.state
                .running
                .spawn(super::service::fold_summary(state, owner, run_id));
        }
        let turn = PlayTurn {
            dialogue,
            options,
            ending,
            status: saved,
            ..self.turn.clone()
        };
        match outcome {
            Outcome::Failed(e) if saved == TurnStatus::Failed => {
                tracing::warn!(error = %e, scene = turn.scene, "play scene failed");
                let message = match e {
                    LlmError::InvalidReply(_) => {
                        "The model's scene could not be used (its choices were missing or malformed). Your choice is saved: try again."
                    }
                    other => other.user_message(),
                };
                self.send(PlayEvent::Failed {
                    message: message.to_string(),
                    turn,
                });
            }
            _ => {
                let run = if saved == TurnStatus::Complete && turn.ending.is_some() {
                    RunStatus::Ended
                } else {
                    RunStatus::Playing
                };
                tracing::info!(
                    status = saved.as_str(),
                    scene = turn.scene,
                    "play scene finished"
                );
                self.send(PlayEvent::Finished { turn, run });
            }
        }
    }

    /// The one repair: the answer sent back with what was wrong, as a whole (not streamed).
    async fn repair(&mut self, previous: String, problem: String) -> Result<TurnOutput, LlmError> {
        let started = Instant::now();
        let mut request = self.request.clone();
        request.repair = Some(Repair { previous, problem });
        let result = self.state.llm.generate_json(request).await;
        let parsed = result.as_ref().map_err(Clone::clone).and_then(|r| {
            TurnOutput::parse(&r.raw, self.pacing, self.endings).map_err(LlmError::InvalidReply)
        });
        usage::store::record(
            &self.state.db,
            usage::Record {
                owner_id: &self.owner.0,
                kind: "play_turn_repair",
                provider: self.state.llm.name(),
                language: None,
                outcome: usage::outcome(&parsed),
                duration_ms: started.elapsed().as_millis() as i64,
                usage: result.as_ref().map(|r| r.usage).unwrap_or_default(),
            },
        )
        .await;
        parsed
    }

    /// Saves the scene's final state, trying again while the database is out of reach. Returns
    /// the status it ends with (`None` if it could not be saved).
    async fn save_final(&self, ending: &store::Ending<'_>) -> Option<TurnStatus> {
        let deadline = Instant::now() + SAVE_RETRY_FOR;
        let mut wait = Duration::from_millis(250);
        loop {
            match store::finish(&self.state.db, &self.run_id, &self.turn.id, ending).await {
                Ok(saved) => return saved,
                Err(e) if crate::infra::db::is_unavailable(&e) && Instant::now() < deadline => {
                    tracing::warn!(error = ?e, "could not save the scene; trying again");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(5));
                }
                Err(e) => {
                    tracing::error!(error = ?e, "could not save the scene");
                    return None;
                }
            }
        }
    }
}
