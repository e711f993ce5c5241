//! The dashboard: the user's characters, a page at a time. A search form (a plain GET form, so it
//! works without JavaScript) narrows them — `?q=` words in the name, traits, backstory or world,
//! `?trait=`, `?language=`, `?tag=` (the user's own labels), `?fav=1` (favourites only) — and
//! orders them (`?sort=created|chatted|name`); `?after=ID` shows the page after the character `ID`
//! (the "More" link, which keeps the search).
//!
//! Each card has a checkbox; the selection form (a plain POST to `/characters/selection`, handled
//! by the server in `server/src/routes.rs`) deletes, exports, tags, untags or (un)marks as
//! favourites the selected characters, and comes back here with `?done=…&n=…` or `?problem=…`.

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
        tag: param(query, "tag").unwrap_or_default(),
        favourites: param(query, "fav").is_some_and(|f| f == "1"),
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
        {move || outcome(param(query, "done"), param(query, "n"), param(query, "problem"))}
        {move || deleted().map(|ids| view! {
            <div class="notice" role="status" data-testid="deleted-notice">
                {if ids.contains(',') {
                    // Several, from the selection: undone by the same form.
                    let ids: Vec<String> = ids.split(',').map(str::to_string).collect();
                    view! {
                        {format!("Moved {} characters to the trash. ", ids.len())}
                        <form method="post" action=SELECTION class="inline">
                            <input type="hidden" name="action" value="restore" />
                            {ids.into_iter().map(|id| view! { <input type="hidden" name="ids" value=id /> }).collect_view()}
                            <button type="submit">"Undo"</button>
                        </form>
                    }.into_any()
                } else {
                    view! {
                        "Moved to the trash. "
                        <ActionForm action=undo attr:class="inline">
                            <input type="hidden" name="id" value=ids />
                            <button type="submit">"Undo"</button>
                        </ActionForm>
                    }.into_any()
                }}
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
                        <SelectionForm back=link(&filter(), after().as_deref()) />
                        <ul class="cards" data-testid="character-list">
                            {page.characters.into_iter().map(|c| {
                                let href = format!("/characters/{}", c.id);
                                let f = filter();
                                view! {
                                    <li class="card character" data-favourite=c.favourite.to_string()>
                                        <label class="select">
                                            <input type="checkbox" name="ids" value=c.id.clone() form="selection" />
                                            <span class="visually-hidden">{format!("Select {}", c.name)}</span>
                                        </label>
                                        <a href=href class="card-link">
                                            <AvatarBadge avatar=c.avatar.clone() name=c.name.clone() />
                                            <span class="name">{c.name.clone()}</span>
                                            {c.favourite.then(|| view! { <span class="star" role="img" aria-label="Favourite">"★"</span> })}
                                        </a>
                                        <p class="traits">{c.traits.join(" · ")}</p>
                                        {(!c.tags.is_empty()).then(|| view! {
                                            <ul class="tags">
                                                {c.tags.iter().map(|t| {
                                                    let by_tag = CharacterFilter { tag: t.clone(), ..f.clone() };
                                                    view! { <li><a href=link(&by_tag, None)>{t.clone()}</a></li> }
                                                }).collect_view()}
                                            </ul>
                                        })}
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
        ("tag", filter.tag.as_str()),
    ] {
        if !value.trim().is_empty() {
            q.append_pair(key, value);
        }
    }
    if filter.favourites {
        q.append_pair("fav", "1");
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
                <label for="search-tag">"Tag"</label>
                <input id="search-tag" name="tag" value=filter.tag.clone()
                    maxlength=crate::domain::TagName::MAX.to_string() />
            </div>
            <div class="field check">
                <input id="search-fav" type="checkbox" name="fav" value="1" checked=filter.favourites />
                <label for="search-fav">"Favourites only"</label>
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

/// Where the selection form posts (a route of the server's, not a server function: it answers
/// with a redirect back here, or with the zip of an export).
pub const SELECTION: &str = "/characters/selection";

/// What to do with the characters whose boxes are ticked. The boxes are on the cards (tied to this
/// form by `form="selection"`); `back` is this page, to come back to.
#[component]
fn SelectionForm(back: String) -> impl IntoView {
    view! {
        <form id="selection" method="post" action=SELECTION class="selection"
            aria-labelledby="selection-heading" data-testid="selection-form">
            <h2 id="selection-heading" class="visually-hidden">"Selected characters"</h2>
            <input type="hidden" name="back" value=back />
            <span class="muted">"With the ticked characters:"</span>
            <div class="field">
                <label for="selection-tag">"Tags to add or remove"</label>
                <input id="selection-tag" name="tag" placeholder="fantasy, drafts" maxlength="200" />
            </div>
            <button type="submit" name="action" value="tag">"Add tags"</button>
            <button type="submit" name="action" value="untag">"Remove tags"</button>
            <button type="submit" name="action" value="favourite">"Favourite"</button>
            <button type="submit" name="action" value="unfavourite">"Unfavourite"</button>
            <button type="submit" name="action" value="export">"Export"</button>
            <button type="submit" name="action" value="delete" class="danger">"Delete"</button>
        </form>
    }
}

/// The sentence for what the selection form did (`done`, `n`) or why it did nothing (`problem`):
/// codes, never text from the address.
fn outcome(done: Option<String>, n: Option<String>, problem: Option<String>) -> Option<AnyView> {
    if let Some(p) = problem {
        let sentence = match p.as_str() {
            "none" => "Tick at least one character first.".to_string(),
            "too-many" => format!(
                "Select at most {} characters at a time.",
                crate::characters::MAX_SELECTION
            ),
            "tag" => format!(
                "Type the tags to add or remove, separated by commas (each at most {} characters).",
                crate::domain::TagName::MAX
            ),
            "gone" => "One of them is not there any more: nothing was exported. Tick them again."
                .to_string(),
            "busy" => {
                "Some of their tags were being changed elsewhere at the same time; try again."
                    .to_string()
            }
            _ => "That could not be done; try again.".to_string(),
        };
        return Some(
            view! { <p class="alert" role="alert" data-testid="selection-problem">{sentence}</p> }
                .into_any(),
        );
    }
    let n: usize = n.and_then(|n| n.parse().ok()).unwrap_or(0);
    let what = match done?.as_str() {
        "tagged" => "Tagged",
        "untagged" => "Removed the tags from",
        "favourited" => "Marked as favourites:",
        "unfavourited" => "No longer favourites:",
        "restored" => "Brought back",
        "full" => {
            return Some(view! {
                <p class="alert" role="alert" data-testid="selection-problem">
                    {format!("{n} of them already have {} tags: they were left as they were.", crate::domain::Tags::MAX)}
                </p>
            }.into_any())
        }
        _ => return None,
    };
    let noun = if n == 1 { "character" } else { "characters" };
    Some(view! { <p class="notice" role="status" data-testid="selection-done">{format!("{what} {n} {noun}.")}</p> }.into_any())
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
