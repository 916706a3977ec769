import { describe, expect, it } from 'vitest';
import { buildReport, change, emptyStats, mergedRanking, renderMarkdown, resolveWindow, type WindowStats } from '../../domain/analysis.js';
import { fingerprintOf, generateTasks, scopeOf } from '../../domain/tasks.js';

const now = new Date('2026-11-28T12:00:00Z');

describe('resolveWindow', () => {
  it('defaults to the 7 days ending now, with the 7 days before as the previous window', () => {
    expect(resolveWindow({}, now)).toEqual({
      current: { from: '2026-11-21T12:00:00.000Z', to: '2026-11-28T12:00:00.000Z' },
      previous: { from: '2026-11-14T12:00:00.000Z', to: '2026-11-21T12:00:00.000Z' },
    });
  });

  it('takes --from/--to, and names the problem with bad input', () => {
    expect(resolveWindow({ from: '2026-11-01', to: '2026-11-03' }, now).previous).toEqual({ from: '2026-10-30T00:00:00.000Z', to: '2026-11-01T00:00:00.000Z' });
    expect(() => resolveWindow({ window: 'soon' }, now)).toThrow(/--window: "soon" is not a duration/);
    expect(() => resolveWindow({ from: 'yesterday' }, now)).toThrow(/--from must be an ISO-8601 date/);
    expect(() => resolveWindow({ from: '2026-11-03', to: '2026-11-01' }, now)).toThrow(/must end after it starts/);
    expect(() => resolveWindow({ window: '7d', from: '2026-11-01' }, now)).toThrow(/either --window or --from/);
  });

  it('works in whole hours: the default window ends at the end of the current hour, and other edges are refused', () => {
    // 12:20 → the window ends at 13:00 (everything recorded until now is inside) and starts 7 × 24 h earlier.
    expect(resolveWindow({}, new Date('2026-11-28T12:20:00Z')).current).toEqual({ from: '2026-11-21T13:00:00.000Z', to: '2026-11-28T13:00:00.000Z' });
    expect(() => resolveWindow({ from: '2026-11-01T10:30:00Z', to: '2026-11-02' }, now)).toThrow(
      '--from must fall on a whole hour (UTC), e.g. 2026-11-01T10:00:00.000Z: the analysis counts by the hour (got "2026-11-01T10:30:00Z")',
    );
    expect(() => resolveWindow({ window: '90m' }, now)).toThrow('--window must be a whole number of hours (got "90m")');
    expect(resolveWindow({ window: '36h' }, now).current.from).toBe('2026-11-27T00:00:00.000Z'); // 12:00 − 36 h
  });
});

describe('change', () => {
  it('gives the delta and the percentage, and null for an issue that is new', () => {
    expect(change(15, 10)).toEqual({ previous: 10, delta: 5, percent: 50 });
    expect(change(1, 3)).toEqual({ previous: 3, delta: -2, percent: -66.7 });
    expect(change(4, 0)).toEqual({ previous: 0, delta: 4, percent: null });
  });
});

function stats(overrides: Partial<WindowStats>): WindowStats {
  return { ...emptyStats(), ...overrides };
}
const failure = (phase_id: string, stop_reason: string, count: number) => ({
  phase_id, stop_reason, count, outcomes: { FAILED: count, TIMEOUT: 0, STUCK: 0 }, share_of_phase: 1, runs_affected: count,
  first_seen: '2026-11-22T00:00:00.000Z', last_seen: '2026-11-23T00:00:00.000Z', sample_rationales: [], sample_runs: [], top_files: [],
});
const sink = (phase_id: string, tokens: number, share: number) => ({ phase_id, tokens, mean: tokens, p95: tokens, events: 1, runs: 1, share, sample_runs: [], top_files: [] });

describe('ranking', () => {
  const window = resolveWindow({}, now);
  const report = buildReport({
    current: stats({
      totals: { events: 100, runs: 10, phases: 3, tokens: 300_000, failures: 9 },
      failure_modes: [failure('a', 'x', 2), failure('b', 'y', 6), failure('c', 'z', 1)],
      cost_sinks: [sink('a', 250_000, 250 / 300), sink('b', 50_000, 50 / 300)],
    }),
    previous: stats({ failure_modes: [failure('b', 'y', 3)] }),
    window: window.current,
    previousWindow: window.previous,
    top: 2,
    generatedAt: now.toISOString(),
  });

  it('orders each section by its measure, keeps the top N and compares with the previous window', () => {
    expect(report.failure_modes.map((f) => [f.rank, f.phase_id, f.count, f.change.percent])).toEqual([
      [1, 'b', 6, 100], // 3 → 6: +100 %
      [2, 'a', 2, null],
    ]);
  });

  it('merges the sections by severity, then by the share of the window', () => {
    // b/y: 6 failures ≥ 5 → critical. a's cost sink: 250,000 > 100,000 → high, share 0.83; a/x: 2 failures → high,
    // share 2/100 = 0.02. b's cost sink: 50,000 → medium.
    expect(mergedRanking(report).map((i) => [i.type, i.severity, i.item.phase_id])).toEqual([
      ['failure_mode', 'critical', 'b'],
      ['cost_sink', 'high', 'a'],
      ['failure_mode', 'high', 'a'],
      ['cost_sink', 'medium', 'b'],
    ]);
  });

  it('renders tables, and says so when a section is empty', () => {
    const markdown = renderMarkdown(report);
    expect(markdown).toContain('| 1 | b | y | 6 | 6 / 0 / 0 |');
    expect(markdown).toContain('_No retries in this window._');
    expect(markdown).toContain('_No flaky tests in this window._');
  });

  it('numbers tasks by the merged ranking and skips an issue whose fingerprint is open', () => {
    const open = new Set([fingerprintOf('cost_sink', 'a', '')]);
    const { tasks, skipped } = generateTasks(report, { phaseFiles: {}, maxAttempts: 2, openFingerprints: open });
    expect(tasks.map((t) => t.id)).toEqual(['FAILURE-1', 'FAILURE-3', 'COST-SINK-4']);
    expect(skipped).toEqual([{ rank: 2, type: 'cost_sink', fingerprint: fingerprintOf('cost_sink', 'a', ''), why: 'a task for this issue is already open' }]);
    expect(() => generateTasks(report, { phaseFiles: {}, maxAttempts: 3, openFingerprints: open })).toThrow(/maxAttempts must be 1 or 2/);
  });

  it('skips an issue whose fix was approved inside the window, saying why', () => {
    const fixed = new Map([[fingerprintOf('cost_sink', 'a', ''), 'fixed by COST-SINK-2 yesterday']]);
    const { tasks, skipped } = generateTasks(report, { phaseFiles: {}, maxAttempts: 2, openFingerprints: new Set(), recentlyFixed: fixed });
    expect(tasks.map((t) => t.id)).toEqual(['FAILURE-1', 'FAILURE-3', 'COST-SINK-4']);
    expect(skipped).toEqual([{ rank: 2, type: 'cost_sink', fingerprint: fingerprintOf('cost_sink', 'a', ''), why: 'fixed by COST-SINK-2 yesterday' }]);
  });
});

describe('scopeOf', () => {
  it('takes at most 3 evidence files, drops unusable ones, and falls back to the config, then to needs_scope', () => {
    expect(scopeOf('p', ['a.py', './b.py', '/abs.py', '../up.py', 'c.py', 'd.py'], {}).allowed_files).toEqual(['a.py', 'b.py', 'c.py']);
    expect(scopeOf('p', [], { p: ['src/p.py'] })).toMatchObject({ allowed_files: ['src/p.py'], status: 'open', scope: { source: 'config' } });
    expect(scopeOf('p', [], { q: ['src/q.py'] })).toMatchObject({ allowed_files: [], status: 'needs_scope', scope: { source: 'none' } });
  });

  it('keeps fingerprints stable and distinct', () => {
    expect(fingerprintOf('failure_mode', 'p', 'x')).toBe(fingerprintOf('failure_mode', 'p', 'x'));
    expect(fingerprintOf('failure_mode', 'p', 'x')).not.toBe(fingerprintOf('retry_pattern', 'p', 'x'));
    expect(fingerprintOf('failure_mode', 'pa', 'x')).not.toBe(fingerprintOf('failure_mode', 'p', 'ax'));
  });
});
