-- Up Migration
-- Telemetry (ROAD-A): one row per phase attempt outcome. The invariants of DESIGN.md §Telemetry are enforced here
-- as well as by zod at every entry point, so no path around the application can store a malformed event.

CREATE TYPE phase_outcome AS ENUM ('SUCCESS', 'FAILED', 'TIMEOUT', 'STUCK');

-- Repo-relative paths: not absolute, no `..` segment, bounded; IMMUTABLE so a CHECK may use it.
CREATE FUNCTION road_relative_paths(paths text[]) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT NOT EXISTS (
    SELECT 1 FROM unnest(paths) AS p
    WHERE p IS NULL OR p = '' OR p LIKE '/%' OR p ~ '(^|/)\.\.(/|$)' OR octet_length(p) > 1024
  )
$$;

CREATE FUNCTION road_bounded_texts(items text[], max_bytes integer) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT NOT EXISTS (SELECT 1 FROM unnest(items) AS t WHERE t IS NULL OR t = '' OR octet_length(t) > max_bytes)
$$;

CREATE TABLE phase_outcome_events (
  event_id            text PRIMARY KEY CHECK (event_id ~ '^[A-Za-z0-9._:-]{1,128}$'),
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
  files               text[] CHECK (cardinality(files) <= 200 AND road_relative_paths(files)),
  tests_failed        text[] CHECK (cardinality(tests_failed) <= 500 AND road_bounded_texts(tests_failed, 1024)),
  commit_sha          text CHECK (commit_sha ~ '^[0-9a-f]{7,64}$'),
  occurred_at         timestamptz NOT NULL,
  -- zod bounds the compact JSON at 16 KiB; jsonb's text form adds a space after each ':' and ',', hence the 2x here.
  metadata            jsonb CHECK (jsonb_typeof(metadata) = 'object' AND octet_length(metadata::text) <= 32768),
  -- sha256 (hex) of the canonical content: same id + same hash = duplicate, same id + other hash = conflict.
  content_hash        text NOT NULL CHECK (content_hash ~ '^[0-9a-f]{64}$'),
  recorded_at         timestamptz NOT NULL DEFAULT now()
);

-- The analysis scans a time window, overall and per phase.
CREATE INDEX phase_outcome_events_occurred_at ON phase_outcome_events (occurred_at);
CREATE INDEX phase_outcome_events_phase_occurred_at ON phase_outcome_events (phase_id, occurred_at);

-- Down Migration
DROP TABLE phase_outcome_events;
DROP FUNCTION road_bounded_texts(text[], integer);
DROP FUNCTION road_relative_paths(text[]);
DROP TYPE phase_outcome;
