/**
 * Governance gate (ROAD-D): a reviewer approves evidence, durably, for days if need be.
 *
 * persist the request → wait for the first valid approve/reject (or the timeout) → record the decision.
 * Every attempt, counted or ignored, is audited in PostgreSQL.
 */
import {
  ApplicationFailure,
  allHandlersFinished,
  condition,
  proxyActivities,
  log,
  setCurrentDetails,
  setDefaultSignalHandler,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import {
  applyDecision,
  approvalRequestSchema,
  initialState,
  pendingDetails,
  type ApprovalRequestInput,
  type ApprovalState,
  type DecisionAction,
  type DecisionInput,
} from '../domain/approval.js';
import { describeZodError } from '../domain/validation.js';
import type { createActivities } from '../activities/index.js';
import { approveSignal, decideUpdate, rejectSignal, RoadKind, RoadPhase, RoadStatus, RoadTaskId, statusQuery } from './definitions.js';

// Database writes must survive a database restart: keep retrying with a capped backoff rather than lose a decision.
const { persistApprovalRequest, recordDecisionAttempt, finalizeApproval } = proxyActivities<ReturnType<typeof createActivities>>({
  startToCloseTimeout: '30 seconds',
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '1 minute', maximumAttempts: Number.POSITIVE_INFINITY },
});

export async function approvalGate(input: ApprovalRequestInput): Promise<ApprovalState> {
  const parsed = approvalRequestSchema.safeParse(input);
  if (!parsed.success) {
    throw ApplicationFailure.nonRetryable(`invalid approval request: ${describeZodError(parsed.error)}`, 'InvalidApprovalRequest');
  }
  const request = parsed.data;
  const info = workflowInfo();
  let state = initialState(info.workflowId + '/' + info.firstExecutionRunId, request, Date.now());
  let persisted = false;

  const decide = async (action: DecisionAction, decision: DecisionInput) => {
    // Judge synchronously so that, of two concurrent decisions, the first to arrive wins.
    const judged = applyDecision(state, action, decision ?? { reviewer: '' }, new Date().toISOString());
    state = judged.state;
    if (state.status === 'PENDING') setCurrentDetails(pendingDetails(state, request.timeout));
    await condition(() => persisted); // the audit row references the stored request
    await recordDecisionAttempt({ requestId: state.requestId, taskId: state.taskId, attempt: judged.attempt });
    return judged.attempt;
  };
  setHandler(statusQuery, () => state);
  // One handler for both decision signals. Signals that arrived before the workflow first ran are dispatched when
  // handlers are registered: named handlers would each take their own signals first (an approve sent after a
  // reject could win), while a default handler receives the buffer in arrival order — and the first decision wins.
  const signalActions: Record<string, DecisionAction> = { [approveSignal.name]: 'approve', [rejectSignal.name]: 'reject' };
  setDefaultSignalHandler(async (name, ...args) => {
    const action = signalActions[name];
    if (action) await decide(action, args[0] as DecisionInput);
    else log.warn('ignored an unknown signal', { name });
  });
  setHandler(decideUpdate, ({ action, ...decision }) => decide(action, decision));

  upsertSearchAttributes([
    { key: RoadKind, value: 'approval' },
    { key: RoadStatus, value: 'PENDING' },
    { key: RoadTaskId, value: request.taskId },
    { key: RoadPhase, value: request.impact.phases },
  ]);
  await persistApprovalRequest({ workflowId: info.workflowId, state, request });
  persisted = true;
  setCurrentDetails(pendingDetails(state, request.timeout));

  const decided = await condition(() => state.status !== 'PENDING', request.timeout);
  if (!decided) state = { ...state, status: 'EXPIRED', decidedAt: new Date().toISOString() };

  upsertSearchAttributes([{ key: RoadStatus, value: state.status }]);
  setCurrentDetails(
    state.status === 'EXPIRED'
      ? `**EXPIRED** — no valid decision on ${state.taskId} before ${state.expiresAt}.`
      : `**${state.status}** by ${state.decidedBy} at ${state.decidedAt}${state.decisionNote ? ` — "${state.decisionNote}"` : ''}. can_merge: ${state.canMerge}`,
  );
  await finalizeApproval({
    requestId: state.requestId,
    status: state.status,
    decidedAt: state.decidedAt!,
    decidedBy: state.decidedBy ?? null,
    decisionNote: state.decisionNote ?? null,
    canMerge: state.canMerge,
  });
  // Let in-flight signal/update handlers finish writing their audit rows before the workflow closes.
  await condition(allHandlersFinished);
  return state;
}
