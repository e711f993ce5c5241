-- Several chats per character and per twin (issue 12). A chat is made only by something the user
-- does (the first message, or a greeting chosen, in a new chat; `chat/open` from the API), never by
-- opening a page; its id is chosen when the new-chat page is rendered, so a retried or doubled
-- first message lands in the one chat. The one-chat-per-(owner, character) and per-(owner, twin)
-- indexes go: what they kept (two tabs opening a character never make two chats) is kept by the
-- page writing nothing and by `chat/open` making a chat under the character's (or twin's) row
-- lock, only if there is none (app/src/chat/sessions.rs).
DROP INDEX chat_sessions_owner_character;
DROP INDEX chat_sessions_owner_twin;

-- A chat moved to the trash (epoch ms): hidden, restorable for 30 days, then removed for good.
ALTER TABLE chat_sessions ADD COLUMN deleted_at BIGINT;
CREATE INDEX chat_sessions_twin ON chat_sessions (twin_id, updated_at DESC);
CREATE INDEX chat_sessions_trash ON chat_sessions (owner_id, deleted_at) WHERE deleted_at IS NOT NULL;
