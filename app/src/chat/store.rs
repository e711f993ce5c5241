//! The `chat_sessions` and `chat_messages` tables: every query on them.
//!
//! Roles and statuses are stored as the words of [`MessageRole::as_str`] and
//! [`MessageStatus::as_str`]. A row holding any other word is refused (logged with its id, and the
//! read fails) rather than shown as something it is not.
//!
//! A session is read together with its character's persona (one JOIN: the owner check, the name
//! the page shows and what the model is told); the character itself is read through
//! [`crate::characters::store`].

use super::{ChatMessage, MessageRole, MessageStatus};
use crate::auth::UserId;
use crate::infra::{db::Db, llm::Usage, new_id, now_ms};
use crate::with_pool;

/// A chat session with what it needs of its character.
pub struct Session {
    pub id: String,
    pub character_id: String,
    pub name: String,
    pub avatar: String,
    pub traits: Vec<String>,
    pub backstory: String,
    pub story_context: String,
}

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

impl From<SessionRow> for Session {
    fn from(r: SessionRow) -> Self {
        Session {
            id: r.id,
            character_id: r.character_id,
            name: r.name,
            avatar: r.avatar,
            traits: r.traits.0,
            backstory: r.backstory,
            story_context: r.story_context,
        }
    }
}

#[derive(sqlx::FromRow)]
struct MessageRow {
    id: String,
    role: String,
    content: String,
    status: String,
    created_at: i64,
}

impl TryFrom<MessageRow> for ChatMessage {
    type Error = sqlx::Error;

    fn try_from(r: MessageRow) -> Result<Self, sqlx::Error> {
        let role = MessageRole::parse(&r.role).ok_or_else(|| unknown(&r.id, "role", &r.role))?;
        let status = parse_status(&r.id, &r.status)?;
        Ok(ChatMessage {
            id: r.id,
            role,
            content: r.content,
            status,
            created_at: r.created_at,
        })
    }
}

fn parse_status(id: &str, stored: &str) -> Result<MessageStatus, sqlx::Error> {
    MessageStatus::parse(stored).ok_or_else(|| unknown(id, "status", stored))
}

/// A stored word this code does not know: an error in the log and a failed read.
fn unknown(id: &str, column: &'static str, value: &str) -> sqlx::Error {
    tracing::error!(message_id = %id, column, value, "chat message with an unknown stored value");
    sqlx::Error::Decode(format!("chat_messages row {id}: unknown {column} {value:?}").into())
}

/// The latest session of `owner` with `character_id`, created with the greeting if there is
/// none. `None` if the character is not `owner`'s.
pub async fn open_session(
    db: &Db,
    owner: &UserId,
    character_id: &str,
) -> Result<Option<String>, sqlx::Error> {
    let Some(character) = crate::characters::store::find(db, owner, character_id).await? else {
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
    let name = &character.draft.name;
    // The greeting is the character's first message.
    let greeting = ChatMessage {
        id: new_id(),
        role: MessageRole::Assistant,
        content: character.draft.opening_line,
        status: MessageStatus::Complete,
        created_at: now,
    };
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
        .bind(preview(&greeting.content))
        .bind(now)
        .execute(&mut *tx)
        .await?;
        insert_row(&id, &greeting).execute(&mut *tx).await?;
        tx.commit().await?;
    });
    Ok(Some(id))
}

/// The session `session_id` if `owner` owns it, with its character's persona.
pub async fn find_session(
    db: &Db,
    owner: &UserId,
    session_id: &str,
) -> Result<Option<Session>, sqlx::Error> {
    let row: Option<SessionRow> = with_pool!(db, pool => {
        sqlx::query_as(
            "SELECT s.id, s.character_id, c.name, c.avatar, c.traits, c.backstory, c.story_context \
             FROM chat_sessions s JOIN characters c ON c.id = s.character_id \
             WHERE s.id = $1 AND s.owner_id = $2",
        )
        .bind(session_id)
        .bind(&owner.0)
        .fetch_optional(pool)
        .await?
    });
    Ok(row.map(Session::from))
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
    rows.into_iter().map(ChatMessage::try_from).collect()
}

/// Adds a message to a session (and makes it the session's preview); returns it as saved.
pub async fn insert_message(
    db: &Db,
    session_id: &str,
    role: MessageRole,
    content: &str,
    status: MessageStatus,
) -> Result<ChatMessage, sqlx::Error> {
    let message = ChatMessage {
        id: new_id(),
        role,
        content: content.to_string(),
        status,
        created_at: now_ms(),
    };
    with_pool!(db, pool => insert_row(session_id, &message).execute(pool).await.map(|_| ())?);
    touch_session(db, session_id, content).await?;
    Ok(message)
}

/// The one INSERT into `chat_messages`, to run on a pool or inside a transaction.
fn insert_row<'q, DB: sqlx::Database>(
    session_id: &'q str,
    m: &'q ChatMessage,
) -> sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments<'q>>
where
    &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    sqlx::query(
        "INSERT INTO chat_messages (id, session_id, role, content, status, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $6)",
    )
    .bind(m.id.as_str())
    .bind(session_id)
    .bind(m.role.as_str())
    .bind(m.content.as_str())
    .bind(m.status.as_str())
    .bind(m.created_at)
}

/// The status of the reply `reply_id` if it is an assistant message in one of `owner`'s sessions.
pub async fn reply_status(
    db: &Db,
    owner: &UserId,
    reply_id: &str,
) -> Result<Option<MessageStatus>, sqlx::Error> {
    let found: Option<(String,)> = with_pool!(db, pool => {
        sqlx::query_as(
            "SELECT m.status FROM chat_messages m JOIN chat_sessions s ON s.id = m.session_id \
             WHERE m.id = $1 AND s.owner_id = $2 AND m.role = $3",
        )
        .bind(reply_id)
        .bind(&owner.0)
        .bind(MessageRole::Assistant.as_str())
        .fetch_optional(pool)
        .await?
    });
    found
        .map(|(status,)| parse_status(reply_id, &status))
        .transpose()
}

/// Marks a reply stopped if it is still streaming.
pub async fn mark_stopped(db: &Db, reply_id: &str) -> Result<(), sqlx::Error> {
    with_pool!(db, pool => {
        sqlx::query("UPDATE chat_messages SET status = $1, updated_at = $2 WHERE id = $3 AND status = $4")
            .bind(MessageStatus::Stopped.as_str())
            .bind(now_ms())
            .bind(reply_id)
            .bind(MessageStatus::Streaming.as_str())
            .execute(pool)
            .await
            .map(|_| ())?
    });
    Ok(())
}

/// Saves the text of a reply still being written; `false` if it is no longer streaming.
pub async fn flush_partial(db: &Db, id: &str, content: &str) -> Result<bool, sqlx::Error> {
    let affected = with_pool!(db, pool => {
        sqlx::query("UPDATE chat_messages SET content = $1, updated_at = $2 WHERE id = $3 AND status = $4")
            .bind(content)
            .bind(now_ms())
            .bind(id)
            .bind(MessageStatus::Streaming.as_str())
            .execute(pool)
            .await?
            .rows_affected()
    });
    Ok(affected == 1)
}

/// Saves a reply's final text and status, with the tokens it cost and who wrote it.
pub async fn finish_message(
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

/// Makes `last` the session's preview and moves the session to the top; nothing if it is empty.
pub async fn touch_session(db: &Db, session_id: &str, last: &str) -> Result<(), sqlx::Error> {
    if last.is_empty() {
        return Ok(());
    }
    with_pool!(db, pool => {
        sqlx::query("UPDATE chat_sessions SET last_message_preview = $1, updated_at = $2 WHERE id = $3")
            .bind(preview(last))
            .bind(now_ms())
            .bind(session_id)
            .execute(pool)
            .await
            .map(|_| ())?
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
