/** What `road approve | reject | pending` (and the API) do with the governance gate. */
import { WorkflowExecutionAlreadyStartedError, WorkflowNotFoundError, WorkflowUpdateFailedError, type Client } from '@temporalio/client';
import { randomUUID } from 'node:crypto';
import {
  approvalRequestSchema,
  judgeDecision,
  requireDecision,
  TASK_ID,
  type ApprovalRequestInput,
  type ApprovalState,
  type DecisionAction,
  type Decision,
  type DecisionAttempt,
  type DecisionInput,
  type GateFacts,
} from '../domain/approval.js';
import { formatDuration } from '../domain/duration.js';
import { Conflict, Forbidden, InvalidInput, NotFound } from '../domain/errors.js';
import { describeZodError } from '../domain/validation.js';
import { latestApprovalForTask, saveDecisionAttempt } from '../db/approvals.js';
import type { Pool } from '../db/pool.js';
import { approvalStatusQuery, approvalWorkflowId, decideUpdate, RoadKind, RoadStatus, RoadTaskId } from '../workflows/definitions.js';
import type { approvalGate } from '../workflows/approvalGate.js';
import { refusalOf } from '../workflows/failures.js';

/** Starts a gate for one task; the request is validated here so that bad input never reaches a workflow. */
export async function startApprovalGate(client: Client, taskQueue: string, input: ApprovalRequestInput) {
  const parsed = approvalRequestSchema.safeParse(input);
  if (!parsed.success) throw new InvalidInput(`invalid approval request: ${describeZodError(parsed.error)}`);
  const request = parsed.data;
  try {
    return await client.workflow.start<typeof approvalGate>('approvalGate', {
      taskQueue,
      workflowId: approvalWorkflowId(request.taskId),
      args: [input],
      staticSummary: `Approval gate for ${request.taskId}: ${request.title}`,
      staticDetails: [
        `- **Task** ${request.taskId} — ${request.title}`,
        `- **Candidate** \`${request.candidateRef}\`${request.baselineRef ? ` on \`${request.baselineRef}\`` : ''}`,
        `- **Impact** ${request.impact.summary || '(none given)'}; files: ${request.impact.files.join(', ') || '—'}; phases: ${request.impact.phases.join(', ') || '—'}`,
        `- **Replay verdict** ${request.verdict ?? 'not given'}`,
        `- **Reviewers** ${request.allowedReviewers.join(', ')} (author ${request.author} may not decide)`,
        `- **Times out** after ${formatDuration(request.timeout)} → EXPIRED`,
      ].join('\n'),
      typedSearchAttributes: [
        { key: RoadKind, value: 'approval' },
        { key: RoadStatus, value: 'PENDING' },
        { key: RoadTaskId, value: request.taskId },
      ],
    });
  } catch (error) {
    if (error instanceof WorkflowExecutionAlreadyStartedError) {
      throw new Conflict(`${request.taskId} already has an approval gate waiting for a decision (workflow ${approvalWorkflowId(request.taskId)})`);
    }
    throw error;
  }
}

export interface DecisionResult {
  attempt: DecisionAttempt;
  state: ApprovalState;
}

/**
 * Sends one decision and reports whether it counted. A decision that breaks the rules (domain/approval.ts) is refused
 * here with InvalidInput before anything is sent; one that is valid but does not count (a stranger, the author) is
 * Forbidden; a closed gate is a Conflict; an unknown task NotFound. Attempts that reach a gate are audited: by the
 * workflow when it is waiting, or here when the gate has already closed.
 */
export async function submitDecision(
  /** `client` may be a function: Temporal is then contacted only for a decision that passed the rules. */
  deps: { client: Client | (() => Promise<Client>); pool?: () => Pool; source?: 'cli' | 'api' },
  taskId: string,
  action: DecisionAction,
  input: DecisionInput,
): Promise<DecisionResult> {
  const id = TASK_ID.safeParse(taskId);
  if (!id.success) throw new InvalidInput(`task id "${taskId}": ${describeZodError(id.error)}`);
  // Only the decision's own fields: callers pass their options objects (the CLI's carries --json).
  const { reviewer, comment, reason } = input;
  const decision = requireDecision({ action, reviewer, ...(comment !== undefined && { comment }), ...(reason !== undefined && { reason }) });

  const client = typeof deps.client === 'function' ? await deps.client() : deps.client;
  const handle = client.workflow.getHandle(approvalWorkflowId(taskId));
  let running: boolean;
  try {
    running = (await handle.describe()).status.name === 'RUNNING';
  } catch (error) {
    if (!(error instanceof WorkflowNotFoundError)) throw error;
    running = false;
  }
  if (!running) return refuseClosedGate(deps.pool?.(), taskId, decision, deps.source ?? 'cli');

  let attempt: DecisionAttempt;
  try {
    attempt = await handle.executeUpdate(decideUpdate, { args: [{ ...decision }] });
  } catch (error) {
    // The gate closed between describe() and the Update: answer as for any closed gate.
    if (error instanceof WorkflowNotFoundError) return refuseClosedGate(deps.pool?.(), taskId, decision, deps.source ?? 'cli');
    // The validator refused it (only if the rules here and in the worker's bundle differ, e.g. during a deploy).
    if (error instanceof WorkflowUpdateFailedError) throw refusalOf(error) ?? error;
    throw error;
  }
  const state = await handle.query(approvalStatusQuery);
  if (attempt.outcome === 'ignored') {
    const why = `${action} of ${taskId} by ${attempt.reviewer} was not counted: ${attempt.reason} (status ${state.status}; the attempt is audited)`;
    // Decided a moment ago (the workflow is still finishing) is the same conflict as a closed gate.
    throw state.status === 'PENDING' ? new Forbidden(why) : new Conflict(why);
  }
  return { attempt, state };
}

/** The gate is not running: the decision is judged against the stored request, audited, and refused. */
async function refuseClosedGate(pool: Pool | undefined, taskId: string, decision: Decision, source: 'cli' | 'api'): Promise<never> {
  const row = pool ? await latestApprovalForTask(pool, taskId) : undefined;
  if (!row) throw new NotFound(`unknown task ${taskId}: no approval request is waiting for it (see \`road pending\`)`);
  const status = row.status as GateFacts['status'];
  const judged = judgeDecision({ ...row, status, decidedBy: row.decidedBy ?? undefined }, decision, new Date().toISOString(), 0);
  // A stored PENDING request whose workflow is gone (terminated) is closed too, just without a decision.
  const attempt: DecisionAttempt =
    status === 'PENDING' ? { ...judged, outcome: 'ignored', reason: 'closed without a decision (its workflow is no longer running)' } : judged;
  await saveDecisionAttempt(pool!, row.requestId, attempt, source, `${source}-${randomUUID()}`);
  throw new Conflict(`${taskId} is ${attempt.reason}; nothing changed (the attempt is audited)`);
}
