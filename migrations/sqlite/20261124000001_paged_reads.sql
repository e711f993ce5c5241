-- Paged reads: the dashboard lists a user's characters newest first by keyset on (created_at, id),
-- so the index carries the id as the tie-breaker (a page boundary inside one millisecond is exact
-- and the next page starts with an index seek). Chat pages use chat_messages_session_seq.
DROP INDEX characters_owner_created;
CREATE INDEX characters_owner_created_id ON characters (owner_id, created_at, id);
