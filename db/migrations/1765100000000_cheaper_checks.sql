-- Up Migration
-- The same event contract, evaluated with less work per stored row (issue 12; `npm run bench:ingest -- --guarantees`
-- prints what the CHECKs cost). Each new expression accepts exactly the rows the old one accepted:
--   * char_length walks the whole string to count code points; octet_length reads the length word. A string of
--     n bytes has at most n code points, so "at most L bytes" settles "at most L characters" without the walk, which
--     is left for the rare string of more than L bytes. Where a regular expression already admits only ASCII
--     (event_id, commit_sha, content_hash), bytes and characters are the same count: octet_length alone, since a
--     value with any other character fails the expression either way. "At least one character" is "at least one byte".
--   * metadata's jsonb was turned into text twice per row: once for the 16 KiB bound, once for the < 64-byte shortcut
--     of the nesting walk. Asking the shortcut first settles the usual small object with one conversion
--     (x < 64 implies x <= 16384, so "x <= 16384 and (x < 64 or shallow)" is "x < 64 or (x <= 16384 and shallow)").
-- PostgreSQL evaluates AND and OR left to right and stops at the first operand that settles them, and a NULL column
-- passes as before (every new expression is NULL where the old one was). The constraints keep their names (db/events.ts
-- names the field from them) and are added NOT VALID: stored rows met the old, equivalent expressions, so there is
-- nothing to scan.

ALTER TABLE phase_outcome_events
  DROP CONSTRAINT phase_outcome_events_event_id_check,
  DROP CONSTRAINT phase_outcome_events_run_id_check,
  DROP CONSTRAINT phase_outcome_events_phase_id_check,
  DROP CONSTRAINT phase_outcome_events_phase_type_check,
  DROP CONSTRAINT phase_outcome_events_model_check,
  DROP CONSTRAINT phase_outcome_events_commit_sha_check,
  DROP CONSTRAINT phase_outcome_events_content_hash_check,
  DROP CONSTRAINT phase_outcome_events_metadata_check;

ALTER TABLE phase_outcome_events
  ADD CONSTRAINT phase_outcome_events_event_id_check CHECK (
    octet_length(event_id) BETWEEN 1 AND 128 AND event_id !~ '[^A-Za-z0-9._:-]') NOT VALID,
  ADD CONSTRAINT phase_outcome_events_run_id_check CHECK (
    octet_length(run_id) >= 1 AND (octet_length(run_id) <= 255 OR char_length(run_id) <= 255)) NOT VALID,
  ADD CONSTRAINT phase_outcome_events_phase_id_check CHECK (
    octet_length(phase_id) >= 1 AND (octet_length(phase_id) <= 255 OR char_length(phase_id) <= 255)) NOT VALID,
  ADD CONSTRAINT phase_outcome_events_phase_type_check CHECK (
    octet_length(phase_type) <= 255 OR char_length(phase_type) <= 255) NOT VALID,
  ADD CONSTRAINT phase_outcome_events_model_check CHECK (
    octet_length(model) <= 255 OR char_length(model) <= 255) NOT VALID,
  ADD CONSTRAINT phase_outcome_events_commit_sha_check CHECK (
    octet_length(commit_sha) BETWEEN 7 AND 64 AND commit_sha !~ '[^0-9a-f]') NOT VALID,
  ADD CONSTRAINT phase_outcome_events_content_hash_check CHECK (
    octet_length(content_hash) = 64 AND content_hash !~ '[^0-9a-f]') NOT VALID,
  ADD CONSTRAINT phase_outcome_events_metadata_check CHECK (
    jsonb_typeof(metadata) = 'object' AND (octet_length(metadata::text) < 64 OR octet_length(metadata::text) <= 16384
      AND NOT jsonb_path_exists(metadata, 'strict $.**{32} ? (@.type() == "object" || @.type() == "array")'))) NOT VALID;

-- Down Migration
ALTER TABLE phase_outcome_events
  DROP CONSTRAINT phase_outcome_events_event_id_check,
  DROP CONSTRAINT phase_outcome_events_run_id_check,
  DROP CONSTRAINT phase_outcome_events_phase_id_check,
  DROP CONSTRAINT phase_outcome_events_phase_type_check,
  DROP CONSTRAINT phase_outcome_events_model_check,
  DROP CONSTRAINT phase_outcome_events_commit_sha_check,
  DROP CONSTRAINT phase_outcome_events_content_hash_check,
  DROP CONSTRAINT phase_outcome_events_metadata_check;
ALTER TABLE phase_outcome_events
  ADD CONSTRAINT phase_outcome_events_event_id_check CHECK (
    char_length(event_id) BETWEEN 1 AND 128 AND event_id !~ '[^A-Za-z0-9._:-]') NOT VALID,
  ADD CONSTRAINT phase_outcome_events_run_id_check CHECK (char_length(run_id) BETWEEN 1 AND 255) NOT VALID,
  ADD CONSTRAINT phase_outcome_events_phase_id_check CHECK (char_length(phase_id) BETWEEN 1 AND 255) NOT VALID,
  ADD CONSTRAINT phase_outcome_events_phase_type_check CHECK (char_length(phase_type) <= 255) NOT VALID,
  ADD CONSTRAINT phase_outcome_events_model_check CHECK (char_length(model) <= 255) NOT VALID,
  ADD CONSTRAINT phase_outcome_events_commit_sha_check CHECK (
    char_length(commit_sha) BETWEEN 7 AND 64 AND commit_sha !~ '[^0-9a-f]') NOT VALID,
  ADD CONSTRAINT phase_outcome_events_content_hash_check CHECK (
    char_length(content_hash) = 64 AND content_hash !~ '[^0-9a-f]') NOT VALID,
  ADD CONSTRAINT phase_outcome_events_metadata_check CHECK (
    jsonb_typeof(metadata) = 'object' AND octet_length(metadata::text) <= 16384 AND (octet_length(metadata::text) < 64
      OR NOT jsonb_path_exists(metadata, 'strict $.**{32} ? (@.type() == "object" || @.type() == "array")'))) NOT VALID;
