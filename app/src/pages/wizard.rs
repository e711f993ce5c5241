//! The character wizard: (1) identity and traits, (2) generate and edit, then save.
//!
//! The draft lives in one signal owned by the page, so moving between steps keeps everything.
//! Messages come from the same domain parsers the server functions use.

use crate::characters::{generate_character, save_character};
use crate::domain::{
    field, Avatar, CharacterDraft, DraftEnding, FieldErrors, Gender, SceneCount, Traits,
};
use crate::error::AppError;
use crate::pages::layout::RequireSignIn;
use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_meta::Title;
use leptos_router::hooks::use_navigate;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Step {
    Identity,
    Story,
}

fn initial_draft() -> CharacterDraft {
    CharacterDraft {
        gender: Gender::Unspecified.as_str().to_string(),
        scenes: SceneCount::default().get().to_string(),
        language: "English".into(),
        avatar: Avatar::default().as_str().to_string(),
        ..Default::default()
    }
}

#[component]
pub fn WizardPage() -> impl IntoView {
    let draft = RwSignal::new(initial_draft());
    let step = RwSignal::new(Step::Identity);
    // Field messages are shown once the user has tried to go on (or the server refused).
    let show_errors = RwSignal::new(false);
    let server_errors = RwSignal::new(FieldErrors::default());
    let banner = RwSignal::new(None::<String>);
    let busy = RwSignal::new(false);
    let offline = RwSignal::new(false);
    let variation = RwSignal::new(0u64);
    let trait_input = RwSignal::new(String::new());

    let live_errors = Memo::new(move |_| {
        let d = draft.get();
        match step.get() {
            Step::Identity => d.parse_seed().err().unwrap_or_default(),
            Step::Story => d.parse_spec().err().unwrap_or_default(),
        }
    });
    let error_for = move |name: &'static str| {
        move || {
            if !show_errors.get() {
                return None;
            }
            live_errors
                .with(|e| e.get(name).map(str::to_string))
                .or_else(|| server_errors.with(|e| e.get(name).map(str::to_string)))
        }
    };

    let generate = move || {
        let d = draft.get_untracked();
        busy.set(true);
        banner.set(None);
        let v = variation.get_untracked();
        spawn_local(async move {
            match generate_character(d, v).await {
                Ok(g) => {
                    offline.set(g.offline);
                    draft.update(|d| *d = d.clone().with_story(&g.story));
                    step.set(Step::Story);
                }
                Err(AppError::Invalid(errs)) => {
                    server_errors.set(errs);
                    show_errors.set(true);
                }
                Err(e) => banner.set(Some(e.to_string())),
            }
            busy.set(false);
        });
    };

    let next = move |_| {
        show_errors.set(true);
        if live_errors.with(|e| e.is_empty()) {
            show_errors.set(false);
            if draft.with(|d| d.backstory.is_empty()) {
                generate();
            } else {
                step.set(Step::Story);
            }
        }
    };
    let regenerate = move |_| {
        variation.update(|v| *v += 1);
        generate();
    };
    let saved = RwSignal::new(None::<String>);
    let navigate = use_navigate();
    Effect::new(move |_| {
        if let Some(id) = saved.get() {
            navigate(&format!("/characters/{id}"), Default::default());
        }
    });
    let save = move |_| {
        show_errors.set(true);
        if !live_errors.with(|e| e.is_empty()) {
            return;
        }
        let d = draft.get_untracked();
        busy.set(true);
        banner.set(None);
        spawn_local(async move {
            match save_character(d).await {
                Ok(id) => saved.set(Some(id)),
                Err(AppError::Invalid(errs)) => server_errors.set(errs),
                Err(e) => banner.set(Some(e.to_string())),
            }
            busy.set(false);
        });
    };

    let add_trait = move |t: String| {
        let t = t.trim().to_string();
        if t.is_empty() {
            return;
        }
        draft.update(|d| {
            if !d.traits.iter().any(|x| x.eq_ignore_ascii_case(&t)) {
                d.traits.push(t);
            }
        });
    };

    view! {
        <RequireSignIn>
        <Title text="New character" />
        <h1>"New character"</h1>
        <ol class="steps" aria-label="Steps">
            <li class:current=move || step.get() == Step::Identity>"1. Who they are"</li>
            <li class:current=move || step.get() == Step::Story>"2. Their story"</li>
        </ol>
        {move || banner.get().map(|b| view! { <p class="alert" role="alert">{b}</p> })}
        <form class="wizard" on:submit=|ev| ev.prevent_default() novalidate>
            <Show when=move || step.get() == Step::Identity>
                <fieldset>
                    <legend>"Who they are"</legend>
                    <TextField label="Name" name=field::NAME draft error=error_for(field::NAME)
                        get=|d| d.name.clone() set=|d, v| d.name = v />
                    <div class="field">
                        <label for="trait-input">"Traits"</label>
                        <ul class="chips" data-testid="traits">
                            {move || draft.get().traits.into_iter().map(|t| {
                                let t2 = t.clone();
                                view! {
                                    <li class="chip">
                                        {t.clone()}
                                        <button type="button" class="chip-x" aria-label=format!("Remove {t}")
                                            on:click=move |_| draft.update(|d| d.traits.retain(|x| x != &t2))>"×"</button>
                                    </li>
                                }
                            }).collect_view()}
                        </ul>
                        <div class="row">
                            <input id="trait-input" name="trait" placeholder="Type a trait and press Enter"
                                prop:value=move || trait_input.get()
                                on:input=move |ev| trait_input.set(event_target_value(&ev))
                                on:keydown=move |ev| {
                                    if ev.key() == "Enter" || ev.key() == "," {
                                        ev.prevent_default();
                                        add_trait(trait_input.get_untracked());
                                        trait_input.set(String::new());
                                    }
                                } />
                            <button type="button" on:click=move |_| {
                                add_trait(trait_input.get_untracked());
                                trait_input.set(String::new());
                            }>"Add"</button>
                        </div>
                        <p class="suggestions">"Suggestions: "
                            {Traits::SUGGESTIONS.iter().map(|s| view! {
                                <button type="button" class="suggestion" on:click=move |_| add_trait(s.to_string())>{*s}</button>
                            }).collect_view()}
                        </p>
                        <FieldMessage error=error_for(field::TRAITS) name=field::TRAITS />
                    </div>
                    <TextField label="Age" name=field::AGE draft error=error_for(field::AGE) input_type="number"
                        get=|d| d.age.clone() set=|d, v| d.age = v />
                    <div class="field">
                        <label for="gender">"Gender"</label>
                        <select id="gender" name="gender" on:change=move |ev| draft.update(|d| d.gender = event_target_value(&ev))>
                            {Gender::ALL.iter().map(|g| view! {
                                <option value=g.as_str() selected=move || draft.with(|d| d.gender == g.as_str())>{g.label()}</option>
                            }).collect_view()}
                        </select>
                        <FieldMessage error=error_for(field::GENDER) name=field::GENDER />
                    </div>
                    <TextField label="Language of the story" name=field::LANGUAGE draft error=error_for(field::LANGUAGE)
                        get=|d| d.language.clone() set=|d, v| d.language = v />
                    <TextField label="Voice (optional)" name=field::VOICE draft error=error_for(field::VOICE)
                        get=|d| d.voice.clone() set=|d, v| d.voice = v />
                    <div class="field">
                        <label for="scenes">"Number of scenes"</label>
                        <select id="scenes" name="scenes" on:change=move |ev| draft.update(|d| d.scenes = event_target_value(&ev))>
                            {SceneCount::CHOICES.iter().map(|n| {
                                let n = n.to_string();
                                let (value, label) = (n.clone(), n.clone());
                                view! { <option value=value selected=move || draft.with(|d| d.scenes == n)>{label}</option> }
                            }).collect_view()}
                        </select>
                        <FieldMessage error=error_for(field::SCENES) name=field::SCENES />
                    </div>
                    <fieldset class="field avatars">
                        <legend>"Avatar"</legend>
                        {Avatar::PRESETS.iter().map(|a| view! {
                            <label class=format!("avatar-choice avatar-{a}")>
                                <input type="radio" name="avatar" value=*a
                                    prop:checked=move || draft.with(|d| d.avatar == *a)
                                    on:change=move |_| draft.update(|d| d.avatar = a.to_string()) />
                                <span>{*a}</span>
                            </label>
                        }).collect_view()}
                    </fieldset>
                </fieldset>
                <div class="actions">
                    <button type="button" class="primary" on:click=next disabled=move || busy.get()>
                        {move || if busy.get() { "Writing their story…" } else { "Next: write their story" }}
                    </button>
                </div>
            </Show>
            <Show when=move || step.get() == Step::Story>
                <fieldset>
                    <legend>"Their story"</legend>
                    {move || offline.get().then(|| view! {
                        <p class="badge offline" data-testid="offline-label">
                            "Written by the built-in offline writer (no AI model is configured)."
                        </p>
                    })}
                    <TextArea label="Backstory" name=field::BACKSTORY draft error=error_for(field::BACKSTORY) rows=8
                        get=|d| d.backstory.clone() set=|d, v| d.backstory = v />
                    <TextArea label="Story context (the world)" name=field::STORY_CONTEXT draft error=error_for(field::STORY_CONTEXT) rows=6
                        get=|d| d.story_context.clone() set=|d, v| d.story_context = v />
                    <TextArea label="Opening line" name=field::OPENING_LINE draft error=error_for(field::OPENING_LINE) rows=2
                        get=|d| d.opening_line.clone() set=|d, v| d.opening_line = v />
                    <fieldset class="field">
                        <legend>"Start options"</legend>
                        {(0..3).map(|i| view! {
                            <label class="sub" for=format!("start-option-{i}")>{format!("Option {}", i + 1)}</label>
                            <input id=format!("start-option-{i}") name=format!("start_options[{i}]")
                                prop:value=move || draft.with(|d| d.start_options.get(i).cloned().unwrap_or_default())
                                on:input=move |ev| draft.update(|d| {
                                    d.start_options.resize(3, String::new());
                                    d.start_options[i] = event_target_value(&ev);
                                }) />
                        }).collect_view()}
                        <FieldMessage error=error_for(field::START_OPTIONS) name=field::START_OPTIONS />
                    </fieldset>
                    <fieldset class="field">
                        <legend>"Endings"</legend>
                        {(0..3).map(|i| view! {
                            <div class="ending">
                                <label class="sub" for=format!("ending-kind-{i}")>{format!("Ending {} kind", i + 1)}</label>
                                <input id=format!("ending-kind-{i}") name=format!("endings[{i}].kind")
                                    prop:value=move || draft.with(|d| d.endings.get(i).map(|e| e.kind.clone()).unwrap_or_default())
                                    on:input=move |ev| draft.update(|d| {
                                        d.endings.resize(3, DraftEnding::default());
                                        d.endings[i].kind = event_target_value(&ev);
                                    }) />
                                <label class="sub" for=format!("ending-text-{i}")>{format!("Ending {}", i + 1)}</label>
                                <textarea id=format!("ending-text-{i}") name=format!("endings[{i}].text") rows=3
                                    prop:value=move || draft.with(|d| d.endings.get(i).map(|e| e.text.clone()).unwrap_or_default())
                                    on:input=move |ev| draft.update(|d| {
                                        d.endings.resize(3, DraftEnding::default());
                                        d.endings[i].text = event_target_value(&ev);
                                    })></textarea>
                            </div>
                        }).collect_view()}
                        <FieldMessage error=error_for(field::ENDINGS) name=field::ENDINGS />
                    </fieldset>
                </fieldset>
                <div class="actions">
                    <button type="button" on:click=move |_| { show_errors.set(false); step.set(Step::Identity) }>"Back"</button>
                    <button type="button" on:click=regenerate disabled=move || busy.get()>"Regenerate"</button>
                    <button type="button" class="primary" on:click=save disabled=move || busy.get()>
                        {move || if busy.get() { "Working…" } else { "Save character" }}
                    </button>
                </div>
            </Show>
        </form>
        </RequireSignIn>
    }
}

#[component]
fn FieldMessage<F>(error: F, name: &'static str) -> impl IntoView
where
    F: Fn() -> Option<String> + Send + Sync + 'static,
{
    view! {
        <p class="field-error" id=format!("{name}-error") role="alert" data-field=name>{error}</p>
    }
}

#[component]
fn TextField<F>(
    label: &'static str,
    name: &'static str,
    draft: RwSignal<CharacterDraft>,
    error: F,
    get: fn(&CharacterDraft) -> String,
    set: fn(&mut CharacterDraft, String),
    #[prop(default = "text")] input_type: &'static str,
) -> impl IntoView
where
    F: Fn() -> Option<String> + Send + Sync + Clone + 'static,
{
    let invalid = {
        let error = error.clone();
        move || error().is_some().to_string()
    };
    view! {
        <div class="field">
            <label for=name>{label}</label>
            <input id=name name=name type=input_type
                aria-invalid=invalid aria-describedby=format!("{name}-error")
                prop:value=move || draft.with(get)
                on:input=move |ev| draft.update(|d| set(d, event_target_value(&ev))) />
            <FieldMessage error name />
        </div>
    }
}

#[component]
fn TextArea<F>(
    label: &'static str,
    name: &'static str,
    draft: RwSignal<CharacterDraft>,
    error: F,
    get: fn(&CharacterDraft) -> String,
    set: fn(&mut CharacterDraft, String),
    rows: u32,
) -> impl IntoView
where
    F: Fn() -> Option<String> + Send + Sync + Clone + 'static,
{
    let invalid = {
        let error = error.clone();
        move || error().is_some().to_string()
    };
    view! {
        <div class="field">
            <label for=name>{label}</label>
            <textarea id=name name=name rows=rows
                aria-invalid=invalid aria-describedby=format!("{name}-error")
                prop:value=move || draft.with(get)
                on:input=move |ev| draft.update(|d| set(d, event_target_value(&ev)))></textarea>
            <FieldMessage error name />
        </div>
    }
}
