//! A chat in and out as files: SillyTavern's JSONL (a header line, then one message a line with
//! its swipes), which SillyTavern imports and exports, and Markdown to read. What is written is
//! the branch the chat shows, each message with its other versions as swipes; what is read
//! becomes a new chat, each line's swipes the versions of its place, the one shown continued.
//!
//! Only the formats are here; the rows are read and written by [`super::sessions`].

use super::{MessageRole, MessageStatus};
use crate::domain::ReplyText;
use serde_json::{json, Value};

/// The largest chat file read (10 MB: a SillyTavern chat of some 10,000 long messages).
pub const MAX_CHAT_BYTES: usize = 10 * 1024 * 1024;

/// The most messages (lines) a chat file may hold.
pub const MAX_MESSAGES: usize = 20_000;

/// The most versions (swipes) of one message kept; later ones are dropped, and the import says so.
pub const MAX_SWIPES: usize = 50;

/// The most messages and swipes a chat file may hold in all (each is a row written).
pub const MAX_ROWS: usize = 50_000;

/// One version of a place in a chat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    pub content: String,
    pub status: MessageStatus,
    /// Epoch ms.
    pub created_at: i64,
}

/// One place in a chat: who speaks, its versions (in the order written) and which is shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place {
    pub role: MessageRole,
    pub versions: Vec<Version>,
    pub shown: usize,
}

/// A chat as written to a file.
pub struct Transcript {
    pub title: String,
    /// Who it is with (the character's name, or the twin's).
    pub with: String,
    /// When it was made (epoch ms).
    pub created_at: i64,
    pub places: Vec<Place>,
}

/// SillyTavern's date: `May 1, 2024 12:30pm` (UTC).
fn st_date(ms: i64) -> String {
    const MONTHS: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    let day = crate::pages::layout::date(ms);
    let mut parts = day.split('-');
    let (y, m, d) = (
        parts.next().unwrap_or("1970"),
        parts
            .next()
            .and_then(|m| m.parse::<usize>().ok())
            .unwrap_or(1),
        parts
            .next()
            .and_then(|d| d.parse::<u32>().ok())
            .unwrap_or(1),
    );
    let minutes = ms.rem_euclid(86_400_000) / 60_000;
    let (h, min) = (minutes / 60, minutes % 60);
    let (h12, half) = match h {
        0 => (12, "am"),
        1..=11 => (h, "am"),
        12 => (12, "pm"),
        _ => (h - 12, "pm"),
    };
    format!(
        "{} {d}, {y} {h12}:{min:02}{half}",
        MONTHS[m.clamp(1, 12) - 1]
    )
}

/// The chat as SillyTavern JSONL: the header (`user_name`, `character_name`, `create_date`,
/// `chat_metadata`), then one line per message shown, its other versions as `swipes` (with
/// `swipe_id` the one shown). A message that did not finish says so under
/// `extra.personaflux.status`.
pub fn to_jsonl(chat: &Transcript) -> String {
    let mut out = json!({
        "user_name": "You",
        "character_name": chat.with,
        "create_date": st_date(chat.created_at),
        "chat_metadata": { "personaflux": { "title": chat.title } },
    })
    .to_string();
    out.push('\n');
    for place in &chat.places {
        let Some(shown) = place.versions.get(place.shown) else {
            continue;
        };
        let user = place.role == MessageRole::User;
        let mut extra = json!({});
        if shown.status != MessageStatus::Complete {
            extra["personaflux"] = json!({ "status": shown.status.as_str() });
        }
        let mut line = json!({
            "name": if user { "You" } else { chat.with.as_str() },
            "is_user": user,
            "is_system": false,
            "send_date": st_date(shown.created_at),
            "mes": shown.content,
            "extra": extra,
        });
        if place.versions.len() > 1 || !user {
            line["swipe_id"] = json!(place.shown);
            line["swipes"] = json!(place
                .versions
                .iter()
                .map(|v| v.content.as_str())
                .collect::<Vec<_>>());
            line["swipe_info"] = json!(place
                .versions
                .iter()
                .map(|v| json!({ "send_date": st_date(v.created_at), "extra": {} }))
                .collect::<Vec<_>>());
        }
        out.push_str(&line.to_string());
        out.push('\n');
    }
    out
}

/// The chat as Markdown to read: a heading, then each message shown under its speaker's name,
/// its place among its versions, and a note when it did not finish.
pub fn to_markdown(chat: &Transcript) -> String {
    let mut out = format!(
        "# {}\n\nA chat with {}, begun {}.\n",
        chat.title,
        chat.with,
        crate::pages::layout::date(chat.created_at)
    );
    for place in &chat.places {
        let Some(shown) = place.versions.get(place.shown) else {
            continue;
        };
        let who = match place.role {
            MessageRole::User => "You",
            MessageRole::Assistant => chat.with.as_str(),
        };
        out.push_str(&format!("\n### {who}\n\n{}\n", shown.content));
        if place.versions.len() > 1 {
            out.push_str(&format!(
                "\n*(version {} of {})*\n",
                place.shown + 1,
                place.versions.len()
            ));
        }
        let note = match shown.status {
            MessageStatus::Complete => None,
            MessageStatus::Streaming => Some("still being written"),
            MessageStatus::Stopped => Some("stopped"),
            MessageStatus::Failed => Some("cut off"),
            MessageStatus::Interrupted => Some("interrupted"),
        };
        if let Some(note) = note {
            out.push_str(&format!("\n*({note})*\n"));
        }
    }
    out
}

/// A chat file read: its places (each with at least one version), and what was left out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Imported {
    pub places: Vec<Place>,
    /// From the header's `create_date`, if any: for the chat's title.
    pub created: Option<String>,
    /// Sentences on what was not brought in (system lines, empty messages, extra swipes).
    pub notes: Vec<String>,
}

/// Why a chat file was refused: a sentence for the user.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

/// Reads a SillyTavern JSONL chat: the header line (optional), then one message a line. Each
/// text is held to a reply's bounds ([`ReplyText`]: trimmed, at most 20,000 characters, no
/// control characters); a line that breaks them is refused with its number, so nothing is cut
/// silently. `now` stamps the messages (their own dates are kept in no common format).
pub fn from_jsonl(bytes: &[u8], now: i64) -> Result<Imported, Refused> {
    if bytes.len() > MAX_CHAT_BYTES {
        return Err(Refused(format!(
            "The chat file is larger than {} MB.",
            MAX_CHAT_BYTES / (1024 * 1024)
        )));
    }
    let text = std::str::from_utf8(bytes)
        .map_err(|_| Refused("The chat file is not text (UTF-8).".into()))?;
    let mut places = Vec::new();
    let mut created = None;
    let (mut system, mut empty, mut dropped, mut rows) = (0usize, 0usize, 0usize, 0usize);
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let number = i + 1;
        let value: Value = serde_json::from_str(line).map_err(|_| {
            Refused(format!(
                "Line {number} is not JSON: this is not a SillyTavern chat (.jsonl) file."
            ))
        })?;
        let Some(object) = value.as_object() else {
            return Err(Refused(format!("Line {number} is not a message.")));
        };
        let Some(mes) = object.get("mes") else {
            // The header (the first line only).
            if places.is_empty() && created.is_none() && number == 1 {
                created = object
                    .get("create_date")
                    .and_then(Value::as_str)
                    .map(str::to_string);
                continue;
            }
            return Err(Refused(format!("Line {number} has no message (`mes`).")));
        };
        if object.get("is_system").and_then(Value::as_bool) == Some(true) {
            system += 1;
            continue;
        }
        if places.len() == MAX_MESSAGES {
            return Err(Refused(format!(
                "The chat has more than {MAX_MESSAGES} messages."
            )));
        }
        let mes = mes
            .as_str()
            .ok_or_else(|| Refused(format!("Line {number}: the message is not text.")))?;
        let role = if object.get("is_user").and_then(Value::as_bool) == Some(true) {
            MessageRole::User
        } else {
            MessageRole::Assistant
        };
        let mut texts: Vec<&str> = object
            .get("swipes")
            .and_then(Value::as_array)
            .map(|s| s.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let mut shown = object
            .get("swipe_id")
            .and_then(Value::as_u64)
            .map(|s| s as usize)
            .filter(|s| *s < texts.len())
            .unwrap_or(0);
        // `mes` is what SillyTavern shows; it wins over its swipe.
        match texts.get_mut(shown) {
            Some(t) => *t = mes,
            None => {
                texts = vec![mes];
                shown = 0;
            }
        }
        // The swipes kept: the one shown, and the others in order up to the most.
        let mut kept: Vec<(usize, &str)> = texts
            .iter()
            .enumerate()
            .filter(|(_, t)| !t.trim().is_empty())
            .map(|(j, t)| (j, *t))
            .collect();
        if kept.len() > MAX_SWIPES {
            dropped += kept.len() - MAX_SWIPES;
            let mut others = MAX_SWIPES - usize::from(kept.iter().any(|(j, _)| *j == shown));
            kept.retain(|(j, _)| {
                *j == shown
                    || (others > 0 && {
                        others -= 1;
                        true
                    })
            });
        }
        let mut versions = Vec::new();
        let mut shown_at = None;
        for (j, t) in kept {
            let content =
                ReplyText::parse(t).map_err(|e| Refused(format!("Line {number}: {}", e.0)))?;
            if j == shown {
                shown_at = Some(versions.len());
            }
            versions.push(Version {
                content: content.as_str().to_string(),
                status: MessageStatus::Complete,
                created_at: now,
            });
        }
        if versions.is_empty() {
            empty += 1;
            continue;
        }
        rows += versions.len();
        if rows > MAX_ROWS {
            return Err(Refused(format!(
                "The chat has more than {MAX_ROWS} messages and swipes in all."
            )));
        }
        places.push(Place {
            role,
            shown: shown_at.unwrap_or(versions.len() - 1),
            versions,
        });
    }
    if places.is_empty() {
        return Err(Refused("The chat file holds no messages.".into()));
    }
    let mut notes = Vec::new();
    if system > 0 {
        notes.push(format!("{system} system line(s) left out."));
    }
    if empty > 0 {
        notes.push(format!("{empty} empty message(s) left out."));
    }
    if dropped > 0 {
        notes.push(format!(
            "{dropped} swipe(s) beyond {MAX_SWIPES} on a message left out."
        ));
    }
    Ok(Imported {
        places,
        created,
        notes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn place(role: MessageRole, texts: &[&str], shown: usize) -> Place {
        Place {
            role,
            versions: texts
                .iter()
                .map(|t| Version {
                    content: t.to_string(),
                    status: MessageStatus::Complete,
                    created_at: 1_714_566_600_000,
                })
                .collect(),
            shown,
        }
    }

    fn chat() -> Transcript {
        Transcript {
            title: "Harbour talk".into(),
            with: "Mira".into(),
            created_at: 1_714_566_600_000,
            places: vec![
                place(MessageRole::Assistant, &["Hello.", "Well met."], 1),
                place(MessageRole::User, &["Hi, *waves*"], 0),
                place(MessageRole::Assistant, &["A \"quoted\"\nreply."], 0),
            ],
        }
    }

    #[test]
    fn sillytavern_dates_are_its_own_format() {
        // 2024-05-01 12:30 UTC.
        assert_eq!(st_date(1_714_566_600_000), "May 1, 2024 12:30pm");
        assert_eq!(st_date(0), "January 1, 1970 12:00am");
    }

    #[test]
    fn a_chat_goes_out_as_jsonl_and_comes_back_the_same() {
        let out = to_jsonl(&chat());
        let lines: Vec<Value> = out
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 4);
        assert_eq!(lines[0]["character_name"], "Mira");
        assert_eq!(lines[0]["user_name"], "You");
        assert_eq!(lines[1]["mes"], "Well met.");
        assert_eq!(lines[1]["swipe_id"], 1);
        assert_eq!(lines[1]["swipes"], json!(["Hello.", "Well met."]));
        assert_eq!(lines[2]["is_user"], true);
        assert!(
            lines[2].get("swipes").is_none(),
            "a user line without versions"
        );
        let back = from_jsonl(out.as_bytes(), 1_714_566_600_000).unwrap();
        assert_eq!(back.places, chat().places);
        assert_eq!(back.created.as_deref(), Some("May 1, 2024 12:30pm"));
        assert!(back.notes.is_empty());
    }

    #[test]
    fn markdown_names_the_speakers_and_the_versions() {
        let md = to_markdown(&chat());
        assert!(md.starts_with("# Harbour talk\n"));
        assert!(md.contains("### Mira\n\nWell met.\n\n*(version 2 of 2)*"));
        assert!(md.contains("### You\n\nHi, *waves*\n"));
    }

    #[test]
    fn a_sillytavern_file_is_read_with_its_swipes_and_without_system_lines() {
        let file = [
            r#"{"user_name":"Ann","character_name":"Mira","create_date":"2024-5-1 @12h 30m 00s 000ms","chat_metadata":{}}"#,
            r#"{"name":"Mira","is_user":false,"is_system":false,"mes":"Second","swipes":["First","Second",""],"swipe_id":1}"#,
            r#"{"name":"System","is_user":false,"is_system":true,"mes":"hidden note"}"#,
            "",
            r#"{"name":"Ann","is_user":true,"mes":"  Hello\r\nthere  "}"#,
            r#"{"name":"Mira","is_user":false,"mes":"","swipes":[]}"#,
            r#"{"name":"Mira","is_user":false,"mes":"Edited","swipes":["Original"],"swipe_id":0}"#,
        ]
        .join("\n");
        let read = from_jsonl(file.as_bytes(), 7).unwrap();
        assert_eq!(read.created.as_deref(), Some("2024-5-1 @12h 30m 00s 000ms"));
        assert_eq!(read.places.len(), 3);
        let texts = |p: &Place| {
            p.versions
                .iter()
                .map(|v| v.content.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(texts(&read.places[0]), ["First", "Second"]);
        assert_eq!(read.places[0].shown, 1);
        assert_eq!(read.places[1].role, MessageRole::User);
        assert_eq!(texts(&read.places[1]), ["Hello\nthere"]);
        assert_eq!(
            texts(&read.places[2]),
            ["Edited"],
            "`mes` wins over its swipe"
        );
        assert_eq!(read.places[2].versions[0].created_at, 7);
        assert_eq!(
            read.notes,
            ["1 system line(s) left out.", "1 empty message(s) left out."]
        );
    }

    #[test]
    fn what_is_not_a_chat_is_refused_with_a_sentence() {
        let refused = |bytes: &[u8]| from_jsonl(bytes, 0).unwrap_err().0;
        assert!(refused(b"").contains("no messages"));
        assert!(refused(b"{\"user_name\":\"A\"}\n").contains("no messages"));
        assert!(refused(b"not json").contains("Line 1 is not JSON"));
        assert!(refused(b"{\"user_name\":\"A\"}\n[1,2]").contains("Line 2 is not a message"));
        assert!(refused(b"{\"mes\":\"a\"}\n{\"name\":\"x\"}").contains("Line 2 has no message"));
        assert!(refused(&[0xff, 0xfe]).contains("UTF-8"));
        let long = format!("{{\"mes\":\"{}\"}}", "x".repeat(20_001));
        assert!(refused(long.as_bytes()).starts_with("Line 1: "));
        let control = "{\"mes\":\"bell \\u0007\"}";
        assert!(refused(control.as_bytes()).starts_with("Line 1: "));
        let many = "{\"mes\":\"a\"}\n".repeat(MAX_MESSAGES + 1);
        assert!(refused(many.as_bytes()).contains("more than 20000 messages"));
        assert!(refused(&vec![b' '; MAX_CHAT_BYTES + 1]).contains("larger than 10 MB"));
        let swipes: Vec<String> = (0..MAX_SWIPES).map(|i| format!("s{i}")).collect();
        let line = json!({ "mes": "s0", "swipes": swipes }).to_string() + "\n";
        let wide = line.repeat(MAX_ROWS / MAX_SWIPES + 1);
        assert!(refused(wide.as_bytes()).contains("more than 50000 messages and swipes"));
    }

    #[test]
    fn swipes_beyond_the_most_are_left_out_and_said_but_never_the_one_shown() {
        let swipes: Vec<String> = (0..MAX_SWIPES + 5).map(|i| format!("s{i}")).collect();
        let line = json!({ "mes": "s0", "swipes": swipes, "swipe_id": 0 }).to_string();
        let read = from_jsonl(line.as_bytes(), 0).unwrap();
        assert_eq!(read.places[0].versions.len(), MAX_SWIPES);
        assert_eq!(read.places[0].shown, 0);
        assert_eq!(read.notes, ["5 swipe(s) beyond 50 on a message left out."]);
        // The one shown is past the most: it is kept, after the first 49.
        let line = json!({ "mes": "s53", "swipes": swipes, "swipe_id": 53 }).to_string();
        let read = from_jsonl(line.as_bytes(), 0).unwrap();
        let place = &read.places[0];
        assert_eq!(place.versions.len(), MAX_SWIPES);
        assert_eq!(place.versions[place.shown].content, "s53");
        assert_eq!(place.versions[MAX_SWIPES - 2].content, "s48");
    }

    proptest::proptest! {
        /// Any bytes, and lines that look like SillyTavern's with any text in them: read within
        /// the bounds, or refused with a short sentence; never a panic.
        #[test]
        fn any_file_is_read_within_bounds_or_refused_with_a_sentence(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..2000),
            lines in proptest::collection::vec(
                ("\\PC{0,60}", proptest::collection::vec("\\PC{0,30}", 0..6), 0u64..8, proptest::prelude::any::<bool>()),
                0..30,
            ),
        ) {
            let jsonl: String = lines
                .iter()
                .map(|(mes, swipes, id, user)| {
                    json!({ "mes": mes, "swipes": swipes, "swipe_id": id, "is_user": user }).to_string() + "\n"
                })
                .collect();
            for input in [bytes, jsonl.into_bytes()] {
                match from_jsonl(&input, 0) {
                    Ok(read) => {
                        proptest::prop_assert!(!read.places.is_empty());
                        for p in &read.places {
                            proptest::prop_assert!(p.shown < p.versions.len());
                            proptest::prop_assert!(p.versions.len() <= MAX_SWIPES);
                            for v in &p.versions {
                                proptest::prop_assert!(ReplyText::parse(&v.content).is_ok());
                            }
                        }
                    }
                    Err(e) => proptest::prop_assert!(e.0.chars().count() <= 200, "{}", e.0),
                }
            }
        }
    }
}
