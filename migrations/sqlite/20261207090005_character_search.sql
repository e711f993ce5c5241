-- The dashboard at scale: full-text search over a character's name, traits, backstory and world,
-- filters, and three orders, each with its own keyset index.

-- When the character was last chatted with (0: never), kept by app/src/chat/store.rs.
ALTER TABLE characters ADD COLUMN chatted_at BIGINT NOT NULL DEFAULT 0;
UPDATE characters SET chatted_at = COALESCE(
    (SELECT MAX(s.updated_at) FROM chat_sessions s WHERE s.character_id = characters.id), 0);
CREATE INDEX characters_owner_chatted_id ON characters (owner_id, chatted_at, id);
CREATE INDEX characters_owner_name_id ON characters (owner_id, name, id);

-- SQLite: an FTS5 index (contentless: it keeps only the index, keyed by the characters' rowids),
-- kept by triggers. Its `owner` column holds one token per owner ('o' and the owner's id without
-- dashes), so a search reads only the searcher's own entries, newest (highest rowid) first.
-- Should rowids ever change (a VACUUM may renumber a table without an INTEGER PRIMARY KEY),
-- delete every row of characters_fts and run the INSERT … SELECT at the end of this file again.
CREATE VIRTUAL TABLE characters_fts USING fts5(
    owner, name, traits, backstory, story_context,
    content = '', contentless_delete = 1
);
CREATE TRIGGER characters_fts_insert AFTER INSERT ON characters BEGIN
    INSERT INTO characters_fts (rowid, owner, name, traits, backstory, story_context)
    VALUES (new.rowid, 'o' || replace(new.owner_id, '-', ''), new.name, new.traits, new.backstory, new.story_context);
END;
CREATE TRIGGER characters_fts_delete AFTER DELETE ON characters BEGIN
    DELETE FROM characters_fts WHERE rowid = old.rowid;
END;
CREATE TRIGGER characters_fts_update AFTER UPDATE OF owner_id, name, traits, backstory, story_context ON characters BEGIN
    DELETE FROM characters_fts WHERE rowid = old.rowid;
    INSERT INTO characters_fts (rowid, owner, name, traits, backstory, story_context)
    VALUES (new.rowid, 'o' || replace(new.owner_id, '-', ''), new.name, new.traits, new.backstory, new.story_context);
END;
INSERT INTO characters_fts (rowid, owner, name, traits, backstory, story_context)
SELECT rowid, 'o' || replace(owner_id, '-', ''), name, traits, backstory, story_context FROM characters;
