-- A run's running summary: what the scenes up to `summary_through` told, written by the model in
-- the background once they no longer fit in a scene's prompt. It only moves forward.
ALTER TABLE play_runs ADD COLUMN summary TEXT NOT NULL DEFAULT '';
ALTER TABLE play_runs ADD COLUMN summary_through INTEGER NOT NULL DEFAULT 0;
