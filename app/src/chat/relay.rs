//! The task that writes one reply: it drives the model's stream to its end whether or not the
//! browser is still listening, forwards each piece as a [`ChatEvent`], saves the text as it goes
//! and the final status when done, and records the call's usage.

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

/// How often a reply in progress is written to the database.
const FLUSH_EVERY: Duration = Duration::from_millis(500);

/// One reply being generated.
pub(super) struct Relay {
    pub state: AppState,
    pub owner: UserId,
    pub session_id: String,
    pub reply_id: String,
    pub tx: futures::channel::mpsc::UnboundedSender<Result<String, AppError>>,
    pub cancel: tokio_util::sync::CancellationToken,
    /// This reply's place in its user's limit of calls at once; released before the last event.
    pub slot: crate::limits::service::Slot,
}

enum Outcome {
    Complete(Usage),
    Stopped,
    Failed(LlmError),
}

impl Relay {
    fn send(&self, ev: ChatEvent) {
        // A closed channel means the browser went away; the reply is finished regardless.
        let _ = self.tx.unbounded_send(Ok(ev.to_line()));
    }

    /// Drives the provider's stream to its end whether or not anyone is still listening:
    /// forwards deltas, saves the text every [`FLUSH_EVERY`], stops when asked (dropping the
    /// upstream stream closes the model request), and saves the final status.
    pub async fn run(mut self, mut upstream: BoxStream<'static, Result<ChatChunk, LlmError>>) {
        let started = Instant::now();
        let db = &self.state.db;
        let mut content = String::new();
        let mut last_flush = Instant::now();
        let outcome = loop {
            let next = tokio::select! {
                biased;
                _ = self.cancel.cancelled() => break Outcome::Stopped,
                next = upstream.next() => next,
            };
            match next {
                Some(Ok(ChatChunk::Delta(t))) => {
                    content.push_str(&t);
                    self.send(ChatEvent::Delta { text: t });
                    if last_flush.elapsed() >= FLUSH_EVERY {
                        last_flush = Instant::now();
                        match store::flush_partial(db, &self.reply_id, &content).await {
                            Ok(true) => {}
                            // The status changed under us: stopped from another server.
                            Ok(false) => break Outcome::Stopped,
                            Err(e) => {
                                tracing::warn!(error = ?e, "could not save partial reply")
                            }
                        }
                    }
                }
                Some(Ok(ChatChunk::Done { usage })) => break Outcome::Complete(usage),
                Some(Err(e)) => break Outcome::Failed(e),
                None => {
                    break Outcome::Failed(LlmError::CutOff(
                        "stream ended without a final chunk".into(),
                    ))
                }
            }
        };
        drop(upstream);
        self.state.running.finish(&self.reply_id);

        let (status, usage, result) = match &outcome {
            Outcome::Complete(u) => (MessageStatus::Complete, *u, Ok(())),
            Outcome::Stopped => (MessageStatus::Stopped, Usage::default(), Ok(())),
            Outcome::Failed(e) => (MessageStatus::Failed, Usage::default(), Err(e.clone())),
        };
        let provider = self.state.llm.name();
        if let Err(e) =
            store::finish_message(db, &self.reply_id, &content, status, usage, provider).await
        {
            tracing::error!(error = ?e, "could not save reply");
        }
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
                outcome: if matches!(outcome, Outcome::Stopped) {
                    "stopped"
                } else {
                    usage::outcome(&result)
                },
                duration_ms: started.elapsed().as_millis() as i64,
                usage,
            },
        )
        .await;
        // Free before the last event, so a client that saw it can send again at once.
        self.slot.release().await;
        match outcome {
            Outcome::Failed(e) => {
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
}
