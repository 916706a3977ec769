-- Up Migration
-- Hourly rollups for the analysis (ROAD-B). Every way events get in (the judging COPY, INSERT … ON CONFLICT, a
-- user's own COPY) notes their ids in rollup_pending through a statement trigger — cheap, so ingestion keeps its
-- speed — and road_rollup_pending() folds the pending events into the rollups in one set-based pass: the worker calls it
-- every few seconds, and every analysis calls it first, so a report always covers every event
-- committed before it started. An analysis then reads a few hundred thousand rollup rows instead of millions of events.
--
-- Counts that are not additive (distinct runs, flips between consecutive observations) stay exact by recording, for
-- every contribution, the hour of the observation before it (see rollup_counts). Windows are therefore whole hours.

-- Every event of a run, and every event at a commit, so a fold can recompute what they contribute (hash indexes:
-- only equality is needed, and they cost ingestion less than B-trees on these text columns).
CREATE INDEX phase_outcome_events_run ON phase_outcome_events USING hash (run_id);
CREATE INDEX phase_outcome_events_commit ON phase_outcome_events USING hash (commit_sha);
-- A phase's failed and retried attempts, latest first: the samples and files behind a failure, retry or flaky test.
CREATE INDEX phase_outcome_events_trouble ON phase_outcome_events (phase_id, occurred_at) WHERE outcome <> 'SUCCESS' OR attempt > 1;
-- Which phase + commit pairs have a failing test (a small index: only such events are in it).
CREATE INDEX phase_outcome_events_failed_tests ON phase_outcome_events (commit_sha, phase_id) WHERE outcome <> 'SUCCESS' AND tests_failed IS NOT NULL;

-- Events and tokens per hour, phase, outcome and stop reason ('(none)' when the event gave none). Insert-only.
CREATE TABLE rollup_outcomes (
  hour         timestamptz NOT NULL,
  phase_id     text NOT NULL,
  outcome      phase_outcome NOT NULL,
  stop_reason  text NOT NULL,
  events       bigint NOT NULL,
  token_events bigint NOT NULL,
  tokens       numeric NOT NULL,
  first_at     timestamptz NOT NULL,
  last_at      timestamptz NOT NULL,
  PRIMARY KEY (hour, phase_id, outcome, stop_reason)
);

-- Token histogram per hour and phase for p95: bucket i holds (1.02^(i-1), 1.02^i], so a bucket's representative
-- value 2·1.02^i / 2.02 is within 1 % of every value in it (the DDSketch mapping); bucket -1 holds 0.
CREATE TABLE rollup_tokens (
  phase_id text NOT NULL,
  hour     timestamptz NOT NULL,
  bucket   integer NOT NULL,
  events   bigint NOT NULL,
  PRIMARY KEY (phase_id, hour, bucket)
);

CREATE FUNCTION road_token_bucket(tokens bigint) RETURNS integer LANGUAGE sql IMMUTABLE PARALLEL SAFE
  RETURN CASE WHEN tokens = 0 THEN -1 ELSE ceil(ln(tokens) / ln(1.02))::integer END;

CREATE FUNCTION road_token_value(bucket integer) RETURNS bigint LANGUAGE sql IMMUTABLE PARALLEL SAFE
  RETURN CASE WHEN bucket < 0 THEN 0 ELSE round(2 * power(1.02::float8, bucket) / 2.02)::bigint END;

-- Counts of entities (a run; a run's phase; a run's phase with a failure reason; …) per hour. A row counts in a window
-- [H1, H2) when its hour is in the window, lo >= H1 and hi < H1:
--   * distinct counts: an entity contributes once per hour it appears in, with hi = the previous hour it appeared in
--     ('-infinity' for its first), so exactly its first hour inside any window counts;
--   * flips: a flip contributes at the later observation with lo = the hour of the earlier one, so it counts only
--     when both observations are inside the window ('infinity' when both are in the same hour: always);
--   * additive counts: lo = 'infinity', hi = '-infinity'.
-- One row holds every count of a key, so a window reads one row where there would be one per count:
--   family 'run':    phase_id '' → runs; phase_id p → phase_runs (detail '');
--   family 'reason': detail = a stop reason → failure_runs; retries and retry_runs (the stop reason before the retry);
--   family 'test':   detail = a test id → test_fails, test_passes, flips, flaky_commits.
CREATE TABLE rollup_counts (
  hour          timestamptz NOT NULL,
  family        text NOT NULL,
  phase_id      text NOT NULL,
  detail        text NOT NULL,
  lo            timestamptz NOT NULL,
  hi            timestamptz NOT NULL,
  runs          bigint NOT NULL,
  phase_runs    bigint NOT NULL,
  failure_runs  bigint NOT NULL,
  retries       bigint NOT NULL,
  retry_runs    bigint NOT NULL,
  test_fails    bigint NOT NULL,
  test_passes   bigint NOT NULL,
  flips         bigint NOT NULL,
  flaky_commits bigint NOT NULL,
  PRIMARY KEY (hour, family, phase_id, detail, lo, hi)
);

-- Ids of stored events not yet folded into the rollups.
CREATE TABLE rollup_pending (event_id text NOT NULL);

CREATE FUNCTION road_note_pending() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
  INSERT INTO rollup_pending (event_id) SELECT event_id FROM new_events;
  RETURN NULL;
END
$fn$;
CREATE TRIGGER phase_outcome_events_pending AFTER INSERT ON phase_outcome_events
  REFERENCING NEW TABLE AS new_events FOR EACH STATEMENT EXECUTE FUNCTION road_note_pending();

-- Folds every pending event into the rollups and returns how many there were. Call it in a REPEATABLE READ
-- transaction, one caller at a time (db/rollups.ts takes a session advisory lock first): all its statements then see
-- one snapshot, so an event committed meanwhile is neither counted as already folded nor taken — it stays pending.
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

-- Events are immutable (a changed event is a conflict, not an update); the rollups rely on it.
CREATE FUNCTION road_events_immutable() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
  RAISE EXCEPTION 'phase outcome events are immutable: % is not allowed (the analysis rollups are kept from inserts)', TG_OP
    USING ERRCODE = 'feature_not_supported';
END
$fn$;
CREATE TRIGGER phase_outcome_events_immutable BEFORE UPDATE OR DELETE ON phase_outcome_events
  FOR EACH STATEMENT EXECUTE FUNCTION road_events_immutable();

CREATE FUNCTION road_rollup_truncate() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
  TRUNCATE rollup_outcomes, rollup_tokens, rollup_counts, rollup_pending;
  RETURN NULL;
END
$fn$;
CREATE TRIGGER phase_outcome_events_truncate AFTER TRUNCATE ON phase_outcome_events
  FOR EACH STATEMENT EXECUTE FUNCTION road_rollup_truncate();

-- Down Migration
DROP TRIGGER phase_outcome_events_truncate ON phase_outcome_events;
DROP TRIGGER phase_outcome_events_immutable ON phase_outcome_events;
DROP TRIGGER phase_outcome_events_pending ON phase_outcome_events;
DROP FUNCTION road_rollup_truncate();
DROP FUNCTION road_events_immutable();
DROP FUNCTION road_rollup_pending();
DROP FUNCTION road_note_pending();
DROP TABLE rollup_pending, rollup_counts, rollup_tokens, rollup_outcomes;
DROP FUNCTION road_token_value(integer);
DROP FUNCTION road_token_bucket(bigint);
DROP INDEX phase_outcome_events_failed_tests;
DROP INDEX phase_outcome_events_trouble;
DROP INDEX phase_outcome_events_commit;
DROP INDEX phase_outcome_events_run;
