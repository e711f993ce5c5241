//! The `chat_sessions` and `chat_messages` tables: every query on them.
//!
//! Roles and statuses are stored as the words of [`MessageRole::as_str`] and
//! [`MessageStatus::as_str`]. A row holding any other word is refused (logged with its id, and the
//! read fails) rather than shown as something it is not.
//!
//! A session is read together with its character's persona (one JOIN: the owner check, the name
//! the page shows and what the model is told); the character itself is read through
//! [`crate::characters::store`].
//!
//! Making, listing and trashing sessions is in [`super::sessions`].
//!
//! What the database itself keeps true, whatever the number of servers: messages numbered 1, 2, 3… per session in the
//! order written (`seq`, given under the session row's lock, so it never depends on a clock); at
//! most one `streaming` reply per session (a partial unique index: [`start_exchange`] refuses a
//! second); and a reply's final status written once (every end is `… WHERE status =
//! 'streaming'`), while the generating server's heartbeat (`heartbeat_at`) says it is alive.

use super::{ChatMessage, MessageRole, MessageStatus};
use crate::auth::UserId;
use crate::infra::{db::Db, llm::Usage, new_id, now_ms};
use crate::with_pool;

/// A chat session with what it needs of its counterpart: a character, or the owner's twin (then
/// `character_id` is empty, `twin_id` set, `name` and `backstory` the twin's name and bio).
pub struct Session {
    pub id: String,
    pub title: String,
    pub character_id: String,
    pub twin_id: Option<String>,
    pub name: String,
    pub avatar: String,
    pub traits: Vec<String>,
    pub backstory: String,
    pub story_context: String,
}

#[derive(sqlx::FromRow)]
struct SessionRow {
    id: String,
    title: String,
    character_id: String,
    twin_id: Option<String>,
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
            title: r.title,
            character_id: r.character_id,
            twin_id: r.twin_id,
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
    seq: i64,
    versions: i64,
    version: i64,
}

/// What every read of messages selects (`m` is `chat_messages`): the message, its `seq`, and
/// its place among its versions — the messages with the same parent that are not deleted, in the
/// order written. A chat's first messages (no parent) are versions of each other.
const MESSAGE_COLUMNS: &str = "m.id, m.role, m.content, m.status, m.created_at, m.seq, \
     CASE WHEN m.parent_id IS NULL \
       THEN (SELECT COUNT(*) FROM chat_messages v WHERE v.session_id = m.session_id AND v.parent_id IS NULL AND v.deleted_at IS NULL) \
       ELSE (SELECT COUNT(*) FROM chat_messages v WHERE v.parent_id = m.parent_id AND v.deleted_at IS NULL) END AS versions, \
     CASE WHEN m.parent_id IS NULL \
       THEN (SELECT COUNT(*) FROM chat_messages v WHERE v.session_id = m.session_id AND v.parent_id IS NULL AND v.deleted_at IS NULL AND v.seq <= m.seq) \
       ELSE (SELECT COUNT(*) FROM chat_messages v WHERE v.parent_id = m.parent_id AND v.deleted_at IS NULL AND v.seq <= m.seq) END AS version";

impl TryFrom<MessageRow> for ChatMessage {
    type Error = sqlx::Error;

    fn try_from(r: MessageRow) -> Result<Self, sqlx::Error> {
        let role = MessageRole::parse(&r.role).ok_or_else(|| unknown(&r.id, "role", &r.role))?;
        let status = parse_status(&r.id, &r.status)?;
        Ok(ChatMessage {
            id: r.id,
            role,
            status,
            created_at: r.created_at,
            version: r.version.clamp(1, i64::from(u32::MAX)) as u32,
            versions: r.versions.clamp(1, i64::from(u32::MAX)) as u32,
            html: super::markdown::render(&r.content),
            content: r.content,
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

/// `owner`'s most recently active chat with `character_id`, made with its greeting if there is
/// none; `None` if the character is not theirs (or they have as many chats with it as one may).
/// [`super::sessions::open`], for callers that know the character.
pub async fn open_session(
    db: &Db,
    owner: &UserId,
    character_id: &str,
) -> Result<Option<String>, sqlx::Error> {
    use super::sessions::{open, Made, With};
    Ok(
        match open(db, owner, With::Character(character_id)).await? {
            Made::Chat(id) => Some(id),
            Made::NotFound | Made::Full => None,
        },
    )
}

/// The session `session_id` if `owner` owns it and it is outside the trash, with its
/// counterpart's persona (a character outside the trash, or the owner's twin).
pub async fn find_session(
    db: &Db,
    owner: &UserId,
    session_id: &str,
) -> Result<Option<Session>, sqlx::Error> {
    let row: Option<SessionRow> = with_pool!(db, pool => {
        sqlx::query_as(
            "SELECT s.id, s.title, COALESCE(s.character_id, '') AS character_id, s.twin_id, \
             COALESCE(c.name, t.display_name) AS name, COALESCE(c.avatar, '') AS avatar, \
             COALESCE(c.traits, '[]') AS traits, COALESCE(c.backstory, t.bio) AS backstory, \
             COALESCE(c.story_context, '') AS story_context \
             FROM chat_sessions s LEFT JOIN characters c ON c.id = s.character_id \
             LEFT JOIN twins t ON t.id = s.twin_id AND t.owner_id = s.owner_id \
             WHERE s.id = $1 AND s.owner_id = $2 AND s.deleted_at IS NULL \
             AND (t.id IS NOT NULL OR (c.id IS NOT NULL AND c.deleted_at IS NULL))",
        )
        .bind(session_id)
        .bind(&owner.0)
        .fetch_optional(pool)
        .await?
    });
    Ok(row.map(Session::from))
}

/// Where a read of a branch starts (its last message), going up through the parents.
pub enum Start<'a> {
    /// The session's head: the last message of the branch the chat shows.
    Head,
    /// This message.
    Message(&'a str),
    /// The message before message number `seq` on its branch (a "load earlier" page).
    Before(i64),
}

/// Up to `limit` messages of a branch of `session_id`, ending at `from` and in the order written.
async fn branch_rows(
    db: &Db,
    session_id: &str,
    from: Start<'_>,
    limit: i64,
) -> Result<Vec<MessageRow>, sqlx::Error> {
    walk(db, session_id, from, limit, MESSAGE_COLUMNS).await
}

/// A message as the model is sent it: no versions, no HTML.
#[derive(sqlx::FromRow)]
pub struct Said {
    pub id: String,
    /// `user` or `assistant`.
    pub role: String,
    pub content: String,
    pub status: String,
    pub seq: i64,
}

impl Said {
    /// Whether it is sent to the model: not a reply being written, not an empty message.
    pub fn is_sent(&self) -> bool {
        self.status != MessageStatus::Streaming.as_str() && !self.content.is_empty()
    }
}

/// Up to `limit` messages of the branch ending at `from` as the model is sent them, in the order
/// written, and the `seq` of the first when earlier ones remain (as [`page_from`]). Reads only
/// what a prompt needs: what a page shows besides (versions, HTML) is not worked out.
pub async fn said_from(
    db: &Db,
    session_id: &str,
    from: Start<'_>,
    limit: i64,
) -> Result<(Vec<Said>, Option<i64>), sqlx::Error> {
    let mut rows: Vec<Said> = walk(
        db,
        session_id,
        from,
        limit + 1,
        "m.id, m.role, m.content, m.status, m.seq",
    )
    .await?;
    let earlier = if rows.len() as i64 > limit {
        rows.remove(0);
        rows.first().map(|r| r.seq)
    } else {
        None
    };
    Ok((rows, earlier))
}

/// Whether `ancestor` is on the branch of `session_id` ending at `from` (or is `from`): a walk up
/// through the parents, ids only, that stops at the first message no newer than `ancestor` (a
/// message is always written after the one it follows), `max` steps at most (false beyond).
pub async fn descends(
    db: &Db,
    session_id: &str,
    from: &str,
    ancestor: &str,
    max: i64,
) -> Result<bool, sqlx::Error> {
    let found: i64 = with_pool!(db, pool => {
        sqlx::query_scalar(
            "WITH RECURSIVE up(id, parent_id, seq, n) AS ( \
               SELECT id, parent_id, seq, CAST(0 AS BIGINT) FROM chat_messages WHERE id = $1 AND session_id = $2 \
               UNION ALL \
               SELECT m.id, m.parent_id, m.seq, up.n + 1 FROM up JOIN chat_messages m ON m.id = up.parent_id \
               WHERE up.seq > (SELECT a.seq FROM chat_messages a WHERE a.id = $3 AND a.session_id = $2) \
               AND up.n < $4 \
             ) SELECT COUNT(*) FROM up WHERE id = $3",
        )
        .bind(from)
        .bind(session_id)
        .bind(ancestor)
        .bind(max)
        .fetch_one(pool)
        .await?
    });
    Ok(found > 0)
}

/// The walk up a branch of `session_id` from `from`, `limit` messages at most, selecting
/// `columns` of each (`m` is `chat_messages`), in the order written.
async fn walk<T>(
    db: &Db,
    session_id: &str,
    from: Start<'_>,
    limit: i64,
    columns: &str,
) -> Result<Vec<T>, sqlx::Error>
where
    T: for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow>
        + for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>
        + Send
        + Unpin,
{
    // Each variant binds its start as $1; $2 is the session, $3 the limit.
    let start = match from {
        Start::Head => "id = (SELECT head_id FROM chat_sessions WHERE id = $1)",
        Start::Message(_) => "id = $1",
        Start::Before(_) => {
            "id = (SELECT parent_id FROM chat_messages WHERE session_id = $2 AND seq = $1)"
        }
    };
    // The walk up reads one row per message by its primary key, never the whole chat.
    let sql = format!(
        "WITH RECURSIVE path(id, n) AS ( \
           SELECT id, CAST(0 AS BIGINT) FROM chat_messages WHERE {start} AND session_id = $2 AND deleted_at IS NULL \
           UNION ALL \
           SELECT m.parent_id, p.n + 1 FROM path p JOIN chat_messages m ON m.id = p.id \
           WHERE m.parent_id IS NOT NULL AND p.n + 1 < $3 \
         ) \
         SELECT {columns} FROM path p JOIN chat_messages m ON m.id = p.id ORDER BY p.n DESC"
    );
    let rows: Vec<T> = with_pool!(db, pool => {
        let query = sqlx::query_as(&sql);
        match from {
            Start::Head => query.bind(session_id.to_string()),
            Start::Message(id) => query.bind(id.to_string()),
            Start::Before(seq) => query.bind(seq),
        }
        .bind(session_id)
        .bind(limit)
        .fetch_all(pool)
        .await?
    });
    Ok(rows)
}

/// The branch the chat shows (ending at its head), in the order written; with `limit`, only its
/// latest `limit` messages. [`branch`] from [`Start::Head`], for callers that read a whole chat.
pub async fn messages(
    db: &Db,
    session_id: &str,
    limit: Option<i64>,
) -> Result<Vec<ChatMessage>, sqlx::Error> {
    branch(db, session_id, Start::Head, limit.unwrap_or(i64::MAX)).await
}

/// The latest `limit` messages of the branch ending at `from`, in the order written.
pub async fn branch(
    db: &Db,
    session_id: &str,
    from: Start<'_>,
    limit: i64,
) -> Result<Vec<ChatMessage>, sqlx::Error> {
    branch_rows(db, session_id, from, limit)
        .await?
        .into_iter()
        .map(ChatMessage::try_from)
        .collect()
}

/// One page of the branch the chat shows, newest first: up to `limit` messages ending at the
/// head, or before message number `before` (a `seq`), returned in the order written, with the
/// `seq` of the first of them when earlier ones remain (the cursor for the page before). Walks
/// `limit + 1` messages up through their parents, never the whole chat.
pub async fn messages_page(
    db: &Db,
    session_id: &str,
    before: Option<i64>,
    limit: i64,
) -> Result<(Vec<ChatMessage>, Option<i64>), sqlx::Error> {
    let from = match before {
        Some(seq) => Start::Before(seq),
        None => Start::Head,
    };
    page_from(db, session_id, from, limit).await
}

/// Up to `limit` messages of the branch ending at `from`, in the order written, and, when
/// earlier messages remain, the `seq` of the first one (as [`messages_page`]).
pub async fn page_from(
    db: &Db,
    session_id: &str,
    from: Start<'_>,
    limit: i64,
) -> Result<(Vec<ChatMessage>, Option<i64>), sqlx::Error> {
    let mut rows = branch_rows(db, session_id, from, limit + 1).await?;
    let more = rows.len() as i64 > limit;
    if more {
        rows.remove(0);
    }
    let earlier = if more {
        rows.first().map(|r| r.seq)
    } else {
        None
    };
    let messages = rows
        .into_iter()
        .map(ChatMessage::try_from)
        .collect::<Result<_, _>>()?;
    Ok((messages, earlier))
}

/// The message `id` of `session_id` as a page shows it (with its versions), if it is there and
/// not deleted.
pub async fn message(
    db: &Db,
    session_id: &str,
    id: &str,
) -> Result<Option<ChatMessage>, sqlx::Error> {
    let sql = format!(
        "SELECT {MESSAGE_COLUMNS} FROM chat_messages m \
         WHERE m.id = $1 AND m.session_id = $2 AND m.deleted_at IS NULL"
    );
    let row: Option<MessageRow> = with_pool!(db, pool => {
        sqlx::query_as(&sql)
            .bind(id)
            .bind(session_id)
            .fetch_optional(pool)
            .await?
    });
    row.map(ChatMessage::try_from).transpose()
}

/// Adds a message at the end of the branch the chat shows (it becomes the head, and the
/// session's preview); returns it as saved.
pub async fn insert_message(
    db: &Db,
    session_id: &str,
    role: MessageRole,
    content: &str,
    status: MessageStatus,
) -> Result<ChatMessage, sqlx::Error> {
    let message = new_message(role, content, status);
    with_pool!(db, pool => {
        let mut tx = pool.begin().await?;
        lock_session(session_id, content).execute(&mut *tx).await?;
        let head = head_of(session_id).fetch_one(&mut *tx).await?.0;
        insert_row(session_id, &message, head.as_deref()).execute(&mut *tx).await?;
        set_head(session_id, Some(&message.id), content).execute(&mut *tx).await?;
        tx.commit().await?;
    });
    Ok(message)
}

/// What [`start_exchange`] did.
pub enum Exchange {
    /// The user's message and the empty `streaming` reply are saved.
    Started {
        user: ChatMessage,
        reply: ChatMessage,
    },
    /// A reply is still being written in this chat; nothing was saved.
    Busy,
    /// The chat no longer ends with the message the sender saw; nothing was saved.
    Moved,
}

/// Saves the user's message (after the chat's last message) and the empty reply that will answer
/// it, in one transaction, and makes the reply the head; unless a reply is already streaming in
/// the session, or `after` is given and the chat no longer ends with it: then nothing is saved. One reply at a time per chat, across servers: the session
/// row is locked first (so concurrent exchanges queue), and the partial unique index on streaming
/// rows refuses a second one should anything else get past.
pub async fn start_exchange(
    db: &Db,
    session_id: &str,
    text: &str,
    after: Option<&str>,
) -> Result<Exchange, sqlx::Error> {
    let user = new_message(MessageRole::User, text, MessageStatus::Complete);
    let reply = new_message(MessageRole::Assistant, "", MessageStatus::Streaming);
    let refused: Result<Option<Exchange>, sqlx::Error> = with_pool!(db, pool => {
        let mut tx = pool.begin().await?;
        lock_session(session_id, text).execute(&mut *tx).await?;
        let head = head_of(session_id).fetch_one(&mut *tx).await?.0;
        if streaming_in(session_id).fetch_one(&mut *tx).await?.0 > 0 {
            Ok(Some(Exchange::Busy))
        } else if after.is_some_and(|after| head.as_deref() != Some(after)) {
            Ok(Some(Exchange::Moved))
        } else {
            insert_row(session_id, &user, head.as_deref()).execute(&mut *tx).await?;
            match insert_row(session_id, &reply, Some(&user.id)).execute(&mut *tx).await {
                Ok(_) => {
                    set_head(session_id, Some(&reply.id), text).execute(&mut *tx).await?;
                    tx.commit().await.map(|_| None)
                }
                Err(e) if is_second_streaming_reply(&e) => Ok(Some(Exchange::Busy)),
                Err(e) => Err(e),
            }
        }
    });
    if let Some(refused) = refused? {
        return Ok(refused);
    }
    // As a page shows it: a message sent after an edited one may have versions.
    let user = message(db, session_id, &user.id).await?.unwrap_or(user);
    Ok(Exchange::Started { user, reply })
}

/// A change to the messages of a chat, made by [`change`].
pub enum Op<'a> {
    /// A new version of the message, with this text (the old one is kept; the new one ends the
    /// branch shown).
    Edit { text: &'a str },
    /// Show version `to` (1-based) of the message's place, with the latest branch under it.
    Show { to: u32 },
    /// Hide the message and what follows it on its branch (restorable).
    Delete,
    /// Undo a [`Op::Delete`].
    Restore,
    /// A new reply: a new version of the reply, or an answer to the user message.
    Regenerate,
    /// Write on at the end of the reply (the last message shown).
    Continue,
}

/// What [`change`] did.
pub struct Done {
    /// For [`Op::Regenerate`] and [`Op::Continue`]: the reply now `streaming`.
    pub reply: Option<ChatMessage>,
    /// For [`Op::Regenerate`] and [`Op::Continue`]: the message the reply answers (the end of
    /// its prompt's branch), if any.
    pub answers: Option<String>,
}

/// Why [`change`] changed nothing.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// A reply is being written in this chat.
    Busy,
    /// No such message in the chat (or a deleted one, except to restore it).
    NotFound,
    /// The change does not apply to this message; a sentence for the user.
    Refused(&'static str),
    /// The change would make a chat, and the user has as many with the character as one may.
    Full,
}

#[derive(sqlx::FromRow)]
struct TargetRow {
    role: String,
    content: String,
    parent_id: Option<String>,
    deleted_at: Option<i64>,
    heartbeat_at: Option<i64>,
    seq: i64,
}

/// Makes `op` on the message `message_id` of `session_id`, under the session row's lock and only
/// while no reply is being written in the chat, so the branch shown (the head) and the one reply
/// at a time per chat hold across servers. Nothing is overwritten: a new version is a new row, a
/// deleted message is only marked.
pub async fn change(
    db: &Db,
    session_id: &str,
    message_id: &str,
    op: Op<'_>,
) -> Result<Result<Done, Refusal>, sqlx::Error> {
    let now = now_ms();
    let changed: Result<Done, Refusal> = with_pool!(db, pool => {
        let mut tx = pool.begin().await?;
        lock_session(session_id, "").execute(&mut *tx).await?;
        if streaming_in(session_id).fetch_one(&mut *tx).await?.0 > 0 {
            return Ok(Err(Refusal::Busy));
        }
        let target: Option<TargetRow> = sqlx::query_as(
            "SELECT role, content, parent_id, deleted_at, heartbeat_at, seq FROM chat_messages \
             WHERE id = $1 AND session_id = $2",
        )
        .bind(message_id)
        .bind(session_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(target) = target else {
            return Ok(Err(Refusal::NotFound));
        };
        if target.deleted_at.is_some() != matches!(op, Op::Restore) {
            return Ok(Err(Refusal::NotFound));
        }
        let role = MessageRole::parse(&target.role)
            .ok_or_else(|| unknown(message_id, "role", &target.role))?;
        let parent = target.parent_id.as_deref();
        // A message hidden under a deleted one is not there to change; restoring one needs the
        // message before it restored first.
        if let Some(parent) = parent {
            let (hidden,): (i64,) = sqlx::query_as(ABOVE_DELETED)
                .bind(parent)
                .bind(session_id)
                .fetch_one(&mut *tx)
                .await?;
            if hidden > 0 {
                return Ok(Err(match op {
                    Op::Restore => Refusal::Refused("Restore the message before it first."),
                    _ => Refusal::NotFound,
                }));
            }
        }
        let mut reply = None;
        let mut answers = None;
        // The new head, and its text for the chat list's preview.
        let head: Option<(String, String)> = match op {
            Op::Edit { text } => {
                let edited = new_message(role, text, MessageStatus::Complete);
                insert_row(session_id, &edited, parent).execute(&mut *tx).await?;
                Some((edited.id, text.to_string()))
            }
            Op::Show { to } => {
                let versions: Vec<(String, i64)> = sqlx::query_as(versions_sql(parent))
                    .bind(parent.unwrap_or(session_id))
                    .fetch_all(&mut *tx)
                    .await?;
                let Some((shown, _)) = versions.get((to as usize).wrapping_sub(1)) else {
                    return Ok(Err(Refusal::Refused("There is no such version of this message.")));
                };
                sqlx::query_as(LATEST_UNDER).bind(shown.as_str()).fetch_optional(&mut *tx).await?
            }
            Op::Delete => {
                // Whether the chat shows it (through another tab or the API, one may delete a
                // message of a branch not shown: the branch shown stays).
                let head = head_of(session_id).fetch_one(&mut *tx).await?.0;
                let shown = match &head {
                    Some(head) => {
                        let (n,): (i64,) = sqlx::query_as(ABOVE_THIS)
                            .bind(head.as_str())
                            .bind(message_id)
                            .bind(target.seq)
                            .fetch_one(&mut *tx)
                            .await?;
                        n > 0
                    }
                    None => false,
                };
                sqlx::query("UPDATE chat_messages SET deleted_at = $1 WHERE id = $2")
                    .bind(now)
                    .bind(message_id)
                    .execute(&mut *tx)
                    .await?;
                // Its nearest other version (the one before it, else the one after) takes its
                // place; with none, the branch ends at its parent.
                let versions: Vec<(String, i64)> = sqlx::query_as(versions_sql(parent))
                    .bind(parent.unwrap_or(session_id))
                    .fetch_all(&mut *tx)
                    .await?;
                if parent.is_none() && versions.is_empty() {
                    return Ok(Err(Refusal::Refused(
                        "The chat's first message cannot be deleted. Edit it instead.",
                    )));
                }
                if !shown {
                    tx.commit().await?;
                    return Ok(Ok(Done {
                        reply: None,
                        answers: None,
                    }));
                }
                let next = versions
                    .iter()
                    .rev()
                    .find(|(_, seq)| *seq < target.seq)
                    .or_else(|| versions.iter().find(|(_, seq)| *seq > target.seq))
                    .map(|(id, _)| id.as_str())
                    .or(parent);
                match next {
                    Some(next) => {
                        sqlx::query_as(LATEST_UNDER).bind(next).fetch_optional(&mut *tx).await?
                    }
                    None => None,
                }
            }
            Op::Restore => {
                sqlx::query("UPDATE chat_messages SET deleted_at = NULL WHERE id = $1")
                    .bind(message_id)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query_as(LATEST_UNDER).bind(message_id).fetch_optional(&mut *tx).await?
            }
            Op::Regenerate => {
                let to = match role {
                    MessageRole::User => message_id,
                    MessageRole::Assistant => match parent {
                        Some(parent) => parent,
                        None => {
                            return Ok(Err(Refusal::Refused(
                                "The first message answers nothing, so it cannot be written again. Edit it instead.",
                            )))
                        }
                    },
                };
                let new = new_message(MessageRole::Assistant, "", MessageStatus::Streaming);
                insert_row(session_id, &new, Some(to)).execute(&mut *tx).await?;
                answers = Some(to.to_string());
                let head = (new.id.clone(), String::new());
                reply = Some(new);
                Some(head)
            }
            Op::Continue => {
                if role != MessageRole::Assistant {
                    return Ok(Err(Refusal::Refused("Only a reply can be continued.")));
                }
                let head = head_of(session_id).fetch_one(&mut *tx).await?.0;
                if head.as_deref() != Some(message_id) {
                    return Ok(Err(Refusal::Refused("Only the chat's last reply can be continued.")));
                }
                // Stopped, but its writer has not saved it yet: it is not free to write on.
                if target.heartbeat_at.is_some() {
                    return Ok(Err(Refusal::Busy));
                }
                sqlx::query(
                    "UPDATE chat_messages SET status = $1, heartbeat_at = $2, updated_at = $2 WHERE id = $3",
                )
                .bind(MessageStatus::Streaming.as_str())
                .bind(now)
                .bind(message_id)
                .execute(&mut *tx)
                .await?;
                answers = target.parent_id.clone();
                reply = Some(ChatMessage {
                    id: message_id.to_string(),
                    role,
                    content: target.content.clone(),
                    status: MessageStatus::Streaming,
                    created_at: now,
                    version: 1,
                    versions: 1,
                    html: String::new(),
                });
                Some((message_id.to_string(), target.content.clone()))
            }
        };
        let (head_id, last) = match &head {
            Some((id, text)) => (Some(id.as_str()), text.as_str()),
            None => (None, ""),
        };
        set_head(session_id, head_id, last).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(Done { reply, answers })
    });
    // A reply as a page shows it, with its versions.
    Ok(match changed {
        Ok(Done {
            reply: Some(r),
            answers,
        }) => Ok(Done {
            reply: Some(
                message(db, session_id, &r.id)
                    .await?
                    .map_or(r, |mut shown| {
                        shown.status = MessageStatus::Streaming;
                        shown
                    }),
            ),
            answers,
        }),
        other => other,
    })
}

/// The versions of a place in a chat (the non-deleted messages with `parent`, in the order
/// written): `(id, seq)`, with `$1` the parent, or the session for a chat's first messages.
fn versions_sql(parent: Option<&str>) -> &'static str {
    match parent {
        Some(_) => {
            "SELECT id, seq FROM chat_messages WHERE parent_id = $1 AND deleted_at IS NULL ORDER BY seq"
        }
        None => {
            "SELECT id, seq FROM chat_messages WHERE session_id = $1 AND parent_id IS NULL \
             AND deleted_at IS NULL ORDER BY seq"
        }
    }
}

/// The end of the latest branch under message `$1` (itself when nothing follows it): from each
/// message, its latest non-deleted child. `(id, content)`.
const LATEST_UNDER: &str = "WITH RECURSIVE down(id, n) AS ( \
       SELECT CAST($1 AS TEXT), CAST(0 AS BIGINT) \
       UNION ALL \
       SELECT (SELECT c.id FROM chat_messages c WHERE c.parent_id = d.id AND c.deleted_at IS NULL \
               ORDER BY c.seq DESC LIMIT 1), d.n + 1 \
       FROM down d WHERE d.id IS NOT NULL \
     ) \
     SELECT m.id, m.content FROM down d JOIN chat_messages m ON m.id = d.id ORDER BY d.n DESC LIMIT 1";

/// How many of message `$1` and the messages above it (its parent, the parent's parent…) are
/// deleted, for a chat `$2` that has deleted messages at all (otherwise 0 without the walk, through
/// the partial index `chat_messages_deleted`).
const ABOVE_DELETED: &str = "WITH RECURSIVE up(id, parent_id, deleted_at) AS ( \
       SELECT id, parent_id, deleted_at FROM chat_messages WHERE id = $1 \
         AND EXISTS (SELECT 1 FROM chat_messages d WHERE d.session_id = $2 AND d.deleted_at IS NOT NULL) \
       UNION ALL \
       SELECT m.id, m.parent_id, m.deleted_at FROM up JOIN chat_messages m ON m.id = up.parent_id \
     ) SELECT COUNT(*) FROM up WHERE deleted_at IS NOT NULL";

/// Whether the message `message_id` of `session_id` is deleted, or hidden under a deleted one.
pub async fn hidden(db: &Db, session_id: &str, message_id: &str) -> Result<bool, sqlx::Error> {
    let (n,): (i64,) = with_pool!(db, pool => {
        sqlx::query_as(ABOVE_DELETED)
            .bind(message_id)
            .bind(session_id)
            .fetch_one(pool)
            .await?
    });
    Ok(n > 0)
}

/// Whether message `$2` (numbered `$3`) is message `$1` or above it: 1 or 0. A parent is always
/// written before its children, so the walk up stops below `$3`.
const ABOVE_THIS: &str = "WITH RECURSIVE up(id, parent_id) AS ( \
       SELECT id, parent_id FROM chat_messages WHERE id = $1 \
       UNION ALL \
       SELECT m.id, m.parent_id FROM up JOIN chat_messages m ON m.id = up.parent_id WHERE m.seq >= $3 \
     ) SELECT COUNT(*) FROM up WHERE id = $2";

/// The session's head (in a transaction that holds the session row).
fn head_of<'q, DB: sqlx::Database>(
    session_id: &'q str,
) -> sqlx::query::QueryAs<'q, DB, (Option<String>,), <DB as sqlx::Database>::Arguments<'q>>
where
    &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    (Option<String>,): for<'r> sqlx::FromRow<'r, DB::Row>,
{
    sqlx::query_as("SELECT head_id FROM chat_sessions WHERE id = $1").bind(session_id)
}

/// How many replies are being written in the session.
fn streaming_in<'q, DB: sqlx::Database>(
    session_id: &'q str,
) -> sqlx::query::QueryAs<'q, DB, (i64,), <DB as sqlx::Database>::Arguments<'q>>
where
    &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    (i64,): for<'r> sqlx::FromRow<'r, DB::Row>,
{
    sqlx::query_as(
        "SELECT COUNT(*) FROM chat_messages WHERE session_id = $1 AND status = 'streaming'",
    )
    .bind(session_id)
}

/// Makes `head` the end of the branch the chat shows, and `last` (its text, unless empty) the
/// chat's preview.
fn set_head<'q, DB: sqlx::Database>(
    session_id: &'q str,
    head: Option<&'q str>,
    last: &str,
) -> sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments<'q>>
where
    &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    Option<&'q str>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    String: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    // An empty text (a reply about to be written) keeps the preview there is.
    sqlx::query(
        "UPDATE chat_sessions SET head_id = $1, \
         last_message_preview = CASE WHEN $2 = '' THEN last_message_preview ELSE $2 END WHERE id = $3",
    )
        .bind(head)
        .bind(preview(last))
        .bind(session_id)
}

/// A unique violation of `chat_messages_one_streaming`.
fn is_second_streaming_reply(e: &sqlx::Error) -> bool {
    let sqlx::Error::Database(e) = e else {
        return false;
    };
    // Postgres names the index; SQLite names the indexed column(s).
    e.is_unique_violation()
        && (e.constraint() == Some("chat_messages_one_streaming")
            || e.message().ends_with("chat_messages.session_id"))
}

pub(super) fn new_message(role: MessageRole, content: &str, status: MessageStatus) -> ChatMessage {
    ChatMessage {
        id: new_id(),
        role,
        html: super::markdown::render(content),
        content: content.to_string(),
        status,
        created_at: now_ms(),
        version: 1,
        versions: 1,
    }
}

/// Makes `last` the session's preview (unless it is empty) and moves the session to the top. In
/// a transaction it also locks the session row, so messages added to one session queue and each
/// gets the next `seq`.
fn lock_session<'q, DB: sqlx::Database>(
    session_id: &'q str,
    last: &str,
) -> sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments<'q>>
where
    &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    String: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    sqlx::query(
        "UPDATE chat_sessions SET \
         last_message_preview = CASE WHEN $1 = '' THEN last_message_preview ELSE $1 END, \
         updated_at = $2 WHERE id = $3",
    )
    .bind(preview(last))
    .bind(now_ms())
    .bind(session_id)
}

/// The one INSERT into `chat_messages`, to run inside a transaction that holds the session row
/// ([`lock_session`]): the message takes the session's next `seq`. A streaming reply starts its
/// heartbeat.
pub(super) fn insert_row<'q, DB: sqlx::Database>(
    session_id: &'q str,
    m: &'q ChatMessage,
    parent: Option<&'q str>,
) -> sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments<'q>>
where
    &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    Option<&'q str>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    Option<i64>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    sqlx::query(
        "INSERT INTO chat_messages (id, session_id, seq, role, content, status, heartbeat_at, created_at, updated_at, parent_id) \
         SELECT $1, $2, COALESCE(MAX(seq), 0) + 1, $3, $4, $5, $6, $7, $7, $8 \
         FROM chat_messages WHERE session_id = $2",
    )
    .bind(m.id.as_str())
    .bind(session_id)
    .bind(m.role.as_str())
    .bind(m.content.as_str())
    .bind(m.status.as_str())
    .bind((m.status == MessageStatus::Streaming).then_some(m.created_at))
    .bind(m.created_at)
    .bind(parent)
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
             LEFT JOIN characters c ON c.id = s.character_id \
             WHERE m.id = $1 AND s.owner_id = $2 AND m.role = $3 AND s.deleted_at IS NULL \
             AND (s.twin_id IS NOT NULL OR (c.id IS NOT NULL AND c.deleted_at IS NULL))",
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

/// The status and text (as last saved) of the reply `reply_id`, if it is an assistant message in
/// one of `owner`'s sessions. For a client that follows a reply being written elsewhere.
pub async fn reply_state(
    db: &Db,
    owner: &UserId,
    reply_id: &str,
) -> Result<Option<(MessageStatus, String)>, sqlx::Error> {
    let found: Option<(String, String)> = with_pool!(db, pool => {
        sqlx::query_as(
            "SELECT m.status, m.content FROM chat_messages m JOIN chat_sessions s ON s.id = m.session_id \
             LEFT JOIN characters c ON c.id = s.character_id \
             WHERE m.id = $1 AND s.owner_id = $2 AND m.role = $3 AND s.deleted_at IS NULL \
             AND (s.twin_id IS NOT NULL OR (c.id IS NOT NULL AND c.deleted_at IS NULL))",
        )
        .bind(reply_id)
        .bind(&owner.0)
        .bind(MessageRole::Assistant.as_str())
        .fetch_optional(pool)
        .await?
    });
    found
        .map(|(status, content)| Ok((parse_status(reply_id, &status)?, content)))
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

/// Saves the text of a reply still being written and beats its heartbeat; `false` if it is no
/// longer streaming (stopped through another server, or given up as interrupted).
///
/// With `reclaim` (the generating server could not reach the database for a while, so its
/// heartbeat lapsed) a reply given up as `interrupted` meanwhile is taken back to `streaming`:
/// its server is alive after all. A Stop is never undone, and if another reply is streaming in
/// the chat by then (the user retried), the chat's one-reply index refuses it and this one ends.
pub async fn flush_partial(
    db: &Db,
    id: &str,
    content: &str,
    reclaim: bool,
) -> Result<bool, sqlx::Error> {
    let now = now_ms();
    let res = with_pool!(db, pool => {
        sqlx::query(
            "UPDATE chat_messages SET content = $1, heartbeat_at = $2, updated_at = $2, status = $4 \
             WHERE id = $3 AND (status = $4 OR ($5 AND status = $6))",
        )
        .bind(content)
        .bind(now)
        .bind(id)
        .bind(MessageStatus::Streaming.as_str())
        .bind(reclaim)
        .bind(MessageStatus::Interrupted.as_str())
        .execute(pool)
        .await
        .map(|r| r.rows_affected())
    });
    match res {
        Ok(n) => Ok(n == 1),
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Ok(false),
        Err(e) => Err(e),
    }
}

/// Saves a reply's final text, with the tokens it cost and who wrote it, and sets its final
/// status to `status` only if it is still `streaming`: a status already set (a Stop that reached
/// another server, an interruption) stays — except that with `reclaim` (see [`flush_partial`])
/// an `interrupted` set while this server could not reach the database is replaced. The text is
/// always saved. Returns the status the reply ends with (`None` if there is no such reply).
pub async fn finish_message(
    db: &Db,
    id: &str,
    content: &str,
    status: MessageStatus,
    usage: Usage,
    provider: &str,
    reclaim: bool,
) -> Result<Option<MessageStatus>, sqlx::Error> {
    let ended: Option<(String,)> = with_pool!(db, pool => {
        sqlx::query_as(
            "UPDATE chat_messages SET content = $1, \
             status = CASE WHEN status = $2 OR ($9 AND status = $10) THEN $3 ELSE status END, \
             heartbeat_at = NULL, updated_at = $4, input_tokens = $5, output_tokens = $6, provider = $7 \
             WHERE id = $8 RETURNING status",
        )
        .bind(content)
        .bind(MessageStatus::Streaming.as_str())
        .bind(status.as_str())
        .bind(now_ms())
        .bind(usage.input_tokens as i32)
        .bind(usage.output_tokens as i32)
        .bind(provider)
        .bind(id)
        .bind(reclaim)
        .bind(MessageStatus::Interrupted.as_str())
        .fetch_optional(pool)
        .await?
    });
    ended.map(|(s,)| parse_status(id, &s)).transpose()
}

/// Marks `interrupted` every reply still `streaming` whose heartbeat is older than
/// `older_than_ms` (epoch ms): its server is gone. Only in `session_id` if given. Returns how many.
pub async fn interrupt_stale(
    db: &Db,
    session_id: Option<&str>,
    older_than_ms: i64,
) -> Result<u64, sqlx::Error> {
    // In one session (a chat being opened), first a read: usually there is nothing to give up,
    // and an UPDATE would take SQLite's write lock on every page load.
    if let Some(session_id) = session_id {
        let (stale,): (i64,) = with_pool!(db, pool => {
            sqlx::query_as(
                "SELECT COUNT(*) FROM chat_messages WHERE session_id = $1 AND status = $2 \
                 AND COALESCE(heartbeat_at, updated_at) < $3",
            )
            .bind(session_id)
            .bind(MessageStatus::Streaming.as_str())
            .bind(older_than_ms)
            .fetch_one(pool)
            .await?
        });
        if stale == 0 {
            return Ok(0);
        }
    }
    // Two texts, so the one for a session can use the session's index.
    let sql = match session_id {
        Some(_) => {
            "UPDATE chat_messages SET status = $1, heartbeat_at = NULL, updated_at = $2 \
             WHERE session_id = $5 AND status = $3 AND COALESCE(heartbeat_at, updated_at) < $4"
        }
        None => {
            "UPDATE chat_messages SET status = $1, heartbeat_at = NULL, updated_at = $2 \
             WHERE status = $3 AND COALESCE(heartbeat_at, updated_at) < $4"
        }
    };
    let affected = with_pool!(db, pool => {
        let query = sqlx::query(sql)
            .bind(MessageStatus::Interrupted.as_str())
            .bind(now_ms())
            .bind(MessageStatus::Streaming.as_str())
            .bind(older_than_ms);
        match session_id {
            Some(session_id) => query.bind(session_id),
            None => query,
        }
        .execute(pool)
        .await?
        .rows_affected()
    });
    Ok(affected)
}

/// Makes `last` the session's preview and moves the session to the top; nothing if it is empty.
pub async fn touch_session(db: &Db, session_id: &str, last: &str) -> Result<(), sqlx::Error> {
    if last.is_empty() {
        return Ok(());
    }
    let now = now_ms();
    with_pool!(db, pool => {
        sqlx::query("UPDATE chat_sessions SET last_message_preview = $1, updated_at = $2 WHERE id = $3")
            .bind(preview(last))
            .bind(now)
            .bind(session_id)
            .execute(pool)
            .await?;
        // The dashboard's "recently chatted" order.
        sqlx::query(
            "UPDATE characters SET chatted_at = $1 \
             WHERE id = (SELECT character_id FROM chat_sessions WHERE id = $2)",
        )
        .bind(now)
        .bind(session_id)
        .execute(pool)
        .await?;
    });
    Ok(())
}

pub(super) fn preview(text: &str) -> String {
    let t: String = text.chars().take(120).collect();
    if text.chars().count() > 120 {
        format!("{t}…")
    } else {
        t
    }
}
