/**
 * Webhook notifications of the approval gate and the improvement loop, on the real time-skipping server, a real
 * PostgreSQL and a real HTTP receiver (node:http on 127.0.0.1) that checks every signature with its own HMAC.
 * Retries run in real time while the test waits (time skipping is locked then); days pass only in env.sleep/result.
 *
 * Each test has a time-skipping server of its own: the Java test server locks time skipping when a child workflow
 * closes, until its parent takes the news — and an abandoned child whose parent closed first (every `approval.decided`
 * notification) holds that lock for good. The real server has no such lock; here, no test skips time after it.
 */
import { historyToJSON } from '@temporalio/common/lib/proto-utils.js';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createActivities } from '../../activities/index.js';
import { storeEvents } from '../../db/events.js';
import { listDeliveries, type DeliveryRow } from '../../db/notifications.js';
import type { ApprovalRequestInput } from '../../domain/approval.js';
import { configSchema } from '../../domain/config.js';
import { loopWorkflowId } from '../../domain/loop.js';
import { notificationWorkflowId, type NotificationBody } from '../../domain/notify.js';
import { approvalWorkflowId, approveSignal } from '../../workflows/definitions.js';
import type { approvalGate } from '../../workflows/approvalGate.js';
import type { improvementLoop } from '../../workflows/improvementLoop.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import { signatureIsValid, webhookReceiver, type ReceivedRequest, type Receiver } from '../helpers/receiver.js';
import { bundleWorkflows, timeSkippingEnv } from '../helpers/temporal.js';

const HOUR_MS = 3_600_000;
const DAY_MS = 24 * HOUR_MS;
const SECRET = 'a-shared-secret-of-32-characters';
const FIXTURES = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'histories');
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

let env: TestWorkflowEnvironment;
let db: TestDatabase;
let bundle: WorkflowBundleWithSourceMap;
let queueSeq = 0;
const receivers: Receiver[] = [];

beforeAll(async () => {
  [db, bundle] = await Promise.all([createTestDatabase(), bundleWorkflows()]);
});

beforeEach(async () => {
  env = await timeSkippingEnv();
});

afterEach(async () => {
  for (const receiver of receivers.splice(0)) await receiver.stop();
  await env?.teardown();
});

afterAll(async () => {
  await db?.drop();
});

async function receiver(options: Parameters<typeof webhookReceiver>[0] = {}): Promise<Receiver> {
  const r = await webhookReceiver(options);
  receivers.push(r);
  return r;
}

function request(taskId: string, overrides: Partial<ApprovalRequestInput> = {}): ApprovalRequestInput {
  return {
    taskId,
    title: `Fix ${taskId}`,
    candidateRef: 'abc1234def',
    impact: { summary: '1 file(s), +3 −1', files: ['src/a.py'], phases: ['auth-migration'] },
    verdict: 'PROMOTE',
    evidence: { verdicts: { gating: 'PROMOTE', seed: 'PROMOTE', statistical: 'INCONCLUSIVE', treatmentSuccessRate: 0.95 } },
    allowedReviewers: ['alice@example.com', 'road-bot'],
    author: 'road-bot',
    ...overrides,
  };
}

type Start = (input: ApprovalRequestInput) => ReturnType<typeof env.client.workflow.start<typeof approvalGate>>;

/** A worker whose road.config.json has `notify`, for the duration of `fn`. */
async function withNotifyingWorker<T>(notify: unknown[], fn: (start: Start) => Promise<T>): Promise<T> {
  const taskQueue = `notify-${++queueSeq}`;
  const worker = await Worker.create({
    connection: env.nativeConnection,
    taskQueue,
    workflowBundle: bundle,
    activities: createActivities({ pool: db.pool, config: configSchema.parse({ notify }) }),
  });
  const start: Start = (input) => env.client.workflow.start<typeof approvalGate>('approvalGate', { taskQueue, workflowId: approvalWorkflowId(input.taskId), args: [input] });
  return worker.runUntil(() => fn(start));
}

const bodyOf = (r: ReceivedRequest): NotificationBody => JSON.parse(r.body) as NotificationBody;

async function deliveriesOf(taskId: string): Promise<DeliveryRow[]> {
  return (await listDeliveries(db.pool, { limit: 1000 })).filter((d) => d.taskId === taskId);
}

/** Real-time wait for the notifications table (activities run in real time). */
async function untilDeliveries(taskId: string, predicate: (rows: DeliveryRow[]) => boolean, timeoutMs = 30_000): Promise<DeliveryRow[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const rows = await deliveriesOf(taskId);
    if (predicate(rows)) return rows;
    if (Date.now() > deadline) throw new Error(`notifications of ${taskId} never matched; they are ${JSON.stringify(rows.map((r) => [r.event, r.status, r.attempts, r.lastError]))}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe('approval gate notifications', () => {
  it('announces an opened request with the verdicts, the Temporal UI link and the exact commands, then the decision, each signed', async () => {
    const hook = await receiver();
    const { runId, result } = await withNotifyingWorker([{ name: 'reviewers', url: hook.url, secret: SECRET }], async (start) => {
      const handle = await start(request('NOTIFY-1'));
      await hook.waitFor(() => hook.of('approval.requested').length === 1);
      await handle.signal(approveSignal, { reviewer: 'alice@example.com', comment: 'numbers hold up' });
      const result = await handle.result();
      await hook.waitFor(() => hook.of('approval.decided').length === 1);
      return { runId: handle.firstExecutionRunId, result };
    });
    expect(result.status).toBe('APPROVED');
    expect(hook.requests.map((r) => r.headers['x-road-event'])).toEqual(['approval.requested', 'approval.decided']);
    for (const r of hook.requests) {
      expect(signatureIsValid(r, SECRET), r.body).toBe(true);
      expect(signatureIsValid(r, 'another-secret-of-some-length')).toBe(false);
      expect(r.method).toBe('POST');
      expect(r.path).toBe('/hooks/road');
      expect(r.headers['content-type']).toBe('application/json');
      expect(String(r.headers['x-road-delivery'])).toMatch(UUID);
      expect(bodyOf(r).delivery).toBe(r.headers['x-road-delivery']);
      // The timestamp is the time of sending, in seconds (the receiver refuses old ones).
      expect(Math.abs(Number(r.headers['x-road-timestamp']) - Date.now() / 1000)).toBeLessThan(120);
    }
    expect(hook.requests[0]!.headers['x-road-delivery']).not.toBe(hook.requests[1]!.headers['x-road-delivery']);

    const opened = bodyOf(hook.requests[0]!);
    expect(opened).toMatchObject({ schema: 'road.notification/v1', event: 'approval.requested' });
    expect(opened.links.temporal_ui).toBe(`http://localhost:8233/namespaces/default/workflows/road-approval-NOTIFY-1/${runId}/history`);
    expect(opened.approval).toMatchObject({ taskId: 'NOTIFY-1', status: 'PENDING', verdict: 'PROMOTE', reviewers: ['alice@example.com'], author: 'road-bot' });
    expect(opened.approval!.verdicts).toMatchObject({ seed: 'PROMOTE', statistical: 'INCONCLUSIVE' });
    const approve = 'road approve NOTIFY-1 --reviewer alice@example.com --comment "…"';
    const reject = 'road reject NOTIFY-1 --reviewer alice@example.com --reason "…"';
    expect(opened.approval!.commands).toEqual({ approve, reject });
    // Slack shows `text`: the task, the verdicts, the expiry, both commands and the link.
    for (const part of ['NOTIFY-1', 'Fix NOTIFY-1', 'PROMOTE', 'statistical INCONCLUSIVE', 'treatment success 95.0 %', result.expiresAt, approve, reject, opened.links.temporal_ui]) {
      expect(opened.text).toContain(part);
    }

    const decided = bodyOf(hook.requests[1]!);
    expect(decided.approval).toMatchObject({ status: 'APPROVED', decidedBy: 'alice@example.com', decisionNote: 'numbers hold up', canMerge: true });
    expect(decided.text).toContain('APPROVED by alice@example.com: "numbers hold up"');

    const rows = await deliveriesOf('NOTIFY-1');
    expect(rows.map((r) => [r.event, r.target, r.status, r.attempts, r.lastStatusCode]).sort()).toEqual([
      ['approval.decided', 'reviewers', 'delivered', 1, 200],
      ['approval.requested', 'reviewers', 'delivered', 1, 200],
    ]);
    // The body stored is the body sent, byte for byte.
    expect(rows.find((r) => r.event === 'approval.requested')!.body).toBe(hook.requests[0]!.body);
  });

  it('retries a receiver that answers 500 twice: three attempts, one delivery id, the same body, each signed afresh', async () => {
    const hook = await receiver({ answer: (_request, n) => (n <= 2 ? 500 : 200) });
    await withNotifyingWorker([{ url: hook.url, secret: SECRET, events: ['approval.requested'] }], async (start) => {
      await start(request('RETRY-1'));
      await hook.waitFor((requests) => requests.some((r) => r.status === 200));
      await untilDeliveries('RETRY-1', (rows) => rows[0]?.status === 'delivered');
    });
    expect(hook.requests.map((r) => r.status)).toEqual([500, 500, 200]);
    expect(new Set(hook.requests.map((r) => r.headers['x-road-delivery'])).size).toBe(1);
    expect(new Set(hook.requests.map((r) => r.body)).size).toBe(1);
    for (const r of hook.requests) expect(signatureIsValid(r, SECRET)).toBe(true);
    const [row] = await deliveriesOf('RETRY-1');
    // An unnamed receiver is named after its host (never its URL, which may be a credential).
    expect(row).toMatchObject({ target: `127.0.0.1:${hook.port}`, status: 'delivered', attempts: 3, lastStatusCode: 200, lastError: null });
    expect(row!.deliveryId).toBe(hook.requests[0]!.headers['x-road-delivery']);
  });

  it('delivers to a receiver that was down (connection refused) once it is up again', async () => {
    const hook = await receiver({ down: true });
    await withNotifyingWorker([{ name: 'late', url: hook.url, secret: SECRET, events: ['approval.requested'] }], async (start) => {
      await start(request('DOWN-1'));
      const refused = await untilDeliveries('DOWN-1', (rows) => rows[0]?.attempts === 2);
      expect(refused[0]).toMatchObject({ status: 'pending', lastStatusCode: null });
      expect(refused[0]!.lastError).toMatch(/ECONNREFUSED/);
      await hook.start();
      await untilDeliveries('DOWN-1', (rows) => rows[0]?.status === 'delivered');
    });
    expect(hook.requests).toHaveLength(1);
    expect(signatureIsValid(hook.requests[0]!, SECRET)).toBe(true);
    const [row] = await deliveriesOf('DOWN-1');
    expect(row).toMatchObject({ status: 'delivered', attempts: 3 });
  });

  it('decides and expires as usual when the receiver is down for good; each delivery ends as failed after 12 attempts', async () => {
    const hook = await receiver({ down: true });
    const { expired, approved } = await withNotifyingWorker([{ name: 'gone', url: hook.url, secret: SECRET }], async (start) => {
      // 36 hours: the request's and the reminder's deliveries give up (about 47 minutes of backoff each) while the
      // gate still waits; the decision's starts as it closes.
      const expired = await (await start(request('GONE-1', { timeout: '36h' }))).result();
      const second = await start(request('GONE-2'));
      await second.signal(approveSignal, { reviewer: 'alice@example.com' });
      return { expired, approved: await second.result() };
    });
    expect(expired.status).toBe('EXPIRED');
    expect(Date.parse(expired.expiresAt) - Date.parse(expired.requestedAt)).toBe(36 * HOUR_MS);
    expect(Date.parse(expired.decidedAt!) - Date.parse(expired.requestedAt)).toBeGreaterThanOrEqual(36 * HOUR_MS);
    expect(Date.parse(expired.decidedAt!) - Date.parse(expired.requestedAt)).toBeLessThan(36 * HOUR_MS + 60_000);
    expect(approved).toMatchObject({ status: 'APPROVED', decidedBy: 'alice@example.com', canMerge: true });

    const rows = await deliveriesOf('GONE-1');
    const byEvent = Object.fromEntries(rows.map((r) => [r.event, r]));
    for (const event of ['approval.requested', 'approval.expiring']) {
      expect(byEvent[event], event).toMatchObject({ status: 'failed', attempts: 12, lastStatusCode: null });
      expect(byEvent[event]!.lastError).toMatch(/ECONNREFUSED/);
    }
    // Started as the gate closed: still being retried, which the gate no longer waits for.
    expect(byEvent['approval.decided']).toMatchObject({ status: 'pending' });
    expect(hook.requests).toHaveLength(0);
  });

  it('does not retry a 4xx: one attempt, failed with the answer, and the gate is untouched', async () => {
    const hook = await receiver({ answer: () => 403 });
    const result = await withNotifyingWorker([{ name: 'strict', url: hook.url, secret: SECRET, events: ['approval.requested'] }], async (start) => {
      const handle = await start(request('REFUSED-1'));
      await untilDeliveries('REFUSED-1', (rows) => rows[0]?.status === 'failed');
      await handle.signal(approveSignal, { reviewer: 'alice@example.com' });
      return handle.result();
    });
    expect(result.status).toBe('APPROVED');
    expect(hook.requests).toHaveLength(1);
    const [row] = await deliveriesOf('REFUSED-1');
    expect(row).toMatchObject({ status: 'failed', attempts: 1, lastStatusCode: 403, lastError: 'HTTP 403: refused with 403' });
  });

  it('reminds 24 hours before a 7-day gate expires and not a minute sooner; only to receivers that want it', async () => {
    const all = await receiver();
    const decisionsOnly = await receiver();
    const result = await withNotifyingWorker(
      [
        { name: 'all', url: all.url, secret: SECRET },
        { name: 'decisions', url: decisionsOnly.url, secretEnv: 'ROAD_TEST_WEBHOOK_SECRET', events: ['approval.decided'] },
      ],
      async (start) => {
        process.env.ROAD_TEST_WEBHOOK_SECRET = 'the-secret-from-the-environment';
        const handle = await start(request('REMIND-1'));
        await all.waitFor(() => all.of('approval.requested').length === 1);
        await env.sleep(6 * DAY_MS - 60_000);
        await new Promise((resolve) => setTimeout(resolve, 500)); // a reminder sent too early would arrive meanwhile
        expect(all.of('approval.expiring')).toHaveLength(0);
        await env.sleep(2 * 60_000);
        await all.waitFor(() => all.of('approval.expiring').length === 1);
        const result = await handle.result();
        await all.waitFor(() => all.of('approval.decided').length === 1);
        await decisionsOnly.waitFor((requests) => requests.length === 1);
        return result;
      },
    );
    expect(result.status).toBe('EXPIRED');
    const expiring = bodyOf(all.of('approval.expiring')[0]!);
    expect(expiring.approval).toMatchObject({ taskId: 'REMIND-1', status: 'PENDING', expiresAt: result.expiresAt });
    expect(expiring.text).toContain(`expires in 1 day, at ${result.expiresAt}`);
    expect(expiring.text).toContain('road approve REMIND-1 --reviewer alice@example.com');
    const expired = bodyOf(all.of('approval.decided')[0]!);
    expect(expired.approval!.status).toBe('EXPIRED');
    expect(expired.text).toContain('EXPIRED without a decision');
    expect(decisionsOnly.requests.map((r) => r.headers['x-road-event'])).toEqual(['approval.decided']);
    expect(signatureIsValid(decisionsOnly.requests[0]!, 'the-secret-from-the-environment')).toBe(true);
  });

  it('records a replayable history of a notifying gate (set ROAD_RECORD_HISTORIES=1 to refresh test/fixtures/histories)', async () => {
    const hook = await receiver();
    const history = await withNotifyingWorker([{ name: 'all', url: hook.url, secret: SECRET }], async (start) => {
      const handle = await start(request('HISTORY-N', { timeout: '2d' }));
      await env.sleep(25 * HOUR_MS); // past the reminder (halfway through a 2-day gate)
      await hook.waitFor(() => hook.of('approval.expiring').length === 1);
      await handle.signal(approveSignal, { reviewer: 'alice@example.com', comment: 'fine' });
      await handle.result();
      await hook.waitFor(() => hook.of('approval.decided').length === 1);
      return handle.fetchHistory();
    });
    const markers = history.events!.filter((e) => e.markerRecordedEventAttributes).map((e) => e.markerRecordedEventAttributes!.markerName);
    // Two patches (validated decisions, webhook notifications) and the local activity that asks which events have receivers.
    expect(markers.sort()).toEqual(['core_local_activity', 'core_patch', 'core_patch']);
    const children = history.events!.filter((e) => e.startChildWorkflowExecutionInitiatedEventAttributes);
    expect(children.map((e) => e.startChildWorkflowExecutionInitiatedEventAttributes!.workflowType!.name)).toEqual(['deliverNotification', 'deliverNotification', 'deliverNotification']);
    const timers = history.events!.filter((e) => e.timerStartedEventAttributes).map((e) => Number(e.timerStartedEventAttributes!.startToFireTimeout!.seconds));
    expect(timers[0]).toBe(24 * 3600); // 2 days: reminded halfway
    await Worker.runReplayHistory({ workflowBundle: bundle }, history, 'approval-gate-notified');
    if (process.env.ROAD_RECORD_HISTORIES === '1') {
      mkdirSync(FIXTURES, { recursive: true });
      writeFileSync(path.join(FIXTURES, 'approval-gate-notified.json'), historyToJSON(history));
    }
  });
});

describe('improvement loop notifications', () => {
  it('announces the critical failure modes of its analysis (≥ 5 occurrences), and a second loop over the same window announces nothing new', async () => {
    const now = Date.now();
    const failures = [
      { reason: 'db_timeout', runs: 6 },
      { reason: 'oom_killed', runs: 5 },
      { reason: 'lint_flake', runs: 4 }, // high, not critical
    ];
    const events = failures.flatMap((f) =>
      Array.from({ length: f.runs }, (_, i) => ({
        run_id: `${f.reason}-${i}`,
        phase_id: 'deploy',
        outcome: 'FAILED',
        stop_reason: f.reason,
        occurred_at: new Date(now - (i + 1) * 60_000).toISOString(),
      })),
    );
    expect((await storeEvents(db.pool, events)).every((r) => r.status === 'accepted')).toBe(true);

    const hook = await receiver();
    const config = configSchema.parse({ notify: [{ name: 'oncall', url: hook.url, secret: SECRET, events: ['analysis.critical'] }] });
    const reportsDir = mkdtempSync(path.join(os.tmpdir(), 'road-notify-loop-'));
    const activities = {
      ...createActivities({ pool: db.pool, config, reportsDir }),
      // No tasks: this test is about the analysis and its notification, not about working tasks.
      generateTasks: async () => ({ saved: [], skipped: [] }),
    };
    const taskQueue = `notify-loop-${++queueSeq}`;
    const worker = await Worker.create({ connection: env.nativeConnection, taskQueue, workflowBundle: bundle, activities });
    const second = await worker.runUntil(async () => {
      const loop = (loopId: string) =>
        env.client.workflow.start<typeof improvementLoop>('improvementLoop', { taskQueue, workflowId: loopWorkflowId(loopId), args: [{ window: '7d', topK: 3 }] });
      const first = await loop('NOTIFY-LOOP-1');
      await first.result();
      await hook.waitFor((requests) => requests.length === 1);
      await untilLoopDeliveries((rows) => rows.length === 1 && rows[0]!.status === 'delivered');
      // The same window again: the second loop's notification finds nothing new for this receiver.
      const again = await loop('NOTIFY-LOOP-2');
      await again.result();
      const childId = notificationWorkflowId(again.firstExecutionRunId, 'analysis.critical');
      return env.client.workflow.getHandle(childId).result() as Promise<{ delivered: string[]; failed: string[] }>;
    });
    expect(second).toEqual({ delivered: [], failed: [] });
    expect(hook.requests).toHaveLength(1);
    expect(await untilLoopDeliveries((rows) => rows.length === 1)).toHaveLength(1);
    const body = bodyOf(hook.requests[0]!);
    expect(signatureIsValid(hook.requests[0]!, SECRET)).toBe(true);
    expect(body.event).toBe('analysis.critical');
    expect(body.analysis!.failure_modes.map((m) => [m.phaseId, m.stopReason, m.count]).sort()).toEqual([
      ['deploy', 'db_timeout', 6],
      ['deploy', 'oom_killed', 5],
    ]);
    expect(body.text).toContain('2 new critical failure mode(s)');
    expect(body.text).toContain('deploy / db_timeout: 6 failures in 6 run(s)');
    expect(body.text).not.toContain('lint_flake');
    expect(body.links.temporal_ui).toContain('/workflows/road-loop-NOTIFY-LOOP-1/');
  });
});

async function untilLoopDeliveries(predicate: (rows: DeliveryRow[]) => boolean): Promise<DeliveryRow[]> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const rows = (await listDeliveries(db.pool, { limit: 1000 })).filter((d) => d.event === 'analysis.critical');
    if (predicate(rows)) return rows;
    if (Date.now() > deadline) throw new Error(`analysis deliveries never matched: ${JSON.stringify(rows)}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
