//! Each chat reply's request, built by [`super::context`] from the chat, and the record of it
//! behind "what the model saw": what the prompt was built from (kept as a [`Seen`]) and which
//! messages were sent (read back from the chat: a message's text changes only while it is the
//! reply being written or continued, so a record shows a message continued later as it is now).

use super::context::{self, Sources};
use super::{store, summary, MessageRole, PromptView, Seen, SeenTurn};
use crate::auth::UserId;
use crate::error::{AppError, OrInternal};
use crate::infra::{
    db::Db,
    llm::{prompts, ChatRequest, Persona, Role, Turn},
    now_ms, AppState,
};
use crate::with_pool;

/// How many messages each read of the branch takes while gathering what could fit.
const READ: i64 = 200;

fn is_user(m: &store::Said) -> bool {
    m.role == MessageRole::User.as_str()
}

fn turn(m: &store::Said) -> Turn {
    Turn {
        role: if is_user(m) { Role::User } else { Role::Model },
        text: m.content.clone(),
    }
}

/// The request for the reply `reply_id` in `user`'s chat `session`, answering the branch that
/// ends at `answers` (none: a first message with nothing before it). With `continued`, the reply
/// is written on from that text. The record of what was sent is kept for the reply.
pub async fn request(
    state: &AppState,
    user: &UserId,
    session: &store::Session,
    answers: Option<&str>,
    continued: Option<&str>,
    reply_id: &str,
) -> Result<(ChatRequest, Option<summary::Job>), AppError> {
    let budget = state.config.replies.context_tokens;
    request_in(
        &state.db, budget, user, session, answers, continued, reply_id,
    )
    .await
}

/// [`request`] on `db` within `budget` tokens (the benchmark times it). Also gives the update
/// of the chat's running summary to run after the reply, when it is due.
pub async fn request_in(
    db: &Db,
    budget: usize,
    user: &UserId,
    session: &store::Session,
    answers: Option<&str>,
    continued: Option<&str>,
    reply_id: &str,
) -> Result<(ChatRequest, Option<summary::Job>), AppError> {
    let is_twin = session.twin_id.is_some();
    let base = if is_twin {
        // The twin speaks from its Shades as they are now.
        let shades = crate::twins::store::find(db, user)
            .await
            .or_internal("load twin")?
            .map(|t| t.shades)
            .unwrap_or_default();
        prompts::twin_chat(&session.name, &session.backstory, &shades, Vec::new())
    } else {
        let persona = Persona {
            name: session.name.clone(),
            traits: session.traits.clone(),
            story_context: session.story_context.clone(),
        };
        prompts::chat(persona, &session.backstory, Vec::new())
    };
    let (card, user_name) = extras(db, user, (!is_twin).then_some(&*session.character_id))
        .await
        .or_internal("load card")?;
    let card: Option<serde_json::Value> = card.and_then(|c| serde_json::from_str(&c).ok());
    let book = card
        .as_ref()
        .map(crate::domain::card::book)
        .unwrap_or_default();
    let (card_system, post_history) = card
        .as_ref()
        .map(crate::domain::card::card_prompts)
        .unwrap_or_default();

    // The branch, read back from `answers` until what was read could fill the budget.
    let mut raw: Vec<store::Said> = Vec::new();
    let mut older = false;
    if let Some(answers) = answers {
        let mut from = store::Start::Message(answers);
        let mut tokens = 0;
        loop {
            let (mut page, earlier) = store::said_from(db, &session.id, from, READ)
                .await
                .or_internal("load history")?;
            tokens += page
                .iter()
                .filter(|m| m.is_sent())
                .map(|m| context::turn_tokens(&m.content))
                .sum::<usize>();
            page.append(&mut raw);
            raw = page;
            match earlier {
                Some(seq) if tokens < budget => from = store::Start::Before(seq),
                Some(_) => {
                    older = true;
                    break;
                }
                None => break,
            }
        }
    }
    let branch: Vec<&store::Said> = raw.iter().filter(|m| m.is_sent()).collect();
    let mut turns: Vec<Turn> = branch.iter().map(|m| turn(m)).collect();
    let continued = continued.filter(|w| !w.is_empty());
    if let Some(written) = continued {
        turns.push(Turn {
            role: Role::Model,
            text: written.to_string(),
        });
        turns.push(Turn {
            role: Role::User,
            text: prompts::CONTINUE.to_string(),
        });
    }
    let kept = summary::current(db, &session.id)
        .await
        .or_internal("load summary")?;
    let applies = match &kept {
        Some(k) => summary::applies(db, &session.id, k, &raw, older)
            .await
            .or_internal("check summary")?,
        None => false,
    };
    let summary_text = kept
        .as_ref()
        .filter(|_| applies)
        .map(|k| k.content.as_str());
    let built = context::build(
        &Sources {
            system: &base.system,
            card_system: card_system.as_deref(),
            post_history: post_history.as_deref(),
            char_name: &session.name,
            user_name: &user_name,
            book: &book,
            summary: summary_text,
            turns: &turns,
            older,
        },
        budget,
    );
    let mut seen = built.seen;
    // Which of the branch's messages went: the latest `from_branch` of them.
    let extra = if continued.is_some() { 2 } else { 0 };
    let from_branch = seen.turns.saturating_sub(extra);
    if continued.is_some() && seen.turns >= 2 {
        seen.continued = continued.map(str::to_string);
    }
    // The index in `raw` of the oldest message sent (its length when none was).
    let first_sent = match from_branch {
        0 => raw.len(),
        n => {
            let first = &branch[branch.len() - n].id;
            raw.iter().position(|m| &m.id == first).unwrap_or(0)
        }
    };
    let span = (raw.len() - first_sent) as i64;
    let last = (span > 0)
        .then(|| raw.last().map(|m| m.id.as_str()))
        .flatten();
    // A reply without its record is still a reply: the record is not worth failing it for.
    if let Err(e) = keep(db, reply_id, &session.id, last, span, &seen).await {
        tracing::warn!(error = ?e, "could not keep what the model saw");
    }
    let job = summary::due(kept.as_ref(), &raw, first_sent, older).map(|through| summary::Job {
        owner: user.clone(),
        session_id: session.id.clone(),
        name: base.persona.name.clone(),
        user_name: user_name.clone(),
        through,
        budget,
    });
    Ok((
        ChatRequest {
            system: built.system,
            history: built.turns,
            persona: base.persona,
            after: built.after,
        },
        job,
    ))
}

/// The card of `character` (if imported from one) and `user`'s display name.
async fn extras(
    db: &Db,
    user: &UserId,
    character: Option<&str>,
) -> Result<(Option<String>, String), sqlx::Error> {
    let (name,): (String,) = with_pool!(db, pool => {
        sqlx::query_as("SELECT display_name FROM users WHERE id = $1")
            .bind(&user.0)
            .fetch_one(pool)
            .await?
    });
    let Some(character) = character else {
        return Ok((None, name));
    };
    let card: Option<(Option<String>,)> = with_pool!(db, pool => {
        sqlx::query_as("SELECT card FROM characters WHERE id = $1 AND owner_id = $2")
            .bind(character)
            .bind(&user.0)
            .fetch_optional(pool)
            .await?
    });
    Ok((card.and_then(|(c,)| c), name))
}

/// Keeps (or, for a reply continued again, replaces) the record of what reply `reply_id` was
/// written from.
async fn keep(
    db: &Db,
    reply_id: &str,
    session_id: &str,
    last: Option<&str>,
    span: i64,
    seen: &Seen,
) -> Result<(), sqlx::Error> {
    let json = serde_json::to_string(seen).expect("a record serializes");
    with_pool!(db, pool => {
        sqlx::query(
            "INSERT INTO chat_prompts (message_id, session_id, last_turn_id, span, seen, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (message_id) DO UPDATE SET last_turn_id = excluded.last_turn_id, \
             span = excluded.span, seen = excluded.seen, created_at = excluded.created_at",
        )
        .bind(reply_id)
        .bind(session_id)
        .bind(last)
        .bind(span)
        .bind(&json)
        .bind(now_ms())
        .execute(pool)
        .await?;
    });
    Ok(())
}

/// What the model saw for reply `message_id` of `owner`'s chat `session_id`: none if the chat or
/// the reply is not theirs, or nothing was kept for it (a greeting, a reply from before records).
pub async fn saw(
    db: &Db,
    owner: &UserId,
    session_id: &str,
    message_id: &str,
) -> Result<Option<PromptView>, sqlx::Error> {
    let Some(session) = store::find_session(db, owner, session_id).await? else {
        return Ok(None);
    };
    let row: Option<(Option<String>, i64, String)> = with_pool!(db, pool => {
        sqlx::query_as(
            "SELECT p.last_turn_id, p.span, p.seen FROM chat_prompts p \
             JOIN chat_messages m ON m.id = p.message_id \
             WHERE p.message_id = $1 AND p.session_id = $2 AND m.deleted_at IS NULL",
        )
        .bind(message_id)
        .bind(session_id)
        .fetch_optional(pool)
        .await?
    });
    let Some((last, span, seen)) = row else {
        return Ok(None);
    };
    let Ok(seen) = serde_json::from_str::<Seen>(&seen) else {
        return Ok(None);
    };
    let mut turns: Vec<SeenTurn> = match last {
        Some(last) if span > 0 => {
            store::said_from(db, session_id, store::Start::Message(&last), span)
                .await?
                .0
                .iter()
                .filter(|m| m.is_sent())
                .map(|m| SeenTurn {
                    role: if is_user(m) {
                        MessageRole::User
                    } else {
                        MessageRole::Assistant
                    },
                    tokens: context::turn_tokens(&m.content),
                    text: m.content.clone(),
                })
                .collect()
        }
        _ => Vec::new(),
    };
    if let Some(written) = &seen.continued {
        for (role, text) in [
            (MessageRole::Assistant, written.as_str()),
            (MessageRole::User, prompts::CONTINUE),
        ] {
            turns.push(SeenTurn {
                role,
                tokens: context::turn_tokens(text),
                text: text.to_string(),
            });
        }
    }
    Ok(Some(PromptView {
        session_id: session.id,
        message_id: message_id.to_string(),
        title: session.title,
        with: session.name,
        seen,
        turns,
    }))
}
