//! The dashboard: the user's characters, a page at a time. A search form (a plain GET form, so it
//! works without JavaScript) narrows them — `?q=` words in the name, traits, backstory or world,
//! `?trait=`, `?language=` — and orders them (`?sort=created|chatted|name`); `?after=ID` shows the
//! page after the character `ID` (the "More" link, which keeps the search).

use crate::characters::{search_characters, CharacterFilter, CharacterSort, RestoreCharacter};
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
    let filter = move || CharacterFilter {
        q: param(query, "q").unwrap_or_default(),
        trait_name: param(query, "trait").unwrap_or_default(),
        language: param(query, "language").unwrap_or_default(),
        sort: param(query, "sort")
            .and_then(|s| CharacterSort::parse(&s))
            .unwrap_or_default(),
    };
    let characters = Resource::new(
        move || (filter(), after()),
        |(filter, after)| search_characters(filter, after, None),
    );
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
        {move || view! { <SearchForm filter=filter() /> }}
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
                        <p class="empty">"No more characters. " <a href=link(&filter(), None)>"Back to the first page"</a> "."</p>
                    }.into_any(),
                    Ok(page) if page.characters.is_empty() && filter().narrows() => view! {
                        <p class="empty" data-testid="no-match">"No character matches. " <a href="/dashboard">"Show them all"</a> "."</p>
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
                        <nav class="pager" aria-label="Pages">
                            {after().map(|_| view! { <a href=link(&filter(), None) data-testid="first-page">"First page"</a> })}
                            {page.next.map(|id| view! {
                                <a class="button" href=link(&filter(), Some(&id)) data-testid="more-characters">"More"</a>
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

/// The dashboard's address for `filter`, from the character `after` on.
fn link(filter: &CharacterFilter, after: Option<&str>) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    for (key, value) in [
        ("q", filter.q.as_str()),
        ("trait", filter.trait_name.as_str()),
        ("language", filter.language.as_str()),
    ] {
        if !value.trim().is_empty() {
            q.append_pair(key, value);
        }
    }
    if filter.sort != CharacterSort::default() {
        q.append_pair("sort", filter.sort.as_str());
    }
    if let Some(after) = after {
        q.append_pair("after", after);
    }
    let q = q.finish();
    if q.is_empty() {
        "/dashboard".into()
    } else {
        format!("/dashboard?{q}")
    }
}

/// Search, filters and order: a plain GET form, so it works with JavaScript off too.
#[component]
fn SearchForm(filter: CharacterFilter) -> impl IntoView {
    view! {
        <form method="get" action="/dashboard" class="search" role="search" data-testid="search-form">
            <div class="field grow">
                <label for="search-q">"Search"</label>
                <input id="search-q" type="search" name="q" value=filter.q.clone()
                    maxlength=CharacterFilter::MAX_QUERY.to_string()
                    placeholder="Name, trait, backstory, world…" />
            </div>
            <div class="field">
                <label for="search-trait">"Trait"</label>
                <input id="search-trait" name="trait" value=filter.trait_name.clone() maxlength="30" />
            </div>
            <div class="field">
                <label for="search-language">"Language"</label>
                <input id="search-language" name="language" value=filter.language.clone() maxlength="40" />
            </div>
            <div class="field">
                <label for="search-sort">"Order"</label>
                <select id="search-sort" name="sort">
                    {CharacterSort::ALL.into_iter().map(|s| view! {
                        <option value=s.as_str() selected=filter.sort == s>{s.label()}</option>
                    }).collect_view()}
                </select>
            </div>
            <button type="submit">"Search"</button>
        </form>
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
