-- Limits counted in the database, so they hold across every server that shares it.

-- Requests per key ("model:{user}", "sign-in:{address}") per fixed window (its start, epoch ms).
-- Counted with one atomic upsert; a key keeps only its current window.
CREATE TABLE rate_limits (
    key          TEXT NOT NULL,
    window_start BIGINT NOT NULL,
    hits         INTEGER NOT NULL,
    PRIMARY KEY (key, window_start)
);

-- Model calls in progress: one row per reply or generation being written, kept alive by its
-- server's heartbeat. A row whose heartbeat stopped (its server died) no longer counts.
CREATE TABLE generation_slots (
    id           TEXT PRIMARY KEY,
    owner_id     TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    session_id   TEXT REFERENCES chat_sessions(id) ON DELETE CASCADE,
    started_at   BIGINT NOT NULL,
    heartbeat_at BIGINT NOT NULL
);
CREATE INDEX generation_slots_owner ON generation_slots (owner_id, heartbeat_at);
CREATE INDEX generation_slots_session ON generation_slots (session_id, heartbeat_at);
