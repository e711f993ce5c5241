//! The few things pages do that exist on only one side, behind functions that do nothing on the
//! other, so page code reads without `cfg` attributes: setting the HTTP status of a server
//! render, and running a task in the browser.

use std::future::Future;

/// The HTTP status a page can ask for while the server renders it.
pub use http::StatusCode;

/// Sets the HTTP status of the response being rendered on the server. Nothing in the browser,
/// where the page is already delivered.
pub fn set_status(status: StatusCode) {
    #[cfg(feature = "ssr")]
    if let Some(resp) = leptos::prelude::use_context::<leptos_axum::ResponseOptions>() {
        resp.set_status(status);
    }
    #[cfg(not(feature = "ssr"))]
    let _ = status;
}

/// Runs `task` in the browser, from an event handler. On the server, where event handlers never
/// fire, it is dropped unrun.
pub fn spawn_browser_task(task: impl Future<Output = ()> + 'static) {
    #[cfg(feature = "hydrate")]
    leptos::task::spawn_local(task);
    #[cfg(not(feature = "hydrate"))]
    drop(task);
}
