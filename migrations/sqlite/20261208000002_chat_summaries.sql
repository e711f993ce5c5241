-- A chat's running summary: what no longer fits in a reply's prompt, written by the model in the
-- background when the window of messages sent slides on, shown on the chat page and editable.
-- `through_id` is the newest message it covers; `edited_at` when its owner last changed it;
-- `writing_until` the lease of the server writing it (one at a time, across servers).
CREATE TABLE chat_summaries (
    session_id    TEXT PRIMARY KEY REFERENCES chat_sessions(id) ON DELETE CASCADE,
    content       TEXT NOT NULL,
    through_id    TEXT,
    edited_at     BIGINT,
    writing_until BIGINT,
    updated_at    BIGINT NOT NULL
);
