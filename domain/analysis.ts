/**
 * ROAD-B: telemetry of a window turned into ranked issues (DESIGN.md §Analysis). The database aggregates
 * (db/analysis.ts); this module resolves windows, compares with the previous window, ranks, and renders.
 * The JSON report is versioned: `schema` is "road.analysis/v1" (fields documented in README §Analysis).
 */
import { formatDuration, parseDuration } from './duration.js';

export const REPORT_SCHEMA = 'road.analysis/v1';
export type IssueType = 'failure_mode' | 'cost_sink' | 'retry_pattern' | 'flaky_test';
export type Severity = 'critical' | 'high' | 'medium';

export interface Window {
  from: string;
  to: string;
}

const HOUR = 3_600_000;

/**
 * The window [from, to) and the previous window of the same length, [from − length, from). Windows are whole UTC
 * hours, the resolution of the rollups the analysis reads: by default the window ends at the end of the current hour
 * (so it holds everything recorded until now); an explicit --from/--to must fall on a whole hour.
 */
export function resolveWindow(options: { window?: string; from?: string; to?: string }, now: Date): { current: Window; previous: Window } {
  const parse = (field: string, value: string) => {
    const ms = Date.parse(value);
    if (Number.isNaN(ms)) throw new RangeError(`--${field} must be an ISO-8601 date or date-time (got "${value}")`);
    if (ms % HOUR !== 0) {
      const earlier = new Date(Math.floor(ms / HOUR) * HOUR).toISOString();
      throw new RangeError(`--${field} must fall on a whole hour (UTC), e.g. ${earlier}: the analysis counts by the hour (got "${value}")`);
    }
    return ms;
  };
  if (options.window && options.from) throw new RangeError('give either --window or --from/--to, not both');
  const to = options.to ? parse('to', options.to) : Math.ceil(now.getTime() / HOUR) * HOUR;
  let length: number;
  try {
    length = parseDuration(options.window ?? '7d');
  } catch (error) {
    throw new RangeError(`--window: ${(error as Error).message}`, { cause: error });
  }
  if (length % HOUR !== 0) throw new RangeError(`--window must be a whole number of hours (got "${options.window}")`);
  const from = options.from ? parse('from', options.from) : to - length;
  if (from >= to) throw new RangeError(`the window must end after it starts (from ${new Date(from).toISOString()}, to ${new Date(to).toISOString()})`);
  length = to - from;
  const iso = (ms: number) => new Date(ms).toISOString();
  return { current: { from: iso(from), to: iso(to) }, previous: { from: iso(from - length), to: iso(from) } };
}

export interface Change {
  previous: number;
  delta: number;
  /** Relative change in percent; null when the previous window had none (a new issue). */
  percent: number | null;
}

export function change(current: number, previous: number): Change {
  return { previous, delta: current - previous, percent: previous === 0 ? null : Math.round(((current - previous) / previous) * 1000) / 10 };
}

export interface FileCount {
  path: string;
  events: number;
}

export interface FailureMode {
  rank: number;
  phase_id: string;
  stop_reason: string;
  count: number;
  outcomes: { FAILED: number; TIMEOUT: number; STUCK: number };
  /** count ÷ all events of the phase in the window */
  share_of_phase: number;
  runs_affected: number;
  first_seen: string;
  last_seen: string;
  sample_rationales: string[];
  sample_runs: string[];
  top_files: FileCount[];
  change: Change;
}

export interface CostSink {
  rank: number;
  phase_id: string;
  tokens: number;
  mean: number;
  p95: number;
  events: number;
  runs: number;
  /** tokens ÷ all tokens in the window */
  share: number;
  sample_runs: string[];
  top_files: FileCount[];
  change: Change;
}

export interface RetryPattern {
  rank: number;
  phase_id: string;
  /** stop reason of the attempt that failed before the retry ("unknown" when it is not in the window) */
  stop_reason: string;
  retries: number;
  runs_affected: number;
  sample_runs: string[];
  top_files: FileCount[];
  change: Change;
}

export interface FlakyTest {
  rank: number;
  test_id: string;
  phase_id: string;
  /** commits at which the test both failed and passed */
  commits: number;
  /** changes between failing and passing, attempt after attempt, at the same commit */
  flips: number;
  fails: number;
  passes: number;
  fail_rate: number;
  sample_runs: string[];
  top_files: FileCount[];
  change: Change;
}

export interface Totals {
  events: number;
  runs: number;
  phases: number;
  tokens: number;
  failures: number;
}

export interface AnalysisReport {
  schema: typeof REPORT_SCHEMA;
  generated_at: string;
  window: Window;
  previous_window: Window;
  top: number;
  totals: Totals & { change: { [K in keyof Totals]: Change } };
  failure_modes: FailureMode[];
  cost_sinks: CostSink[];
  retry_patterns: RetryPattern[];
  flaky_tests: FlakyTest[];
}

type Unranked<T> = Omit<T, 'rank' | 'change'>;

/** What the database gives for one window (db/analysis.ts), before ranking and comparison. */
export interface WindowStats {
  totals: Totals;
  failure_modes: Unranked<FailureMode>[];
  cost_sinks: Unranked<CostSink>[];
  retry_patterns: Unranked<RetryPattern>[];
  flaky_tests: Unranked<FlakyTest>[];
}

export const emptyStats = (): WindowStats => ({
  totals: { events: 0, runs: 0, phases: 0, tokens: 0, failures: 0 },
  failure_modes: [],
  cost_sinks: [],
  retry_patterns: [],
  flaky_tests: [],
});

const failureKey = (f: { phase_id: string; stop_reason: string }) => `${f.phase_id}\u0000${f.stop_reason}`;
const flakyKey = (f: { phase_id: string; test_id: string }) => `${f.phase_id}\u0000${f.test_id}`;

interface Ordering<T> {
  key: (item: T) => string;
  measure: (item: T) => number;
  tie: (item: T) => number;
}

/** How each section is ranked: by its measure, ties by runs affected (fail rate for flaky tests), then by name. */
export const ORDERINGS = {
  failure_modes: { key: failureKey, measure: (f) => f.count, tie: (f) => f.runs_affected } as Ordering<Unranked<FailureMode>>,
  cost_sinks: { key: (c) => c.phase_id, measure: (c) => c.tokens, tie: (c) => c.runs } as Ordering<Unranked<CostSink>>,
  retry_patterns: { key: failureKey, measure: (r) => r.retries, tie: (r) => r.runs_affected } as Ordering<Unranked<RetryPattern>>,
  flaky_tests: { key: flakyKey, measure: (f) => f.flips, tie: (f) => f.fail_rate } as Ordering<Unranked<FlakyTest>>,
};

/** The first `top` items in ranking order (the database fetches details for exactly these). */
export function topItems<T>(items: readonly T[], top: number, { key, measure, tie }: Ordering<T>): T[] {
  return [...items].sort((a, b) => measure(b) - measure(a) || tie(b) - tie(a) || (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0)).slice(0, top);
}

/**
 * Ranks each section (failure modes by count, cost sinks by tokens, retries by retries, flaky tests by flips, ties by
 * runs affected then name), keeps the top N, and adds every item's change against the previous window.
 */
export function buildReport(args: {
  current: WindowStats;
  previous: WindowStats;
  window: Window;
  previousWindow: Window;
  top: number;
  generatedAt: string;
}): AnalysisReport {
  const { current, previous, top } = args;
  const t = current.totals;
  const p = previous.totals;
  return {
    schema: REPORT_SCHEMA,
    generated_at: args.generatedAt,
    window: args.window,
    previous_window: args.previousWindow,
    top,
    totals: {
      ...t,
      change: { events: change(t.events, p.events), runs: change(t.runs, p.runs), phases: change(t.phases, p.phases), tokens: change(t.tokens, p.tokens), failures: change(t.failures, p.failures) },
    },
    failure_modes: rankBy(current.failure_modes, previous.failure_modes, top, ORDERINGS.failure_modes),
    cost_sinks: rankBy(current.cost_sinks, previous.cost_sinks, top, ORDERINGS.cost_sinks),
    retry_patterns: rankBy(current.retry_patterns, previous.retry_patterns, top, ORDERINGS.retry_patterns),
    flaky_tests: rankBy(current.flaky_tests, previous.flaky_tests, top, ORDERINGS.flaky_tests),
  };
}

/** Keeps the `top` items in ranking order and compares each with the previous window. */
function rankBy<T extends object>(items: T[], previous: T[], top: number, ordering: Ordering<T>): Array<T & { rank: number; change: Change }> {
  const before = new Map(previous.map((item) => [ordering.key(item), ordering.measure(item)]));
  return topItems(items, top, ordering).map((item, i) => ({ ...item, rank: i + 1, change: change(ordering.measure(item), before.get(ordering.key(item)) ?? 0) }));
}

// ---------------------------------------------------------------- merged ranking

export interface RankedIssue {
  type: IssueType;
  severity: Severity;
  /** The fraction of the window the issue accounts for (events, or tokens for a cost sink). */
  weight: number;
  item: FailureMode | CostSink | RetryPattern | FlakyTest;
}

const SEVERITY_ORDER: Record<Severity, number> = { critical: 3, high: 2, medium: 1 };

/** Severity per DESIGN.md §Tasks. */
export function severityOf(type: IssueType, item: RankedIssue['item']): Severity {
  if (type === 'cost_sink') return (item as CostSink).tokens > 100_000 ? 'high' : 'medium';
  if (type === 'failure_mode') return (item as FailureMode).count >= 5 ? 'critical' : 'high';
  return 'medium';
}

/**
 * One ranking across the four sections: by severity, then by the share of the window the issue accounts for
 * (a failure mode's or retry pattern's events ÷ all events, a cost sink's tokens ÷ all tokens, a flaky test's
 * attempts ÷ all events), then by type and the section's own rank — so the order is total and stable.
 */
export function mergedRanking(report: AnalysisReport): RankedIssue[] {
  const events = Math.max(report.totals.events, 1);
  const issues: RankedIssue[] = [
    ...report.failure_modes.map((item) => ({ type: 'failure_mode' as const, item, weight: item.count / events })),
    ...report.cost_sinks.map((item) => ({ type: 'cost_sink' as const, item, weight: item.share })),
    ...report.retry_patterns.map((item) => ({ type: 'retry_pattern' as const, item, weight: item.retries / events })),
    ...report.flaky_tests.map((item) => ({ type: 'flaky_test' as const, item, weight: (item.fails + item.passes) / events })),
  ].map((issue) => ({ ...issue, severity: severityOf(issue.type, issue.item) }));
  const typeOrder: IssueType[] = ['failure_mode', 'cost_sink', 'retry_pattern', 'flaky_test'];
  return issues.sort(
    (a, b) =>
      SEVERITY_ORDER[b.severity] - SEVERITY_ORDER[a.severity] ||
      b.weight - a.weight ||
      typeOrder.indexOf(a.type) - typeOrder.indexOf(b.type) ||
      a.item.rank - b.item.rank,
  );
}

// ---------------------------------------------------------------- markdown

const n = (value: number) => value.toLocaleString('en-US');
const pct = (fraction: number) => `${(fraction * 100).toFixed(1)} %`;
const trend = (c: Change) => (c.percent === null ? (c.delta > 0 ? 'new' : '—') : `${c.delta >= 0 ? '+' : ''}${c.percent} %`);
const cell = (text: string) => text.replace(/\|/g, '\\|').replace(/\s+/g, ' ').slice(0, 120);

function table(headers: string[], rows: string[][], empty: string): string {
  if (!rows.length) return `_${empty}_\n`;
  return [`| ${headers.join(' | ')} |`, `|${headers.map(() => '---').join('|')}|`, ...rows.map((r) => `| ${r.map(cell).join(' | ')} |`)].join('\n') + '\n';
}

/** The report for people: the seed's three sections plus flaky tests, totals and trends — tables, not prose. */
export function renderMarkdown(report: AnalysisReport): string {
  const t = report.totals;
  const length = formatDuration(Date.parse(report.window.to) - Date.parse(report.window.from));
  return [
    `# ROAD telemetry analysis`,
    '',
    `Window ${report.window.from} → ${report.window.to} (${length}); compared with ${report.previous_window.from} → ${report.previous_window.to}. Top ${report.top}.`,
    '',
    '## Totals',
    '',
    table(
      ['', 'this window', 'previous', 'change'],
      (['events', 'runs', 'phases', 'tokens', 'failures'] as const).map((k) => [k, n(t[k]), n(t.change[k].previous), trend(t.change[k])]),
      '',
    ),
    '## Top failure modes',
    '',
    table(
      ['#', 'phase', 'stop reason', 'count', 'FAILED / TIMEOUT / STUCK', 'share of phase', 'runs', 'first seen', 'last seen', 'vs previous', 'sample rationale'],
      report.failure_modes.map((f) => [
        String(f.rank), f.phase_id, f.stop_reason, n(f.count), `${f.outcomes.FAILED} / ${f.outcomes.TIMEOUT} / ${f.outcomes.STUCK}`,
        pct(f.share_of_phase), n(f.runs_affected), f.first_seen, f.last_seen, trend(f.change), f.sample_rationales[0] ?? '—',
      ]),
      'No failures in this window.',
    ),
    '## Top cost sinks',
    '',
    table(
      ['#', 'phase', 'tokens', 'mean', 'p95', 'runs', 'share of tokens', 'vs previous'],
      report.cost_sinks.map((c) => [String(c.rank), c.phase_id, n(c.tokens), n(Math.round(c.mean)), n(Math.round(c.p95)), n(c.runs), pct(c.share), trend(c.change)]),
      'No token usage in this window.',
    ),
    '## Top retry patterns',
    '',
    table(
      ['#', 'phase', 'stop reason before the retry', 'retries', 'runs', 'vs previous'],
      report.retry_patterns.map((r) => [String(r.rank), r.phase_id, r.stop_reason, n(r.retries), n(r.runs_affected), trend(r.change)]),
      'No retries in this window.',
    ),
    '## Flaky tests',
    '',
    table(
      ['#', 'test', 'phase', 'flips', 'fail rate', 'commits', 'vs previous'],
      report.flaky_tests.map((f) => [String(f.rank), f.test_id, f.phase_id, n(f.flips), pct(f.fail_rate), n(f.commits), trend(f.change)]),
      'No flaky tests in this window.',
    ),
  ].join('\n');
}
