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

#[server(endpoint = "auth/local")]
pub async fn local_sign_in() -> Result<(), AppError> {
    service::local_sign_in().await
}

#[server(endpoint = "auth/signout")]
pub async fn sign_out() -> Result<(), AppError> {
    service::sign_out().await
}

/// The auth context: the current user, refetched after sign-in or sign-out.
#[derive(Clone, Copy)]
pub struct Auth {
    pub user: Resource<Result<Option<CurrentUser>, AppError>>,
    pub local_sign_in: ServerAction<LocalSignIn>,
    pub sign_out: ServerAction<SignOut>,
}

pub fn provide_auth() {
    let local_sign_in = ServerAction::<LocalSignIn>::new();
    let sign_out = ServerAction::<SignOut>::new();
    let user = Resource::new(
        move || (local_sign_in.version().get(), sign_out.version().get()),
        |_| get_current_user(),
    );
    provide_context(Auth {
        user,
        local_sign_in,
        sign_out,
    });
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
        _ => "Sign-in failed. Please try again.",
    }
}
