//! Prompt builders, one per use. The templates are plain text so they can be reviewed.

use super::{ChatRequest, Persona, Role, StructuredRequest, StructuredTask, Turn};
use crate::domain::CharacterSeed;
use serde_json::json;

const CHARACTER_SYSTEM: &str = "You are a narrative designer who writes characters for games and \
interactive stories. You write vivid, specific, original material, avoid clichés, and always answer \
with JSON that matches the given schema exactly.";

/// The request that writes a character's story parts from its seed.
pub fn character(seed: &CharacterSeed, variation: u64) -> StructuredRequest {
    let traits = seed.traits.to_strings().join(", ");
    let prompt = format!(
        "Write a character for an interactive story.\n\
         Name: {name}\nAge: {age}\nGender: {gender}\nTraits: {traits}\n\
         Write every text in {language}.\n\n\
         Return:\n\
         - backstory: two or three paragraphs about their past, shaped by the traits;\n\
         - story_context: about two paragraphs describing the world and the situation the story starts in;\n\
         - opening_line: one sentence the character says to the player to open the story;\n\
         - start_options: exactly three first choices for the player: one bold, one cautious, one curious;\n\
         - endings: exactly three endings with kinds \"happy\", \"tragic\" and \"ambiguous\".",
        name = seed.name,
        age = seed.age.get(),
        gender = seed.gender.label(),
        language = seed.language,
    );
    StructuredRequest {
        system: CHARACTER_SYSTEM.to_string(),
        prompt,
        schema: character_schema(),
        task: StructuredTask::Character {
            seed: seed.clone(),
            variation,
        },
        repair: None,
    }
}

/// The correction request of the one repair attempt.
pub fn repair(problem: &str) -> String {
    format!(
        "Your previous answer could not be used: {problem}\n\
         Answer again with the complete JSON object, corrected, following the schema exactly."
    )
}

/// The JSON schema of a generated character.
pub fn character_schema() -> serde_json::Value {
    json!({
        "type": "object",
        "properties": {
            "backstory": {"type": "string"},
            "story_context": {"type": "string"},
            "opening_line": {"type": "string"},
            "start_options": {"type": "array", "items": {"type": "string"}, "minItems": 3, "maxItems": 3},
            "endings": {
                "type": "array", "minItems": 3, "maxItems": 3,
                "items": {
                    "type": "object",
                    "properties": {"kind": {"type": "string"}, "text": {"type": "string"}},
                    "required": ["kind", "text"]
                }
            }
        },
        "required": ["backstory", "story_context", "opening_line", "start_options", "endings"]
    })
}

/// The request for a chat reply in character.
pub fn chat(persona: Persona, backstory: &str, history: Vec<Turn>) -> ChatRequest {
    let system = format!(
        "You are {name}, a character in an interactive story. Stay in character at all times and \
         answer as {name} would, in the language the user writes in. Keep replies to a few sentences.\n\n\
         Traits: {traits}\n\nBackstory:\n{backstory}\n\nThe world:\n{context}",
        name = persona.name,
        traits = persona.traits.join(", "),
        context = persona.story_context,
    );
    ChatRequest {
        system,
        history,
        persona,
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
