/**
 * GET /metrics on `road serve` and on `road worker`, read by a real Prometheus text parser, against a real PostgreSQL
 * and the Temporal dev server: the values move when events arrive, the state gauges agree with what the test put in
 * the database, the worker adds the Temporal SDK's own metrics, and a scrape answers even when the database is gone.
 */
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RoadMetrics } from '../../client/metrics.js';
import { buildServer, parseApiTokens } from '../../client/server.js';
import { saveApprovalOutcome, saveApprovalRequest } from '../../db/approvals.js';
import { claimDelivery, recordDeliveryAttempt } from '../../db/notifications.js';
import { createPool, type Pool } from '../../db/pool.js';
import { foldPendingEvents } from '../../db/rollups.js';
import { saveTasks, updateTaskStatus } from '../../db/tasks.js';
import { approvalRequestSchema, initialState } from '../../domain/approval.js';
import { fingerprintOf, type FollowupTask } from '../../domain/tasks.js';
import { freePort, PROJECT_ROOT } from '../../scripts/provision.js';
import { RoadKind, RoadStatus } from '../../workflows/definitions.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import { parseExposition, type Exposition } from '../helpers/prometheus.js';
import { devServerEnv } from '../helpers/temporal.js';

const TOKEN = 'metrics-test-token-0123456789';
const DAY_S = 86_400;
let db: TestDatabase;
let env: TestWorkflowEnvironment;
let metricsPool: Pool;
let app: FastifyInstance;
let base: string;

beforeAll(async () => {
  [db, env] = await Promise.all([createTestDatabase(), devServerEnv()]);
  metricsPool = createPool(db.url, 1);
  const metrics = new RoadMetrics({ pool: metricsPool, temporal: async () => env.client, api: true, loopsCacheMs: 0 });
  app = buildServer({ pool: db.pool, tokens: parseApiTokens(TOKEN), metrics });
  base = await app.listen({ host: '127.0.0.1', port: 0 });
});

afterAll(async () => {
  await app?.close();
  await metricsPool?.end();
  await env?.teardown();
  await db?.drop();
});

async function scrape(url = `${base}/metrics`, headers: Record<string, string> = {}): Promise<Exposition> {
  const response = await fetch(url, { headers });
  expect(response.status).toBe(200);
  expect(response.headers.get('content-type')).toBe('text/plain; version=0.0.4; charset=utf-8');
  return parseExposition(await response.text());
}

let serial = 0;
const event = (overrides: Record<string, unknown> = {}) => ({
  event_id: `metrics-${++serial}`,
  run_id: 'run-m',
  phase_id: 'deploy',
  outcome: 'FAILED',
  stop_reason: 'db_timeout',
  occurred_at: new Date(Date.now() - 60_000).toISOString(),
  ...overrides,
});

async function post(body: string, contentType = 'application/json', token = TOKEN): Promise<number> {
  const response = await fetch(`${base}/v1/events`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': contentType }, body });
  await response.arrayBuffer();
  return response.status;
}

const VERDICTS = ['accepted', 'duplicate', 'conflict', 'invalid'];

describe('road serve: GET /metrics', () => {
  it('counts events by verdict and requests by route, and shows the rollup backlog until it is folded', async () => {
    const before = await scrape();
    for (const verdict of VERDICTS) expect(before.value('road_events_total', { verdict })).toBe(0);
    expect(before.family('road_events_total').type).toBe('COUNTER');
    expect(before.value('road_rollup_pending_events')).toBe(0);

    // Sent: a, a again (duplicate), a changed (conflict), an invalid one, b → 2 accepted; then 3 more as NDJSON.
    const a = event();
    const b = event();
    expect(await post(JSON.stringify([a, a, { ...a, tokens_used: 5 }, { ...b, phase_id: '' }, b]))).toBe(200);
    expect(await post([event(), event(), event()].map((e) => JSON.stringify(e)).join('\n'), 'application/x-ndjson')).toBe(200);
    expect(await post('[]', 'application/json', 'not-the-token-0123456789')).toBe(401);
    expect((await fetch(`${base}/v2/nothing`)).status).toBe(404);

    const after = await scrape();
    expect(Object.fromEntries(VERDICTS.map((verdict) => [verdict, after.value('road_events_total', { verdict })]))).toEqual({ accepted: 5, duplicate: 1, conflict: 1, invalid: 1 });
    expect(after.family('road_http_request_duration_seconds').type).toBe('HISTOGRAM');
    const posts = after.histogram('road_http_request_duration_seconds', { route: '/v1/events', method: 'POST', status_class: '2xx' })!;
    expect(posts.count).toBe(2);
    expect(posts.buckets['+Inf']).toBe(2);
    expect(posts.sum).toBeGreaterThan(0);
    expect(after.histogram('road_http_request_duration_seconds', { route: '/v1/events', method: 'POST', status_class: '4xx' })!.count).toBe(1);
    expect(after.histogram('road_http_request_duration_seconds', { route: 'unmatched', method: 'GET', status_class: '4xx' })!.count).toBe(1);
    // The scrape before this one was observed too.
    expect(after.histogram('road_http_request_duration_seconds', { route: '/metrics', method: 'GET', status_class: '2xx' })!.count).toBeGreaterThanOrEqual(1);

    // Nobody folds here (no worker): the 5 accepted events wait, the oldest for less than the test has run.
    expect(after.value('road_rollup_pending_events')).toBe(5);
    const age = after.value('road_rollup_oldest_pending_age_seconds');
    expect(age).toBeGreaterThanOrEqual(0);
    expect(age).toBeLessThan(120);
    expect(await foldPendingEvents(db.pool)).toBe(5);
    const folded = await scrape();
    expect(folded.value('road_rollup_pending_events')).toBe(0);
    expect(folded.value('road_rollup_oldest_pending_age_seconds')).toBe(0);
    // Node's own process metrics come along.
    expect(folded.has('process_cpu_seconds_total') && folded.has('nodejs_eventloop_lag_seconds')).toBe(true);
  });

  it('shows approvals waiting by age, tasks by status and webhook deliveries by status, as the database holds them', async () => {
    const now = Date.now();
    const ages = [{ id: 'WAIT-0', days: 2 / 24 }, { id: 'WAIT-2', days: 2 }, { id: 'WAIT-5', days: 5 }, { id: 'WAIT-8', days: 8 }, { id: 'DONE-1', days: 4 }];
    for (const { id, days } of ages) {
      const request = approvalRequestSchema.parse({ taskId: id, title: id, candidateRef: 'abc', impact: {}, allowedReviewers: ['alice@example.com'], author: 'bot', timeout: '30d' });
      const state = initialState(`${id}/run`, request, now - days * DAY_S * 1000);
      await saveApprovalRequest(db.pool, `road-approval-${id}`, state, request);
    }
    await saveApprovalOutcome(db.pool, { requestId: 'DONE-1/run', status: 'APPROVED', decidedAt: new Date().toISOString(), decidedBy: 'alice@example.com', decisionNote: null, canMerge: false });

    const tasks = ['a', 'b', 'c'].map((key, i): FollowupTask => ({
      id: `FAILURE-${i + 1}`,
      fingerprint: fingerprintOf('failure_mode', 'deploy', `metrics-${key}`),
      type: 'failure_mode',
      rank: i + 1,
      severity: 'high',
      status: 'open',
      title: `Stop ${key}`,
      description: key,
      phase_ids: ['deploy'],
      evidence: {},
      allowed_files: ['src/a.ts'],
      scope: { source: 'evidence', note: '' },
      test_plan: [],
      preflight: [],
      max_attempts: 2,
      approval_gate: true,
    }));
    await saveTasks(db.pool, tasks);
    await updateTaskStatus(db.pool, 'FAILURE-2', 'in_progress');
    await updateTaskStatus(db.pool, 'FAILURE-3', 'done');

    const row = (n: number, event: 'approval.requested' | 'approval.decided') => ({
      deliveryId: `00000000-0000-8000-8000-00000000000${n}`,
      sourceKey: `road-approval-WAIT-0/run/${event}`,
      target: `hook-${n}`,
      event,
      taskId: 'WAIT-0',
      fingerprints: [],
      body: '{}',
    });
    await claimDelivery(db.pool, row(1, 'approval.requested'));
    await recordDeliveryAttempt(db.pool, row(1, 'approval.requested').deliveryId, { status: 'failed', statusCode: 410, error: 'HTTP 410' });
    await claimDelivery(db.pool, row(2, 'approval.decided'));
    await recordDeliveryAttempt(db.pool, row(2, 'approval.decided').deliveryId, { status: 'delivered', statusCode: 200, error: null });
    await claimDelivery(db.pool, row(3, 'approval.decided'));

    const m = await scrape();
    expect(Object.fromEntries(['under_1d', '1d_to_3d', '3d_to_7d', 'over_7d'].map((age) => [age, m.value('road_approvals_waiting', { age })]))).toEqual({
      under_1d: 1,
      '1d_to_3d': 1,
      '3d_to_7d': 1,
      over_7d: 1,
    });
    const oldest = m.value('road_approvals_oldest_waiting_seconds');
    expect(oldest).toBeGreaterThan(8 * DAY_S - 60);
    expect(oldest).toBeLessThan(8 * DAY_S + 120);
    expect(m.value('road_followup_tasks', { status: 'open' })).toBe(1);
    expect(m.value('road_followup_tasks', { status: 'in_progress' })).toBe(1);
    expect(m.value('road_followup_tasks', { status: 'done' })).toBe(1);
    expect(m.value('road_followup_tasks', { status: 'abandoned' })).toBe(0);
    expect(m.value('road_notifications', { event: 'approval.requested', status: 'failed' })).toBe(1);
    expect(m.value('road_notifications', { event: 'approval.decided', status: 'delivered' })).toBe(1);
    expect(m.value('road_notifications', { event: 'approval.decided', status: 'pending' })).toBe(1);
    expect(m.value('road_notifications', { event: 'analysis.critical', status: 'failed' })).toBe(0);
  });

  it('counts running improvement loops by stage from Temporal visibility', async () => {
    // Loops nobody works on (no worker polls their queue): they stay Running with the stage they were started with.
    const started = await Promise.all(
      [['LOOP-M1', 'analysis'], ['LOOP-M2', 'tasks'], ['LOOP-M3', 'tasks']].map(([id, stage]) =>
        env.client.workflow.start('improvementLoop', {
          taskQueue: 'nobody-polls-this',
          workflowId: `road-loop-${id}`,
          typedSearchAttributes: [
            { key: RoadKind, value: 'loop' },
            { key: RoadStatus, value: stage! },
          ],
        }),
      ),
    );
    try {
      const deadline = Date.now() + 20_000;
      while ((await env.client.workflow.count('RoadKind = "loop" AND ExecutionStatus = "Running"')).count < 3) {
        if (Date.now() > deadline) throw new Error('visibility never showed the loops');
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      const m = await scrape();
      expect(Object.fromEntries(['demotion', 'analysis', 'tasks', 'report'].map((stage) => [stage, m.value('road_loops_running', { stage })]))).toEqual({ demotion: 0, analysis: 1, tasks: 2, report: 0 });
    } finally {
      await Promise.all(started.map((handle) => handle.terminate('test done')));
    }
  });

  it('needs the bearer token when ROAD_METRICS_TOKEN is set; /v1 keeps its own tokens', async () => {
    const metrics = new RoadMetrics({ pool: metricsPool, api: true });
    const guarded = buildServer({ pool: db.pool, tokens: parseApiTokens(TOKEN), metrics, metricsToken: 'scrape-token-0123456789' });
    const url = await guarded.listen({ host: '127.0.0.1', port: 0 });
    try {
      expect((await fetch(`${url}/metrics`)).status).toBe(401);
      expect((await fetch(`${url}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } })).status).toBe(401);
      await scrape(`${url}/metrics`, { authorization: 'Bearer scrape-token-0123456789' });
      expect((await fetch(`${url}/v1/approvals`, { headers: { authorization: 'Bearer scrape-token-0123456789' } })).status).toBe(401);
    } finally {
      await guarded.close();
    }
  });

  it('answers within its timeout when the database is unreachable: the state gauges are NaN and the error is counted', async () => {
    const gone = createPool(`postgres://road:road@127.0.0.1:${await freePort()}/road`, 1);
    try {
      const metrics = new RoadMetrics({ pool: gone, collectTimeoutMs: 500 });
      const started = Date.now();
      const m = parseExposition(await metrics.text());
      expect(Date.now() - started).toBeLessThan(10_000); // bounded by its 500 ms timeout, not a connect's minutes
      expect(m.value('road_rollup_pending_events')).toBeNaN();
      expect(m.value('road_approvals_waiting', { age: 'over_7d' })).toBeNaN();
      expect(m.value('road_metrics_collect_errors_total', { source: 'database' })).toBe(1);
      expect(m.has('road_events_total')).toBe(false); // the API's own metrics are the API's
    } finally {
      await gone.end();
    }
  });
});

describe('the processes, as started from the command line', () => {
  const children: ChildProcess[] = [];
  afterAll(async () => {
    for (const child of children) {
      if (child.exitCode !== null) continue;
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await exited;
    }
  });

  function startRoad(args: string[], settings: Record<string, string>): ChildProcess {
    const child = spawn(process.execPath, [path.join(PROJECT_ROOT, 'bin', 'road.js'), ...args], {
      cwd: PROJECT_ROOT,
      env: { ...process.env, ROAD_HOME: path.join(PROJECT_ROOT, '.road-metrics-test'), ROAD_CONFIG: '', ...settings },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    children.push(child);
    return child;
  }

  async function until(url: string, child: ChildProcess, timeoutMs = 60_000): Promise<Response> {
    let stderr = '';
    child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (child.exitCode !== null) throw new Error(`exited (${child.exitCode}): ${stderr}`);
      const response = await fetch(url).catch(() => undefined);
      if (response) return response;
      if (Date.now() > deadline) throw new Error(`${url} never answered: ${stderr}`);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }

  it('road serve: /metrics by default, 404 with ROAD_METRICS=off', async () => {
    const common = { DATABASE_URL: db.url, ROAD_API_TOKENS: TOKEN, TEMPORAL_ADDRESS: env.address };
    const on = await freePort();
    const off = await freePort();
    // One after the other: two processes migrating the same database at once would race for its migration lock.
    const served = await until(`http://127.0.0.1:${on}/metrics`, startRoad(['serve', '--port', String(on)], common));
    expect(served.status).toBe(200);
    const m = parseExposition(await served.text());
    expect(m.value('road_events_total', { verdict: 'accepted' })).toBe(0);
    expect(m.value('road_rollup_pending_events')).toBe(0);
    // Running loops are the worker's to report (the API connects to Temporal only to decide).
    expect(m.has('road_loops_running')).toBe(false);
    const refused = await until(`http://127.0.0.1:${off}/metrics`, startRoad(['serve', '--port', String(off)], { ...common, ROAD_METRICS: 'off' }));
    expect(refused.status).toBe(404);
  }, 90_000);

  it('road worker: ROAD_METRICS_PORT serves ROAD\'s metrics and the Temporal SDK\'s worker metrics in one scrape', async () => {
    const port = await freePort();
    const worker = startRoad(['worker'], { DATABASE_URL: db.url, TEMPORAL_ADDRESS: env.address, TEMPORAL_NAMESPACE: env.namespace ?? 'default', ROAD_TASK_QUEUE: 'metrics-worker', ROAD_METRICS_PORT: String(port), ROAD_METRICS_HOST: '127.0.0.1' });
    await until(`http://127.0.0.1:${port}/metrics`, worker, 120_000);
    // The SDK reports its pollers once they run: wait for the worker's task slots.
    let m: Exposition | undefined;
    const deadline = Date.now() + 60_000;
    while (!m?.has('temporal_worker_task_slots_available')) {
      if (Date.now() > deadline) throw new Error(`no SDK worker metrics; families: ${m?.families.map((f) => f.name).join(', ')}`);
      await new Promise((resolve) => setTimeout(resolve, 500));
      m = await scrape(`http://127.0.0.1:${port}/metrics`);
    }
    expect(m.find('temporal_worker_task_slots_available', { task_queue: 'metrics-worker', worker_type: 'WorkflowWorker' })).toHaveLength(1);
    expect(m.value('road_rollup_pending_events')).toBe(0);
    expect(m.has('road_loops_running')).toBe(true);
    expect(m.has('road_events_total')).toBe(false);
    expect((await fetch(`http://127.0.0.1:${port}/other`)).status).toBe(404);
  }, 180_000);
});
