/**
 * `road record` and `road import` as a user runs them, on a real PostgreSQL: one event from flags; a JSONL file with
 * bad lines (rejects file with line numbers); an import killed half-way and run again (nothing stored twice).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { road } from '../helpers/cli.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';

let db: TestDatabase;
let env: Record<string, string>;
const dir = mkdtempSync(path.join(os.tmpdir(), 'road-import-test-'));

beforeAll(async () => {
  db = await createTestDatabase();
  env = { DATABASE_URL: db.url };
});
afterAll(async () => {
  await db?.drop();
  rmSync(dir, { recursive: true, force: true });
});

const count = async (where = 'true', params: readonly unknown[] = []) =>
  Number((await db.pool.query(`SELECT count(*) FROM phase_outcome_events WHERE ${where}`, [...params])).rows[0].count);

const line = (i: number, overrides: Record<string, unknown> = {}) =>
  JSON.stringify({
    run_id: `imp-run-${Math.floor(i / 10)}`,
    phase_id: `phase-${i % 7}`,
    attempt: (i % 10) + 1,
    outcome: i % 3 ? 'FAILED' : 'SUCCESS',
    stop_reason: i % 3 ? 'builder_crash' : undefined,
    tokens_used: 1000 + i,
    occurred_at: new Date(Date.UTC(2026, 10, 20) + i * 1000).toISOString(),
    ...overrides,
  });

describe('road record', () => {
  it('records one event from flags; the same again is a duplicate; a changed one is a conflict (exit 2)', async () => {
    const args = ['record', '--run', 'rec-1', '--phase', 'auth-migration', '--outcome', 'failed', '--stop-reason', 'builder_crash', '--tokens', '51200', '--files', 'src/a.py,src/b.py', '--occurred-at', '2026-11-27T09:00:00Z', '--json'];
    const first = await road(args, env);
    expect(first.code, first.stderr).toBe(0);
    expect(JSON.parse(first.stdout)).toMatchObject({ status: 'accepted', event_id: expect.stringMatching(/^auto:/) });
    const again = await road(args, env);
    expect(JSON.parse(again.stdout)).toMatchObject({ status: 'duplicate' });
    const changed = await road(args.map((a) => (a === '51200' ? '9' : a)), env);
    expect(changed.code).toBe(2);
    expect(changed.stderr).toMatch(/^road: conflict: event_id auto:\w+ is already recorded with other content/);
    const { rows } = await db.pool.query("SELECT tokens_used, files, outcome FROM phase_outcome_events WHERE run_id = 'rec-1'");
    expect(rows).toEqual([{ tokens_used: '51200', files: ['src/a.py', 'src/b.py'], outcome: 'FAILED' }]);
  });

  it('refuses bad flags with exit 2 and one line naming the field', async () => {
    const bad = await road(['record', '--run', 'r', '--phase', 'p', '--outcome', 'FAILED', '--stop-reason', 'é'.repeat(128)], env);
    expect(bad.code).toBe(2);
    expect(bad.stderr.trim()).toBe('road: invalid: stop_reason must be at most 255 bytes of UTF-8 (got 256)');
    const notInt = await road(['record', '--run', 'r', '--phase', 'p', '--outcome', 'FAILED', '--tokens', 'lots'], env);
    expect(notInt.code).toBe(2);
    expect(notInt.stderr).toMatch(/"lots" is not an integer/);
  });
});

describe('road import', () => {
  it('stores every valid line, writes the bad ones with line numbers and reasons to a rejects file, and exits 2', async () => {
    const file = path.join(dir, 'mixed.jsonl');
    // 8 lines: 1–2 valid, 3 not JSON, 4 blank (skipped), 5 outcome invalid, 6 valid, 7 repeats line 1 (duplicate), 8 changes line 2 (conflict).
    const lines = [line(1), line(2), '{oops', '', line(3, { outcome: 'MAYBE' }), line(4), line(1), line(2, { tokens_used: 7 })];
    writeFileSync(file, lines.join('\n') + '\n');
    const result = await road(['import', file, '--json'], env);
    expect(result.code).toBe(2);
    expect(JSON.parse(result.stdout)).toMatchObject({ accepted: 3, duplicate: 1, conflict: 1, invalid: 2, lines: 8 });
    expect(result.stderr).toMatch(/3 line\(s\) rejected; every valid line was stored/);
    const rejects = readFileSync(path.join(dir, 'mixed.rejects.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(rejects.map((r: { line: number; status: string }) => [r.line, r.status])).toEqual([[3, 'invalid'], [5, 'invalid'], [8, 'conflict']]);
    expect(rejects[0].reason).toMatch(/not valid JSON/);
    expect(rejects[1].reason).toMatch(/outcome must be one of/);
  });

  it('is resumable: killed half-way, run again, every event stored exactly once', async () => {
    const total = 30_000;
    const chunk = 500;
    const file = path.join(dir, 'big.jsonl');
    writeFileSync(file, Array.from({ length: total }, (_, i) => line(100_000 + i)).join('\n'));
    const where = ["run_id LIKE 'imp-run-1____'", []] as const; // run ids imp-run-10000 … imp-run-12999

    // Start the import and kill it (SIGKILL: no chance to clean up) once some chunks have committed.
    const child = spawn(process.execPath, [path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../bin/road.js'), 'import', file, '--chunk-size', String(chunk), '--json'], {
      cwd: os.tmpdir(),
      env: { ...process.env, ...env },
      stdio: 'ignore',
    });
    const exited = new Promise((resolve) => child.once('exit', resolve));
    const deadline = Date.now() + 30_000;
    while ((await count(...where)) < 2 * chunk && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    child.kill('SIGKILL');
    await exited;
    const before = await count(...where);
    expect(before).toBeGreaterThan(0);
    expect(before).toBeLessThan(total); // it really was interrupted
    expect(before % chunk).toBe(0); // chunks commit whole: never a partial chunk

    const resumed = await road(['import', file, '--chunk-size', String(chunk), '--json'], env);
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(JSON.parse(resumed.stdout)).toMatchObject({ accepted: total - before, duplicate: before, conflict: 0, invalid: 0 });
    expect(await count(...where)).toBe(total);

    // A third run stores nothing at all.
    const again = await road(['import', file, '--json'], env);
    expect(JSON.parse(again.stdout)).toMatchObject({ accepted: 0, duplicate: total });
  });

  it('stores a realistic file whose lines mostly say "tests_failed": [] (issue 8: nothing was stored, exit 1)', async () => {
    const file = path.join(dir, 'empty-arrays.jsonl');
    const total = 2000;
    // 9 lines in 10 report no failing test as [], every 4th touched no file as []; the rest list some.
    const lines = Array.from({ length: total }, (_, i) =>
      line(200_000 + i, { tests_failed: i % 10 ? [] : [`tests/test_${i}.py::test_x`], files: i % 4 ? [`src/m${i % 9}.py`] : [] }),
    );
    writeFileSync(file, lines.join('\n') + '\n');
    const result = await road(['import', file, '--chunk-size', '500', '--json'], env);
    expect(result.code, result.stderr).toBe(0);
    expect(JSON.parse(result.stdout)).toMatchObject({ accepted: total, duplicate: 0, conflict: 0, invalid: 0 });
    const where = "run_id LIKE 'imp-run-2____'"; // imp-run-20000 … imp-run-20199
    expect(await count(where)).toBe(total);
    expect(await count(`${where} AND tests_failed = '{}'`)).toBe(1800); // 9 in 10, stored as empty arrays
    expect(await count(`${where} AND files = '{}'`)).toBe(500);
    // Sent again: every line is a duplicate, the empty arrays included.
    const again = await road(['import', file, '--json'], env);
    expect(JSON.parse(again.stdout)).toMatchObject({ accepted: 0, duplicate: total });
  });

  it('refuses a line that is not UTF-8 as that line only (a decoder would have stored U+FFFD)', async () => {
    const file = path.join(dir, 'latin1.jsonl');
    const good = (i: number) => Buffer.from(line(300_000 + i) + '\r\n');
    const latin1 = Buffer.concat([Buffer.from(line(300_002, { phase_id: 'caf' }).replace('"caf"', '"caf')), Buffer.from([0xe9]), Buffer.from('"}\n')]);
    writeFileSync(file, Buffer.concat([good(0), good(1), latin1, good(3)]));
    const result = await road(['import', file, '--json'], env);
    expect(result.code).toBe(2);
    expect(JSON.parse(result.stdout)).toMatchObject({ accepted: 3, invalid: 1, lines: 4 });
    const rejects = readFileSync(path.join(dir, 'latin1.rejects.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { line: number; reason: string });
    expect(rejects).toEqual([{ line: 3, status: 'invalid', reason: 'not valid UTF-8' }]);
  });

  it('says clearly when the file does not exist', async () => {
    const missing = await road(['import', path.join(dir, 'nope.jsonl')], env);
    expect(missing.code).toBe(2);
    expect(missing.stderr.trim()).toMatch(/^road: cannot read .*nope\.jsonl: no such file$/);
  });
});
