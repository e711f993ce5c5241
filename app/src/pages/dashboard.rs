use crate::characters::list_characters;
use crate::pages::layout::{error_view, AvatarBadge};
use leptos::prelude::*;
use leptos_meta::Title;

#[component]
pub fn DashboardPage() -> impl IntoView {
    let characters = Resource::new(|| (), |_| list_characters());
    view! {
        <Title text="Dashboard" />
        <div class="page-head">
            <h1>"Your characters"</h1>
            <a class="button primary" href="/characters/new">"New character"</a>
        </div>
        <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match characters.await {
                    Ok(list) if list.is_empty() => view! {
                        <p class="empty">"No characters yet. " <a href="/characters/new">"Create your first one"</a> "."</p>
                    }.into_any(),
                    Ok(list) => view! {
                        <ul class="cards" data-testid="character-list">
                            {list.into_iter().map(|c| {
                                let href = format!("/characters/{}", c.id);
                                view! {
                                    <li class="card character">
                                        <a href=href class="card-link">
                                            <AvatarBadge avatar=c.avatar.clone() name=c.name.clone() />
                                            <span class="name">{c.name.clone()}</span>
                                        </a>
                                        <p class="traits">{c.traits.join(" · ")}</p>
                                        <p class="quote">{c.opening_line.clone()}</p>
                                    </li>
                                }
                            }).collect_view()}
                        </ul>
                    }.into_any(),
                    Err(e) => error_view(e),
                }
            })}
        </Suspense>
    }
}
