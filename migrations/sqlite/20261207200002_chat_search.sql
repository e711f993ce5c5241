-- Search across a user's chats (issue 12): full text over every message written (a reply once it
-- is no longer being written), kept by triggers in an FTS5 index. Like characters_fts, it is
-- contentless (only the index is kept, keyed by chat_messages' rowids) and its `owner` column holds
-- one token per owner ('o' and the owner's id without dashes), so a search reads only the
-- searcher's entries. Deleted messages stay indexed and are left out by the search's join.
-- Should rowids ever change (a VACUUM may renumber a table without an INTEGER PRIMARY KEY), delete
-- every row of chat_messages_fts and run the INSERT … SELECT at the end of this file again.
CREATE VIRTUAL TABLE chat_messages_fts USING fts5(
    owner, content,
    content = '', contentless_delete = 1
);
CREATE TRIGGER chat_messages_fts_insert AFTER INSERT ON chat_messages
WHEN new.status <> 'streaming' BEGIN
    INSERT INTO chat_messages_fts (rowid, owner, content)
    VALUES (new.rowid,
            (SELECT 'o' || replace(s.owner_id, '-', '') FROM chat_sessions s WHERE s.id = new.session_id),
            new.content);
END;
CREATE TRIGGER chat_messages_fts_delete AFTER DELETE ON chat_messages BEGIN
    DELETE FROM chat_messages_fts WHERE rowid = old.rowid;
END;
CREATE TRIGGER chat_messages_fts_update AFTER UPDATE OF content, status ON chat_messages
WHEN new.status <> 'streaming' BEGIN
    DELETE FROM chat_messages_fts WHERE rowid = old.rowid;
    INSERT INTO chat_messages_fts (rowid, owner, content)
    VALUES (new.rowid,
            (SELECT 'o' || replace(s.owner_id, '-', '') FROM chat_sessions s WHERE s.id = new.session_id),
            new.content);
END;
INSERT INTO chat_messages_fts (rowid, owner, content)
SELECT m.rowid, 'o' || replace(s.owner_id, '-', ''), m.content
FROM chat_messages m JOIN chat_sessions s ON s.id = m.session_id
WHERE m.status <> 'streaming';
