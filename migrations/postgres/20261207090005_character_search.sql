-- The dashboard at scale: full-text search over a character's name, traits, backstory and world,
-- filters, and three orders, each with its own keyset index.

-- When the character was last chatted with (0: never), kept by app/src/chat/store.rs.
ALTER TABLE characters ADD COLUMN chatted_at BIGINT NOT NULL DEFAULT 0;
UPDATE characters SET chatted_at = COALESCE(
    (SELECT MAX(s.updated_at) FROM chat_sessions s WHERE s.character_id = characters.id), 0);
CREATE INDEX characters_owner_chatted_id ON characters (owner_id, chatted_at, id);
CREATE INDEX characters_owner_name_id ON characters (owner_id, name, id);

-- Postgres: a generated tsvector (the 'simple' configuration: no stemming, as characters are in
-- every language, like SQLite's unicode61 tokenizer) with a GIN index. A search is planned for its
-- own words each time (app/src/characters/store.rs::search_page), so a common word is found by
-- reading the owner's newest rows and a rare one through the index.
ALTER TABLE characters ADD COLUMN search tsvector GENERATED ALWAYS AS (
    to_tsvector('simple', name || ' ' || traits::text || ' ' || backstory || ' ' || story_context)
) STORED;
CREATE INDEX characters_search ON characters USING GIN (search);
