/**
 * The follow-up task workflow end to end on the real time-skipping server, a real PostgreSQL and real git
 * repositories: a candidate in at most 2 attempts (asserted from the workflow history), an A/B replay whose command
 * runs the code of each worktree, and the approval gate as a child. Seven simulated days pass in seconds.
 */
import { historyToJSON } from '@temporalio/common/lib/proto-utils.js';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createActivities } from '../../activities/index.js';
import { disposeReplayWorktrees } from '../../activities/replay.js';
import { getTask, saveTasks } from '../../db/tasks.js';
import { configSchema } from '../../domain/config.js';
import type { FollowupTaskStatus } from '../../domain/followup.js';
import { fingerprintOf, type FollowupTask } from '../../domain/tasks.js';
import {
  approvalWorkflowId,
  approveSignal,
  followupTaskStatusQuery,
  rejectSignal,
  submitCandidateSignal,
  taskWorkflowId,
} from '../../workflows/definitions.js';
import type { followupTask } from '../../workflows/followupTask.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import { createTargetRepo, type TargetRepo } from '../helpers/targetRepo.js';
import { bundleWorkflows, timeSkippingEnv } from '../helpers/temporal.js';

const DAY_MS = 86_400_000;
const FIXTURES = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'histories');
const CASES = ['run-1', 'run-2', 'run-3'];
const REPEATS = 2;

let env: TestWorkflowEnvironment;
let db: TestDatabase;
let bundle: WorkflowBundleWithSourceMap;
let reportsDir: string;
let seq = 0;

beforeAll(async () => {
  [env, db, bundle] = await Promise.all([timeSkippingEnv(), createTestDatabase(), bundleWorkflows()]);
  reportsDir = mkdtempSync(path.join(os.tmpdir(), 'road-reports-'));
});

afterAll(async () => {
  await disposeReplayWorktrees();
  await env?.teardown();
  await db?.drop();
});

async function seedTask(n: number): Promise<FollowupTask> {
  const task: FollowupTask = {
    id: `FAILURE-${n}`,
    fingerprint: fingerprintOf('failure_mode', 'build', `builder_crash-${n}`),
    type: 'failure_mode',
    rank: 1,
    severity: 'high',
    status: 'open',
    title: 'Stop "builder_crash" failures in build',
    description: 'build ended with builder_crash',
    phase_ids: ['build'],
    evidence: { stop_reason: 'builder_crash', count: 6, sample_runs: CASES },
    allowed_files: ['src/fix.txt'],
    scope: { source: 'evidence', note: 'the files most often touched by the events behind the issue' },
    test_plan: [{ metric: 'build attempts ending with "builder_crash"', target: 'the failure does not recur in replay', comparison: '==', threshold: 0, relative_to_baseline: false }],
    preflight: [],
    max_attempts: 2,
    approval_gate: true,
  };
  const { saved } = await saveTasks(db.pool, [task]);
  expect(saved.map((t) => t.id)).toEqual([task.id]);
  return task;
}

/** Workers for the task queue and the replay queue, configured for `repo` and `executor`, for the duration of `fn`. */
async function withWorkers<T>(repo: TargetRepo, executor: string[] | 'manual', fn: (taskQueue: string) => Promise<T>): Promise<T> {
  const taskQueue = `tasks-${++seq}`;
  const config = configSchema.parse({
    repository: { path: repo.dir, baselineRef: 'main' },
    executor: executor === 'manual' ? 'manual' : { command: executor, timeout: '2m' },
    replay: { command: ['sh', 'replay.sh'], repeats: REPEATS, concurrency: 4, timeout: '1m', taskQueue: `${taskQueue}-replay` },
    approval: { reviewers: ['alice@example.com', 'carol@example.com'] },
  });
  const activities = createActivities({ pool: db.pool, config, reportsDir });
  const main = await Worker.create({ connection: env.nativeConnection, taskQueue, workflowBundle: bundle, activities });
  const replay = await Worker.create({ connection: env.nativeConnection, taskQueue: config.replay!.taskQueue, activities });
  return replay.runUntil(() => main.runUntil(() => fn(taskQueue)));
}

const start = (taskQueue: string, taskId: string) =>
  env.client.workflow.start<typeof followupTask>('followupTask', { taskQueue, workflowId: taskWorkflowId(taskId), args: [{ taskId }] });

async function stageReached(handle: { query: (q: typeof followupTaskStatusQuery) => Promise<FollowupTaskStatus> }, stage: FollowupTaskStatus['stage']): Promise<FollowupTaskStatus> {
  for (let i = 0; i < 600; i++) {
    const status = await handle.query(followupTaskStatusQuery);
    if (status.stage === stage) return status;
    if (status.outcome) throw new Error(`task ended (${status.outcome}: ${status.detail}) before reaching ${stage}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`the task did not reach ${stage}`);
}

/** Attempt numbers of an activity's ActivityTaskStarted events (a retried attempt restarts the same scheduled event). */
async function startedAttempts(handle: { fetchHistory: () => Promise<{ events?: unknown[] | null }> }, activityType: string): Promise<number[]> {
  const events = ((await handle.fetchHistory()).events ?? []) as Array<Record<string, any>>; // eslint-disable-line @typescript-eslint/no-explicit-any
  const scheduled = new Set(
    events.filter((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === activityType).map((e) => String(e.eventId)),
  );
  return events
    .filter((e) => e.activityTaskStartedEventAttributes && scheduled.has(String(e.activityTaskStartedEventAttributes.scheduledEventId)))
    .map((e) => Number(e.activityTaskStartedEventAttributes.attempt));
}

/** The gate's request is stored (it waits for a reviewer) — what `road pending` lists. */
async function gatePending(taskId: string): Promise<{ verdict: string; evidence: Record<string, unknown> }> {
  for (let i = 0; i < 300; i++) {
    const { rows } = await db.pool.query("SELECT verdict, evidence FROM approval_requests WHERE task_id = $1 AND status = 'PENDING'", [taskId]);
    if (rows[0]) return rows[0];
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`no pending approval request for ${taskId}`);
}

const count = async (sql: string, params: unknown[]) => Number((await db.pool.query<{ n: string }>(sql, params)).rows[0]!.n);

describe('followupTask', () => {
  it('retries a candidate that strays out of scope once, replays it, and lands approved with can_merge', async () => {
    const repo = createTargetRepo();
    const task = await seedTask(11);
    const executor = repo.executor(
      'stray-then-fix',
      // Attempt 1 edits a file outside allowed_files; attempt 2 fixes the bug in the one allowed file.
      'if [ "$ROAD_ATTEMPT" = 1 ]; then echo stray >> src/other.txt; else echo fixed > src/fix.txt; fi\ngit commit -qam "attempt $ROAD_ATTEMPT"',
    );
    const { result, history, replayHistory } = await withWorkers(repo, executor, async (taskQueue) => {
      const handle = await start(taskQueue, task.id);
      const atGate = await stageReached(handle, 'approval');
      expect(atGate.verdicts).toMatchObject({ gating: 'PROMOTE', seed: 'PROMOTE', statistical: 'PROMOTE', treatmentSuccessRate: 1 });
      expect((await getTask(db.pool, task.id))!.status).toBe('awaiting_approval');
      await gatePending(task.id);
      await env.client.workflow.getHandle(approvalWorkflowId(task.id)).signal(approveSignal, { reviewer: 'alice@example.com', comment: 'replay is convincing' });
      const result = await handle.result();
      expect(await startedAttempts(handle, 'createCandidate')).toEqual([2]);
      const replayHistory = await env.client.workflow.getHandle(`road-replay-${task.id}`).fetchHistory();
      return { result, history: await handle.fetchHistory(), replayHistory };
    });

    expect(result).toMatchObject({ outcome: 'approved', canMerge: true, stage: 'done' });
    expect(result.candidate!.changedFiles).toEqual(['src/fix.txt']);
    expect(result.candidate!.author).toBe('road-bot@example.com');
    // The branch road/<task-id> points at the treatment, and the merge command names it.
    expect(repo.git('rev-parse', `road/${task.id}`).trim()).toBe(result.candidate!.treatmentSha);
    expect(result.mergeCommand).toContain(`merge --ff-only road/${task.id}`);
    // Exactly one stored run per planned run (3 cases × 2 repeats × 2 arms), one approval request, two candidate attempts.
    expect(await count('SELECT count(*) AS n FROM replay_runs WHERE campaign_id = $1', [result.campaignId])).toBe(CASES.length * REPEATS * 2);
    expect(await count("SELECT count(*) AS n FROM replay_runs WHERE campaign_id = $1 AND variant = 'treatment' AND outcome = 'SUCCESS'", [result.campaignId])).toBe(CASES.length * REPEATS);
    expect(await count('SELECT count(*) AS n FROM approval_requests WHERE task_id = $1', [task.id])).toBe(1);
    expect(await count('SELECT count(*) AS n FROM candidates WHERE task_id = $1', [task.id])).toBe(2);
    expect((await getTask(db.pool, task.id))!.status).toBe('done');
    // No candidate worktree is left behind.
    expect(repo.git('worktree', 'list')).not.toContain('road-candidate-');

    if (process.env.ROAD_RECORD_HISTORIES === '1') {
      mkdirSync(FIXTURES, { recursive: true });
      writeFileSync(path.join(FIXTURES, 'followup-task-approved.json'), historyToJSON(history));
      writeFileSync(path.join(FIXTURES, 'replay-campaign-promote.json'), historyToJSON(replayHistory));
    }
  });

  it('fails after exactly 2 attempts when every candidate strays out of scope', async () => {
    const repo = createTargetRepo();
    const task = await seedTask(12);
    const executor = repo.executor('always-stray', 'echo fixed > src/fix.txt\necho stray >> src/other.txt\ngit commit -qam "too much"');
    const { result, attempts } = await withWorkers(repo, executor, async (taskQueue) => {
      const handle = await start(taskQueue, task.id);
      const result = await handle.result();
      return { result, attempts: await startedAttempts(handle, 'createCandidate') };
    });
    expect(attempts).toEqual([2]); // one scheduled activity whose last attempt was the second, and no third
    expect(result.outcome).toBe('failed');
    expect(result.detail).toContain('src/other.txt');
    expect(await count('SELECT count(*) AS n FROM candidates WHERE task_id = $1', [task.id])).toBe(2);
    expect(await count('SELECT count(*) AS n FROM replay_runs r JOIN replay_campaigns c USING (campaign_id) WHERE c.task_id = $1', [task.id])).toBe(0);
    expect((await getTask(db.pool, task.id))!.status).toBe('abandoned');
  });

  it('takes a person\'s fix when the executor is manual, refusing a ref that strays out of scope, and records a rejection', async () => {
    const repo = createTargetRepo();
    const task = await seedTask(13);
    // Two branches a person might push: one touches a file outside the task's scope, one is the real fix.
    repo.git('checkout', '-q', '-b', 'too-broad');
    writeFileSync(path.join(repo.dir, 'src', 'other.txt'), 'changed\n');
    writeFileSync(path.join(repo.dir, 'src', 'fix.txt'), 'fixed\n');
    repo.git('commit', '-qam', 'too broad');
    repo.git('checkout', '-q', 'main');
    repo.git('checkout', '-q', '-b', 'carol-fix');
    writeFileSync(path.join(repo.dir, 'src', 'fix.txt'), 'fixed\n');
    repo.git('commit', '-qam', 'fix');
    repo.git('checkout', '-q', 'main');

    const result = await withWorkers(repo, 'manual', async (taskQueue) => {
      const handle = await start(taskQueue, task.id);
      await stageReached(handle, 'awaiting_candidate');
      await handle.signal(submitCandidateSignal, { ref: 'too-broad', author: 'carol@example.com' });
      for (let i = 0; i < 300 && (await handle.query(followupTaskStatusQuery)).attempts.length < 1; i++) await new Promise((r) => setTimeout(r, 50));
      await handle.signal(submitCandidateSignal, { ref: 'carol-fix', author: 'carol@example.com' });
      await stageReached(handle, 'approval');
      await gatePending(task.id);
      const gate = env.client.workflow.getHandle(approvalWorkflowId(task.id));
      // The author may not decide her own fix; another reviewer may.
      await gate.signal(approveSignal, { reviewer: 'carol@example.com' });
      await gate.signal(rejectSignal, { reviewer: 'alice@example.com', reason: 'fixes the symptom, not the cause' });
      return handle.result();
    });
    expect(result.attempts.map((a) => a.outcome)).toEqual(['refused', 'accepted']);
    expect(result.attempts[0]!.message).toContain('src/other.txt');
    expect(result.candidate!.author).toBe('carol@example.com');
    expect(result).toMatchObject({ outcome: 'rejected', canMerge: false });
    expect(result.approval).toMatchObject({ status: 'REJECTED', decidedBy: 'alice@example.com' });
    expect((await getTask(db.pool, task.id))!.status).toBe('rejected');
  });

  it('sends an INCONCLUSIVE candidate to the gate marked as such, and expires after 7 simulated days', async () => {
    const repo = createTargetRepo();
    const task = await seedTask(14);
    // A change in scope that does not fix the bug: both arms fail alike.
    const executor = repo.executor('no-fix', 'echo "still broken" > src/fix.txt\ngit commit -qam "cosmetic"');
    const result = await withWorkers(repo, executor, async (taskQueue) => {
      const handle = await start(taskQueue, task.id);
      const atGate = await stageReached(handle, 'approval');
      expect(atGate.verdicts!.gating).toBe('INCONCLUSIVE');
      expect(await gatePending(task.id)).toMatchObject({ verdict: 'INCONCLUSIVE', evidence: { inconclusive: true } });
      await env.sleep(7 * DAY_MS + 60_000);
      return handle.result();
    });
    expect(result).toMatchObject({ outcome: 'expired', canMerge: false });
    expect((await getTask(db.pool, task.id))!.status).toBe('abandoned');
  });

  it('refuses a start request that breaks the input contract, naming the field', async () => {
    const repo = createTargetRepo();
    await withWorkers(repo, 'manual', async (taskQueue) => {
      const handle = await env.client.workflow.start<typeof followupTask>('followupTask', {
        taskQueue,
        workflowId: taskWorkflowId('BAD-INPUT'),
        args: [{ taskId: 'no spaces allowed' }],
      });
      await expect(handle.result()).rejects.toMatchObject({ cause: { type: 'InvalidInput', message: expect.stringMatching(/taskId must be 1–128 characters/) } });
    });
  });
});
