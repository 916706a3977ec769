/**
 * ROAD-C on the real PostgreSQL: tasks from an analysed window — ids from the merged ranking, allowed files from the
 * evidence or the config (or needs_scope), one open task per fingerprint across loops — and the CLI around it.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createActivities } from '../../activities/index.js';
import { analyze } from '../../db/analysis.js';
import { storeEvents } from '../../db/events.js';
import { createFollowupTasks, listTasks } from '../../db/tasks.js';
import { configSchema } from '../../domain/config.js';
import type { PhaseOutcomeInput } from '../../domain/telemetry.js';
import { road } from '../helpers/cli.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';

const DAY = 86_400_000;
const TO = '2026-06-08T00:00:00.000Z';
const FROM = '2026-06-01T00:00:00.000Z';
const at = (day: number) => new Date(Date.parse(FROM) + day * DAY).toISOString();

let db: TestDatabase;
const dir = mkdtempSync(path.join(os.tmpdir(), 'road-tasks-test-'));

beforeAll(async () => {
  db = await createTestDatabase();
  const events: Array<Partial<PhaseOutcomeInput>> = [
    // "migrate": 6 builder crashes (≥ 5 → critical), touching models.py 6×, runner.py 4×, env.py 2×, cli.py 1×.
    ...Array.from({ length: 6 }, (_, i) => ({
      run_id: `m${i}`, phase_id: 'migrate', outcome: 'FAILED' as const, stop_reason: 'builder_crash', tokens_used: 30_000, occurred_at: at(1 + i / 10),
      files: ['src/db/models.py', ...(i < 4 ? ['src/db/runner.py'] : []), ...(i < 2 ? ['src/db/env.py'] : []), ...(i === 0 ? ['src/cli.py'] : [])],
    })),
    // "plan": 2 timeouts (< 5 → high) and no files at all; road.config.json maps the phase to its files.
    ...[0, 1].map((i) => ({ run_id: `p${i}`, phase_id: 'plan', outcome: 'TIMEOUT' as const, stop_reason: 'timeout', tokens_used: 1_000, occurred_at: at(2 + i / 10) })),
    // "review": 1 stuck, no files anywhere → needs_scope.
    { run_id: 'r0', phase_id: 'review', outcome: 'STUCK', stop_reason: 'stuck', tokens_used: 500, occurred_at: at(3) },
  ];
  const results = await storeEvents(db.pool, events);
  expect(results.every((r) => r.status === 'accepted')).toBe(true);
});
afterAll(async () => {
  await db?.drop();
  rmSync(dir, { recursive: true, force: true });
});

const config = configSchema.parse({ phases: { plan: ['src/planner/prompt.py', 'src/planner/limits.py'] } });

describe('follow-up tasks', () => {
  it('turns the ranking into bounded tasks, and a second loop opens none for issues that are still open', async () => {
    const report = await analyze(db.pool, { from: FROM, to: TO }, new Date(TO));
    const first = await createFollowupTasks(db.pool, report, { phaseFiles: config.phases, maxAttempts: 2 });

    // Merged ranking: critical first (migrate's crash: 6 ≥ 5), then high — migrate's cost sink (180,000 tokens >
    // 100,000; share 180,000/182,500 = 0.99), plan's timeouts (2/9 events = 0.22), review's stuck (1/9 = 0.11) —
    // then medium: the cost sinks of plan (2,000/182,500 = 0.011) and review (500/182,500 = 0.003).
    expect(first.saved.map((t) => [t.id, t.severity, t.status])).toEqual([
      ['FAILURE-1', 'critical', 'open'],
      ['COST-SINK-2', 'high', 'open'],
      ['FAILURE-3', 'high', 'open'],
      ['FAILURE-4', 'high', 'needs_scope'], // review's single STUCK: a failure mode below 5 occurrences is high
      ['COST-SINK-5', 'medium', 'open'],
      ['COST-SINK-6', 'medium', 'needs_scope'],
    ]);
    const [crash, sink, timeout, stuck] = first.saved;
    // Evidence: the 3 files touched most often by the 6 crashes (6, 4, 2 times); cli.py (1×) is left out.
    expect(crash!.allowed_files).toEqual(['src/db/models.py', 'src/db/runner.py', 'src/db/env.py']);
    expect(crash!.scope.source).toBe('evidence');
    expect(sink!.allowed_files).toEqual(['src/db/models.py', 'src/db/runner.py', 'src/db/env.py']);
    // No files in plan's events: the config's phase map.
    expect(timeout!.allowed_files).toEqual(['src/planner/prompt.py', 'src/planner/limits.py']);
    expect(timeout!.scope.source).toBe('config');
    // Neither: needs_scope, saying what is missing.
    expect(stuck!.allowed_files).toEqual([]);
    expect(stuck!.scope.note).toMatch(/phases\["review"\]/);
    for (const task of first.saved) {
      expect(task).toMatchObject({ max_attempts: 2, approval_gate: true });
      expect(task.test_plan.length).toBeGreaterThan(0);
      expect(task.preflight.length).toBeGreaterThan(0);
    }
    expect(crash!.test_plan[0]).toMatchObject({ target: 'the failure does not recur in replay', threshold: 0 });
    expect(sink!.test_plan[0]).toMatchObject({ target: 'median tokens ≤ 70 % of baseline', threshold: 0.7 });

    // The second loop sees the same issues: all still open, nothing new.
    const second = await createFollowupTasks(db.pool, await analyze(db.pool, { from: FROM, to: TO }, new Date(TO)), { phaseFiles: config.phases, maxAttempts: 2 });
    expect(second.saved).toEqual([]);
    expect(second.skipped).toHaveLength(6);
    expect(await listTasks(db.pool, { open: true })).toHaveLength(6);

    // A fix approved inside the window: its issue waits for telemetry after the fix, and says so.
    await db.pool.query("UPDATE followup_tasks SET status = 'done', updated_at = $1 WHERE task_id = 'FAILURE-1'", [TO]);
    const afterFix = await createFollowupTasks(db.pool, report, { phaseFiles: config.phases, maxAttempts: 1 });
    expect(afterFix.saved).toEqual([]);
    expect(afterFix.skipped.filter((s) => s.why.startsWith('fixed by FAILURE-1'))).toHaveLength(1);

    // Once a task is closed otherwise (rejected), its issue may get a new task — under a fresh id, since FAILURE-1 is taken.
    await db.pool.query("UPDATE followup_tasks SET status = 'rejected' WHERE task_id = 'FAILURE-1'");
    const third = await createFollowupTasks(db.pool, report, { phaseFiles: config.phases, maxAttempts: 1 });
    expect(third.saved.map((t) => t.id)).toEqual([`FAILURE-1.${third.generation}`]);
    expect(third.saved[0]!.max_attempts).toBe(1);
  });

  it('refuses a configuration that would raise max_attempts above 2', () => {
    const parsed = configSchema.safeParse({ tasks: { maxAttempts: 3 } });
    expect(parsed.success).toBe(false);
    expect(parsed.error!.issues[0]!.message).toMatch(/tasks\.maxAttempts must be at most 2/);
    expect(configSchema.safeParse({ phases: { plan: ['src/{phase}/x.py'] } }).success).toBe(false); // a template
    expect(configSchema.safeParse({ phases: { plan: ['../outside.py'] } }).success).toBe(false);
  });

  it('gives the loop the same report and tasks through its activities', async () => {
    const activities = createActivities({ pool: db.pool, config, now: () => new Date(TO) });
    const report = await activities.analyzeTelemetry({ window: '7d' });
    expect(report).toEqual(await analyze(db.pool, { from: FROM, to: TO }, new Date(TO)));
    const result = await activities.generateTasks({ report });
    expect(result.saved).toEqual([]); // all six issues have an open task (FAILURE-1's issue through its successor)
    expect(result.skipped.length).toBe(6);
  });
});

describe('road analyze and road tasks', () => {
  it('writes the markdown and the JSON report, prints JSON, lists tasks, and refuses a bad window with exit 2', async () => {
    const env = { DATABASE_URL: db.url };
    const out = path.join(dir, 'report.md');
    const written = await road(['analyze', '--from', FROM, '--to', TO, '--top', '3', '--out', out], env);
    expect(written.code, written.stderr).toBe(0);
    const markdown = readFileSync(out, 'utf8');
    for (const heading of ['## Totals', '## Top failure modes', '## Top cost sinks', '## Top retry patterns', '## Flaky tests']) expect(markdown).toContain(heading);
    expect(markdown).toMatch(/\| 1 \| migrate \| builder_crash \| 6 \|/);
    const json = JSON.parse(readFileSync(path.join(dir, 'report.json'), 'utf8'));
    expect(json).toMatchObject({ schema: 'road.analysis/v1', top: 3, totals: { events: 9, failures: 9 } });

    const printed = await road(['analyze', '--from', FROM, '--to', TO, '--json'], env);
    expect(JSON.parse(printed.stdout).failure_modes[0]).toMatchObject({ phase_id: 'migrate', count: 6 });

    const listed = await road(['tasks', '--json'], env);
    expect(JSON.parse(listed.stdout).map((t: { id: string }) => t.id)).toContain('COST-SINK-2');
    const table = await road(['tasks'], env);
    expect(table.stdout).toMatch(/FAILURE-4\s+needs_scope/);

    const bad = await road(['analyze', '--window', 'a while'], env);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/^road: --window: "a while" is not a duration/);
    const reversed = await road(['analyze', '--from', TO, '--to', FROM], env);
    expect(reversed.code).toBe(2);
    expect(reversed.stderr).toMatch(/must end after it starts/);
  });

  it('reads road.config.json and refuses max attempts above 2 with exit 2', async () => {
    const file = path.join(dir, 'road.config.json');
    writeFileSync(file, JSON.stringify({ tasks: { maxAttempts: 5 } }));
    const refused = await road(['tasks', 'generate', '--window', '7d'], { DATABASE_URL: db.url, ROAD_CONFIG: file });
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/tasks\.maxAttempts must be at most 2/);
  });
});
