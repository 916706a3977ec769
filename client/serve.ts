/** `road serve`: runs the HTTP API until SIGINT/SIGTERM, then drains in-flight requests and closes the pool. */
import type { Client } from '@temporalio/client';
import { migrate } from '../db/migrate.js';
import type { Pool } from '../db/pool.js';
import type { RoadConfig } from '../domain/config.js';
import { requireDatabaseUrl } from './config.js';
import { UsageError } from './errors.js';
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
  await migrate(requireDatabaseUrl(options.config));
  const app = buildServer({ pool: options.pool, tokens, temporal: options.temporal, logger: true });
  try {
    await app.listen({ host: options.host, port: options.port });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EADDRINUSE') throw new Error(`port ${options.port} is already in use; choose another with --port`, { cause: error });
    throw error;
  }
  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  await app.close();
}
