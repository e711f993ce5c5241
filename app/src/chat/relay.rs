//! The task that writes one reply: it drives the model's stream to its end whether or not the
//! browser is still listening, forwards each piece as a [`ChatEvent`], saves the text as it goes
//! and the final status when done, and records the call's usage.
//!
//! Every [`FLUSH_EVERY`], whether or not the model has said anything, the task writes the text so
//! far and its heartbeat to the reply's row, on the condition that the row is still `streaming`.
//! That one write is also how the task learns that the reply was stopped through another server
//! (or given up as interrupted): the condition fails, and the task ends within a flush interval,
//! even while the model is silent. The final status is written the same way, only over
//! `streaming`, so a Stop is never overwritten by a `complete`.

use super::{store, ChatEvent, MessageStatus};
use crate::auth::UserId;
use crate::error::AppError;
use crate::infra::{
    llm::{ChatChunk, LlmError, Usage},
    AppState,
};
use crate::usage;
use futures::{stream::BoxStream, StreamExt};
use std::time::{Duration, Instant};

/// How often a reply in progress is written to the database (its text and heartbeat), and so
/// how soon a Stop sent to another server is noticed.
pub(crate) const FLUSH_EVERY: Duration = Duration::from_millis(500);

/// The longest one flush may take before it counts as failed, so a database out of reach does
/// not hold up the tokens on their way to the browser.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(2);

/// How long the final save of a reply keeps trying while the database is out of reach (a
/// Postgres restart, a failover). The text stays in memory meanwhile.
const SAVE_RETRY_FOR: Duration = Duration::from_secs(120);

/// One reply being generated.
pub(super) struct Relay {
    pub state: AppState,
    pub owner: UserId,
    pub session_id: String,
    pub reply_id: String,
    /// The reply's text so far: empty, or what a continued reply had written.
    pub written: String,
    pub tx: futures::channel::mpsc::UnboundedSender<Result<String, AppError>>,
    pub cancel: tokio_util::sync::CancellationToken,
    /// This reply's place in its user's limit of calls at once; released before the last event.
    pub slot: crate::limits::service::Slot,
}

enum Outcome {
    Complete(Usage),
    /// Stopped on this server (the user's Stop reached it).
    Stopped,
    /// The row stopped being `streaming` under us: stopped through another server, or given up
    /// as interrupted. Its status is already final.
    EndedElsewhere,
    /// This server is shutting down and the grace is over.
    Interrupted,
    Failed(LlmError),
}

impl Relay {
    fn send(&self, ev: ChatEvent) {
        // A closed channel means the browser went away; the reply is finished regardless.
        let _ = self.tx.unbounded_send(Ok(ev.to_line()));
    }

    /// Drives the provider's stream to its end whether or not anyone is still listening:
    /// forwards deltas, saves the text and the heartbeat every [`FLUSH_EVERY`], stops when asked
    /// (here or through the database; dropping the upstream stream closes the model request),
    /// and saves the final status.
    pub async fn run(mut self, mut upstream: BoxStream<'static, Result<ChatChunk, LlmError>>) {
        let started = Instant::now();
        let db = &self.state.db;
        let interrupted = self.state.running.interrupted();
        let mut content = std::mem::take(&mut self.written);
        // Whether the last write to the database failed: the reply's heartbeat has lapsed, so
        // another server may have given it up as interrupted (see `store::flush_partial`).
        let mut db_failing = false;
        let mut flush =
            tokio::time::interval_at(tokio::time::Instant::now() + FLUSH_EVERY, FLUSH_EVERY);
        flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let outcome = loop {
            tokio::select! {
                biased;
                _ = self.cancel.cancelled() => break Outcome::Stopped,
                _ = interrupted.cancelled() => break Outcome::Interrupted,
                _ = flush.tick() => {
                    // While the database is out of reach the text stays here and the model goes
                    // on; the next flush that gets through saves all of it.
                    let write = store::flush_partial(db, &self.reply_id, &content, db_failing);
                    match tokio::time::timeout(FLUSH_TIMEOUT, write).await {
                        Ok(Ok(true)) => {
                            if db_failing {
                                tracing::info!("database reachable again; reply saved");
                            }
                            db_failing = false;
                        }
                        Ok(Ok(false)) => break Outcome::EndedElsewhere,
                        Ok(Err(e)) => {
                            if !db_failing {
                                tracing::warn!(error = ?e, "could not save partial reply; keeping it in memory");
                            }
                            db_failing = true;
                        }
                        Err(_) => {
                            if !db_failing {
                                tracing::warn!("saving the partial reply timed out; keeping it in memory");
                            }
                            db_failing = true;
                        }
                    }
                }
                next = upstream.next() => match next {
                    Some(Ok(ChatChunk::Delta(t))) => {
                        content.push_str(&t);
                        self.send(ChatEvent::Delta { text: t });
                    }
                    Some(Ok(ChatChunk::Done { usage })) => break Outcome::Complete(usage),
                    Some(Err(e)) => break Outcome::Failed(e),
                    None => {
                        break Outcome::Failed(LlmError::CutOff(
                            "stream ended without a final chunk".into(),
                        ))
                    }
                },
            }
        };
        drop(upstream);
        self.state.running.finish(&self.reply_id);

        let (status, usage, result) = match &outcome {
            Outcome::Complete(u) => (MessageStatus::Complete, *u, Ok(())),
            Outcome::Stopped | Outcome::EndedElsewhere => {
                (MessageStatus::Stopped, Usage::default(), Ok(()))
            }
            Outcome::Interrupted => (MessageStatus::Interrupted, Usage::default(), Ok(())),
            Outcome::Failed(e) => (MessageStatus::Failed, Usage::default(), Err(e.clone())),
        };
        let provider = self.state.llm.name();
        // The status the reply really ends with: ours, unless another was set first.
        let status = match self
            .save_final(&content, status, usage, provider, db_failing)
            .await
        {
            Some(saved) => saved,
            None => status,
        };
        if let Err(e) = store::touch_session(db, &self.session_id, &content).await {
            tracing::warn!(error = ?e, "could not update session preview");
        }
        usage::store::record(
            db,
            usage::Record {
                owner_id: &self.owner.0,
                kind: "chat",
                provider,
                language: None,
                outcome: match status {
                    MessageStatus::Stopped => "stopped",
                    MessageStatus::Interrupted => "interrupted",
                    _ => usage::outcome(&result),
                },
                duration_ms: started.elapsed().as_millis() as i64,
                usage,
            },
        )
        .await;
        // Free before the last event, so a client that saw it can send again at once.
        self.slot.release().await;
        // The text as saved, formatted as every later read shows it.
        self.send(ChatEvent::Formatted {
            html: super::markdown::render(&content),
        });
        match outcome {
            Outcome::Failed(e) if status == MessageStatus::Failed => {
                tracing::warn!(error = %e, chars = content.len(), "reply failed");
                self.send(ChatEvent::Failed {
                    message: e.user_message().to_string(),
                });
            }
            _ => self.send(ChatEvent::Finished { status }),
        }
        tracing::info!(
            status = status.as_str(),
            chars = content.len(),
            "reply finished"
        );
    }

    /// Saves the reply's final text and status, trying again for up to [`SAVE_RETRY_FOR`] while
    /// the database is out of reach. Returns the status it ends with (`None` if it could not be
    /// saved or its row is gone).
    async fn save_final(
        &self,
        content: &str,
        status: MessageStatus,
        usage: Usage,
        provider: &str,
        mut reclaim: bool,
    ) -> Option<MessageStatus> {
        let db = &self.state.db;
        let deadline = Instant::now() + SAVE_RETRY_FOR;
        let mut wait = Duration::from_millis(250);
        loop {
            match store::finish_message(
                db,
                &self.reply_id,
                content,
                status,
                usage,
                provider,
                reclaim,
            )
            .await
            {
                Ok(Some(saved)) => return Some(saved),
                Ok(None) => {
                    tracing::error!("the reply's row is gone");
                    return None;
                }
                Err(e) if crate::infra::db::is_unavailable(&e) && Instant::now() < deadline => {
                    if !reclaim {
                        tracing::warn!(error = ?e, "could not save the reply; trying again");
                    }
                    reclaim = true;
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(5));
                }
                Err(e) => {
                    tracing::error!(error = ?e, "could not save reply");
                    return None;
                }
            }
        }
    }
}
