//! What the chat server functions do: open a chat, send a message (saving it and starting the
//! [`Relay`] that writes the reply), stop a reply; and, at start-up, give up the replies whose
//! server died ([`interrupt_stale_replies`]). Queries are in [`super::store`].

use super::relay::Relay;
use super::{seen, sessions, store, ChatEvent, ChatView, MessagePage, MessageRole, MessageStatus};
use crate::auth::require_user;
use crate::domain::MessageText;
use crate::error::{AppError, OrInternal};
use crate::infra::{db::Db, new_id, now_ms, AppState};
use crate::limits;
use leptos::server_fn::codec::TextStream;

/// How many messages a chat opens with, and how many each "Load earlier messages" adds. Fixed
/// by the server: the client names only where to start.
pub const PAGE: i64 = 50;

/// What a second send in a chat whose reply is still being written is told.
pub const BUSY: &str = "A reply is still being written in this chat. Wait for it or stop it.";

/// What a send from a page that no longer shows the chat's end is told.
pub const MOVED: &str =
    "This chat changed in another tab or window. Reload the page to see it, then send again.";

/// Marks `interrupted` the replies still `streaming` whose heartbeat is older than the configured
/// `REPLY_STALE_SECS` (their server is gone): in `session_id`, or everywhere at start-up. Their
/// text, as last flushed, is kept.
pub async fn interrupt_stale_replies(
    db: &Db,
    stale_after: std::time::Duration,
    session_id: Option<&str>,
) -> Result<u64, sqlx::Error> {
    let cutoff = now_ms() - stale_after.as_millis() as i64;
    let n = store::interrupt_stale(db, session_id, cutoff).await?;
    if n > 0 {
        tracing::warn!(
            replies = n,
            "replies whose server stopped writing them are marked interrupted"
        );
    }
    Ok(n)
}

#[tracing::instrument(skip_all)]
pub async fn open(character_id: String) -> Result<ChatView, AppError> {
    let user = require_user().await?;
    open_for(&AppState::get()?, &user, &character_id).await
}

/// [`open`] for `user`, however they are signed in (the REST API): their most recently active
/// chat with the character, or a new one made with its greeting.
pub async fn open_for(
    state: &AppState,
    user: &crate::auth::UserId,
    character_id: &str,
) -> Result<ChatView, AppError> {
    crate::infra::check_id(character_id)?;
    open_with(state, user, sessions::With::Character(character_id)).await
}

/// The chat with the signed-in user's own twin, made if there is none (a sentence, and nothing
/// made, before they have a twin).
#[tracing::instrument(skip_all)]
pub async fn open_twin() -> Result<ChatView, AppError> {
    let user = require_user().await?;
    open_with(&AppState::get()?, &user, sessions::With::Twin).await
}

/// What a chat with one's twin is refused with before there is a twin.
const NO_TWIN: &str = "Create your twin first: give it a name and save it on the twin page.";

/// Who `with` is for `user`: not found for a character that is not theirs, a sentence when
/// they have no twin yet.
async fn counterpart(
    state: &AppState,
    user: &crate::auth::UserId,
    with: sessions::With<'_>,
) -> Result<sessions::Counterpart, AppError> {
    sessions::counterpart(&state.db, user, with)
        .await
        .or_internal("load counterpart")?
        .ok_or(match with {
            sessions::With::Character(_) => AppError::NotFound,
            sessions::With::Twin => AppError::BadRequest(NO_TWIN.into()),
        })
}

/// The chat `id` with `party` made (or, with `reuse`, their latest chat if there is one).
async fn make(
    state: &AppState,
    user: &crate::auth::UserId,
    party: &sessions::Counterpart,
    id: &str,
    reuse: bool,
) -> Result<String, AppError> {
    match sessions::make(&state.db, user, party, id, reuse)
        .await
        .or_internal("make chat")?
    {
        sessions::Made::Chat(id) => Ok(id),
        sessions::Made::NotFound => Err(AppError::NotFound),
        sessions::Made::Full => Err(AppError::Conflict(sessions::FULL.into())),
    }
}

async fn open_with(
    state: &AppState,
    user: &crate::auth::UserId,
    with: sessions::With<'_>,
) -> Result<ChatView, AppError> {
    let party = counterpart(state, user, with).await?;
    let id = make(state, user, &party, &new_id(), true).await?;
    view_of(state, user, id).await
}

/// [`view_for`] for the signed-in user.
#[tracing::instrument(skip_all)]
pub async fn view(
    session_id: Option<String>,
    character_id: Option<String>,
    fresh: bool,
) -> Result<ChatView, AppError> {
    let user = require_user().await?;
    view_for(
        &AppState::get()?,
        &user,
        session_id.as_deref(),
        character_id.as_deref(),
        fresh,
    )
    .await
}

/// What the chat page shows, writing nothing but the marks on replies whose server died: the
/// chat `session_id` of `user`'s; or their latest chat with the character `character_id` (with
/// their twin, without one); or, with `fresh` or when there is none, a new chat not made yet.
pub async fn view_for(
    state: &AppState,
    user: &crate::auth::UserId,
    session_id: Option<&str>,
    character_id: Option<&str>,
    fresh: bool,
) -> Result<ChatView, AppError> {
    if let Some(session_id) = session_id {
        crate::infra::check_id(session_id)?;
        return view_of(state, user, session_id.to_string()).await;
    }
    let with = match character_id {
        Some(id) => {
            crate::infra::check_id(id)?;
            sessions::With::Character(id)
        }
        None => sessions::With::Twin,
    };
    let party = counterpart(state, user, with).await?;
    if !fresh {
        if let Some(id) = sessions::latest(&state.db, user, &party)
            .await
            .or_internal("find chat")?
        {
            return view_of(state, user, id).await;
        }
    }
    let twin = party.is_twin();
    Ok(ChatView {
        session_id: new_id(),
        title: "New chat".into(),
        saved: false,
        character_id: if twin { String::new() } else { party.key },
        character_name: if twin && party.name.is_empty() {
            "Your twin".into()
        } else {
            party.name
        },
        avatar: party.avatar,
        messages: party.greetings.into_iter().take(1).collect(),
        earlier: None,
        offline: state.llm.is_offline(),
        twin,
        summary: String::new(),
    })
}

/// [`start_for`] for the signed-in user.
#[tracing::instrument(skip_all)]
pub async fn start(session_id: String, character_id: Option<String>) -> Result<ChatView, AppError> {
    let user = require_user().await?;
    start_for(
        &AppState::get()?,
        &user,
        &session_id,
        character_id.as_deref(),
    )
    .await
}

/// Makes `user`'s new chat `session_id` (an id as a new chat's page shows: a UUID) with the
/// character `character_id` (their twin without one); the chat as it then is. Idempotent.
pub async fn start_for(
    state: &AppState,
    user: &crate::auth::UserId,
    session_id: &str,
    character_id: Option<&str>,
) -> Result<ChatView, AppError> {
    if uuid::Uuid::parse_str(session_id).is_err() {
        return Err(AppError::BadRequest(
            "A new chat's id is the one its page shows (a UUID).".into(),
        ));
    }
    let with = match character_id {
        Some(id) => {
            crate::infra::check_id(id)?;
            sessions::With::Character(id)
        }
        None => sessions::With::Twin,
    };
    let party = counterpart(state, user, with).await?;
    let id = make(state, user, &party, session_id, false).await?;
    view_of(state, user, id).await
}

/// A session as the chat page opens it: its latest page of messages, replies whose server died
/// marked interrupted first.
async fn view_of(
    state: &AppState,
    user: &crate::auth::UserId,
    session_id: String,
) -> Result<ChatView, AppError> {
    let session = live_session(state, user, &session_id).await?;
    let (messages, earlier) = store::messages_page(&state.db, &session_id, None, PAGE)
        .await
        .or_internal("load messages")?;
    let twin = session.twin_id.is_some();
    let summary = super::summary::current(&state.db, &session_id)
        .await
        .or_internal("load summary")?
        .map(|s| s.content)
        .unwrap_or_default();
    Ok(ChatView {
        session_id,
        title: session.title,
        saved: true,
        character_id: session.character_id,
        character_name: if twin && session.name.is_empty() {
            "Your twin".into()
        } else {
            session.name
        },
        avatar: session.avatar,
        messages,
        earlier,
        offline: state.llm.is_offline(),
        twin,
        summary,
    })
}

/// [`list_for`] for the signed-in user, a page of the server's size.
#[tracing::instrument(skip_all)]
pub async fn list(
    with: Option<String>,
    after: Option<String>,
) -> Result<super::ChatList, AppError> {
    let user = require_user().await?;
    list_for(&AppState::get()?.db, &user, with.as_deref(), after, None).await
}

/// [`rename_for`] for the signed-in user.
#[tracing::instrument(skip_all, fields(session_id = %session_id))]
pub async fn rename(session_id: String, title: String) -> Result<(), AppError> {
    let user = require_user().await?;
    rename_for(&AppState::get()?.db, &user, &session_id, &title).await
}

/// Gives `user`'s chat `session_id` the title `title` (1 to 100 characters, on one line).
pub async fn rename_for(
    db: &Db,
    user: &crate::auth::UserId,
    session_id: &str,
    title: &str,
) -> Result<(), AppError> {
    let title = crate::domain::ChatTitle::parse(title)?;
    crate::infra::check_id(session_id)?;
    sessions::rename(db, user, session_id, title.as_str())
        .await
        .or_internal("rename chat")?
        .then_some(())
        .ok_or(AppError::NotFound)
}

/// [`trash_for`] for the signed-in user.
#[tracing::instrument(skip_all, fields(session_id = %session_id))]
pub async fn trash(session_id: String) -> Result<(), AppError> {
    let user = require_user().await?;
    trash_for(&AppState::get()?.db, &user, &session_id).await
}

/// Moves `user`'s chat `session_id` to the trash. A reply being written in it goes on being
/// saved there.
pub async fn trash_for(
    db: &Db,
    user: &crate::auth::UserId,
    session_id: &str,
) -> Result<(), AppError> {
    crate::infra::check_id(session_id)?;
    sessions::trash(db, user, session_id)
        .await
        .or_internal("trash chat")?
        .then_some(())
        .ok_or(AppError::NotFound)
}

/// [`untrash_for`] for the signed-in user.
#[tracing::instrument(skip_all, fields(session_id = %session_id))]
pub async fn untrash(session_id: String) -> Result<(), AppError> {
    let user = require_user().await?;
    untrash_for(&AppState::get()?.db, &user, &session_id).await
}

/// Takes `user`'s chat `session_id` out of the trash (within its days there).
pub async fn untrash_for(
    db: &Db,
    user: &crate::auth::UserId,
    session_id: &str,
) -> Result<(), AppError> {
    crate::infra::check_id(session_id)?;
    Ok(sessions::restore(db, user, session_id, trash_cutoff())
        .await
        .or_internal("restore chat")??)
}

/// How many chats in the trash a list shows.
const TRASH_PAGE: i64 = 100;

/// The signed-in user's chats in the trash, the most recently deleted first (at most 100).
#[tracing::instrument(skip_all)]
pub async fn trashed() -> Result<Vec<super::ChatSummary>, AppError> {
    let user = require_user().await?;
    sessions::trashed(&AppState::get()?.db, &user, trash_cutoff(), TRASH_PAGE)
        .await
        .or_internal("list trashed chats")
}

/// Deleted before this (epoch ms), a chat is past its days in the trash (those of a character):
/// no longer listed nor restorable, and removed by the next [`purge_expired`].
fn trash_cutoff() -> i64 {
    now_ms() - crate::characters::TRASH_DAYS * 24 * 3_600_000
}

/// Removes for good the chats past their days in the trash. The server runs it with the
/// characters' purge, never in a request.
pub async fn purge_expired(db: &Db) {
    match sessions::purge_trash(db, trash_cutoff()).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(n, "removed chats past their days in the trash"),
        Err(e) => tracing::warn!(error = ?e, "could not empty old chats from the trash"),
    }
}

/// How a chat is downloaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChatExport {
    /// SillyTavern's chat format: a header line, then one message a line with its swipes.
    Jsonl,
    /// To read: each message under its speaker's name.
    Markdown,
}

/// `user`'s chat `session_id` as a file to download (bytes, file name); `None` if there is no
/// such chat of theirs (or it is in the trash).
pub async fn export_for(
    db: &Db,
    user: &crate::auth::UserId,
    session_id: &str,
    format: ChatExport,
) -> Result<Option<(Vec<u8>, String)>, AppError> {
    if crate::infra::check_id(session_id).is_err() {
        return Ok(None);
    }
    let Some(chat) = sessions::transcript(db, user, session_id)
        .await
        .or_internal("read chat for export")?
    else {
        return Ok(None);
    };
    let stem = crate::infra::file_stem(&format!("{} {}", chat.with, chat.title), "chat");
    Ok(Some(match format {
        ChatExport::Jsonl => (
            super::transfer::to_jsonl(&chat).into_bytes(),
            format!("{stem}.jsonl"),
        ),
        ChatExport::Markdown => (
            super::transfer::to_markdown(&chat).into_bytes(),
            format!("{stem}.md"),
        ),
    }))
}

/// Brings a SillyTavern JSONL chat (`bytes`) in as a new chat of `user`'s with the character
/// `with` (`"twin"`: their twin): its messages, each with its swipes as versions. Returns the new
/// chat's id and what was left out.
pub async fn import_for(
    db: &Db,
    user: &crate::auth::UserId,
    with: &str,
    bytes: &[u8],
) -> Result<(String, Vec<String>), AppError> {
    let with = if with == "twin" {
        sessions::With::Twin
    } else {
        crate::infra::check_id(with)?;
        sessions::With::Character(with)
    };
    // The file is read (and refused) before anything is written.
    let read =
        super::transfer::from_jsonl(bytes, now_ms()).map_err(|e| AppError::BadRequest(e.0))?;
    let party = sessions::counterpart(db, user, with)
        .await
        .or_internal("load counterpart")?
        .ok_or(match with {
            sessions::With::Character(_) => AppError::NotFound,
            sessions::With::Twin => AppError::BadRequest(NO_TWIN.into()),
        })?;
    // The file's date only if it makes a title (one line, within bounds).
    let title = read
        .created
        .as_deref()
        .map(|date| format!("Imported chat of {date}"))
        .and_then(|t| crate::domain::ChatTitle::parse(&t).ok())
        .map(|t| t.as_str().to_string())
        .unwrap_or_else(|| "Imported chat".to_string());
    let id = sessions::import(
        db,
        user,
        &sessions::Party::from(&party),
        &title,
        &read.places,
    )
    .await
    .or_internal("import chat")??;
    tracing::info!(
        messages = read.places.len(),
        left_out = read.notes.len(),
        "chat imported"
    );
    Ok((id, read.notes))
}

/// [`import_for`] from a form: the field `with` (a character's id, or `twin`) and the file (the
/// first file field, within [`super::transfer::MAX_CHAT_BYTES`]). A plain form post goes on to
/// the new chat.
#[tracing::instrument(skip_all)]
pub async fn import(data: leptos::server_fn::codec::MultipartData) -> Result<String, AppError> {
    let user = require_user().await?;
    let unreadable = || AppError::BadRequest("The upload could not be read.".into());
    let mut form = data.into_inner().ok_or_else(unreadable)?;
    let (mut with, mut bytes) = (None::<String>, None::<Vec<u8>>);
    while let Some(mut field) = form.next_field().await.map_err(|_| unreadable())? {
        if field.file_name().is_none() {
            if field.name() == Some("with") {
                let value = field.text().await.map_err(|_| unreadable())?;
                with = Some(value.chars().take(64).collect());
            }
            continue;
        }
        let mut buf = Vec::new();
        while let Some(chunk) = field.chunk().await.map_err(|_| unreadable())? {
            if buf.len() + chunk.len() > super::transfer::MAX_CHAT_BYTES {
                return Err(AppError::TooLarge(format!(
                    "The chat file is larger than {} MB.",
                    super::transfer::MAX_CHAT_BYTES / (1024 * 1024)
                )));
            }
            buf.extend_from_slice(&chunk);
        }
        bytes = Some(buf);
    }
    let with = with.ok_or(AppError::NotFound)?;
    let bytes =
        bytes.ok_or_else(|| AppError::BadRequest("Choose a chat file to import.".into()))?;
    let (id, _) = import_for(&AppState::get()?.db, &user, &with, &bytes).await?;
    leptos_axum::redirect(&format!("/chats/{id}"));
    Ok(id)
}

/// [`search_for`] for the signed-in user.
#[tracing::instrument(skip_all)]
pub async fn search(q: String) -> Result<Vec<super::ChatHit>, AppError> {
    let user = require_user().await?;
    search_for(&AppState::get()?.db, &user, &q).await
}

/// How many messages a search of one's chats gives.
const SEARCH_HITS: i64 = 30;

/// The messages of `user`'s chats holding every word of `q` (at most
/// [`super::MAX_CHAT_QUERY`] characters, its first 8 words), newest first.
pub async fn search_for(
    db: &Db,
    user: &crate::auth::UserId,
    q: &str,
) -> Result<Vec<super::ChatHit>, AppError> {
    if q.chars().count() > super::MAX_CHAT_QUERY {
        return Err(AppError::BadRequest(format!(
            "A search can be at most {} characters.",
            super::MAX_CHAT_QUERY
        )));
    }
    let terms = crate::domain::search_terms(q, 8);
    sessions::search(db, user, &terms, SEARCH_HITS)
        .await
        .or_internal("search chats")
}

#[tracing::instrument(skip_all)]
pub async fn save_summary(session_id: String, text: String) -> Result<(), AppError> {
    let user = require_user().await?;
    save_summary_for(&AppState::get()?.db, &user, &session_id, &text).await
}

/// Saves `text` as the running summary of `user`'s chat `session_id`; not found if it is not theirs.
pub async fn save_summary_for(
    db: &Db,
    user: &crate::auth::UserId,
    session_id: &str,
    text: &str,
) -> Result<(), AppError> {
    crate::infra::check_id(session_id)?;
    let text = crate::domain::ChatSummaryText::parse(text)?;
    if super::summary::edit(db, user, session_id, &text)
        .await
        .or_internal("save summary")?
    {
        Ok(())
    } else {
        Err(AppError::NotFound)
    }
}

#[tracing::instrument(skip_all)]
pub async fn prompt(session_id: String, message_id: String) -> Result<super::PromptView, AppError> {
    let user = require_user().await?;
    prompt_for(&AppState::get()?.db, &user, &session_id, &message_id).await
}

/// What the model saw for the reply `message_id` of `user`'s chat `session_id`; not found if the
/// chat is not theirs, or nothing was kept for that message (a greeting, a message of theirs).
pub async fn prompt_for(
    db: &Db,
    user: &crate::auth::UserId,
    session_id: &str,
    message_id: &str,
) -> Result<super::PromptView, AppError> {
    crate::infra::check_id(session_id)?;
    crate::infra::check_id(message_id)?;
    seen::saw(db, user, session_id, message_id)
        .await
        .or_internal("load prompt")?
        .ok_or(AppError::NotFound)
}

/// [`at_for`] for the signed-in user.
#[tracing::instrument(skip_all, fields(session_id = %session_id, message_id = %message_id))]
pub async fn at(session_id: String, message_id: String) -> Result<MessagePage, AppError> {
    let user = require_user().await?;
    at_for(&AppState::get()?.db, &user, &session_id, &message_id).await
}

/// The latest page of `user`'s chat `session_id` ending at the message `message_id`, on
/// whichever branch it is; not found if it is not in that chat (or deleted).
pub async fn at_for(
    db: &Db,
    user: &crate::auth::UserId,
    session_id: &str,
    message_id: &str,
) -> Result<MessagePage, AppError> {
    crate::infra::check_id(session_id)?;
    crate::infra::check_id(message_id)?;
    store::find_session(db, user, session_id)
        .await
        .or_internal("load session")?
        .ok_or(AppError::NotFound)?;
    if store::hidden(db, session_id, message_id)
        .await
        .or_internal("check message")?
    {
        return Err(AppError::NotFound);
    }
    let (messages, earlier) =
        store::page_from(db, session_id, store::Start::Message(message_id), PAGE)
            .await
            .or_internal("load messages")?;
    if messages.is_empty() {
        return Err(AppError::NotFound);
    }
    Ok(MessagePage { messages, earlier })
}

/// [`branch_for`] for the signed-in user.
#[tracing::instrument(skip_all, fields(session_id = %session_id, message_id = %message_id))]
pub async fn branch(session_id: String, message_id: String) -> Result<String, AppError> {
    let user = require_user().await?;
    branch_for(&AppState::get()?.db, &user, &session_id, &message_id).await
}

/// A new chat of `user`'s holding their chat `session_id` up to and including the message
/// `message_id`; its id.
pub async fn branch_for(
    db: &Db,
    user: &crate::auth::UserId,
    session_id: &str,
    message_id: &str,
) -> Result<String, AppError> {
    crate::infra::check_id(session_id)?;
    crate::infra::check_id(message_id)?;
    Ok(sessions::branch(db, user, session_id, message_id)
        .await
        .or_internal("branch chat")??)
}

/// The page of messages written before `before` (a `seq`) in `owner`'s session `session_id`;
/// someone else's session, or a missing one, is not found.
#[tracing::instrument(skip_all, fields(session_id = %session_id, before))]
pub async fn earlier(session_id: String, before: i64) -> Result<MessagePage, AppError> {
    let user = require_user().await?;
    earlier_for(&AppState::get()?.db, &user, &session_id, Some(before)).await
}

/// A page of `user`'s chats, most recently active first: all, or those with the character
/// `with` (`"twin"`: with their twin); at most `limit` (24 by default, at most 100) after the
/// chat `after`.
pub async fn list_for(
    db: &Db,
    user: &crate::auth::UserId,
    with: Option<&str>,
    after: Option<String>,
    limit: Option<u32>,
) -> Result<super::ChatList, AppError> {
    let limit = i64::from(limit.unwrap_or(24)).clamp(1, 100);
    if let Some(a) = after.as_deref() {
        crate::infra::check_id(a)?;
    }
    let with = match with {
        None => None,
        Some("twin") => Some(sessions::With::Twin),
        Some(id) => {
            crate::infra::check_id(id)?;
            // Someone else's character (or one in the trash) is not found, not an empty list.
            crate::characters::store::find(db, user, id)
                .await
                .or_internal("find character")?
                .ok_or(AppError::NotFound)?;
            Some(sessions::With::Character(id))
        }
    };
    let (chats, more) = sessions::list(db, user, with, after.as_deref(), limit)
        .await
        .or_internal("list chats")?
        .ok_or(AppError::NotFound)?;
    let next = more
        .then(|| chats.last().map(|c| c.session_id.clone()))
        .flatten();
    Ok(super::ChatList { chats, next })
}

/// [`earlier`] for `user`, however they are signed in; the latest page without `before`.
pub async fn earlier_for(
    db: &Db,
    user: &crate::auth::UserId,
    session_id: &str,
    before: Option<i64>,
) -> Result<MessagePage, AppError> {
    crate::infra::check_id(session_id)?;
    if before.is_some_and(|b| b < 1) {
        return Err(AppError::BadRequest(
            "`before` must be a message number (1 or more).".into(),
        ));
    }
    store::find_session(db, user, session_id)
        .await
        .or_internal("load session")?
        .ok_or(AppError::NotFound)?;
    let (messages, earlier) = store::messages_page(db, session_id, before, PAGE)
        .await
        .or_internal("load messages")?;
    Ok(MessagePage { messages, earlier })
}

#[tracing::instrument(skip_all, fields(session_id = %session_id))]
pub async fn send(
    session_id: String,
    text: String,
    after: Option<String>,
) -> Result<TextStream<AppError>, AppError> {
    let user = require_user().await?;
    send_for(&AppState::get()?, user, session_id, text, after).await
}

/// [`send`] for `user`, however they are signed in (the REST API streams the same events). With
/// `after`, the message is added only if the chat still ends with that message.
pub async fn send_for(
    state: &AppState,
    user: crate::auth::UserId,
    session_id: String,
    text: String,
    after: Option<String>,
) -> Result<TextStream<AppError>, AppError> {
    let text = MessageText::parse(&text)?;
    crate::infra::check_id(&session_id)?;
    if let Some(after) = &after {
        crate::infra::check_id(after)?;
    }
    let state = state.clone();
    // A reply left `streaming` by a server that died does not hold the chat.
    let session = live_session(&state, &user, &session_id).await?;
    // Within the user's limits. One reply at a time in this chat is the database's rule, kept
    // by `start_exchange` below.
    let slot = limits::service::begin_model_call(&state, &user).await?;
    // The user's message is saved before the model is called, with the reply's row, unless a
    // reply is still being written in this chat: then nothing is saved and the user is told.
    let saved = store::start_exchange(&state.db, &session.id, text.as_str(), after.as_deref())
        .await
        .or_internal("save message")?;
    let (user_message, reply) = match saved {
        store::Exchange::Started { user, reply } => (user, reply),
        store::Exchange::Busy => return Err(AppError::Conflict(BUSY.into())),
        store::Exchange::Moved => return Err(AppError::Conflict(MOVED.into())),
    };

    // The branch the message was added to, whatever the chat shows by the time it is read.
    let prepared = seen::request(
        &state,
        &user,
        &session,
        Some(&user_message.id),
        None,
        &reply.id,
    )
    .await?;
    let first = ChatEvent::Accepted {
        user_message,
        reply_id: reply.id.clone(),
    };
    Ok(spawn_reply(
        &state, user, &session, reply, prepared, slot, first,
    ))
}

/// Starts the task that writes `reply` (its text so far kept and added to) from `request`, then
/// the chat's summary update `then` if one is due, and returns the reply's events, `first` first.
fn spawn_reply(
    state: &AppState,
    user: crate::auth::UserId,
    session: &store::Session,
    reply: super::ChatMessage,
    (request, then): (crate::infra::llm::ChatRequest, Option<super::summary::Job>),
    slot: limits::service::Slot,
    first: ChatEvent,
) -> TextStream<AppError> {
    let (tx, rx) = futures::channel::mpsc::unbounded::<Result<String, AppError>>();
    let _ = tx.unbounded_send(Ok(first.to_line()));
    let cancel = state.running.register(&reply.id);
    let upstream = state.llm.stream_chat(request);
    let job = Relay {
        state: state.clone(),
        owner: user,
        session_id: session.id.clone(),
        reply_id: reply.id,
        written: reply.content,
        tx,
        cancel,
        slot,
    };
    let span = crate::usage::call_span(state.llm.name(), "chat");
    let reply = tracing::Instrument::instrument(job.run(upstream), span);
    // The chat's summary, when due, is brought up to date once the reply is written.
    let summary = then.map(|then| {
        let span = crate::usage::call_span(state.llm.name(), "chat_summary");
        tracing::Instrument::instrument(then.run(state.clone()), span)
    });
    state.running.spawn(async move {
        reply.await;
        if let Some(summary) = summary {
            summary.await;
        }
    });
    TextStream::new(rx)
}

/// The session `session_id` of `user` (not found if it is not theirs), its replies whose server
/// stopped writing them marked interrupted first.
async fn live_session(
    state: &AppState,
    user: &crate::auth::UserId,
    session_id: &str,
) -> Result<store::Session, AppError> {
    let session = store::find_session(&state.db, user, session_id)
        .await
        .or_internal("load session")?
        .ok_or(AppError::NotFound)?;
    interrupt_stale_replies(
        &state.db,
        state.config.replies.stale_after,
        Some(session_id),
    )
    .await
    .or_internal("check replies")?;
    Ok(session)
}

/// [`live_session`], for a change to the message `message_id` in it.
async fn owned_session(
    state: &AppState,
    user: &crate::auth::UserId,
    session_id: &str,
    message_id: &str,
) -> Result<store::Session, AppError> {
    crate::infra::check_id(session_id)?;
    crate::infra::check_id(message_id)?;
    live_session(state, user, session_id).await
}

/// What a change the chat refused tells the user.
impl std::convert::From<store::Refusal> for AppError {
    fn from(refusal: store::Refusal) -> Self {
        match refusal {
            store::Refusal::Busy => AppError::Conflict(BUSY.into()),
            store::Refusal::NotFound => AppError::NotFound,
            store::Refusal::Refused(why) => AppError::BadRequest(why.into()),
            store::Refusal::Full => AppError::Conflict(sessions::FULL.into()),
        }
    }
}

/// A change to the messages shown, without the model.
pub enum Edit {
    /// A new version of the message with this text.
    Text(String),
    /// Show this version (1-based) of the message's place.
    Show(u32),
    /// Delete the message and what follows it on its branch.
    Delete,
    /// Undo a delete.
    Restore,
}

/// [`edit_for`] for the signed-in user.
#[tracing::instrument(skip_all, fields(session_id = %session_id, message_id = %message_id))]
pub async fn edit(
    session_id: String,
    message_id: String,
    edit: Edit,
) -> Result<MessagePage, AppError> {
    let user = require_user().await?;
    edit_for(&AppState::get()?, &user, &session_id, &message_id, edit).await
}

/// [`reply_again_for`] for the signed-in user.
#[tracing::instrument(skip_all, fields(session_id = %session_id, message_id = %message_id))]
pub async fn reply_again(
    session_id: String,
    message_id: String,
    more: bool,
) -> Result<TextStream<AppError>, AppError> {
    let user = require_user().await?;
    reply_again_for(&AppState::get()?, user, &session_id, &message_id, more).await
}

/// Makes `edit` on the message `message_id` of `user`'s chat `session_id`, and returns the chat's
/// latest page as it now is. 409 while a reply is being written in the chat.
pub async fn edit_for(
    state: &AppState,
    user: &crate::auth::UserId,
    session_id: &str,
    message_id: &str,
    edit: Edit,
) -> Result<MessagePage, AppError> {
    // Checked before anything is read: the text's bounds do not depend on the message.
    let text = match &edit {
        Edit::Text(text) => Some(crate::domain::ReplyText::parse(text)?),
        _ => None,
    };
    let session = owned_session(state, user, session_id, message_id).await?;
    let op = match (&edit, &text) {
        (Edit::Text(_), Some(text)) => {
            // What the user writes is held to their own message's bounds.
            let role = store::message(&state.db, &session.id, message_id)
                .await
                .or_internal("load message")?
                .ok_or(AppError::NotFound)?
                .role;
            if role == MessageRole::User {
                MessageText::parse(text.as_str())?;
            }
            store::Op::Edit {
                text: text.as_str(),
            }
        }
        (Edit::Show(to), _) => store::Op::Show { to: *to },
        (Edit::Delete, _) => store::Op::Delete,
        _ => store::Op::Restore,
    };
    store::change(&state.db, &session.id, message_id, op)
        .await
        .or_internal("change message")??;
    let (messages, earlier) = store::messages_page(&state.db, &session.id, None, PAGE)
        .await
        .or_internal("load messages")?;
    Ok(MessagePage { messages, earlier })
}

/// A new reply from the message `message_id` of `user`'s chat `session_id`: with `more`, the
/// reply is continued (written on from where it stopped); otherwise a new version of the reply
/// is written (or, for a user message, a reply to it). Streams the same events as a send, the
/// first being [`ChatEvent::Replying`].
pub async fn reply_again_for(
    state: &AppState,
    user: crate::auth::UserId,
    session_id: &str,
    message_id: &str,
    more: bool,
) -> Result<TextStream<AppError>, AppError> {
    let session = owned_session(state, &user, session_id, message_id).await?;
    let slot = limits::service::begin_model_call(state, &user).await?;
    let op = if more {
        store::Op::Continue
    } else {
        store::Op::Regenerate
    };
    let store::Done { reply, answers } = store::change(&state.db, &session.id, message_id, op)
        .await
        .or_internal("start reply")??;
    let reply = reply.ok_or("no reply row").or_internal("start reply")?;
    let (messages, earlier) = match &answers {
        Some(_) => store::messages_page(&state.db, &session.id, None, PAGE + 1)
            .await
            .or_internal("load messages")?,
        None => (Vec::new(), None),
    };
    // The page ends with the message answered; the reply is shown apart while it is written.
    let messages: Vec<_> = messages.into_iter().filter(|m| m.id != reply.id).collect();
    let written = more.then_some(reply.content.as_str());
    let prepared = seen::request(
        state,
        &user,
        &session,
        answers.as_deref(),
        written,
        &reply.id,
    )
    .await?;
    let first = ChatEvent::Replying {
        messages,
        earlier,
        reply: reply.clone(),
    };
    Ok(spawn_reply(
        state, user, &session, reply, prepared, slot, first,
    ))
}

/// Stops a reply: marks it stopped in the database (which the task generating it, on any server,
/// notices at its next flush, within half a second) and cancels it at once if this server is
/// generating it.
#[tracing::instrument(skip_all, fields(reply_id = %reply_id))]
pub async fn stop(reply_id: String) -> Result<(), AppError> {
    let user = require_user().await?;
    stop_for(&AppState::get()?, &user, reply_id).await
}

/// [`stop`] for `user`, however they are signed in.
pub async fn stop_for(
    state: &AppState,
    user: &crate::auth::UserId,
    reply_id: String,
) -> Result<(), AppError> {
    crate::infra::check_id(&reply_id)?;
    let status = store::reply_status(&state.db, user, &reply_id)
        .await
        .or_internal("find reply")?
        .ok_or(AppError::NotFound)?;
    if status == MessageStatus::Streaming {
        store::mark_stopped(&state.db, &reply_id)
            .await
            .or_internal("stop reply")?;
        state.running.cancel(&reply_id);
        tracing::info!("reply stopped by the user");
    }
    Ok(())
}
