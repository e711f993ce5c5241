//! The trash: characters and chats deleted in the last 30 days, each with Restore. After that
//! they are removed for good (a character with its chats).

use crate::characters::{list_trash, RestoreCharacter, TRASH_DAYS};
use crate::chat::{trashed_chats, RestoreChat};
use crate::pages::layout::{error_view, AvatarBadge};
use leptos::prelude::*;
use leptos_meta::Title;

#[component]
pub fn TrashPage() -> impl IntoView {
    let restore = ServerAction::<RestoreCharacter>::new();
    let trash = Resource::new(move || restore.version().get(), |_| list_trash());
    let restore_chat = ServerAction::<RestoreChat>::new();
    let chats = Resource::new(move || restore_chat.version().get(), |_| trashed_chats());
    view! {
        <Title text="Trash" />
        <div class="page-head">
            <h1>"Trash"</h1>
            <a class="button" href="/dashboard">"Back to your characters"</a>
        </div>
        <p class="muted">{format!("Deleted characters (with their chats) and deleted chats stay here for {TRASH_DAYS} days.")}</p>
        <h2>"Characters"</h2>
        <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match trash.await {
                    Ok(list) if list.is_empty() => view! {
                        <p class="empty">"The trash is empty."</p>
                    }.into_any(),
                    Ok(list) => view! {
                        <ul class="cards" data-testid="trash-list">
                            {list.into_iter().map(|c| view! {
                                <li class="card character">
                                    <span class="card-link">
                                        <AvatarBadge avatar=c.avatar.clone() name=c.name.clone() />
                                        <span class="name">{c.name.clone()}</span>
                                    </span>
                                    <ActionForm action=restore attr:class="inline">
                                        <input type="hidden" name="id" value=c.id.clone() />
                                        <button type="submit" aria-label=format!("Restore {}", c.name)>"Restore"</button>
                                    </ActionForm>
                                </li>
                            }).collect_view()}
                        </ul>
                    }.into_any(),
                    Err(e) => error_view(e),
                }
            })}
        </Suspense>
        <h2>"Chats"</h2>
        <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match chats.await {
                    Ok(list) if list.is_empty() => view! {
                        <p class="empty">"No deleted chats."</p>
                    }.into_any(),
                    Ok(list) => view! {
                        <ul class="chat-list" data-testid="trashed-chats">
                            {list.into_iter().map(|c| view! {
                                <li class="chat-row">
                                    <span class="chat-link">
                                        <span class="title">{c.title.clone()}</span>
                                        <span class="muted">{format!("with {}", c.with)}</span>
                                    </span>
                                    <ActionForm action=restore_chat attr:class="inline">
                                        <input type="hidden" name="session_id" value=c.session_id.clone() />
                                        <button type="submit" aria-label=format!("Restore {}", c.title)>"Restore"</button>
                                    </ActionForm>
                                </li>
                            }).collect_view()}
                        </ul>
                    }.into_any(),
                    Err(e) => error_view(e),
                }
            })}
        </Suspense>
    }
}
