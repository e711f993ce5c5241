//! A user's digital twin: a display name, a short bio and its Shades (facets of personality),
//! as typed ([`TwinDraft`], [`ShadeDraft`]) and as parsed ([`Twin`], [`Shade`]); and the Shades a
//! model suggests from a questionnaire or a pasted bio ([`SuggestedShades`]), whose schema is
//! built from the same bounds (see [`super::schema`]).

use super::{
    Answer, Bio, FieldErrors, Invalid, PastedBio, ShadeDescription, ShadeName, Topic, TwinName,
};
use serde::{Deserialize, Serialize};
use unicode_segmentation::UnicodeSegmentation;

/// A Shade's icon: one emoji (one grapheme cluster: "🌙", "👩🏽‍🍳", "🇵🇹" and "1️⃣" are each one).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ShadeIcon(String);

impl ShadeIcon {
    /// The icons a model chooses from (a person may type any emoji).
    pub const SUGGESTED: [&'static str; 24] = [
        "✨", "🧭", "🛠️", "🤝", "📚", "🏃", "🎨", "🧠", "📋", "☕", "⛰️", "🎵", "🌙", "🔥", "🌱",
        "😂", "🧩", "🍳", "🎮", "✈️", "💡", "🛡️", "🌊", "🐾",
    ];

    /// Whether `c` is a character that shows as an emoji on its own or starts an emoji sequence
    /// (pictographs, dingbats, regional indicators, keycap bases with their combining mark).
    fn is_emoji_char(c: char) -> bool {
        matches!(c as u32,
            0x1F000..=0x1FAFF // pictographs, emoticons, transport, flags' regional indicators
            | 0x2600..=0x27BF  // miscellaneous symbols and dingbats
            | 0x2300..=0x23FF  // technical (⌚, ⏰)
            | 0x2B00..=0x2BFF  // arrows and stars (⭐, ⬛)
            | 0x2190..=0x21FF  // arrows (↔️)
            | 0x20E3           // combining keycap
            | 0x3030 | 0x303D | 0x3297 | 0x3299 | 0x00A9 | 0x00AE | 0x203C | 0x2049 | 0x2122
            | 0x2139 | 0x24C2 | 0x25AA..=0x25FE)
    }

    pub fn parse(input: &str) -> Result<Self, Invalid> {
        let icon = input.trim();
        let refuse = || Invalid::new("Each Shade's icon must be one emoji.");
        // The longest real sequences (family and flag-tag sequences) are under 40 bytes.
        if icon.is_empty() || icon.len() > 40 {
            return Err(refuse());
        }
        let mut graphemes = icon.graphemes(true);
        if graphemes.next().is_none() || graphemes.next().is_some() {
            return Err(refuse());
        }
        if !icon.chars().any(Self::is_emoji_char) {
            return Err(refuse());
        }
        Ok(Self(icon.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl super::schema::Bounded for ShadeIcon {
    const MIN: usize = 1;
    const MAX: usize = 10;
}

impl TryFrom<String> for ShadeIcon {
    type Error = Invalid;
    fn try_from(value: String) -> Result<Self, Invalid> {
        Self::parse(&value)
    }
}

impl From<ShadeIcon> for String {
    fn from(value: ShadeIcon) -> String {
        value.0
    }
}

/// How sure we are that a Shade describes the person: 0 to 1.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Serialize, Deserialize)]
#[serde(try_from = "f32", into = "f32")]
pub struct Confidence(f32);

impl Confidence {
    pub fn new(x: f32) -> Result<Self, Invalid> {
        if x.is_finite() && (0.0..=1.0).contains(&x) {
            Ok(Self(x))
        } else {
            Err(Invalid::new(
                "Each Shade's confidence must be between 0 and 1.",
            ))
        }
    }

    pub fn get(self) -> f32 {
        self.0
    }

    /// The confidence in words, shown beside its bar.
    pub fn words(x: f32) -> &'static str {
        if x < 0.4 {
            "tentative"
        } else if x < 0.75 {
            "likely"
        } else {
            "sure"
        }
    }
}

impl TryFrom<f32> for Confidence {
    type Error = Invalid;
    fn try_from(value: f32) -> Result<Self, Invalid> {
        Self::new(value)
    }
}

impl From<Confidence> for f32 {
    fn from(value: Confidence) -> f32 {
        value.0
    }
}

/// Where a Shade came from.
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ShadeSource {
    /// Written by the user.
    #[default]
    User,
    /// Suggested by the model (or the offline writer) and accepted by the user.
    Suggested,
    /// Imported from SecondMe; a sync replaces these and only these.
    Secondme,
}

impl ShadeSource {
    pub fn as_str(self) -> &'static str {
        match self {
            ShadeSource::User => "user",
            ShadeSource::Suggested => "suggested",
            ShadeSource::Secondme => "secondme",
        }
    }

    /// As a badge on the page.
    pub fn label(self) -> &'static str {
        match self {
            ShadeSource::User => "written by you",
            ShadeSource::Suggested => "suggested",
            ShadeSource::Secondme => "from SecondMe",
        }
    }

    pub fn parse(s: &str) -> Self {
        match s {
            "suggested" => ShadeSource::Suggested,
            "secondme" => ShadeSource::Secondme,
            _ => ShadeSource::User,
        }
    }
}

/// The most topics a Shade lists.
pub const MAX_TOPICS: usize = 5;

/// A Shade as typed: plain values, so half-finished input can be kept and sent. `topics` is a
/// comma-separated list.
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShadeDraft {
    pub name: String,
    pub icon: String,
    pub description: String,
    pub confidence: f32,
    #[serde(default)]
    pub topics: String,
    #[serde(default)]
    pub source: ShadeSource,
    /// Whether other people's matches may use it (only when the twin is matchable).
    #[serde(default)]
    pub public: bool,
}

impl Default for ShadeDraft {
    fn default() -> Self {
        Self {
            name: String::new(),
            icon: "✨".into(),
            description: String::new(),
            confidence: 0.6,
            topics: String::new(),
            source: ShadeSource::User,
            public: false,
        }
    }
}

/// A valid Shade.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Shade {
    pub name: ShadeName,
    pub icon: ShadeIcon,
    pub description: ShadeDescription,
    pub confidence: Confidence,
    pub topics: Vec<Topic>,
    pub source: ShadeSource,
    pub public: bool,
}

impl Shade {
    pub fn to_draft(&self) -> ShadeDraft {
        ShadeDraft {
            name: self.name.to_string(),
            icon: self.icon.as_str().to_string(),
            description: self.description.to_string(),
            confidence: self.confidence.get(),
            topics: self
                .topics
                .iter()
                .map(|t| t.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            source: self.source,
            public: self.public,
        }
    }
}

/// Parses a comma-separated topic list: blanks skipped, repeats (ignoring case) kept once, at
/// most [`MAX_TOPICS`]. The number of parts is checked before any is read.
pub fn parse_topics(input: &str) -> Result<Vec<Topic>, Invalid> {
    let too_many = || Invalid::new(format!("A Shade lists at most {MAX_TOPICS} topics."));
    if input.split(',').nth(4 * MAX_TOPICS).is_some() {
        return Err(too_many());
    }
    let mut out: Vec<Topic> = Vec::new();
    for part in input.split(',') {
        if part.trim().is_empty() {
            continue;
        }
        let t = Topic::parse(part)?;
        if !out
            .iter()
            .any(|o| o.as_str().to_lowercase() == t.as_str().to_lowercase())
        {
            out.push(t);
        }
    }
    if out.len() > MAX_TOPICS {
        return Err(too_many());
    }
    Ok(out)
}

impl ShadeDraft {
    /// Field names are `shades.{i}.{field}`, so each message shows beside its control.
    fn parse_into(&self, i: usize, errs: &mut FieldErrors) -> Option<Shade> {
        let f = |name: &str| format!("shades.{i}.{name}");
        let name = errs.check(&f("name"), ShadeName::parse(&self.name));
        let icon = errs.check(&f("icon"), ShadeIcon::parse(&self.icon));
        let description = errs.check(
            &f("description"),
            ShadeDescription::parse(&self.description),
        );
        let confidence = errs.check(&f("confidence"), Confidence::new(self.confidence));
        let topics = errs.check(&f("topics"), parse_topics(&self.topics));
        Some(Shade {
            name: name?,
            icon: icon?,
            description: description?,
            confidence: confidence?,
            topics: topics?,
            source: self.source,
            public: self.public,
        })
    }
}

/// The twin page's form state, as typed; the body of the save server function.
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct TwinDraft {
    pub name: String,
    #[serde(default)]
    pub bio: String,
    /// Whether other people may be matched with this twin (using only its public Shades).
    #[serde(default)]
    pub matchable: bool,
    #[serde(default)]
    pub shades: Vec<ShadeDraft>,
}

/// A valid twin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Twin {
    pub name: TwinName,
    pub bio: Bio,
    pub matchable: bool,
    pub shades: Vec<Shade>,
}

impl TwinDraft {
    /// The most Shades a twin has.
    pub const MAX_SHADES: usize = 24;

    /// The most characters a valid draft holds, for the request-body limit of the save endpoint.
    pub const MAX_CHARS: usize = TwinName::MAX
        + Bio::MAX
        + Self::MAX_SHADES
            * (ShadeName::MAX
                + 40 // icon bytes
                + ShadeDescription::MAX
                + 4 * MAX_TOPICS * (Topic::MAX + 2)
                + 40); // confidence, source, public

    /// Validates everything; each message is keyed by its field (`name`, `bio`, `shades`,
    /// `shades.{i}.{field}`). The number of Shades is checked before any Shade is read.
    pub fn parse(&self) -> Result<Twin, FieldErrors> {
        let mut errs = FieldErrors::default();
        if self.shades.len() > Self::MAX_SHADES {
            errs.push(
                "shades",
                Invalid::new(format!(
                    "A twin has at most {} Shades (there are {}).",
                    Self::MAX_SHADES,
                    self.shades.len()
                )),
            );
            return Err(errs);
        }
        let name = errs.check("name", TwinName::parse(&self.name));
        let bio = errs.check("bio", Bio::parse(&self.bio));
        let mut shades = Vec::with_capacity(self.shades.len());
        let mut seen = std::collections::HashSet::with_capacity(self.shades.len());
        for (i, draft) in self.shades.iter().enumerate() {
            if let Some(shade) = draft.parse_into(i, &mut errs) {
                shades.push(shade);
            }
            // Repeats are found on the names as typed, whatever else is wrong with a Shade.
            let name = draft.name.trim();
            if !name.is_empty() && !seen.insert(name.to_lowercase()) {
                errs.push(
                    &format!("shades.{i}.name"),
                    Invalid::new(format!("There is already a Shade named \"{name}\".")),
                );
            }
        }
        match (name, bio) {
            (Some(name), Some(bio)) if errs.is_empty() => Ok(Twin {
                name,
                bio,
                matchable: self.matchable,
                shades,
            }),
            _ => Err(errs),
        }
    }
}

/// The questionnaire Shades are suggested from: a person answers any of these (or pastes a bio).
pub const QUESTIONS: [&str; 10] = [
    "What do you do on a free afternoon?",
    "What do friends come to you for?",
    "What are you curious about lately?",
    "How do you handle a disagreement?",
    "What kind of work makes you lose track of time?",
    "What do you value most in other people?",
    "How do you recharge after a long week?",
    "What do you believe that many people don't?",
    "What would you like to get better at?",
    "Describe a perfect day in a few words.",
];

/// What Shades are suggested from, as typed: answers to [`QUESTIONS`] (in order, blanks
/// allowed) and a pasted bio.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ShadeQuestionnaire {
    #[serde(default)]
    pub answers: Vec<String>,
    #[serde(default)]
    pub bio: String,
}

/// A valid questionnaire: at least something to go on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Questionnaire {
    /// (question, answer) for each answered question.
    pub answers: Vec<(&'static str, Answer)>,
    pub bio: PastedBio,
}

impl ShadeQuestionnaire {
    pub const MAX_CHARS: usize = QUESTIONS.len() * Answer::MAX + PastedBio::MAX;

    /// Fields: `answers.{i}`, `bio`, and `questionnaire` when nothing was written at all.
    pub fn parse(&self) -> Result<Questionnaire, FieldErrors> {
        let mut errs = FieldErrors::default();
        if self.answers.len() > QUESTIONS.len() {
            errs.push(
                "questionnaire",
                Invalid::new(format!("There are only {} questions.", QUESTIONS.len())),
            );
            return Err(errs);
        }
        let mut answers = Vec::new();
        for (i, a) in self.answers.iter().enumerate() {
            if let Some(a) = errs.check(&format!("answers.{i}"), Answer::parse(a)) {
                if !a.as_str().is_empty() {
                    answers.push((QUESTIONS[i], a));
                }
            }
        }
        let bio = errs.check("bio", PastedBio::parse(&self.bio));
        if !errs.is_empty() {
            return Err(errs);
        }
        let bio = bio.expect("checked above");
        if answers.is_empty() && bio.as_str().is_empty() {
            errs.push(
                "questionnaire",
                Invalid::new("Answer at least one question, or paste a bio."),
            );
            return Err(errs);
        }
        Ok(Questionnaire { answers, bio })
    }
}

/// One Shade as a model suggests it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SuggestedShade {
    pub name: ShadeName,
    pub icon: ShadeIcon,
    pub description: ShadeDescription,
    pub confidence: Confidence,
    pub topics: Vec<Topic>,
}

/// What a model writes when asked for Shades.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SuggestedShades {
    pub shades: Vec<SuggestedShade>,
}

impl SuggestedShades {
    pub const MIN: usize = 3;
    pub const MAX: usize = 6;
    /// The most topics a suggested Shade lists (a person may list up to [`MAX_TOPICS`]).
    pub const TOPICS: usize = 3;

    /// The JSON Schema a model's answer is asked to follow: every bound [`Self::check`] and the
    /// field types enforce, generated from them.
    pub fn schema() -> serde_json::Value {
        use super::schema::{between, number, object, one_of, text};
        object(
            &[(
                "shades",
                between(
                    Self::MIN,
                    Self::MAX,
                    object(
                        &[
                            (
                                "name",
                                text::<ShadeName>(
                                    "A short name for this facet of the person, such as \"Night owl\" or \"Patient teacher\". Different from every other Shade's name.",
                                ),
                            ),
                            (
                                "icon",
                                one_of::<ShadeIcon>(&Self::SUGGESTED_ICONS, "One emoji for this Shade."),
                            ),
                            (
                                "description",
                                text::<ShadeDescription>(
                                    "One or two sentences, in the second person, on how this facet shows in the person's life.",
                                ),
                            ),
                            (
                                "confidence",
                                number(
                                    0.0,
                                    1.0,
                                    "How sure the answers make you of this Shade: 0.3 tentative, 0.6 likely, 0.9 sure.",
                                ),
                            ),
                            (
                                "topics",
                                between(
                                    0,
                                    Self::TOPICS,
                                    text::<Topic>("A topic from the answers, one to three words."),
                                    "What in the answers this Shade came from.",
                                ),
                            ),
                        ],
                        "One Shade: a facet of the person's personality.",
                    ),
                    "Distinct facets of the person's personality, the best supported first.",
                ),
            )],
            "Shades suggested for a person's digital twin.",
        )
    }

    const SUGGESTED_ICONS: [&'static str; 24] = ShadeIcon::SUGGESTED;

    /// The rules beyond each field's own bounds: between [`Self::MIN`] and [`Self::MAX`] Shades
    /// with distinct names, icons from [`ShadeIcon::SUGGESTED`], at most [`Self::TOPICS`] topics.
    pub fn check(&self) -> Result<(), Invalid> {
        let n = self.shades.len();
        if !(Self::MIN..=Self::MAX).contains(&n) {
            return Err(Invalid::new(format!(
                "there must be {} to {} Shades (there are {n})",
                Self::MIN,
                Self::MAX
            )));
        }
        let mut seen = std::collections::HashSet::new();
        for s in &self.shades {
            if !seen.insert(s.name.as_str().to_lowercase()) {
                return Err(Invalid::new(format!("two Shades are named \"{}\"", s.name)));
            }
            if !ShadeIcon::SUGGESTED.contains(&s.icon.as_str()) {
                return Err(Invalid::new(format!(
                    "icon \"{}\" is not one of the listed emoji",
                    s.icon.as_str()
                )));
            }
            if s.topics.len() > Self::TOPICS {
                return Err(Invalid::new(format!(
                    "Shade \"{}\" lists more than {} topics",
                    s.name,
                    Self::TOPICS
                )));
            }
        }
        Ok(())
    }

    /// The suggestions as drafts for the user to review (marked suggested, private until the
    /// user makes them public).
    pub fn into_drafts(self) -> Vec<ShadeDraft> {
        self.shades
            .into_iter()
            .map(|s| ShadeDraft {
                name: s.name.into_inner(),
                icon: s.icon.0,
                description: s.description.into_inner(),
                confidence: s.confidence.get(),
                topics: s
                    .topics
                    .iter()
                    .map(|t| t.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                source: ShadeSource::Suggested,
                public: false,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shade(name: &str) -> ShadeDraft {
        ShadeDraft {
            name: name.into(),
            description: format!("{name} describes you."),
            ..ShadeDraft::default()
        }
    }

    #[test]
    fn icons_are_one_emoji() {
        for ok in ["🌙", "👩🏽‍🍳", "🇵🇹", "1️⃣", "❤️", " ☕ ", "🛠️"] {
            assert!(ShadeIcon::parse(ok).is_ok(), "{ok:?}");
        }
        for bad in ["", "a", "ab", "🌙🌙", "🌙 x", "★x", "hello", "1"] {
            assert!(ShadeIcon::parse(bad).is_err(), "{bad:?}");
        }
        for icon in ShadeIcon::SUGGESTED {
            assert!(ShadeIcon::parse(icon).is_ok(), "{icon:?}");
            assert!(icon.chars().count() <= 10);
        }
    }

    #[test]
    fn confidence_words_and_bounds() {
        assert_eq!(Confidence::words(0.2), "tentative");
        assert_eq!(Confidence::words(0.6), "likely");
        assert_eq!(Confidence::words(0.9), "sure");
        assert!(Confidence::new(1.01).is_err());
        assert!(Confidence::new(f32::NAN).is_err());
        assert!(Confidence::new(0.0).is_ok());
    }

    #[test]
    fn twin_validation_names_each_field() {
        let mut draft = TwinDraft {
            name: "Ada".into(),
            shades: vec![shade("Night owl"), shade("night OWL"), shade("")],
            ..TwinDraft::default()
        };
        draft.shades[0].icon = "x".into();
        draft.shades[0].topics = "a, b, c, d, e, f".into();
        let errs = draft.parse().unwrap_err();
        assert!(errs.get("shades.0.icon").is_some());
        assert!(errs.get("shades.0.topics").is_some());
        assert!(errs.get("shades.1.name").unwrap().contains("already"));
        assert!(errs.get("shades.2.name").is_some());
        assert!(errs.get("name").is_none());

        draft.shades = vec![shade("A"), shade("B")];
        draft.shades[1].topics = " music ,, Music, jazz ".into();
        let twin = draft.parse().unwrap();
        assert_eq!(twin.shades.len(), 2);
        let topics: Vec<&str> = twin.shades[1].topics.iter().map(|t| t.as_str()).collect();
        assert_eq!(topics, ["music", "jazz"]);
        assert_eq!(twin.shades[1].to_draft().topics, "music, jazz");
    }

    #[test]
    fn too_many_shades_is_refused_before_reading_them() {
        let draft = TwinDraft {
            name: String::new(),
            shades: vec![ShadeDraft::default(); TwinDraft::MAX_SHADES + 1],
            ..TwinDraft::default()
        };
        let errs = draft.parse().unwrap_err();
        assert_eq!(errs.0.len(), 1);
        assert!(errs.get("shades").unwrap().contains("at most 24"));
    }

    #[test]
    fn questionnaire_needs_something() {
        let empty = ShadeQuestionnaire {
            answers: vec![" ".into(); 3],
            bio: String::new(),
        };
        assert!(empty.parse().unwrap_err().get("questionnaire").is_some());
        let some = ShadeQuestionnaire {
            answers: vec![String::new(), "I read.".into()],
            bio: String::new(),
        };
        let q = some.parse().unwrap();
        assert_eq!(
            q.answers,
            vec![(QUESTIONS[1], Answer::parse("I read.").unwrap())]
        );
        let too_many = ShadeQuestionnaire {
            answers: vec!["x".into(); QUESTIONS.len() + 1],
            bio: String::new(),
        };
        assert!(too_many.parse().is_err());
    }

    /// Every constraint the validator checks is in the schema a model is sent.
    #[test]
    fn the_schema_carries_every_constraint() {
        let schema = SuggestedShades::schema();
        let list = &schema["properties"]["shades"];
        assert_eq!(list["minItems"], SuggestedShades::MIN);
        assert_eq!(list["maxItems"], SuggestedShades::MAX);
        let item = &list["items"];
        assert_eq!(item["properties"]["name"]["maxLength"], ShadeName::MAX);
        assert_eq!(item["properties"]["name"]["minLength"], ShadeName::MIN);
        assert_eq!(
            item["properties"]["description"]["maxLength"],
            ShadeDescription::MAX
        );
        let icons: Vec<&str> = item["properties"]["icon"]["enum"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(icons, ShadeIcon::SUGGESTED);
        assert_eq!(item["properties"]["confidence"]["minimum"], 0.0);
        assert_eq!(item["properties"]["confidence"]["maximum"], 1.0);
        let topics = &item["properties"]["topics"];
        assert_eq!(topics["maxItems"], SuggestedShades::TOPICS);
        assert_eq!(topics["items"]["maxLength"], Topic::MAX);
        // Names must differ: said in words, as JSON Schema cannot say it of a field.
        assert!(item["properties"]["name"]["description"]
            .as_str()
            .unwrap()
            .contains("Different from every other"));
        assert_eq!(
            item["required"],
            serde_json::json!(["name", "icon", "description", "confidence", "topics"])
        );
    }

    /// A model that fills the schema literally (every text at its limit, the i-th enum value for
    /// the i-th item) writes an answer the validator accepts, once recovered.
    #[test]
    fn an_answer_at_the_schema_limits_is_accepted() {
        let schema = SuggestedShades::schema();
        for over in [1.0, 1.5] {
            let mut value = mock_llm::fill_schema(&schema, over);
            // Literal names are all alike; a model is told they must differ.
            for (i, s) in value["shades"]
                .as_array_mut()
                .unwrap()
                .iter_mut()
                .enumerate()
            {
                s["name"] = serde_json::json!(format!("Shade {i}"));
            }
            super::super::schema::recover(&mut value, &schema);
            let parsed: SuggestedShades = serde_json::from_value(value).unwrap();
            parsed.check().unwrap();
        }
    }
}
