-- What the model saw: for each chat reply, what its prompt was built from (system prompt,
-- lorebook entries, summary, instructions, token counts, as JSON), and which messages of its
-- branch were sent — the newest (`last_turn_id`) and how many of the branch up to it (`span`),
-- read back from the chat (a message's text changes only while it is the reply being written or
-- continued). A continued reply keeps the record of its latest continuation.
CREATE TABLE chat_prompts (
    message_id   TEXT PRIMARY KEY REFERENCES chat_messages(id) ON DELETE CASCADE,
    session_id   TEXT NOT NULL REFERENCES chat_sessions(id) ON DELETE CASCADE,
    last_turn_id TEXT,
    span         BIGINT NOT NULL,
    seen         TEXT NOT NULL,
    created_at   BIGINT NOT NULL
);
CREATE INDEX chat_prompts_session ON chat_prompts (session_id);
