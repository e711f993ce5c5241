//! JSON Schemas for what a model writes, built from the same bounds the validators check, and
//! the recovery of answers that overstep them.
//!
//! A structured request sends a schema and the answer is then parsed into domain types. If the
//! schema is weaker than the parser (a free string where the parser wants at most 30 characters),
//! a model that fills the schema literally writes answers the parser refuses. So the schema is
//! never written by hand: [`text`] takes its length limits from the bounded text type itself
//! ([`Bounded`], implemented by `bounded_text!`), [`exactly`] takes its item count from the
//! constant the parser checks, and every node carries a description, with the limits spelled
//! out in words as well (a model reads words more reliably than keywords).
//!
//! [`recover`] mends, without another model call, what can be mended in an answer checked
//! against such a schema — an over-long text is cut at its last sentence (or word) within the
//! limit, an enum value in the wrong case or with stray spaces is normalised, surplus items are
//! dropped — and says what it did. Only what cannot be mended goes to the one repair call.
//!
//! The builder is not character-specific: every structured output (twins' Shades, match results,
//! play turns) is described the same way.

use serde_json::{json, Map, Value};

/// A text type with bounds, as the validator counts them: characters (Unicode scalar values,
/// which is also what JSON Schema's `minLength`/`maxLength` count), after trimming.
pub trait Bounded {
    const MIN: usize;
    const MAX: usize;
}

/// A string of type `T`: its bounds as keywords and in words.
pub fn text<T: Bounded>(description: &str) -> Value {
    json!({
        "type": "string",
        "minLength": T::MIN,
        "maxLength": T::MAX,
        "description": format!("{description} At most {} characters.", T::MAX),
    })
}

/// A string of type `T` that must be one of `values` (a closed set: written exactly so, in lower
/// case).
pub fn one_of<T: Bounded>(values: &[&str], description: &str) -> Value {
    debug_assert!(values
        .iter()
        .all(|v| (T::MIN..=T::MAX).contains(&v.chars().count())));
    json!({
        "type": "string",
        "enum": values,
        "description": format!("{description} One of: {}.", values.join(", ")),
    })
}

/// An array of exactly `n` items.
pub fn exactly(n: usize, items: Value, description: &str) -> Value {
    json!({
        "type": "array",
        "minItems": n,
        "maxItems": n,
        "items": items,
        "description": format!("{description} Exactly {n} items."),
    })
}

/// An array of `min` to `max` items.
pub fn between(min: usize, max: usize, items: Value, description: &str) -> Value {
    json!({
        "type": "array",
        "minItems": min,
        "maxItems": max,
        "items": items,
        "description": format!("{description} From {min} to {max} items."),
    })
}

/// A number from `min` to `max`, inclusive.
pub fn number(min: f64, max: f64, description: &str) -> Value {
    json!({
        "type": "number",
        "minimum": min,
        "maximum": max,
        "description": format!("{description} From {min} to {max}."),
    })
}

/// A whole number from `min` to `max`, inclusive.
pub fn integer(min: i64, max: i64, description: &str) -> Value {
    json!({
        "type": "integer",
        "minimum": min,
        "maximum": max,
        "description": format!("{description} A whole number from {min} to {max}."),
    })
}

/// An object with these properties, all required, and no others.
pub fn object(properties: &[(&str, Value)], description: &str) -> Value {
    let mut props = Map::new();
    for (name, schema) in properties {
        props.insert((*name).to_string(), schema.clone());
    }
    json!({
        "type": "object",
        "description": description,
        "properties": props,
        // Gemini writes required properties in the order of this list.
        "required": properties.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
        "additionalProperties": false,
    })
}

/// Mends `value` in place where it oversteps `schema` in ways that need no model to fix, and
/// returns a line per mend (for the log). What it cannot mend (a missing field, a wrong type, a
/// text too short, an enum value that is not one in any case) is left for the parser to refuse.
pub fn recover(value: &mut Value, schema: &Value) -> Vec<String> {
    let mut mended = Vec::new();
    walk(value, schema, "", &mut mended);
    mended
}

fn walk(value: &mut Value, schema: &Value, path: &str, mended: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            let Some(props) = schema["properties"].as_object() else {
                return;
            };
            for (name, sub) in props {
                if let Some(v) = map.get_mut(name) {
                    walk(v, sub, &format!("{path}.{name}"), mended);
                }
            }
            // Fields the schema does not have are dropped, not refused.
            if schema["additionalProperties"] == Value::Bool(false) {
                let extra: Vec<String> = map
                    .keys()
                    .filter(|k| !props.contains_key(*k))
                    .cloned()
                    .collect();
                for k in extra {
                    map.remove(&k);
                    mended.push(format!("{path}.{k}: dropped (not in the schema)"));
                }
            }
        }
        Value::Array(items) => {
            if let Some(max) = schema["maxItems"].as_u64() {
                if items.len() > max as usize {
                    mended.push(format!(
                        "{path}: kept the first {max} of {} items",
                        items.len()
                    ));
                    items.truncate(max as usize);
                }
            }
            for (i, item) in items.iter_mut().enumerate() {
                walk(item, &schema["items"], &format!("{path}[{i}]"), mended);
            }
        }
        Value::Number(n) => {
            let (Some(x), min, max) = (
                n.as_f64(),
                schema["minimum"].as_f64(),
                schema["maximum"].as_f64(),
            ) else {
                return;
            };
            let clamped = x.clamp(min.unwrap_or(f64::MIN), max.unwrap_or(f64::MAX));
            if schema["type"] == "integer" && (n.is_f64() || clamped != x) {
                // A whole number written with a fraction (87.0, 87.6): rounded.
                let whole = clamped.round() as i64;
                mended.push(format!("{path}: made the whole number {whole}"));
                *n = serde_json::Number::from(whole);
            } else if clamped != x {
                if let Some(c) = serde_json::Number::from_f64(clamped) {
                    mended.push(format!("{path}: clamped to {clamped}"));
                    *n = c;
                }
            }
        }
        Value::String(s) => {
            if let Some(allowed) = schema["enum"].as_array() {
                let wanted = s.trim().to_lowercase();
                if let Some(exact) = allowed
                    .iter()
                    .filter_map(Value::as_str)
                    .find(|a| a.to_lowercase() == wanted)
                {
                    if exact != s {
                        mended.push(format!("{path}: normalised to an allowed value"));
                        *s = exact.to_string();
                    }
                }
                return;
            }
            if let Some(max) = schema["maxLength"].as_u64() {
                let trimmed = s.trim();
                let len = trimmed.chars().count();
                if len > max as usize {
                    let cut = cut_to(trimmed, max as usize);
                    mended.push(format!(
                        "{path}: cut from {len} to {} characters",
                        cut.chars().count()
                    ));
                    *s = cut;
                }
            }
        }
        _ => {}
    }
}

/// `text` cut to at most `max` characters: at the end of its last whole sentence that fits, or
/// failing that (no sentence end in the second half) its last whole word, or failing that
/// exactly at `max`.
pub fn cut_to(text: &str, max: usize) -> String {
    let head: String = text.chars().take(max).collect();
    if text.chars().count() <= max {
        return head;
    }
    let half = head.len() / 2;
    let sentence_end =
        head.char_indices()
            .filter(|(i, c)| {
                matches!(c, '.' | '!' | '?' | '…' | '。' | '！' | '？')
                    && *i >= half
                    && head[i + c.len_utf8()..].chars().next().is_none_or(|n| {
                        n.is_whitespace() || matches!(n, '"' | '\'' | '”' | '’' | ')')
                    })
            })
            .map(|(i, c)| {
                // Keep a closing quote or bracket that belongs to the sentence.
                let mut end = i + c.len_utf8();
                if let Some(q) = head[end..].chars().next() {
                    if matches!(q, '"' | '\'' | '”' | '’' | ')') {
                        end += q.len_utf8();
                    }
                }
                end
            })
            .next_back();
    if let Some(end) = sentence_end {
        return head[..end].trim_end().to_string();
    }
    if text.chars().nth(max).is_some_and(char::is_whitespace) {
        return head.trim_end().to_string();
    }
    if let Some(space) = head.rfind(char::is_whitespace).filter(|&i| i >= half) {
        return head[..space].trim_end().to_string();
    }
    head.trim_end().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    struct Short;
    impl Bounded for Short {
        const MIN: usize = 1;
        const MAX: usize = 20;
    }

    #[test]
    fn an_over_long_text_is_cut_at_its_last_sentence_then_word() {
        assert_eq!(
            cut_to("The sea was calm. The wind rose fast.", 25),
            "The sea was calm."
        );
        assert_eq!(
            cut_to("She said \"Go now.\" Then she left the room.", 24),
            "She said \"Go now.\""
        );
        assert_eq!(
            cut_to("alpha beta gamma delta epsilon", 20),
            "alpha beta gamma"
        );
        assert_eq!(
            cut_to("abcdefghijklmnopqrstuvwxyz", 20),
            "abcdefghijklmnopqrst"
        );
        assert_eq!(cut_to("short", 20), "short");
        // A sentence end too early would throw away most of the text: cut at a word instead.
        assert_eq!(
            cut_to("Hi. this goes on and on and on", 20),
            "Hi. this goes on and"
        );
    }

    #[test]
    fn recovery_mends_lengths_case_and_surplus_and_leaves_the_rest() {
        let schema = object(
            &[
                ("name", text::<Short>("A name.")),
                ("kind", one_of::<Short>(&["happy", "tragic"], "A kind.")),
                ("items", exactly(2, text::<Short>("An item."), "Items.")),
            ],
            "A thing.",
        );
        let mut v = json!({
            "name": "A very long name indeed. It goes on.",
            "kind": " Tragic ",
            "items": ["a", "b", "c"],
            "extra": 1
        });
        let mended = recover(&mut v, &schema);
        assert_eq!(
            v,
            json!({"name": "A very long name", "kind": "tragic", "items": ["a", "b"]})
        );
        assert_eq!(mended.len(), 4, "{mended:?}");
        // Not mendable: left as it is for the parser to refuse.
        let mut v = json!({"name": "", "kind": "comic", "items": ["a"]});
        assert!(recover(&mut v, &schema).is_empty());
        assert_eq!(v["kind"], "comic");
    }

    #[test]
    fn the_schema_states_its_bounds_in_keywords_and_words() {
        let s = text::<Short>("A name.");
        assert_eq!(
            (s["minLength"].as_u64(), s["maxLength"].as_u64()),
            (Some(1), Some(20))
        );
        assert!(s["description"]
            .as_str()
            .unwrap()
            .contains("At most 20 characters"));
        let a = exactly(3, s, "Names.");
        assert_eq!(
            (a["minItems"].as_u64(), a["maxItems"].as_u64()),
            (Some(3), Some(3))
        );
    }

    proptest! {
        #[test]
        fn a_cut_text_fits_and_is_a_prefix(text in "[a-zA-Z .!?\"é日本]{0,80}", max in 1usize..40) {
            let cut = cut_to(&text, max);
            prop_assert!(cut.chars().count() <= max);
            prop_assert!(text.starts_with(&cut));
        }
    }
}
