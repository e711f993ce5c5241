-- Search across a user's chats (issue 12): a generated tsvector over each message's text once it
-- is no longer being written (as SQLite's index; a reply streaming is flushed twice a second, and
-- is not indexed until it ends), in the 'simple' configuration (no stemming, as chats are in
-- every language, like SQLite's unicode61 tokenizer), with a GIN index. The search joins the
-- messages to the searcher's chats; deleted messages and chats in the trash are left out there.
ALTER TABLE chat_messages ADD COLUMN search tsvector GENERATED ALWAYS AS (
    CASE WHEN status <> 'streaming' THEN to_tsvector('simple', content) END
) STORED;
CREATE INDEX chat_messages_search ON chat_messages USING GIN (search);
