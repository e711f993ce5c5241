//! Property tests of every domain parser against hostile input: arbitrary and huge strings,
//! arbitrary JSON (the shape a server function's decoder hands over), deep nesting and invalid
//! UTF-8. Nothing panics; what parses is within its bounds; a refusal's message is a short
//! sentence that never echoes the input back at length.

use super::*;
use proptest::prelude::*;

/// The longest message a refusal may have (the longest today names a 30-character ending kind).
const MAX_MESSAGE: usize = 200;

fn short(e: &Invalid) -> bool {
    e.0.chars().count() <= MAX_MESSAGE
}

/// Runs every text parser on `s`: a value that parses is within its bounds, a refusal is short.
fn every_text_parser(s: &str) -> Result<(), TestCaseError> {
    macro_rules! check {
        ($($ty:ty),*) => {$(
            match <$ty>::parse(s) {
                Ok(v) => {
                    let n = v.as_str().chars().count();
                    prop_assert!((<$ty>::MIN..=<$ty>::MAX).contains(&n), "{} has {n}", stringify!($ty));
                    prop_assert_eq!(v.as_str().trim(), v.as_str());
                }
                Err(e) => prop_assert!(short(&e), "{}", e.0),
            }
        )*};
    }
    check!(
        CharacterName,
        TraitName,
        Language,
        VoiceName,
        LongText,
        OpeningLine,
        StartOption,
        MessageText,
        EndingKind,
        EndingText,
        ReplyText,
        ChatTitle
    );
    for r in [
        Age::parse(s).map(|_| ()),
        Gender::parse(s).map(|_| ()),
        Avatar::parse(s).map(|_| ()),
    ] {
        if let Err(e) = r {
            prop_assert!(short(&e), "{}", e.0);
        }
    }
    Ok(())
}

/// Arbitrary JSON, nested a few levels, with strings up to a few thousand characters.
fn json() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::Value;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        "\\PC{0,40}".prop_map(Value::String),
        "(brave|kind|[a-z]{1,8}|5|10|27|female|tide|English| ){0,1}".prop_map(Value::String),
        (0usize..7000).prop_map(|n| Value::String("é".repeat(n))),
    ];
    leaf.prop_recursive(4, 64, 12, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..12).prop_map(Value::Array),
            proptest::collection::btree_map(
                prop_oneof![
                    Just("name".to_string()),
                    Just("traits".to_string()),
                    Just("age".to_string()),
                    Just("endings".to_string()),
                    Just("kind".to_string()),
                    Just("text".to_string()),
                    "[a-z_]{1,12}",
                ],
                inner,
                0..14
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A draft whose every field is arbitrary.
fn draft() -> impl Strategy<Value = CharacterDraft> {
    let text = prop_oneof!["\\PC{0,80}", (0usize..30_000).prop_map(|n| "x".repeat(n))];
    let list = proptest::collection::vec("\\PC{0,40}", 0..40);
    (
        (text.clone(), list.clone(), text.clone(), text.clone()),
        (text.clone(), text.clone(), text.clone(), list),
        proptest::collection::vec((text.clone(), text), 0..5),
    )
        .prop_map(
            |(
                (name, traits, age, backstory),
                (gender, language, opening_line, start_options),
                endings,
            )| {
                CharacterDraft {
                    name,
                    traits,
                    age,
                    gender,
                    voice: String::new(),
                    scenes: "10".into(),
                    language,
                    avatar: String::new(),
                    backstory,
                    story_context: "A city.".into(),
                    opening_line,
                    start_options,
                    endings: endings
                        .into_iter()
                        .map(|(kind, text)| DraftEnding { kind, text })
                        .collect(),
                }
            },
        )
}

fn parse_draft(d: &CharacterDraft) -> Result<(), TestCaseError> {
    for errs in [d.parse_seed().err(), d.parse_spec().err()]
        .into_iter()
        .flatten()
    {
        prop_assert!(!errs.is_empty());
        for e in &errs.0 {
            prop_assert!(e.message.chars().count() <= MAX_MESSAGE, "{}", e.message);
        }
    }
    if let Ok(spec) = d.parse_spec() {
        prop_assert!(spec.seed.traits.iter().count() <= Traits::MAX);
        prop_assert_eq!(spec.story.start_options.len(), 3);
        prop_assert_eq!(spec.story.endings.len(), 3);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn text_parsers_take_any_string(s in any::<String>()) {
        every_text_parser(&s)?;
    }

    #[test]
    fn text_parsers_take_huge_strings(
        n in 0usize..50_000,
        c in prop_oneof![Just('x'), Just('é'), Just('𝔄'), Just(' '), Just('\n'), Just('\u{7}')],
        padding in 0usize..3,
    ) {
        let s: String = " ".repeat(padding * 1000) + &c.to_string().repeat(n);
        every_text_parser(&s)?;
    }

    #[test]
    fn trait_lists_of_any_length_and_content(
        items in proptest::collection::vec("\\PC{0,40}", 0..200),
    ) {
        match Traits::parse(&items) {
            Ok(t) => prop_assert!((1..=Traits::MAX).contains(&t.iter().count())),
            Err(e) => prop_assert!(short(&e), "{}", e.0),
        }
        let joined = items.join(",");
        if let Err(e) = Traits::parse_list(&joined) {
            prop_assert!(short(&e), "{}", e.0);
        }
    }

    #[test]
    fn start_options_and_endings_of_any_shape(
        options in proptest::collection::vec("\\PC{0,400}", 0..10),
        endings in proptest::collection::vec(("\\PC{0,40}", "\\PC{0,100}"), 0..10),
    ) {
        if let Err(e) = parse_start_options(&options) {
            prop_assert!(short(&e), "{}", e.0);
        }
        let endings: Vec<DraftEnding> = endings
            .into_iter()
            .map(|(kind, text)| DraftEnding { kind, text })
            .collect();
        match parse_endings(&endings) {
            Ok(v) => prop_assert_eq!(v.len(), 3),
            Err(e) => prop_assert!(short(&e), "{}", e.0),
        }
    }

    #[test]
    fn drafts_with_any_fields(d in draft()) {
        parse_draft(&d)?;
    }

    /// What a decoder does with a body: arbitrary JSON becomes a draft (or is refused), and a
    /// draft is validated, without a panic.
    #[test]
    fn any_json_as_a_draft(v in json()) {
        if let Ok(d) = serde_json::from_value::<CharacterDraft>(v.clone()) {
            parse_draft(&d)?;
        }
        let _ = serde_json::from_value::<Traits>(v.clone());
        let _ = serde_json::from_value::<GeneratedCharacter>(v.clone());
        let _ = serde_json::from_value::<CharacterSpec>(v);
    }

    #[test]
    fn any_bytes_as_a_draft(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        if let Ok(d) = serde_json::from_slice::<CharacterDraft>(&bytes) {
            parse_draft(&d)?;
        }
        let _ = serde_json::from_slice::<GeneratedCharacter>(&bytes);
    }
}

#[test]
fn deep_nesting_and_invalid_utf8_are_refused_not_crashed() {
    for depth in [128, 1_000, 100_000] {
        let deep = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        assert!(serde_json::from_str::<CharacterDraft>(&deep).is_err());
        assert!(serde_json::from_str::<Traits>(&deep).is_err());
        let object = format!(
            "{}1{}",
            r#"{"draft":{"traits":"#.repeat(depth),
            "}}".repeat(depth)
        );
        assert!(serde_json::from_str::<CharacterDraft>(&object).is_err());
    }
    for bytes in [
        &b"{\"name\":\"\xff\xfe\"}"[..],
        b"\xc3\x28",
        b"{\"traits\":[\"\xed\xa0\x80\"]}",
        b"\"\xf0\x28\x8c\x28\"",
    ] {
        assert!(serde_json::from_slice::<CharacterDraft>(bytes).is_err());
        assert!(serde_json::from_slice::<CharacterName>(bytes).is_err());
    }
}
