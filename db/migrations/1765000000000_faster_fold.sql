-- Up Migration
-- A fold that keeps up with ingestion (issue 12). road_rollup_pending() computes exactly what the fold of
-- 1764300000000_analysis_rollups.sql computed — the same rollup rows, whatever order events arrive in — with less work
-- per event:
--   * the trigger notes the columns the fold reads along with the id, so the fold no longer looks every event up
--     again: it takes them in one pass (DELETE … RETURNING) and keeps them in memory for all its parts;
--   * rollup_runs remembers (by a 64-bit hash of the run id) which runs have folded events. A run it does not know is
--     new: its contribution comes from the batch alone, with no re-read of its events and nothing to take back. Only a
--     run it knows — or whose hash it shares with one it knows, which merely costs the exact path — is recounted from
--     all its stored events, its earlier contribution taken back as before. rollup_commits does the same for the
--     flaky tests of a commit;
--   * per-run counts are hash aggregates (first and last hour of each run, run's phase, …) instead of sorts over every
--     event: an entity seen in at most two consecutive hours — nearly all of them — needs nothing more; the few others
--     get the exact chain of their hours. Only the phases with a retry are sorted (for the attempt before it);
--   * the token histogram keeps one row per phase and hour (bucket and count arrays) instead of one per bucket: a
--     sparse hour no longer writes a row per event. rollup_tokens remains, as a view, for the analysis;
--   * rows of hours a rollup has no row of yet are inserted without ON CONFLICT; hours come from date_bin (road_hour).

ALTER TABLE rollup_pending
  ADD COLUMN run_id text,
  ADD COLUMN phase_id text,
  ADD COLUMN attempt integer,
  ADD COLUMN outcome phase_outcome,
  ADD COLUMN stop_reason text,
  ADD COLUMN tokens_used bigint,
  ADD COLUMN tests_failed text[],
  ADD COLUMN commit_sha text,
  ADD COLUMN occurred_at timestamptz;
UPDATE rollup_pending p SET run_id = e.run_id, phase_id = e.phase_id, attempt = e.attempt, outcome = e.outcome,
  stop_reason = e.stop_reason, tokens_used = e.tokens_used, tests_failed = e.tests_failed, commit_sha = e.commit_sha,
  occurred_at = e.occurred_at
  FROM phase_outcome_events e WHERE e.event_id = p.event_id;
ALTER TABLE rollup_pending ALTER COLUMN run_id SET NOT NULL, ALTER COLUMN phase_id SET NOT NULL,
  ALTER COLUMN attempt SET NOT NULL, ALTER COLUMN outcome SET NOT NULL, ALTER COLUMN occurred_at SET NOT NULL;

CREATE OR REPLACE FUNCTION road_note_pending() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
  INSERT INTO rollup_pending (event_id, run_id, phase_id, attempt, outcome, stop_reason, tokens_used, tests_failed, commit_sha, occurred_at)
  SELECT event_id, run_id, phase_id, attempt, outcome, stop_reason, tokens_used, tests_failed, commit_sha, occurred_at FROM new_events;
  RETURN NULL;
END
$fn$;

-- Runs with folded events, by hashtextextended(run_id, 0): the runs of every stored event that is not pending. The
-- ALTER above holds rollup_pending exclusively, so no fold or writer commits between it and this.
CREATE TABLE rollup_runs (run_key bigint PRIMARY KEY);
INSERT INTO rollup_runs
  SELECT DISTINCT hashtextextended(e.run_id, 0) FROM phase_outcome_events e
  WHERE NOT EXISTS (SELECT 1 FROM rollup_pending p WHERE p.event_id = e.event_id);
-- Commits with folded events, likewise: the flaky tests of a commit not here are counted from the batch alone.
CREATE TABLE rollup_commits (commit_key bigint PRIMARY KEY);
INSERT INTO rollup_commits
  SELECT DISTINCT hashtextextended(e.commit_sha, 0) FROM phase_outcome_events e
  WHERE e.commit_sha IS NOT NULL AND NOT EXISTS (SELECT 1 FROM rollup_pending p WHERE p.event_id = e.event_id);

-- One row per phase and hour: events[i] events in bucket buckets[i] (see road_token_bucket), each bucket once.
CREATE TABLE rollup_token_hours (
  phase_id text NOT NULL,
  hour     timestamptz NOT NULL,
  buckets  integer[] NOT NULL,
  events   bigint[] NOT NULL,
  PRIMARY KEY (phase_id, hour)
);
INSERT INTO rollup_token_hours
  SELECT phase_id, hour, array_agg(bucket ORDER BY bucket), array_agg(events ORDER BY bucket) FROM rollup_tokens GROUP BY 1, 2;
DROP TABLE rollup_tokens;
CREATE VIEW rollup_tokens AS
  SELECT t.phase_id, t.hour, b.bucket, b.events FROM rollup_token_hours t CROSS JOIN LATERAL unnest(t.buckets, t.events) AS b(bucket, events);

CREATE OR REPLACE FUNCTION road_rollup_truncate() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
  TRUNCATE rollup_outcomes, rollup_token_hours, rollup_counts, rollup_pending, rollup_runs, rollup_commits;
  RETURN NULL;
END
$fn$;

-- The UTC hour of a time, as date_trunc('hour', at, 'UTC') gives it, which keys the rollups: date_bin is pure arithmetic
-- (date_trunc with a time zone costs 20 times as much); before 2000, which no valid event is, date_trunc itself.
CREATE FUNCTION road_hour(at timestamptz) RETURNS timestamptz LANGUAGE sql IMMUTABLE PARALLEL SAFE
  RETURN CASE WHEN at >= '2000-01-01T00:00:00Z' THEN date_bin('1 hour', at, '2000-01-01T00:00:00Z') ELSE date_trunc('hour', at, 'UTC') END;

-- Folds every pending event into the rollups and returns how many there were. Call it in a REPEATABLE READ
-- transaction, one caller at a time (db/rollups.ts takes a session advisory lock first): all its statements then see
-- one snapshot, so an event committed meanwhile is neither counted as already folded nor taken: it stays pending.
--
-- One statement: the pending events are taken (deleted) in one pass and kept in memory for every part of the fold, so
-- rollup_pending is read once however many dead rows it holds between two vacuums (under a steady stream, many: read
-- once per part, it made the fold dearer than the previous one). The parts write disjoint rows; rollup_counts gets its
-- 'test' family from the flaky tests and the others from the runs.
--
-- Rows of an hour that has no rows yet in a rollup (the usual case for a batch of new events) are inserted without
-- looking for conflicts; only rows of hours already there go through INSERT … ON CONFLICT, which costs twice as much.
CREATE OR REPLACE FUNCTION road_rollup_pending() RETURNS bigint LANGUAGE plpgsql AS $fn$
DECLARE
  folded bigint;
BEGIN
  IF current_setting('transaction_isolation') <> 'repeatable read' THEN
    RAISE EXCEPTION 'road_rollup_pending() must run in a REPEATABLE READ transaction';
  END IF;
  IF NOT EXISTS (SELECT 1 FROM rollup_pending) THEN
    RETURN 0;
  END IF;
  PERFORM set_config('work_mem', '256MB', true); -- the batch, its hashes and sorts in memory (for this transaction only)
  -- A fold lost in a crash is lost whole, its events still pending: no need to wait for the commit to reach the disk.
  PERFORM set_config('synchronous_commit', 'off', true);

  -- EXECUTE plans the statement afresh, for this batch's size.
  EXECUTE $q$
  WITH taken AS (
    DELETE FROM rollup_pending
    RETURNING event_id, run_id, phase_id, attempt, outcome, coalesce(stop_reason, '(none)') AS reason, road_hour(occurred_at) AS hour,
              tokens_used, tests_failed, commit_sha, occurred_at
  ),

  -- Events and tokens per hour, phase, outcome and stop reason.
  outcome_rows AS MATERIALIZED (
    SELECT hour, phase_id, outcome, reason, count(*) AS events, count(tokens_used) AS token_events, coalesce(sum(tokens_used), 0) AS tokens,
           min(occurred_at) AS first_at, max(occurred_at) AS last_at
    FROM taken GROUP BY 1, 2, 3, 4
  ),
  outcome_fresh AS MATERIALIZED (
    SELECT hour FROM (SELECT DISTINCT hour FROM outcome_rows) h WHERE NOT EXISTS (SELECT 1 FROM rollup_outcomes r WHERE r.hour = h.hour)
  ),
  outcomes_new AS (
    INSERT INTO rollup_outcomes (hour, phase_id, outcome, stop_reason, events, token_events, tokens, first_at, last_at)
    SELECT * FROM outcome_rows WHERE hour IN (SELECT hour FROM outcome_fresh) ORDER BY hour, phase_id, outcome, reason
  ),
  outcomes_more AS (
    INSERT INTO rollup_outcomes AS r (hour, phase_id, outcome, stop_reason, events, token_events, tokens, first_at, last_at)
    SELECT * FROM outcome_rows WHERE hour NOT IN (SELECT hour FROM outcome_fresh)
    ON CONFLICT (hour, phase_id, outcome, stop_reason) DO UPDATE SET
      events = r.events + excluded.events, token_events = r.token_events + excluded.token_events,
      tokens = r.tokens + excluded.tokens, first_at = least(r.first_at, excluded.first_at), last_at = greatest(r.last_at, excluded.last_at)
  ),

  -- The token histogram (its arrays in no particular order, but in the same one: sorting them cost a third of this).
  tokens_added AS (
    INSERT INTO rollup_token_hours AS t (phase_id, hour, buckets, events)
    SELECT phase_id, hour, array_agg(bucket), array_agg(n) FROM (
      SELECT phase_id, hour, road_token_bucket(tokens_used) AS bucket, count(*) AS n
      FROM taken WHERE tokens_used IS NOT NULL GROUP BY 1, 2, 3
    ) b GROUP BY 1, 2
    ON CONFLICT (phase_id, hour) DO UPDATE SET (buckets, events) = (
      SELECT array_agg(bucket), array_agg(n) FROM (
        SELECT bucket, sum(n)::bigint AS n
        FROM (SELECT * FROM unnest(t.buckets, t.events) UNION ALL SELECT * FROM unnest(excluded.buckets, excluded.events)) u(bucket, n)
        GROUP BY bucket
      ) m)
  ),

  -- Flaky tests. Observations of each test that failed at a phase and commit: a failure when it is among the attempt's
  -- failed tests, a pass when the phase succeeded without it failing. Only commits where some test failed are looked
  -- at. A commit rollup_commits knows has folded events: its earlier events count -1 (what they contributed) and +1
  -- with the batch's (what they contribute now). Any other commit has only the batch's events.
  commits AS MATERIALIZED (
    SELECT commit_sha, hashtextextended(commit_sha, 0) AS commit_key FROM (SELECT DISTINCT commit_sha FROM taken WHERE commit_sha IS NOT NULL) c
  ),
  known_commits AS MATERIALIZED (
    SELECT commit_sha FROM commits c WHERE EXISTS (SELECT 1 FROM rollup_commits k WHERE k.commit_key = c.commit_key)
  ),
  commits_added AS (
    INSERT INTO rollup_commits (commit_key)
    SELECT DISTINCT commit_key FROM commits WHERE commit_sha NOT IN (SELECT commit_sha FROM known_commits) ON CONFLICT DO NOTHING
  ),
  -- the batch's events at a phase and commit where some test failed
  flagged AS MATERIALIZED (
    SELECT b.* FROM taken b
    WHERE EXISTS (SELECT 1 FROM phase_outcome_events f
                  WHERE f.commit_sha = b.commit_sha AND f.phase_id = b.phase_id AND f.outcome <> 'SUCCESS' AND f.tests_failed IS NOT NULL)
  ),
  commit_events AS MATERIALIZED (
    SELECT e.event_id, e.run_id, e.phase_id, e.commit_sha, e.outcome, e.tests_failed, e.occurred_at,
           road_hour(e.occurred_at) AS hour, e.event_id = ANY (p.ids) AS is_new
    FROM (SELECT commit_sha, phase_id, array_agg(event_id) AS ids FROM flagged WHERE commit_sha IN (SELECT commit_sha FROM known_commits) GROUP BY 1, 2) p
    CROSS JOIN LATERAL (SELECT * FROM phase_outcome_events WHERE commit_sha = p.commit_sha AND phase_id = p.phase_id OFFSET 0) e
    UNION ALL
    SELECT event_id, run_id, phase_id, commit_sha, outcome, tests_failed, occurred_at, hour, true
    FROM flagged WHERE commit_sha NOT IN (SELECT commit_sha FROM known_commits)
  ),
  c AS (
    SELECT 1 AS sign, * FROM commit_events
    UNION ALL
    SELECT -1, * FROM commit_events WHERE NOT is_new
  ),
  tests AS (
    SELECT DISTINCT sign, phase_id, commit_sha, t.test_id
    FROM c, unnest(c.tests_failed) AS t(test_id) WHERE c.outcome <> 'SUCCESS'
  ),
  observations AS (
    SELECT c.sign, c.phase_id, c.commit_sha, t.test_id, c.hour,
           c.outcome <> 'SUCCESS' AS failed,
           row_number() OVER w AS seq, lag(c.outcome <> 'SUCCESS') OVER w AS failed_before, lag(c.hour) OVER w AS hour_before,
           bool_or(c.outcome = 'SUCCESS') OVER (PARTITION BY c.phase_id COLLATE "C", c.commit_sha COLLATE "C", t.test_id COLLATE "C", c.sign) AS passed_ever
    FROM c JOIN tests t USING (sign, phase_id, commit_sha)
    WHERE (c.outcome <> 'SUCCESS' AND t.test_id = ANY (c.tests_failed))
       OR (c.outcome = 'SUCCESS' AND NOT (t.test_id = ANY (coalesce(c.tests_failed, '{}'))))
    WINDOW w AS (PARTITION BY c.phase_id COLLATE "C", c.commit_sha COLLATE "C", t.test_id COLLATE "C", c.sign
                 ORDER BY c.occurred_at, c.run_id COLLATE "C", c.event_id COLLATE "C")
  ),
  -- only tests that both failed and passed at the commit count as flaky there
  flaky AS (SELECT * FROM observations WHERE passed_ever),
  -- a flip is a change between consecutive observations; the commit counts for a window at its first flip inside it
  -- (lo: the observation before the flip; hi: the observation before the previous flip)
  flips AS (
    SELECT sign, phase_id, test_id, hour, CASE WHEN hour_before >= hour THEN 'infinity' ELSE hour_before END AS lo,
           coalesce(lag(hour_before) OVER (PARTITION BY phase_id COLLATE "C", commit_sha COLLATE "C", test_id COLLATE "C", sign ORDER BY seq), '-infinity') AS flip_before
    FROM flaky WHERE failed_before <> failed
  ),
  test_contributions AS (
    SELECT hour, phase_id, test_id, 'infinity'::timestamptz AS lo, '-infinity'::timestamptz AS hi,
           CASE WHEN failed THEN sign ELSE 0 END AS fails, CASE WHEN failed THEN 0 ELSE sign END AS passes, 0 AS flips, 0 AS commits
    FROM flaky
    UNION ALL SELECT hour, phase_id, test_id, lo, '-infinity', 0, 0, sign, 0 FROM flips
    UNION ALL SELECT hour, phase_id, test_id, lo, flip_before, 0, 0, 0, sign FROM flips
  ),
  test_rows AS MATERIALIZED (
    SELECT hour, 'test' AS family, phase_id, test_id, lo, hi, 0 AS runs, 0 AS phase_runs, 0 AS failure_runs, 0 AS retries, 0 AS retry_runs,
           sum(fails) AS fails, sum(passes) AS passes, sum(flips) AS flips, sum(commits) AS commits
    FROM test_contributions GROUP BY 1, 2, 3, 4, 5, 6 HAVING (sum(fails), sum(passes), sum(flips), sum(commits)) <> (0, 0, 0, 0)
  ),
  test_fresh AS MATERIALIZED (
    SELECT hour FROM (SELECT DISTINCT hour FROM test_rows) h WHERE NOT EXISTS (SELECT 1 FROM rollup_counts r WHERE r.hour = h.hour AND r.family = 'test')
  ),
  tests_new AS (
    INSERT INTO rollup_counts SELECT * FROM test_rows WHERE hour IN (SELECT hour FROM test_fresh) ORDER BY hour, phase_id, test_id, lo, hi
  ),
  tests_more AS (
    INSERT INTO rollup_counts AS r SELECT * FROM test_rows WHERE hour NOT IN (SELECT hour FROM test_fresh)
    ON CONFLICT (hour, family, phase_id, detail, lo, hi) DO UPDATE SET
      test_fails = r.test_fails + excluded.test_fails, test_passes = r.test_passes + excluded.test_passes,
      flips = r.flips + excluded.flips, flaky_commits = r.flaky_commits + excluded.flaky_commits
  ),

  -- Runs. A run rollup_runs knows has folded events (or shares its key with one that has): its earlier events count -1
  -- (what they contributed) and +1 with the batch's (what the run contributes now). Any other run is new.
  runs AS MATERIALIZED (
    SELECT run_id, hashtextextended(run_id, 0) AS run_key FROM (SELECT DISTINCT run_id FROM taken) b
  ),
  known_runs AS MATERIALIZED (
    SELECT run_id, run_key FROM runs WHERE EXISTS (SELECT 1 FROM rollup_runs k WHERE k.run_key = runs.run_key)
  ),
  runs_added AS (
    INSERT INTO rollup_runs (run_key)
    SELECT DISTINCT run_key FROM runs WHERE run_key NOT IN (SELECT run_key FROM known_runs) ON CONFLICT DO NOTHING
  ),
  earlier AS MATERIALIZED (
    SELECT s.sign, e.event_id, e.run_id, e.phase_id, e.attempt, e.outcome, coalesce(e.stop_reason, '(none)') AS reason, road_hour(e.occurred_at) AS hour
    FROM (SELECT run_id, array_agg(event_id) AS ids FROM taken WHERE run_id IN (SELECT run_id FROM known_runs) GROUP BY 1) k
    CROSS JOIN LATERAL (SELECT * FROM phase_outcome_events WHERE run_id = k.run_id OFFSET 0) e
    CROSS JOIN (VALUES (1), (-1)) s(sign)
    WHERE e.event_id <> ALL (k.ids)
  ),
  ev AS NOT MATERIALIZED (
    SELECT 1 AS sign, event_id, run_id, phase_id, attempt, outcome, reason, hour FROM taken
    UNION ALL
    SELECT sign, event_id, run_id, phase_id, attempt, outcome, reason, hour FROM earlier
  ),
  -- Counts of runs, phases run, failures and retries. An entity (a run; a run's phase; a run's phase with a failure
  -- reason, or with the reason before a retry) counts once per hour it appears in, with hi = the previous such hour.
  -- A retry is filed under the stop reason of the run's previous attempt of the phase ('unknown' if none is stored);
  -- only the phases with a retry are sorted.
  retries AS MATERIALIZED (
    SELECT sign, run_id, phase_id, hour, before FROM (
      SELECT e.sign, e.run_id, e.phase_id, e.hour, e.attempt,
             CASE WHEN lag(e.attempt) OVER w = e.attempt - 1 AND lag(e.outcome) OVER w <> 'SUCCESS' THEN lag(e.reason) OVER w ELSE 'unknown' END AS before
      FROM ev e
      WHERE (e.run_id, e.phase_id, e.sign) IN (SELECT run_id, phase_id, sign FROM ev WHERE attempt > 1)
      WINDOW w AS (PARTITION BY e.run_id COLLATE "C", e.phase_id COLLATE "C", e.sign ORDER BY e.attempt, e.event_id COLLATE "C")
    ) a WHERE attempt > 1
  ),
  -- Entities, with the first and last hour they appear in. Kinds: 1 run, 2 phase run, 3 failure run, 5 retry run.
  entities AS (
    SELECT 1 AS kind, sign, run_id, '' AS phase_id, '' AS detail, min(hour) AS first, max(hour) AS last FROM ev GROUP BY sign, run_id
    UNION ALL SELECT 2, sign, run_id, phase_id, '', min(hour), max(hour) FROM ev GROUP BY sign, run_id, phase_id
    UNION ALL SELECT 3, sign, run_id, phase_id, reason, min(hour), max(hour) FROM ev WHERE outcome <> 'SUCCESS' GROUP BY sign, run_id, phase_id, reason
    UNION ALL SELECT 5, sign, run_id, phase_id, before, min(hour), max(hour) FROM retries GROUP BY sign, run_id, phase_id, before
  ),
  -- An entity seen in at most two consecutive hours counts at the first with hi = -infinity, and at the second with
  -- hi = the first: such entities are counted together by their first and last hour. The others (sign and run kept)
  -- get the chain of all their hours.
  spans AS MATERIALIZED (
    SELECT kind, phase_id, detail, first, CASE WHEN narrow THEN last END AS last,
           CASE WHEN NOT narrow THEN run_id END AS run_id, CASE WHEN NOT narrow THEN sign END AS sign, sum(sign)::integer AS n
    FROM (SELECT *, last - first <= interval '1 hour' AS narrow FROM entities) e
    GROUP BY 1, 2, 3, 4, 5, 6, 7
  ),
  chained AS (
    SELECT kind, phase_id, detail, hour, sign,
           coalesce(lag(hour) OVER (PARTITION BY run_id COLLATE "C", phase_id COLLATE "C", detail COLLATE "C", kind, sign ORDER BY hour), '-infinity') AS hi
    FROM (
      SELECT w.kind, w.sign, w.run_id, w.phase_id, w.detail, e.hour
      FROM (SELECT * FROM spans WHERE run_id IS NOT NULL) w JOIN ev e ON e.run_id = w.run_id AND e.sign = w.sign
      WHERE w.kind = 1 OR w.phase_id = e.phase_id AND (w.kind = 2 OR w.kind = 3 AND e.outcome <> 'SUCCESS' AND e.reason = w.detail)
      UNION
      SELECT w.kind, w.sign, w.run_id, w.phase_id, w.detail, r.hour
      FROM (SELECT * FROM spans WHERE run_id IS NOT NULL) w
      JOIN retries r ON r.run_id = w.run_id AND r.sign = w.sign AND r.phase_id = w.phase_id AND r.before = w.detail
      WHERE w.kind = 5
    ) h
  ),
  run_contributions AS (
    SELECT first AS hour, kind, phase_id, detail, '-infinity'::timestamptz AS hi, n FROM spans WHERE run_id IS NULL
    UNION ALL SELECT last, kind, phase_id, detail, first, n FROM spans WHERE last > first
    UNION ALL SELECT hour, kind, phase_id, detail, hi, sign FROM chained
    UNION ALL SELECT hour, 4, phase_id, before, '-infinity', sign FROM retries
  ),
  run_rows AS MATERIALIZED (
    SELECT * FROM (
      SELECT hour, CASE WHEN kind <= 2 THEN 'run' ELSE 'reason' END AS family, phase_id, detail, 'infinity'::timestamptz AS lo, hi,
             coalesce(sum(n) FILTER (WHERE kind = 1), 0) AS runs, coalesce(sum(n) FILTER (WHERE kind = 2), 0) AS phase_runs,
             coalesce(sum(n) FILTER (WHERE kind = 3), 0) AS failure_runs, coalesce(sum(n) FILTER (WHERE kind = 4), 0) AS retries,
             coalesce(sum(n) FILTER (WHERE kind = 5), 0) AS retry_runs, 0 AS test_fails, 0 AS test_passes, 0 AS flips, 0 AS flaky_commits
      FROM run_contributions GROUP BY 1, 2, 3, 4, 6
    ) s WHERE (runs, phase_runs, failure_runs, retries, retry_runs) <> (0, 0, 0, 0, 0)
  ),
  run_fresh AS MATERIALIZED (
    SELECT hour, family FROM (SELECT DISTINCT hour, family FROM run_rows) h
    WHERE NOT EXISTS (SELECT 1 FROM rollup_counts r WHERE r.hour = h.hour AND r.family = h.family)
  ),
  runs_new AS (
    INSERT INTO rollup_counts SELECT * FROM run_rows WHERE (hour, family) IN (SELECT hour, family FROM run_fresh)
    ORDER BY hour, family, phase_id, detail, hi
  ),
  runs_more AS (
    INSERT INTO rollup_counts AS r SELECT * FROM run_rows WHERE (hour, family) NOT IN (SELECT hour, family FROM run_fresh)
    ON CONFLICT (hour, family, phase_id, detail, lo, hi) DO UPDATE SET
      runs = r.runs + excluded.runs, phase_runs = r.phase_runs + excluded.phase_runs, failure_runs = r.failure_runs + excluded.failure_runs,
      retries = r.retries + excluded.retries, retry_runs = r.retry_runs + excluded.retry_runs
  )
  SELECT count(*) FROM taken
  $q$ INTO folded;
  RETURN folded;
END
$fn$;

-- Down Migration
-- Back to the fold of 1764300000000_analysis_rollups.sql (its function as it was, one token row per bucket).
CREATE TEMP TABLE road_token_rows ON COMMIT DROP AS SELECT phase_id, hour, bucket, events FROM rollup_tokens;
DROP VIEW rollup_tokens;
CREATE TABLE rollup_tokens (
  phase_id text NOT NULL,
  hour     timestamptz NOT NULL,
  bucket   integer NOT NULL,
  events   bigint NOT NULL,
  PRIMARY KEY (phase_id, hour, bucket)
);
INSERT INTO rollup_tokens SELECT * FROM road_token_rows;
DROP TABLE rollup_token_hours, rollup_runs, rollup_commits;
CREATE OR REPLACE FUNCTION road_rollup_truncate() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
  TRUNCATE rollup_outcomes, rollup_tokens, rollup_counts, rollup_pending;
  RETURN NULL;
END
$fn$;
CREATE OR REPLACE FUNCTION road_note_pending() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
  INSERT INTO rollup_pending (event_id) SELECT event_id FROM new_events;
  RETURN NULL;
END
$fn$;
DROP FUNCTION road_rollup_pending();
DROP FUNCTION road_hour(timestamptz);
ALTER TABLE rollup_pending DROP COLUMN run_id, DROP COLUMN phase_id, DROP COLUMN attempt, DROP COLUMN outcome,
  DROP COLUMN stop_reason, DROP COLUMN tokens_used, DROP COLUMN tests_failed, DROP COLUMN commit_sha, DROP COLUMN occurred_at;
CREATE FUNCTION road_rollup_pending() RETURNS bigint LANGUAGE plpgsql AS $fn$
DECLARE
  folded bigint;
BEGIN
  IF current_setting('transaction_isolation') <> 'repeatable read' THEN
    RAISE EXCEPTION 'road_rollup_pending() must run in a REPEATABLE READ transaction';
  END IF;
  CREATE TEMP TABLE IF NOT EXISTS road_batch (
    event_id text, run_id text, phase_id text, attempt integer, outcome phase_outcome, stop_reason text,
    tokens_used bigint, tests_failed text[], commit_sha text, occurred_at timestamptz
  ) ON COMMIT DELETE ROWS;
  -- LIMIT 1 keeps each lookup a primary-key probe (a join would sort or hash the whole events table). EXECUTE plans
  -- each statement afresh: a plan cached by this session when the table was small would probe it the wrong way later.
  EXECUTE $q$
  WITH taken AS (DELETE FROM rollup_pending RETURNING event_id)
  INSERT INTO road_batch
  SELECT e.* FROM taken, LATERAL (
    SELECT event_id, run_id, phase_id, attempt, outcome, stop_reason, tokens_used, tests_failed, commit_sha, occurred_at
    FROM phase_outcome_events WHERE event_id = taken.event_id LIMIT 1) e
  $q$;
  GET DIAGNOSTICS folded = ROW_COUNT;
  IF folded = 0 THEN
    RETURN 0;
  END IF;
  ANALYZE road_batch;
  PERFORM set_config('work_mem', '256MB', true); -- the batch's sorts and hashes in memory (for this transaction only)

  EXECUTE $q$
  INSERT INTO rollup_outcomes AS r (hour, phase_id, outcome, stop_reason, events, token_events, tokens, first_at, last_at)
  SELECT date_trunc('hour', occurred_at, 'UTC'), phase_id, outcome, coalesce(stop_reason, '(none)'),
         count(*), count(tokens_used), coalesce(sum(tokens_used), 0), min(occurred_at), max(occurred_at)
  FROM road_batch GROUP BY 1, 2, 3, 4
  ON CONFLICT (hour, phase_id, outcome, stop_reason) DO UPDATE SET
    events = r.events + excluded.events, token_events = r.token_events + excluded.token_events,
    tokens = r.tokens + excluded.tokens, first_at = least(r.first_at, excluded.first_at), last_at = greatest(r.last_at, excluded.last_at)
  $q$;

  EXECUTE $q$
  INSERT INTO rollup_tokens AS r (phase_id, hour, bucket, events)
  SELECT phase_id, date_trunc('hour', occurred_at, 'UTC'), road_token_bucket(tokens_used), count(*)
  FROM road_batch WHERE tokens_used IS NOT NULL GROUP BY 1, 2, 3
  ON CONFLICT (phase_id, hour, bucket) DO UPDATE SET events = r.events + excluded.events
  $q$;

  -- What the affected runs and commits contributed before (sign -1: their events already folded) and contribute now
  -- (sign +1: those and the new ones); the difference is added to the rollups. Events may arrive in any order: a late
  -- first attempt re-files the retry after it.
  -- Sorts compare text with COLLATE "C": byte order is all they need, and it is several times faster than a locale's.
  EXECUTE $q$
  -- Fetched first (MATERIALIZED), then told apart from the batch: joined inside the per-run probe, the batch would be
  -- scanned once per run.
  WITH run_rows AS MATERIALIZED (
    SELECT e.event_id, e.run_id, e.phase_id, e.attempt, e.outcome, e.stop_reason, e.occurred_at
    FROM (SELECT DISTINCT run_id FROM road_batch) runs
    CROSS JOIN LATERAL (SELECT * FROM phase_outcome_events WHERE run_id = runs.run_id OFFSET 0) e
  ),
  run_events AS (
    SELECT e.event_id, e.run_id, e.phase_id, e.attempt, e.outcome, coalesce(e.stop_reason, '(none)') AS reason,
           date_trunc('hour', e.occurred_at, 'UTC') AS hour, n.event_id IS NOT NULL AS is_new
    FROM run_rows e LEFT JOIN (SELECT event_id FROM road_batch) n ON n.event_id = e.event_id
  ),
  r AS (
    SELECT 1 AS sign, * FROM run_events
    UNION ALL
    SELECT -1, * FROM run_events WHERE NOT is_new
  ),
  -- a retry is filed under the stop reason of the run's previous attempt of the phase ('unknown' if none is stored)
  retries AS (
    SELECT * FROM (
      SELECT sign, run_id, phase_id, hour, attempt,
             CASE WHEN lag(attempt) OVER w = attempt - 1 AND lag(outcome) OVER w <> 'SUCCESS' THEN lag(reason) OVER w ELSE 'unknown' END AS before
      FROM r WINDOW w AS (PARTITION BY sign, run_id COLLATE "C", phase_id COLLATE "C" ORDER BY attempt, event_id COLLATE "C")
    ) a WHERE attempt > 1
  ),
  present AS (
    SELECT sign, 'run' AS kind, run_id, '' AS phase_id, '' AS detail, hour FROM r GROUP BY sign, run_id, hour
    UNION ALL SELECT sign, 'phase_run', run_id, phase_id, '', hour FROM r GROUP BY sign, run_id, phase_id, hour
    UNION ALL SELECT sign, 'failure_run', run_id, phase_id, reason, hour FROM r WHERE outcome <> 'SUCCESS' GROUP BY sign, run_id, phase_id, reason, hour
    UNION ALL SELECT sign, 'retry_run', run_id, phase_id, before, hour FROM retries GROUP BY sign, run_id, phase_id, before, hour
  ),
  -- Observations of each test that failed at a phase and commit: a failure when it is among the attempt's failed
  -- tests, a pass when the phase succeeded without it failing. Only commits where some test failed are looked at.
  -- (a join, not a correlated EXISTS: whatever the planner picks stays within the small partial index, where a
  -- misestimated EXISTS once scanned the whole table per batch row)
  commits AS (
    SELECT DISTINCT b.commit_sha, b.phase_id FROM road_batch b
    JOIN phase_outcome_events f ON f.commit_sha = b.commit_sha AND f.phase_id = b.phase_id AND f.outcome <> 'SUCCESS' AND f.tests_failed IS NOT NULL
  ),
  commit_rows AS MATERIALIZED (
    SELECT e.event_id, e.run_id, e.phase_id, e.commit_sha, e.outcome, e.tests_failed, e.occurred_at
    FROM commits
    CROSS JOIN LATERAL (SELECT * FROM phase_outcome_events WHERE commit_sha = commits.commit_sha AND phase_id = commits.phase_id OFFSET 0) e
  ),
  commit_events AS (
    SELECT e.*, date_trunc('hour', e.occurred_at, 'UTC') AS hour, n.event_id IS NOT NULL AS is_new
    FROM commit_rows e LEFT JOIN (SELECT event_id FROM road_batch) n ON n.event_id = e.event_id
  ),
  c AS (
    SELECT 1 AS sign, * FROM commit_events
    UNION ALL
    SELECT -1, * FROM commit_events WHERE NOT is_new
  ),
  tests AS (
    SELECT DISTINCT sign, phase_id, commit_sha, t.test_id
    FROM c, unnest(c.tests_failed) AS t(test_id) WHERE c.outcome <> 'SUCCESS'
  ),
  observations AS (
    SELECT c.sign, c.phase_id, c.commit_sha, t.test_id, c.hour,
           c.outcome <> 'SUCCESS' AS failed,
           row_number() OVER w AS seq, lag(c.outcome <> 'SUCCESS') OVER w AS failed_before, lag(c.hour) OVER w AS hour_before,
           bool_or(c.outcome = 'SUCCESS') OVER (PARTITION BY c.sign, c.phase_id COLLATE "C", c.commit_sha COLLATE "C", t.test_id COLLATE "C") AS passed_ever
    FROM c JOIN tests t USING (sign, phase_id, commit_sha)
    WHERE (c.outcome <> 'SUCCESS' AND t.test_id = ANY (c.tests_failed))
       OR (c.outcome = 'SUCCESS' AND NOT (t.test_id = ANY (coalesce(c.tests_failed, '{}'))))
    WINDOW w AS (PARTITION BY c.sign, c.phase_id COLLATE "C", c.commit_sha COLLATE "C", t.test_id COLLATE "C"
                 ORDER BY c.occurred_at, c.run_id COLLATE "C", c.event_id COLLATE "C")
  ),
  -- only tests that both failed and passed at the commit count as flaky there
  flaky AS (SELECT * FROM observations WHERE passed_ever),
  -- a flip is a change between consecutive observations; the commit counts for a window at its first flip inside it
  -- (lo: the observation before the flip; hi: the observation before the previous flip)
  flips AS (
    SELECT sign, phase_id, test_id, hour, hour_before,
           coalesce(lag(hour_before) OVER (PARTITION BY sign, phase_id COLLATE "C", commit_sha COLLATE "C", test_id COLLATE "C" ORDER BY seq), '-infinity') AS flip_before
    FROM flaky WHERE failed_before <> failed
  ),
  contributions AS (
    SELECT hour, kind, phase_id, detail, 'infinity'::timestamptz AS lo,
           coalesce(lag(hour) OVER (PARTITION BY sign, kind, run_id COLLATE "C", phase_id COLLATE "C", detail COLLATE "C" ORDER BY hour), '-infinity') AS hi,
           sign AS n
    FROM present
    UNION ALL SELECT hour, 'retry', phase_id, before, 'infinity', '-infinity', sign FROM retries
    UNION ALL SELECT hour, CASE WHEN failed THEN 'test_fail' ELSE 'test_pass' END, phase_id, test_id, 'infinity', '-infinity', sign FROM flaky
    UNION ALL SELECT hour, 'flip', phase_id, test_id, hour_before, '-infinity', sign FROM flips
    UNION ALL SELECT hour, 'flaky_commit', phase_id, test_id, hour_before, flip_before, sign FROM flips
  ),
  keyed AS (
    SELECT hour, CASE WHEN kind IN ('run', 'phase_run') THEN 'run' WHEN kind IN ('failure_run', 'retry', 'retry_run') THEN 'reason' ELSE 'test' END AS family,
           phase_id, detail, CASE WHEN lo >= hour THEN 'infinity' ELSE lo END AS lo, hi, kind, n
    FROM contributions
  ),
  summed AS (
    SELECT hour, family, phase_id, detail, lo, hi,
           coalesce(sum(n) FILTER (WHERE kind = 'run'), 0) AS runs, coalesce(sum(n) FILTER (WHERE kind = 'phase_run'), 0) AS phase_runs,
           coalesce(sum(n) FILTER (WHERE kind = 'failure_run'), 0) AS failure_runs, coalesce(sum(n) FILTER (WHERE kind = 'retry'), 0) AS retries,
           coalesce(sum(n) FILTER (WHERE kind = 'retry_run'), 0) AS retry_runs, coalesce(sum(n) FILTER (WHERE kind = 'test_fail'), 0) AS test_fails,
           coalesce(sum(n) FILTER (WHERE kind = 'test_pass'), 0) AS test_passes, coalesce(sum(n) FILTER (WHERE kind = 'flip'), 0) AS flips,
           coalesce(sum(n) FILTER (WHERE kind = 'flaky_commit'), 0) AS flaky_commits
    FROM keyed GROUP BY 1, 2, 3, 4, 5, 6
  )
  INSERT INTO rollup_counts AS r (hour, family, phase_id, detail, lo, hi, runs, phase_runs, failure_runs, retries, retry_runs, test_fails, test_passes, flips, flaky_commits)
  SELECT * FROM summed
  WHERE (runs, phase_runs, failure_runs, retries, retry_runs, test_fails, test_passes, flips, flaky_commits) <> (0, 0, 0, 0, 0, 0, 0, 0, 0)
  ON CONFLICT (hour, family, phase_id, detail, lo, hi) DO UPDATE SET
    runs = r.runs + excluded.runs, phase_runs = r.phase_runs + excluded.phase_runs, failure_runs = r.failure_runs + excluded.failure_runs,
    retries = r.retries + excluded.retries, retry_runs = r.retry_runs + excluded.retry_runs, test_fails = r.test_fails + excluded.test_fails,
    test_passes = r.test_passes + excluded.test_passes, flips = r.flips + excluded.flips, flaky_commits = r.flaky_commits + excluded.flaky_commits
  $q$;

  RETURN folded;
END
$fn$;
