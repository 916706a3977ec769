/**
 * ROAD-B on the real PostgreSQL, with small hand-built datasets whose expected results are worked out in the
 * comments. Each test writes its own runs into a window of its own, so tests do not see each other's events.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { analyze } from '../../db/analysis.js';
import { storeEvents } from '../../db/events.js';
import type { PhaseOutcomeInput } from '../../domain/telemetry.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => db?.drop());

const DAY = 86_400_000;
/** Each test gets a 7-day window of its own, far apart from the others'. */
let slot = 0;
function newWindow() {
  const to = Date.UTC(2025, 0, 1) + ++slot * 30 * DAY;
  return { to: new Date(to).toISOString(), from: new Date(to - 7 * DAY).toISOString(), at: (daysBeforeEnd: number) => new Date(to - daysBeforeEnd * DAY).toISOString() };
}

async function store(events: Array<Partial<PhaseOutcomeInput>>) {
  const results = await storeEvents(db.pool, events);
  const bad = results.filter((r) => r.status !== 'accepted');
  if (bad.length) throw new Error(`fixture not stored: ${JSON.stringify(bad)}`);
}

describe('analysis', () => {
  it("the seed's cases: phase-001's two builder crashes outrank phase-002's timeout; phase-001 is the top cost sink with 80,000 tokens", async () => {
    const w = newWindow();
    await store([
      { run_id: 's1', phase_id: 'phase-001', outcome: 'FAILED', stop_reason: 'builder_crash', tokens_used: 50_000, occurred_at: w.at(3), decision_rationale: 'builder died', files: ['src/a.py'] },
      { run_id: 's2', phase_id: 'phase-001', outcome: 'FAILED', stop_reason: 'builder_crash', tokens_used: 30_000, occurred_at: w.at(2), files: ['src/a.py', 'src/b.py'] },
      { run_id: 's3', phase_id: 'phase-002', outcome: 'TIMEOUT', stop_reason: 'timeout', tokens_used: 20_000, occurred_at: w.at(1) },
    ]);
    const report = await analyze(db.pool, { from: w.from, to: w.to }, new Date(w.to));

    expect(report.failure_modes.map((f) => [f.rank, f.phase_id, f.stop_reason, f.count])).toEqual([
      [1, 'phase-001', 'builder_crash', 2],
      [2, 'phase-002', 'timeout', 1],
    ]);
    const first = report.failure_modes[0]!;
    expect(first.outcomes).toEqual({ FAILED: 2, TIMEOUT: 0, STUCK: 0 });
    expect(first.share_of_phase).toBe(1); // both of phase-001's events are this failure: 2 ÷ 2
    expect(first.runs_affected).toBe(2);
    expect(first.first_seen).toBe(w.at(3));
    expect(first.last_seen).toBe(w.at(2));
    expect(first.sample_rationales).toEqual(['builder died']);
    expect(first.top_files).toEqual([{ path: 'src/a.py', events: 2 }, { path: 'src/b.py', events: 1 }]);

    // Tokens: phase-001 50,000 + 30,000 = 80,000 of 100,000 in all → share 0.8; mean 40,000.
    const sink = report.cost_sinks[0]!;
    expect(sink).toMatchObject({ rank: 1, phase_id: 'phase-001', tokens: 80_000, mean: 40_000, runs: 2, share: 0.8 });
    // Nearest-rank p95 of {30,000, 50,000}: rank ⌈0.95 × 2⌉ = 2 → 50,000, read from a histogram whose buckets are
    // within 1 % of every value they hold.
    expect(Math.abs(sink.p95 - 50_000)).toBeLessThanOrEqual(500);
    expect(report.totals).toMatchObject({ events: 3, runs: 3, phases: 2, tokens: 100_000, failures: 3 });
  });

  it('takes an event exactly at the start of the window and leaves one exactly at its end to the next window', async () => {
    const w = newWindow();
    await store([
      { run_id: 'edge-in', phase_id: 'edge', outcome: 'FAILED', stop_reason: 'x', occurred_at: w.from },
      { run_id: 'edge-out', phase_id: 'edge', outcome: 'FAILED', stop_reason: 'x', occurred_at: w.to },
      { run_id: 'edge-before', phase_id: 'edge', outcome: 'FAILED', stop_reason: 'x', occurred_at: new Date(Date.parse(w.from) - 1).toISOString() },
    ]);
    const report = await analyze(db.pool, { from: w.from, to: w.to }, new Date(w.to));
    // [from, to): only edge-in is inside; edge-before (1 ms earlier) is in the previous window.
    expect(report.totals.events).toBe(1);
    expect(report.failure_modes[0]).toMatchObject({ count: 1, sample_runs: ['edge-in'] });
    expect(report.failure_modes[0]!.change).toEqual({ previous: 1, delta: 0, percent: 0 });
  });

  it('counts real retries (attempt > 1 in a run) under the stop reason that came before, not repeated failures across runs', async () => {
    const w = newWindow();
    await store([
      // Run r1 retries phase "build" after a patch failure and again after a crash: 2 retries.
      { run_id: 'r1', phase_id: 'build', attempt: 1, outcome: 'FAILED', stop_reason: 'patch_failed', occurred_at: w.at(5) },
      { run_id: 'r1', phase_id: 'build', attempt: 2, outcome: 'FAILED', stop_reason: 'builder_crash', occurred_at: w.at(4.9) },
      { run_id: 'r1', phase_id: 'build', attempt: 3, outcome: 'SUCCESS', occurred_at: w.at(4.8) },
      // Run r2 retries once after a patch failure.
      { run_id: 'r2', phase_id: 'build', attempt: 1, outcome: 'FAILED', stop_reason: 'patch_failed', occurred_at: w.at(3) },
      { run_id: 'r2', phase_id: 'build', attempt: 2, outcome: 'SUCCESS', occurred_at: w.at(2.9) },
      // Runs r3..r5 fail phase "lint" once each and never retry: repeated failures, no retries.
      ...['r3', 'r4', 'r5'].map((run_id, i) => ({ run_id, phase_id: 'lint', outcome: 'FAILED' as const, stop_reason: 'lint_failed', occurred_at: w.at(2 - i / 10) })),
    ]);
    const report = await analyze(db.pool, { from: w.from, to: w.to }, new Date(w.to));
    // build: retries after patch_failed in r1 (attempt 2) and r2 (attempt 2) → 2 retries, 2 runs;
    //        after builder_crash in r1 (attempt 3) → 1 retry, 1 run. lint: none.
    expect(report.retry_patterns.map((r) => [r.phase_id, r.stop_reason, r.retries, r.runs_affected])).toEqual([
      ['build', 'patch_failed', 2, 2],
      ['build', 'builder_crash', 1, 1],
    ]);
    // …while the failure modes do count lint's three failures.
    expect(report.failure_modes[0]).toMatchObject({ phase_id: 'lint', count: 3, runs_affected: 3 });
  });

  it('finds a flaky test: it failed and then passed for the same phase at the same commit', async () => {
    const w = newWindow();
    const c1 = 'aaaaaaa1';
    const c2 = 'bbbbbbb2';
    await store([
      // t_flaky at c1: fail (attempt 1), pass (attempt 2), fail (run 2, attempt 1), pass (attempt 2): 3 flips, 2 of 4 failed.
      { run_id: 'f1', phase_id: 'test', attempt: 1, outcome: 'FAILED', stop_reason: 'tests_failed', tests_failed: ['t_flaky'], commit_sha: c1, occurred_at: w.at(4) },
      { run_id: 'f1', phase_id: 'test', attempt: 2, outcome: 'SUCCESS', commit_sha: c1, occurred_at: w.at(3.9) },
      { run_id: 'f2', phase_id: 'test', attempt: 1, outcome: 'FAILED', stop_reason: 'tests_failed', tests_failed: ['t_flaky'], commit_sha: c1, occurred_at: w.at(3) },
      { run_id: 'f2', phase_id: 'test', attempt: 2, outcome: 'SUCCESS', commit_sha: c1, occurred_at: w.at(2.9) },
      // t_broken fails at c2 and the phase never succeeds at c2: broken, not flaky (it passes only at c1, another commit).
      { run_id: 'f3', phase_id: 'test', attempt: 1, outcome: 'FAILED', stop_reason: 'tests_failed', tests_failed: ['t_broken'], commit_sha: c2, occurred_at: w.at(2) },
      { run_id: 'f3', phase_id: 'test', attempt: 2, outcome: 'FAILED', stop_reason: 'tests_failed', tests_failed: ['t_broken'], commit_sha: c2, occurred_at: w.at(1.9) },
    ]);
    const report = await analyze(db.pool, { from: w.from, to: w.to }, new Date(w.to));
    expect(report.flaky_tests).toHaveLength(1);
    expect(report.flaky_tests[0]).toMatchObject({ rank: 1, test_id: 't_flaky', phase_id: 'test', commits: 1, flips: 3, fails: 2, passes: 2, fail_rate: 0.5 });
    expect(report.flaky_tests[0]!.sample_runs.sort()).toEqual(['f1', 'f2']);
  });

  it("compares every item with the previous window of the same length", async () => {
    const w = newWindow();
    const previous = (d: number) => new Date(Date.parse(w.from) - d * DAY).toISOString();
    await store([
      // previous window: 4 crashes of "deploy"; this window: 1 → change −3 (−75 %). "docs" is new.
      ...[1, 2, 3, 4].map((i) => ({ run_id: `old-${i}`, phase_id: 'deploy', outcome: 'FAILED' as const, stop_reason: 'crash', tokens_used: 1000, occurred_at: previous(i) })),
      { run_id: 'new-1', phase_id: 'deploy', outcome: 'FAILED', stop_reason: 'crash', tokens_used: 1000, occurred_at: w.at(1) },
      { run_id: 'new-2', phase_id: 'docs', outcome: 'STUCK', stop_reason: 'stuck', tokens_used: 5000, occurred_at: w.at(1) },
    ]);
    const report = await analyze(db.pool, { window: '7d', to: w.to }, new Date(w.to));
    const deploy = report.failure_modes.find((f) => f.phase_id === 'deploy')!;
    expect(deploy.change).toEqual({ previous: 4, delta: -3, percent: -75 });
    expect(report.failure_modes.find((f) => f.phase_id === 'docs')!.change).toEqual({ previous: 0, delta: 1, percent: null });
    // Tokens: deploy 4,000 before and 1,000 now → −75 %; totals 4,000 → 6,000 = +50 %.
    expect(report.cost_sinks.find((c) => c.phase_id === 'deploy')!.change).toEqual({ previous: 4000, delta: -3000, percent: -75 });
    expect(report.totals.change.tokens).toEqual({ previous: 4000, delta: 2000, percent: 50 });
  });

  it('gives empty sections, not an error, for an empty window', async () => {
    const w = newWindow();
    const report = await analyze(db.pool, { from: w.from, to: w.to }, new Date(w.to));
    expect(report).toMatchObject({ schema: 'road.analysis/v1', failure_modes: [], cost_sinks: [], retry_patterns: [], flaky_tests: [] });
    expect(report.totals).toMatchObject({ events: 0, runs: 0, phases: 0, tokens: 0, failures: 0 });
  });

  it('keeps the top N of each section', async () => {
    const w = newWindow();
    // 12 phases failing 1…12 times: the top 3 are the phases with 12, 11, 10 failures.
    const events = Array.from({ length: 12 }, (_, p) =>
      Array.from({ length: p + 1 }, (_, i) => ({ run_id: `top-${p}-${i}`, phase_id: `p${String(p + 1).padStart(2, '0')}`, outcome: 'FAILED' as const, stop_reason: 'x', occurred_at: w.at(1) })),
    ).flat();
    await store(events);
    const report = await analyze(db.pool, { from: w.from, to: w.to, top: 3 }, new Date(w.to));
    expect(report.failure_modes.map((f) => [f.phase_id, f.count])).toEqual([['p12', 12], ['p11', 11], ['p10', 10]]);
  });
});
