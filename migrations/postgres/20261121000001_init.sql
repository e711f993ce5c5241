-- PersonaFlux schema, Postgres dialect. Kept in step with ../sqlite by hand; the store contract
-- tests run the same queries against both.
-- Ids are UUIDv7 text; timestamps are milliseconds since the Unix epoch; lists are JSONB.

CREATE TABLE users (
    id           TEXT PRIMARY KEY,
    display_name TEXT NOT NULL,
    email        TEXT,
    avatar_url   TEXT,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL
);

-- One row per way of signing in. Provider tokens are stored encrypted (AEAD), never in clear.
CREATE TABLE oauth_identities (
    provider          TEXT NOT NULL,
    subject           TEXT NOT NULL,
    user_id           TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    email             TEXT,
    access_token_enc  BYTEA,
    refresh_token_enc BYTEA,
    token_expires_at  BIGINT,
    scopes            TEXT,
    created_at        BIGINT NOT NULL,
    updated_at        BIGINT NOT NULL,
    PRIMARY KEY (provider, subject)
);
CREATE INDEX oauth_identities_user ON oauth_identities (user_id);

CREATE TABLE characters (
    id                  TEXT PRIMARY KEY,
    owner_id            TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name                TEXT NOT NULL,
    traits              JSONB NOT NULL,
    age                 INTEGER NOT NULL,
    gender              TEXT NOT NULL,
    voice               TEXT NOT NULL DEFAULT '',
    scenes              INTEGER NOT NULL,
    language            TEXT NOT NULL,
    avatar              TEXT NOT NULL,
    backstory           TEXT NOT NULL,
    story_context       TEXT NOT NULL,
    opening_line        TEXT NOT NULL,
    start_options       JSONB NOT NULL,
    endings             JSONB NOT NULL,
    alternate_greetings JSONB NOT NULL DEFAULT '[]',
    -- Character Card extensions from imports, kept as they came.
    extensions          JSONB NOT NULL DEFAULT '{}',
    created_at          BIGINT NOT NULL,
    updated_at          BIGINT NOT NULL
);
CREATE INDEX characters_owner_created ON characters (owner_id, created_at DESC);

-- A twin is a person's set of Shades plus a short bio; one per user.
CREATE TABLE twins (
    id         TEXT PRIMARY KEY,
    owner_id   TEXT NOT NULL UNIQUE REFERENCES users(id) ON DELETE CASCADE,
    bio        TEXT NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE shades (
    id          TEXT PRIMARY KEY,
    twin_id     TEXT NOT NULL REFERENCES twins(id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    icon        TEXT NOT NULL,
    description TEXT NOT NULL,
    confidence  DOUBLE PRECISION NOT NULL CHECK (confidence >= 0 AND confidence <= 1),
    topics      JSONB NOT NULL DEFAULT '[]',
    position    INTEGER NOT NULL DEFAULT 0,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
CREATE INDEX shades_twin ON shades (twin_id, position);

-- A chat with a character or with the user's own twin.
CREATE TABLE chat_sessions (
    id                   TEXT PRIMARY KEY,
    owner_id             TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    character_id         TEXT REFERENCES characters(id) ON DELETE CASCADE,
    twin_id              TEXT REFERENCES twins(id) ON DELETE CASCADE,
    title                TEXT NOT NULL,
    last_message_preview TEXT NOT NULL DEFAULT '',
    summary              TEXT,
    created_at           BIGINT NOT NULL,
    updated_at           BIGINT NOT NULL
);
CREATE INDEX chat_sessions_owner_updated ON chat_sessions (owner_id, updated_at DESC);
CREATE INDEX chat_sessions_character ON chat_sessions (character_id, updated_at DESC);

CREATE TABLE chat_messages (
    id            TEXT PRIMARY KEY,
    session_id    TEXT NOT NULL REFERENCES chat_sessions(id) ON DELETE CASCADE,
    role          TEXT NOT NULL CHECK (role IN ('user', 'assistant', 'system')),
    content       TEXT NOT NULL,
    status        TEXT NOT NULL CHECK (status IN ('complete', 'streaming', 'stopped', 'failed')),
    -- An alternative reply (regenerate) points at the message it replaces.
    parent_id     TEXT REFERENCES chat_messages(id) ON DELETE CASCADE,
    provider      TEXT,
    input_tokens  INTEGER,
    output_tokens INTEGER,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);
CREATE INDEX chat_messages_session ON chat_messages (session_id, created_at, id);

-- One record per pair of parties ('twin' or 'character'), recomputed when either side changes.
CREATE TABLE matches (
    id           TEXT PRIMARY KEY,
    owner_id     TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    a_kind       TEXT NOT NULL CHECK (a_kind IN ('twin', 'character')),
    a_id         TEXT NOT NULL,
    b_kind       TEXT NOT NULL CHECK (b_kind IN ('twin', 'character')),
    b_id         TEXT NOT NULL,
    score        INTEGER NOT NULL CHECK (score >= 0 AND score <= 100),
    reasoning    TEXT NOT NULL,
    strengths    JSONB NOT NULL DEFAULT '[]',
    challenges   JSONB NOT NULL DEFAULT '[]',
    computed_at  BIGINT NOT NULL,
    UNIQUE (owner_id, a_kind, a_id, b_kind, b_id)
);

-- Play mode: a run through a character's story, saved every turn.
CREATE TABLE play_runs (
    id            TEXT PRIMARY KEY,
    owner_id      TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    character_id  TEXT NOT NULL REFERENCES characters(id) ON DELETE CASCADE,
    current_scene INTEGER NOT NULL,
    total_scenes  INTEGER NOT NULL,
    status        TEXT NOT NULL CHECK (status IN ('active', 'ended', 'abandoned')),
    ending_kind   TEXT,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);
CREATE INDEX play_runs_owner ON play_runs (owner_id, updated_at DESC);

CREATE TABLE play_turns (
    id         TEXT PRIMARY KEY,
    run_id     TEXT NOT NULL REFERENCES play_runs(id) ON DELETE CASCADE,
    scene      INTEGER NOT NULL,
    choice     TEXT,
    dialogue   TEXT NOT NULL,
    options    JSONB NOT NULL DEFAULT '[]',
    created_at BIGINT NOT NULL
);
CREATE INDEX play_turns_run ON play_turns (run_id, scene);

-- API keys for API clients: only a hash of the key is kept.
CREATE TABLE api_keys (
    id           TEXT PRIMARY KEY,
    owner_id     TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    prefix       TEXT NOT NULL,
    key_hash     TEXT NOT NULL UNIQUE,
    created_at   BIGINT NOT NULL,
    last_used_at BIGINT,
    revoked_at   BIGINT
);
CREATE INDEX api_keys_owner ON api_keys (owner_id);

-- Usage analytics: one row per model call.
CREATE TABLE generations (
    id            TEXT PRIMARY KEY,
    owner_id      TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    kind          TEXT NOT NULL,
    provider      TEXT NOT NULL,
    language      TEXT,
    outcome       TEXT NOT NULL,
    duration_ms   BIGINT NOT NULL,
    input_tokens  INTEGER NOT NULL DEFAULT 0,
    output_tokens INTEGER NOT NULL DEFAULT 0,
    created_at    BIGINT NOT NULL
);
CREATE INDEX generations_owner ON generations (owner_id, created_at DESC);
