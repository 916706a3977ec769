/**
 * The SQL side of ROAD-B: every aggregation runs in PostgreSQL over one window [from, to) (the BRIN index on
 * occurred_at finds its pages); nothing loads the window's rows into JS. Details (samples, files) are fetched for
 * the top items only.
 */
import {
  buildReport,
  resolveWindow,
  type AnalysisReport,
  type CostSink,
  type FailureMode,
  type FileCount,
  type FlakyTest,
  type RetryPattern,
  type Window,
  type WindowStats,
} from '../domain/analysis.js';
import type { QueryResult, QueryResultRow } from 'pg';
import { inTransaction, withClient, type Pool } from './pool.js';

/**
 * Runs one analysis query with room to sort in memory: the window's sorts (distinct runs, p95, retries) would
 * otherwise spill to disk at the default 4 MB. Limited to the transaction, so the pooled connection is unchanged.
 */
function analysisQuery(pool: Pool) {
  return <R extends QueryResultRow>(text: string, values: unknown[]): Promise<QueryResult<R>> =>
    withClient(pool, (client) => inTransaction(client, () => client.query<R>(text, values), "BEGIN READ ONLY; SET LOCAL work_mem = '64MB'"));
}

const IN_WINDOW = (alias = 'e') => `${alias}.occurred_at >= $1 AND ${alias}.occurred_at < $2`;
const FAIL_REASON = `coalesce(e.stop_reason, '(none)')`;

export interface AnalyzeOptions {
  /** A duration such as 7d (default), or explicit from/to (ISO-8601). */
  window?: string;
  from?: string;
  to?: string;
  top?: number;
}

/** The full analysis: the window and the previous one, aggregated side by side on two connections. */
export async function analyze(pool: Pool, options: AnalyzeOptions, now: Date): Promise<AnalysisReport> {
  const top = options.top ?? 10;
  const windows = resolveWindow(options, now);
  const [current, previous] = await Promise.all([
    windowStats(pool, windows.current, { top, details: true }),
    windowStats(pool, windows.previous, { top, details: false }),
  ]);
  return buildReport({ current, previous, window: windows.current, previousWindow: windows.previous, top, generatedAt: now.toISOString() });
}

/** Aggregates of one window; with `details`, also p95, runs per item, samples and files of the items that can make the top N. */
export async function windowStats(pool: Pool, window: Window, options: { top: number; details: boolean }): Promise<WindowStats> {
  const params = [window.from, window.to];
  const query = analysisQuery(pool);
  // The previous window only feeds the changes: it skips what only the current window shows (p95, runs per item).
  const full = options.details;
  const runsPerItem = (column: string) => (full ? `count(DISTINCT ${column})::int` : 'NULL::int');
  const [phases, failures, retries, flaky, runs] = await Promise.all([
    // Per phase, plus the whole window (the empty grouping set): events, runs, tokens and their distribution.
    query<{ phase_id: string | null; events: number; runs: number | null; tokens: string; mean: number | null; p95: number | null; failures: number }>(
      `SELECT phase_id, count(*)::int AS events, ${runsPerItem('run_id')} AS runs, coalesce(sum(tokens_used), 0)::text AS tokens,
              avg(tokens_used)::float8 AS mean,
              ${full ? 'percentile_cont(0.95) WITHIN GROUP (ORDER BY tokens_used)' : 'NULL::float8'} AS p95,
              count(*) FILTER (WHERE outcome <> 'SUCCESS')::int AS failures
       FROM phase_outcome_events e WHERE ${IN_WINDOW()}
       GROUP BY GROUPING SETS ((phase_id), ())`,
      params,
    ),
    query<{ phase_id: string; stop_reason: string; count: number; failed: number; timeout: number; stuck: number; runs: number | null; first_seen: Date; last_seen: Date }>(
      `SELECT phase_id, ${FAIL_REASON} AS stop_reason, count(*)::int AS count,
              count(*) FILTER (WHERE outcome = 'FAILED')::int AS failed, count(*) FILTER (WHERE outcome = 'TIMEOUT')::int AS timeout,
              count(*) FILTER (WHERE outcome = 'STUCK')::int AS stuck, ${runsPerItem('run_id')} AS runs,
              min(occurred_at) AS first_seen, max(occurred_at) AS last_seen
       FROM phase_outcome_events e WHERE ${IN_WINDOW()} AND outcome <> 'SUCCESS'
       GROUP BY 1, 2`,
      params,
    ),
    // A retry is attempt n > 1 of a phase within one run; it is filed under the stop reason of attempt n − 1.
    query<{ phase_id: string; stop_reason: string; retries: number; runs: number | null }>(
      `SELECT r.phase_id, CASE WHEN e.event_id IS NULL THEN 'unknown' ELSE ${FAIL_REASON} END AS stop_reason, count(*)::int AS retries, ${runsPerItem('r.run_id')} AS runs
       FROM phase_outcome_events r
       LEFT JOIN phase_outcome_events e
         ON e.run_id = r.run_id AND e.phase_id = r.phase_id AND e.attempt = r.attempt - 1 AND ${IN_WINDOW()} AND e.outcome <> 'SUCCESS'
       WHERE ${IN_WINDOW('r')} AND r.attempt > 1
       GROUP BY 1, 2`,
      params,
    ),
    // Flaky: at one commit, the test failed in one attempt of a phase and the phase succeeded without it failing in
    // another. Flips count changes between failing and passing, attempt after attempt, in time order.
    query<{ test_id: string; phase_id: string; commits: number; flips: number; fails: number; passes: number }>(
      `WITH fails AS (
         SELECT e.phase_id, e.commit_sha, t.test_id, e.run_id, e.occurred_at
         FROM phase_outcome_events e, unnest(e.tests_failed) AS t(test_id)
         WHERE ${IN_WINDOW()} AND e.tests_failed IS NOT NULL AND e.commit_sha IS NOT NULL AND e.outcome <> 'SUCCESS'
       ), tests AS (SELECT DISTINCT phase_id, commit_sha, test_id FROM fails),
       observations AS (
         SELECT test_id, phase_id, commit_sha, occurred_at, run_id, true AS failed FROM fails
         UNION ALL
         SELECT t.test_id, e.phase_id, e.commit_sha, e.occurred_at, e.run_id, false
         FROM phase_outcome_events e JOIN tests t ON t.phase_id = e.phase_id AND t.commit_sha = e.commit_sha
         WHERE ${IN_WINDOW()} AND e.outcome = 'SUCCESS' AND NOT (t.test_id = ANY (coalesce(e.tests_failed, '{}')))
       ), ordered AS (
         SELECT *, lag(failed) OVER (PARTITION BY test_id, phase_id, commit_sha ORDER BY occurred_at, run_id) AS before
         FROM observations
       ), per_commit AS (
         SELECT test_id, phase_id, commit_sha, count(*) FILTER (WHERE failed) AS fails, count(*) FILTER (WHERE NOT failed) AS passes,
                count(*) FILTER (WHERE before IS NOT NULL AND before <> failed) AS flips
         FROM ordered GROUP BY 1, 2, 3
       )
       SELECT test_id, phase_id, count(*)::int AS commits, sum(flips)::int AS flips, sum(fails)::int AS fails, sum(passes)::int AS passes
       FROM per_commit WHERE fails > 0 AND passes > 0
       GROUP BY 1, 2`,
      params,
    ),
    // Distinct runs of the whole window by hashing (the previous window's phases query does not count them).
    full ? undefined : query<{ runs: number }>(`SELECT count(*)::int AS runs FROM (SELECT run_id FROM phase_outcome_events e WHERE ${IN_WINDOW()} GROUP BY run_id) r`, params),
  ]);

  const whole = phases.rows.find((r) => r.phase_id === null);
  const perPhase = phases.rows.filter((r): r is typeof r & { phase_id: string } => r.phase_id !== null);
  const eventsOfPhase = new Map(perPhase.map((r) => [r.phase_id, r.events]));
  const tokensTotal = Number(whole?.tokens ?? 0);

  const stats: WindowStats = {
    totals: { events: whole?.events ?? 0, runs: (full ? whole?.runs : runs?.rows[0]?.runs) ?? 0, phases: perPhase.length, tokens: tokensTotal, failures: whole?.failures ?? 0 },
    failure_modes: failures.rows.map((r) => ({
      phase_id: r.phase_id,
      stop_reason: r.stop_reason,
      count: r.count,
      outcomes: { FAILED: r.failed, TIMEOUT: r.timeout, STUCK: r.stuck },
      share_of_phase: r.count / (eventsOfPhase.get(r.phase_id) ?? r.count),
      runs_affected: r.runs ?? 0,
      first_seen: r.first_seen.toISOString(),
      last_seen: r.last_seen.toISOString(),
      sample_rationales: [],
      sample_runs: [],
      top_files: [],
    })),
    cost_sinks: perPhase
      .filter((r) => Number(r.tokens) > 0)
      .map((r) => ({
        phase_id: r.phase_id,
        tokens: Number(r.tokens),
        mean: r.mean ?? 0,
        p95: r.p95 ?? 0,
        events: r.events,
        runs: r.runs ?? 0,
        share: tokensTotal ? Number(r.tokens) / tokensTotal : 0,
        sample_runs: [],
        top_files: [],
      })),
    retry_patterns: retries.rows.map((r) => ({ phase_id: r.phase_id, stop_reason: r.stop_reason, retries: r.retries, runs_affected: r.runs ?? 0, sample_runs: [], top_files: [] })),
    flaky_tests: flaky.rows.map((r) => ({ ...r, fail_rate: r.fails / (r.fails + r.passes), sample_runs: [], top_files: [] })),
  };
  if (options.details) await addDetails(pool, window, stats, options.top);
  return stats;
}

/** Samples (rationales, runs) and the files most often touched, for the items that can make the top N. */
async function addDetails(pool: Pool, window: Window, stats: WindowStats, top: number): Promise<void> {
  const topOf = <T>(items: T[], measure: (t: T) => number) => [...items].sort((a, b) => measure(b) - measure(a)).slice(0, top);
  const failures = topOf(stats.failure_modes, (f) => f.count);
  const sinks = topOf(stats.cost_sinks, (c) => c.tokens);
  const retries = topOf(stats.retry_patterns, (r) => r.retries);
  const flaky = topOf(stats.flaky_tests, (f) => f.flips);

  // Each item is a key (kind, phase, reason or test) and a predicate on the window's events behind it.
  const keys = [
    ...failures.map((f) => ['failure', f.phase_id, f.stop_reason]),
    ...sinks.map((c) => ['cost', c.phase_id, '']),
    ...retries.map((r) => ['retry', r.phase_id, r.stop_reason]),
    ...flaky.map((f) => ['flaky', f.phase_id, f.test_id]),
  ];
  if (!keys.length) return;
  const query = analysisQuery(pool);
  const { rows } = await query<{ kind: string; phase_id: string; detail: string; runs: string[]; rationales: string[]; files: Array<{ path: string; events: number }> }>(
    `WITH items(kind, phase_id, detail) AS (SELECT * FROM unnest($3::text[], $4::text[], $5::text[])),
     behind AS (
       SELECT i.kind, i.phase_id, i.detail, e.run_id, e.decision_rationale, e.files, e.occurred_at
       FROM phase_outcome_events e JOIN items i ON i.phase_id = e.phase_id
       WHERE ${IN_WINDOW()} AND CASE i.kind
         WHEN 'failure' THEN e.outcome <> 'SUCCESS' AND ${FAIL_REASON} = i.detail
         WHEN 'cost' THEN true
         WHEN 'retry' THEN e.attempt > 1
         ELSE e.outcome <> 'SUCCESS' AND i.detail = ANY (coalesce(e.tests_failed, '{}'))
       END
     ), latest AS (
       SELECT kind, phase_id, detail, run_id, decision_rationale,
              row_number() OVER (PARTITION BY kind, phase_id, detail ORDER BY occurred_at DESC, run_id) AS n
       FROM behind
     ), samples AS (
       SELECT kind, phase_id, detail,
              array_agg(run_id ORDER BY n) FILTER (WHERE n <= 10) AS runs,
              array_agg(decision_rationale ORDER BY n) FILTER (WHERE decision_rationale IS NOT NULL) AS rationales
       FROM latest WHERE n <= 20 GROUP BY 1, 2, 3
     ), file_counts AS (
       SELECT kind, phase_id, detail, f AS path, count(*)::int AS events,
              row_number() OVER (PARTITION BY kind, phase_id, detail ORDER BY count(*) DESC, f) AS n
       FROM behind, unnest(files) AS f GROUP BY kind, phase_id, detail, f
     ), top_files AS (
       SELECT kind, phase_id, detail, json_agg(json_build_object('path', path, 'events', events) ORDER BY n) AS files
       FROM file_counts WHERE n <= 3 GROUP BY 1, 2, 3
     )
     SELECT k.kind, k.phase_id, k.detail, coalesce(s.runs, '{}') AS runs, coalesce(s.rationales, '{}') AS rationales,
            coalesce(t.files, '[]') AS files
     FROM items k LEFT JOIN samples s USING (kind, phase_id, detail) LEFT JOIN top_files t USING (kind, phase_id, detail)`,
    [window.from, window.to, keys.map((k) => k[0]), keys.map((k) => k[1]), keys.map((k) => k[2])],
  );
  const detail = new Map(rows.map((r) => [`${r.kind}\u0000${r.phase_id}\u0000${r.detail}`, r]));
  const attach = (kind: string, phase: string, key: string, item: { sample_runs: string[]; top_files: FileCount[] }) => {
    const d = detail.get(`${kind}\u0000${phase}\u0000${key}`);
    if (!d) return;
    item.sample_runs = [...new Set(d.runs)].slice(0, 3);
    item.top_files = d.files;
  };
  failures.forEach((f: Omit<FailureMode, 'rank' | 'change'>) => {
    attach('failure', f.phase_id, f.stop_reason, f);
    f.sample_rationales = [...new Set(detail.get(`failure\u0000${f.phase_id}\u0000${f.stop_reason}`)?.rationales ?? [])].slice(0, 3);
  });
  sinks.forEach((c: Omit<CostSink, 'rank' | 'change'>) => attach('cost', c.phase_id, '', c));
  retries.forEach((r: Omit<RetryPattern, 'rank' | 'change'>) => attach('retry', r.phase_id, r.stop_reason, r));
  flaky.forEach((f: Omit<FlakyTest, 'rank' | 'change'>) => attach('flaky', f.phase_id, f.test_id, f));
}
