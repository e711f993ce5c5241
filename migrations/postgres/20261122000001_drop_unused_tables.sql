-- Tables no code used yet. Each comes back with the issue that needs it (matches with the twin
-- and matches issue, play runs with play mode, API keys with the public API), shaped by that code.
DROP TABLE IF EXISTS play_turns;
DROP TABLE IF EXISTS play_runs;
DROP TABLE IF EXISTS matches;
DROP TABLE IF EXISTS api_keys;
