-- Usage analytics at any scale: daily rollups of `generations`, kept by the same transaction that
-- records a call (app/src/usage/store.rs), so the usage page sums a few thousand lines however
-- many calls a user made. Days are UTC days since 1970-01-01. A call is failed unless its outcome
-- is `ok` or `stopped` (app::usage::NOT_FAILURES).

-- Per day and kind of call (the chart by use, and the totals).
CREATE TABLE usage_daily (
    owner_id      TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    day           BIGINT NOT NULL,
    kind          TEXT NOT NULL,
    calls         BIGINT NOT NULL,
    failed        BIGINT NOT NULL,
    input_tokens  BIGINT NOT NULL,
    output_tokens BIGINT NOT NULL,
    PRIMARY KEY (owner_id, day, kind)
);

-- Per day and provider, language ('' for none) or outcome: `dimension` says which `key` is.
CREATE TABLE usage_daily_by (
    owner_id      TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    day           BIGINT NOT NULL,
    dimension     TEXT NOT NULL CHECK (dimension IN ('provider', 'language', 'outcome')),
    key           TEXT NOT NULL,
    calls         BIGINT NOT NULL,
    failed        BIGINT NOT NULL,
    input_tokens  BIGINT NOT NULL,
    output_tokens BIGINT NOT NULL,
    PRIMARY KEY (owner_id, day, dimension, key)
);

-- Call times as histograms per day and kind of call, and per day and provider: the bucket is the
-- first of app::usage::LATENCY_BOUNDS_MS at least as long as the call (or one past the last).
CREATE TABLE usage_latency (
    owner_id  TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    day       BIGINT NOT NULL,
    dimension TEXT NOT NULL CHECK (dimension IN ('kind', 'provider')),
    key       TEXT NOT NULL,
    bucket    INTEGER NOT NULL,
    calls     BIGINT NOT NULL,
    PRIMARY KEY (owner_id, day, dimension, key, bucket)
);

-- The calls recorded before the rollups existed.
INSERT INTO usage_daily (owner_id, day, kind, calls, failed, input_tokens, output_tokens)
SELECT owner_id, created_at / 86400000, kind, COUNT(*), SUM(CASE WHEN outcome IN ('ok', 'stopped') THEN 0 ELSE 1 END), SUM(input_tokens), SUM(output_tokens)
FROM generations GROUP BY owner_id, created_at / 86400000, kind;
INSERT INTO usage_daily_by (owner_id, day, dimension, key, calls, failed, input_tokens, output_tokens)
SELECT owner_id, created_at / 86400000, 'provider', provider, COUNT(*), SUM(CASE WHEN outcome IN ('ok', 'stopped') THEN 0 ELSE 1 END), SUM(input_tokens), SUM(output_tokens)
FROM generations GROUP BY owner_id, created_at / 86400000, provider;
INSERT INTO usage_daily_by (owner_id, day, dimension, key, calls, failed, input_tokens, output_tokens)
SELECT owner_id, created_at / 86400000, 'language', COALESCE(language, ''), COUNT(*), SUM(CASE WHEN outcome IN ('ok', 'stopped') THEN 0 ELSE 1 END), SUM(input_tokens), SUM(output_tokens)
FROM generations GROUP BY owner_id, created_at / 86400000, COALESCE(language, '');
INSERT INTO usage_daily_by (owner_id, day, dimension, key, calls, failed, input_tokens, output_tokens)
SELECT owner_id, created_at / 86400000, 'outcome', outcome, COUNT(*), SUM(CASE WHEN outcome IN ('ok', 'stopped') THEN 0 ELSE 1 END), SUM(input_tokens), SUM(output_tokens)
FROM generations GROUP BY owner_id, created_at / 86400000, outcome;
INSERT INTO usage_latency (owner_id, day, dimension, key, bucket, calls)
SELECT owner_id, created_at / 86400000, 'kind', kind, CASE WHEN duration_ms <= 50 THEN 0 WHEN duration_ms <= 100 THEN 1 WHEN duration_ms <= 200 THEN 2 WHEN duration_ms <= 300 THEN 3 WHEN duration_ms <= 500 THEN 4 WHEN duration_ms <= 750 THEN 5 WHEN duration_ms <= 1000 THEN 6 WHEN duration_ms <= 1500 THEN 7 WHEN duration_ms <= 2000 THEN 8 WHEN duration_ms <= 3000 THEN 9 WHEN duration_ms <= 4000 THEN 10 WHEN duration_ms <= 5000 THEN 11 WHEN duration_ms <= 7500 THEN 12 WHEN duration_ms <= 10000 THEN 13 WHEN duration_ms <= 15000 THEN 14 WHEN duration_ms <= 20000 THEN 15 WHEN duration_ms <= 30000 THEN 16 WHEN duration_ms <= 45000 THEN 17 WHEN duration_ms <= 60000 THEN 18 WHEN duration_ms <= 90000 THEN 19 WHEN duration_ms <= 120000 THEN 20 ELSE 21 END, COUNT(*)
FROM generations GROUP BY owner_id, created_at / 86400000, kind, CASE WHEN duration_ms <= 50 THEN 0 WHEN duration_ms <= 100 THEN 1 WHEN duration_ms <= 200 THEN 2 WHEN duration_ms <= 300 THEN 3 WHEN duration_ms <= 500 THEN 4 WHEN duration_ms <= 750 THEN 5 WHEN duration_ms <= 1000 THEN 6 WHEN duration_ms <= 1500 THEN 7 WHEN duration_ms <= 2000 THEN 8 WHEN duration_ms <= 3000 THEN 9 WHEN duration_ms <= 4000 THEN 10 WHEN duration_ms <= 5000 THEN 11 WHEN duration_ms <= 7500 THEN 12 WHEN duration_ms <= 10000 THEN 13 WHEN duration_ms <= 15000 THEN 14 WHEN duration_ms <= 20000 THEN 15 WHEN duration_ms <= 30000 THEN 16 WHEN duration_ms <= 45000 THEN 17 WHEN duration_ms <= 60000 THEN 18 WHEN duration_ms <= 90000 THEN 19 WHEN duration_ms <= 120000 THEN 20 ELSE 21 END;
INSERT INTO usage_latency (owner_id, day, dimension, key, bucket, calls)
SELECT owner_id, created_at / 86400000, 'provider', provider, CASE WHEN duration_ms <= 50 THEN 0 WHEN duration_ms <= 100 THEN 1 WHEN duration_ms <= 200 THEN 2 WHEN duration_ms <= 300 THEN 3 WHEN duration_ms <= 500 THEN 4 WHEN duration_ms <= 750 THEN 5 WHEN duration_ms <= 1000 THEN 6 WHEN duration_ms <= 1500 THEN 7 WHEN duration_ms <= 2000 THEN 8 WHEN duration_ms <= 3000 THEN 9 WHEN duration_ms <= 4000 THEN 10 WHEN duration_ms <= 5000 THEN 11 WHEN duration_ms <= 7500 THEN 12 WHEN duration_ms <= 10000 THEN 13 WHEN duration_ms <= 15000 THEN 14 WHEN duration_ms <= 20000 THEN 15 WHEN duration_ms <= 30000 THEN 16 WHEN duration_ms <= 45000 THEN 17 WHEN duration_ms <= 60000 THEN 18 WHEN duration_ms <= 90000 THEN 19 WHEN duration_ms <= 120000 THEN 20 ELSE 21 END, COUNT(*)
FROM generations GROUP BY owner_id, created_at / 86400000, provider, CASE WHEN duration_ms <= 50 THEN 0 WHEN duration_ms <= 100 THEN 1 WHEN duration_ms <= 200 THEN 2 WHEN duration_ms <= 300 THEN 3 WHEN duration_ms <= 500 THEN 4 WHEN duration_ms <= 750 THEN 5 WHEN duration_ms <= 1000 THEN 6 WHEN duration_ms <= 1500 THEN 7 WHEN duration_ms <= 2000 THEN 8 WHEN duration_ms <= 3000 THEN 9 WHEN duration_ms <= 4000 THEN 10 WHEN duration_ms <= 5000 THEN 11 WHEN duration_ms <= 7500 THEN 12 WHEN duration_ms <= 10000 THEN 13 WHEN duration_ms <= 15000 THEN 14 WHEN duration_ms <= 20000 THEN 15 WHEN duration_ms <= 30000 THEN 16 WHEN duration_ms <= 45000 THEN 17 WHEN duration_ms <= 60000 THEN 18 WHEN duration_ms <= 90000 THEN 19 WHEN duration_ms <= 120000 THEN 20 ELSE 21 END;
