/**
 * Once per `npm test`: the Temporal binaries must exist (a missing one fails the run, it is never a skip), and a
 * PostgreSQL server must run — DATABASE_URL's when set, else an embedded real one. Each test file creates its own
 * database on it (test/helpers/database.ts).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { TestProject } from 'vitest/node';
import { startEmbeddedPostgres, type EmbeddedDatabase } from '../db/embedded.js';
import { freePort, isProvisioned, toolPaths } from '../scripts/provision.js';

declare module 'vitest' {
  export interface ProvidedContext {
    postgresServerUrl: string;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  if (!isProvisioned()) {
    const paths = toolPaths();
    throw withoutStack(`Temporal binaries missing (${paths.temporalCli}, ${paths.testServer}): run \`npm run provision\` (npm test does it first)`);
  }
  if (process.env.DATABASE_URL) {
    project.provide('postgresServerUrl', process.env.DATABASE_URL);
    return async () => undefined;
  }
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'road-test-pg-'));
  let pg: EmbeddedDatabase;
  try {
    pg = await startEmbeddedPostgres({ dataDir, port: await freePort(), persistent: false });
  } catch (error) {
    rmSync(dataDir, { recursive: true, force: true });
    throw withoutStack(`the tests' embedded PostgreSQL did not start: ${(error as Error).message}`);
  }
  project.provide('postgresServerUrl', pg.url);
  return async () => {
    await pg.stop();
    rmSync(dataDir, { recursive: true, force: true });
  };
}

/** The reason alone: these messages say what to do, and vitest would bury them under its stack and code frame. */
function withoutStack(message: string): Error {
  const error = new Error(message);
  error.stack = `Error: ${message}`;
  return error;
}
