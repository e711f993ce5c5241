//! The chat page: history, and the reply streaming in as it is written. A reply being written
//! elsewhere (another tab, another server) can be stopped from the history; one whose server
//! stopped writing it is shown cut off (`interrupted`).
//!
//! A user has any number of chats with a character (or their twin): `/characters/:id/chat` opens
//! the latest (or a new one), `/characters/:id/chat/new` a new one, `/chats/:session` a given
//! one, and `/twin/chat`, `/twin/chat/new` the same with one's twin. A new chat is shown with its
//! greeting and made by the first thing done in it ([`start_chat`]); opening a page writes nothing.
//! Any message can start a new chat holding the conversation up to it (Branch).
//!
//! Every message can be edited (a new version; the old one kept) or deleted (with Undo); a reply
//! can be regenerated (a new version) and the last one continued; a place with several versions
//! shows ← n/m → to flip between them, each with the conversation that followed it.

use crate::chat::{
    branch_chat, continue_reply, delete_message, earlier_messages, edit_message, messages_at,
    regenerate_reply, restore_message, send_message, show_version, start_chat, stop_reply,
    view_chat, ChatEvent, ChatMessage, ChatView, EventLines, MessageRole, MessageStatus,
};
use crate::error::AppError;
use crate::pages::layout::{error_view, param, AvatarBadge};
use crate::pages::platform::{focus, go_to, replace_url, spawn_browser_task, TextBox};
use futures::StreamExt;
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::{use_location, use_params_map, use_query_map};

/// The chat opens with its latest page of messages; `?before=SEQ` shows instead the page written
/// before message `SEQ` (the "Load earlier messages" link, which works without JavaScript too).
#[component]
pub fn ChatPage() -> impl IntoView {
    let params = use_params_map();
    let query = use_query_map();
    let location = use_location();
    let session_id = move || param(params, "session");
    let character_id = move || param(params, "id");
    let fresh = move || location.pathname.with(|p| p.ends_with("/new"));
    let before = move || param(query, "before").and_then(|b| b.parse::<i64>().ok());
    // `?at=ID`: the conversation up to that message (a search result), on whichever branch.
    let at = move || param(query, "at").filter(|a| !a.is_empty());
    let chat = Resource::new(
        move || (session_id(), character_id(), fresh(), before(), at()),
        |(session_id, character_id, fresh, before, at)| async move {
            let mut view = view_chat(session_id, character_id, fresh).await?;
            let page = match (at.clone(), before) {
                (Some(at), _) if view.saved => {
                    Some(messages_at(view.session_id.clone(), at).await?)
                }
                (None, Some(before)) if view.saved => {
                    Some(earlier_messages(view.session_id.clone(), before).await?)
                }
                _ => None,
            };
            let older = page.is_some();
            if let Some(page) = page {
                view.messages = page.messages;
                view.earlier = page.earlier;
            }
            Ok::<_, crate::error::AppError>((view, older, at))
        },
    );
    view! {
        <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match chat.await {
                    Ok((view, older, found)) => view! { <ChatRoom view older found /> }.into_any(),
                    Err(e) => error_view(e),
                }
            })}
        </Suspense>
    }
}

/// `older`: the page shown is not the latest (the chat was opened with `?before=` or `?at=`);
/// `found`: the message a search result jumped to (`?at=`), marked.
#[component]
fn ChatRoom(view: ChatView, older: bool, found: Option<String>) -> impl IntoView {
    let ChatView {
        session_id,
        title,
        saved,
        character_id,
        character_name,
        avatar,
        messages: initial,
        earlier,
        offline,
        twin,
        summary,
    } = view;
    let here = format!("/chats/{session_id}");
    let here_file = StoredValue::new(format!("{here}/chat"));
    let (new_chat, all_chats) = if twin {
        ("/twin/chat/new".to_string(), "/chats?with=twin".to_string())
    } else {
        (
            format!("/characters/{character_id}/chat/new"),
            format!("/chats?with={character_id}"),
        )
    };
    let avatar = if avatar.is_empty() {
        crate::domain::Avatar::default().as_str().to_string()
    } else {
        avatar
    };
    let messages = RwSignal::new(initial);
    let earlier = RwSignal::new(earlier);
    // The reply being written, shown below the history until it is saved.
    let live = RwSignal::new(None::<ChatMessage>);
    let error = RwSignal::new(None::<String>);
    let draft = RwSignal::new(String::new());
    let sending = RwSignal::new(false);
    // The message being edited, and its text in the editor.
    let editing = RwSignal::new(None::<String>);
    let edit_text = RwSignal::new(String::new());
    // The message just deleted, for its Undo.
    let deleted = RwSignal::new(None::<String>);
    let name = StoredValue::new(character_name.clone());
    let session_id = StoredValue::new(session_id);
    let found = StoredValue::new(found);
    let chat = NewChat {
        saved: RwSignal::new(saved),
        title: RwSignal::new(title),
        session_id,
        character: StoredValue::new((!twin).then_some(character_id)),
        messages,
        earlier,
    };

    // Earlier messages load in place, above the ones shown, when the reader scrolls to the top
    // (or follows the link, which without script opens the page of them instead). The view
    // stays on the message it was on.
    let loading_earlier = RwSignal::new(false);
    let load_earlier = move || {
        let Some(seq) = earlier.get_untracked() else {
            return;
        };
        if loading_earlier.get_untracked() {
            return;
        }
        loading_earlier.set(true);
        let sid = session_id.get_value();
        spawn_browser_task(async move {
            match earlier_messages(sid, seq).await {
                Ok(page) => {
                    let height = || document().body().map(|b| b.scroll_height()).unwrap_or(0);
                    let before = height();
                    messages.update(|shown| {
                        let mut all = page.messages;
                        all.append(shown);
                        *shown = all;
                    });
                    earlier.set(page.earlier);
                    request_animation_frame(move || {
                        window().scroll_by_with_x_and_y(0.0, f64::from(height() - before));
                    });
                }
                Err(e) => error.set(Some(e.to_string())),
            }
            loading_earlier.set(false);
        });
    };
    Effect::new(move |_| {
        // Opened at its latest messages: scrolled down to them.
        if !older && found.get_value().is_none() {
            request_animation_frame(|| {
                let bottom = document().body().map(|b| b.scroll_height()).unwrap_or(0);
                window().scroll_to_with_x_and_y(0.0, f64::from(bottom));
            });
        }
        let handle = window_event_listener(leptos::ev::scroll, move |_| {
            if window().scroll_y().unwrap_or(f64::MAX) < 80.0 {
                load_earlier();
            }
        });
        on_cleanup(move || handle.remove());
    });

    // Asks for a reply (a send, or a reply written again or on) and streams it; a message from the
    // composer clears its draft once it is saved.
    let ask = move |ask: Ask| {
        error.set(None);
        deleted.set(None);
        sending.set(true);
        spawn_browser_task(async move {
            let page = Page {
                messages,
                earlier,
                live,
                error,
            };
            // In a new chat, the first thing done makes it; its messages then have their ids.
            let ask = match ask {
                Ask::Send { text, after } => chat
                    .made(after)
                    .await
                    .map(|after| Ask::Send { text, after }),
                Ask::Again { message_id, more } => {
                    chat.made(Some(message_id)).await.map(|id| Ask::Again {
                        message_id: id.unwrap_or_default(),
                        more,
                    })
                }
            };
            match ask {
                Ok(ask) => stream_reply(session_id.get_value(), ask, page, draft).await,
                Err(e) => error.set(Some(e.to_string())),
            }
            sending.set(false);
        });
    };

    let composer = TextBox::new();
    let send_draft = move || {
        let text = draft.get_untracked();
        if let Err(e) = crate::domain::MessageText::parse(&text) {
            error.set(Some(e.0));
            return;
        }
        // The page's last message, so a chat moved on in another tab is not written to blind.
        let after = if older {
            None
        } else {
            messages.with_untracked(|ms| ms.last().map(|m| m.id.clone()))
        };
        ask(Ask::Send { text, after });
    };
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        send_draft();
    };
    let stop_live = move || {
        if let Some(m) = live.get_untracked() {
            spawn_browser_task(async move {
                if let Err(e) = stop_reply(m.id).await {
                    error.set(Some(e.to_string()));
                }
            });
        }
    };
    let open_editor = move |id: String, text: String| {
        edit_text.set(text);
        editing.set(Some(id));
    };
    let close_editor = move || {
        editing.set(None);
        focus(composer);
    };
    // The composer's keys: Enter sends (Shift+Enter is a new line), Escape stops the reply being
    // written, Up in an empty composer edits one's last message.
    let composer_keys = move |ev: leptos::ev::KeyboardEvent| match ev.key().as_str() {
        "Enter" if !ev.shift_key() && !ev.is_composing() => {
            ev.prevent_default();
            if !sending.get_untracked() {
                send_draft();
            }
        }
        "Escape" => stop_live(),
        "ArrowUp" if draft.with_untracked(String::is_empty) && !sending.get_untracked() => {
            let mine = messages.with_untracked(|ms| {
                ms.iter()
                    .rev()
                    .find(|m| m.role == MessageRole::User)
                    .map(|m| (m.id.clone(), m.content.clone()))
            });
            if let Some((id, text)) = mine {
                ev.prevent_default();
                open_editor(id, text);
            }
        }
        _ => {}
    };

    // A change that returns the chat's latest page (edit, another version, delete, undo).
    let change = move |id: String, what: Change| {
        error.set(None);
        sending.set(true);
        spawn_browser_task(async move {
            let sid = session_id.get_value();
            let id = match chat.made(Some(id)).await {
                Ok(id) => id.unwrap_or_default(),
                Err(e) => {
                    error.set(Some(e.to_string()));
                    sending.set(false);
                    return;
                }
            };
            let undo = matches!(what, Change::Delete).then(|| id.clone());
            let page = match what {
                Change::Show(v) => show_version(sid, id, v).await,
                Change::Delete => delete_message(sid, id).await,
                Change::Restore => restore_message(sid, id).await,
            };
            match page {
                Ok(page) => {
                    // After a delete, the keyboard goes on from the composer.
                    if undo.is_some() {
                        focus(composer);
                    }
                    deleted.set(undo);
                    messages.set(page.messages);
                    earlier.set(page.earlier);
                }
                Err(e) => error.set(Some(e.to_string())),
            }
            sending.set(false);
        });
    };

    // A new chat holding the conversation up to a message, opened at once.
    let branch = move |id: String| {
        error.set(None);
        sending.set(true);
        spawn_browser_task(async move {
            match branch_chat(session_id.get_value(), id).await {
                Ok(new) => go_to(&format!("/chats/{new}")),
                Err(e) => {
                    error.set(Some(e.to_string()));
                    sending.set(false);
                }
            }
        });
    };

    // Stop a reply being written elsewhere (shown in the history as `streaming`).
    let stop_elsewhere = move |reply_id: String| {
        spawn_browser_task(async move {
            match stop_reply(reply_id.clone()).await {
                Ok(()) => messages.update(|ms| {
                    if let Some(m) = ms.iter_mut().find(|m| m.id == reply_id) {
                        m.status = MessageStatus::Stopped;
                    }
                }),
                Err(e) => error.set(Some(e.to_string())),
            }
        });
    };

    // One message; `live` for the reply this page is streaming (its Stop is in the composer).
    let bubble = move |m: ChatMessage, here_live: bool| {
        let who = match m.role {
            MessageRole::User => "You".to_string(),
            MessageRole::Assistant => name.get_value(),
        };
        let user = m.role == MessageRole::User;
        let class = match (user, found.get_value().as_deref() == Some(m.id.as_str())) {
            (true, false) => "msg user",
            (false, false) => "msg assistant",
            (true, true) => "msg user found",
            (false, true) => "msg assistant found",
        };
        let note = match m.status {
            MessageStatus::Complete => None,
            MessageStatus::Streaming => Some("writing…"),
            MessageStatus::Stopped => Some("stopped"),
            MessageStatus::Failed => Some("cut off"),
            MessageStatus::Interrupted => Some("interrupted — the server stopped while writing"),
        };
        let text = if m.content.is_empty() && m.status == MessageStatus::Failed {
            "(no reply: the model failed before writing anything)".to_string()
        } else {
            m.content.clone()
        };
        // Rendered on the server (a reply being written here is plain text until it ends).
        let text = if m.html.is_empty() || m.content.is_empty() {
            leptos::either::Either::Left(view! { <p class="text">{text}</p> })
        } else {
            leptos::either::Either::Right(
                view! { <div class="text md" inner_html=m.html.clone()></div> },
            )
        };
        let id = StoredValue::new(m.id.clone());
        let content = StoredValue::new(m.content.clone());
        let (version, versions) = (m.version, m.versions);
        // The chat's last message (on its latest page: an older page's last is not the end).
        let is_last = move || {
            !older && messages.with(|ms| ms.last().map(|l| l.id == id.get_value()).unwrap_or(false))
        };
        // Each button says whose message it acts on, to a screen reader.
        let whose = if user {
            " your message".to_string()
        } else {
            format!(" {}'s message", name.get_value())
        };
        let whose = StoredValue::new(whose);
        let named = move |verb: &'static str| {
            view! { {verb}<span class="visually-hidden">{whose.get_value()}</span> }
        };
        // The chat's first message answers nothing: it is edited, not written again.
        let first = move || {
            earlier.get().is_none()
                && messages.with(|ms| ms.first().map(|f| f.id == id.get_value()).unwrap_or(false))
        };
        let idle = move || !sending.get() && live.with(Option::is_none);
        let stop = (m.status == MessageStatus::Streaming && !here_live).then(|| {
            view! {
                <button type="button" class="stop" on:click=move |_| stop_elsewhere(id.get_value())>"Stop"</button>
            }
        });
        let switcher = (versions > 1 && !here_live).then(|| {
            view! {
                <span class="versions needs-js">
                    <button type="button" class="icon"
                        disabled=move || { version <= 1 || !idle() }
                        on:click=move |_| change(id.get_value(), Change::Show(version - 1))>
                        <span aria-hidden="true">"←"</span><span class="visually-hidden">"Previous version"</span>
                    </button>
                    <span aria-hidden="true">{format!("{version}/{versions}")}</span>
                    <span class="visually-hidden">{format!("version {version} of {versions}")}</span>
                    <button type="button" class="icon"
                        disabled=move || { version >= versions || !idle() }
                        on:click=move |_| change(id.get_value(), Change::Show(version + 1))>
                        <span aria-hidden="true">"→"</span><span class="visually-hidden">"Next version"</span>
                    </button>
                </span>
            }
        });
        let settled = m.status != MessageStatus::Streaming;
        // A reply that did not finish is tried again; one that did is written anew.
        let again = match m.status {
            MessageStatus::Failed | MessageStatus::Interrupted => "Retry",
            _ => "Regenerate",
        };
        let tools = (settled && !here_live).then(|| {
            view! {
                <span class="tools needs-js">
                    <button type="button" class="link" disabled=move || !idle()
                        on:click=move |_| open_editor(id.get_value(), content.get_value())>{named("Edit")}</button>
                    {(!user).then(|| view! {
                        <Show when=move || !first()>
                            <button type="button" class="link retry" disabled=move || !idle()
                                on:click=move |_| ask(Ask::Again { message_id: id.get_value(), more: false })>
                                {named(again)}</button>
                        </Show>
                        <Show when=is_last>
                            <button type="button" class="link" disabled=move || !idle()
                                on:click=move |_| ask(Ask::Again { message_id: id.get_value(), more: true })>
                                {named("Continue")}</button>
                        </Show>
                    })}
                    {user.then(|| view! {
                        <Show when=is_last>
                            <button type="button" class="link" disabled=move || !idle()
                                on:click=move |_| ask(Ask::Again { message_id: id.get_value(), more: false })>
                                "Get a reply"<span class="visually-hidden">" to your message"</span></button>
                        </Show>
                    })}
                    <Show when=move || chat.saved.get()>
                        <button type="button" class="link" disabled=move || !idle()
                            on:click=move |_| branch(id.get_value())>
                            "Branch"<span class="visually-hidden">{format!(" a new chat from{}", whose.get_value())}</span></button>
                    </Show>
                    <button type="button" class="link" disabled=move || !idle()
                        on:click=move |_| change(id.get_value(), Change::Delete)>{named("Delete")}</button>
                </span>
            }
        });
        // What the reply was written from: a page of its own, a plain link.
        let saw = (!user && settled && !here_live).then(|| {
            view! {
                <Show when=move || chat.saved.get() && !first()>
                    <a class="saw" href=move || format!("/chats/{}?seen={}", session_id.get_value(), id.get_value())>
                        "What the model saw"<span class="visually-hidden">{format!(" for{}", whose.get_value())}</span></a>
                </Show>
            }
        });
        let editor = move || {
            (editing.get().as_deref() == Some(id.get_value().as_str())).then(|| {
                let save = move |reply: bool| {
                    let text = edit_text.get_untracked();
                    let sid = session_id.get_value();
                    let mid = id.get_value();
                    error.set(None);
                    sending.set(true);
                    spawn_browser_task(async move {
                        let edited = match chat.made(Some(mid)).await {
                            Ok(mid) => edit_message(sid, mid.unwrap_or_default(), text).await,
                            Err(e) => Err(e),
                        };
                        match edited {
                            Ok(page) => {
                                close_editor();
                                let asked = page.messages.last().map(|m| m.id.clone());
                                messages.set(page.messages);
                                earlier.set(page.earlier);
                                sending.set(false);
                                if let (true, Some(message_id)) = (reply, asked) {
                                    ask(Ask::Again { message_id, more: false });
                                }
                            }
                            Err(e) => {
                                error.set(Some(e.to_string()));
                                sending.set(false);
                            }
                        }
                    });
                };
                let label = format!("Edit the message from {}", if user { "you".to_string() } else { name.get_value() });
                let editor_box = TextBox::new();
                focus(editor_box);
                view! {
                    <form class="edit" on:submit=move |ev| { ev.prevent_default(); save(false); }>
                        <textarea aria-label=label rows=3 node_ref=editor_box prop:value=move || edit_text.get()
                            on:input=move |ev| edit_text.set(event_target_value(&ev))
                            on:keydown=move |ev| if ev.key() == "Escape" { close_editor(); }></textarea>
                        <button type="submit" class="primary" disabled=move || sending.get()>"Save"</button>
                        {user.then(|| view! {
                            <button type="button" disabled=move || sending.get()
                                on:click=move |_| save(true)>"Save and get a reply"</button>
                        })}
                        <button type="button" on:click=move |_| close_editor()>"Cancel"</button>
                    </form>
                }
            })
        };
        view! {
            <li class=class id=format!("m-{}", m.id) data-status=m.status.as_str() data-testid="message">
                <span class="who">{who}</span>
                {text}
                {note.map(|n| view! { <span class="status">{n}</span> })}
                {switcher}
                {stop}
                {tools}
                {saw}
                {editor}
            </li>
        }
    };

    view! {
        <Title text=character_name.clone() />
        <div class="chat">
            <div class="chat-head">
                <AvatarBadge avatar=avatar name=character_name.clone() />
                <div class="chat-name">
                    <h1>{character_name.clone()}</h1>
                    <p class="chat-meta">
                        <span data-testid="chat-title">{move || chat.title.get()}</span>
                        // A full page load: once a new chat is made here, the address is the
                        // chat's own but the router still holds the new chat's.
                        " · " <a href=new_chat rel="external" data-testid="new-chat">"New chat"</a>
                        " · " <a href=all_chats>"All chats"<span class="visually-hidden">{format!(" with {character_name}")}</span></a>
                        <Show when=move || chat.saved.get()>
                            " · Download: "
                            <a href=format!("{}.jsonl", here_file.get_value()) download="" rel="external"
                                title="For SillyTavern and other tools: this conversation, each reply's versions as swipes">"JSONL"</a>
                            " · "
                            <a href=format!("{}.md", here_file.get_value()) download="" rel="external">"Markdown"</a>
                        </Show>
                    </p>
                </div>
                {offline.then(|| view! {
                    <span class="badge offline" title="Replies are written by the built-in offline writer; no AI model is configured.">"offline"</span>
                })}
            </div>
            // The running summary: what the model is told of the messages it is no longer sent,
            // and the owner's to correct (a plain form, with or without script).
            {(!summary.is_empty()).then(|| {
                let summary_path = <crate::chat::SaveSummary as leptos::server_fn::ServerFn>::PATH;
                view! {
                <details class="summary" data-testid="summary">
                    <summary>"Summary of earlier messages"</summary>
                    <p class="muted">"What the model is told of the messages that no longer fit in what it is sent. Correct it if it is wrong: the next update starts from your words."</p>
                    <form method="post" action=summary_path>
                        <input type="hidden" name="session_id" value=session_id.get_value() />
                        <textarea name="text" rows=6 aria-label="The summary" maxlength=crate::domain::ChatSummaryText::MAX.to_string()>{summary}</textarea>
                        <button type="submit">"Save the summary"</button>
                    </form>
                </details>
            }})}
            {
                let here = here.clone();
                move || earlier.get().map(|seq| view! {
                    <a class="earlier" href=format!("{here}?before={seq}") data-testid="load-earlier"
                        on:click=move |ev| { ev.prevent_default(); load_earlier(); }>"Load earlier messages"</a>
                })
            }
            <ol class="log" aria-live="polite" data-testid="chat-log">
                <For each=move || messages.get()
                    key=|m| (m.id.clone(), m.status, m.content.len(), m.version, m.versions)
                    children=move |m| bubble(m, false) />
                {move || live.get().map(|m| bubble(m, true))}
            </ol>
            {older.then(|| view! {
                <a class="latest" href=here.clone()
                    data-testid="load-latest">"Back to the latest messages"</a>
            })}
            {move || deleted.get().map(|id| view! {
                <p class="notice" role="status">"Message deleted. "
                    <button type="button" class="link" disabled=move || sending.get()
                        on:click=move |_| change(id.clone(), Change::Restore)>"Undo"</button>
                </p>
            })}
            {move || error.get().map(|e| view! { <p class="alert" role="alert">{e}</p> })}
            <form class="composer" on:submit=submit>
                <label for="message" class="visually-hidden">"Your message"</label>
                <textarea id="message" name="text" rows=2 placeholder=format!("Say something to {character_name}…")
                    node_ref=composer aria-describedby="composer-keys"
                    prop:value=move || draft.get()
                    on:input=move |ev| draft.set(event_target_value(&ev))
                    on:keydown=composer_keys
                    ></textarea>
                <p id="composer-keys" class="hint">"Enter sends, Shift+Enter adds a line, Escape stops a reply, ↑ edits your last message."</p>
                <button type="submit" class="primary" disabled=move || sending.get()>
                    {move || if sending.get() { "Replying…" } else { "Send" }}
                </button>
                {move || live.get().map(|_| view! {
                    <button type="button" class="stop" on:click=move |_| stop_live()>"Stop"</button>
                })}
            </form>
        </div>
    }
}

/// What a reply is asked with.
enum Ask {
    /// A new message from the user, after the last message the page shows.
    Send { text: String, after: Option<String> },
    /// The message's reply written again (`more: false`; for a user message, a reply to it) or
    /// written on (`more: true`).
    Again { message_id: String, more: bool },
}

/// A change to the messages shown, made without the model.
enum Change {
    Show(u32),
    Delete,
    Restore,
}

/// A chat shown before it is made (a new chat: its greeting only), and what making it changes.
#[derive(Clone, Copy)]
struct NewChat {
    saved: RwSignal<bool>,
    /// "New chat" until it is made.
    title: RwSignal<String>,
    session_id: StoredValue<String>,
    /// The character it is with; none for the user's twin.
    character: StoredValue<Option<String>>,
    messages: RwSignal<Vec<ChatMessage>>,
    earlier: RwSignal<Option<i64>>,
}

impl NewChat {
    /// Makes the chat if it is not made yet, and gives `id` (a message the page shows) as the
    /// chat made has it: the message in the same place. The address becomes the chat's own.
    async fn made(self, id: Option<String>) -> Result<Option<String>, AppError> {
        if self.saved.get_untracked() {
            return Ok(id);
        }
        let place = id.as_ref().and_then(|id| {
            self.messages
                .with_untracked(|ms| ms.iter().position(|m| &m.id == id))
        });
        let view = start_chat(self.session_id.get_value(), self.character.get_value()).await?;
        // The chat made holds only its greeting, as the page showed it; one that holds more was
        // made by an earlier action (another tab, a retry) and is shown as it is, untouched.
        let moved = view.messages.len() != 1 || view.earlier.is_some();
        let id = place
            .and_then(|i| view.messages.get(i))
            .map(|m| m.id.clone());
        self.messages.set(view.messages);
        self.earlier.set(view.earlier);
        self.saved.set(true);
        self.title.set(view.title);
        replace_url(&format!("/chats/{}", view.session_id));
        if moved {
            return Err(AppError::Conflict(
                "This chat changed in another tab or window. Here it is as it now is; try again."
                    .into(),
            ));
        }
        Ok(id)
    }
}

/// What the page shows of the chat, as a reply's events change it.
#[derive(Clone, Copy)]
struct Page {
    messages: RwSignal<Vec<ChatMessage>>,
    earlier: RwSignal<Option<i64>>,
    live: RwSignal<Option<ChatMessage>>,
    error: RwSignal<Option<String>>,
}

/// Asks for the reply and applies its events as they arrive.
async fn stream_reply(session_id: String, ask: Ask, page: Page, draft: RwSignal<String>) {
    let Page {
        messages,
        earlier,
        live,
        error,
    } = page;
    let typed = matches!(ask, Ask::Send { .. });
    let stream = match ask {
        Ask::Send { text, after } => send_message(session_id, text, after).await,
        Ask::Again {
            message_id,
            more: true,
        } => continue_reply(session_id, message_id).await,
        Ask::Again { message_id, .. } => regenerate_reply(session_id, message_id).await,
    };
    let stream = match stream {
        Ok(s) => s,
        Err(e) => {
            error.set(Some(e.to_string()));
            return;
        }
    };
    let mut stream = stream.into_inner();
    let mut lines = EventLines::default();
    let mut finished = false;
    while let Some(chunk) = stream.next().await {
        let chunk = match chunk {
            Ok(c) => c,
            Err(e) => {
                error.set(Some(e.to_string()));
                break;
            }
        };
        for event in lines.push(&chunk) {
            match event {
                Ok(ChatEvent::Accepted {
                    user_message,
                    reply_id,
                }) => {
                    if typed {
                        draft.set(String::new());
                    }
                    let created_at = user_message.created_at;
                    messages.update(|m| m.push(user_message));
                    live.set(Some(ChatMessage {
                        id: reply_id,
                        role: MessageRole::Assistant,
                        content: String::new(),
                        status: MessageStatus::Streaming,
                        created_at,
                        version: 1,
                        versions: 1,
                        html: String::new(),
                    }));
                }
                Ok(ChatEvent::Replying {
                    messages: shown,
                    earlier: before,
                    reply,
                }) => {
                    messages.set(shown);
                    earlier.set(before);
                    live.set(Some(reply));
                }
                Ok(ChatEvent::Delta { text }) => live.update(|l| {
                    if let Some(l) = l {
                        l.content.push_str(&text);
                        // Plain text while it is written; formatted once it ends.
                        l.html.clear();
                    }
                }),
                Ok(ChatEvent::Formatted { html }) => live.update(|l| {
                    if let Some(l) = l {
                        l.html = html;
                    }
                }),
                Ok(ChatEvent::Finished { status }) => {
                    finish(messages, live, status);
                    finished = true;
                }
                Ok(ChatEvent::Failed { message }) => {
                    finish(messages, live, MessageStatus::Failed);
                    error.set(Some(message));
                    finished = true;
                }
                Err(_) => error.set(Some("The reply could not be read.".into())),
            }
        }
    }
    if !finished {
        // The connection dropped: the server still finishes and saves the reply.
        finish(messages, live, MessageStatus::Failed);
        error.get_untracked().is_none().then(|| {
            error.set(Some(
                "The connection was lost while the reply was being written. Reload to see the saved reply."
                    .into(),
            ))
        });
    }
}

fn finish(
    messages: RwSignal<Vec<ChatMessage>>,
    live: RwSignal<Option<ChatMessage>>,
    status: MessageStatus,
) {
    if let Some(mut m) = live.get_untracked() {
        m.status = status;
        messages.update(|ms| ms.push(m));
    }
    live.set(None);
}
