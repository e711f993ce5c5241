-- Character Cards: a card file read by the import waits here, whole, until the wizard saves the
-- character made from it (then it moves to `characters.card`) or a day passes.
CREATE TABLE card_imports (
    id         TEXT PRIMARY KEY,
    owner_id   TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    spec       TEXT NOT NULL,
    card       TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX card_imports_owner ON card_imports (owner_id, created_at);
-- The card a character was imported from, as it came (every field and extension).
ALTER TABLE characters ADD COLUMN card TEXT;
