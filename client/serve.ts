/** `road serve`: runs the HTTP API until SIGINT/SIGTERM, then drains in-flight requests and closes the pool. */
import type { Client } from '@temporalio/client';
import { migrate } from '../db/migrate.js';
import { createPool, type Pool } from '../db/pool.js';
import type { RoadConfig } from '../domain/config.js';
import { requireDatabaseUrl } from './config.js';
import { UsageError } from './errors.js';
import { RoadMetrics } from './metrics.js';
import { buildServer, parseApiTokens } from './server.js';

export interface ServeOptions {
  config: RoadConfig;
  host: string;
  port: number;
  pool: Pool;
  temporal: () => Promise<Client>;
}

export async function runServer(options: ServeOptions): Promise<void> {
  const tokens = parseApiTokens(process.env.ROAD_API_TOKENS);
  if (!tokens.length) {
    throw new UsageError('ROAD_API_TOKENS is not set: give comma-separated bearer tokens (REVIEWER=TOKEN binds a token to a reviewer for decisions)');
  }
  const databaseUrl = requireDatabaseUrl(options.config);
  await migrate(databaseUrl);
  // GET /metrics unless ROAD_METRICS=off; its state query gets a connection of its own, so a busy API never delays it.
  // Running loops are the worker's to report: it is always connected to Temporal, the API only when deciding.
  const metricsPool = metricsEnabled() ? createPool(databaseUrl, 1) : undefined;
  const metrics = metricsPool && new RoadMetrics({ pool: metricsPool, api: true });
  const app = buildServer({ pool: options.pool, tokens, temporal: options.temporal, logger: true, metrics, metricsToken: process.env.ROAD_METRICS_TOKEN || undefined });
  try {
    await app.listen({ host: options.host, port: options.port });
  } catch (error) {
    await metricsPool?.end();
    if ((error as NodeJS.ErrnoException).code === 'EADDRINUSE') throw new Error(`port ${options.port} is already in use; choose another with --port`, { cause: error });
    throw error;
  }
  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  await app.close();
  await metricsPool?.end();
}

/** ROAD_METRICS=off turns the metrics off (GET /metrics answers 404): the switch bench:ingest measures their cost with. */
export function metricsEnabled(env: NodeJS.ProcessEnv = process.env): boolean {
  return env.ROAD_METRICS !== 'off';
}
