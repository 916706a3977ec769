/** `road worker`: the production worker process (the Docker image runs this). */
import { NativeConnection } from '@temporalio/worker';
import { migrate } from '../db/migrate.js';
import { createPool } from '../db/pool.js';
import { keepRollupsCurrent } from '../db/rollups.js';
import type { RoadConfig } from '../domain/config.js';
import { installRuntime } from '../workers/runtime.js';
import { createRoadWorker } from '../workers/worker.js';
import { requireDatabaseUrl } from './config.js';

export async function runWorker(config: RoadConfig): Promise<void> {
  const databaseUrl = requireDatabaseUrl(config);
  await migrate(databaseUrl);
  // SIGINT/SIGTERM shut the worker down gracefully: running activities get shutdownGraceTime to finish.
  installRuntime({ shutdownSignals: ['SIGINT', 'SIGTERM'] });
  const connection = await NativeConnection.connect({ address: config.temporal.address });
  const pool = createPool(databaseUrl);
  // Stored events are folded into the analysis rollups every few seconds, so an analysis has little left to fold.
  const stopFolding = keepRollupsCurrent(pool, { onError: (error) => console.error(`folding events into the analysis rollups failed (retrying): ${(error as Error).message}`) });
  try {
    const worker = await createRoadWorker({ connection, namespace: config.temporal.namespace, taskQueue: config.temporal.taskQueue, pool, config });
    console.log(`ROAD worker on task queue "${config.temporal.taskQueue}" at ${config.temporal.address} (namespace ${config.temporal.namespace})`);
    await worker.run();
  } finally {
    await stopFolding();
    await connection.close();
    await pool.end();
  }
}
