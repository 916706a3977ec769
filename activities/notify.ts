/**
 * Webhook deliveries (road.config.json `notify`): the body is stored before the first attempt and resent unchanged
 * under the same delivery id, so a receiver can drop a retry it already processed; each attempt is signed afresh
 * (HMAC-SHA256 over `<timestamp>.<body>`, as Slack and Stripe sign theirs) so a captured request cannot be replayed
 * later. A receiver that answers 408, 429 or 5xx, or cannot be reached, is retried by the activity's retry policy;
 * any other answer is final. Every attempt is recorded in the notifications table.
 */
import { activityInfo } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import { createHash, createHmac } from 'node:crypto';
import type { RoadConfig } from '../domain/config.js';
import {
  isRetryableStatus,
  MIN_SECRET_LENGTH,
  NOTIFY_EVENTS,
  notificationBody,
  type CriticalFailureNotice,
  type NotificationRequest,
  type NotifyEvent,
  type NotifyTarget,
} from '../domain/notify.js';
import { fingerprintOf } from '../domain/tasks.js';
import { claimAnalysisDelivery, claimDelivery, markUndelivered, recordDeliveryAttempt, type DeliveryRow } from '../db/notifications.js';
import type { Pool } from '../db/pool.js';

/** The failure type of an attempt that some receiver did not take yet (retried by the workflow's policy). */
export const NOTIFICATION_UNDELIVERED = 'NotificationUndelivered';
/** How long one receiver may take to answer. */
export const DELIVERY_TIMEOUT_MS = 10_000;
/** The default Temporal Web UI (the dev server's); ROAD_TEMPORAL_UI_URL sets another (compose: http://localhost:8080). */
export const DEFAULT_UI_URL = 'http://localhost:8233';

export interface NotifyDeps {
  pool: Pool;
  config: RoadConfig;
  /** Where secretEnv and ROAD_TEMPORAL_UI_URL are read (the worker's environment). */
  env?: Record<string, string | undefined>;
  now?: () => Date;
}

export interface NotifyResult {
  event: NotifyEvent;
  /** Receivers that want this event. */
  targets: number;
  delivered: string[];
  /** Refused for good (a 4xx, a missing secret): retrying cannot help. */
  failed: Array<{ target: string; error: string }>;
  /** Nothing new to tell them (an analysis whose critical failure modes they already heard of). */
  skipped: string[];
}

export interface UndeliveredInput {
  key: string;
  reason: string;
}

type Outcome =
  | { target: string; kind: 'delivered' }
  | { target: string; kind: 'skipped' }
  | { target: string; kind: 'failed'; error: string }
  | { target: string; kind: 'retry'; error: string };

/** The delivery id of one event for one receiver: a UUID (version 8, RFC 9562) derived from both, never random. */
export function deliveryIdOf(key: string, target: string): string {
  const hex = createHash('sha256').update(`${key}\n${target}`).digest('hex');
  const variant = ((parseInt(hex[16]!, 16) & 0x3) | 0x8).toString(16);
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-8${hex.slice(13, 16)}-${variant}${hex.slice(17, 20)}-${hex.slice(20, 32)}`;
}

/** `sha256=<hex>` of `<timestamp>.<body>`: what X-Road-Signature carries. */
export function signatureOf(secret: string, timestamp: number, body: string): string {
  return `sha256=${createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex')}`;
}

const failureModeFingerprint = (mode: CriticalFailureNotice): string => fingerprintOf('failure_mode', mode.phaseId, mode.stopReason);

export function createNotifyActivities({ pool, config, env = process.env, now = () => new Date() }: NotifyDeps) {
  const uiBaseUrl = env.ROAD_TEMPORAL_UI_URL || DEFAULT_UI_URL;

  function secretOf(target: NotifyTarget): string {
    if (target.secret) return target.secret;
    const value = env[target.secretEnv!];
    if (!value) throw new Error(`the environment variable ${target.secretEnv} (notify "${target.name}".secretEnv) is not set in the worker`);
    if (value.length < MIN_SECRET_LENGTH) throw new Error(`${target.secretEnv} must be at least ${MIN_SECRET_LENGTH} characters`);
    return value;
  }

  async function claim(request: NotificationRequest, target: NotifyTarget, namespace: string): Promise<DeliveryRow | undefined> {
    const deliveryId = deliveryIdOf(request.key, target.name);
    const row = { deliveryId, sourceKey: request.key, target: target.name, event: request.event };
    const context = { deliveryId, target: target.name, uiBaseUrl, namespace };
    if (!request.analysis) {
      return claimDelivery(pool, { ...row, taskId: request.approval?.taskId ?? null, fingerprints: [], body: JSON.stringify(notificationBody(request, context)) });
    }
    const modes = request.analysis.failureModes;
    return claimAnalysisDelivery(pool, { ...row, taskId: null, candidates: modes.map(failureModeFingerprint) }, request.analysis.window.from, (fresh) =>
      JSON.stringify(notificationBody(request, context, modes.filter((mode) => fresh.includes(failureModeFingerprint(mode))))),
    );
  }

  /** One attempt at one receiver; its outcome is recorded before it is returned. */
  async function attempt(row: DeliveryRow, target: NotifyTarget): Promise<Outcome> {
    if (row.status === 'delivered') return { target: target.name, kind: 'delivered' };
    if (row.status === 'failed') return { target: target.name, kind: 'failed', error: row.lastError ?? 'failed' };
    let secret: string;
    try {
      secret = secretOf(target);
    } catch (error) {
      const message = (error as Error).message;
      await recordDeliveryAttempt(pool, row.deliveryId, { status: 'failed', statusCode: null, error: message });
      return { target: target.name, kind: 'failed', error: message };
    }
    const timestamp = Math.floor(now().getTime() / 1000);
    let response: Response;
    try {
      response = await fetch(target.url, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'user-agent': 'ROAD-Notifications/1',
          'x-road-event': row.event,
          'x-road-delivery': row.deliveryId,
          'x-road-timestamp': String(timestamp),
          'x-road-signature': signatureOf(secret, timestamp, row.body),
        },
        body: row.body,
        // A redirect would resend a signed body somewhere nobody configured: it is an answer like any 3xx.
        redirect: 'manual',
        signal: AbortSignal.timeout(DELIVERY_TIMEOUT_MS),
      });
    } catch (error) {
      const message = `cannot reach the receiver: ${networkReason(error)}`;
      await recordDeliveryAttempt(pool, row.deliveryId, { status: 'pending', statusCode: null, error: message });
      return { target: target.name, kind: 'retry', error: message };
    }
    const answer = await response.text().then((text) => text.slice(0, 200).trim(), () => '');
    if (response.ok) {
      await recordDeliveryAttempt(pool, row.deliveryId, { status: 'delivered', statusCode: response.status, error: null });
      return { target: target.name, kind: 'delivered' };
    }
    const message = `HTTP ${response.status}${answer ? `: ${answer}` : ''}`;
    const retry = isRetryableStatus(response.status);
    await recordDeliveryAttempt(pool, row.deliveryId, { status: retry ? 'pending' : 'failed', statusCode: response.status, error: message });
    return retry ? { target: target.name, kind: 'retry', error: message } : { target: target.name, kind: 'failed', error: message };
  }

  return {
    /** The events some receiver wants: a gate asks once, and arms no reminder nobody would get. Reads config only. */
    async notificationEvents(): Promise<NotifyEvent[]> {
      return NOTIFY_EVENTS.filter((event) => config.notify.some((target) => target.events.includes(event)));
    },

    /**
     * Sends `request` to every receiver that wants its event. Throws a retryable `NotificationUndelivered` while some
     * receiver may still take it; receivers already served are not sent it again.
     */
    async notify(request: NotificationRequest): Promise<NotifyResult> {
      const targets = config.notify.filter((target) => target.events.includes(request.event));
      const result: NotifyResult = { event: request.event, targets: targets.length, delivered: [], failed: [], skipped: [] };
      if (!targets.length) return result;
      const namespace = currentNamespace() ?? config.temporal.namespace;
      const outcomes = await Promise.all(
        targets.map(async (target): Promise<Outcome> => {
          const row = await claim(request, target, namespace);
          return row ? attempt(row, target) : { target: target.name, kind: 'skipped' };
        }),
      );
      const pending: string[] = [];
      for (const outcome of outcomes) {
        if (outcome.kind === 'delivered') result.delivered.push(outcome.target);
        else if (outcome.kind === 'skipped') result.skipped.push(outcome.target);
        else if (outcome.kind === 'failed') result.failed.push({ target: outcome.target, error: outcome.error });
        else pending.push(`${outcome.target}: ${outcome.error}`);
      }
      if (pending.length) {
        throw ApplicationFailure.create({
          type: NOTIFICATION_UNDELIVERED,
          message: `${pending.length} of ${targets.length} receiver(s) did not take ${request.event} yet: ${pending.join('; ')}`,
        });
      }
      return result;
    },

    /** After the last attempt: what is still pending of `key` failed for good (the operator sees it and its reason). */
    async recordUndeliveredNotification(input: UndeliveredInput): Promise<number> {
      return markUndelivered(pool, input.key, input.reason);
    },
  };
}

function currentNamespace(): string | undefined {
  try {
    return activityInfo().workflowNamespace;
  } catch {
    return undefined; // called outside an activity (a test, a script)
  }
}

/** Why fetch could not reach a receiver, in a few words: `ECONNREFUSED 127.0.0.1:9`, `timed out after 10 s`. */
function networkReason(error: unknown): string {
  if (error instanceof Error && (error.name === 'TimeoutError' || error.name === 'AbortError')) return `no answer within ${DELIVERY_TIMEOUT_MS / 1000} s`;
  const cause = (error as { cause?: { code?: string; message?: string } } | null)?.cause;
  if (cause?.code) return cause.message?.includes(cause.code) ? cause.message : `${cause.code}${cause.message ? ` (${cause.message})` : ''}`;
  return cause?.message ?? (error instanceof Error ? error.message : String(error));
}
