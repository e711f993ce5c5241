//! `/twin`: the user's digital twin — its name, bio and Shades as others would see them, and the
//! editor: add, edit, reorder and delete Shades, have Shades suggested from a short questionnaire
//! or a pasted bio (each reviewed: accepted or discarded), sync those from SecondMe, and save.
//!
//! The profile renders without JavaScript; editing needs it (a note says so). Messages come from
//! the same domain parser the save server function uses. Questionnaire answers are kept in the
//! browser's local storage as they are typed, so a failed suggestion or a reload loses nothing.

use crate::domain::{
    Confidence, FieldErrors, ShadeDraft, ShadeQuestionnaire, TwinDraft, QUESTIONS,
};
use crate::error::AppError;
use crate::pages::form::{Control, Field, FieldError};
use crate::pages::layout::{error_view, RequireSignIn};
use crate::pages::platform::{store, stored};
use crate::twins::{
    get_twin, save_twin, suggest_shades, sync_secondme_shades, Suggestions, TwinView,
};
use leptos::prelude::*;
use leptos_meta::Title;

/// Where the browser keeps the questionnaire's answers.
const ANSWERS_KEY: &str = "personaflux.twin.questionnaire";

#[component]
pub fn TwinPage() -> impl IntoView {
    let twin = Resource::new(|| (), |_| get_twin());
    view! {
        <RequireSignIn>
            <Title text="Your twin" />
            <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match twin.await {
                        Ok(t) => view! { <TwinEditor initial=t /> }.into_any(),
                        Err(e) => error_view(e),
                    }
                })}
            </Suspense>
        </RequireSignIn>
    }
}

/// What the editor asks of the server.
#[derive(Clone)]
enum Request {
    Save(TwinDraft),
    Suggest(ShadeQuestionnaire, u64),
    Sync,
}

#[derive(Clone)]
enum Done {
    Saved(TwinView),
    Suggested(Suggestions),
    Synced(TwinView),
}

#[component]
fn TwinEditor(initial: TwinView) -> impl IntoView {
    let saved = RwSignal::new(initial.draft.clone());
    let exists = RwSignal::new(initial.exists);
    let draft = RwSignal::new(initial.draft);
    let secondme = initial.secondme;
    let show_errors = RwSignal::new(false);
    let status = RwSignal::new(String::new());
    let suggestions = RwSignal::new(Vec::<ShadeDraft>::new());
    let offline = RwSignal::new(false);
    let variation = RwSignal::new(0u64);
    let questionnaire = RwSignal::new(ShadeQuestionnaire {
        answers: vec![String::new(); QUESTIONS.len()],
        bio: String::new(),
    });

    let last_was_suggest = RwSignal::new(false);
    let request = Action::new(move |r: &Request| {
        let r = r.clone();
        last_was_suggest.set(matches!(r, Request::Suggest(..)));
        async move {
            match r {
                Request::Save(d) => save_twin(d).await.map(Done::Saved),
                Request::Suggest(q, v) => suggest_shades(q, v).await.map(Done::Suggested),
                Request::Sync => sync_secondme_shades().await.map(Done::Synced),
            }
        }
    });
    // In the browser only: bring back kept answers, then keep every change.
    Effect::new(move |restored: Option<()>| {
        if restored.is_none() {
            if let Some(kept) = stored(ANSWERS_KEY)
                .and_then(|s| serde_json::from_str::<ShadeQuestionnaire>(&s).ok())
            {
                let mut kept = kept;
                kept.answers.resize(QUESTIONS.len(), String::new());
                questionnaire.set(kept);
            }
        }
        if let Ok(json) = serde_json::to_string(&questionnaire.get()) {
            store(ANSWERS_KEY, &json);
        }
    });
    let busy = request.pending();
    let failure = move || match request.value().get() {
        Some(Err(e)) if !busy.get() => Some(e),
        _ => None,
    };
    let banner = move || {
        failure()
            .filter(|e| !matches!(e, AppError::Invalid(_)))
            .map(|e| e.to_string())
    };
    let server_errors = move || match failure() {
        Some(AppError::Invalid(errs)) => errs,
        _ => FieldErrors::default(),
    };
    // The twin as the server now has it, after a save or a sync.
    let show_saved = move |v: TwinView, message: &str| {
        exists.set(v.exists);
        saved.set(v.draft.clone());
        draft.set(v.draft);
        show_errors.set(false);
        status.set(message.to_string());
    };
    Effect::new(move |_| match request.value().get() {
        Some(Ok(Done::Saved(v))) => show_saved(v, "Your twin is saved."),
        Some(Ok(Done::Synced(v))) => show_saved(v, "Your Shades from SecondMe are up to date."),
        Some(Ok(Done::Suggested(s))) => {
            offline.set(s.offline);
            let n = s.shades.len();
            suggestions.set(s.shades);
            status.set(format!(
                "{n} Shades suggested below: accept or discard each."
            ));
        }
        Some(Err(AppError::Invalid(_))) => show_errors.set(true),
        _ => {}
    });

    let live_errors = Memo::new(move |_| draft.with(|d| d.parse().err().unwrap_or_default()));
    let error_of = move |name: String| {
        if !show_errors.get() {
            return None;
        }
        live_errors
            .with(|e| e.get(&name).map(str::to_string))
            .or_else(|| server_errors().get(&name).map(str::to_string))
    };
    let save = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        show_errors.set(true);
        status.set(String::new());
        if live_errors.with(|e| e.is_empty()) {
            request.dispatch(Request::Save(draft.get_untracked()));
        }
    };
    let suggest = move |_| {
        status.set(String::new());
        variation.update(|v| *v += 1);
        request.dispatch(Request::Suggest(
            questionnaire.get_untracked(),
            variation.get_untracked(),
        ));
    };
    let add = move |_| draft.update(|d| d.shades.push(ShadeDraft::default()));
    let count = move || draft.with(|d| d.shades.len());
    // Field errors of the questionnaire, from the last suggestion request (the action's input
    // is cleared once it is done, so which request it was is kept here).
    let q_error = move |name: &str| {
        server_errors()
            .get(name)
            .map(str::to_string)
            .filter(|_| last_was_suggest.get())
    };

    view! {
        <div class="page-head">
            <h1>"Your twin"</h1>
            <div class="actions">
                <Show when=move || exists.get()>
                    <a href="/twin/chat" class="button">"Chat with your twin"</a>
                </Show>
            </div>
        </div>
        <p class="muted">
            "Your digital twin is the self you bring into PersonaFlux: a name, a short bio, and Shades — the facets of your personality. "
            "Chats and matches read them."
        </p>
        <Profile twin=saved exists />
        // Shown until the page hydrates (a `<noscript>` is not shown where scripts are merely
        // blocked, and browsers differ on it).
        <p class="notice until-hydrated">"Editing your twin needs JavaScript. What is saved is shown above."</p>

        <p class="status" role="status" aria-live="polite" data-testid="twin-status">{move || status.get()}</p>
        {move || banner().map(|m| view! { <p class="alert" role="alert">{m}</p> })}

        <form class="twin-form wizard" on:submit=save novalidate>
            <fieldset>
                <legend>"About you"</legend>
                <Field label="Display name" name="name"
                    value=move || draft.with(|d| d.name.clone())
                    set=move |v| draft.update(|d| d.name = v)
                    error=move || error_of("name".into()) />
                <Field label="Short bio" name="bio" control=Control::Lines(3)
                    value=move || draft.with(|d| d.bio.clone())
                    set=move |v| draft.update(|d| d.bio = v)
                    error=move || error_of("bio".into()) />
                <label class="check">
                    <input type="checkbox" name="matchable"
                        prop:checked=move || draft.with(|d| d.matchable)
                        on:change=move |ev| draft.update(|d| d.matchable = event_target_checked(&ev)) />
                    " Let other people be matched with my twin (only Shades marked public are used)"
                </label>
            </fieldset>

            <fieldset>
                <legend>"Shades"</legend>
                <FieldError name="shades" error=move || error_of("shades".into()) />
                <p class="muted">{move || if count() == 0 {
                    "No Shades yet: add one, or have some suggested below.".to_string()
                } else {
                    format!("{} of {} Shades.", count(), TwinDraft::MAX_SHADES)
                }}</p>
                <ol class="shade-list">
                    <For each=move || 0..count() key=|i| *i let:i>
                        <ShadeEditor i draft error_of />
                    </For>
                </ol>
                <button type="button" on:click=add
                    disabled=move || { count() >= TwinDraft::MAX_SHADES }>"Add a Shade"</button>
            </fieldset>

            <div class="actions">
                {secondme.then(|| view! {
                    <button type="button" disabled=move || busy.get()
                        on:click=move |_| { status.set(String::new()); request.dispatch(Request::Sync); }>
                        "Sync from SecondMe"
                    </button>
                })}
                <button type="submit" class="primary" disabled=move || busy.get()>
                    {move || if exists.get() { "Save your twin" } else { "Create your twin" }}
                </button>
            </div>
        </form>

        <section class="card suggest" aria-labelledby="suggest-title">
            <h2 id="suggest-title">"Suggest Shades"</h2>
            <p class="muted">"Answer any of these in a sentence or two, or paste a bio. The suggestions are only added to your twin when you accept them and save."</p>
            {QUESTIONS.iter().enumerate().map(|(i, q)| {
                let id = format!("answers.{i}");
                let err_id = format!("answers.{i}-error");
                view! {
                    <div class="field">
                        <label for=id.clone()>{*q}</label>
                        <textarea id=id.clone() name=id.clone() rows="2" aria-describedby=err_id.clone()
                            prop:value=move || questionnaire.with(|q| q.answers.get(i).cloned().unwrap_or_default())
                            on:input=move |ev| questionnaire.update(|q| {
                                if let Some(a) = q.answers.get_mut(i) { *a = event_target_value(&ev); }
                            })></textarea>
                        <p class="field-error" id=err_id role="alert">{move || q_error(&id)}</p>
                    </div>
                }
            }).collect_view()}
            <Field label="Or paste a bio" name="pasted-bio" control=Control::Lines(4)
                value=move || questionnaire.with(|q| q.bio.clone())
                set=move |v| questionnaire.update(|q| q.bio = v)
                error=move || q_error("bio") />
            <FieldError name="questionnaire" error=move || q_error("questionnaire") />
            <div class="actions">
                <button type="button" on:click=suggest disabled=move || busy.get() data-testid="suggest">
                    {move || if busy.get() && last_was_suggest.get() {
                        "Suggesting…"
                    } else {
                        "Suggest Shades"
                    }}
                </button>
            </div>
            <Show when=move || suggestions.with(|s| !s.is_empty())>
                <h3>"Suggested Shades"
                    {move || offline.get().then(|| view! { " " <span class="badge">"Offline writer"</span> })}
                </h3>
                <ul class="shade-review">
                    <For each=move || suggestions.get() key=|s| s.name.clone() let:s>
                        <SuggestionCard s suggestions draft status />
                    </For>
                </ul>
            </Show>
        </section>
    }
}

/// One suggestion to review: accept (added to the Shades below, to be saved) or discard.
#[component]
fn SuggestionCard(
    s: ShadeDraft,
    suggestions: RwSignal<Vec<ShadeDraft>>,
    draft: RwSignal<TwinDraft>,
    status: RwSignal<String>,
) -> impl IntoView {
    let name = s.name.clone();
    let (accept_name, discard_name) = (name.clone(), name.clone());
    let shade = s.clone();
    let accept = move |_| {
        let full = draft.with(|d| d.shades.len() >= TwinDraft::MAX_SHADES);
        if full {
            status.set(format!(
                "Your twin already has {} Shades; delete one first.",
                TwinDraft::MAX_SHADES
            ));
            return;
        }
        draft.update(|d| d.shades.push(shade.clone()));
        suggestions.update(|l| l.retain(|x| x.name != accept_name));
        status.set(format!(
            "\"{accept_name}\" added to your Shades. Save your twin to keep it."
        ));
    };
    let discard = move |_| {
        suggestions.update(|l| l.retain(|x| x.name != discard_name));
        status.set(format!("\"{}\" discarded.", discard_name));
    };
    view! {
        <li class="card shade-card">
            <ShadeSummary s=s.clone() />
            <div class="actions">
                <button type="button" on:click=discard aria-label=format!("Discard {name}")>"Discard"</button>
                <button type="button" class="primary" on:click=accept aria-label=format!("Accept {name}")>"Accept"</button>
            </div>
        </li>
    }
}

/// A Shade as others see it: icon, name, confidence as a bar with words, description, topics,
/// where it came from.
#[component]
fn ShadeSummary(s: ShadeDraft) -> impl IntoView {
    let words = Confidence::words(s.confidence);
    let percent = (s.confidence.clamp(0.0, 1.0) * 100.0).round() as u32;
    view! {
        <div class="shade-head">
            <span class="shade-icon" aria-hidden="true">{s.icon.clone()}</span>
            <strong>{s.name.clone()}</strong>
            <span class="badge">{s.source.label()}</span>
        </div>
        <div class="confidence">
            <meter min="0" max="1" value=s.confidence.to_string()
                aria-label=format!("Confidence: {words}")></meter>
            <span>{format!("{words} ({percent}%)")}</span>
        </div>
        <p>{s.description.clone()}</p>
        {(!s.topics.is_empty()).then(|| view! { <p class="muted">"From: " {s.topics.clone()}</p> })}
    }
}

/// The saved twin, as others would see it (public Shades are marked).
#[component]
fn Profile(twin: RwSignal<TwinDraft>, exists: RwSignal<bool>) -> impl IntoView {
    view! {
        <section class="card profile" aria-labelledby="profile-title" data-testid="twin-profile">
            {move || {
                let t = twin.get();
                if !exists.get() {
                    return view! {
                        <h2 id="profile-title">"No twin yet"</h2>
                        <p>"Create yours below: give it a name and a few Shades, or have Shades suggested from a short questionnaire."</p>
                    }.into_any();
                }
                view! {
                    <h2 id="profile-title">{t.name.clone()}</h2>
                    {(!t.bio.is_empty()).then(|| view! { <p class="bio">{t.bio.clone()}</p> })}
                    <p class="muted">{if t.matchable {
                        "Open to matches: other people see your public Shades."
                    } else {
                        "Private: no one else is matched with your twin."
                    }}</p>
                    <ul class="shade-review">
                        {t.shades.into_iter().map(|s| {
                            let public = s.public;
                            view! {
                                <li class="card shade-card">
                                    <ShadeSummary s />
                                    <p class="muted">{if public { "Public" } else { "Private" }}</p>
                                </li>
                            }
                        }).collect_view()}
                    </ul>
                }.into_any()
            }}
        </section>
    }
}

/// The controls of Shade `i`: every field, where it came from, move up/down and delete.
#[component]
fn ShadeEditor<E>(i: usize, draft: RwSignal<TwinDraft>, error_of: E) -> impl IntoView
where
    E: Fn(String) -> Option<String> + Copy + Send + Sync + 'static,
{
    let get = move |f: fn(&ShadeDraft) -> String| {
        move || draft.with(|d| d.shades.get(i).map(f).unwrap_or_default())
    };
    let set = move |f: fn(&mut ShadeDraft, String)| {
        move |ev: leptos::ev::Event| {
            let v = event_target_value(&ev);
            draft.update(|d| {
                if let Some(s) = d.shades.get_mut(i) {
                    f(s, v)
                }
            })
        }
    };
    let id = move |f: &str| format!("shades.{i}.{f}");
    let name = get(|s| s.name.clone());
    let label = move || {
        let n = name();
        if n.trim().is_empty() {
            format!("Shade {}", i + 1)
        } else {
            n
        }
    };
    let confidence = move || draft.with(|d| d.shades.get(i).map(|s| s.confidence).unwrap_or(0.0));
    let source = move || draft.with(|d| d.shades.get(i).map(|s| s.source).unwrap_or_default());
    let last = move || draft.with(|d| i + 1 >= d.shades.len());
    let text_field = move |label_text: &'static str,
                           f: &'static str,
                           lines: bool,
                           getter: fn(&ShadeDraft) -> String,
                           setter: fn(&mut ShadeDraft, String)| {
        let (fid, err) = (id(f), format!("{}-error", id(f)));
        let value = get(getter);
        let invalid = move || error_of(id(f)).is_some().to_string();
        let control = if lines {
            view! {
                <textarea id=fid.clone() rows="2" aria-describedby=err.clone() aria-invalid=invalid
                    prop:value=value on:input=set(setter)>{get(getter)()}</textarea>
            }
            .into_any()
        } else {
            view! {
                <input id=fid.clone() type="text" aria-describedby=err.clone() aria-invalid=invalid
                    value=get(getter)() prop:value=value on:input=set(setter) />
            }
            .into_any()
        };
        view! {
            <div class="field">
                <label for=fid>{label_text}</label>
                {control}
                <p class="field-error" id=err role="alert">{move || error_of(id(f))}</p>
            </div>
        }
    };
    view! {
        <li class="shade-edit">
            <fieldset>
                <legend>{label}" "<span class="badge">{move || source().label()}</span></legend>
                <div class="row shade-row">
                    {text_field("Icon (one emoji)", "icon", false, |s| s.icon.clone(), |s, v| s.icon = v)}
                    {text_field("Name", "name", false, |s| s.name.clone(), |s, v| s.name = v)}
                </div>
                {text_field("Description", "description", true, |s| s.description.clone(), |s, v| s.description = v)}
                <div class="field">
                    <label for=id("confidence")>"Confidence"</label>
                    <div class="confidence">
                        <input id=id("confidence") type="range" min="0" max="100" step="5"
                            aria-describedby=format!("{}-words", id("confidence"))
                            value=(confidence() * 100.0).round().to_string()
                            prop:value=move || (confidence() * 100.0).round().to_string()
                            on:input=move |ev| {
                                let v = event_target_value(&ev).parse::<f32>().unwrap_or(60.0) / 100.0;
                                draft.update(|d| if let Some(s) = d.shades.get_mut(i) { s.confidence = v });
                            } />
                        <span id=format!("{}-words", id("confidence"))>
                            {move || format!("{} ({}%)", Confidence::words(confidence()), (confidence() * 100.0).round())}
                        </span>
                    </div>
                    <p class="field-error" id=format!("{}-error", id("confidence")) role="alert">{move || error_of(id("confidence"))}</p>
                </div>
                {text_field("Topics (comma-separated)", "topics", false, |s| s.topics.clone(), |s, v| s.topics = v)}
                <label class="check">
                    <input type="checkbox"
                        prop:checked=move || draft.with(|d| d.shades.get(i).is_some_and(|s| s.public))
                        on:change=move |ev| {
                            let on = event_target_checked(&ev);
                            draft.update(|d| if let Some(s) = d.shades.get_mut(i) { s.public = on });
                        } />
                    " Public: may be used in other people's matches"
                </label>
                <div class="actions shade-actions">
                    <button type="button" aria-label=move || format!("Move {} up", label())
                        disabled=move || i == 0
                        on:click=move |_| draft.update(|d| if i > 0 { d.shades.swap(i, i - 1) })>"↑"</button>
                    <button type="button" aria-label=move || format!("Move {} down", label())
                        disabled=last
                        on:click=move |_| draft.update(|d| if i + 1 < d.shades.len() { d.shades.swap(i, i + 1) })>"↓"</button>
                    <button type="button" aria-label=move || format!("Delete {}", label())
                        on:click=move |_| draft.update(|d| if i < d.shades.len() { d.shades.remove(i); })>"Delete"</button>
                </div>
            </fieldset>
        </li>
    }
}
