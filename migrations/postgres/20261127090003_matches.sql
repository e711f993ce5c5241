-- Compatibility matches, one record per unordered pair of personas (a twin or a character),
-- stored with the pair in a fixed order (a < b) so the pair is unique whoever asked. Each side's
-- owner may see it. `fingerprint` is a hash of exactly what the model was shown of both sides:
-- when it no longer agrees with the sides as they are, the match is stale and recomputed.
-- `claimed_at` is when a server took it to recompute (one at a time, across servers).
CREATE TABLE matches (
    id          TEXT PRIMARY KEY,
    a_kind      TEXT NOT NULL CHECK (a_kind IN ('twin', 'character')),
    a_id        TEXT NOT NULL,
    a_owner     TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    b_kind      TEXT NOT NULL CHECK (b_kind IN ('twin', 'character')),
    b_id        TEXT NOT NULL,
    b_owner     TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    state       TEXT NOT NULL CHECK (state IN ('fresh', 'updating', 'failed')),
    score       INTEGER CHECK (score IS NULL OR (score >= 0 AND score <= 100)),
    reasoning   TEXT NOT NULL DEFAULT '',
    strengths   JSONB NOT NULL DEFAULT '[]',
    challenges  JSONB NOT NULL DEFAULT '[]',
    provider    TEXT NOT NULL DEFAULT '',
    fingerprint TEXT NOT NULL DEFAULT '',
    claimed_at  BIGINT,
    computed_at BIGINT,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    UNIQUE (a_kind, a_id, b_kind, b_id)
);
CREATE INDEX matches_a_owner ON matches (a_owner, updated_at);
CREATE INDEX matches_b_owner ON matches (b_owner, updated_at);

-- The words of the public Shades of each twin open to matches (none for a closed twin),
-- weighted (names and topics count more than descriptions), so candidates are ranked by one
-- indexed query, without a model call per pair. The index reads each word's heaviest entries
-- first.
CREATE TABLE twin_terms (
    twin_id TEXT NOT NULL REFERENCES twins(id) ON DELETE CASCADE,
    term    TEXT NOT NULL,
    weight  INTEGER NOT NULL,
    PRIMARY KEY (twin_id, term)
);
CREATE INDEX twin_terms_term ON twin_terms (term, weight DESC, twin_id);
