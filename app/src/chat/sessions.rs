//! A user's chats as a list: making one, listing, renaming, the trash, and branching one chat
//! from another — every query on `chat_sessions` as rows of that list. What a chat holds (its
//! messages, its head) is in [`super::store`].
//!
//! Several chats may be had with one character (or one's twin). A chat is made only by something
//! the user does, never by opening a page: the page of a new chat shows the greeting and the id
//! the chat will have, and the first action in it makes the chat with that id ([`make`], which is
//! idempotent, so a doubled first message lands in one chat). `chat/open` (the API's "open the
//! chat with") makes one only when there is none, under the row lock of the character (or twin),
//! so two tabs or servers opening it at once get the one chat.

use super::store::{insert_row, new_message, preview, Refusal};
use super::{ChatMessage, ChatSummary, MessageRole, MessageStatus};
use crate::auth::UserId;
use crate::infra::{db::Db, new_id, now_ms};
use crate::with_pool;

/// In the transaction `tx`, locks `party`'s row (a no-op UPDATE that also finds it still
/// `owner`'s) and counts `owner`'s chats with it outside the trash: `None` if the row is gone.
/// Every chat made or restored goes through it, so the count holds against every other server.
macro_rules! lock_and_count {
    ($tx:expr, $party:expr, $owner:expr) => {{
        let party: &Party = $party;
        let locked = sqlx::query(party.lock())
            .bind(&party.key)
            .bind(&$owner.0)
            .execute(&mut *$tx)
            .await?
            .rows_affected();
        if locked == 0 {
            None
        } else {
            let (count,): (i64,) = sqlx::query_as(&party.count_sql())
                .bind(&$owner.0)
                .bind(&party.key)
                .fetch_one(&mut *$tx)
                .await?;
            Some(count)
        }
    }};
}

/// Who a chat is with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum With<'a> {
    /// A character of the user's (outside the trash).
    Character(&'a str),
    /// The user's own twin.
    Twin,
}

/// The most chats (outside the trash) one may have with one character, or with one's twin.
pub const MAX_CHATS: i64 = 500;

/// How many of a card's alternate greetings a chat offers as versions of its first message.
const MAX_ALTERNATE_GREETINGS: usize = 20;

/// What the twin says first in a new chat.
const TWIN_GREETING: &str =
    "Hello — it's me, or the part of you that lives in your Shades. Ask me anything about us.";

/// Who a chat is with, as a new chat with them starts.
pub struct Counterpart {
    /// The column of `chat_sessions` that names them, and its value.
    column: &'static str,
    pub key: String,
    pub name: String,
    pub avatar: String,
    /// The first message and its other versions (a card's alternate greetings), as a new chat
    /// shows them before it is made (their ids are made anew when it is).
    pub greetings: Vec<ChatMessage>,
}

impl Counterpart {
    pub fn is_twin(&self) -> bool {
        self.column == "twin_id"
    }
}

/// `with` as a new chat of `owner`'s starts; `None` when it is not theirs (a character in the
/// trash, someone else's, or no twin yet).
pub async fn counterpart(
    db: &Db,
    owner: &UserId,
    with: With<'_>,
) -> Result<Option<Counterpart>, sqlx::Error> {
    let (column, key, name, avatar, first, alternates) = match with {
        With::Character(id) => {
            let Some(c) = crate::characters::store::find(db, owner, id).await? else {
                return Ok(None);
            };
            let alternates = alternate_greetings(db, id).await?;
            (
                "character_id",
                id.to_string(),
                c.draft.name,
                c.draft.avatar,
                c.draft.opening_line,
                alternates,
            )
        }
        With::Twin => {
            let Some(t) = crate::twins::store::find(db, owner).await? else {
                return Ok(None);
            };
            (
                "twin_id",
                t.id,
                t.name,
                String::new(),
                TWIN_GREETING.to_string(),
                Vec::new(),
            )
        }
    };
    let mut greetings = vec![new_message(
        MessageRole::Assistant,
        &first,
        MessageStatus::Complete,
    )];
    greetings.extend(alternates);
    let versions = greetings.len() as u32;
    if let Some(g) = greetings.first_mut() {
        g.versions = versions;
    }
    Ok(Some(Counterpart {
        column,
        key,
        name,
        avatar,
        greetings,
    }))
}

/// The alternate greetings of `character_id` (from its card) as messages: the first message's
/// other versions, in the card's order. Blanks are skipped, and so is one longer than a reply may
/// be; at most [`MAX_ALTERNATE_GREETINGS`].
async fn alternate_greetings(db: &Db, character_id: &str) -> Result<Vec<ChatMessage>, sqlx::Error> {
    let found: Option<(sqlx::types::Json<Vec<serde_json::Value>>,)> = with_pool!(db, pool => {
        sqlx::query_as("SELECT alternate_greetings FROM characters WHERE id = $1")
            .bind(character_id)
            .fetch_optional(pool)
            .await?
    });
    let listed = found.map(|(g,)| g.0).unwrap_or_default();
    Ok(listed
        .iter()
        .filter_map(|g| g.as_str())
        .filter_map(|g| crate::domain::ReplyText::parse(g).ok())
        .take(MAX_ALTERNATE_GREETINGS)
        .map(|g| new_message(MessageRole::Assistant, g.as_str(), MessageStatus::Complete))
        .collect())
}

/// The id of `owner`'s most recently active chat with `party` (outside the trash), if any.
pub async fn latest(
    db: &Db,
    owner: &UserId,
    party: &Counterpart,
) -> Result<Option<String>, sqlx::Error> {
    let sql = format!(
        "SELECT id FROM chat_sessions WHERE owner_id = $1 AND {} = $2 AND deleted_at IS NULL \
         ORDER BY updated_at DESC, id DESC LIMIT 1",
        party.column
    );
    let found: Option<(String,)> = with_pool!(db, pool => {
        sqlx::query_as(&sql)
            .bind(&owner.0)
            .bind(&party.key)
            .fetch_optional(pool)
            .await?
    });
    Ok(found.map(|(id,)| id))
}

/// Whose a chat is, and with whom: (owner, character, twin, deleted at).
type ChatOwner = (String, Option<String>, Option<String>, Option<i64>);

/// What [`make`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum Made {
    /// The chat (made now, or already there).
    Chat(String),
    /// The counterpart is no longer `owner`'s, or the id is some other chat's.
    NotFound,
    /// `owner` already has [`MAX_CHATS`] chats with them.
    Full,
}

/// Makes `owner`'s chat `id` with `party`, its greetings first; or, if `reuse` and they have a
/// chat with `party`, gives that one. Idempotent: a chat `id` already made by `owner` with `party`
/// is given back as it is. In one transaction that first locks the counterpart's row, so the
/// checks (none there yet, fewer than [`MAX_CHATS`]) hold against every other server.
pub async fn make(
    db: &Db,
    owner: &UserId,
    party: &Counterpart,
    id: &str,
    reuse: bool,
) -> Result<Made, sqlx::Error> {
    let locking = Party::from(party);
    let (first, alternates) = party
        .greetings
        .split_first()
        .expect("a counterpart has a greeting");
    // Made anew: the ids a new chat's page showed are never stored.
    let first = new_message(first.role, &first.content, first.status);
    let alternates: Vec<ChatMessage> = alternates
        .iter()
        .map(|g| new_message(g.role, &g.content, g.status))
        .collect();
    let latest_sql = format!(
        "SELECT id FROM chat_sessions WHERE owner_id = $1 AND {} = $2 AND deleted_at IS NULL \
         ORDER BY updated_at DESC, id DESC LIMIT 1",
        party.column
    );
    let insert_sql = locking.insert_sql();
    let made: Made = with_pool!(db, pool => {
        let mut tx = pool.begin().await?;
        let Some(count) = lock_and_count!(tx, &locking, owner) else {
            return Ok(Made::NotFound);
        };
        let there: Option<ChatOwner> = sqlx::query_as(
            "SELECT owner_id, character_id, twin_id, deleted_at FROM chat_sessions WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some((their_owner, character, twin, deleted)) = there {
            let same = their_owner == owner.0
                && deleted.is_none()
                && if party.is_twin() { twin } else { character }.as_deref()
                    == Some(party.key.as_str());
            return Ok(if same { Made::Chat(id.to_string()) } else { Made::NotFound });
        }
        if reuse {
            let found: Option<(String,)> = sqlx::query_as(&latest_sql)
                .bind(&owner.0)
                .bind(&party.key)
                .fetch_optional(&mut *tx)
                .await?;
            if let Some((found,)) = found {
                tx.commit().await?;
                return Ok(Made::Chat(found));
            }
        }
        if count >= MAX_CHATS {
            return Ok(Made::Full);
        }
        let inserted = sqlx::query(&insert_sql)
            .bind(id)
            .bind(&owner.0)
            .bind(&party.key)
            .bind(title_for(party, count))
            .bind(preview(&first.content))
            .bind(&first.id)
            .bind(now_ms())
            .execute(&mut *tx)
            .await;
        match inserted {
            Ok(_) => {}
            // The id was taken meanwhile by a chat with someone (or something) else, whose
            // counterpart's lock this transaction does not hold.
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => return Ok(Made::NotFound),
            Err(e) => return Err(e),
        }
        insert_row(id, &first, None).execute(&mut *tx).await?;
        // A card's alternate greetings are the first message's other versions.
        for alternate in &alternates {
            insert_row(id, alternate, None).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Made::Chat(id.to_string())
    });
    Ok(made)
}

/// `owner`'s most recently active chat with `with`, made if there is none ([`make`] with
/// `reuse`).
pub async fn open(db: &Db, owner: &UserId, with: With<'_>) -> Result<Made, sqlx::Error> {
    let Some(party) = counterpart(db, owner, with).await? else {
        return Ok(Made::NotFound);
    };
    make(db, owner, &party, &new_id(), true).await
}

/// A new chat's title: "Chat with Mira", then "Chat 2 with Mira" when there is one already.
fn title_for(party: &Counterpart, existing: i64) -> String {
    let with = if party.is_twin() {
        "your twin".to_string()
    } else {
        party.name.clone()
    };
    let title = if existing == 0 {
        format!("Chat with {with}")
    } else {
        format!("Chat {} with {with}", existing + 1)
    };
    shorten(&title, crate::domain::ChatTitle::MAX)
}

/// `text` cut to at most `max` characters (an ellipsis ending what was cut).
fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

#[derive(sqlx::FromRow)]
struct SummaryRow {
    id: String,
    character_id: Option<String>,
    with_name: String,
    title: String,
    last_message_preview: String,
    updated_at: i64,
}

impl From<SummaryRow> for ChatSummary {
    fn from(r: SummaryRow) -> Self {
        ChatSummary {
            session_id: r.id,
            character_id: r.character_id,
            with: r.with_name,
            title: r.title,
            last_message_preview: r.last_message_preview,
            updated_at: r.updated_at,
        }
    }
}

/// What every list of chats selects (`s` is `chat_sessions`, `c` its character, `u` its owner).
const SUMMARY_COLUMNS: &str =
    "s.id, s.character_id, COALESCE(c.name, NULLIF(t.display_name, ''), u.display_name) AS with_name, \
     s.title, s.last_message_preview, s.updated_at";

/// A page of `owner`'s chats outside the trash (with characters outside the trash, and with
/// their twin), all or only those with `with`, most recently active first by keyset on
/// `(updated_at, id)`: up to `limit` after the chat `after`, and whether more remain. `None`
/// when `after` is not one of `owner`'s chats.
pub async fn list(
    db: &Db,
    owner: &UserId,
    with: Option<With<'_>>,
    after: Option<&str>,
    limit: i64,
) -> Result<Option<(Vec<ChatSummary>, bool)>, sqlx::Error> {
    let (updated_at, id) = match after {
        None => (i64::MAX, String::new()),
        Some(id) => {
            let found: Option<(i64,)> = with_pool!(db, pool => {
                sqlx::query_as("SELECT updated_at FROM chat_sessions WHERE id = $1 AND owner_id = $2")
                    .bind(id)
                    .bind(&owner.0)
                    .fetch_optional(pool)
                    .await?
            });
            let Some((updated_at,)) = found else {
                return Ok(None);
            };
            (updated_at, id.to_string())
        }
    };
    // $5 names the character for a list of one character's chats.
    let only = match with {
        None => "",
        Some(With::Character(_)) => "AND s.character_id = $5",
        Some(With::Twin) => "AND s.twin_id IS NOT NULL",
    };
    let sql = format!(
        "SELECT {SUMMARY_COLUMNS} \
         FROM chat_sessions s LEFT JOIN characters c ON c.id = s.character_id \
         LEFT JOIN twins t ON t.id = s.twin_id \
         LEFT JOIN users u ON u.id = s.owner_id \
         WHERE s.owner_id = $1 AND s.deleted_at IS NULL {only} \
         AND (t.id IS NOT NULL OR (c.id IS NOT NULL AND c.deleted_at IS NULL)) \
         AND (s.updated_at < $2 OR (s.updated_at = $2 AND s.id < $3)) \
         ORDER BY s.updated_at DESC, s.id DESC LIMIT $4"
    );
    let mut rows: Vec<SummaryRow> = with_pool!(db, pool => {
        let query = sqlx::query_as(&sql)
            .bind(&owner.0)
            .bind(updated_at)
            .bind(&id)
            .bind(limit + 1);
        match with {
            Some(With::Character(character)) => query.bind(character.to_string()),
            _ => query,
        }
        .fetch_all(pool)
        .await?
    });
    let more = rows.len() as i64 > limit;
    rows.truncate(limit.max(0) as usize);
    Ok(Some((
        rows.into_iter().map(ChatSummary::from).collect(),
        more,
    )))
}

/// Gives `owner`'s chat `id` (outside the trash) the title `title`. False if there is no such
/// chat of theirs.
pub async fn rename(db: &Db, owner: &UserId, id: &str, title: &str) -> Result<bool, sqlx::Error> {
    with_pool!(db, pool => {
        sqlx::query(
            "UPDATE chat_sessions SET title = $1 WHERE id = $2 AND owner_id = $3 AND deleted_at IS NULL",
        )
        .bind(title)
        .bind(id)
        .bind(&owner.0)
        .execute(pool)
        .await
        .map(|r| r.rows_affected() == 1)
    })
}

/// Moves `owner`'s chat `id` to the trash, a reply being written in it stopped (its server
/// notices at its next flush). False if there is no such chat of theirs outside the trash.
pub async fn trash(db: &Db, owner: &UserId, id: &str) -> Result<bool, sqlx::Error> {
    with_pool!(db, pool => {
        let mut tx = pool.begin().await?;
        let trashed = sqlx::query(
            "UPDATE chat_sessions SET deleted_at = $1 WHERE id = $2 AND owner_id = $3 AND deleted_at IS NULL",
        )
        .bind(now_ms())
        .bind(id)
        .bind(&owner.0)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if trashed {
            sqlx::query(
                "UPDATE chat_messages SET status = $1 WHERE session_id = $2 AND status = 'streaming'",
            )
            .bind(MessageStatus::Stopped.as_str())
            .bind(id)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
        }
        Ok(trashed)
    })
}

/// Takes `owner`'s chat `id` out of the trash, if it went in after `cutoff`: under its
/// counterpart's row lock, and only while they have fewer than [`MAX_CHATS`] chats outside it.
pub async fn restore(
    db: &Db,
    owner: &UserId,
    id: &str,
    cutoff: i64,
) -> Result<Result<(), Refusal>, sqlx::Error> {
    let found: Option<(Option<String>, Option<String>)> = with_pool!(db, pool => {
        sqlx::query_as(
            "SELECT character_id, twin_id FROM chat_sessions \
             WHERE id = $1 AND owner_id = $2 AND deleted_at IS NOT NULL AND deleted_at >= $3",
        )
        .bind(id)
        .bind(&owner.0)
        .bind(cutoff)
        .fetch_optional(pool)
        .await?
    });
    let party = match found {
        Some((Some(key), _)) => Party {
            column: "character_id",
            key,
        },
        Some((None, Some(key))) => Party {
            column: "twin_id",
            key,
        },
        _ => return Ok(Err(Refusal::NotFound)),
    };
    with_pool!(db, pool => {
        let mut tx = pool.begin().await?;
        let Some(count) = lock_and_count!(tx, &party, owner) else {
            return Ok(Err(Refusal::NotFound));
        };
        if count >= MAX_CHATS {
            return Ok(Err(Refusal::Full));
        }
        let restored = sqlx::query(
            "UPDATE chat_sessions SET deleted_at = NULL \
             WHERE id = $1 AND owner_id = $2 AND deleted_at IS NOT NULL AND deleted_at >= $3",
        )
        .bind(id)
        .bind(&owner.0)
        .bind(cutoff)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if restored == 0 {
            return Ok(Err(Refusal::NotFound));
        }
        tx.commit().await?;
    });
    Ok(Ok(()))
}

/// `owner`'s chats in the trash since `cutoff` (whose counterpart is not itself in it), the most
/// recently deleted first, at most `limit`.
pub async fn trashed(
    db: &Db,
    owner: &UserId,
    cutoff: i64,
    limit: i64,
) -> Result<Vec<ChatSummary>, sqlx::Error> {
    let sql = format!(
        "SELECT {SUMMARY_COLUMNS} \
         FROM chat_sessions s LEFT JOIN characters c ON c.id = s.character_id \
         LEFT JOIN twins t ON t.id = s.twin_id \
         LEFT JOIN users u ON u.id = s.owner_id \
         WHERE s.owner_id = $1 AND s.deleted_at IS NOT NULL AND s.deleted_at >= $2 \
         AND (t.id IS NOT NULL OR (c.id IS NOT NULL AND c.deleted_at IS NULL)) \
         ORDER BY s.deleted_at DESC, s.id DESC LIMIT $3"
    );
    let rows: Vec<SummaryRow> = with_pool!(db, pool => {
        sqlx::query_as(&sql)
            .bind(&owner.0)
            .bind(cutoff)
            .bind(limit)
            .fetch_all(pool)
            .await?
    });
    Ok(rows.into_iter().map(ChatSummary::from).collect())
}

/// Removes for good every chat (with its messages: they cascade) deleted before `cutoff`.
pub async fn purge_trash(db: &Db, cutoff: i64) -> Result<u64, sqlx::Error> {
    with_pool!(db, pool => {
        sqlx::query("DELETE FROM chat_sessions WHERE deleted_at IS NOT NULL AND deleted_at < $1")
            .bind(cutoff)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
    })
}

#[derive(sqlx::FromRow)]
struct PathRow {
    role: String,
    content: String,
    status: String,
    created_at: i64,
    provider: Option<String>,
    input_tokens: Option<i32>,
    output_tokens: Option<i32>,
    deleted_at: Option<i64>,
}

/// A message to write into a chat being made ([`made_with`]), in the order written.
pub struct NewRow {
    pub id: String,
    /// The message it follows (one written before it); none for the chat's first message(s).
    pub parent: Option<String>,
    pub role: MessageRole,
    pub content: String,
    pub status: MessageStatus,
    pub created_at: i64,
    pub provider: Option<String>,
    pub input_tokens: Option<i32>,
    pub output_tokens: Option<i32>,
}

/// How many messages one INSERT of a chat being made writes.
const BATCH: usize = 200;

/// Who a chat being made is with: the `chat_sessions` column and its value.
pub struct Party {
    pub column: &'static str,
    pub key: String,
}

impl Party {
    /// The no-op UPDATE that locks the counterpart's row (and finds it still `owner`'s).
    fn lock(&self) -> &'static str {
        if self.column == "twin_id" {
            "UPDATE twins SET updated_at = updated_at WHERE id = $1 AND owner_id = $2"
        } else {
            "UPDATE characters SET chatted_at = chatted_at WHERE id = $1 AND owner_id = $2 AND deleted_at IS NULL"
        }
    }

    /// Counts `$1`'s chats with `$2` outside the trash.
    fn count_sql(&self) -> String {
        format!(
            "SELECT COUNT(*) FROM chat_sessions WHERE owner_id = $1 AND {} = $2 AND deleted_at IS NULL",
            self.column
        )
    }

    /// Inserts a chat: id, owner, key, title, preview, head, time.
    fn insert_sql(&self) -> String {
        format!(
            "INSERT INTO chat_sessions (id, owner_id, {}, title, last_message_preview, head_id, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $7)",
            self.column
        )
    }
}

impl From<&Counterpart> for Party {
    fn from(c: &Counterpart) -> Self {
        Party {
            column: c.column,
            key: c.key.clone(),
        }
    }
}

/// Makes a chat of `owner`'s with `party`, titled `title`, holding `rows` (numbered in their
/// order), the branch shown ending at the row `head`, under the counterpart's row lock and within
/// [`MAX_CHATS`]. Returns its id.
pub async fn made_with(
    db: &Db,
    owner: &UserId,
    party: &Party,
    title: &str,
    rows: &[NewRow],
    head: &str,
) -> Result<Result<String, Refusal>, sqlx::Error> {
    if rows.is_empty() {
        return Ok(Err(Refusal::NotFound));
    }
    let new = new_id();
    let now = now_ms();
    let insert_sql = party.insert_sql();
    // The preview: the last message shown with any text.
    let by_id: std::collections::HashMap<&str, &NewRow> =
        rows.iter().map(|r| (r.id.as_str(), r)).collect();
    let mut last_text = String::new();
    let mut at = by_id.get(head).copied();
    while let Some(m) = at {
        if !m.content.is_empty() {
            last_text = preview(&m.content);
            break;
        }
        at = m.parent.as_deref().and_then(|p| by_id.get(p).copied());
    }
    let made: Result<String, Refusal> = with_pool!(db, pool => {
        let mut tx = pool.begin().await?;
        let Some(count) = lock_and_count!(tx, party, owner) else {
            return Ok(Err(Refusal::NotFound));
        };
        if count >= MAX_CHATS {
            return Ok(Err(Refusal::Full));
        }
        sqlx::query(&insert_sql)
            .bind(&new)
            .bind(&owner.0)
            .bind(&party.key)
            .bind(title)
            .bind(&last_text)
            .bind(head)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        for (chunk_no, chunk) in rows.chunks(BATCH).enumerate() {
            let start = chunk_no * BATCH;
            let mut insert = sqlx::QueryBuilder::new(
                "INSERT INTO chat_messages (id, session_id, seq, parent_id, role, content, status, \
                 provider, input_tokens, output_tokens, created_at, updated_at) ",
            );
            insert.push_values(chunk.iter().enumerate(), |mut row, (i, m)| {
                row.push_bind(m.id.clone())
                    .push_bind(new.clone())
                    .push_bind((start + i) as i64 + 1)
                    .push_bind(m.parent.clone())
                    .push_bind(m.role.as_str())
                    .push_bind(m.content.clone())
                    .push_bind(m.status.as_str())
                    .push_bind(m.provider.clone())
                    .push_bind(m.input_tokens)
                    .push_bind(m.output_tokens)
                    .push_bind(m.created_at)
                    .push_bind(now);
            });
            insert.build().execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(new.clone())
    });
    Ok(made)
}

/// A new chat of `owner`'s with the same counterpart as their chat `session_id`, holding the
/// conversation up to and including the message `message_id` (that branch only, without the
/// other versions), copied; the original is unchanged. Returns the new chat's id.
pub async fn branch(
    db: &Db,
    owner: &UserId,
    session_id: &str,
    message_id: &str,
) -> Result<Result<String, Refusal>, sqlx::Error> {
    let found: Option<(String, Option<String>, Option<String>)> = with_pool!(db, pool => {
        sqlx::query_as(
            "SELECT title, character_id, twin_id FROM chat_sessions \
             WHERE id = $1 AND owner_id = $2 AND deleted_at IS NULL",
        )
        .bind(session_id)
        .bind(&owner.0)
        .fetch_optional(pool)
        .await?
    });
    let Some((title, character, twin)) = found else {
        return Ok(Err(Refusal::NotFound));
    };
    let party = match (character, twin) {
        (Some(key), _) => Party {
            column: "character_id",
            key,
        },
        (None, Some(key)) => Party {
            column: "twin_id",
            key,
        },
        (None, None) => return Ok(Err(Refusal::NotFound)),
    };
    // The whole path from the chat's first message, one row per message by its primary key.
    let path_sql = "WITH RECURSIVE path(id, n) AS ( \
           SELECT id, CAST(0 AS BIGINT) FROM chat_messages WHERE id = $1 AND session_id = $2 \
           UNION ALL \
           SELECT m.parent_id, p.n + 1 FROM path p JOIN chat_messages m ON m.id = p.id \
           WHERE m.parent_id IS NOT NULL \
         ) \
         SELECT m.role, m.content, m.status, m.created_at, m.provider, m.input_tokens, m.output_tokens, m.deleted_at \
         FROM path p JOIN chat_messages m ON m.id = p.id ORDER BY p.n DESC";
    let path: Vec<PathRow> = with_pool!(db, pool => {
        sqlx::query_as(path_sql)
            .bind(message_id)
            .bind(session_id)
            .fetch_all(pool)
            .await?
    });
    let Some(last) = path.last() else {
        return Ok(Err(Refusal::NotFound));
    };
    if path.iter().any(|m| m.deleted_at.is_some()) {
        return Ok(Err(Refusal::NotFound));
    }
    if last.status == MessageStatus::Streaming.as_str() {
        return Ok(Err(Refusal::Refused(
            "This reply is still being written. Wait for it or stop it, then branch from it.",
        )));
    }
    let mut rows: Vec<NewRow> = Vec::with_capacity(path.len());
    for m in path {
        let parent = rows.last().map(|p| p.id.clone());
        rows.push(NewRow {
            id: new_id(),
            parent,
            role: MessageRole::parse(&m.role).unwrap_or(MessageRole::Assistant),
            content: m.content,
            status: MessageStatus::parse(&m.status).unwrap_or(MessageStatus::Complete),
            created_at: m.created_at,
            provider: m.provider,
            input_tokens: m.input_tokens,
            output_tokens: m.output_tokens,
        });
    }
    let title = shorten(&format!("Branch of {title}"), crate::domain::ChatTitle::MAX);
    let head = rows.last().map(|r| r.id.clone()).unwrap_or_default();
    made_with(db, owner, &party, &title, &rows, &head).await
}

#[derive(sqlx::FromRow)]
struct ExportRow {
    id: String,
    parent_id: Option<String>,
    role: String,
    content: String,
    status: String,
    created_at: i64,
}

/// `owner`'s chat `session_id` (outside the trash) as a file holds it: the branch shown, each
/// place with its versions (those not deleted, in the order written). `None` if there is no such
/// chat of theirs.
pub async fn transcript(
    db: &Db,
    owner: &UserId,
    session_id: &str,
) -> Result<Option<super::transfer::Transcript>, sqlx::Error> {
    use super::transfer::{Place, Transcript, Version};
    let Some(session) = super::store::find_session(db, owner, session_id).await? else {
        return Ok(None);
    };
    let (head, created_at): (Option<String>, i64) = with_pool!(db, pool => {
        sqlx::query_as("SELECT head_id, created_at FROM chat_sessions WHERE id = $1")
            .bind(session_id)
            .fetch_one(pool)
            .await?
    });
    // The whole chat, once: a file holds all of it, and the tree is put together here.
    let rows: Vec<ExportRow> = with_pool!(db, pool => {
        sqlx::query_as(
            "SELECT id, parent_id, role, content, status, created_at FROM chat_messages \
             WHERE session_id = $1 AND deleted_at IS NULL ORDER BY seq",
        )
        .bind(session_id)
        .fetch_all(pool)
        .await?
    });
    let by_id: std::collections::HashMap<&str, &ExportRow> =
        rows.iter().map(|r| (r.id.as_str(), r)).collect();
    let mut siblings: std::collections::HashMap<Option<&str>, Vec<&ExportRow>> =
        std::collections::HashMap::new();
    for r in &rows {
        siblings.entry(r.parent_id.as_deref()).or_default().push(r);
    }
    let mut path = Vec::new();
    let mut at = head.as_deref().and_then(|h| by_id.get(h).copied());
    while let Some(m) = at {
        path.push(m);
        at = m.parent_id.as_deref().and_then(|p| by_id.get(p).copied());
    }
    path.reverse();
    let places = path
        .into_iter()
        .map(|m| {
            let versions = siblings
                .get(&m.parent_id.as_deref())
                .cloned()
                .unwrap_or_default();
            Place {
                role: MessageRole::parse(&m.role).unwrap_or(MessageRole::Assistant),
                shown: versions.iter().position(|v| v.id == m.id).unwrap_or(0),
                versions: versions
                    .into_iter()
                    .map(|v| Version {
                        content: v.content.clone(),
                        status: MessageStatus::parse(&v.status).unwrap_or(MessageStatus::Complete),
                        created_at: v.created_at,
                    })
                    .collect(),
            }
        })
        .collect();
    Ok(Some(Transcript {
        title: session.title,
        with: session.name,
        created_at,
        places,
    }))
}

/// A new chat of `owner`'s with `party` holding `places`: each place's versions follow the
/// version shown of the place before it. Returns its id.
pub async fn import(
    db: &Db,
    owner: &UserId,
    party: &Party,
    title: &str,
    places: &[super::transfer::Place],
) -> Result<Result<String, Refusal>, sqlx::Error> {
    let mut rows: Vec<NewRow> = Vec::new();
    let mut parent: Option<String> = None;
    for place in places {
        let mut shown = None;
        for (i, v) in place.versions.iter().enumerate() {
            let id = new_id();
            if i == place.shown {
                shown = Some(id.clone());
            }
            rows.push(NewRow {
                id,
                parent: parent.clone(),
                role: place.role,
                content: v.content.clone(),
                status: v.status,
                created_at: v.created_at,
                provider: None,
                input_tokens: None,
                output_tokens: None,
            });
        }
        parent = shown.or(parent);
    }
    let head = parent.unwrap_or_default();
    made_with(db, owner, party, title, &rows, &head).await
}

#[derive(sqlx::FromRow)]
struct HitRow {
    id: String,
    session_id: String,
    role: String,
    content: String,
    created_at: i64,
    title: String,
    with_name: String,
}

/// The messages of `owner`'s chats (outside the trash, with a counterpart outside it; not
/// deleted) holding every one of `terms` (letters and digits, lower-cased: see
/// [`crate::domain::search_terms`]) as a word or a word's start, newest first, at most `limit`.
pub async fn search(
    db: &Db,
    owner: &UserId,
    terms: &[String],
    limit: i64,
) -> Result<Vec<super::ChatHit>, sqlx::Error> {
    if terms.is_empty() {
        return Ok(Vec::new());
    }
    // Binds: $1 the full-text query, $2 the owner, $3 how many are read: more than are given,
    // for those hidden under a deleted message to be left out.
    let fetched = limit * 3;
    let tail = "JOIN chat_sessions s ON s.id = m.session_id \
         LEFT JOIN characters c ON c.id = s.character_id LEFT JOIN twins t ON t.id = s.twin_id \
         LEFT JOIN users u ON u.id = s.owner_id \
         WHERE s.owner_id = $2 AND s.deleted_at IS NULL AND m.deleted_at IS NULL \
         AND (t.id IS NOT NULL OR (c.id IS NOT NULL AND c.deleted_at IS NULL))";
    let columns = "m.id, m.session_id, m.role, m.content, m.created_at, s.title, \
         COALESCE(c.name, NULLIF(t.display_name, ''), u.display_name) AS with_name";
    let rows: Vec<HitRow> = match db {
        Db::Sqlite(pool) => {
            // With the owner's token, so only the owner's entries are read; each word a prefix.
            let words: Vec<String> = terms
                .iter()
                .map(|t| format!("content : \"{t}\"*"))
                .collect();
            let query = format!(
                "owner : \"{}\" AND {}",
                crate::infra::db::owner_token(&owner.0),
                words.join(" AND ")
            );
            sqlx::query_as(&format!(
                "SELECT {columns} FROM chat_messages_fts f JOIN chat_messages m ON m.rowid = f.rowid {tail} \
                 AND chat_messages_fts MATCH $1 ORDER BY m.created_at DESC, m.id DESC LIMIT $3"
            ))
            .bind(query)
            .bind(&owner.0)
            .bind(fetched)
            .fetch_all(pool)
            .await?
        }
        Db::Postgres(pool) => {
            let words: Vec<String> = terms.iter().map(|t| format!("{t}:*")).collect();
            sqlx::query_as(&format!(
                "SELECT {columns} FROM chat_messages m {tail} \
                 AND m.search @@ to_tsquery('simple', $1) ORDER BY m.created_at DESC, m.id DESC LIMIT $3"
            ))
            .bind(words.join(" & "))
            .bind(&owner.0)
            .bind(fetched)
            .fetch_all(pool)
            .await?
        }
    };
    // A message hidden under a deleted one is no more there than a deleted one.
    let mut shown = Vec::with_capacity(rows.len());
    for r in rows {
        if shown.len() as i64 == limit {
            break;
        }
        if !super::store::hidden(db, &r.session_id, &r.id).await? {
            shown.push(r);
        }
    }
    Ok(shown
        .into_iter()
        .map(|r| super::ChatHit {
            excerpt: excerpt(&r.content, terms),
            session_id: r.session_id,
            message_id: r.id,
            title: r.title,
            with: r.with_name,
            role: MessageRole::parse(&r.role).unwrap_or(MessageRole::Assistant),
            created_at: r.created_at,
        })
        .collect())
}

/// About 200 characters of `text` around the first of `terms` found in it (from its start when
/// none is), an ellipsis where it was cut.
fn excerpt(text: &str, terms: &[String]) -> String {
    const BEFORE: usize = 60;
    const LENGTH: usize = 200;
    let lower: Vec<char> = text.chars().flat_map(char::to_lowercase).collect();
    let chars: Vec<char> = text.chars().collect();
    // Lower-casing may change the length (rarely); then the excerpt starts at the beginning.
    let found = if lower.len() == chars.len() {
        terms
            .iter()
            .filter_map(|t| {
                let t: Vec<char> = t.chars().collect();
                lower
                    .windows(t.len().max(1))
                    .position(|w| w == t.as_slice())
            })
            .min()
            .unwrap_or(0)
    } else {
        0
    };
    let start = found.saturating_sub(BEFORE);
    let end = (start + LENGTH).min(chars.len());
    let mut out = String::new();
    if start > 0 {
        out.push('…');
    }
    out.extend(&chars[start..end]);
    if end < chars.len() {
        out.push('…');
    }
    out
}

/// What a chat beyond [`MAX_CHATS`] is refused with.
pub const FULL: &str =
    "You have 500 chats with them already. Delete some (they go to the trash) to start another.";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_title_is_cut_to_its_bound_with_an_ellipsis() {
        assert_eq!(shorten("Chat with Mira", 100), "Chat with Mira");
        let long = format!("Branch of {}", "é".repeat(120));
        let cut = shorten(&long, crate::domain::ChatTitle::MAX);
        assert_eq!(cut.chars().count(), crate::domain::ChatTitle::MAX);
        assert!(cut.ends_with('…'));
        assert!(crate::domain::ChatTitle::parse(&cut).is_ok());
    }

    #[test]
    fn new_chats_are_numbered_after_the_first() {
        let party = |column| Counterpart {
            column,
            key: "k".into(),
            name: "Mira".into(),
            avatar: String::new(),
            greetings: Vec::new(),
        };
        assert_eq!(title_for(&party("character_id"), 0), "Chat with Mira");
        assert_eq!(title_for(&party("character_id"), 2), "Chat 3 with Mira");
        assert_eq!(title_for(&party("twin_id"), 1), "Chat 2 with your twin");
    }

    #[test]
    fn an_excerpt_is_cut_around_the_first_word_found() {
        let text = format!(
            "{} the lighthouse keeper {}",
            "a".repeat(300),
            "b".repeat(300)
        );
        let cut = excerpt(&text, &["lighth".to_string()]);
        assert!(cut.starts_with('…') && cut.ends_with('…'));
        assert!(cut.contains("the lighthouse keeper"));
        assert!(cut.chars().count() <= 202);
        assert_eq!(excerpt("Short.", &["short".to_string()]), "Short.");
        assert_eq!(excerpt("Nothing here", &["zz".to_string()]), "Nothing here");
    }

    #[test]
    fn the_sentence_for_too_many_chats_names_the_bound() {
        assert!(FULL.contains(&MAX_CHATS.to_string()));
    }
}
