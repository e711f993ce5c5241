//! One form field: a label, the control, and the field's error message underneath, wired
//! together for assistive technology (`for`/`id`, `aria-invalid`, `aria-describedby`).
//!
//! It exists so every field of a form is written the same way: the page says what the field
//! is called, where its value lives and what its error is, and nothing else.

use leptos::prelude::*;

/// How a field's value is entered.
#[derive(Clone, Debug, Default)]
pub enum Control {
    /// A one-line text input.
    #[default]
    Text,
    /// A number input.
    Number,
    /// A multi-line text area with this many rows.
    Lines(u32),
    /// A drop-down of `(value, label)` choices.
    Choice(Vec<(String, String)>),
}

/// A labelled control for `name`, showing `value()`, reporting edits to `set`, with the message
/// `error()` below it. The control's id and name are `name`; its message's id is `{name}-error`.
#[component]
pub fn Field<V, S, E>(
    label: &'static str,
    name: &'static str,
    value: V,
    set: S,
    error: E,
    #[prop(optional)] control: Control,
) -> impl IntoView
where
    V: Fn() -> String + Send + Sync + Clone + 'static,
    S: Fn(String) + Send + Sync + Clone + 'static,
    E: Fn() -> Option<String> + Send + Sync + Clone + 'static,
{
    let invalid = {
        let error = error.clone();
        move || error().is_some().to_string()
    };
    let described_by = format!("{name}-error");
    let control = match control {
        Control::Text | Control::Number => {
            let input_type = if matches!(control, Control::Number) {
                "number"
            } else {
                "text"
            };
            view! {
                <input id=name name=name type=input_type
                    aria-invalid=invalid aria-describedby=described_by
                    prop:value=value
                    on:input=move |ev| set(event_target_value(&ev)) />
            }
            .into_any()
        }
        Control::Lines(rows) => view! {
            <textarea id=name name=name rows=rows
                aria-invalid=invalid aria-describedby=described_by
                prop:value=value
                on:input=move |ev| set(event_target_value(&ev))></textarea>
        }
        .into_any(),
        Control::Choice(choices) => view! {
            <select id=name name=name
                aria-invalid=invalid aria-describedby=described_by
                on:change=move |ev| set(event_target_value(&ev))>
                {choices.into_iter().map(|(choice, text)| {
                    let value = value.clone();
                    view! { <option value=choice.clone() selected=move || value() == choice>{text}</option> }
                }).collect_view()}
            </select>
        }
        .into_any(),
    };
    view! {
        <div class="field">
            <label for=name>{label}</label>
            {control}
            <FieldError error name />
        </div>
    }
}

/// The error message of field `name` (empty while there is none). For fields whose control is
/// not a single [`Field`], such as a list of chips.
#[component]
pub fn FieldError<E>(error: E, name: &'static str) -> impl IntoView
where
    E: Fn() -> Option<String> + Send + Sync + 'static,
{
    view! {
        <p class="field-error" id=format!("{name}-error") role="alert" data-field=name>{error}</p>
    }
}
