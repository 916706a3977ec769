/**
 * The follow-up task workflow's pure rules (DESIGN.md §Follow-up task workflow): what a start request may say, the
 * plan a worker resolves it into, the interleaved order of a replay campaign, and the stage texts the Temporal UI shows.
 * No Node built-ins: workflows import this file.
 */
import { z } from 'zod';
import type { IssueType } from './analysis.js';
import type { ReplayVariant } from './replay.js';
import type { FollowupTask } from './tasks.js';
import { durationField } from './validation.js';

export const TASK_ID_PATTERN = /^[A-Za-z0-9._:-]{1,128}$/;

const reviewer = z.string().trim().min(1, 'reviewers[] must not be empty').max(255, 'reviewers[] must be at most 255 characters');

/** What `road tasks run` (or a loop) asks for; everything else comes from the stored task and the worker's config. */
export const followupTaskInputSchema = z
  .object({
    taskId: z.string({ error: 'taskId must be a string' }).regex(TASK_ID_PATTERN, 'taskId must be 1–128 characters of A–Z a–z 0–9 . _ : -'),
    /** Overrides approval.reviewers of road.config.json. */
    reviewers: z.array(reviewer).min(1, 'reviewers must name at least one reviewer').max(50, 'reviewers must name at most 50').optional(),
    /** Overrides approval.timeout of road.config.json. */
    approvalTimeout: durationField('approvalTimeout', { ms: 365 * 86_400_000, text: '365 days' }).optional(),
    /** Who started it (audit only). */
    requestedBy: z.string().trim().max(255, 'requestedBy must be at most 255 characters').optional(),
  })
  .strict();
export type FollowupTaskInput = z.input<typeof followupTaskInputSchema>;

export interface ReplayCase {
  id: string;
  phaseId: string | null;
}

/** What a worker resolves a start request into (stored in history, so a replay of the workflow never rereads config). */
export interface TaskPlan {
  task: FollowupTask;
  executor: 'manual' | 'command';
  /** How long the executor may take per attempt (the activity kills it then). */
  executorTimeoutMs: number;
  repositoryPath: string;
  baselineRef: string;
  baselineSha: string;
  cases: ReplayCase[];
  repeats: number;
  concurrency: number;
  runTimeoutMs: number;
  replayTaskQueue: string;
  decisionMode: 'statistical' | 'seed';
  reviewers: string[];
  approvalTimeout: string;
  /** The stop reason a failure-mode task must make disappear (null: any non-SUCCESS outcome counts). */
  failureStopReason: string | null;
}

export const taskWorkflowId = (taskId: string): string => `road-task-${taskId}`;
export const replayWorkflowId = (taskId: string): string => `road-replay-${taskId}`;
/** One campaign per candidate: a second attempt's treatment is another campaign. */
export const campaignIdOf = (taskId: string, treatmentSha: string): string => `${taskId}@${treatmentSha.slice(0, 12)}`;

export interface PlannedRun {
  caseId: string;
  phaseId: string | null;
  variant: ReplayVariant;
  repeat: number;
  runIndex: number;
}

/**
 * Cases × repeats × {baseline, treatment}, interleaved so that drift (a slower machine, a warmer cache, a model that
 * changes under us) hits both arms alike: repeat by repeat, case by case, and which arm goes first alternates.
 */
export function interleavedRuns(cases: readonly ReplayCase[], repeats: number): PlannedRun[] {
  const runs: PlannedRun[] = [];
  for (let repeat = 0; repeat < repeats; repeat++) {
    cases.forEach((c, i) => {
      const order: ReplayVariant[] = (repeat + i) % 2 === 0 ? ['baseline', 'treatment'] : ['treatment', 'baseline'];
      for (const variant of order) runs.push({ caseId: c.id, phaseId: c.phaseId, variant, repeat, runIndex: runs.length });
    });
  }
  return runs;
}

/** The runs behind the task's evidence, as replay cases (the configured list wins when there is one). */
export function casesFor(
  task: Pick<FollowupTask, 'evidence' | 'phase_ids'>,
  configured: ReadonlyArray<{ id: string; phaseId?: string | null }> | undefined,
  max = 20,
): ReplayCase[] {
  if (configured?.length) return configured.slice(0, 100).map((c) => ({ id: c.id, phaseId: c.phaseId ?? null }));
  const samples = Array.isArray(task.evidence.sample_runs) ? (task.evidence.sample_runs as unknown[]) : [];
  const ids = [...new Set(samples.filter((s): s is string => typeof s === 'string' && s.length > 0))].slice(0, max);
  return ids.map((id) => ({ id, phaseId: task.phase_ids[0] ?? null }));
}

/** The stop reason behind a failure-mode task: stored in its evidence (older tasks: in the title). */
export function failureStopReasonOf(task: Pick<FollowupTask, 'type' | 'evidence' | 'title'>): string | null {
  if (task.type !== 'failure_mode') return null;
  if (typeof task.evidence.stop_reason === 'string') return task.evidence.stop_reason;
  return /^Stop "(.*)" failures in /.exec(task.title)?.[1] ?? null;
}

export type TaskStage = 'planning' | 'candidate' | 'awaiting_candidate' | 'replay' | 'approval' | 'landing' | 'done' | 'failed';

export interface CandidateSummary {
  treatmentSha: string;
  branch: string;
  author: string;
  changedFiles: string[];
  diffStat: { files: number; insertions: number; deletions: number };
  baselineSha: string;
  baselineRef: string;
}

export interface VerdictSummary {
  gating: 'PROMOTE' | 'REJECT' | 'INCONCLUSIVE';
  decisionMode: 'statistical' | 'seed';
  seed: 'PROMOTE' | 'REJECT';
  statistical: 'PROMOTE' | 'REJECT' | 'INCONCLUSIVE';
  treatmentSuccessRate: number;
  treatmentRuns: number;
  /** Why the two verdicts differ, when they do. */
  why?: string;
}

export type TaskOutcome = 'approved' | 'rejected' | 'expired' | 'failed';

/** What `road tasks status` shows and the workflow's status query returns. */
export interface FollowupTaskStatus {
  taskId: string;
  type: IssueType | null;
  stage: TaskStage;
  /** One sentence: what the task waits for and what moves it on. */
  detail: string;
  attempts: Array<{ attempt: number; outcome: 'accepted' | 'refused'; message: string }>;
  candidate?: CandidateSummary;
  campaignId?: string;
  replay?: { done: number; total: number };
  verdicts?: VerdictSummary;
  reportPath?: string;
  approval?: { status: string; decidedBy?: string; decidedAt?: string; note?: string; canMerge: boolean };
  outcome?: TaskOutcome;
  /** The exact git command that lands an approved fix (repository.onApproval = "branch"). */
  mergeCommand?: string;
}

export const submitCandidateSchema = z
  .object({
    ref: z.string({ error: 'ref must be a string' }).trim().min(1, 'ref must not be empty').max(255, 'ref must be at most 255 characters')
      .regex(/^[^\s~^:?*[\\]+$/, 'ref must be a git ref or commit sha (no spaces or ~ ^ : ? * [ \\)'),
    author: z.string({ error: 'author must be a string' }).trim().min(1, 'author must not be empty').max(255, 'author must be at most 255 characters'),
  })
  .strict();
export type SubmitCandidateInput = z.input<typeof submitCandidateSchema>;

/** The git command that lands an approved candidate by hand. */
export function mergeCommandFor(repositoryPath: string, baselineRef: string, branch: string): string {
  const quoted = /^[\w@%+=:,./-]+$/.test(repositoryPath) ? repositoryPath : `'${repositoryPath.replaceAll("'", `'\\''`)}'`;
  return `git -C ${quoted} checkout ${baselineRef} && git -C ${quoted} merge --ff-only ${branch}`;
}
