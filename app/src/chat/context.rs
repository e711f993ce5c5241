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

/// Between two parts of the system prompt.
const SEPARATOR: &str = "\n\n";

/// An estimate of the tokens `text` takes, meant never to be below what a BPE tokenizer counts
/// for ordinary text in any language: a run of ASCII letters is a token per three letters, a run
/// of digits a token per two, each other ASCII mark or line break a token, a space a token unless
/// it joins the letters after it (a run of two or more, one token), and a run of other
/// characters a token plus one per byte of UTF-8 after each one's first (two for most CJK
/// characters, three for an emoji).
pub fn estimate(text: &str) -> usize {
    #[derive(PartialEq)]
    enum Run {
        None,
        Letters(usize),
        Digits(usize),
        Spaces(usize),
        Wide,
    }
    let mut tokens = 0;
    let mut run = Run::None;
    for c in text.chars() {
        let word = c.is_ascii_alphabetic();
        // The run so far ends unless `c` goes on with it.
        let goes_on = match (&mut run, c) {
            (Run::Letters(n), 'a'..='z' | 'A'..='Z')
            | (Run::Digits(n), '0'..='9')
            | (Run::Spaces(n), ' ') => {
                *n += 1;
                true
            }
            (Run::Wide, c) if !c.is_ascii() => {
                tokens += c.len_utf8() - 1;
                true
            }
            _ => false,
        };
        if goes_on {
            continue;
        }
        tokens += match run {
            Run::Letters(n) => n.div_ceil(3),
            Run::Digits(n) => n.div_ceil(2),
            Run::Spaces(1) if word => 0,
            Run::Spaces(_) => 1,
            Run::None | Run::Wide => 0,
        };
        run = match c {
            'a'..='z' | 'A'..='Z' => Run::Letters(1),
            '0'..='9' => Run::Digits(1),
            ' ' => Run::Spaces(1),
            c if c.is_ascii() => {
                tokens += 1;
                Run::None
            }
            c => {
                tokens += c.len_utf8();
                Run::Wide
            }
        };
    }
    tokens += match run {
        Run::Letters(n) => n.div_ceil(3),
        Run::Digits(n) => n.div_ceil(2),
        Run::Spaces(_) => 1,
        Run::None | Run::Wide => 0,
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
    let summary = summary
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| format!("Earlier in this conversation (a summary):\n{s}"));

    // The fixed parts, then the newest message.
    let after_tokens = after.as_deref().map_or(0, |a| estimate(a) + 2);
    let summary_tokens = summary.as_deref().map_or(0, |s| estimate(s) + 2);
    let system_tokens = estimate(&own);
    let newest = turns.last().map_or(0, |t| turn_tokens(&t.text));
    let fixed = TURN_OVERHEAD + system_tokens + summary_tokens + after_tokens + newest;
    let mut left = budget.saturating_sub(fixed);

    // The lorebook, within its share: higher priority first, then in order.
    let hits = activated(book, turns);
    let share = (budget / LORE_SHARE).min(book.token_budget.unwrap_or(usize::MAX));
    let mut by_priority: Vec<usize> = (0..hits.len()).collect();
    by_priority.sort_by_key(|&i| (std::cmp::Reverse(hits[i].0.priority), i));
    let mut lore_left = share.min(left);
    let mut chosen = Vec::new();
    for i in by_priority {
        let cost = estimate(&hits[i].0.content) + 2;
        if cost <= lore_left {
            lore_left -= cost;
            chosen.push(i);
        }
    }
    let lore_left_out = hits.len() - chosen.len();
    chosen.sort_by_key(|&i| (hits[i].0.insertion_order, i));
    let sent_lore: Vec<(&LoreEntry, &String)> =
        chosen.iter().map(|&i| (hits[i].0, &hits[i].1)).collect();

    // The system prompt: entries before the character's, the character's, entries after, summary.
    let mut parts: Vec<&str> = Vec::new();
    parts.extend(
        sent_lore
            .iter()
            .filter(|(e, _)| !e.after_char)
            .map(|(e, _)| e.content.as_str()),
    );
    parts.push(&own);
    parts.extend(
        sent_lore
            .iter()
            .filter(|(e, _)| e.after_char)
            .map(|(e, _)| e.content.as_str()),
    );
    if let Some(summary) = &summary {
        parts.push(summary);
    }
    let system_text = parts.join(SEPARATOR);
    let lore_tokens: usize = sent_lore
        .iter()
        .map(|(e, _)| estimate(&e.content) + 2)
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
            .map(|(e, key)| SeenLore {
                name: if e.name.is_empty() {
                    e.keys.first().cloned().unwrap_or_default()
                } else {
                    e.name.clone()
                },
                key: (*key).clone(),
                content: e.content.clone(),
                tokens: estimate(&e.content),
            })
            .collect(),
        lore_left_out,
        summary: sources
            .summary
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string),
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
