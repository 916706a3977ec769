/**
 * `road dev` (= `npm start`): PostgreSQL, the Temporal dev server and the ROAD worker as one supervised process tree.
 * Data lives under .road/ so a second start resumes where the first stopped; Ctrl-C stops every child.
 */
import { NativeConnection } from '@temporalio/worker';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, openSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { migrate } from '../db/migrate.js';
import { createPool, ensureDatabase } from '../db/pool.js';
import { keepRollupsCurrent } from '../db/rollups.js';
import { startEmbeddedPostgres, type EmbeddedDatabase } from '../db/embedded.js';
import type { RoadConfig } from '../domain/config.js';
import { toolPaths } from '../scripts/provision.js';
import { SEARCH_ATTRIBUTES } from '../workflows/definitions.js';
import { createReplayWorker, createRoadWorker } from '../workers/worker.js';
import { disposeReplayWorktrees } from '../activities/replay.js';
import { DEV_STATE_FILE, STATE_DIR, type DevState } from './config.js';
import { installRuntime } from '../workers/runtime.js';

const CLI_TYPE_NAMES = { KEYWORD: 'Keyword', KEYWORD_LIST: 'KeywordList' } as const;

export async function runDev(config: RoadConfig): Promise<void> {
  const { temporalPort, uiPort, postgresPort } = config.dev;
  const useEmbeddedPostgres = !config.database.url;
  await requireFreePorts([
    [temporalPort, 'the Temporal dev server (dev.temporalPort)'],
    [uiPort, 'the Temporal Web UI (dev.uiPort)'],
    ...(useEmbeddedPostgres ? ([[postgresPort, 'the embedded PostgreSQL (dev.postgresPort)']] as const) : []),
  ]);
  mkdirSync(STATE_DIR, { recursive: true });

  const cleanups: Array<() => Promise<unknown>> = [];
  const stopAll = async () => {
    for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
  };
  let stopping = false;
  const stopped = new Promise<void>((resolve) => {
    const onSignal = () => {
      if (stopping) return;
      stopping = true;
      console.log('\nStopping ROAD dev…');
      resolve();
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  });

  try {
    // 1. PostgreSQL
    let databaseUrl = config.database.url;
    if (!databaseUrl) {
      const pg: EmbeddedDatabase = await step('PostgreSQL', () =>
        startEmbeddedPostgres({ dataDir: path.join(STATE_DIR, 'pg'), port: postgresPort, persistent: true }),
      );
      cleanups.push(() => pg.stop());
      await ensureDatabase(pg.url, 'road');
      databaseUrl = pg.databaseUrl('road');
    }
    await step('migrations', () => migrate(databaseUrl!));

    // 2. Temporal dev server (SQLite under .road/, Web UI, ROAD's search attributes)
    installRuntime({ shutdownSignals: [] });
    const address = `127.0.0.1:${temporalPort}`;
    const { server, connection } = await step('Temporal dev server', async () => {
      const server = await startTemporalDevServer(temporalPort, uiPort);
      cleanups.push(() => stopChild(server));
      return { server, connection: await connectWhenReady(address, server, 60_000) };
    });
    cleanups.push(() => connection.close());
    const exited = new Promise<void>((resolve) => server.once('exit', () => resolve()));

    // 3. The worker, in this process
    const pool = createPool(databaseUrl);
    cleanups.push(() => pool.end());
    cleanups.push(keepRollupsCurrent(pool, { onError: (error) => console.error(`folding events into the analysis rollups failed (retrying): ${(error as Error).message}`) }));
    const worker = await step('ROAD worker (bundling workflows)', () =>
      createRoadWorker({ connection, namespace: 'default', taskQueue: config.temporal.taskQueue, pool, config }),
    );
    const running = worker.run();
    cleanups.push(async () => {
      if (worker.getState() === 'RUNNING') worker.shutdown();
      await running;
    });
    // Replay runs poll their own task queue (replay.taskQueue), as replay workers on other machines would.
    const replayWorker = await createReplayWorker({ connection, namespace: 'default', pool, config });
    const replaying = replayWorker?.run();
    if (replayWorker) {
      cleanups.push(async () => {
        if (replayWorker.getState() === 'RUNNING') replayWorker.shutdown();
        await replaying;
        await disposeReplayWorktrees();
      });
    }

    const uiUrl = `http://localhost:${uiPort}`;
    const state: DevState = { temporalAddress: address, namespace: 'default', taskQueue: config.temporal.taskQueue, databaseUrl, uiUrl, pid: process.pid };
    writeFileSync(DEV_STATE_FILE, JSON.stringify(state, null, 2));
    cleanups.push(async () => rmSync(DEV_STATE_FILE, { force: true }));

    console.log(
      [
        '',
        'ROAD dev is running.',
        `  Temporal UI   ${uiUrl}`,
        `  Temporal      ${address} (namespace default, task queue "${config.temporal.taskQueue}")`,
        `  PostgreSQL    ${databaseUrl.replace(/:[^:@/]+@/, ':***@')}`,
        `  Logs          ${path.relative(process.cwd(), path.join(STATE_DIR, 'temporal.log'))}`,
        '',
        'Try, in another terminal:',
        '  npx road demo                                   # start an approval gate',
        '  npx road pending                                # what waits for a reviewer',
        '  npx road approve DEMO-1 --reviewer alice@example.com --comment "looks good"',
        `  then open ${uiUrl} and look at road-approval-DEMO-1`,
        '',
        'Ctrl-C stops everything; the next `npm start` resumes with the same data.',
      ].join('\n'),
    );

    const why = await Promise.race([
      stopped.then(() => 'signal' as const),
      exited.then(() => 'temporal' as const),
      running.then(() => 'worker' as const),
      ...(replaying ? [replaying.then(() => 'worker' as const)] : []),
    ]);
    if (why !== 'signal') throw new Error(`the ${why === 'temporal' ? 'Temporal dev server' : 'worker'} stopped unexpectedly; see ${path.join(STATE_DIR, 'temporal.log')}`);
  } finally {
    await stopAll();
  }
}

async function step<T>(label: string, fn: () => Promise<T>): Promise<T> {
  const started = performance.now();
  process.stdout.write(`• ${label}… `);
  try {
    const value = await fn();
    process.stdout.write(`ready (${((performance.now() - started) / 1000).toFixed(1)} s)\n`);
    return value;
  } catch (error) {
    process.stdout.write('failed\n');
    throw error;
  }
}

function startTemporalDevServer(port: number, uiPort: number): Promise<ChildProcess> {
  const log = openSync(path.join(STATE_DIR, 'temporal.log'), 'a');
  const args = [
    'server', 'start-dev',
    '--ip', '127.0.0.1',
    '--port', String(port),
    '--ui-port', String(uiPort),
    '--db-filename', path.join(STATE_DIR, 'temporal.db'),
    '--namespace', 'default',
    '--log-level', 'warn',
    ...Object.entries(SEARCH_ATTRIBUTES).flatMap(([name, type]) => ['--search-attribute', `${name}=${CLI_TYPE_NAMES[type]}`]),
  ];
  const child = spawn(toolPaths().temporalCli, args, { stdio: ['ignore', log, log] });
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('spawn', () => resolve(child));
  });
}

async function connectWhenReady(address: string, server: ChildProcess, timeoutMs: number): Promise<NativeConnection> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (server.exitCode !== null) throw new Error(`the Temporal dev server exited (code ${server.exitCode}); see ${path.join(STATE_DIR, 'temporal.log')}`);
    try {
      const connection = await NativeConnection.connect({ address });
      await connection.workflowService.getSystemInfo({});
      return connection;
    } catch (error) {
      if (Date.now() > deadline) throw new Error(`Temporal at ${address} was not ready after ${timeoutMs / 1000} s: ${(error as Error).message}`, { cause: error });
      await new Promise((r) => setTimeout(r, 250));
    }
  }
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
}

async function requireFreePorts(ports: ReadonlyArray<readonly [number, string]>): Promise<void> {
  for (const [port, what] of ports) {
    const free = await new Promise<boolean>((resolve) => {
      const server = net.createServer();
      server.once('error', () => resolve(false));
      server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
    });
    if (!free) {
      throw new Error(`port ${port} is already in use; it is needed for ${what}. Stop what uses it (is another \`npm start\` running?) or choose another port in road.config.json.`);
    }
  }
}
