//! The frame around every page, and the shared error display.

use crate::auth::{use_auth, SignOut};
use crate::error::AppError;
use crate::pages::platform::{set_status, StatusCode};
use leptos::either::Either;
use leptos::prelude::*;
use leptos::server_fn::ServerFn;
use leptos_router::components::Redirect;

#[component]
pub fn Header() -> impl IntoView {
    let auth = use_auth();
    view! {
        <a class="skip" href="#main">"Skip to content"</a>
        <header class="topbar">
            <a href="/" class="brand">"PersonaFlux"</a>
            <nav aria-label="Main">
                {match auth.user {
                    Ok(Some(user)) => Either::Left(view! {
                        <a href="/dashboard">"Dashboard"</a>
                        <a href="/characters/new">"New character"</a>
                        <a href="/twin">"Your twin"</a>
                        <a href="/matches">"Matches"</a>
                        <span class="who" data-testid="user-name">{user.display_name}</span>
                        // A plain form: signing out ends in a full page load.
                        <form method="post" action=SignOut::url() class="inline">
                            <button type="submit" class="link">"Sign out"</button>
                        </form>
                    }),
                    _ => Either::Right(view! { <a href="/signin">"Sign in"</a> }),
                }}
            </nav>
        </header>
    }
}

#[component]
pub fn NotFound() -> impl IntoView {
    set_status(StatusCode::NOT_FOUND);
    view! {
        <h1>"Page not found"</h1>
        <p><a href="/">"Back to the start"</a></p>
    }
}

/// Shows its children to a signed-in user and sends anyone else to sign in (a real redirect
/// during server rendering).
#[component]
pub fn RequireSignIn(children: Children) -> impl IntoView {
    match use_auth().user {
        Ok(Some(_)) => children().into_any(),
        Ok(None) => error_view(AppError::Unauthorized),
        Err(e) => error_view(e),
    }
}

/// Shows an error from a server function. Not being signed in sends the user to sign in.
pub fn error_view(err: AppError) -> AnyView {
    match err {
        AppError::Unauthorized => view! {
            <Redirect path="/signin" />
            <p>"Please " <a href="/signin">"sign in"</a> " to continue."</p>
        }
        .into_any(),
        AppError::NotFound => {
            set_status(StatusCode::NOT_FOUND);
            view! {
                <h1>"Not found"</h1>
                <p>"There is nothing here, or it belongs to someone else. " <a href="/dashboard">"Back to your dashboard"</a></p>
            }
            .into_any()
        }
        other => view! { <p class="alert" role="alert">{other.to_string()}</p> }.into_any(),
    }
}

/// A character's avatar: a picture drawn from its preset and its name
/// ([`crate::domain::avatar_art`]), decorative (the name is always written beside it). Its content
/// is one string of numbers and palette colours ([`AvatarArt::svg_content`](crate::domain::avatar_art::AvatarArt::svg_content)).
#[component]
pub fn AvatarBadge(#[prop(into)] avatar: String, #[prop(into)] name: String) -> impl IntoView {
    let content = crate::domain::avatar_art::avatar_markup(&avatar, &name);
    view! {
        <svg class=format!("avatar avatar-{avatar}") viewBox="0 0 64 64" aria-hidden="true" focusable="false" inner_html=content></svg>
    }
}

/// A route or query parameter. Read with `try_with`: when a client goes away in the middle of a
/// server render, the page's reactive owner is disposed while its resources may still be polled,
/// and a plain `read()` of the disposed map panics (seen once in a five-minute soak); this gives
/// `None` instead, and the abandoned render ends quietly.
pub fn param(
    map: leptos::prelude::Memo<leptos_router::params::ParamsMap>,
    key: &str,
) -> Option<String> {
    map.try_with(|m| m.get(key)).flatten()
}
