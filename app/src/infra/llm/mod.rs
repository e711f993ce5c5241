//! The seam every model call goes through.
//!
//! Two operations: a structured JSON generation against a schema, and a streamed chat completion
//! (deltas, then a final record with finish reason and token usage). Providers are chosen by
//! configuration; this skeleton ships the offline writer, and Gemini / OpenAI-compatible providers
//! plug in behind the same trait.

pub mod gemini;
pub mod http;
pub mod offline;
pub mod openai;
pub mod prompts;
pub mod sse;

use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};

use crate::domain::CharacterSeed;

/// Why a model stopped before finishing normally (Gemini's `finishReason` other than `STOP`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FinishReason {
    MaxTokens,
    Safety,
    Recitation,
    Blocklist,
    ProhibitedContent,
    Spii,
    Language,
    Other,
    Unknown(String),
}

impl FinishReason {
    /// `None` for `STOP` (success).
    pub fn from_gemini(s: &str) -> Option<Self> {
        Some(match s {
            "STOP" => return None,
            "MAX_TOKENS" => FinishReason::MaxTokens,
            "SAFETY" => FinishReason::Safety,
            "RECITATION" => FinishReason::Recitation,
            "BLOCKLIST" => FinishReason::Blocklist,
            "PROHIBITED_CONTENT" => FinishReason::ProhibitedContent,
            "SPII" => FinishReason::Spii,
            "LANGUAGE" => FinishReason::Language,
            "OTHER" => FinishReason::Other,
            other => FinishReason::Unknown(other.to_string()),
        })
    }
}

/// What went wrong, classified by what the user should be told.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LlmError {
    /// The provider could not be reached or kept failing (network, 5xx after retries).
    #[error("provider unavailable: {0}")]
    Unavailable(String),
    /// The provider did not answer in time.
    #[error("provider timed out: {0}")]
    Timeout(String),
    /// Rate or quota limit; `daily` when retrying today will not help.
    #[error("provider rate limited (daily: {daily}): {detail}")]
    RateLimited { daily: bool, detail: String },
    /// The provider refused the request itself (bad key, unknown model, invalid argument).
    #[error("provider rejected the request: {0}")]
    Rejected(String),
    /// The prompt was blocked before any generation (`promptFeedback.blockReason`).
    #[error("prompt blocked: {0}")]
    PromptBlocked(String),
    /// Generation stopped for a reason other than success.
    #[error("generation finished with {0:?}")]
    Finished(FinishReason),
    /// The stream ended before the provider said it was finished.
    #[error("reply cut off: {0}")]
    CutOff(String),
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
            LlmError::Timeout(_) => {
                "The character model took too long to answer. Your message is saved; try again."
            }
            LlmError::RateLimited { daily: false, .. } => {
                "The character model is busy (rate limit reached). Your message is saved; try again shortly."
            }
            LlmError::RateLimited { daily: true, .. } => {
                "Today's quota for the character model is used up. Your message is saved; try again tomorrow or ask the operator to raise the quota."
            }
            LlmError::Rejected(_) => {
                "The model provider refused the request (check the server's model configuration)."
            }
            LlmError::PromptBlocked(_) => {
                "The model provider blocked this request before answering. Try rephrasing."
            }
            LlmError::Finished(FinishReason::MaxTokens) => {
                "The reply was cut off because it reached the length limit."
            }
            LlmError::Finished(FinishReason::Safety) => {
                "The model stopped because its safety filters flagged the reply. Try rephrasing."
            }
            LlmError::Finished(FinishReason::Recitation) => {
                "The model stopped because the reply was too close to existing text."
            }
            LlmError::Finished(FinishReason::Blocklist | FinishReason::ProhibitedContent) => {
                "The model stopped because the reply touched content it will not produce."
            }
            LlmError::Finished(FinishReason::Spii) => {
                "The model stopped because the reply contained sensitive personal information."
            }
            LlmError::Finished(FinishReason::Language) => {
                "The model stopped because it does not support this language."
            }
            LlmError::Finished(FinishReason::Other | FinishReason::Unknown(_)) => {
                "The model stopped unexpectedly before finishing."
            }
            LlmError::CutOff(_) => "The reply was cut off before it was finished.",
            LlmError::InvalidReply(_) => "The model's answer could not be used. Please try again.",
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
    /// Instructions sent after the last message (a card's `post_history_instructions`).
    pub after: Option<String>,
}

impl ChatRequest {
    /// The messages as a provider sends them: `after`, if any, follows the last message, in the
    /// last user message (providers differ on two user messages in a row) or as one of its own.
    pub fn wire_history(&self) -> std::borrow::Cow<'_, [Turn]> {
        let Some(after) = self.after.as_deref().filter(|a| !a.is_empty()) else {
            return std::borrow::Cow::Borrowed(&self.history);
        };
        let mut turns = self.history.clone();
        match turns.last_mut() {
            Some(last) if last.role == Role::User => {
                last.text.push_str("\n\n");
                last.text.push_str(after);
            }
            _ => turns.push(Turn {
                role: Role::User,
                text: after.to_string(),
            }),
        }
        std::borrow::Cow::Owned(turns)
    }
}

/// Sampling settings sent with every request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sampling {
    pub temperature: f32,
    pub top_p: f32,
    pub max_output_tokens: u32,
}

impl Default for Sampling {
    fn default() -> Self {
        Self {
            temperature: 0.9,
            top_p: 0.95,
            max_output_tokens: 2048,
        }
    }
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
    Character {
        seed: CharacterSeed,
        variation: u64,
    },
    /// One section of a character, written again.
    Section {
        seed: CharacterSeed,
        section: crate::domain::Section,
        variation: u64,
    },
    /// Shades suggested for a twin from `text` (the questionnaire's answers and the pasted bio).
    Shades {
        text: String,
        variation: u64,
    },
    /// Two personas scored, from their profiles as shown to the model.
    Match {
        a: String,
        b: String,
    },
    /// One scene of a play run ([`crate::domain::TurnOutput`]).
    PlayTurn {
        name: String,
        scene: u8,
        total: u8,
        /// The option index of each choice the player made so far (`None` for a typed action),
        /// the last being the one this scene answers.
        choices: Vec<Option<usize>>,
        /// What the player did, in words.
        choice: String,
        endings: usize,
        variation: u64,
    },
    /// A play run's earlier scenes folded into its running summary: the summary so far and the
    /// scenes to add, as (what the player did, what the character said).
    PlaySummary {
        name: String,
        summary: String,
        scenes: Vec<(String, String)>,
    },
}

#[derive(Debug, Clone)]
pub struct StructuredRequest {
    pub system: String,
    pub prompt: String,
    pub schema: serde_json::Value,
    pub task: StructuredTask,
    /// Set for the one repair attempt: the previous reply and what was wrong with it.
    pub repair: Option<Repair>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repair {
    pub previous: String,
    pub problem: String,
}

impl StructuredRequest {
    /// The conversation a chat-style API sees: the prompt, and for a repair the previous reply
    /// and the correction request.
    pub fn turns(&self) -> Vec<Turn> {
        let mut turns = vec![Turn {
            role: Role::User,
            text: self.prompt.clone(),
        }];
        if let Some(r) = &self.repair {
            turns.push(Turn {
                role: Role::Model,
                text: r.previous.clone(),
            });
            turns.push(Turn {
                role: Role::User,
                text: prompts::repair(&r.problem),
            });
        }
        turns
    }
}

/// A structured reply as received: the caller parses and validates it (and may ask for one repair).
#[derive(Debug, Clone)]
pub struct StructuredReply {
    pub raw: String,
    pub usage: Usage,
}

#[async_trait::async_trait]
pub trait LlmProvider: Send + Sync + 'static {
    /// A short name for logs and the usage record ("offline", "gemini").
    fn name(&self) -> &'static str;

    /// The model that writes ("gemini-2.5-flash"; the provider's name where there is none), as
    /// stored with what it wrote.
    fn model(&self) -> String {
        self.name().to_string()
    }

    /// Whether output is written without a model; the UI labels such output.
    fn is_offline(&self) -> bool;

    async fn generate_json(&self, req: StructuredRequest) -> Result<StructuredReply, LlmError>;

    fn stream_chat(&self, req: ChatRequest) -> BoxStream<'static, Result<ChatChunk, LlmError>>;

    /// A structured answer streamed as it is written (a play scene, whose dialogue is shown while
    /// the rest is still coming): the JSON text in deltas, then the usage. The caller parses and
    /// validates the whole text at the end.
    fn stream_json(
        &self,
        req: StructuredRequest,
    ) -> BoxStream<'static, Result<ChatChunk, LlmError>>;
}

/// Builds the provider named by the configuration.
pub fn from_config(cfg: &super::config::LlmConfig) -> std::sync::Arc<dyn LlmProvider> {
    use super::config::LlmConfig;
    match cfg {
        LlmConfig::Offline { token_delay } => {
            std::sync::Arc::new(offline::OfflineProvider::new(*token_delay))
        }
        LlmConfig::Gemini(c) => std::sync::Arc::new(gemini::GeminiProvider::new(c.clone())),
        LlmConfig::OpenAi(c) => std::sync::Arc::new(openai::OpenAiProvider::new(c.clone())),
    }
}
