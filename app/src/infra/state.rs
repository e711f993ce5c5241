//! The state handed to every route and server function (`expect_context::<AppState>()`).

use super::{config::Config, db::Db, llm::LlmProvider};
use axum::extract::FromRef;
use leptos::config::LeptosOptions;
use std::sync::Arc;

#[derive(Clone, FromRef)]
pub struct AppState {
    pub leptos_options: LeptosOptions,
    pub db: Db,
    pub llm: Arc<dyn LlmProvider>,
    pub config: Arc<Config>,
}

impl AppState {
    /// The state of the current server function call.
    pub fn get() -> Self {
        leptos::prelude::expect_context::<AppState>()
    }
}
