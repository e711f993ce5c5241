//! Play mode's domain: what the player sends (one of the offered options, or an action of their
//! own), what the model writes for each scene ([`TurnOutput`]: the character's dialogue and
//! exactly three options, or at the last scene the ending the story reaches), the schema that asks
//! for it (generated from the same bounds the parser checks), the pacing of a run, and
//! [`DialogueStream`], which pulls the dialogue out of the model's JSON while it is still arriving
//! so it can be shown token by token.

use super::schema::{exactly, integer, object, recover, text};
use super::{Dialogue, Invalid, PlayOption, PlayerAction, StorySummary};
use serde::{Deserialize, Serialize};

/// How many options each scene offers (the start options are the character's three).
pub const OPTIONS: usize = 3;

/// What the player does: pick offered option `option` (0-based), or type `action`. Exactly one.
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct PlayChoice {
    #[serde(default)]
    pub option: Option<u8>,
    #[serde(default)]
    pub action: String,
}

/// A [`PlayChoice`] checked against the options on offer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Choice {
    /// The option at this index, with its text.
    Option(usize, String),
    Action(PlayerAction),
}

impl Choice {
    pub fn text(&self) -> &str {
        match self {
            Choice::Option(_, t) => t,
            Choice::Action(a) => a.as_str(),
        }
    }

    /// The option's index, `None` for a typed action.
    pub fn option(&self) -> Option<usize> {
        match self {
            Choice::Option(i, _) => Some(*i),
            Choice::Action(_) => None,
        }
    }
}

impl PlayChoice {
    /// The choice among `offered`: an index in range, or a valid action, not both.
    pub fn parse(&self, offered: &[String]) -> Result<Choice, Invalid> {
        match (self.option, self.action.trim().is_empty()) {
            (Some(_), false) => Err(Invalid::new(
                "Pick one of the options or write your own action, not both.",
            )),
            (Some(i), true) => offered
                .get(i as usize)
                .map(|t| Choice::Option(i as usize, t.clone()))
                .ok_or_else(|| Invalid::new("That option is not on offer.")),
            (None, _) => PlayerAction::parse(&self.action).map(Choice::Action),
        }
    }
}

/// Where a scene stands in the run, which decides what the model is asked to do with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pacing {
    /// The story unfolds.
    Unfolding,
    /// From about two thirds of the way: the story builds toward one of the endings.
    Building,
    /// The last scene: the story ends with one of the endings.
    Final,
}

impl Pacing {
    /// The pacing of scene `scene` (1-based) of `total`.
    pub fn of(scene: u8, total: u8) -> Self {
        if scene >= total {
            Pacing::Final
        } else if u32::from(scene) * 3 >= u32::from(total) * 2 {
            Pacing::Building
        } else {
            Pacing::Unfolding
        }
    }
}

/// What the model writes for one scene.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TurnOutput {
    pub dialogue: Dialogue,
    /// Exactly [`OPTIONS`] distinct options; none at the last scene.
    pub options: Vec<PlayOption>,
    /// At the last scene: which of the character's endings the story reached (1-based).
    pub ending: Option<u8>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SceneAnswer {
    dialogue: Dialogue,
    options: Vec<PlayOption>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FinalAnswer {
    dialogue: Dialogue,
    ending: i64,
}

impl TurnOutput {
    /// The schema of a scene's answer: the dialogue and three options, or at the last scene the
    /// dialogue and the number of the ending reached (one of `endings`). Generated from the
    /// bounds [`Self::parse`] checks.
    pub fn schema(pacing: Pacing, endings: usize) -> serde_json::Value {
        let dialogue = text::<Dialogue>(
            "What the character says and does in this scene, in their own voice: about three \
             sentences, ending where the player must decide.",
        );
        match pacing {
            Pacing::Final => object(
                &[
                    (
                        "dialogue",
                        text::<Dialogue>(
                            "The last scene, in the character's own voice: about three \
                             sentences that bring the story to the chosen ending.",
                        ),
                    ),
                    (
                        "ending",
                        integer(
                            1,
                            endings.max(1) as i64,
                            "The number of the ending the story reaches, from the list of \
                             endings, chosen by what the player did.",
                        ),
                    ),
                ],
                "The story's last scene.",
            ),
            _ => object(
                &[
                    ("dialogue", dialogue),
                    (
                        "options",
                        exactly(
                            OPTIONS,
                            text::<PlayOption>(
                                "Something the player could do next, one short sentence in \
                                 the second person.",
                            ),
                            "The player's next choices, each different from the others.",
                        ),
                    ),
                ],
                "One scene of the story.",
            ),
        }
    }

    /// Reads a model's answer for a scene of this `pacing` with `endings` endings: mends what
    /// needs no model (an over-long text, surplus options), then refuses what is still wrong
    /// with a sentence for the one repair request.
    pub fn parse(raw: &str, pacing: Pacing, endings: usize) -> Result<Self, String> {
        let mut value: serde_json::Value =
            serde_json::from_str(raw.trim()).map_err(|e| format!("not valid JSON: {e}"))?;
        let schema = Self::schema(pacing, endings);
        // What was mended needs no report: the scene is shown as mended.
        let _ = recover(&mut value, &schema);
        match pacing {
            Pacing::Final => {
                let a: FinalAnswer = serde_json::from_value(value).map_err(|e| e.to_string())?;
                if a.ending < 1 || a.ending > endings as i64 {
                    return Err(format!(
                        "\"ending\" must be a number from 1 to {endings}, not {}",
                        a.ending
                    ));
                }
                Ok(TurnOutput {
                    dialogue: a.dialogue,
                    options: Vec::new(),
                    ending: Some(a.ending as u8),
                })
            }
            _ => {
                let a: SceneAnswer = serde_json::from_value(value).map_err(|e| e.to_string())?;
                if a.options.len() != OPTIONS {
                    return Err(format!(
                        "\"options\" must have exactly {OPTIONS} items, not {}",
                        a.options.len()
                    ));
                }
                let mut seen: Vec<String> = a
                    .options
                    .iter()
                    .map(|o| o.as_str().to_lowercase())
                    .collect();
                seen.sort();
                seen.dedup();
                if seen.len() != OPTIONS {
                    return Err("the three options must all be different".into());
                }
                Ok(TurnOutput {
                    dialogue: a.dialogue,
                    options: a.options,
                    ending: None,
                })
            }
        }
    }
}

/// What the model writes when a long run's earlier scenes are folded into its running summary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SummaryOutput {
    pub summary: StorySummary,
}

impl SummaryOutput {
    /// The schema of a summary, from the bound [`Self::parse`] checks.
    pub fn schema() -> serde_json::Value {
        object(
            &[(
                "summary",
                text::<StorySummary>(
                    "What has happened in the story so far, in the past tense: the player's \
                     choices, what they led to, who and what matters for what comes next.",
                ),
            )],
            "The story so far, summarised.",
        )
    }

    /// Reads a model's summary, mending an over-long one.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let mut value: serde_json::Value =
            serde_json::from_str(raw.trim()).map_err(|e| format!("not valid JSON: {e}"))?;
        let _ = recover(&mut value, &Self::schema());
        serde_json::from_value(value).map_err(|e| e.to_string())
    }
}

/// Pulls the value of the top-level `"dialogue"` string out of JSON text that arrives in pieces,
/// decoding escapes, so the dialogue can be shown while the rest of the answer is still being
/// written. It reads only as far as the closing quote; the whole answer is parsed (and
/// validated) when it is complete.
#[derive(Debug, Default)]
pub struct DialogueStream {
    /// Text received and not yet consumed.
    buf: String,
    state: StreamState,
    /// Nesting depth while looking for the key (only depth 1 counts).
    depth: u32,
}

#[derive(Debug, Default, PartialEq, Eq)]
enum StreamState {
    /// Looking for the `"dialogue"` key at the top level.
    #[default]
    Seeking,
    /// After the key, before its colon.
    BeforeColon,
    /// After the colon, before the opening quote of the value.
    BeforeValue,
    /// Inside the value.
    InValue,
    /// The value is complete (or was never a string).
    Done,
}

impl DialogueStream {
    /// Adds a piece of the answer; returns the dialogue text it completes (possibly empty).
    pub fn push(&mut self, chunk: &str) -> String {
        self.buf.push_str(chunk);
        let mut out = String::new();
        loop {
            match self.state {
                StreamState::Done => {
                    self.buf.clear();
                    return out;
                }
                StreamState::Seeking => {
                    if !self.seek() {
                        return out;
                    }
                }
                StreamState::BeforeColon | StreamState::BeforeValue => {
                    let trimmed = self.buf.trim_start();
                    let skipped = self.buf.len() - trimmed.len();
                    self.buf.drain(..skipped);
                    let colon = self.state == StreamState::BeforeColon;
                    match self.buf.chars().next() {
                        None => return out,
                        Some(':') if colon => {
                            self.buf.drain(..1);
                            self.state = StreamState::BeforeValue;
                        }
                        // The word was a value, not a key: look on.
                        Some(_) if colon => self.state = StreamState::Seeking,
                        Some('"') => {
                            self.buf.drain(..1);
                            self.state = StreamState::InValue;
                        }
                        Some(_) => self.state = StreamState::Done,
                    }
                }
                StreamState::InValue => {
                    if !self.read_value(&mut out) {
                        return out;
                    }
                }
            }
        }
    }

    /// Scans for `"dialogue"` as a key at depth 1; `true` when found (state moves on).
    fn seek(&mut self) -> bool {
        let mut i = 0;
        let bytes = self.buf.as_bytes();
        while i < bytes.len() {
            match bytes[i] {
                b'{' | b'[' => {
                    self.depth += 1;
                    i += 1;
                }
                b'}' | b']' => {
                    self.depth = self.depth.saturating_sub(1);
                    i += 1;
                }
                b'"' => {
                    // A whole string, or wait for the rest of it.
                    let Some(len) = string_len(&self.buf[i..]) else {
                        self.buf.drain(..i);
                        return false;
                    };
                    let s = &self.buf[i..i + len];
                    if self.depth == 1 && s == "\"dialogue\"" {
                        self.buf.drain(..i + len);
                        self.state = StreamState::BeforeColon;
                        return true;
                    }
                    i += len;
                }
                _ => i += 1,
            }
        }
        self.buf.clear();
        false
    }

    /// Decodes the value's characters into `out`; `true` when the closing quote was reached.
    fn read_value(&mut self, out: &mut String) -> bool {
        let mut consumed = 0;
        let mut chars = self.buf.char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            match c {
                '"' => {
                    self.buf.drain(..i + 1);
                    self.state = StreamState::Done;
                    return true;
                }
                '\\' => {
                    let rest = &self.buf[i + 1..];
                    let Some(e) = rest.chars().next() else { break };
                    let (decoded, len) = match e {
                        'n' => (Some('\n'), 1),
                        't' => (Some('\t'), 1),
                        'r' => (Some('\r'), 1),
                        'b' => (Some('\u{8}'), 1),
                        'f' => (Some('\u{c}'), 1),
                        '"' | '\\' | '/' => (Some(e), 1),
                        'u' => match unicode_escape(rest) {
                            Some(Ok((c, len))) => (Some(c), len),
                            Some(Err(len)) => (Some('\u{fffd}'), len),
                            None => break,
                        },
                        _ => (None, e.len_utf8()),
                    };
                    if let Some(d) = decoded {
                        out.push(d);
                    }
                    consumed = i + 1 + len;
                    // Skip the escape's characters.
                    while chars.peek().is_some_and(|(j, _)| *j < consumed) {
                        chars.next();
                    }
                }
                c => {
                    out.push(c);
                    consumed = i + c.len_utf8();
                }
            }
        }
        self.buf.drain(..consumed);
        false
    }
}

/// The byte length of the JSON string at the start of `s` (quotes included), if it is complete.
fn string_len(s: &str) -> Option<usize> {
    let bytes = s.as_bytes();
    let mut i = 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'"' => return Some(i + 1),
            _ => i += 1,
        }
    }
    None
}

/// A `uXXXX` escape (with a following `\uXXXX` low surrogate for a pair) at the start of `rest`:
/// the character and how many bytes it spans, `Err(len)` for an invalid one, `None` when more
/// text is needed.
fn unicode_escape(rest: &str) -> Option<Result<(char, usize), usize>> {
    let hex = |s: &str| u32::from_str_radix(s, 16).ok();
    let first = rest.get(1..5)?;
    let Some(hi) = hex(first) else {
        return Some(Err(5));
    };
    if (0xD800..0xDC00).contains(&hi) {
        let tail = rest.get(5..11)?;
        let lo = tail.strip_prefix("\\u").and_then(hex);
        return Some(match lo {
            Some(lo) if (0xDC00..0xE000).contains(&lo) => {
                let c = 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00);
                char::from_u32(c).map(|c| (c, 11)).ok_or(11)
            }
            _ => Err(5),
        });
    }
    Some(char::from_u32(hi).map(|c| (c, 5)).ok_or(5))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn pacing_builds_from_two_thirds_and_ends_at_the_last_scene() {
        let of = |total| {
            (1..=total)
                .map(|s| Pacing::of(s, total))
                .collect::<Vec<_>>()
        };
        use Pacing::*;
        assert_eq!(of(5), [Unfolding, Unfolding, Unfolding, Building, Final]);
        assert_eq!(
            of(10),
            [
                Unfolding, Unfolding, Unfolding, Unfolding, Unfolding, Unfolding, Building,
                Building, Building, Final
            ]
        );
        assert_eq!(Pacing::of(30, 25), Final);
    }

    #[test]
    fn every_bound_the_parser_checks_is_in_the_schema() {
        let s = TurnOutput::schema(Pacing::Unfolding, 3);
        let d = &s["properties"]["dialogue"];
        assert_eq!(d["maxLength"], Dialogue::MAX);
        assert_eq!(d["minLength"], Dialogue::MIN);
        let o = &s["properties"]["options"];
        assert_eq!(
            (o["minItems"].as_u64(), o["maxItems"].as_u64()),
            (Some(3), Some(3))
        );
        assert_eq!(o["items"]["maxLength"], PlayOption::MAX);
        assert_eq!(s["required"], json!(["dialogue", "options"]));
        assert_eq!(s["additionalProperties"], false);
        let f = TurnOutput::schema(Pacing::Final, 3);
        assert_eq!(f["properties"]["ending"]["minimum"], 1);
        assert_eq!(f["properties"]["ending"]["maximum"], 3);
        assert_eq!(f["required"], json!(["dialogue", "ending"]));
        for node in [d, o, &f["properties"]["ending"]] {
            assert!(node["description"].as_str().is_some_and(|t| !t.is_empty()));
        }
    }

    #[test]
    fn answers_are_mended_or_refused_with_a_reason() {
        let ok = json!({"dialogue": "Come.", "options": ["Run.", "Hide.", "Talk."]});
        let t = TurnOutput::parse(&ok.to_string(), Pacing::Unfolding, 3).unwrap();
        assert_eq!(t.options.len(), 3);
        assert_eq!(t.ending, None);
        // A fourth option and an over-long dialogue are mended without a model.
        let long = "The tide rises. ".repeat(200);
        let over = json!({"dialogue": long, "options": ["a", "b", "c", "d"]});
        let t = TurnOutput::parse(&over.to_string(), Pacing::Building, 3).unwrap();
        assert!(t.dialogue.as_str().chars().count() <= Dialogue::MAX);
        assert_eq!(t.options.len(), 3);
        // Missing or repeated options, an ending out of range, not JSON: refused.
        for (raw, pacing) in [
            (json!({"dialogue": "Hi."}).to_string(), Pacing::Unfolding),
            (
                json!({"dialogue": "Hi.", "options": ["a", "b"]}).to_string(),
                Pacing::Unfolding,
            ),
            (
                json!({"dialogue": "Hi.", "options": ["Run", "run", "b"]}).to_string(),
                Pacing::Unfolding,
            ),
            (
                json!({"dialogue": "", "options": ["a", "b", "c"]}).to_string(),
                Pacing::Unfolding,
            ),
            (
                json!({"dialogue": "End.", "ending": "two"}).to_string(),
                Pacing::Final,
            ),
            (json!({"dialogue": "End."}).to_string(), Pacing::Final),
            ("{\"dialogue\": \"cut".to_string(), Pacing::Unfolding),
        ] {
            assert!(TurnOutput::parse(&raw, pacing, 3).is_err(), "{raw}");
        }
        // An ending outside the range is clamped to it (the schema's bounds).
        let t = TurnOutput::parse(
            &json!({"dialogue": "End.", "ending": 7}).to_string(),
            Pacing::Final,
            3,
        )
        .unwrap();
        assert_eq!(t.ending, Some(3));
    }

    #[test]
    fn a_summary_is_bounded_in_the_schema_and_mended_when_too_long() {
        let s = SummaryOutput::schema();
        assert_eq!(s["properties"]["summary"]["maxLength"], StorySummary::MAX);
        let long = json!({"summary": "It rained. ".repeat(400)}).to_string();
        let got = SummaryOutput::parse(&long).unwrap();
        assert!(got.summary.as_str().chars().count() <= StorySummary::MAX);
        assert!(SummaryOutput::parse(r#"{"summary": ""}"#).is_err());
        assert!(SummaryOutput::parse(r#"{"gist": "x"}"#).is_err());
    }

    #[test]
    fn a_choice_is_an_offered_option_or_an_action_not_both() {
        let offered = vec!["Run.".to_string(), "Hide.".into(), "Talk.".into()];
        let pick = |option, action: &str| {
            PlayChoice {
                option,
                action: action.into(),
            }
            .parse(&offered)
        };
        assert_eq!(pick(Some(1), ""), Ok(Choice::Option(1, "Hide.".into())));
        assert!(matches!(pick(None, "I sing."), Ok(Choice::Action(_))));
        assert!(pick(Some(3), "").is_err());
        assert!(pick(Some(0), "I sing.").is_err());
        assert!(pick(None, "  ").is_err());
        assert!(pick(None, &"x".repeat(301)).is_err());
    }

    #[test]
    fn the_dialogue_is_read_before_the_answer_is_complete() {
        let mut s = DialogueStream::default();
        assert_eq!(s.push("{\"dia"), "");
        assert_eq!(s.push("logue\": \"Hel"), "Hel");
        assert_eq!(s.push("lo \\\"you\\\"\\n"), "lo \"you\"\n");
        assert_eq!(s.push("\\u00e9\", \"options\": [\"dialogue\"]}"), "é");
        assert_eq!(s.push("more"), "");
        // A nested "dialogue" key is not the one.
        let mut s = DialogueStream::default();
        assert_eq!(
            s.push(r#"{"x": {"dialogue": "no"}, "dialogue": "yes"}"#),
            "yes"
        );
        // Nor is the word "dialogue" as a value.
        let mut s = DialogueStream::default();
        assert_eq!(s.push(r#"{"x": "dialogue", "dialogue": "yes"}"#), "yes");
    }

    proptest! {
        #[test]
        fn any_chunking_yields_the_decoded_dialogue(
            dialogue in "[a-zA-Z .!?\"\\\\é日本😀\n\t]{0,60}",
            cuts in proptest::collection::vec(0usize..200, 0..8),
        ) {
            let wire = json!({"options": ["a"], "dialogue": dialogue, "ending": 1}).to_string();
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (wire.len() + 1)).collect();
            cuts.push(0);
            cuts.push(wire.len());
            cuts.sort();
            cuts.dedup();
            let mut s = DialogueStream::default();
            let mut got = String::new();
            let mut at = 0;
            for c in cuts {
                // Cut at character boundaries, as text chunks are.
                let c = (c..=wire.len()).find(|&i| wire.is_char_boundary(i)).unwrap();
                if c < at { continue; }
                got.push_str(&s.push(&wire[at..c]));
                at = c;
            }
            prop_assert_eq!(got, dialogue);
        }
    }
}
