/**
 * The analysis rollups (migration 1764300000000_analysis_rollups.sql): stored events are noted as pending by a
 * trigger and folded into the hourly rollups here — by every analysis before it reads, and every few seconds by the
 * worker (`road worker`, `road dev`), so an analysis rarely has more than a few seconds of events to fold.
 */
import { inTransaction, withClient, type Pool } from './pool.js';

/** Serialises folding across processes (a session-level advisory lock, released if the connection drops). */
const FOLD_LOCK = 7_012_345_678;

/** Folds every pending event into the rollups; returns how many were folded. */
export function foldPendingEvents(pool: Pool): Promise<number> {
  return withClient(pool, async (client) => {
    await client.query('SELECT pg_advisory_lock($1)', [FOLD_LOCK]);
    try {
      // The lock is held before the snapshot is taken, so the snapshot includes what the previous fold committed.
      const { rows } = await inTransaction(client, () => client.query<{ folded: string }>('SELECT road_rollup_pending() AS folded'), 'BEGIN ISOLATION LEVEL REPEATABLE READ');
      return Number(rows[0]!.folded);
    } finally {
      await client.query('SELECT pg_advisory_unlock($1)', [FOLD_LOCK]);
    }
  });
}

/** How many stored events wait to be folded (for progress messages). */
export async function pendingEvents(pool: Pool): Promise<number> {
  const { rows } = await pool.query<{ n: string }>('SELECT count(*) AS n FROM rollup_pending');
  return Number(rows[0]!.n);
}

/**
 * Folds pending events every `everyMs` until stopped; a failed fold (the database restarting, say) is reported and
 * retried at the next tick — nothing is lost, the events stay pending.
 */
export function keepRollupsCurrent(pool: Pool, options: { everyMs?: number; onError?: (error: unknown) => void } = {}): () => Promise<void> {
  const everyMs = options.everyMs ?? 5_000;
  let stopped = false;
  let running: Promise<unknown> = Promise.resolve();
  const timer = setInterval(() => {
    running = running.then(() => (stopped ? 0 : foldPendingEvents(pool))).catch((error: unknown) => options.onError?.(error));
  }, everyMs);
  timer.unref();
  return async () => {
    stopped = true;
    clearInterval(timer);
    await running;
  };
}
