/** What `road approve | reject | pending` (and the API) do with the governance gate. */
import { WorkflowExecutionAlreadyStartedError, WorkflowNotFoundError, type Client } from '@temporalio/client';
import { randomUUID } from 'node:crypto';
import { approvalRequestSchema, TASK_ID, type ApprovalRequestInput, type ApprovalState, type DecisionAction, type DecisionAttempt, type DecisionInput } from '../domain/approval.js';
import { formatDuration } from '../domain/duration.js';
import { describeZodError } from '../domain/validation.js';
import { latestApprovalForTask, saveDecisionAttempt } from '../db/approvals.js';
import type { Pool } from '../db/pool.js';
import { approvalWorkflowId, decideUpdate, RoadKind, RoadStatus, RoadTaskId, statusQuery } from '../workflows/definitions.js';
import type { approvalGate } from '../workflows/approvalGate.js';
import { UsageError } from './errors.js';

/** Starts a gate for one task; the request is validated here so that bad input never reaches a workflow. */
export async function startApprovalGate(client: Client, taskQueue: string, input: ApprovalRequestInput) {
  const parsed = approvalRequestSchema.safeParse(input);
  if (!parsed.success) throw new UsageError(`invalid approval request: ${describeZodError(parsed.error)}`);
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
      throw new UsageError(`${request.taskId} already has an approval gate waiting for a decision (workflow ${approvalWorkflowId(request.taskId)})`);
    }
    throw error;
  }
}

export interface DecisionResult {
  attempt: DecisionAttempt;
  state: ApprovalState;
}

/**
 * Sends one decision and reports whether it counted. Attempts that do not count are still audited: by the workflow
 * when it is waiting, or here when the gate has already closed.
 */
export async function submitDecision(
  deps: { client: Client; pool?: () => Pool; source?: 'cli' | 'api' },
  taskId: string,
  action: DecisionAction,
  decision: DecisionInput,
): Promise<DecisionResult> {
  const id = TASK_ID.safeParse(taskId);
  if (!id.success) throw new UsageError(`task id "${taskId}": ${describeZodError(id.error)}`);
  if (!decision.reviewer?.trim()) throw new UsageError('--reviewer must not be empty');
  if (action === 'reject' && !decision.reason?.trim()) throw new UsageError('--reason must not be empty: say why the candidate is rejected');

  const handle = deps.client.workflow.getHandle(approvalWorkflowId(taskId));
  let running: boolean;
  try {
    running = (await handle.describe()).status.name === 'RUNNING';
  } catch (error) {
    if (!(error instanceof WorkflowNotFoundError)) throw error;
    running = false;
  }
  if (!running) return refuseClosedGate(deps.pool?.(), taskId, action, decision, deps.source ?? 'cli');

  const attempt = await handle.executeUpdate(decideUpdate, { args: [{ action, ...decision }] });
  const state = await handle.query(statusQuery);
  if (attempt.outcome === 'ignored') {
    throw new UsageError(`${action} of ${taskId} by ${attempt.reviewer} was not counted: ${attempt.reason} (status ${state.status}; the attempt is audited)`, 'forbidden');
  }
  return { attempt, state };
}

async function refuseClosedGate(
  pool: Pool | undefined,
  taskId: string,
  action: DecisionAction,
  decision: DecisionInput,
  source: 'cli' | 'api',
): Promise<never> {
  const row = pool ? await latestApprovalForTask(pool, taskId) : undefined;
  if (!row) throw new UsageError(`unknown task ${taskId}: no approval request is waiting for it (see \`road pending\`)`, 'not_found');
  const reason = `already ${row.status}${row.decidedBy ? ` by ${row.decidedBy}` : ''}`;
  await saveDecisionAttempt(
    pool!,
    row.requestId,
    {
      seq: 0,
      action,
      reviewer: decision.reviewer.trim().slice(0, 255),
      note: ((action === 'approve' ? decision.comment : decision.reason) ?? '').slice(0, 4000),
      at: new Date().toISOString(),
      outcome: 'ignored',
      reason,
    },
    source,
    `${source}-${randomUUID()}`,
  );
  throw new UsageError(`${taskId} is ${reason}; nothing changed (the attempt is audited)`, 'conflict');
}
