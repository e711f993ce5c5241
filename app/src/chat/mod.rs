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
//! called, with the reply's row, and the reply is completed (or marked failed, with whatever text
//! arrived) whatever happens to the connection. Nor is it lost with its server: the task beats a
//! heartbeat on the row, and a reply whose heartbeat went stale is marked interrupted, text kept.
//! A chat writes one reply at a time, across servers.
//!
//! A user may have several chats with a character (or their twin): listed, renamed, moved to the
//! trash and back, branched from any message. A chat is made by the first thing done in it, never
//! by opening a page (see [`sessions`]).
//!
//! This module holds what crosses the wire; [`service`] opens, sends and stops, [`relay`] is the
//! task that writes a reply, [`store`] has every query on a chat's messages and [`sessions`] every
//! query on the list of chats.

use crate::error::AppError;
use leptos::prelude::*;
use leptos::server_fn::codec::{StreamingText, TextStream};
use serde::{Deserialize, Serialize};

#[cfg(feature = "ssr")]
pub mod context;
#[cfg(feature = "ssr")]
pub mod markdown;
#[cfg(feature = "ssr")]
mod relay;
#[cfg(feature = "ssr")]
pub mod seen;
#[cfg(feature = "ssr")]
pub mod service;
#[cfg(feature = "ssr")]
pub mod sessions;
#[cfg(feature = "ssr")]
pub mod store;
#[cfg(feature = "ssr")]
pub mod summary;
#[cfg(feature = "ssr")]
pub mod transfer;

#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageRole {
    User,
    Assistant,
}

impl MessageRole {
    pub fn as_str(self) -> &'static str {
        match self {
            MessageRole::User => "user",
            MessageRole::Assistant => "assistant",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "user" => MessageRole::User,
            "assistant" => MessageRole::Assistant,
            _ => return None,
        })
    }
}

/// Where a message stands. A reply that did not finish keeps its text and says so.
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageStatus {
    Complete,
    /// Being written; the generating server beats a heartbeat on the row while it is.
    Streaming,
    /// Stopped by the user.
    Stopped,
    /// The model failed or cut the reply off.
    Failed,
    /// The server writing it stopped (crashed, or shut down past its grace) before the end.
    Interrupted,
}

impl MessageStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            MessageStatus::Complete => "complete",
            MessageStatus::Streaming => "streaming",
            MessageStatus::Stopped => "stopped",
            MessageStatus::Failed => "failed",
            MessageStatus::Interrupted => "interrupted",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "complete" => MessageStatus::Complete,
            "streaming" => MessageStatus::Streaming,
            "stopped" => MessageStatus::Stopped,
            "failed" => MessageStatus::Failed,
            "interrupted" => MessageStatus::Interrupted,
            _ => return None,
        })
    }
}

#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub id: String,
    pub role: MessageRole,
    pub content: String,
    pub status: MessageStatus,
    pub created_at: i64,
    /// Which version of this place in the chat it is (1-based, in the order written): a
    /// regenerated reply and an edited message are new versions, the old ones kept.
    #[serde(default = "one")]
    pub version: u32,
    /// How many versions this place has (1 when it was never regenerated or edited).
    #[serde(default = "one")]
    pub versions: u32,
    /// The text rendered from Markdown on the server ([`markdown`]): what the page shows. Empty
    /// for a reply while it is being written in the page (shown as plain text until then).
    #[serde(default)]
    pub html: String,
}

fn one() -> u32 {
    1
}

fn yes() -> bool {
    true
}

/// Everything the chat page shows when it opens.
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatView {
    /// The chat's id; for a new chat not made yet, the id it will have.
    pub session_id: String,
    /// The chat's title ("Chat with Mira", or as the user renamed it).
    #[serde(default)]
    pub title: String,
    /// False for a new chat, shown with its greeting but not made yet: the first thing done in
    /// it (a message sent, a greeting chosen) makes it, with [`start_chat`].
    #[serde(default = "yes")]
    pub saved: bool,
    pub character_id: String,
    pub character_name: String,
    pub avatar: String,
    /// The latest page of messages (at most 50), in the order written.
    pub messages: Vec<ChatMessage>,
    /// When earlier messages remain: the `seq` of the first one shown, to load the page before.
    pub earlier: Option<i64>,
    /// Replies are written by the offline provider (labelled in the UI).
    pub offline: bool,
    /// A chat with the user's own twin (`character_id` is then empty).
    #[serde(default)]
    pub twin: bool,
    /// The running summary of what no longer fits in a reply's prompt (empty: none yet).
    #[serde(default)]
    pub summary: String,
}

/// A page of earlier messages, in the order written.
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessagePage {
    pub messages: Vec<ChatMessage>,
    /// When still earlier messages remain: the `seq` to load the page before this one.
    pub earlier: Option<i64>,
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
    /// A reply is written again (a new version) or written on (continued): the chat now shows
    /// `messages` (its latest page, ending with the message the reply answers; `earlier` as in
    /// [`ChatView::earlier`]), and the reply starts as `reply` (empty, or its text so far).
    Replying {
        messages: Vec<ChatMessage>,
        earlier: Option<i64>,
        reply: ChatMessage,
    },
    /// More reply text.
    Delta { text: String },
    /// The reply's text as saved, rendered from Markdown; sent just before it ends.
    Formatted { html: String },
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

/// Reassembles events (one JSON line each: [`ChatEvent`]s, or play mode's events) from text
/// chunks whose boundaries fall anywhere.
pub struct EventLines<E = ChatEvent> {
    buf: String,
    _event: std::marker::PhantomData<fn() -> E>,
}

impl<E> Default for EventLines<E> {
    fn default() -> Self {
        Self {
            buf: String::new(),
            _event: std::marker::PhantomData,
        }
    }
}

impl<E: serde::de::DeserializeOwned> EventLines<E> {
    /// Adds a chunk; returns the events completed by it.
    pub fn push(&mut self, chunk: &str) -> Vec<Result<E, String>> {
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

/// The chat with a character made if there is none (the API's "open the chat"): the most
/// recently active one, or a new one with its greeting. Opening the page writes nothing: it uses
/// [`view_chat`]. A reply its server stopped writing is marked interrupted on the way.
#[server(endpoint = "chat/open")]
pub async fn open_chat(character_id: String) -> Result<ChatView, AppError> {
    service::open(character_id).await
}

/// [`open_chat`] with the signed-in user's own twin: the same engine as a character's chat, the
/// twin speaking from its bio and Shades.
#[server(endpoint = "chat/open_twin")]
pub async fn open_twin_chat() -> Result<ChatView, AppError> {
    service::open_twin().await
}

/// What the chat page shows, writing nothing: the chat `session_id`; or, with the character
/// `character_id` (the user's twin without one), their most recently active chat — with `fresh`,
/// or when there is none, a new chat not made yet (`saved: false`), its greeting shown.
#[server(endpoint = "chat/view")]
pub async fn view_chat(
    #[server(default)] session_id: Option<String>,
    #[server(default)] character_id: Option<String>,
    #[server(default)] fresh: bool,
) -> Result<ChatView, AppError> {
    service::view(session_id, character_id, fresh).await
}

/// Makes the new chat `session_id` (the id a new chat's page showed) with the character
/// `character_id` (the user's twin without one), its greeting first; the chat as it now is.
/// Doing it again gives the same chat.
#[server(endpoint = "chat/start")]
pub async fn start_chat(
    session_id: String,
    #[server(default)] character_id: Option<String>,
) -> Result<ChatView, AppError> {
    service::start(session_id, character_id).await
}

/// A page of the signed-in user's chats, most recently active first: all, or only those with
/// the character `with` (`with=twin`: with their twin), after the chat `after`.
#[server(endpoint = "chat/list")]
pub async fn list_chats(
    #[server(default)] with: Option<String>,
    #[server(default)] after: Option<String>,
) -> Result<ChatList, AppError> {
    service::list(with, after).await
}

/// Renames the chat `session_id`.
#[server(endpoint = "chat/rename")]
pub async fn rename_chat(session_id: String, title: String) -> Result<(), AppError> {
    service::rename(session_id, title).await
}

/// Moves the chat `session_id` to the trash (restorable for 30 days with [`restore_chat`]);
/// returns its id, for an Undo.
#[server(endpoint = "chat/trash")]
pub async fn trash_chat(session_id: String) -> Result<String, AppError> {
    service::trash(session_id.clone()).await?;
    Ok(session_id)
}

/// Takes the chat `session_id` out of the trash.
#[server(endpoint = "chat/untrash")]
pub async fn restore_chat(session_id: String) -> Result<(), AppError> {
    service::untrash(session_id).await
}

/// The signed-in user's chats in the trash, the most recently deleted first.
#[server(endpoint = "chat/trashed")]
pub async fn trashed_chats() -> Result<Vec<ChatSummary>, AppError> {
    service::trashed().await
}

/// A new chat holding the conversation of the chat `session_id` up to and including the
/// message `message_id` (copied; the original is unchanged). Returns the new chat's id.
#[server(endpoint = "chat/branch")]
pub async fn branch_chat(session_id: String, message_id: String) -> Result<String, AppError> {
    service::branch(session_id, message_id).await
}

/// Brings a SillyTavern chat file (`.jsonl`, the form's file field) in as a new chat with the
/// character named by the form field `with` (`twin`: the user's twin). Returns the new chat's id;
/// a plain form post goes on to it.
#[server(endpoint = "chat/import", input = leptos::server_fn::codec::MultipartFormData)]
pub async fn import_chat(
    data: leptos::server_fn::codec::MultipartData,
) -> Result<String, AppError> {
    service::import(data).await
}

/// The messages found by a search of all the signed-in user's chats (their words as prefixes,
/// every word in the message), newest first, at most 30.
#[server(endpoint = "chat/search")]
pub async fn search_chats(q: String) -> Result<Vec<ChatHit>, AppError> {
    service::search(q).await
}

/// The conversation of the chat `session_id` up to and including the message `message_id` (its
/// latest page), whichever branch it is on: where a search result jumps to.
#[server(endpoint = "chat/at")]
pub async fn messages_at(session_id: String, message_id: String) -> Result<MessagePage, AppError> {
    service::at(session_id, message_id).await
}

/// What the model saw for the reply `message_id` of the chat `session_id`: the prompt it was
/// written from, part by part, with token counts.
#[server(endpoint = "chat/prompt")]
pub async fn seen_prompt(session_id: String, message_id: String) -> Result<PromptView, AppError> {
    service::prompt(session_id, message_id).await
}

/// Saves `text` as the running summary of the chat `session_id` (the model's next update starts
/// from it).
#[server(endpoint = "chat/summary")]
pub async fn save_summary(session_id: String, text: String) -> Result<(), AppError> {
    service::save_summary(session_id, text).await
}

/// [`seen_prompt`] as the page shows it: HTML rendered on the server.
#[server(endpoint = "chat/prompt/page")]
pub async fn seen_prompt_page(session_id: String, message_id: String) -> Result<String, AppError> {
    service::prompt(session_id, message_id)
        .await
        .map(crate::pages::prompt::render)
}

/// The page of messages written before message number `before` (a `seq`, as in
/// [`ChatView::earlier`]) in the session `session_id`; the page size is the server's.
#[server(endpoint = "chat/earlier")]
pub async fn earlier_messages(session_id: String, before: i64) -> Result<MessagePage, AppError> {
    service::earlier(session_id, before).await
}

/// Sends a message and streams the reply as lines of [`ChatEvent`] JSON. Refused with
/// [`AppError::Conflict`], nothing saved, while a reply is still being written in the chat, or
/// when `after` (the last message the page shows) is no longer the chat's last: the chat moved
/// on in another tab.
#[server(endpoint = "chat/send", output = StreamingText)]
pub async fn send_message(
    session_id: String,
    text: String,
    #[server(default)] after: Option<String>,
) -> Result<TextStream<AppError>, AppError> {
    service::send(session_id, text, after).await
}

/// Stops a reply being written, on whichever server writes it (within half a second). The text
/// so far is kept and marked stopped; the upstream model request is cancelled.
#[server(endpoint = "chat/stop")]
pub async fn stop_reply(reply_id: String) -> Result<(), AppError> {
    service::stop(reply_id).await
}

/// Writes a new version of the reply `message_id` (the old one is kept, and reachable as an
/// earlier version), or, for a user message, a reply to it; streams like [`send_message`].
#[server(endpoint = "chat/regenerate", output = StreamingText)]
pub async fn regenerate_reply(
    session_id: String,
    message_id: String,
) -> Result<TextStream<AppError>, AppError> {
    service::reply_again(session_id, message_id, false).await
}

/// Writes on at the end of the reply `message_id` (the chat's last message: one that stopped,
/// was cut off, or simply ended), appending to it; streams like [`send_message`].
#[server(endpoint = "chat/continue", output = StreamingText)]
pub async fn continue_reply(
    session_id: String,
    message_id: String,
) -> Result<TextStream<AppError>, AppError> {
    service::reply_again(session_id, message_id, true).await
}

/// Saves `text` as a new version of the message `message_id` (the old one kept), shown from now
/// on with nothing after it. Returns the chat's latest page.
#[server(endpoint = "chat/edit")]
pub async fn edit_message(
    session_id: String,
    message_id: String,
    text: String,
) -> Result<MessagePage, AppError> {
    service::edit(session_id, message_id, service::Edit::Text(text)).await
}

/// Shows version `version` (1-based) of the message `message_id`'s place, with the latest
/// conversation that followed it. Returns the chat's latest page.
#[server(endpoint = "chat/show_version")]
pub async fn show_version(
    session_id: String,
    message_id: String,
    version: u32,
) -> Result<MessagePage, AppError> {
    service::edit(session_id, message_id, service::Edit::Show(version)).await
}

/// Deletes the message `message_id` and what follows it on its branch (another version takes
/// its place if it has one). Restorable with [`restore_message`]. Returns the chat's latest page.
#[server(endpoint = "chat/delete")]
pub async fn delete_message(
    session_id: String,
    message_id: String,
) -> Result<MessagePage, AppError> {
    service::edit(session_id, message_id, service::Edit::Delete).await
}

/// Undoes [`delete_message`]: the message and what followed it are shown again.
#[server(endpoint = "chat/restore")]
pub async fn restore_message(
    session_id: String,
    message_id: String,
) -> Result<MessagePage, AppError> {
    service::edit(session_id, message_id, service::Edit::Restore).await
}

/// A chat in the list of a user's chats.
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatSummary {
    pub session_id: String,
    /// The character it is with; none for the chat with the user's own twin.
    pub character_id: Option<String>,
    /// Who it is with: the character's name, or the twin's.
    pub with: String,
    pub title: String,
    pub last_message_preview: String,
    /// When it last changed (epoch ms).
    pub updated_at: i64,
}

/// A message a search of one's chats found.
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatHit {
    pub session_id: String,
    pub message_id: String,
    /// The chat's title.
    pub title: String,
    /// Who the chat is with.
    pub with: String,
    pub role: MessageRole,
    /// The message around the first word found (at most about 200 characters).
    pub excerpt: String,
    pub created_at: i64,
}

/// A lorebook entry sent.
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeenLore {
    /// Its name, or its first key.
    pub name: String,
    /// The key that brought it up; empty for an entry always sent.
    pub key: String,
    pub content: String,
    pub tokens: usize,
}

/// What the model was sent for a reply, but its messages (kept in the chat): the record behind
/// "what the model saw", made by [`context`].
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seen {
    /// The prompt's budget, in tokens.
    pub budget: usize,
    /// The character's system prompt as sent (macros filled in), without lorebook and summary.
    pub system: String,
    /// Whether it is the card's own system prompt.
    pub card_system: bool,
    pub system_tokens: usize,
    /// The lorebook entries sent, in the order sent.
    pub lore: Vec<SeenLore>,
    /// Entries brought up but left out for the lorebook's budget.
    pub lore_left_out: usize,
    pub summary: Option<String>,
    pub summary_tokens: usize,
    /// The card's instructions sent after the last message.
    pub after: Option<String>,
    pub after_tokens: usize,
    /// How many of the chat's messages were sent (the latest of its branch).
    pub turns: usize,
    pub turn_tokens: usize,
    /// How many of the earlier messages given were not (they did not fit)…
    pub turns_left_out: usize,
    /// …and whether older ones were not even read (they could not have fitted).
    pub older_left_out: bool,
    /// For a reply continued: the text it had, sent as the model's with an instruction to go on.
    #[serde(default)]
    pub continued: Option<String>,
    /// The whole prompt, in tokens (estimated).
    pub total: usize,
}

/// One message the model was sent for a reply.
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeenTurn {
    pub role: MessageRole,
    pub text: String,
    /// Its tokens (estimated), framing included.
    pub tokens: usize,
}

/// What the model saw for a reply: the prompt it was written from, part by part.
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PromptView {
    pub session_id: String,
    pub message_id: String,
    /// The chat's title.
    pub title: String,
    /// Who the chat is with.
    pub with: String,
    pub seen: Seen,
    /// The messages sent, in the order written.
    pub turns: Vec<SeenTurn>,
}

/// The longest search of one's chats, in characters.
pub const MAX_CHAT_QUERY: usize = 200;

/// A page of a user's chats, most recently active first.
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatList {
    pub chats: Vec<ChatSummary>,
    /// When more remain: the cursor (`after`) for the next page.
    pub next: Option<String>,
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
            let mut lines = EventLines::<ChatEvent>::default();
            let mut got = Vec::new();
            let chars: Vec<char> = wire.chars().collect();
            for chunk in chars.chunks(size) {
                let s: String = chunk.iter().collect();
                got.extend(lines.push(&s).into_iter().map(Result::unwrap));
            }
            assert_eq!(got, events, "chunk size {size}");
        }
    }

    #[test]
    fn roles_and_statuses_round_trip_and_refuse_unknown_words() {
        for role in [MessageRole::User, MessageRole::Assistant] {
            assert_eq!(MessageRole::parse(role.as_str()), Some(role));
            // The stored word is the wire word.
            assert_eq!(
                serde_json::to_string(&role).unwrap(),
                format!("\"{}\"", role.as_str())
            );
        }
        for status in [
            MessageStatus::Complete,
            MessageStatus::Streaming,
            MessageStatus::Stopped,
            MessageStatus::Failed,
            MessageStatus::Interrupted,
        ] {
            assert_eq!(MessageStatus::parse(status.as_str()), Some(status));
            assert_eq!(
                serde_json::to_string(&status).unwrap(),
                format!("\"{}\"", status.as_str())
            );
        }
        for unknown in [
            "",
            "User",
            "system",
            "model",
            "done",
            "Complete",
            " complete",
        ] {
            assert_eq!(MessageRole::parse(unknown), None, "{unknown:?}");
            assert_eq!(MessageStatus::parse(unknown), None, "{unknown:?}");
        }
    }
}
