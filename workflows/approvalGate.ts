/**
 * Governance gate (ROAD-D): a reviewer approves evidence, durably, for days if need be.
 *
 * persist the request → wait for the first valid approve/reject (or the timeout) → record the decision.
 * Every attempt, counted or ignored, is audited in PostgreSQL.
 */
import {
  ActivityFailure,
  allHandlersFinished,
  condition,
  log,
  patched,
  proxyActivities,
  proxyLocalActivities,
  setCurrentDetails,
  setDefaultSignalHandler,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import {
  applyUnvalidatedDecision,
  approvalRequestSchema,
  decisionSummary,
  initialState,
  judgeSentDecision,
  pendingDetails,
  requireDecision,
  type ApprovalRequestInput,
  type ApprovalState,
  type DecisionAction,
  type DecisionAttempt,
} from '../domain/approval.js';
import { InvalidInput, isRefusal } from '../domain/errors.js';
import { approvalNotice, expiryReminder, type NotifyEvent } from '../domain/notify.js';
import { describeZodError } from '../domain/validation.js';
import type { createActivities } from '../activities/index.js';
import { approvalStatusQuery, approveSignal, decideUpdate, rejectSignal, RoadKind, RoadPhase, RoadStatus, RoadTaskId } from './definitions.js';
import { refusalFailure } from './failures.js';
import { announce } from './notification.js';

/**
 * Database writes must survive a database restart: unlimited retries — of faults that heal only. Every ROAD activity
 * turns a permanent failure (a constraint violation, bad data) into a non-retryable one (activities/errors.ts), so
 * such a failure reaches the gate at once instead of retrying forever.
 */
const { persistApprovalRequest, recordDecisionAttempt, finalizeApproval } = proxyActivities<ReturnType<typeof createActivities>>({
  startToCloseTimeout: '30 seconds',
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '1 minute', maximumAttempts: Number.POSITIVE_INFINITY },
});

// Which events have webhook receivers: read from the worker's config, no I/O, so a local activity (one marker event).
const { notificationEvents } = proxyLocalActivities<ReturnType<typeof createActivities>>({ startToCloseTimeout: '10 seconds', retry: { maximumAttempts: 3 } });

/**
 * Gates notify webhook receivers (road.config.json `notify`) from this patch on: when the request opens, when it is
 * about to expire (a second timer: the wait is split at the reminder), and when it is decided or expires. Gates
 * opened before it replay as they ran: no notifications and one timer.
 */
export const NOTIFICATIONS_PATCH = 'webhook-notifications';

/**
 * Gates judge decisions by domain/approval.ts `decisionSchema` from this patch on. Attempts that a gate judged before
 * it (any action but approve counted as a rejection) replay the old way: see `applyUnvalidatedDecision`.
 */
export const VALIDATED_DECISIONS_PATCH = 'validated-decisions';

/** The `decide` Update's validator: a decision that breaks the rules is refused before it is written to history. */
function refuseInvalidDecision(input: unknown): void {
  try {
    requireDecision(input);
  } catch (error) {
    throw isRefusal(error) ? refusalFailure(error) : error;
  }
}

export async function approvalGate(input: ApprovalRequestInput): Promise<ApprovalState> {
  const parsed = approvalRequestSchema.safeParse(input);
  if (!parsed.success) throw refusalFailure(new InvalidInput(`invalid approval request: ${describeZodError(parsed.error)}`));
  const request = parsed.data;
  const info = workflowInfo();
  let state = initialState(info.workflowId + '/' + info.firstExecutionRunId, request, Date.now());
  let persisted = false;

  const decide = async (action: unknown, payload: unknown): Promise<DecisionAttempt> => {
    // Judge synchronously so that, of two concurrent decisions, the first to arrive wins. Whatever breaks the rules
    // is refused here, before it touches the decision, and audited as an ignored attempt with the rule it broke.
    const at = new Date().toISOString();
    const judged = patched(VALIDATED_DECISIONS_PATCH)
      ? judgeSentDecision(state, action, payload, at)
      : applyUnvalidatedDecision(state, action, payload, at);
    state = judged.state;
    if (state.status === 'PENDING') setCurrentDetails(pendingDetails(state, request.timeout));
    await condition(() => persisted); // the audit row references the stored request
    try {
      await recordDecisionAttempt({ requestId: state.requestId, attempt: judged.attempt });
      return judged.attempt;
    } catch (error) {
      if (!(error instanceof ActivityFailure)) throw error;
      // Only a permanent failure gets here. The judgement is already in the gate's state and history: a missing audit
      // row must not wedge the gate, nor leave the caller of the Update without an answer.
      const auditError = error.cause?.message ?? error.message;
      log.error('the decision attempt could not be audited', { seq: judged.attempt.seq, auditError });
      state = { ...state, attempts: state.attempts.map((a) => (a.seq === judged.attempt.seq ? { ...a, auditError } : a)) };
      return { ...judged.attempt, auditError };
    }
  };
  setHandler(approvalStatusQuery, () => state);
  // One handler for both decision signals. Signals that arrived before the workflow first ran are dispatched when
  // handlers are registered: named handlers would each take their own signals first (an approve sent after a
  // reject could win), while a default handler receives the buffer in arrival order — and the first decision wins.
  const signalActions: Record<string, DecisionAction> = { [approveSignal.name]: 'approve', [rejectSignal.name]: 'reject' };
  setDefaultSignalHandler(async (name, ...args) => {
    const action = signalActions[name];
    if (action) await decide(action, args[0]);
    else log.warn('ignored an unknown signal', { name });
  });
  // Signals have no validator; the Update has one, so a bad decision sent through it never reaches the handler.
  setHandler(decideUpdate, ({ action, ...payload }) => decide(action, payload), { validator: refuseInvalidDecision });

  upsertSearchAttributes([
    { key: RoadKind, value: 'approval' },
    { key: RoadStatus, value: 'PENDING' },
    { key: RoadTaskId, value: request.taskId },
    { key: RoadPhase, value: request.impact.phases },
  ]);
  await persistApprovalRequest({ workflowId: info.workflowId, state, request });
  persisted = true;
  setCurrentDetails(pendingDetails(state, request.timeout));

  // Notifications are started, never awaited: a receiver that is down delays and fails nothing here.
  const notifying = patched(NOTIFICATIONS_PATCH) ? await subscribedEvents() : new Set<NotifyEvent>();
  if (notifying.has('approval.requested')) await announce('approval.requested', { approval: approvalNotice(state, request) });

  const isDecided = () => state.status !== 'PENDING';
  let decided: boolean;
  if (notifying.has('approval.expiring')) {
    const waitStarted = Date.now();
    decided = await condition(isDecided, expiryReminder(request.timeout).afterMs);
    if (!decided) {
      await announce('approval.expiring', { approval: approvalNotice(state, request) });
      decided = await condition(isDecided, Math.max(1, waitStarted + request.timeout - Date.now()));
    }
  } else {
    decided = await condition(isDecided, request.timeout);
  }
  if (!decided) state = { ...state, status: 'EXPIRED', decidedAt: new Date().toISOString() };

  upsertSearchAttributes([{ key: RoadStatus, value: state.status }]);
  setCurrentDetails(
    state.status === 'EXPIRED'
      ? `**EXPIRED** — no valid decision on ${state.taskId} before ${state.expiresAt}.`
      : `**Decided:** ${decisionSummary(state)}. can_merge: ${state.canMerge}`,
  );
  await finalizeApproval({
    requestId: state.requestId,
    status: state.status,
    decidedAt: state.decidedAt!,
    decidedBy: state.decidedBy ?? null,
    decisionNote: state.decisionNote ?? null,
    canMerge: state.canMerge,
  });
  if (notifying.has('approval.decided')) await announce('approval.decided', { approval: approvalNotice(state, request) });
  // Let in-flight signal/update handlers finish writing their audit rows before the workflow closes.
  await condition(allHandlersFinished);
  return state;
}

/** The events some receiver wants; none when the question cannot be answered (a notification never fails a gate). */
async function subscribedEvents(): Promise<Set<NotifyEvent>> {
  try {
    return new Set(await notificationEvents());
  } catch (error) {
    log.warn('could not tell which events have webhook receivers: this gate sends none', { error: (error as Error).message });
    return new Set();
  }
}
