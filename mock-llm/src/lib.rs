//! A stand-in for the remote model APIs on loopback, for tests, end-to-end runs and benchmarks. It
//! speaks two wire formats, each in its own module — Google's Gemini REST API ([`gemini`], under
//! `/v1beta`) and OpenAI-compatible chat completions ([`openai`], `/v1/chat/completions`) — and
//! can be scripted to fail in each of the ways the real services do.
//!
//! Replies come from a queue (`MockLlm::push`, or `POST /mock/script` with a JSON array of
//! [`Reply`]). When the queue is empty, a marker in the last user message of a Gemini request picks
//! a fault (`[[mock:429]]`, `[[mock:cut_off]]`, … see [`Reply::from_marker`]); otherwise the mock
//! answers plausibly: a valid character for a JSON request, a short chat reply otherwise.
//! `GET /mock/requests` lists what was received, in either protocol.

mod gemini;
mod openai;
mod script;

pub use script::{fill_schema, sample_character, sample_for, Reply};

use axum::{
    extract::State,
    http::StatusCode,
    routing::{get, post},
    Json, Router,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::{
    collections::VecDeque,
    net::SocketAddr,
    sync::{Arc, Mutex},
};

/// A request as the mock received it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Recorded {
    pub model: String,
    pub method: String,
    pub alt: Option<String>,
    pub api_key: Option<String>,
    pub body: Value,
}

#[derive(Default)]
struct Inner {
    script: Mutex<VecDeque<Reply>>,
    requests: Mutex<Vec<Recorded>>,
    /// Streams whose client went away before the stream ended.
    aborted: std::sync::atomic::AtomicUsize,
}

/// A running mock. Dropping it stops the server.
pub struct MockLlm {
    pub addr: SocketAddr,
    inner: Arc<Inner>,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

impl MockLlm {
    /// Starts on a free loopback port.
    pub async fn start() -> Self {
        Self::start_on("127.0.0.1:0".parse().unwrap()).await
    }

    pub async fn start_on(addr: SocketAddr) -> Self {
        let inner = Arc::new(Inner::default());
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .expect("bind mock");
        let addr = listener.local_addr().expect("mock addr");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let app = router(inner.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = rx.await;
                })
                .await;
        });
        Self {
            addr,
            inner,
            _shutdown: tx,
        }
    }

    /// What to set as the provider's base URL.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1beta", self.addr)
    }

    pub fn push(&self, reply: Reply) {
        self.inner.script.lock().unwrap().push_back(reply);
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.inner.requests.lock().unwrap().clone()
    }

    /// How many streams the client closed before their end (a cancelled upstream request).
    pub fn aborted_streams(&self) -> usize {
        self.inner.aborted.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The OpenAI-compatible base URL (`{base}/chat/completions`).
    pub fn openai_base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }
}

/// The mock's routes, for embedding or for `main`.
fn router(inner: Arc<Inner>) -> Router {
    Router::new()
        .route("/v1beta/models/{model_method}", post(gemini::generate))
        .route("/v1/chat/completions", post(openai::chat_completions))
        .route("/mock/script", post(script))
        .route("/mock/requests", get(requests))
        .route("/mock/reset", post(reset))
        .with_state(inner)
}

/// Serves until the process ends (for the `mock-llm` binary).
pub async fn serve(addr: SocketAddr) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    println!("mock LLM listening on http://{addr}/v1beta (Gemini) and http://{addr}/v1 (OpenAI-compatible)");
    axum::serve(listener, router(Arc::new(Inner::default()))).await
}

async fn script(State(inner): State<Arc<Inner>>, Json(replies): Json<Vec<Reply>>) -> StatusCode {
    inner.script.lock().unwrap().extend(replies);
    StatusCode::NO_CONTENT
}

async fn requests(State(inner): State<Arc<Inner>>) -> Json<Vec<Recorded>> {
    Json(inner.requests.lock().unwrap().clone())
}

async fn reset(State(inner): State<Arc<Inner>>) -> StatusCode {
    inner.script.lock().unwrap().clear();
    inner.requests.lock().unwrap().clear();
    StatusCode::NO_CONTENT
}
