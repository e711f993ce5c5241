//! The per-response Content-Security-Policy nonce. The server's security-headers layer makes one
//! for each request, puts it in the request's extensions and names it in the CSP header; the page
//! shell hands that same value to Leptos, so every inline script Leptos writes (hydration,
//! streamed resources) carries it and runs, and any script without it does not.

use leptos::nonce::Nonce;
use leptos::prelude::{provide_context, use_context};

/// Makes the request's nonce the one Leptos writes into this page's scripts.
pub fn provide_request_nonce() {
    let nonce = use_context::<http::request::Parts>()
        .and_then(|parts| parts.extensions.get::<Nonce>().cloned());
    if let Some(nonce) = nonce {
        provide_context(nonce);
    }
}
