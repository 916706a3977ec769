/** For tests that run the real `road dev` in a directory: its database, and waiting for something to happen. */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { road } from './cli.js';

/** A query on the database the `road dev` running in `dir` uses (from its .road/dev.json). */
export async function devSql<T extends pg.QueryResultRow>(dir: string, text: string, values: unknown[] = []): Promise<T[]> {
  const { databaseUrl } = JSON.parse(readFileSync(path.join(dir, '.road', 'dev.json'), 'utf8')) as { databaseUrl: string };
  const client = new pg.Client(databaseUrl);
  await client.connect();
  try {
    return (await client.query<T>(text, values)).rows;
  } finally {
    await client.end();
  }
}

/** Polls `probe` until it answers something, or fails naming `what`. */
export async function until<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>, everyMs = 300): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
}

/** The CLI as a person in another terminal runs it: it finds the running `road dev` in `dir` through ROAD_HOME. */
export function cliIn(dir: string) {
  const env = { ROAD_HOME: path.join(dir, '.road'), ROAD_CONFIG: path.join(dir, 'road.config.json'), DATABASE_URL: '', TEMPORAL_ADDRESS: '' };
  return async (...args: string[]) => {
    const result = await road(args, env);
    if (result.code !== 0) throw new Error(`road ${args.join(' ')} exited ${result.code}: ${result.stderr}`);
    return result.stdout;
  };
}
