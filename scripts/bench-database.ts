/** A dedicated, migrated database for a benchmark: on DATABASE_URL's server, or on an embedded server of its own. */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startEmbeddedPostgres } from '../db/embedded.js';
import { migrate } from '../db/migrate.js';
import { dropDatabase, ensureDatabase } from '../db/pool.js';
import { freePort } from './provision.js';

export interface BenchDatabase {
  url: string;
  /** Drops the database (and stops the embedded server); `keep` leaves both for a look at query plans. */
  release(keep?: boolean): Promise<void>;
}

export async function benchDatabase(prefix: string): Promise<BenchDatabase> {
  let serverUrl = process.env.DATABASE_URL;
  let stopServer = async (): Promise<unknown> => undefined;
  if (!serverUrl) {
    const dataDir = mkdtempSync(path.join(os.tmpdir(), 'road-bench-pg-'));
    const pg = await startEmbeddedPostgres({ dataDir, port: await freePort(), persistent: false });
    serverUrl = pg.url;
    stopServer = async () => {
      await pg.stop();
      rmSync(dataDir, { recursive: true, force: true });
    };
  }
  const name = `${prefix}_${process.pid}`;
  await ensureDatabase(serverUrl, name);
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  await migrate(url.toString());
  return {
    url: url.toString(),
    async release(keep = false) {
      if (keep) return void console.error(`kept ${url.toString()}`);
      await dropDatabase(serverUrl, name);
      await stopServer();
    },
  };
}
