/**
 * Which activity failures are retried, decided on errors provoked for real on PostgreSQL (a CHECK, bad data, a
 * missing column, a serialization conflict, a terminated backend, a refused connection) — never on hand-made copies.
 */
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { asActivityFailure, classifyActivityFailures, isTransientFault, UNCLASSIFIED_ATTEMPTS } from '../../activities/errors.js';
import { createPool } from '../../db/pool.js';
import { InvalidInput, NotFound } from '../../domain/errors.js';
import { freePort } from '../../scripts/provision.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';

let db: TestDatabase;

beforeAll(async () => {
  db = await createTestDatabase();
  await db.pool.query(`CREATE TABLE probe (id int PRIMARY KEY, n int NOT NULL CHECK (n >= 0))`);
  await db.pool.query(`INSERT INTO probe VALUES (1, 1)`);
});

afterAll(async () => {
  await db?.drop();
});

/** The error a statement really fails with. */
async function failureOf(work: () => Promise<unknown>): Promise<unknown> {
  try {
    await work();
  } catch (error) {
    return error;
  }
  throw new Error('expected the statement to fail');
}

/** Runs `fn` as attempt `attempt` of an activity. */
function asAttempt<T>(attempt: number, fn: () => Promise<T>): Promise<T> {
  return new MockActivityEnvironment({ attempt }).run(fn);
}

describe('permanent database errors fail at once', () => {
  it.each([
    ['a CHECK violation (23514)', `INSERT INTO probe VALUES (2, -1)`, '23514', /constraint probe_n_check/],
    ['a unique violation (23505)', `INSERT INTO probe VALUES (1, 1)`, '23505', /constraint probe_pkey/],
    ['a NOT NULL violation (23502)', `INSERT INTO probe VALUES (3, NULL)`, '23502', /column n/],
    ['a data exception (22P02)', `SELECT 'many'::int`, '22P02', /data exception/],
    ['an undefined column (42703)', `SELECT nope FROM probe`, '42703', /syntax error or access rule violation/],
  ])('%s', async (_what, sql, sqlstate, where) => {
    const error = await failureOf(() => db.pool.query(sql));
    expect((error as { code: string }).code).toBe(sqlstate);
    expect(isTransientFault(error)).toBe(false);
    // Even on the first attempt: retrying the same statement cannot help.
    const failure = await asAttempt(1, async () => asActivityFailure(error));
    expect(failure).toBeInstanceOf(ApplicationFailure);
    expect(failure).toMatchObject({ type: 'DatabaseRefused', nonRetryable: true });
    expect((failure as ApplicationFailure).message).toMatch(new RegExp(`SQLSTATE ${sqlstate}`));
    expect((failure as ApplicationFailure).message).toMatch(where);
    expect((failure as ApplicationFailure).message).toMatch(/retrying cannot help$/);
  });
});

describe('faults that heal are retried', () => {
  it('a refused connection (nothing listens on the port)', async () => {
    const nowhere = createPool(`postgres://road@127.0.0.1:${await freePort()}/road`);
    const error = await failureOf(() => nowhere.query('SELECT 1'));
    await nowhere.end();
    expect((error as NodeJS.ErrnoException).code).toBe('ECONNREFUSED');
    expect(isTransientFault(error)).toBe(true);
    expect(await asAttempt(1_000, async () => asActivityFailure(error))).toBe(error); // thrown as it is, at any attempt
  });

  it('a serialization failure (40001) between two SERIALIZABLE transactions', async () => {
    const [a, b] = [await db.pool.connect(), await db.pool.connect()];
    try {
      await a.query('BEGIN ISOLATION LEVEL SERIALIZABLE');
      await b.query('BEGIN ISOLATION LEVEL SERIALIZABLE');
      await a.query('SELECT n FROM probe WHERE id = 1');
      await b.query('SELECT n FROM probe WHERE id = 1');
      await a.query('UPDATE probe SET n = n + 1 WHERE id = 1');
      await a.query('COMMIT');
      const error = await failureOf(() => b.query('UPDATE probe SET n = n + 1 WHERE id = 1'));
      await b.query('ROLLBACK');
      expect((error as { code: string }).code).toBe('40001');
      expect(isTransientFault(error)).toBe(true);
      expect(await asAttempt(1, async () => asActivityFailure(error))).toBe(error);
    } finally {
      a.release();
      b.release(true);
    }
  });

  it('a backend terminated by an administrator (57P01), as during a restart', async () => {
    const victim = new pg.Client({ connectionString: db.url });
    await victim.connect();
    victim.on('error', () => undefined);
    const { rows } = await victim.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
    const running = failureOf(() => victim.query('SELECT pg_sleep(30)'));
    await new Promise((r) => setTimeout(r, 200));
    await db.pool.query('SELECT pg_terminate_backend($1)', [rows[0]!.pid]);
    const error = await running;
    expect((error as { code: string }).code).toBe('57P01');
    expect(isTransientFault(error)).toBe(true);
    // What comes after on that connection ("Connection terminated unexpectedly"); a retry through a pool reconnects.
    const after = await failureOf(() => victim.query('SELECT 1'));
    await victim.end().catch(() => undefined);
    expect((after as Error).message).toMatch(/Connection terminated/);
    expect(isTransientFault(after)).toBe(true);
  });
});

describe('other failures', () => {
  it('a refusal becomes a non-retryable failure typed by its class', async () => {
    const failure = asActivityFailure(new InvalidInput('taskId must not be empty'));
    expect(failure).toMatchObject({ type: 'InvalidInput', nonRetryable: true, message: 'taskId must not be empty' });
    expect(asActivityFailure(new NotFound('no such task'))).toMatchObject({ type: 'NotFound', nonRetryable: true });
  });

  it("Temporal's own failures pass untouched (an activity's chosen type, a cancellation)", () => {
    const chosen = ApplicationFailure.retryable('out of scope', 'CandidateOutOfScope');
    expect(asActivityFailure(chosen)).toBe(chosen);
    const cancelled = new CancelledFailure('cancelled');
    expect(asActivityFailure(cancelled)).toBe(cancelled);
  });

  it(`an error nobody classified gets ${UNCLASSIFIED_ATTEMPTS} attempts, then stops`, async () => {
    const bug = new TypeError("Cannot read properties of undefined (reading 'id')");
    for (let attempt = 1; attempt < UNCLASSIFIED_ATTEMPTS; attempt++) {
      expect(await asAttempt(attempt, async () => asActivityFailure(bug))).toBe(bug);
    }
    const last = await asAttempt(UNCLASSIFIED_ATTEMPTS, async () => asActivityFailure(bug));
    expect(last).toMatchObject({ type: 'TypeError', nonRetryable: true });
    expect((last as ApplicationFailure).message).toMatch(/gave up after 5 attempts: not a fault known to heal/);
  });

  it('classifyActivityFailures wraps every activity of a factory and keeps what succeeds', async () => {
    const activities = classifyActivityFailures({
      async store(n: number) {
        await db.pool.query('INSERT INTO probe VALUES ($1, $2)', [100 + n, n]);
        return n;
      },
    });
    expect(await asAttempt(1, () => activities.store(1))).toBe(1);
    const error = await failureOf(() => asAttempt(1, () => activities.store(-5)));
    expect(error).toMatchObject({ type: 'DatabaseRefused', nonRetryable: true });
    expect(activities.store.name).toBe('store');
  });
});
