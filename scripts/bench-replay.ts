/**
 * `npm run bench:replay [-- --runs 200 --sleep-ms 100 --concurrency 8]`: one replay campaign on the Temporal dev
 * server and a real PostgreSQL, whose command sleeps 100 ms, at concurrency 8. Prints, in one run:
 *   - wall time (workflow start → result, including recording and comparing) against the ideal runs × sleep / concurrency;
 *   - per-run orchestration overhead: from the activity's scheduling to its completion, minus the time the command ran
 *     (median, p95) — what ROAD adds around each run;
 *   - the same campaign again with 2 replay workers polling the replay queue (the ideal is unchanged: concurrency is the
 *     campaign's bound; a second worker shows that the bound, not a worker, sets the pace, and what sharing costs).
 */
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { bundleWorkflowCode, DefaultLogger, NativeConnection, Worker } from '@temporalio/worker';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createActivities } from '../activities/index.js';
import { disposeReplayWorktrees } from '../activities/replay.js';
import { createPool } from '../db/pool.js';
import { configSchema } from '../domain/config.js';
import { WORKFLOWS_PATH } from '../workers/worker.js';
import { installRuntime } from '../workers/runtime.js';
import type { replayCampaign } from '../workflows/replayCampaign.js';
import { SEARCH_ATTRIBUTES } from '../workflows/definitions.js';
import { benchDatabase } from './bench-database.js';
import { toolPaths } from './provision.js';

const args = process.argv.slice(2);
const flag = (name: string, fallback: number) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : fallback;
};
const RUNS = flag('runs', 200);
const SLEEP_MS = flag('sleep-ms', 100);
const CONCURRENCY = flag('concurrency', 8);
const REPEATS = 10;
if (RUNS % (2 * REPEATS) !== 0) throw new Error(`--runs must be a multiple of ${2 * REPEATS}`);
const CASES = RUNS / (2 * REPEATS);
const IDEAL_MS = (RUNS * SLEEP_MS) / CONCURRENCY;

const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
const ms = (n: number) => `${n.toFixed(1)} ms`;

installRuntime({ level: 'ERROR', shutdownSignals: [] });
const db = await benchDatabase('road_bench_replay');
const pool = createPool(db.url, 20);
const env = await TestWorkflowEnvironment.createLocal({
  server: {
    executable: { type: 'existing-path', path: toolPaths().temporalCli },
    ip: '127.0.0.1',
    extraArgs: Object.entries(SEARCH_ATTRIBUTES).flatMap(([name, type]) => ['--search-attribute', `${name}=${type === 'KEYWORD' ? 'Keyword' : 'KeywordList'}`]),
  },
});
const root = mkdtempSync(path.join(os.tmpdir(), 'road-bench-replay-'));
try {
  const repo = path.join(root, 'repo');
  mkdirSync(repo);
  const git = (...a: string[]) => execFileSync('git', a, { cwd: repo, encoding: 'utf8' }).trim();
  git('init', '-q', '-b', 'main');
  writeFileSync(path.join(repo, 'README'), 'bench\n');
  git('-c', 'user.name=bench', '-c', 'user.email=bench@example.com', 'commit', '-qm', 'baseline', '--allow-empty', '-a');
  git('add', 'README');
  git('-c', 'user.name=bench', '-c', 'user.email=bench@example.com', 'commit', '-qm', 'readme');
  const baseline = git('rev-parse', 'HEAD~1');
  const treatment = git('rev-parse', 'HEAD');

  const config = configSchema.parse({
    repository: { path: repo },
    replay: { command: ['sleep', String(SLEEP_MS / 1000)], repeats: REPEATS, concurrency: CONCURRENCY, timeout: '1m', taskQueue: 'bench-replay' },
  });
  const workflowBundle = await bundleWorkflowCode({ workflowsPath: WORKFLOWS_PATH, logger: new DefaultLogger('ERROR') });
  const activities = createActivities({ pool, config, reportsDir: path.join(root, 'reports') });
  const main = await Worker.create({ connection: env.nativeConnection, taskQueue: 'bench', workflowBundle, activities });
  const replayWorker = async () =>
    Worker.create({
      connection: await NativeConnection.connect({ address: env.address }),
      taskQueue: 'bench-replay',
      activities,
      maxConcurrentActivityTaskExecutions: CONCURRENCY * 2,
    });

  /** One campaign, start to result; overheads from its history and the stored runs. */
  const runCampaign = async (label: string) => {
    const campaignId = `BENCH-${label}@${treatment.slice(0, 12)}`;
    const started = performance.now();
    const handle = await env.client.workflow.start<typeof replayCampaign>('replayCampaign', {
      taskQueue: 'bench',
      workflowId: `bench-replay-${label}`,
      args: [
        {
          campaignId,
          taskId: `BENCH-${label}`,
          taskType: 'failure_mode',
          failureStopReason: null,
          baselineRef: 'HEAD~1',
          baselineSha: baseline,
          treatmentSha: treatment,
          cases: Array.from({ length: CASES }, (_, i) => ({ id: `case-${i}`, phaseId: 'bench' })),
          repeats: REPEATS,
          concurrency: CONCURRENCY,
          runTimeoutMs: 60_000,
          taskQueue: 'bench-replay',
          decisionMode: 'statistical',
        },
      ],
    });
    await handle.result();
    const wallMs = performance.now() - started;
    const events = (await handle.fetchHistory()).events ?? [];
    const at = (e: (typeof events)[number]) => Number(e.eventTime!.seconds) * 1000 + Math.floor((e.eventTime!.nanos ?? 0) / 1e6);
    const scheduled = new Map<string, number>();
    const overheads: number[] = [];
    const { rows } = await pool.query<{ run_index: number; duration_ms: string }>('SELECT run_index, duration_ms FROM replay_runs WHERE campaign_id = $1', [campaignId]);
    const commandMs = new Map(rows.map((r) => [r.run_index, Number(r.duration_ms)]));
    for (const e of events) {
      const s = e.activityTaskScheduledEventAttributes;
      if (s?.activityType?.name === 'runReplay') {
        const input = JSON.parse(Buffer.from(s.input!.payloads![0]!.data!).toString()) as { runIndex: number };
        scheduled.set(String(e.eventId), input.runIndex);
        scheduled.set(`t${e.eventId}`, at(e));
      }
      const c = e.activityTaskCompletedEventAttributes;
      if (c && scheduled.has(String(c.scheduledEventId))) {
        const runIndex = scheduled.get(String(c.scheduledEventId))!;
        overheads.push(at(e) - scheduled.get(`t${c.scheduledEventId}`)! - commandMs.get(runIndex)!);
      }
    }
    overheads.sort((a, b) => a - b);
    return { wallMs, overheads };
  };

  // Each measurement: its replay workers poll while the campaign runs, then shut down.
  const measure = async (label: string, workers: number) => {
    const replayWorkers = await Promise.all(Array.from({ length: workers }, replayWorker));
    const running = replayWorkers.map((w) => w.run());
    try {
      return await runCampaign(label);
    } finally {
      for (const w of replayWorkers) w.shutdown();
      await Promise.all(running);
    }
  };

  const mainRunning = main.run();
  console.log(`replay campaign: ${RUNS} runs (${CASES} cases × ${REPEATS} repeats × 2 arms) of \`sleep ${SLEEP_MS / 1000}\`, concurrency ${CONCURRENCY}; ideal ${ms(IDEAL_MS)}`);
  // The first campaign also creates the worktrees (one per ref and slot) and warms the plans: shown, then the steady state.
  for (const [label, workers] of [['cold', 1], ['one', 1], ['two', 2]] as const) {
    const { wallMs, overheads } = await measure(label, workers);
    console.log(
      `  ${label === 'cold' ? 'first campaign, 1 replay worker' : `${workers} replay worker${workers > 1 ? 's' : ' '}`}: wall ${ms(wallMs)} = ${(wallMs / IDEAL_MS).toFixed(2)}× the ideal (target ≤ 1.20×); ` +
        `per-run overhead median ${ms(percentile(overheads, 50))}, p95 ${ms(percentile(overheads, 95))}`,
    );
  }
  main.shutdown();
  await mainRunning;
} finally {
  await disposeReplayWorktrees();
  await env.teardown();
  await pool.end();
  await db.release();
  rmSync(root, { recursive: true, force: true });
}
