//! The seam every model call goes through.
//!
//! Two operations: a structured JSON generation against a schema, and a streamed chat completion
//! (deltas, then a final record with finish reason and token usage). Providers are chosen by
//! configuration; this skeleton ships the offline writer, and Gemini / OpenAI-compatible providers
//! plug in behind the same trait.

pub mod offline;
pub mod prompts;

use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};

use crate::domain::CharacterSeed;

/// What went wrong, classified by what the user should be told.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LlmError {
    /// The provider could not be reached or answered with a server error.
    #[error("provider unavailable: {0}")]
    Unavailable(String),
    /// The provider refused for quota or rate reasons.
    #[error("provider rate limited: {0}")]
    RateLimited(String),
    /// The reply stopped before it was complete (token limit, dropped stream).
    #[error("reply cut off: {0}")]
    CutOff(String),
    /// The provider declined to answer (safety filters, blocked prompt).
    #[error("reply blocked: {0}")]
    Blocked(String),
    /// The provider answered, but not with what was asked for.
    #[error("invalid reply: {0}")]
    InvalidReply(String),
}

impl LlmError {
    /// The sentence shown to the user; the variant's detail goes to the log only.
    pub fn user_message(&self) -> &'static str {
        match self {
            LlmError::Unavailable(_) => {
                "The character model is unavailable right now. Your message is saved; try again in a moment."
            }
            LlmError::RateLimited(_) => {
                "The character model is busy (rate limit reached). Your message is saved; try again shortly."
            }
            LlmError::CutOff(_) => "The reply was cut off before it was finished.",
            LlmError::Blocked(_) => "The model declined to answer this. Try rephrasing.",
            LlmError::InvalidReply(_) => {
                "The model's answer could not be used. Please try again."
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Role {
    User,
    Model,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Turn {
    pub role: Role,
    pub text: String,
}

/// Who is speaking, for providers that write from a profile rather than a prompt (offline).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Persona {
    pub name: String,
    pub traits: Vec<String>,
    pub story_context: String,
}

#[derive(Debug, Clone)]
pub struct ChatRequest {
    pub system: String,
    pub history: Vec<Turn>,
    pub persona: Persona,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub input_tokens: u32,
    pub output_tokens: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChatChunk {
    Delta(String),
    Done { usage: Usage },
}

/// The typed intent behind a structured request, for providers that do not read prompts.
#[derive(Debug, Clone)]
pub enum StructuredTask {
    Character { seed: CharacterSeed, variation: u64 },
}

#[derive(Debug, Clone)]
pub struct StructuredRequest {
    pub system: String,
    pub prompt: String,
    pub schema: serde_json::Value,
    pub task: StructuredTask,
}

#[derive(Debug, Clone)]
pub struct StructuredReply {
    pub value: serde_json::Value,
    pub usage: Usage,
}

#[async_trait::async_trait]
pub trait LlmProvider: Send + Sync + 'static {
    /// A short name for logs and the usage record ("offline", "gemini").
    fn name(&self) -> &'static str;

    /// Whether output is written without a model; the UI labels such output.
    fn is_offline(&self) -> bool;

    async fn generate_json(&self, req: StructuredRequest) -> Result<StructuredReply, LlmError>;

    fn stream_chat(&self, req: ChatRequest) -> BoxStream<'static, Result<ChatChunk, LlmError>>;
}

/// Builds the provider named by the configuration.
pub fn from_config(cfg: &super::config::LlmConfig) -> std::sync::Arc<dyn LlmProvider> {
    match cfg {
        super::config::LlmConfig::Offline { token_delay } => {
            std::sync::Arc::new(offline::OfflineProvider::new(*token_delay))
        }
    }
}
