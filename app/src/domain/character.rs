//! A character: the seed the user types, what the model writes, and the validated whole.

use super::*;
use serde::{Deserialize, Serialize};

/// Gender as offered by the wizard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub enum Gender {
    Female,
    Male,
    NonBinary,
    Other,
    #[default]
    Unspecified,
}

impl Gender {
    pub const ALL: [Gender; 5] = [
        Gender::Female,
        Gender::Male,
        Gender::NonBinary,
        Gender::Other,
        Gender::Unspecified,
    ];

    /// The stable name stored in the database and used in forms.
    pub fn as_str(self) -> &'static str {
        match self {
            Gender::Female => "female",
            Gender::Male => "male",
            Gender::NonBinary => "non-binary",
            Gender::Other => "other",
            Gender::Unspecified => "unspecified",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Gender::Female => "Female",
            Gender::Male => "Male",
            Gender::NonBinary => "Non-binary",
            Gender::Other => "Other",
            Gender::Unspecified => "Unspecified",
        }
    }

    pub fn parse(input: &str) -> Result<Self, Invalid> {
        Self::ALL
            .into_iter()
            .find(|g| g.as_str() == input.trim())
            .ok_or_else(|| Invalid::new("Choose one of the offered genders."))
    }
}

/// Age in years. Fantasy characters may be old; 1 to 1000.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "u16", into = "u16")]
pub struct Age(u16);

impl Age {
    pub const MAX: u16 = 1000;

    pub fn new(years: u16) -> Result<Self, Invalid> {
        if (1..=Self::MAX).contains(&years) {
            Ok(Self(years))
        } else {
            Err(Invalid::new(format!(
                "Age must be between 1 and {} years.",
                Self::MAX
            )))
        }
    }

    /// Parses what was typed in a form field.
    pub fn parse(input: &str) -> Result<Self, Invalid> {
        let t = input.trim();
        if t.is_empty() {
            return Err(Invalid::new("Age is required."));
        }
        if t.len() > 8 {
            return Err(Invalid::new("Age must be a whole number of years."));
        }
        let years: u16 = t
            .parse()
            .map_err(|_| Invalid::new("Age must be a whole number of years."))?;
        Self::new(years)
    }

    pub fn get(self) -> u16 {
        self.0
    }
}

impl TryFrom<u16> for Age {
    type Error = Invalid;
    fn try_from(v: u16) -> Result<Self, Invalid> {
        Self::new(v)
    }
}

impl From<Age> for u16 {
    fn from(a: Age) -> u16 {
        a.0
    }
}

/// How many scenes a play-mode story has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "u8", into = "u8")]
pub struct SceneCount(u8);

impl SceneCount {
    pub const CHOICES: [u8; 5] = [5, 10, 15, 20, 25];

    pub fn new(n: u8) -> Result<Self, Invalid> {
        if Self::CHOICES.contains(&n) {
            Ok(Self(n))
        } else {
            Err(Invalid::new(
                "Number of scenes must be 5, 10, 15, 20 or 25.",
            ))
        }
    }

    pub fn get(self) -> u8 {
        self.0
    }
}

impl Default for SceneCount {
    fn default() -> Self {
        Self(10)
    }
}

impl TryFrom<u8> for SceneCount {
    type Error = Invalid;
    fn try_from(v: u8) -> Result<Self, Invalid> {
        Self::new(v)
    }
}

impl From<SceneCount> for u8 {
    fn from(s: SceneCount) -> u8 {
        s.0
    }
}

/// The entries of a list as sent, each parsed by `parse`: blanks skipped, repeats (ignoring
/// case) kept once. The list's length is checked first (more than `max_items` is `too_many`),
/// then each entry once (a set finds repeats): linear in the input, bounded before any entry is
/// read.
fn distinct<S: AsRef<str>, T: AsRef<str>>(
    items: &[S],
    max_items: usize,
    too_many: fn(usize) -> Invalid,
    parse: impl Fn(&str) -> Result<T, Invalid>,
) -> Result<Vec<T>, Invalid> {
    if items.len() > max_items {
        return Err(too_many(items.len()));
    }
    let mut seen = std::collections::HashSet::with_capacity(items.len());
    let mut out = Vec::new();
    for item in items {
        if item.as_ref().trim().is_empty() {
            continue;
        }
        let t = parse(item.as_ref())?;
        if seen.insert(t.as_ref().to_lowercase()) {
            out.push(t);
        }
    }
    Ok(out)
}

/// The parts of a comma-separated field, refused (`too_many`) past `max_items` without splitting
/// the rest into a list.
fn split_list(
    input: &str,
    max_items: usize,
    too_many: fn(usize) -> Invalid,
) -> Result<Vec<&str>, Invalid> {
    let parts: Vec<&str> = input.split(',').take(max_items + 1).collect();
    if parts.len() > max_items {
        return Err(too_many(input.split(',').count()));
    }
    Ok(parts)
}

/// One to eight distinct traits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Vec<String>", into = "Vec<String>")]
pub struct Traits(Vec<TraitName>);

impl Traits {
    pub const MAX: usize = 8;
    /// The most entries a list may have as sent, blanks and repeats included (a comma-separated
    /// field with stray commas, chips typed twice). Longer lists are refused by their length
    /// before any entry is looked at.
    pub const MAX_ITEMS: usize = 4 * Self::MAX;

    /// Suggestions offered by the wizard; any other trait can be typed.
    pub const SUGGESTIONS: [&'static str; 12] = [
        "brave",
        "curious",
        "sarcastic",
        "loyal",
        "mysterious",
        "kind",
        "ambitious",
        "witty",
        "stubborn",
        "gentle",
        "reckless",
        "wise",
    ];

    /// Blank entries are skipped and repeats (ignoring case) kept once. The length of the list is
    /// checked first, then each entry once (a set finds repeats): linear in the input, and bounded
    /// by [`Self::MAX_ITEMS`] before any entry is read.
    pub fn parse<S: AsRef<str>>(items: &[S]) -> Result<Self, Invalid> {
        let out = distinct(items, Self::MAX_ITEMS, Self::too_many, |item| {
            TraitName::parse(item)
        })?;
        if out.is_empty() {
            return Err(Invalid::new("Add at least one trait."));
        }
        if out.len() > Self::MAX {
            return Err(Self::too_many(out.len()));
        }
        Ok(Self(out))
    }

    fn too_many(n: usize) -> Invalid {
        Invalid::new(format!(
            "Choose at most {} traits (there are {n}).",
            Self::MAX
        ))
    }

    /// Parses a comma-separated list as typed in one text field.
    pub fn parse_list(input: &str) -> Result<Self, Invalid> {
        Self::parse(&split_list(input, Self::MAX_ITEMS, Self::too_many)?)
    }

    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|t| t.as_str())
    }

    pub fn to_strings(&self) -> Vec<String> {
        self.iter().map(str::to_string).collect()
    }
}

impl TryFrom<Vec<String>> for Traits {
    type Error = Invalid;
    fn try_from(v: Vec<String>) -> Result<Self, Invalid> {
        Self::parse(&v)
    }
}

impl From<Traits> for Vec<String> {
    fn from(t: Traits) -> Vec<String> {
        t.to_strings()
    }
}

/// The user's own labels on a character, for finding it on the dashboard: none to twelve distinct
/// tags (repeats, ignoring case, kept once; blanks skipped), each a [`TagName`] without a comma.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Vec<String>", into = "Vec<String>")]
pub struct Tags(Vec<TagName>);

impl Tags {
    pub const MAX: usize = 12;
    /// The most entries a list may have as sent, blanks and repeats included; longer lists are
    /// refused by their length before any entry is looked at.
    pub const MAX_ITEMS: usize = 4 * Self::MAX;

    pub fn parse<S: AsRef<str>>(items: &[S]) -> Result<Self, Invalid> {
        let out = distinct(items, Self::MAX_ITEMS, Self::too_many, |item| {
            if item.contains(',') {
                return Err(Invalid::new("A tag cannot hold a comma."));
            }
            TagName::parse(item)
        })?;
        if out.len() > Self::MAX {
            return Err(Self::too_many(out.len()));
        }
        Ok(Self(out))
    }

    fn too_many(n: usize) -> Invalid {
        Invalid::new(format!(
            "A character can have at most {} tags (there are {n}).",
            Self::MAX
        ))
    }

    /// Parses a comma-separated list as typed in one text field.
    pub fn parse_list(input: &str) -> Result<Self, Invalid> {
        Self::parse(&split_list(input, Self::MAX_ITEMS, Self::too_many)?)
    }

    /// These tags with `more` added (those not already here, ignoring case), or the sentence
    /// saying there would be too many.
    pub fn with(&self, more: &Tags) -> Result<Self, Invalid> {
        let mut all = self.to_strings();
        all.extend(more.to_strings());
        Self::parse(&all)
    }

    /// These tags without any of `gone` (ignoring case).
    pub fn without(&self, gone: &Tags) -> Self {
        let gone: std::collections::HashSet<String> = gone.iter().map(str::to_lowercase).collect();
        Self(
            self.0
                .iter()
                .filter(|t| !gone.contains(&t.as_str().to_lowercase()))
                .cloned()
                .collect(),
        )
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|t| t.as_str())
    }

    pub fn to_strings(&self) -> Vec<String> {
        self.iter().map(str::to_string).collect()
    }
}

impl TryFrom<Vec<String>> for Tags {
    type Error = Invalid;
    fn try_from(v: Vec<String>) -> Result<Self, Invalid> {
        Self::parse(&v)
    }
}

impl From<Tags> for Vec<String> {
    fn from(t: Tags) -> Vec<String> {
        t.to_strings()
    }
}

/// The avatar shown for a character: one of the built-in drawn pictures, or a picture the user uploaded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Avatar(String);

impl Avatar {
    pub const PRESETS: [&'static str; 6] = ["ember", "tide", "moss", "dusk", "gold", "stone"];

    /// What an uploaded picture's avatar starts with; the picture's id follows.
    pub const UPLOAD: &'static str = "upload:";

    /// One of the presets, or an uploaded picture (`upload:` and its id: hex digits and dashes,
    /// at most 64). Whether that picture is the user's is checked by the server on save.
    pub fn parse(input: &str) -> Result<Self, Invalid> {
        let t = input.trim();
        if t.is_empty() {
            return Ok(Self::default());
        }
        if Self::PRESETS.contains(&t) || Self::picture_of(t).is_some() {
            Ok(Self(t.to_string()))
        } else {
            Err(Invalid::new("Choose one of the offered avatars."))
        }
    }

    /// The id of the uploaded picture `avatar` names, if it names one (of a possible form).
    pub fn picture_of(avatar: &str) -> Option<&str> {
        avatar.strip_prefix(Self::UPLOAD).filter(|id| {
            !id.is_empty()
                && id.len() <= 64
                && id.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')
        })
    }

    /// The uploaded picture this avatar shows, if it is one.
    pub fn picture(&self) -> Option<&str> {
        Self::picture_of(&self.0)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for Avatar {
    fn default() -> Self {
        Self(Self::PRESETS[0].to_string())
    }
}

impl TryFrom<String> for Avatar {
    type Error = Invalid;
    fn try_from(v: String) -> Result<Self, Invalid> {
        Self::parse(&v)
    }
}

impl From<Avatar> for String {
    fn from(a: Avatar) -> String {
        a.0
    }
}

/// An ending scene: its kind and what happens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ending {
    pub kind: EndingKind,
    pub text: EndingText,
}

/// The inputs the model writes a character from. Parsed from [`CharacterDraft`]'s first step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CharacterSeed {
    pub name: CharacterName,
    pub traits: Traits,
    pub age: Age,
    pub gender: Gender,
    pub language: Language,
}

/// What the model writes: every part stays editable afterwards.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GeneratedCharacter {
    pub backstory: LongText,
    pub story_context: LongText,
    pub opening_line: OpeningLine,
    pub start_options: Vec<StartOption>,
    pub endings: Vec<Ending>,
}

impl GeneratedCharacter {
    pub const START_OPTIONS: usize = 3;
    pub const ENDINGS: usize = 3;
    /// The kinds a model writes the three endings as, one each (a person editing may use others).
    pub const ENDING_KINDS: [&'static str; 3] = ["happy", "tragic", "ambiguous"];

    /// The JSON Schema a model's answer is asked to follow: every bound [`Self::check`] and the
    /// field types enforce, generated from them (see [`super::schema`]).
    pub fn schema() -> serde_json::Value {
        use super::schema::{exactly, object, one_of, text};
        object(
            &[
                (
                    "backstory",
                    text::<LongText>(
                        "The character's past, shaped by their traits: two or three paragraphs.",
                    ),
                ),
                (
                    "story_context",
                    text::<LongText>(
                        "The world and the situation the story starts in: about two paragraphs.",
                    ),
                ),
                (
                    "opening_line",
                    text::<OpeningLine>(
                        "One sentence the character says to the player to open the story.",
                    ),
                ),
                (
                    "start_options",
                    exactly(
                        Self::START_OPTIONS,
                        text::<StartOption>("A first choice for the player, one sentence."),
                        "The player's first choices: one bold, one cautious, one curious.",
                    ),
                ),
                (
                    "endings",
                    exactly(
                        Self::ENDINGS,
                        object(
                            &[
                                (
                                    "kind",
                                    one_of::<EndingKind>(
                                        &Self::ENDING_KINDS,
                                        "The kind of this ending.",
                                    ),
                                ),
                                (
                                    "text",
                                    text::<EndingText>("What happens in this ending scene."),
                                ),
                            ],
                            "One ending scene.",
                        ),
                        "The story's endings, each of a different kind: one happy, one tragic, \
                         one ambiguous.",
                    ),
                ),
            ],
            "A character's story parts.",
        )
    }

    /// The rules beyond each field's own bounds, for a model's answer: exactly three start
    /// options, three endings of distinct kinds from [`Self::ENDING_KINDS`]. (Deserializing checks
    /// the fields. A person editing the endings afterwards may name the kinds as they like.)
    pub fn check(&self) -> Result<(), Invalid> {
        let options: Vec<&str> = self.start_options.iter().map(|s| s.as_str()).collect();
        parse_start_options(&options)?;
        let endings: Vec<DraftEnding> = self.endings.iter().map(DraftEnding::from).collect();
        parse_endings(&endings)?;
        if let Some(e) = self
            .endings
            .iter()
            .find(|e| !Self::ENDING_KINDS.contains(&e.kind.as_str()))
        {
            return Err(Invalid::new(format!(
                "ending kind \"{}\" is not one of {}",
                e.kind,
                Self::ENDING_KINDS.join(", ")
            )));
        }
        Ok(())
    }
}

impl From<&Ending> for DraftEnding {
    fn from(e: &Ending) -> Self {
        DraftEnding {
            kind: e.kind.to_string(),
            text: e.text.to_string(),
        }
    }
}

/// The wizard's form state, as typed: plain strings so half-finished input can be kept and sent.
/// The same struct is the body of the generate and save server functions.
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct CharacterDraft {
    pub name: String,
    pub traits: Vec<String>,
    pub age: String,
    pub gender: String,
    pub voice: String,
    pub scenes: String,
    pub language: String,
    pub avatar: String,
    pub backstory: String,
    pub story_context: String,
    pub opening_line: String,
    pub start_options: Vec<String>,
    pub endings: Vec<DraftEnding>,
}

impl CharacterDraft {
    /// The draft with the wizard's defaults in every choice left empty: gender unspecified, the
    /// default number of scenes, English, the default avatar.
    pub fn with_defaults(mut self) -> Self {
        let fill = |v: &mut String, default: &str| {
            if v.trim().is_empty() {
                *v = default.to_string();
            }
        };
        fill(&mut self.gender, Gender::Unspecified.as_str());
        fill(&mut self.scenes, &SceneCount::default().get().to_string());
        fill(&mut self.language, "English");
        fill(&mut self.avatar, Avatar::default().as_str());
        self
    }
}

#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct DraftEnding {
    pub kind: String,
    pub text: String,
}

/// Form field names, shared by the wizard's inputs and the error messages.
pub mod field {
    pub const NAME: &str = "name";
    pub const TRAITS: &str = "traits";
    pub const AGE: &str = "age";
    pub const GENDER: &str = "gender";
    pub const VOICE: &str = "voice";
    pub const SCENES: &str = "scenes";
    pub const LANGUAGE: &str = "language";
    pub const AVATAR: &str = "avatar";
    pub const BACKSTORY: &str = "backstory";
    pub const STORY_CONTEXT: &str = "story_context";
    pub const OPENING_LINE: &str = "opening_line";
    pub const START_OPTIONS: &str = "start_options";
    pub const ENDINGS: &str = "endings";
}

/// A part of a character's story that can be written again on its own, the rest kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Section {
    Backstory,
    StoryContext,
    OpeningLine,
    StartOptions,
    Endings,
}

impl Section {
    /// Whether this section of `draft` has nothing in it yet (every entry blank).
    pub fn is_empty_in(self, draft: &CharacterDraft) -> bool {
        match self {
            Section::Backstory => draft.backstory.trim().is_empty(),
            Section::StoryContext => draft.story_context.trim().is_empty(),
            Section::OpeningLine => draft.opening_line.trim().is_empty(),
            Section::StartOptions => draft.start_options.iter().all(|o| o.trim().is_empty()),
            Section::Endings => draft.endings.iter().all(|e| e.text.trim().is_empty()),
        }
    }

    pub const ALL: [Section; 5] = [
        Section::Backstory,
        Section::StoryContext,
        Section::OpeningLine,
        Section::StartOptions,
        Section::Endings,
    ];

    /// Its field: in the draft, in the form, and in the model's answer.
    pub fn key(self) -> &'static str {
        match self {
            Section::Backstory => field::BACKSTORY,
            Section::StoryContext => field::STORY_CONTEXT,
            Section::OpeningLine => field::OPENING_LINE,
            Section::StartOptions => field::START_OPTIONS,
            Section::Endings => field::ENDINGS,
        }
    }

    /// In words, for buttons and prompts.
    pub fn label(self) -> &'static str {
        match self {
            Section::Backstory => "backstory",
            Section::StoryContext => "world",
            Section::OpeningLine => "opening line",
            Section::StartOptions => "start options",
            Section::Endings => "endings",
        }
    }

    /// The JSON Schema of an answer that writes only this section: its part of
    /// [`GeneratedCharacter::schema`], so the same bounds hold.
    pub fn schema(self) -> serde_json::Value {
        let full = GeneratedCharacter::schema();
        super::schema::object(
            &[(self.key(), full["properties"][self.key()].clone())],
            &format!("The character's {}, written again.", self.label()),
        )
    }

    /// Validates a model's answer for this section (the object [`Self::schema`] describes) and
    /// writes it into `draft`, every other field as it was.
    pub fn apply(
        self,
        answer: &serde_json::Value,
        draft: &mut CharacterDraft,
    ) -> Result<(), Invalid> {
        let value = &answer[self.key()];
        let text = || {
            value
                .as_str()
                .map(str::to_string)
                .ok_or_else(|| Invalid::new(format!("{} must be a string", self.key())))
        };
        match self {
            Section::Backstory => draft.backstory = LongText::parse(&text()?)?.into_inner(),
            Section::StoryContext => draft.story_context = LongText::parse(&text()?)?.into_inner(),
            Section::OpeningLine => draft.opening_line = OpeningLine::parse(&text()?)?.into_inner(),
            Section::StartOptions => {
                let items: Vec<String> = serde_json::from_value(value.clone())
                    .map_err(|e| Invalid::new(format!("start_options: {e}")))?;
                draft.start_options = parse_start_options(&items)?
                    .into_iter()
                    .map(|o| o.into_inner())
                    .collect();
            }
            Section::Endings => {
                let items: Vec<DraftEnding> = serde_json::from_value(value.clone())
                    .map_err(|e| Invalid::new(format!("endings: {e}")))?;
                let endings = parse_endings(&items)?;
                if let Some(e) = endings
                    .iter()
                    .find(|e| !GeneratedCharacter::ENDING_KINDS.contains(&e.kind.as_str()))
                {
                    return Err(Invalid::new(format!(
                        "ending kind \"{}\" is not one of {}",
                        e.kind,
                        GeneratedCharacter::ENDING_KINDS.join(", ")
                    )));
                }
                draft.endings = endings.iter().map(DraftEnding::from).collect();
            }
        }
        Ok(())
    }
}

/// A whole character, every field validated: what is saved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CharacterSpec {
    pub seed: CharacterSeed,
    pub voice: VoiceName,
    pub scenes: SceneCount,
    pub avatar: Avatar,
    pub story: GeneratedCharacter,
}

impl CharacterDraft {
    /// The most characters a valid draft holds: every text at its maximum, the trait list at its
    /// longest as sent ([`Traits::MAX_ITEMS`]), three start options, three endings. The server
    /// sizes the request-body limit of the endpoints that take a draft from it.
    pub const MAX_CHARS: usize = CharacterName::MAX
        + Traits::MAX_ITEMS * TraitName::MAX
        + 4 // age: up to 1000
        + 11 // the longest gender word
        + VoiceName::MAX
        + 2 // scenes
        + Language::MAX
        + 7 + 64 // the longest avatar: an uploaded picture's
        + 2 * LongText::MAX
        + OpeningLine::MAX
        + GeneratedCharacter::START_OPTIONS * StartOption::MAX
        + GeneratedCharacter::ENDINGS * (EndingKind::MAX + EndingText::MAX);

    /// Validates the first wizard step: what generation needs.
    pub fn parse_seed(&self) -> Result<CharacterSeed, FieldErrors> {
        let mut errs = FieldErrors::default();
        let name = errs.check(field::NAME, CharacterName::parse(&self.name));
        let traits = errs.check(field::TRAITS, Traits::parse(&self.traits));
        let age = errs.check(field::AGE, Age::parse(&self.age));
        let gender = errs.check(field::GENDER, Gender::parse(&self.gender));
        let language = errs.check(field::LANGUAGE, Language::parse(&self.language));
        match (name, traits, age, gender, language) {
            (Some(name), Some(traits), Some(age), Some(gender), Some(language))
                if errs.is_empty() =>
            {
                Ok(CharacterSeed {
                    name,
                    traits,
                    age,
                    gender,
                    language,
                })
            }
            _ => Err(errs),
        }
    }

    /// Validates every field: what saving needs.
    pub fn parse_spec(&self) -> Result<CharacterSpec, FieldErrors> {
        let seed = self.parse_seed();
        let mut errs = seed.clone().err().unwrap_or_default();
        let voice = errs.check(field::VOICE, VoiceName::parse(&self.voice));
        let scenes = errs.check(
            field::SCENES,
            self.scenes
                .trim()
                .parse::<u8>()
                .map_err(|_| Invalid::new("Number of scenes must be 5, 10, 15, 20 or 25."))
                .and_then(SceneCount::new),
        );
        let avatar = errs.check(field::AVATAR, Avatar::parse(&self.avatar));
        let story = errs.check_story(self);
        match (seed, voice, scenes, avatar, story) {
            (Ok(seed), Some(voice), Some(scenes), Some(avatar), Some(story)) if errs.is_empty() => {
                Ok(CharacterSpec {
                    seed,
                    voice,
                    scenes,
                    avatar,
                    story,
                })
            }
            _ => Err(errs),
        }
    }

    /// The draft as it looks once generation filled in the story parts.
    pub fn with_story(mut self, story: &GeneratedCharacter) -> Self {
        self.backstory = story.backstory.to_string();
        self.story_context = story.story_context.to_string();
        self.opening_line = story.opening_line.to_string();
        self.start_options = story.start_options.iter().map(|s| s.to_string()).collect();
        self.endings = story.endings.iter().map(DraftEnding::from).collect();
        self
    }
}

impl FieldErrors {
    fn check_story(&mut self, d: &CharacterDraft) -> Option<GeneratedCharacter> {
        let backstory = self.check(field::BACKSTORY, LongText::parse(&d.backstory));
        let story_context = self.check(field::STORY_CONTEXT, LongText::parse(&d.story_context));
        let opening_line = self.check(field::OPENING_LINE, OpeningLine::parse(&d.opening_line));
        let start_options = self.check(field::START_OPTIONS, parse_start_options(&d.start_options));
        let endings = self.check(field::ENDINGS, parse_endings(&d.endings));
        Some(GeneratedCharacter {
            backstory: backstory?,
            story_context: story_context?,
            opening_line: opening_line?,
            start_options: start_options?,
            endings: endings?,
        })
    }
}

/// Exactly three start options, each valid.
pub fn parse_start_options<S: AsRef<str>>(items: &[S]) -> Result<Vec<StartOption>, Invalid> {
    if items.len() != GeneratedCharacter::START_OPTIONS {
        return Err(Invalid::new(format!(
            "There must be exactly {} start options (there are {}).",
            GeneratedCharacter::START_OPTIONS,
            items.len()
        )));
    }
    items
        .iter()
        .enumerate()
        .map(|(i, s)| {
            StartOption::parse(s.as_ref())
                .map_err(|e| Invalid::new(format!("Start option {}: {}", i + 1, e.0)))
        })
        .collect()
}

/// Exactly three endings of distinct kinds, each valid.
pub fn parse_endings(items: &[DraftEnding]) -> Result<Vec<Ending>, Invalid> {
    if items.len() != GeneratedCharacter::ENDINGS {
        return Err(Invalid::new(format!(
            "There must be exactly {} endings (there are {}).",
            GeneratedCharacter::ENDINGS,
            items.len()
        )));
    }
    let mut out: Vec<Ending> = Vec::with_capacity(items.len());
    let mut kinds = std::collections::HashSet::with_capacity(items.len());
    for (i, e) in items.iter().enumerate() {
        let kind = EndingKind::parse(&e.kind)
            .map_err(|err| Invalid::new(format!("Ending {}: {}", i + 1, err.0)))?;
        let text = EndingText::parse(&e.text)
            .map_err(|err| Invalid::new(format!("Ending {}: {}", i + 1, err.0)))?;
        if !kinds.insert(kind.as_str().to_ascii_lowercase()) {
            return Err(Invalid::new(format!(
                "Ending {}: each ending needs a different kind (\"{}\" is used twice).",
                i + 1,
                kind
            )));
        }
        out.push(Ending { kind, text });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn tags_are_typed_as_a_list_and_added_and_removed_ignoring_case() {
        let t = Tags::parse_list(" Fantasy, drafts,, fantasy ,Sea").unwrap();
        assert_eq!(t.to_strings(), ["Fantasy", "drafts", "Sea"]);
        assert!(Tags::parse_list("").unwrap().is_empty());
        let more = Tags::parse_list("sea, Night").unwrap();
        assert_eq!(
            t.with(&more).unwrap().to_strings(),
            ["Fantasy", "drafts", "Sea", "Night"]
        );
        let gone = Tags::parse_list("FANTASY, nope").unwrap();
        assert_eq!(t.without(&gone).to_strings(), ["drafts", "Sea"]);
        let twelve: Vec<String> = (0..12).map(|i| format!("t{i}")).collect();
        let full = Tags::parse(&twelve).unwrap();
        assert!(full.with(&Tags::parse_list("t13").unwrap()).is_err());
        assert!(Tags::parse_list(&"x".repeat(31)).is_err());
        assert!(Tags::parse(&["a,b"]).is_err());
    }

    pub(crate) fn full_draft() -> CharacterDraft {
        CharacterDraft {
            name: "Mira".into(),
            traits: vec!["brave".into(), "curious".into()],
            age: "27".into(),
            gender: "female".into(),
            voice: "Aoede".into(),
            scenes: "10".into(),
            language: "English".into(),
            avatar: "tide".into(),
            backstory: "Born at sea.".into(),
            story_context: "A drowned city.".into(),
            opening_line: "You came back.".into(),
            start_options: vec!["Fight".into(), "Wait".into(), "Ask".into()],
            endings: vec![
                DraftEnding {
                    kind: "happy".into(),
                    text: "She finds home.".into(),
                },
                DraftEnding {
                    kind: "tragic".into(),
                    text: "She drowns.".into(),
                },
                DraftEnding {
                    kind: "ambiguous".into(),
                    text: "She sails on.".into(),
                },
            ],
        }
    }

    fn accepts(v: &serde_json::Value) -> Result<(), String> {
        let g: GeneratedCharacter = serde_json::from_value(v.clone()).map_err(|e| e.to_string())?;
        g.check().map_err(|e| e.0)
    }

    /// Every (path, leaf schema) in `schema`, with the filled value's paths (arrays by index).
    fn leaves(
        schema: &serde_json::Value,
        value: &serde_json::Value,
        path: Vec<String>,
        out: &mut Vec<(Vec<String>, serde_json::Value)>,
    ) {
        out.push((path.clone(), schema.clone()));
        match value {
            serde_json::Value::Object(m) => {
                for (k, v) in m {
                    let mut p = path.clone();
                    p.push(k.clone());
                    leaves(&schema["properties"][k], v, p, out);
                }
            }
            serde_json::Value::Array(items) => {
                for (i, v) in items.iter().enumerate() {
                    let mut p = path.clone();
                    p.push(i.to_string());
                    leaves(&schema["items"], v, p, out);
                }
            }
            _ => {}
        }
    }

    fn at<'a>(v: &'a mut serde_json::Value, path: &[String]) -> &'a mut serde_json::Value {
        path.iter().fold(v, |v, k| match v {
            serde_json::Value::Array(a) => &mut a[k.parse::<usize>().unwrap()],
            other => &mut other[k.as_str()],
        })
    }

    /// The schema sent to the model and the validator that reads its answer agree exactly: an
    /// answer that fills the schema to every limit is accepted, and one that oversteps any single
    /// limit of the schema by one (a character, an item, a value outside an enum) is refused. So no
    /// validator bound is missing from the schema, and none is looser there.
    #[test]
    fn the_schema_carries_every_constraint_the_validator_checks() {
        let schema = GeneratedCharacter::schema();
        let full = mock_llm::fill_schema(&schema, 1.0);
        assert_eq!(accepts(&full), Ok(()), "an answer at every limit");
        let mut all = Vec::new();
        leaves(&schema, &full, vec![], &mut all);
        let mut checked = 0;
        for (path, leaf) in &all {
            let mut over = full.clone();
            let target = at(&mut over, path);
            if let Some(max) = leaf["maxLength"].as_u64() {
                *target = serde_json::Value::String("y".repeat(max as usize + 1));
            } else if let Some(values) = leaf["enum"].as_array() {
                let outside = values.iter().filter_map(|v| v.as_str()).collect::<String>() + "x";
                *target = serde_json::Value::String(outside);
            } else if let Some(max) = leaf["maxItems"].as_u64() {
                let items = target.as_array_mut().unwrap();
                items.push(items[0].clone());
                assert_eq!(items.len() as u64, max + 1);
            } else if leaf["required"].is_array() {
                // Each required property, missing.
                for name in leaf["required"].as_array().unwrap() {
                    let mut missing = full.clone();
                    at(&mut missing, path)
                        .as_object_mut()
                        .unwrap()
                        .remove(name.as_str().unwrap());
                    assert!(
                        accepts(&missing).is_err(),
                        "{path:?}.{name} missing was accepted"
                    );
                    checked += 1;
                }
                continue;
            } else {
                continue;
            }
            assert!(
                accepts(&over).is_err(),
                "one past the schema's limit at {path:?} was accepted"
            );
            checked += 1;
            if let Some(min) = leaf["minItems"].as_u64() {
                let mut under = full.clone();
                let items = at(&mut under, path).as_array_mut().unwrap();
                items.truncate(min as usize - 1);
                assert!(
                    accepts(&under).is_err(),
                    "one item short at {path:?} was accepted"
                );
            }
        }
        // backstory, story_context, opening_line, 3 options + their array, 3 endings × (kind,
        // text) + their array, and the required fields of the object and of each ending.
        assert!(checked >= 20, "only {checked} limits were checked");
    }

    #[test]
    fn an_answer_beyond_the_schema_is_mended_to_fit() {
        let schema = GeneratedCharacter::schema();
        let mut over = mock_llm::fill_schema(&schema, 1.5);
        assert!(accepts(&over).is_err());
        let mended = crate::domain::schema::recover(&mut over, &schema);
        assert!(!mended.is_empty());
        assert_eq!(accepts(&over), Ok(()));
        // Cut at a sentence: every text ends with a full stop.
        assert!(over["backstory"].as_str().unwrap().ends_with('.'));
    }

    #[test]
    fn a_full_draft_parses() {
        let spec = full_draft().parse_spec().unwrap();
        assert_eq!(spec.seed.name.as_str(), "Mira");
        assert_eq!(spec.scenes.get(), 10);
        assert_eq!(spec.story.start_options.len(), 3);
    }

    #[test]
    fn each_bad_field_gets_its_own_message() {
        let mut d = full_draft();
        d.name = "".into();
        d.age = "old".into();
        d.scenes = "7".into();
        d.start_options.pop();
        let errs = d.parse_spec().unwrap_err();
        assert_eq!(errs.get(field::NAME), Some("Name is required."));
        assert_eq!(
            errs.get(field::AGE),
            Some("Age must be a whole number of years.")
        );
        assert!(errs
            .get(field::SCENES)
            .unwrap()
            .contains("5, 10, 15, 20 or 25"));
        assert!(errs
            .get(field::START_OPTIONS)
            .unwrap()
            .contains("exactly 3"));
        assert_eq!(errs.get(field::LANGUAGE), None);
    }

    #[test]
    fn duplicate_ending_kinds_are_refused() {
        let mut d = full_draft();
        d.endings[1].kind = "Happy".into();
        let errs = d.parse_spec().unwrap_err();
        assert!(errs.get(field::ENDINGS).unwrap().contains("used twice"));
    }

    #[test]
    fn traits_dedupe_and_bound() {
        let t = Traits::parse_list("brave, Brave , kind,,").unwrap();
        assert_eq!(t.to_strings(), vec!["brave", "kind"]);
        assert!(Traits::parse_list(" , ").is_err());
        let many: Vec<String> = (0..9).map(|i| format!("t{i}")).collect();
        assert!(Traits::parse(&many).unwrap_err().0.contains("at most 8"));
    }

    #[test]
    fn a_million_traits_are_refused_by_their_count_without_being_read() {
        // Every entry is a valid, distinct trait: refusing them after reading would mean
        // comparing each with the others. The count alone decides.
        let many: Vec<String> = (0..1_000_000).map(|i| format!("t{i}")).collect();
        assert_eq!(
            Traits::parse(&many).unwrap_err().0,
            "Choose at most 8 traits (there are 1000000)."
        );
        // An entry that is not even a valid trait is never looked at either.
        let mut bad = vec!["x".repeat(1 << 20)];
        bad.extend((0..Traits::MAX_ITEMS).map(|i| format!("t{i}")));
        assert!(Traits::parse(&bad).unwrap_err().0.contains("at most 8"));
        let list = vec!["a"; 100_000].join(",");
        assert!(Traits::parse_list(&list)
            .unwrap_err()
            .0
            .contains("(there are 100000)"));
        // Blanks and repeats within the list's length still count once.
        let mut padded: Vec<String> = vec![" ".into(); Traits::MAX_ITEMS - 2];
        padded.extend(["brave".into(), "BRAVE".into()]);
        assert_eq!(Traits::parse(&padded).unwrap().to_strings(), vec!["brave"]);
    }

    #[test]
    fn the_largest_draft_is_counted_in_max_chars() {
        let mut d = full_draft();
        d.name = "n".repeat(CharacterName::MAX);
        d.traits = (0..Traits::MAX)
            .map(|i| format!("{i}{}", "t".repeat(29)))
            .collect();
        d.backstory = "b".repeat(LongText::MAX);
        d.story_context = "s".repeat(LongText::MAX);
        d.opening_line = "o".repeat(OpeningLine::MAX);
        d.start_options = (0..3).map(|i| format!("{i}{}", "o".repeat(299))).collect();
        for (i, e) in d.endings.iter_mut().enumerate() {
            e.kind = format!("{i}{}", "k".repeat(EndingKind::MAX - 1));
            e.text = "e".repeat(EndingText::MAX);
        }
        assert!(d.parse_spec().is_ok());
        let chars = serde_json::to_string(&d).unwrap().chars().count();
        assert!(chars < CharacterDraft::MAX_CHARS + 1024, "{chars}");
    }

    #[test]
    fn gender_round_trips() {
        for g in Gender::ALL {
            assert_eq!(Gender::parse(g.as_str()).unwrap(), g);
        }
        assert!(Gender::parse("robot").is_err());
    }

    #[test]
    fn with_story_fills_the_draft_so_it_parses_again() {
        let spec = full_draft().parse_spec().unwrap();
        let mut empty = full_draft();
        empty.backstory.clear();
        empty.start_options.clear();
        let refilled = empty.with_story(&spec.story);
        assert_eq!(refilled.parse_spec().unwrap(), spec);
    }

    proptest! {
        #[test]
        fn age_accepts_exactly_1_to_1000(n in 0u32..5000) {
            let r = Age::parse(&n.to_string());
            prop_assert_eq!(r.is_ok(), (1..=1000).contains(&n));
        }

        #[test]
        fn scene_count_accepts_only_the_choices(n in any::<u8>()) {
            prop_assert_eq!(SceneCount::new(n).is_ok(), [5u8, 10, 15, 20, 25].contains(&n));
        }

        #[test]
        fn tags_are_distinct_comma_free_and_at_most_twelve(items in proptest::collection::vec("[a-zA-Z ,]{0,12}", 0..30)) {
            match Tags::parse(&items) {
                Ok(t) => {
                    let lower: std::collections::HashSet<String> = t.iter().map(str::to_lowercase).collect();
                    prop_assert_eq!(lower.len(), t.iter().count());
                    prop_assert!(t.iter().count() <= Tags::MAX);
                    prop_assert!(t.iter().all(|x| !x.contains(',') && !x.trim().is_empty()));
                }
                Err(_) => prop_assert!(
                    items.iter().any(|i| i.contains(',') && !i.trim().is_empty())
                        || items.iter().filter(|i| !i.trim().is_empty()).count() > Tags::MAX
                ),
            }
        }

        #[test]
        fn traits_never_exceed_bounds(items in proptest::collection::vec("[a-z ]{0,12}", 0..12)) {
            if let Ok(t) = Traits::parse(&items) {
                let n = t.iter().count();
                prop_assert!((1..=Traits::MAX).contains(&n));
            }
        }
    }
}
