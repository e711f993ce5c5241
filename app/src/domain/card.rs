//! Character Cards coming in: the JSON that SillyTavern, Agnai, RisuAI and the card sites
//! exchange — V1 (flat fields), V2 (`"spec": "chara_card_v2"`, fields under `data`) and V3
//! (`"spec": "chara_card_v3"`) — and how a card's fields become a wizard draft.
//!
//! The card as it came is kept whole (every field, `extensions` and unknown keys included); the
//! draft only takes what PersonaFlux has a field for. The mapping (also in the README):
//!
//! | card | draft |
//! |---|---|
//! | `name` | name |
//! | `tags`, else short comma-separated `personality` | traits |
//! | `description` | backstory |
//! | `scenario`, else `description` | story context (the world) |
//! | `first_mes` | opening line |
//! | — | age, start options, endings: not in cards; the wizard asks for them or writes them |
//!
//! A text longer than our field allows is cut at a sentence boundary (the card keeps the whole
//! text) and the import says so. `{{char}}` and `{{user}}` in the texts become the character's
//! name and "you".

use super::schema::cut_to;
use super::{CharacterDraft, CharacterName, LongText, OpeningLine, TraitName, Traits};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The largest card file taken in: a card's JSON, or a PNG carrying one. Checked before the file
/// is parsed or decoded.
pub const MAX_CARD_BYTES: usize = 8 * 1024 * 1024;

/// Which card format a file was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CardSpec {
    V1,
    V2,
    V3,
}

impl CardSpec {
    pub fn label(self) -> &'static str {
        match self {
            CardSpec::V1 => "Character Card V1",
            CardSpec::V2 => "Character Card V2",
            CardSpec::V3 => "Character Card V3",
        }
    }
}

/// Why a file could not be imported, in words for the person who chose it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum CardError {
    #[error("The file is larger than 8 MB.")]
    TooLarge,
    #[error("The file is empty.")]
    Empty,
    #[error("This is not a Character Card: it is neither card JSON nor a PNG with a card in it.")]
    NotACard,
    #[error("The PNG has no character card in it (no chara or ccv3 text chunk).")]
    NoCardInPng,
    #[error("The PNG could not be read: it is damaged or not a PNG.")]
    BadPng,
    #[error("The PNG's picture is too large to read (over 64 MB once decoded).")]
    PictureTooLarge,
    #[error("The card's data is not valid JSON.")]
    BadJson,
    #[error("The card is a {0} card, which PersonaFlux cannot read.")]
    UnknownSpec(String),
    #[error("The card has no name.")]
    NoName,
}

/// A card read from a file: the fields PersonaFlux maps, and the whole card as it came.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportedCard {
    pub spec: CardSpec,
    pub name: String,
    pub description: String,
    pub personality: String,
    pub scenario: String,
    pub first_mes: String,
    pub tags: Vec<String>,
    /// The whole card, every field and extension kept.
    pub raw: Value,
}

/// A field as text: a string, or nothing (a card writer may put `null` or leave it out).
fn text(obj: &Value, key: &str) -> String {
    obj.get(key)
        .and_then(Value::as_str)
        .map(|s| s.replace("\r\n", "\n"))
        .unwrap_or_default()
}

/// Reads a card from its JSON text.
pub fn parse_json(bytes: &[u8]) -> Result<ImportedCard, CardError> {
    if bytes.len() > MAX_CARD_BYTES {
        return Err(CardError::TooLarge);
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(CardError::Empty);
    }
    let raw: Value = serde_json::from_slice(bytes).map_err(|_| CardError::BadJson)?;
    let Some(top) = raw.as_object() else {
        return Err(CardError::NotACard);
    };
    let (spec, data) = match top.get("spec").and_then(Value::as_str) {
        Some("chara_card_v2") => (CardSpec::V2, top.get("data")),
        Some("chara_card_v3") => (CardSpec::V3, top.get("data")),
        Some(other) => {
            let other: String = other.chars().take(40).collect();
            return Err(CardError::UnknownSpec(other));
        }
        // V1 has no `spec`: its fields are at the top.
        None if top.contains_key("name") && top.contains_key("first_mes") => {
            (CardSpec::V1, Some(&raw))
        }
        None => return Err(CardError::NotACard),
    };
    let Some(data) = data.filter(|d| d.is_object()) else {
        return Err(CardError::NotACard);
    };
    let name = text(data, "name").trim().to_string();
    if name.is_empty() {
        return Err(CardError::NoName);
    }
    let tags = data
        .get("tags")
        .and_then(Value::as_array)
        .map(|tags| {
            tags.iter()
                .filter_map(Value::as_str)
                .map(|t| t.trim().to_string())
                .filter(|t| !t.is_empty())
                .collect()
        })
        .unwrap_or_default();
    Ok(ImportedCard {
        spec,
        description: text(data, "description"),
        personality: text(data, "personality"),
        scenario: text(data, "scenario"),
        first_mes: text(data, "first_mes"),
        name,
        tags,
        raw,
    })
}

/// Reads a card from a file: a PNG carrying the card in a `ccv3` (V3, preferred) or `chara` (V2)
/// text chunk, or the card's JSON. The PNG is decoded whole, within a memory limit, so a damaged
/// file or a decompression bomb is refused rather than half-read.
#[cfg(feature = "ssr")]
pub fn read_file(bytes: &[u8]) -> Result<ImportedCard, CardError> {
    const PNG_SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";
    if bytes.len() > MAX_CARD_BYTES {
        return Err(CardError::TooLarge);
    }
    if bytes.is_empty() {
        return Err(CardError::Empty);
    }
    if !bytes.starts_with(PNG_SIGNATURE) {
        return parse_json(bytes);
    }
    let json = png_card_text(bytes)?;
    parse_json(&json)
}

/// The card JSON in a PNG's text chunks (base64, as every card tool writes it).
#[cfg(feature = "ssr")]
fn png_card_text(bytes: &[u8]) -> Result<Vec<u8>, CardError> {
    use base64::Engine;
    /// The most memory the decoder may use for the picture: a card's portrait is well under
    /// this; a "bomb" (a small file that inflates to gigabytes) is refused.
    const DECODE_LIMIT: usize = 64 * 1024 * 1024;
    let mut decoder = png::Decoder::new_with_limits(
        bytes,
        png::Limits {
            bytes: DECODE_LIMIT,
        },
    );
    decoder.set_transformations(png::Transformations::IDENTITY);
    let mut reader = decoder.read_info().map_err(|_| CardError::BadPng)?;
    if reader.output_buffer_size() > DECODE_LIMIT {
        return Err(CardError::PictureTooLarge);
    }
    // Card tools write the text chunk after the image data: read the image to reach it.
    let mut picture = vec![0; reader.output_buffer_size()];
    reader
        .next_frame(&mut picture)
        .map_err(|_| CardError::BadPng)?;
    reader.finish().map_err(|_| CardError::BadPng)?;
    let info = reader.info();
    let chunk = |key: &str| {
        info.uncompressed_latin1_text
            .iter()
            .find(|c| c.keyword.eq_ignore_ascii_case(key))
            .map(|c| c.text.clone())
            .or_else(|| {
                info.utf8_text
                    .iter()
                    .find(|c| c.keyword.eq_ignore_ascii_case(key))
                    .and_then(|c| c.get_text().ok())
            })
    };
    let text = chunk("ccv3")
        .or_else(|| chunk("chara"))
        .ok_or(CardError::NoCardInPng)?;
    base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .map_err(|_| CardError::BadJson)
}

/// What a draft made from a card left out or changed, for the person importing it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportNote(pub String);

impl ImportedCard {
    /// The wizard draft this card fills in, and notes on what was cut or is missing.
    pub fn to_draft(&self) -> (CharacterDraft, Vec<ImportNote>) {
        let mut notes = Vec::new();
        let name_limit = CharacterName::MAX;
        let name = cut_to(&self.name, name_limit);
        if name != self.name {
            notes.push(ImportNote(format!(
                "The name was shortened to {name_limit} characters."
            )));
        }
        let macros = |s: &str| {
            s.replace("{{char}}", &name)
                .replace("{{Char}}", &name)
                .replace("<BOT>", &name)
                .replace("{{user}}", "you")
                .replace("{{User}}", "you")
                .replace("<USER>", "you")
                .trim()
                .to_string()
        };
        let mut fit = |label: &str, s: String, max: usize| {
            if s.chars().count() > max {
                notes.push(ImportNote(format!(
                    "The {label} was cut to {max} characters; the card keeps the whole text."
                )));
                cut_to(&s, max).trim_end().to_string()
            } else {
                s
            }
        };
        let traits = self.traits();
        let backstory = fit("backstory", macros(&self.description), LongText::MAX);
        let world = if self.scenario.trim().is_empty() {
            macros(&self.description)
        } else {
            macros(&self.scenario)
        };
        let story_context = fit("world", world, LongText::MAX);
        let opening_line = fit("opening line", macros(&self.first_mes), OpeningLine::MAX);
        if traits.is_empty() {
            notes.push(ImportNote(
                "The card has no tags or short personality words: add at least one trait.".into(),
            ));
        }
        notes.push(ImportNote(
            "Cards have no age, start options or endings: add the age, then write the start options and endings (or have them written)."
                .into(),
        ));
        let draft = CharacterDraft {
            name,
            traits,
            backstory,
            story_context,
            opening_line,
            ..CharacterDraft::default()
        };
        (draft, notes)
    }

    /// Traits: the card's tags, or else its personality when that is a short list of words
    /// ("shy, clever, loyal"); only what is a valid trait, at most [`Traits::MAX`].
    fn traits(&self) -> Vec<String> {
        let from_personality: Vec<String> = self
            .personality
            .split([',', ';', '\n'])
            .map(|p| p.trim().trim_end_matches('.').to_string())
            .collect();
        let personality_is_a_list = from_personality.len() > 1
            && from_personality
                .iter()
                .all(|p| p.chars().count() <= TraitName::MAX && p.split_whitespace().count() <= 3);
        let source = if !self.tags.is_empty() {
            self.tags.clone()
        } else if personality_is_a_list {
            from_personality
        } else {
            Vec::new()
        };
        let mut traits: Vec<String> = Vec::new();
        for t in source {
            if TraitName::parse(&t).is_ok()
                && !traits.iter().any(|k| k.eq_ignore_ascii_case(&t))
                && traits.len() < Traits::MAX
            {
                traits.push(t);
            }
        }
        traits
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn bytes(v: Value) -> Vec<u8> {
        serde_json::to_vec(&v).unwrap()
    }

    #[test]
    fn reads_v1_v2_and_v3() {
        let v1 = bytes(json!({
            "name": "Mira", "description": "A smuggler.", "personality": "sly, loyal",
            "scenario": "A harbour at night.", "first_mes": "You're late, {{user}}.",
            "mes_example": ""
        }));
        let card = parse_json(&v1).unwrap();
        assert_eq!(card.spec, CardSpec::V1);
        assert_eq!(card.name, "Mira");
        let (draft, _) = card.to_draft();
        assert_eq!(draft.opening_line, "You're late, you.");
        assert_eq!(draft.traits, vec!["sly", "loyal"]);
        assert_eq!(draft.story_context, "A harbour at night.");

        let v2 = bytes(
            json!({"spec": "chara_card_v2", "spec_version": "2.0", "data": {
                "name": "Ilse", "description": "{{char}} keeps the lighthouse.", "personality": "Ilse is quiet and watches the sea for hours.",
                "scenario": "", "first_mes": "*looks up* Oh.", "tags": ["quiet", "  ", "quiet", "watchful"],
                "extensions": {"depth_prompt": {"depth": 4, "prompt": "x"}}
            }}),
        );
        let card = parse_json(&v2).unwrap();
        assert_eq!(card.spec, CardSpec::V2);
        let (draft, notes) = card.to_draft();
        assert_eq!(draft.backstory, "Ilse keeps the lighthouse.");
        // No scenario: the description stands for the world.
        assert_eq!(draft.story_context, "Ilse keeps the lighthouse.");
        assert_eq!(draft.traits, vec!["quiet", "watchful"]);
        assert!(draft.age.is_empty() && draft.start_options.is_empty() && draft.endings.is_empty());
        assert!(notes.iter().any(|n| n.0.contains("start options")));
        // The whole card is kept, extensions included.
        assert_eq!(card.raw["data"]["extensions"]["depth_prompt"]["depth"], 4);

        let v3 = bytes(
            json!({"spec": "chara_card_v3", "spec_version": "3.0", "data": {
                "name": "Orrin", "description": "d", "personality": "", "scenario": "s", "first_mes": "f",
                "group_only_greetings": [], "assets": [{"type": "icon", "uri": "ccdefault:", "name": "main", "ext": "png"}]
            }}),
        );
        let card = parse_json(&v3).unwrap();
        assert_eq!(card.spec, CardSpec::V3);
        let (draft, notes) = card.to_draft();
        assert!(draft.traits.is_empty());
        assert!(notes.iter().any(|n| n.0.contains("trait")));
    }

    #[test]
    fn over_long_texts_are_cut_at_a_sentence_and_said_so() {
        let long = "It was a long night. ".repeat(40);
        let card = parse_json(&bytes(json!({"spec": "chara_card_v2", "data": {
            "name": "Vela", "description": "d", "first_mes": long, "tags": ["kind"]
        }})))
        .unwrap();
        let (draft, notes) = card.to_draft();
        assert!(draft.opening_line.chars().count() <= OpeningLine::MAX);
        assert!(
            draft.opening_line.ends_with("night."),
            "{}",
            draft.opening_line
        );
        assert!(OpeningLine::parse(&draft.opening_line).is_ok());
        assert!(notes.iter().any(|n| n.0.contains("opening line was cut")));
        assert_eq!(card.raw["data"]["first_mes"].as_str().unwrap(), long);
    }

    #[test]
    fn refuses_what_is_not_a_card_with_a_sentence() {
        assert_eq!(parse_json(b"  "), Err(CardError::Empty));
        assert_eq!(parse_json(b"{not json"), Err(CardError::BadJson));
        assert_eq!(parse_json(b"[1,2]"), Err(CardError::NotACard));
        assert_eq!(parse_json(b"{\"hello\": 1}"), Err(CardError::NotACard));
        assert_eq!(
            parse_json(&bytes(json!({"spec": "chara_card_v9", "data": {}}))),
            Err(CardError::UnknownSpec("chara_card_v9".into()))
        );
        assert_eq!(
            parse_json(&bytes(json!({"spec": "chara_card_v2", "data": "nope"}))),
            Err(CardError::NotACard)
        );
        assert_eq!(
            parse_json(&bytes(
                json!({"spec": "chara_card_v2", "data": {"name": "  "}})
            )),
            Err(CardError::NoName)
        );
        assert_eq!(
            parse_json(&vec![b' '; MAX_CARD_BYTES + 1]),
            Err(CardError::TooLarge)
        );
    }

    #[cfg(feature = "ssr")]
    fn png_with(chunks: &[(&str, &str)]) -> Vec<u8> {
        let mut out = Vec::new();
        {
            let mut enc = png::Encoder::new(&mut out, 2, 2);
            enc.set_color(png::ColorType::Rgb);
            enc.set_depth(png::BitDepth::Eight);
            let mut w = enc.write_header().unwrap();
            w.write_image_data(&[90; 12]).unwrap();
            // After the image data, where SillyTavern writes it.
            for (k, v) in chunks {
                w.write_text_chunk(&png::text_metadata::TEXtChunk::new(*k, *v))
                    .unwrap();
            }
            w.finish().unwrap();
        }
        out
    }

    #[cfg(feature = "ssr")]
    #[test]
    fn reads_the_card_in_a_png_preferring_v3() {
        use base64::Engine;
        let b64 = |v: Value| base64::engine::general_purpose::STANDARD.encode(bytes(v));
        let v2 = b64(json!({"spec": "chara_card_v2", "data": {"name": "Old", "first_mes": "hi"}}));
        let v3 = b64(json!({"spec": "chara_card_v3", "data": {"name": "New", "first_mes": "hi"}}));
        let card = read_file(&png_with(&[("chara", &v2), ("ccv3", &v3)])).unwrap();
        assert_eq!((card.spec, card.name.as_str()), (CardSpec::V3, "New"));
        let card = read_file(&png_with(&[("chara", &v2)])).unwrap();
        assert_eq!((card.spec, card.name.as_str()), (CardSpec::V2, "Old"));
        assert_eq!(
            read_file(&png_with(&[("Comment", "hello")])),
            Err(CardError::NoCardInPng)
        );
        assert_eq!(
            read_file(&png_with(&[("chara", "%%%")])),
            Err(CardError::BadJson)
        );
        // A cut-off PNG is refused, not half-read.
        let whole = png_with(&[("chara", &v2)]);
        assert_eq!(read_file(&whole[..whole.len() / 2]), Err(CardError::BadPng));
        // JSON files go through the same door.
        assert_eq!(
            read_file(br#"{"name":"J","first_mes":"x"}"#).unwrap().spec,
            CardSpec::V1
        );
    }

    #[cfg(feature = "ssr")]
    #[test]
    fn a_decompression_bomb_is_refused_before_it_is_inflated() {
        // A header for 20,000 × 20,000 RGBA (1.6 GB decoded) and a token of image data: refused
        // on its size, before anything is allocated for the picture.
        let mut out = Vec::new();
        {
            let mut enc = png::Encoder::new(&mut out, 20_000, 20_000);
            enc.set_color(png::ColorType::Rgba);
            enc.set_depth(png::BitDepth::Eight);
            let mut w = enc.write_header().unwrap();
            w.write_chunk(
                png::chunk::IDAT,
                &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01],
            )
            .unwrap();
        }
        assert!(out.len() < 200, "{} bytes", out.len());
        assert_eq!(read_file(&out), Err(CardError::PictureTooLarge));
    }

    proptest::proptest! {
        /// Whatever the bytes, reading gives a card or a refusal, never a panic; and a card's
        /// draft has texts within every limit.
        #[test]
        fn any_bytes_are_read_or_refused(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
            let _ = parse_json(&data);
        }

        #[test]
        fn a_draft_from_any_texts_fits_the_limits(name in "\\PC{1,200}", first in "\\PC{0,2000}", desc in "\\PC{0,200}") {
            let card = parse_json(&bytes(json!({"spec": "chara_card_v2", "data": {
                "name": name, "description": desc, "first_mes": first
            }})));
            if let Ok(card) = card {
                let (draft, _) = card.to_draft();
                proptest::prop_assert!(draft.name.chars().count() <= CharacterName::MAX);
                proptest::prop_assert!(draft.opening_line.chars().count() <= OpeningLine::MAX);
                proptest::prop_assert!(draft.backstory.chars().count() <= LongText::MAX);
            }
        }
    }
}
