//! A chat's running summary: what no longer fits in a reply's prompt, kept short. When a reply's
//! prompt leaves out at least [`EVERY`] messages beyond what the summary covers, a [`Job`] runs
//! after that reply: it reads the oldest of what was said since (at most [`CHUNK_TOKENS`], or half
//! the prompt's budget; a summary far behind catches up an update at a time),
//! asks the model for the summary so far brought up to date, and stores it — unless its owner
//! edited it meanwhile. One server at a time writes a chat's summary (a lease in the row). The
//! offline writer keeps the first sentence of each message instead.

use super::store::{self, Said};
use crate::auth::UserId;
use crate::domain::ChatSummaryText;
use crate::infra::{
    db::Db,
    llm::{prompts, ChatChunk, Usage},
    now_ms, AppState,
};
use crate::with_pool;
use futures::StreamExt;

/// How many messages must have fallen out of the prompt beyond what the summary covers before it
/// is written again.
pub const EVERY: usize = 10;

/// The most of the conversation one update reads, in tokens (estimated).
pub const CHUNK_TOKENS: usize = 6_000;

/// How long a server may take to write a summary before another may.
const LEASE_MS: i64 = 120_000;

/// A chat's summary as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Current {
    pub content: String,
    /// The newest message it covers; none for one written by its owner before any was.
    pub through_id: Option<String>,
}

/// The summary of `session_id`, if it has one with any text.
pub async fn current(db: &Db, session_id: &str) -> Result<Option<Current>, sqlx::Error> {
    let row: Option<(String, Option<String>)> = with_pool!(db, pool => {
        sqlx::query_as("SELECT content, through_id FROM chat_summaries WHERE session_id = $1")
            .bind(session_id)
            .fetch_optional(pool)
            .await?
    });
    Ok(row
        .filter(|(content, _)| !content.trim().is_empty())
        .map(|(content, through_id)| Current {
            content,
            through_id,
        }))
}

/// How far back [`applies`] and a [`Job`] look for the summary's last message before taking it
/// for one of another branch.
const FAR: i64 = 5_000;

/// Whether `summary` goes into a prompt whose branch was read back as `read` (oldest first;
/// `older`: messages before those were not read): it does if it covers a message on this branch
/// (one read, or an ancestor of the oldest read), or was written by its owner before any was.
pub async fn applies(
    db: &Db,
    session_id: &str,
    summary: &Current,
    read: &[Said],
    older: bool,
) -> Result<bool, sqlx::Error> {
    let Some(through) = &summary.through_id else {
        return Ok(true);
    };
    if read.iter().any(|m| &m.id == through) {
        return Ok(true);
    }
    match read.first() {
        Some(oldest) if older => store::descends(db, session_id, &oldest.id, through, FAR).await,
        _ => Ok(false),
    }
}

/// The newest message fallen out of a prompt, if the summary is due to cover it: `read` is the
/// branch read back (oldest first), `first_sent` the index in it of the oldest message sent,
/// `older` whether messages before those read exist.
pub fn due(
    summary: Option<&Current>,
    read: &[Said],
    first_sent: usize,
    older: bool,
) -> Option<String> {
    let newest_out = first_sent.checked_sub(1)?;
    let covered = summary
        .and_then(|s| s.through_id.as_deref())
        .and_then(|through| read.iter().position(|m| m.id == through));
    let fallen = match covered {
        Some(at) => newest_out.saturating_sub(at),
        None if older => usize::MAX,
        None => first_sent,
    };
    (fallen >= EVERY).then(|| read[newest_out].id.clone())
}

/// An update of a chat's summary, to cover what was said up to `through`.
pub struct Job {
    pub owner: UserId,
    pub session_id: String,
    /// The character's (or twin's) name, and the user's, for the summary's lines.
    pub name: String,
    pub user_name: String,
    pub through: String,
    /// The prompt budget of the chat's replies: an update reads at most half of it.
    pub budget: usize,
}

impl Job {
    /// Writes the summary; anything that goes wrong leaves the one there was, and is logged.
    pub async fn run(self, state: AppState) {
        // Within the user's limits, like any model call; over them, the summary waits.
        let Ok(_slot) = crate::limits::service::begin_model_call(&state, &self.owner).await else {
            return;
        };
        let lease = match claim(&state.db, &self.session_id).await {
            Ok(Some(lease)) => lease,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(error = ?e, "could not claim the chat's summary");
                return;
            }
        };
        if let Err(e) = self.write(&state).await {
            tracing::warn!(error = %e, "chat summary not written");
        }
        if let Err(e) = release(&state.db, &self.session_id, lease).await {
            tracing::warn!(error = ?e, "could not release the chat's summary");
        }
    }

    async fn write(&self, state: &AppState) -> Result<(), String> {
        let db = &state.db;
        let stored: Option<(String, Option<String>)> = with_pool!(db, pool => {
            sqlx::query_as("SELECT content, through_id FROM chat_summaries WHERE session_id = $1")
                .bind(&self.session_id)
                .fetch_optional(pool)
                .await
                .map_err(|e| format!("{e:?}"))?
        });
        let (before, covered) = stored.unwrap_or_default();
        // What was said since the summary's last message (back to it, to the chat's start, or
        // [`FAR`] messages back), then the oldest of it that fits one update: a long way behind,
        // the summary catches up an update at a time.
        let mut said: Vec<Said> = Vec::new();
        let mut from = store::Start::Message(&self.through);
        let (mut read, mut found, mut at_start) = (0i64, covered.is_none(), false);
        'read: loop {
            let (page, earlier) = store::said_from(db, &self.session_id, from, 200)
                .await
                .map_err(|e| format!("{e:?}"))?;
            for m in page.into_iter().rev() {
                if covered.as_deref() == Some(m.id.as_str()) {
                    found = true;
                    break 'read;
                }
                read += 1;
                if m.is_sent() {
                    said.push(m);
                }
            }
            match earlier {
                Some(_) if read >= FAR => break,
                Some(seq) => from = store::Start::Before(seq),
                None => {
                    at_start = true;
                    break;
                }
            }
        }
        said.reverse();
        let chunk = CHUNK_TOKENS.min(self.budget / 2);
        let mut tokens = 0;
        let fits = said
            .iter()
            .take_while(|m| {
                tokens += super::context::turn_tokens(&m.content);
                tokens <= chunk
            })
            .count()
            .max(1);
        said.truncate(fits);
        let Some(through) = said.last().map(|m| m.id.clone()) else {
            return Ok(());
        };
        // A summary of messages not on this branch is not carried over.
        let on_branch = match (&covered, found, at_start) {
            (None, _, _) | (Some(_), true, _) => true,
            (Some(_), false, true) => false,
            (Some(covered), false, false) => {
                store::descends(db, &self.session_id, &self.through, covered, FAR)
                    .await
                    .map_err(|e| format!("{e:?}"))?
            }
        };
        let previous = if on_branch { before.as_str() } else { "" };
        let lines: Vec<(String, String)> = said
            .iter()
            .map(|m| {
                let who = if m.role == super::MessageRole::User.as_str() {
                    &self.user_name
                } else {
                    &self.name
                };
                (who.clone(), m.content.clone())
            })
            .collect();
        let written = if state.llm.is_offline() {
            offline(previous, &lines)
        } else {
            self.ask(state, previous, &lines).await?
        };
        let text: String = written.trim().chars().take(ChatSummaryText::MAX).collect();
        if text.trim().is_empty() {
            return Err("the model wrote an empty summary".into());
        }
        // Stored only if its owner did not change it meanwhile.
        with_pool!(db, pool => {
            sqlx::query(
                "UPDATE chat_summaries SET content = $1, through_id = $2, edited_at = NULL, updated_at = $3 \
                 WHERE session_id = $4 AND content = $5",
            )
            .bind(&text)
            .bind(&through)
            .bind(now_ms())
            .bind(&self.session_id)
            .bind(&before)
            .execute(pool)
            .await
            .map_err(|e| format!("{e:?}"))?;
        });
        Ok(())
    }

    async fn ask(
        &self,
        state: &AppState,
        previous: &str,
        lines: &[(String, String)],
    ) -> Result<String, String> {
        let request = prompts::chat_summary(&self.name, &self.user_name, previous, lines);
        let started = std::time::Instant::now();
        let mut stream = state.llm.stream_chat(request);
        let mut text = String::new();
        let mut usage = Usage::default();
        let mut result = Ok(());
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(ChatChunk::Delta(d)) => text.push_str(&d),
                Ok(ChatChunk::Done { usage: u }) => usage = u,
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        crate::usage::store::record(
            &state.db,
            crate::usage::Record {
                owner_id: &self.owner.0,
                kind: "chat_summary",
                provider: state.llm.name(),
                language: None,
                outcome: crate::usage::outcome(&result),
                duration_ms: started.elapsed().as_millis() as i64,
                usage,
            },
        )
        .await;
        if result.is_err() {
            return Err(format!("model: {}", crate::usage::outcome(&result)));
        }
        Ok(text)
    }
}

/// The offline writer's summary: the summary so far, then the first sentence of each message.
fn offline(previous: &str, lines: &[(String, String)]) -> String {
    let mut out = previous.trim().to_string();
    for (who, text) in lines {
        let first = text
            .split_inclusive(['.', '!', '?', '\n'])
            .next()
            .unwrap_or(text)
            .trim();
        let first: String = first.chars().take(160).collect();
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(&format!("{who}: {first}"));
    }
    // The newest kept when it grows too long.
    let count = out.chars().count();
    if count > ChatSummaryText::MAX {
        out = out.chars().skip(count - ChatSummaryText::MAX).collect();
    }
    out
}

/// Takes the lease on writing `session_id`'s summary, if no other server holds it: until when.
pub async fn claim(db: &Db, session_id: &str) -> Result<Option<i64>, sqlx::Error> {
    let now = now_ms();
    let until = now + LEASE_MS;
    let taken = with_pool!(db, pool => {
        sqlx::query(
            "INSERT INTO chat_summaries (session_id, content, updated_at, writing_until) VALUES ($1, '', $2, $3) \
             ON CONFLICT (session_id) DO UPDATE SET writing_until = excluded.writing_until \
             WHERE chat_summaries.writing_until IS NULL OR chat_summaries.writing_until < $2",
        )
        .bind(session_id)
        .bind(now)
        .bind(until)
        .execute(pool)
        .await?
        .rows_affected()
    });
    Ok((taken == 1).then_some(until))
}

/// Gives up the lease taken until `lease`, unless another server has taken it since.
pub async fn release(db: &Db, session_id: &str, lease: i64) -> Result<(), sqlx::Error> {
    with_pool!(db, pool => {
        sqlx::query(
            "UPDATE chat_summaries SET writing_until = NULL WHERE session_id = $1 AND writing_until = $2",
        )
        .bind(session_id)
        .bind(lease)
        .execute(pool)
        .await?;
    });
    Ok(())
}

/// Saves `text` as the summary of `owner`'s chat `session_id` (their edit, kept until the next
/// update, which starts from it). False if the chat is not theirs.
pub async fn edit(
    db: &Db,
    owner: &UserId,
    session_id: &str,
    text: &ChatSummaryText,
) -> Result<bool, sqlx::Error> {
    if store::find_session(db, owner, session_id).await?.is_none() {
        return Ok(false);
    }
    let now = now_ms();
    with_pool!(db, pool => {
        sqlx::query(
            "INSERT INTO chat_summaries (session_id, content, edited_at, updated_at) VALUES ($1, $2, $3, $3) \
             ON CONFLICT (session_id) DO UPDATE SET content = excluded.content, \
             edited_at = excluded.edited_at, updated_at = excluded.updated_at",
        )
        .bind(session_id)
        .bind(text.as_str())
        .bind(now)
        .execute(pool)
        .await?;
    });
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(n: usize) -> Vec<Said> {
        (0..n)
            .map(|i| Said {
                id: format!("m{i}"),
                role: if i % 2 == 0 { "user" } else { "assistant" }.into(),
                content: format!("Message {i}."),
                status: "complete".into(),
                seq: i as i64,
            })
            .collect()
    }

    fn covering(through: Option<&str>) -> Current {
        Current {
            content: "So far.".into(),
            through_id: through.map(str::to_string),
        }
    }

    #[test]
    fn a_summary_is_due_once_enough_has_fallen_out_beyond_it() {
        let r = read(40);
        // Nothing fell out; too little fell out; enough did.
        assert_eq!(due(None, &r, 0, false), None);
        assert_eq!(due(None, &r, EVERY - 1, false), None);
        assert_eq!(due(None, &r, EVERY, false), Some(format!("m{}", EVERY - 1)));
        // Older messages not even read: due whatever was read.
        assert_eq!(due(None, &r, 1, true), Some("m0".into()));
        // Measured from the summary's last message when it was read…
        let s = covering(Some("m20"));
        assert_eq!(due(Some(&s), &r, 30, false), None);
        assert_eq!(due(Some(&s), &r, 31, false), Some("m30".into()));
        // …and due when it was not (older than what was read, or on another branch).
        let s = covering(Some("elsewhere"));
        assert_eq!(due(Some(&s), &r, 5, true), Some("m4".into()));
        assert_eq!(
            due(Some(&s), &r, EVERY, false),
            Some(format!("m{}", EVERY - 1))
        );
    }

    #[test]
    fn the_offline_summary_keeps_first_sentences_and_its_length() {
        let lines = vec![
            ("Sam".to_string(), "Hello there. How are you?".to_string()),
            ("Ilse".to_string(), "Fine!\nAnd you".to_string()),
        ];
        assert_eq!(offline("", &lines), "Sam: Hello there.\nIlse: Fine!");
        assert_eq!(
            offline("Before.", &lines[..1]),
            "Before.\nSam: Hello there."
        );
        let long = "x".repeat(ChatSummaryText::MAX);
        let out = offline(&long, &lines);
        assert_eq!(out.chars().count(), ChatSummaryText::MAX);
        assert!(out.ends_with("Ilse: Fine!"));
    }
}
