//! The user's chats: all of them, or those with one character (`?with=ID`; `?with=twin`: with
//! their twin), most recently active first, a page at a time (`?after=ID`, the "More chats"
//! link). Each opens, can be renamed, or moved to the trash (with an Undo) — forms that work
//! without JavaScript too. `?q=words` searches every chat instead (a plain GET form): the messages
//! holding every word, each a link to the chat at that message (`/chats/:id?at=ID#m-ID`).

use crate::chat::{list_chats, search_chats, ImportChat, RenameChat, RestoreChat, TrashChat};
use crate::error::AppError;
use crate::pages::layout::{date, error_view, param};
use leptos::prelude::*;
use leptos::server_fn::error::ServerFnUrlError;
use leptos::server_fn::ServerFn;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

#[component]
pub fn ChatsPage() -> impl IntoView {
    let query = use_query_map();
    let with = move || param(query, "with").filter(|w| !w.is_empty());
    let after = move || param(query, "after").filter(|a| !a.is_empty());
    let rename = ServerAction::<RenameChat>::new();
    let trash = ServerAction::<TrashChat>::new();
    let undo = ServerAction::<RestoreChat>::new();
    // How many chats had been moved to the trash when the last Undo was used.
    let undone = RwSignal::new(0usize);
    let chats = Resource::new(
        move || {
            (
                with(),
                after(),
                rename.version().get() + trash.version().get() + undo.version().get(),
            )
        },
        |(with, after, _)| list_chats(with, after),
    );
    let q = move || param(query, "q").filter(|q| !q.trim().is_empty());
    let hits = Resource::new(q, |q| async move {
        match q {
            Some(q) => search_chats(q).await.map(Some),
            None => Ok(None),
        }
    });
    let new_chat = move || {
        with().map(|w| {
            if w == "twin" {
                "/twin/chat/new".to_string()
            } else {
                format!("/characters/{w}/chat/new")
            }
        })
    };
    // The error of a form post sent without JavaScript (an import, or any form without
    // script), which the server redirected back here.
    let posted = move || {
        param(query, "__err").map(|e| ServerFnUrlError::<AppError>::decode_err(&e).to_string())
    };
    let problem = move || {
        [rename.value().get(), undo.value().get()]
            .into_iter()
            .flatten()
            .find_map(|r| r.err().map(|e| e.to_string()))
            .or_else(|| {
                trash
                    .value()
                    .get()
                    .and_then(|r| r.err().map(|e| e.to_string()))
            })
            .or_else(posted)
    };
    view! {
        <Title text="Chats" />
        <div class="page-head">
            <h1>"Your chats"</h1>
            {move || with().map(|_| view! { <a class="button" href="/chats">"All your chats"</a> })}
            <a class="button" href="/trash">"Trash"</a>
            {move || new_chat().map(|href| view! { <a class="button primary" href=href>"New chat"</a> })}
        </div>
        // One Undo per chat moved to the trash: gone once it is used.
        {move || trash.value().get().and_then(|r| r.ok()).filter(|_| undone.get() < trash.version().get()).map(|id| view! {
            <div class="notice" role="status" data-testid="chat-deleted">
                "Chat moved to the trash. "
                <ActionForm action=undo attr:class="inline"
                    on:submit=move |_| undone.set(trash.version().get_untracked())>
                    <input type="hidden" name="session_id" value=id />
                    <button type="submit">"Undo"</button>
                </ActionForm>
            </div>
        })}
        <form class="chat-search" method="get" action="/chats" role="search">
            <label for="chat-q">"Search your chats"</label>
            <input id="chat-q" type="search" name="q" value=move || q().unwrap_or_default()
                maxlength=crate::chat::MAX_CHAT_QUERY />
            <button type="submit">"Search"</button>
        </form>
        {move || problem().map(|e| view! { <p class="alert" role="alert" data-testid="chats-error">{e}</p> })}
        {move || with().map(|w| view! {
            <details class="import-chat">
                <summary>"Import a SillyTavern chat"</summary>
                <form method="post" action=ImportChat::PATH enctype="multipart/form-data" class="inline">
                    <input type="hidden" name="with" value=w />
                    <label for="chat-file">"Chat file (.jsonl)"</label>
                    <input id="chat-file" type="file" name="chat" required
                        accept=".jsonl,application/jsonl,application/json,text/plain" />
                    <button type="submit">"Import"</button>
                </form>
            </details>
        })}
        <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match hits.await {
                    Ok(None) => None,
                    Ok(Some(found)) if found.is_empty() => Some(view! {
                        <p class="empty" data-testid="no-hits">"No message in your chats has all of those words. "
                            <a href="/chats">"Show your chats"</a> "."</p>
                    }.into_any()),
                    Ok(Some(found)) => Some(view! {
                        <h2>{format!("Messages found: {}", found.len())}</h2>
                        <ul class="chat-list" data-testid="hits">
                            {found.into_iter().map(|h| {
                                let who = match h.role {
                                    crate::chat::MessageRole::User => "You".to_string(),
                                    crate::chat::MessageRole::Assistant => h.with.clone(),
                                };
                                view! {
                                    <li class="chat-row" data-testid="hit">
                                        <a class="chat-link" href=format!("/chats/{}?at={}#m-{}", h.session_id, h.message_id, h.message_id)>
                                            <span class="title">{h.title.clone()}</span>
                                            <span class="muted">{format!("with {} · {} · {}", h.with, who, date(h.created_at))}</span>
                                            <span class="preview">{h.excerpt.clone()}</span>
                                        </a>
                                    </li>
                                }
                            }).collect_view()}
                        </ul>
                    }.into_any()),
                    Err(e) => Some(error_view(e)),
                }
            })}
        </Suspense>
        <Show when=move || q().is_none()>
        <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match chats.await {
                    Ok(page) if page.chats.is_empty() => view! {
                        <p class="empty">"No chats here yet. Open a character from "
                            <a href="/dashboard">"your dashboard"</a> " and say hello."</p>
                    }.into_any(),
                    Ok(page) => {
                        let more = page.next.map(|next| match with() {
                            Some(w) => format!("/chats?with={w}&after={next}"),
                            None => format!("/chats?after={next}"),
                        });
                        view! {
                            <ul class="chat-list" data-testid="chat-list">
                                {page.chats.into_iter().map(|c| {
                                    let title = c.title.clone();
                                    let (id, id2, id3) = (c.session_id.clone(), c.session_id.clone(), c.session_id.clone());
                                    let (t1, t2, t3) = (title.clone(), title.clone(), title.clone());
                                    view! {
                                        <li class="chat-row" data-testid="chat-row">
                                            <a class="chat-link" href=format!("/chats/{id}")>
                                                <span class="title">{c.title.clone()}</span>
                                                <span class="muted">{format!("with {} · {}", c.with, date(c.updated_at))}</span>
                                                <span class="preview">{c.last_message_preview.clone()}</span>
                                            </a>
                                            <details class="rename">
                                                <summary>"Rename"<span class="visually-hidden">{format!(" {t1}")}</span></summary>
                                                <ActionForm action=rename attr:class="inline">
                                                    <input type="hidden" name="session_id" value=id2 />
                                                    <label>"New title "
                                                        <input type="text" name="title" value=t2
                                                            required maxlength=crate::domain::ChatTitle::MAX />
                                                    </label>
                                                    <button type="submit">"Save"</button>
                                                </ActionForm>
                                            </details>
                                            <ActionForm action=trash attr:class="inline">
                                                <input type="hidden" name="session_id" value=id3 />
                                                <button type="submit" aria-label=format!("Delete {t3}")>"Delete"</button>
                                            </ActionForm>
                                        </li>
                                    }
                                }).collect_view()}
                            </ul>
                            {more.map(|href| view! { <a class="button" href=href>"More chats"</a> })}
                        }.into_any()
                    }
                    Err(e) => error_view(e),
                }
            })}
        </Suspense>
        </Show>
    }
}
