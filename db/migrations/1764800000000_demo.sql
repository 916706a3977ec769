-- Up Migration
-- `road dev`'s demo (client/demo.ts) is loaded once per database. The row is written before the sample events, with
-- the time shift they get, so a start interrupted while loading resumes with the same shift (what was stored comes
-- back as duplicates) instead of conflicting with its own events; `loaded_at` says the load finished.
CREATE TABLE road_demo (
  id smallint PRIMARY KEY DEFAULT 1 CHECK (id = 1),
  source text NOT NULL CHECK (octet_length(source) <= 4096),
  shift_ms bigint NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  loaded_at timestamptz,
  events integer CHECK (events >= 0),
  CHECK ((loaded_at IS NULL) = (events IS NULL))
);

-- Down Migration
DROP TABLE road_demo;
