/**
 * Storing phase-outcome events exactly once. Two paths share one judging statement:
 *  - `storeEvents`: a batch (≤ 1,000: the HTTP API, the recorder) sent as one jsonb parameter;
 *  - `bulkStoreEvents`: a stream (imports), in chunks COPYed into a temporary staging table.
 * Either way: INSERT … ON CONFLICT (event_id) DO NOTHING, then every row that was not inserted is compared with the
 * stored row's content hash → duplicate or conflict. COPY alone cannot deduplicate, hence the staging table.
 */
import type { PoolClient } from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { pipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';
import {
  conflictMessage,
  splitRepeats,
  validateEvent,
  type ItemResult,
  type PhaseOutcomeEvent,
} from '../domain/telemetry.js';
import type { Pool } from './pool.js';

export const EVENT_COLUMNS = [
  'event_id', 'run_id', 'phase_id', 'phase_type', 'model', 'attempt', 'outcome', 'stop_reason', 'decision_rationale',
  'tokens_used', 'prompt_tokens', 'completion_tokens', 'duration_ms', 'files', 'tests_failed', 'commit_sha',
  'occurred_at', 'metadata', 'content_hash',
] as const satisfies ReadonlyArray<keyof PhaseOutcomeEvent>;

const COLUMN_TYPES: Record<(typeof EVENT_COLUMNS)[number], string> = {
  event_id: 'text', run_id: 'text', phase_id: 'text', phase_type: 'text', model: 'text', attempt: 'integer',
  outcome: 'phase_outcome', stop_reason: 'text', decision_rationale: 'text', tokens_used: 'bigint',
  prompt_tokens: 'bigint', completion_tokens: 'bigint', duration_ms: 'bigint', files: 'text[]', tests_failed: 'text[]',
  commit_sha: 'text', occurred_at: 'timestamptz', metadata: 'jsonb', content_hash: 'text',
};

const COLUMN_LIST = EVENT_COLUMNS.join(', ');
const RECORD_TYPE = ['ord integer', ...EVENT_COLUMNS.map((c) => `${c} ${COLUMN_TYPES[c]}`)].join(', ');

/** Inserts the rows of `source` (which has `ord` plus the event columns) and returns those that were not inserted. */
const storeAndJudge = (source: string, sourceCte = '') => `
  WITH ${sourceCte ? `${source} AS (${sourceCte}),` : ''} inserted AS (
    INSERT INTO phase_outcome_events (${COLUMN_LIST})
    SELECT ${COLUMN_LIST} FROM ${source}
    ON CONFLICT (event_id) DO NOTHING
    RETURNING event_id
  )
  SELECT s.ord, s.event_id, e.content_hash AS stored_hash
  FROM ${source} s LEFT JOIN phase_outcome_events e ON e.event_id = s.event_id
  WHERE NOT EXISTS (SELECT 1 FROM inserted i WHERE i.event_id = s.event_id)`;

interface NotInserted {
  ord: number;
  event_id: string;
  /** null when another transaction stored the id after this statement's snapshot: looked up again. */
  stored_hash: string | null;
}

export interface Judged {
  index: number;
  event: PhaseOutcomeEvent;
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

/** Validates and stores a batch (one jsonb parameter); returns one result per input, in input order. */
export async function storeEvents(pool: Pool, inputs: readonly unknown[]): Promise<ItemResult[]> {
  const results: ItemResult[] = [];
  const valid: Judged[] = [];
  inputs.forEach((input, index) => {
    const checked = validateEvent(input);
    if (checked.ok) valid.push({ index, event: checked.event });
    else results.push({ index, status: 'invalid', message: checked.message });
  });
  if (valid.length) results.push(...(await storeValid(pool, valid)));
  return results.sort((a, b) => a.index - b.index);
}

export async function storeValid(pool: Pool, valid: Judged[]): Promise<ItemResult[]> {
  const { firsts, repeats } = splitRepeats(valid);
  return withClient(pool, async (client) => {
    const rows = JSON.stringify(firsts.map(({ event }, ord) => ({ ord, ...event })));
    const { rows: notInserted } = await client.query<NotInserted>(
      storeAndJudge('src', `SELECT * FROM jsonb_to_recordset($1::jsonb) AS x(${RECORD_TYPE})`),
      [rows],
    );
    return verdicts(client, firsts, repeats, notInserted);
  });
}

/** Runs `work` on one pooled connection; a connection that failed is destroyed, not handed to the next caller. */
async function withClient<T>(pool: Pool, work: (client: PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  try {
    const result = await work(client);
    client.release();
    return result;
  } catch (error) {
    client.release(error instanceof Error ? error : true);
    throw error;
  }
}

// ---------------------------------------------------------------- bulk path

export interface RawItem {
  /** The caller's position of the item (a line number for a file). */
  index: number;
  /** The parsed JSON value, or the reason it could not be parsed. */
  value?: unknown;
  parseError?: string;
}

export interface BulkOptions {
  /** Events per COPY + INSERT transaction (default 20,000). A chunk is committed as a whole. */
  chunkSize?: number;
  /** Called once per committed chunk with its results (invalid items included), in input order. */
  onChunk?: (results: ItemResult[]) => void | Promise<void>;
}

/**
 * Streams items into the events table through COPY. Memory stays flat in the input's length: one chunk is validated
 * while the previous one is written, and nothing else is kept.
 */
export async function bulkStoreEvents(pool: Pool, items: AsyncIterable<RawItem> | Iterable<RawItem>, options: BulkOptions = {}): Promise<void> {
  const chunkSize = options.chunkSize ?? 20_000;
  await withClient(pool, async (client) => {
    await client.query(`CREATE TEMP TABLE IF NOT EXISTS road_event_staging (${RECORD_TYPE}) ON COMMIT DELETE ROWS`);
    let writing: Promise<void> = Promise.resolve();
    let invalid: ItemResult[] = [];
    let valid: Judged[] = [];
    const flush = async () => {
      const chunk = { invalid, valid };
      invalid = [];
      valid = [];
      await writing; // one chunk in the database while the next is validated
      writing = writeChunk(client, chunk.valid).then(async (stored) => {
        await options.onChunk?.([...chunk.invalid, ...stored].sort((a, b) => a.index - b.index));
      });
      writing.catch(() => undefined); // a failure surfaces at the next `await writing`, not as an unhandled rejection
    };
    try {
      for await (const item of items) {
        if (item.parseError !== undefined) invalid.push({ index: item.index, status: 'invalid', message: item.parseError });
        else {
          const checked = validateEvent(item.value);
          if (checked.ok) valid.push({ index: item.index, event: checked.event });
          else invalid.push({ index: item.index, status: 'invalid', message: checked.message });
        }
        if (valid.length + invalid.length >= chunkSize) await flush();
      }
      if (valid.length + invalid.length) await flush();
    } finally {
      await writing.catch(() => undefined); // the connection is not released while a chunk is still being written
    }
    await writing;
  });
}

async function writeChunk(client: PoolClient, valid: Judged[]): Promise<ItemResult[]> {
  if (!valid.length) return [];
  const { firsts, repeats } = splitRepeats(valid);
  await client.query('BEGIN');
  try {
    await copyRows(client, 'road_event_staging', firsts.map(({ event }, ord) => copyLine(ord, event)));
    const { rows } = await client.query<NotInserted>(storeAndJudge('road_event_staging'));
    const results = await verdicts(client, firsts, repeats, rows);
    await client.query('COMMIT');
    return results;
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw error;
  }
}

/** COPY … FROM STDIN of preformatted text-format lines. */
export async function copyRows(client: PoolClient, table: string, lines: string[]): Promise<void> {
  const BATCH = 1000; // lines per stream chunk: few, large writes
  const chunks = function* () {
    for (let i = 0; i < lines.length; i += BATCH) yield lines.slice(i, i + BATCH).join('');
  };
  await pipeline(Readable.from(chunks()), client.query(copyFrom(`COPY ${table} FROM STDIN`)));
}

/** One row of COPY's text format: ord, then the event columns. */
export function copyLine(ord: number, event: PhaseOutcomeEvent): string {
  let line = String(ord);
  for (const column of EVENT_COLUMNS) line += '\t' + copyField(event[column]);
  return line + '\n';
}

function copyField(value: unknown): string {
  if (value === null || value === undefined) return '\\N';
  if (typeof value === 'number') return String(value);
  if (typeof value === 'string') return escapeCopy(value);
  if (Array.isArray(value)) return escapeCopy(`{${value.map((v) => `"${String(v).replace(/["\\]/g, '\\$&')}"`).join(',')}}`);
  return escapeCopy(JSON.stringify(value));
}

const COPY_ESCAPES: Record<string, string> = { '\\': '\\\\', '\n': '\\n', '\r': '\\r', '\t': '\\t' };
const escapeCopy = (text: string): string => text.replace(/[\\\n\r\t]/g, (c) => COPY_ESCAPES[c]!);
