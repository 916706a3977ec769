/** `road worker`: the production worker process (the Docker image runs this). */
import { Client } from '@temporalio/client';
import { NativeConnection, type Worker } from '@temporalio/worker';
import { disposeReplayWorktrees } from '../activities/replay.js';
import { migrate } from '../db/migrate.js';
import { createPool } from '../db/pool.js';
import { keepRollupsCurrent } from '../db/rollups.js';
import type { RoadConfig } from '../domain/config.js';
import { installRuntime } from '../workers/runtime.js';
import { freeLoopbackPort, serveWorkerMetrics, workerMetricsSettings, type WorkerMetricsServer } from '../workers/metrics.js';
import { createReplayWorker, createRoadWorker } from '../workers/worker.js';
import { requireDatabaseUrl } from './config.js';
import { RoadMetrics } from './metrics.js';
import { InvalidInput } from '../domain/errors.js';

export interface WorkerMode {
  /** Only replay runs (another machine runs the workflows): scale replay out. */
  replayOnly?: boolean;
}

export async function runWorker(config: RoadConfig, mode: WorkerMode = {}): Promise<void> {
  const databaseUrl = requireDatabaseUrl(config);
  if (mode.replayOnly && !config.replay) throw new InvalidInput('--replay-only needs "replay" in road.config.json (its taskQueue is what this worker polls)');
  await migrate(databaseUrl);
  // ROAD_METRICS_PORT: GET /metrics with ROAD's metrics and the SDK's (its exporter on a loopback port of its own).
  const metricsSettings = workerMetricsSettings();
  const sdkMetricsPort = metricsSettings ? await freeLoopbackPort() : undefined;
  // SIGINT/SIGTERM shut the worker down gracefully: running activities get shutdownGraceTime to finish.
  installRuntime({ shutdownSignals: ['SIGINT', 'SIGTERM'], prometheusBindAddress: sdkMetricsPort ? `127.0.0.1:${sdkMetricsPort}` : undefined });
  const connection = await NativeConnection.connect({ address: config.temporal.address });
  const pool = createPool(databaseUrl);
  const metricsPool = metricsSettings ? createPool(databaseUrl, 1) : undefined;
  let metricsServer: WorkerMetricsServer | undefined;
  // Stored events are folded into the analysis rollups every few seconds, so an analysis has little left to fold.
  const stopFolding = mode.replayOnly
    ? async () => undefined
    : keepRollupsCurrent(pool, { onError: (error) => console.error(`folding events into the analysis rollups failed (retrying): ${(error as Error).message}`) });
  try {
    if (metricsSettings) {
      const client = new Client({ connection, namespace: config.temporal.namespace });
      const metrics = new RoadMetrics({ pool: metricsPool!, temporal: async () => client });
      metricsServer = await serveWorkerMetrics(metricsSettings, metrics, `http://127.0.0.1:${sdkMetricsPort}/metrics`);
      console.log(`metrics on http://${metricsSettings.host}:${metricsServer.port}/metrics`);
    }
    const common = { connection, namespace: config.temporal.namespace, pool, config };
    const workers: Worker[] = [];
    if (!mode.replayOnly) workers.push(await createRoadWorker({ ...common, taskQueue: config.temporal.taskQueue }));
    const replay = await createReplayWorker(common);
    if (replay) workers.push(replay);
    const queues = [mode.replayOnly ? undefined : config.temporal.taskQueue, config.replay?.taskQueue].filter(Boolean);
    console.log(`ROAD worker on task queue(s) ${queues.map((q) => `"${q}"`).join(' and ')} at ${config.temporal.address} (namespace ${config.temporal.namespace})`);
    // One process, two pollers: when one stops (a signal, a fatal error), the other is shut down too.
    const runs = workers.map((worker) => worker.run());
    await Promise.race(runs).finally(() => {
      for (const worker of workers) if (worker.getState() === 'RUNNING') worker.shutdown();
    });
    await Promise.all(runs);
  } finally {
    await stopFolding();
    await metricsServer?.close();
    await metricsPool?.end();
    await disposeReplayWorktrees();
    await connection.close();
    await pool.end();
  }
}
