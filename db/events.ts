/**
 * Storing phase-outcome events exactly once. Every write — a request's batch (≤ 1,000: the HTTP API, the recorder,
 * `road record`) or a stream's chunk (`road import`) — goes through `writeChunk`, one transaction that judges each
 * event: new → accepted, same id and content as stored → duplicate, same id and other content → conflict.
 * COPY alone cannot deduplicate: a chunk is COPYed straight in (the usual chunk has only new events); when one of its
 * ids is stored already, that is undone, the stored ids of the chunk are looked up and only new events are COPYed;
 * if a concurrent writer stores one of them meanwhile, the chunk falls back to COPY into a staging table and
 * INSERT … SELECT … ON CONFLICT DO NOTHING, which judges every row whatever runs beside it.
 */
import type { DatabaseError, PoolClient } from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { pipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';
import {
  CONTENT_COLUMNS,
  conflictMessage,
  DATABASE_CHECKS,
  splitRepeats,
  validateEvent,
  type ItemResult,
  type PhaseOutcomeEvent,
} from '../domain/telemetry.js';
import { inTransaction, withClient, type Pool } from './pool.js';

export const EVENT_COLUMNS = ['event_id', ...CONTENT_COLUMNS, 'content_hash'] as const satisfies ReadonlyArray<keyof PhaseOutcomeEvent>;

const COLUMN_TYPES: Record<(typeof EVENT_COLUMNS)[number], string> = {
  event_id: 'text', run_id: 'text', phase_id: 'text', phase_type: 'text', model: 'text', attempt: 'integer',
  outcome: 'phase_outcome', stop_reason: 'text', decision_rationale: 'text', tokens_used: 'bigint',
  prompt_tokens: 'bigint', completion_tokens: 'bigint', duration_ms: 'bigint', files: 'text[]', tests_failed: 'text[]',
  commit_sha: 'text', occurred_at: 'timestamptz', metadata: 'jsonb', content_hash: 'text',
};

const COLUMN_LIST = EVENT_COLUMNS.join(', ');
const STAGING_COLUMNS = ['ord integer', ...EVENT_COLUMNS.map((c) => `${c} ${COLUMN_TYPES[c]}`)].join(', ');

/** Inserts the rows of `source` (which has `ord` plus the event columns) and returns those that were not inserted. */
const storeAndJudge = (source: string, where = '') => `
  WITH inserted AS (
    INSERT INTO phase_outcome_events (${COLUMN_LIST})
    SELECT ${COLUMN_LIST} FROM ${source} ${where} ORDER BY event_id
    ON CONFLICT (event_id) DO NOTHING
    RETURNING event_id
  )
  SELECT s.ord, s.event_id, e.content_hash AS stored_hash
  FROM ${source} s LEFT JOIN phase_outcome_events e ON e.event_id = s.event_id
  ${where ? where.replace('WHERE', 'WHERE s.') + ' AND' : 'WHERE'} NOT EXISTS (SELECT 1 FROM inserted i WHERE i.event_id = s.event_id)`;

interface NotInserted {
  ord: number;
  event_id: string;
  /** null when another transaction stored the id after this statement's snapshot: looked up again. */
  stored_hash: string | null;
}

export interface Judged {
  index: number;
  event: PhaseOutcomeEvent;
  /** The content columns in COPY text format (domain/telemetry.ts canonicalContent). */
  contentText: string;
}

/**
 * Turns the rows the database did not insert into verdicts for every valid item: the first occurrence of an id
 * against what is stored, and repeats within the batch against whatever was stored for that id.
 */
async function verdicts(client: PoolClient, firsts: Judged[], repeats: Judged[], notInserted: NotInserted[]): Promise<ItemResult[]> {
  const unresolved = notInserted.filter((row) => row.stored_hash === null).map((row) => row.event_id);
  const late = new Map<string, string>();
  if (unresolved.length) {
    const { rows } = await client.query<{ event_id: string; content_hash: string }>(
      'SELECT event_id, content_hash FROM phase_outcome_events WHERE event_id = ANY($1)',
      [unresolved],
    );
    for (const row of rows) late.set(row.event_id, row.content_hash);
  }
  const storedHash = new Map<string, string>(); // id → hash of the stored content, for ids the batch touched
  const rejected = new Map<number, string>(); // ord → stored hash, for firsts that were not inserted
  for (const row of notInserted) rejected.set(row.ord, row.stored_hash ?? late.get(row.event_id)!);

  const results: ItemResult[] = [];
  firsts.forEach(({ index, event }, ord) => {
    const stored = rejected.get(ord);
    storedHash.set(event.event_id, stored ?? event.content_hash);
    results.push(judge(index, event, stored === undefined ? 'accepted' : stored));
  });
  for (const { index, event } of repeats) results.push(judge(index, event, storedHash.get(event.event_id)!));
  return results;
}

function judge(index: number, event: PhaseOutcomeEvent, stored: 'accepted' | string): ItemResult {
  if (stored === 'accepted') return { index, status: 'accepted', event_id: event.event_id };
  if (stored === event.content_hash) return { index, status: 'duplicate', event_id: event.event_id, message: 'already recorded with the same content' };
  return { index, status: 'conflict', event_id: event.event_id, message: conflictMessage(event.event_id) };
}

/** Validates and stores a batch; returns one result per input, in input order. */
export async function storeEvents(pool: Pool, inputs: readonly unknown[]): Promise<ItemResult[]> {
  const results: ItemResult[] = [];
  const valid: Judged[] = [];
  inputs.forEach((input, index) => {
    const checked = validateEvent(input);
    if (checked.ok) valid.push({ index, event: checked.event, contentText: checked.contentText });
    else results.push({ index, status: 'invalid', message: checked.message });
  });
  if (valid.length) results.push(...(await storeValid(pool, valid)));
  return results.sort((a, b) => a.index - b.index);
}

/** Stores events that were validated already (the recorder validates when an event is recorded). */
export function storeValid(pool: Pool, valid: Judged[]): Promise<ItemResult[]> {
  return withClient(pool, (client) => writeChunk(client, valid));
}

// ---------------------------------------------------------------- bulk path

export interface RawItem {
  /** The caller's position of the item (a line number for a file). */
  index: number;
  /** The parsed JSON value, or the reason it could not be parsed. */
  value?: unknown;
  parseError?: string;
}

/** Events per chunk of the bulk path unless BulkOptions.chunkSize says otherwise. */
export const DEFAULT_CHUNK_SIZE = 20_000;

export interface BulkOptions {
  /** Events per COPY + INSERT transaction (default DEFAULT_CHUNK_SIZE). A chunk is committed as a whole. */
  chunkSize?: number;
  /**
   * Chunks in the database at once, each on its own connection (default 2: PostgreSQL's work on a chunk is most of
   * the cost, and one backend uses one core). A chunk that shares an event id with one still being written waits
   * for it, so the first occurrence of an id in the input is the one judged first, as if written one by one.
   */
  concurrency?: number;
  /** Called once per committed chunk with its results (invalid items included), in input order. */
  onChunk?: (results: ItemResult[]) => void | Promise<void>;
}

/**
 * Streams items into the events table through COPY. Memory stays flat in the input's length: the next chunk is
 * validated while the previous ones are written, and nothing else is kept.
 */
export async function bulkStoreEvents(pool: Pool, items: AsyncIterable<RawItem> | Iterable<RawItem>, options: BulkOptions = {}): Promise<void> {
  const chunkSize = options.chunkSize ?? DEFAULT_CHUNK_SIZE;
  const concurrency = Math.max(1, options.concurrency ?? 2);
  const inFlight: Array<{ ids: Set<string>; written: Promise<unknown> }> = [];
  let delivered: Promise<void> = Promise.resolve(); // onChunk calls, one after another in input order
  let failure: { error: unknown } | undefined;
  let invalid: ItemResult[] = [];
  let valid: Judged[] = [];
  const flush = async () => {
    const chunk = { invalid, valid };
    invalid = [];
    valid = [];
    const ids = new Set(chunk.valid.map((item) => item.event.event_id));
    // Room for one more, and no id shared with a chunk still being written.
    const sharesAnId = (other: { ids: Set<string> }) => {
      for (const id of ids) if (other.ids.has(id)) return true;
      return false;
    };
    while (inFlight.length >= concurrency || inFlight.some(sharesAnId)) {
      await Promise.race(inFlight.map((other) => other.written));
    }
    if (failure) throw failure.error;
    const written = withClient(pool, (client) => writeChunk(client, chunk.valid));
    const entry = { ids, written: written.then(() => undefined, () => undefined) };
    inFlight.push(entry);
    void entry.written.then(() => inFlight.splice(inFlight.indexOf(entry), 1));
    delivered = delivered.then(async () => {
      const stored = await written;
      await options.onChunk?.([...chunk.invalid, ...stored].sort((a, b) => a.index - b.index));
    });
    delivered.catch((error: unknown) => (failure ??= { error })); // surfaces at the next flush or at the end
  };
  try {
    for await (const item of items) {
      if (item.parseError !== undefined) invalid.push({ index: item.index, status: 'invalid', message: item.parseError });
      else {
        const checked = validateEvent(item.value);
        if (checked.ok) valid.push({ index: item.index, event: checked.event, contentText: checked.contentText });
        else invalid.push({ index: item.index, status: 'invalid', message: checked.message });
      }
      const pending = valid.length + invalid.length;
      if (pending >= chunkSize) await flush();
      // Validation is synchronous; yielding now and then lets the chunks being written stream to PostgreSQL
      // meanwhile, so the database and this process work in parallel (on a synchronous source they would take turns).
      else if (pending % 64 === 0) await new Promise<void>((resolve) => setImmediate(resolve));
    }
    if (valid.length + invalid.length) await flush();
  } finally {
    // No connection is left writing, whatever happened.
    await Promise.all(inFlight.map((entry) => entry.written));
  }
  await delivered;
}

/**
 * One chunk, one transaction, judged by storeFirsts: COPY straight in; else look up which ids are stored and COPY the
 * new events; else (a concurrent writer stored one of them meanwhile) COPY into staging + INSERT … ON CONFLICT DO
 * NOTHING, which judges every row whatever runs beside it.
 * If PostgreSQL refuses a row anyway (a CHECK, an encoding error: the validator and the database disagree), only
 * that event comes back invalid — see storeJudging — and the rest of the chunk is stored.
 */
async function writeChunk(client: PoolClient, valid: Judged[]): Promise<ItemResult[]> {
  if (!valid.length) return [];
  return inTransaction(client, async () => {
    const results: ItemResult[] = [];
    let pending = valid;
    // Usually one round. A refused event's id may come again in the batch with other content, which may be stored:
    // such repeats are judged in a round of their own.
    while (pending.length) {
      const { firsts, repeats } = splitRepeats(pending);
      const { notInserted, refused } = await storeFirsts(client, firsts);
      if (!refused.size) {
        results.push(...(await verdicts(client, firsts, repeats, notInserted)));
        break;
      }
      const refusedIds = new Map<string, { hash: string; message: string }>();
      const stored: Judged[] = [];
      firsts.forEach((item, ord) => {
        const message = refused.get(ord);
        if (message === undefined) return void stored.push(item);
        refusedIds.set(item.event.event_id, { hash: item.event.content_hash, message });
        results.push({ index: item.index, status: 'invalid', event_id: item.event.event_id, message });
      });
      const storedRepeats: Judged[] = [];
      pending = [];
      for (const item of repeats) {
        const refusal = refusedIds.get(item.event.event_id);
        if (!refusal) storedRepeats.push(item);
        else if (refusal.hash === item.event.content_hash) results.push({ index: item.index, status: 'invalid', event_id: item.event.event_id, message: refusal.message });
        else pending.push(item);
      }
      const ordOf = new Map(firsts.map((item, ord) => [item, ord]));
      const kept = stored.map((item) => ordOf.get(item)!);
      const renumbered = new Map(kept.map((ord, i) => [ord, i]));
      const notInsertedKept = notInserted.filter((row) => renumbered.has(row.ord)).map((row) => ({ ...row, ord: renumbered.get(row.ord)! }));
      results.push(...(await verdicts(client, stored, storedRepeats, notInsertedKept)));
    }
    return results;
  });
}

/**
 * Stores the first occurrence of each id; returns the rows not inserted (already stored) and the refused ones (ord →
 * message). Usually none of a chunk's ids is stored yet, so the chunk is first COPYed straight in without looking
 * (the look-up cost PostgreSQL about 2 µs per event); a unique violation — an id stored before, or by a concurrent
 * writer meanwhile — undoes that and the chunk takes the judging paths below.
 */
async function storeFirsts(client: PoolClient, firsts: Judged[]): Promise<{ notInserted: NotInserted[]; refused: Map<number, string> }> {
  const ids = firsts.map(({ event }) => event.event_id);
  // Rows in event_id order: concurrent chunks then take their row locks in one order and cannot deadlock.
  const inIdOrder = (rows: Array<{ ord: number; line: string }>) => rows.sort((a, b) => (ids[a.ord]! < ids[b.ord]! ? -1 : 1));
  const lines = firsts.map(({ event, contentText }) => copyLine(undefined, event, contentText));
  const write = (rows: Array<{ ord: number; line: string }>) => copyRows(client, `phase_outcome_events (${COLUMN_LIST})`, rows.map((r) => r.line));
  /** COPYs `rows` straight into the table: the refused ones, or undefined (undone) when one of their ids is stored. */
  const copyDirect = async (rows: Array<{ ord: number; line: string }>) => {
    await client.query('SAVEPOINT direct_copy');
    try {
      return await storeJudging(client, 'direct_copy', inIdOrder(rows), write);
    } catch (error) {
      if ((error as { code?: string }).code !== '23505') throw error; // unique_violation
      await client.query('ROLLBACK TO SAVEPOINT direct_copy');
      return undefined;
    }
  };
  const all = await copyDirect(lines.map((line, ord) => ({ ord, line })));
  if (all) return { notInserted: [], refused: all };
  // An id is stored already: store only the others.
  const { rows: stored } = await client.query<{ event_id: string; content_hash: string }>(
    'SELECT event_id, content_hash FROM phase_outcome_events WHERE event_id = ANY($1::text[])',
    [ids],
  );
  const storedHash = new Map(stored.map((row) => [row.event_id, row.content_hash]));
  const notInserted: NotInserted[] = [];
  const fresh: Array<{ ord: number; line: string }> = [];
  firsts.forEach(({ event }, ord) => {
    const hash = storedHash.get(event.event_id);
    if (hash === undefined) fresh.push({ ord, line: lines[ord]! });
    else notInserted.push({ ord, event_id: event.event_id, stored_hash: hash });
  });
  const others = await copyDirect(fresh);
  if (others) return { notInserted, refused: others };
  // A concurrent writer stored one of them meanwhile.
  const refused = new Map<number, string>();
  // The fallback judges every row whatever runs beside it: staging, then INSERT … ON CONFLICT DO NOTHING.
  await client.query(`CREATE TEMP TABLE IF NOT EXISTS road_event_staging (${STAGING_COLUMNS}) ON COMMIT DELETE ROWS`);
  await client.query('DELETE FROM road_event_staging'); // an earlier round of this transaction may have left rows
  const staged = firsts.map(({ event, contentText }, ord) => ({ ord, line: copyLine(ord, event, contentText) }));
  await client.query('SAVEPOINT road_staging');
  for (const [ord, message] of await storeJudging(client, 'road_staging', staged, (rows) => copyRows(client, 'road_event_staging', rows.map((r) => r.line)))) {
    refused.set(ord, message);
  }
  const notInsertedRows: NotInserted[] = [];
  const inStaging = staged.filter((row) => !refused.has(row.ord));
  await client.query('SAVEPOINT road_staging');
  const judged = await storeJudging(client, 'road_staging', inStaging, async (rows) => {
    const ords = rows.map((r) => r.ord);
    const { rows: found } = await client.query<NotInserted>(storeAndJudge('road_event_staging', 'WHERE ord = ANY($1::integer[])'), [ords]);
    notInsertedRows.push(...found);
    return found.length;
  });
  for (const [ord, message] of judged) refused.set(ord, message);
  return { notInserted: notInsertedRows, refused };
}

/** SQLSTATE classes of a row the database refuses for what it holds: data exceptions (22…), integrity (23…, but
 * unique_violation has its own path), program limits (54…, e.g. an index row too large). Anything else — a lost
 * connection, a shutdown, a serialization failure — is not the event's fault and is thrown. */
const isRefusal = (error: unknown): error is DatabaseError => {
  const code = (error as { code?: unknown }).code;
  return typeof code === 'string' && code !== '23505' && /^(22|23|54)/.test(code);
};

/**
 * Runs `write` on all rows, just after the caller set `savepoint`. When the database refuses the batch for a row's
 * content, it rolls back to the savepoint and finds the refused rows by bisection (each try under a savepoint of
 * its own, so what was written before stays) while writing all the others. Returns the refused rows' messages by
 * ord. One bad row among n costs about 2·log2(n) statements — on the failure path only: the usual batch is one
 * statement, as before.
 */
async function storeJudging<R extends { ord: number }>(
  client: PoolClient,
  savepoint: string,
  rows: R[],
  write: (rows: R[]) => Promise<unknown>,
): Promise<Map<number, string>> {
  const refused = new Map<number, string>();
  if (!rows.length) return refused;
  try {
    await write(rows);
    return refused;
  } catch (error) {
    if (!isRefusal(error)) throw error;
    await client.query(`ROLLBACK TO SAVEPOINT ${savepoint}`);
  }
  const bisect = async (part: R[]): Promise<void> => {
    const half = part.length >> 1;
    for (const piece of [part.slice(0, half), part.slice(half)]) {
      if (!piece.length) continue;
      await client.query('SAVEPOINT road_rows');
      let refusal: DatabaseError;
      try {
        await write(piece);
        await client.query('RELEASE SAVEPOINT road_rows');
        continue;
      } catch (error) {
        if (!isRefusal(error)) throw error;
        refusal = error;
        await client.query('ROLLBACK TO SAVEPOINT road_rows');
        await client.query('RELEASE SAVEPOINT road_rows');
      }
      if (piece.length === 1) refused.set(piece[0]!.ord, await refusalMessage(client, refusal));
      else await bisect(piece);
    }
  };
  await bisect(rows);
  return refused;
}

/** The refusal in words, naming the field: the contract's rule for our CHECKs, the columns of any other constraint. */
async function refusalMessage(client: PoolClient, error: DatabaseError): Promise<string> {
  const known = error.constraint ? DATABASE_CHECKS[error.constraint] : undefined;
  if (known) return `${known.field} was refused by the database (${error.constraint}): ${known.field} must be ${known.rule}`;
  let fields = error.column ? [error.column] : [];
  if (!fields.length && error.constraint) {
    const { rows } = await client.query<{ attname: string }>(
      `SELECT a.attname FROM pg_constraint c JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = ANY (c.conkey)
       WHERE c.conrelid = 'phase_outcome_events'::regclass AND c.conname = $1 ORDER BY a.attnum`,
      [error.constraint],
    );
    fields = rows.map((row) => row.attname);
  }
  if (!fields.length) fields = [/column (\w+)/.exec(error.where ?? '')?.[1] ?? (error.code === '22P05' || error.code === '22P02' ? 'metadata' : 'the event')];
  return `${fields.join(', ')} refused by the database (${error.constraint ?? `SQLSTATE ${error.code}`}): ${error.message}`;
}

/** COPY … FROM STDIN of preformatted text-format lines. */
export async function copyRows(client: PoolClient, table: string, lines: string[]): Promise<void> {
  const BATCH = 1000; // lines per stream chunk: few, large writes
  const chunks = function* () {
    for (let i = 0; i < lines.length; i += BATCH) yield lines.slice(i, i + BATCH).join('');
  };
  await pipeline(Readable.from(chunks()), client.query(copyFrom(`COPY ${table} FROM STDIN`)));
}

/** One row of COPY's text format: (ord,) event_id, the content columns, content_hash. */
export function copyLine(ord: number | undefined, event: PhaseOutcomeEvent, contentText: string): string {
  // event_id and content_hash are plain ASCII (checked), so they need no escaping.
  return `${ord === undefined ? '' : `${ord}\t`}${event.event_id}\t${contentText}\t${event.content_hash}\n`;
}
