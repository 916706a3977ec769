/**
 * An improvement loop driven only through the `road` CLI, on the real dev server and a real PostgreSQL, with the real
 * `road worker` process — SIGKILLed once while replay runs and once while the gates wait, and restarted. The loop
 * still completes with one rule per approved task and no duplicate approval requests, replay runs or tasks. Then a
 * Temporal Schedule made with `road schedule create`, triggered at once, starts a loop that `road loop list` shows.
 */
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { storeEvents } from '../../db/events.js';
import { road } from '../helpers/cli.js';
import { killRoadWorker, startRoadWorker } from '../helpers/roadWorker.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import { createTargetRepo, type TargetRepo } from '../helpers/targetRepo.js';
import { devServerEnv } from '../helpers/temporal.js';

const REPEATS = 2;

let env: TestWorkflowEnvironment;
let db: TestDatabase;
let repo: TargetRepo;
let cliEnv: Record<string, string>;
const workers: ChildProcess[] = [];

beforeAll(async () => {
  [env, db] = await Promise.all([devServerEnv(), createTestDatabase()]);
  repo = createTargetRepo();
  for (const key of ['a', 'b']) writeFileSync(path.join(repo.dir, 'src', `fix-${key}.txt`), 'broken\n');
  // Slow enough (0.3 s a run) that the worker can be killed while replay runs.
  writeFileSync(
    path.join(repo.dir, 'replay.sh'),
    `#!/bin/sh\nsleep 0.3\nkey=\${ROAD_CASE_ID%%-*}\nif grep -q fixed "src/fix-$key.txt"; then echo '{"road":{"outcome":"SUCCESS"}}'; else echo '{"road":{"outcome":"FAILED","stop_reason":"crash-'$key'"}}'; fi\n`,
  );
  repo.git('add', '-A');
  repo.git('commit', '-qm', 'two failure modes');
  const executor = repo.executor(
    'fix',
    `file=$(node -e 'console.log(JSON.parse(require("fs").readFileSync(process.env.ROAD_TASK_FILE,"utf8")).allowed_files[0])')\necho fixed > "$file"\ngit commit -qam "Guard $(basename "$file" .txt) against a missing lockfile"`,
  );
  const configFile = path.join(repo.scratch, 'road.config.json');
  writeFileSync(
    configFile,
    JSON.stringify({
      repository: { path: repo.dir },
      executor: { command: executor, timeout: '2m' },
      replay: { command: ['sh', 'replay.sh'], repeats: REPEATS, concurrency: 2, timeout: '1m', taskQueue: 'cli-replay' },
      approval: { reviewers: ['alice@example.com'] },
    }),
  );
  cliEnv = {
    DATABASE_URL: db.url,
    TEMPORAL_ADDRESS: env.address,
    TEMPORAL_NAMESPACE: env.namespace ?? 'default',
    ROAD_TASK_QUEUE: 'cli-loop',
    ROAD_CONFIG: configFile,
    ROAD_HOME: path.join(repo.scratch, 'home'),
  };
  const now = Date.now();
  const events = [
    ...Array.from({ length: 5 }, (_, i) => ({ run_id: `a-${i}`, phase_id: 'build', outcome: 'FAILED', stop_reason: 'crash-a', files: ['src/fix-a.txt'], occurred_at: new Date(now - (i + 1) * 3_600_000).toISOString() })),
    ...Array.from({ length: 3 }, (_, i) => ({ run_id: `b-${i}`, phase_id: 'build', outcome: 'FAILED', stop_reason: 'crash-b', files: ['src/fix-b.txt'], occurred_at: new Date(now - (i + 1) * 3_600_000).toISOString() })),
  ];
  expect((await storeEvents(db.pool, events)).every((r) => r.status === 'accepted')).toBe(true);
});

afterAll(async () => {
  for (const w of workers) await killRoadWorker(w);
  await env?.teardown();
  await db?.drop();
});


async function startWorker(): Promise<ChildProcess> {
  const worker = await startRoadWorker(repo.scratch, cliEnv);
  workers.push(worker);
  return worker;
}

async function until<T>(what: string, fn: () => Promise<T | undefined | false>, timeoutMs = 90_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await fn();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

const cli = async (...args: string[]) => {
  const result = await road(args, cliEnv);
  const json = () => {
    try {
      return JSON.parse(result.stdout);
    } catch {
      throw new Error(`road ${args.join(' ')} exited ${result.code} without JSON:\n${result.stderr}`);
    }
  };
  return { ...result, json };
};
const count = async (sql: string) => Number((await db.pool.query<{ n: string }>(sql)).rows[0]!.n);

describe('road loop, start to prompts, through a crashing worker', () => {
  it('completes with one rule per approved task and nothing duplicated', async () => {
    let worker = await startWorker();
    const started = await cli('loop', 'start', '--id', 'cli-1', '--top-k', '2', '--window', '7d', '--json');
    expect(started.code).toBe(0);
    expect(started.json()).toMatchObject({ loopId: 'cli-1', workflowId: 'road-loop-cli-1' });
    expect(started.json().ui).toContain('/workflows/road-loop-cli-1');

    // Crash 1: while replay runs.
    await until('replay runs', async () => (await count('SELECT count(*) AS n FROM replay_runs')) > 0);
    await killRoadWorker(worker);
    worker = await startWorker();

    // Crash 2: while both gates wait for a reviewer.
    const pending = await until('two approval requests', async () => {
      const r = await cli('pending', '--json');
      const rows = r.json() as Array<{ taskId: string; title: string }>;
      return rows.length === 2 ? rows : undefined;
    });
    await killRoadWorker(worker);
    await startWorker(); // killed in afterAll

    const taskOf = (reason: string) => pending.find((r) => r.title.includes(reason))!.taskId;
    expect((await cli('approve', taskOf('crash-a'), '--reviewer', 'alice@example.com', '--comment', 'replay is clean')).code).toBe(0);
    expect((await cli('reject', taskOf('crash-b'), '--reviewer', 'alice@example.com', '--reason', 'treats the symptom')).code).toBe(0);

    const status = await until('the loop to finish', async () => {
      const s = (await cli('loop', 'status', 'cli-1', '--json')).json();
      return s.workflowStatus === 'COMPLETED' ? s : undefined;
    });
    expect(status.tasks.map((t: { outcome: string }) => t.outcome).sort()).toEqual(['approved', 'rejected']);

    const prompts = await cli('prompts', '--phase', 'build');
    expect(prompts.code).toBe(0);
    expect(prompts.stdout).toContain('Based on past successful fixes in build:');
    expect(prompts.stdout).toContain('- Guard fix-a against a missing lockfile');
    expect(prompts.stdout).not.toContain('fix-b');

    // Nothing duplicated by the crashes.
    expect(await count('SELECT count(*) AS n FROM promoted_rules')).toBe(1);
    expect(await count('SELECT count(*) AS n FROM approval_requests')).toBe(2);
    expect(await count('SELECT count(*) AS n FROM followup_tasks')).toBe(2);
    const perCampaign = await db.pool.query<{ n: string; distinct_runs: string; cases: string }>(
      'SELECT count(*) AS n, count(DISTINCT (case_id, variant, repeat)) AS distinct_runs, count(DISTINCT case_id) AS cases FROM replay_runs GROUP BY campaign_id',
    );
    expect(perCampaign.rows).toHaveLength(2);
    for (const row of perCampaign.rows) {
      expect(Number(row.n)).toBe(Number(row.distinct_runs));
      expect(Number(row.n)).toBe(Number(row.cases) * REPEATS * 2);
    }

    // The same id again is refused, and the list shows the loop.
    const again = await cli('loop', 'start', '--id', 'cli-1');
    expect(again.code).toBe(2);
    expect(again.stderr).toContain('already started');
    const listed = (await cli('loop', 'list', '--json')).json() as Array<{ loopId: string; status: string }>;
    expect(listed).toContainEqual(expect.objectContaining({ loopId: 'cli-1', status: 'COMPLETED' }));
  }, 300_000);

  it('a schedule made with road schedule create, triggered now, starts a loop; delete removes it', async () => {
    expect((await cli('schedule', 'create', '--id', 'nightly', '--every', '1d', '--top-k', '1')).code).toBe(0);
    expect((await cli('schedule', 'list', '--json')).json()).toContainEqual(expect.objectContaining({ id: 'nightly' }));
    expect((await cli('schedule', 'trigger', 'nightly')).code).toBe(0);
    await until('a scheduled loop in road loop list', async () => {
      const rows = (await cli('loop', 'list', '--json')).json() as Array<{ loopId: string }>;
      return rows.some((r) => r.loopId.startsWith('nightly')) || undefined;
    });
    expect((await cli('schedule', 'delete', 'nightly')).code).toBe(0);
    expect((await cli('schedule', 'list', '--json')).json()).not.toContainEqual(expect.objectContaining({ id: 'nightly' }));
    const missing = await cli('schedule', 'delete', 'nightly');
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('no schedule nightly');
  }, 120_000);
});
