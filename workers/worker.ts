/** The ROAD worker: ROAD's workflows plus the activities built around a PostgreSQL pool. */
import { NativeConnection, Worker, type WorkerOptions } from '@temporalio/worker';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { createActivities } from '../activities/index.js';
import type { Pool } from '../db/pool.js';
import type { RoadConfig } from '../domain/config.js';

export const WORKFLOWS_PATH = fileURLToPath(new URL('../workflows/index.ts', import.meta.url));

export interface RoadWorkerOptions {
  connection: NativeConnection;
  namespace: string;
  taskQueue: string;
  pool: Pool;
  config?: RoadConfig;
  /** A prebuilt bundle (production, tests); without one the workflows are bundled at start. */
  workflowBundle?: WorkerOptions['workflowBundle'];
}

export function createRoadWorker(options: RoadWorkerOptions): Promise<Worker> {
  const bundle = options.workflowBundle ?? prebuiltBundle();
  return Worker.create({
    connection: options.connection,
    namespace: options.namespace,
    taskQueue: options.taskQueue,
    activities: createActivities({ pool: options.pool, config: options.config }),
    ...(bundle ? { workflowBundle: bundle } : { workflowsPath: WORKFLOWS_PATH }),
    shutdownGraceTime: '10 seconds',
  });
}

/**
 * A worker for replay runs only: it polls the replay task queue (road.config.json replay.taskQueue) and runs no
 * workflows, so replay capacity scales out by starting `road worker --replay-only` on more machines.
 */
export function createReplayWorker(options: Omit<RoadWorkerOptions, 'taskQueue' | 'workflowBundle'> & { config: RoadConfig }): Promise<Worker> | undefined {
  const replay = options.config.replay;
  if (!replay) return undefined;
  return Worker.create({
    connection: options.connection,
    namespace: options.namespace,
    taskQueue: replay.taskQueue,
    activities: createActivities({ pool: options.pool, config: options.config }),
    // Each run is a child process; a campaign bounds its own concurrency, this bounds the machine's.
    maxConcurrentActivityTaskExecutions: Math.max(replay.concurrency, 1) * 2,
    shutdownGraceTime: '10 seconds',
  });
}

/** `ROAD_WORKFLOW_BUNDLE` points at the file `npm run build:bundle` writes (the Docker image sets it). */
function prebuiltBundle(): WorkerOptions['workflowBundle'] | undefined {
  const codePath = process.env.ROAD_WORKFLOW_BUNDLE;
  if (!codePath) return undefined;
  if (!existsSync(codePath)) throw new Error(`ROAD_WORKFLOW_BUNDLE=${codePath} does not exist (run npm run build:bundle)`);
  return { codePath };
}
