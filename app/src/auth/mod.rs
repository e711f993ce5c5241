//! Who is signed in: the wire types and server functions of signing in and out, and the auth
//! context pages read. The local sign-in of the embedded default and the session live in
//! [`service`]; every query on `users` and `oauth_identities` is in [`store`]; the sign-in
//! providers (OpenID Connect, Google, GitHub, SecondMe) and their shared flow are in [`providers`].
//! Other domains take the signed-in user as `crate::auth::{require_user, UserId}`.

use crate::error::AppError;
use leptos::prelude::*;
use serde::{Deserialize, Serialize};

#[cfg(feature = "ssr")]
pub mod providers;
#[cfg(feature = "ssr")]
pub mod service;
#[cfg(feature = "ssr")]
pub mod store;

#[cfg(feature = "ssr")]
pub use service::{require_user, UserId};

/// The signed-in user as the browser sees them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CurrentUser {
    pub id: String,
    pub display_name: String,
}

/// What the sign-in page offers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignInOptions {
    /// "Continue as local user": only while the server listens on loopback.
    pub local: bool,
    /// (id, label) of each configured provider; its button goes to `/auth/{id}/start`.
    pub providers: Vec<(String, String)>,
}

#[server(endpoint = "auth/me")]
pub async fn get_current_user() -> Result<Option<CurrentUser>, AppError> {
    service::current_user().await
}

#[server(endpoint = "auth/options")]
pub async fn get_sign_in_options() -> Result<SignInOptions, AppError> {
    let state = crate::infra::AppState::get()?;
    Ok(SignInOptions {
        local: service::local_sign_in_allowed(),
        providers: state.providers.buttons(),
    })
}

/// Signs in as the local user. A plain form post (the sign-in page's button) that fails is sent
/// back to the sign-in page with the reason in its address.
#[server(endpoint = "auth/local")]
pub async fn local_sign_in() -> Result<(), AppError> {
    let result = service::local_sign_in().await;
    if let Err(e) = &result {
        service::back_to_sign_in_with(e);
    }
    result
}

#[server(endpoint = "auth/signout")]
pub async fn sign_out() -> Result<(), AppError> {
    service::sign_out().await
}

/// The auth context: who the page is for.
///
/// A plain value, not a `Resource`: the server looks the user up once before rendering a page
/// ([`service::ResolvedUser`]) and the value travels to the browser with the page
/// ([`SharedValue`](leptos::server::SharedValue)), so the header and every page's sign-in guard
/// read it synchronously, with no `<Suspense>` of their own, and the server functions a page's
/// resources call reuse the answer. Signing in and out are plain form posts that end in a full
/// page load, so the value never goes stale.
#[derive(Clone)]
pub struct Auth {
    pub user: Result<Option<CurrentUser>, AppError>,
}

pub fn provide_auth() {
    let user = leptos::server::SharedValue::new(|| {
        #[cfg(feature = "ssr")]
        {
            // A page the server did not look the user up for (the not-found page of the
            // static-file fallback) shows the signed-out header.
            service::resolved_for_page().unwrap_or(Ok(None))
        }
        #[cfg(not(feature = "ssr"))]
        {
            Ok(None)
        }
    })
    .into_inner();
    provide_context(Auth { user });
}

pub fn use_auth() -> Auth {
    expect_context::<Auth>()
}

/// The words for a `/signin?error=CODE` left by a failed provider sign-in.
pub fn flow_error_message(code: &str) -> &'static str {
    match code {
        "unknown_provider" => "That sign-in method is not available.",
        "state" => "The sign-in expired or did not start here. Please try again.",
        "denied" => "Sign-in was cancelled at the provider.",
        "provider" => "The sign-in provider could not be reached. Please try again later.",
        "token" => "The sign-in provider's answer could not be verified.",
        "local" => "Local sign-in is not available from where you are connecting.",
        "unavailable" => {
            "PersonaFlux can't reach its database right now. Please try again in a moment."
        }
        _ => "Sign-in failed. Please try again.",
    }
}
