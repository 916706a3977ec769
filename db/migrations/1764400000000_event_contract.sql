-- Up Migration
-- The event contract (domain/telemetry.ts: LIMITS and the rule tables) and these CHECKs must accept exactly the
-- same rows; the property test (test/integration/eventContract.property.test.ts) proves it. Issue 8 found them apart:
--   * files / tests_failed = '{}' (an empty array, the natural "none") failed the newline trick of the first CHECKs;
--   * metadata was bounded at 32 KiB of jsonb text while the validator bounded 16 KiB of compact JSON — two measures
--     that disagree both ways (jsonb writes numbers out in full: 5e-324 is 326 bytes there);
--   * control characters, backslashes, empty and "." segments in paths, the 2^53 bound of the counts, the nesting
--     depth of metadata and the range of occurred_at were checked by the validator alone.
-- The new CHECKs are added NOT VALID: they hold for every row written from now on, and the migration does not scan
-- (or fail on) the rows that databases in the field stored under the old rules.

-- The byte length of the longest item; called only when all items together are longer than one item may be.
CREATE FUNCTION road_longest_item_bytes(items text[]) RETURNS integer LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT
  RETURN (SELECT max(octet_length(item)) FROM unnest(items) AS item);

-- Items (paths, test ids): at most max_items, none NULL, none with a character of `refused_chars` (a pattern over
-- all items run together), none longer than max_bytes bytes of UTF-8, and, joined by newlines with one before the
-- first and one after the last, not matching `refused_shapes` — so "an item starts with", "ends with" or "is empty"
-- are patterns over one string, one regex pass instead of a per-item loop on every stored row. refused_chars must
-- refuse newlines (they would pass for separators). '{}' is valid; a NULL array passes, as a NULL column does.
-- STABLE, not IMMUTABLE, because array_to_string is STABLE: PostgreSQL then inlines the body into the CHECK; a
-- function call per row (what IMMUTABLE would force) cost ~10 µs of database CPU per stored event.
CREATE FUNCTION road_valid_items(items text[], max_items integer, max_bytes integer, refused_chars text, refused_shapes text)
  RETURNS boolean LANGUAGE sql STABLE PARALLEL SAFE
  RETURN items IS NULL OR cardinality(items) <= max_items AND array_position(items, NULL) IS NULL AND (cardinality(items) = 0 OR (
    array_to_string(items, '') !~ refused_chars
    AND (E'\n' || array_to_string(items, E'\n') || E'\n') !~ refused_shapes
    AND (octet_length(array_to_string(items, '')) <= max_bytes OR road_longest_item_bytes(items) <= max_bytes)));

ALTER TABLE phase_outcome_events
  DROP CONSTRAINT phase_outcome_events_files_check,
  DROP CONSTRAINT phase_outcome_events_tests_failed_check,
  DROP CONSTRAINT phase_outcome_events_metadata_check,
  DROP CONSTRAINT phase_outcome_events_tokens_used_check,
  DROP CONSTRAINT phase_outcome_events_prompt_tokens_check,
  DROP CONSTRAINT phase_outcome_events_completion_tokens_check,
  DROP CONSTRAINT phase_outcome_events_duration_ms_check;

ALTER TABLE phase_outcome_events
  -- ≤ 200 normalised repo-relative paths of ≤ 1024 bytes: no control character (U+0001–U+001F, U+007F), no
  -- backslash (normalised to /), not empty, not absolute (/…), no drive (C:…), no "." or ".." segment, no empty
  -- segment (//). A trailing / is kept.
  ADD CONSTRAINT phase_outcome_events_files_check CHECK (road_valid_items(files, 200, 1024,
    E'[\\x01-\\x1f\\x7f\\\\]', E'\n\n|\n/|\n[A-Za-z]:|[\n/]\\.\\.?[\n/]|//')) NOT VALID,
  -- ≤ 500 test ids of 1–1024 bytes without control characters.
  ADD CONSTRAINT phase_outcome_events_tests_failed_check CHECK (road_valid_items(tests_failed, 500, 1024,
    E'[\\x01-\\x1f\\x7f]', E'\n\n')) NOT VALID,
  -- Counts are JSON numbers: integers up to 2^53 − 1, beyond which a double cannot tell n from n + 1.
  ADD CONSTRAINT phase_outcome_events_tokens_used_check CHECK (tokens_used BETWEEN 0 AND 9007199254740991) NOT VALID,
  ADD CONSTRAINT phase_outcome_events_prompt_tokens_check CHECK (prompt_tokens BETWEEN 0 AND 9007199254740991) NOT VALID,
  ADD CONSTRAINT phase_outcome_events_completion_tokens_check CHECK (completion_tokens BETWEEN 0 AND 9007199254740991) NOT VALID,
  ADD CONSTRAINT phase_outcome_events_duration_ms_check CHECK (duration_ms BETWEEN 0 AND 9007199254740991) NOT VALID,
  -- An object of at most 16 KiB in jsonb's own text form (metadata::text), nested at most 32 levels (the object
  -- itself is level 1: no array or object at path length 32). A text of < 64 bytes cannot nest 32 levels, so the
  -- usual small object skips the walk.
  ADD CONSTRAINT phase_outcome_events_metadata_check CHECK (
    jsonb_typeof(metadata) = 'object' AND octet_length(metadata::text) <= 16384 AND (octet_length(metadata::text) < 64
      OR NOT jsonb_path_exists(metadata, 'strict $.**{32} ? (@.type() == "object" || @.type() == "array")'))) NOT VALID,
  -- From 2000-01-01 (no agent ran earlier: an earlier date is a unit or epoch mistake) to one day after the event
  -- reached ROAD (clock skew and time zones, not the future).
  ADD CONSTRAINT phase_outcome_events_occurred_at_check CHECK (
    occurred_at >= '2000-01-01T00:00:00Z' AND occurred_at <= recorded_at + interval '1 day') NOT VALID;

-- Down Migration
ALTER TABLE phase_outcome_events
  DROP CONSTRAINT phase_outcome_events_files_check,
  DROP CONSTRAINT phase_outcome_events_tests_failed_check,
  DROP CONSTRAINT phase_outcome_events_metadata_check,
  DROP CONSTRAINT phase_outcome_events_tokens_used_check,
  DROP CONSTRAINT phase_outcome_events_prompt_tokens_check,
  DROP CONSTRAINT phase_outcome_events_completion_tokens_check,
  DROP CONSTRAINT phase_outcome_events_duration_ms_check,
  DROP CONSTRAINT phase_outcome_events_occurred_at_check;
ALTER TABLE phase_outcome_events
  ADD CONSTRAINT phase_outcome_events_files_check CHECK (
    cardinality(files) <= 200 AND array_position(files, NULL) IS NULL AND
    NOT (E'\n' || array_to_string(files, E'\n') || E'\n' LIKE ANY (
      ARRAY[E'%\n/%', E'%\n..\n%', E'%\n../%', E'%/../%', E'%/..\n%', E'%\n\n%']))) NOT VALID,
  ADD CONSTRAINT phase_outcome_events_tests_failed_check CHECK (
    cardinality(tests_failed) <= 500 AND array_position(tests_failed, NULL) IS NULL AND
    E'\n' || array_to_string(tests_failed, E'\n') || E'\n' NOT LIKE E'%\n\n%') NOT VALID,
  ADD CONSTRAINT phase_outcome_events_tokens_used_check CHECK (tokens_used >= 0) NOT VALID,
  ADD CONSTRAINT phase_outcome_events_prompt_tokens_check CHECK (prompt_tokens >= 0) NOT VALID,
  ADD CONSTRAINT phase_outcome_events_completion_tokens_check CHECK (completion_tokens >= 0) NOT VALID,
  ADD CONSTRAINT phase_outcome_events_duration_ms_check CHECK (duration_ms >= 0) NOT VALID,
  ADD CONSTRAINT phase_outcome_events_metadata_check CHECK (
    jsonb_typeof(metadata) = 'object' AND octet_length(metadata::text) <= 32768) NOT VALID;
DROP FUNCTION road_valid_items(text[], integer, integer, text, text);
DROP FUNCTION road_longest_item_bytes(text[]);
