/**
 * The demo is `npm start`'s main job. The real `road dev`, in a fresh directory with an empty database, loads the
 * sample telemetry, creates the demo repository and starts loop `demo`; the CLI sees approval requests, approves them,
 * and the rule a fix became is served by `road prompts`. A second start reloads and restarts nothing; `--no-demo`
 * loads nothing. Around it: the telemetry is what the demo repository's code really does, and the demo/real decision.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { DEMO_REPO_TEMPLATE, DEMO_REVIEWERS, DEMO_TELEMETRY, demoDecision, prepareDemoRepository } from '../../client/demo.js';
import { configSchema, withEnvironment } from '../../domain/config.js';
import type { LoopStatus } from '../../domain/loop.js';
import { freePort, PROJECT_ROOT } from '../../scripts/provision.js';
import { road } from '../helpers/cli.js';
import { cliIn, devSql, until } from '../helpers/roadDev.js';

interface SampleEvent {
  run_id: string;
  phase_id: string;
  attempt: number;
  outcome: string;
  stop_reason: string;
  tokens_used: number;
  occurred_at: string;
}
const SAMPLE: SampleEvent[] = readFileSync(DEMO_TELEMETRY, 'utf8')
  .split('\n')
  .filter(Boolean)
  .map((line) => JSON.parse(line) as SampleEvent);

const scratch: string[] = [];
afterAll(() => {
  for (const dir of scratch) rmSync(dir, { recursive: true, force: true });
});
function tempDir(prefix: string): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), prefix));
  scratch.push(dir);
  return dir;
}

describe('the sample telemetry', () => {
  it('spans 5 days of runs with retries, tests, commits and files of the demo repository, under 2 MB', () => {
    expect(readFileSync(DEMO_TELEMETRY).length).toBeLessThan(2 * 1024 * 1024);
    const times = SAMPLE.map((e) => Date.parse(e.occurred_at));
    expect((Math.max(...times) - Math.min(...times)) / 86_400_000).toBeGreaterThan(4.5);
    expect(new Set(SAMPLE.map((e) => e.phase_id))).toEqual(new Set(['auth-migration', 'schema-codegen', 'api-tests', 'docs-build']));
    expect(SAMPLE.some((e) => e.attempt > 1)).toBe(true);
    const files = new Set(SAMPLE.flatMap((e) => (e as unknown as { files: string[] }).files));
    const template = execFileSync('find', ['.', '-type', 'f'], { cwd: DEMO_REPO_TEMPLATE, encoding: 'utf8' }).split('\n').map((f) => f.replace(/^\.\//, ''));
    for (const file of files) expect(template, `${file} of the telemetry is in the demo repository`).toContain(file);
  });

  it('records only failures the demo repository\'s code really has: replaying each failed attempt reproduces it', () => {
    // Rate limits are the model provider's, not the code's; every other failure must come back from the code.
    const failures = SAMPLE.filter((e) => e.outcome !== 'SUCCESS' && e.stop_reason !== 'rate_limited');
    expect(failures.length).toBeGreaterThan(100);
    const script = 'while read -r run phase attempt; do ROAD_CASE_ID=$run ROAD_PHASE_ID=$phase ROAD_ATTEMPT_REPLAYED=$attempt sh ./replay.sh | tail -n 1; done';
    const lines = execFileSync('sh', ['-c', script], {
      cwd: DEMO_REPO_TEMPLATE,
      input: failures.map((e) => `${e.run_id} ${e.phase_id} ${e.attempt}\n`).join(''),
      encoding: 'utf8',
    }).trim().split('\n');
    const replayed = lines.map((line) => (JSON.parse(line) as { road: { outcome: string; stop_reason: string } }).road);
    expect(replayed.map((r) => `${r.outcome} ${r.stop_reason}`)).toEqual(failures.map((e) => `${e.outcome} ${e.stop_reason}`));
  });
});

describe('demo or not', () => {
  const repoDir = '/tmp/demo-repo';
  it('is the demo on a fresh clone: the demo repository, executor, replay and reviewers under the user\'s settings', () => {
    const user = configSchema.parse({ approval: { timeout: '3d' }, tasks: { maxAttempts: 1 } });
    const decision = demoDecision(user, { demo: true, repoDir });
    if (!decision.enabled) throw new Error(decision.why);
    expect(decision.config.repository).toMatchObject({ path: repoDir, baselineRef: 'main' });
    expect(decision.config.executor).toMatchObject({ command: [process.execPath, expect.stringMatching(/examples\/demo\/executor\.mjs$/)] });
    expect(decision.config.replay).toMatchObject({ command: ['sh', 'replay.sh'] });
    expect(decision.config.approval).toEqual({ reviewers: DEMO_REVIEWERS, timeout: '3d' });
    expect(decision.config.tasks.maxAttempts).toBe(1);
    const ownReviewers = demoDecision(configSchema.parse({ approval: { reviewers: ['carol@example.com'] } }), { demo: true, repoDir });
    expect(ownReviewers.enabled && ownReviewers.config.approval.reviewers).toEqual(['carol@example.com']);
  });

  it('is no demo with --no-demo, a real database, or a repository, executor or replay of one\'s own — and says why', () => {
    expect(demoDecision(configSchema.parse({}), { demo: false, repoDir })).toEqual({ enabled: false, why: expect.stringContaining('--no-demo') });
    const withUrl = withEnvironment(configSchema.parse({}), { DATABASE_URL: 'postgres://road@db:5432/road' });
    expect(demoDecision(withUrl, { demo: true, repoDir })).toEqual({ enabled: false, why: expect.stringContaining('DATABASE_URL') });
    const own = [
      [{ repository: { path: '/srv/agent' } }, 'repository'],
      [{ executor: { command: ['./fix.sh'] } }, 'executor'],
      [{ replay: { command: ['./replay.sh'] } }, 'replay'],
    ] as const;
    for (const [raw, key] of own) {
      expect(demoDecision(configSchema.parse(raw), { demo: true, repoDir })).toEqual({ enabled: false, why: expect.stringContaining(`configures ${key}`) });
    }
  });

  it('makes the demo repository once, with the same baseline commit on every machine, and keeps it', () => {
    const first = path.join(tempDir('road-demo-repo-'), 'repo');
    const second = path.join(tempDir('road-demo-repo-'), 'repo');
    const a = prepareDemoRepository(first);
    const b = prepareDemoRepository(second);
    expect(a.created && b.created).toBe(true);
    expect(a.baselineSha).toMatch(/^[0-9a-f]{40}$/);
    expect(b.baselineSha).toBe(a.baselineSha);
    expect(prepareDemoRepository(first)).toEqual({ created: false, baselineSha: a.baselineSha });
    expect(execFileSync('git', ['status', '--porcelain'], { cwd: first, encoding: 'utf8' })).toBe('');
  });
});

// ---------------------------------------------------------------- the real `road dev`

interface RoadDev {
  child: ChildProcess;
  output(): string;
  stop(): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** `road dev` in `dir`, as `npm start` runs it there, until it says it runs. */
async function startRoadDev(dir: string, args: string[] = []): Promise<RoadDev> {
  const env: NodeJS.ProcessEnv = { ...process.env, ROAD_HOME: path.join(dir, '.road'), ROAD_CONFIG: path.join(dir, 'road.config.json') };
  for (const name of ['DATABASE_URL', 'TEMPORAL_ADDRESS', 'VITEST', 'VITEST_POOL_ID', 'VITEST_WORKER_ID', 'NODE_OPTIONS']) delete env[name];
  const child = spawn(process.execPath, [path.join(PROJECT_ROOT, 'bin', 'road.js'), 'dev', ...args], { cwd: dir, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let output = '';
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('close', (code, signal) => resolve({ code, signal })));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`road dev was not running after 120 s:\n${output}`)), 120_000);
    const check = setInterval(() => {
      if (!output.includes('ROAD dev is running.')) return;
      clearInterval(check);
      clearTimeout(timer);
      resolve();
    }, 100);
    void exited.then(({ code, signal }) => {
      clearInterval(check);
      clearTimeout(timer);
      reject(new Error(`road dev exited (${signal ?? code}) before it ran:\n${output}`));
    });
  });
  return {
    child,
    output: () => output,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) process.kill(-child.pid!, 'SIGINT'); // Ctrl-C
      const timer = setTimeout(() => process.kill(-child.pid!, 'SIGKILL'), 30_000);
      const result = await exited;
      clearTimeout(timer);
      return result;
    },
  };
}

async function writeDevConfig(dir: string): Promise<void> {
  const dev = { temporalPort: await freePort(), uiPort: await freePort(), postgresPort: await freePort() };
  writeFileSync(path.join(dir, 'road.config.json'), JSON.stringify({ dev }));
}


type LoopView = LoopStatus & { workflowStatus: string };

describe('npm start on a fresh clone', () => {
  it(
    'runs the demo to an approval, a landed fix and a served rule; a second start reloads and restarts nothing',
    async () => {
      const dir = tempDir('road demo ');
      await writeDevConfig(dir);
      const cli = cliIn(dir);
      let loopStartedAt: string | undefined;
      const started = performance.now();
      let dev = await startRoadDev(dir);
      const runningAfter = performance.now() - started;
      try {
        expect(dev.output()).toMatch(/• demo telemetry… loaded \(/);
        expect(dev.output()).toMatch(/• demo loop… started \(road-loop-demo\)/);
        expect(dev.output()).toContain('npx road pending');
        expect(dev.output()).toContain('npx road prompts --phase auth-migration');

        // Every sample event, shifted so the newest is minutes old and all of them lie in the default 7-day window.
        const [loaded] = await devSql<{ events: string; newest: Date; oldest: Date }>(dir, 'SELECT count(*) AS events, max(occurred_at) AS newest, min(occurred_at) AS oldest FROM phase_outcome_events');
        expect(Number(loaded!.events)).toBe(SAMPLE.length);
        expect(Date.now() - loaded!.newest.getTime()).toBeLessThan(3_600_000);
        expect(Date.now() - loaded!.oldest.getTime()).toBeLessThan(7 * 86_400_000 - 3_600_000);
        const sampleSpan = Math.max(...SAMPLE.map((e) => Date.parse(e.occurred_at))) - Math.min(...SAMPLE.map((e) => Date.parse(e.occurred_at)));
        expect(loaded!.newest.getTime() - loaded!.oldest.getTime()).toBe(sampleSpan);

        // The first approval request, as `road pending` shows it.
        const firstPending = await until('a pending approval request', 150_000, async () => {
          const rows = JSON.parse(await cli('pending', '--json')) as Array<{ taskId: string }>;
          return rows.length ? rows : undefined;
        });
        const firstApprovalAfter = performance.now() - started;
        expect(firstPending.length).toBeGreaterThan(0);

        // The three tasks reach their verdicts: the auth-migration and docs-build fixes work and wait for a reviewer;
        // the codegen one (a retry around a deterministic type error, wrong on purpose) costs twice the tokens and
        // fixes nothing, so replay turns it down before any reviewer sees it.
        const pending = await until('two approval requests', 150_000, async () => {
          const rows = JSON.parse(await cli('pending', '--json')) as Array<{ taskId: string; verdict: string }>;
          return rows.length === 2 ? rows : undefined;
        });
        const decided = await until('the codegen task to be rejected', 150_000, async () => {
          const view = JSON.parse(await cli('loop', 'status', 'demo', '--json')) as LoopView;
          return view.tasks.some((t) => t.title.endsWith('schema-codegen') && t.outcome !== 'running') ? view : undefined;
        });
        expect(decided.tasks).toHaveLength(3);
        const taskOf = (phase: string) => decided.tasks.find((t) => t.title.endsWith(phase))!;
        const auth = taskOf('auth-migration');
        const docs = taskOf('docs-build');
        const codegen = taskOf('schema-codegen');
        expect([auth.type, docs.type, codegen.type]).toEqual(['failure_mode', 'cost_sink', 'failure_mode']);
        expect(codegen).toMatchObject({ outcome: 'rejected', verdicts: { gating: 'REJECT' } });
        expect(pending.map((r) => [r.taskId, r.verdict]).sort()).toEqual([[auth.taskId, 'PROMOTE'], [docs.taskId, 'PROMOTE']].sort());

        // Approve both, as the printed commands say; the loop lands the fixes and promotes them.
        await cli('approve', auth.taskId, '--reviewer', 'alice@example.com', '--comment', 'lock timeouts gone in replay');
        await cli('approve', docs.taskId, '--reviewer', 'bob@example.com', '--comment', 'a quarter of the tokens');
        const done = await until('the loop to complete', 120_000, async () => {
          const view = JSON.parse(await cli('loop', 'status', 'demo', '--json')) as LoopView;
          return view.workflowStatus === 'COMPLETED' ? view : undefined;
        });
        loopStartedAt = done.startedAt;
        const loopWall = Date.parse((done as LoopView & { finishedAt: string }).finishedAt) - Date.parse(done.startedAt);
        const outcomes = Object.fromEntries(done.tasks.map((t) => [t.taskId, t.outcome]));
        expect(outcomes).toEqual({ [auth.taskId]: 'approved', [docs.taskId]: 'approved', [codegen.taskId]: 'rejected' });

        // The approved fixes are on the demo repository's main; the rule's text is the fix's commit subject.
        const repo = path.join(dir, '.road', 'demo', 'repo');
        const git = (...args: string[]) => execFileSync('git', args, { cwd: repo, encoding: 'utf8' }).trim();
        for (const task of [auth, docs]) git('merge-base', '--is-ancestor', `road/${task.taskId}`, 'main');
        const subject = git('log', '-1', '--format=%s', `road/${auth.taskId}`);
        const prompt = await cli('prompts', '--phase', 'auth-migration');
        expect(prompt).toContain('Based on past successful fixes in auth-migration:');
        expect(prompt).toContain(`- ${subject}`);
        expect(await cli('prompts', '--phase', 'schema-codegen')).not.toContain('Recommended approaches');

        console.log(
          `demo timings: road dev running after ${(runningAfter / 1000).toFixed(1)} s, first approval request after ` +
            `${(firstApprovalAfter / 1000).toFixed(1)} s, loop wall time ${(loopWall / 1000).toFixed(1)} s (including the approvals)`,
        );
      } finally {
        const stopped = await dev.stop();
        expect(dev.output()).toContain('Stopping ROAD dev…');
        expect(stopped.signal ?? stopped.code).toBeOneOf(['SIGINT', 0]);
      }

      // A second start: nothing reloaded, the loop not started again.
      dev = await startRoadDev(dir);
      let counts: { events: string; tasks: string; demo_rows: string; loop: LoopView };
      try {
        const [row] = await devSql<{ events: string; tasks: string; demo_rows: string }>(
          dir,
          'SELECT (SELECT count(*) FROM phase_outcome_events) AS events, (SELECT count(*) FROM followup_tasks) AS tasks, (SELECT count(*) FROM road_demo) AS demo_rows',
        );
        counts = { ...row!, loop: JSON.parse(await cli('loop', 'status', 'demo', '--json')) as LoopView };
      } finally {
        await dev.stop();
      }
      const output = dev.output();
      expect(output).toMatch(/• demo telemetry… already loaded \(/);
      expect(output).toMatch(/• demo loop… already there \(completed\), not restarted/);
      expect(Number(counts.events)).toBe(SAMPLE.length);
      expect(Number(counts.tasks)).toBe(3);
      expect(Number(counts.demo_rows)).toBe(1);
      expect(counts.loop).toMatchObject({ workflowStatus: 'COMPLETED', startedAt: loopStartedAt });
    },
    600_000,
  );

  it(
    'with --no-demo loads nothing and starts no loop',
    async () => {
      const dir = tempDir('road no demo ');
      await writeDevConfig(dir);
      const dev = await startRoadDev(dir, ['--no-demo']);
      try {
        expect(dev.output()).not.toContain('• demo');
        expect(dev.output()).toContain('The demo is off (--no-demo).');
        const [row] = await devSql<{ events: string; demo_rows: string }>(dir, 'SELECT (SELECT count(*) FROM phase_outcome_events) AS events, (SELECT count(*) FROM road_demo) AS demo_rows');
        expect(row).toEqual({ events: '0', demo_rows: '0' });
        const status = await road(['loop', 'status', 'demo'], { ROAD_HOME: path.join(dir, '.road'), ROAD_CONFIG: path.join(dir, 'road.config.json'), DATABASE_URL: '', TEMPORAL_ADDRESS: '' });
        expect(status.code).not.toBe(0);
        expect(status.stderr).toContain('no loop demo');
      } finally {
        await dev.stop();
      }
    },
    180_000,
  );
});
