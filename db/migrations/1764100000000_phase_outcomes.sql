-- Up Migration
-- Telemetry (ROAD-A): one row per phase attempt outcome. The invariants of DESIGN.md §Telemetry are enforced here
-- as well as by zod at every entry point, so no path around the application can store a malformed event.

CREATE TYPE phase_outcome AS ENUM ('SUCCESS', 'FAILED', 'TIMEOUT', 'STUCK');

-- Checks are written to be cheap per row (every imported event passes them): length tests plus a negated character
-- class instead of bounded regex repetitions, and LIKE over the newline-joined array instead of unnest() in a function (zod
-- refuses control characters in paths and test ids, so a newline can only be a separator here).

CREATE TABLE phase_outcome_events (
  event_id            text PRIMARY KEY CHECK (char_length(event_id) BETWEEN 1 AND 128 AND event_id !~ '[^A-Za-z0-9._:-]'),
  run_id              text NOT NULL CHECK (char_length(run_id) BETWEEN 1 AND 255),
  phase_id            text NOT NULL CHECK (char_length(phase_id) BETWEEN 1 AND 255),
  phase_type          text CHECK (char_length(phase_type) <= 255),
  model               text CHECK (char_length(model) <= 255),
  attempt             integer NOT NULL DEFAULT 1 CHECK (attempt BETWEEN 1 AND 1000000),
  outcome             phase_outcome NOT NULL,
  stop_reason         text CHECK (octet_length(stop_reason) <= 255),
  decision_rationale  text CHECK (octet_length(decision_rationale) < 10240),
  tokens_used         bigint CHECK (tokens_used >= 0),
  prompt_tokens       bigint CHECK (prompt_tokens >= 0),
  completion_tokens   bigint CHECK (completion_tokens >= 0),
  duration_ms         bigint CHECK (duration_ms >= 0),
  files               text[] CHECK (
                        cardinality(files) <= 200 AND array_position(files, NULL) IS NULL AND
                        -- not absolute, no '..' segment, no empty path
                        NOT (E'\n' || array_to_string(files, E'\n') || E'\n' LIKE ANY (
                          ARRAY[E'%\n/%', E'%\n..\n%', E'%\n../%', E'%/../%', E'%/..\n%', E'%\n\n%']))),
  tests_failed        text[] CHECK (
                        cardinality(tests_failed) <= 500 AND array_position(tests_failed, NULL) IS NULL AND
                        E'\n' || array_to_string(tests_failed, E'\n') || E'\n' NOT LIKE E'%\n\n%'),
  commit_sha          text CHECK (char_length(commit_sha) BETWEEN 7 AND 64 AND commit_sha !~ '[^0-9a-f]'),
  occurred_at         timestamptz NOT NULL,
  -- zod bounds the compact JSON at 16 KiB; jsonb's text form adds a space after each ':' and ',', hence the 2x here.
  metadata            jsonb CHECK (jsonb_typeof(metadata) = 'object' AND octet_length(metadata::text) <= 32768),
  -- sha256 (hex) of the canonical content: same id + same hash = duplicate, same id + other hash = conflict.
  content_hash        text NOT NULL CHECK (char_length(content_hash) = 64 AND content_hash !~ '[^0-9a-f]'),
  recorded_at         timestamptz NOT NULL DEFAULT now()
);

-- The analysis scans a time window. Events arrive roughly in time order, so a BRIN index finds a window's pages at
-- a fraction of a B-tree's cost per insert (measured: two B-trees cost ~4 µs per row, BRIN ~0.1 µs).
CREATE INDEX phase_outcome_events_occurred_at ON phase_outcome_events USING brin (occurred_at) WITH (pages_per_range = 32);

-- Down Migration
DROP TABLE phase_outcome_events;
DROP TYPE phase_outcome;
