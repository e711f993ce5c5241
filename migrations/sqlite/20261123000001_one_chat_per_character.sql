-- One chat per (owner, character), kept by the database: two tabs opening a character at once
-- used to create two sessions (a check, then an insert). A later issue that allows several chats
-- per character replaces this index with its own rule.
--
-- Doubles already made are folded into the session the app showed (the latest used, then the
-- highest id). A double holding nothing but its greeting is removed; one the user wrote in gives
-- its messages to the kept session first, so nothing anyone wrote is lost.
DELETE FROM chat_sessions
WHERE character_id IS NOT NULL
  AND id <> (SELECT k.id FROM chat_sessions k
             WHERE k.owner_id = chat_sessions.owner_id AND k.character_id = chat_sessions.character_id
             ORDER BY k.updated_at DESC, k.id DESC LIMIT 1)
  AND NOT EXISTS (SELECT 1 FROM chat_messages m
                  WHERE m.session_id = chat_sessions.id AND m.role = 'user');

UPDATE chat_messages
SET session_id = (SELECT k.id FROM chat_sessions s
                  JOIN chat_sessions k ON k.owner_id = s.owner_id AND k.character_id = s.character_id
                  WHERE s.id = chat_messages.session_id
                  ORDER BY k.updated_at DESC, k.id DESC LIMIT 1)
WHERE session_id IN (SELECT s.id FROM chat_sessions s WHERE s.character_id IS NOT NULL);

DELETE FROM chat_sessions
WHERE character_id IS NOT NULL
  AND id <> (SELECT k.id FROM chat_sessions k
             WHERE k.owner_id = chat_sessions.owner_id AND k.character_id = chat_sessions.character_id
             ORDER BY k.updated_at DESC, k.id DESC LIMIT 1);

CREATE UNIQUE INDEX chat_sessions_owner_character ON chat_sessions (owner_id, character_id);
