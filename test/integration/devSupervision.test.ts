/**
 * `road dev` heals itself: the real `road dev --no-demo` in a fresh directory with free ports; its PostgreSQL and then
 * its Temporal dev server are SIGKILLed, and after each restart events are recorded and an approval gate is started and
 * decided through the CLI, as a person in another terminal would. A PostgreSQL that cannot start again (its data
 * directory made group- and world-readable, which PostgreSQL refuses) makes road dev give up and exit 1, naming it and
 * its log, after the restarts the policy allows: 1, 2, 4, 8 and 16 s apart.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, lstatSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { freePort, PROJECT_ROOT } from '../../scripts/provision.js';
import { cliIn, devSql, until } from '../helpers/roadDev.js';

const scratch: string[] = [];
afterAll(() => {
  for (const dir of scratch) {
    // As root from a private directory, the data lives under /var/lib/road/postgres behind the .road/pg link.
    const link = path.join(dir, '.road', 'pg');
    if (lstatSync(link, { throwIfNoEntry: false })?.isSymbolicLink() && existsSync(link)) rmSync(realpathSync(link), { recursive: true, force: true });
    rmSync(dir, { recursive: true, force: true });
  }
});

interface RoadDev {
  pid: number;
  output(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Waits until the output has `text` `times` times. */
  waitFor(text: string | RegExp, timeoutMs: number, times?: number): Promise<void>;
  stop(): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

async function startRoadDev(dir: string): Promise<RoadDev> {
  const env: NodeJS.ProcessEnv = { ...process.env, ROAD_HOME: path.join(dir, '.road'), ROAD_CONFIG: path.join(dir, 'road.config.json') };
  for (const name of ['DATABASE_URL', 'TEMPORAL_ADDRESS', 'VITEST', 'VITEST_POOL_ID', 'VITEST_WORKER_ID', 'NODE_OPTIONS']) delete env[name];
  const child: ChildProcess = spawn(process.execPath, [path.join(PROJECT_ROOT, 'bin', 'road.js'), 'dev', '--no-demo'], {
    cwd: dir,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true, // its own process group: the test's Ctrl-C reaches road dev and its children, as a terminal's would
  });
  let output = '';
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('close', (code, signal) => resolve({ code, signal })));
  let hasExited = false;
  void exited.then(() => (hasExited = true));
  const count = (text: string | RegExp) => (typeof text === 'string' ? output.split(text).length - 1 : (output.match(new RegExp(text, 'g')) ?? []).length);
  const dev: RoadDev = {
    pid: child.pid!,
    output: () => output,
    exited,
    async waitFor(text, timeoutMs, times = 1) {
      const deadline = Date.now() + timeoutMs;
      while (count(text) < times) {
        if (hasExited) throw new Error(`road dev exited while waiting for ${String(text)}:\n${output}`);
        if (Date.now() > deadline) throw new Error(`road dev did not print ${String(text)} within ${timeoutMs / 1000} s:\n${output}`);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    },
    async stop() {
      if (!hasExited) process.kill(-child.pid!, 'SIGINT'); // Ctrl-C
      const timer = setTimeout(() => process.kill(-child.pid!, 'SIGKILL'), 30_000);
      const result = await exited;
      clearTimeout(timer);
      return result;
    },
  };
  await dev.waitFor('ROAD dev is running.', 120_000);
  return dev;
}

async function freshDir(prefix: string): Promise<string> {
  const dir = mkdtempSync(path.join(os.tmpdir(), prefix));
  scratch.push(dir);
  const dev = { temporalPort: await freePort(), uiPort: await freePort(), postgresPort: await freePort() };
  writeFileSync(path.join(dir, 'road.config.json'), JSON.stringify({ dev }));
  return dir;
}

/** PostgreSQL's data directory: .road/pg, or where its link points (as root from a private directory). */
const dataDirOf = (dir: string) => realpathSync(path.join(dir, '.road', 'pg'));
const postmasterPid = (dir: string) => Number(readFileSync(path.join(dataDirOf(dir), 'postmaster.pid'), 'utf8').split('\n')[0]);

/** The pid of road dev's child whose command line contains every one of `words`. */
function childPid(parent: number, words: string[]): number {
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      // /proc/<pid>/stat: "pid (comm) state ppid …"; comm may hold spaces, so read after its closing parenthesis.
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid !== parent) continue;
      const argv = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
      if (words.every((word) => argv.some((arg) => arg.endsWith(word)))) return Number(entry);
    } catch {
      // the process ended while we looked
    }
  }
  throw new Error(`road dev (pid ${parent}) has no child running ${words.join(' ')}`);
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};


/** What must work after a restart: an event recorded, an approval gate started, decided, and its decision stored. */
async function recordAndDecide(dir: string, runId: string, taskId: string): Promise<void> {
  const cli = cliIn(dir);
  const recorded = JSON.parse(await cli('record', '--run', runId, '--phase', 'build', '--outcome', 'FAILED', '--stop-reason', 'lock_timeout', '--json')) as { status: string };
  expect(recorded.status).toBe('accepted');
  const [stored] = await devSql<{ n: string }>(dir, 'SELECT count(*) AS n FROM phase_outcome_events WHERE run_id = $1', [runId]);
  expect(Number(stored!.n)).toBe(1);

  await cli('demo', '--task', taskId, '--reviewers', 'alice@example.com');
  const decided = JSON.parse(await cli('approve', taskId, '--reviewer', 'alice@example.com', '--json')) as { status: string; decidedBy: string };
  expect(decided).toMatchObject({ status: 'APPROVED', decidedBy: 'alice@example.com' });
  // The gate's activity writes the decision to PostgreSQL: the worker runs workflows and activities again.
  await until(`${taskId} approved in approval_requests`, 30_000, async () => {
    const rows = await devSql<{ status: string }>(dir, 'SELECT status FROM approval_requests WHERE task_id = $1', [taskId]);
    return rows[0]?.status === 'APPROVED' ? rows : undefined;
  });
}

describe('road dev supervises its children', () => {
  it(
    'restarts a SIGKILLed PostgreSQL, then a SIGKILLed Temporal dev server; events are recorded and gates decided after each',
    async () => {
      const dir = await freshDir('road-supervision-');
      const dev = await startRoadDev(dir);
      try {
        // PostgreSQL, killed as the OOM killer would.
        const firstPostgres = postmasterPid(dir);
        expect(childPid(dev.pid, ['bin/postgres'])).toBe(firstPostgres);
        process.kill(firstPostgres, 'SIGKILL');
        await dev.waitFor('PostgreSQL exited (signal SIGKILL); restarting in 1 s (attempt 1 of 5)', 30_000);
        await dev.waitFor(/PostgreSQL is running again \([\d.]+ s after it stopped\)/, 60_000);
        const secondPostgres = postmasterPid(dir);
        expect(secondPostgres).not.toBe(firstPostgres);
        expect(alive(secondPostgres)).toBe(true);
        await recordAndDecide(dir, 'supervision-after-postgres', 'SUPERVISION-1');

        // The Temporal dev server, the same way.
        const firstTemporal = childPid(dev.pid, ['.tools/bin/temporal', 'start-dev']);
        process.kill(firstTemporal, 'SIGKILL');
        await dev.waitFor('Temporal dev server exited (signal SIGKILL); restarting in 1 s (attempt 1 of 5)', 30_000);
        await dev.waitFor(/Temporal dev server is running again \([\d.]+ s after it stopped\)/, 90_000);
        const secondTemporal = childPid(dev.pid, ['.tools/bin/temporal', 'start-dev']);
        expect(secondTemporal).not.toBe(firstTemporal);
        await recordAndDecide(dir, 'supervision-after-temporal', 'SUPERVISION-2');

        // Both restarts happened once each, and the worker never had to be restarted.
        expect(dev.output().match(/restarting in/g)).toHaveLength(2);
        expect(dev.output()).not.toMatch(/ROAD worker (stopped|did not start)/);
      } finally {
        const stopped = await dev.stop();
        // Ctrl-C reaches the children too: their exits then are expected, and nothing is restarted.
        expect(stopped.signal ?? stopped.code).toBeOneOf(['SIGINT', 0]);
        const afterCtrlC = dev.output().slice(dev.output().indexOf('Stopping ROAD dev…'));
        expect(afterCtrlC).not.toContain('restarting in');
      }
    },
    360_000,
  );

  it(
    'gives up on a PostgreSQL that cannot start again: road dev exits 1 naming it and its log, and stops the rest',
    async () => {
      const dir = await freshDir('road-supervision-give-up-');
      const dev = await startRoadDev(dir);
      let temporal: number | undefined;
      try {
        temporal = childPid(dev.pid, ['.tools/bin/temporal', 'start-dev']);
        // PostgreSQL refuses a data directory others can read ("has invalid permissions"): a real failure to start.
        chmodSync(dataDirOf(dir), 0o755);
        process.kill(postmasterPid(dir), 'SIGKILL');
        const { code } = await Promise.race([
          dev.exited,
          new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`road dev still runs after 150 s:\n${dev.output()}`)), 150_000)),
        ]);
        expect(code).toBe(1);
      } finally {
        await dev.stop();
      }
      const output = dev.output();
      // The first stop was the kill; each restart then failed, 1, 2, 4, 8 and 16 s after the stop before it.
      expect(output).toContain('PostgreSQL exited (signal SIGKILL); restarting in 1 s (attempt 1 of 5)');
      const failures = [...output.matchAll(/PostgreSQL did not start again \((.*)\); restarting in (\d+) s \(attempt (\d) of 5\)/g)];
      expect(failures.map((m) => [Number(m[2]), Number(m[3])])).toEqual([[2, 2], [4, 3], [8, 4], [16, 5]]);
      for (const failure of failures) expect(failure[1]).toContain('has invalid permissions');
      const lastLine = output.trim().split('\n').at(-1)!;
      expect(lastLine).toMatch(/^road: PostgreSQL did not start again \(.*has invalid permissions\): it stopped 6 times within 60 s, so road dev gives up and stops; its log: \.road\/postgres\.log$/);
      expect(output).not.toContain('is running again');
      // The log it names has the server's own account.
      expect(readFileSync(path.join(dir, '.road', 'postgres.log'), 'utf8')).toMatch(/FATAL: +data directory ".*" has invalid permissions/);
      // Nothing is left running: the Temporal dev server was stopped with road dev.
      expect(alive(temporal!)).toBe(false);
      expect(existsSync(path.join(dir, '.road', 'dev.json'))).toBe(false);
    },
    300_000,
  );
});
