//! The request id of the request being served, for logs and for the reference shown with
//! internal errors. The server sets it (header `x-request-id`) and it is read back from the
//! request parts that leptos_axum puts in the server function's context.

/// The current request's id, or `-` outside a request.
pub fn current() -> String {
    leptos::prelude::use_context::<http::request::Parts>()
        .and_then(|parts| {
            parts
                .headers
                .get("x-request-id")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        })
        .unwrap_or_else(|| "-".to_string())
}
