//! The few things pages do that exist on only one side, behind functions that do nothing on the
//! other, so page code reads without `cfg` attributes: setting the HTTP status of a server
//! render, running a task in the browser, and the browser's local storage.

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

/// The browser's local storage, if there is one (none on the server, none in a private window
/// that refuses it).
#[cfg(feature = "hydrate")]
fn local_storage() -> Option<web_sys::Storage> {
    web_sys::window()?.local_storage().ok()?
}

/// The value stored in the browser under `key`. Always `None` on the server.
pub fn stored(key: &str) -> Option<String> {
    #[cfg(feature = "hydrate")]
    return local_storage()?.get_item(key).ok()?;
    #[cfg(not(feature = "hydrate"))]
    {
        let _ = key;
        None
    }
}

/// Keeps `value` in the browser under `key` (quietly not, where storage is refused).
pub fn store(key: &str, value: &str) {
    #[cfg(feature = "hydrate")]
    if let Some(s) = local_storage() {
        let _ = s.set_item(key, value);
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = (key, value);
}

/// Forgets what the browser keeps under `key`.
pub fn forget(key: &str) {
    #[cfg(feature = "hydrate")]
    if let Some(s) = local_storage() {
        let _ = s.remove_item(key);
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = key;
}

/// A text box in a page, to move the keyboard's focus to.
pub type TextBox = leptos::prelude::NodeRef<leptos::html::Textarea>;

/// Moves the keyboard's focus to `node` now if it is in the page, or as soon as it is (nothing
/// on the server).
pub fn focus(node: TextBox) {
    #[cfg(feature = "hydrate")]
    {
        use leptos::prelude::GetUntracked;
        match node.get_untracked() {
            Some(el) => {
                let _ = el.focus();
            }
            None => node.on_load(|el| {
                let _ = el.focus();
            }),
        }
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = node;
}

/// Makes `path` the page's address without loading it (a new chat, once made, has its own).
/// Nothing on the server.
pub fn replace_url(path: &str) {
    #[cfg(feature = "hydrate")]
    if let Some(history) = web_sys::window().and_then(|w| w.history().ok()) {
        let _ = history.replace_state_with_url(&wasm_bindgen::JsValue::NULL, "", Some(path));
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = path;
}

/// Loads the page at `path` (from an event handler). Nothing on the server.
pub fn go_to(path: &str) {
    #[cfg(feature = "hydrate")]
    if let Some(location) = web_sys::window().map(|w| w.location()) {
        let _ = location.assign(path);
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = path;
}
