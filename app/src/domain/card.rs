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
use super::{CharacterDraft, CharacterName, DraftEnding, LongText, OpeningLine, TraitName, Traits};
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
    #[error("This is not a Character Card: it is neither card JSON, a PNG with a card in it, nor a CHARX file.")]
    NotACard,
    #[error("The PNG has no character card in it (no chara or ccv3 text chunk).")]
    NoCardInPng,
    #[error("The PNG could not be read: it is damaged or not a PNG.")]
    BadPng,
    #[error("The PNG's picture is too large to read (over 64 MB once decoded).")]
    PictureTooLarge,
    #[error("The CHARX file could not be read: it is damaged or not a zip.")]
    BadZip,
    #[error("The CHARX file has no card.json in it.")]
    NoCardInZip,
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
    if bytes.starts_with(b"PK\x03\x04") {
        return parse_json(&charx_card_json(bytes)?);
    }
    if !bytes.starts_with(PNG_SIGNATURE) {
        return parse_json(bytes);
    }
    let json = png_card_text(bytes)?;
    parse_json(&json)
}

/// The `card.json` of a CHARX file (a zip: the V3 card at its root, assets beside it), read
/// within [`MAX_CARD_BYTES`] whatever its header claims.
#[cfg(feature = "ssr")]
fn charx_card_json(bytes: &[u8]) -> Result<Vec<u8>, CardError> {
    use std::io::Read;
    /// More entries than any card has: a zip of thousands of tiny files is refused unread.
    const MAX_ENTRIES: usize = 10_000;
    let mut zip =
        zip::ZipArchive::new(std::io::Cursor::new(bytes)).map_err(|_| CardError::BadZip)?;
    if zip.len() > MAX_ENTRIES {
        return Err(CardError::BadZip);
    }
    let entry = zip.by_name("card.json").map_err(|e| match e {
        zip::result::ZipError::FileNotFound => CardError::NoCardInZip,
        _ => CardError::BadZip,
    })?;
    let mut json = Vec::new();
    entry
        .take(MAX_CARD_BYTES as u64 + 1)
        .read_to_end(&mut json)
        .map_err(|_| CardError::BadZip)?;
    if json.len() > MAX_CARD_BYTES {
        return Err(CardError::TooLarge);
    }
    Ok(json)
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

/// The key of PersonaFlux's own fields in a card's `extensions` (namespaced, as the spec asks).
pub const EXTENSION_KEY: &str = "personaflux";

/// Fields only V3 has; the V2 backfill leaves them out.
const V3_ONLY: [&str; 7] = [
    "group_only_greetings",
    "assets",
    "nickname",
    "creator_notes_multilingual",
    "source",
    "creation_date",
    "modification_date",
];

/// A character as a Character Card V3 and its V2 backfill. `original`: the card it was imported
/// from, whose every other field (extensions, lorebook, unknown keys) is carried over; PersonaFlux's
/// fields overwrite the ones they map to, and the fields cards lack go under
/// `extensions.personaflux`.
pub fn export(draft: &CharacterDraft, original: Option<&Value>) -> (Value, Value) {
    let mut data = original
        .and_then(|o| match o.get("data") {
            Some(d) if d.is_object() => Some(d.clone()),
            _ if o.get("spec").is_none() => Some(o.clone()),
            _ => None,
        })
        .and_then(|d| match d {
            Value::Object(m) => Some(m),
            _ => None,
        })
        .unwrap_or_default();
    let set = |data: &mut serde_json::Map<String, Value>, k: &str, v: Value| {
        data.insert(k.to_string(), v);
    };
    set(&mut data, "name", Value::from(draft.name.clone()));
    set(
        &mut data,
        "description",
        Value::from(draft.backstory.clone()),
    );
    set(
        &mut data,
        "personality",
        Value::from(draft.traits.join(", ")),
    );
    set(
        &mut data,
        "scenario",
        Value::from(draft.story_context.clone()),
    );
    set(
        &mut data,
        "first_mes",
        Value::from(draft.opening_line.clone()),
    );
    if !data.get("tags").is_some_and(Value::is_array) {
        set(&mut data, "tags", Value::from(draft.traits.clone()));
    }
    for k in [
        "mes_example",
        "creator_notes",
        "system_prompt",
        "post_history_instructions",
        "creator",
        "character_version",
    ] {
        if !data.get(k).is_some_and(Value::is_string) {
            set(&mut data, k, Value::from(""));
        }
    }
    for k in ["alternate_greetings", "group_only_greetings"] {
        if !data.get(k).is_some_and(Value::is_array) {
            set(&mut data, k, Value::Array(Vec::new()));
        }
    }
    let mut extensions = match data.remove("extensions") {
        Some(Value::Object(m)) => m,
        _ => serde_json::Map::new(),
    };
    let number_or_text = |s: &str| {
        s.trim()
            .parse::<u32>()
            .map(Value::from)
            .unwrap_or_else(|_| Value::from(s))
    };
    extensions.insert(
        EXTENSION_KEY.to_string(),
        serde_json::json!({
            "age": number_or_text(&draft.age),
            "gender": draft.gender,
            "voice": draft.voice,
            "scenes": number_or_text(&draft.scenes),
            "language": draft.language,
            "avatar": draft.avatar,
            "traits": draft.traits,
            "start_options": draft.start_options,
            "endings": draft.endings,
        }),
    );
    set(&mut data, "extensions", Value::Object(extensions));
    let v3 = serde_json::json!({"spec": "chara_card_v3", "spec_version": "3.0", "data": Value::Object(data.clone())});
    for k in V3_ONLY {
        data.remove(k);
    }
    let v2 = serde_json::json!({"spec": "chara_card_v2", "spec_version": "2.0", "data": Value::Object(data)});
    (v3, v2)
}

/// A PNG portrait for an exported card, 400×600: the avatar's sky gradient with its light,
/// carrying the card as card tools expect it — V3 in a `ccv3` text chunk and the V2 backfill in
/// `chara`, each base64 JSON, after the image data.
#[cfg(feature = "ssr")]
pub fn export_png(draft: &CharacterDraft, v3: &Value, v2: &Value) -> Vec<u8> {
    const W: u32 = 400;
    const H: u32 = 600;
    let art = super::avatar_art::avatar_art(&draft.avatar, &draft.name);
    let rgb = |hex: &str| -> [f32; 3] {
        let h = hex.trim_start_matches('#');
        let c = |i: usize| {
            f32::from(u8::from_str_radix(h.get(i..i + 2).unwrap_or("80"), 16).unwrap_or(128))
        };
        [c(0), c(2), c(4)]
    };
    let (top, bottom) = (rgb(art.top), rgb(art.bottom));
    // The light: the picture's bright disc (its second circle; the first is its halo), scaled
    // from the 64-unit box to the width.
    let light = art
        .shapes
        .iter()
        .filter_map(|s| match s {
            super::avatar_art::Shape::Circle {
                cx, cy, r, fill, ..
            } => Some((*cx, *cy, *r, rgb(fill))),
            _ => None,
        })
        .nth(1);
    let scale = W as f32 / 64.0;
    let mut pixels = Vec::with_capacity((W * H * 3) as usize);
    for y in 0..H {
        let t = y as f32 / (H - 1) as f32;
        for x in 0..W {
            let mut px = [0f32; 3];
            for i in 0..3 {
                px[i] = top[i] + (bottom[i] - top[i]) * t;
            }
            if let Some((cx, cy, r, colour)) = light {
                let (dx, dy) = (x as f32 / scale - cx, y as f32 / scale - cy);
                let d = (dx * dx + dy * dy).sqrt();
                // A disc with a soft edge one unit wide.
                let a = (1.0 - (d - r).max(0.0)).clamp(0.0, 1.0) * 0.9;
                for i in 0..3 {
                    px[i] += (colour[i] - px[i]) * a;
                }
            }
            pixels.extend(px.iter().map(|v| v.round().clamp(0.0, 255.0) as u8));
        }
    }
    png_with_cards(W, H, &pixels, v3, v2)
}

/// A PNG of the `width` × `height` RGB `pixels` carrying the V3 card in `ccv3` and the V2 backfill
/// in `chara` (base64 JSON text chunks, as SillyTavern writes them). An uploaded picture's export
/// comes here with the picture's pixels.
#[cfg(feature = "ssr")]
pub fn png_with_cards(width: u32, height: u32, pixels: &[u8], v3: &Value, v2: &Value) -> Vec<u8> {
    use base64::Engine;
    let b64 = |v: &Value| base64::engine::general_purpose::STANDARD.encode(v.to_string());
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, width, height);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        let written = enc.write_header().is_ok_and(|mut w| {
            w.write_image_data(pixels).is_ok()
                && w.write_text_chunk(&png::text_metadata::TEXtChunk::new("chara", b64(v2)))
                    .is_ok()
                && w.write_text_chunk(&png::text_metadata::TEXtChunk::new("ccv3", b64(v3)))
                    .is_ok()
                && w.finish().is_ok()
        });
        debug_assert!(written, "writing a PNG to memory does not fail");
    }
    out
}

/// One entry of a card's lorebook (`character_book`, Character Card V2/V3): what the model is
/// told when a key comes up in the chat.
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoreEntry {
    /// The entry's name or comment, for people (never sent to the model).
    #[serde(default)]
    pub name: String,
    pub keys: Vec<String>,
    /// With `selective`, one of these must come up too.
    #[serde(default)]
    pub secondary_keys: Vec<String>,
    #[serde(default)]
    pub selective: bool,
    /// Keys match only in the same case (otherwise in any case).
    #[serde(default)]
    pub case_sensitive: bool,
    /// Always sent, keys or not.
    #[serde(default)]
    pub constant: bool,
    pub content: String,
    pub enabled: bool,
    /// Where it goes among the entries sent: lower first.
    #[serde(default)]
    pub insertion_order: i64,
    /// When the lorebook's budget is reached, lower priorities are left out first.
    #[serde(default)]
    pub priority: i64,
    /// `after_char`: after the character's description (otherwise before it).
    #[serde(default)]
    pub after_char: bool,
}

/// A card's lorebook with its own settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Lorebook {
    /// How many of the latest messages are searched for keys (the card's `scan_depth`).
    pub scan_depth: Option<usize>,
    /// The most tokens its entries may take (the card's `token_budget`).
    pub token_budget: Option<usize>,
    pub entries: Vec<LoreEntry>,
}

/// The most lorebook entries read from a card; a card with more keeps them all, unread.
pub const MAX_LORE_ENTRIES: usize = 500;

/// The card's data: V2/V3 `data`, or the V1 top level.
fn card_data(card: &Value) -> &Value {
    card.get("data").filter(|d| d.is_object()).unwrap_or(card)
}

/// The lorebook entries of `card` (V1 top level, or V2/V3 `data`), in their order.
pub fn lorebook(card: &Value) -> Vec<LoreEntry> {
    book(card).entries
}

/// The lorebook of `card` with its settings.
pub fn book(card: &Value) -> Lorebook {
    let Some(book) = card_data(card).get("character_book") else {
        return Lorebook::default();
    };
    let size = |key: &str| {
        book.get(key)
            .and_then(Value::as_u64)
            .map(|n| n.min(1 << 20) as usize)
    };
    let entries = book
        .get("entries")
        .and_then(Value::as_array)
        .map(|entries| {
            entries
                .iter()
                .take(MAX_LORE_ENTRIES)
                .filter_map(lore_entry)
                .collect()
        })
        .unwrap_or_default();
    Lorebook {
        scan_depth: size("scan_depth"),
        token_budget: size("token_budget"),
        entries,
    }
}

fn lore_entry(e: &Value) -> Option<LoreEntry> {
    let strings = |key: &str| -> Vec<String> {
        e.get(key)
            .and_then(Value::as_array)
            .map(|k| {
                k.iter()
                    .filter_map(Value::as_str)
                    .map(str::trim)
                    .filter(|k| !k.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    };
    let flag = |key: &str, default: bool| e.get(key).and_then(Value::as_bool).unwrap_or(default);
    let number = |key: &str| e.get(key).and_then(Value::as_f64).unwrap_or(0.0) as i64;
    let content = e.get("content").and_then(Value::as_str)?.to_string();
    let name = ["name", "comment"]
        .iter()
        .find_map(|k| {
            e.get(*k)
                .and_then(Value::as_str)
                .filter(|n| !n.trim().is_empty())
        })
        .unwrap_or("")
        .trim()
        .to_string();
    Some(LoreEntry {
        name,
        keys: strings("keys"),
        secondary_keys: strings("secondary_keys"),
        selective: flag("selective", false),
        case_sensitive: flag("case_sensitive", false),
        constant: flag("constant", false),
        content,
        enabled: flag("enabled", true),
        insertion_order: number("insertion_order"),
        priority: number("priority"),
        after_char: e.get("position").and_then(Value::as_str) == Some("after_char"),
    })
}

/// The card's own prompts: its `system_prompt` and `post_history_instructions`, if not blank.
pub fn card_prompts(card: &Value) -> (Option<String>, Option<String>) {
    let data = card_data(card);
    let text = |key: &str| {
        data.get(key)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_string)
    };
    (text("system_prompt"), text("post_history_instructions"))
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
        let mut draft = CharacterDraft {
            name,
            traits,
            backstory,
            story_context,
            opening_line,
            ..CharacterDraft::default()
        };
        // A card PersonaFlux exported carries the fields cards lack under its own extension.
        if let Some(ours) = self.ours() {
            notes.retain(|n| !n.0.starts_with("Cards have no age"));
            let text = |k: &str| match ours.get(k) {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Number(n)) => n.to_string(),
                _ => String::new(),
            };
            draft.age = text("age");
            draft.gender = text("gender");
            draft.voice = text("voice");
            draft.scenes = text("scenes");
            draft.language = text("language");
            draft.avatar = text("avatar");
            if let Some(traits) = ours.get("traits").and_then(Value::as_array) {
                draft.traits = traits
                    .iter()
                    .filter_map(Value::as_str)
                    .take(Traits::MAX_ITEMS)
                    .map(str::to_string)
                    .collect();
            }
            draft.start_options = ours
                .get("start_options")
                .and_then(Value::as_array)
                .map(|o| {
                    o.iter()
                        .take(3)
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default();
            draft.endings = ours
                .get("endings")
                .and_then(|e| serde_json::from_value::<Vec<DraftEnding>>(e.clone()).ok())
                .map(|mut e| {
                    e.truncate(3);
                    e
                })
                .unwrap_or_default();
        }
        (draft, notes)
    }

    /// The fields PersonaFlux keeps under its own extension key, when the card has them.
    fn ours(&self) -> Option<&serde_json::Map<String, Value>> {
        let data = match self.spec {
            CardSpec::V1 => &self.raw,
            _ => self.raw.get("data")?,
        };
        data.get("extensions")?.get(EXTENSION_KEY)?.as_object()
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
    fn zip_with(files: &[(&str, &[u8])]) -> Vec<u8> {
        use std::io::Write;
        let mut out = std::io::Cursor::new(Vec::new());
        {
            let mut zip = zip::ZipWriter::new(&mut out);
            let opts = zip::write::SimpleFileOptions::default()
                .compression_method(zip::CompressionMethod::Deflated);
            for (name, bytes) in files {
                zip.start_file(*name, opts).unwrap();
                zip.write_all(bytes).unwrap();
            }
            zip.finish().unwrap();
        }
        out.into_inner()
    }

    #[cfg(feature = "ssr")]
    #[test]
    fn reads_the_card_in_a_charx_file() {
        let card =
            bytes(json!({"spec": "chara_card_v3", "data": {"name": "Zip", "first_mes": "hi"}}));
        let charx = zip_with(&[
            ("assets/icon/main.png", b"not really a png"),
            ("card.json", &card),
        ]);
        let read = read_file(&charx).unwrap();
        assert_eq!((read.spec, read.name.as_str()), (CardSpec::V3, "Zip"));
        assert_eq!(
            read_file(&zip_with(&[("other.json", &card)])),
            Err(CardError::NoCardInZip)
        );
        assert_eq!(
            read_file(&charx[..charx.len() - 30]),
            Err(CardError::BadZip)
        );
        // A card.json that inflates past the limit is refused after the limit, not read whole.
        let huge = vec![b' '; MAX_CARD_BYTES + 10];
        let bomb = zip_with(&[("card.json", &huge)]);
        assert!(bomb.len() < 100_000, "{} bytes", bomb.len());
        assert_eq!(read_file(&bomb), Err(CardError::TooLarge));
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

    #[test]
    fn an_export_reimports_to_the_same_draft_and_keeps_what_it_did_not_map() {
        let original = json!({"spec": "chara_card_v2", "spec_version": "2.0", "data": {
            "name": "Ilse", "description": "d", "personality": "quiet", "scenario": "s", "first_mes": "Hi.",
            "mes_example": "<START>", "system_prompt": "Be Ilse.", "tags": ["lighthouse"],
            "alternate_greetings": ["Hello again."],
            "extensions": {"depth_prompt": {"depth": 4}},
            "character_book": {"entries": [{"keys": ["lamp"], "content": "Old."}]},
            "future": 1
        }});
        let draft = CharacterDraft {
            name: "Ilse Marr".into(),
            traits: vec!["quiet".into(), "watchful".into()],
            age: "52".into(),
            gender: "female".into(),
            voice: "".into(),
            scenes: "10".into(),
            language: "English".into(),
            avatar: "tide".into(),
            backstory: "She keeps the light.".into(),
            story_context: "A cape.".into(),
            opening_line: "You came.".into(),
            start_options: vec!["a".into(), "b".into(), "c".into()],
            endings: ["happy", "tragic", "ambiguous"]
                .map(|k| DraftEnding {
                    kind: k.into(),
                    text: format!("{k} end"),
                })
                .to_vec(),
        };
        let (v3, v2) = export(&draft, Some(&original));
        assert_eq!(v3["spec"], "chara_card_v3");
        assert_eq!(v2["spec"], "chara_card_v2");
        for card in [&v3, &v2] {
            let d = &card["data"];
            assert_eq!(d["name"], "Ilse Marr");
            assert_eq!(d["system_prompt"], "Be Ilse.");
            assert_eq!(d["character_book"]["entries"][0]["keys"][0], "lamp");
            assert_eq!(d["future"], 1);
            assert_eq!(d["extensions"]["depth_prompt"]["depth"], 4);
            assert_eq!(d["alternate_greetings"][0], "Hello again.");
            let back = parse_json(card.to_string().as_bytes()).unwrap();
            let (again, notes) = back.to_draft();
            assert_eq!(again, draft);
            assert!(!notes.iter().any(|n| n.0.contains("no age")));
        }
        assert!(v3["data"]["group_only_greetings"].is_array());
        assert!(v2["data"].get("group_only_greetings").is_none());
        // Without an original, every field a V3 reader expects is there.
        let (fresh, _) = export(&draft, None);
        for k in [
            "mes_example",
            "creator_notes",
            "system_prompt",
            "post_history_instructions",
            "alternate_greetings",
            "tags",
            "creator",
            "character_version",
            "extensions",
        ] {
            assert!(fresh["data"].get(k).is_some(), "{k}");
        }
    }

    #[cfg(feature = "ssr")]
    #[test]
    fn an_exported_png_is_a_picture_carrying_both_cards() {
        let draft = CharacterDraft {
            name: "Vela".into(),
            avatar: "dusk".into(),
            ..Default::default()
        };
        let (v3, v2) = export(&draft, None);
        let png = export_png(&draft, &v3, &v2);
        // V3 is read first; the V2 backfill is there for tools that only know V2.
        let card = read_file(&png).unwrap();
        assert_eq!((card.spec, card.name.as_str()), (CardSpec::V3, "Vela"));
        let mut reader = png::Decoder::new(&png[..]).read_info().unwrap();
        assert_eq!((reader.info().width, reader.info().height), (400, 600));
        let mut picture = vec![0; reader.output_buffer_size()];
        reader.next_frame(&mut picture).unwrap();
        reader.finish().unwrap();
        let keys: Vec<&str> = reader
            .info()
            .uncompressed_latin1_text
            .iter()
            .map(|c| c.keyword.as_str())
            .collect();
        assert_eq!(keys, ["chara", "ccv3"]);
        // Not a flat swatch: the top and the bottom rows differ.
        assert_ne!(picture[..3], picture[picture.len() - 3..]);
    }

    #[test]
    fn the_lorebook_is_listed_in_order() {
        let card = json!({"spec": "chara_card_v2", "data": {"name": "L", "character_book": {"entries": [
            {"keys": ["lamp", "light"], "content": "The lamp is old.", "enabled": true},
            {"keys": [], "content": "Always: the sea is cold.", "enabled": false},
            {"keys": ["broken"]}
        ]}}});
        let book = lorebook(&card);
        assert_eq!(book.len(), 2, "an entry without content is skipped");
        assert_eq!(book[0].keys, vec!["lamp", "light"]);
        assert!(!book[1].enabled);
        assert!(lorebook(&json!({"name": "V1"})).is_empty());
    }

    #[test]
    fn a_lorebook_keeps_its_settings_and_the_card_its_prompts() {
        let card = json!({"spec": "chara_card_v3", "data": {"name": "L",
            "system_prompt": " Be {{char}}. {{original}} ", "post_history_instructions": "  ",
            "character_book": {"scan_depth": 3, "token_budget": 300, "entries": [
                {"keys": ["Lamp", " "], "secondary_keys": ["oil"], "selective": true, "case_sensitive": true,
                 "content": "Old.", "insertion_order": 7, "priority": 2.0, "position": "after_char",
                 "comment": "The lamp"},
                {"keys": [], "constant": true, "content": "Cold sea.", "name": "Sea"}
        ]}}});
        let book = book(&card);
        assert_eq!((book.scan_depth, book.token_budget), (Some(3), Some(300)));
        let lamp = &book.entries[0];
        assert_eq!(lamp.keys, vec!["Lamp"], "blank keys are dropped");
        assert_eq!(lamp.secondary_keys, vec!["oil"]);
        assert!(lamp.selective && lamp.case_sensitive && lamp.after_char && !lamp.constant);
        assert_eq!((lamp.insertion_order, lamp.priority), (7, 2));
        assert_eq!(lamp.name, "The lamp");
        assert!(book.entries[1].constant && !book.entries[1].after_char);
        assert_eq!(book.entries[1].name, "Sea");
        assert_eq!(
            card_prompts(&card),
            (Some("Be {{char}}. {{original}}".to_string()), None),
            "blank instructions are none"
        );
        assert_eq!(card_prompts(&json!({"name": "V1"})), (None, None));
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
