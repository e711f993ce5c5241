//! The dashboard: the user's characters, a page at a time, newest first. `?after=ID` shows the
//! page after the character `ID` (the "More" link, which works without JavaScript too).

use crate::characters::{list_character_page, RestoreCharacter};
use crate::matches::list_matches;
use crate::pages::layout::{error_view, param, AvatarBadge};
use crate::twins::twin_summary;
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

#[component]
pub fn DashboardPage() -> impl IntoView {
    let query = use_query_map();
    let after = move || param(query, "after").filter(|a| !a.is_empty());
    // `?deleted=ID`: the character just moved to the trash, with an Undo.
    let deleted = move || param(query, "deleted").filter(|d| !d.is_empty());
    let undo = ServerAction::<RestoreCharacter>::new();
    let characters = Resource::new(after, |after| list_character_page(after, None));
    view! {
        <Title text="Dashboard" />
        <div class="page-head">
            <h1>"Your characters"</h1>
            <a class="button" href="/trash">"Trash"</a>
            <a class="button" href="/characters/import">"Import"</a>
            <a class="button" href="/characters/cards.zip" download="" rel="external"
                title="Every character as a Character Card PNG, in one zip">"Export all"</a>
            <a class="button primary" href="/characters/new">"New character"</a>
        </div>
        {move || deleted().map(|id| view! {
            <div class="notice" role="status" data-testid="deleted-notice">
                "Moved to the trash. "
                <ActionForm action=undo attr:class="inline">
                    <input type="hidden" name="id" value=id />
                    <button type="submit">"Undo"</button>
                </ActionForm>
                {move || undo.value().get().and_then(|r| r.err()).map(|e| view! {
                    <span class="alert" role="alert">{e.to_string()}</span>
                })}
            </div>
        })}
        <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match characters.await {
                    Ok(page) if page.characters.is_empty() && after().is_some() => view! {
                        <p class="empty">"No more characters. " <a href="/dashboard">"Back to the newest"</a> "."</p>
                    }.into_any(),
                    Ok(page) if page.characters.is_empty() => view! {
                        <p class="empty">"No characters yet. " <a href="/characters/new">"Create your first one"</a> "."</p>
                    }.into_any(),
                    Ok(page) => view! {
                        <ul class="cards" data-testid="character-list">
                            {page.characters.into_iter().map(|c| {
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
                        <nav class="pager">
                            {after().map(|_| view! { <a href="/dashboard" data-testid="first-page">"Newest"</a> })}
                            {page.next.map(|id| view! {
                                <a class="button" href=format!("/dashboard?after={id}") data-testid="more-characters">"More"</a>
                            })}
                        </nav>
                    }.into_any(),
                    Err(e) => error_view(e),
                }
            })}
        </Suspense>
        <TwinAndMatches />
        <RecentRuns />
    }
}

/// The user's latest play runs, in progress or ended.
#[component]
fn RecentRuns() -> impl IntoView {
    let runs = Resource::new(|| (), |_| crate::play::list_runs(None, Some(5)));
    view! {
        <section class="recent-runs" aria-labelledby="runs-heading" data-testid="dashboard-runs">
            <h2 id="runs-heading">"Recent stories"</h2>
            <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match runs.await {
                        Ok(runs) => {
                            view! { <crate::pages::play::RunList runs empty="No stories played yet: open a character and press Play." /> }.into_any()
                        }
                        Err(e) => error_view(e),
                    }
                })}
            </Suspense>
        </section>
    }
}

/// The user's twin (or a prompt to create one) and their best matches.
#[component]
fn TwinAndMatches() -> impl IntoView {
    let data = Resource::new(
        || (),
        |_| async move {
            let twin = twin_summary().await?;
            let mut matches = match twin {
                Some(_) => list_matches().await?,
                None => Vec::new(),
            };
            matches.sort_by_key(|m| std::cmp::Reverse(m.score));
            matches.truncate(5);
            Ok::<_, crate::error::AppError>((twin, matches))
        },
    );
    view! {
        <section class="twin-and-matches" aria-labelledby="twin-heading" data-testid="dashboard-twin">
            <h2 id="twin-heading">"Your twin and matches"</h2>
            <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match data.await {
                        Ok((None, _)) => view! {
                            <p class="empty">"You have no twin yet: the self you bring into PersonaFlux, described by Shades. "
                                <a href="/twin">"Create your twin"</a> "."</p>
                        }.into_any(),
                        Ok((Some(t), matches)) => view! {
                            <p>
                                <a href="/twin"><strong>{t.name.clone()}</strong></a>
                                {format!(" · {} Shades · {}", t.shades, if t.matchable { "open to matches" } else { "private" })}
                                " · " <a href="/twin/chat">"Chat with your twin"</a>
                                " · " <a href="/matches">"All matches"</a>
                                " (" <a href="/matches?kind=twin">"twins only"</a>
                                ", " <a href="/matches?kind=character">"characters only"</a>
                                ", " <a href="/matches?sort=date">"newest first"</a> ")"
                            </p>
                            {if matches.is_empty() {
                                view! { <p class="muted">"No matches yet. " <a href="/matches">"Find some"</a> "."</p> }.into_any()
                            } else {
                                view! {
                                    <ol class="top-matches">
                                        {matches.into_iter().map(|m| view! {
                                            <li data-state=m.state.label()>
                                                <a href=format!("/matches/{}", m.id)>{m.other.name.clone()}</a>
                                                {match m.score {
                                                    Some(s) => format!(" · {s} / 100"),
                                                    None => format!(" · {}", m.state.label()),
                                                }}
                                                <span class="muted">{format!(" · {}", m.first_line)}</span>
                                            </li>
                                        }).collect_view()}
                                    </ol>
                                }.into_any()
                            }}
                        }.into_any(),
                        Err(e) => error_view(e),
                    }
                })}
            </Suspense>
        </section>
    }
}
