/**
 * The notify activity against a real PostgreSQL and real HTTP receivers, called directly (the workflows' side is
 * test/workflows/notifications.test.ts): what counts as a "new" critical failure mode, answers that are final, and
 * what `road notifications` shows an operator.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createNotifyActivities, deliveryIdOf, NOTIFICATION_UNDELIVERED } from '../../activities/notify.js';
import { findDelivery, listDeliveries } from '../../db/notifications.js';
import { configSchema } from '../../domain/config.js';
import type { CriticalFailureNotice, NotificationRequest } from '../../domain/notify.js';
import { road } from '../helpers/cli.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import { approvalRequested, signatureIsValid, webhookReceiver, type Receiver } from '../helpers/receiver.js';

const SECRET = 'integration-secret-0123456789';
let db: TestDatabase;
const receivers: Receiver[] = [];

beforeAll(async () => {
  db = await createTestDatabase();
});

afterAll(async () => {
  for (const r of receivers) await r.stop();
  await db?.drop();
});

async function receiver(options: Parameters<typeof webhookReceiver>[0] = {}): Promise<Receiver> {
  const r = await webhookReceiver(options);
  receivers.push(r);
  return r;
}

const mode = (stopReason: string, count: number): CriticalFailureNotice => ({
  phaseId: 'deploy',
  stopReason,
  count,
  previousCount: 0,
  runsAffected: count,
  lastSeen: '2026-11-28T09:00:00.000Z',
  sampleRuns: [],
});

function analysis(loop: string, from: string, failureModes: CriticalFailureNotice[]): NotificationRequest {
  return {
    event: 'analysis.critical',
    key: `road-loop-${loop}/run-${loop}/analysis.critical`,
    occurredAt: '2026-11-28T10:00:00.000Z',
    workflowId: `road-loop-${loop}`,
    runId: `run-${loop}`,
    analysis: { window: { from, to: '2026-12-31T00:00:00.000Z' }, failureModes },
  };
}

const announced = (r: Receiver) => r.requests.map((q) => (JSON.parse(q.body) as { analysis: { failure_modes: Array<{ stopReason: string }> } }).analysis.failure_modes.map((m) => m.stopReason));

describe('analysis.critical: only what a receiver has not heard of in the window', () => {
  it('announces each failure mode once per window, per receiver; a later window announces it again', async () => {
    const ops = await receiver();
    const chat = await receiver();
    const config = configSchema.parse({
      notify: [
        { name: 'ops', url: ops.url, secret: SECRET, events: ['analysis.critical'] },
        { name: 'chat', url: chat.url, secret: SECRET, events: ['analysis.critical'] },
      ],
    });
    const { notify } = createNotifyActivities({ pool: db.pool, config });
    const windowFrom = new Date(Date.now() - 7 * 86_400_000).toISOString();

    const first = await notify(analysis('A', windowFrom, [mode('db_timeout', 6), mode('oom', 5)]));
    expect(first).toMatchObject({ targets: 2, delivered: ['ops', 'chat'], skipped: [] });
    // A retry of the same activity resends nothing: both receivers have it.
    await notify(analysis('A', windowFrom, [mode('db_timeout', 6), mode('oom', 5)]));
    // The next loop, over the same window: one mode is new.
    const second = await notify(analysis('B', windowFrom, [mode('db_timeout', 7), mode('oom', 5), mode('disk_full', 5)]));
    expect(second.delivered).toEqual(['ops', 'chat']);
    // Nothing new at all: nothing is sent or stored.
    const third = await notify(analysis('C', windowFrom, [mode('oom', 6)]));
    expect(third).toMatchObject({ delivered: [], skipped: ['ops', 'chat'] });
    expect(await findDelivery(db.pool, deliveryIdOf('road-loop-C/run-C/analysis.critical', 'ops'))).toBeUndefined();
    // A window that starts after those deliveries: still critical there, so announced again.
    const later = await notify(analysis('D', new Date(Date.now() + 1000).toISOString(), [mode('oom', 6)]));
    expect(later.delivered).toEqual(['ops', 'chat']);

    for (const r of [ops, chat]) {
      expect(announced(r)).toEqual([['db_timeout', 'oom'], ['disk_full'], ['oom']]);
      for (const request of r.requests) expect(signatureIsValid(request, SECRET)).toBe(true);
    }
  });
});

describe('final answers', () => {
  it('fails a receiver whose secret variable is missing, without sending, and still delivers to the others', async () => {
    const good = await receiver();
    const unsent = await receiver();
    const config = configSchema.parse({
      notify: [
        { name: 'good', url: good.url, secret: SECRET },
        { name: 'no-secret', url: unsent.url, secretEnv: 'ROAD_TEST_SECRET_NOBODY_SET' },
      ],
    });
    const { notify } = createNotifyActivities({ pool: db.pool, config, env: {} });
    const result = await notify(approvalRequested('SECRET-1'));
    expect(result.delivered).toEqual(['good']);
    expect(result.failed).toEqual([{ target: 'no-secret', error: 'the environment variable ROAD_TEST_SECRET_NOBODY_SET (notify "no-secret".secretEnv) is not set in the worker' }]);
    expect(unsent.requests).toHaveLength(0);
  });

  it('does not follow a redirect (a signed body goes only where it was configured to) and does not retry it', async () => {
    const moved = await receiver({ answer: () => 308 });
    const config = configSchema.parse({ notify: [{ name: 'moved', url: moved.url, secret: SECRET }] });
    const { notify } = createNotifyActivities({ pool: db.pool, config });
    const result = await notify(approvalRequested('MOVED-1'));
    expect(result.failed).toEqual([{ target: 'moved', error: 'HTTP 308: refused with 308' }]);
    expect(moved.requests).toHaveLength(1);
  });

  it('throws a retryable NotificationUndelivered while a receiver answers 503, and sends nothing twice to one that took it', async () => {
    const busy = await receiver({ answer: () => 503 });
    const fine = await receiver();
    const config = configSchema.parse({ notify: [{ name: 'busy', url: busy.url, secret: SECRET }, { name: 'fine', url: fine.url, secret: SECRET }] });
    const { notify } = createNotifyActivities({ pool: db.pool, config });
    for (let attempt = 1; attempt <= 2; attempt++) {
      const error = await notify(approvalRequested('BUSY-1')).then(() => undefined, (e: unknown) => e as { type?: string; nonRetryable?: boolean; message: string });
      expect(error).toMatchObject({ type: NOTIFICATION_UNDELIVERED, nonRetryable: false });
      expect(error!.message).toBe('1 of 2 receiver(s) did not take approval.requested yet: busy: HTTP 503: refused with 503');
    }
    expect(busy.requests).toHaveLength(2);
    expect(fine.requests).toHaveLength(1);
  });
});

describe('road notifications', () => {
  it('lists deliveries with their status, attempts and last error, and refuses a bad --status', async () => {
    const env = { DATABASE_URL: db.url };
    const failed = await road(['notifications', '--status', 'failed', '--json'], env);
    expect(failed.code, failed.stderr).toBe(0);
    const rows = JSON.parse(failed.stdout) as Array<{ target: string; status: string; attempts: number; lastError: string; body: { event: string } }>;
    const expected = (await listDeliveries(db.pool, { status: 'failed' })).map((r) => r.deliveryId);
    expect(rows.map((r) => (r as unknown as { deliveryId: string }).deliveryId)).toEqual(expected);
    expect(rows.find((r) => r.target === 'moved')).toMatchObject({ status: 'failed', attempts: 1, lastError: 'HTTP 308: refused with 308', body: { event: 'approval.requested' } });

    const table = await road(['notifications'], env);
    expect(table.code, table.stderr).toBe(0);
    expect(table.stdout.split('\n')[0]).toMatch(/^DELIVERY\s+EVENT\s+TASK\s+RECEIVER\s+STATUS\s+ATTEMPTS\s+UPDATED\s+LAST ERROR/);
    expect(table.stdout).toMatch(/BUSY-1\s+busy\s+pending\s+2\s/);

    const bad = await road(['notifications', '--status', 'lost'], env);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--status must be one of pending, delivered, failed (got lost)');
  }, 60_000);
});
