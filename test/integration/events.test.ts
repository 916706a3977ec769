/**
 * Telemetry storage on the real PostgreSQL: every invariant at its boundary (in zod and in the database's own
 * CHECKs), duplicates and conflicts within a batch, across batches and across concurrent requests, mixed batches,
 * and the bulk (COPY) path judging exactly like the per-item path.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bulkStoreEvents, EVENT_COLUMNS, storeEvents, type RawItem } from '../../db/events.js';
import { summarize, validateEvent, type ItemResult, type PhaseOutcomeInput } from '../../domain/telemetry.js';
import { createPool } from '../../db/pool.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => db?.drop());

let serial = 0;
const event = (overrides: Partial<PhaseOutcomeInput> = {}): PhaseOutcomeInput => ({
  event_id: `ev-${process.pid}-${++serial}`,
  run_id: 'run-1',
  phase_id: 'auth-migration',
  outcome: 'FAILED',
  stop_reason: 'builder_crash',
  occurred_at: '2026-11-20T10:00:00Z',
  ...overrides,
});

const statuses = (results: ItemResult[]) => results.map((r) => r.status);
const storedCount = async (ids: string[]) =>
  Number((await db.pool.query('SELECT count(*) FROM phase_outcome_events WHERE event_id = ANY($1)', [ids])).rows[0].count);

describe('invariants at their boundaries, through the per-item path', () => {
  const cases: Array<[string, Partial<PhaseOutcomeInput>, Partial<PhaseOutcomeInput>, RegExp]> = [
    ['phase_id of 255 vs 256 characters', { phase_id: 'p'.repeat(255) }, { phase_id: 'p'.repeat(256) }, /phase_id must be at most 255 characters/],
    // 'é' is 2 bytes in UTF-8: 127 × 2 + 1 = 255 bytes; 128 × 2 = 256 bytes.
    ['stop_reason of 255 vs 256 bytes (multi-byte UTF-8)', { stop_reason: 'é'.repeat(127) + 'a' }, { stop_reason: 'é'.repeat(128) }, /stop_reason must be at most 255 bytes/],
    // '€' is 3 bytes: 3,413 × 3 = 10,239 bytes (just under 10 KiB = 10,240); 3,413 × 3 + 1 = 10,240 (at 10 KiB).
    ['decision_rationale just under vs at 10 KiB', { decision_rationale: '€'.repeat(3413) }, { decision_rationale: '€'.repeat(3413) + 'x' }, /decision_rationale must be at most 10239 bytes/],
    ['run_id of 255 vs 256 characters (astral characters count once)', { run_id: '😀'.repeat(255) }, { run_id: '😀'.repeat(256) }, /run_id must be at most 255 characters/],
    ['event_id of 128 vs 129 characters', { event_id: 'e'.repeat(128) }, { event_id: 'e'.repeat(129) }, /event_id must be 1–128 characters/],
    ['files: 200 vs 201 paths', { files: Array.from({ length: 200 }, (_, i) => `src/f${i}.py`) }, { files: Array.from({ length: 201 }, (_, i) => `src/f${i}.py`) }, /files must list at most 200 paths/],
    ['tests_failed: 500 vs 501 ids', { tests_failed: Array.from({ length: 500 }, (_, i) => `t${i}`) }, { tests_failed: Array.from({ length: 501 }, (_, i) => `t${i}`) }, /tests_failed must list at most 500/],
    // Measured as jsonb writes it (what the CHECK measures): {"pad": "…"} — a space after the colon.
    ['metadata of 16 KiB vs one byte more', { metadata: { pad: 'm'.repeat(16384 - '{"pad": ""}'.length) } }, { metadata: { pad: 'm'.repeat(16385 - '{"pad": ""}'.length) } }, /metadata must be at most 16384 bytes as jsonb text \(got 16385\)/],
    // 5e-324 is 6 bytes of JSON but 326 in jsonb (numeric writes it out): 50 of them are 16,408 bytes there.
    ['metadata numbers measured as jsonb writes them', { metadata: { n: Array(49).fill(5e-324) } }, { metadata: { n: Array(51).fill(5e-324) } }, /metadata must be at most 16384 bytes as jsonb text/],
    ['files: [] and tests_failed: [] (a valid "none") vs a list with an empty path', { files: [], tests_failed: [] }, { files: [''] }, /files\[0\] must not be empty/],
    ['occurred_at at 2000-01-01T00:00:00Z vs a millisecond before', { occurred_at: '2000-01-01T00:00:00Z' }, { occurred_at: '2000-01-01T00:59:59.999+01:00' }, /occurred_at must not be before 2000-01-01T00:00:00Z/],
    ['tokens_used of 2^53 − 1 vs 2^53', { tokens_used: 2 ** 53 - 1 }, { tokens_used: 2 ** 53 }, /tokens_used must be at most 9007199254740991/],
    ['attempt 1 vs 0', { attempt: 1 }, { attempt: 0 }, /attempt must be ≥ 1/],
    ['tokens_used 0 vs -1', { tokens_used: 0 }, { tokens_used: -1 }, /tokens_used must be ≥ 0/],
  ];

  it.each(cases)('%s', async (_name, ok, tooBig, message) => {
    const [good, bad] = await storeEvents(db.pool, [event(ok), event(tooBig)]);
    expect(good!.status, good!.message).toBe('accepted');
    expect(bad!.status).toBe('invalid');
    expect(bad!.message).toMatch(message);
  });

  it('rejects an unknown outcome, a missing run_id, an offset-less time, absolute and ../ paths, NUL, unknown fields', async () => {
    const results = await storeEvents(db.pool, [
      event({ outcome: 'CRASHED' as never }),
      { ...event(), run_id: undefined },
      event({ occurred_at: '2026-11-20T10:00:00' }),
      event({ files: ['/etc/passwd'] }),
      event({ files: ['src/../../secrets'] }),
      event({ stop_reason: 'a\u0000b' }),
      { ...event(), colour: 'red' },
    ]);
    expect(statuses(results)).toEqual(Array(7).fill('invalid'));
    expect(results.map((r) => r.message)).toEqual([
      expect.stringMatching(/outcome must be one of SUCCESS, FAILED, TIMEOUT, STUCK/),
      expect.stringMatching(/run_id/),
      expect.stringMatching(/occurred_at must be an ISO-8601 date-time with seconds and a time zone offset/),
      expect.stringMatching(/files\[0\] must be repo-relative/),
      expect.stringMatching(/files\[0\] must not contain "\.\."/),
      expect.stringMatching(/stop_reason must not contain NUL/),
      expect.stringMatching(/colour/),
    ]);
  });

  it('normalises what it stores: UTC time, SUCCESS stop_reason "completed", repo paths, lower-case sha', async () => {
    const input = event({ outcome: 'SUCCESS', stop_reason: undefined, occurred_at: '2026-11-20T12:00:00+02:00', files: ['./src//a.py'], commit_sha: 'ABCDEF1' });
    const [result] = await storeEvents(db.pool, [input]);
    expect(result!.status).toBe('accepted');
    const { rows } = await db.pool.query('SELECT stop_reason, occurred_at, files, commit_sha FROM phase_outcome_events WHERE event_id = $1', [input.event_id]);
    expect(rows[0]).toEqual({ stop_reason: 'completed', occurred_at: new Date('2026-11-20T10:00:00Z'), files: ['src/a.py'], commit_sha: 'abcdef1' });
  });
});

describe('the database enforces the same invariants when zod is bypassed', () => {
  const insert = (overrides: Record<string, unknown>) => {
    const valid = validateEvent(event());
    if (!valid.ok) throw new Error(valid.message);
    const row: Record<string, unknown> = { ...valid.event, ...overrides };
    const values = EVENT_COLUMNS.map((c) => row[c]);
    return db.pool.query(
      `INSERT INTO phase_outcome_events (${EVENT_COLUMNS.join(', ')}) VALUES (${EVENT_COLUMNS.map((_, i) => `$${i + 1}`).join(', ')})`,
      values,
    );
  };

  it.each([
    ['phase_id of 256 characters', { phase_id: 'p'.repeat(256) }],
    ['stop_reason of 256 bytes', { stop_reason: 'é'.repeat(128) }],
    ['decision_rationale of 10 KiB', { decision_rationale: 'r'.repeat(10240) }],
    ['an event_id with a space', { event_id: 'has space' }],
    ['attempt 0', { attempt: 0 }],
    ['negative tokens', { tokens_used: -5 }],
    ['an absolute path', { files: ['/abs'] }],
    ['a .. path', { files: ['a/../../b'] }],
    ['201 files', { files: Array.from({ length: 201 }, (_, i) => `f${i}`) }],
    ['metadata that is not an object', { metadata: JSON.stringify([1, 2]) }],
  ])('refuses %s', async (_name, overrides) => {
    await expect(insert({ event_id: `db-${++serial}`, ...overrides })).rejects.toMatchObject({ code: '23514' }); // check_violation
  });

  it('refuses an unknown outcome (enum) and a second row with the same event_id (unique)', async () => {
    await expect(insert({ event_id: `db-${++serial}`, outcome: 'CRASHED' })).rejects.toMatchObject({ code: '22P02' });
    const id = `db-${++serial}`;
    await insert({ event_id: id });
    await expect(insert({ event_id: id })).rejects.toMatchObject({ code: '23505' });
  });

  it('accepts the values just inside every limit', async () => {
    await expect(
      insert({ event_id: `db-${++serial}`, phase_id: 'p'.repeat(255), stop_reason: 'é'.repeat(127) + 'a', decision_rationale: 'r'.repeat(10239) }),
    ).resolves.toMatchObject({ rowCount: 1 });
  });
});

describe('exactly once', () => {
  it('judges duplicates and conflicts within one batch', async () => {
    const a = event();
    const results = await storeEvents(db.pool, [a, { ...a }, { ...a, stop_reason: 'other' }, { ...a }]);
    expect(statuses(results)).toEqual(['accepted', 'duplicate', 'conflict', 'duplicate']);
    expect(results[2]!.message).toMatch(/already recorded with other content/);
    expect(await storedCount([a.event_id!])).toBe(1);
  });

  it('judges duplicates and conflicts across batches, keeping the first content', async () => {
    const a = event();
    expect(statuses(await storeEvents(db.pool, [a]))).toEqual(['accepted']);
    expect(statuses(await storeEvents(db.pool, [{ ...a }, { ...a, tokens_used: 9 }]))).toEqual(['duplicate', 'conflict']);
    const { rows } = await db.pool.query('SELECT tokens_used FROM phase_outcome_events WHERE event_id = $1', [a.event_id]);
    expect(rows).toEqual([{ tokens_used: null }]);
  });

  it('a repeat within a batch of an id that conflicts with the database is judged against the stored content', async () => {
    const a = event();
    await storeEvents(db.pool, [a]);
    const changed = { ...a, stop_reason: 'changed' };
    expect(statuses(await storeEvents(db.pool, [changed, { ...changed }, { ...a }]))).toEqual(['conflict', 'conflict', 'duplicate']);
  });

  it('derives the same event_id for the same run, phase and attempt, and a different one for the next attempt', async () => {
    const base = event({ event_id: undefined, run_id: `run-derived-${serial}` });
    const results = await storeEvents(db.pool, [base, { ...base }, { ...base, attempt: 2 }, { ...base, outcome: 'SUCCESS' }]);
    expect(statuses(results)).toEqual(['accepted', 'duplicate', 'accepted', 'conflict']);
    expect(results[0]!.event_id).toBe(results[1]!.event_id);
    expect(results[0]!.event_id).not.toBe(results[2]!.event_id);
  });

  it('concurrent requests carrying the same events store each once: one accepted per id, the rest duplicates', async () => {
    const batch = Array.from({ length: 200 }, () => event());
    const ids = batch.map((e) => e.event_id!);
    const requests = 6;
    const all = await Promise.all(Array.from({ length: requests }, () => storeEvents(db.pool, batch.map((e) => ({ ...e })))));
    const total = summarize(all.flat());
    // 200 ids × 6 requests = 1,200 items: 200 accepted (one per id) and 1,000 duplicates.
    expect(total).toEqual({ accepted: 200, duplicate: 1000, conflict: 0, invalid: 0 });
    expect(await storedCount(ids)).toBe(200);
  });

  it('concurrent requests with different content for one id: exactly one wins, the others conflict', async () => {
    const id = `race-${++serial}`;
    const all = await Promise.all(
      Array.from({ length: 5 }, (_, i) => storeEvents(db.pool, [event({ event_id: id, tokens_used: i })])),
    );
    expect(summarize(all.flat())).toEqual({ accepted: 1, duplicate: 0, conflict: 4, invalid: 0 });
  });

  it('a mixed batch stores every valid item and reports every invalid one, in input order', async () => {
    const batch: unknown[] = [event(), 'not an object', event({ phase_id: '' }), event(), null, event({ attempt: 1.5 }), event()];
    const results = await storeEvents(db.pool, batch);
    expect(results.map((r) => r.index)).toEqual([0, 1, 2, 3, 4, 5, 6]);
    expect(statuses(results)).toEqual(['accepted', 'invalid', 'invalid', 'accepted', 'invalid', 'invalid', 'accepted']);
    expect(results[2]!.message).toMatch(/phase_id must not be empty/);
    expect(results[5]!.message).toMatch(/attempt must be an integer/);
    const validIds = [0, 3, 6].map((i) => (batch[i] as PhaseOutcomeInput).event_id!);
    expect(await storedCount(validIds)).toBe(3);
  });
});

describe('the bulk path (COPY into staging, then INSERT … ON CONFLICT)', () => {
  it('gives the same counts and stores the same rows as the per-item path on the same input', async () => {
    // 2,500 items in chunks of 700: repeats and conflicts fall both inside a chunk and across chunk boundaries.
    const input: unknown[] = [];
    for (let i = 0; i < 2000; i++) {
      const e = event({ run_id: `bulk-run-${i % 37}`, tokens_used: i, files: [`src/m${i % 5}.py`], metadata: { i, tab: 'a\tb\nc\\d' } });
      input.push(e);
      if (i % 10 === 0) input.push({ ...e }); // 200 duplicates
      if (i % 25 === 0) input.push({ ...e, tokens_used: i + 1 }); // 80 conflicts
      if (i % 100 === 0) input.push({ ...e, outcome: 'EXPLODED' }); // 20 invalid
    }
    const stored = await createTestDatabase();
    try {
      // Per-item path, in API-sized batches of 1,000, into this file's database…
      const perItem = summarize(
        (await Promise.all(chunks(input, 1000).map((batch) => storeEvents(db.pool, batch)))).flat(),
      );
      // …and the bulk path into a second, empty one.
      const bulk = summarize([]);
      const items: RawItem[] = input.map((value, index) => ({ index, value }));
      await bulkStoreEvents(stored.pool, items, { chunkSize: 700, onChunk: (results) => void summarize(results, bulk) });

      expect(perItem).toEqual({ accepted: 2000, duplicate: 200, conflict: 80, invalid: 20 });
      expect(bulk).toEqual(perItem);
      const fingerprint = 'SELECT md5(string_agg(event_id || content_hash, \',\' ORDER BY event_id)) AS f FROM phase_outcome_events WHERE run_id LIKE \'bulk-run-%\'';
      const [a, b] = await Promise.all([db.pool.query(fingerprint), stored.pool.query(fingerprint)]);
      expect(b.rows[0].f).toBe(a.rows[0].f);
      // COPY's escaping round-trips tabs, newlines and backslashes inside jsonb.
      const { rows } = await stored.pool.query("SELECT metadata FROM phase_outcome_events WHERE metadata->>'i' = '7'");
      expect(rows[0].metadata).toEqual({ i: 7, tab: 'a\tb\nc\\d' });
    } finally {
      await stored.drop();
    }
  });

  it('writes two chunks at once, yet the first occurrence of an id in the input wins, and results come in input order', async () => {
    // 40 chunks of 50: each chunk but the first starts with other content under an id of the chunk before it (which
    // must wait for that chunk), and every fourth chunk shares no id with its neighbours (which need not).
    const input: Array<Record<string, unknown>> = [];
    const first = new Map<string, number>(); // id → tokens_used of its first occurrence
    for (let c = 0; c < 40; c++) {
      for (let i = 0; i < 50; i++) {
        const repeat = c % 4 !== 0 && c > 0 && i === 0;
        const id = repeat ? `two-${c - 1}-49` : `two-${c}-${i}`;
        const tokens = c * 1000 + i;
        input.push(event({ event_id: id, run_id: `two-run-${c}`, tokens_used: tokens }));
        if (!first.has(id)) first.set(id, tokens);
      }
    }
    const target = await createTestDatabase();
    const pool = createPool(target.url, 4);
    try {
      const calls: number[][] = [];
      const tally = summarize([]);
      await bulkStoreEvents(pool, input.map((value, index) => ({ index, value })), {
        chunkSize: 50,
        onChunk: (results) => {
          calls.push(results.map((r) => r.index));
          summarize(results, tally);
        },
      });
      // Two connections were used, and every result came once, in input order.
      expect(pool.totalCount).toBe(2);
      expect(calls.flat()).toEqual(input.map((_, i) => i));
      expect(calls).toHaveLength(40);
      expect(tally).toEqual({ accepted: first.size, duplicate: 0, conflict: input.length - first.size, invalid: 0 });
      const { rows } = await pool.query<{ event_id: string; tokens_used: string }>('SELECT event_id, tokens_used FROM phase_outcome_events');
      expect(new Map(rows.map((r) => [r.event_id, Number(r.tokens_used)]))).toEqual(first);
    } finally {
      await pool.end();
      await target.drop();
    }
  });
});

function chunks<T>(items: T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

describe('defence in depth: an event the database refuses anyway (issue 8)', () => {
  // A disagreement simulated with a stricter CHECK than the contract: tokens_used 13 is refused by PostgreSQL only.
  const STRICT = 'test_unlucky_tokens';
  beforeAll(async () => {
    await db.pool.query(`ALTER TABLE phase_outcome_events ADD CONSTRAINT ${STRICT} CHECK (tokens_used IS DISTINCT FROM 13) NOT VALID`);
  });
  afterAll(async () => {
    await db?.pool.query(`ALTER TABLE phase_outcome_events DROP CONSTRAINT IF EXISTS ${STRICT}`);
  });

  it('storeEvents: only the refused events come back invalid, naming the field and the constraint; the rest are stored', async () => {
    const batch = Array.from({ length: 50 }, (_, i) => event({ tokens_used: i % 20 === 13 ? 13 : i }));
    const results = await storeEvents(db.pool, batch);
    const refused = [13, 33];
    expect(results.map((r) => r.status)).toEqual(batch.map((_, i) => (refused.includes(i) ? 'invalid' : 'accepted')));
    expect(results[13]!.message).toMatch(/^tokens_used refused by the database \(test_unlucky_tokens\): new row for relation "phase_outcome_events" violates check constraint "test_unlucky_tokens"/);
    expect(results[13]!.event_id).toBe(batch[13]!.event_id);
    expect(await storedCount(batch.map((e) => e.event_id!))).toBe(48);
  });

  it('a repeat of a refused event is invalid too; another event under its id may be stored', async () => {
    const bad = event({ tokens_used: 13 });
    const results = await storeEvents(db.pool, [bad, { ...bad }, { ...bad, tokens_used: 14 }, event()]);
    expect(statuses(results)).toEqual(['invalid', 'invalid', 'accepted', 'accepted']);
    expect(results[1]!.message).toBe(results[0]!.message);
  });

  it('the bulk path: a chunk with refused rows among thousands stores all the others and goes on', async () => {
    const input = Array.from({ length: 3000 }, (_, i) => event({ run_id: `defence-${i % 7}`, tokens_used: i % 250 === 13 ? 13 : i }));
    const results: ItemResult[] = [];
    await bulkStoreEvents(db.pool, input.map((value, index) => ({ index, value })), { chunkSize: 1000, onChunk: (chunk) => void results.push(...chunk) });
    // i % 250 === 13 for i = 13, 263, …, 2763: 12 events.
    const expectedInvalid = input.map((_, i) => i).filter((i) => i % 250 === 13);
    expect(expectedInvalid).toHaveLength(12);
    expect(results.filter((r) => r.status === 'invalid').map((r) => r.index)).toEqual(expectedInvalid);
    expect(summarize(results)).toEqual({ accepted: 2988, duplicate: 0, conflict: 0, invalid: 12 });
    expect(await storedCount(input.map((e) => e.event_id!))).toBe(2988);
  });

  it('the fallback path (a concurrent writer won an id) re-judges refused rows the same way', async () => {
    const raced = event();
    const bad = event({ tokens_used: 13 });
    const good = event();
    // Another transaction holds an uncommitted row with raced's id: the direct COPY waits for it, then meets a
    // unique violation and falls back to staging + INSERT … ON CONFLICT, where the CHECK refuses `bad`.
    const other = await db.pool.connect();
    try {
      await other.query('BEGIN');
      const row = validateEvent(raced);
      if (!row.ok) throw new Error(row.message);
      await other.query(
        `INSERT INTO phase_outcome_events (${EVENT_COLUMNS.join(', ')}) VALUES (${EVENT_COLUMNS.map((_, i) => `$${i + 1}`).join(', ')})`,
        EVENT_COLUMNS.map((c) => (row.event as unknown as Record<string, unknown>)[c]),
      );
      const storing = storeEvents(db.pool, [raced, bad, good]);
      await new Promise((resolve) => setTimeout(resolve, 300));
      await other.query('COMMIT');
      const results = await storing;
      expect(statuses(results)).toEqual(['duplicate', 'invalid', 'accepted']);
      expect(results[1]!.message).toMatch(/tokens_used refused by the database \(test_unlucky_tokens\)/);
    } finally {
      other.release();
    }
  });

  it('an unreachable database is still an error, not an invalid event (503 at HTTP)', async () => {
    const url = new URL(db.url);
    url.port = '1'; // nothing listens there: connection refused
    const pool = createPool(url.toString(), 1);
    try {
      await expect(storeEvents(pool, [event()])).rejects.toMatchObject({ code: 'ECONNREFUSED' });
    } finally {
      await pool.end();
    }
  });
});
