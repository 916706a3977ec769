/** PhaseOutcomeRecorder, the library an agent process uses, on a real PostgreSQL that also goes away and comes back. */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { EventConflictError, EventRefusedError, InvalidEventError, PhaseOutcomeRecorder, RecorderClosedError, TelemetryUnavailableError } from '../../client/recorder.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => db?.drop());

const stored = async (runId: string) =>
  (await db.pool.query('SELECT phase_id, attempt, outcome, stop_reason, tokens_used, model FROM phase_outcome_events WHERE run_id = $1 ORDER BY phase_id, attempt', [runId])).rows;

describe('PhaseOutcomeRecorder', () => {
  it('buffers the four kinds of outcome and writes them on flush, with the run id and defaults applied', async () => {
    const recorder = new PhaseOutcomeRecorder({ pool: db.pool, runId: 'run-lib-1', defaults: { model: 'gpt-x' }, flushIntervalMs: 0 });
    recorder.recordSuccess('a-plan', { tokens_used: 100 });
    recorder.recordFailure('b-build', 'builder_crash', { attempt: 1 });
    recorder.recordTimeout('c-test', { attempt: 2 });
    recorder.recordStuck('d-review');
    expect(recorder.buffered).toBe(4);
    expect(await stored('run-lib-1')).toEqual([]); // nothing written before the flush

    const result = await recorder.flush();
    expect(result).toMatchObject({ accepted: 4, duplicate: 0, conflict: 0, invalid: 0 });
    expect(recorder.buffered).toBe(0);
    expect(await stored('run-lib-1')).toEqual([
      { phase_id: 'a-plan', attempt: 1, outcome: 'SUCCESS', stop_reason: 'completed', tokens_used: '100', model: 'gpt-x' },
      { phase_id: 'b-build', attempt: 1, outcome: 'FAILED', stop_reason: 'builder_crash', tokens_used: null, model: 'gpt-x' },
      { phase_id: 'c-test', attempt: 2, outcome: 'TIMEOUT', stop_reason: 'timeout', tokens_used: null, model: 'gpt-x' },
      { phase_id: 'd-review', attempt: 1, outcome: 'STUCK', stop_reason: 'stuck', tokens_used: null, model: 'gpt-x' },
    ]);
    await recorder.close();
  });

  it('throws InvalidEventError at once, naming the field and the limit, and buffers nothing', () => {
    const recorder = new PhaseOutcomeRecorder({ pool: db.pool, runId: 'run-lib-2', flushIntervalMs: 0 });
    expect(() => recorder.recordFailure('p', 'é'.repeat(128))).toThrow(InvalidEventError);
    expect(() => recorder.recordFailure('p', 'é'.repeat(128))).toThrow(/stop_reason must be at most 255 bytes of UTF-8 \(got 256\)/);
    expect(() => recorder.recordSuccess('p', { tokens_used: -1 })).toThrow(/tokens_used must be ≥ 0/);
    expect(recorder.buffered).toBe(0);
  });

  it('flushes by itself when the buffer fills', async () => {
    const recorder = new PhaseOutcomeRecorder({ pool: db.pool, runId: 'run-lib-3', maxBuffered: 10, flushIntervalMs: 0 });
    for (let attempt = 1; attempt <= 25; attempt++) recorder.recordFailure('loop', 'retry', { attempt });
    // 25 events with a buffer of 10: two background flushes of 10 have been started; close() writes the last 5.
    await recorder.close();
    expect(await stored('run-lib-3')).toHaveLength(25);
  });

  it('reports conflicts with EventConflictError after storing the rest; duplicates are quietly counted', async () => {
    const recorder = new PhaseOutcomeRecorder({ pool: db.pool, runId: 'run-lib-4', flushIntervalMs: 0 });
    const at = { event_id: 'lib-4-a', occurred_at: '2026-11-27T10:00:00Z' }; // left out, occurred_at is "now": new content
    recorder.recordFailure('p', 'first', at);
    await recorder.flush();
    recorder.recordFailure('p', 'first', at); // same content: duplicate
    recorder.recordFailure('p', 'second', at); // other content: conflict
    recorder.recordSuccess('q', { event_id: 'lib-4-b' });
    const error = await recorder.flush().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(EventConflictError);
    expect((error as EventConflictError).conflicts.map((c) => c.event_id)).toEqual(['lib-4-a']);
    expect(await stored('run-lib-4')).toHaveLength(2);
    await recorder.close();
    expect(() => recorder.recordSuccess('r')).toThrow(RecorderClosedError);
  });

  it('recordBatch stores every valid item now and reports the invalid ones', async () => {
    const recorder = new PhaseOutcomeRecorder({ pool: db.pool, runId: 'run-lib-5', flushIntervalMs: 0 });
    const result = await recorder.recordBatch([
      { phase_id: 'a', outcome: 'SUCCESS' },
      { phase_id: '', outcome: 'SUCCESS' },
      { phase_id: 'c', outcome: 'FAILED', stop_reason: 'x' },
    ]);
    expect(result).toMatchObject({ accepted: 2, invalid: 1 });
    expect(result.results[1]!.message).toMatch(/phase_id must not be empty/);
    await recorder.close();
  });

  it('reports events the database refuses anyway with EventRefusedError, stores the rest, and does not retry them', async () => {
    // A disagreement simulated with a stricter CHECK than the contract (the recorder validated the event already).
    await db.pool.query("ALTER TABLE phase_outcome_events ADD CONSTRAINT test_no_doomed CHECK (stop_reason IS DISTINCT FROM 'doomed') NOT VALID");
    const recorder = new PhaseOutcomeRecorder({ pool: db.pool, runId: 'run-lib-7', flushIntervalMs: 0 });
    try {
      recorder.recordFailure('a', 'fine', { attempt: 1 });
      recorder.recordFailure('b', 'doomed', { attempt: 1 });
      recorder.recordSuccess('c');
      const error = (await recorder.flush().catch((e: unknown) => e)) as EventRefusedError;
      expect(error).toBeInstanceOf(EventRefusedError);
      expect(error.refused).toHaveLength(1);
      expect(error.refused[0]!.message).toMatch(/^stop_reason refused by the database \(test_no_doomed\)/);
      expect(error.results!.map((r) => r.status).sort()).toEqual(['accepted', 'accepted', 'invalid']);
      expect((await stored('run-lib-7')).map((r) => r.phase_id)).toEqual(['a', 'c']);
      expect(recorder.buffered).toBe(0); // not kept: retrying cannot help
      expect(await recorder.flush()).toMatchObject({ accepted: 0, invalid: 0 });
    } finally {
      await db.pool.query('ALTER TABLE phase_outcome_events DROP CONSTRAINT test_no_doomed');
      await recorder.close();
    }
  });

  it('keeps its buffer while the database is unreachable and stores each event once when it is back', async () => {
    const name = new URL(db.url).pathname.slice(1);
    const admin = new pg.Client({ connectionString: inject('postgresServerUrl') });
    await admin.connect();
    const own = new pg.Pool({ connectionString: db.url, max: 2 });
    own.on('error', () => undefined);
    const recorder = new PhaseOutcomeRecorder({ pool: own, runId: 'run-lib-6', flushIntervalMs: 0 });
    try {
      recorder.recordFailure('p', 'before-outage', { attempt: 1 });
      await recorder.flush();
      recorder.recordFailure('p', 'during-outage', { attempt: 2 });
      recorder.recordFailure('p', 'during-outage', { attempt: 3 });
      // The outage: no new connections, and the recorder's existing ones are cut.
      await admin.query(`ALTER DATABASE ${name} ALLOW_CONNECTIONS false`);
      await admin.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()', [name]);
      await expect(recorder.flush()).rejects.toBeInstanceOf(TelemetryUnavailableError);
      expect(recorder.buffered).toBe(2);

      await admin.query(`ALTER DATABASE ${name} ALLOW_CONNECTIONS true`);
      expect(await recorder.flush()).toMatchObject({ accepted: 2 });
      expect(await stored('run-lib-6')).toHaveLength(3);
    } finally {
      await admin.query(`ALTER DATABASE ${name} ALLOW_CONNECTIONS true`).catch(() => undefined);
      await recorder.close();
      await own.end();
      await admin.end();
    }
  });
});
