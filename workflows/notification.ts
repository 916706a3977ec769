/**
 * Webhook notifications, kept off the critical path: a gate or a loop starts one `deliverNotification` child per
 * event and goes on at once. The child is abandoned when its parent closes, so a receiver that is down for an hour
 * delays nothing and fails nothing; the child retries, then records what it could not deliver.
 */
import { ActivityFailure, log, ParentClosePolicy, proxyActivities, startChild, upsertSearchAttributes, workflowInfo } from '@temporalio/workflow';
import type { createActivities } from '../activities/index.js';
import { notificationWorkflowId, type NotificationRequest, type NotifyEvent } from '../domain/notify.js';
import { RoadKind, RoadTaskId } from './definitions.js';

type Activities = ReturnType<typeof createActivities>;

/**
 * Bounded: 12 attempts, 2 s doubling to at most 15 minutes apart — about 47 minutes in all, enough for a receiver
 * to be redeployed. Only a 408, 429, 5xx or an unreachable receiver is retried (activities/notify.ts decides).
 */
export const NOTIFY_RETRY = { initialInterval: '2 seconds', backoffCoefficient: 2, maximumInterval: '15 minutes', maximumAttempts: 12 } as const;

const { notify } = proxyActivities<Activities>({ startToCloseTimeout: '1 minute', retry: NOTIFY_RETRY });
// Recording the failure is a database write: retried while the database is away (permanent errors fail fast).
const { recordUndeliveredNotification } = proxyActivities<Activities>({
  startToCloseTimeout: '30 seconds',
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '1 minute', maximumAttempts: Number.POSITIVE_INFINITY },
});

export const NOTIFICATION_WORKFLOW = 'deliverNotification';

/** One event to every receiver that wants it. Never fails: what could not be delivered is recorded as failed. */
export async function deliverNotification(request: NotificationRequest): Promise<{ delivered: string[]; failed: string[] }> {
  upsertSearchAttributes([
    { key: RoadKind, value: 'notification' },
    ...(request.approval ? [{ key: RoadTaskId, value: request.approval.taskId }] : []),
  ]);
  try {
    const result = await notify(request);
    return { delivered: result.delivered, failed: result.failed.map((f) => `${f.target}: ${f.error}`) };
  } catch (error) {
    if (!(error instanceof ActivityFailure)) throw error;
    const reason = error.cause?.message ?? error.message;
    log.warn('a notification could not be delivered', { event: request.event, key: request.key, reason });
    await recordUndeliveredNotification({ key: request.key, reason: `gave up after ${NOTIFY_RETRY.maximumAttempts} attempts: ${reason}` });
    return { delivered: [], failed: [reason] };
  }
}

/**
 * Starts the delivery of `event` and returns once the child has started (not delivered). Whatever goes wrong here —
 * even a child that cannot be started — is logged and swallowed: a notification never blocks or fails its parent.
 */
export async function announce(event: NotifyEvent, facts: Pick<NotificationRequest, 'approval' | 'analysis'>): Promise<void> {
  const info = workflowInfo();
  const request: NotificationRequest = {
    event,
    key: `${info.workflowId}/${info.runId}/${event}`,
    occurredAt: new Date().toISOString(),
    workflowId: info.workflowId,
    runId: info.runId,
    ...facts,
  };
  try {
    await startChild(deliverNotification, {
      workflowId: notificationWorkflowId(info.runId, event),
      args: [request],
      parentClosePolicy: ParentClosePolicy.ABANDON,
      staticSummary: `Notify ${event}${request.approval ? ` for ${request.approval.taskId}` : ''}`,
    });
  } catch (error) {
    log.error('a notification could not be started', { event, error: (error as Error).message });
  }
}
