//! Prompt builders, one per use. The wording lives in plain-text templates under `templates/`
//! (`{placeholder}` fields), so a prompt change is a reviewable text diff; the snapshot tests
//! below pin exactly what each provider is sent.

use super::{ChatRequest, Persona, Role, StructuredRequest, StructuredTask, Turn};
use crate::domain::{CharacterDraft, CharacterSeed, Section};

const CHARACTER_SYSTEM: &str = include_str!("templates/character_system.txt");
const CHARACTER: &str = include_str!("templates/character.txt");
const CHAT_SYSTEM: &str = include_str!("templates/chat_system.txt");
const REPAIR: &str = include_str!("templates/repair.txt");
const SECTION: &str = include_str!("templates/section.txt");
const TWIN_CHAT_SYSTEM: &str = include_str!("templates/twin_chat_system.txt");
const ICEBREAKER_SYSTEM: &str = include_str!("templates/icebreaker_system.txt");
const MATCH_SYSTEM: &str = include_str!("templates/match_system.txt");
const MATCH: &str = include_str!("templates/match.txt");
const SHADES_SYSTEM: &str = include_str!("templates/shades_system.txt");
/// The turn that asks for a reply to be continued; it follows the reply's text so far.
pub const CONTINUE: &str = include_str!("templates/continue.txt");
const CHAT_SUMMARY_SYSTEM: &str = include_str!("templates/chat_summary_system.txt");
const CHAT_SUMMARY: &str = include_str!("templates/chat_summary.txt");
const SHADES: &str = include_str!("templates/shades.txt");
const PLAY_SYSTEM: &str = include_str!("templates/play_system.txt");
const PLAY_TURN: &str = include_str!("templates/play_turn.txt");
const PLAY_SUMMARY_SYSTEM: &str = include_str!("templates/play_summary_system.txt");
const PLAY_SUMMARY: &str = include_str!("templates/play_summary.txt");

/// How much of a play run's story so far goes into a scene's prompt, in characters (about 3,000
/// tokens): the latest scenes that fit, whole.
pub const PLAY_STORY_BUDGET: usize = 12_000;

/// Everything a play scene is written from.
#[derive(Debug, Clone)]
pub struct PlayScene<'a> {
    pub name: &'a str,
    pub traits: &'a [String],
    pub backstory: &'a str,
    pub story_context: &'a str,
    pub language: &'a str,
    pub opening_line: &'a str,
    /// (kind, what happens), numbered from 1 in the prompt.
    pub endings: &'a [(String, String)],
    /// The scenes played so far: (what the player did, what the character said).
    pub story: &'a [(String, String)],
    /// The running summary of scenes 1 to `summary_through` (empty and 0 when there is none).
    pub summary: &'a str,
    pub summary_through: u8,
    /// The scene to write (1-based) and the run's number of scenes.
    pub scene: u8,
    pub total: u8,
    /// What the player does now, and the option index of every choice so far (this one last).
    pub choice: &'a str,
    pub choices: Vec<Option<usize>>,
    pub variation: u64,
}

/// The index in `story` of the first scene a prompt shows in full: the latest scenes after the
/// summary (`summary_through`) whose text fits in [`PLAY_STORY_BUDGET`], at least the last one.
/// Scenes before it and after the summary are the ones a new summary should fold in.
pub fn story_window(story: &[(String, String)], summary_through: u8) -> usize {
    let floor = usize::from(summary_through).min(story.len());
    let mut used = 0;
    let mut first = story.len();
    for (i, (did, said)) in story.iter().enumerate().rev() {
        if i < floor {
            break;
        }
        let len = did.len() + said.len() + 40;
        if used + len > PLAY_STORY_BUDGET && first < story.len() {
            break;
        }
        used += len;
        first = i;
    }
    first
}

/// The request that folds `scenes` (the scenes after the summary so far, in order) into a play
/// run's running summary.
pub fn play_summary(
    name: &str,
    summary: &str,
    scenes: &[(String, String)],
    first_scene: usize,
) -> StructuredRequest {
    let listed = scenes
        .iter()
        .enumerate()
        .map(|(i, (did, said))| {
            format!(
                "Scene {}. The player: {did}\n{name}: {said}",
                first_scene + i
            )
        })
        .collect::<Vec<_>>()
        .join("\n\n");
    let so_far = if summary.is_empty() {
        "(none yet)"
    } else {
        summary
    };
    StructuredRequest {
        system: PLAY_SUMMARY_SYSTEM.trim_end().to_string(),
        prompt: fill(
            PLAY_SUMMARY,
            &[("name", name), ("summary", so_far), ("scenes", &listed)],
        ),
        schema: crate::domain::SummaryOutput::schema(),
        task: StructuredTask::PlaySummary {
            name: name.to_string(),
            summary: summary.to_string(),
            scenes: scenes.to_vec(),
        },
        repair: None,
    }
}

/// The request that writes one scene of a play run: the character, the world, the endings, the
/// story so far (the latest scenes within [`PLAY_STORY_BUDGET`]), the scene number and the total
/// with what the pacing asks of this scene, and the player's choice.
pub fn play_turn(p: &PlayScene<'_>) -> StructuredRequest {
    use crate::domain::{Pacing, TurnOutput};
    let pacing = Pacing::of(p.scene, p.total);
    let endings = if p.endings.is_empty() {
        "1. (any) The story comes to a close that fits what happened.".to_string()
    } else {
        p.endings
            .iter()
            .enumerate()
            .map(|(i, (kind, text))| format!("{}. ({kind}) {text}", i + 1))
            .collect::<Vec<_>>()
            .join("\n")
    };
    // The running summary, then the latest scenes that fit, whole; a line says which earlier ones
    // are in neither (the summary of them is still being written).
    let first = story_window(p.story, p.summary_through);
    let through = usize::from(p.summary_through).min(first);
    let mut story = String::new();
    if !p.summary.is_empty() && through > 0 {
        story.push_str(&format!(
            "Earlier in the story (scenes 1 to {through}, summarised): {}\n\n",
            p.summary
        ));
    }
    if first > through {
        story.push_str(&format!(
            "(Scenes {} to {first} happened earlier.)\n\n",
            through + 1
        ));
    }
    let kept: Vec<String> = p.story[first..]
        .iter()
        .enumerate()
        .map(|(i, (did, said))| {
            format!(
                "Scene {}. The player: {did}\n{}: {said}",
                first + i + 1,
                p.name
            )
        })
        .collect();
    story.push_str(&kept.join("\n\n"));
    let story = if story.is_empty() {
        "(Nothing yet: this is the first scene.)".to_string()
    } else {
        story.trim_end().to_string()
    };
    let pacing_text = match pacing {
        Pacing::Unfolding => {
            "The story is still unfolding: let the player's choice matter, raise a question or a \
             complication, and offer three different ways forward."
        }
        Pacing::Building => {
            "The story is past two thirds: build toward the ending the player's choices point \
             to, and let the options lead there."
        }
        Pacing::Final => {
            "This is the last scene: end the story now with one of the endings above — the one \
             the player's choices earned — and give its number as \"ending\"."
        }
    };
    let traits = p.traits.join(", ");
    let (scene, total) = (p.scene.to_string(), p.total.to_string());
    let prompt = fill(
        PLAY_TURN,
        &[
            ("name", p.name),
            ("traits", &traits),
            ("backstory", p.backstory),
            ("story_context", p.story_context),
            ("opening_line", p.opening_line),
            ("endings", &endings),
            ("story", &story),
            ("scene", &scene),
            ("total", &total),
            ("pacing", pacing_text),
            ("choice", p.choice),
        ],
    );
    let endings_n = p.endings.len().max(1);
    StructuredRequest {
        system: fill(PLAY_SYSTEM, &[("name", p.name), ("language", p.language)]),
        prompt,
        schema: TurnOutput::schema(pacing, endings_n),
        task: StructuredTask::PlayTurn {
            name: p.name.to_string(),
            scene: p.scene,
            total: p.total,
            choices: p.choices.clone(),
            choice: p.choice.to_string(),
            endings: endings_n,
            variation: p.variation,
        },
        repair: None,
    }
}

/// Fills `{key}` fields. Values are inserted as they are; a value's own braces are not expanded.
fn fill(template: &str, fields: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(template.len() + 256);
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        match after.find('}').map(|end| (&after[..end], end)) {
            Some((key, end)) if fields.iter().any(|(k, _)| *k == key) => {
                out.push_str(
                    fields
                        .iter()
                        .find(|(k, _)| *k == key)
                        .map(|(_, v)| *v)
                        .unwrap_or(""),
                );
                rest = &after[end + 1..];
            }
            _ => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out.trim_end().to_string()
}

/// The request that writes a character's story parts from its seed.
pub fn character(seed: &CharacterSeed, variation: u64) -> StructuredRequest {
    let traits = seed.traits.to_strings().join(", ");
    let age = seed.age.get().to_string();
    let prompt = fill(
        CHARACTER,
        &[
            ("name", seed.name.as_str()),
            ("age", &age),
            ("gender", seed.gender.label()),
            ("traits", &traits),
            ("language", seed.language.as_str()),
        ],
    );
    StructuredRequest {
        system: CHARACTER_SYSTEM.trim_end().to_string(),
        prompt,
        schema: character_schema(),
        task: StructuredTask::Character {
            seed: seed.clone(),
            variation,
        },
        repair: None,
    }
}

/// The request that writes one `section` of a character again, with every other field of `draft`
/// given as context so the new section agrees with them (and the user's edits are kept).
pub fn section(
    seed: &CharacterSeed,
    draft: &CharacterDraft,
    section: Section,
    variation: u64,
) -> StructuredRequest {
    let traits = seed.traits.to_strings().join(", ");
    let age = seed.age.get().to_string();
    let options = draft.start_options.join(" | ");
    let endings = draft
        .endings
        .iter()
        .map(|e| format!("{}: {}", e.kind, e.text))
        .collect::<Vec<_>>()
        .join(" | ");
    let schema = section.schema();
    let instructions = schema["properties"][section.key()]["description"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let prompt = fill(
        SECTION,
        &[
            ("name", seed.name.as_str()),
            ("age", &age),
            ("gender", seed.gender.label()),
            ("traits", &traits),
            ("backstory", &draft.backstory),
            ("story_context", &draft.story_context),
            ("opening_line", &draft.opening_line),
            ("start_options", &options),
            ("endings", &endings),
            ("label", section.label()),
            ("language", seed.language.as_str()),
            ("key", section.key()),
            ("instructions", &instructions),
        ],
    );
    StructuredRequest {
        system: CHARACTER_SYSTEM.trim_end().to_string(),
        prompt,
        schema,
        task: StructuredTask::Section {
            seed: seed.clone(),
            section,
            variation,
        },
        repair: None,
    }
}

/// The request that suggests Shades for a twin from a questionnaire (each answered question with
/// its answer) and a pasted bio.
pub fn shades(q: &crate::domain::Questionnaire, variation: u64) -> StructuredRequest {
    let mut material = String::new();
    for (question, answer) in &q.answers {
        material.push_str(&format!("Q: {question}\nA: {answer}\n\n"));
    }
    if !q.bio.as_str().is_empty() {
        material.push_str(&format!("In their own words:\n{}\n", q.bio));
    }
    StructuredRequest {
        system: SHADES_SYSTEM.trim_end().to_string(),
        prompt: fill(SHADES, &[("material", material.trim_end())]),
        schema: crate::domain::SuggestedShades::schema(),
        task: StructuredTask::Shades {
            text: material,
            variation,
        },
        repair: None,
    }
}

/// The request for a reply from the user's own twin: the system prompt built from its name, bio
/// and Shades (each with its icon, confidence in words, description and topics).
pub fn twin_chat(
    name: &str,
    bio: &str,
    shades: &[crate::domain::ShadeDraft],
    history: Vec<Turn>,
) -> ChatRequest {
    let listed: Vec<String> = shades
        .iter()
        .map(|s| {
            let mut line = format!(
                "- {} {} ({}): {}",
                s.icon,
                s.name,
                crate::domain::Confidence::words(s.confidence),
                s.description
            );
            if !s.topics.is_empty() {
                line.push_str(&format!(" [from: {}]", s.topics));
            }
            line
        })
        .collect();
    let shades_text = if listed.is_empty() {
        "(none yet)".to_string()
    } else {
        listed.join("\n")
    };
    let bio = if bio.trim().is_empty() {
        "(no bio yet)"
    } else {
        bio
    };
    let system = fill(
        TWIN_CHAT_SYSTEM,
        &[("name", name), ("bio", bio), ("shades", &shades_text)],
    );
    ChatRequest {
        system,
        history,
        persona: Persona {
            name: name.to_string(),
            traits: shades.iter().map(|s| s.name.to_lowercase()).collect(),
            story_context: bio.to_string(),
        },
        after: None,
    }
}

/// The request that scores two personas, from the profiles the matching service built (which
/// hold only what may be used for this pair).
pub fn match_pair(a: &str, b: &str) -> StructuredRequest {
    StructuredRequest {
        system: MATCH_SYSTEM.trim_end().to_string(),
        prompt: fill(MATCH, &[("a", a.trim_end()), ("b", b.trim_end())]),
        schema: crate::domain::MatchResult::schema(),
        task: StructuredTask::Match {
            a: a.to_string(),
            b: b.to_string(),
        },
        repair: None,
    }
}

/// The request for the next line of an icebreaker, spoken by `name` (with `profile`) to
/// `other`: `said` is the conversation so far as (spoken by `name`, text).
pub fn icebreaker_line(
    (name, profile): (&str, &str),
    (other, other_profile): (&str, &str),
    said: &[(bool, String)],
) -> ChatRequest {
    let system = fill(
        ICEBREAKER_SYSTEM,
        &[
            ("name", name),
            ("other", other),
            ("profile", profile.trim_end()),
            ("other_profile", other_profile.trim_end()),
        ],
    );
    // The conversation opens on a user turn: a stage direction when `name` speaks first.
    let mut history = Vec::with_capacity(said.len() + 1);
    if said.first().is_none_or(|(mine, _)| *mine) {
        history.push(Turn {
            role: Role::User,
            text: format!("({name} and {other} meet. Say hello to {other}.)"),
        });
    }
    for (mine, text) in said {
        history.push(Turn {
            role: if *mine { Role::Model } else { Role::User },
            text: text.clone(),
        });
    }
    ChatRequest {
        system,
        history,
        persona: Persona {
            name: name.to_string(),
            traits: Vec::new(),
            story_context: other_profile.to_string(),
        },
        after: None,
    }
}

/// The correction request of the one repair attempt.
pub fn repair(problem: &str) -> String {
    fill(REPAIR, &[("problem", problem)])
}

/// The JSON schema of a generated character, generated from its validators.
pub fn character_schema() -> serde_json::Value {
    crate::domain::GeneratedCharacter::schema()
}

/// The request for a chat reply in character.
pub fn chat(persona: Persona, backstory: &str, history: Vec<Turn>) -> ChatRequest {
    let traits = persona.traits.join(", ");
    let system = fill(
        CHAT_SYSTEM,
        &[
            ("name", persona.name.as_str()),
            ("traits", &traits),
            ("backstory", backstory),
            ("context", persona.story_context.as_str()),
        ],
    );
    ChatRequest {
        system,
        history,
        persona,
        after: None,
    }
}

/// The request that updates a chat's running summary: the summary so far (empty: none yet) and
/// what was said since, each line `Name: text`.
pub fn chat_summary(
    name: &str,
    user: &str,
    previous: &str,
    said: &[(String, String)],
) -> ChatRequest {
    let said: Vec<String> = said
        .iter()
        .map(|(who, text)| format!("{who}: {text}"))
        .collect();
    let previous = if previous.trim().is_empty() {
        "(none yet)"
    } else {
        previous.trim()
    };
    ChatRequest {
        system: fill(CHAT_SUMMARY_SYSTEM, &[("name", name), ("user", user)]),
        history: vec![Turn {
            role: Role::User,
            text: fill(
                CHAT_SUMMARY,
                &[("previous", previous), ("said", &said.join("\n"))],
            ),
        }],
        persona: Persona {
            name: name.to_string(),
            traits: Vec::new(),
            story_context: String::new(),
        },
        after: None,
    }
}

/// The last user message of a history, for providers that answer only it.
pub fn last_user_text(history: &[Turn]) -> &str {
    history
        .iter()
        .rev()
        .find(|t| t.role == Role::User)
        .map(|t| t.text.as_str())
        .unwrap_or("")
}

/// Snapshots of exactly what each use sends, per provider. A change to a prompt shows up here as a
/// reviewable diff (`cargo insta review`).
#[cfg(test)]
mod tests {
    use super::*;
    use crate::infra::config::Secret;
    use crate::infra::llm::{gemini, http::RetryPolicy, openai, Sampling};
    use serde_json::json;
    use std::time::Duration;

    fn seed() -> CharacterSeed {
        crate::domain::CharacterDraft {
            name: "Mira Voss".into(),
            traits: vec!["brave".into(), "sarcastic".into()],
            age: "31".into(),
            gender: "female".into(),
            language: "Português".into(),
            ..Default::default()
        }
        .parse_seed()
        .unwrap()
    }

    fn gemini_cfg() -> gemini::GeminiConfig {
        gemini::GeminiConfig {
            api_key: Secret::new("k"),
            model: "gemini-2.5-flash".into(),
            base_url: "http://127.0.0.1:1/v1beta".into(),
            thinking_budget: Some(0),
            safety_threshold: Some("BLOCK_ONLY_HIGH".into()),
            sampling: Sampling::default(),
            timeout: Duration::from_secs(1),
            idle_timeout: Duration::from_secs(1),
            retry: RetryPolicy::default(),
        }
    }

    fn chat_req() -> ChatRequest {
        chat(
            Persona {
                name: "Mira Voss".into(),
                traits: vec!["brave".into(), "sarcastic".into()],
                story_context: "A drowned city.".into(),
            },
            "Born at sea.",
            vec![
                Turn {
                    role: Role::Model,
                    text: "You came back.".into(),
                },
                Turn {
                    role: Role::User,
                    text: "I had to.".into(),
                },
            ],
        )
    }

    #[test]
    fn fill_replaces_known_fields_only() {
        assert_eq!(fill("a {x} {y} {", &[("x", "{y}")]), "a {y} {y} {");
    }

    #[test]
    fn gemini_character_request() {
        let r = character(&seed(), 0);
        insta::assert_json_snapshot!(gemini::GeminiProvider::body(
            &gemini_cfg(),
            &r.system,
            &r.turns(),
            Some(&r.schema)
        ));
    }

    /// A chat with one's twin: the system prompt from its bio and Shades.
    #[test]
    fn gemini_twin_chat_request() {
        let shades = vec![
            crate::domain::ShadeDraft {
                name: "Night owl".into(),
                icon: "🌙".into(),
                description: "Your best ideas arrive after midnight.".into(),
                confidence: 0.9,
                topics: "late nights, jazz".into(),
                ..Default::default()
            },
            crate::domain::ShadeDraft {
                name: "Patient teacher".into(),
                icon: "📚".into(),
                description: "You explain things twice without sighing.".into(),
                confidence: 0.5,
                ..Default::default()
            },
        ];
        let r = twin_chat(
            "Ada",
            "Librarian in Porto.",
            &shades,
            vec![Turn {
                role: Role::User,
                text: "What do we do on Sundays?".into(),
            }],
        );
        insta::assert_json_snapshot!(gemini::GeminiProvider::body(
            &gemini_cfg(),
            &r.system,
            &r.history,
            None
        ));
    }

    /// A twin and a character scored: both profiles as the matching service writes them.
    #[test]
    fn gemini_match_request() {
        let twin = crate::matches::service::twin_profile(
            "Ada",
            "Librarian in Porto.",
            &[crate::domain::ShadeDraft {
                name: "Night owl".into(),
                icon: "🌙".into(),
                description: "Your best ideas arrive after midnight.".into(),
                confidence: 0.9,
                topics: "late nights".into(),
                ..Default::default()
            }],
            false,
        );
        let r = match_pair(
            &twin,
            "Mira Voss (a character: 31 years, female)\nTraits: brave, sarcastic\nBackstory: Born at sea.\nWorld: A drowned city.\n",
        );
        insta::assert_json_snapshot!(gemini::GeminiProvider::body(
            &gemini_cfg(),
            &r.system,
            &r.turns(),
            Some(&r.schema)
        ));
    }

    /// The third line of an icebreaker, spoken by the side that opened it.
    #[test]
    fn gemini_icebreaker_request() {
        let r = icebreaker_line(
            (
                "Ada",
                "Ada (a person's digital twin)\nShades:\n- 🌙 Night owl (sure): Late ideas.\n",
            ),
            (
                "Mira Voss",
                "Mira Voss (a character: 31 years, female)\nTraits: brave\n",
            ),
            &[
                (true, "Hello, Mira.".into()),
                (false, "Hello, stranger.".into()),
            ],
        );
        insta::assert_json_snapshot!(gemini::GeminiProvider::body(
            &gemini_cfg(),
            &r.system,
            &r.history,
            None
        ));
    }

    /// Shades from two answers and a bio.
    #[test]
    fn gemini_shades_request() {
        let q = crate::domain::ShadeQuestionnaire {
            answers: vec![
                "I hike and take photos of moss.".into(),
                String::new(),
                "Old maps and how cities grew.".into(),
            ],
            bio: "Librarian in Porto. I make terrible puns.".into(),
        }
        .parse()
        .unwrap();
        let r = shades(&q, 0);
        insta::assert_json_snapshot!(gemini::GeminiProvider::body(
            &gemini_cfg(),
            &r.system,
            &r.turns(),
            Some(&r.schema)
        ));
    }

    /// Writing the endings again: every other field, as the user left it, is in the prompt.
    #[test]
    fn gemini_section_request() {
        let mut draft = crate::domain::CharacterDraft {
            backstory: "She kept the lighthouse for nine winters.".into(),
            story_context: "A storm coast where ships still vanish.".into(),
            opening_line: "Come in out of the storm.".into(),
            start_options: vec!["Knock.".into(), "Wait.".into(), "Look around.".into()],
            ..Default::default()
        };
        draft.endings = vec![crate::domain::DraftEnding {
            kind: "happy".into(),
            text: "The light holds.".into(),
        }];
        let r = section(&seed(), &draft, Section::Endings, 0);
        assert_eq!(r.schema["required"], json!(["endings"]));
        insta::assert_json_snapshot!(gemini::GeminiProvider::body(
            &gemini_cfg(),
            &r.system,
            &r.turns(),
            Some(&r.schema)
        ));
    }

    #[test]
    fn gemini_character_repair_request() {
        let mut r = character(&seed(), 0);
        r.repair = Some(crate::infra::llm::Repair {
            previous: "{\"backstory\": 1}".into(),
            problem: "invalid type: integer `1`, expected a string".into(),
        });
        insta::assert_json_snapshot!(gemini::GeminiProvider::body(
            &gemini_cfg(),
            &r.system,
            &r.turns(),
            Some(&r.schema)
        ));
    }

    #[test]
    fn gemini_chat_request() {
        let r = chat_req();
        insta::assert_json_snapshot!(gemini::GeminiProvider::body(
            &gemini_cfg(),
            &r.system,
            &r.history,
            None
        ));
    }

    /// A 5-scene run of Mira's story at `scene`, with the scenes before it played.
    fn play_scene_request(scene: u8) -> StructuredRequest {
        let traits = vec!["brave".to_string(), "sarcastic".to_string()];
        let endings = vec![
            (
                "happy".to_string(),
                "The light holds and the ships come home.".to_string(),
            ),
            (
                "tragic".to_string(),
                "The lamp goes dark for good.".to_string(),
            ),
            (
                "ambiguous".to_string(),
                "A ship appears, but no one is aboard.".to_string(),
            ),
        ];
        let story: Vec<(String, String)> = (1..scene)
            .map(|i| {
                (
                    format!("Choice {i}: climb the stairs."),
                    format!("Scene {i}: the wind answers."),
                )
            })
            .collect();
        play_turn(&PlayScene {
            name: "Mira Voss",
            traits: &traits,
            backstory: "She kept the lighthouse for nine winters.",
            story_context: "A storm coast where ships still vanish.",
            language: "English",
            opening_line: "Come in out of the storm.",
            endings: &endings,
            story: &story,
            summary: "",
            summary_through: 0,
            scene,
            total: 5,
            choice: "Light the lamp.",
            choices: (1..=scene).map(|i| Some(usize::from(i) % 3)).collect(),
            variation: 0,
        })
    }

    /// Play mode's first, a middle, the penultimate and the last scene of a 5-scene run: the
    /// pacing line, the schema (options, or the ending at the last) and the story so far.
    #[test]
    fn gemini_play_scene_requests() {
        for (scene, label) in [(1, "first"), (3, "middle"), (4, "penultimate"), (5, "last")] {
            let r = play_scene_request(scene);
            let body =
                gemini::GeminiProvider::body(&gemini_cfg(), &r.system, &r.turns(), Some(&r.schema));
            insta::assert_json_snapshot!(format!("gemini_play_scene_{label}"), body);
        }
    }

    #[test]
    fn a_long_story_keeps_its_latest_scenes_within_the_budget() {
        let story: Vec<(String, String)> = (0..25)
            .map(|i| (format!("choice {i}"), "x".repeat(1100)))
            .collect();
        let traits = Vec::new();
        let r = play_turn(&PlayScene {
            name: "M",
            traits: &traits,
            backstory: "",
            story_context: "",
            language: "English",
            opening_line: "",
            endings: &[],
            story: &story,
            summary: "",
            summary_through: 0,
            scene: 25,
            total: 25,
            choice: "go",
            choices: vec![None; 25],
            variation: 0,
        });
        assert!(
            r.prompt.contains("(Scenes 1 to 15 happened earlier.)"),
            "{}",
            &r.prompt[..400]
        );
        assert!(r.prompt.contains("Scene 25. The player: choice 24"));
        assert!(!r.prompt.contains("The player: choice 14\n"));
        // No endings of its own: one generic ending to reach.
        assert_eq!(r.schema["properties"]["ending"]["maximum"], 1);
        assert_eq!(story_window(&story, 0), 15);
        // With a summary of scenes 1 to 12: the summary, a line for 13 to 15, then 16 to 25.
        let with_summary = play_turn(&PlayScene {
            summary: "They climbed the tower.",
            summary_through: 12,
            story: &story,
            ..scene_of(&traits)
        });
        assert!(with_summary.prompt.contains(
            "Earlier in the story (scenes 1 to 12, summarised): They climbed the tower.\n\n(Scenes 13 to 15 happened earlier.)"
        ));
        // A summary reaching past the window covers it; the window starts after it.
        assert_eq!(story_window(&story, 20), 20);
        assert_eq!(story_window(&story[..3], 0), 0);
    }

    /// Folding scenes 3 and 4 into a run's summary.
    #[test]
    fn gemini_play_summary_request() {
        let scenes = vec![
            (
                "Climb the stairs.".to_string(),
                "The wind answers.".to_string(),
            ),
            (
                "Light the lamp.".to_string(),
                "The sea goes quiet.".to_string(),
            ),
        ];
        let r = play_summary("Mira Voss", "They met at the harbour.", &scenes, 3);
        assert!(r.prompt.contains("Scene 4. The player: Light the lamp."));
        insta::assert_json_snapshot!(gemini::GeminiProvider::body(
            &gemini_cfg(),
            &r.system,
            &r.turns(),
            Some(&r.schema)
        ));
    }

    fn scene_of(traits: &[String]) -> PlayScene<'_> {
        PlayScene {
            name: "M",
            traits,
            backstory: "",
            story_context: "",
            language: "English",
            opening_line: "",
            endings: &[],
            story: &[],
            summary: "",
            summary_through: 0,
            scene: 25,
            total: 25,
            choice: "go",
            choices: vec![None; 25],
            variation: 0,
        }
    }

    #[test]
    fn openai_chat_request() {
        let cfg = openai::OpenAiConfig {
            base_url: "http://127.0.0.1:1/v1".into(),
            api_key: None,
            model: "llama3.2".into(),
            sampling: Sampling::default(),
            timeout: Duration::from_secs(1),
            idle_timeout: Duration::from_secs(1),
            retry: RetryPolicy::default(),
        };
        let r = chat_req();
        insta::assert_json_snapshot!(openai::OpenAiProvider::body(
            &cfg, &r.system, &r.history, None, true
        ));
    }

    /// A card's post-history instructions follow the last message: in it when it is the user's,
    /// as a message of their own after a reply; the history itself is not changed.
    #[test]
    fn instructions_after_the_history_follow_the_last_message() {
        let mut r = chat_req();
        assert_eq!(&*r.wire_history(), &r.history[..]);
        r.after = Some("Be brief.".into());
        let wire = r.wire_history();
        let last = wire.last().unwrap();
        assert_eq!(last.role, Role::User);
        assert!(last.text.ends_with("\n\nBe brief."));
        assert_eq!(wire.len(), r.history.len());
        assert!(!r.history.last().unwrap().text.contains("Be brief."));
        r.history.push(Turn {
            role: Role::Model,
            text: "Hm.".into(),
        });
        let wire = r.wire_history();
        assert_eq!(wire.len(), r.history.len() + 1);
        assert_eq!(wire.last().unwrap().text, "Be brief.");
    }
}
