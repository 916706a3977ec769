/**
 * The governance gate on the real time-skipping test server and a real PostgreSQL: days of waiting pass in
 * seconds, signals arrive as a reviewer's would, and every attempt must end up in the audit table.
 */
import { WorkflowFailedError, WorkflowUpdateFailedError } from '@temporalio/client';
import { ApplicationFailure, decodeRetryState } from '@temporalio/common';
import { historyToJSON } from '@temporalio/common/lib/proto-utils.js';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createActivities, type RecordDecisionAttemptInput } from '../../activities/index.js';
import { auditTrail, latestApprovalForTask } from '../../db/approvals.js';
import { approvalRequestSchema, initialState, type ApprovalRequestInput, type ApprovalState } from '../../domain/approval.js';
import { approvalStatusQuery, approveSignal, approvalWorkflowId, decideUpdate, rejectSignal } from '../../workflows/definitions.js';
import type { approvalGate } from '../../workflows/approvalGate.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import { bundleWorkflows, timeSkippingEnv } from '../helpers/temporal.js';

const DAY_MS = 86_400_000;
const FIXTURES = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'histories');

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
async function attemptsJudged(handle: { query: (q: typeof approvalStatusQuery) => Promise<ApprovalState> }, count: number): Promise<ApprovalState> {
  for (let i = 0; i < 200; i++) {
    const state = await handle.query(approvalStatusQuery);
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
      expect((await handle.query(approvalStatusQuery)).status).toBe('PENDING');
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
    expect(result.attempts.map((a) => a.reason ?? 'counted')).toEqual([
      'invalid decision: reason must not be empty: a rejection says why the candidate is rejected',
      'counted',
    ]);
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

  it('refuses junk decision signals before they touch the gate, and audits each as ignored with the rule it broke', async () => {
    const { pending, result } = await withGate(async (start) => {
      const handle = await start(request('JUNK-1'));
      // Signals carry anything a client puts in them: none of these may decide the gate, nor fail its audit.
      await handle.signal(approveSignal, { reviewer: '' });
      await handle.signal(approveSignal, 'lgtm' as unknown as { reviewer: string });
      await handle.signal(rejectSignal, { reviewer: 'alice@example.com', reson: 'typo in the key' } as unknown as { reviewer: string });
      await handle.signal(approveSignal, { reviewer: 42 } as unknown as { reviewer: string });
      await handle.signal(approveSignal, { reviewer: 'alice@example.com', comment: 'x'.repeat(4001) });
      const pending = await attemptsJudged(handle, 5);
      await handle.signal(approveSignal, { reviewer: 'alice@example.com', comment: 'now properly' });
      return { pending, result: await handle.result() };
    });
    expect(pending).toMatchObject({ status: 'PENDING', canMerge: false });
    expect(pending.decidedBy).toBeUndefined();
    const refused = [
      /reviewer must not be empty/,
      /a decision must be a JSON object/,
      /unknown field "reson"/,
      /reviewer must be a string/,
      /comment must be at most 4000 characters/,
    ];
    pending.attempts.forEach((attempt, i) => {
      expect(attempt.outcome).toBe('ignored');
      expect(attempt.reason).toMatch(refused[i]!);
    });
    expect(result).toMatchObject({ status: 'APPROVED', decidedBy: 'alice@example.com', decisionNote: 'now properly' });

    const audit = await auditTrail(db.pool, result.requestId);
    expect(audit.map((a) => [a.action, a.outcome])).toEqual([
      ['approve', 'ignored'],
      ['approve', 'ignored'],
      ['reject', 'ignored'],
      ['approve', 'ignored'],
      ['approve', 'ignored'],
      ['approve', 'accepted'],
    ]);
    audit.slice(0, 5).forEach((row, i) => expect(row.reason).toMatch(refused[i]!));
  });

  it('refuses an Update that breaks the rules in its validator: nothing in history, the gate still waits', async () => {
    const { error, pending, history } = await withGate(async (start) => {
      const handle = await start(request('VALIDATE-1'));
      const error = await handle
        .executeUpdate(decideUpdate, { args: [{ action: 'Approve' as 'approve', reviewer: 'alice@example.com', comment: 'ship it' }] })
        .catch((e: unknown) => e);
      const pending = await handle.query(approvalStatusQuery);
      const history = await handle.fetchHistory();
      await handle.terminate('test done');
      return { error, pending, history };
    });
    expect(error).toBeInstanceOf(WorkflowUpdateFailedError);
    const cause = (error as WorkflowUpdateFailedError).cause;
    expect(cause).toBeInstanceOf(ApplicationFailure);
    expect((cause as ApplicationFailure).type).toBe('InvalidInput');
    expect(cause!.message).toBe('invalid decision: action must be "approve" or "reject" (got "Approve")');
    expect(pending).toMatchObject({ status: 'PENDING', attempts: [] });
    expect(updateEvents(history)).toEqual([]);
  });

  it('fails a permanent audit error at once (no retries) and still answers the Update and decides the gate', async () => {
    // A constraint this database adds for the test: the real activity's INSERT violates it for one reviewer.
    await db.pool.query(`ALTER TABLE approval_audit ADD CONSTRAINT road_test_refuses_dave CHECK (reviewer <> 'dave@example.com')`);
    const started = performance.now();
    const { attempt, result, history } = await withGate(async (start) => {
      const handle = await start(request('POISON-1', { allowedReviewers: ['dave@example.com', 'alice@example.com'] }));
      const attempt = await handle.executeUpdate(decideUpdate, { args: [{ action: 'approve', reviewer: 'dave@example.com', comment: 'fine' }] });
      const result = await handle.result();
      return { attempt, result, history: await handle.fetchHistory() };
    });
    const seconds = (performance.now() - started) / 1000;
    expect(attempt).toMatchObject({ outcome: 'accepted', reviewer: 'dave@example.com' });
    expect(attempt.auditError).toMatch(/road_test_refuses_dave.*SQLSTATE 23514.*retrying cannot help/);
    expect(result).toMatchObject({ status: 'APPROVED', decidedBy: 'dave@example.com', canMerge: true });
    expect(result.attempts[0]!.auditError).toBe(attempt.auditError);

    // From the history: the audit activity ran exactly once and failed as non-retryable; the others completed.
    const audit = activityRuns(history, 'recordDecisionAttempt');
    expect(audit).toEqual([{ attempts: [1], failureType: 'DatabaseRefused', nonRetryable: true, retryState: 'NON_RETRYABLE_FAILURE' }]);
    expect(activityRuns(history, 'finalizeApproval')).toEqual([{ attempts: [1], completed: true }]);
    // With unlimited retries, a retried failure would have taken ≥ 1 s (the first backoff) and never ended.
    expect(seconds).toBeLessThan(30);
    expect((await latestApprovalForTask(db.pool, 'POISON-1'))?.status).toBe('APPROVED');
  });

  it('audits the attempt a gate wedged by an `Approve` Update was retrying (recorded by the code before validation)', async () => {
    // The history was recorded with the old code: its recordDecisionAttempt input carries action "Approve", which the
    // audit CHECK refused on every retry. The same input must now be stored, as what the gate did with it.
    const events = (JSON.parse(readFileSync(path.join(FIXTURES, 'approval-gate-unvalidated-approve.json'), 'utf8')) as RecordedHistory).events;
    const inputOf = (type: string) => {
      const scheduled = events.find((e) => e.activityTaskScheduledEventAttributes?.activityType.name === type)!;
      return JSON.parse(Buffer.from(scheduled.activityTaskScheduledEventAttributes!.input.payloads[0]!.data, 'base64').toString('utf8'));
    };
    const recorded = inputOf('recordDecisionAttempt') as RecordDecisionAttemptInput;
    expect(recorded.attempt.action).toBe('Approve');
    const activities = createActivities({ pool: db.pool });
    await activities.persistApprovalRequest(inputOf('persistApprovalRequest'));
    await activities.recordDecisionAttempt(recorded);
    const audit = await auditTrail(db.pool, recorded.requestId);
    expect(audit.map((a) => [a.action, a.rawAction, a.reviewer, a.outcome])).toEqual([['reject', 'Approve', 'alice@example.com', 'accepted']]);
  });

  it('stores the largest evidence its rule allows, however long PostgreSQL renders it', async () => {
    // 64 KiB of compact JSON that jsonb::text renders 47 times longer (5e-324 in full: 0.000…5, 326 characters)
    // — and 1.5 times longer (0/1 flags).
    const huge = Array.from({ length: Math.floor((64 * 1024 - 20) / 7) }, () => 5e-324);
    const flags = Array.from({ length: Math.floor((64 * 1024 - 20) / 2) }, (_, i) => i % 2);
    const activities = createActivities({ pool: db.pool });
    for (const [taskId, evidence] of [['EVIDENCE-1', { huge }], ['EVIDENCE-2', { flags }]] as const) {
      const parsed = approvalRequestSchema.parse(request(taskId, { evidence }));
      expect(new TextEncoder().encode(JSON.stringify(parsed.evidence)).length).toBeLessThanOrEqual(64 * 1024);
      const state = initialState(`${taskId}/run`, parsed, Date.now());
      await activities.persistApprovalRequest({ workflowId: taskId, state, request: parsed });
      const { rows } = await db.pool.query<{ n: number }>(`SELECT octet_length(evidence::text) AS n FROM approval_requests WHERE task_id = $1`, [taskId]);
      expect(rows[0]!.n).toBeGreaterThan(70_000); // the old cap refused both
      if (taskId === 'EVIDENCE-1') expect(rows[0]!.n).toBeGreaterThan(3_000_000);
    }
  });

  it('records a replayable history (set ROAD_RECORD_HISTORIES=1 to refresh test/fixtures/histories)', async () => {
    const history = await withGate(async (start) => {
      const handle = await start(request('HISTORY-2'));
      await handle.signal(approveSignal, { reviewer: 'mallory@example.com' });
      await handle.signal(approveSignal, { reviewer: '' }); // refused by the rules, audited
      await handle.executeUpdate(decideUpdate, { args: [{ action: 'Approve' as 'approve', reviewer: 'alice@example.com' }] }).catch(() => undefined);
      await attemptsJudged(handle, 2);
      await handle.executeUpdate(decideUpdate, { args: [{ action: 'approve', reviewer: 'alice@example.com', comment: 'ok' }] });
      await handle.result();
      return handle.fetchHistory();
    });
    const patches = history.events!.filter((e) => e.markerRecordedEventAttributes?.markerName === 'core_patch');
    expect(patches).toHaveLength(2); // the patches of validated decisions and of webhook notifications
    await Worker.runReplayHistory({ workflowBundle: bundle }, history, 'approval-gate');
    if (process.env.ROAD_RECORD_HISTORIES === '1') {
      mkdirSync(FIXTURES, { recursive: true });
      // The histories recorded before are kept: they are what gates started by older code look like.
      writeFileSync(path.join(FIXTURES, 'approval-gate-validated.json'), historyToJSON(history));
    }
  });
});

/** The parts of a history JSON file (historyToJSON) that the test reads. */
interface RecordedHistory {
  events: Array<{ activityTaskScheduledEventAttributes?: { activityType: { name: string }; input: { payloads: Array<{ data: string }> } } }>;
}

type History = Awaited<ReturnType<ReturnType<typeof env.client.workflow.getHandle>['fetchHistory']>>;

/** Update events of a history: a refused Update leaves none. */
function updateEvents(history: History): string[] {
  return history.events!.filter((e) => e.workflowExecutionUpdateAcceptedEventAttributes || e.workflowExecutionUpdateAdmittedEventAttributes || e.workflowExecutionUpdateCompletedEventAttributes).map((e) => String(e.eventType));
}

/** Each scheduled run of an activity type: its attempt numbers and how it ended, read from the history. */
function activityRuns(history: History, activityType: string) {
  const events = history.events!;
  const scheduled = events.filter((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === activityType).map((e) => Number(e.eventId));
  return scheduled.map((id) => {
    const started = events.filter((e) => Number(e.activityTaskStartedEventAttributes?.scheduledEventId) === id);
    const failed = events.find((e) => Number(e.activityTaskFailedEventAttributes?.scheduledEventId) === id)?.activityTaskFailedEventAttributes;
    const completed = events.some((e) => Number(e.activityTaskCompletedEventAttributes?.scheduledEventId) === id);
    const attempts = started.map((e) => e.activityTaskStartedEventAttributes!.attempt);
    if (completed) return { attempts, completed };
    return {
      attempts,
      failureType: failed?.failure?.applicationFailureInfo?.type,
      nonRetryable: failed?.failure?.applicationFailureInfo?.nonRetryable,
      retryState: decodeRetryState(failed?.retryState),
    };
  });
}
