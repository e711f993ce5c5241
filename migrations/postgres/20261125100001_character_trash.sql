-- Deleting a character moves it, with its chats, to the trash: `deleted_at` is set and every read
-- outside the trash skips it. After 30 days it is removed for good (chats cascade).
ALTER TABLE characters ADD COLUMN deleted_at BIGINT;
CREATE INDEX characters_trash ON characters (owner_id, deleted_at);
