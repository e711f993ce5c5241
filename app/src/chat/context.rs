//! The context builder: what the model is sent for a chat reply, within a token budget.
//!
//! Every reply in a chat (sent, regenerated, continued; with a character or the twin) is asked
//! for with a request built here, from, in this order of precedence:
//! 1. the system prompt: the character's (or the card's own `system_prompt`, in which
//!    `{{original}}` stands for ours), with `{{char}}` and `{{user}}` filled in;
//! 2. the card's `post_history_instructions`, sent after the last message;
//! 3. the chat's running summary of what no longer fits;
//! 4. the newest message (always sent: it is what the reply answers);
//! 5. lorebook entries whose keys come up in the latest messages, within the lorebook's own
//!    budget (the card's `token_budget`, at most a quarter of the prompt's), higher priority first
//!    when they do not all fit, and sent in their insertion order;
//! 6. as many earlier messages as fit, newest first.
//!
//! Tokens are counted by [`estimate`], which errs on the safe side of the tokenizers in use
//! (checked against OpenAI's `cl100k_base` and `o200k_base` in the tests): Gemini's tokenizer is
//! not available offline, nor is that of whatever model an OpenAI-compatible server runs. What
//! was sent is kept as a [`Seen`], for the "what the model saw" view.

use super::{Seen, SeenLore};
use crate::domain::card::{LoreEntry, Lorebook};
use crate::infra::llm::Turn;

/// Tokens counted for each message's role and framing, on top of its text.
pub const TURN_OVERHEAD: usize = 4;

/// How many of the latest messages are searched for lorebook keys when the card does not say.
pub const DEFAULT_SCAN_DEPTH: usize = 4;

/// The most the lorebook may take of the prompt's budget: one part in this many.
pub const LORE_SHARE: usize = 4;

/// The most the running summary may take of the prompt's budget: one part in this many.
pub const SUMMARY_SHARE: usize = 4;

/// What the summary is introduced with.
const SUMMARY_HEAD: &str = "Earlier in this conversation (a summary):";

/// `text`, or as much of its end as fits in `max` tokens (from a line or word start when it can).
fn fit_end(text: &str, max: usize) -> String {
    if estimate(text) <= max {
        return text.to_string();
    }
    let starts: Vec<usize> = text.char_indices().map(|(i, _)| i).collect();
    // The most characters kept from the end whose estimate fits.
    let (mut lo, mut hi) = (0, starts.len());
    while lo < hi {
        let mid = (lo + hi).div_ceil(2);
        if estimate(&text[starts[starts.len() - mid]..]) <= max {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    let kept = if lo == 0 {
        ""
    } else {
        &text[starts[starts.len() - lo]..]
    };
    // Not from the middle of a word.
    match kept.find([' ', '\n']) {
        Some(at) if at + 1 < kept.len() => kept[at + 1..].to_string(),
        _ => kept.to_string(),
    }
}

/// Between two parts of the system prompt.
const SEPARATOR: &str = "\n\n";

/// An estimate of the tokens `text` takes, meant never to be below what a byte-level BPE
/// tokenizer counts: any character outside ASCII is a token per byte of its UTF-8 (no such
/// tokenizer can do worse: each token is at least a byte); a run of ASCII letters a token per
/// three letters when it reads like a word (a vowel in every four letters, one case, or capital
/// then lower case; a token per two past twelve letters), otherwise a token per letter (keysmash,
/// code, base64); a run of
/// digits a token per two; each other ASCII mark or line break a token; a space a token unless
/// it joins the letters after it (a run of two or more, one token).
pub fn estimate(text: &str) -> usize {
    #[derive(PartialEq)]
    enum Run {
        None,
        Letters,
        Digits(usize),
        Spaces(usize),
    }
    let bytes = text.as_bytes();
    let mut tokens = 0;
    let mut run = Run::None;
    // Where the current run of letters began.
    let mut from = 0;
    let letters = |run: &[u8]| -> usize {
        let n = run.len();
        let vowels = run
            .iter()
            .filter(|b| {
                matches!(
                    b.to_ascii_lowercase(),
                    b'a' | b'e' | b'i' | b'o' | b'u' | b'y'
                )
            })
            .count();
        let tail = &run[1.min(n)..];
        let one_case =
            tail.iter().all(u8::is_ascii_lowercase) || run.iter().all(u8::is_ascii_uppercase);
        match (vowels * 4 >= n && one_case, n <= 12) {
            (true, true) => n.div_ceil(3),
            (true, false) => n.div_ceil(2),
            (false, _) => n,
        }
    };
    for (i, c) in text.char_indices() {
        let goes_on = match (&mut run, c) {
            (Run::Letters, 'a'..='z' | 'A'..='Z') => true,
            (Run::Digits(n), '0'..='9') | (Run::Spaces(n), ' ') => {
                *n += 1;
                true
            }
            _ => false,
        };
        if goes_on {
            continue;
        }
        tokens += match run {
            Run::Letters => letters(&bytes[from..i]),
            Run::Digits(n) => n.div_ceil(2),
            Run::Spaces(1) if c.is_ascii_alphabetic() => 0,
            Run::Spaces(_) => 1,
            Run::None => 0,
        };
        run = match c {
            'a'..='z' | 'A'..='Z' => {
                from = i;
                Run::Letters
            }
            '0'..='9' => Run::Digits(1),
            ' ' => Run::Spaces(1),
            c => {
                tokens += c.len_utf8();
                Run::None
            }
        };
    }
    tokens += match run {
        Run::Letters => letters(&bytes[from..]),
        Run::Digits(n) => n.div_ceil(2),
        Run::Spaces(_) => 1,
        Run::None => 0,
    };
    tokens
}

/// The tokens a message takes in a request.
pub fn turn_tokens(text: &str) -> usize {
    estimate(text) + TURN_OVERHEAD
}

/// `text` with SillyTavern's macros filled in, in any case: `{{char}}` (and `<BOT>`) is the
/// character's name, `{{user}}` (and `<USER>`) the user's, `{{original}}` the prompt the card's
/// own replaces. Anything else is left as written.
pub fn fill_macros(text: &str, char_name: &str, user_name: &str, original: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(['{', '<']) {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        let found = [
            ("{{char}}", char_name),
            ("{{user}}", user_name),
            ("{{original}}", original),
            ("<bot>", char_name),
            ("<user>", user_name),
        ]
        .into_iter()
        .find(|(tag, _)| {
            rest.get(..tag.len())
                .is_some_and(|head| head.eq_ignore_ascii_case(tag))
        });
        match found {
            Some((tag, value)) => {
                out.push_str(value);
                rest = &rest[tag.len()..];
            }
            None => {
                out.push(rest.as_bytes()[0] as char);
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Whether `key` comes up in `text` (and `lower`, the same text in lower case): anywhere, in any
/// case unless `case_sensitive`; a key that begins or ends with a letter or digit only as a whole
/// word there (so "lamp" is not found in "lamplight", while a key in a script without spaces is
/// found inside a word).
fn comes_up(text: &str, lower: &str, key: &str, case_sensitive: bool) -> bool {
    let (hay, needle) = if case_sensitive {
        (text, std::borrow::Cow::Borrowed(key))
    } else {
        (lower, std::borrow::Cow::Owned(key.to_lowercase()))
    };
    if needle.is_empty() {
        return false;
    }
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let bytes = hay.as_bytes();
    let check_start = needle.as_bytes().first().copied().is_some_and(word);
    let check_end = needle.as_bytes().last().copied().is_some_and(word);
    let mut from = 0;
    while let Some(found) = hay[from..].find(needle.as_ref()) {
        let start = from + found;
        let end = start + needle.len();
        let starts = !check_start || start == 0 || !word(bytes[start - 1]);
        let ends = !check_end || end == bytes.len() || !word(bytes[end]);
        if starts && ends {
            return true;
        }
        // On to the next character after this match's start.
        from = start + hay[start..].chars().next().map_or(1, char::len_utf8);
    }
    false
}

/// What made an entry come up.
fn activation(entry: &LoreEntry, text: &str, lower: &str) -> Option<String> {
    if !entry.enabled {
        return None;
    }
    if entry.constant {
        return Some(String::new());
    }
    let found = |keys: &[String]| {
        keys.iter()
            .find(|k| comes_up(text, lower, k, entry.case_sensitive))
            .cloned()
    };
    let key = found(&entry.keys)?;
    if entry.selective && !entry.secondary_keys.is_empty() && found(&entry.secondary_keys).is_none()
    {
        return None;
    }
    Some(key)
}

/// The entries of `book` that the latest of `turns` bring up, in the book's order, with the key
/// that did (empty for a constant entry).
pub fn activated<'a>(book: &'a Lorebook, turns: &[Turn]) -> Vec<(&'a LoreEntry, String)> {
    if book.entries.is_empty() {
        return Vec::new();
    }
    let depth = book.scan_depth.unwrap_or(DEFAULT_SCAN_DEPTH);
    let from = turns.len().saturating_sub(depth);
    // One text, messages apart on their own lines, so a key never spans two of them.
    let text = turns[from..]
        .iter()
        .map(|t| t.text.as_str())
        .collect::<Vec<_>>()
        .join("\n");
    let lower = text.to_lowercase();
    book.entries
        .iter()
        .filter_map(|e| activation(e, &text, &lower).map(|key| (e, key)))
        .collect()
}

/// Everything a chat reply's request is built from.
pub struct Sources<'a> {
    /// PersonaFlux's system prompt for the character (or the twin).
    pub system: &'a str,
    /// The card's own `system_prompt`, which replaces ours (`{{original}}` in it being ours).
    pub card_system: Option<&'a str>,
    /// The card's `post_history_instructions`, sent after the last message.
    pub post_history: Option<&'a str>,
    pub char_name: &'a str,
    pub user_name: &'a str,
    pub book: &'a Lorebook,
    /// The running summary of the chat so far, if any.
    pub summary: Option<&'a str>,
    /// The latest messages of the branch answered, in the order written, the one answered last.
    pub turns: &'a [Turn],
    /// Whether messages came before `turns` (not given, so not sent).
    pub older: bool,
}

/// A request built: the system text and messages to send, and what was sent.
#[derive(Debug, Clone)]
pub struct Built {
    /// The whole system prompt: lorebook entries around the character's, and the summary.
    pub system: String,
    /// The messages sent, in the order written (the latest of the ones given).
    pub turns: Vec<Turn>,
    /// The card's instructions, sent after the last message.
    pub after: Option<String>,
    pub seen: Seen,
}

/// Builds the request for a reply from `sources` within `budget` tokens. The system prompt, the
/// card's instructions, the summary and the newest message are always sent; the rest within what
/// they leave, so the budget holds whenever those fit in it.
pub fn build(sources: &Sources<'_>, budget: usize) -> Built {
    let Sources {
        system,
        card_system,
        post_history,
        char_name,
        user_name,
        book,
        summary,
        turns,
        older,
    } = *sources;
    let own = match card_system {
        Some(card) => fill_macros(card, char_name, user_name, system),
        None => system.to_string(),
    };
    let after = post_history
        .map(|p| fill_macros(p, char_name, user_name, ""))
        .filter(|p| !p.trim().is_empty());
    // The summary, within its share (its end kept: the latest of what it tells).
    let summary_sent = summary.map(str::trim).filter(|s| !s.is_empty()).map(|s| {
        fit_end(
            s,
            (budget / SUMMARY_SHARE).saturating_sub(estimate(SUMMARY_HEAD) + 3),
        )
    });
    let summary = summary_sent
        .as_deref()
        .map(|s| format!("{SUMMARY_HEAD}\n{s}"));

    // The fixed parts, then the newest message.
    let after_tokens = after.as_deref().map_or(0, |a| estimate(a) + 2);
    let summary_tokens = summary.as_deref().map_or(0, |s| estimate(s) + 2);
    let system_tokens = estimate(&own);
    let newest = turns.last().map_or(0, |t| turn_tokens(&t.text));
    let fixed = TURN_OVERHEAD + system_tokens + summary_tokens + after_tokens + newest;
    let mut left = budget.saturating_sub(fixed);

    // The lorebook, within its share: higher priority first, then in order.
    let hits = activated(book, turns);
    // Entries' macros filled in before they are weighed.
    let contents: Vec<String> = hits
        .iter()
        .map(|(e, _)| fill_macros(&e.content, char_name, user_name, ""))
        .collect();
    let share = (budget / LORE_SHARE).min(book.token_budget.unwrap_or(usize::MAX));
    let mut by_priority: Vec<usize> = (0..hits.len()).collect();
    by_priority.sort_by_key(|&i| (std::cmp::Reverse(hits[i].0.priority), i));
    let mut lore_left = share.min(left);
    let mut chosen = Vec::new();
    for i in by_priority {
        let cost = estimate(&contents[i]) + 2;
        if cost <= lore_left {
            lore_left -= cost;
            chosen.push(i);
        }
    }
    let lore_left_out = hits.len() - chosen.len();
    chosen.sort_by_key(|&i| (hits[i].0.insertion_order, i));
    // (entry, key that brought it up, its text)
    let sent_lore: Vec<(&LoreEntry, &String, &str)> = chosen
        .iter()
        .map(|&i| (hits[i].0, &hits[i].1, contents[i].as_str()))
        .collect();

    // The system prompt: entries before the character's, the character's, entries after, summary.
    let mut parts: Vec<&str> = Vec::new();
    parts.extend(
        sent_lore
            .iter()
            .filter(|(e, _, _)| !e.after_char)
            .map(|(_, _, text)| *text),
    );
    parts.push(&own);
    parts.extend(
        sent_lore
            .iter()
            .filter(|(e, _, _)| e.after_char)
            .map(|(_, _, text)| *text),
    );
    if let Some(summary) = &summary {
        parts.push(summary);
    }
    let system_text = parts.join(SEPARATOR);
    let lore_tokens: usize = sent_lore
        .iter()
        .map(|(_, _, text)| estimate(text) + 2)
        .sum();
    left = left.saturating_sub(lore_tokens);

    // The messages: the newest always, then earlier ones while they fit.
    let mut first = turns.len().saturating_sub(1);
    while first > 0 {
        let cost = turn_tokens(&turns[first - 1].text);
        if cost > left {
            break;
        }
        left -= cost;
        first -= 1;
    }
    let sent: Vec<Turn> = turns[first..].to_vec();
    let turn_total: usize = sent.iter().map(|t| turn_tokens(&t.text)).sum();
    let system_total = estimate(&system_text) + TURN_OVERHEAD;
    let seen = Seen {
        budget,
        system: own,
        card_system: card_system.is_some(),
        system_tokens,
        lore: sent_lore
            .iter()
            .map(|(e, key, text)| SeenLore {
                name: if e.name.is_empty() {
                    e.keys.first().cloned().unwrap_or_default()
                } else {
                    e.name.clone()
                },
                key: (*key).clone(),
                content: text.to_string(),
                tokens: estimate(text),
            })
            .collect(),
        lore_left_out,
        summary: summary_sent.clone(),
        summary_tokens,
        after: after.clone(),
        after_tokens,
        turns: sent.len(),
        turn_tokens: turn_total,
        turns_left_out: first,
        older_left_out: older,
        continued: None,
        total: system_total + turn_total + after_tokens,
    };
    Built {
        system: system_text,
        turns: sent,
        after,
        seen,
    }
}

#[cfg(test)]
mod tests;
