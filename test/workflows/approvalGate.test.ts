/**
 * The governance gate on the real time-skipping test server and a real PostgreSQL: days of waiting pass in
 * seconds, signals arrive as a reviewer's would, and every attempt must end up in the audit table.
 */
import { WorkflowFailedError } from '@temporalio/client';
import { historyToJSON } from '@temporalio/common/lib/proto-utils.js';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createActivities } from '../../activities/index.js';
import { auditTrail, latestApprovalForTask } from '../../db/approvals.js';
import type { ApprovalRequestInput, ApprovalState } from '../../domain/approval.js';
import { approveSignal, approvalWorkflowId, rejectSignal, statusQuery } from '../../workflows/definitions.js';
import type { approvalGate } from '../../workflows/approvalGate.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import { bundleWorkflows, timeSkippingEnv } from '../helpers/temporal.js';

const DAY_MS = 86_400_000;
const FIXTURES = path.join(path.dirname(new URL(import.meta.url).pathname), '..', 'fixtures', 'histories');

let env: TestWorkflowEnvironment;
let db: TestDatabase;
let bundle: WorkflowBundleWithSourceMap;
let queueSeq = 0;

beforeAll(async () => {
  [env, db, bundle] = await Promise.all([timeSkippingEnv(), createTestDatabase(), bundleWorkflows()]);
});

afterAll(async () => {
  await env?.teardown();
  await db?.drop();
});

function request(taskId: string, overrides: Partial<ApprovalRequestInput> = {}): ApprovalRequestInput {
  return {
    taskId,
    title: `Fix ${taskId}`,
    candidateRef: 'abc1234',
    impact: { summary: 'prompt-only change', files: ['src/a.py'], phases: ['auth-migration'] },
    verdict: 'PROMOTE',
    allowedReviewers: ['alice@example.com', 'carol@example.com', 'road-bot'],
    author: 'road-bot',
    ...overrides,
  };
}

/** Runs a worker for the duration of `fn`, with a start helper bound to its task queue. */
async function withGate<T>(fn: (start: (input: ApprovalRequestInput) => ReturnType<typeof env.client.workflow.start<typeof approvalGate>>) => Promise<T>): Promise<T> {
  const taskQueue = `gate-${++queueSeq}`;
  const worker = await Worker.create({
    connection: env.nativeConnection,
    taskQueue,
    workflowBundle: bundle,
    activities: createActivities({ pool: db.pool }),
  });
  const start = (input: ApprovalRequestInput) =>
    env.client.workflow.start<typeof approvalGate>('approvalGate', { taskQueue, workflowId: approvalWorkflowId(input.taskId), args: [input] });
  return worker.runUntil(() => fn(start));
}

/** Queries until the workflow has judged `count` attempts (signals are processed asynchronously). */
async function attemptsJudged(handle: { query: (q: typeof statusQuery) => Promise<ApprovalState> }, count: number): Promise<ApprovalState> {
  for (let i = 0; i < 200; i++) {
    const state = await handle.query(statusQuery);
    if (state.attempts.length >= count) return state;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`workflow did not judge ${count} attempts`);
}

describe('approvalGate', () => {
  it('expires after 7 simulated days without a decision, and not a moment before', async () => {
    const result = await withGate(async (start) => {
      const handle = await start(request('EXPIRE-1'));
      await env.sleep(7 * DAY_MS - 60_000); // one minute short of the default timeout
      expect((await handle.query(statusQuery)).status).toBe('PENDING');
      return handle.result();
    });
    expect(result.status).toBe('EXPIRED');
    expect(result.canMerge).toBe(false);
    // Default timeout: 7 days between request and expiry.
    expect(Date.parse(result.expiresAt) - Date.parse(result.requestedAt)).toBe(7 * DAY_MS);
    const row = await latestApprovalForTask(db.pool, 'EXPIRE-1');
    expect(row?.status).toBe('EXPIRED');
    expect(row?.decidedBy).toBeNull();
  });

  it('honours a shorter configured timeout', async () => {
    const result = await withGate(async (start) => (await start(request('EXPIRE-2', { timeout: '36h' }))).result());
    expect(result.status).toBe('EXPIRED');
    expect(Date.parse(result.expiresAt) - Date.parse(result.requestedAt)).toBe(36 * 3_600_000);
  });

  it('approves when an allowed reviewer approves before expiry', async () => {
    const result = await withGate(async (start) => {
      const handle = await start(request('APPROVE-1'));
      await env.sleep(3 * DAY_MS); // the reviewer comes back after a long weekend
      await handle.signal(approveSignal, { reviewer: 'Alice@Example.com', comment: 'evidence is convincing' });
      return handle.result();
    });
    expect(result).toMatchObject({ status: 'APPROVED', decidedBy: 'Alice@Example.com', decisionNote: 'evidence is convincing', canMerge: true });
    // The client's 3 days start when start() returns; the workflow stamps requestedAt at its first task, a moment later.
    expect(Date.parse(result.decidedAt!) - Date.parse(result.requestedAt)).toBeGreaterThan(3 * DAY_MS - 60_000);
    const row = await latestApprovalForTask(db.pool, 'APPROVE-1');
    expect(row).toMatchObject({ status: 'APPROVED', decidedBy: 'Alice@Example.com', canMerge: true });
    const audit = await auditTrail(db.pool, row!.requestId);
    expect(audit.map((a) => [a.reviewer, a.outcome])).toEqual([['Alice@Example.com', 'accepted']]);
  });

  it('ignores and audits a reviewer not on the allowlist and a self-approval, then accepts a valid one', async () => {
    const { result, pending } = await withGate(async (start) => {
      const handle = await start(request('SELF-1'));
      await handle.signal(approveSignal, { reviewer: 'mallory@example.com', comment: 'lgtm' });
      await handle.signal(approveSignal, { reviewer: 'road-bot', comment: 'I wrote it, ship it' });
      const pending = await attemptsJudged(handle, 2);
      await handle.signal(approveSignal, { reviewer: 'carol@example.com' });
      return { pending, result: await handle.result() };
    });
    expect(pending.status).toBe('PENDING');
    expect(pending.attempts.map((a) => a.outcome)).toEqual(['ignored', 'ignored']);
    expect(pending.attempts[0]!.reason).toMatch(/not an allowed reviewer/);
    expect(pending.attempts[1]!.reason).toMatch(/author: no self-approval/);
    expect(result).toMatchObject({ status: 'APPROVED', decidedBy: 'carol@example.com' });

    const audit = await auditTrail(db.pool, result.requestId);
    expect(audit.map((a) => [a.reviewer, a.outcome])).toEqual([
      ['mallory@example.com', 'ignored'],
      ['road-bot', 'ignored'],
      ['carol@example.com', 'accepted'],
    ]);
    expect(audit[0]!.reason).toMatch(/not an allowed reviewer/);
    expect(audit[1]!.reason).toMatch(/self-approval/);
  });

  it('lets the first of two valid decisions win and audits the second as ignored', async () => {
    const result = await withGate(async (start) => {
      const handle = await start(request('RACE-1'));
      await handle.signal(rejectSignal, { reviewer: 'alice@example.com', reason: 'treatment tokens up 20 %' });
      await handle.signal(approveSignal, { reviewer: 'carol@example.com', comment: 'fine by me' });
      return handle.result();
    });
    expect(result).toMatchObject({ status: 'REJECTED', decidedBy: 'alice@example.com', decisionNote: 'treatment tokens up 20 %', canMerge: false });
    const audit = await auditTrail(db.pool, result.requestId);
    expect(audit.map((a) => [a.action, a.outcome, a.reason])).toEqual([
      ['reject', 'accepted', null],
      ['approve', 'ignored', 'already REJECTED by alice@example.com'],
    ]);
  });

  it('keeps arrival order for decisions that arrive before the workflow first runs', async () => {
    // No worker yet: both signals wait in history and reach the workflow in its first activation, together.
    const taskQueue = `gate-${++queueSeq}`;
    const handle = await env.client.workflow.start<typeof approvalGate>('approvalGate', {
      taskQueue,
      workflowId: approvalWorkflowId('EARLY-1'),
      args: [request('EARLY-1')],
    });
    await handle.signal(rejectSignal, { reviewer: 'alice@example.com', reason: 'first in line' });
    await handle.signal(approveSignal, { reviewer: 'carol@example.com', comment: 'second' });
    const worker = await Worker.create({ connection: env.nativeConnection, taskQueue, workflowBundle: bundle, activities: createActivities({ pool: db.pool }) });
    const result = await worker.runUntil(handle.result());
    expect(result).toMatchObject({ status: 'REJECTED', decidedBy: 'alice@example.com' });
    expect(result.attempts.map((a) => [a.action, a.outcome])).toEqual([
      ['reject', 'accepted'],
      ['approve', 'ignored'],
    ]);
  });

  it('ignores a rejection without a reason', async () => {
    const result = await withGate(async (start) => {
      const handle = await start(request('REASON-1'));
      await handle.signal(rejectSignal, { reviewer: 'alice@example.com' });
      await attemptsJudged(handle, 1);
      await handle.signal(rejectSignal, { reviewer: 'alice@example.com', reason: 'breaks the retry budget' });
      return handle.result();
    });
    expect(result.attempts.map((a) => a.reason ?? 'counted')).toEqual(['a rejection needs a reason', 'counted']);
    expect(result.status).toBe('REJECTED');
  });

  it('approved without a PROMOTE verdict: can_merge stays false', async () => {
    const result = await withGate(async (start) => {
      const handle = await start(request('NOVERDICT-1', { verdict: 'INCONCLUSIVE' }));
      await handle.signal(approveSignal, { reviewer: 'alice@example.com' });
      return handle.result();
    });
    expect(result.status).toBe('APPROVED');
    expect(result.canMerge).toBe(false);
  });

  it('fails fast, without retrying, on an invalid request', async () => {
    const error = await withGate(async (start) =>
      (await start(request('BAD-1', { allowedReviewers: ['road-bot'] }))).result().catch((e: unknown) => e),
    );
    expect(error).toBeInstanceOf(WorkflowFailedError);
    expect(String((error as WorkflowFailedError).cause?.message)).toMatch(/allowedReviewers must include someone other than the author/);
  });

  it('records a replayable history (set ROAD_RECORD_HISTORIES=1 to refresh test/fixtures/histories)', async () => {
    const history = await withGate(async (start) => {
      const handle = await start(request('HISTORY-1'));
      await handle.signal(approveSignal, { reviewer: 'mallory@example.com' });
      await handle.signal(approveSignal, { reviewer: 'alice@example.com', comment: 'ok' });
      await handle.result();
      return handle.fetchHistory();
    });
    await Worker.runReplayHistory({ workflowBundle: bundle }, history, 'approval-gate');
    if (process.env.ROAD_RECORD_HISTORIES === '1') {
      mkdirSync(FIXTURES, { recursive: true });
      writeFileSync(path.join(FIXTURES, 'approval-gate-approved.json'), historyToJSON(history));
    }
  });
});
