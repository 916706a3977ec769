/** A dedicated, migrated database for a benchmark: on DATABASE_URL's server, or on an embedded server of its own. */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startEmbeddedPostgres } from '../db/embedded.js';
import { migrate } from '../db/migrate.js';
import { dropDatabase, ensureDatabase, type Pool } from '../db/pool.js';
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

/**
 * CPU seconds used so far by the database server's processes, when they run on this machine (else undefined): the
 * postmaster's own, its live children's, and those of the children that ended (which Linux adds to the postmaster's
 * cutime/cstime when it reaps them), so a backend that exits between two readings takes nothing away.
 */
export async function serverCpuSeconds(pool: Pool): Promise<number | undefined> {
  const { rows } = await pool.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
  try {
    const postmaster = Number(procStat(rows[0]!.pid)[1]);
    let seconds = processCpuSeconds(postmaster, true);
    for (const child of readFileSync(`/proc/${postmaster}/task/${postmaster}/children`, 'utf8').trim().split(/\s+/)) {
      seconds += processCpuSeconds(Number(child));
    }
    return seconds;
  } catch {
    return undefined; // another machine's server, or no /proc
  }
}

/**
 * utime + stime of a process on this machine, in seconds (clock ticks are 1/100 s on Linux); with `reapedChildren`,
 * also cutime + cstime, the CPU of the children it has reaped. Throws when there is no such process here.
 */
export function processCpuSeconds(pid: number, reapedChildren = false): number {
  const stat = procStat(pid);
  const ticks = Number(stat[11]) + Number(stat[12]) + (reapedChildren ? Number(stat[13]) + Number(stat[14]) : 0);
  return ticks / 100;
}

/** The fields of /proc/PID/stat after the command name (so [1] is the parent's pid, [11] utime). */
function procStat(pid: number): string[] {
  return readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
}
