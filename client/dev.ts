/**
 * `road dev` (= `npm start`): PostgreSQL, the Temporal dev server and the ROAD worker as one supervised process tree,
 * and — on a fresh clone with nothing of one's own configured — the demo (client/demo.ts).
 * Data lives under .road/ so a second start resumes where the first stopped; Ctrl-C stops every child. A child that
 * stops on its own is restarted with backoff, and one that keeps stopping ends road dev (client/supervisor.ts).
 */
import { Client, Connection } from '@temporalio/client';
import { bundleWorkflowCode, NativeConnection, Runtime, type Worker } from '@temporalio/worker';
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, openSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { migrate } from '../db/migrate.js';
import { createPool, ensureDatabase, type Pool } from '../db/pool.js';
import { keepRollupsCurrent } from '../db/rollups.js';
import { startEmbeddedPostgres, type EmbeddedDatabase } from '../db/embedded.js';
import type { RoadConfig } from '../domain/config.js';
import { toolPaths } from '../scripts/provision.js';
import { SEARCH_ATTRIBUTES } from '../workflows/definitions.js';
import { createReplayWorker, createRoadWorker, WORKFLOWS_PATH } from '../workers/worker.js';
import { disposeReplayWorktrees } from '../activities/replay.js';
import { DEV_STATE_FILE, STATE_DIR, type DevState } from './config.js';
import { installRuntime } from '../workers/runtime.js';
import { DEMO_LOOP_ID, DEMO_TELEMETRY, demoDecision, loadDemoTelemetry, prepareDemoRepository, startDemoLoop, type DemoTelemetry } from './demo.js';
import { exitedWith, firstLine, Supervisor, type Child, type Running } from './supervisor.js';
import { uiWorkflowUrl } from './temporal.js';

const CLI_TYPE_NAMES = { KEYWORD: 'Keyword', KEYWORD_LIST: 'KeywordList' } as const;

export interface DevOptions {
  /** false: no demo data, no demo loop (`road dev --no-demo`). */
  demo?: boolean;
}

export async function runDev(userConfig: RoadConfig, options: DevOptions = {}): Promise<void> {
  const demoRepo = path.join(STATE_DIR, 'demo', 'repo');
  const demo = demoDecision(userConfig, { demo: options.demo !== false, repoDir: demoRepo });
  let config = demo.enabled ? demo.config : userConfig;
  // The demo is an extra: when it cannot be set up, ROAD dev runs without it and says why.
  let demoProblem: string | undefined;
  const withoutDemo = (error: unknown) => {
    demoProblem = `the demo could not be set up (${(error as Error).message}); ROAD dev runs without it`;
    config = userConfig;
  };
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
  // PostgreSQL, the Temporal dev server and the worker are restarted when they stop; one that keeps stopping ends road dev.
  const supervisor = new Supervisor();
  let stopping = false;
  const stopped = new Promise<void>((resolve) => {
    const onSignal = () => {
      if (stopping) return;
      stopping = true;
      // Ctrl-C reaches the children too: their exits from now on are expected, not restarted.
      supervisor.stopping();
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
      const pgChild = postgresChild({ dataDir: path.join(STATE_DIR, 'pg'), port: postgresPort, logFile: path.join(STATE_DIR, POSTGRES_LOG) });
      const { first: pg, stop } = await step('PostgreSQL', () => supervisor.supervise(pgChild));
      cleanups.push(stop);
      await ensureDatabase(pg.database.url, 'road');
      databaseUrl = pg.database.databaseUrl('road');
    }
    await step('migrations', () => migrate(databaseUrl!));
    if (demo.enabled) {
      await step('demo repository', async () => prepareDemoRepository(demoRepo), (r) => (r.created ? `created ${shown(demoRepo)}` : `kept ${shown(demoRepo)}`)).catch(withoutDemo);
    }

    // 2. Temporal dev server (SQLite under .road/, Web UI, ROAD's search attributes)
    installRuntime({ shutdownSignals: [] });
    const address = `127.0.0.1:${temporalPort}`;
    const temporal = await step('Temporal dev server', () => supervisor.supervise(temporalChild({ port: temporalPort, uiPort, address })));
    cleanups.push(temporal.stop);

    // 3. The workers (workflows + activities, and replay runs), in this process, on their own connection
    const pool = createPool(databaseUrl);
    cleanups.push(() => pool.end());
    cleanups.push(keepRollupsCurrent(pool, { onError: (error) => console.error(`folding events into the analysis rollups failed (retrying): ${(error as Error).message}`) }));
    const worker = await step('ROAD worker (bundling workflows)', async () => {
      // Bundled once: a restarted worker starts in a moment instead of bundling again.
      const workflowBundle = process.env.ROAD_WORKFLOW_BUNDLE ? undefined : { code: (await bundleWorkflowCode({ workflowsPath: WORKFLOWS_PATH, logger: Runtime.instance().logger })).code };
      return supervisor.supervise(workerChild({ address, pool, config, workflowBundle }));
    });
    cleanups.push(async () => {
      await worker.stop();
      await disposeReplayWorktrees();
    });

    const uiUrl = `http://localhost:${uiPort}`;
    let demoState: { telemetry: DemoTelemetry; loop: { started: boolean; status: string } } | undefined;
    if (demo.enabled && !demoProblem) {
      try {
        const telemetry = await step('demo telemetry', () => loadDemoTelemetry(pool), (t) =>
          `${t.loaded ? 'loaded' : 'already loaded'} (${t.events.toLocaleString('en-US')} events)`,
        );
        const client = new Client({ connection: await Connection.connect({ address }), namespace: 'default' });
        cleanups.push(() => client.connection.close());
        const loop = await step('demo loop', () => startDemoLoop(client, config.temporal.taskQueue), (l) =>
          l.started ? `started (road-loop-${DEMO_LOOP_ID})` : `already there (${l.status.toLowerCase()}), not restarted`,
        );
        demoState = { telemetry, loop };
      } catch (error) {
        withoutDemo(error);
      }
    }
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
        `  Logs          ${[TEMPORAL_LOG, ...(useEmbeddedPostgres ? [POSTGRES_LOG] : [])].map((log) => shown(path.join(STATE_DIR, log))).join(', ')}`,
        '',
        ...(demoState ? demoGuide(demoState, uiUrl, config, demoRepo) : plainGuide(demoProblem ?? (demo.enabled ? '' : demo.why))),
        '',
        'Ctrl-C stops everything; the next `npm start` resumes with the same data.',
      ].join('\n'),
    );

    const gaveUp = await Promise.race([stopped.then(() => undefined), supervisor.gaveUp]);
    if (gaveUp) throw gaveUp;
  } finally {
    supervisor.stopping();
    await stopAll();
  }
}

/** A path as the person who ran `npm start` would type it: relative when it is below the working directory. */
const shown = (file: string) => {
  const relative = path.relative(process.cwd(), file);
  return relative.startsWith('..') || path.isAbsolute(relative) ? file : relative || '.';
};

/** What to do next with the demo: the loop, the approval, the rule it promotes. */
function demoGuide(demo: { telemetry: DemoTelemetry; loop: { started: boolean; status: string } }, uiUrl: string, config: RoadConfig, repo: string): string[] {
  const t = demo.telemetry;
  const reviewer = config.approval.reviewers[0]!;
  const done = demo.loop.status !== 'RUNNING';
  return [
    `The demo (${demo.loop.started ? 'set up now' : 'set up by an earlier start, left as it is'}; \`npm start -- --no-demo\` runs without it):`,
    `  telemetry     ${t.events.toLocaleString('en-US')} sample events: ${t.runs} runs of ${t.phases} phases over ${t.days} days (${shown(DEMO_TELEMETRY)})`,
    `  repository    ${shown(repo)}: a small code base with the bugs that telemetry shows`,
    `  loop          "${DEMO_LOOP_ID}" works the top 3 issues: the demo executor writes a fix (one is wrong on purpose),`,
    '                replay runs the code at baseline and at the fix, then a reviewer decides:',
    `                ${uiWorkflowUrl(uiUrl, 'default', `road-loop-${DEMO_LOOP_ID}`)}`,
    '',
    ...(done
      ? [
          `The demo loop is ${demo.loop.status.toLowerCase()}. See what it did, in another terminal:`,
          `  npx road loop status ${DEMO_LOOP_ID.padEnd(23)}# each task: candidate, replay verdict, decision, rule`,
          '  npx road replay show FAILURE-2              # the evidence that turned a candidate down',
          '  npx road rules list                         # the promoted rules',
          '  npx road prompts --phase auth-migration     # a rule as the agent\'s next run receives it',
          `  git -C ${shown(repo)} log --graph --oneline main   # the fixes that landed`,
        ]
      : [
          'Next, in another terminal (the first approval requests come within a minute):',
          `  npx road loop status ${DEMO_LOOP_ID.padEnd(23)}# each task: candidate, replay verdict, decision`,
          '  npx road pending                            # what waits for a reviewer, with its replay verdict',
          '  npx road replay show FAILURE-1              # the A/B evidence behind a request',
          `  npx road approve FAILURE-1 --reviewer ${reviewer} --comment "lock timeouts gone in replay"`,
          '  npx road prompts --phase auth-migration     # the promoted rule, as the agent\'s next run receives it',
        ]),
  ];
}

function plainGuide(why: string): string[] {
  return [
    ...(why ? [`${why[0]!.toUpperCase()}${why.slice(1)}.`, ''] : []),
    'Try, in another terminal:',
    '  npx road import events.jsonl                    # your telemetry (or POST /v1/events from `road serve`)',
    '  npx road loop start                             # an improvement loop (needs repository, executor, replay)',
    '  npx road demo                                   # or: an approval gate with sample evidence',
    '  npx road pending                                # what waits for a reviewer',
  ];
}

async function step<T>(label: string, fn: () => Promise<T>, done: (value: T) => string = () => 'ready'): Promise<T> {
  const started = performance.now();
  process.stdout.write(`• ${label}… `);
  try {
    const value = await fn();
    process.stdout.write(`${done(value)} (${((performance.now() - started) / 1000).toFixed(1)} s)\n`);
    return value;
  } catch (error) {
    process.stdout.write('failed\n');
    throw error;
  }
}

const TEMPORAL_LOG = 'temporal.log';
const POSTGRES_LOG = 'postgres.log';

/** The embedded PostgreSQL as a supervised child; its output is appended to .road/postgres.log. */
function postgresChild(options: { dataDir: string; port: number; logFile: string }): Child<Running & { database: EmbeddedDatabase }> {
  // Opened once and never closed: the server may still write while it is stopped, and a restart appends.
  let log: number | undefined;
  return {
    name: 'PostgreSQL',
    log: shown(options.logFile),
    async start() {
      log ??= openSync(options.logFile, 'a');
      const fd = log;
      const database = await startEmbeddedPostgres({ dataDir: options.dataDir, port: options.port, persistent: true, onLog: (text) => writeSync(fd, text) }).catch(
        (error: Error) => {
          // The server's own words, without its log-line prefix ("2026-11-28 14:56:27.491 UTC [13840] "): they go in one line.
          throw new Error(error.message.replace(/\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d+)? \w+ \[\d+\] /g, ''), { cause: error });
        },
      );
      return { database, exited: database.exited.then(({ code, signal }) => exitedWith(code, signal)), stop: () => database.stop() };
    },
  };
}

/** The Temporal dev server as a supervised child: started, and running once it answers on its port. */
function temporalChild(options: { port: number; uiPort: number; address: string }): Child {
  const logFile = path.join(STATE_DIR, TEMPORAL_LOG);
  return {
    name: 'Temporal dev server',
    log: shown(logFile),
    async start() {
      const server = await startTemporalDevServer(options.port, options.uiPort, logFile);
      const exited = new Promise<string>((resolve) => {
        if (server.exitCode !== null || server.signalCode !== null) resolve(exitedWith(server.exitCode, server.signalCode));
        else server.once('exit', (code, signal) => resolve(exitedWith(code, signal)));
      });
      try {
        await (await connectWhenReady(options.address, 60_000, server)).close();
      } catch (error) {
        await stopChild(server);
        throw error;
      }
      return { exited, stop: () => stopChild(server) };
    },
  };
}

/**
 * The ROAD worker and the replay worker, on a connection of their own, as one supervised child: when either stops
 * unexpectedly (its run() settles), both are shut down and started again. A Temporal dev server that restarts does not
 * stop them: the SDK's pollers retry on the same connection until the server answers again.
 */
function workerChild(options: { address: string; pool: Pool; config: RoadConfig; workflowBundle?: { code: string } }): Child {
  const { address, pool, config } = options;
  return {
    name: 'ROAD worker',
    log: 'the output above',
    async start() {
      const connection = await connectWhenReady(address, 60_000);
      const workers: Worker[] = [];
      try {
        workers.push(await createRoadWorker({ connection, namespace: 'default', taskQueue: config.temporal.taskQueue, pool, config, workflowBundle: options.workflowBundle }));
        // Replay runs poll their own task queue (replay.taskQueue), as replay workers on other machines would.
        const replayWorker = await createReplayWorker({ connection, namespace: 'default', pool, config });
        if (replayWorker) workers.push(replayWorker);
      } catch (error) {
        await connection.close().catch(() => undefined);
        throw error;
      }
      const runs = workers.map((worker) => worker.run());
      return {
        exited: Promise.race(runs).then(
          () => 'stopped',
          (error: unknown) => `stopped (${firstLine(error)})`,
        ),
        async stop() {
          for (const worker of workers) if (worker.getState() === 'RUNNING') worker.shutdown();
          await Promise.allSettled(runs);
          await connection.close().catch(() => undefined);
        },
      };
    },
  };
}

function startTemporalDevServer(port: number, uiPort: number, logFile: string): Promise<ChildProcess> {
  const log = openSync(logFile, 'a');
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
  closeSync(log); // the child has its own copy
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('spawn', () => resolve(child));
  });
}

/** A connection once the server answers; `server`, when given, is the dev server whose early exit ends the wait. */
async function connectWhenReady(address: string, timeoutMs: number, server?: ChildProcess): Promise<NativeConnection> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (server && (server.exitCode !== null || server.signalCode !== null)) {
      throw new Error(`the Temporal dev server ${exitedWith(server.exitCode, server.signalCode)}; see ${shown(path.join(STATE_DIR, TEMPORAL_LOG))}`);
    }
    try {
      const connection = await NativeConnection.connect({ address });
      try {
        await connection.workflowService.getSystemInfo({});
      } catch (error) {
        await connection.close().catch(() => undefined);
        throw error;
      }
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
