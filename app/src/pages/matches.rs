//! `/matches`: the user's compatibility matches — ranked, each with its score (or "updating",
//! "failed"), the other persona and the reasoning's first sentence; filters (twins only,
//! characters only) and sort (score, date) as links — and who their twin could be matched with,
//! ranked without the model, each with "Work out the match". `/matches/:id`: one match whole.
//! Every action is a link or a form post, so both work without JavaScript; with it, the list
//! looks again every two seconds while a match is updating.

use crate::domain::{PersonaKind, PersonaRef};
use crate::matches::{
    get_match, kind_label, list_matches, match_candidates, start_icebreaker, Candidate, Icebreaker,
    IcebreakerEvent, IcebreakerLine, MatchState, MatchSummary, MatchView, ScoreMatch,
};
use crate::pages::layout::{error_view, param, RequireSignIn};
use crate::pages::platform::spawn_browser_task;
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::{use_navigate, use_params_map, use_query_map};

/// While anything shown is updating, look again in two seconds (in the browser only).
fn refresh_while<T>(resource: Resource<T>, updating: impl Fn(&T) -> bool + Send + Sync + 'static)
where
    T: Clone + Send + Sync + serde::Serialize + serde::de::DeserializeOwned + 'static,
{
    Effect::new(move |_| {
        let again = resource.get().is_some_and(|v| updating(&v));
        if again {
            set_timeout(
                move || resource.refetch(),
                std::time::Duration::from_secs(2),
            );
        }
    });
}

#[component]
pub fn MatchesPage() -> impl IntoView {
    let query = use_query_map();
    let kind = move || param(query, "kind").and_then(|k| PersonaKind::parse(&k));
    let by_score = move || param(query, "sort").as_deref() != Some("date");
    let score = ServerAction::<ScoreMatch>::new();
    let data = Resource::new(
        move || score.version().get(),
        |_| async move {
            Ok::<_, crate::error::AppError>((list_matches().await?, match_candidates().await?))
        },
    );
    refresh_while(data, |r| {
        r.as_ref()
            .is_ok_and(|(list, _)| list.iter().any(|m| m.state == MatchState::Updating))
    });
    let navigate = use_navigate();
    Effect::new(move |_| {
        if let Some(Ok(m)) = score.value().get() {
            navigate(&format!("/matches/{}", m.id), Default::default());
        }
    });
    let link = move |k: Option<&str>, sort: &str| {
        let mut q = vec![format!("sort={sort}")];
        if let Some(k) = k {
            q.push(format!("kind={k}"));
        }
        format!("/matches?{}", q.join("&"))
    };
    view! {
        <RequireSignIn>
            <Title text="Matches" />
            <div class="page-head">
                <h1>"Matches"</h1>
                <a class="button" href="/twin">"Your twin"</a>
            </div>
            {move || score.value().get().and_then(|r| r.err()).map(|e| view! {
                <p class="alert" role="alert">{e.to_string()}</p>
            })}
            <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    let (list, candidates) = match data.await {
                        Ok(d) => d,
                        Err(e) => return error_view(e),
                    };
                    let Some(me) = candidates.twin.clone() else {
                        return view! {
                            <p class="empty">"Matches start from your twin. " <a href="/twin">"Create your twin"</a> " first."</p>
                        }.into_any();
                    };
                    let sort = if by_score() { "score" } else { "date" };
                    let mut shown: Vec<MatchSummary> = list
                        .into_iter()
                        .filter(|m| kind().is_none_or(|k| m.other.persona.kind == k))
                        .collect();
                    if by_score() {
                        shown.sort_by_key(|m| std::cmp::Reverse(m.score));
                    }
                    let current = kind();
                    let filter = |label: &'static str, k: Option<&'static str>| {
                        let on = k.and_then(PersonaKind::parse) == current;
                        view! { <a href=link(k, sort) aria-current=on.then_some("page")>{label}</a> }
                    };
                    let kind_q = current.map(|k| k.as_str());
                    view! {
                        <section aria-labelledby="your-matches">
                            <h2 id="your-matches">"Your matches"</h2>
                            <nav class="filters" aria-label="Filter and sort matches">
                                {filter("All", None)} {filter("Twins only", Some("twin"))} {filter("Characters only", Some("character"))}
                                " · Sort by "
                                <a href=link(kind_q, "score") aria-current=by_score().then_some("page")>"score"</a> " "
                                <a href=link(kind_q, "date") aria-current=(!by_score()).then_some("page")>"date"</a>
                            </nav>
                            {if shown.is_empty() {
                                view! { <p class="empty">"No matches yet: work one out below."</p> }.into_any()
                            } else {
                                view! {
                                    <ul class="cards" data-testid="match-list">
                                        {shown.into_iter().map(|m| view! { <MatchCard m /> }).collect_view()}
                                    </ul>
                                }.into_any()
                            }}
                        </section>
                        <section aria-labelledby="people">
                            <h2 id="people">"Other people's twins"</h2>
                            {if !candidates.matchable {
                                view! { <p class="muted">"Open your twin to matches on " <a href="/twin">"the twin page"</a> " to meet other people's twins (only Shades you mark public are used)."</p> }.into_any()
                            } else if candidates.twins.is_empty() {
                                view! { <p class="muted">"No one shares words with your public Shades yet."</p> }.into_any()
                            } else {
                                view! { <CandidateList list=candidates.twins.clone() me=me.clone() score /> }.into_any()
                            }}
                        </section>
                        <section aria-labelledby="your-characters">
                            <h2 id="your-characters">"Your characters"</h2>
                            {if candidates.characters.is_empty() {
                                view! { <p class="muted">"No characters yet."</p> }.into_any()
                            } else {
                                view! { <CandidateList list=candidates.characters.clone() me=me.clone() score /> }.into_any()
                            }}
                        </section>
                    }.into_any()
                })}
            </Suspense>
        </RequireSignIn>
    }
}

#[component]
fn MatchCard(m: MatchSummary) -> impl IntoView {
    let href = format!("/matches/{}", m.id);
    view! {
        <li class="card match-card" data-testid="match" data-state=m.state.label()>
            <a class="card-link" href=href>{m.other.name.clone()}</a>
            <p class="muted">{format!("with your {} {} · {}", kind_label(m.mine.persona.kind), m.mine.name, kind_label(m.other.persona.kind))}</p>
            <ScoreBadge state=m.state score=m.score />
            <p>{m.first_line}</p>
        </li>
    }
}

/// A score, or the state instead of one (never a stale score as current).
#[component]
fn ScoreBadge(state: MatchState, score: Option<u8>) -> impl IntoView {
    match (state, score) {
        (MatchState::Fresh, Some(s)) => view! {
            <p class="score" data-testid="score"><strong>{s}</strong>" / 100"</p>
        }
        .into_any(),
        (MatchState::Failed, _) => view! {
            <p class="badge failed" data-testid="score">"failed: try again"</p>
        }
        .into_any(),
        _ => {
            view! { <p class="badge" data-testid="score" role="status">"updating…"</p> }.into_any()
        }
    }
}

#[component]
fn CandidateList(
    list: Vec<Candidate>,
    me: PersonaRef,
    score: ServerAction<ScoreMatch>,
) -> impl IntoView {
    view! {
        <ul class="candidates">
            {list.into_iter().map(|c| {
                let me = me.clone();
                view! {
                    <li>
                        <span>{c.name.clone()}</span>
                        <span class="muted">{format!(" · {} words in common", c.overlap)}</span>
                        <ActionForm action=score attr:class="inline">
                            <input type="hidden" name="a[kind]" value=me.kind.as_str() />
                            <input type="hidden" name="a[id]" value=me.id.clone() />
                            <input type="hidden" name="b[kind]" value=c.persona.kind.as_str() />
                            <input type="hidden" name="b[id]" value=c.persona.id.clone() />
                            <button type="submit" disabled=move || score.pending().get()
                                aria-label=format!("Work out the match with {}", c.name)>"Work out the match"</button>
                        </ActionForm>
                    </li>
                }
            }).collect_view()}
        </ul>
    }
}

#[component]
pub fn MatchPage() -> impl IntoView {
    let params = use_params_map();
    let again = ServerAction::<ScoreMatch>::new();
    let found = Resource::new(
        move || {
            (
                param(params, "id").unwrap_or_default(),
                again.version().get(),
            )
        },
        |(id, _)| get_match(id),
    );
    refresh_while(found, |r| {
        r.as_ref().is_ok_and(|m| m.state == MatchState::Updating)
    });
    view! {
        <RequireSignIn>
            <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match found.await {
                        Ok(m) => view! { <MatchSheet m again /> }.into_any(),
                        Err(e) => error_view(e),
                    }
                })}
            </Suspense>
        </RequireSignIn>
    }
}

#[component]
fn MatchSheet(m: MatchView, again: ServerAction<ScoreMatch>) -> impl IntoView {
    let title = format!("{} and {}", m.a.name, m.b.name);
    let offline = m.provider == "offline";
    let (a, b) = (m.a.persona.clone(), m.b.persona.clone());
    view! {
        <Title text=title.clone() />
        <div class="page-head">
            <h1>{title}</h1>
            <a class="button" href="/matches">"All matches"</a>
        </div>
        <p class="muted">{format!("{} ({}) and {} ({})", m.a.name, kind_label(m.a.persona.kind), m.b.name, kind_label(m.b.persona.kind))}
            {offline.then(|| view! { " " <span class="badge">"Offline writer"</span> })}
        </p>
        <ScoreBadge state=m.state score=m.score />
        {move || again.value().get().and_then(|r| r.err()).map(|e| view! {
            <p class="alert" role="alert">{e.to_string()}</p>
        })}
        {(!m.reasoning.is_empty()).then(|| view! {
            <section class="card">
                <h2>"Why"</h2>
                <p data-testid="reasoning">{m.reasoning.clone()}</p>
            </section>
            <section class="card">
                <h2>"Strengths"</h2>
                <ul>{m.strengths.iter().map(|s| view! { <li>{s.clone()}</li> }).collect_view()}</ul>
            </section>
            <section class="card">
                <h2>"Challenges"</h2>
                <ul>{m.challenges.iter().map(|s| view! { <li>{s.clone()}</li> }).collect_view()}</ul>
            </section>
        })}
        {m.can_talk.then(|| view! {
            <Conversation id=m.id.clone() a=m.a.name.clone() b=m.b.name.clone() initial=m.icebreaker.clone() />
        })}
        <ActionForm action=again attr:class="inline">
            <input type="hidden" name="a[kind]" value=a.kind.as_str() />
            <input type="hidden" name="a[id]" value=a.id.clone() />
            <input type="hidden" name="b[kind]" value=b.kind.as_str() />
            <input type="hidden" name="b[id]" value=b.id.clone() />
            <button type="submit" disabled=move || again.pending().get()>"Work it out again"</button>
        </ActionForm>
    }
}

/// The pair's conversation: the saved lines, and (with JavaScript) "Start a conversation",
/// whose lines stream in as each side speaks.
#[component]
fn Conversation(id: String, a: String, b: String, initial: Option<Icebreaker>) -> impl IntoView {
    let status = RwSignal::new(
        initial
            .as_ref()
            .map(|i| i.status.clone())
            .unwrap_or_default(),
    );
    let lines = RwSignal::new(initial.map(|i| i.lines).unwrap_or_default());
    let error = RwSignal::new(None::<String>);
    let talking = RwSignal::new(false);
    let id = StoredValue::new(id);
    let (name_a, name_b) = (StoredValue::new(a), StoredValue::new(b));
    let name_of = move |speaker: &str| {
        if speaker == "a" {
            name_a.get_value()
        } else {
            name_b.get_value()
        }
    };
    let start = move |_| {
        talking.set(true);
        error.set(None);
        lines.set(Vec::new());
        status.set("writing".into());
        spawn_browser_task(async move {
            use futures::StreamExt;
            match start_icebreaker(id.get_value()).await {
                Err(e) => error.set(Some(e.to_string())),
                Ok(stream) => {
                    let mut stream = stream.into_inner();
                    let (mut buf, mut open) = (String::new(), false);
                    while let Some(chunk) = stream.next().await {
                        let Ok(chunk) = chunk else {
                            error.set(Some(
                                "The connection was lost; what was said is saved.".into(),
                            ));
                            break;
                        };
                        buf.push_str(&chunk);
                        while let Some(at) = buf.find('\n') {
                            let line: String = buf.drain(..=at).collect();
                            match serde_json::from_str::<IcebreakerEvent>(line.trim()) {
                                Ok(IcebreakerEvent::Delta { speaker, text }) => lines.update(|l| {
                                    match l.last_mut() {
                                        Some(last) if open && last.speaker == speaker => {
                                            last.text.push_str(&text)
                                        }
                                        _ => l.push(IcebreakerLine { speaker, text }),
                                    }
                                    open = true;
                                }),
                                Ok(IcebreakerEvent::LineDone) => open = false,
                                Ok(IcebreakerEvent::Done) => status.set("complete".into()),
                                Ok(IcebreakerEvent::Failed { message }) => {
                                    status.set("failed".into());
                                    error.set(Some(message));
                                }
                                Err(_) => {}
                            }
                        }
                    }
                }
            }
            talking.set(false);
        });
    };
    view! {
        <section class="card conversation" aria-labelledby="talk-title">
            <h2 id="talk-title">"Conversation"</h2>
            <ol class="talk" aria-live="polite" data-testid="icebreaker">
                <For each=move || lines.get().into_iter().enumerate() key=|(i, l)| (*i, l.text.len()) let:item>
                    <li><strong>{name_of(&item.1.speaker)}": "</strong>{item.1.text.clone()}</li>
                </For>
            </ol>
            {move || (lines.with(|l| l.is_empty()) && !talking.get()).then(|| view! {
                <p class="muted">"They have not talked yet."</p>
            })}
            {move || (status.get() == "failed").then(|| view! {
                <p class="muted" data-testid="icebreaker-failed">"The conversation stopped early; what was said is kept."</p>
            })}
            {move || error.get().map(|e| view! { <p class="alert" role="alert">{e}</p> })}
            <button type="button" class="needs-js" on:click=start disabled=move || talking.get()>
                {move || if talking.get() { "Talking…" } else if lines.with(|l| l.is_empty()) { "Start a conversation" } else { "Start again" }}
            </button>
        </section>
    }
}
