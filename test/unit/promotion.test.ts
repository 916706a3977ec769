/**
 * ROAD-F's pure rules: when a task becomes a rule (the 90 % threshold exactly), the seed's prompt byte for byte, the
 * rules file and its validation, the import plan, and the demotion statistics checked against values computed here
 * by other methods (a power series of Φ, printed normal tables, a textbook example).
 */
import { describe, expect, it } from 'vitest';
import { configSchema } from '../../domain/config.js';
import { Conflict, InvalidInput } from '../../domain/errors.js';
import type { VerdictSummary } from '../../domain/followup.js';
import {
  decideDemotion,
  demotionWindows,
  exportRules,
  judgePromotion,
  mitigationFrom,
  normalCdf,
  parseRulesFile,
  phasePrompt,
  planImport,
  preventionPrompt,
  renderRulesMarkdown,
  requirePhase,
  ruleIdFor,
  twoProportionTest,
  type PromoteRuleInput,
  type PromotedRule,
  type PromotionSource,
} from '../../domain/promotion.js';

const FINGERPRINT = '0123456789abcdef0123456789abcdef';
const SHA = 'a'.repeat(40);
const verdicts: VerdictSummary = {
  gating: 'PROMOTE',
  decisionMode: 'statistical',
  seed: 'PROMOTE',
  statistical: 'PROMOTE',
  treatmentSuccessRate: 0.9,
  treatmentRuns: 30,
};

/** A task whose followupTask workflow ended approved; `result` overrides are merged into the workflow's result. */
const input = (result: Partial<PromotionSource> = {}, task: Partial<PromoteRuleInput['task']> = {}): PromoteRuleInput => ({
  task: { id: 'FAILURE-1', fingerprint: FINGERPRINT, title: 'Stop "timeout" failures in auth', phase_ids: ['auth', 'database'], ...task },
  result: {
    candidate: { treatmentSha: SHA, branch: 'road/FAILURE-1' },
    verdicts,
    campaignId: `FAILURE-1@${SHA.slice(0, 12)}`,
    reportPath: '.road/reports/FAILURE-1.md',
    approval: { status: 'APPROVED', decidedBy: 'alice@example.com', decidedAt: '2026-06-10T12:30:00.000Z', canMerge: true },
    canMerge: true,
    ...result,
  },
});

const facts = (successes: number, n: number) => ({ treatment: { n, successes }, mitigation: 'Add timeout wrapper with exponential backoff', promotedAt: '2026-06-10T12:30:00Z' });

/** The Wilson bound L solves (p̂ − L)² · n = z² · L(1 − L): a check that does not reuse the closed form. */
const wilsonResidual = (lower: number, successes: number, n: number) => {
  const z = 1.959963984540054;
  return (successes / n - lower) ** 2 * n - z * z * lower * (1 - lower);
};

describe('promotion', () => {
  it('turns an approved, promotable task into a rule with its numbers and evidence', () => {
    const judged = judgePromotion(input(), facts(27, 30));
    expect(judged.promoted).toBe(true);
    if (!judged.promoted) return;
    const rule = judged.rule;
    expect(rule).toMatchObject({
      rule_id: 'rule-0123456789ab',
      fingerprint: FINGERPRINT,
      mitigation: 'Add timeout wrapper with exponential backoff',
      success_rate: 0.9,
      n: 30,
      applicable_phases: ['auth', 'database'],
      promoted_at: '2026-06-10T12:30:00.000Z',
      promotion_level: 'prompt',
      source_task: 'FAILURE-1',
      status: 'active',
      demoted_at: null,
      demotion: null,
      evidence: {
        campaign_id: 'FAILURE-1@aaaaaaaaaaaa',
        report_path: '.road/reports/FAILURE-1.md',
        reviewer: 'alice@example.com',
        decided_at: '2026-06-10T12:30:00.000Z',
        verdicts,
        treatment_sha: SHA,
        branch: 'road/FAILURE-1',
      },
    });
    // 27/30: the Wilson 95 % interval is [0.7438, 0.9654] (computed independently); the bound solves the quadratic.
    expect(rule.wilson_lower).toBeCloseTo(0.7438, 4);
    expect(Math.abs(wilsonResidual(rule.wilson_lower!, 27, 30))).toBeLessThan(1e-9);
  });

  it('promotes at exactly 90 % and not below it; the configured threshold replaces 90 %', () => {
    // 9/10 is 0.9 exactly; its Wilson interval is the textbook [0.5958, 0.9821].
    const nine = judgePromotion(input(), facts(9, 10));
    expect(nine.promoted && nine.rule.wilson_lower).toBeCloseTo(0.5958, 4);
    expect(judgePromotion(input(), facts(27, 30)).promoted).toBe(true);
    // 0.1 + 0.8 = 0.9000000000000001 and 0.3 · 3 = 0.8999999999999999: ratios of integers count as the ratio they are.
    expect(judgePromotion(input(), facts(899_999, 1_000_000))).toEqual({
      promoted: false,
      reason: 'treatment success rate 90.0 % (899999/1000000) is below promotion.minSuccessRate 90.0 %',
    });
    expect(judgePromotion(input(), facts(26, 30))).toEqual({
      promoted: false,
      reason: 'treatment success rate 86.7 % (26/30) is below promotion.minSuccessRate 90.0 %',
    });
    expect(judgePromotion(input(), facts(28, 30), 0.95).promoted).toBe(false);
    expect(judgePromotion(input(), facts(29, 30), 0.95).promoted).toBe(true);
    expect(judgePromotion(input(), facts(0, 0))).toEqual({ promoted: false, reason: 'the treatment arm has no replay runs' });
  });

  it('refuses what cannot merge, and says why', () => {
    const refused = (result: Partial<PromotionSource>, task: Partial<PromoteRuleInput['task']> = {}) => {
      const judged = judgePromotion(input(result, task), facts(30, 30));
      return judged.promoted ? 'promoted' : judged.reason;
    };
    expect(refused({ approval: { status: 'REJECTED', decidedBy: 'bob', canMerge: false }, canMerge: false })).toBe('not approved (REJECTED)');
    expect(refused({ approval: { status: 'EXPIRED', canMerge: false } })).toBe('not approved (EXPIRED)');
    expect(refused({ verdicts: { ...verdicts, gating: 'INCONCLUSIVE' } })).toBe('the gating verdict (statistical) is INCONCLUSIVE, not PROMOTE');
    expect(refused({ approval: { status: 'APPROVED', canMerge: false } })).toBe('can_merge is false');
    expect(refused({ canMerge: false })).toBe('can_merge is false');
    // A task that failed before replay or approval: its result lacks them.
    expect(refused({ approval: undefined })).toBe('no approval decision');
    expect(refused({ verdicts: undefined })).toBe('no replay verdicts');
    expect(refused({ candidate: undefined })).toBe('no candidate');
    expect(refused({ campaignId: undefined })).toBe('no replay campaign');
    expect(refused({}, { phase_ids: [] })).toBe('FAILURE-1 names no phase, so its rule could be served nowhere');
    expect(() => judgePromotion(input({}, { fingerprint: 'has space' }), facts(30, 30))).toThrow(InvalidInput);
    expect(() => judgePromotion(input({ candidate: { treatmentSha: 'main', branch: 'x' } }), facts(30, 30))).toThrow(/result.candidate.treatmentSha/);
  });

  it('derives one rule id per fingerprint', () => {
    expect(ruleIdFor(FINGERPRINT)).toBe('rule-0123456789ab');
    expect(ruleIdFor(FINGERPRINT)).toBe(ruleIdFor(FINGERPRINT));
    expect(ruleIdFor('fedcba9876543210fedcba9876543210')).not.toBe(ruleIdFor(FINGERPRINT));
  });

  it("takes the commit's subject as the mitigation, else the task's title", () => {
    expect(mitigationFrom('Wrap auth calls in a 30 s timeout\n\nThe provider hangs for minutes.\n', 'title')).toBe('Wrap auth calls in a 30 s timeout');
    expect(mitigationFrom('  spaced \t subject  \n', 'title')).toBe('spaced subject');
    expect(mitigationFrom('', 'Stop "timeout" failures in auth')).toBe('Stop "timeout" failures in auth');
    expect(mitigationFrom(undefined, 'the title')).toBe('the title');
    expect(mitigationFrom('bell\u0007 inside', 'x')).toBe('bell inside');
    const long = mitigationFrom('x'.repeat(1500), 't');
    expect(long).toHaveLength(1000);
    expect(long.endsWith('…')).toBe(true);
  });
});

const rule = (overrides: Partial<PromotedRule>): PromotedRule => ({
  rule_id: 'rule-x',
  mitigation: 'm',
  success_rate: 0.95,
  n: 20,
  wilson_lower: 0.76,
  applicable_phases: ['auth'],
  promoted_at: '2026-06-01T00:00:00.000Z',
  promotion_level: 'prompt',
  source_task: 'FAILURE-1',
  status: 'active',
  fingerprint: 'fp-x',
  evidence: null,
  demoted_at: null,
  demotion: null,
  ...overrides,
});

describe('prevention prompts', () => {
  it("are the seed's format, byte for byte", () => {
    // The example of seeds/000 (ROAD-F, "Prevention Prompt Generation"), as it appears there.
    const seedExample = [
      'Based on past successful fixes in auth:',
      '',
      'Recommended approaches:',
      '- Use connection pool for database access',
      '- Implement exponential backoff for retries',
      '- Add timeout wrapper for external calls',
    ].join('\n');
    const prompt = preventionPrompt('auth', ['Use connection pool for database access', 'Implement exponential backoff for retries', 'Add timeout wrapper for external calls']);
    expect(prompt).toBe(seedExample);
    expect(Buffer.from(prompt)).toEqual(Buffer.from(seedExample));
  });

  it('take a phase as the telemetry names it, refusing what could not be one', () => {
    expect(requirePhase('auth-migration')).toBe('auth-migration');
    expect(requirePhase('p'.repeat(255))).toHaveLength(255);
    expect(() => requirePhase('p'.repeat(256))).toThrow('phase must be at most 255 characters (got 256)');
    expect(() => requirePhase(undefined)).toThrow(InvalidInput);
    expect(() => requirePhase('', '--phase')).toThrow('--phase is required: the phase_id whose prevention prompt you want');
    expect(() => requirePhase(['a', 'b'])).toThrow('phase must be given once, as one phase_id');
  });

  it("serve a phase's active rules, best evidence first, and nothing for a phase without rules", () => {
    const rules = [
      rule({ rule_id: 'r-old', mitigation: 'older, same rate', success_rate: 0.95, n: 20, promoted_at: '2026-05-01T00:00:00.000Z' }),
      rule({ rule_id: 'r-best', mitigation: 'best rate', success_rate: 1 }),
      rule({ rule_id: 'r-new', mitigation: 'newer, same rate', success_rate: 0.95, n: 20, promoted_at: '2026-06-02T00:00:00.000Z' }),
      rule({ rule_id: 'r-more', mitigation: 'same rate, more runs', success_rate: 0.95, n: 40 }),
      rule({ rule_id: 'r-other', mitigation: 'other phase', applicable_phases: ['deploy'] }),
      rule({ rule_id: 'r-demoted', mitigation: 'demoted', status: 'demoted' }),
    ];
    const served = phasePrompt('auth', rules);
    expect(served.rules.map((r) => r.rule_id)).toEqual(['r-best', 'r-more', 'r-old', 'r-new']);
    expect(served.prompt).toBe(
      'Based on past successful fixes in auth:\n\nRecommended approaches:\n- best rate\n- same rate, more runs\n- older, same rate\n- newer, same rate',
    );
    expect(served.rules[0]).not.toHaveProperty('evidence');
    expect(phasePrompt('billing', rules)).toEqual({ phase: 'billing', prompt: '', rules: [] });
  });
});

const promoted = (): PromotedRule => {
  const judged = judgePromotion(input(), facts(27, 30));
  if (!judged.promoted) throw new Error('expected a promotion');
  return judged.rule;
};

describe('the rules file', () => {
  it("has the seed's shape: {promoted_at, count, rules: {<id>: rule}}, and parses back to the same rules", () => {
    const rules = [promoted(), rule({ rule_id: 'rule-b', fingerprint: 'fp-b' })];
    const file = exportRules(rules, new Date('2026-07-01T00:00:00Z'));
    expect(Object.keys(file)).toEqual(['promoted_at', 'count', 'rules']);
    expect(file.promoted_at).toBe('2026-07-01T00:00:00.000Z');
    expect(file.count).toBe(2);
    expect(Object.keys(file.rules)).toEqual(['rule-0123456789ab', 'rule-b']);
    expect(Object.keys(file.rules['rule-0123456789ab']!)).toEqual([
      'rule_id', 'mitigation', 'success_rate', 'n', 'wilson_lower', 'applicable_phases', 'promoted_at', 'promotion_level',
      'source_task', 'status', 'fingerprint', 'evidence', 'demoted_at', 'demotion',
    ]);
    expect(parseRulesFile(JSON.parse(JSON.stringify(file)))).toEqual(rules);
  });

  it("accepts the seed's own file, whose rules carry no fingerprint, runs or evidence", () => {
    const seedFile = {
      promoted_at: '2026-01-15T10:00:00+00:00',
      count: 1,
      rules: {
        'rule-timeout-001': {
          rule_id: 'rule-timeout-001',
          mitigation: 'Add timeout wrapper with exponential backoff',
          success_rate: 0.95,
          applicable_phases: ['auth', 'database', 'api'],
          promoted_at: '2026-01-15T09:59:00+01:00',
          promotion_level: 'prompt',
        },
      },
    };
    expect(parseRulesFile(seedFile)).toEqual([
      rule({
        rule_id: 'rule-timeout-001',
        fingerprint: 'rule-timeout-001',
        mitigation: 'Add timeout wrapper with exponential backoff',
        applicable_phases: ['auth', 'database', 'api'],
        promoted_at: '2026-01-15T08:59:00.000Z',
        n: null,
        wilson_lower: null,
        source_task: null,
      }),
    ]);
  });

  it('names the field of whatever is wrong', () => {
    const file = (rules: Record<string, unknown>, extra: Record<string, unknown> = {}) => ({
      promoted_at: '2026-07-01T00:00:00Z',
      count: Object.keys(rules).length,
      rules,
      ...extra,
    });
    const good = JSON.parse(JSON.stringify(exportRules([promoted()], new Date()).rules['rule-0123456789ab'])) as Record<string, unknown>;
    const error = (value: unknown) => {
      try {
        parseRulesFile(value);
      } catch (e) {
        expect(e).toBeInstanceOf(InvalidInput);
        return (e as Error).message;
      }
      throw new Error('expected a refusal');
    };
    expect(error(file({ 'rule-0123456789ab': { ...good, success_rate: 1.5 } }))).toBe('rules file: rules["rule-0123456789ab"].success_rate must be at most 1');
    expect(error(file({ 'rule-0123456789ab': { ...good, mitigation: 'two\nlines' } }))).toMatch(/rules\["rule-0123456789ab"\]\.mitigation must be one line/);
    expect(error(file({ 'rule-0123456789ab': { ...good, applicable_phases: [] } }))).toMatch(/applicable_phases must name at least one phase/);
    expect(error(file({ 'rule-0123456789ab': { ...good, promoted_at: 'yesterday' } }))).toMatch(/\.promoted_at must be an ISO-8601 date-time/);
    expect(error(file({ 'rule-0123456789ab': { ...good, promotion_level: 'strategy' } }))).toMatch(/promotion_level must be "prompt"/);
    expect(error(file({ 'rule-0123456789ab': { ...good, status: 'demoted' } }))).toMatch(/demoted_at is required when status is "demoted"/);
    expect(error(file({ 'rule-0123456789ab': { ...good, colour: 'red' } }))).toMatch(/rules\["rule-0123456789ab"\].*colour/);
    expect(error(file({ 'other-key': good }))).toBe('rules file: rules["other-key"].rule_id is "rule-0123456789ab", not its key "other-key"');
    expect(error(file({ 'rule-0123456789ab': good }, { count: 3 }))).toBe('rules file: count is 3 but rules holds 1');
    expect(error(file({ 'rule-0123456789ab': good, 'rule-2': { ...good, rule_id: 'rule-2' } }))).toMatch(
      /rules\["rule-2"\]\.fingerprint is also the fingerprint of "rule-0123456789ab"/,
    );
    expect(error({ count: 0, rules: {} })).toMatch(/^rules file: promoted_at/);
    expect(error([])).toMatch(/^rules file:/);
  });

  it('plans an import by fingerprint: new, unchanged, updated, or skipped when the database knows better', () => {
    const stored = [
      rule({ rule_id: 'same', fingerprint: 'f-same' }),
      rule({ rule_id: 'edited', fingerprint: 'f-edited', mitigation: 'old words' }),
      rule({ rule_id: 'later', fingerprint: 'f-later', promoted_at: '2026-06-05T00:00:00.000Z' }),
    ];
    const demotion = {
      test: 'two-proportion z-test (pooled, one-sided: failure rate after > before)' as const,
      phases: ['auth'],
      before: { from: 'a', to: 'b', events: 40, failures: 4, failure_rate: 0.1 },
      after: { from: 'b', to: 'c', events: 40, failures: 14, failure_rate: 0.35 },
      z: 2.7,
      p_value: 0.003,
      alpha: 0.05,
      min_sample: 30,
      reason: 'r',
    };
    const storedDemoted = rule({ rule_id: 'demoted', fingerprint: 'f-demoted', status: 'demoted', demoted_at: '2026-06-20T00:00:00.000Z', demotion });
    const plan = planImport([...stored, storedDemoted], [
      rule({ rule_id: 'same', fingerprint: 'f-same' }),
      rule({ rule_id: 'edited', fingerprint: 'f-edited', mitigation: 'new words' }),
      rule({ rule_id: 'later', fingerprint: 'f-later' }), // promoted 2026-06-01 in the file, 06-05 in the database
      rule({ rule_id: 'demoted', fingerprint: 'f-demoted' }), // the old export, from before the demotion
      rule({ rule_id: 'new', fingerprint: 'f-new' }),
    ]);
    expect(plan.insert.map((r) => r.rule_id)).toEqual(['new']);
    expect(plan.unchanged.map((r) => r.rule_id)).toEqual(['same']);
    expect(plan.update.map((r) => r.rule_id)).toEqual(['edited']);
    expect(plan.skipped).toEqual([
      { rule_id: 'later', reason: 'the database holds a later promotion (2026-06-05T00:00:00.000Z)' },
      { rule_id: 'demoted', reason: 'the database holds a later demotion (2026-06-20T00:00:00.000Z)' },
    ]);
    expect(() => planImport(stored, [rule({ rule_id: 'same', fingerprint: 'f-other' })])).toThrow(Conflict);
  });

  it('renders an AGENTS.md-style file: a section per phase, its prompt, and an evidence line per rule', () => {
    const markdown = renderRulesMarkdown(
      [promoted(), rule({ rule_id: 'rule-gone', mitigation: 'demoted advice', status: 'demoted', applicable_phases: ['auth', 'zzz'] })],
      new Date('2026-07-01T00:00:00Z'),
    );
    expect(markdown).toContain('## Phase `auth`\n\nBased on past successful fixes in auth:\n\nRecommended approaches:\n- Add timeout wrapper with exponential backoff\n');
    expect(markdown).toContain('## Phase `database`\n');
    expect(markdown).toContain(
      '- `rule-0123456789ab` — 90.0 % success (27/30 replay runs, Wilson 95 % lower bound 74.4 %); promoted 2026-06-10; task FAILURE-1, campaign FAILURE-1@aaaaaaaaaaaa, approved by alice@example.com on 2026-06-10, report .road/reports/FAILURE-1.md',
    );
    expect(markdown).not.toContain('demoted advice');
    expect(markdown).not.toContain('zzz');
    expect(renderRulesMarkdown([], new Date())).toContain('No active promoted rules yet.');
  });
});

/** Φ(x) = 1/2 + φ(x) · Σ x^(2k+1) / (1·3·5·…·(2k+1)): a power series, not the erfc fit the code uses. */
function phiBySeries(x: number): number {
  let term = x;
  let sum = x;
  for (let k = 1; k < 200; k++) {
    term *= (x * x) / (2 * k + 1);
    sum += term;
  }
  return 0.5 + (Math.exp((-x * x) / 2) / Math.sqrt(2 * Math.PI)) * sum;
}

describe('demotion statistics', () => {
  it('computes Φ like a power series and the printed tables', () => {
    for (const x of [-3, -2.5, -1.96, -1, -0.3, 0, 0.5, 1.2816, 1.645, 2, 2.5758, 3, 3.5]) {
      expect(Math.abs(normalCdf(x) - phiBySeries(x))).toBeLessThan(2e-7);
    }
    // Table values: Φ(1.96) = 0.9750, Φ(1.645) = 0.9500, Φ(2.326) = 0.9900, Φ(0) = 0.5, 1 − Φ(3) = 0.00135.
    expect(normalCdf(1.96)).toBeCloseTo(0.975, 4);
    expect(normalCdf(1.645)).toBeCloseTo(0.95, 4);
    expect(normalCdf(2.326)).toBeCloseTo(0.99, 4);
    expect(normalCdf(0)).toBeCloseTo(0.5, 7);
    expect(1 - normalCdf(3)).toBeCloseTo(0.00135, 5);
  });

  it('gives the textbook p for a pooled two-proportion test', () => {
    // OpenStax Introductory Statistics, the hives example: 20 of 200 (10 %) vs 12 of 200 (6 %). Pooled p̂ = 32/400 = 0.08,
    // SE = √(0.08 · 0.92 · (1/200 + 1/200)) = 0.027129, z = 0.04 / 0.027129 = 1.4744; two-sided p = 0.1404, one-sided 0.0702.
    const test = twoProportionTest({ events: 200, failures: 12 }, { events: 200, failures: 20 })!;
    expect(test.z).toBeCloseTo(1.4744, 4);
    expect(test.pValue).toBeCloseTo(0.0702, 4);
    expect(2 * test.pValue).toBeCloseTo(0.1404, 4);
    expect(test.pValue).toBeCloseTo(1 - phiBySeries(0.04 / Math.sqrt(0.08 * 0.92 * (2 / 200))), 6);
    // A fall in the failure rate is the other tail: p near 1, never a demotion.
    expect(twoProportionTest({ events: 200, failures: 20 }, { events: 200, failures: 12 })!.pValue).toBeCloseTo(0.9298, 4);
    // No variance (no failures anywhere, or only failures): nothing to test.
    expect(twoProportionTest({ events: 50, failures: 0 }, { events: 50, failures: 0 })).toBeNull();
    expect(twoProportionTest({ events: 50, failures: 50 }, { events: 50, failures: 50 })).toBeNull();
  });

  it('demotes only on a significant rise with enough events on both sides', () => {
    const options = { alpha: 0.05, minSample: 30 };
    // 4/40 = 10 % → 14/40 = 35 %: pooled 18/80 = 0.225, SE = √(0.225 · 0.775 · 2/40) = 0.093375, z = 0.25 / 0.093375 = 2.6774.
    const rise = decideDemotion({ events: 40, failures: 4 }, { events: 40, failures: 14 }, options);
    expect(rise.demote).toBe(true);
    expect(rise.z).toBeCloseTo(2.6774, 4);
    expect(rise.pValue).toBeCloseTo(1 - phiBySeries(0.25 / Math.sqrt(0.225 * 0.775 * (2 / 40))), 6);
    expect(rise.reason).toBe('failure rate 10.0 % (4/40) before → 35.0 % (14/40) since promotion; z = 2.68, one-sided p = 0.0037 < α 0.05');
    // The hives numbers: p = 0.0702 is not below 0.05, but it is below 0.10.
    expect(decideDemotion({ events: 200, failures: 12 }, { events: 200, failures: 20 }, options).demote).toBe(false);
    expect(decideDemotion({ events: 200, failures: 12 }, { events: 200, failures: 20 }, { ...options, alpha: 0.1 }).demote).toBe(true);
    // The same rise with 29 events after promotion: too few to judge. Exactly the minimum is enough.
    expect(decideDemotion({ events: 40, failures: 4 }, { events: 29, failures: 20 }, options)).toEqual({
      demote: false, reason: 'too few events since promotion (29 < 30)', z: null, pValue: null,
    });
    expect(decideDemotion({ events: 29, failures: 0 }, { events: 40, failures: 30 }, options).reason).toBe('too few events before promotion (29 < 30)');
    expect(decideDemotion({ events: 30, failures: 3 }, { events: 30, failures: 15 }, options).demote).toBe(true);
    expect(decideDemotion({ events: 30, failures: 0 }, { events: 30, failures: 0 }, options).reason).toBe('no failures before and after promotion: no rise to test');
  });

  it('compares whole hours: the latest window since promotion with as many hours before it', () => {
    // Promoted 12:30 on day 10, now 18:45 on day 11: after = 13:00 (day 10) → 18:00 (day 11) = 29 h; before = 29 h up to 12:00.
    const w = demotionWindows('2026-06-10T12:30:00.000Z', new Date('2026-06-11T18:45:00Z'), 168);
    expect(w).toEqual({
      hours: 29,
      after: { from: '2026-06-10T13:00:00.000Z', to: '2026-06-11T18:00:00.000Z' },
      before: { from: '2026-06-09T07:00:00.000Z', to: '2026-06-10T12:00:00.000Z' },
    });
    // Capped at windowHours: the latest 24 h, and the 24 h before the promotion hour.
    expect(demotionWindows('2026-06-10T12:30:00.000Z', new Date('2026-06-20T00:10:00Z'), 24)).toEqual({
      hours: 24,
      after: { from: '2026-06-19T00:00:00.000Z', to: '2026-06-20T00:00:00.000Z' },
      before: { from: '2026-06-09T12:00:00.000Z', to: '2026-06-10T12:00:00.000Z' },
    });
    // Within the hour after the promotion hour: nothing to compare yet.
    expect(demotionWindows('2026-06-10T12:30:00.000Z', new Date('2026-06-10T13:59:00Z'), 168).hours).toBe(0);
  });
});

describe('configuration', () => {
  it('defaults to 90 %, α 0.05, 30 events and 168 hours, and names the key of a bad value', () => {
    expect(configSchema.parse({}).promotion).toEqual({ minSuccessRate: 0.9, demotion: { alpha: 0.05, minSample: 30, windowHours: 168 } });
    expect(configSchema.parse({ promotion: { demotion: { alpha: 0.01 } } }).promotion.demotion).toEqual({ alpha: 0.01, minSample: 30, windowHours: 168 });
    const messages = (value: unknown) => configSchema.safeParse({ promotion: value }).error?.issues.map((i) => i.message);
    expect(messages({ minSuccessRate: 1.2 })).toEqual(['promotion.minSuccessRate must be at most 1']);
    expect(messages({ demotion: { alpha: 0.7 } })).toEqual(['promotion.demotion.alpha must be at most 0.5']);
    expect(messages({ demotion: { minSample: 2.5 } })).toEqual(['promotion.demotion.minSample must be an integer from 1 to 1000000']);
    expect(messages({ demotion: { windowHours: 0 } })).toEqual(['promotion.demotion.windowHours must be at least 1']);
  });
});
