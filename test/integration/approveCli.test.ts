/**
 * A reviewer's day on the real dev server and a real PostgreSQL: `road pending` lists the request, `road approve`
 * from a stranger is refused and audited, an allowed reviewer's approval counts, a late one is refused, and the
 * Temporal UI's search attributes follow.
 */
import { WorkflowUpdateFailedError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createActivities } from '../../activities/index.js';
import { auditTrail, latestApprovalForTask } from '../../db/approvals.js';
import type { ApprovalState, DecisionRequest } from '../../domain/approval.js';
import { startApprovalGate } from '../../client/approvals.js';
import { buildServer, parseApiTokens } from '../../client/server.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import { bundleWorkflows, devServerEnv } from '../helpers/temporal.js';
import { execFile } from 'node:child_process';
import { road } from '../helpers/cli.js';
import { toolPaths } from '../../scripts/provision.js';
import { approvalStatusQuery, decideUpdate } from '../../workflows/definitions.js';

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

/** Runs a program to its end; its exit code and everything it printed. */
function run(file: string, args: string[]): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    execFile(file, args, { timeout: 30_000 }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
      resolve({ code, output: `${stdout}${stderr}` });
    });
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

  it('rejects with a reason, and answers bad input, an unknown task and a closed gate each with its own exit code and one line', async () => {
    await startGate('CLI-2');
    const noReason = await road(['reject', 'CLI-2', '--reviewer', 'carol@example.com'], cliEnv);
    expect(noReason.code).toBe(2);
    expect(noReason.stderr).toMatch(/--reason/);

    const rejected = await road(['reject', 'CLI-2', '--reviewer', 'carol@example.com', '--reason', 'p95 tokens regressed'], cliEnv);
    expect(rejected.code).toBe(0);
    expect(rejected.stdout).toMatch(/CLI-2: REJECTED by carol@example.com/);
    expect(rejected.stdout).toMatch(/can_merge: false/);

    const blank = await road(['approve', 'CLI-2', '--reviewer', '  '], cliEnv);
    expect(blank.code).toBe(2);
    expect(blank.stderr.trim()).toBe('road: invalid decision: reviewer must not be empty');
    const emptyReason = await road(['reject', 'CLI-2', '--reviewer', 'carol@example.com', '--reason', ' '], cliEnv);
    expect(emptyReason.code).toBe(2);
    expect(emptyReason.stderr.trim()).toBe('road: invalid decision: reason must not be empty: a rejection says why the candidate is rejected');

    const rejectedAgain = await road(['approve', 'CLI-2', '--reviewer', 'alice@example.com'], cliEnv);
    expect(rejectedAgain.code).toBe(2);
    expect(rejectedAgain.stderr.trim()).toBe('road: CLI-2 is already REJECTED by carol@example.com; nothing changed (the attempt is audited)');

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
      const strangerBody = (await stranger.json()) as { error: string; message: string };
      expect(strangerBody.error).toBe('forbidden');
      expect(strangerBody.message).toMatch(/not an allowed reviewer/);

      // The same rules as the CLI and the Update validator, in the same words.
      const typo = await decide('carol-token-0123456789', { action: 'Approve', comment: 'ship it' });
      expect(typo.status).toBe(400);
      expect(await typo.json()).toEqual({ error: 'invalid_input', message: 'invalid decision: action must be "approve" or "reject" (got "Approve")' });
      const noReason = await decide('carol-token-0123456789', { action: 'reject', reason: '  ' });
      expect(await noReason.json()).toEqual({
        error: 'invalid_input',
        message: 'invalid decision: reason must not be empty: a rejection says why the candidate is rejected',
      });

      const approved = await decide('carol-token-0123456789', { action: 'approve', comment: 'looks right' });
      expect(approved.status).toBe(200);
      expect(((await approved.json()) as { state: ApprovalState }).state).toMatchObject({ status: 'APPROVED', decidedBy: 'carol@example.com' });

      await env.client.workflow.getHandle('road-approval-API-1').result();
      const again = await decide('carol-token-0123456789', { action: 'reject', reason: 'changed my mind' });
      expect(again.status).toBe(409);
      expect(await again.json()).toEqual({ error: 'conflict', message: 'API-1 is already APPROVED by carol@example.com; nothing changed (the attempt is audited)' });
      const unknown = await fetch(`${base}/v1/approvals/NOPE-1/decision`, {
        method: 'POST',
        headers: { authorization: 'Bearer carol-token-0123456789', 'content-type': 'application/json' },
        body: '{"action":"approve"}',
      });
      expect(unknown.status).toBe(404);
      expect(((await unknown.json()) as { error: string }).error).toBe('not_found');
    } finally {
      await app.close();
    }
  });

  it('refuses an `Approve` Update in its validator — through the SDK and through the Temporal CLI — leaving the gate PENDING and its history untouched', async () => {
    const handle = await startGate('VALIDATE-1');
    await eventually(async () => (await latestApprovalForTask(db.pool, 'VALIDATE-1')) ?? undefined, 'the request to be stored');
    const typo = { action: 'Approve', reviewer: 'alice@example.com', comment: 'ship it' }; // an allowed reviewer, a capital A

    const error = await handle.executeUpdate(decideUpdate, { args: [typo as DecisionRequest] }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(WorkflowUpdateFailedError);
    const cause = (error as WorkflowUpdateFailedError).cause as ApplicationFailure;
    expect(cause).toBeInstanceOf(ApplicationFailure);
    expect([cause.type, cause.message]).toEqual(['InvalidInput', 'invalid decision: action must be "approve" or "reject" (got "Approve")']);

    // Exactly how the bug was found: Temporal's own CLI, which no ROAD check stands in front of.
    const cli = await run(toolPaths().temporalCli, [
      'workflow', 'update', 'execute', '--address', env.address, '--namespace', env.namespace ?? 'default',
      '--workflow-id', handle.workflowId, '--name', 'decide', '--input', JSON.stringify(typo),
    ]);
    expect(cli.code, cli.output).not.toBe(0);
    expect(cli.output).toMatch(/InvalidInput|invalid decision/);
    expect(cli.output).toMatch(/action must be \\?"approve\\?" or \\?"reject\\?"/);

    const state = await handle.query(approvalStatusQuery);
    expect(state).toMatchObject({ status: 'PENDING', attempts: [] });
    const history = await handle.fetchHistory();
    const updates = history.events!.filter(
      (e) => e.workflowExecutionUpdateAdmittedEventAttributes || e.workflowExecutionUpdateAcceptedEventAttributes || e.workflowExecutionUpdateCompletedEventAttributes,
    );
    expect(updates).toEqual([]);
    expect(await auditTrail(db.pool, state.requestId)).toEqual([]);

    // The gate still works: the same reviewer, spelled right.
    const attempt = await handle.executeUpdate(decideUpdate, { args: [{ ...typo, action: 'approve' }] });
    expect(attempt.outcome).toBe('accepted');
    expect((await handle.result()).status).toBe('APPROVED');
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
