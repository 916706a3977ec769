/**
 * A replay worker SIGKILLed in the middle of a campaign, on the real dev server and a real PostgreSQL: the worker is
 * the real `road worker` process. After a restart the campaign completes, every planned run is stored exactly once,
 * and no run that was stored before the crash is run again (the replay command logs every execution).
 */
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { replayCampaign } from '../../workflows/replayCampaign.js';
import { killRoadWorker, startRoadWorker } from '../helpers/roadWorker.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import { createTargetRepo, type TargetRepo } from '../helpers/targetRepo.js';
import { devServerEnv } from '../helpers/temporal.js';

const CASES = 4;
const REPEATS = 3;
const CONCURRENCY = 4;
const PLANNED = CASES * REPEATS * 2;

let env: TestWorkflowEnvironment;
let db: TestDatabase;
let repo: TargetRepo;
let configFile: string;
let executions: string;
const workers: ChildProcess[] = [];

beforeAll(async () => {
  [env, db] = await Promise.all([devServerEnv(), createTestDatabase()]);
  repo = createTargetRepo();
  executions = path.join(repo.scratch, 'executions.log');
  // Each run takes 400 ms and leaves a line in a log outside the repository: how often each run really executed.
  writeFileSync(path.join(repo.scratch, 'slow-replay.sh'), `#!/bin/sh\nsleep 0.4\necho "$ROAD_RUN_INDEX" >> ${executions}\n`);
  configFile = path.join(repo.scratch, 'road.config.json');
  writeFileSync(
    configFile,
    JSON.stringify({
      repository: { path: repo.dir },
      replay: { command: ['sh', path.join(repo.scratch, 'slow-replay.sh')], repeats: REPEATS, concurrency: CONCURRENCY, timeout: '1m', taskQueue: 'crash-replay' },
    }),
  );
});

afterAll(async () => {
  for (const w of workers) await killRoadWorker(w);
  await env?.teardown();
  await db?.drop();
});

/** `road worker` as a separate process (its own process group, so a SIGKILL takes it down like a crashed machine). */

const storedRuns = async (campaignId: string) =>
  (await db.pool.query<{ run_index: number }>('SELECT run_index FROM replay_runs WHERE campaign_id = $1', [campaignId])).rows.map((r) => r.run_index);

async function startWorker(): Promise<ChildProcess> {
  const worker = await startRoadWorker(repo.scratch, { DATABASE_URL: db.url, TEMPORAL_ADDRESS: env.address, ROAD_CONFIG: configFile, ROAD_TASK_QUEUE: 'crash', ROAD_HOME: repo.scratch });
  workers.push(worker);
  return worker;
}

describe('a replay worker killed mid-campaign', () => {
  it('loses nothing and runs nothing twice that was stored', async () => {
    const head = repo.git('rev-parse', 'HEAD').trim();
    repo.git('commit', '-q', '--allow-empty', '-m', 'treatment');
    const treatment = repo.git('rev-parse', 'HEAD').trim();
    const campaignId = `CRASH-1@${treatment.slice(0, 12)}`;

    const input: Parameters<typeof replayCampaign>[0] = {
      campaignId,
      taskId: 'CRASH-1',
      taskType: 'failure_mode',
      failureStopReason: null,
      baselineRef: 'main~1',
      baselineSha: head,
      treatmentSha: treatment,
      cases: Array.from({ length: CASES }, (_, i) => ({ id: `case-${i}`, phaseId: 'build' })),
      repeats: REPEATS,
      concurrency: CONCURRENCY,
      runTimeoutMs: 60_000,
      taskQueue: 'crash-replay',
      decisionMode: 'statistical',
    };
    const first = await startWorker();
    const handle = await env.client.workflow.start<typeof replayCampaign>('replayCampaign', { taskQueue: 'crash', workflowId: 'road-replay-CRASH-1', args: [input] });

    // Let a third of the campaign be stored, then kill the worker (and everything in its process group) at once.
    for (let i = 0; (await storedRuns(campaignId)).length < PLANNED / 3; i++) {
      if (i > 300) throw new Error('the campaign did not make progress');
      await new Promise((r) => setTimeout(r, 50));
    }
    await killRoadWorker(first);
    const beforeCrash = new Set(await storedRuns(campaignId));
    expect(beforeCrash.size).toBeLessThan(PLANNED);

    await startWorker();
    const result = await handle.result();
    expect(result.runs).toBe(PLANNED);

    const stored = await storedRuns(campaignId);
    expect(stored.sort((a, b) => a - b)).toEqual(Array.from({ length: PLANNED }, (_, i) => i));
    const executed = readFileSync(executions, 'utf8').trim().split('\n').map(Number);
    const times = (runIndex: number) => executed.filter((i) => i === runIndex).length;
    // Stored before the crash → executed once. Runs in flight at the crash may have executed twice (never stored the first time).
    for (const runIndex of beforeCrash) expect(times(runIndex)).toBe(1);
    expect(executed.length).toBeLessThanOrEqual(PLANNED + CONCURRENCY);
    for (let i = 0; i < PLANNED; i++) expect(times(i)).toBeGreaterThanOrEqual(1);

    // The same campaign started again (a task run again after a failure) finds every run stored and runs none.
    const again = await env.client.workflow.execute<typeof replayCampaign>('replayCampaign', { taskQueue: 'crash', workflowId: 'road-replay-CRASH-1-again', args: [input] });
    expect(again.verdicts).toEqual(result.verdicts);
    expect(readFileSync(executions, 'utf8').trim().split('\n')).toHaveLength(executed.length);
  }, 120_000);
});
