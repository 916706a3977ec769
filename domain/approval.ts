/**
 * The governance gate (ROAD-D) as pure rules: what an approval request must contain, and whether a decision
 * attempt counts. The workflow holds the state; these functions decide.
 */
import { z } from 'zod';
import { formatDuration, parseDuration } from './duration.js';
import { normalizeIdentity } from './identity.js';

export const DEFAULT_APPROVAL_TIMEOUT = '7d';
const MAX_APPROVAL_TIMEOUT_MS = 365 * 86_400_000;
const EVIDENCE_MAX_BYTES = 64 * 1024;

export const TASK_ID = z
  .string()
  .min(1, 'taskId must not be empty')
  .max(128, 'taskId must be at most 128 characters')
  .regex(/^[A-Za-z0-9._:-]+$/, 'taskId may contain only letters, digits and . _ : -');

const identity = (field: string) =>
  z
    .string()
    .trim()
    .min(1, `${field} must not be empty`)
    .max(255, `${field} must be at most 255 characters`);

const duration = z.string().transform((text, ctx) => {
  try {
    const ms = parseDuration(text);
    if (ms > MAX_APPROVAL_TIMEOUT_MS) {
      ctx.addIssue({ code: 'custom', message: `timeout must be at most 365 days (got ${text})` });
      return z.NEVER;
    }
    return ms;
  } catch (error) {
    ctx.addIssue({ code: 'custom', message: `timeout: ${(error as Error).message}` });
    return z.NEVER;
  }
});

export const VERDICTS = ['PROMOTE', 'REJECT', 'INCONCLUSIVE'] as const;
export type Verdict = (typeof VERDICTS)[number];

export const approvalRequestSchema = z
  .object({
    taskId: TASK_ID,
    title: z.string().trim().min(1, 'title must not be empty').max(500, 'title must be at most 500 characters'),
    candidateRef: z.string().trim().min(1, 'candidateRef must not be empty').max(255, 'candidateRef must be at most 255 characters'),
    baselineRef: z.string().trim().max(255, 'baselineRef must be at most 255 characters').optional(),
    diffStat: z
      .object({ files: z.number().int().min(0), insertions: z.number().int().min(0), deletions: z.number().int().min(0) })
      .optional(),
    impact: z.object({
      summary: z.string().max(4000, 'impact.summary must be at most 4000 characters').default(''),
      files: z.array(z.string().min(1).max(1024)).max(200, 'impact.files must list at most 200 paths').default([]),
      phases: z.array(z.string().min(1).max(255)).max(200, 'impact.phases must list at most 200 phases').default([]),
    }),
    rollbackPlan: z.string().trim().max(4000, 'rollbackPlan must be at most 4000 characters').optional(),
    /** The replay verdict that gates promotion; `can_merge` needs PROMOTE. */
    verdict: z.enum(VERDICTS).optional(),
    evidence: z
      .record(z.string(), z.unknown())
      .default({})
      .refine((value) => new TextEncoder().encode(JSON.stringify(value)).length <= EVIDENCE_MAX_BYTES, {
        message: 'evidence must be at most 64 KiB as JSON',
      }),
    allowedReviewers: z
      .array(identity('allowedReviewers[]'))
      .min(1, 'allowedReviewers must name at least one reviewer')
      .max(50, 'allowedReviewers must name at most 50 reviewers'),
    author: identity('author'),
    timeout: duration.prefault(DEFAULT_APPROVAL_TIMEOUT),
  })
  .superRefine((request, ctx) => {
    const author = normalizeIdentity(request.author);
    if (!request.allowedReviewers.some((reviewer) => normalizeIdentity(reviewer) !== author)) {
      ctx.addIssue({
        code: 'custom',
        path: ['allowedReviewers'],
        message: 'allowedReviewers must include someone other than the author (no self-approval)',
      });
    }
  });

/** What a caller passes (timeout as text such as `7d`). */
export type ApprovalRequestInput = z.input<typeof approvalRequestSchema>;
/** What the workflow works with (timeout in ms, defaults filled). */
export type ApprovalRequest = z.output<typeof approvalRequestSchema>;

export type ApprovalStatus = 'PENDING' | 'APPROVED' | 'REJECTED' | 'EXPIRED';
export type DecisionAction = 'approve' | 'reject';

export interface DecisionInput {
  reviewer: string;
  /** For approve: an optional comment. */
  comment?: string;
  /** For reject: the reason, required. */
  reason?: string;
}

export interface DecisionAttempt {
  seq: number;
  action: DecisionAction;
  reviewer: string;
  /** The comment of an approval or the reason of a rejection. */
  note: string;
  at: string;
  outcome: 'accepted' | 'ignored';
  /** Why an ignored attempt did not count. */
  reason?: string;
}

export interface ApprovalState {
  requestId: string;
  taskId: string;
  title: string;
  status: ApprovalStatus;
  candidateRef: string;
  verdict?: Verdict;
  allowedReviewers: string[];
  author: string;
  requestedAt: string;
  expiresAt: string;
  decidedAt?: string;
  decidedBy?: string;
  decisionNote?: string;
  canMerge: boolean;
  attempts: DecisionAttempt[];
}

/** Why an attempt does not count, or undefined when it decides the request. First valid decision wins. */
export function whyIgnored(state: Pick<ApprovalState, 'status' | 'allowedReviewers' | 'author' | 'decidedBy'>, action: DecisionAction, decision: DecisionInput): string | undefined {
  const reviewer = normalizeIdentity(decision.reviewer ?? '');
  if (state.status !== 'PENDING') {
    return `already ${state.status}${state.decidedBy ? ` by ${state.decidedBy}` : ''}`;
  }
  if (!reviewer) return 'reviewer must not be empty';
  if (reviewer === normalizeIdentity(state.author)) {
    return `${decision.reviewer} is the task's author: no self-${action === 'approve' ? 'approval' : 'rejection'}`;
  }
  if (!state.allowedReviewers.some((allowed) => normalizeIdentity(allowed) === reviewer)) {
    return `${decision.reviewer} is not an allowed reviewer (allowed: ${state.allowedReviewers.join(', ')})`;
  }
  if (action === 'reject' && !decision.reason?.trim()) return 'a rejection needs a reason';
  return undefined;
}

/** Judges one attempt and returns the next state; the input state is not modified. */
export function applyDecision(state: ApprovalState, action: DecisionAction, decision: DecisionInput, at: string): { state: ApprovalState; attempt: DecisionAttempt } {
  const reason = whyIgnored(state, action, decision);
  const note = ((action === 'approve' ? decision.comment : decision.reason) ?? '').slice(0, 4000);
  const attempt: DecisionAttempt = {
    seq: state.attempts.length + 1,
    action,
    reviewer: (decision.reviewer ?? '').trim().slice(0, 255),
    note,
    at,
    outcome: reason ? 'ignored' : 'accepted',
    ...(reason ? { reason } : {}),
  };
  const next: ApprovalState = { ...state, attempts: [...state.attempts, attempt] };
  if (!reason) {
    next.status = action === 'approve' ? 'APPROVED' : 'REJECTED';
    next.decidedAt = at;
    next.decidedBy = attempt.reviewer;
    next.decisionNote = note;
    next.canMerge = canMerge(next.status, state.verdict);
  }
  return { state: next, attempt };
}

/** `can_merge` = APPROVED ∧ the replay verdict is PROMOTE. */
export function canMerge(status: ApprovalStatus, verdict: Verdict | undefined): boolean {
  return status === 'APPROVED' && verdict === 'PROMOTE';
}

export function initialState(requestId: string, request: ApprovalRequest, requestedAtMs: number): ApprovalState {
  return {
    requestId,
    taskId: request.taskId,
    title: request.title,
    status: 'PENDING',
    candidateRef: request.candidateRef,
    ...(request.verdict ? { verdict: request.verdict } : {}),
    allowedReviewers: request.allowedReviewers,
    author: request.author,
    requestedAt: new Date(requestedAtMs).toISOString(),
    expiresAt: new Date(requestedAtMs + request.timeout).toISOString(),
    canMerge: false,
    attempts: [],
  };
}

export function rollbackPlanFor(request: ApprovalRequest): string {
  return request.rollbackPlan || `Revert the candidate commit: git revert ${request.candidateRef}`;
}

/** The text the Temporal UI shows while the gate waits: who may decide, and the exact commands. */
export function pendingDetails(state: ApprovalState, timeoutMs: number): string {
  const reviewers = state.allowedReviewers.filter((r) => normalizeIdentity(r) !== normalizeIdentity(state.author));
  const last = state.attempts.at(-1);
  // Markdown for the Temporal UI: list items, because single newlines collapse there.
  return [
    `**Waiting for a reviewer** to approve or reject ${state.taskId} — "${state.title}"`,
    '',
    `- Candidate: \`${state.candidateRef}\`${state.verdict ? ` · replay verdict: ${state.verdict}` : ''}`,
    `- Allowed reviewers: ${reviewers.join(', ')} (not the author, ${state.author})`,
    `- Expires: ${state.expiresAt} (${formatDuration(timeoutMs)} after the request)`,
    `- Approve: \`road approve ${state.taskId} --reviewer ${reviewers[0]} --comment "…"\``,
    `- Reject: \`road reject ${state.taskId} --reviewer ${reviewers[0]} --reason "…"\``,
    ...(last?.outcome === 'ignored' ? [`- Last attempt ignored: ${last.reviewer} (${last.action}) — ${last.reason}`] : []),
  ].join('\n');
}
