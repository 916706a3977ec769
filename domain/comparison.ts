/**
 * ROAD-E comparison (DESIGN.md §Comparison): a replay campaign's runs → two verdicts and a report.
 *
 * - The seed's verdict, exactly: pooled success rates, a drop over 10 points is a regression, a rise over 5 points an
 *   improvement. At 5 runs a side one failure is a 20-point drop, so this verdict is mostly noise at replay sizes.
 * - The statistical verdict: paired by case, a bootstrap CI for the change in success rate, an exact sign test, paired
 *   geometric-mean ratios for tokens and duration, and the task's own test-plan target.
 *
 * Pure and deterministic (the bootstrap is seeded by a string, usually the campaign id) and free of Node built-ins, so
 * a workflow may import it. The JSON report is versioned: `schema` is "road.replay/v1".
 */
import type { IssueType } from './analysis.js';
import type { ReplayOutcome, ReplayRunResult, ReplayVariant } from './replay.js';

export const REPLAY_REPORT_SCHEMA = 'road.replay/v1';
export const DEFAULT_BOOTSTRAP_RESAMPLES = 2000;
/** Per-case rows kept in the report: with the rest it stays well inside the 64 KiB evidence limit. */
export const MAX_CASE_ROWS = 200;
/** The serialized report must fit the approval gate's evidence (64 KiB); rows are dropped until it does. */
export const REPORT_BUDGET_BYTES = 60_000;

const Z_975 = 1.959963984540054; // two-sided 95 %
const Z_80 = 0.8416212335729143; // 80 % power
/** Conservative SD of per-case differences when the data cannot estimate one (one case, or all cases alike). */
const FALLBACK_SD = 0.5;
/** Rates and bounds are sums of fractions: without a tolerance, −0.1 could come out as −0.10000000000000002. */
const EPS = 1e-9;

// Thresholds of the statistical verdict (DESIGN.md §Comparison).
const NON_INFERIORITY_MARGIN = -0.1;
const LARGE_DROP = -0.1;
const SIGN_TEST_ALPHA = 0.1;
const TOKENS_RATIO_LIMIT = 1.1;
const COST_SINK_TARGET = 0.7;
const RETRY_TARGET = 0.5;

export type SeedVerdict = 'PROMOTE' | 'REJECT';
export type StatisticalVerdict = 'PROMOTE' | 'REJECT' | 'INCONCLUSIVE';
export type DecisionMode = 'statistical' | 'seed';

export interface CompareInput {
  runs: ReplayRunResult[];
  taskType: IssueType;
  /** failure_mode: the stop reason that must not recur (null = any non-SUCCESS outcome counts as the failure). */
  failureStopReason?: string | null;
  decisionMode: DecisionMode;
  /** Seeds the bootstrap (usually the campaign id): the same runs and seed give the same report. */
  seed: string;
  bootstrapResamples?: number;
}

export interface Interval {
  lower: number;
  upper: number;
}

export interface ArmSummary {
  /** Runs in this arm (all cases, paired or not). */
  n: number;
  successes: number;
  /** SUCCESS / runs, the seed's rate. */
  successRate: number;
  /** Wilson score interval over runs (it treats runs as independent; the paired analysis below does not). */
  wilson95: Interval;
  outcomes: Record<ReplayOutcome, number>;
  meanDurationMs: number | null;
  /** Over the runs that reported tokens. */
  meanTokens: number | null;
  medianTokens: number | null;
  runsWithTokens: number;
  /** Sum over the runs that reported retries. */
  retries: number | null;
  runsWithRetries: number;
  /** Mean over paired cases of successes / runs. */
  passAt1: number | null;
  /** Mean over paired cases of C(c, k) / C(n, k): the chance that k runs of a case all succeed (τ-bench). */
  passHatK: number | null;
  /** Paired cases whose runs in this arm disagree. */
  flakyCases: number;
}

export interface RatioEstimate {
  /** treatment / baseline, geometric mean over cases of the per-case geometric-mean ratio. */
  estimate: number;
  ci95: Interval;
  cases: number;
}

export interface SeedResult {
  verdict: SeedVerdict;
  baselineRate: number;
  treatmentRate: number;
  /** treatment − baseline. */
  difference: number;
  regression: boolean;
  improvement: boolean;
  meanDurationMs: { baseline: number | null; treatment: number | null };
  meanTokens: { baseline: number | null; treatment: number | null };
  reason: string;
}

export interface StatisticalResult {
  verdict: StatisticalVerdict;
  /** Why promoted: the CI lies above 0, or it excludes drops over 10 points. */
  basis: 'improvement' | 'non-inferior' | null;
  reason: string;
  /** The rules that fired, in the words of DESIGN.md §Comparison. */
  rules: string[];
  /** Mean over paired cases of (treatment rate − baseline rate); null when no case ran in both arms. */
  delta: { estimate: number; ci95: Interval } | null;
  signTest: { improved: number; worsened: number; tied: number; pValue: number; exactMcNemar: boolean };
  tokensRatio: RatioEstimate | null;
  durationRatio: RatioEstimate | null;
  bootstrap: { resamples: number; seed: string; method: string };
  power: {
    cases: number;
    /** SD of per-case differences; `conservative` = 0.5 because the data could not estimate one. */
    sdOfDifferences: number;
    sdSource: 'observed' | 'conservative';
    /** Smallest |Δ| detected with 80 % power at two-sided α = 0.05 with these cases. */
    minimumDetectableEffect: number | null;
    casesFor10Points: number;
    runsPerArmFor10Points: number;
  };
}

interface TargetBase {
  /** The test plan's target in words. */
  target: string;
  met: boolean;
  /** False when the runs cannot show the target (no tokens reported, one run per case, …): then it is not met. */
  checkable: boolean;
  detail: string;
}

export type TargetCheck =
  | (TargetBase & {
      taskType: 'cost_sink';
      baselineMedianTokens: number | null;
      treatmentMedianTokens: number | null;
      ratio: number | null;
      threshold: number;
    })
  | (TargetBase & {
      taskType: 'failure_mode';
      stopReason: string | null;
      baselineOccurrences: number;
      treatmentOccurrences: number;
    })
  | (TargetBase & {
      taskType: 'retry_pattern';
      baselineRetries: number | null;
      treatmentRetries: number | null;
      baselineRunsWithRetries: number;
      treatmentRunsWithRetries: number;
      /** Mean retries per reporting run, treatment / baseline (sums when both arms report equally often). */
      ratio: number | null;
      threshold: number;
    })
  | (TargetBase & {
      taskType: 'flaky_test';
      treatmentFlips: number;
      treatmentFlakyCases: number;
      baselineFlips: number;
      baselineFlakyCases: number;
    });

export interface ArmCell {
  runs: number;
  successes: number;
  medianTokens: number | null;
  medianDurationMs: number | null;
}

export interface CaseRow {
  caseId: string;
  phaseId: string | null;
  baseline: ArmCell;
  treatment: ArmCell;
  /** treatment rate − baseline rate; null when the case ran in one arm only. */
  difference: number | null;
}

export interface ReplayReport {
  schema: typeof REPLAY_REPORT_SCHEMA;
  campaignId: string | null;
  taskType: IssueType;
  gating: { mode: DecisionMode; verdict: StatisticalVerdict };
  /** Why the seed and statistical verdicts differ; null when they agree. */
  why: string | null;
  cases: { paired: number; baselineOnly: number; treatmentOnly: number };
  /** The k of pass^k: the fewest runs any paired case has in either arm (the campaign's repeats when complete). */
  k: number;
  arms: { baseline: ArmSummary; treatment: ArmSummary };
  /** pass@1 rose while pass^k fell: the treatment wins on average but makes some case flakier. */
  flakier: boolean;
  seed: SeedResult;
  statistical: StatisticalResult;
  target: TargetCheck;
  /** Sorted with the cases that changed first (worst first); capped (see caseRowsOmitted). */
  caseRows: CaseRow[];
  caseRowsOmitted: number;
  notes: string[];
}

// ——— data preparation ———

interface ArmData {
  /** In repeat order. */
  runs: ReplayRunResult[];
  successes: number;
  /** Token counts of the runs that reported them. */
  tokens: number[];
  /** Means of log(x + 1), the per-case halves of the geometric-mean ratios; null without values. */
  meanLogTokens: number | null;
  meanLogDuration: number | null;
}

interface CaseData {
  caseId: string;
  phaseId: string | null;
  baseline: ArmData;
  treatment: ArmData;
}

const VARIANTS: readonly ReplayVariant[] = ['baseline', 'treatment'];
const OUTCOMES: readonly ReplayOutcome[] = ['SUCCESS', 'FAILED', 'TIMEOUT', 'STUCK'];

function validate(input: CompareInput): number {
  if (!Array.isArray(input.runs)) throw new RangeError('runs must be an array of replay runs');
  input.runs.forEach((run, i) => {
    if (!VARIANTS.includes(run.variant)) throw new RangeError(`runs[${i}].variant must be baseline or treatment`);
    if (!OUTCOMES.includes(run.outcome)) throw new RangeError(`runs[${i}].outcome must be one of ${OUTCOMES.join(', ')}`);
    if (typeof run.caseId !== 'string') throw new RangeError(`runs[${i}].caseId must be a string`);
    if (!(Number.isFinite(run.durationMs) && run.durationMs >= 0)) {
      throw new RangeError(`runs[${i}].durationMs must be a non-negative number`);
    }
    for (const key of ['tokens', 'retries'] as const) {
      const value = run[key];
      if (value !== null && !(Number.isFinite(value) && value >= 0)) {
        throw new RangeError(`runs[${i}].${key} must be null or a non-negative number`);
      }
    }
  });
  const resamples = input.bootstrapResamples ?? DEFAULT_BOOTSTRAP_RESAMPLES;
  if (!Number.isInteger(resamples) || resamples < 100 || resamples > 100_000) {
    throw new RangeError('bootstrapResamples must be an integer from 100 to 100000');
  }
  if (typeof input.seed !== 'string') throw new RangeError('seed must be a string');
  return resamples;
}

/** Code-unit order, not localeCompare: the result must not depend on the machine's locale. */
function byString(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Cases sorted by id, runs by repeat: the bootstrap draws the same numbers whatever order the database returned. */
function groupCases(runs: ReplayRunResult[]): CaseData[] {
  const byCase = new Map<string, CaseData>();
  for (const run of runs) {
    let data = byCase.get(run.caseId);
    if (!data) {
      const arm = (): ArmData => ({ runs: [], successes: 0, tokens: [], meanLogTokens: null, meanLogDuration: null });
      data = { caseId: run.caseId, phaseId: run.phaseId, baseline: arm(), treatment: arm() };
      byCase.set(run.caseId, data);
    }
    data.phaseId ??= run.phaseId;
    const arm = data[run.variant];
    arm.runs.push(run);
    if (run.outcome === 'SUCCESS') arm.successes++;
  }
  const cases = [...byCase.values()].sort((a, b) => byString(a.caseId, b.caseId));
  for (const data of cases) {
    for (const arm of [data.baseline, data.treatment]) {
      arm.runs.sort((a, b) => a.repeat - b.repeat || a.runIndex - b.runIndex);
      arm.tokens = arm.runs.flatMap((r) => (r.tokens === null ? [] : [r.tokens]));
      arm.meanLogTokens = mean(arm.tokens.map(logShifted));
      arm.meanLogDuration = mean(arm.runs.map((r) => logShifted(r.durationMs)));
    }
  }
  return cases;
}

// ——— small statistics, exported for tests and other reports ———

/** Wilson score interval for successes out of n at 95 % (n = 0 → [0, 1]: nothing is known). */
export function wilsonInterval(successes: number, n: number, z = Z_975): Interval {
  if (n === 0) return { lower: 0, upper: 1 };
  const p = successes / n;
  const z2 = z * z;
  const denominator = 1 + z2 / n;
  const center = (p + z2 / (2 * n)) / denominator;
  const half = (z / denominator) * Math.sqrt((p * (1 - p)) / n + z2 / (4 * n * n));
  return { lower: Math.max(0, center - half), upper: Math.min(1, center + half) };
}

/**
 * Exact two-sided sign test: under H0 each discordant case is equally likely to go either way, so the smaller count
 * is Binomial(improved + worsened, 1/2) and p = 2·P(X ≤ min), capped at 1. For paired binary outcomes (one run per
 * case and arm) the discordant cases are McNemar's discordant pairs and this is the exact McNemar test.
 * Summed in log space so that thousands of cases do not underflow 2^-n.
 */
export function signTestPValue(improved: number, worsened: number): number {
  const n = improved + worsened;
  if (n === 0) return 1;
  const smaller = Math.min(improved, worsened);
  let logChoose = 0; // ln C(n, 0)
  let logTail = -Infinity;
  for (let i = 0; i <= smaller; i++) {
    const high = Math.max(logTail, logChoose);
    logTail = high + Math.log(Math.exp(logTail - high) + Math.exp(logChoose - high));
    logChoose += Math.log(n - i) - Math.log(i + 1);
  }
  return Math.min(1, 2 * Math.exp(logTail - n * Math.LN2));
}

/** C(c, k) / C(n, k): the chance that k runs drawn without replacement from the case's n are all among its c successes. */
export function passHatK(successes: number, n: number, k: number): number {
  if (k > n) throw new RangeError(`pass^k needs k ≤ n (k = ${k}, n = ${n})`);
  let product = 1;
  for (let j = 0; j < k; j++) product *= (successes - j) / (n - j);
  return Math.max(0, product);
}

export function median(values: number[]): number | null {
  if (!values.length) return null;
  const sorted = Float64Array.from(values).sort(); // a typed array sorts numerically, natively
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

function mean(values: number[]): number | null {
  return values.length ? values.reduce((sum, x) => sum + x, 0) / values.length : null;
}

/** Sample SD (n − 1). */
function sampleSd(values: number[]): number {
  const m = mean(values) ?? 0;
  return values.length < 2 ? 0 : Math.sqrt(values.reduce((sum, x) => sum + (x - m) ** 2, 0) / (values.length - 1));
}

/** Linear interpolation between order statistics (R's type 7) of an ascending array. */
function quantile(sorted: Float64Array, p: number): number {
  const h = (sorted.length - 1) * p;
  const lo = Math.floor(h);
  const hi = Math.min(lo + 1, sorted.length - 1);
  return sorted[lo]! + (h - lo) * (sorted[hi]! - sorted[lo]!);
}

/** A string → 32-bit seed: FNV-1a, then murmur3's finalizer so that similar strings give unrelated seeds. */
export function hashSeed(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** mulberry32: a tiny, fast 32-bit generator — plenty for a few million bootstrap draws per campaign. */
export function mulberry32(seed: number): () => number {
  let state = seed | 0;
  return () => {
    state = (state + 0x6d2b79f5) | 0;
    let t = Math.imul(state ^ (state >>> 15), state | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  };
}


// ——— the bootstrap ———

/** log(x + 1): a zero (no tokens, an instant run) would otherwise be −∞; at real magnitudes the shift is negligible. */
function logShifted(x: number): number {
  return Math.log(x + 1);
}

interface BootstrapResult {
  delta: Float64Array;
  /** Mean log ratios; NaN where a replicate drew no case with tokens in both arms. */
  logTokens: Float64Array;
  logDuration: Float64Array;
}

/**
 * Two-stage percentile bootstrap: draw cases with replacement, then runs with replacement within each drawn case and
 * arm. Resampling cases alone cannot see run-to-run noise: with one case it would give a zero-width interval around
 * a single failure. Drawing runs within cases (the hierarchical bootstrap) keeps both sources of variation. With many
 * cases it is conservative — the per-case differences already carry the run-to-run noise, and drawing runs adds it
 * again (at most √2 wider, when all cases behave alike) — which errs toward INCONCLUSIVE, never toward a verdict.
 * A run is the unit drawn: its success, tokens and duration go together, so the three intervals share replicates.
 */
function bootstrap(cases: CaseData[], resamples: number, seed: string): BootstrapResult {
  const m = cases.length;
  const total = cases.reduce((sum, c) => sum + c.baseline.runs.length + c.treatment.runs.length, 0);
  // One run = three adjacent numbers (success, log tokens or NaN, log duration): a draw touches one cache line.
  const data = new Float64Array(3 * total);
  const offset = new Int32Array(2 * m);
  const count = new Int32Array(2 * m);
  let at = 0;
  cases.forEach((c, i) => {
    [c.baseline, c.treatment].forEach((arm, a) => {
      offset[2 * i + a] = at;
      count[2 * i + a] = arm.runs.length;
      for (const run of arm.runs) {
        data[3 * at] = run.outcome === 'SUCCESS' ? 1 : 0;
        data[3 * at + 1] = run.tokens === null ? NaN : logShifted(run.tokens);
        data[3 * at + 2] = logShifted(run.durationMs);
        at++;
      }
    });
  });

  // mulberry32 inlined (the same generator and sequence as `mulberry32`): this loop makes cases × runs × resamples
  // draws, 8 million for 100 cases × 20 repeats × 2 arms at 2,000 resamples, so every nanosecond per draw is 8 ms.
  let state = hashSeed(seed) | 0;
  const delta = new Float64Array(resamples);
  const tokens = new Float64Array(resamples);
  const duration = new Float64Array(resamples);
  for (let b = 0; b < resamples; b++) {
    let sumDelta = 0;
    let sumTokens = 0;
    let tokenCases = 0;
    let sumDuration = 0;
    for (let j = 0; j < m; j++) {
      state = (state + 0x6d2b79f5) | 0;
      let z = Math.imul(state ^ (state >>> 15), state | 1);
      z ^= z + Math.imul(z ^ (z >>> 7), z | 61);
      const i = Math.floor((((z ^ (z >>> 14)) >>> 0) * m) / 4294967296);
      // The drawn case's baseline arm, kept while its treatment arm is drawn.
      let rateB = 0;
      let tokB = 0;
      let tokRunsB = 0;
      let durB = 0;
      for (let a = 0; a < 2; a++) {
        const n = count[2 * i + a]!;
        const base = offset[2 * i + a]!;
        let s = 0;
        let t = 0;
        let tn = 0;
        let d = 0;
        for (let r = 0; r < n; r++) {
          state = (state + 0x6d2b79f5) | 0;
          z = Math.imul(state ^ (state >>> 15), state | 1);
          z ^= z + Math.imul(z ^ (z >>> 7), z | 61);
          z ^= z >>> 14;
          // Up to 64 runs, 16 bits pick the run (integer arithmetic, faster): no run is favoured by more than
          // n / 65536 ≤ 0.1 %, invisible next to the bootstrap's own noise. Beyond, all 32 bits. Literals, not
          // module constants: V8 reloaded those on every draw here (measured: 1.6× slower).
          const pick = n <= 64 ? ((z >>> 16) * n) >>> 16 : Math.floor(((z >>> 0) * n) / 4294967296);
          const idx = 3 * (base + pick);
          s += data[idx]!;
          const lt = data[idx + 1]!;
          if (lt === lt) {
            t += lt;
            tn++;
          }
          d += data[idx + 2]!;
        }
        if (a === 0) {
          rateB = s / n;
          tokB = tn ? t / tn : 0;
          tokRunsB = tn;
          durB = d / n;
        } else {
          sumDelta += s / n - rateB;
          if (tokRunsB > 0 && tn > 0) {
            sumTokens += t / tn - tokB;
            tokenCases++;
          }
          sumDuration += d / n - durB;
        }
      }
    }
    delta[b] = sumDelta / m;
    tokens[b] = tokenCases ? sumTokens / tokenCases : NaN;
    duration[b] = sumDuration / m;
  }
  return { delta, logTokens: tokens, logDuration: duration };
}

function percentileInterval(replicates: Float64Array, transform: (x: number) => number = (x) => x): Interval | null {
  const finite = replicates.filter((x) => x === x).sort();
  if (!finite.length) return null;
  return { lower: transform(quantile(finite, 0.025)), upper: transform(quantile(finite, 0.975)) };
}

// ——— per arm and per case ———

function armSummary(runs: ReplayRunResult[], paired: CaseData[], variant: ReplayVariant, k: number): ArmSummary {
  const successes = runs.filter((r) => r.outcome === 'SUCCESS').length;
  const tokens = runs.flatMap((r) => (r.tokens === null ? [] : [r.tokens]));
  const retries = runs.flatMap((r) => (r.retries === null ? [] : [r.retries]));
  const outcomes: Record<ReplayOutcome, number> = { SUCCESS: 0, FAILED: 0, TIMEOUT: 0, STUCK: 0 };
  for (const run of runs) outcomes[run.outcome]++;
  const arms = paired.map((c) => c[variant]);
  return {
    n: runs.length,
    successes,
    successRate: runs.length ? successes / runs.length : 0,
    wilson95: wilsonInterval(successes, runs.length),
    outcomes,
    meanDurationMs: mean(runs.map((r) => r.durationMs)),
    meanTokens: mean(tokens),
    medianTokens: median(tokens),
    runsWithTokens: tokens.length,
    retries: retries.length ? retries.reduce((sum, x) => sum + x, 0) : null,
    runsWithRetries: retries.length,
    passAt1: mean(arms.map((arm) => arm.successes / arm.runs.length)),
    passHatK: k > 0 ? mean(arms.map((arm) => passHatK(arm.successes, arm.runs.length, k))) : null,
    flakyCases: arms.filter((arm) => arm.successes > 0 && arm.successes < arm.runs.length).length,
  };
}

/** Outcome changes between consecutive repeats (SUCCESS ↔ not SUCCESS), summed over cases. */
function flips(cases: CaseData[], variant: ReplayVariant): number {
  let total = 0;
  for (const c of cases) {
    const runs = c[variant].runs;
    for (let i = 1; i < runs.length; i++) {
      if ((runs[i]!.outcome === 'SUCCESS') !== (runs[i - 1]!.outcome === 'SUCCESS')) total++;
    }
  }
  return total;
}

function armCell(arm: ArmData): ArmCell {
  return {
    runs: arm.runs.length,
    successes: arm.successes,
    medianTokens: median(arm.tokens),
    medianDurationMs: median(arm.runs.map((r) => r.durationMs)),
  };
}

function caseRows(cases: CaseData[]): CaseRow[] {
  const rows = cases.map((c): CaseRow => {
    const both = c.baseline.runs.length > 0 && c.treatment.runs.length > 0;
    return {
      caseId: c.caseId,
      phaseId: c.phaseId,
      baseline: armCell(c.baseline),
      treatment: armCell(c.treatment),
      difference: both ? c.treatment.successes / c.treatment.runs.length - c.baseline.successes / c.baseline.runs.length : null,
    };
  });
  // What a reviewer must see first: cases that got worse, then better, then unchanged; ties by case id.
  const rank = (row: CaseRow) => (row.difference === null ? 2 : Math.abs(row.difference) > EPS ? 0 : 1);
  return rows.sort((a, b) => rank(a) - rank(b) || (a.difference ?? 0) - (b.difference ?? 0) || byString(a.caseId, b.caseId));
}

// ——— the verdicts ———

function seedVerdict(baseline: ArmSummary, treatment: ArmSummary): SeedResult {
  const [bs, bn, ts, tn] = [baseline.successes, baseline.n, treatment.successes, treatment.n];
  const baselineRate = baseline.successRate;
  const treatmentRate = treatment.successRate;
  // The seed's thresholds, compared exactly on the counts: 8/10 against 7/10 is a 10-point drop, not a regression,
  // though 0.8 − 0.7 = 0.10000000000000009 in floating point.
  const ok = bn > 0 && tn > 0;
  const regression = ok && 10 * (bs * tn - ts * bn) > bn * tn;
  const improvement = ok && 20 * (ts * bn - bs * tn) > bn * tn;
  const atLeastBaseline = ok && ts * bn >= bs * tn;
  const promote = !regression && (improvement || atLeastBaseline);
  const points = Math.abs(Math.round((treatmentRate - baselineRate) * 1000) / 10);
  const rates = `treatment ${fmtRate(treatmentRate)} (${ts}/${tn}) against baseline ${fmtRate(baselineRate)} (${bs}/${bn})`;
  let reason: string;
  if (!ok) reason = `an arm has no runs (${rates})`;
  else if (regression) reason = `${rates}: ${aOrAn(points)} ${points}-point drop, over the 10-point regression threshold`;
  else if (improvement) reason = `${rates}: ${aOrAn(points)} ${points}-point rise, over the 5-point improvement threshold`;
  else if (atLeastBaseline) reason = `${rates}: no regression and the treatment is at least as good`;
  else reason = `${rates}: ${aOrAn(points)} ${points}-point drop (no regression) without an improvement`;
  return {
    verdict: promote ? 'PROMOTE' : 'REJECT',
    baselineRate,
    treatmentRate,
    difference: treatmentRate - baselineRate,
    regression,
    improvement,
    meanDurationMs: { baseline: baseline.meanDurationMs, treatment: treatment.meanDurationMs },
    meanTokens: { baseline: baseline.meanTokens, treatment: treatment.meanTokens },
    reason,
  };
}

function targetCheck(
  input: CompareInput,
  all: { baseline: ReplayRunResult[]; treatment: ReplayRunResult[] },
  arms: { baseline: ArmSummary; treatment: ArmSummary },
  paired: CaseData[],
): TargetCheck {
  switch (input.taskType) {
    case 'cost_sink': {
      const b = arms.baseline.medianTokens;
      const t = arms.treatment.medianTokens;
      const checkable = b !== null && t !== null;
      const met = checkable && t <= COST_SINK_TARGET * b + EPS;
      const ratio = checkable && b > 0 ? t / b : null;
      const detail = checkable
        ? `median tokens ${fmtInt(t)} against ${fmtInt(b)} at the baseline` +
          (ratio === null ? '' : ` (${fmtPct(ratio)}, target ≤ 70 %)`)
        : 'the target cannot be checked: no run in one arm reported tokens (print "tokens" on the road line)';
      return { taskType: 'cost_sink', target: 'median tokens ≤ 70 % of baseline', met, checkable, detail, baselineMedianTokens: b, treatmentMedianTokens: t, ratio, threshold: COST_SINK_TARGET };
    }
    case 'failure_mode': {
      const stopReason = input.failureStopReason ?? null;
      // A recurrence is a run that did not succeed and stopped for the same reason (any failure when none is given).
      const recurs = (run: ReplayRunResult) => run.outcome !== 'SUCCESS' && (stopReason === null || run.stopReason === stopReason);
      const baselineOccurrences = all.baseline.filter(recurs).length;
      const treatmentOccurrences = all.treatment.filter(recurs).length;
      const what = stopReason === null ? 'non-SUCCESS runs' : `runs stopping with "${stopReason}"`;
      const checkable = all.treatment.length > 0;
      const detail =
        `${what}: ${treatmentOccurrences} of ${all.treatment.length} in treatment, ${baselineOccurrences} of ${all.baseline.length} at the baseline` +
        (baselineOccurrences === 0 ? ' (the baseline did not reproduce the failure: the replay cannot show a fix)' : '');
      return { taskType: 'failure_mode', target: 'the failure does not recur in replay', met: checkable && treatmentOccurrences === 0, checkable, detail, stopReason, baselineOccurrences, treatmentOccurrences };
    }
    case 'retry_pattern': {
      const b = arms.baseline;
      const t = arms.treatment;
      const checkable = b.runsWithRetries > 0 && t.runsWithRetries > 0;
      // Means per reporting run: the sums of the target when both arms report equally often, fair when they do not.
      const bMean = checkable ? b.retries! / b.runsWithRetries : null;
      const tMean = checkable ? t.retries! / t.runsWithRetries : null;
      const met = checkable && tMean! <= RETRY_TARGET * bMean! + EPS;
      const ratio = checkable && bMean! > 0 ? tMean! / bMean! : null;
      const detail = checkable
        ? `retries ${t.retries} over ${t.runsWithRetries} treatment runs against ${b.retries} over ${b.runsWithRetries} baseline runs` +
          (ratio === null ? ' (the baseline did not retry)' : ` (${fmtPct(ratio)} per run, target ≤ 50 %)`)
        : 'the target cannot be checked: the replay command did not report "retries" in both arms (print it on the road line)';
      return {
        taskType: 'retry_pattern',
        target: 'retries ≤ 50 % of baseline',
        met,
        checkable,
        detail,
        baselineRetries: b.retries,
        treatmentRetries: t.retries,
        baselineRunsWithRetries: b.runsWithRetries,
        treatmentRunsWithRetries: t.runsWithRetries,
        ratio,
        threshold: RETRY_TARGET,
      };
    }
    case 'flaky_test': {
      const treatmentFlips = flips(paired, 'treatment');
      const baselineFlips = flips(paired, 'baseline');
      // One run per case cannot flip: the target needs repeats to be observable.
      const checkable = paired.some((c) => c.treatment.runs.length >= 2);
      const detail = checkable
        ? `${treatmentFlips} flip(s) in treatment (${arms.treatment.flakyCases} flaky case(s)), ${baselineFlips} at the baseline (${arms.baseline.flakyCases})`
        : 'the target cannot be checked: a flip needs at least 2 runs of a case (replay.repeats ≥ 2)';
      return {
        taskType: 'flaky_test',
        target: '0 flips in treatment',
        met: checkable && treatmentFlips === 0,
        checkable,
        detail,
        treatmentFlips,
        treatmentFlakyCases: arms.treatment.flakyCases,
        baselineFlips,
        baselineFlakyCases: arms.baseline.flakyCases,
      };
    }
  }
}

function statisticalVerdict(
  delta: StatisticalResult['delta'],
  sign: StatisticalResult['signTest'],
  tokensRatio: RatioEstimate | null,
  target: TargetCheck,
): Pick<StatisticalResult, 'verdict' | 'basis' | 'reason' | 'rules'> {
  if (!delta) {
    return { verdict: 'INCONCLUSIVE', basis: null, reason: 'no case ran in both arms, so nothing can be paired', rules: [] };
  }
  const ci = `[${fmtSigned(delta.ci95.lower)}, ${fmtSigned(delta.ci95.upper)}]`;
  const rejects: string[] = [];
  if (delta.ci95.upper < -EPS) rejects.push(`Δ's 95 % CI ${ci} lies below 0: the treatment succeeds less often`);
  if (delta.estimate < LARGE_DROP - EPS && sign.pValue < SIGN_TEST_ALPHA) {
    rejects.push(`Δ = ${fmtSigned(delta.estimate)} is a drop over 10 points and the sign test gives p = ${fmtP(sign.pValue)} < 0.10`);
  }
  if (tokensRatio && tokensRatio.ci95.lower > TOKENS_RATIO_LIMIT + EPS) {
    rejects.push(`the tokens ratio's 95 % CI [${fmtRatio(tokensRatio.ci95.lower)}, ${fmtRatio(tokensRatio.ci95.upper)}] lies above 1.10: the treatment costs over 10 % more tokens`);
  }
  if (rejects.length) return { verdict: 'REJECT', basis: null, reason: rejects.join('; '), rules: rejects };

  const improvement = delta.ci95.lower > EPS;
  const nonInferior = delta.ci95.lower >= NON_INFERIORITY_MARGIN - EPS;
  if (target.met && nonInferior) {
    const basis = improvement ? 'improvement' : 'non-inferior';
    const why = improvement
      ? `Δ's 95 % CI ${ci} lies above 0 (improvement)`
      : `Δ's 95 % CI ${ci} excludes drops over 10 points (non-inferior)`;
    return { verdict: 'PROMOTE', basis, reason: `the test-plan target is met and ${why}`, rules: [`target met`, why] };
  }
  const missing: string[] = [];
  if (!nonInferior) {
    missing.push(
      `Δ = ${fmtSigned(delta.estimate)}, 95 % CI ${ci}, sign test p = ${fmtP(sign.pValue)}: ` +
        'the data admit a drop over 10 points but do not show a drop',
    );
  }
  if (!target.met) missing.push(`the test-plan target is not met: ${target.detail}`);
  return { verdict: 'INCONCLUSIVE', basis: null, reason: missing.join('; '), rules: [] };
}

function whyTheyDiffer(seed: SeedResult, stat: StatisticalResult, arms: ReplayReport['arms']): string | null {
  if (seed.verdict === stat.verdict) return null;
  const b = arms.baseline;
  const t = arms.treatment;
  const points = Math.round(Math.abs(seed.difference) * 1000) / 10;
  const rates = `${fmtRate(b.successRate)} → ${fmtRate(t.successRate)}`;
  const statSays = `The statistical verdict says ${stat.verdict}: ${stat.reason}.`;
  if (!b.n || !t.n) return `The seed rejects because an arm has no runs. ${statSays}`;
  if (seed.regression && stat.delta) {
    const moreFailures = t.n - t.successes - (b.n - b.successes);
    const lead =
      b.n === t.n && moreFailures > 0
        ? `With ${t.n} runs a side, ${moreFailures === 1 ? 'one failure' : `${moreFailures} failures`} more is ${aOrAn(points)} ${points}-point drop`
        : `With ${b.n} baseline and ${t.n} treatment runs, the treatment's rate is ${points} points lower`;
    const { estimate, ci95 } = stat.delta;
    const sees =
      `The statistical verdict sees Δ = ${fmtSigned(estimate)} with a 95 % CI of [${fmtSigned(ci95.lower)}, ` +
      `${fmtSigned(ci95.upper)}] and sign-test p = ${fmtP(stat.signTest.pValue)}`;
    const reading =
      stat.verdict === 'PROMOTE' ? 'a drop within the 10-point non-inferiority margin' : 'a drop it cannot tell from noise';
    return `${lead}: the seed calls any drop over 10 points a regression and says REJECT. ${sees} — ${reading} — and says ${stat.verdict}: ${stat.reason}.`;
  }
  if (seed.verdict === 'REJECT') {
    return `The seed rejects any drop in the pooled success rate, here ${points} points (${rates}). ${statSays}`;
  }
  return `The seed looks only at the pooled success rates (${rates}) and says PROMOTE. ${statSays}`;
}

// ——— the report ———

export function compareCampaign(input: CompareInput): ReplayReport {
  const resamples = validate(input);
  const cases = groupCases(input.runs);
  const paired = cases.filter((c) => c.baseline.runs.length > 0 && c.treatment.runs.length > 0);
  const all = {
    baseline: cases.flatMap((c) => c.baseline.runs),
    treatment: cases.flatMap((c) => c.treatment.runs),
  };
  const k = paired.length ? Math.min(...paired.flatMap((c) => [c.baseline.runs.length, c.treatment.runs.length])) : 0;
  const arms = {
    baseline: armSummary(all.baseline, paired, 'baseline', k),
    treatment: armSummary(all.treatment, paired, 'treatment', k),
  };
  const seed = seedVerdict(arms.baseline, arms.treatment);
  const target = targetCheck(input, all, arms, paired);
  const notes: string[] = [];

  // Point estimates over paired cases.
  const differences = paired.map((c) => c.treatment.successes / c.treatment.runs.length - c.baseline.successes / c.baseline.runs.length);
  const improved = differences.filter((d) => d > EPS).length;
  const worsened = differences.filter((d) => d < -EPS).length;
  const tokenLogRatios = paired.flatMap((c) => {
    const [b, t] = [c.baseline.meanLogTokens, c.treatment.meanLogTokens];
    return b === null || t === null ? [] : [t - b];
  });
  const durationLogRatios = paired.map((c) => c.treatment.meanLogDuration! - c.baseline.meanLogDuration!);

  let delta: StatisticalResult['delta'] = null;
  let tokensRatio: RatioEstimate | null = null;
  let durationRatio: RatioEstimate | null = null;
  if (paired.length) {
    const boot = bootstrap(paired, resamples, input.seed);
    delta = { estimate: mean(differences)!, ci95: percentileInterval(boot.delta)! };
    const tokensCi = tokenLogRatios.length ? percentileInterval(boot.logTokens, Math.exp) : null;
    if (tokensCi) tokensRatio = { estimate: Math.exp(mean(tokenLogRatios)!), ci95: tokensCi, cases: tokenLogRatios.length };
    durationRatio = { estimate: Math.exp(mean(durationLogRatios)!), ci95: percentileInterval(boot.logDuration, Math.exp)!, cases: paired.length };
  }
  const signTest = { improved, worsened, tied: paired.length - improved - worsened, pValue: signTestPValue(improved, worsened), exactMcNemar: k === 1 && paired.every((c) => c.baseline.runs.length === 1 && c.treatment.runs.length === 1) };

  // Power (Miller 2024): the paired differences are one value per case, so their SD already clusters by case.
  const observedSd = sampleSd(differences);
  const degenerate = paired.length < 2 || observedSd < EPS;
  const sd = degenerate ? FALLBACK_SD : observedSd;
  const casesFor10Points = Math.ceil((((Z_975 + Z_80) * sd) / 0.1) ** 2 - EPS);
  const power: StatisticalResult['power'] = {
    cases: paired.length,
    sdOfDifferences: sd,
    sdSource: degenerate ? 'conservative' : 'observed',
    minimumDetectableEffect: paired.length ? ((Z_975 + Z_80) * sd) / Math.sqrt(paired.length) : null,
    casesFor10Points,
    runsPerArmFor10Points: casesFor10Points * Math.max(k, 1),
  };

  const statistical: StatisticalResult = {
    ...statisticalVerdict(delta, signTest, tokensRatio, target),
    delta,
    signTest,
    tokensRatio,
    durationRatio,
    bootstrap: { resamples, seed: input.seed, method: 'two-stage percentile bootstrap: cases with replacement, then runs within each case and arm' },
    power,
  };

  const flakier =
    k > 1 &&
    arms.baseline.passAt1 !== null &&
    arms.treatment.passAt1! > arms.baseline.passAt1 + EPS &&
    arms.treatment.passHatK! < arms.baseline.passHatK! - EPS;
  if (flakier) {
    notes.push(
      `pass@1 rises (${fmtRate(arms.baseline.passAt1!)} → ${fmtRate(arms.treatment.passAt1!)}) but pass^${k} falls ` +
        `(${fmtRate(arms.baseline.passHatK!)} → ${fmtRate(arms.treatment.passHatK!)}): the treatment wins on average but makes a case flakier.`,
    );
  }
  const baselineOnly = cases.filter((c) => c.treatment.runs.length === 0).length;
  const treatmentOnly = cases.filter((c) => c.baseline.runs.length === 0).length;
  if (baselineOnly + treatmentOnly) {
    notes.push(`${baselineOnly + treatmentOnly} case(s) ran in one arm only: they count in the seed's pooled rates, not in the paired analysis.`);
  }
  if (!arms.baseline.n || !arms.treatment.n) notes.push('An arm has no runs: nothing can be promoted on this evidence.');
  if (power.minimumDetectableEffect !== null) {
    notes.push(
      `With ${paired.length} case(s), a change in success rate smaller than ${fmtPoints(power.minimumDetectableEffect)} points ` +
        `would likely go unseen (80 % power, two-sided α = 0.05, SD of per-case differences ${power.sdOfDifferences.toFixed(2)}` +
        `${degenerate ? ', a conservative value because the data cannot estimate it' : ''}); ` +
        `a 10-point difference needs about ${casesFor10Points} cases, ${power.runsPerArmFor10Points} runs per arm at ${Math.max(k, 1)} run(s) per case.`,
    );
  }
  if (tokenLogRatios.length < paired.length) {
    notes.push(
      tokenLogRatios.length
        ? `Tokens ratio over ${tokenLogRatios.length} of ${paired.length} cases: the others lack token counts in an arm.`
        : 'No case reported tokens in both arms: no tokens ratio, and its rejection rule does not apply.',
    );
  }
  notes.push(
    'Ratios are geometric means over cases of per-case geometric-mean ratios, computed on log(x + 1) so that a zero ' +
      'counts as 1 (a case with zeros in both arms has ratio 1); runs without token counts are left out of the tokens ratio.',
  );

  const mode = input.decisionMode;
  const report: ReplayReport = {
    schema: REPLAY_REPORT_SCHEMA,
    campaignId: campaignIdOf(input.runs),
    taskType: input.taskType,
    gating: { mode, verdict: mode === 'seed' ? seed.verdict : statistical.verdict },
    why: whyTheyDiffer(seed, statistical, arms),
    cases: { paired: paired.length, baselineOnly, treatmentOnly },
    k,
    arms,
    flakier,
    seed,
    statistical,
    target,
    caseRows: [],
    caseRowsOmitted: 0,
    notes,
  };
  return fitCaseRows(report, caseRows(cases));
}

function campaignIdOf(runs: ReplayRunResult[]): string | null {
  const ids = new Set(runs.map((r) => r.campaignId));
  return ids.size === 1 ? [...ids][0]! : null;
}

/** Up to MAX_CASE_ROWS rows, fewer while the JSON exceeds the evidence budget (long case ids). */
function fitCaseRows(report: ReplayReport, rows: CaseRow[]): ReplayReport {
  let keep = Math.min(rows.length, MAX_CASE_ROWS);
  for (;;) {
    const candidate = { ...report, caseRows: rows.slice(0, keep), caseRowsOmitted: rows.length - keep };
    if (keep === 0 || utf8Length(JSON.stringify(candidate)) <= REPORT_BUDGET_BYTES) return candidate;
    keep = Math.floor(keep / 2);
  }
}

function utf8Length(text: string): number {
  let bytes = 0;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code < 0x80) bytes += 1;
    else if (code < 0x800) bytes += 2;
    else if (code >= 0xd800 && code <= 0xdbff) {
      bytes += 4; // a surrogate pair: one 4-byte character
      i++;
    } else bytes += 3;
  }
  return bytes;
}

// ——— formatting ———

/** "an 8-point drop", "an 11-point rise", "a 20-point drop". */
function aOrAn(points: number): string {
  const whole = Math.floor(points);
  return String(whole).startsWith('8') || whole === 11 || whole === 18 ? 'an' : 'a';
}
function fmtRate(x: number): string {
  return x.toFixed(2);
}
function fmtSigned(x: number): string {
  const text = Math.abs(x) < 0.005 ? '0.00' : Math.abs(x).toFixed(2);
  return text === '0.00' ? text : `${x < 0 ? '−' : '+'}${text}`;
}
function fmtRatio(x: number): string {
  return x.toFixed(2);
}
function fmtPct(x: number): string {
  return `${Math.round(x * 1000) / 10} %`;
}
function fmtPoints(x: number): string {
  return String(Math.round(x * 1000) / 10);
}
function fmtP(p: number): string {
  return p < 0.001 ? '< 0.001' : p.toFixed(3);
}
/** 12,345 — by hand: the same text on every machine and in the workflow sandbox, whatever its ICU data. */
function fmtInt(x: number): string {
  const digits = String(Math.abs(Math.round(x)));
  return (x < -0.5 ? '-' : '') + digits.replace(/\B(?=(\d{3})+(?!\d))/g, ',');
}
function fmtOpt(x: number | null, format: (x: number) => string): string {
  return x === null ? '—' : format(x);
}
function cell(text: string): string {
  return text.replace(/\|/g, '\\|').replace(/[\r\n]+/g, ' ');
}

export function renderReplayMarkdown(report: ReplayReport): string {
  const { arms, seed, statistical: stat, target } = report;
  const lines: string[] = [];
  lines.push(`# Replay report${report.campaignId ? ` — ${cell(report.campaignId)}` : ''}`, '');
  lines.push(
    `**Gating verdict: ${report.gating.verdict}** (decision mode: ${report.gating.mode}) · seed: ${seed.verdict} · ` +
      `statistical: ${stat.verdict} · task type: ${report.taskType}`,
    '',
  );
  if (report.gating.verdict === 'INCONCLUSIVE') {
    lines.push('> INCONCLUSIVE: the replay neither shows the fix works nor that it harms; the reviewer decides on this evidence.', '');
  }
  if (report.why) lines.push(`> Why the verdicts differ: ${report.why}`, '');

  lines.push(`## Arms (${report.cases.paired} paired case(s), k = ${report.k})`, '');
  lines.push(`| arm | runs | successes | success rate | Wilson 95 % | pass@1 | pass^${report.k} | mean tokens | median tokens | mean duration | retries |`);
  lines.push('|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|');
  for (const name of ['baseline', 'treatment'] as const) {
    const a = arms[name];
    lines.push(
      `| ${name} | ${a.n} | ${a.successes} | ${fmtRate(a.successRate)} | [${fmtRate(a.wilson95.lower)}, ${fmtRate(a.wilson95.upper)}] | ` +
        `${fmtOpt(a.passAt1, fmtRate)} | ${fmtOpt(a.passHatK, fmtRate)} | ${fmtOpt(a.meanTokens, fmtInt)} | ${fmtOpt(a.medianTokens, fmtInt)} | ` +
        `${fmtOpt(a.meanDurationMs, (x) => `${fmtInt(x)} ms`)} | ${fmtOpt(a.retries, String)} |`,
    );
  }
  lines.push('');

  lines.push('## Statistical verdict: ' + stat.verdict, '');
  if (stat.delta) {
    lines.push(
      `- Δ success rate (treatment − baseline, mean over cases): ${fmtSigned(stat.delta.estimate)}, 95 % CI ` +
        `[${fmtSigned(stat.delta.ci95.lower)}, ${fmtSigned(stat.delta.ci95.upper)}]`,
    );
  }
  const s = stat.signTest;
  lines.push(
    `- Sign test over cases whose rates differ: ${s.improved} better, ${s.worsened} worse, ${s.tied} tied → p = ${fmtP(s.pValue)}` +
      (s.exactMcNemar ? ' (one run per case and arm: this is the exact McNemar test)' : ''),
  );
  const ratio = (name: string, r: RatioEstimate | null) =>
    r
      ? `- ${name} ratio (treatment / baseline, geometric mean over ${r.cases} case(s)): ${fmtRatio(r.estimate)}, 95 % CI [${fmtRatio(r.ci95.lower)}, ${fmtRatio(r.ci95.upper)}]`
      : `- ${name} ratio: not available`;
  lines.push(ratio('Tokens', stat.tokensRatio), ratio('Duration', stat.durationRatio));
  const p = stat.power;
  if (p.minimumDetectableEffect !== null) {
    lines.push(
      `- Minimum detectable effect (80 % power, α = 0.05): ${fmtPoints(p.minimumDetectableEffect)} points; a 10-point ` +
        `difference needs about ${p.runsPerArmFor10Points} runs per arm (${p.casesFor10Points} cases)`,
    );
  }
  lines.push(`- Bootstrap: ${stat.bootstrap.method}; ${stat.bootstrap.resamples} resamples, seed "${cell(stat.bootstrap.seed)}"`);
  lines.push(`- Verdict ${stat.verdict}: ${stat.reason}`, '');

  lines.push('## Seed verdict: ' + seed.verdict, '');
  lines.push(`- ${seed.reason}`);
  lines.push(
    `- difference ${fmtSigned(seed.difference)}: regression (drop > 0.10) ${seed.regression ? 'yes' : 'no'}, ` +
      `improvement (rise > 0.05) ${seed.improvement ? 'yes' : 'no'}`,
  );
  lines.push(
    `- mean duration ${fmtOpt(seed.meanDurationMs.baseline, fmtInt)} → ${fmtOpt(seed.meanDurationMs.treatment, fmtInt)} ms; ` +
      `mean tokens ${fmtOpt(seed.meanTokens.baseline, fmtInt)} → ${fmtOpt(seed.meanTokens.treatment, fmtInt)}`,
    '',
  );

  lines.push(`## Test-plan target (${target.taskType}): ${target.met ? 'met' : target.checkable ? 'not met' : 'not checkable'}`, '');
  lines.push(`- ${target.target}: ${target.detail}`, '');

  lines.push('## Cases', '');
  lines.push('| case | phase | baseline | treatment | Δ rate | median tokens (b → t) | median duration ms (b → t) |');
  lines.push('|---|---|---:|---:|---:|---:|---:|');
  for (const row of report.caseRows) {
    lines.push(
      `| ${cell(row.caseId)} | ${cell(row.phaseId ?? '—')} | ${row.baseline.successes}/${row.baseline.runs} | ` +
        `${row.treatment.successes}/${row.treatment.runs} | ${fmtOpt(row.difference, fmtSigned)} | ` +
        `${fmtOpt(row.baseline.medianTokens, fmtInt)} → ${fmtOpt(row.treatment.medianTokens, fmtInt)} | ` +
        `${fmtOpt(row.baseline.medianDurationMs, fmtInt)} → ${fmtOpt(row.treatment.medianDurationMs, fmtInt)} |`,
    );
  }
  if (report.caseRowsOmitted) lines.push('', `${report.caseRowsOmitted} more case(s) not shown.`);
  lines.push('');

  if (report.notes.length) {
    lines.push('## Notes', '', ...report.notes.map((note) => `- ${note}`), '');
  }
  return lines.join('\n');
}
