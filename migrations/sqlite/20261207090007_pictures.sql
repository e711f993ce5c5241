-- Pictures users upload for their characters: decoded, stripped of metadata and re-encoded by the
-- server (app/src/characters/pictures.rs) as a portrait and a square thumbnail, both JPEG. Kept in
-- the database, so every server of a scaled-out deployment serves them. A character shows one by
-- its `avatar` being 'upload:' and the picture's id.
CREATE TABLE pictures (
    id         TEXT PRIMARY KEY,
    owner_id   TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    portrait   BLOB NOT NULL,
    thumb      BLOB NOT NULL,
    width      INTEGER NOT NULL,
    height     INTEGER NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX pictures_owner ON pictures (owner_id, created_at);
-- The hourly purge finds pictures no character shows any more.
CREATE INDEX characters_avatar ON characters (avatar);
-- A PNG card's own picture, kept as a picture when the card is imported, for the character made
-- from it.
ALTER TABLE card_imports ADD COLUMN picture TEXT;
