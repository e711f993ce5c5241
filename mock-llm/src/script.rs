//! The scripting shared by every protocol the mock speaks: a [`Reply`] says what the next answer
//! is (success, a fault, a framing), whichever wire format it is then spoken in. Replies come from
//! the queue, or from a `[[mock:NAME]]` marker in the last user message ([`Reply::from_marker`]).

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::time::{SystemTime, UNIX_EPOCH};

/// One scripted reply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Reply {
    /// Success. Streamed as one event per chunk (the last also carries `finishReason` and
    /// `usageMetadata`); for `generateContent` the chunks are joined.
    Text {
        chunks: Vec<String>,
        #[serde(default = "stop")]
        finish: String,
        #[serde(default)]
        chunk_delay_ms: u64,
    },
    /// Success with this JSON as the reply text (structured output).
    Json { value: Value },
    /// Success with this exact text, e.g. malformed JSON for a structured request.
    RawText { text: String },
    /// An HTTP error in Gemini's shape; `retry_delay` adds a `RetryInfo` ("43.7s"), `quota_id` a
    /// `QuotaFailure` violation (a per-day quota has `PerDay` in its id).
    Error {
        code: u16,
        status: String,
        message: String,
        #[serde(default)]
        retry_delay: Option<String>,
        #[serde(default)]
        quota_id: Option<String>,
    },
    /// The prompt is blocked before generation: no candidates, a `promptFeedback.blockReason`.
    Blocked { reason: String },
    /// Waits before sending anything.
    Slow { delay_ms: u64, then: Box<Reply> },
    /// Streams these chunks, then half an event, then closes the connection.
    CutOff { chunks: Vec<String> },
    /// Ends SSE lines with CRLF.
    Crlf { then: Box<Reply> },
    /// Writes every event in three pieces, flushed separately.
    SplitWrites { then: Box<Reply> },
    /// Writes all events in one piece.
    Batched { then: Box<Reply> },
    /// Streams `count` chunks whose text is the mock's clock at the moment of sending, in
    /// microseconds since the Unix epoch, followed by a space (for relay benchmarks).
    Stamped { count: usize, chunk_delay_ms: u64 },
    /// Success with JSON that fills the request's response schema literally ([`fill_schema`]):
    /// what a model writes that reads only the schema. `over` 1 is at its limits; above 1,
    /// beyond them.
    FillSchema {
        #[serde(default = "one")]
        over: f64,
    },
}

fn one() -> f64 {
    1.0
}

/// JSON that fills `schema` to its limits, as a model that takes it literally does: every string
/// exactly `maxLength` characters long (ten thousand when the schema sets no limit — a literal
/// model is not brief), every array `maxItems` long (the i-th item takes the i-th enum value, so
/// closed sets come out distinct), every property present. With `over` above 1 it oversteps:
/// strings `over` times their limit, one item too many, enum values in capitals with spaces.
pub fn fill_schema(schema: &Value, over: f64) -> Value {
    fill(schema, over, 0)
}

fn fill(schema: &Value, over: f64, index: usize) -> Value {
    let beyond = over > 1.0;
    match schema["type"].as_str().unwrap_or("object") {
        "object" => {
            let mut out = serde_json::Map::new();
            if let Some(props) = schema["properties"].as_object() {
                for (name, sub) in props {
                    out.insert(name.clone(), fill(sub, over, index));
                }
            }
            Value::Object(out)
        }
        "array" => {
            let n = schema["maxItems"]
                .as_u64()
                .or(schema["minItems"].as_u64())
                .unwrap_or(3) as usize
                + usize::from(beyond);
            Value::Array((0..n).map(|i| fill(&schema["items"], over, i)).collect())
        }
        "string" => {
            if let Some(values) = schema["enum"].as_array().filter(|v| !v.is_empty()) {
                let v = values[index % values.len()].as_str().unwrap_or_default();
                return Value::String(if beyond {
                    format!(" {} ", v.to_uppercase())
                } else {
                    v.to_string()
                });
            }
            let max = schema["maxLength"].as_u64().unwrap_or(10_000) as f64;
            Value::String(sentences((max * over).floor() as usize))
        }
        "integer" | "number" => schema["maximum"].clone().max_or(json!(1_000_000)),
        "boolean" => Value::Bool(true),
        _ => Value::Null,
    }
}

trait MaxOr {
    fn max_or(self, default: Value) -> Value;
}

impl MaxOr for Value {
    fn max_or(self, default: Value) -> Value {
        if self.is_null() {
            default
        } else {
            self
        }
    }
}

/// Exactly `n` characters of prose, in whole sentences but for the last, which may be cut.
fn sentences(n: usize) -> String {
    const SENTENCE: &str = "The tide keeps every name it takes. ";
    SENTENCE.chars().cycle().take(n).collect()
}

pub(crate) fn stop() -> String {
    "STOP".into()
}

impl Reply {
    /// The reply as sent for a request with this response schema: [`Reply::FillSchema`] becomes
    /// the JSON that fills it.
    pub fn for_schema(self, schema: &Value) -> Self {
        match self {
            Reply::FillSchema { over } => Reply::Json {
                value: fill_schema(schema, over),
            },
            other => other,
        }
    }

    pub fn text(chunks: &[&str]) -> Self {
        Reply::Text {
            chunks: chunks.iter().map(|s| s.to_string()).collect(),
            finish: stop(),
            chunk_delay_ms: 0,
        }
    }

    pub fn error(code: u16, status: &str) -> Self {
        Reply::Error {
            code,
            status: status.into(),
            message: format!("mock {status}"),
            retry_delay: None,
            quota_id: None,
        }
    }

    /// 429 with a `RetryInfo` delay, as the real service sends for a per-minute limit.
    pub fn rate_limited(retry_delay: &str) -> Self {
        Reply::Error {
            code: 429,
            status: "RESOURCE_EXHAUSTED".into(),
            message: "Resource has been exhausted (e.g. check quota).".into(),
            retry_delay: Some(retry_delay.into()),
            quota_id: Some("GenerateRequestsPerMinutePerProjectPerModel-FreeTier".into()),
        }
    }

    /// 429 for a per-day quota: retrying will not help.
    pub fn daily_quota() -> Self {
        Reply::Error {
            code: 429,
            status: "RESOURCE_EXHAUSTED".into(),
            message: "You exceeded your current quota.".into(),
            retry_delay: Some("43.7s".into()),
            quota_id: Some("GenerateRequestsPerDayPerProjectPerModel-FreeTier".into()),
        }
    }

    /// The fault named by a `[[mock:NAME]]` marker.
    pub fn from_marker(name: &str, ok: Reply) -> Option<Self> {
        let words = |n: usize| -> Vec<String> { (0..n).map(|i| format!("word{i} ")).collect() };
        Some(match name {
            "429" => Reply::rate_limited("0.05s"),
            "quota" => Reply::daily_quota(),
            "500" => Reply::error(500, "INTERNAL"),
            "503" => Reply::error(503, "UNAVAILABLE"),
            "400" => Reply::error(400, "INVALID_ARGUMENT"),
            "slow" => Reply::Slow {
                delay_ms: 1500,
                then: Box::new(ok),
            },
            "cut_off" => Reply::CutOff { chunks: words(6) },
            "crlf" => Reply::Crlf { then: Box::new(ok) },
            "split" => Reply::SplitWrites { then: Box::new(ok) },
            "batched" => Reply::Batched { then: Box::new(ok) },
            "malformed" => Reply::RawText {
                text: "{\"backstory\": \"unterminated".into(),
            },
            "safety" => Reply::Text {
                chunks: vec!["I was going to say ".into(), "something ".into()],
                finish: "SAFETY".into(),
                chunk_delay_ms: 0,
            },
            "max_tokens" => Reply::Text {
                chunks: words(4),
                finish: "MAX_TOKENS".into(),
                chunk_delay_ms: 0,
            },
            "long" => Reply::Text {
                chunks: (0..80).map(|i| format!("word{i} ")).collect(),
                finish: "STOP".into(),
                chunk_delay_ms: 60,
            },
            "blocked" => Reply::Blocked {
                reason: "SAFETY".into(),
            },
            _ => return None,
        })
    }
}

/// The fault a `[[mock:NAME]]` marker in `text` names, wrapping `ok` where the fault delays or
/// reframes a success; `ok` itself when there is no known marker.
pub(crate) fn with_marker(text: &str, ok: Reply) -> Reply {
    if let Some(start) = text.find("[[mock:") {
        let rest = &text[start + 7..];
        if let Some(end) = rest.find("]]") {
            if let Some(fault) = Reply::from_marker(&rest[..end], ok.clone()) {
                return fault;
            }
        }
    }
    ok
}

/// The default answer to a structured request: Shades when the schema asks for Shades, otherwise
/// a character ([`sample_character`]).
pub fn sample_for(schema: &Value, prompt: &str) -> Value {
    if schema["properties"]["dialogue"].is_object() {
        return sample_scene(schema, prompt);
    }
    if schema["properties"]["summary"].is_object() {
        return json!({"summary": "The mock summary: the player climbed, listened and asked, scene after scene."});
    }
    let shade = &schema["properties"]["shades"]["items"];
    if shade.is_object() {
        let icons: Vec<Value> = shade["properties"]["icon"]["enum"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let icon = |i: usize| icons.get(i).cloned().unwrap_or(json!("✨"));
        // The answers' first word of note, so a test can see the prompt was read.
        let topic = if prompt.contains("moss") {
            "moss"
        } else {
            "loopback"
        };
        return json!({
            "shades": [
                {"name": "Patient listener", "icon": icon(3), "description": "You hear people out before you answer.", "confidence": 0.8, "topics": [topic]},
                {"name": "Loopback explorer", "icon": icon(1), "description": "You try every path once, just to see where it goes.", "confidence": 0.6, "topics": ["paths"]},
                {"name": "Night owl", "icon": icon(12), "description": "Your best ideas arrive after midnight.", "confidence": 0.3, "topics": []}
            ]
        });
    }
    if schema["properties"]["score"].is_object() {
        return json!({
            "score": 72,
            "reasoning": "The mock model finds them well matched. They share a taste for loopback.",
            "strengths": ["They listen.", "They laugh at the same things.", "They keep promises."],
            "challenges": ["Different hours.", "Different paces.", "Both stubborn."]
        });
    }
    sample_character(prompt)
}

/// A valid play scene: the dialogue echoes the player's choice (the prompt's last "The player:"
/// line) and the scene number; three options, or at the last scene ending 2 (or the only one).
pub fn sample_scene(schema: &Value, prompt: &str) -> Value {
    let choice = prompt
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("The player: "))
        .unwrap_or("nothing")
        .trim_end_matches(['"', '}', ']', ','])
        .to_string();
    let scene = prompt
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("Write scene "))
        .unwrap_or("?")
        .trim_end_matches(['.', '"', '}', ']', ','])
        .to_string();
    let dialogue = format!(
        "The mock narrator saw you choose \"{choice}\". Scene {scene} unfolds on loopback, one token at a time. What now?"
    );
    if schema["properties"]["options"].is_object() {
        json!({
            "dialogue": dialogue,
            "options": [
                format!("Press on after scene {scene}."),
                format!("Wait and listen in scene {scene}."),
                format!("Ask the narrator about scene {scene}."),
            ],
        })
    } else {
        let max = schema["properties"]["ending"]["maximum"]
            .as_u64()
            .unwrap_or(1);
        json!({"dialogue": dialogue, "ending": max.min(2)})
    }
}

/// `text` in pieces of about `n` characters (at character boundaries), for streaming JSON.
pub(crate) fn pieces(text: &str, n: usize) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    chars.chunks(n.max(1)).map(|c| c.iter().collect()).collect()
}

/// A valid character, echoing the name from the prompt when it can find one.
pub fn sample_character(prompt: &str) -> Value {
    let name = prompt
        .lines()
        .find_map(|l| l.split_once("Name: ").map(|(_, n)| n))
        .unwrap_or("The stranger")
        .trim()
        .to_string();
    json!({
        "backstory": format!("{name} was raised by the mock model in a town of test fixtures.\n\nEvery reply {name} gives is scripted, and {name} knows it."),
        "story_context": "A loopback world where every request is answered within milliseconds.\n\nFaults arrive only when someone asks for them.",
        "opening_line": format!("\"I am {name}, and I have been expecting you.\""),
        "start_options": ["Demand answers.", "Wait and listen.", "Ask about the town."],
        "endings": [
            {"kind": "happy", "text": format!("{name} is free of the script.")},
            {"kind": "tragic", "text": format!("{name} is reset to defaults.")},
            {"kind": "ambiguous", "text": format!("{name} keeps running, unobserved.")}
        ]
    })
}

/// The clock, in microseconds since the Unix epoch (for [`Reply::Stamped`]).
pub(crate) fn now_micros() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_micros()
}
