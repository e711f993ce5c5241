-- Play mode: a run is one playthrough of a character's story, scene by scene; a turn is one
-- scene: the player's choice (saved before the model is called) and what the character said,
-- with the options it offered, or at the last scene the ending reached.
--
-- A run keeps what it started from (the opening line, the start options, the endings, the number
-- of scenes), so editing the character later does not rewrite a story already played.
-- Turns are never overwritten: a re-rolled turn is kept, marked `superseded`, and a new one
-- takes its place. At most one turn of a run is being written at a time (a partial unique
-- index), across servers; a turn whose server died (no heartbeat) becomes `interrupted`.
CREATE TABLE play_runs (
    id            TEXT PRIMARY KEY,
    owner_id      TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    character_id  TEXT NOT NULL REFERENCES characters(id) ON DELETE CASCADE,
    scenes        INTEGER NOT NULL CHECK (scenes BETWEEN 1 AND 25),
    opening_line  TEXT NOT NULL,
    start_options TEXT NOT NULL,
    endings       TEXT NOT NULL,
    status        TEXT NOT NULL CHECK (status IN ('playing', 'ended')),
    ending        INTEGER,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);
CREATE INDEX play_runs_character ON play_runs (owner_id, character_id, updated_at);
CREATE INDEX play_runs_owner ON play_runs (owner_id, updated_at);

CREATE TABLE play_turns (
    id            TEXT PRIMARY KEY,
    run_id        TEXT NOT NULL REFERENCES play_runs(id) ON DELETE CASCADE,
    seq           INTEGER NOT NULL,
    scene         INTEGER NOT NULL,
    choice        TEXT NOT NULL,
    choice_option INTEGER,
    dialogue      TEXT NOT NULL DEFAULT '',
    options       TEXT NOT NULL DEFAULT '[]',
    ending        INTEGER,
    status        TEXT NOT NULL CHECK (status IN ('streaming', 'complete', 'failed', 'interrupted')),
    superseded    INTEGER NOT NULL DEFAULT 0 CHECK (superseded IN (0, 1)),
    heartbeat_at  BIGINT,
    input_tokens  INTEGER,
    output_tokens INTEGER,
    provider      TEXT NOT NULL DEFAULT '',
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    UNIQUE (run_id, seq)
);
CREATE UNIQUE INDEX play_turns_one_streaming ON play_turns (run_id) WHERE status = 'streaming';
