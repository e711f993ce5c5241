-- Messages as a tree, SQLite dialect (see ../postgres for the same in place).
--
--   chat_messages.parent_id   the message this one follows (NULL for a chat's first message). Its
--                             siblings are its other versions: a regenerated reply, an edited
--                             message. Nothing is overwritten; a new version is a new row.
--   chat_messages.deleted_at  a message deleted by the user (epoch ms): hidden with everything that
--                             follows it on its branch, and restorable (undo).
--   chat_sessions.head_id     the last message of the branch the chat shows; the chat is the path
--                             from it up through the parents.
--
-- Existing chats become one branch each: every message follows the one written before it.
ALTER TABLE chat_messages ADD COLUMN deleted_at BIGINT;
ALTER TABLE chat_sessions ADD COLUMN head_id TEXT;

UPDATE chat_messages SET parent_id = (
    SELECT p.id FROM chat_messages p
    WHERE p.session_id = chat_messages.session_id AND p.seq < chat_messages.seq
    ORDER BY p.seq DESC LIMIT 1
);
UPDATE chat_sessions SET head_id = (
    SELECT m.id FROM chat_messages m WHERE m.session_id = chat_sessions.id ORDER BY m.seq DESC LIMIT 1
);

-- A message's versions (its siblings) in the order written, and a parent's latest child.
CREATE INDEX chat_messages_parent ON chat_messages (parent_id, seq);
-- The versions of a chat's first message (alternate greetings).
CREATE INDEX chat_messages_roots ON chat_messages (session_id, seq) WHERE parent_id IS NULL;
-- Whether a chat has deleted messages at all (most have none: then no walk up is needed).
CREATE INDEX chat_messages_deleted ON chat_messages (session_id) WHERE deleted_at IS NOT NULL;
