import { describe, expect, it } from 'vitest';
import {
  compareCampaign,
  passHatK,
  renderReplayMarkdown,
  signTestPValue,
  wilsonInterval,
  type CompareInput,
  type ReplayReport,
} from '../../domain/comparison.js';
import type { ReplayOutcome, ReplayRunResult, ReplayVariant } from '../../domain/replay.js';

// ——— building campaigns: one letter per run, in repeat order ———

const LETTER: Record<string, ReplayOutcome> = { S: 'SUCCESS', F: 'FAILED', T: 'TIMEOUT', X: 'STUCK' };
let runIndex = 0;

interface ArmSpec {
  outcomes: string;
  tokens?: Array<number | null>;
  durations?: number[];
  retries?: Array<number | null>;
  stopReasons?: Array<string | null>;
}

function arm(caseId: string, variant: ReplayVariant, spec: ArmSpec | string): ReplayRunResult[] {
  const s = typeof spec === 'string' ? { outcomes: spec } : spec;
  return [...s.outcomes].map((letter, repeat) => ({
    campaignId: 'task-1@abcdef123456',
    caseId,
    phaseId: 'build',
    variant,
    ref: variant === 'baseline' ? 'b'.repeat(40) : 't'.repeat(40),
    repeat,
    runIndex: runIndex++,
    outcome: LETTER[letter]!,
    tokens: s.tokens ? s.tokens[repeat]! : 1000,
    durationMs: s.durations ? s.durations[repeat]! : 60_000,
    stopReason: s.stopReasons ? s.stopReasons[repeat]! : letter === 'S' ? null : 'max_tokens',
    retries: s.retries ? s.retries[repeat]! : null,
    exitCode: letter === 'S' ? 0 : 1,
    startedAt: '2025-01-01T00:00:00.000Z',
    finishedAt: '2025-01-01T00:01:00.000Z',
  }));
}

/** cases: [caseId, baseline, treatment] */
function campaign(cases: Array<[string, ArmSpec | string, ArmSpec | string]>): ReplayRunResult[] {
  return cases.flatMap(([id, b, t]) => [...arm(id, 'baseline', b), ...arm(id, 'treatment', t)]);
}

function compare(runs: ReplayRunResult[], extra: Partial<CompareInput> = {}): ReplayReport {
  return compareCampaign({ runs, taskType: 'failure_mode', failureStopReason: null, decisionMode: 'statistical', seed: 'seed-1', ...extra });
}

function ids(n: number, prefix = 'case'): string[] {
  return Array.from({ length: n }, (_, i) => `${prefix}-${String(i).padStart(3, '0')}`);
}

// ——— independent arithmetic, written out here rather than taken from the code under test ———

function choose(n: number, k: number): bigint {
  if (k < 0 || k > n) return 0n;
  let c = 1n;
  for (let i = 0; i < k; i++) c = (c * BigInt(n - i)) / BigInt(i + 1);
  return c;
}

/** 2 · Σ_{i ≤ min(x, y)} C(n, i) / 2^n with n = x + y, in exact integers, capped at 1. */
function exactSignTest(x: number, y: number): number {
  const n = x + y;
  let tail = 0n;
  for (let i = 0; i <= Math.min(x, y); i++) tail += choose(n, i);
  const scale = 10n ** 30n;
  return Math.min(1, (2 * Number((tail * scale) / 2n ** BigInt(n))) / 1e30);
}

function wilsonClosedForm(s: number, n: number, z: number): [number, number] {
  const p = s / n;
  const root = z * Math.sqrt(p * (1 - p) * n + (z * z) / 4);
  return [(s + (z * z) / 2 - root) / (n + z * z), (s + (z * z) / 2 + root) / (n + z * z)];
}

function binomialPmf(n: number, p: number, x: number): number {
  return Number(choose(n, x)) * p ** x * (1 - p) ** (n - x);
}

describe("the seed's examples", () => {
  it('5 against 5 successes: both verdicts promote (no regression, treatment ≥ baseline)', () => {
    // The seed's usage example: baseline 45 s and 12,000 tokens a run, treatment 42 s and 11,500 tokens.
    const runs = campaign(
      ids(5, 'task').map((id) => [
        id,
        { outcomes: 'S', durations: [45_000], tokens: [12_000] },
        { outcomes: 'S', durations: [42_000], tokens: [11_500] },
      ]),
    );
    const report = compare(runs, { failureStopReason: 'max_tokens' });
    expect(report.schema).toBe('road.replay/v1');
    expect(report.seed).toMatchObject({
      verdict: 'PROMOTE',
      baselineRate: 1,
      treatmentRate: 1,
      regression: false,
      improvement: false,
      meanDurationMs: { baseline: 45_000, treatment: 42_000 },
      meanTokens: { baseline: 12_000, treatment: 11_500 },
    });
    expect(report.statistical.verdict).toBe('PROMOTE');
    expect(report.statistical.basis).toBe('non-inferior');
    expect(report.statistical.delta).toEqual({ estimate: 0, ci95: { lower: 0, upper: 0 } });
    // Every case has the same ratio, so the geometric mean is that ratio (on x + 1: 11,501 / 12,001).
    expect(report.statistical.tokensRatio!.estimate).toBeCloseTo(11_501 / 12_001, 10);
    expect(report.statistical.durationRatio!.estimate).toBeCloseTo(42_001 / 45_001, 10);
    expect(report.gating).toEqual({ mode: 'statistical', verdict: 'PROMOTE' });
    expect(report.why).toBeNull();
  });

  it('5 against 4 successes and a failure: the seed says regression, the statistics say INCONCLUSIVE, and the report says why', () => {
    const cases = ids(5, 'task');
    const runs = campaign(cases.map((id, i) => [id, 'S', i === 4 ? 'F' : 'S']));
    const report = compare(runs, { failureStopReason: 'max_tokens' });

    // Seed: 5/5 − 4/5 = 0.20 > 0.10.
    expect(report.seed.verdict).toBe('REJECT');
    expect(report.seed.regression).toBe(true);
    expect(report.seed.difference).toBeCloseTo(-0.2, 12);

    // Δ = −1/5. The bootstrap draws 5 cases with replacement; the failing case comes up X ~ Bin(5, 1/5) times and
    // Δ* = −X/5. P(X = 0) = 0.328 > 2.5 %, so the upper bound is 0; P(X ≥ 4) = 0.7 % < 2.5 % < P(X ≥ 3) = 5.8 %, so
    // the lower bound is −3/5.
    const atLeast = (x: number) => [0, 1, 2, 3, 4, 5].filter((i) => i >= x).reduce((sum, i) => sum + binomialPmf(5, 0.2, i), 0);
    expect(binomialPmf(5, 0.2, 0)).toBeGreaterThan(0.025);
    expect(atLeast(4)).toBeLessThan(0.025);
    expect(atLeast(3)).toBeGreaterThan(0.025);
    expect(report.statistical.delta!.estimate).toBeCloseTo(-0.2, 12);
    expect(report.statistical.delta!.ci95.lower).toBeCloseTo(-0.6, 12);
    expect(report.statistical.delta!.ci95.upper).toBeCloseTo(0, 12);
    // One discordant case: p = 2 · C(1, 0) / 2 = 1; one run per case and arm: the exact McNemar test.
    expect(report.statistical.signTest).toEqual({ improved: 0, worsened: 1, tied: 4, pValue: 1, exactMcNemar: true });
    expect(report.statistical.verdict).toBe('INCONCLUSIVE');
    expect(report.gating.verdict).toBe('INCONCLUSIVE');

    expect(report.why).toMatch(/^With 5 runs a side, one failure more is a 20-point drop: the seed calls any drop over 10 points a regression and says REJECT\./);
    expect(report.why).toContain('Δ = −0.20 with a 95 % CI of [−0.60, 0.00] and sign-test p = 1.000');
    expect(report.why).toContain('a drop it cannot tell from noise — and says INCONCLUSIVE');
    const markdown = renderReplayMarkdown(report);
    expect(markdown).toContain('**Gating verdict: INCONCLUSIVE**');
    expect(markdown).toContain('> Why the verdicts differ: With 5 runs a side, one failure more is a 20-point drop');

    // With decisionMode "seed" the same evidence gates on the seed's REJECT; both verdicts are still reported.
    const bySeed = compare(runs, { failureStopReason: 'max_tokens', decisionMode: 'seed' });
    expect(bySeed.gating).toEqual({ mode: 'seed', verdict: 'REJECT' });
    expect(bySeed.statistical.verdict).toBe('INCONCLUSIVE');
  });

  it('one case run 5 times a side: the runs within the case are resampled too, so one failure is still not a REJECT', () => {
    const report = compare(campaign([['only', 'SSSSS', 'SSSSF']]), { failureStopReason: 'max_tokens' });
    expect(report.seed.verdict).toBe('REJECT');
    // Resampling the case alone would give the zero-width interval [−0.2, −0.2] and a REJECT. Resampling its runs:
    // treatment successes X ~ Bin(5, 4/5), Δ* = (X − 5)/5. P(X = 5) = 0.328 → upper 0; P(X ≤ 1) = 0.7 % < 2.5 % <
    // P(X ≤ 2) = 5.8 % → lower (2 − 5)/5 = −0.6.
    expect(binomialPmf(5, 0.8, 0) + binomialPmf(5, 0.8, 1)).toBeLessThan(0.025);
    expect(binomialPmf(5, 0.8, 0) + binomialPmf(5, 0.8, 1) + binomialPmf(5, 0.8, 2)).toBeGreaterThan(0.025);
    expect(report.statistical.delta!.ci95.lower).toBeCloseTo(-0.6, 12);
    expect(report.statistical.delta!.ci95.upper).toBeCloseTo(0, 12);
    expect(report.statistical.verdict).toBe('INCONCLUSIVE');
    expect(report.statistical.signTest.exactMcNemar).toBe(false);
  });
});

describe("the seed's thresholds, exactly", () => {
  const pooled = (b: string, t: string) => compare(campaign([['c', b, t]])).seed;

  it('a drop of exactly 10 points is not a regression (compared on counts, not on 0.8 − 0.7 = 0.10000000000000009)', () => {
    expect(0.8 - 0.7 > 0.1).toBe(true); // the floating-point trap the counts avoid
    const seed = pooled('SSSSSSSSFF', 'SSSSSSSFFF');
    expect(seed.regression).toBe(false);
    expect(seed.verdict).toBe('REJECT'); // a drop without an improvement
  });

  it('over 10 points is a regression; a 5-point drop is a REJECT without one', () => {
    expect(pooled('SSSSSSSSSS', 'SSSSSSSSFF')).toMatchObject({ regression: true, verdict: 'REJECT' });
    expect(pooled('S'.repeat(20), 'S'.repeat(19) + 'F')).toMatchObject({ regression: false, improvement: false, verdict: 'REJECT' });
  });

  it('a 5-point rise is no improvement but promotes (treatment ≥ baseline); a 10-point rise is an improvement', () => {
    expect(pooled('S'.repeat(19) + 'F', 'S'.repeat(20))).toMatchObject({ improvement: false, verdict: 'PROMOTE' });
    expect(pooled('S'.repeat(18) + 'FF', 'S'.repeat(20))).toMatchObject({ improvement: true, verdict: 'PROMOTE' });
  });
});

describe('sign test', () => {
  it('matches exact binomial sums written out by hand', () => {
    // 1 better, 8 worse: 2 · (C(9,0) + C(9,1)) / 2^9 = 2 · 10 / 512.
    expect(signTestPValue(1, 8)).toBeCloseTo((2 * (1 + 9)) / 512, 14);
    // 0 better, 6 worse: 2 / 64.
    expect(signTestPValue(0, 6)).toBeCloseTo(2 / 64, 14);
    // 2 better, 10 worse: 2 · (1 + 12 + 66) / 4096.
    expect(signTestPValue(2, 10)).toBeCloseTo((2 * (1 + 12 + 66)) / 4096, 14);
    // Balanced or empty: 1.
    expect(signTestPValue(3, 3)).toBe(1);
    expect(signTestPValue(0, 0)).toBe(1);
    expect(signTestPValue(0, 1)).toBe(1);
  });

  it('matches exact integer sums for every split up to 40 discordant cases, and thousands without underflow', () => {
    for (let n = 1; n <= 40; n++) {
      for (let x = 0; x <= n; x++) expect(signTestPValue(x, n - x)).toBeCloseTo(exactSignTest(x, n - x), 12);
    }
    // 2^-4100 underflows a double; the p-value must not.
    expect(signTestPValue(2000, 2100)).toBeCloseTo(exactSignTest(2000, 2100), 10);
    expect(signTestPValue(2000, 2100)).toBeGreaterThan(0.1);
  });

  it('in a campaign: counts the cases whose rates differ, ties left out', () => {
    // 10 cases, one run each: 8 worse, 1 better, 1 tied → p = 2 · 10 / 512.
    const cases = ids(10);
    const runs = campaign(cases.map((id, i) => [id, i === 0 ? 'F' : 'S', i === 0 ? 'S' : i === 1 ? 'S' : 'F']));
    const report = compare(runs);
    expect(report.statistical.signTest).toEqual({ improved: 1, worsened: 8, tied: 1, pValue: expect.closeTo(20 / 512, 12), exactMcNemar: true });
  });
});

describe('Wilson intervals', () => {
  it('match the textbook values (z = 1.96)', () => {
    const eight = wilsonInterval(8, 10, 1.96);
    expect(eight.lower).toBeCloseTo(0.49, 3);
    expect(eight.upper).toBeCloseTo(0.943, 3);
    expect(wilsonInterval(0, 10, 1.96).upper).toBeCloseTo(0.278, 3);
    expect(wilsonInterval(5, 5, 1.96).lower).toBeCloseTo(0.566, 3);
  });

  it('match the closed form at z = Φ⁻¹(0.975) for each arm of a campaign', () => {
    const z = 1.959963984540054;
    for (const [s, n] of [[0, 1], [1, 1], [3, 7], [19, 20], [50, 100], [1, 60]] as const) {
      const [lower, upper] = wilsonClosedForm(s, n, z);
      const interval = wilsonInterval(s, n);
      expect(interval.lower).toBeCloseTo(Math.max(0, lower), 12);
      expect(interval.upper).toBeCloseTo(Math.min(1, upper), 12);
    }
    const report = compare(campaign([['a', 'SSSSS', 'SSSSS'], ['b', 'SSSFF', 'SSSSF']]));
    const [bl, bu] = wilsonClosedForm(8, 10, z);
    const [tl, tu] = wilsonClosedForm(9, 10, z);
    expect(report.arms.baseline.wilson95.lower).toBeCloseTo(bl, 12);
    expect(report.arms.baseline.wilson95.upper).toBeCloseTo(bu, 12);
    expect(report.arms.treatment.wilson95.lower).toBeCloseTo(tl, 12);
    expect(report.arms.treatment.wilson95.upper).toBeCloseTo(tu, 12);
  });
});

describe('pass@1 and pass^k', () => {
  it('pass^k is C(c, k) / C(n, k)', () => {
    expect(passHatK(3, 5, 2)).toBeCloseTo(3 / 10, 14); // C(3,2) = 3, C(5,2) = 10
    expect(passHatK(4, 5, 3)).toBeCloseTo(4 / 10, 14); // C(4,3) = 4, C(5,3) = 10
    expect(passHatK(7, 10, 4)).toBeCloseTo(35 / 210, 14); // C(7,4) = 35, C(10,4) = 210
    expect(passHatK(2, 5, 3)).toBe(0);
    expect(passHatK(5, 5, 5)).toBe(1);
    expect(() => passHatK(1, 2, 3)).toThrow(/k ≤ n/);
  });

  it('k is the fewest runs of any case in either arm, and pass^k is averaged over cases', () => {
    // Case a has 5 baseline runs (4 successes), case b has 4: k = 4. Baseline pass^4 = (C(4,4)/C(5,4) + C(4,4)/C(4,4)) / 2
    // = (1/5 + 1) / 2; pass@1 = (4/5 + 4/4) / 2.
    const report = compare(campaign([['a', 'SSSSF', 'SSSS'], ['b', 'SSSS', 'SSSF']]));
    expect(report.k).toBe(4);
    expect(report.arms.baseline.passHatK).toBeCloseTo((1 / 5 + 1) / 2, 14);
    expect(report.arms.baseline.passAt1).toBeCloseTo((4 / 5 + 1) / 2, 14);
    expect(report.arms.treatment.passHatK).toBeCloseTo((1 + 0) / 2, 14);
    expect(report.arms.treatment.passAt1).toBeCloseTo((1 + 3 / 4) / 2, 14);
  });

  it('says so when pass@1 rises but pass^k falls (τ-bench: wins on average, flakier per case)', () => {
    // Baseline: two cases always pass, one always fails → pass@1 = 2/3, pass^3 = 2/3.
    // Treatment: the two fail one run in three, the third now always passes → pass@1 = (2/3 + 2/3 + 1)/3 = 7/9,
    // pass^3 = (0 + 0 + 1)/3 = 1/3.
    const report = compare(campaign([['a', 'SSS', 'SSF'], ['b', 'SSS', 'SFS'], ['c', 'FFF', 'SSS']]));
    expect(report.arms.baseline.passAt1).toBeCloseTo(2 / 3, 14);
    expect(report.arms.baseline.passHatK).toBeCloseTo(2 / 3, 14);
    expect(report.arms.treatment.passAt1).toBeCloseTo(7 / 9, 14);
    expect(report.arms.treatment.passHatK).toBeCloseTo(1 / 3, 14);
    expect(report.flakier).toBe(true);
    expect(report.notes.join('\n')).toContain('pass@1 rises (0.67 → 0.78) but pass^3 falls (0.67 → 0.33): the treatment wins on average but makes a case flakier.');
    expect(renderReplayMarkdown(report)).toContain('wins on average but makes a case flakier');

    const steady = compare(campaign([['a', 'SSF', 'SSS'], ['b', 'SSS', 'SSS']]));
    expect(steady.flakier).toBe(false);
  });
});

describe('the bootstrap', () => {
  // 30 cases, 3 runs a side, varied outcomes, tokens and durations from a fixed formula.
  const varied = campaign(
    ids(30).map((id, i) => [
      id,
      { outcomes: ['SSF', 'SSS', 'SFF', 'SSS'][i % 4]!, tokens: [1000 + i * 37, 1200 + i * 11, 900 + i * 53], durations: [5000 + i, 7000, 6000 + 3 * i] },
      { outcomes: ['SSS', 'SSF', 'SSS', 'SFS'][i % 3]!, tokens: [800 + i * 29, 1000 + i * 7, 950 + i * 17], durations: [5500, 6500 + i, 6000] },
    ]),
  );

  it('is reproducible: the same seed gives the same intervals, whatever the order of the runs', () => {
    const first = compare(varied, { seed: 'task-1@abcdef123456' });
    const shuffled = [...varied].reverse();
    const again = compare(shuffled, { seed: 'task-1@abcdef123456' });
    expect(again.statistical).toEqual(first.statistical);
    expect(again).toEqual(first);
  });

  it('a different seed draws different resamples', () => {
    const a = compare(varied, { seed: 'task-1@abcdef123456' }).statistical;
    const b = compare(varied, { seed: 'task-1@abcdef123457' }).statistical;
    expect(b.tokensRatio!.estimate).toBe(a.tokensRatio!.estimate); // the point estimate does not depend on the seed
    expect(b.tokensRatio!.ci95).not.toEqual(a.tokensRatio!.ci95);
    expect(b.durationRatio!.ci95).not.toEqual(a.durationRatio!.ci95);
  });

  it('refuses a resample count it cannot honour, naming the field', () => {
    expect(() => compare(varied, { bootstrapResamples: 10 })).toThrow(/bootstrapResamples must be an integer from 100 to 100000/);
  });
});

describe('the statistical verdict', () => {
  it('REJECT when Δ’s CI lies below 0 (and only that rule: Δ = −0.08 is not a drop over 10 points)', () => {
    // 100 cases, one run each; 8 fail in treatment. The bootstrap's X ~ Bin(100, 0.08): P(X = 0) = 0.92^100 ≈ 0.02 %,
    // so the 97.5th percentile of −X/100 is below 0.
    const runs = campaign(ids(100).map((id, i) => [id, 'S', i < 8 ? 'F' : 'S']));
    const report = compare(runs);
    expect(report.statistical.delta!.estimate).toBeCloseTo(-0.08, 12);
    expect(report.statistical.delta!.ci95.upper).toBeLessThan(0);
    expect(report.statistical.verdict).toBe('REJECT');
    expect(report.statistical.rules).toHaveLength(1);
    expect(report.statistical.rules[0]).toMatch(/^Δ's 95 % CI \[−0\.\d\d, −0\.\d\d\] lies below 0/);
  });

  it('REJECT when Δ < −0.10 and the sign test gives p < 0.10, even though the CI reaches 0', () => {
    // 10 cases, 4 runs a side: 8 cases lose one run (d = −0.25), 1 case gains three (d = +0.75), 1 unchanged.
    // Δ = (8 · −0.25 + 0.75) / 10 = −0.125; sign test 1 better, 8 worse: p = 2 · (1 + 9) / 512 ≈ 0.039.
    const cases: Array<[string, string, string]> = ids(10).map((id, i) =>
      i < 8 ? [id, 'SSSS', 'SSSF'] : i === 8 ? [id, 'FFFF', 'SSSF'] : [id, 'SSSS', 'SSSS'],
    );
    const report = compare(campaign(cases));
    expect(report.statistical.delta!.estimate).toBeCloseTo(-0.125, 12);
    expect(report.statistical.signTest.pValue).toBeCloseTo(20 / 512, 12);
    expect(report.statistical.delta!.ci95.upper).toBeGreaterThanOrEqual(0);
    expect(report.statistical.verdict).toBe('REJECT');
    expect(report.statistical.rules).toEqual(['Δ = −0.13 is a drop over 10 points and the sign test gives p = 0.039 < 0.10']);
  });

  it('REJECT when the tokens ratio’s CI lies above 1.10, though every run succeeds (the seed promotes)', () => {
    const runs = campaign(
      ids(10).map((id, i) => [id, { outcomes: 'SSS', tokens: [1000 + i, 1010, 990] }, { outcomes: 'SSS', tokens: [1500, 1520 + i, 1480] }]),
    );
    const report = compare(runs);
    expect(report.statistical.tokensRatio!.estimate).toBeGreaterThan(1.45);
    expect(report.statistical.tokensRatio!.ci95.lower).toBeGreaterThan(1.1);
    expect(report.statistical.verdict).toBe('REJECT');
    expect(report.statistical.rules).toHaveLength(1);
    expect(report.statistical.rules[0]).toMatch(/tokens ratio's 95 % CI \[1\.\d\d, 1\.\d\d\] lies above 1\.10/);
    expect(report.seed.verdict).toBe('PROMOTE');
    expect(report.why).toMatch(/^The seed looks only at the pooled success rates \(1\.00 → 1\.00\) and says PROMOTE\. The statistical verdict says REJECT: /);
  });

  it('PROMOTE as an improvement when Δ’s CI lies above 0 and the failure no longer recurs', () => {
    // 20 cases, 3 runs a side: half fail with max_tokens at the baseline, none in treatment.
    const runs = campaign(ids(20).map((id, i) => [id, i % 2 ? 'FFF' : 'SSS', 'SSS']));
    const report = compare(runs, { failureStopReason: 'max_tokens' });
    expect(report.statistical.delta!.estimate).toBeCloseTo(0.5, 12);
    expect(report.statistical.delta!.ci95.lower).toBeGreaterThan(0);
    expect(report.statistical).toMatchObject({ verdict: 'PROMOTE', basis: 'improvement' });
    expect(report.target).toMatchObject({ met: true, baselineOccurrences: 30, treatmentOccurrences: 0 });
  });

  it('PROMOTE as non-inferior when the CI excludes drops over 10 points', () => {
    // 40 cases, one run each, one treatment failure: Δ = −0.025. The bootstrap draws the failing case X ~ Bin(40, 1/40)
    // times: P(X ≥ 4) ≈ 1.7 % < 2.5 %, so the lower bound is −3/40 = −0.075 at worst, inside the 10-point margin.
    const runs = campaign(ids(40).map((id, i) => [id, 'S', i === 0 ? 'F' : 'S']));
    const report = compare(runs, { failureStopReason: 'no_such_reason' });
    const tail = 1 - [0, 1, 2, 3].reduce((sum, x) => sum + binomialPmf(40, 1 / 40, x), 0);
    expect(tail).toBeLessThan(0.025);
    expect(report.statistical.delta!.ci95.lower).toBeGreaterThanOrEqual(-3 / 40 - 1e-12);
    expect(report.statistical).toMatchObject({ verdict: 'PROMOTE', basis: 'non-inferior' });
    // The seed sees a 2.5-point drop and rejects: the report says why they differ.
    expect(report.seed.verdict).toBe('REJECT');
    // 39/40 = 0.975 is stored as 0.97499999999999997…, so two decimals show 0.97.
    expect(report.why).toMatch(/^The seed rejects any drop in the pooled success rate, here 2\.5 points \(1\.00 → 0\.97\)\. The statistical verdict says PROMOTE/);
  });

  it('INCONCLUSIVE when the intervals are fine but the test-plan target is not met', () => {
    const runs = campaign(ids(5).map((id) => [id, 'S', 'S']));
    const report = compare(runs, { taskType: 'cost_sink' }); // the same tokens in both arms: not ≤ 70 %
    expect(report.target.met).toBe(false);
    expect(report.statistical.verdict).toBe('INCONCLUSIVE');
    expect(report.statistical.reason).toBe('the test-plan target is not met: median tokens 1,000 against 1,000 at the baseline (100 %, target ≤ 70 %)');
    expect(report.seed.verdict).toBe('PROMOTE');
  });
});

describe('test-plan targets', () => {
  it('cost sink: treatment median tokens ≤ 70 % of the baseline median', () => {
    // Baseline medians: [900, 1000, 1100, 1200, 5000] → 1100; 70 % of it is 770.
    const baseline = { outcomes: 'SSSSS', tokens: [1000, 1200, 1100, 5000, 900] };
    const met = compare(campaign([['a', baseline, { outcomes: 'SSSSS', tokens: [700, 760, 800, 100, 900] }]]), { taskType: 'cost_sink' });
    expect(met.target).toMatchObject({ taskType: 'cost_sink', met: true, checkable: true, baselineMedianTokens: 1100, treatmentMedianTokens: 760 });
    expect(met.target.taskType === 'cost_sink' && met.target.ratio).toBeCloseTo(760 / 1100, 12);
    const missed = compare(campaign([['a', baseline, { outcomes: 'SSSSS', tokens: [700, 780, 800, 100, 900] }]]), { taskType: 'cost_sink' });
    expect(missed.target).toMatchObject({ met: false, treatmentMedianTokens: 780 });
    const silent = compare(campaign([['a', { outcomes: 'SS', tokens: [null, null] }, { outcomes: 'SS', tokens: [null, null] }]]), { taskType: 'cost_sink' });
    expect(silent.target).toMatchObject({ met: false, checkable: false });
    expect(silent.target.detail).toMatch(/no run in one arm reported tokens/);
    expect(silent.statistical.tokensRatio).toBeNull();
  });

  it('failure mode: the stop reason must not recur in a treatment run that did not succeed', () => {
    const stop = (reasons: Array<string | null>, outcomes: string) => ({ outcomes, stopReasons: reasons });
    const other = compare(campaign([['a', stop(['max_tokens', 'max_tokens'], 'FF'), stop([null, 'rate_limit'], 'SF')]]), { failureStopReason: 'max_tokens' });
    expect(other.target).toMatchObject({ met: true, baselineOccurrences: 2, treatmentOccurrences: 0, stopReason: 'max_tokens' });
    const recurs = compare(campaign([['a', stop(['max_tokens', 'max_tokens'], 'FF'), stop([null, 'max_tokens'], 'ST')]]), { failureStopReason: 'max_tokens' });
    expect(recurs.target).toMatchObject({ met: false, treatmentOccurrences: 1 });
    // Without a stop reason any run that did not succeed is the failure, a TIMEOUT included.
    const anyFailure = compare(campaign([['a', 'FF', 'ST']]), { failureStopReason: null });
    expect(anyFailure.target).toMatchObject({ met: false, treatmentOccurrences: 1, baselineOccurrences: 2 });
    // A baseline that never fails cannot show a fix: the report says so.
    expect(compare(campaign([['a', 'SS', 'SS']])).target.detail).toMatch(/baseline did not reproduce the failure/);
  });

  it('retry pattern: retries ≤ 50 % of the baseline (per reporting run), not checkable when nobody reports them', () => {
    const withRetries = (outcomes: string, retries: Array<number | null>) => ({ outcomes, retries });
    const half = compare(campaign([['a', withRetries('SSS', [2, 2, 2]), withRetries('SSS', [1, 1, 1])]]), { taskType: 'retry_pattern' });
    expect(half.target).toMatchObject({ met: true, baselineRetries: 6, treatmentRetries: 3 }); // 3 ≤ 6 · 0.5
    const more = compare(campaign([['a', withRetries('SSS', [2, 2, 2]), withRetries('SSS', [1, 1, 2])]]), { taskType: 'retry_pattern' });
    expect(more.target).toMatchObject({ met: false, treatmentRetries: 4 });
    // Unequal reporting: 6 over 3 runs (2 a run) against 2 over 2 runs (1 a run) → 50 %: met.
    const uneven = compare(campaign([['a', withRetries('SSS', [2, 2, 2]), withRetries('SSS', [1, null, 1])]]), { taskType: 'retry_pattern' });
    expect(uneven.target).toMatchObject({ met: true, treatmentRunsWithRetries: 2 });
    expect(uneven.target.taskType === 'retry_pattern' && uneven.target.ratio).toBeCloseTo(0.5, 12);
    const silent = compare(campaign([['a', 'SSS', 'SSS']]), { taskType: 'retry_pattern' });
    expect(silent.target).toMatchObject({ met: false, checkable: false });
    expect(silent.statistical.verdict).toBe('INCONCLUSIVE');
  });

  it('flaky test: 0 flips in treatment; a case that always fails does not flip; one run per case cannot show it', () => {
    const steady = compare(campaign([['a', 'SFS', 'SSS'], ['b', 'FFF', 'FFF']]), { taskType: 'flaky_test' });
    expect(steady.target).toMatchObject({ met: true, treatmentFlips: 0, baselineFlips: 2, baselineFlakyCases: 1 });
    const flaky = compare(campaign([['a', 'SFS', 'SFS'], ['b', 'SSS', 'SSF']]), { taskType: 'flaky_test' });
    expect(flaky.target).toMatchObject({ met: false, treatmentFlips: 3, treatmentFlakyCases: 2 });
    const single = compare(campaign([['a', 'F', 'S']]), { taskType: 'flaky_test' });
    expect(single.target).toMatchObject({ met: false, checkable: false });
  });
});

describe('minimum detectable effect', () => {
  const zSum = 1.95996 + 0.84162; // Φ⁻¹(0.975) + Φ⁻¹(0.80), from a normal table

  it('uses the SD of the per-case differences and the number of cases', () => {
    // 8 cases, 2 runs a side. Per-case differences: +1, +0.5, 0, 0, −0.5, 0, +0.5, +1.
    const pairs: Array<[string, string]> = [['FF', 'SS'], ['SF', 'SS'], ['SS', 'SS'], ['FF', 'FF'], ['SS', 'SF'], ['SF', 'FS'], ['FF', 'SF'], ['FF', 'SS']];
    const d = [1, 0.5, 0, 0, -0.5, 0, 0.5, 1];
    const m = d.reduce((a, b) => a + b) / d.length;
    const sd = Math.sqrt(d.reduce((sum, x) => sum + (x - m) ** 2, 0) / (d.length - 1));
    const report = compare(campaign(pairs.map(([b, t], i) => [`c${i}`, b, t])));
    const power = report.statistical.power;
    expect(power.sdSource).toBe('observed');
    expect(power.sdOfDifferences).toBeCloseTo(sd, 12);
    expect(power.minimumDetectableEffect).toBeCloseTo((zSum * sd) / Math.sqrt(8), 4);
    const cases = Math.ceil(((zSum * sd) / 0.1) ** 2);
    expect(power.casesFor10Points).toBe(cases);
    expect(power.runsPerArmFor10Points).toBe(cases * 2);
    expect(report.notes.join('\n')).toContain(`a 10-point difference needs about ${cases} cases, ${cases * 2} runs per arm at 2 run(s) per case`);
  });

  it('falls back to a conservative SD of 0.5 when every case moves alike', () => {
    const report = compare(campaign(ids(5).map((id) => [id, 'SSS', 'SSS'])));
    expect(report.statistical.power).toMatchObject({ sdSource: 'conservative', sdOfDifferences: 0.5 });
    expect(report.statistical.power.minimumDetectableEffect).toBeCloseTo((zSum * 0.5) / Math.sqrt(5), 4);
    expect(report.statistical.power.casesFor10Points).toBe(Math.ceil(((zSum * 0.5) / 0.1) ** 2));
  });
});

describe('the report', () => {
  it('caps the per-case rows, worst first, and fits the 64 KiB evidence limit', () => {
    const long = (i: number) => `phase-with-a-rather-long-name/${'x'.repeat(120)}/${i}`;
    const runs = campaign(Array.from({ length: 300 }, (_, i) => [long(i), 'SSS', i === 7 ? 'FFF' : i === 9 ? 'SFF' : 'SSS']));
    const report = compare(runs);
    expect(report.caseRows.length).toBeLessThanOrEqual(200);
    expect(report.caseRows.length + report.caseRowsOmitted).toBe(300);
    expect(new TextEncoder().encode(JSON.stringify(report)).length).toBeLessThanOrEqual(64 * 1024);
    expect(report.caseRows[0]).toMatchObject({ caseId: long(7), difference: -1 });
    expect(report.caseRows[1]!.caseId).toBe(long(9));
    expect(report.caseRows[1]!.difference).toBeCloseTo(-2 / 3, 12);
    expect(renderReplayMarkdown(report)).toContain(`${report.caseRowsOmitted} more case(s) not shown.`);
  });

  it('renders rates with Wilson intervals, Δ with its CI, the p-value, ratios, case rows, both verdicts and notes', () => {
    const runs = campaign([
      ['a|b', { outcomes: 'SSF', tokens: [1000, 2000, 1500] }, { outcomes: 'SSS', tokens: [800, 900, 1000] }],
      ['c', 'SSS', 'SSS'],
    ]);
    const markdown = renderReplayMarkdown(compare(runs, { taskType: 'cost_sink' }));
    expect(markdown).toMatch(/^# Replay report — task-1@abcdef123456\n/);
    expect(markdown).toMatch(/\| baseline \| 6 \| 5 \| 0\.83 \| \[0\.\d\d, 0\.\d\d\] \|/);
    expect(markdown).toMatch(/Δ success rate \(treatment − baseline, mean over cases\): \+0\.17, 95 % CI \[/);
    expect(markdown).toContain('→ p = 1.000');
    expect(markdown).toMatch(/- Tokens ratio \(treatment \/ baseline, geometric mean over 2 case\(s\)\): 0\.\d\d, 95 % CI/);
    expect(markdown).toMatch(/- Duration ratio/);
    expect(markdown).toContain('## Seed verdict: PROMOTE');
    expect(markdown).toMatch(/## Statistical verdict: (PROMOTE|INCONCLUSIVE)/);
    expect(markdown).toContain('| a\\|b | build | 2/3 | 3/3 | +0.33 | 1,500 → 900 |');
    expect(markdown).toContain('## Notes');
  });

  it('pairs only cases that ran in both arms; the seed pools every run', () => {
    const runs = [...campaign([['a', 'SS', 'SS']]), ...arm('b', 'baseline', 'FF'), ...arm('c', 'treatment', 'S')];
    const report = compare(runs);
    expect(report.cases).toEqual({ paired: 1, baselineOnly: 1, treatmentOnly: 1 });
    expect(report.arms.baseline).toMatchObject({ n: 4, successes: 2 });
    expect(report.arms.treatment).toMatchObject({ n: 3, successes: 3 });
    expect(report.notes.join('\n')).toContain('2 case(s) ran in one arm only');
  });

  it('an empty campaign is no evidence: the seed rejects, the statistics are inconclusive', () => {
    const report = compare([]);
    expect(report.seed.verdict).toBe('REJECT');
    expect(report.statistical.verdict).toBe('INCONCLUSIVE');
    expect(report.statistical.delta).toBeNull();
    expect(renderReplayMarkdown(report)).toContain('**Gating verdict: INCONCLUSIVE**');
  });

  it('refuses a run it cannot read, naming the field', () => {
    const [run] = arm('a', 'baseline', 'S');
    expect(() => compare([{ ...run!, variant: 'control' as ReplayVariant }])).toThrow('runs[0].variant must be baseline or treatment');
    expect(() => compare([{ ...run!, tokens: -5 }])).toThrow('runs[0].tokens must be null or a non-negative number');
  });

  it('compares 100 cases × 20 repeats with 2,000 resamples quickly', () => {
    let x = 7;
    const next = () => (x = (x * 48271) % 2147483647) / 2147483647;
    const runs = campaign(
      ids(100).map((id) => {
        const spec = () => ({
          outcomes: Array.from({ length: 20 }, () => (next() < 0.8 ? 'S' : 'F')).join(''),
          tokens: Array.from({ length: 20 }, () => Math.round(1000 + 4000 * next())),
          durations: Array.from({ length: 20 }, () => Math.round(1000 + 9000 * next())),
        });
        return [id, spec(), spec()];
      }),
    );
    compare(runs); // warm-up: the first call also compiles
    const started = performance.now();
    const report = compare(runs);
    const elapsed = performance.now() - started;
    console.log(`compareCampaign, 100 cases × 20 repeats × 2 arms, 2,000 resamples: ${elapsed.toFixed(1)} ms`);
    expect(report.statistical.bootstrap.resamples).toBe(2000);
    // The target is ~50 ms on an idle core; the bound leaves room for a loaded CI machine, yet fails if it degrades badly.
    expect(elapsed).toBeLessThan(1000);
  });
});
