-- Replies that survive servers, Postgres dialect (see ../sqlite for the same by a rebuild).
--
--   seq           a message's place in its chat (1, 2, 3… in the order written). Messages sort by
--                 it, not by the clock, which can step back.
--   heartbeat_at  while a reply is `streaming`, when its server last wrote it (epoch ms); a
--                 stale heartbeat means that server is gone and the reply becomes `interrupted`.
--   status        gains `interrupted`: the server writing the reply stopped before its end.
--   one reply at a time per chat: at most one `streaming` row per session (a partial unique
--                 index), which holds across servers.
--
-- Existing rows are numbered by (created_at, id), the order they were shown in; of several
-- replies streaming in one chat (possible before this rule) all but the latest become
-- `interrupted`.
ALTER TABLE chat_messages ADD COLUMN seq BIGINT;
ALTER TABLE chat_messages ADD COLUMN heartbeat_at BIGINT;

UPDATE chat_messages m SET seq = n.seq
FROM (SELECT id, ROW_NUMBER() OVER (PARTITION BY session_id ORDER BY created_at, id) AS seq
      FROM chat_messages) n
WHERE n.id = m.id;
ALTER TABLE chat_messages ALTER COLUMN seq SET NOT NULL;

ALTER TABLE chat_messages DROP CONSTRAINT chat_messages_status_check;
ALTER TABLE chat_messages ADD CONSTRAINT chat_messages_status_check
    CHECK (status IN ('complete', 'streaming', 'stopped', 'failed', 'interrupted'));

UPDATE chat_messages m SET status = 'interrupted'
WHERE m.status = 'streaming'
  AND m.id <> (SELECT x.id FROM chat_messages x
               WHERE x.session_id = m.session_id AND x.status = 'streaming'
               ORDER BY x.created_at DESC, x.id DESC LIMIT 1);
UPDATE chat_messages SET heartbeat_at = updated_at WHERE status = 'streaming';

DROP INDEX chat_messages_session;
CREATE UNIQUE INDEX chat_messages_session_seq ON chat_messages (session_id, seq);
CREATE UNIQUE INDEX chat_messages_one_streaming ON chat_messages (session_id) WHERE status = 'streaming';
