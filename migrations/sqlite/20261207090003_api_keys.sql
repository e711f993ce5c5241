-- API keys for the public REST API: only the SHA-256 of each secret is stored (with its first
-- characters, to recognise it by). Revoked and expired keys are kept, listed as such.
CREATE TABLE api_keys (
    id           TEXT PRIMARY KEY,
    owner_id     TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    prefix       TEXT NOT NULL,
    hash         TEXT NOT NULL UNIQUE,
    can_write    INTEGER NOT NULL CHECK (can_write IN (0, 1)),
    expires_at   BIGINT,
    revoked_at   BIGINT,
    last_used_at BIGINT,
    created_at   BIGINT NOT NULL
);
CREATE INDEX api_keys_owner ON api_keys (owner_id, created_at);
