//! Chat with a character: sessions, history, and replies streamed token by token.
//!
//! The reply streams through a streaming server function (`output = StreamingText`) rather than a
//! separate SSE route: it is one more server function, so it shares the argument types, the error
//! type, the sign-in check and the access-control tests of every other endpoint, and the browser
//! client is generated. A text stream has no message boundaries, so each event is one line of JSON
//! ([`ChatEvent`]), split back into events by [`EventLines`].
//!
//! The generation runs in its own task that writes to the database as it goes, so a reply is not
//! lost when the browser disconnects mid-stream: the user's message is saved before the model is
//! called, the reply row exists from the first token, and it is completed (or marked failed, with
//! whatever text arrived) whatever happens to the connection.

use crate::error::AppError;
use leptos::prelude::*;
use leptos::server_fn::codec::{StreamingText, TextStream};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageRole {
    User,
    Assistant,
}

/// Where a message stands. A reply that did not finish keeps its text and says so.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageStatus {
    Complete,
    Streaming,
    Stopped,
    Failed,
}

impl MessageStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            MessageStatus::Complete => "complete",
            MessageStatus::Streaming => "streaming",
            MessageStatus::Stopped => "stopped",
            MessageStatus::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "complete" => MessageStatus::Complete,
            "streaming" => MessageStatus::Streaming,
            "stopped" => MessageStatus::Stopped,
            "failed" => MessageStatus::Failed,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub id: String,
    pub role: MessageRole,
    pub content: String,
    pub status: MessageStatus,
    pub created_at: i64,
}

/// Everything the chat page shows when it opens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatView {
    pub session_id: String,
    pub character_id: String,
    pub character_name: String,
    pub avatar: String,
    pub messages: Vec<ChatMessage>,
    /// Replies are written by the offline provider (labelled in the UI).
    pub offline: bool,
}

/// One line of the reply stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ChatEvent {
    /// The user's message is saved; the reply will have id `reply_id`.
    Accepted {
        user_message: ChatMessage,
        reply_id: String,
    },
    /// More reply text.
    Delta { text: String },
    /// The reply is saved with this status.
    Finished { status: MessageStatus },
    /// The reply failed; what arrived before is kept and marked. `message` is for the user.
    Failed { message: String },
}

impl ChatEvent {
    /// One event as one line.
    pub fn to_line(&self) -> String {
        let mut s = serde_json::to_string(self).unwrap_or_default();
        s.push('\n');
        s
    }
}

/// Reassembles [`ChatEvent`]s from text chunks whose boundaries fall anywhere.
#[derive(Default)]
pub struct EventLines {
    buf: String,
}

impl EventLines {
    /// Adds a chunk; returns the events completed by it.
    pub fn push(&mut self, chunk: &str) -> Vec<Result<ChatEvent, String>> {
        self.buf.push_str(chunk);
        let mut out = Vec::new();
        while let Some(i) = self.buf.find('\n') {
            let line: String = self.buf.drain(..=i).collect();
            let line = line.trim();
            if !line.is_empty() {
                out.push(serde_json::from_str(line).map_err(|e| e.to_string()));
            }
        }
        out
    }
}

/// Opens the chat with a character: its latest session (created, greeting first, if none).
#[server(endpoint = "chat/open")]
pub async fn open_chat(character_id: String) -> Result<ChatView, AppError> {
    ssr::open(character_id).await
}

/// Sends a message and streams the reply as lines of [`ChatEvent`] JSON.
#[server(endpoint = "chat/send", output = StreamingText)]
pub async fn send_message(
    session_id: String,
    text: String,
) -> Result<TextStream<AppError>, AppError> {
    ssr::send(session_id, text).await
}

/// Stops a reply being written. The text so far is kept and marked stopped; the upstream model
/// request is cancelled.
#[server(endpoint = "chat/stop")]
pub async fn stop_reply(reply_id: String) -> Result<(), AppError> {
    ssr::stop(reply_id).await
}

#[cfg(feature = "ssr")]
pub mod ssr {
    use super::*;
    use crate::auth::ssr::{require_user, UserId};
    use crate::domain::MessageText;
    use crate::error::OrInternal;
    use crate::infra::{
        db::Db,
        llm::{prompts, ChatChunk, LlmError, Persona, Role, Turn, Usage},
        new_id, now_ms, usage, AppState,
    };
    use crate::with_pool;
    use futures::{stream::BoxStream, StreamExt};
    use std::time::{Duration, Instant};

    /// How much history goes to the model.
    const HISTORY_LIMIT: i64 = 40;
    /// How often a reply in progress is written to the database.
    const FLUSH_EVERY: Duration = Duration::from_millis(500);

    #[derive(sqlx::FromRow)]
    struct SessionRow {
        id: String,
        character_id: String,
        name: String,
        avatar: String,
        traits: sqlx::types::Json<Vec<String>>,
        backstory: String,
        story_context: String,
    }

    #[derive(sqlx::FromRow)]
    struct MessageRow {
        id: String,
        role: String,
        content: String,
        status: String,
        created_at: i64,
    }

    impl MessageRow {
        fn into_message(self) -> ChatMessage {
            ChatMessage {
                id: self.id,
                role: if self.role == "user" {
                    MessageRole::User
                } else {
                    MessageRole::Assistant
                },
                content: self.content,
                status: MessageStatus::parse(&self.status).unwrap_or(MessageStatus::Failed),
                created_at: self.created_at,
            }
        }
    }

    const SESSION_SELECT: &str =
        "SELECT s.id, s.character_id, c.name, c.avatar, c.traits, c.backstory, \
         c.story_context FROM chat_sessions s JOIN characters c ON c.id = s.character_id";

    #[tracing::instrument(skip_all)]
    pub async fn open(character_id: String) -> Result<ChatView, AppError> {
        let user = require_user().await?;
        let state = AppState::get();
        let session_id = open_session(&state.db, &user, &character_id)
            .await
            .or_internal("open chat")?
            .ok_or(AppError::NotFound)?;
        let session = find_session(&state.db, &user, &session_id)
            .await
            .or_internal("open chat")?
            .ok_or(AppError::NotFound)?;
        let messages = messages(&state.db, &session_id, None)
            .await
            .or_internal("load messages")?;
        Ok(ChatView {
            session_id,
            character_id: session.character_id,
            character_name: session.name,
            avatar: session.avatar,
            messages,
            offline: state.llm.is_offline(),
        })
    }

    #[tracing::instrument(skip_all, fields(session_id = %session_id))]
    pub async fn send(session_id: String, text: String) -> Result<TextStream<AppError>, AppError> {
        let user = require_user().await?;
        let text = MessageText::parse(&text)?;
        let state = AppState::get();
        let session = find_session(&state.db, &user, &session_id)
            .await
            .or_internal("load session")?
            .ok_or(AppError::NotFound)?;

        // The user's message is saved before the model is called.
        let user_message = insert_message(
            &state.db,
            &session.id,
            "user",
            text.as_str(),
            MessageStatus::Complete,
        )
        .await
        .or_internal("save message")?;
        let reply = insert_message(
            &state.db,
            &session.id,
            "assistant",
            "",
            MessageStatus::Streaming,
        )
        .await
        .or_internal("create reply")?;

        let history = messages(&state.db, &session.id, Some(HISTORY_LIMIT))
            .await
            .or_internal("load history")?
            .into_iter()
            .filter(|m| m.id != reply.id && !m.content.is_empty())
            .map(|m| Turn {
                role: match m.role {
                    MessageRole::User => Role::User,
                    MessageRole::Assistant => Role::Model,
                },
                text: m.content,
            })
            .collect();
        let persona = Persona {
            name: session.name.clone(),
            traits: session.traits.0.clone(),
            story_context: session.story_context.clone(),
        };
        let request = prompts::chat(persona, &session.backstory, history);

        let (tx, rx) = futures::channel::mpsc::unbounded::<Result<String, AppError>>();
        let _ = tx.unbounded_send(Ok(ChatEvent::Accepted {
            user_message,
            reply_id: reply.id.clone(),
        }
        .to_line()));

        let cancel = state.running.register(&reply.id);
        let upstream = state.llm.stream_chat(request);
        let job = Relay {
            state: state.clone(),
            owner: user,
            session_id: session.id.clone(),
            reply_id: reply.id.clone(),
            tx,
            cancel,
        };
        let span = tracing::Span::current();
        tokio::spawn(tracing::Instrument::instrument(job.run(upstream), span));
        Ok(TextStream::new(rx))
    }

    /// Stops a reply: marks it stopped in the database (which a task on any server notices at its
    /// next flush) and cancels it directly if this server is generating it.
    #[tracing::instrument(skip_all, fields(reply_id = %reply_id))]
    pub async fn stop(reply_id: String) -> Result<(), AppError> {
        let user = require_user().await?;
        let state = AppState::get();
        let found: Option<(String,)> = with_pool!(&state.db, pool => {
            sqlx::query_as(
                "SELECT m.status FROM chat_messages m JOIN chat_sessions s ON s.id = m.session_id \
                 WHERE m.id = $1 AND s.owner_id = $2 AND m.role = 'assistant'",
            )
            .bind(&reply_id)
            .bind(&user.0)
            .fetch_optional(pool)
            .await
        })
        .or_internal("find reply")?;
        let Some((status,)) = found else {
            return Err(AppError::NotFound);
        };
        if status == MessageStatus::Streaming.as_str() {
            with_pool!(&state.db, pool => {
                sqlx::query("UPDATE chat_messages SET status = 'stopped', updated_at = $1 WHERE id = $2 AND status = 'streaming'")
                    .bind(now_ms())
                    .bind(&reply_id)
                    .execute(pool)
                    .await
                    .map(|_| ())
            })
            .or_internal("stop reply")?;
            state.running.cancel(&reply_id);
            tracing::info!("reply stopped by the user");
        }
        Ok(())
    }

    /// One reply being generated.
    struct Relay {
        state: AppState,
        owner: UserId,
        session_id: String,
        reply_id: String,
        tx: futures::channel::mpsc::UnboundedSender<Result<String, AppError>>,
        cancel: tokio_util::sync::CancellationToken,
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
        async fn run(self, mut upstream: BoxStream<'static, Result<ChatChunk, LlmError>>) {
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
                            match flush_partial(db, &self.reply_id, &content).await {
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
                finish_message(db, &self.reply_id, &content, status, usage, provider).await
            {
                tracing::error!(error = ?e, "could not save reply");
            }
            if let Err(e) = touch_session(db, &self.session_id, &content).await {
                tracing::warn!(error = ?e, "could not update session preview");
            }
            usage::record(
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

    // --- store ---------------------------------------------------------------------------

    /// The latest session of `owner` with `character_id`, created with the greeting if there is
    /// none. `None` if the character is not `owner`'s.
    pub async fn open_session(
        db: &Db,
        owner: &UserId,
        character_id: &str,
    ) -> Result<Option<String>, sqlx::Error> {
        let character: Option<(String, String)> = with_pool!(db, pool => {
            sqlx::query_as("SELECT name, opening_line FROM characters WHERE id = $1 AND owner_id = $2")
                .bind(character_id)
                .bind(&owner.0)
                .fetch_optional(pool)
                .await?
        });
        let Some((name, greeting)) = character else {
            return Ok(None);
        };
        let existing: Option<(String,)> = with_pool!(db, pool => {
            sqlx::query_as(
                "SELECT id FROM chat_sessions WHERE owner_id = $1 AND character_id = $2 \
                 ORDER BY updated_at DESC, id DESC LIMIT 1",
            )
            .bind(&owner.0)
            .bind(character_id)
            .fetch_optional(pool)
            .await?
        });
        if let Some((id,)) = existing {
            return Ok(Some(id));
        }
        let id = new_id();
        let now = now_ms();
        with_pool!(db, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query(
                "INSERT INTO chat_sessions (id, owner_id, character_id, title, last_message_preview, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $6)",
            )
            .bind(&id)
            .bind(&owner.0)
            .bind(character_id)
            .bind(format!("Chat with {name}"))
            .bind(preview(&greeting))
            .bind(now)
            .execute(&mut *tx)
            .await?;
            // The greeting is the character's first message.
            sqlx::query(
                "INSERT INTO chat_messages (id, session_id, role, content, status, created_at, updated_at) \
                 VALUES ($1, $2, 'assistant', $3, 'complete', $4, $4)",
            )
            .bind(new_id())
            .bind(&id)
            .bind(&greeting)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
        });
        Ok(Some(id))
    }

    async fn find_session(
        db: &Db,
        owner: &UserId,
        session_id: &str,
    ) -> Result<Option<SessionRow>, sqlx::Error> {
        let sql = format!("{SESSION_SELECT} WHERE s.id = $1 AND s.owner_id = $2");
        Ok(with_pool!(db, pool => {
            sqlx::query_as(&sql)
                .bind(session_id)
                .bind(&owner.0)
                .fetch_optional(pool)
                .await?
        }))
    }

    /// A session's messages in order; with `limit`, only the latest `limit`.
    pub async fn messages(
        db: &Db,
        session_id: &str,
        limit: Option<i64>,
    ) -> Result<Vec<ChatMessage>, sqlx::Error> {
        let rows: Vec<MessageRow> = with_pool!(db, pool => {
            sqlx::query_as(
                "SELECT id, role, content, status, created_at FROM ( \
                   SELECT id, role, content, status, created_at FROM chat_messages WHERE session_id = $1 \
                   ORDER BY created_at DESC, id DESC LIMIT $2 \
                 ) AS latest ORDER BY created_at, id",
            )
            .bind(session_id)
            .bind(limit.unwrap_or(i64::MAX))
            .fetch_all(pool)
            .await?
        });
        Ok(rows.into_iter().map(MessageRow::into_message).collect())
    }

    async fn insert_message(
        db: &Db,
        session_id: &str,
        role: &str,
        content: &str,
        status: MessageStatus,
    ) -> Result<ChatMessage, sqlx::Error> {
        let id = new_id();
        let now = now_ms();
        with_pool!(db, pool => {
            sqlx::query(
                "INSERT INTO chat_messages (id, session_id, role, content, status, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $6)",
            )
            .bind(&id)
            .bind(session_id)
            .bind(role)
            .bind(content)
            .bind(status.as_str())
            .bind(now)
            .execute(pool)
            .await.map(|_| ())?
        });
        touch_session(db, session_id, content).await?;
        Ok(ChatMessage {
            id,
            role: if role == "user" {
                MessageRole::User
            } else {
                MessageRole::Assistant
            },
            content: content.to_string(),
            status,
            created_at: now,
        })
    }

    /// Saves the text of a reply still being written; `false` if it is no longer streaming.
    async fn flush_partial(db: &Db, id: &str, content: &str) -> Result<bool, sqlx::Error> {
        let affected = with_pool!(db, pool => {
            sqlx::query("UPDATE chat_messages SET content = $1, updated_at = $2 WHERE id = $3 AND status = 'streaming'")
                .bind(content)
                .bind(now_ms())
                .bind(id)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(affected == 1)
    }

    async fn finish_message(
        db: &Db,
        id: &str,
        content: &str,
        status: MessageStatus,
        usage: Usage,
        provider: &str,
    ) -> Result<(), sqlx::Error> {
        with_pool!(db, pool => {
            sqlx::query(
                "UPDATE chat_messages SET content = $1, status = $2, updated_at = $3, input_tokens = $4, \
                 output_tokens = $5, provider = $6 WHERE id = $7",
            )
            .bind(content)
            .bind(status.as_str())
            .bind(now_ms())
            .bind(usage.input_tokens as i32)
            .bind(usage.output_tokens as i32)
            .bind(provider)
            .bind(id)
            .execute(pool)
            .await
            .map(|_| ())?
        });
        Ok(())
    }

    async fn touch_session(db: &Db, session_id: &str, last: &str) -> Result<(), sqlx::Error> {
        if last.is_empty() {
            return Ok(());
        }
        with_pool!(db, pool => {
            sqlx::query("UPDATE chat_sessions SET last_message_preview = $1, updated_at = $2 WHERE id = $3")
                .bind(preview(last))
                .bind(now_ms())
                .bind(session_id)
                .execute(pool)
                .await.map(|_| ())?
        });
        Ok(())
    }

    fn preview(text: &str) -> String {
        let t: String = text.chars().take(120).collect();
        if text.chars().count() > 120 {
            format!("{t}…")
        } else {
            t
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_survive_any_chunking() {
        let events = vec![
            ChatEvent::Delta { text: "Hel".into() },
            ChatEvent::Delta {
                text: "lo\nthere {\"x\"}".into(),
            },
            ChatEvent::Finished {
                status: MessageStatus::Complete,
            },
        ];
        let wire: String = events.iter().map(ChatEvent::to_line).collect();
        for size in 1..wire.len() {
            let mut lines = EventLines::default();
            let mut got = Vec::new();
            let chars: Vec<char> = wire.chars().collect();
            for chunk in chars.chunks(size) {
                let s: String = chunk.iter().collect();
                got.extend(lines.push(&s).into_iter().map(Result::unwrap));
            }
            assert_eq!(got, events, "chunk size {size}");
        }
    }
}
