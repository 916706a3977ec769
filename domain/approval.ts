/**
 * The governance gate (ROAD-D) as pure rules: what an approval request must contain, and whether a decision
 * attempt counts. The workflow holds the state; these functions decide.
 */
import { z } from 'zod';
import { formatDuration, parseDuration } from './duration.js';
import { InvalidInput } from './errors.js';
import { normalizeIdentity } from './identity.js';
import { describeZodError } from './validation.js';

export const DEFAULT_APPROVAL_TIMEOUT = '7d';
const MAX_APPROVAL_TIMEOUT_MS = 365 * 86_400_000;
const EVIDENCE_MAX_BYTES = 64 * 1024;

export const TASK_ID = z
  .string()
  .min(1, 'taskId must not be empty')
  .max(128, 'taskId must be at most 128 characters')
  .regex(/^[A-Za-z0-9._:-]+$/, 'taskId may contain only letters, digits and . _ : -');

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/**
 * Text that PostgreSQL stores as sent: it refuses NUL (and a jsonb with \u0000 or a lone surrogate escape), and
 * would store a lone UTF-16 surrogate as U+FFFD. `max` counts UTF-16 units, never fewer than PostgreSQL's characters.
 */
const storable = (field: string, max: number) =>
  z
    .string({ error: `${field} must be a string` })
    .max(max, `${field} must be at most ${max} characters`)
    .refine((text) => !text.includes('\u0000'), `${field} must not contain NUL characters`)
    .refine((text) => !LONE_SURROGATE.test(text), `${field} must not contain lone UTF-16 surrogates`);

const identity = (field: string) =>
  z
    .string({ error: `${field} must be a string` })
    .trim()
    .min(1, `${field} must not be empty`)
    .pipe(storable(field, 255));

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
    title: z.string().trim().min(1, 'title must not be empty').pipe(storable('title', 500)),
    candidateRef: z.string().trim().min(1, 'candidateRef must not be empty').pipe(storable('candidateRef', 255)),
    baselineRef: z.string().trim().pipe(storable('baselineRef', 255)).optional(),
    diffStat: z
      .object({ files: z.number().int().min(0), insertions: z.number().int().min(0), deletions: z.number().int().min(0) })
      .optional(),
    impact: z.object({
      summary: storable('impact.summary', 4000).default(''),
      files: z.array(storable('impact.files[]', 1024).min(1, 'impact.files[] must not be empty')).max(200, 'impact.files must list at most 200 paths').default([]),
      phases: z.array(storable('impact.phases[]', 255).min(1, 'impact.phases[] must not be empty')).max(200, 'impact.phases must list at most 200 phases').default([]),
    }),
    rollbackPlan: z.string().trim().pipe(storable('rollbackPlan', 4000)).optional(),
    /** The replay verdict that gates promotion; `can_merge` needs PROMOTE. */
    verdict: z.enum(VERDICTS).optional(),
    evidence: z
      .record(z.string(), z.unknown())
      .default({})
      .superRefine((value, ctx) => {
        const problem = evidenceProblem(value);
        if (problem) ctx.addIssue({ code: 'custom', message: problem });
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

/**
 * What keeps evidence from being stored as sent, or undefined: more than 64 KiB of JSON, nesting JSON cannot hold,
 * NUL (jsonb refuses \u0000) or a lone surrogate (jsonb refuses its escape).
 */
function evidenceProblem(value: unknown): string | undefined {
  let json: string;
  try {
    json = JSON.stringify(value);
  } catch {
    return 'evidence must be plain JSON (nested at most a few thousand levels, no cycles)';
  }
  if (new TextEncoder().encode(json).length > EVIDENCE_MAX_BYTES) return 'evidence must be at most 64 KiB as JSON';
  // JSON.stringify writes NUL as \u0000 and a lone surrogate as its \uXXXX escape (an escaped backslash is \\).
  if (/(?<!\\)(?:\\\\)*\\u0000/.test(json)) return 'evidence must not contain NUL characters';
  if (/(?<!\\)(?:\\\\)*\\ud[89a-f][0-9a-f]{2}/i.test(json)) return 'evidence must not contain lone UTF-16 surrogates';
  return undefined;
}

/** What a caller passes (timeout as text such as `7d`). */
export type ApprovalRequestInput = z.input<typeof approvalRequestSchema>;
/** What the workflow works with (timeout in ms, defaults filled). */
export type ApprovalRequest = z.output<typeof approvalRequestSchema>;

export type ApprovalStatus = 'PENDING' | 'APPROVED' | 'REJECTED' | 'EXPIRED';

// ---- decisions: the one set of rules for a decision, whichever door it comes through (Update validator, signal
// handler, CLI, HTTP). A decision that breaks them is refused before it touches the gate.

export const DECISION_ACTIONS = ['approve', 'reject'] as const;
export type DecisionAction = (typeof DECISION_ACTIONS)[number];

/** What the audit table (approval_audit) holds per attempt; decisions are refused, and reasons clipped, to fit. */
export const AUDIT_LIMITS = { reviewer: 255, note: 4000, reason: 1000, rawAction: 64 } as const;

// eslint-disable-next-line no-control-regex -- matching control characters is the point
const CONTROL_CHARACTERS = /[\u0000-\u001f\u007f]/;
/** Free text of an attempt, as the audit stores it. */
const noteText = (field: 'comment' | 'reason') => storable(field, AUDIT_LIMITS.note);

const DECISION_EXAMPLE = '{"action": "approve", "reviewer": "…", "comment": "…"} or {"action": "reject", "reviewer": "…", "reason": "…"}';

export const decisionSchema = z
  .object(
    {
      action: z.enum(DECISION_ACTIONS, { error: (issue) => `action must be "approve" or "reject" (got ${preview(issue.input)})` }),
      reviewer: z
        .string({ error: 'reviewer must be a string' })
        .trim()
        .min(1, 'reviewer must not be empty')
        .refine((text) => !CONTROL_CHARACTERS.test(text), 'reviewer must not contain control characters')
        .pipe(storable('reviewer', AUDIT_LIMITS.reviewer)),
      comment: noteText('comment').optional(),
      reason: noteText('reason').optional(),
    },
    {
      error: (issue) =>
        issue.code === 'unrecognized_keys'
          ? `unknown field ${issue.keys.map((key) => `"${key}"`).join(', ')}: a decision is ${DECISION_EXAMPLE}`
          : issue.code === 'invalid_type'
            ? `a decision must be a JSON object: ${DECISION_EXAMPLE}`
            : undefined,
    },
  )
  .strict()
  .superRefine((decision, ctx) => {
    if (decision.action === 'reject' && !decision.reason?.trim()) {
      ctx.addIssue({ code: 'custom', path: ['reason'], message: 'reason must not be empty: a rejection says why the candidate is rejected' });
    }
    if (decision.action === 'reject' && decision.comment !== undefined) {
      ctx.addIssue({ code: 'custom', path: ['comment'], message: 'comment belongs to an approval: a rejection gives its reason' });
    }
    if (decision.action === 'approve' && decision.reason !== undefined) {
      ctx.addIssue({ code: 'custom', path: ['reason'], message: 'reason belongs to a rejection: an approval takes a comment' });
    }
  });

/** A decision that passed the rules (reviewer trimmed). */
export type Decision = z.output<typeof decisionSchema>;

/** What a signal carries: the action is the signal's name. */
export interface DecisionInput {
  reviewer: string;
  /** For approve: an optional comment. */
  comment?: string;
  /** For reject: the reason, required. */
  reason?: string;
}

/** What the `decide` Update carries. */
export type DecisionRequest = { action: DecisionAction } & DecisionInput;

/** Checks a decision against the rules; the message names each field and its limit. */
export function parseDecision(value: unknown): { ok: true; decision: Decision } | { ok: false; message: string } {
  const parsed = decisionSchema.safeParse(value);
  return parsed.success ? { ok: true, decision: parsed.data } : { ok: false, message: describeZodError(parsed.error) };
}

/** The decision, or an InvalidInput naming what is wrong (for the CLI, the HTTP route and the Update validator). */
export function requireDecision(value: unknown): Decision {
  const parsed = parseDecision(value);
  if (!parsed.ok) throw new InvalidInput(`invalid decision: ${parsed.message}`);
  return parsed.decision;
}

export interface DecisionAttempt {
  seq: number;
  /** `invalid`: the attempt was refused because it broke the decision rules; its action, if any, is in rawAction. */
  action: DecisionAction | 'invalid';
  /** The action as sent when it was not approve/reject (clipped to 64 characters). */
  rawAction?: string;
  reviewer: string;
  /** The comment of an approval or the reason of a rejection. */
  note: string;
  at: string;
  outcome: 'accepted' | 'ignored';
  /** Why an ignored attempt did not count. */
  reason?: string;
  /** Set when the audit row could not be written (a permanent database error); the judgement still stands. */
  auditError?: string;
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

/** What judging needs to know of a gate; `status` may also be a stored status such as SUPERSEDED. */
export interface GateFacts {
  status: ApprovalStatus | 'SUPERSEDED';
  allowedReviewers: string[];
  author: string;
  decidedBy?: string;
}

/** Why a valid decision does not count, or undefined when it decides the request. First valid decision wins. */
export function whyIgnored(state: GateFacts, decision: Decision): string | undefined {
  const reviewer = normalizeIdentity(decision.reviewer);
  if (state.status !== 'PENDING') {
    return `already ${state.status}${state.decidedBy ? ` by ${state.decidedBy}` : ''}`;
  }
  if (reviewer === normalizeIdentity(state.author)) {
    return `${decision.reviewer} is the task's author: no self-${decision.action === 'approve' ? 'approval' : 'rejection'}`;
  }
  if (!state.allowedReviewers.some((allowed) => normalizeIdentity(allowed) === reviewer)) {
    return clip(`${decision.reviewer} is not an allowed reviewer (allowed: ${state.allowedReviewers.join(', ')})`, AUDIT_LIMITS.reason);
  }
  return undefined;
}

/** The attempt a valid decision makes on a gate in `state` (which need not be running: a closed gate refuses it). */
export function judgeDecision(state: GateFacts, decision: Decision, at: string, seq: number): DecisionAttempt {
  const reason = whyIgnored(state, decision);
  return {
    seq,
    action: decision.action,
    reviewer: decision.reviewer,
    note: (decision.action === 'approve' ? decision.comment : decision.reason) ?? '',
    at,
    outcome: reason ? 'ignored' : 'accepted',
    ...(reason ? { reason } : {}),
  };
}

/** Judges one valid decision and returns the next state; the input state is not modified. */
export function applyDecision(state: ApprovalState, decision: Decision, at: string): { state: ApprovalState; attempt: DecisionAttempt } {
  const attempt = judgeDecision(state, decision, at, state.attempts.length + 1);
  const next: ApprovalState = { ...state, attempts: [...state.attempts, attempt] };
  if (attempt.outcome === 'accepted') {
    next.status = attempt.action === 'approve' ? 'APPROVED' : 'REJECTED';
    next.decidedAt = at;
    next.decidedBy = attempt.reviewer;
    next.decisionNote = attempt.note;
    next.canMerge = canMerge(next.status, state.verdict);
  }
  return { state: next, attempt };
}

/**
 * Records an attempt that broke the decision rules as ignored, with the rule it broke; nothing else changes.
 * Whatever was sent is reduced to what the audit can hold, so the audit itself cannot fail on it.
 */
export function refuseDecision(state: ApprovalState, sent: unknown, problem: string, at: string): { state: ApprovalState; attempt: DecisionAttempt } {
  const fields = isRecord(sent) ? sent : {};
  const action = typeof fields.action === 'string' && (DECISION_ACTIONS as readonly string[]).includes(fields.action) ? (fields.action as DecisionAction) : undefined;
  const attempt: DecisionAttempt = {
    seq: state.attempts.length + 1,
    action: action ?? 'invalid',
    ...(action ? {} : { rawAction: clip(rawText(fields.action), AUDIT_LIMITS.rawAction) }),
    reviewer: typeof fields.reviewer === 'string' ? clip(fields.reviewer.trim(), AUDIT_LIMITS.reviewer) : '',
    note: '',
    at,
    outcome: 'ignored',
    reason: clip(`invalid decision: ${problem}`, AUDIT_LIMITS.reason),
  };
  return { state: { ...state, attempts: [...state.attempts, attempt] }, attempt };
}

/**
 * Judges whatever arrived: a signal (its name is the action, its payload the other fields) or the Update (the action
 * is a field). A valid decision is applied; anything else is refused and recorded as an ignored attempt.
 */
export function judgeSentDecision(state: ApprovalState, action: unknown, payload: unknown, at: string): { state: ApprovalState; attempt: DecisionAttempt } {
  const sent = isRecord(payload) ? { ...payload, action } : payload;
  const parsed = parseDecision(sent);
  if (parsed.ok) return applyDecision(state, parsed.decision, at);
  return refuseDecision(state, isRecord(sent) ? sent : { action }, parsed.message, at);
}

/**
 * How gates judged attempts before decisions were validated (workflow patch `validated-decisions`): any action but
 * `approve` counted as a rejection, and only `reject` needed a reason. Kept solely so that a history recorded then
 * replays to the same outcome; remove it together with the patch.
 */
export function applyUnvalidatedDecision(state: ApprovalState, action: unknown, payload: unknown, at: string): { state: ApprovalState; attempt: DecisionAttempt } {
  const decision = isRecord(payload) ? payload : {};
  const reviewer = typeof decision.reviewer === 'string' ? decision.reviewer : '';
  const reason = typeof decision.reason === 'string' ? decision.reason : undefined;
  const comment = typeof decision.comment === 'string' ? decision.comment : undefined;
  const approves = action === 'approve';
  let ignored: string | undefined;
  if (state.status !== 'PENDING') ignored = `already ${state.status}${state.decidedBy ? ` by ${state.decidedBy}` : ''}`;
  else if (!normalizeIdentity(reviewer)) ignored = 'reviewer must not be empty';
  else if (normalizeIdentity(reviewer) === normalizeIdentity(state.author)) ignored = `${reviewer} is the task's author: no self-${approves ? 'approval' : 'rejection'}`;
  else if (!state.allowedReviewers.some((allowed) => normalizeIdentity(allowed) === normalizeIdentity(reviewer))) {
    ignored = `${reviewer} is not an allowed reviewer (allowed: ${state.allowedReviewers.join(', ')})`;
  } else if (action === 'reject' && !reason?.trim()) ignored = 'a rejection needs a reason';
  const known = approves || action === 'reject';
  const attempt: DecisionAttempt = {
    seq: state.attempts.length + 1,
    // What the gate did with it: an accepted unknown action was applied as a rejection.
    action: known ? (action as DecisionAction) : ignored ? 'invalid' : 'reject',
    ...(known ? {} : { rawAction: clip(rawText(action), AUDIT_LIMITS.rawAction) }),
    reviewer: clip(reviewer.trim(), AUDIT_LIMITS.reviewer),
    note: clip((approves ? comment : reason) ?? '', AUDIT_LIMITS.note),
    at,
    outcome: ignored ? 'ignored' : 'accepted',
    ...(ignored ? { reason: clip(ignored, AUDIT_LIMITS.reason) } : {}),
  };
  const next: ApprovalState = { ...state, attempts: [...state.attempts, attempt] };
  if (!ignored) {
    next.status = approves ? 'APPROVED' : 'REJECTED';
    next.decidedAt = at;
    next.decidedBy = attempt.reviewer;
    next.decisionNote = attempt.note;
    next.canMerge = canMerge(next.status, state.verdict);
  }
  return { state: next, attempt };
}

/**
 * An attempt as the audit table can hold it, whatever a history recorded: histories from before validation may carry
 * any action (`Approve`), an over-long reviewer or a reason longer than the column.
 */
export function auditableAttempt(attempt: DecisionAttempt): DecisionAttempt {
  const sent: unknown = attempt.action;
  const known = sent === 'approve' || sent === 'reject' || sent === 'invalid';
  // Before validation, an accepted unknown action was applied as a rejection; an ignored one changed nothing.
  const action = known ? sent : attempt.outcome === 'accepted' ? 'reject' : 'invalid';
  const rawAction = known ? attempt.rawAction : rawText(sent);
  const { reason, rawAction: _sentRawAction, ...rest } = attempt;
  return {
    ...rest,
    action,
    ...(rawAction === undefined ? {} : { rawAction: clip(rawText(rawAction), AUDIT_LIMITS.rawAction) }),
    reviewer: clip(rawText(attempt.reviewer), AUDIT_LIMITS.reviewer),
    note: clip(rawText(attempt.note), AUDIT_LIMITS.note),
    // The audit table insists: an ignored attempt has a reason, an accepted one has none.
    ...(attempt.outcome === 'ignored' ? { reason: clip(rawText(reason) || 'ignored', AUDIT_LIMITS.reason) } : {}),
  };
}

/** One line for a decided gate, the same in the CLI and the Temporal UI: `APPROVED by alice at … — "note"`. */
export function decisionSummary(state: Pick<ApprovalState, 'status' | 'decidedBy' | 'decidedAt' | 'decisionNote'>): string {
  const note = state.decisionNote ? ` — "${state.decisionNote}"` : '';
  return `${state.status} by ${state.decidedBy} at ${state.decidedAt}${note}`;
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

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** At most `max` characters (code points, as PostgreSQL counts them), without NUL, which PostgreSQL cannot store. */
function clip(text: string, max: number): string {
  const clean = text.replaceAll('\u0000', '');
  if (clean.length <= max) return clean;
  return Array.from(clean).slice(0, max).join('');
}

/** Any value as text for the audit: strings as they are, anything else as JSON (undefined → ''). */
function rawText(value: unknown): string {
  if (value === undefined) return '';
  if (typeof value === 'string') return value;
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}

/** A sent value quoted for a message, short enough for one line. */
function preview(value: unknown): string {
  if (value === undefined) return 'nothing';
  const text = typeof value === 'string' ? value : rawText(value);
  const short = text.length > 40 ? `${text.slice(0, 40)}…` : text;
  return typeof value === 'string' ? JSON.stringify(short) : short;
}
