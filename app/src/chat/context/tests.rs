use super::*;
use crate::domain::card::{LoreEntry, Lorebook};
use crate::infra::llm::Role;
use proptest::prelude::*;
use std::sync::OnceLock;

fn tokenizers() -> &'static [(&'static str, tiktoken_rs::CoreBPE); 2] {
    static BPE: OnceLock<[(&'static str, tiktoken_rs::CoreBPE); 2]> = OnceLock::new();
    BPE.get_or_init(|| {
        [
            ("cl100k_base", tiktoken_rs::cl100k_base().unwrap()),
            ("o200k_base", tiktoken_rs::o200k_base().unwrap()),
        ]
    })
}

/// Texts of the kinds people write in chats, in several languages and scripts.
const CORPUS: &[&str] = &[
    "The lighthouse keeper climbed the spiral stairs, counting each of the 127 steps as he always did.",
    "*She tilts her head, eyes narrowing.* \"You came back. I didn't think you would — not after what happened at the harbour.\"",
    "**Bold** and _italic_, a list:\n- one\n- two\n\n> a quote\n\n```rust\nfn main() { println!(\"hi\"); }\n```",
    "Visit https://example.com/some/path?query=1&x=y or mail me at keeper@example.org before 10:45pm on 2026-12-07.",
    "Ich weiß nicht, ob der Leuchtturm heute Nacht brennt; die Straße zum Hafen ist überflutet.",
    "Où est passée la clé ? Je l'avais laissée près de la fenêtre, à côté du thé glacé.",
    "Смотритель маяка поднялся по винтовой лестнице и зажёг старую лампу.",
    "Ο φύλακας του φάρου ανέβηκε τη σκάλα και άναψε τη λάμπα.",
    "灯台守は螺旋階段を上り、古いランプに火を灯した。「また来たのね」と彼女は言った。",
    "灯塔看守人爬上螺旋楼梯，点亮了那盏旧灯。“你又回来了，”她说。",
    "등대지기는 나선형 계단을 올라 오래된 램프에 불을 켰다.",
    "صعد حارس المنارة الدرج الحلزوني وأشعل المصباح القديم.",
    "प्रकाशस्तंभ का रक्षक सीढ़ियाँ चढ़ा और पुराना दीपक जलाया।",
    "😀😃😄 🎉🎉 ❤️‍🔥 👩‍👩‍👧‍👦 ✨ lol 🤣🤣🤣",
    "    indented code\n\tand a tab\n\n\n\nmany blank lines      and spaces",
    "3.14159265358979 1,000,000 0xDEADBEEF 42 007 1e-9 +44 20 7946 0958",
    "antidisestablishmentarianism floccinaucinihilipilification pneumonoultramicroscopicsilicovolcanoconiosis",
    "Ok. Ok? Ok! ... !!! ??? --- ___ *** ((())) [[[]]] {{{}}} <<<>>> ;;; ::: '''",
    "Փարոսի պահապանը բարձրացավ պարուրաձև աստիճաններով և վառեց հին լամպը։",
    "የመብራት ቤቱ ጠባቂ ደረጃውን ወጥቶ አሮጌውን መብራት አበራ።",
    "ψψψψψψ ბბბბ ทดสอบภาษาไทย עברית",
    "asdfghjkl qwertyuiop zxcvbnm hahahahahahahahaha lmaooooo brrrrr",
    "aGVsbG8gd29ybGQgdGhpcyBpcyBiYXNlNjQgZW5jb2RlZCB0ZXh0IGZvciB0ZXN0aW5n",
    "fn parse_header(buf: &[u8]) -> Result<HttpHeader, ParseError> { let idx = buf.iter().position(|b| *b == b':')?; }",
    "camelCaseIdentifier snake_case_name SCREAMING_CASE kebab-case-name XMLHttpRequest",
];

fn real(text: &str) -> Vec<(&'static str, usize)> {
    tokenizers()
        .iter()
        .map(|(name, bpe)| (*name, bpe.encode_ordinary(text).len()))
        .collect()
}

#[test]
fn the_estimate_is_never_below_real_tokenizers_on_chat_text() {
    for text in CORPUS {
        let ours = estimate(text);
        for (name, theirs) in real(text) {
            assert!(
                ours >= theirs,
                "{name}: {theirs} tokens, estimated {ours}: {text:?}"
            );
        }
    }
    // Nor so far above that it wastes the budget on ordinary English.
    let english = CORPUS[0];
    let theirs = real(english)[0].1;
    assert!(
        estimate(english) <= theirs * 2,
        "{} vs {theirs}",
        estimate(english)
    );
}

/// Words of several languages, for sentences like chat messages.
const WORDS: &[&str] = &[
    "the",
    "lamp",
    "keeper",
    "walked",
    "slowly",
    "towards",
    "harbour",
    "night",
    "I",
    "you",
    "said",
    "whispered",
    "extraordinary",
    "unbelievably",
    "don't",
    "it's",
    "Mira",
    "O'Brien",
    "Straße",
    "überflutet",
    "café",
    "naïve",
    "маяк",
    "лестница",
    "φάρος",
    "灯台",
    "ランプ",
    "灯塔",
    "등대",
    "منارة",
    "दीपक",
    "😀",
    "❤️",
    "2026",
    "10:45",
    "3.5",
    "x2",
    "e-mail",
    "re-read",
    "#tag",
    "@you",
];
const MARKS: &[&str] = &[
    " ", " ", " ", ", ", ". ", "! ", "? ", "\n", "\n\n", " *", "* ", " \"", "\" ", " — ", "...",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    /// On any text made of real words and the marks between them, the estimate is at least what
    /// either tokenizer counts.
    #[test]
    fn the_estimate_errs_on_the_safe_side(parts in proptest::collection::vec((0..WORDS.len(), 0..MARKS.len()), 1..120)) {
        let text: String = parts.iter().map(|&(w, m)| format!("{}{}", WORDS[w], MARKS[m])).collect();
        let ours = estimate(&text);
        for (name, theirs) in real(&text) {
            prop_assert!(ours >= theirs, "{}: {} tokens, estimated {}: {:?}", name, theirs, ours, text);
        }
    }

    /// The estimate of two texts on their own lines is what each part's estimates add to: the
    /// builder counts parts and sends them joined.
    #[test]
    fn parts_on_their_own_lines_add_up(a in "\\PC{0,60}", b in "\\PC{0,60}") {
        prop_assert_eq!(estimate(&format!("{a}\n\n{b}")), estimate(&a) + 2 + estimate(&b));
    }
}

#[test]
fn macros_are_filled_in_any_case_and_the_rest_is_left() {
    assert_eq!(
        fill_macros(
            "{{char}} greets {{User}}; <BOT> and <user>. {{original}} {{other}} <b>{",
            "Ilse",
            "Sam",
            "ORIG"
        ),
        "Ilse greets Sam; Ilse and Sam. ORIG {{other}} <b>{"
    );
    assert_eq!(fill_macros("", "a", "b", "c"), "");
    assert_eq!(fill_macros("{{CHAR}}{{char}}", "é", "b", "c"), "éé");
}

fn entry(keys: &[&str], content: &str) -> LoreEntry {
    LoreEntry {
        name: String::new(),
        keys: keys.iter().map(|k| k.to_string()).collect(),
        secondary_keys: Vec::new(),
        selective: false,
        case_sensitive: false,
        constant: false,
        content: content.to_string(),
        enabled: true,
        insertion_order: 0,
        priority: 0,
        after_char: false,
    }
}

fn user(text: &str) -> Turn {
    Turn {
        role: Role::User,
        text: text.to_string(),
    }
}

fn model(text: &str) -> Turn {
    Turn {
        role: Role::Model,
        text: text.to_string(),
    }
}

fn book(entries: Vec<LoreEntry>) -> Lorebook {
    Lorebook {
        scan_depth: None,
        token_budget: None,
        entries,
    }
}

fn hits(book: &Lorebook, turns: &[Turn]) -> Vec<String> {
    activated(book, turns)
        .into_iter()
        .map(|(e, _)| e.content.clone())
        .collect()
}

#[test]
fn keys_come_up_as_words_in_any_case_unless_told() {
    let mut sensitive = entry(&["Lamp"], "sensitive");
    sensitive.case_sensitive = true;
    let b = book(vec![
        entry(&["lamp"], "lamp"),
        entry(&["light"], "light"),
        sensitive,
        entry(&["灯"], "cjk"),
        entry(&["sea spray"], "phrase"),
        entry(&["#tag"], "mark"),
    ]);
    assert_eq!(hits(&b, &[user("The LAMP is lit.")]), ["lamp"]);
    assert_eq!(
        hits(&b, &[user("lamplight and highlights")]),
        Vec::<String>::new()
    );
    assert_eq!(
        hits(&b, &[user("Lamp, light!")]),
        ["lamp", "light", "sensitive"]
    );
    assert_eq!(
        hits(&b, &[user("灯台に")]),
        ["cjk"],
        "no word boundaries in scripts without spaces"
    );
    assert_eq!(hits(&b, &[user("Sea Spray. A#tag!")]), ["phrase", "mark"]);
    assert_eq!(hits(&b, &[user("#tagged")]), Vec::<String>::new());
    assert_eq!(hits(&b, &[user("sea\nspray")]), Vec::<String>::new());
}

#[test]
fn secondary_keys_constant_and_disabled_entries() {
    let mut selective = entry(&["lamp"], "selective");
    selective.selective = true;
    selective.secondary_keys = vec!["oil".into()];
    let mut constant = entry(&[], "constant");
    constant.constant = true;
    let mut off = entry(&["lamp"], "off");
    off.enabled = false;
    let mut off_constant = entry(&[], "off constant");
    off_constant.constant = true;
    off_constant.enabled = false;
    let b = book(vec![
        selective,
        constant,
        off,
        off_constant,
        entry(&[], "no keys"),
    ]);
    assert_eq!(hits(&b, &[user("the lamp")]), ["constant"]);
    assert_eq!(
        hits(&b, &[user("the lamp needs oil")]),
        ["selective", "constant"]
    );
}

#[test]
fn only_the_latest_messages_are_searched() {
    let mut b = book(vec![entry(&["lamp"], "lamp")]);
    let turns = [user("lamp"), model("a"), user("b"), model("c"), user("d")];
    assert!(hits(&b, &turns).is_empty(), "the default depth is 4");
    b.scan_depth = Some(5);
    assert_eq!(hits(&b, &turns), ["lamp"]);
}

fn sources<'a>(b: &'a Lorebook, turns: &'a [Turn]) -> Sources<'a> {
    Sources {
        system: "You are Ilse.",
        card_system: None,
        post_history: None,
        char_name: "Ilse",
        user_name: "Sam",
        book: b,
        summary: None,
        turns,
        older: false,
    }
}

/// What the built request weighs, counted from what is sent.
fn weight(built: &Built) -> usize {
    estimate(&built.system)
        + TURN_OVERHEAD
        + built
            .turns
            .iter()
            .map(|t| turn_tokens(&t.text))
            .sum::<usize>()
        + built.after.as_deref().map_or(0, |a| estimate(a) + 2)
}

#[test]
fn the_card_prompts_wrap_ours() {
    let b = book(Vec::new());
    let turns = [user("hi")];
    let mut s = sources(&b, &turns);
    s.card_system = Some("{{original}} Speak to {{user}} as {{char}}.");
    s.post_history = Some("Stay as {{char}}. {{original}}");
    s.summary = Some("  They met at the harbour. ");
    let built = build(&s, 1000);
    assert_eq!(
        built.system,
        "You are Ilse. Speak to Sam as Ilse.\n\nEarlier in this conversation (a summary):\nThey met at the harbour."
    );
    assert_eq!(built.after.as_deref(), Some("Stay as Ilse. "));
    assert!(built.seen.card_system);
    assert_eq!(
        built.seen.summary.as_deref(),
        Some("They met at the harbour.")
    );
    assert_eq!(built.seen.total, weight(&built));
}

#[test]
fn lore_goes_around_the_character_in_order_and_drops_low_priority_first() {
    let mut first = entry(&["lamp"], "FIRST before");
    first.insertion_order = 1;
    first.priority = 1;
    let mut second = entry(&["lamp"], "SECOND after");
    second.insertion_order = 2;
    second.after_char = true;
    second.priority = 5;
    let mut zeroth = entry(&["lamp"], "ZEROTH before");
    zeroth.insertion_order = 0;
    zeroth.priority = 3;
    let mut b = book(vec![second, first, zeroth]);
    let turns = [user("the lamp")];
    let built = build(&sources(&b, &turns), 1000);
    assert_eq!(
        built.system,
        "ZEROTH before\n\nFIRST before\n\nYou are Ilse.\n\nSECOND after"
    );
    let names: Vec<_> = built.seen.lore.iter().map(|l| l.content.as_str()).collect();
    assert_eq!(names, ["ZEROTH before", "FIRST before", "SECOND after"]);
    assert_eq!(built.seen.lore[0].key, "lamp");
    // A budget for two: the lowest priority goes.
    b.token_budget = Some(2 * (estimate("ZEROTH before") + 2));
    let built = build(&sources(&b, &turns), 1000);
    let names: Vec<_> = built.seen.lore.iter().map(|l| l.content.as_str()).collect();
    assert_eq!(names, ["ZEROTH before", "SECOND after"]);
    assert_eq!(built.seen.lore_left_out, 1);
}

#[test]
fn the_newest_messages_fill_what_is_left() {
    let b = book(Vec::new());
    let turns: Vec<Turn> = (0..49)
        .map(|i| {
            if i % 2 == 0 {
                user(&format!("message {i} here"))
            } else {
                model(&format!("reply {i} there"))
            }
        })
        .collect();
    let mut s = sources(&b, &turns);
    s.older = true;
    let budget = estimate("You are Ilse.") + TURN_OVERHEAD + 10 * turn_tokens("message 10 here");
    let built = build(&s, budget);
    assert!(weight(&built) <= budget);
    assert_eq!(built.turns.len(), 10);
    assert_eq!(built.turns.last().unwrap().text, "message 48 here");
    assert_eq!(built.seen.turns_left_out, 39);
    assert!(built.seen.older_left_out);
    // The newest is sent even when nothing else fits.
    let built = build(&s, 1);
    assert_eq!(built.turns.len(), 1);
}

fn arb_entry() -> impl Strategy<Value = LoreEntry> {
    (
        proptest::collection::vec("[a-d]{1,3}", 0..3),
        "[a-z ]{0,80}",
        any::<bool>(),
        0i64..5,
        0i64..5,
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(
            |(keys, content, constant, order, priority, after, enabled)| LoreEntry {
                name: String::new(),
                keys,
                secondary_keys: Vec::new(),
                selective: false,
                case_sensitive: false,
                constant,
                content,
                enabled,
                insertion_order: order,
                priority,
                after_char: after,
            },
        )
}

proptest! {
    /// Whatever the chat, lorebook and budget: the budget holds when the fixed parts and the
    /// newest message fit in it; the messages sent are the newest ones, in order; the entries sent
    /// were brought up and are in their insertion order; and with room for everything, every entry
    /// brought up is sent.
    #[test]
    fn the_budget_holds_and_the_newest_are_kept(
        turns in proptest::collection::vec(("[a-d ]{0,200}", any::<bool>()), 1..60),
        entries in proptest::collection::vec(arb_entry(), 0..20),
        book_budget in proptest::option::of(0usize..400),
        card in proptest::option::of("[a-z{}]{0,40}"),
        after in proptest::option::of("[a-z ]{0,40}"),
        summary in proptest::option::of("[a-z ]{0,200}"),
        budget in 0usize..3000,
    ) {
        let turns: Vec<Turn> = turns.into_iter().map(|(t, u)| if u { user(&t) } else { model(&t) }).collect();
        // Each entry told apart by its text.
        let entries = entries.into_iter().enumerate().map(|(i, mut e)| { e.content = format!("{i} {}", e.content); e }).collect();
        let b = Lorebook { scan_depth: None, token_budget: book_budget, entries };
        let mut s = sources(&b, &turns);
        s.card_system = card.as_deref();
        s.post_history = after.as_deref();
        s.summary = summary.as_deref();
        let built = build(&s, budget);
        let seen = &built.seen;
        prop_assert_eq!(seen.total, weight(&built));
        let fixed = TURN_OVERHEAD + seen.system_tokens + seen.summary_tokens + seen.after_tokens
            + turn_tokens(&turns.last().unwrap().text);
        if fixed <= budget {
            prop_assert!(seen.total <= budget, "{} > {}", seen.total, budget);
        }
        // The newest messages, in the order written.
        prop_assert!(!built.turns.is_empty());
        prop_assert_eq!(&turns[turns.len() - built.turns.len()..], &built.turns[..]);
        prop_assert_eq!(seen.turns + seen.turns_left_out, turns.len());
        // Entries sent were brought up, in insertion order.
        let brought: Vec<&LoreEntry> = activated(&b, &turns).into_iter().map(|(e, _)| e).collect();
        let orders: Vec<i64> = seen.lore.iter().map(|l| {
            brought.iter().find(|e| e.content == l.content).expect("sent only if brought up").insertion_order
        }).collect();
        prop_assert!(orders.windows(2).all(|w| w[0] <= w[1]), "{:?}", orders);
        prop_assert_eq!(seen.lore.len() + seen.lore_left_out, brought.len());
        if book_budget.is_none() && budget >= fixed + 100_000 {
            prop_assert_eq!(seen.lore_left_out, 0);
        }
    }
}

#[test]
fn ten_thousand_messages_and_two_hundred_entries() {
    // The shape the benchmark times: the builder is given the latest messages that could fit.
    let entries: Vec<LoreEntry> = (0..200)
        .map(|i| {
            let mut e = entry(
                &[&format!("key{i}"), &format!("alias{i}")],
                &format!("Entry {i} says something about the world."),
            );
            e.insertion_order = i;
            e
        })
        .collect();
    let b = book(entries);
    let turns: Vec<Turn> = (0..10_000)
        .map(|i| {
            user(&format!(
                "Message {i} mentions key{} and goes on a while about it.",
                i % 300
            ))
        })
        .collect();
    let built = build(&sources(&b, &turns), 16_000);
    assert!(built.seen.total <= 16_000);
    assert!(built.seen.turns > 100 && built.seen.turns < 10_000);
    assert_eq!(built.seen.lore.len(), 4, "the four latest messages' keys");
}

#[test]
fn a_long_summary_keeps_its_end_within_its_share() {
    let b = book(Vec::new());
    let turns = [user("hi")];
    let long: String = (0..400).map(|i| format!("Event {i} happened. ")).collect();
    let mut s = sources(&b, &turns);
    s.summary = Some(&long);
    let built = build(&s, 1000);
    let sent = built.seen.summary.as_deref().unwrap();
    assert!(
        built.seen.summary_tokens <= 1000 / SUMMARY_SHARE,
        "{}",
        built.seen.summary_tokens
    );
    assert!(sent.ends_with("Event 399 happened."), "{sent}");
    assert!(!sent.contains("Event 0 "));
    assert!(
        sent.starts_with("Event ") || sent.starts_with("happened"),
        "{sent}"
    );
    assert!(built.seen.total <= 1000);
}

#[test]
fn lorebook_entries_have_their_macros_filled_in() {
    let b = book(vec![entry(
        &["lamp"],
        "{{char}} lit the lamp for {{user}}.",
    )]);
    let turns = [user("the lamp")];
    let built = build(&sources(&b, &turns), 1000);
    assert!(
        built.system.starts_with("Ilse lit the lamp for Sam."),
        "{}",
        built.system
    );
    assert_eq!(built.seen.lore[0].content, "Ilse lit the lamp for Sam.");
}
