-- One chat per (owner, twin), kept by the database like one per (owner, character): the chat with
-- your twin is opened with an insert-or-get.
CREATE UNIQUE INDEX chat_sessions_owner_twin ON chat_sessions (owner_id, twin_id);
