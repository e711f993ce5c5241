-- Replies that survive servers, SQLite dialect (see ../postgres for the same in place).
--
--   seq           a message's place in its chat (1, 2, 3… in the order written). Messages sort by
--                 it, not by the clock, which can step back.
--   heartbeat_at  while a reply is `streaming`, when its server last wrote it (epoch ms); a
--                 stale heartbeat means that server is gone and the reply becomes `interrupted`.
--   status        gains `interrupted`: the server writing the reply stopped before its end.
--   one reply at a time per chat: at most one `streaming` row per session (a partial unique
--                 index), which holds across servers.
--
-- SQLite cannot change a CHECK constraint in place, so the table is rebuilt: the new one is made
-- under another name (its self-reference naming itself, so the rename below rewrites it), filled,
-- the old one dropped and the new one renamed. Existing rows are numbered by (created_at, id),
-- the order they were shown in; of several replies streaming in one chat (possible before this
-- rule) all but the latest become `interrupted`.
CREATE TABLE chat_messages_new (
    id            TEXT PRIMARY KEY,
    session_id    TEXT NOT NULL REFERENCES chat_sessions(id) ON DELETE CASCADE,
    seq           BIGINT NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('user', 'assistant', 'system')),
    content       TEXT NOT NULL,
    status        TEXT NOT NULL CHECK (status IN ('complete', 'streaming', 'stopped', 'failed', 'interrupted')),
    -- An alternative reply (regenerate) points at the message it replaces.
    parent_id     TEXT REFERENCES chat_messages_new(id) ON DELETE CASCADE,
    provider      TEXT,
    input_tokens  INTEGER,
    output_tokens INTEGER,
    heartbeat_at  BIGINT,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);

INSERT INTO chat_messages_new (id, session_id, seq, role, content, status, parent_id, provider,
                               input_tokens, output_tokens, heartbeat_at, created_at, updated_at)
SELECT m.id, m.session_id,
       ROW_NUMBER() OVER (PARTITION BY m.session_id ORDER BY m.created_at, m.id),
       m.role, m.content,
       CASE WHEN m.status = 'streaming'
                 AND m.id <> (SELECT x.id FROM chat_messages x
                              WHERE x.session_id = m.session_id AND x.status = 'streaming'
                              ORDER BY x.created_at DESC, x.id DESC LIMIT 1)
            THEN 'interrupted' ELSE m.status END,
       m.parent_id, m.provider, m.input_tokens, m.output_tokens,
       CASE WHEN m.status = 'streaming' THEN m.updated_at END,
       m.created_at, m.updated_at
FROM chat_messages m;
UPDATE chat_messages_new SET heartbeat_at = NULL WHERE status <> 'streaming';

DROP TABLE chat_messages;
ALTER TABLE chat_messages_new RENAME TO chat_messages;

CREATE UNIQUE INDEX chat_messages_session_seq ON chat_messages (session_id, seq);
CREATE UNIQUE INDEX chat_messages_one_streaming ON chat_messages (session_id) WHERE status = 'streaming';
