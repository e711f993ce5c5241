//! The character wizard: (1) identity and traits, (2) generate and edit, then save. The same
//! form edits a saved character (`/characters/:id/edit`).
//!
//! The draft lives in one signal owned by the page, so moving between steps keeps everything.
//! A new character's draft is also kept in the browser's local storage as it is typed, so a reload
//! or a closed tab loses nothing; saving clears it. Messages come from the same domain parsers the
//! server functions use.

use crate::characters::{
    generate_character, get_card_import, get_character, regenerate_section, save_character,
    update_character, CardImport, Generated, Rewritten,
};
use crate::domain::{
    field, Avatar, CharacterDraft, DraftEnding, FieldErrors, Gender, SceneCount, Section, Traits,
};
use crate::error::AppError;
use crate::pages::form::{Control, Field, FieldError};
use crate::pages::layout::{error_view, param, AvatarBadge, RequireSignIn};
use crate::pages::platform::{forget, store, stored};
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::{use_navigate, use_params_map, use_query_map};

/// Where the browser keeps the draft of a new character.
const DRAFT_KEY: &str = "personaflux.wizard.draft";
/// The card import the kept draft was made from, if it was: kept beside the draft so a draft
/// brought back after a reload still saves with its card.
const IMPORT_KEY: &str = "personaflux.wizard.import";

#[derive(Clone, Copy, PartialEq, Eq)]
enum Step {
    Identity,
    Story,
}

fn initial_draft() -> CharacterDraft {
    CharacterDraft::default().with_defaults()
}

/// What the wizard asks of the server.
#[derive(Clone)]
enum Request {
    /// Write the story parts for the draft; `variation` picks another take.
    Generate {
        draft: CharacterDraft,
        variation: u64,
    },
    /// Write one section again, keeping the rest.
    Section {
        draft: CharacterDraft,
        section: Section,
        variation: u64,
    },
    /// Write what an imported card lacks (start options, endings), keeping what it has.
    Fill {
        draft: CharacterDraft,
        variation: u64,
    },
    /// Save the draft: as a new character, or over the one being edited.
    Save(CharacterDraft),
}

/// What the server did.
#[derive(Clone)]
enum Done {
    Generated(Generated),
    Rewritten(Rewritten),
    /// An imported draft with its missing sections written: on to the story step.
    Filled(Rewritten),
    Saved(String),
}

/// `/characters/new`; `?import=ID` opens the draft made from an imported Character Card.
#[component]
pub fn WizardPage() -> impl IntoView {
    let query = use_query_map();
    let import_id = move || param(query, "import").filter(|i| !i.is_empty());
    let import = Resource::new(import_id, |id| async move {
        match id {
            Some(id) => get_card_import(id).await.map(Some),
            None => Ok(None),
        }
    });
    view! {
        <RequireSignIn>
            <Title text="New character" />
            <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match import.await {
                        Ok(Some(card)) => view! {
                            <Wizard initial=card.draft.clone() editing=None import=card />
                        }.into_any(),
                        Ok(None) => view! { <Wizard initial=initial_draft() editing=None /> }.into_any(),
                        Err(e) => error_view(e),
                    }
                })}
            </Suspense>
        </RequireSignIn>
    }
}

/// `/characters/:id/edit`: the wizard on a saved character, opening at its story.
#[component]
pub fn EditCharacterPage() -> impl IntoView {
    let params = use_params_map();
    let character = Resource::new(
        move || param(params, "id").unwrap_or_default(),
        get_character,
    );
    view! {
        <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match character.await {
                    Ok(c) => view! {
                        <Title text=format!("Edit {}", c.draft.name) />
                        <Wizard initial=c.draft editing=Some(c.id) />
                    }.into_any(),
                    Err(e) => error_view(e),
                }
            })}
        </Suspense>
    }
}

/// The form. `editing`: the id of the saved character it edits (none for a new one).
/// `import`: the Character Card the draft was made from (a new character only).
#[component]
fn Wizard(
    initial: CharacterDraft,
    editing: Option<String>,
    #[prop(optional)] import: Option<CardImport>,
) -> AnyView {
    let is_new = editing.is_none();
    let imported = import.is_some();
    let import_id = RwSignal::new(import.as_ref().map(|c| c.id.clone()));
    let draft = RwSignal::new(initial);
    // The uploaded picture the draft has shown, still offered when a drawn one is chosen instead.
    let uploaded = Memo::new(move |prev: Option<&Option<String>>| {
        draft
            .with(|d| Avatar::picture_of(&d.avatar).map(str::to_string))
            .or_else(|| prev.cloned().flatten())
    });
    let step = RwSignal::new(if is_new { Step::Identity } else { Step::Story });
    // Field messages are shown once the user has tried to go on (or the server refused).
    let show_errors = RwSignal::new(false);
    let offline = RwSignal::new(false);
    let variation = RwSignal::new(0u64);
    let trait_input = RwSignal::new(String::new());

    // One action for both requests: while one runs the buttons are busy, and its result (the
    // latest) says what to show.
    let editing_id = editing.clone();
    let request = Action::new(move |r: &Request| {
        let (r, editing, import_id) = (r.clone(), editing_id.clone(), import_id.get_untracked());
        async move {
            match r {
                Request::Generate { draft, variation } => generate_character(draft, variation)
                    .await
                    .map(Done::Generated),
                Request::Section {
                    draft,
                    section,
                    variation,
                } => regenerate_section(draft, section, variation)
                    .await
                    .map(Done::Rewritten),
                Request::Fill { draft, variation } => {
                    let mut out = Rewritten {
                        draft,
                        offline: false,
                    };
                    for section in [Section::StartOptions, Section::Endings] {
                        if section.is_empty_in(&out.draft) {
                            let r = regenerate_section(out.draft, section, variation).await?;
                            out = Rewritten {
                                draft: r.draft,
                                offline: out.offline || r.offline,
                            };
                        }
                    }
                    Ok(Done::Filled(out))
                }
                Request::Save(draft) => match editing {
                    Some(id) => update_character(id, draft).await.map(Done::Saved),
                    None => save_character(draft, import_id).await.map(Done::Saved),
                },
            }
        }
    });
    if is_new {
        // In the browser only (effects do not run on the server): first bring back a draft kept
        // from before a reload, then keep every change.
        Effect::new(move |restored: Option<()>| {
            // An imported card replaces whatever draft was kept.
            if restored.is_none() {
                if imported {
                    match import_id.get_untracked() {
                        Some(id) => store(IMPORT_KEY, &id),
                        None => forget(IMPORT_KEY),
                    }
                } else if let Some(kept) =
                    stored(DRAFT_KEY).and_then(|s| serde_json::from_str::<CharacterDraft>(&s).ok())
                {
                    draft.set(kept);
                    import_id.set(stored(IMPORT_KEY));
                }
            }
            if let Ok(json) = serde_json::to_string(&draft.get()) {
                store(DRAFT_KEY, &json);
            }
        });
    }
    let busy = request.pending();
    let failure = move || match request.value().get() {
        Some(Err(e)) if !busy.get() => Some(e),
        _ => None,
    };
    let banner = move || failure().filter(|e| !matches!(e, AppError::Invalid(_)));
    let server_errors = move || match failure() {
        Some(AppError::Invalid(errs)) => errs,
        _ => FieldErrors::default(),
    };
    let navigate = use_navigate();
    Effect::new(move |_| match request.value().get() {
        Some(Ok(Done::Generated(g))) => {
            offline.set(g.offline);
            draft.update(|d| *d = d.clone().with_story(&g.story));
            step.set(Step::Story);
        }
        Some(Ok(Done::Rewritten(r))) => {
            offline.set(r.offline);
            draft.set(r.draft);
        }
        Some(Ok(Done::Filled(r))) => {
            offline.set(r.offline);
            draft.set(r.draft);
            step.set(Step::Story);
        }
        Some(Ok(Done::Saved(id))) => {
            if is_new {
                forget(DRAFT_KEY);
                forget(IMPORT_KEY);
                // A new character: straight into a chat with them.
                navigate(&format!("/characters/{id}/chat"), Default::default())
            } else {
                navigate(&format!("/characters/{id}"), Default::default())
            }
        }
        Some(Err(AppError::Invalid(_))) => show_errors.set(true),
        _ => {}
    });

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
                .or_else(|| server_errors().get(name).map(str::to_string))
        }
    };

    let generate = move || {
        request.dispatch(Request::Generate {
            draft: draft.get_untracked(),
            variation: variation.get_untracked(),
        });
    };
    let next = move |_| {
        show_errors.set(true);
        if live_errors.with(|e| e.is_empty()) {
            show_errors.set(false);
            if draft.with(|d| d.backstory.is_empty()) {
                generate();
            } else if draft
                .with(|d| Section::StartOptions.is_empty_in(d) || Section::Endings.is_empty_in(d))
            {
                // A draft from a card: its texts kept, what cards lack written for it.
                request.dispatch(Request::Fill {
                    draft: draft.get_untracked(),
                    variation: variation.get_untracked(),
                });
            } else {
                step.set(Step::Story);
            }
        }
    };
    let regenerate = move |_| {
        variation.update(|v| *v += 1);
        generate();
    };
    // A button under a section that writes it again, the rest kept.
    let rewrite = move |section: Section| {
        view! {
            <button type="button" class="rewrite" disabled=move || busy.get()
                on:click=move |_| {
                    variation.update(|v| *v += 1);
                    request.dispatch(Request::Section {
                        draft: draft.get_untracked(),
                        section,
                        variation: variation.get_untracked(),
                    });
                }>
                {format!("Write the {} again", section.label())}
            </button>
        }
    };
    let save = move |_| {
        show_errors.set(true);
        if live_errors.with(|e| e.is_empty()) {
            request.dispatch(Request::Save(draft.get_untracked()));
        }
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

    let start_over = move |_| {
        forget(DRAFT_KEY);
        forget(IMPORT_KEY);
        import_id.set(None);
        draft.set(initial_draft());
        show_errors.set(false);
        step.set(Step::Identity);
    };
    view! {
        <h1>{if is_new { "New character".to_string() } else { format!("Edit {}", draft.get_untracked().name) }}</h1>
        <ol class="steps" aria-label="Steps">
            <li class:current=move || step.get() == Step::Identity>"1. Who they are"</li>
            <li class:current=move || step.get() == Step::Story>"2. Their story"</li>
        </ol>
        {import.map(|card| view! {
            <div class="notice" role="status" data-testid="import-notice">
                <p>{format!("Imported from a {} file. Check each field before saving.", card.format)}</p>
                <ul>{card.notes.into_iter().map(|n| view! { <li>{n}</li> }).collect_view()}</ul>
            </div>
        })}
        {move || banner().map(|b| view! { <p class="alert" role="alert">{b.to_string()}</p> })}
        <form class="wizard" on:submit=|ev| ev.prevent_default() novalidate>
            <Show when=move || step.get() == Step::Identity>
                <fieldset>
                    <legend>"Who they are"</legend>
                    <Field label="Name" name=field::NAME error=error_for(field::NAME)
                        value=move || draft.with(|d| d.name.clone()) set=move |v| draft.update(|d| d.name = v) />
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
                        <FieldError error=error_for(field::TRAITS) name=field::TRAITS />
                    </div>
                    <Field label="Age" name=field::AGE error=error_for(field::AGE) control=Control::Number
                        value=move || draft.with(|d| d.age.clone()) set=move |v| draft.update(|d| d.age = v) />
                    <Field label="Gender" name=field::GENDER error=error_for(field::GENDER)
                        control=Control::Choice(Gender::ALL.iter().map(|g| (g.as_str().to_string(), g.label().to_string())).collect())
                        value=move || draft.with(|d| d.gender.clone()) set=move |v| draft.update(|d| d.gender = v) />
                    <Field label="Language of the story" name=field::LANGUAGE error=error_for(field::LANGUAGE)
                        value=move || draft.with(|d| d.language.clone()) set=move |v| draft.update(|d| d.language = v) />
                    <Field label="Voice (optional)" name=field::VOICE error=error_for(field::VOICE)
                        value=move || draft.with(|d| d.voice.clone()) set=move |v| draft.update(|d| d.voice = v) />
                    <Field label="Number of scenes" name=field::SCENES error=error_for(field::SCENES)
                        control=Control::Choice(SceneCount::CHOICES.iter().map(|n| (n.to_string(), n.to_string())).collect())
                        value=move || draft.with(|d| d.scenes.clone()) set=move |v| draft.update(|d| d.scenes = v) />
                    <fieldset class="field avatars">
                        <legend>"Avatar"</legend>
                        {Avatar::PRESETS.iter().map(|a| view! {
                            <label class="avatar-choice">
                                <input type="radio" name="avatar" value=*a
                                    prop:checked=move || draft.with(|d| d.avatar == *a)
                                    on:change=move |_| draft.update(|d| d.avatar = a.to_string()) />
                                // Drawn for the name being typed: what the character will look like.
                                {move || view! { <AvatarBadge avatar=*a name=draft.with(|d| d.name.clone()) /> }}
                                <span>{*a}</span>
                            </label>
                        }).collect_view()}
                        // The picture the character was given (kept while editing, and offered
                        // again after choosing a drawn one).
                        {move || uploaded.get().map(|id| {
                            let value = format!("{}{id}", Avatar::UPLOAD);
                            let (checked, set) = (value.clone(), value.clone());
                            view! {
                                <label class="avatar-choice">
                                    <input type="radio" name="avatar" value=value.clone()
                                        prop:checked=move || draft.with(|d| d.avatar == checked)
                                        on:change=move |_| draft.update(|d| d.avatar = set.clone()) />
                                    <AvatarBadge avatar=value name="" />
                                    <span>"their picture"</span>
                                </label>
                            }
                        })}
                        <p class="muted hint">"Upload a picture of your own on the character's page, once saved."</p>
                    </fieldset>
                </fieldset>
                <div class="actions">
                    {is_new.then(|| view! {
                        <button type="button" on:click=start_over>"Start over"</button>
                    })}
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
                    <Field label="Backstory" name=field::BACKSTORY error=error_for(field::BACKSTORY) control=Control::Lines(8)
                        value=move || draft.with(|d| d.backstory.clone()) set=move |v| draft.update(|d| d.backstory = v) />
                    {rewrite(Section::Backstory)}
                    <Field label="Story context (the world)" name=field::STORY_CONTEXT error=error_for(field::STORY_CONTEXT) control=Control::Lines(6)
                        value=move || draft.with(|d| d.story_context.clone()) set=move |v| draft.update(|d| d.story_context = v) />
                    {rewrite(Section::StoryContext)}
                    <Field label="Opening line" name=field::OPENING_LINE error=error_for(field::OPENING_LINE) control=Control::Lines(2)
                        value=move || draft.with(|d| d.opening_line.clone()) set=move |v| draft.update(|d| d.opening_line = v) />
                    {rewrite(Section::OpeningLine)}
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
                        <FieldError error=error_for(field::START_OPTIONS) name=field::START_OPTIONS />
                        {rewrite(Section::StartOptions)}
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
                        <FieldError error=error_for(field::ENDINGS) name=field::ENDINGS />
                        {rewrite(Section::Endings)}
                    </fieldset>
                </fieldset>
                <div class="actions">
                    <button type="button" on:click=move |_| { show_errors.set(false); step.set(Step::Identity) }>"Back"</button>
                    <button type="button" on:click=regenerate disabled=move || busy.get()>"Regenerate"</button>
                    <button type="button" class="primary" on:click=save disabled=move || busy.get()>
                        {move || if busy.get() { "Working…" } else if is_new { "Save character" } else { "Save changes" }}
                    </button>
                </div>
            </Show>
        </form>
    }
    // Erased: the form's type is deep, and the edit page nests it in a Suspense.
    .into_any()
}
