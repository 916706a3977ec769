/** Parameterised SQL for webhook deliveries (migration 1764900000000_notifications.sql). */
import { inTransaction, withClient, type Pool } from './pool.js';
import type { NotifyEvent } from '../domain/notify.js';

export type DeliveryStatus = 'pending' | 'delivered' | 'failed';

export interface NewDelivery {
  deliveryId: string;
  sourceKey: string;
  target: string;
  event: NotifyEvent;
  taskId: string | null;
  fingerprints: string[];
  /** JSON text of an object; stored as it is. */
  body: string;
}

/** A delivery as stored; its body exactly as stored and sent. */
export interface DeliveryRow extends NewDelivery {
  status: DeliveryStatus;
  attempts: number;
  lastStatusCode: number | null;
  lastError: string | null;
  createdAt: Date;
  updatedAt: Date;
  deliveredAt: Date | null;
}

const COLUMNS = `delivery_id AS "deliveryId", source_key AS "sourceKey", target, event, task_id AS "taskId", fingerprints, body::text AS body,
  status, attempts, last_status_code AS "lastStatusCode", last_error AS "lastError", created_at AS "createdAt",
  updated_at AS "updatedAt", delivered_at AS "deliveredAt"`;

/** What the error columns hold at most (the CHECK is in bytes: clip by characters well below it). */
const MAX_ERROR_CHARACTERS = 1000;

async function insertDelivery(run: Pool | { query: Pool['query'] }, delivery: NewDelivery): Promise<void> {
  await run.query(
    `INSERT INTO notifications (delivery_id, source_key, target, event, task_id, fingerprints, body)
     VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (delivery_id) DO NOTHING`,
    [delivery.deliveryId, delivery.sourceKey, delivery.target, delivery.event, delivery.taskId, delivery.fingerprints, delivery.body],
  );
}

export async function findDelivery(pool: Pool, deliveryId: string): Promise<DeliveryRow | undefined> {
  const { rows } = await pool.query<DeliveryRow>(`SELECT ${COLUMNS} FROM notifications WHERE delivery_id = $1`, [deliveryId]);
  return rows[0];
}

/** Stores a delivery the first time; every later call (a retry) gets the stored row, with the first attempt's body. */
export async function claimDelivery(pool: Pool, delivery: NewDelivery): Promise<DeliveryRow> {
  await insertDelivery(pool, delivery);
  return (await findDelivery(pool, delivery.deliveryId))!;
}

/**
 * For an analysis: stores the delivery with only the failure modes this receiver has not been told of by a delivery
 * made since `since` (the start of the analysed window), or returns the stored one on a retry. `build` makes the body
 * from the fingerprints that remain; nothing is stored when none remains. Serialised per receiver, so two loops
 * running at once never both announce the same failure mode.
 */
export async function claimAnalysisDelivery(
  pool: Pool,
  delivery: Omit<NewDelivery, 'body' | 'fingerprints'> & { candidates: string[] },
  since: string,
  build: (fresh: string[]) => string,
): Promise<DeliveryRow | undefined> {
  const stored = await findDelivery(pool, delivery.deliveryId);
  if (stored) return stored;
  return withClient(pool, (client) =>
    inTransaction(client, async () => {
      await client.query(`SELECT pg_advisory_xact_lock(hashtext('road-notify:' || $1))`, [delivery.target]);
      const { rows } = await client.query<{ fingerprint: string }>(
        `SELECT DISTINCT unnest(fingerprints) AS fingerprint FROM notifications
          WHERE target = $1 AND event = 'analysis.critical' AND created_at >= $2 AND delivery_id <> $3`,
        [delivery.target, since, delivery.deliveryId],
      );
      const announced = new Set(rows.map((r) => r.fingerprint));
      const fresh = delivery.candidates.filter((fingerprint) => !announced.has(fingerprint));
      if (!fresh.length) return undefined;
      const { candidates: _candidates, ...row } = delivery;
      await insertDelivery(client, { ...row, fingerprints: fresh, body: build(fresh) });
      const { rows: saved } = await client.query<DeliveryRow>(`SELECT ${COLUMNS} FROM notifications WHERE delivery_id = $1`, [delivery.deliveryId]);
      return saved[0];
    }),
  );
}

/** One HTTP attempt's outcome. Only a pending delivery changes: a delivered one stays delivered, whatever a late retry says. */
export async function recordDeliveryAttempt(
  pool: Pool,
  deliveryId: string,
  outcome: { status: DeliveryStatus; statusCode: number | null; error: string | null },
): Promise<void> {
  await pool.query(
    `UPDATE notifications
        SET attempts = attempts + 1, status = $2, last_status_code = $3, last_error = $4, updated_at = now(),
            delivered_at = CASE WHEN $2 = 'delivered' THEN now() END
      WHERE delivery_id = $1 AND status = 'pending'`,
    [deliveryId, outcome.status, outcome.statusCode, outcome.error === null ? null : clip(outcome.error)],
  );
}

/** After the last attempt: whatever of `sourceKey` is still pending failed for good. Returns how many rows. */
export async function markUndelivered(pool: Pool, sourceKey: string, reason: string): Promise<number> {
  const { rowCount } = await pool.query(
    `UPDATE notifications SET status = 'failed', last_error = coalesce(last_error, $2), updated_at = now()
      WHERE source_key = $1 AND status = 'pending'`,
    [sourceKey, clip(reason)],
  );
  return rowCount ?? 0;
}

/** The latest deliveries first, for `road notifications`. */
export async function listDeliveries(pool: Pool, options: { status?: DeliveryStatus; limit?: number } = {}): Promise<DeliveryRow[]> {
  const { rows } = await pool.query<DeliveryRow>(
    `SELECT ${COLUMNS} FROM notifications WHERE ($1::text IS NULL OR status = $1) ORDER BY created_at DESC, delivery_id LIMIT $2`,
    [options.status ?? null, options.limit ?? 50],
  );
  return rows;
}

function clip(text: string): string {
  const clean = text.replaceAll('\u0000', '');
  return clean.length <= MAX_ERROR_CHARACTERS ? clean : `${Array.from(clean).slice(0, MAX_ERROR_CHARACTERS - 1).join('')}…`;
}
