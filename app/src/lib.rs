//! PersonaFlux: everything shared by the server (feature `ssr`) and the browser (feature `hydrate`).
//!
//! Domain types and their validation live in [`domain`] and are the same code on both sides.
//! Each domain ([`auth`], [`characters`], [`chat`], [`play`], [`twins`], [`matches`], [`usage`]) is a folder: `mod.rs`
//! with its wire types and server functions, and the server-only `service` (behaviour) and `store`
//! (every query on its tables). Pages are in [`pages`]; server plumbing (configuration, database,
//! sessions, LLM providers) is in [`infra`]. ARCHITECTURE.md follows a request through them.

#![recursion_limit = "256"]

pub mod auth;
pub mod characters;
pub mod chat;
pub mod domain;
pub mod error;
pub mod keys;
pub mod limits;
pub mod matches;
pub mod pages;
pub mod play;
pub mod theme;
pub mod twins;
pub mod usage;

#[cfg(feature = "ssr")]
pub mod infra;

use leptos::prelude::*;
use leptos_meta::{provide_meta_context, MetaTags, Title};
use leptos_router::{
    components::{Route, Router, Routes},
    path, SsrMode,
};

/// The HTML document the server renders around [`App`].
pub fn shell(options: LeptosOptions) -> impl IntoView {
    // The scripts below carry the nonce the Content-Security-Policy header names.
    #[cfg(feature = "ssr")]
    infra::csp::provide_request_nonce();
    view! {
        <!DOCTYPE html>
        <html lang="en" data-theme=theme::current().key()>
            <head>
                <meta charset="utf-8" />
                <meta name="viewport" content="width=device-width, initial-scale=1" />
                <link rel="stylesheet" id="leptos" href=options.css_path() />
                // Named, so browsers do not ask for a /favicon.ico that does not exist.
                <link rel="icon" type="image/svg+xml" href="/favicon.svg" />
                <HydrationScripts options=options.clone() />
                <MetaTags />
            </head>
            <body>
                <App />
            </body>
        </html>
    }
}

/// The router: every page of the app.
#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    auth::provide_auth();
    // Effects run only in the browser: mark the page once it is interactive (tests wait for it).
    Effect::new(|_| {
        if let Some(body) = document().body() {
            let _ = body.set_attribute("data-hydrated", "true");
        }
    });

    view! {
        <Title formatter=|page: String| {
            if page.is_empty() { "PersonaFlux".to_string() } else { format!("{page} · PersonaFlux") }
        } />
        <Router>
            <pages::layout::Header />
            <main id="main">
                <Routes fallback=pages::layout::NotFound>
                    <Route path=path!("") ssr=SsrMode::Async view=pages::home::HomePage />
                    <Route path=path!("/signin") ssr=SsrMode::Async view=pages::signin::SignInPage />
                    <Route path=path!("/dashboard") ssr=SsrMode::Async view=pages::dashboard::DashboardPage />
                    <Route path=path!("/characters/new") ssr=SsrMode::Async view=pages::wizard::WizardPage />
                    <Route path=path!("/characters/import") ssr=SsrMode::Async view=pages::import::ImportPage />
                    <Route path=path!("/characters/:id") ssr=SsrMode::Async view=pages::character::CharacterPage />
                    <Route path=path!("/characters/:id/chat") ssr=SsrMode::Async view=pages::chat::ChatPage />
                    <Route path=path!("/characters/:id/chat/new") ssr=SsrMode::Async view=pages::chat::ChatPage />
                    <Route path=path!("/chats") ssr=SsrMode::Async view=pages::chats::ChatsPage />
                    <Route path=path!("/chats/:session") ssr=SsrMode::Async view=pages::prompt::SessionPage />
                    <Route path=path!("/characters/:id/edit") ssr=SsrMode::Async view=pages::wizard::EditCharacterPage />
                    <Route path=path!("/characters/:id/play") ssr=SsrMode::Async view=pages::play::PlayPage />
                    <Route path=path!("/play/:id") ssr=SsrMode::Async view=pages::play::RunPage />
                    <Route path=path!("/settings/keys") ssr=SsrMode::Async view=pages::keys::KeysPage />
                    <Route path=path!("/trash") ssr=SsrMode::Async view=pages::trash::TrashPage />
                    <Route path=path!("/usage") ssr=SsrMode::Async view=pages::usage::UsagePage />
                    <Route path=path!("/twin") ssr=SsrMode::Async view=pages::twin::TwinPage />
                    <Route path=path!("/twin/chat") ssr=SsrMode::Async view=pages::chat::ChatPage />
                    <Route path=path!("/twin/chat/new") ssr=SsrMode::Async view=pages::chat::ChatPage />
                    <Route path=path!("/matches") ssr=SsrMode::Async view=pages::matches::MatchesPage />
                    <Route path=path!("/matches/:id") ssr=SsrMode::Async view=pages::matches::MatchPage />
                </Routes>
            </main>
            <theme::ThemeChooser />
        </Router>
    }
}
