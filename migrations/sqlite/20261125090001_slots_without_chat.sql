-- One reply at a time per chat is enforced by the partial unique index on streaming replies
-- (20261123000002), so generation slots no longer record their chat.
DROP INDEX generation_slots_session;
ALTER TABLE generation_slots DROP COLUMN session_id;
