-- The user's own labels on a character: tags (a JSON list, like traits) and a favourite mark.
-- Neither is part of the character's story: they are for finding characters on the dashboard.
ALTER TABLE characters ADD COLUMN tags TEXT NOT NULL DEFAULT '[]';
ALTER TABLE characters ADD COLUMN favourite INTEGER NOT NULL DEFAULT 0 CHECK (favourite IN (0, 1));
-- "Favourites only", newest first, reads just the owner's favourites.
CREATE INDEX characters_owner_favourite ON characters (owner_id, favourite, created_at, id);
-- Each tag of each character, lower-cased by the app (Unicode-aware, unlike SQLite's lower()),
-- with the character's creation time: a tag's characters newest first are one range of the index,
-- read only as far as a page needs, however rare or common the tag. Kept by the app with `tags`
-- (app/src/characters/store.rs::set_tags), in the same transaction.
CREATE TABLE character_tags (
    character_id TEXT NOT NULL REFERENCES characters(id) ON DELETE CASCADE,
    owner_id     TEXT NOT NULL,
    tag          TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    PRIMARY KEY (character_id, tag)
);
CREATE INDEX character_tags_owner_tag ON character_tags (owner_id, tag, created_at, character_id);
