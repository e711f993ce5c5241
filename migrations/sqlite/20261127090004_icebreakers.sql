-- A match's icebreaker: the two personas talking for a few turns, the model speaking for each in
-- turn from the profile the match was scored on. One per match (starting again replaces it);
-- each line is saved as it is finished, so a failure keeps what was said. `status` 'writing'
-- while a server writes it (`updated_at` its heartbeat, per line).
CREATE TABLE icebreakers (
    match_id   TEXT PRIMARY KEY REFERENCES matches(id) ON DELETE CASCADE,
    started_by TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    status     TEXT NOT NULL CHECK (status IN ('writing', 'complete', 'failed')),
    lines      TEXT NOT NULL DEFAULT '[]',
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
