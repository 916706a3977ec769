/**
 * The improvement loop's pure parts (DESIGN.md §Follow-up task workflow, §Promotion): what a start request may say,
 * the loop's status as the Temporal UI and `road loop status` show it, and its report (JSON + markdown).
 * No Node built-ins: the workflow imports this file.
 */
import { z } from 'zod';
import type { IssueType } from './analysis.js';
import { durationField } from './validation.js';
import type { TaskOutcome, VerdictSummary } from './followup.js';

export const LOOP_REPORT_SCHEMA = 'road.loop/v1';
export const LOOP_ID_PATTERN = /^[A-Za-z0-9._:-]{1,100}$/;
export const loopWorkflowId = (loopId: string): string => `road-loop-${loopId}`;

const reviewer = z.string({ error: 'reviewers[] must be strings' }).trim().min(1, 'reviewers[] must not be empty').max(255, 'reviewers[] must be at most 255 characters');

/** Everything `road loop start`, a Schedule or `startImprovementLoop()` may ask for; the rest is the worker's config. */
export const loopInputSchema = z
  .object({
    /** The analysis window, ending at the end of the current hour. */
    window: durationField('window', { ms: 366 * 86_400_000, text: '366 days' }).default('7d'),
    /** How many issues of the merged ranking become tasks. */
    topK: z.number({ error: 'topK must be an integer from 1 to 20' }).int('topK must be an integer from 1 to 20').min(1, 'topK must be at least 1').max(20, 'topK must be at most 20').default(3),
    /** Follow-up tasks worked at the same time. */
    maxConcurrentTasks: z
      .number({ error: 'maxConcurrentTasks must be an integer from 1 to 10' })
      .int('maxConcurrentTasks must be an integer from 1 to 10')
      .min(1, 'maxConcurrentTasks must be at least 1')
      .max(10, 'maxConcurrentTasks must be at most 10')
      .default(2),
    /** Who may approve this loop's tasks (default: approval.reviewers of road.config.json). */
    reviewers: z.array(reviewer).min(1, 'reviewers must name at least one reviewer').max(50, 'reviewers must name at most 50').optional(),
    approvalTimeout: durationField('approvalTimeout', { ms: 365 * 86_400_000, text: '365 days' }).optional(),
    /** Who or what started it: a person, the CLI, a Schedule (audit only). */
    requestedBy: z.string().trim().max(255, 'requestedBy must be at most 255 characters').optional(),
  })
  .strict();
export type LoopInput = z.input<typeof loopInputSchema>;
export type LoopSettings = z.output<typeof loopInputSchema>;

export type LoopStage = 'demotion' | 'analysis' | 'tasks' | 'report' | 'done';

export interface LoopTaskEntry {
  taskId: string;
  title: string;
  type: IssueType;
  severity: string;
  /** running until its workflow ends. */
  outcome: TaskOutcome | 'running';
  detail: string;
  verdicts?: VerdictSummary;
  canMerge?: boolean;
  decidedBy?: string;
  /** What became of an approved fix: merged, left on its branch (with the command), or a conflict. */
  landing?: { status: 'merged' | 'already_merged' | 'branch' | 'conflict' | 'refused'; detail: string };
  promotion?: { promoted: boolean; ruleId?: string; reason: string };
}

export interface LoopStatus {
  loopId: string;
  stage: LoopStage;
  detail: string;
  startedAt: string;
  settings: LoopSettings;
  analysis?: { window: { from: string; to: string }; events: number; issues: number };
  tasks: LoopTaskEntry[];
  /** Issues whose task is already open (from an earlier loop or run by hand): not worked twice. */
  skipped: Array<{ rank: number; type: IssueType; fingerprint: string; why: string }>;
  demoted: Array<{ ruleId: string; phases: string[]; reason: string }>;
}

export interface LoopReport extends LoopStatus {
  schema: typeof LOOP_REPORT_SCHEMA;
  finishedAt: string;
  reportPaths?: { markdown: string; json: string };
}

const cell = (text: string) => text.replaceAll('|', '\\|').replaceAll('\n', ' ');

export function renderLoopMarkdown(report: LoopReport): string {
  const promoted = report.tasks.filter((t) => t.promotion?.promoted);
  const lines = [
    `# ROAD improvement loop ${report.loopId}`,
    '',
    `Started ${report.startedAt}, finished ${report.finishedAt}. Window ${report.settings.window}` +
      (report.analysis ? ` (${report.analysis.window.from} → ${report.analysis.window.to}, ${report.analysis.events} events, ${report.analysis.issues} issues)` : '') +
      `; top ${report.settings.topK}.`,
    '',
    `**${report.tasks.length}** task(s) worked, **${promoted.length}** rule(s) promoted, **${report.demoted.length}** demoted, **${report.skipped.length}** issue(s) skipped (already open).`,
    '',
    '## Tasks',
    '',
  ];
  if (!report.tasks.length) lines.push('No new task: the window showed no issue without an open task.');
  else {
    lines.push('| task | type | outcome | replay verdict | decision | landing | rule |', '|---|---|---|---|---|---|---|');
    for (const t of report.tasks) {
      const verdict = t.verdicts ? `${t.verdicts.gating} (seed ${t.verdicts.seed}, statistical ${t.verdicts.statistical})` : '—';
      const rule = t.promotion ? (t.promotion.promoted ? `promoted ${t.promotion.ruleId}` : `not promoted: ${t.promotion.reason}`) : '—';
      lines.push(
        `| ${cell(t.taskId)} — ${cell(t.title)} | ${t.type} | ${t.outcome} | ${cell(verdict)} | ${cell(t.decidedBy ? `by ${t.decidedBy}` : t.detail)} | ${cell(t.landing ? `${t.landing.status}: ${t.landing.detail}` : '—')} | ${cell(rule)} |`,
      );
    }
  }
  lines.push('', '## Demoted rules', '');
  if (!report.demoted.length) lines.push('None: no active rule\'s phases regressed since its promotion.');
  for (const d of report.demoted) lines.push(`- ${d.ruleId} (${d.phases.join(', ')}): ${d.reason}`);
  if (report.skipped.length) {
    lines.push('', '## Skipped issues', '');
    for (const s of report.skipped) lines.push(`- #${s.rank} ${s.type} (${s.fingerprint.slice(0, 12)}): ${s.why}`);
  }
  return lines.join('\n') + '\n';
}
