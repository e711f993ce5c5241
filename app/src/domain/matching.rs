//! Compatibility between two personas — each a twin or a character: what a model writes
//! ([`MatchResult`]: a score from 0 to 100, a paragraph of reasoning, three strengths, three
//! challenges), its schema built from the same bounds, and the words a persona is matched on.

use super::{Invalid, MatchPoint, Reasoning};
use serde::{Deserialize, Serialize};

/// What a persona is.
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PersonaKind {
    Twin,
    Character,
}

impl PersonaKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PersonaKind::Twin => "twin",
            PersonaKind::Character => "character",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "twin" => Some(PersonaKind::Twin),
            "character" => Some(PersonaKind::Character),
            _ => None,
        }
    }
}

/// A persona by kind and id.
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PersonaRef {
    pub kind: PersonaKind,
    pub id: String,
}

/// A compatibility score, 0 to 100.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "i64", into = "i64")]
pub struct Score(u8);

impl Score {
    pub const MAX: u8 = 100;

    pub fn new(n: i64) -> Result<Self, Invalid> {
        if (0..=i64::from(Self::MAX)).contains(&n) {
            Ok(Self(n as u8))
        } else {
            Err(Invalid::new("The score must be between 0 and 100."))
        }
    }

    pub fn get(self) -> u8 {
        self.0
    }
}

impl TryFrom<i64> for Score {
    type Error = Invalid;
    fn try_from(n: i64) -> Result<Self, Invalid> {
        Self::new(n)
    }
}

impl From<Score> for i64 {
    fn from(s: Score) -> i64 {
        i64::from(s.0)
    }
}

/// What a model writes about a pair.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MatchResult {
    pub score: Score,
    pub reasoning: Reasoning,
    pub strengths: Vec<MatchPoint>,
    pub challenges: Vec<MatchPoint>,
}

impl MatchResult {
    /// Strengths, and challenges, each.
    pub const POINTS: usize = 3;

    /// The JSON Schema a model's answer follows: every bound [`Self::check`] and the field types
    /// enforce, generated from them.
    pub fn schema() -> serde_json::Value {
        use super::schema::{exactly, integer, object, text};
        object(
            &[
                (
                    "score",
                    integer(
                        0,
                        i64::from(Score::MAX),
                        "How well the two get along: 0 not at all, 50 it could go either way, 100 remarkably well.",
                    ),
                ),
                (
                    "reasoning",
                    text::<Reasoning>(
                        "One paragraph on why, naming what each brings to the other.",
                    ),
                ),
                (
                    "strengths",
                    exactly(
                        Self::POINTS,
                        text::<MatchPoint>("One strength of the pair, a sentence."),
                        "What works between them.",
                    ),
                ),
                (
                    "challenges",
                    exactly(
                        Self::POINTS,
                        text::<MatchPoint>("One challenge for the pair, a sentence."),
                        "What could go wrong between them.",
                    ),
                ),
            ],
            "The compatibility of two personas.",
        )
    }

    /// Exactly [`Self::POINTS`] strengths and challenges (the fields check themselves).
    pub fn check(&self) -> Result<(), Invalid> {
        for (what, list) in [
            ("strengths", &self.strengths),
            ("challenges", &self.challenges),
        ] {
            if list.len() != Self::POINTS {
                return Err(Invalid::new(format!(
                    "there must be exactly {} {what} (there are {})",
                    Self::POINTS,
                    list.len()
                )));
            }
        }
        Ok(())
    }
}

/// Words that say nothing about a person.
const STOPWORDS: &[&str] = &[
    "the", "and", "you", "your", "for", "with", "that", "this", "are", "from", "have", "has",
    "but", "not", "all", "any", "can", "her", "his", "their", "they", "them", "who", "what",
    "when", "where", "which", "into", "out", "about", "more", "most", "than", "then", "just",
    "like", "very", "its", "was", "were", "one", "how", "why", "get", "got", "also", "much",
];

/// The words a text is matched on: lower case, letters and digits, three or more characters,
/// without [`STOPWORDS`], each once, at most `max`.
pub fn terms(text: &str, max: usize) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for word in text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.chars().count() >= 3)
    {
        let w = word.to_lowercase();
        if STOPWORDS.contains(&w.as_str()) || out.contains(&w) {
            continue;
        }
        out.push(w);
        if out.len() >= max {
            break;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terms_are_words_of_note() {
        assert_eq!(
            terms("You read Novels, novels and the NIGHT sky!", 10),
            ["read", "novels", "night", "sky"]
        );
        assert_eq!(terms("a b cc", 10), Vec::<String>::new());
        assert_eq!(terms("one two three four five six", 2), ["two", "three"]);
    }

    #[test]
    fn the_schema_carries_every_constraint() {
        let s = MatchResult::schema();
        assert_eq!(s["properties"]["score"]["type"], "integer");
        assert_eq!(s["properties"]["score"]["minimum"], 0);
        assert_eq!(s["properties"]["score"]["maximum"], 100);
        assert_eq!(s["properties"]["reasoning"]["maxLength"], Reasoning::MAX);
        for list in ["strengths", "challenges"] {
            assert_eq!(s["properties"][list]["minItems"], MatchResult::POINTS);
            assert_eq!(s["properties"][list]["maxItems"], MatchResult::POINTS);
            assert_eq!(s["properties"][list]["items"]["maxLength"], MatchPoint::MAX);
        }
    }

    /// A model that fills the schema literally, at or past its limits, is understood once its
    /// answer is recovered (texts cut, surplus items dropped, the score clamped).
    #[test]
    fn an_answer_at_the_schema_limits_is_accepted() {
        let schema = MatchResult::schema();
        for over in [1.0, 1.5] {
            let mut value = mock_llm::fill_schema(&schema, over);
            super::super::schema::recover(&mut value, &schema);
            let parsed: MatchResult = serde_json::from_value(value).unwrap();
            parsed.check().unwrap();
        }
        let mut value = serde_json::json!({"score": 87.6, "reasoning": "r", "strengths": ["a","b","c"], "challenges": ["a","b","c"]});
        super::super::schema::recover(&mut value, &schema);
        let parsed: MatchResult = serde_json::from_value(value).unwrap();
        assert_eq!(parsed.score.get(), 88, "a fractional score is rounded");
        assert!(Score::new(101).is_err() && Score::new(-1).is_err());
    }
}
