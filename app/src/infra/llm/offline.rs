//! The offline provider: writes plausible characters and replies from templates, with no key and
//! no network. The same inputs and variation always give the same text. Its output is labelled
//! "offline" in the UI.

use super::*;
use futures::StreamExt;
use rand::{seq::IndexedRandom, Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::time::Duration;

pub struct OfflineProvider {
    token_delay: Duration,
}

impl OfflineProvider {
    pub fn new(token_delay: Duration) -> Self {
        Self { token_delay }
    }

    /// `text` as a stream of word-sized deltas at the configured pace, then its usage.
    fn stream_text(
        &self,
        text: String,
        input_tokens: u32,
    ) -> BoxStream<'static, Result<ChatChunk, LlmError>> {
        let toks = tokens(&text);
        let output_tokens = toks.len() as u32;
        let delay = self.token_delay;
        let deltas = futures::stream::iter(toks).then(move |t| async move {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            Ok(ChatChunk::Delta(t))
        });
        let done = futures::stream::once(async move {
            Ok(ChatChunk::Done {
                usage: Usage {
                    input_tokens,
                    output_tokens,
                },
            })
        });
        deltas.chain(done).boxed()
    }
}

const SCENE_OPENERS: &[&str] = &[
    "So that is your answer.",
    "Bold. I did not expect that.",
    "Careful, then. Good.",
    "You surprise me again.",
    "Hm. Let us see where that leads.",
    "I was hoping you would say that.",
];
const SCENE_TURNS: &[&str] = &[
    "The path ahead splits where the old lanterns still burn",
    "Someone has been following us since the last bend",
    "The door we needed is open, and that worries me more than a lock would",
    "A stranger waves from the far side, as if we were expected",
    "The ground shakes once, and then everything goes very quiet",
    "I found the mark I was looking for, scratched fresh into the stone",
];
const SCENE_OPTIONS: &[[&str; 3]] = &[
    [
        "Step forward and take the lead.",
        "Wait and watch what happens next.",
        "Ask what they are not telling you.",
    ],
    [
        "Run toward the noise.",
        "Find cover and listen.",
        "Call out and see who answers.",
    ],
    [
        "Take the risk while there is time.",
        "Go back for what you left behind.",
        "Look closer at the mark on the stone.",
    ],
];

/// A running summary: the summary so far, then for each scene what the player did and the first
/// sentence of the answer, cut to the summary's bound from the front (the latest kept).
pub fn write_play_summary(
    name: &str,
    summary: &str,
    scenes: &[(String, String)],
) -> serde_json::Value {
    let mut text = summary.trim().to_string();
    for (did, said) in scenes {
        let first = said
            .split_inclusive(['.', '!', '?'])
            .next()
            .unwrap_or(said)
            .trim();
        let did = did.trim().trim_end_matches('.');
        text.push_str(&format!(
            " The player chose: {did}. {name} answered: {first}"
        ));
    }
    let max = crate::domain::StorySummary::MAX;
    let len = text.chars().count();
    if len > max {
        text = text.chars().skip(len - max + 1).collect();
        text = format!("…{}", text.trim_start());
    }
    serde_json::json!({ "summary": text.trim() })
}

/// One scene of a play run, the same for the same run, scene, choices and variation. The last
/// scene ends the story with the ending the player's choices point to: bold first options lean
/// to the first ending, cautious second ones to the second, curious third ones and typed
/// actions to the third.
pub fn write_play_turn(task: &StructuredTask) -> serde_json::Value {
    let StructuredTask::PlayTurn {
        name,
        scene,
        total,
        choices,
        choice,
        endings,
        variation,
    } = task
    else {
        return serde_json::Value::Null;
    };
    let key = choices
        .iter()
        .map(|c| c.map_or("a".to_string(), |i| i.to_string()))
        .collect::<String>();
    let mut rng = ChaCha8Rng::seed_from_u64(stable_hash(&[
        name,
        &key,
        &scene.to_string(),
        &variation.to_string(),
    ]));
    let opener = SCENE_OPENERS.choose(&mut rng).copied().unwrap_or("So.");
    let turn = SCENE_TURNS.choose(&mut rng).copied().unwrap_or("We go on");
    let did: String = choice
        .split_whitespace()
        .take(8)
        .collect::<Vec<_>>()
        .join(" ");
    if scene >= total {
        let mut votes = vec![0usize; (*endings).max(1)];
        for c in choices {
            let i = c.unwrap_or(2).min(votes.len() - 1);
            votes[i] += 1;
        }
        // The most chosen kind of move; ties go to the later ending.
        let ending = votes
            .iter()
            .enumerate()
            .max_by_key(|(i, v)| (**v, *i))
            .map_or(1, |(i, _)| i + 1);
        return serde_json::json!({
            "dialogue": format!(
                "{opener} \"{did}\" — that was the last thing you chose, and it decided everything. \
                 This is where our story ends, Scene {scene} of {total}. I, {name}, will remember it."
            ),
            "ending": ending,
        });
    }
    let options = SCENE_OPTIONS
        .choose(&mut rng)
        .copied()
        .unwrap_or(SCENE_OPTIONS[0]);
    serde_json::json!({
        "dialogue": format!(
            "{opener} You chose to {}. {turn}. What do we do now?",
            did.trim_end_matches('.').to_lowercase()
        ),
        "options": options,
    })
}

/// FNV-1a: a stable hash, so a seed means the same text on every build and machine.
fn stable_hash(parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for p in parts {
        for b in p.bytes().chain(std::iter::once(0xff)) {
            h ^= b as u64;
            h = h.wrapping_mul(0x100000001b3);
        }
    }
    h
}

fn rng_for(seed: &CharacterSeed, variation: u64) -> ChaCha8Rng {
    let traits = seed.traits.to_strings().join(",");
    let age = seed.age.get().to_string();
    let v = variation.to_string();
    ChaCha8Rng::seed_from_u64(stable_hash(&[
        seed.name.as_str(),
        &traits,
        &age,
        seed.gender.as_str(),
        seed.language.as_str(),
        &v,
    ]))
}

const PLACES: &[&str] = &[
    "a harbour town that smells of tar and rain",
    "a mountain monastery cut into grey stone",
    "a neon-lit city that never sleeps",
    "a border fortress on the edge of the salt desert",
    "a floating market on a slow brown river",
    "a research station buried in Antarctic ice",
];
const LOSSES: &[&str] = &[
    "lost their family's name to a debt they never made",
    "watched their mentor vanish on the night of the eclipse",
    "was left behind when the last caravan departed",
    "broke a promise that still costs them sleep",
    "found a letter that rewrote everything they believed about their past",
];
const WANTS: &[&str] = &[
    "to find the one person who knows the truth",
    "to repay a debt before the season turns",
    "to protect the few people they still trust",
    "to prove that they are more than the rumours say",
    "to finish a map no one else dared to draw",
];
const TENSIONS: &[&str] = &[
    "An old alliance is fraying and every faction is choosing sides.",
    "A storm has cut the region off from the rest of the world for weeks.",
    "A stranger arrived with a sealed box that everyone seems to want.",
    "The ruling council has banned the old songs, and people are whispering.",
    "Something beneath the streets has started to wake.",
];

fn trait_phrase(traits: &[String]) -> String {
    match traits {
        [] => "hard to read".to_string(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {}", init.join(", "), last),
    }
}

/// Subject pronoun, possessive, and the verb endings that agree with it ("has"/"have", "lets"/"let").
fn pronoun(g: crate::domain::Gender) -> (&'static str, &'static str, &'static str, &'static str) {
    use crate::domain::Gender::*;
    match g {
        Female => ("she", "her", "has", "lets"),
        Male => ("he", "his", "has", "lets"),
        _ => ("they", "their", "have", "let"),
    }
}

/// Writes a character as the JSON a model would return.
pub fn write_character(seed: &CharacterSeed, variation: u64) -> serde_json::Value {
    let mut rng = rng_for(seed, variation);
    let name = seed.name.as_str();
    let traits = seed.traits.to_strings();
    let tp = trait_phrase(&traits);
    let (he, his, has, lets) = pronoun(seed.gender);
    let place = PLACES.choose(&mut rng).copied().unwrap_or(PLACES[0]);
    let loss = LOSSES.choose(&mut rng).copied().unwrap_or(LOSSES[0]);
    let want = WANTS.choose(&mut rng).copied().unwrap_or(WANTS[0]);
    let tension = TENSIONS.choose(&mut rng).copied().unwrap_or(TENSIONS[0]);
    let years_ago = rng.random_range(3..=12);
    let age = seed.age.get();
    let first_trait = traits.first().cloned().unwrap_or_else(|| "quiet".into());

    let backstory = format!(
        "{name} grew up in {place}, and at {age} still carries its habits: {tp}. \
         {years_ago} years ago {name} {loss}, and {he} {has} never quite forgiven the world for it.\n\n\
         Since then {name} has lived by {his} wits, trusting few and owing many. People who know \
         {name} say the {first_trait} streak is both {his} best weapon and {his} worst habit. \
         What drives {name} now is simple to say and hard to do: {want}."
    );
    let story_context = format!(
        "The story takes place in {place}. {tension} Old loyalties are being tested, and small \
         choices carry more weight than they should.\n\n\
         The player arrives at the moment {name} can no longer wait. Whether the player becomes an \
         ally, a rival or something in between depends on what they do next."
    );
    let opening_line = format!(
        "\"You're late — and if you're here to help me {}, we start now.\"",
        want.trim_start_matches("to ")
    );
    // Drawn after everything above, so each take's other fields stay as they were.
    let bold = [
        format!("Step forward and offer to lead the way for {name}."),
        format!("Tell {name} you are in, whatever it costs."),
        format!("Take the first risk yourself, before {name} can."),
    ];
    let cautious = [
        "Hold back, watch the room and ask who else is involved.".to_string(),
        "Say nothing yet; count the exits and the people between you and them.".to_string(),
        format!("Ask {name} for one night to think it over."),
    ];
    let curious = [
        format!("Ask {name} what really happened {years_ago} years ago."),
        format!("Ask {name} who else wants the same thing."),
        format!("Ask {name} what {he} will not tell anyone else."),
    ];
    let start_options: Vec<String> = [bold, cautious, curious]
        .into_iter()
        .map(|set| set[rng.random_range(0..set.len())].clone())
        .collect();
    let happy = [
        format!("{name} succeeds, and for the first time in years {he} {lets} someone share the weight."),
        format!("{name} wins back what was lost, and finds it was never the point."),
    ];
    let tragic = [
        format!("{name} reaches the goal too late; what was saved is not what mattered."),
        format!("{name} keeps {his} word, and the word costs everything else."),
    ];
    let ambiguous = [
        format!(
            "{name} walks away with the truth, and no one can say whether it was worth the price."
        ),
        format!(
            "{name} leaves {place} behind without looking back, and the player never learns why."
        ),
    ];
    let endings: Vec<serde_json::Value> = [("happy", happy), ("tragic", tragic), ("ambiguous", ambiguous)]
        .into_iter()
        .map(|(kind, texts)| {
            serde_json::json!({"kind": kind, "text": texts[rng.random_range(0..texts.len())]})
        })
        .collect();
    serde_json::json!({
        "backstory": backstory,
        "story_context": story_context,
        "opening_line": opening_line,
        "start_options": start_options,
        "endings": endings,
    })
}

const REPLY_OPENERS: &[&str] = &[
    "Hm.",
    "Listen.",
    "That's a fair question.",
    "You don't ask the easy ones, do you?",
    "Careful.",
];
const REPLY_MIDDLES: &[&str] = &[
    "I've been thinking about that since the night everything changed",
    "there's more to it than the rumours say",
    "I won't pretend I have all the answers",
    "the people here remember everything and forgive nothing",
    "the answer depends on who is listening",
];
const REPLY_CLOSERS: &[&str] = &[
    "So — what will you do?",
    "Stay close, and keep your eyes open.",
    "Ask me again when we're somewhere safer.",
    "Your move.",
    "Tell me why you want to know.",
];

/// Writes a reply in character to the last user message.
pub fn write_reply(req: &ChatRequest) -> String {
    let last = prompts::last_user_text(&req.history);
    let turns = req.history.len().to_string();
    let mut rng = ChaCha8Rng::seed_from_u64(stable_hash(&[&req.persona.name, last, &turns]));
    let opener = REPLY_OPENERS.choose(&mut rng).copied().unwrap_or("Hm.");
    let middle = REPLY_MIDDLES
        .choose(&mut rng)
        .copied()
        .unwrap_or(REPLY_MIDDLES[0]);
    let closer = REPLY_CLOSERS
        .choose(&mut rng)
        .copied()
        .unwrap_or("Your move.");
    let topic: String = last
        .split_whitespace()
        .take(6)
        .collect::<Vec<_>>()
        .join(" ");
    let feeling = req
        .persona
        .traits
        .choose(&mut rng)
        .cloned()
        .unwrap_or_else(|| "careful".into());
    format!("{opener} You say \"{topic}\" — {middle}. I'm {feeling} about it, I'll admit. {closer}")
}

/// Splits text into word-sized tokens that concatenate back to exactly the text.
pub fn tokens(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for c in text.chars() {
        if c == ' ' && !cur.is_empty() {
            out.push(std::mem::take(&mut cur));
        }
        cur.push(c);
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// The facets the offline writer can suggest: (name, icon, description, words that point to it).
/// Icons are from [`crate::domain::ShadeIcon::SUGGESTED`].
const FACETS: &[(&str, &str, &str, &[&str])] = &[
    (
        "Explorer",
        "🧭",
        "You go looking for what is around the next corner, in places and in ideas.",
        &[
            "travel", "explore", "hike", "new", "curious", "wander", "map", "trip",
        ],
    ),
    (
        "Maker",
        "🛠️",
        "You understand things best by building them with your own hands.",
        &[
            "build", "make", "code", "fix", "craft", "wood", "garden", "program",
        ],
    ),
    (
        "Confidant",
        "🤝",
        "People bring you their troubles because you listen without judging.",
        &[
            "friend", "listen", "help", "advice", "support", "care", "people", "trust",
        ],
    ),
    (
        "Reader",
        "📚",
        "Books and long articles are where you go to think and to rest.",
        &[
            "read", "book", "novel", "library", "poetry", "write", "story", "history",
        ],
    ),
    (
        "Mover",
        "🏃",
        "You feel most like yourself when your body is busy.",
        &[
            "run", "sport", "gym", "swim", "climb", "bike", "dance", "yoga",
        ],
    ),
    (
        "Artist",
        "🎨",
        "You notice colour, shape and sound, and you like to make something of them.",
        &[
            "art", "paint", "draw", "photo", "design", "film", "music", "sing",
        ],
    ),
    (
        "Thinker",
        "🧠",
        "You turn questions over for a long time before you settle on an answer.",
        &[
            "think",
            "idea",
            "science",
            "philosophy",
            "question",
            "learn",
            "why",
            "research",
        ],
    ),
    (
        "Planner",
        "📋",
        "You like a plan, a list, and the quiet satisfaction of ticking it off.",
        &[
            "plan", "organise", "organize", "list", "schedule", "order", "goal", "budget",
        ],
    ),
    (
        "Homebody",
        "☕",
        "A quiet evening at home recharges you more than any party could.",
        &[
            "home", "quiet", "cook", "tea", "coffee", "sleep", "alone", "cozy",
        ],
    ),
    (
        "Joker",
        "😂",
        "You reach for a joke first, and it usually lands.",
        &[
            "joke", "funny", "laugh", "pun", "humor", "humour", "silly", "comedy",
        ],
    ),
    (
        "Player",
        "🎮",
        "Games, of every kind, are how you play with rules and people.",
        &[
            "game", "play", "chess", "puzzle", "board", "video", "win", "team",
        ],
    ),
    (
        "Night owl",
        "🌙",
        "Your best hours start when everyone else has gone to bed.",
        &[
            "night", "late", "moon", "stars", "dark", "insomnia", "evening", "midnight",
        ],
    ),
];

/// Suggests Shades from what a person wrote: the facets whose words appear most, best first
/// (at least three, however little was written), each as sure as its evidence.
pub fn write_shades(text: &str, variation: u64) -> serde_json::Value {
    use crate::domain::SuggestedShades;
    let lower = text.to_lowercase();
    let words: Vec<&str> = lower
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect();
    let mut scored: Vec<(usize, u64, usize, Vec<&str>)> = FACETS
        .iter()
        .enumerate()
        .map(|(i, (name, _, _, cues))| {
            let hits: Vec<&str> = cues
                .iter()
                .copied()
                .filter(|cue| words.iter().any(|w| w.starts_with(cue)))
                .collect();
            let tie = stable_hash(&[name, text, &variation.to_string()]);
            (hits.len(), tie, i, hits)
        })
        .collect();
    scored.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    let found = scored.iter().filter(|s| s.0 > 0).count();
    let n = found.clamp(SuggestedShades::MIN, SuggestedShades::MAX - 1);
    let shades: Vec<serde_json::Value> = scored
        .into_iter()
        .take(n)
        .map(|(hits, _, i, cues)| {
            let (name, icon, description, _) = FACETS[i];
            serde_json::json!({
                "name": name,
                "icon": icon,
                "description": description,
                "confidence": (0.3 + 0.2 * hits as f64).min(0.9),
                "topics": cues.into_iter().take(SuggestedShades::TOPICS).collect::<Vec<_>>(),
            })
        })
        .collect();
    serde_json::json!({ "shades": shades })
}

/// Scores two personas from their profiles: the more words of note they share, the higher
/// (deterministic: the same profiles always score the same), with reasoning that names them.
pub fn write_match(a: &str, b: &str) -> serde_json::Value {
    use crate::domain::terms;
    let name = |p: &str| -> String {
        let first = p.lines().next().unwrap_or_default();
        first.split(" (").next().unwrap_or(first).trim().to_string()
    };
    let (na, nb) = (name(a), name(b));
    let (ta, tb) = (terms(a, 300), terms(b, 300));
    let shared: Vec<&String> = ta
        .iter()
        .filter(|t| {
            tb.contains(t)
                && ![
                    "twin",
                    "digital",
                    "person",
                    "shades",
                    "character",
                    "traits",
                    "backstory",
                    "world",
                    "years",
                    "bio",
                    "from",
                    "sure",
                    "likely",
                    "tentative",
                ]
                .contains(&t.as_str())
        })
        .collect();
    let score = (30 + 9 * shared.len() as i64).min(95);
    let common = if shared.is_empty() {
        "little on the surface".to_string()
    } else {
        shared
            .iter()
            .take(4)
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    serde_json::json!({
        "score": score,
        "reasoning": format!(
            "{na} and {nb} share {common}. Where they overlap they would understand each other quickly; where they differ, each has something the other lacks, and whether that becomes friction or fascination depends on patience on both sides."
        ),
        "strengths": [
            format!("Common ground: {common}."),
            format!("{na} brings a steadiness {nb} can lean on."),
            format!("{nb} offers {na} a view from somewhere new."),
        ],
        "challenges": [
            format!("{na} and {nb} may read the same moment differently."),
            "Their habits pull at different hours and paces.".to_string(),
            "Each may wait for the other to speak first.".to_string(),
        ],
    })
}

#[async_trait::async_trait]
impl LlmProvider for OfflineProvider {
    fn name(&self) -> &'static str {
        "offline"
    }

    fn is_offline(&self) -> bool {
        true
    }

    async fn generate_json(&self, req: StructuredRequest) -> Result<StructuredReply, LlmError> {
        let value = match &req.task {
            StructuredTask::Character { seed, variation } => write_character(seed, *variation),
            // The section from another take on the whole character.
            StructuredTask::Section {
                seed,
                section,
                variation,
            } => {
                let whole = write_character(seed, *variation);
                serde_json::json!({ section.key(): whole[section.key()] })
            }
            StructuredTask::Shades { text, variation } => write_shades(text, *variation),
            StructuredTask::Match { a, b } => write_match(a, b),
            StructuredTask::PlayTurn { .. } => write_play_turn(&req.task),
            StructuredTask::PlaySummary {
                name,
                summary,
                scenes,
            } => write_play_summary(name, summary, scenes),
        };
        let output_tokens = value.to_string().split_whitespace().count() as u32;
        Ok(StructuredReply {
            raw: value.to_string(),
            usage: Usage {
                input_tokens: req.prompt.split_whitespace().count() as u32,
                output_tokens,
            },
        })
    }

    fn stream_json(
        &self,
        req: StructuredRequest,
    ) -> BoxStream<'static, Result<ChatChunk, LlmError>> {
        let text = match &req.task {
            StructuredTask::PlayTurn { .. } => write_play_turn(&req.task).to_string(),
            // Other answers are not streamed; written whole, sent in pieces all the same.
            _ => String::new(),
        };
        let input_tokens = req.prompt.split_whitespace().count() as u32;
        self.stream_text(text, input_tokens)
    }

    fn stream_chat(&self, req: ChatRequest) -> BoxStream<'static, Result<ChatChunk, LlmError>> {
        let reply = write_reply(&req);
        let input_tokens = req
            .history
            .iter()
            .map(|t| t.text.split_whitespace().count() as u32)
            .sum::<u32>()
            + req.system.split_whitespace().count() as u32;
        self.stream_text(reply, input_tokens)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::*;

    fn seed() -> CharacterSeed {
        CharacterDraft {
            name: "Mira".into(),
            traits: vec!["brave".into(), "witty".into()],
            age: "27".into(),
            gender: "female".into(),
            language: "English".into(),
            ..Default::default()
        }
        .parse_seed()
        .unwrap()
    }

    #[test]
    fn same_seed_same_character_other_variation_differs() {
        let a = write_character(&seed(), 0);
        assert_eq!(a, write_character(&seed(), 0));
        let differs = (1..10).any(|v| write_character(&seed(), v) != a);
        assert!(differs);
    }

    #[test]
    fn written_character_is_valid() {
        let v = write_character(&seed(), 3);
        let g: GeneratedCharacter = serde_json::from_value(v).unwrap();
        assert_eq!(g.start_options.len(), 3);
        assert_eq!(g.endings.len(), 3);
        assert!(g.backstory.as_str().contains("Mira"));
        assert!(g.backstory.as_str().contains("brave and witty"));
    }

    #[test]
    fn written_shades_are_valid_and_follow_the_words() {
        let text =
            "Q: free afternoon?\nA: I read novels and hike to new places, then cook at home.";
        let value = write_shades(text, 0);
        let parsed: crate::domain::SuggestedShades = serde_json::from_value(value.clone()).unwrap();
        parsed.check().unwrap();
        let names: Vec<&str> = parsed.shades.iter().map(|s| s.name.as_str()).collect();
        assert!(
            names.contains(&"Reader") && names.contains(&"Explorer"),
            "{names:?}"
        );
        assert_eq!(write_shades(text, 0), value, "deterministic");
        // Nothing to go on still gives the fewest Shades a suggestion has, all tentative.
        let parsed: crate::domain::SuggestedShades =
            serde_json::from_value(write_shades("zzz", 1)).unwrap();
        parsed.check().unwrap();
        assert_eq!(parsed.shades.len(), crate::domain::SuggestedShades::MIN);
        assert!(parsed.shades.iter().all(|s| s.confidence.get() < 0.4));
    }

    #[test]
    fn written_matches_are_valid_and_reward_shared_words() {
        let a = "Ada (a person's digital twin)\nShades:\n- 🌙 Night owl (sure): jazz and novels at night\n";
        let b = "Ben (a person's digital twin)\nShades:\n- 📚 Reader (likely): novels and jazz\n";
        let c =
            "Cy (a person's digital twin)\nShades:\n- 🏃 Runner (sure): mornings on the track\n";
        let ab: crate::domain::MatchResult = serde_json::from_value(write_match(a, b)).unwrap();
        let ac: crate::domain::MatchResult = serde_json::from_value(write_match(a, c)).unwrap();
        ab.check().unwrap();
        ac.check().unwrap();
        assert!(ab.score > ac.score, "{:?} vs {:?}", ab.score, ac.score);
        assert!(ab.reasoning.as_str().starts_with("Ada and Ben share"));
        assert_eq!(write_match(a, b), write_match(a, b), "deterministic");
    }

    #[test]
    fn play_scenes_and_summaries_are_valid_and_deterministic() {
        use crate::domain::{Pacing, SummaryOutput, TurnOutput};
        let task = |scene, choices: Vec<Option<usize>>| StructuredTask::PlayTurn {
            name: "Mira".into(),
            scene,
            total: 5,
            choices,
            choice: "Climb the stairs.".into(),
            endings: 3,
            variation: 0,
        };
        let a = write_play_turn(&task(2, vec![Some(0), Some(1)]));
        assert_eq!(a, write_play_turn(&task(2, vec![Some(0), Some(1)])));
        let t = TurnOutput::parse(&a.to_string(), Pacing::Unfolding, 3).unwrap();
        assert_eq!(t.options.len(), 3);
        // The ending follows the choices: mostly second options lead to the second ending.
        let last = write_play_turn(&task(5, vec![Some(1), Some(1), Some(0), Some(1), Some(2)]));
        let t = TurnOutput::parse(&last.to_string(), Pacing::Final, 3).unwrap();
        assert_eq!(t.ending, Some(2));
        let scenes: Vec<(String, String)> = (0..40)
            .map(|i| {
                (
                    format!("Choice {i}."),
                    "It rained. Then it stopped.".repeat(20),
                )
            })
            .collect();
        let s = write_play_summary("Mira", "They met.", &scenes);
        let parsed = SummaryOutput::parse(&s.to_string()).unwrap();
        assert!(parsed.summary.as_str().contains("Choice 39"));
    }

    #[test]
    fn tokens_concatenate_back() {
        let t = "Hello there,  friend. How are you?";
        assert_eq!(tokens(t).concat(), t);
        assert!(tokens(t).len() > 3);
    }
}
