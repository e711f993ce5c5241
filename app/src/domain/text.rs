//! Bounded text values.

use super::Invalid;
use serde::{Deserialize, Serialize};

/// Normalises user text: trims the ends, turns CRLF into LF and refuses control characters
/// other than newlines and tabs. Length is counted in characters, not bytes.
///
/// The size is checked before anything is copied or scanned: a character is at most four bytes
/// (and CRLF, two bytes, becomes one character), so text of more than `4 * max` bytes is too long
/// whatever it holds.
fn clean(
    input: &str,
    what: &str,
    min: usize,
    max: usize,
    multiline: bool,
) -> Result<String, Invalid> {
    let trimmed = input.trim();
    if trimmed.len() > max.saturating_mul(4) {
        return Err(too_long(what, max, trimmed.chars().count()));
    }
    let text = trimmed.replace("\r\n", "\n");
    if text
        .chars()
        .any(|c| c.is_control() && !(multiline && matches!(c, '\n' | '\t')))
    {
        return Err(Invalid::new(if multiline {
            format!("{what} contains characters that cannot be shown.")
        } else {
            format!("{what} must be a single line without control characters.")
        }));
    }
    let len = text.chars().count();
    if len < min {
        return Err(Invalid::new(if min <= 1 {
            format!("{what} is required.")
        } else {
            format!("{what} must be at least {min} characters.")
        }));
    }
    if len > max {
        return Err(too_long(what, max, len));
    }
    Ok(text)
}

fn too_long(what: &str, max: usize, len: usize) -> Invalid {
    Invalid::new(format!(
        "{what} must be at most {max} characters (it has {len})."
    ))
}

macro_rules! bounded_text {
    ($(#[$doc:meta])* $name:ident, $what:literal, $min:expr, $max:expr, multiline = $ml:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub const MIN: usize = $min;
            pub const MAX: usize = $max;

            pub fn parse(input: &str) -> Result<Self, Invalid> {
                clean(input, $what, $min, $max, $ml).map(Self)
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn into_inner(self) -> String {
                self.0
            }
        }

        impl super::schema::Bounded for $name {
            const MIN: usize = $min;
            const MAX: usize = $max;
        }

        impl TryFrom<String> for $name {
            type Error = Invalid;
            fn try_from(value: String) -> Result<Self, Invalid> {
                Self::parse(&value)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

bounded_text!(
    /// A character's name: one line, 1 to 60 characters.
    CharacterName, "Name", 1, 60, multiline = false
);
bounded_text!(
    /// One personality trait: one line, 1 to 30 characters.
    TraitName, "Each trait", 1, 30, multiline = false
);
bounded_text!(
    /// One of the user's own labels on a character ("favourites", "fantasy", "drafts"): one line,
    /// 1 to 30 characters, no comma (tags are typed as a comma-separated list).
    TagName, "Each tag", 1, 30, multiline = false
);
bounded_text!(
    /// The language the generated text is written in ("English", "Português", "日本語").
    Language, "Language", 2, 40, multiline = false
);
bounded_text!(
    /// The name of the voice the character speaks with; may be empty.
    VoiceName, "Voice", 0, 40, multiline = false
);
bounded_text!(
    /// Backstory or story context: a few paragraphs.
    LongText, "This text", 1, 6000, multiline = true
);
bounded_text!(
    /// The character's opening line: one or two sentences.
    OpeningLine, "The opening line", 1, 400, multiline = true
);
bounded_text!(
    /// One of the player's start options.
    StartOption, "Each start option", 1, 300, multiline = true
);
bounded_text!(
    /// Play mode: what the character says and does in one scene: about three sentences.
    Dialogue, "The dialogue", 1, 1200, multiline = true
);
bounded_text!(
    /// One of the three things the player may do next.
    PlayOption, "Each option", 1, 160, multiline = false
);
bounded_text!(
    /// An action the player types instead of picking an option.
    PlayerAction, "Your action", 1, 300, multiline = false
);

bounded_text!(
    /// Play mode: the running summary of the scenes that no longer fit in a prompt.
    StorySummary, "The summary", 1, 2000, multiline = true
);
bounded_text!(
    /// The name of an API key, to tell one's keys apart.
    ApiKeyName, "The key's name", 1, 60, multiline = false
);
bounded_text!(
    /// What the user says in a chat.
    MessageText, "Your message", 1, 4000, multiline = true
);
bounded_text!(
    /// A character's reply as the user edits it: replies may be longer than what a user sends.
    ReplyText, "The message", 1, 20000, multiline = true
);
/// The words of a search: letters and digits only (so nothing a user types is read as query
/// syntax by either full-text index), lower-cased, at most `max`, each at most 40 characters.
pub fn search_terms(q: &str, max: usize) -> Vec<String> {
    q.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| w.chars().take(40).collect::<String>().to_lowercase())
        .take(max)
        .collect()
}

bounded_text!(
    /// A chat's running summary of what no longer fits in a reply's prompt.
    ChatSummaryText, "The summary", 1, 4000, multiline = true
);
bounded_text!(
    /// A chat's title, to tell one's chats with a character apart.
    ChatTitle, "The chat's title", 1, 100, multiline = false
);
bounded_text!(
    /// The kind of an ending ("happy", "tragic", "ambiguous").
    EndingKind, "Each ending's kind", 1, 30, multiline = false
);
bounded_text!(
    /// The description of an ending scene.
    EndingText, "Each ending", 1, 2000, multiline = true
);
bounded_text!(
    /// The name a twin goes by.
    TwinName, "Display name", 1, 60, multiline = false
);
bounded_text!(
    /// A twin's short bio; may be empty.
    Bio, "The bio", 0, 1000, multiline = true
);
bounded_text!(
    /// A Shade's name ("Night owl", "Patient teacher").
    ShadeName, "Each Shade's name", 1, 40, multiline = false
);
bounded_text!(
    /// What a Shade says about the person.
    ShadeDescription, "Each Shade's description", 1, 400, multiline = true
);
bounded_text!(
    /// A topic a Shade came from.
    Topic, "Each topic", 1, 40, multiline = false
);
bounded_text!(
    /// One answer of the Shades questionnaire; may be left blank.
    Answer, "Each answer", 0, 1000, multiline = true
);
bounded_text!(
    /// A pasted bio that Shades are suggested from; may be empty.
    PastedBio, "The pasted text", 0, 4000, multiline = true
);
bounded_text!(
    /// Why two personas match as they do: a paragraph.
    Reasoning, "The reasoning", 1, 1200, multiline = true
);
bounded_text!(
    /// One strength or challenge of a match: a sentence.
    MatchPoint, "Each strength and challenge", 1, 200, multiline = false
);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn trims_and_accepts_unicode() {
        let n = CharacterName::parse("  Élodie 夜  ").unwrap();
        assert_eq!(n.as_str(), "Élodie 夜");
    }

    #[test]
    fn refuses_empty_and_too_long() {
        assert_eq!(
            CharacterName::parse("   ").unwrap_err().0,
            "Name is required."
        );
        let long = "x".repeat(61);
        assert!(CharacterName::parse(&long)
            .unwrap_err()
            .0
            .contains("at most 60 characters (it has 61)"));
        assert!(Language::parse("x").unwrap_err().0.contains("at least 2"));
    }

    #[test]
    fn single_line_refuses_newlines_multiline_keeps_them() {
        assert!(CharacterName::parse("a\nb").is_err());
        let m = MessageText::parse("line one\r\nline two").unwrap();
        assert_eq!(m.as_str(), "line one\nline two");
        assert!(MessageText::parse("bell\u{7}").is_err());
    }

    #[test]
    fn voice_may_be_empty() {
        assert_eq!(VoiceName::parse("").unwrap().as_str(), "");
    }

    #[test]
    fn serde_validates_on_deserialize() {
        let ok: Result<CharacterName, _> = serde_json::from_str("\"Ada\"");
        assert!(ok.is_ok());
        let bad: Result<CharacterName, _> = serde_json::from_str("\"\"");
        assert!(bad.is_err());
    }

    proptest! {
        #[test]
        fn parsed_names_are_always_within_bounds(s in "\\PC{0,80}") {
            if let Ok(n) = CharacterName::parse(&s) {
                let len = n.as_str().chars().count();
                prop_assert!((1..=60).contains(&len));
                prop_assert_eq!(n.as_str().trim(), n.as_str());
                prop_assert!(!n.as_str().chars().any(char::is_control));
            }
        }

        #[test]
        fn parse_is_idempotent(s in "\\PC{0,120}") {
            if let Ok(m) = MessageText::parse(&s) {
                let again = MessageText::parse(m.as_str()).unwrap();
                prop_assert_eq!(again, m);
            }
        }

        #[test]
        fn any_short_printable_line_is_a_valid_name(s in "[A-Za-z][A-Za-z '\\-]{0,58}[A-Za-z]") {
            prop_assert!(CharacterName::parse(&s).is_ok());
        }
    }
}
