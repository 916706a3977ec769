/**
 * A reviewer's day on the real dev server and a real PostgreSQL: `road pending` lists the request, `road approve`
 * from a stranger is refused and audited, an allowed reviewer's approval counts, a late one is refused, and the
 * Temporal UI's search attributes follow.
 */
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createActivities } from '../../activities/index.js';
import { auditTrail, latestApprovalForTask } from '../../db/approvals.js';
import type { ApprovalState } from '../../domain/approval.js';
import { startApprovalGate } from '../../client/approvals.js';
import { buildServer, parseApiTokens } from '../../client/server.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import { bundleWorkflows, devServerEnv } from '../helpers/temporal.js';
import { road } from '../helpers/cli.js';

const TASK_QUEUE = 'road-it';
let env: TestWorkflowEnvironment;
let db: TestDatabase;
let worker: Worker;
let running: Promise<void>;
let cliEnv: Record<string, string>;

beforeAll(async () => {
  const [e, d, bundle] = await Promise.all([devServerEnv(), createTestDatabase(), bundleWorkflows()]);
  env = e;
  db = d;
  worker = await Worker.create({ connection: env.nativeConnection, taskQueue: TASK_QUEUE, workflowBundle: bundle, activities: createActivities({ pool: db.pool }) });
  running = worker.run();
  cliEnv = { DATABASE_URL: db.url, TEMPORAL_ADDRESS: env.address, TEMPORAL_NAMESPACE: env.namespace ?? 'default', ROAD_TASK_QUEUE: TASK_QUEUE };
});

afterAll(async () => {
  worker?.shutdown();
  await running;
  await env?.teardown();
  await db?.drop();
});

async function startGate(taskId: string) {
  return startApprovalGate(env.client, TASK_QUEUE, {
    taskId,
    title: `Trim the schema dump of ${taskId}`,
    candidateRef: 'f00dfeed',
    impact: { summary: 'prompt only', files: ['src/prompts/auth.py'], phases: ['auth-migration'] },
    verdict: 'PROMOTE',
    allowedReviewers: ['alice@example.com', 'carol@example.com'],
    author: 'road-bot',
  });
}

async function eventually<T>(fn: () => Promise<T | undefined>, what: string, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await fn();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

describe('road approve / reject / pending on the dev server', () => {
  it('approves through the real CLI, refusing and auditing what does not count', async () => {
    const handle = await startGate('CLI-1');
    await eventually(async () => (await latestApprovalForTask(db.pool, 'CLI-1')) ?? undefined, 'the request to be stored');

    const pending = await road(['pending', '--json'], cliEnv);
    expect(pending.code).toBe(0);
    expect((JSON.parse(pending.stdout) as Array<{ taskId: string }>).map((r) => r.taskId)).toContain('CLI-1');
    const table = await road(['pending'], cliEnv);
    expect(table.stdout).toMatch(/TASK\s+TITLE/);
    expect(table.stdout).toMatch(/CLI-1\s+Trim the schema dump of CLI-1/);

    const stranger = await road(['approve', 'CLI-1', '--reviewer', 'mallory@example.com'], cliEnv);
    expect(stranger.code).toBe(2);
    expect(stranger.stderr).toMatch(/not counted: mallory@example.com is not an allowed reviewer/);

    const self = await road(['approve', 'CLI-1', '--reviewer', 'road-bot'], cliEnv);
    expect(self.code).toBe(2);
    expect(self.stderr).toMatch(/no self-approval/);

    const approved = await road(['approve', 'CLI-1', '--reviewer', 'alice@example.com', '--comment', 'replay is convincing', '--json'], cliEnv);
    expect(approved.stderr).toBe('');
    expect(approved.code).toBe(0);
    const state = JSON.parse(approved.stdout) as ApprovalState;
    expect(state).toMatchObject({ status: 'APPROVED', decidedBy: 'alice@example.com', canMerge: true, decisionNote: 'replay is convincing' });

    const result = await handle.result();
    expect(result.status).toBe('APPROVED');

    const late = await road(['approve', 'CLI-1', '--reviewer', 'carol@example.com'], cliEnv);
    expect(late.code).toBe(2);
    expect(late.stderr).toMatch(/CLI-1 is already APPROVED by alice@example.com/);

    const audit = await auditTrail(db.pool, result.requestId);
    expect(audit.map((a) => [a.reviewer, a.outcome, a.source])).toEqual([
      ['mallory@example.com', 'ignored', 'workflow'],
      ['road-bot', 'ignored', 'workflow'],
      ['alice@example.com', 'accepted', 'workflow'],
      ['carol@example.com', 'ignored', 'cli'],
    ]);

    // The Temporal UI can filter on ROAD's search attributes.
    const listed = await eventually(async () => {
      for await (const wf of env.client.workflow.list({ query: `RoadTaskId = "CLI-1" AND RoadStatus = "APPROVED" AND RoadKind = "approval"` })) return wf;
      return undefined;
    }, 'visibility to show the approved gate');
    expect(listed.workflowId).toBe(handle.workflowId);
    const description = await handle.describe();
    expect(await description.staticSummary()).toMatch(/Approval gate for CLI-1/);
  });

  it('rejects with a reason, and refuses bad input with exit 2 and one line', async () => {
    await startGate('CLI-2');
    const noReason = await road(['reject', 'CLI-2', '--reviewer', 'carol@example.com'], cliEnv);
    expect(noReason.code).toBe(2);
    expect(noReason.stderr).toMatch(/--reason/);

    const rejected = await road(['reject', 'CLI-2', '--reviewer', 'carol@example.com', '--reason', 'p95 tokens regressed'], cliEnv);
    expect(rejected.code).toBe(0);
    expect(rejected.stdout).toMatch(/CLI-2: REJECTED by carol@example.com/);
    expect(rejected.stdout).toMatch(/can_merge: false/);

    const unknown = await road(['approve', 'NO-SUCH-TASK', '--reviewer', 'alice@example.com'], cliEnv);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr.trim()).toBe('road: unknown task NO-SUCH-TASK: no approval request is waiting for it (see `road pending`)');

    const badId = await road(['approve', 'bad id!', '--reviewer', 'alice@example.com'], cliEnv);
    expect(badId.code).toBe(2);
    expect(badId.stderr).toMatch(/taskId may contain only letters, digits/);
  });

  it('decides over HTTP with a token bound to a reviewer: 403 for a reviewer not allowed, 200, then 409', async () => {
    await startGate('API-1');
    await eventually(async () => (await latestApprovalForTask(db.pool, 'API-1')) ?? undefined, 'the request to be stored');
    const app = buildServer({
      pool: db.pool,
      tokens: parseApiTokens('mallory@example.com=mallory-token-0123456789,carol@example.com=carol-token-0123456789'),
      temporal: async () => env.client,
    });
    const base = await app.listen({ host: '127.0.0.1', port: 0 });
    try {
      const decide = (token: string, body: unknown) =>
        fetch(`${base}/v1/approvals/API-1/decision`, {
          method: 'POST',
          headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
          body: JSON.stringify(body),
        });
      const pending = await fetch(`${base}/v1/approvals?status=PENDING`, { headers: { authorization: 'Bearer carol-token-0123456789' } });
      expect(((await pending.json()) as { approvals: Array<{ taskId: string }> }).approvals.map((a) => a.taskId)).toContain('API-1');

      const stranger = await decide('mallory-token-0123456789', { action: 'approve' });
      expect(stranger.status).toBe(403);
      expect(((await stranger.json()) as { message: string }).message).toMatch(/not an allowed reviewer/);

      const approved = await decide('carol-token-0123456789', { action: 'approve', comment: 'looks right' });
      expect(approved.status).toBe(200);
      expect(((await approved.json()) as { state: ApprovalState }).state).toMatchObject({ status: 'APPROVED', decidedBy: 'carol@example.com' });

      await env.client.workflow.getHandle('road-approval-API-1').result();
      const again = await decide('carol-token-0123456789', { action: 'reject', reason: 'changed my mind' });
      expect(again.status).toBe(409);
      expect((await fetch(`${base}/v1/approvals/NOPE-1/decision`, { method: 'POST', headers: { authorization: 'Bearer carol-token-0123456789', 'content-type': 'application/json' }, body: '{"action":"approve"}' })).status).toBe(404);
    } finally {
      await app.close();
    }
  });

  it('answers --help with exit 0 and an unknown command with exit 2', async () => {
    const help = await road(['approve', '--help'], cliEnv);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/--reviewer <identity>/);
    const unknown = await road(['frobnicate'], cliEnv);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/unknown command 'frobnicate'/);
  });
});
