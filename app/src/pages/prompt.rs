//! What the model saw (`/chats/:session?seen=MESSAGE`): the prompt a reply was written from,
//! part by part — the system prompt (the character's, or the card's own), the lorebook entries its
//! keys brought up, the summary, the messages sent, the card's instructions after them — each with
//! its tokens and the budget they were fitted into. Plain HTML: nothing here needs script, so it
//! is rendered on the server only (`chat/prompt/page` gives it as HTML, [`render`]) and the browser
//! bundle holds none of it. It is the chat's address with `?seen=`, not a route of its own.

use crate::chat::seen_prompt_page;
#[cfg(feature = "ssr")]
use crate::chat::PromptView;
use crate::pages::layout::{error_view, param};
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::{use_params_map, use_query_map};

/// `/chats/:session`: the chat, or with `?seen=MESSAGE` what the model saw for that reply.
#[component]
pub fn SessionPage() -> impl IntoView {
    let query = use_query_map();
    let seen = Memo::new(move |_| param(query, "seen").is_some_and(|s| !s.is_empty()));
    move || {
        if seen.get() {
            view! { <PromptPage /> }.into_any()
        } else {
            view! { <crate::pages::chat::ChatPage /> }.into_any()
        }
    }
}

#[component]
pub fn PromptPage() -> impl IntoView {
    let params = use_params_map();
    let query = use_query_map();
    let ids = move || {
        (
            param(params, "session").unwrap_or_default(),
            param(query, "seen").unwrap_or_default(),
        )
    };
    let seen = Resource::new(ids, |(session, message)| seen_prompt_page(session, message));
    let back = move || {
        let (session, message) = ids();
        format!("/chats/{session}?at={message}#m-{message}")
    };
    view! {
        <Title text="What the model saw" />
        <p><a href=back>"← Back to the chat"</a></p>
        <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match seen.await {
                    Ok(html) => view! { <div class="seen" inner_html=html></div> }.into_any(),
                    Err(e) => error_view(e),
                }
            })}
        </Suspense>
    }
}

/// The page's content for `p`, as HTML.
#[cfg(feature = "ssr")]
pub fn render(p: PromptView) -> String {
    use leptos::tachys::view::RenderHtml;
    view! { <Prompt p /> }.to_html()
}

#[cfg(feature = "ssr")]
fn count(n: usize) -> String {
    crate::pages::usage::thousands(n as u64)
}

#[cfg(feature = "ssr")]
fn tokens(n: usize) -> String {
    format!("{} tokens", count(n))
}

#[cfg(feature = "ssr")]
#[component]
fn Prompt(p: PromptView) -> impl IntoView {
    let s = p.seen;
    let lore_total: usize = s.lore.iter().map(|l| l.tokens + 2).sum();
    let turn_note = match (s.turns_left_out, s.older_left_out) {
        (0, false) => "Every earlier message of this conversation fitted.".to_string(),
        (0, true) => "Older messages did not fit and were not sent.".to_string(),
        (n, older) => format!(
            "{} earlier message{}{} did not fit and {} not sent.",
            count(n),
            if n == 1 { "" } else { "s" },
            if older { " (and older ones)" } else { "" },
            if n == 1 && !older { "was" } else { "were" }
        ),
    };
    let lore_note = (s.lore_left_out > 0).then(|| {
        format!(
            "{} more entr{} came up but did not fit the lorebook's budget (lower priority first).",
            count(s.lore_left_out),
            if s.lore_left_out == 1 { "y" } else { "ies" }
        )
    });
    view! {
        <h1>"What the model saw"</h1>
        <p class="muted">{format!("For a reply in “{}”, with {}.", p.title, p.with)}</p>
        <table class="seen-totals" data-testid="seen-totals">
            <caption>"The prompt, in tokens (estimated on the high side)"</caption>
            <tbody>
                <tr><th scope="row">"System prompt"</th><td>{count(s.system_tokens)}</td></tr>
                <tr><th scope="row">"Lorebook entries"</th><td>{count(lore_total)}</td></tr>
                <tr><th scope="row">"Summary"</th><td>{count(s.summary_tokens)}</td></tr>
                <tr><th scope="row">"Messages"</th><td>{count(s.turn_tokens)}</td></tr>
                <tr><th scope="row">"Instructions after the messages"</th><td>{count(s.after_tokens)}</td></tr>
                <tr><th scope="row">"Total"</th><td data-testid="seen-total">{count(s.total)}</td></tr>
                <tr><th scope="row">"Budget"</th><td>{count(s.budget)}</td></tr>
            </tbody>
        </table>
        <section aria-labelledby="seen-system">
            <h2 id="seen-system">"System prompt"</h2>
            <p class="muted">
                {if s.card_system { "The card's own system prompt." } else { "PersonaFlux's prompt for this character." }}
                " " {tokens(s.system_tokens)}
            </p>
            <pre class="seen-text" data-testid="seen-system">{s.system}</pre>
        </section>
        <section aria-labelledby="seen-lore">
            <h2 id="seen-lore">"Lorebook entries"</h2>
            {if s.lore.is_empty() {
                view! { <p class="muted">"None: no entry's keys came up in the latest messages."</p> }.into_any()
            } else {
                view! {
                    <ol class="seen-lore" data-testid="seen-lore">
                        {s.lore.into_iter().map(|l| {
                            let why = if l.key.is_empty() { "always sent".to_string() } else { format!("key “{}”", l.key) };
                            view! {
                                <li>
                                    <strong>{l.name}</strong>" · "{why}" · "{tokens(l.tokens)}
                                    <pre class="seen-text">{l.content}</pre>
                                </li>
                            }
                        }).collect_view()}
                    </ol>
                }.into_any()
            }}
            {lore_note.map(|n| view! { <p class="muted">{n}</p> })}
        </section>
        {s.summary.map(|summary| view! {
            <section aria-labelledby="seen-summary">
                <h2 id="seen-summary">"Summary"</h2>
                <p class="muted">{tokens(s.summary_tokens)}</p>
                <pre class="seen-text">{summary}</pre>
            </section>
        })}
        <section aria-labelledby="seen-turns">
            <h2 id="seen-turns">{format!("Messages ({})", count(p.turns.len()))}</h2>
            <p class="muted">{turn_note}</p>
            <ol class="seen-turns" data-testid="seen-turns">
                {p.turns.into_iter().map(|t| {
                    let who = match t.role {
                        crate::chat::MessageRole::User => "User",
                        crate::chat::MessageRole::Assistant => "Model",
                    };
                    view! {
                        <li>
                            <strong>{who}</strong>" · "{tokens(t.tokens)}
                            <pre class="seen-text">{t.text}</pre>
                        </li>
                    }
                }).collect_view()}
            </ol>
        </section>
        {s.after.map(|after| view! {
            <section aria-labelledby="seen-after">
                <h2 id="seen-after">"Instructions after the messages"</h2>
                <p class="muted">"The card's post-history instructions. " {tokens(s.after_tokens)}</p>
                <pre class="seen-text" data-testid="seen-after">{after}</pre>
            </section>
        })}
    }
}
