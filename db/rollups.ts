/**
 * The analysis rollups (migrations 1764300000000_analysis_rollups.sql and 1765000000000_faster_fold.sql): stored
 * events are noted as pending by a trigger and folded into the hourly rollups here — by every analysis before it
 * reads, and every few seconds by the worker (`road worker`, `road dev`), so an analysis rarely has more than a few
 * seconds of events to fold.
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
  return (await pendingBacklog(pool)).events;
}

/** The events waiting to be folded, and how long the oldest has waited (0 when none does). */
export async function pendingBacklog(pool: Pool): Promise<{ events: number; oldestAgeMs: number }> {
  const { rows } = await pool.query<{ n: string; age: number | null }>(
    'SELECT count(*) AS n, extract(epoch FROM clock_timestamp() - min(noted_at))::float8 * 1000 AS age FROM rollup_pending',
  );
  return { events: Number(rows[0]!.n), oldestAgeMs: Math.max(0, rows[0]!.age ?? 0) };
}

export interface KeepCurrentOptions {
  /** A fold starts this long after the previous one started (default 5 s); right after it when it took longer. */
  everyMs?: number;
  onError?: (error: unknown) => void;
  /** Called after every fold that found events. */
  onFold?: (fold: { events: number; ms: number }) => void;
}

/**
 * Folds pending events every `everyMs` until stopped. A fold that takes longer than `everyMs` (a burst, a backlog) is
 * followed at once by the next, so folding never falls behind by more than it can catch up; folds never overlap. A
 * failed fold (the database restarting, say) is reported and retried at the next tick — nothing is lost, the events
 * stay pending.
 */
export function keepRollupsCurrent(pool: Pool, options: KeepCurrentOptions = {}): () => Promise<void> {
  const everyMs = options.everyMs ?? 5_000;
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> = Promise.resolve();
  const tick = () => {
    running = (async () => {
      const started = performance.now();
      try {
        const events = await foldPendingEvents(pool);
        if (events > 0) options.onFold?.({ events, ms: performance.now() - started });
      } catch (error) {
        options.onError?.(error);
      }
      if (!stopped) {
        timer = setTimeout(tick, Math.max(0, everyMs - (performance.now() - started)));
        timer.unref();
      }
    })();
  };
  timer = setTimeout(tick, everyMs);
  timer.unref();
  return async () => {
    stopped = true;
    clearTimeout(timer);
    await running;
  };
}
