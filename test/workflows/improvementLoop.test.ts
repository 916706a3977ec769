/**
 * One improvement loop end to end on the real time-skipping server, a real PostgreSQL and a real git repository:
 * telemetry with three failure modes becomes three tasks; an executor fixes each in its allowed file; replay runs the
 * code of each worktree; one fix is approved and promoted, one rejected, one expires after 7 simulated days — and the
 * loop report and the database tell the same story.
 */
import { historyToJSON } from '@temporalio/common/lib/proto-utils.js';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createActivities } from '../../activities/index.js';
import { disposeReplayWorktrees } from '../../activities/replay.js';
import { storeEvents } from '../../db/events.js';
import { configSchema } from '../../domain/config.js';
import type { LoopReport } from '../../domain/loop.js';
import { approvalWorkflowId, approveSignal, loopStatusQuery, loopWorkflowId, rejectSignal } from '../../workflows/definitions.js';
import type { improvementLoop } from '../../workflows/improvementLoop.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import { createTargetRepo, type TargetRepo } from '../helpers/targetRepo.js';
import { bundleWorkflows, timeSkippingEnv } from '../helpers/temporal.js';

const DAY_MS = 86_400_000;
const FIXTURES = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'histories');
/** Three failure modes of phase "build", each behind its own file; counts differ so the ranking is fixed. */
const FAILURES = [
  { key: 'a', reason: 'schema_drift', runs: 6 },
  { key: 'b', reason: 'lockfile_conflict', runs: 5 },
  { key: 'c', reason: 'flaky_network', runs: 4 },
] as const;

let env: TestWorkflowEnvironment;
let db: TestDatabase;
let bundle: WorkflowBundleWithSourceMap;
let repo: TargetRepo;
let reportsDir: string;

beforeAll(async () => {
  [env, db, bundle] = await Promise.all([timeSkippingEnv(), createTestDatabase(), bundleWorkflows()]);
  reportsDir = mkdtempSync(path.join(os.tmpdir(), 'road-loop-reports-'));
  repo = createTargetRepo();
  // Each failure mode lives in its own file; the replay command fails a case until the file of its failure says "fixed".
  for (const f of FAILURES) writeFileSync(path.join(repo.dir, 'src', `fix-${f.key}.txt`), 'broken\n');
  writeFileSync(
    path.join(repo.dir, 'replay.sh'),
    `#!/bin/sh
key=\${ROAD_CASE_ID%%-*}
if grep -q fixed "src/fix-$key.txt"; then echo '{"road":{"outcome":"SUCCESS","tokens":900}}'
else case $key in a) r=schema_drift;; b) r=lockfile_conflict;; *) r=flaky_network;; esac
  echo "{\\"road\\":{\\"outcome\\":\\"FAILED\\",\\"tokens\\":900,\\"stop_reason\\":\\"$r\\"}}"; fi
`,
  );
  repo.git('add', '-A');
  repo.git('commit', '-qm', 'three failure modes');

  const now = Date.now();
  const events = FAILURES.flatMap((f) =>
    Array.from({ length: f.runs }, (_, i) => ({
      run_id: `${f.key}-${i + 1}`,
      phase_id: 'build',
      outcome: 'FAILED',
      stop_reason: f.reason,
      files: [`src/fix-${f.key}.txt`],
      occurred_at: new Date(now - (i + 1) * 3_600_000).toISOString(),
    })),
  );
  const stored = await storeEvents(db.pool, events);
  expect(stored.every((r) => r.status === 'accepted')).toBe(true);
});

afterAll(async () => {
  await disposeReplayWorktrees();
  await env?.teardown();
  await db?.drop();
});

async function until<T>(what: string, fn: () => Promise<T | undefined>): Promise<T> {
  for (let i = 0; i < 600; i++) {
    const value = await fn();
    if (value !== undefined) return value;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}`);
}

describe('improvementLoop', () => {
  it('approves and promotes one fix, records a rejection and an expiry, and its report agrees with the database', async () => {
    // The executor reads the task file and fixes the one file the task allows.
    const executor = repo.executor(
      'fix-allowed-file',
      `file=$(node -e 'console.log(JSON.parse(require("fs").readFileSync(process.env.ROAD_TASK_FILE,"utf8")).allowed_files[0])')
echo fixed > "$file"
git commit -qam "Validate inputs before $(basename "$file" .txt)"`,
    );
    const config = configSchema.parse({
      repository: { path: repo.dir },
      executor: { command: executor, timeout: '2m' },
      replay: { command: ['sh', 'replay.sh'], repeats: 2, concurrency: 4, timeout: '1m', taskQueue: 'loop-replay' },
      approval: { reviewers: ['alice@example.com', 'bob@example.com'] },
    });
    const activities = createActivities({ pool: db.pool, config, reportsDir });
    const main = await Worker.create({ connection: env.nativeConnection, taskQueue: 'loop', workflowBundle: bundle, activities });
    const replay = await Worker.create({ connection: env.nativeConnection, taskQueue: 'loop-replay', activities });

    const report: LoopReport = await replay.runUntil(() =>
      main.runUntil(async () => {
        const handle = await env.client.workflow.start<typeof improvementLoop>('improvementLoop', {
          taskQueue: 'loop',
          workflowId: loopWorkflowId('TEST-1'),
          args: [{ window: '7d', topK: 3, maxConcurrentTasks: 3 }],
        });
        // All three gates open: decide two of them and let the third wait out its 7 days.
        const tasks = await until('three tasks', async () => {
          const s = await handle.query(loopStatusQuery);
          return s.tasks.length === 3 ? s.tasks : undefined;
        });
        const byReason = (reason: string) => tasks.find((t) => t.title.includes(reason))!.taskId;
        const pending = async (taskId: string) =>
          (await db.pool.query("SELECT 1 FROM approval_requests WHERE task_id = $1 AND status = 'PENDING'", [taskId])).rowCount ? true : undefined;
        for (const f of FAILURES) await until(`the gate of ${f.reason}`, () => pending(byReason(f.reason)));
        await env.client.workflow.getHandle(approvalWorkflowId(byReason('schema_drift'))).signal(approveSignal, { reviewer: 'alice@example.com', comment: 'ship it' });
        await env.client.workflow.getHandle(approvalWorkflowId(byReason('lockfile_conflict'))).signal(rejectSignal, { reviewer: 'bob@example.com', reason: 'hides the conflict' });
        await env.sleep(7 * DAY_MS + 60_000);
        const result = await handle.result();
        if (process.env.ROAD_RECORD_HISTORIES === '1') {
          writeFileSync(path.join(FIXTURES, 'improvement-loop-three-tasks.json'), historyToJSON(await handle.fetchHistory()));
        }
        return result;
      }),
    );

    const outcome = (reason: string) => report.tasks.find((t) => t.title.includes(reason))!;
    expect(outcome('schema_drift')).toMatchObject({ outcome: 'approved', canMerge: true, decidedBy: 'alice@example.com', promotion: { promoted: true } });
    expect(outcome('schema_drift').landing).toMatchObject({ status: 'branch' });
    expect(outcome('lockfile_conflict')).toMatchObject({ outcome: 'rejected', canMerge: false });
    expect(outcome('lockfile_conflict').promotion).toBeUndefined();
    expect(outcome('flaky_network')).toMatchObject({ outcome: 'expired', canMerge: false });
    expect(report.stage).toBe('done');

    // The database agrees: one rule for the approved task's fingerprint, serving its phase; the gates' states; task statuses.
    const rules = await db.pool.query('SELECT rule_id, source_task, status, applicable_phases FROM promoted_rules');
    expect(rules.rows).toEqual([expect.objectContaining({ rule_id: outcome('schema_drift').promotion!.ruleId, source_task: outcome('schema_drift').taskId, status: 'active', applicable_phases: ['build'] })]);
    const gates = await db.pool.query<{ task_id: string; status: string }>('SELECT task_id, status::text FROM approval_requests ORDER BY task_id');
    expect(Object.fromEntries(gates.rows.map((r) => [r.task_id, r.status]))).toEqual({
      [outcome('schema_drift').taskId]: 'APPROVED',
      [outcome('lockfile_conflict').taskId]: 'REJECTED',
      [outcome('flaky_network').taskId]: 'EXPIRED',
    });
    const statuses = await db.pool.query<{ task_id: string; status: string }>('SELECT task_id, status::text FROM followup_tasks');
    expect(Object.fromEntries(statuses.rows.map((r) => [r.task_id, r.status]))).toEqual({
      [outcome('schema_drift').taskId]: 'done',
      [outcome('lockfile_conflict').taskId]: 'rejected',
      [outcome('flaky_network').taskId]: 'abandoned',
    });
    // The report on disk is the report returned.
    const onDisk = JSON.parse(readFileSync(report.reportPaths!.json, 'utf8')) as LoopReport;
    expect(onDisk.tasks.map((t) => [t.taskId, t.outcome])).toEqual(report.tasks.map((t) => [t.taskId, t.outcome]));
    expect(readFileSync(report.reportPaths!.markdown, 'utf8')).toContain('**1** rule(s) promoted');
  });

  it('refuses a start request that breaks the input contract, naming the field', async () => {
    const activities = createActivities({ pool: db.pool, config: configSchema.parse({}), reportsDir });
    const worker = await Worker.create({ connection: env.nativeConnection, taskQueue: 'loop-bad', workflowBundle: bundle, activities });
    await worker.runUntil(async () => {
      const handle = await env.client.workflow.start<typeof improvementLoop>('improvementLoop', { taskQueue: 'loop-bad', workflowId: loopWorkflowId('BAD'), args: [{ topK: 50 }] });
      await expect(handle.result()).rejects.toMatchObject({ cause: { type: 'InvalidInput', message: expect.stringContaining('topK must be at most 20') } });
    });
  });
});
