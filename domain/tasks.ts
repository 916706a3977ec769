/**
 * ROAD-C: ranked issues turned into bounded follow-up tasks (DESIGN.md §Tasks). Pure: the caller supplies the open
 * fingerprints (so a later loop never opens a second task for an issue that still has one) and the config.
 */
import { createHash } from 'node:crypto';
import {
  mergedRanking,
  type AnalysisReport,
  type CostSink,
  type FailureMode,
  type FlakyTest,
  type IssueType,
  type RankedIssue,
  type RetryPattern,
  type Severity,
} from './analysis.js';
import { repoFile } from './config.js';

export const ID_PREFIX: Record<IssueType, string> = {
  cost_sink: 'COST-SINK',
  failure_mode: 'FAILURE',
  retry_pattern: 'RETRY',
  flaky_test: 'FLAKY',
};
export const MAX_ATTEMPTS = 2;
export const MAX_ALLOWED_FILES = 3;
/** Statuses in which a task counts as open: its fingerprint blocks a second task. */
export const OPEN_STATUSES = ['open', 'needs_scope', 'in_progress', 'awaiting_approval'] as const;
export type TaskStatus = (typeof OPEN_STATUSES)[number] | 'done' | 'rejected' | 'abandoned';

export interface TestTarget {
  metric: string;
  /** The checkable target, in words. */
  target: string;
  comparison: '<=' | '==';
  /** Relative to the baseline (a ratio), or an absolute count. */
  threshold: number;
  relative_to_baseline: boolean;
  runs?: number;
}

export interface FollowupTask {
  id: string;
  fingerprint: string;
  type: IssueType;
  rank: number;
  severity: Severity;
  status: 'open' | 'needs_scope';
  title: string;
  description: string;
  phase_ids: string[];
  evidence: Record<string, unknown>;
  allowed_files: string[];
  /** Where allowed_files came from, or what is missing. */
  scope: { source: 'evidence' | 'config' | 'none'; note: string };
  test_plan: TestTarget[];
  preflight: string[];
  max_attempts: number;
  approval_gate: true;
}

/** Stable across loops: type + phase + stop reason (or test id). */
export function fingerprintOf(type: IssueType, phaseId: string, detail: string): string {
  return createHash('sha256').update(JSON.stringify([type, phaseId, detail])).digest('hex').slice(0, 32);
}

export interface TaskOptions {
  /** road.config.json `phases`: phase → files, the scope when the evidence names none. */
  phaseFiles: Record<string, string[]>;
  /** road.config.json `tasks.maxAttempts` (1 or 2). */
  maxAttempts: number;
  /** Fingerprints of tasks that are still open, from earlier loops. */
  openFingerprints: ReadonlySet<string>;
  /**
   * Fingerprints whose fix was approved within the window (→ why): the window's events mostly predate the fix, so a
   * new task would chase a fixed issue. The promoted rule's demotion watches whether it recurs.
   */
  recentlyFixed?: ReadonlyMap<string, string>;
  /** How many issues of the merged ranking become tasks (default: all in the report). */
  limit?: number;
}

export interface Generated {
  tasks: FollowupTask[];
  /** Issues that already have an open task. */
  skipped: Array<{ rank: number; type: IssueType; fingerprint: string; why: string }>;
}

export function generateTasks(report: AnalysisReport, options: TaskOptions): Generated {
  if (!Number.isInteger(options.maxAttempts) || options.maxAttempts < 1 || options.maxAttempts > MAX_ATTEMPTS) {
    throw new RangeError(`tasks.maxAttempts must be 1 or ${MAX_ATTEMPTS} (got ${options.maxAttempts})`);
  }
  const ranking = mergedRanking(report).slice(0, options.limit ?? Number.POSITIVE_INFINITY);
  const tasks: FollowupTask[] = [];
  const skipped: Generated['skipped'] = [];
  ranking.forEach((issue, i) => {
    const rank = i + 1;
    const { phase, detail } = subjectOf(issue);
    const fingerprint = fingerprintOf(issue.type, phase, detail);
    if (options.openFingerprints.has(fingerprint)) return skipped.push({ rank, type: issue.type, fingerprint, why: 'a task for this issue is already open' });
    const fixed = options.recentlyFixed?.get(fingerprint);
    if (fixed) return skipped.push({ rank, type: issue.type, fingerprint, why: fixed });
    tasks.push(taskFor(issue, rank, fingerprint, options));
  });
  return { tasks, skipped };
}

function subjectOf(issue: RankedIssue): { phase: string; detail: string } {
  switch (issue.type) {
    case 'failure_mode':
      return { phase: (issue.item as FailureMode).phase_id, detail: (issue.item as FailureMode).stop_reason };
    case 'retry_pattern':
      return { phase: (issue.item as RetryPattern).phase_id, detail: (issue.item as RetryPattern).stop_reason };
    case 'flaky_test':
      return { phase: (issue.item as FlakyTest).phase_id, detail: (issue.item as FlakyTest).test_id };
    case 'cost_sink':
      return { phase: (issue.item as CostSink).phase_id, detail: '' };
  }
}

/** ≤ 3 files: those the evidence touched most, else the config's files of the phase; never invented. */
export function scopeOf(phase: string, evidenceFiles: string[], phaseFiles: Record<string, string[]>): Pick<FollowupTask, 'allowed_files' | 'scope' | 'status'> {
  const usable = (paths: string[]) =>
    [...new Set(paths.map((p) => p.replace(/^\.\//, '')).filter((p) => repoFile.safeParse(p).success))].slice(0, MAX_ALLOWED_FILES);
  const fromEvidence = usable(evidenceFiles);
  if (fromEvidence.length) {
    return { allowed_files: fromEvidence, status: 'open', scope: { source: 'evidence', note: `the files most often touched by the events behind the issue` } };
  }
  const fromConfig = usable(phaseFiles[phase] ?? []);
  if (fromConfig.length) {
    return { allowed_files: fromConfig, status: 'open', scope: { source: 'config', note: `road.config.json phases["${phase}"] (the events named no files)` } };
  }
  return {
    allowed_files: [],
    status: 'needs_scope',
    scope: {
      source: 'none',
      note: `no files to scope the fix: the events of phase "${phase}" name no files and road.config.json has no phases["${phase}"]; record "files" with the events, or add the phase's files to the config`,
    },
  };
}

function taskFor(issue: RankedIssue, rank: number, fingerprint: string, options: TaskOptions): FollowupTask {
  const base = { id: `${ID_PREFIX[issue.type]}-${rank}`, fingerprint, type: issue.type, rank, severity: issue.severity, max_attempts: options.maxAttempts, approval_gate: true as const };
  const preflight = (phase: string, extra: string[]) => [
    'the baseline ref builds and its tests pass',
    `replay cases exist that run phase "${phase}"`,
    'every allowed file exists at the baseline ref',
    'no other open task may change the same files',
    ...extra,
  ];
  switch (issue.type) {
    case 'failure_mode': {
      const f = issue.item as FailureMode;
      return {
        ...base,
        ...scopeOf(f.phase_id, f.top_files.map((x) => x.path), options.phaseFiles),
        title: `Stop "${f.stop_reason}" failures in ${f.phase_id}`,
        description: `${f.phase_id} ended ${f.count} time(s) with "${f.stop_reason}" (${f.outcomes.FAILED} FAILED, ${f.outcomes.TIMEOUT} TIMEOUT, ${f.outcomes.STUCK} STUCK) in ${f.runs_affected} run(s): ${pctText(f.share_of_phase)} of the phase's attempts.`,
        phase_ids: [f.phase_id],
        evidence: { stop_reason: f.stop_reason, count: f.count, outcomes: f.outcomes, share_of_phase: f.share_of_phase, runs_affected: f.runs_affected, first_seen: f.first_seen, last_seen: f.last_seen, sample_runs: f.sample_runs, sample_rationales: f.sample_rationales, change: f.change },
        test_plan: [{ metric: `${f.phase_id} attempts ending with "${f.stop_reason}"`, target: 'the failure does not recur in replay', comparison: '==', threshold: 0, relative_to_baseline: false }],
        preflight: preflight(f.phase_id, [`the baseline reproduces "${f.stop_reason}" in replay`]),
      };
    }
    case 'cost_sink': {
      const c = issue.item as CostSink;
      return {
        ...base,
        ...scopeOf(c.phase_id, c.top_files.map((x) => x.path), options.phaseFiles),
        title: `Cut token use of ${c.phase_id}`,
        description: `${c.phase_id} used ${c.tokens.toLocaleString('en-US')} tokens (${pctText(c.share)} of all) over ${c.events} attempt(s) in ${c.runs} run(s); mean ${Math.round(c.mean).toLocaleString('en-US')}, p95 ${Math.round(c.p95).toLocaleString('en-US')}.`,
        phase_ids: [c.phase_id],
        evidence: { tokens: c.tokens, mean: c.mean, p95: c.p95, events: c.events, runs: c.runs, share: c.share, sample_runs: c.sample_runs, change: c.change },
        test_plan: [{ metric: `median tokens of ${c.phase_id}`, target: 'median tokens ≤ 70 % of baseline', comparison: '<=', threshold: 0.7, relative_to_baseline: true }],
        preflight: preflight(c.phase_id, ['the phase still succeeds at least as often as at the baseline']),
      };
    }
    case 'retry_pattern': {
      const r = issue.item as RetryPattern;
      return {
        ...base,
        ...scopeOf(r.phase_id, r.top_files.map((x) => x.path), options.phaseFiles),
        title: `Fewer retries of ${r.phase_id} after "${r.stop_reason}"`,
        description: `${r.phase_id} was retried ${r.retries} time(s) after an attempt that stopped with "${r.stop_reason}", in ${r.runs_affected} run(s).`,
        phase_ids: [r.phase_id],
        evidence: { retries: r.retries, runs_affected: r.runs_affected, sample_runs: r.sample_runs, change: r.change },
        test_plan: [{ metric: `retries of ${r.phase_id}`, target: 'retries ≤ 50 % of baseline', comparison: '<=', threshold: 0.5, relative_to_baseline: true }],
        preflight: preflight(r.phase_id, []),
      };
    }
    case 'flaky_test': {
      const f = issue.item as FlakyTest;
      const runs = 10;
      return {
        ...base,
        ...scopeOf(f.phase_id, f.top_files.map((x) => x.path), options.phaseFiles),
        title: `Make ${f.test_id} deterministic`,
        description: `${f.test_id} flipped ${f.flips} time(s) in ${f.phase_id} at ${f.commits} commit(s) (failed ${f.fails} of ${f.fails + f.passes} attempts).`,
        phase_ids: [f.phase_id],
        evidence: { test_id: f.test_id, flips: f.flips, fails: f.fails, passes: f.passes, fail_rate: f.fail_rate, commits: f.commits, sample_runs: f.sample_runs, change: f.change },
        test_plan: [{ metric: `flips of ${f.test_id}`, target: `0 flips in ${runs} runs`, comparison: '==', threshold: 0, relative_to_baseline: false, runs }],
        preflight: preflight(f.phase_id, [`${f.test_id} flips at the baseline when run ${runs} times`]),
      };
    }
  }
}

const pctText = (fraction: number) => `${(fraction * 100).toFixed(1)} %`;
