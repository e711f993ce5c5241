//! Play mode's pages: a character's runs with a button to start a new one
//! (`/characters/:id/play`), and a run (`/play/:id`): the story so far, the scene counter, and
//! what the player may do next — one of three options or an action of their own — or the ending
//! screen. Each choice is a form: with JavaScript the scene streams in; without, the form posts
//! and the page comes back with the scene written.

use crate::characters::get_character;
use crate::chat::EventLines;
use crate::domain::PlayChoice;
use crate::error::AppError;
use crate::pages::layout::{error_view, param, AvatarBadge};
use crate::pages::platform::spawn_browser_task;
use crate::play::{
    get_run, list_runs, reroll_turn, take_turn, Choose, PlayEvent, PlayTurn, RunStatus, RunSummary,
    RunView, StartRun, TurnStatus,
};
use futures::StreamExt;
use leptos::prelude::*;
use leptos::server_fn::codec::TextStream;
use leptos::server_fn::ServerFn;
use leptos_meta::Title;
use leptos_router::hooks::use_params_map;

/// A character's runs, and a new one.
#[component]
pub fn PlayPage() -> impl IntoView {
    let params = use_params_map();
    let id = move || param(params, "id").unwrap_or_default();
    let data = Resource::new(id, |id| async move {
        let character = get_character(id.clone()).await?;
        let runs = list_runs(Some(id), None).await?;
        Ok::<_, AppError>((character, runs))
    });
    view! {
        <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match data.await {
                    Ok((c, runs)) => view! { <Runs character_id=c.id name=c.draft.name avatar=c.draft.avatar scenes=c.draft.scenes runs /> }.into_any(),
                    Err(e) => error_view(e),
                }
            })}
        </Suspense>
    }
}

#[component]
fn Runs(
    character_id: String,
    name: String,
    avatar: String,
    scenes: String,
    runs: Vec<RunSummary>,
) -> impl IntoView {
    let start = ServerAction::<StartRun>::new();
    let back = format!("/characters/{character_id}");
    view! {
        <Title text=format!("Play with {name}") />
        <div class="page-head">
            <AvatarBadge avatar=avatar name=name.clone() />
            <h1>{format!("Play with {name}")}</h1>
            <a class="button" href=back>"Back to the character"</a>
        </div>
        <p>{format!("{name} leads a story of {scenes} scenes; you choose what happens, and it ends in one of their endings.")}</p>
        <ActionForm action=start>
            <input type="hidden" name="character_id" value=character_id />
            <button type="submit" class="primary" data-testid="start-run">"Start a new story"</button>
        </ActionForm>
        {move || start.value().get().and_then(|r| r.err()).map(|e| view! { <p class="alert" role="alert">{e.to_string()}</p> })}
        <h2>"Your stories"</h2>
        <RunList runs empty="No stories yet: start one above." />
    }
}

/// Runs as a list of links with their state.
#[component]
pub fn RunList(runs: Vec<RunSummary>, empty: &'static str) -> impl IntoView {
    if runs.is_empty() {
        return view! { <p class="empty">{empty}</p> }.into_any();
    }
    view! {
        <ul class="runs" data-testid="run-list">
            {runs.into_iter().map(|r| {
                let state = match (r.status, r.ending.clone()) {
                    (RunStatus::Ended, Some(kind)) => format!("ended: {kind}"),
                    (RunStatus::Ended, None) => "ended".to_string(),
                    (RunStatus::Playing, _) => format!("in progress · {} of {} scenes", r.played, r.scenes),
                };
                let label = if r.status == RunStatus::Playing { "Resume" } else { "Read" };
                view! {
                    <li data-status=r.status.as_str()>
                        <a href=format!("/play/{}", r.id)>{format!("{label}: {}", r.character_name)}</a>
                        <span class="muted">{format!(" · {state}")}</span>
                    </li>
                }
            }).collect_view()}
        </ul>
    }
    .into_any()
}

/// A run.
#[component]
pub fn RunPage() -> impl IntoView {
    let params = use_params_map();
    let run = Resource::new(move || param(params, "id").unwrap_or_default(), get_run);
    view! {
        <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match run.await {
                    Ok(run) => view! { <Story run /> }.into_any(),
                    Err(e) => error_view(e),
                }
            })}
        </Suspense>
    }
}

#[component]
fn Story(run: RunView) -> impl IntoView {
    let RunView {
        id,
        character_id,
        character_name,
        avatar,
        scenes,
        opening_line,
        start_options,
        endings,
        status: initial_status,
        ending: initial_ending,
        turns: initial,
        offline,
        summary,
        summary_through,
        ..
    } = run;
    let run_id = StoredValue::new(id);
    let name = StoredValue::new(character_name.clone());
    let start_options = StoredValue::new(start_options);
    let endings = StoredValue::new(endings);
    let turns = RwSignal::new(initial);
    let live = RwSignal::new(None::<PlayTurn>);
    let status = RwSignal::new(initial_status);
    let ending = RwSignal::new(initial_ending);
    let error = RwSignal::new(None::<String>);
    let busy = RwSignal::new(false);
    let action = RwSignal::new(String::new());

    let after = move || turns.with(|t| t.last().map(|t| t.id.clone()).unwrap_or_default());
    let offered = move || turns.with(|t| crate::play::offered(&start_options.get_value(), t));
    let last_status = move || turns.with(|t| t.last().map(|t| t.status));
    let counter = move || {
        let current = live
            .with(|l| l.as_ref().map(|t| t.scene))
            .or_else(|| turns.with(|t| t.last().map(|t| t.scene)));
        match current {
            Some(s) => format!("Scene {s} of {scenes}"),
            None => format!("Opening · {scenes} scenes"),
        }
    };

    // Runs a turn's stream (a choice, or a re-roll replacing the last scene) to its end.
    let play = move |replacing: bool,
                     request: std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<TextStream<AppError>, AppError>>>,
    >| {
        error.set(None);
        busy.set(true);
        spawn_browser_task(async move {
            apply_stream(
                request.await,
                replacing,
                turns,
                live,
                status,
                ending,
                error,
                action,
            )
            .await;
            busy.set(false);
        });
    };
    let choose = move |choice: PlayChoice| {
        let fut = take_turn(run_id.get_value(), after(), choice);
        play(false, Box::pin(fut));
    };
    let reroll = move |turn_id: String| {
        let fut = reroll_turn(run_id.get_value(), turn_id);
        play(true, Box::pin(fut));
    };

    let scene_item = move |t: PlayTurn, streaming: bool| {
        let note = match t.status {
            TurnStatus::Complete => None,
            TurnStatus::Streaming if streaming => Some("writing…"),
            TurnStatus::Streaming => Some("still being written — reload in a moment"),
            TurnStatus::Failed => Some("cut off"),
            TurnStatus::Interrupted => Some("interrupted — the server stopped while writing"),
        };
        let you = if t.option.is_some() {
            "You choose: "
        } else {
            "You: "
        };
        view! {
            <li class="scene" data-status=t.status.as_str() data-testid="scene">
                <p class="you"><span class="who">{format!("Scene {} · ", t.scene)}</span>{you}{t.choice.clone()}</p>
                <p class="said"><span class="who">{name.get_value()}": "</span>{t.dialogue.clone()}</p>
                {note.map(|n| view! { <span class="status">{n}</span> })}
            </li>
        }
    };

    let choose_url = Choose::url();
    view! {
        <Title text=format!("Playing with {character_name}") />
        <div class="play" data-testid="run">
            <div class="chat-head">
                <AvatarBadge avatar=avatar name=character_name.clone() />
                <h1>{character_name.clone()}</h1>
                <span class="badge" data-testid="scene-counter" aria-live="polite">{counter}</span>
                {offline.then(|| view! {
                    <span class="badge offline" title="Scenes are written by the built-in offline writer; no AI model is configured.">"offline"</span>
                })}
            </div>
            <p class="downloads">
                <a href=format!("/play/{}/story.md", run_id.get_value()) download="" rel="external">"Download as Markdown"</a>
                " · "
                <a href=format!("/play/{}/story.json", run_id.get_value()) download="" rel="external">"as JSON"</a>
            </p>
            {(!summary.is_empty()).then(|| view! {
                <details class="summary" data-testid="run-summary">
                    <summary>{format!("The story so far, as the model remembers scenes 1 to {summary_through}")}</summary>
                    <p>{summary}</p>
                </details>
            })}
            <ol class="story log" aria-live="polite" data-testid="story">
                <li class="scene opening">
                    <p class="said"><span class="who">{character_name.clone()}": "</span>{opening_line}</p>
                </li>
                <For each=move || turns.get() key=|t| (t.id.clone(), t.status, t.dialogue.len())
                    children=move |t| scene_item(t, false) />
                {move || live.get().map(|t| scene_item(t, true))}
            </ol>
            {move || error.get().map(|e| view! { <p class="alert" role="alert">{e}</p> })}
            {move || {
                if status.get() == RunStatus::Ended {
                    let reached = ending.get().and_then(|e| endings.with_value(|es| es.get(usize::from(e).checked_sub(1)?).cloned()));
                    return view! {
                        <section class="ending" data-testid="ending" aria-labelledby="ending-heading">
                            <h2 id="ending-heading">{match &reached { Some(e) => format!("The end — {}", e.kind), None => "The end".into() }}</h2>
                            {reached.map(|e| view! { <p>{e.text}</p> })}
                            <p>
                                <a class="button" href=format!("/characters/{character_id}/play")>"Play again"</a>
                                " "
                                <a href=format!("/characters/{character_id}")>"Back to the character"</a>
                            </p>
                        </section>
                    }.into_any();
                }
                if busy.get() || live.with(|l| l.is_some()) {
                    return view! { <p class="muted" role="status">{format!("{} is writing the scene…", name.get_value())}</p> }.into_any();
                }
                match last_status() {
                    Some(TurnStatus::Failed | TurnStatus::Interrupted) => {
                        let id = turns.with(|t| t.last().map(|t| t.id.clone()).unwrap_or_default());
                        view! {
                            <p class="notice">"This scene did not finish. Your choice is saved."</p>
                            <button type="button" class="primary retry" data-testid="retry-scene"
                                on:click=move |_| reroll(id.clone())>"Try the scene again"</button>
                        }.into_any()
                    }
                    Some(TurnStatus::Streaming) => view! {
                        <p class="muted">"This scene is still being written. " <a href="">"Reload"</a> " to see it."</p>
                    }.into_any(),
                    _ => {
                        let url = choose_url;
                        let last_id = turns.with(|t| t.last().filter(|t| t.status == TurnStatus::Complete).map(|t| t.id.clone()));
                        view! {
                            <section class="choices" aria-labelledby="choices-heading" data-testid="choices">
                                <h2 id="choices-heading">"What do you do?"</h2>
                                <ul class="options">
                                    {offered().into_iter().enumerate().map(|(i, text)| {
                                        view! {
                                            <li>
                                                <form method="post" action=url on:submit=move |ev| {
                                                    ev.prevent_default();
                                                    choose(PlayChoice { option: Some(i as u8), action: String::new() });
                                                }>
                                                    <input type="hidden" name="run_id" value=run_id.get_value() />
                                                    <input type="hidden" name="after" value=after() />
                                                    <input type="hidden" name="option" value=i.to_string() />
                                                    <button type="submit" class="option" data-testid="option">{text}</button>
                                                </form>
                                            </li>
                                        }
                                    }).collect_view()}
                                </ul>
                                <form method="post" action=url class="own-action" on:submit=move |ev| {
                                    ev.prevent_default();
                                    let text = action.get_untracked();
                                    if let Err(e) = crate::domain::PlayerAction::parse(&text) {
                                        error.set(Some(e.0));
                                        return;
                                    }
                                    choose(PlayChoice { option: None, action: text });
                                }>
                                    <input type="hidden" name="run_id" value=run_id.get_value() />
                                    <input type="hidden" name="after" value=after() />
                                    <label for="own-action">"Or do something else"</label>
                                    <input id="own-action" name="action" maxlength="300" autocomplete="off"
                                        prop:value=move || action.get() value=action.get_untracked()
                                        on:input=move |ev| action.set(event_target_value(&ev)) />
                                    <button type="submit" data-testid="own-action">"Do it"</button>
                                </form>
                                {last_id.map(|id| view! {
                                    <button type="button" class="link" data-testid="reroll"
                                        on:click=move |_| reroll(id.clone())>"Write the last scene again"</button>
                                })}
                            </section>
                        }.into_any()
                    }
                }
            }}
        </div>
    }
}

/// Applies a turn's events as they arrive. `replacing`: a re-roll, whose new scene takes the
/// last one's place on the page.
#[allow(clippy::too_many_arguments)]
async fn apply_stream(
    opened: Result<TextStream<AppError>, AppError>,
    replacing: bool,
    turns: RwSignal<Vec<PlayTurn>>,
    live: RwSignal<Option<PlayTurn>>,
    status: RwSignal<RunStatus>,
    ending: RwSignal<Option<u8>>,
    error: RwSignal<Option<String>>,
    action: RwSignal<String>,
) {
    let stream = match opened {
        Ok(s) => s,
        Err(e) => {
            error.set(Some(e.to_string()));
            return;
        }
    };
    let mut stream = stream.into_inner();
    let mut lines = EventLines::<PlayEvent>::default();
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
                Ok(PlayEvent::Accepted { turn }) => {
                    if replacing {
                        turns.update(|t| {
                            t.pop();
                        });
                        status.set(RunStatus::Playing);
                        ending.set(None);
                    }
                    action.set(String::new());
                    live.set(Some(turn));
                }
                Ok(PlayEvent::Delta { text }) => live.update(|l| {
                    if let Some(l) = l {
                        l.dialogue.push_str(&text);
                    }
                }),
                Ok(PlayEvent::Finished { turn, run }) => {
                    ending.set(turn.ending);
                    turns.update(|t| t.push(turn));
                    live.set(None);
                    status.set(run);
                    finished = true;
                }
                Ok(PlayEvent::Failed { message, turn }) => {
                    turns.update(|t| t.push(turn));
                    live.set(None);
                    error.set(Some(message));
                    finished = true;
                }
                Err(_) => error.set(Some("The scene could not be read.".into())),
            }
        }
    }
    if !finished {
        // The connection dropped: the server still finishes and saves the scene.
        if let Some(mut t) = live.get_untracked() {
            t.status = TurnStatus::Streaming;
            turns.update(|ts| ts.push(t));
        }
        live.set(None);
        if error.get_untracked().is_none() {
            error.set(Some(
                "The connection was lost while the scene was being written. Reload to see it saved."
                    .into(),
            ));
        }
    }
}
