/**
 * Replay runs on a real git repository in a temp dir and a real PostgreSQL: the outcome from the exit status or the
 * road line, TIMEOUT with the process tree killed, cancellation, stored once and never rerun, reusable worktrees that
 * every run finds clean at its ref — and the per-run overhead those worktrees buy, measured.
 */
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import { MockActivityEnvironment, type TestWorkflowEnvironment } from '@temporalio/testing';
import { bundleWorkflowCode, DefaultLogger, Worker } from '@temporalio/worker';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createReplayActivities, disposeReplayWorktrees, type ReplayRunInput } from '../../activities/replay.js';
import { WORKTREE_ROOT } from '../../activities/worktreePool.js';
import { loadCampaign } from '../../db/replay.js';
import { configSchema, type RoadConfig } from '../../domain/config.js';
import type { ReplayRunResult } from '../../domain/replay.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import { createTestRepo, eventually, isRunning, pidsIn, removeScratchDirs, scratchDir, writeScript, type TestRepo } from '../helpers/gitRepo.js';
import { timeSkippingEnv } from '../helpers/temporal.js';

let db: TestDatabase;
let repo: TestRepo;
let side: string;
let baselineSha: string;
let treatmentSha: string;
let config: RoadConfig;
let activities: ReturnType<typeof createReplayActivities>;

const TASK = 'FAILURE-1';
let campaignCounter = 0;

/** The replay command: what it does depends on the case id, and it writes down what it saw. */
const REPLAY_SCRIPT = `
side="$1"
echo "$ROAD_RUN_INDEX" >> "$side/ran"
printf '%s|%s|%s|%s|%s|%s|%s|%s\\n' "$ROAD_RUN_INDEX" "$ROAD_VARIANT" "$ROAD_REF" "$ROAD_CASE_ID" "$ROAD_PHASE_ID" "$ROAD_REPEAT" "$(cat version.txt)" "$(pwd)" >> "$side/env"
# Every run must start from a clean tree at its ref, whatever the run before it did there.
if [ -n "$(git status --porcelain --ignored)" ] || [ "$(git rev-parse HEAD)" != "$ROAD_REF" ]; then echo "dirty worktree" >&2; exit 9; fi
case "$ROAD_CASE_ID" in
  pass) exit 0 ;;
  fail) echo "assertion failed" >&2; exit 4 ;;
  report) echo "agent log line"; echo '{"road":{"outcome":"STUCK","tokens":1234,"duration_ms":777,"stop_reason":"loop detected","retries":2}}'; exit 1 ;;
  invalid) echo '{"road":{"outcome":"MAYBE"}}' ;;
  dirty)
    echo junk > untracked.txt; echo changed >> version.txt; mkdir -p build; echo x > build/out
    git -c user.name=r -c user.email=r@x -c commit.gpgsign=false commit --quiet -am moved
    git switch --quiet -c "scratch-$ROAD_RUN_INDEX" ;;
  hang) sleep 100 & echo $! >> "$side/pids"; echo $$ >> "$side/pids"; wait ;;
  exclusive) mkdir .in-use; sleep 0.2; rmdir .in-use ;;
esac
`;

beforeAll(async () => {
  db = await createTestDatabase();
  repo = createTestRepo({ 'version.txt': 'baseline\n', '.gitignore': 'build/\n', 'src/agent.py': 'print(1)\n' });
  baselineSha = repo.sha('main');
  repo.git('switch', '--quiet', '-c', `road/${TASK}`);
  treatmentSha = repo.commit('the fix', { 'version.txt': 'treatment\n' });
  repo.git('switch', '--quiet', 'main');
  side = scratchDir('road-test-replay-side-');
  const script = writeScript(scratchDir('road-test-replay-cmd-'), 'replay.sh', REPLAY_SCRIPT);
  config = configSchema.parse({ repository: { path: repo.dir }, replay: { command: ['sh', script, side], timeout: '1s' } });
  activities = createReplayActivities({ pool: db.pool, config });
});

afterAll(async () => {
  await disposeReplayWorktrees();
  await db.drop();
  repo.remove();
  removeScratchDirs();
});

const quiet = new DefaultLogger('ERROR');
const run = <I, R>(activity: (input: I) => Promise<R>, input: I, attempt = 1): Promise<R> =>
  new MockActivityEnvironment({ attempt }, { logger: quiet }).run(activity, input) as Promise<R>;

async function newCampaign(acts = activities): Promise<string> {
  const campaignId = `${TASK}.${++campaignCounter}@${treatmentSha.slice(0, 12)}`;
  await run(acts.startCampaignRecord, { campaignId, taskId: TASK, baselineSha, treatmentSha, settings: { repeats: 1, cases: [{ id: 'pass' }] } });
  return campaignId;
}

let runCounter = 0;
function runInput(campaignId: string, caseId: string, variant: 'baseline' | 'treatment' = 'baseline', overrides: Partial<ReplayRunInput> = {}): ReplayRunInput {
  return {
    campaignId,
    taskId: TASK,
    caseId,
    phaseId: 'plan',
    variant,
    ref: variant === 'baseline' ? baselineSha : treatmentSha,
    repeat: runCounter++,
    runIndex: runCounter,
    ...overrides,
  };
}

/** Lines the command wrote to $side/env for one run index. */
function seen(runIndex: number): string[][] {
  return readFileSync(path.join(side, 'env'), 'utf8')
    .split('\n')
    .filter((line) => line.startsWith(`${runIndex}|`))
    .map((line) => line.split('|'));
}
const timesRan = (runIndex: number) => readFileSync(path.join(side, 'ran'), 'utf8').split('\n').filter((l) => l === String(runIndex)).length;

async function failureOf(promise: Promise<unknown>): Promise<ApplicationFailure> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(ApplicationFailure);
  return error as ApplicationFailure;
}

describe('runReplay', () => {
  it('runs the command in a worktree of its ref with the run described in the environment', async () => {
    const campaignId = await newCampaign();
    const baseline = runInput(campaignId, 'pass', 'baseline');
    const treatment = runInput(campaignId, 'pass', 'treatment', { phaseId: null });
    const [b, t] = [await run(activities.runReplay, baseline), await run(activities.runReplay, treatment)];
    expect([b.outcome, b.exitCode, t.outcome]).toEqual(['SUCCESS', 0, 'SUCCESS']);
    const [[, variant, ref, caseId, phaseId, repeat, version, cwd]] = seen(baseline.runIndex) as [string[]];
    expect({ variant, ref, caseId, phaseId, repeat, version }).toEqual({
      variant: 'baseline',
      ref: baselineSha,
      caseId: 'pass',
      phaseId: 'plan',
      repeat: String(baseline.repeat),
      version: 'baseline',
    });
    expect(cwd!.startsWith(WORKTREE_ROOT)).toBe(true);
    // The treatment run saw the treatment's files, and an empty ROAD_PHASE_ID for a case without a phase.
    expect(seen(treatment.runIndex)[0]!.slice(1, 7)).toEqual(['treatment', treatmentSha, 'pass', '', String(treatment.repeat), 'treatment']);
  });

  it('takes the outcome from the exit status when the command prints no road line', async () => {
    const campaignId = await newCampaign();
    const failed = await run(activities.runReplay, runInput(campaignId, 'fail'));
    expect(failed).toMatchObject({ outcome: 'FAILED', exitCode: 4, tokens: null, stopReason: null, retries: null });
    expect(failed.durationMs).toBeGreaterThanOrEqual(0);
    expect(failed.durationMs).toBeLessThan(1_000);
  });

  it('takes the outcome, tokens, duration, stop reason and retries from the last stdout line, over the exit status', async () => {
    const campaignId = await newCampaign();
    const reported = await run(activities.runReplay, runInput(campaignId, 'report', 'treatment'));
    expect(reported).toMatchObject({ outcome: 'STUCK', tokens: 1234, durationMs: 777, stopReason: 'loop detected', retries: 2, exitCode: 1, ref: treatmentSha });
  });

  it('counts a road line with a bad outcome as FAILED and says what was wrong', async () => {
    const campaignId = await newCampaign();
    const invalid = await run(activities.runReplay, runInput(campaignId, 'invalid'));
    expect(invalid.outcome).toBe('FAILED');
    expect(invalid.exitCode).toBe(0);
    expect(invalid.stopReason).toBe('invalid road line: road.outcome must be one of SUCCESS, FAILED, TIMEOUT, STUCK');
  });

  it('reports TIMEOUT after replay.timeout, stores it, and leaves no process of the run alive', async () => {
    const campaignId = await newCampaign();
    const input = runInput(campaignId, 'hang');
    const started = performance.now();
    const result = await run(activities.runReplay, input);
    const elapsed = performance.now() - started;
    expect(result.outcome).toBe('TIMEOUT');
    expect(result.stopReason).toBe('killed after replay.timeout (1s)');
    expect(result.exitCode).toBeNull(); // ended by a signal
    expect(elapsed).toBeGreaterThanOrEqual(1_000);
    expect(elapsed).toBeLessThan(30_000); // killed at the timeout, not left to run its 100 s (a loaded machine is slow)
    const pids = pidsIn(path.join(side, 'pids'));
    expect(pids).toHaveLength(2); // the shell and its background sleep
    await eventually(() => pids.every((pid) => !isRunning(pid)), 'the timed-out run and its sleep to be gone');
    expect(await run(activities.storedReplayRuns, { campaignId })).toEqual([result]);
  });

  it('kills the process tree when the activity is cancelled, and stores nothing', async () => {
    const campaignId = await newCampaign();
    const before = pidsIn(path.join(side, 'pids')).length;
    const env = new MockActivityEnvironment({ attempt: 1 }, { logger: quiet });
    const heartbeats: unknown[] = [];
    env.on('heartbeat', (details: unknown) => heartbeats.push(details));
    const slow = createReplayActivities({ pool: db.pool, config: { ...config, replay: { ...config.replay!, timeout: '1m' } } });
    const running = env.run(slow.runReplay, runInput(campaignId, 'hang')) as Promise<ReplayRunResult>;
    await eventually(() => pidsIn(path.join(side, 'pids')).length === before + 2, 'the run to start');
    await eventually(() => heartbeats.length >= 1, 'a heartbeat', 3_000);
    env.cancel();
    await expect(running).rejects.toBeInstanceOf(CancelledFailure);
    const pids = pidsIn(path.join(side, 'pids')).slice(before);
    await eventually(() => pids.every((pid) => !isRunning(pid)), 'the cancelled run and its sleep to be gone');
    expect(await run(activities.storedReplayRuns, { campaignId })).toEqual([]);
  });

  it('stores a run once: asked again, it returns the stored run without running the command', async () => {
    const campaignId = await newCampaign();
    const input = runInput(campaignId, 'fail');
    const first = await run(activities.runReplay, input);
    const second = await run(activities.runReplay, input, 2);
    expect(second).toEqual(first);
    expect(timesRan(input.runIndex)).toBe(1);
    const { rows } = await db.pool.query('SELECT count(*)::int AS n FROM replay_runs WHERE campaign_id = $1', [campaignId]);
    expect(rows[0].n).toBe(1);
    // Another worker process (another factory) finds it too.
    expect(await run(createReplayActivities({ pool: db.pool, config }).runReplay, input)).toEqual(first);
    expect(timesRan(input.runIndex)).toBe(1);
  });

  it('refuses a run index stored for another case or arm (non-retryable: a bug upstream, not a rerun)', async () => {
    const campaignId = await newCampaign();
    const input = runInput(campaignId, 'pass');
    await run(activities.runReplay, input);
    const failure = await failureOf(run(activities.runReplay, { ...input, caseId: 'fail' }));
    expect([failure.type, failure.nonRetryable]).toEqual(['ReplayRunConflict', true]);
  });

  it('gives every run a clean worktree at its ref, whatever the previous run left there', async () => {
    const campaignId = await newCampaign();
    // One at a time: the pool keeps at most 2 worktrees per ref (one spare), so runs reuse worktrees dirty runs left.
    const cases = ['dirty', 'pass', 'dirty', 'pass', 'dirty', 'pass', 'dirty', 'pass'];
    const results: ReplayRunResult[] = [];
    for (const caseId of cases) results.push(await run(activities.runReplay, runInput(campaignId, caseId, 'treatment')));
    // Each run checks its tree first and exits 9 (FAILED) when it is not clean at its ref.
    expect(results.map((r) => r.outcome)).toEqual(Array(cases.length).fill('SUCCESS'));
    const cwds = results.map((r) => seen(r.runIndex)[0]![7]!);
    expect(new Set(cwds).size).toBeLessThanOrEqual(2);
    const reusedAfterDirt = cases.filter((caseId, i) => caseId === 'dirty' && cwds.indexOf(cwds[i]!, i + 1) > i).length;
    expect(reusedAfterDirt).toBeGreaterThanOrEqual(2);
    // The runs' commits and branches never moved the refs being replayed.
    expect(repo.sha(`road/${TASK}`)).toBe(treatmentSha);
    expect(repo.sha('main')).toBe(baselineSha);
  });

  it('never lets two concurrent runs share a worktree', async () => {
    const campaignId = await newCampaign();
    const inputs = Array.from({ length: 8 }, () => runInput(campaignId, 'exclusive', 'baseline'));
    const results = await Promise.all(inputs.map((input) => run(activities.runReplay, input)));
    // mkdir .in-use fails in a worktree another run is using; a dirty start exits 9.
    expect(results.map((r) => r.outcome)).toEqual(Array(8).fill('SUCCESS'));
    expect(new Set(inputs.map((i) => seen(i.runIndex)[0]![7])).size).toBe(8);
  });

  it.each([
    ['no replay section', () => configSchema.parse({ repository: { path: repo.dir } }), 'InvalidConfiguration', 'replay is not set'],
    ['no repository', () => configSchema.parse({ replay: { command: ['true'] } }), 'InvalidConfiguration', 'repository is not set'],
    ['a program that does not exist', () => configSchema.parse({ repository: { path: repo.dir }, replay: { command: ['/nonexistent/replay'] } }), 'InvalidConfiguration', 'replay.command[0] cannot start /nonexistent/replay'],
  ])('refuses %s as non-retryable %s', async (_name, makeConfig, type, message) => {
    const campaignId = await newCampaign();
    const failure = await failureOf(run(createReplayActivities({ pool: db.pool, config: makeConfig() }).runReplay, runInput(campaignId, 'pass')));
    expect([failure.type, failure.nonRetryable]).toEqual([type, true]);
    expect(failure.message).toContain(message);
  });

  it('refuses a ref this worker cannot find, and a run of a campaign never recorded', async () => {
    const campaignId = await newCampaign();
    const unknown = await failureOf(run(activities.runReplay, runInput(campaignId, 'pass', 'baseline', { ref: 'f'.repeat(40) })));
    expect([unknown.type, unknown.nonRetryable]).toEqual(['InvalidInput', true]);
    expect(unknown.message).toContain(`ref ${'f'.repeat(40)} names no commit`);
    const orphan = await failureOf(run(activities.runReplay, runInput('NOPE-1@000000000000', 'pass')));
    expect([orphan.type, orphan.nonRetryable]).toEqual(['DatabaseRefused', true]);
    expect(orphan.message).toContain('replay_runs_campaign_id_fkey');
  });
});

describe('a run that writes nothing is put back without git; any write is still found', () => {
  // No git inside this command (git status would refresh the index): only the pool's own check sees the changes.
  const PLAIN_SCRIPT = `
side="$1"
echo "$ROAD_RUN_INDEX $(pwd)" >> "$side/plain-cwd"
case "$ROAD_CASE_ID" in
  noop) ;;
  same-size) printf 'BASELINE\\n' > version.txt ;;
  mode) chmod +x version.txt ;;
  new-file) mkdir -p deep/er && echo x > deep/er/file ;;
  remove) rm src/agent.py ;;
  check) [ "$(cat version.txt)" = baseline ] && [ ! -x version.txt ] && [ ! -e deep ] && [ -f src/agent.py ] || exit 7 ;;
esac
`;
  const cwdOf = (runIndex: number) =>
    readFileSync(path.join(side, 'plain-cwd'), 'utf8')
      .split('\n')
      .find((line) => line.startsWith(`${runIndex} `))!
      .slice(String(runIndex).length + 1);

  it.each(['same-size', 'mode', 'new-file', 'remove'])('finds a %s change in a worktree trusted as clean', async (change) => {
    const plain = createReplayActivities({
      pool: db.pool,
      config: configSchema.parse({ repository: { path: repo.dir }, replay: { command: ['sh', writeScript(scratchDir('road-test-plain-'), 'plain.sh', PLAIN_SCRIPT), side] } }),
    });
    const campaignId = await newCampaign(plain);
    // Runs that write nothing, spaced beyond the racy window, until the worktree's snapshot is trusted.
    for (let i = 0; i < 3; i++) {
      await run(plain.runReplay, runInput(campaignId, 'noop'));
      await new Promise((resolve) => setTimeout(resolve, 150));
    }
    const mutate = runInput(campaignId, change);
    const check = runInput(campaignId, 'check');
    expect((await run(plain.runReplay, mutate)).outcome).toBe('SUCCESS');
    // Time for a restore to finish, so that the check gets this worktree back rather than a spare.
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect((await run(plain.runReplay, check)).outcome).toBe('SUCCESS'); // exit 7 if the change survived
    expect(cwdOf(check.runIndex)).toBe(cwdOf(mutate.runIndex)); // the same worktree, restored
  });
});

describe('campaign records', () => {
  it('records a campaign once, refuses its id for other refs, stores the report and lists runs in order', async () => {
    const campaignId = `${TASK}.record@${treatmentSha.slice(0, 12)}`;
    const start = { campaignId, taskId: TASK, workflowId: `road-replay-${TASK}`, baselineSha, treatmentSha, settings: { cases: [{ id: 'a' }, { id: 'b' }], repeats: 3 } };
    const first = await run(activities.startCampaignRecord, start);
    // 2 cases × 3 repeats × 2 arms.
    expect(first).toEqual({ campaignId, status: 'running', verdict: null, runsStored: 0, runsPlanned: 12 });
    expect(await run(activities.startCampaignRecord, start)).toEqual(first);
    const conflict = await failureOf(run(activities.startCampaignRecord, { ...start, treatmentSha: 'a'.repeat(40) }));
    expect([conflict.type, conflict.nonRetryable]).toEqual(['CampaignConflict', true]);

    const later = runInput(campaignId, 'pass', 'treatment', { runIndex: 5 });
    const earlier = runInput(campaignId, 'fail', 'baseline', { runIndex: 2 });
    await run(activities.runReplay, later);
    await run(activities.runReplay, earlier);
    expect((await run(activities.storedReplayRuns, { campaignId })).map((r) => [r.runIndex, r.outcome])).toEqual([
      [2, 'FAILED'],
      [5, 'SUCCESS'],
    ]);

    const report = { schema: 'road.replay/v1', gating: { mode: 'statistical', verdict: 'INCONCLUSIVE' } };
    const saved = await run(activities.saveCampaignReport, { campaignId, report, markdown: '# Replay\n' });
    expect(saved).toEqual({ campaignId, status: 'completed', verdict: 'INCONCLUSIVE', runsStored: 2, runsPlanned: 12 });
    // A retry keeps the first report; a late "failed" does not undo a completed campaign.
    await run(activities.saveCampaignReport, { campaignId, report: { ...report, gating: { mode: 'seed', verdict: 'PROMOTE' } }, markdown: 'other' });
    await run(activities.finishCampaignRecord, { campaignId, status: 'failed', error: 'late' });
    const stored = await loadCampaign(db.pool, { taskId: TASK });
    expect(stored).toMatchObject({ campaignId, status: 'completed', verdict: 'INCONCLUSIVE', report, reportMarkdown: '# Replay\n', workflowId: `road-replay-${TASK}`, error: null });
  });
});

// Per-run overhead is a benchmark's to measure (npm run bench:replay), not a timed test's: see README.

describe('worktree pool', () => {
  it('removes every replay worktree of this process on dispose, and creates new ones after', async () => {
    expect(repo.worktrees().length).toBeGreaterThan(1);
    await disposeReplayWorktrees();
    expect(repo.worktrees()).toEqual([repo.dir]);
    const own = readdirSync(WORKTREE_ROOT, { recursive: true, encoding: 'utf8' }).filter((p) => p.includes(`-${process.pid}-`));
    expect(own).toEqual([]);
    const campaignId = await newCampaign();
    expect((await run(activities.runReplay, runInput(campaignId, 'pass'))).outcome).toBe('SUCCESS');
  });
});

describe('through a Worker on the time-skipping server', () => {
  let env: TestWorkflowEnvironment;
  let worker: Worker;
  let workerRun: Promise<void>;
  const taskQueue = 'road-replay-test';

  beforeAll(async () => {
    env = await timeSkippingEnv();
    const workflowBundle = await bundleWorkflowCode({
      workflowsPath: fileURLToPath(new URL('../fixtures/workflows/replayProbe.ts', import.meta.url)),
      logger: new DefaultLogger('WARN'),
    });
    const slow = createReplayActivities({ pool: db.pool, config: { ...config, replay: { ...config.replay!, timeout: '1m' } } });
    worker = await Worker.create({ connection: env.nativeConnection, taskQueue, workflowBundle, activities: slow });
    workerRun = worker.run();
  });
  afterAll(async () => {
    worker?.shutdown();
    await workerRun;
    await env?.teardown();
  });

  it('stores a run through a real activity task, and a cancellation from the workflow kills its tree', async () => {
    const campaignId = await newCampaign();
    const ok = runInput(campaignId, 'report', 'treatment');
    const result = await env.client.workflow.execute('replayProbe', { taskQueue, workflowId: `probe-${ok.runIndex}`, args: [ok] });
    expect(result).toMatchObject({ outcome: 'STUCK', tokens: 1234, runIndex: ok.runIndex });
    expect(timesRan(ok.runIndex)).toBe(1);

    const before = pidsIn(path.join(side, 'pids')).length;
    const hang = runInput(campaignId, 'hang');
    const handle = await env.client.workflow.start('replayProbe', { taskQueue, workflowId: `probe-${hang.runIndex}`, args: [hang] });
    await eventually(() => pidsIn(path.join(side, 'pids')).length === before + 2, 'the hanging run to start', 10_000);
    await handle.signal('cancelRun');
    expect(await handle.result()).toBe('cancelled');
    const pids = pidsIn(path.join(side, 'pids')).slice(before);
    await eventually(() => pids.every((pid) => !isRunning(pid)), 'the cancelled run and its sleep to be gone');
    expect((await run(activities.storedReplayRuns, { campaignId })).map((r) => r.runIndex)).toEqual([ok.runIndex]);
  });
});

