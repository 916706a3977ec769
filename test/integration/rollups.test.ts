/**
 * The analysis reads hourly rollups that a trigger keeps as events are stored. Two properties make that safe, and
 * both are checked here on the real PostgreSQL against the events themselves:
 *  - the rollups do not depend on how events arrive (one batch in order, or small shuffled batches from concurrent
 *    writers, late first attempts included);
 *  - every count the analysis reports for a window that cuts through runs equals the same count computed directly
 *    from the events of that window with plain SQL (the oracle below).
 * The fold's shortcuts (migration 1765000000000_faster_fold.sql) are checked to change nothing: runs and commits it
 * takes for new or for known (rollup_runs, rollup_commits, hash collisions included), entities over non-consecutive
 * hours, and a database upgraded from — and back to — the previous fold in the middle of its events.
 */
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { runner } from 'node-pg-migrate';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { analyze } from '../../db/analysis.js';
import { storeEvents } from '../../db/events.js';
import { createPool, dropDatabase, ensureDatabase, type Pool } from '../../db/pool.js';
import { foldPendingEvents, keepRollupsCurrent, pendingBacklog, pendingEvents } from '../../db/rollups.js';
import { generateEvents } from '../../scripts/generate-events.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => db?.drop());

const END = new Date('2026-03-10T00:00:00Z');
const HOUR = 3_600_000;

/** 6,000 generated events over two days, plus flaky tests across runs at one commit, recorded out of order. */
function dataset(): Array<Record<string, unknown>> {
  const events = [...generateEvents(6_000, { days: 2, end: END, seed: 7 })];
  const at = (hoursBeforeEnd: number) => new Date(END.getTime() - hoursBeforeEnd * HOUR).toISOString();
  const shared = 'ddddddd1';
  const fail = (run_id: string, attempt: number, h: number) => ({
    event_id: `${run_id}:x:${attempt}`, run_id, phase_id: 'phase-x', attempt, outcome: 'FAILED', stop_reason: 'tests_failed',
    tests_failed: ['tests/x.py::t_shared'], commit_sha: shared, files: ['src/x.py'], occurred_at: at(h),
  });
  const pass = (run_id: string, attempt: number, h: number) => ({
    event_id: `${run_id}:x:${attempt}`, run_id, phase_id: 'phase-x', attempt, outcome: 'SUCCESS', commit_sha: shared, occurred_at: at(h),
  });
  // x1 fails then passes; x2 (another run, same commit) fails and passes 20 h later; x3 fails again: flips across runs,
  // on both sides of the cut at 29 h before the end.
  events.push(fail('x1', 1, 30), pass('x1', 2, 28.5), fail('x2', 1, 9), pass('x2', 2, 8), fail('x3', 1, 2));
  // y1's retry is in the window below, its failed first attempt before it; y2's first attempt was never recorded.
  events.push(
    { run_id: 'y1', phase_id: 'phase-y', attempt: 1, outcome: 'FAILED', stop_reason: 'boom', occurred_at: at(29.5) },
    { run_id: 'y1', phase_id: 'phase-y', attempt: 2, outcome: 'SUCCESS', occurred_at: at(28.8) },
    { run_id: 'y2', phase_id: 'phase-y', attempt: 2, outcome: 'SUCCESS', occurred_at: at(10) },
  );
  events.push(...wideRun());
  return events;
}

/**
 * A run seen in non-consecutive hours, on both sides of the oracle's window start (29 h before the end): the run, its
 * phase, its failure reason and the reason before its retries all span more than two hours, so the fold counts them
 * from the chain of their hours rather than from their first and last hour.
 */
function wideRun(): Array<Record<string, unknown>> {
  const at = (hoursBeforeEnd: number) => new Date(END.getTime() - hoursBeforeEnd * HOUR).toISOString();
  const w = (phase_id: string, attempt: number, outcome: string, hoursBeforeEnd: number, stop_reason?: string) => ({
    event_id: `w1:${phase_id}:${attempt}`, run_id: 'w1', phase_id, attempt, outcome, occurred_at: at(hoursBeforeEnd), ...(stop_reason ? { stop_reason } : {}),
  });
  return [
    w('phase-w', 1, 'FAILED', 31.5, 'slow'),
    w('phase-v', 1, 'SUCCESS', 30.9),
    w('phase-w', 2, 'FAILED', 28.2, 'slow'),
    w('phase-w', 3, 'SUCCESS', 24.6),
    w('phase-u', 1, 'FAILED', 12.3, 'slow'),
  ];
}

/** The rollups of the whole dataset, recorded in order and folded once (the first test); the others must match it. */
let expected: string[] = [];

/** The rollup tables (with every pending event folded), without keys that netted out to zero. */
async function rollups(pool: Pool = db.pool) {
  await foldPendingEvents(pool);
  const { rows } = await pool.query<{ row: string }>(`
    SELECT row FROM (
      SELECT format('outcomes %s %s %s %s %s %s %s %s %s', hour, phase_id, outcome, stop_reason, events, token_events, tokens, first_at, last_at) AS row FROM rollup_outcomes
      UNION ALL SELECT format('tokens %s %s %s %s', phase_id, hour, bucket, events) FROM rollup_tokens
      UNION ALL SELECT format('counts %s %s %s %s %s %s %s', hour, family, phase_id, detail, lo, hi,
                              array[runs, phase_runs, failure_runs, retries, retry_runs, test_fails, test_passes, flips, flaky_commits])
      FROM rollup_counts WHERE (runs, phase_runs, failure_runs, retries, retry_runs, test_fails, test_passes, flips, flaky_commits) <> (0, 0, 0, 0, 0, 0, 0, 0, 0)
    ) r ORDER BY row`);
  return rows.map((r) => r.row);
}

async function storeAll(events: unknown[], pool: Pool = db.pool) {
  const results = await storeEvents(pool, events);
  expect(results.filter((r) => r.status !== 'accepted')).toEqual([]);
}

/** A deterministic shuffle (the same permutation every run). */
function shuffled<T>(items: T[], seed: number): T[] {
  const out = [...items];
  let s = seed;
  for (let i = out.length - 1; i > 0; i--) {
    s = (s * 1_103_515_245 + 12_345) % 2_147_483_648;
    const j = s % (i + 1);
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

describe('analysis rollups', () => {
  it('are the same whether events arrive in one batch in order or shuffled, in small batches, from concurrent writers', async () => {
    const events = dataset();
    for (let i = 0; i < events.length; i += 1000) await storeAll(events.slice(i, i + 1000));
    const inOrder = await rollups();
    expect(inOrder.length).toBeGreaterThan(1000);
    expected = inOrder;

    await db.pool.query('TRUNCATE phase_outcome_events'); // the truncate trigger empties the rollups too
    expect(await rollups()).toEqual([]);
    expect(Number((await db.pool.query('SELECT count(*) FROM rollup_pending')).rows[0].count)).toBe(0);

    const mixed = shuffled(events, 11);
    const batches: unknown[][] = [];
    for (let i = 0; i < mixed.length; i += 37) batches.push(mixed.slice(i, i + 37));
    // Four writers at once, and folds running while they write: a fold must neither miss an event committed while it
    // runs nor count one twice. Runs are spread over all writers, so a run's events land in different folds.
    let writing = true;
    let folds = 0;
    const folding = (async () => {
      while (writing) folds += (await foldPendingEvents(db.pool)) > 0 ? 1 : 0;
    })();
    await Promise.all([0, 1, 2, 3].map(async (writer) => {
      for (let b = writer; b < batches.length; b += 4) await storeAll(batches[b]!);
    }));
    writing = false;
    await folding;
    expect(folds).toBeGreaterThan(3);
    expect(await rollups()).toEqual(inOrder);
  });

  it('give the same counts as plain SQL over the events, for a window that cuts through runs and flaky sequences', async () => {
    // (the events of the previous test are stored; this window starts and ends in the middle of the two days)
    const from = new Date(END.getTime() - 29 * HOUR).toISOString();
    const to = new Date(END.getTime() - 5 * HOUR).toISOString();
    const report = await analyze(db.pool, { from, to, top: 10_000 }, new Date(to));
    const q = async <R,>(sql: string) => (await db.pool.query(sql, [from, to])).rows as R[];
    const W = `occurred_at >= $1 AND occurred_at < $2`;

    const [totals] = await q<{ events: number; runs: number; tokens: number; failures: number }>(
      `SELECT count(*)::int AS events, count(DISTINCT run_id)::int AS runs, sum(tokens_used)::float8 AS tokens,
              count(*) FILTER (WHERE outcome <> 'SUCCESS')::int AS failures FROM phase_outcome_events WHERE ${W}`);
    expect(report.totals).toMatchObject(totals!);
    expect(totals!.events).toBeGreaterThan(2000); // the window holds about half of the events

    const sinks = await q<{ phase_id: string; tokens: number; runs: number; p95: number }>(
      `SELECT phase_id, sum(tokens_used)::float8 AS tokens, count(DISTINCT run_id)::int AS runs,
              percentile_disc(0.95) WITHIN GROUP (ORDER BY tokens_used)::float8 AS p95
       FROM phase_outcome_events WHERE ${W} GROUP BY 1 HAVING sum(tokens_used) > 0 ORDER BY 1`);
    const reported = [...report.cost_sinks].sort((a, b) => (a.phase_id < b.phase_id ? -1 : 1));
    expect(reported.map((c) => [c.phase_id, c.tokens, c.runs])).toEqual(sinks.map((s) => [s.phase_id, s.tokens, s.runs]));
    // p95 from the histogram is within 1 % of the exact nearest-rank p95.
    reported.forEach((c, i) => expect(Math.abs(c.p95 - sinks[i]!.p95)).toBeLessThanOrEqual(sinks[i]!.p95 * 0.01));

    const failures = await q<{ phase_id: string; stop_reason: string; count: number; runs: number }>(
      `SELECT phase_id, coalesce(stop_reason, '(none)') AS stop_reason, count(*)::int AS count, count(DISTINCT run_id)::int AS runs
       FROM phase_outcome_events WHERE ${W} AND outcome <> 'SUCCESS' GROUP BY 1, 2`);
    const key = (x: { phase_id: string; stop_reason: string }) => `${x.phase_id} ${x.stop_reason}`;
    expect(report.failure_modes.map((f) => [key(f), f.count, f.runs_affected]).sort()).toEqual(failures.map((f) => [key(f), f.count, f.runs]).sort());

    // A retry is filed under the stop reason of the run's previous attempt of the phase, wherever that attempt falls.
    const retries = await q<{ phase_id: string; stop_reason: string; retries: number; runs: number }>(
      `SELECT r.phase_id, coalesce((SELECT CASE WHEN p.outcome <> 'SUCCESS' THEN coalesce(p.stop_reason, '(none)') END
                                    FROM phase_outcome_events p WHERE p.run_id = r.run_id AND p.phase_id = r.phase_id AND p.attempt = r.attempt - 1
                                    ORDER BY p.event_id DESC LIMIT 1), 'unknown') AS stop_reason,
              count(*)::int AS retries, count(DISTINCT r.run_id)::int AS runs
       FROM phase_outcome_events r WHERE r.${W} AND r.attempt > 1 GROUP BY 1, 2`);
    expect(retries.filter((r) => r.phase_id === 'phase-y').map(key).sort()).toEqual(['phase-y boom', 'phase-y unknown']);
    // w1's attempts 2 (−28.2 h) and 3 (−24.6 h) are in the window, both after a 'slow' failure; its attempt 1 is not.
    expect(retries.filter((r) => r.phase_id === 'phase-w')).toEqual([{ phase_id: 'phase-w', stop_reason: 'slow', retries: 2, runs: 1 }]);
    expect(report.retry_patterns.map((r) => [key(r), r.retries, r.runs_affected]).sort()).toEqual(retries.map((r) => [key(r), r.retries, r.runs]).sort());

    // Flaky: every observation of a test that failed at a phase and commit, in time order over all time; a flip counts
    // when both of its observations are in the window; fails and passes count at commits where the test did both.
    const flaky = await q<{ phase_id: string; test_id: string; commits: number; flips: number; fails: number; passes: number }>(
      `WITH tests AS (
         SELECT DISTINCT phase_id, commit_sha, t FROM phase_outcome_events, unnest(tests_failed) t WHERE outcome <> 'SUCCESS' AND commit_sha IS NOT NULL
       ), obs AS (
         SELECT t.phase_id, t.commit_sha, t.t AS test_id, e.occurred_at, e.outcome <> 'SUCCESS' AS failed,
                lag(e.outcome <> 'SUCCESS') OVER w AS before, lag(e.occurred_at) OVER w AS before_at
         FROM tests t JOIN phase_outcome_events e ON e.phase_id = t.phase_id AND e.commit_sha = t.commit_sha
         WHERE (e.outcome <> 'SUCCESS' AND t.t = ANY (e.tests_failed)) OR (e.outcome = 'SUCCESS' AND NOT (t.t = ANY (coalesce(e.tests_failed, '{}'))))
         WINDOW w AS (PARTITION BY t.phase_id, t.commit_sha, t.t ORDER BY e.occurred_at, e.run_id, e.event_id)
       ), both_ever AS (
         SELECT phase_id, commit_sha, test_id FROM obs GROUP BY 1, 2, 3 HAVING bool_or(failed) AND bool_or(NOT failed)
       ), per_commit AS (
         SELECT o.phase_id, o.commit_sha, o.test_id,
                count(*) FILTER (WHERE o.before IS NOT NULL AND o.before <> o.failed AND o.before_at >= $1) AS flips,
                count(*) FILTER (WHERE o.failed) AS fails, count(*) FILTER (WHERE NOT o.failed) AS passes
         FROM obs o JOIN both_ever USING (phase_id, commit_sha, test_id) WHERE o.${W} GROUP BY 1, 2, 3
       )
       SELECT phase_id, test_id, count(*) FILTER (WHERE flips > 0)::int AS commits, sum(flips)::int AS flips, sum(fails)::int AS fails, sum(passes)::int AS passes
       FROM per_commit GROUP BY 1, 2 HAVING sum(flips) > 0`);
    // t_shared: F(−30 h) P(−28.5 h) F(−9 h) P(−8 h) F(−2 h); the window [−29 h, −5 h) holds P F P: two flips (the
    // F → P at −28.5 h has its fail outside), one fail, two passes, at one commit.
    expect(flaky.find((f) => f.test_id === 'tests/x.py::t_shared')).toMatchObject({ commits: 1, flips: 2, fails: 1, passes: 2 });
    expect(report.flaky_tests.map((f) => [f.phase_id, f.test_id, f.commits, f.flips, f.fails, f.passes]).sort()).toEqual(
      flaky.map((f) => [f.phase_id, f.test_id, f.commits, f.flips, f.fails, f.passes]).sort(),
    );
  });

  it('are kept current in the background: stored events are folded within a few ticks', async () => {
    await foldPendingEvents(db.pool);
    await storeAll([{ run_id: 'bg1', phase_id: 'phase-bg', outcome: 'FAILED', stop_reason: 'late', occurred_at: new Date(END.getTime() - HOUR).toISOString() }]);
    expect(await pendingEvents(db.pool)).toBe(1);
    const stop = keepRollupsCurrent(db.pool, { everyMs: 20 });
    try {
      await expect.poll(() => pendingEvents(db.pool), { timeout: 5_000, interval: 20 }).toBe(0);
    } finally {
      await stop();
    }
    const { rows } = await db.pool.query("SELECT sum(events)::int AS n FROM rollup_outcomes WHERE phase_id = 'phase-bg' AND stop_reason = 'late'");
    expect(rows[0].n).toBe(1);
  });

  it('refuses to update or delete an event (the rollups are kept from inserts)', async () => {
    await expect(db.pool.query("DELETE FROM phase_outcome_events WHERE run_id = 'x1'")).rejects.toThrow(/immutable: DELETE is not allowed/);
    await expect(db.pool.query("UPDATE phase_outcome_events SET tokens_used = 1 WHERE run_id = 'x1'")).rejects.toThrow(/immutable: UPDATE/);
  });

  it('count a run seen in non-consecutive hours the same whichever of its events come first and folds between them', async () => {
    await db.pool.query('TRUNCATE phase_outcome_events');
    const [w1a1, w1v, w1a2, w1a3, w1u] = wideRun();
    // Folded alone, one event at a time: the late first attempt re-files both retries, the phases and the failure
    // reason gain hours before and between the ones already counted.
    for (const event of [w1a3, w1u, w1a1, w1v, w1a2]) {
      await storeAll([event]);
      expect(await foldPendingEvents(db.pool)).toBe(1);
    }
    const oneByOne = await rollups();
    await db.pool.query('TRUNCATE phase_outcome_events');
    await storeAll(wideRun());
    expect(await rollups()).toEqual(oneByOne);
    // The run counts once per window however its hours fall: 5 distinct hours, each counted once with the one before.
    const { rows } = await db.pool.query<{ hour: number; hi: number }>(
      `SELECT extract(epoch FROM hour)::float8 * 1000 AS hour, extract(epoch FROM hi)::float8 * 1000 AS hi
       FROM rollup_counts WHERE family = 'run' AND phase_id = '' AND runs = 1 ORDER BY 1`,
    );
    const hour = (hoursBeforeEnd: number) => END.getTime() - Math.ceil(hoursBeforeEnd) * HOUR;
    expect(rows.map((r) => [r.hour, r.hi])).toEqual([
      [hour(31.5), -Infinity], [hour(30.9), hour(31.5)], [hour(28.2), hour(30.9)], [hour(24.6), hour(28.2)], [hour(12.3), hour(24.6)],
    ]);
  });

  it('count runs and commits the fold wrongly takes for known (a hash collision) exactly, and forget them with the events', async () => {
    await db.pool.query('TRUNCATE phase_outcome_events');
    const counts = async () =>
      (await db.pool.query<{ runs: number; commits: number }>('SELECT (SELECT count(*)::int FROM rollup_runs) AS runs, (SELECT count(*)::int FROM rollup_commits) AS commits')).rows[0]!;
    expect(await counts()).toEqual({ runs: 0, commits: 0 });
    const events = dataset();
    // Every run and commit of the dataset "known" before any of its events is stored: each takes the exact path.
    const runIds = [...new Set(events.map((e) => String(e.run_id)))];
    const commits = [...new Set(events.map((e) => e.commit_sha).filter((c): c is string => typeof c === 'string'))];
    await db.pool.query('INSERT INTO rollup_runs SELECT hashtextextended(r, 0) FROM unnest($1::text[]) r ON CONFLICT DO NOTHING', [runIds]);
    await db.pool.query('INSERT INTO rollup_commits SELECT hashtextextended(c, 0) FROM unnest($1::text[]) c ON CONFLICT DO NOTHING', [commits]);
    const mixed = shuffled(events, 23);
    for (let i = 0; i < mixed.length; i += 500) {
      await storeAll(mixed.slice(i, i + 500));
      await foldPendingEvents(db.pool);
    }
    expect(await rollups()).toEqual(expected);
    expect(await counts()).toEqual({ runs: runIds.length, commits: commits.length });
    await db.pool.query('TRUNCATE phase_outcome_events');
    expect(await counts()).toEqual({ runs: 0, commits: 0 });
  });

  it('are the same when the database is upgraded from the previous fold, and back, in the middle of its events', async () => {
    const serverUrl = inject('postgresServerUrl');
    const name = `road_test_${randomBytes(6).toString('hex')}`;
    await ensureDatabase(serverUrl, name);
    const url = new URL(serverUrl);
    url.pathname = `/${name}`;
    const migrateTo = async (direction: 'up' | 'down', timestamp?: number) =>
      runner({
        databaseUrl: url.toString(), dir: path.join(path.dirname(fileURLToPath(import.meta.url)), '../../db/migrations'),
        migrationsTable: 'road_migrations', direction, log: () => undefined, checkOrder: true,
        ...(timestamp === undefined ? {} : { count: timestamp, timestamp: true }),
      });
    const FASTER_FOLD = 1_765_000_000_000;
    const pool = createPool(url.toString(), 4);
    try {
      await migrateTo('up', FASTER_FOLD - 1);
      const events = shuffled(dataset(), 5);
      const [first, second, third] = [0.6, 0.8, 0.9].map((share) => Math.round(events.length * share)) as [number, number, number];
      const tokens = async () => (await pool.query<{ row: string }>("SELECT format('%s %s %s %s', phase_id, hour, bucket, events) AS row FROM rollup_tokens ORDER BY 1")).rows;
      // The previous fold: 60 % folded, 20 % pending at the upgrade.
      await storeAll(events.slice(0, first), pool);
      await foldPendingEvents(pool);
      await storeAll(events.slice(first, second), pool);
      const before = await tokens();
      expect(before.length).toBeGreaterThan(1000);
      await migrateTo('up');
      expect(await tokens()).toEqual(before);
      expect((await pendingBacklog(pool)).events).toBe(second - first);
      // This fold: the pending events and 10 % more, then back to the previous fold for the last 10 %.
      await storeAll(events.slice(second, third), pool);
      await foldPendingEvents(pool);
      const after = await tokens();
      await migrateTo('down', FASTER_FOLD);
      expect(await tokens()).toEqual(after);
      await storeAll(events.slice(third), pool);
      expect(await rollups(pool)).toEqual(expected);
    } finally {
      await pool.end();
      await dropDatabase(serverUrl, name);
    }
  });
});
