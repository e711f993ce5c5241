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
                        <a href="/chats">"Chats"</a>
                        <a href="/twin">"Your twin"</a>
                        <a href="/matches">"Matches"</a>
                        <a href="/usage">"Usage"</a>
                        <a href="/settings/keys">"API keys"</a>
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

/// A character's avatar: the picture the user uploaded (its thumbnail), or one drawn from its
/// preset and its name ([`crate::domain::avatar_art`]); decorative either way (the name is always
/// written beside it). A drawn one's content is one string of numbers and palette colours
/// ([`AvatarArt::svg_content`](crate::domain::avatar_art::AvatarArt::svg_content)).
#[component]
pub fn AvatarBadge(#[prop(into)] avatar: String, #[prop(into)] name: String) -> impl IntoView {
    if let Some(id) = crate::domain::Avatar::picture_of(&avatar) {
        let src = format!("/pictures/{id}/thumb.jpg");
        return view! { <img class="avatar picture" src=src alt="" width="64" height="64" /> }
            .into_any();
    }
    let content = crate::domain::avatar_art::avatar_markup(&avatar, &name);
    view! {
        <svg class=format!("avatar avatar-{avatar}") viewBox="0 0 64 64" aria-hidden="true" focusable="false" inner_html=content></svg>
    }
    .into_any()
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

/// The UTC day of `ms` (epoch milliseconds) as `2026-12-07`, the same on the server and in the
/// browser (days from the civil calendar, no time zone data needed).
pub fn date(ms: i64) -> String {
    let days = ms.div_euclid(86_400_000);
    // Howard Hinnant's days-to-civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

#[cfg(test)]
mod tests {
    #[test]
    fn dates_are_utc_days() {
        assert_eq!(super::date(0), "1970-01-01");
        assert_eq!(super::date(1_796_601_600_000), "2026-12-07");
        assert_eq!(super::date(951_782_400_000), "2000-02-29");
        assert_eq!(super::date(-86_400_000), "1969-12-31");
    }
}
