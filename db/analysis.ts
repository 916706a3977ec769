/**
 * The SQL side of ROAD-B. Every aggregate comes from hourly rollups that stored events are folded into (migration
 * 1764300000000_analysis_rollups.sql, db/rollups.ts): a 7-day window is a few hundred thousand rollup rows, however
 * many events it holds. Only the samples and files of the top items read events: the latest ones behind each item.
 */
import {
  ORDERINGS,
  buildReport,
  resolveWindow,
  topItems,
  type AnalysisReport,
  type FileCount,
  type Window,
  type WindowStats,
} from '../domain/analysis.js';
import type { QueryResult, QueryResultRow } from 'pg';
import { inTransaction, withClient, type Pool } from './pool.js';
import { foldPendingEvents } from './rollups.js';

/** One read-only query (each runs on its own pooled connection, so a window's queries run side by side). */
function analysisQuery(pool: Pool) {
  return <R extends QueryResultRow>(text: string, values: unknown[]): Promise<QueryResult<R>> =>
    withClient(pool, (client) => inTransaction(client, () => client.query<R>(text, values), 'BEGIN READ ONLY'));
}

/** The counts of rollup_counts (one row holds all of a key's). */
const COUNTS = ['runs', 'phase_runs', 'failure_runs', 'retries', 'retry_runs', 'test_fails', 'test_passes', 'flips', 'flaky_commits'] as const;
type CountsRow = { family: string; phase_id: string; detail: string } & Record<(typeof COUNTS)[number], number>;

const IN_WINDOW = (alias: string) => `${alias}.hour >= $1 AND ${alias}.hour < $2`;
/** Samples and top files come from an item's latest events: up to this many (for a cost sink, from up to SAMPLE_HOURS hours). */
const SAMPLE_EVENTS = 50;
const SAMPLE_HOURS = 24;

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
  await foldPendingEvents(pool); // the report covers every event committed before it started
  const [current, previous] = await Promise.all([
    windowStats(pool, windows.current, { top, details: true }),
    windowStats(pool, windows.previous, { top, details: false }),
  ]);
  return buildReport({ current, previous, window: windows.current, previousWindow: windows.previous, top, generatedAt: now.toISOString() });
}

/** Aggregates of one window; with `details`, also p95, samples and files of the items in the top N. */
export async function windowStats(pool: Pool, window: Window, options: { top: number; details: boolean }): Promise<WindowStats> {
  const params = [window.from, window.to];
  const query = analysisQuery(pool);
  const [outcomes, counts] = await Promise.all([
    // Per phase and stop reason, per phase, and the whole window (level 0, 1, 3 of GROUPING).
    query<{ level: number; phase_id: string | null; stop_reason: string | null; events: number; token_events: number; tokens: number; failures: number; failed: number; timeout: number; stuck: number; first_seen: Date | null; last_seen: Date | null }>(
      `SELECT GROUPING(phase_id, stop_reason) AS level, phase_id, stop_reason,
              sum(events)::float8 AS events, sum(token_events)::float8 AS token_events, sum(tokens)::float8 AS tokens,
              coalesce(sum(events) FILTER (WHERE outcome <> 'SUCCESS'), 0)::float8 AS failures,
              coalesce(sum(events) FILTER (WHERE outcome = 'FAILED'), 0)::float8 AS failed,
              coalesce(sum(events) FILTER (WHERE outcome = 'TIMEOUT'), 0)::float8 AS timeout,
              coalesce(sum(events) FILTER (WHERE outcome = 'STUCK'), 0)::float8 AS stuck,
              min(first_at) FILTER (WHERE outcome <> 'SUCCESS') AS first_seen, max(last_at) FILTER (WHERE outcome <> 'SUCCESS') AS last_seen
       FROM rollup_outcomes o WHERE ${IN_WINDOW('o')}
       GROUP BY GROUPING SETS ((phase_id, stop_reason), (phase_id), ())`,
      params,
    ),
    // Entity counts: a row counts when its lo/hi say the observation it depends on is inside (lo) or before (hi) the window.
    query<CountsRow>(
      `SELECT family, phase_id, detail, ${COUNTS.map((c) => `sum(${c})::float8 AS ${c}`).join(', ')}
       FROM rollup_counts c WHERE ${IN_WINDOW('c')} AND c.lo >= $1 AND c.hi < $1
       GROUP BY 1, 2, 3`,
      params,
    ),
  ]);

  const count = new Map(counts.rows.map((r) => [`${r.family}\u0000${r.phase_id}\u0000${r.detail}`, r]));
  const countsOf = (family: string, phase: string, detail = '') => count.get(`${family}\u0000${phase}\u0000${detail}`);
  const byFamily = (family: string) => counts.rows.filter((r) => r.family === family);
  const whole = outcomes.rows.find((r) => r.level === 3);
  const perPhase = outcomes.rows.filter((r) => r.level === 1) as Array<(typeof outcomes.rows)[number] & { phase_id: string }>;
  const eventsOfPhase = new Map(perPhase.map((r) => [r.phase_id, r.events]));
  const tokensTotal = whole?.tokens ?? 0;

  const stats: WindowStats = {
    totals: { events: whole?.events ?? 0, runs: countsOf('run', '')?.runs ?? 0, phases: perPhase.length, tokens: tokensTotal, failures: whole?.failures ?? 0 },
    failure_modes: outcomes.rows
      .filter((r) => r.level === 0 && r.failures > 0)
      .map((r) => ({
        phase_id: r.phase_id!,
        stop_reason: r.stop_reason!,
        count: r.failures,
        outcomes: { FAILED: r.failed, TIMEOUT: r.timeout, STUCK: r.stuck },
        share_of_phase: r.failures / (eventsOfPhase.get(r.phase_id!) ?? r.failures),
        runs_affected: countsOf('reason', r.phase_id!, r.stop_reason!)?.failure_runs ?? 0,
        first_seen: r.first_seen!.toISOString(),
        last_seen: r.last_seen!.toISOString(),
        sample_rationales: [],
        sample_runs: [],
        top_files: [],
      })),
    cost_sinks: perPhase
      .filter((r) => r.tokens > 0)
      .map((r) => ({
        phase_id: r.phase_id,
        tokens: r.tokens,
        mean: r.tokens / r.token_events,
        p95: 0, // for the top items only, below
        events: r.events,
        runs: countsOf('run', r.phase_id)?.phase_runs ?? 0,
        share: tokensTotal ? r.tokens / tokensTotal : 0,
        sample_runs: [],
        top_files: [],
      })),
    retry_patterns: byFamily('reason')
      .filter((r) => r.retries > 0)
      .map((r) => ({ phase_id: r.phase_id, stop_reason: r.detail, retries: r.retries, runs_affected: r.retry_runs, sample_runs: [], top_files: [] })),
    flaky_tests: byFamily('test')
      .filter((r) => r.flaky_commits > 0)
      .map((r) => ({
        test_id: r.detail, phase_id: r.phase_id, commits: r.flaky_commits, flips: r.flips, fails: r.test_fails, passes: r.test_passes,
        fail_rate: r.test_fails + r.test_passes ? r.test_fails / (r.test_fails + r.test_passes) : 0, sample_runs: [], top_files: [],
      })),
  };
  if (options.details) await addDetails(pool, window, stats, options.top);
  return stats;
}

/** p95 of tokens, samples (rationales, runs) and the files most often touched, for the items in the top N. */
async function addDetails(pool: Pool, window: Window, stats: WindowStats, top: number): Promise<void> {
  const failures = topItems(stats.failure_modes, top, ORDERINGS.failure_modes);
  const sinks = topItems(stats.cost_sinks, top, ORDERINGS.cost_sinks);
  const retries = topItems(stats.retry_patterns, top, ORDERINGS.retry_patterns);
  const flaky = topItems(stats.flaky_tests, top, ORDERINGS.flaky_tests);
  const keys = [
    ...failures.map((f) => ['failure', f.phase_id, f.stop_reason]),
    ...sinks.map((c) => ['cost', c.phase_id, '']),
    ...retries.map((r) => ['retry', r.phase_id, r.stop_reason]),
    ...flaky.map((f) => ['flaky', f.phase_id, f.test_id]),
  ];
  if (!keys.length) return;
  const query = analysisQuery(pool);
  const params = [window.from, window.to, keys.map((k) => k[0]), keys.map((k) => k[1]), keys.map((k) => k[2])];
  const ITEMS = `items(kind, phase_id, detail) AS (SELECT * FROM unnest($3::text[], $4::text[], $5::text[]))`;
  const [p95s, samples] = await Promise.all([
    // Nearest-rank p95 from the token histogram: the first bucket where the running count reaches 95 % of the events.
    query<{ phase_id: string; p95: number }>(
      `WITH histogram AS (
         SELECT phase_id, bucket, sum(events) AS n FROM rollup_tokens t
         WHERE ${IN_WINDOW('t')} AND phase_id = ANY ($3) GROUP BY 1, 2
       ), running AS (
         SELECT phase_id, bucket, sum(n) OVER (PARTITION BY phase_id ORDER BY bucket) AS below, sum(n) OVER (PARTITION BY phase_id) AS total
         FROM histogram
       )
       SELECT DISTINCT ON (phase_id) phase_id, road_token_value(bucket)::float8 AS p95
       FROM running WHERE below >= ceil(0.95 * total) ORDER BY phase_id, bucket`,
      [window.from, window.to, sinks.map((c) => c.phase_id)],
    ),
    // Samples and top files: the latest SAMPLE_EVENTS events behind each item. A failure, retry or flaky test walks
    // back through the phase's failed and retried attempts (a partial index); a cost sink reads the latest hours that
    // hold enough of its phase's events (the rollups say which), one index probe per hour.
    query<{ kind: string; phase_id: string; detail: string; runs: string[]; rationales: string[]; files: FileCount[] }>(
      `WITH ${ITEMS},
       hours AS (
         SELECT i.kind, i.phase_id, i.detail, o.hour, sum(o.events) AS n
         -- one scan of the window's rows, hashed against the items (OFFSET 0: not one index scan per item)
         FROM items i JOIN (SELECT * FROM rollup_outcomes o WHERE ${IN_WINDOW('o')} OFFSET 0) o ON o.phase_id = i.phase_id
         WHERE i.kind = 'cost' GROUP BY 1, 2, 3, 4
       ), latest AS (
         SELECT kind, phase_id, detail, hour FROM (
           SELECT *, sum(n) OVER w - n AS later, row_number() OVER w AS nth FROM hours WHERE n > 0
           WINDOW w AS (PARTITION BY kind, phase_id, detail ORDER BY hour DESC)
         ) h WHERE later < ${SAMPLE_EVENTS} AND nth <= ${SAMPLE_HOURS}
       ), behind AS (
         SELECT *, row_number() OVER (PARTITION BY kind, phase_id, detail ORDER BY occurred_at DESC, run_id, event_id) AS n FROM (
           SELECT l.kind, l.phase_id, l.detail, e.run_id, e.decision_rationale, e.files, e.occurred_at, e.event_id
           FROM (SELECT hour, array_agg(DISTINCT phase_id) AS phases FROM latest GROUP BY hour) h
           -- OFFSET 0 keeps one probe per hour rather than one scan of the table for all hours
           CROSS JOIN LATERAL (
             SELECT * FROM phase_outcome_events
             WHERE occurred_at >= h.hour AND occurred_at < h.hour + interval '1 hour' AND phase_id = ANY (h.phases) OFFSET 0
           ) e
           JOIN latest l ON l.hour = h.hour AND l.phase_id = e.phase_id
           UNION ALL
           SELECT i.kind, i.phase_id, i.detail, e.run_id, e.decision_rationale, e.files, e.occurred_at, e.event_id
           FROM items i CROSS JOIN LATERAL (
             SELECT * FROM phase_outcome_events e
             WHERE e.phase_id = i.phase_id AND (e.outcome <> 'SUCCESS' OR e.attempt > 1) AND e.occurred_at >= $1 AND e.occurred_at < $2
               AND CASE i.kind
                 WHEN 'failure' THEN e.outcome <> 'SUCCESS' AND coalesce(e.stop_reason, '(none)') = i.detail
                 WHEN 'retry' THEN e.attempt > 1 AND i.detail = coalesce((
                   SELECT CASE WHEN p.outcome <> 'SUCCESS' THEN coalesce(p.stop_reason, '(none)') END FROM phase_outcome_events p
                   WHERE p.run_id = e.run_id AND p.phase_id = e.phase_id AND p.attempt = e.attempt - 1 ORDER BY p.event_id DESC LIMIT 1), 'unknown')
                 ELSE e.outcome <> 'SUCCESS' AND i.detail = ANY (e.tests_failed)
               END
             ORDER BY e.occurred_at DESC LIMIT ${SAMPLE_EVENTS}
           ) e
           WHERE i.kind <> 'cost'
         ) b
       ), files AS (
         SELECT kind, phase_id, detail, path, count(*)::int AS events,
                row_number() OVER (PARTITION BY kind, phase_id, detail ORDER BY count(*) DESC, path) AS n
         FROM behind, unnest(files) AS path WHERE behind.n <= ${SAMPLE_EVENTS} GROUP BY kind, phase_id, detail, path
       )
       SELECT kind, phase_id, detail,
              (array_agg(run_id ORDER BY n) FILTER (WHERE n <= 20)) AS runs,
              coalesce(array_agg(decision_rationale ORDER BY n) FILTER (WHERE n <= 20 AND decision_rationale IS NOT NULL), '{}') AS rationales,
              coalesce((SELECT json_agg(json_build_object('path', f.path, 'events', f.events) ORDER BY f.n) FROM files f
                        WHERE f.kind = b.kind AND f.phase_id = b.phase_id AND f.detail = b.detail AND f.n <= 3), '[]') AS files
       FROM behind b GROUP BY 1, 2, 3`,
      params,
    ),
  ]);

  const p95 = new Map(p95s.rows.map((r) => [r.phase_id, r.p95]));
  for (const sink of sinks) sink.p95 = p95.get(sink.phase_id) ?? 0;
  const itemKey = (kind: string, phase: string, detail: string) => `${kind}\u0000${phase}\u0000${detail}`;
  const sampled = new Map(samples.rows.map((r) => [itemKey(r.kind, r.phase_id, r.detail), r]));
  const attach = (kind: string, phase: string, detail: string, item: { sample_runs: string[]; top_files: FileCount[] }) => {
    item.sample_runs = [...new Set(sampled.get(itemKey(kind, phase, detail))?.runs ?? [])].slice(0, 3);
    item.top_files = sampled.get(itemKey(kind, phase, detail))?.files ?? [];
  };
  for (const f of failures) {
    attach('failure', f.phase_id, f.stop_reason, f);
    f.sample_rationales = [...new Set(sampled.get(itemKey('failure', f.phase_id, f.stop_reason))?.rationales ?? [])].slice(0, 3);
  }
  for (const c of sinks) attach('cost', c.phase_id, '', c);
  for (const r of retries) attach('retry', r.phase_id, r.stop_reason, r);
  for (const f of flaky) attach('flaky', f.phase_id, f.test_id, f);
}
