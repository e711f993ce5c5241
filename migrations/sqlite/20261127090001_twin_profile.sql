-- The twin page: the name a twin goes by, whether other people may be matched with it, and for
-- each Shade where it came from and whether other people's matches may use it. Flags are 0/1
-- integers on both databases.
ALTER TABLE twins ADD COLUMN display_name TEXT NOT NULL DEFAULT '';
ALTER TABLE twins ADD COLUMN matchable INTEGER NOT NULL DEFAULT 0 CHECK (matchable IN (0, 1));
ALTER TABLE shades ADD COLUMN source TEXT NOT NULL DEFAULT 'user'
    CHECK (source IN ('user', 'suggested', 'secondme'));
ALTER TABLE shades ADD COLUMN is_public INTEGER NOT NULL DEFAULT 0 CHECK (is_public IN (0, 1));
-- Until now only a SecondMe sign-in wrote Shades.
UPDATE shades SET source = 'secondme';
