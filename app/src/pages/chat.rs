//! The chat page: history, and the reply streaming in as it is written. A reply being written
//! elsewhere (another tab, another server) can be stopped from the history; one whose server
//! stopped writing it is shown cut off (`interrupted`), with a Retry that sends the message it
//! answered again.

use crate::chat::{
    earlier_messages, open_chat, open_twin_chat, send_message, stop_reply, ChatEvent, ChatMessage,
    ChatView, EventLines, MessageRole, MessageStatus,
};
use crate::pages::layout::{error_view, param, AvatarBadge};
use crate::pages::platform::spawn_browser_task;
use futures::StreamExt;
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::{use_params_map, use_query_map};

/// The chat opens with its latest page of messages; `?before=SEQ` shows instead the page written
/// before message `SEQ` (the "Load earlier messages" link, which works without JavaScript too).
/// `/characters/:id/chat` is the chat with a character, `/twin/chat` the chat with one's twin.
#[component]
pub fn ChatPage() -> impl IntoView {
    let params = use_params_map();
    let query = use_query_map();
    let character_id = move || param(params, "id");
    let before = move || param(query, "before").and_then(|b| b.parse::<i64>().ok());
    let chat = Resource::new(
        move || (character_id(), before()),
        |(character_id, before)| async move {
            let mut view = match character_id {
                Some(id) => open_chat(id).await?,
                None => open_twin_chat().await?,
            };
            if let Some(before) = before {
                let page = earlier_messages(view.session_id.clone(), before).await?;
                view.messages = page.messages;
                view.earlier = page.earlier;
            }
            Ok::<_, crate::error::AppError>((view, before.is_some()))
        },
    );
    view! {
        <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match chat.await {
                    Ok((view, older)) => view! { <ChatRoom view older /> }.into_any(),
                    Err(e) => error_view(e),
                }
            })}
        </Suspense>
    }
}

/// `older`: the page shown is not the latest (the chat was opened with `?before=`).
#[component]
fn ChatRoom(view: ChatView, older: bool) -> impl IntoView {
    let ChatView {
        session_id,
        character_id,
        character_name,
        avatar,
        messages: initial,
        earlier,
        offline,
        twin,
    } = view;
    let here = if twin {
        "/twin/chat".to_string()
    } else {
        format!("/characters/{character_id}/chat")
    };
    let avatar = if avatar.is_empty() {
        crate::domain::Avatar::default().as_str().to_string()
    } else {
        avatar
    };
    let messages = RwSignal::new(initial);
    // The reply being written, shown below the history until it is saved.
    let live = RwSignal::new(None::<ChatMessage>);
    let error = RwSignal::new(None::<String>);
    let draft = RwSignal::new(String::new());
    let sending = RwSignal::new(false);
    let name = StoredValue::new(character_name.clone());
    let session_id = StoredValue::new(session_id);

    // Sends `text` and streams the reply; `typed` when it comes from the composer (whose draft
    // is cleared once the message is saved).
    let send = move |text: String, typed: bool| {
        error.set(None);
        sending.set(true);
        spawn_browser_task(async move {
            let draft = typed.then_some(draft);
            stream_reply(session_id.get_value(), text, messages, live, error, draft).await;
            sending.set(false);
        });
    };

    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let text = draft.get_untracked();
        if let Err(e) = crate::domain::MessageText::parse(&text) {
            error.set(Some(e.0));
            return;
        }
        send(text, true);
    };

    // Retry after an interrupted reply: the user's message before it, sent again.
    let retry = move |reply_id: String| {
        let asked = messages.with_untracked(|ms| {
            let at = ms.iter().position(|m| m.id == reply_id)?;
            ms[..at]
                .iter()
                .rev()
                .find(|m| m.role == MessageRole::User)
                .map(|m| m.content.clone())
        });
        match asked {
            Some(text) => send(text, false),
            None => error.set(Some("There is no message to send again.".into())),
        }
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
    let bubble = move |m: ChatMessage, live: bool| {
        let who = match m.role {
            MessageRole::User => "You".to_string(),
            MessageRole::Assistant => name.get_value(),
        };
        let class = match m.role {
            MessageRole::User => "msg user",
            MessageRole::Assistant => "msg assistant",
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
            m.content
        };
        let id = m.id.clone();
        let action = match m.status {
            MessageStatus::Interrupted => Some(
                view! {
                    <button type="button" class="retry" disabled=move || sending.get()
                        on:click=move |_| retry(id.clone())>"Retry"</button>
                }
                .into_any(),
            ),
            MessageStatus::Streaming if !live => Some(
                view! {
                    <button type="button" class="stop" on:click=move |_| stop_elsewhere(id.clone())>"Stop"</button>
                }
                .into_any(),
            ),
            _ => None,
        };
        view! {
            <li class=class data-status=m.status.as_str() data-testid="message">
                <span class="who">{who}</span>
                <p class="text">{text}</p>
                {note.map(|n| view! { <span class="status">{n}</span> })}
                {action}
            </li>
        }
    };

    view! {
        <Title text=character_name.clone() />
        <div class="chat">
            <div class="chat-head">
                <AvatarBadge avatar=avatar name=character_name.clone() />
                <h1>{character_name.clone()}</h1>
                {offline.then(|| view! {
                    <span class="badge offline" title="Replies are written by the built-in offline writer; no AI model is configured.">"offline"</span>
                })}
            </div>
            {earlier.map(|seq| view! {
                <a class="earlier" href=format!("{here}?before={seq}")
                    data-testid="load-earlier">"Load earlier messages"</a>
            })}
            <ol class="log" aria-live="polite" data-testid="chat-log">
                <For each=move || messages.get() key=|m| (m.id.clone(), m.status, m.content.len())
                    children=move |m| bubble(m, false) />
                {move || live.get().map(|m| bubble(m, true))}
            </ol>
            {older.then(|| view! {
                <a class="latest" href=here.clone()
                    data-testid="load-latest">"Back to the latest messages"</a>
            })}
            {move || error.get().map(|e| view! { <p class="alert" role="alert">{e}</p> })}
            <form class="composer" on:submit=submit>
                <label for="message" class="visually-hidden">"Your message"</label>
                <textarea id="message" name="text" rows=2 placeholder=format!("Say something to {character_name}…")
                    prop:value=move || draft.get()
                    on:input=move |ev| draft.set(event_target_value(&ev))
                    ></textarea>
                <button type="submit" class="primary" disabled=move || sending.get()>
                    {move || if sending.get() { "Replying…" } else { "Send" }}
                </button>
                {move || live.get().map(|m| {
                    let id = m.id.clone();
                    view! {
                        <button type="button" class="stop" on:click=move |_| {
                            let id = id.clone();
                            spawn_browser_task(async move {
                                if let Err(e) = stop_reply(id).await {
                                    error.set(Some(e.to_string()));
                                }
                            });
                        }>"Stop"</button>
                    }
                })}
            </form>
        </div>
    }
}

/// Sends the message and applies the reply's events as they arrive.
async fn stream_reply(
    session_id: String,
    text: String,
    messages: RwSignal<Vec<ChatMessage>>,
    live: RwSignal<Option<ChatMessage>>,
    error: RwSignal<Option<String>>,
    draft: Option<RwSignal<String>>,
) {
    let stream = match send_message(session_id, text).await {
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
                    if let Some(draft) = draft {
                        draft.set(String::new());
                    }
                    messages.update(|m| m.push(user_message.clone()));
                    live.set(Some(ChatMessage {
                        id: reply_id,
                        role: MessageRole::Assistant,
                        content: String::new(),
                        status: MessageStatus::Streaming,
                        created_at: user_message.created_at,
                    }));
                }
                Ok(ChatEvent::Delta { text }) => live.update(|l| {
                    if let Some(l) = l {
                        l.content.push_str(&text);
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
