-- The user's own labels on a character: tags (a JSON list, like traits) and a favourite mark.
-- Neither is part of the character's story: they are for finding characters on the dashboard.
ALTER TABLE characters ADD COLUMN tags TEXT NOT NULL DEFAULT '[]';
-- The same tags lower-cased by the app (Unicode-aware, unlike SQLite's lower()), for the filter.
ALTER TABLE characters ADD COLUMN tag_keys TEXT NOT NULL DEFAULT '[]';
ALTER TABLE characters ADD COLUMN favourite INTEGER NOT NULL DEFAULT 0 CHECK (favourite IN (0, 1));
-- "Favourites only", newest first, reads just the owner's favourites.
CREATE INDEX characters_owner_favourite ON characters (owner_id, favourite, created_at, id);
