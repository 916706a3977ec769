/**
 * ROAD-F as pure rules (DESIGN.md §Promotion): when a follow-up task's fix becomes a promoted rule, the prevention
 * prompt a phase is served, the rules file (the seed's JSON shape) and its import, and when a rule is demoted.
 *
 * No Node built-ins and no I/O: a workflow may import this file. Times are ISO-8601 strings in UTC.
 */
import { z } from 'zod';
import { wilsonInterval } from './comparison.js';
import { Conflict, InvalidInput } from './errors.js';
import type { CandidateSummary, VerdictSummary } from './followup.js';
import type { FollowupTask } from './tasks.js';
import { describeZodError } from './validation.js';

export const DEFAULT_MIN_SUCCESS_RATE = 0.9;
export const DEFAULT_DEMOTION = { alpha: 0.05, minSample: 30, windowHours: 168 } as const;

/** Rules are served into prompts only (DESIGN.md keeps the seed's prompts, not its strategy engine). */
export const PROMOTION_LEVELS = ['prompt'] as const;
export type PromotionLevel = (typeof PROMOTION_LEVELS)[number];
export type RuleStatus = 'active' | 'demoted';

export const RULE_ID_PATTERN = /^[A-Za-z0-9._:-]{1,128}$/;
export const FINGERPRINT_PATTERN = /^[A-Za-z0-9._:-]{1,128}$/;
export const MITIGATION_MAX_CHARS = 1000;
export const PHASE_MAX_CHARS = 255;
export const MAX_RULE_PHASES = 50;
export const MAX_RULES_PER_FILE = 10_000;
/** Success rates are ratios of integers: 27/30 must count as 0.9 whatever the rounding of the division. */
const RATE_EPS = 1e-9;
const HOUR_MS = 3_600_000;

/** What a reviewer approved, kept with the rule so anyone can trace a prompt line back to its replay report. */
export interface PromotionEvidence {
  campaign_id: string;
  report_path: string | null;
  reviewer: string | null;
  decided_at: string | null;
  verdicts: VerdictSummary;
  treatment_sha: string;
  branch: string | null;
}

export interface WindowCounts {
  from: string;
  to: string;
  events: number;
  failures: number;
  failure_rate: number | null;
}

/** Why a rule stopped being served: both windows, the test and its verdict. */
export interface DemotionEvidence {
  test: 'two-proportion z-test (pooled, one-sided: failure rate after > before)';
  phases: string[];
  before: WindowCounts;
  after: WindowCounts;
  z: number;
  p_value: number;
  alpha: number;
  min_sample: number;
  reason: string;
}

/**
 * A validated mitigation. `n`, `wilson_lower` and `evidence` are null only for rules imported from a file that did not
 * carry them (the seed's own file has none); every rule ROAD promotes has all three.
 */
export interface PromotedRule {
  rule_id: string;
  mitigation: string;
  success_rate: number;
  n: number | null;
  wilson_lower: number | null;
  applicable_phases: string[];
  promoted_at: string;
  promotion_level: PromotionLevel;
  source_task: string | null;
  status: RuleStatus;
  fingerprint: string;
  evidence: PromotionEvidence | null;
  demoted_at: string | null;
  demotion: DemotionEvidence | null;
}

// ——— promotion ———

/**
 * The parts of a finished follow-up task's result a promotion reads. The `followupTask` workflow's result
 * (FollowupTaskResult) has them all; a task that failed before replay or approval lacks some, and is not promoted.
 */
export interface PromotionSource {
  candidate?: Pick<CandidateSummary, 'treatmentSha' | 'branch'>;
  verdicts?: VerdictSummary;
  campaignId?: string;
  reportPath?: string | null;
  approval?: { status: string; decidedBy?: string | null; decidedAt?: string | null; canMerge: boolean };
  /** The workflow's can_merge (APPROVED ∧ gating verdict PROMOTE). */
  canMerge?: boolean;
}

/** What the improvement loop hands over for a task whose workflow finished (named: it lives in workflow history). */
export interface PromoteRuleInput {
  task: Pick<FollowupTask, 'id' | 'fingerprint' | 'title' | 'phase_ids'>;
  result: PromotionSource;
  /** Where the candidate commit is read for the mitigation (default: repository.path of road.config.json). */
  repositoryPath?: string;
}

export interface PromoteRuleResult {
  promoted: boolean;
  /** The stored rule (also when this call changed nothing because the same promotion was stored before). */
  rule?: PromotedRule;
  /** One sentence for the loop report: why it was (not) promoted. */
  reason: string;
}

/** One rule per task fingerprint, so the rule id is the fingerprint's: a retry or a second loop finds the same rule. */
export function ruleIdFor(fingerprint: string): string {
  return `rule-${fingerprint.slice(0, 12)}`;
}

// eslint-disable-next-line no-control-regex -- control characters are what is removed
const CONTROL_CHARS = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]+/g;

/** One prompt line: the first line of `text`, blanks collapsed, at most MITIGATION_MAX_CHARS characters. */
export function oneLine(text: string): string {
  const first = text.split(/\r?\n/).find((line) => line.trim().length > 0) ?? '';
  const clean = first.replace(CONTROL_CHARS, ' ').replace(/\s+/g, ' ').trim();
  return clean.length <= MITIGATION_MAX_CHARS ? clean : `${clean.slice(0, MITIGATION_MAX_CHARS - 1)}…`;
}

/** The candidate commit's subject says what the fix does; a commit without one falls back to the task's title. */
export function mitigationFrom(commitMessage: string | undefined, taskTitle: string): string {
  return oneLine(commitMessage ?? '') || oneLine(taskTitle) || '(untitled fix)';
}

export interface PromotionFacts {
  /** The treatment arm of the replay report. */
  treatment: { n: number; successes: number };
  mitigation: string;
  /** When the rule counts from: the approval's decision time (the same on every retry), else now. */
  promotedAt: string;
}

export type PromotionJudgement = { promoted: true; rule: PromotedRule } | { promoted: false; reason: string };

const pct = (fraction: number) => `${(fraction * 100).toFixed(1)} %`;

/** A source that passed every check that needs no replay numbers. */
export interface PromotableSource {
  candidate: Pick<CandidateSummary, 'treatmentSha' | 'branch'>;
  verdicts: VerdictSummary;
  campaignId: string;
  reportPath: string | null;
  approval: NonNullable<PromotionSource['approval']>;
}

/**
 * Whether a finished task can be promoted at all, whatever its replay numbers: checked before any I/O. Input that
 * could never have come from a follow-up task is InvalidInput.
 */
export function checkPromotable(input: PromoteRuleInput): { ok: true; source: PromotableSource } | { ok: false; reason: string } {
  const { task, result } = input;
  if (typeof task?.fingerprint !== 'string' || !FINGERPRINT_PATTERN.test(task.fingerprint)) {
    throw new InvalidInput('task.fingerprint must be 1–128 characters of A–Z a–z 0–9 . _ : -');
  }
  if (!Array.isArray(task.phase_ids) || task.phase_ids.some((p) => typeof p !== 'string' || p.length < 1 || p.length > PHASE_MAX_CHARS)) {
    throw new InvalidInput(`task.phase_ids must be phase ids of 1–${PHASE_MAX_CHARS} characters`);
  }
  const { approval, verdicts, candidate, campaignId } = result ?? {};
  if (!approval) return { ok: false, reason: 'no approval decision' };
  if (approval.status !== 'APPROVED') return { ok: false, reason: `not approved (${approval.status})` };
  if (!verdicts) return { ok: false, reason: 'no replay verdicts' };
  if (verdicts.gating !== 'PROMOTE') return { ok: false, reason: `the gating verdict (${verdicts.decisionMode}) is ${verdicts.gating}, not PROMOTE` };
  if (!approval.canMerge || result.canMerge === false) return { ok: false, reason: 'can_merge is false' };
  if (!candidate) return { ok: false, reason: 'no candidate' };
  if (!/^[0-9a-f]{40}([0-9a-f]{24})?$/.test(candidate.treatmentSha ?? '')) {
    throw new InvalidInput('result.candidate.treatmentSha must be a 40- or 64-character hexadecimal commit sha');
  }
  if (typeof campaignId !== 'string' || !campaignId) return { ok: false, reason: 'no replay campaign' };
  if (!task.phase_ids.length) return { ok: false, reason: `${task.id} names no phase, so its rule could be served nowhere` };
  if (new Set(task.phase_ids).size > MAX_RULE_PHASES) return { ok: false, reason: `${task.id} names more than ${MAX_RULE_PHASES} phases` };
  return { ok: true, source: { candidate, verdicts, campaignId, reportPath: result.reportPath ?? null, approval } };
}

/**
 * DESIGN.md §Promotion: a task that can merge (APPROVED ∧ gating verdict PROMOTE) whose treatment succeeded in at
 * least `minSuccessRate` of its replay runs becomes an active rule for the task's phases.
 */
export function judgePromotion(input: PromoteRuleInput, facts: PromotionFacts, minSuccessRate = DEFAULT_MIN_SUCCESS_RATE): PromotionJudgement {
  const checked = checkPromotable(input);
  if (!checked.ok) return { promoted: false, reason: checked.reason };
  const { task } = input;
  const { approval, verdicts, candidate } = checked.source;
  const phases = [...new Set(task.phase_ids)];
  const { n, successes } = facts.treatment;
  if (!Number.isInteger(n) || !Number.isInteger(successes) || successes < 0 || successes > n) {
    throw new InvalidInput(`treatment must have integer successes within 0..n (got ${successes} of ${n})`);
  }
  if (n === 0) return { promoted: false, reason: 'the treatment arm has no replay runs' };
  const rate = successes / n;
  if (rate < minSuccessRate - RATE_EPS) {
    return {
      promoted: false,
      reason: `treatment success rate ${pct(rate)} (${successes}/${n}) is below promotion.minSuccessRate ${pct(minSuccessRate)}`,
    };
  }
  const rule: PromotedRule = {
    rule_id: ruleIdFor(task.fingerprint),
    mitigation: facts.mitigation,
    success_rate: rate,
    n,
    wilson_lower: wilsonInterval(successes, n).lower,
    applicable_phases: phases,
    promoted_at: new Date(facts.promotedAt).toISOString(),
    promotion_level: 'prompt',
    source_task: task.id,
    status: 'active',
    fingerprint: task.fingerprint,
    evidence: {
      campaign_id: checked.source.campaignId,
      report_path: checked.source.reportPath,
      reviewer: approval.decidedBy ?? null,
      decided_at: approval.decidedAt ? new Date(approval.decidedAt).toISOString() : null,
      verdicts,
      treatment_sha: candidate.treatmentSha,
      branch: candidate.branch ?? null,
    },
    demoted_at: null,
    demotion: null,
  };
  return { promoted: true, rule };
}

// ——— prevention prompts ———

/** What an agent is served for a phase: the rule without its evidence. */
export type ServedRule = Pick<PromotedRule, 'rule_id' | 'mitigation' | 'success_rate' | 'n' | 'wilson_lower' | 'applicable_phases' | 'promoted_at' | 'source_task'>;

export interface PhasePrompt {
  phase: string;
  /** The prevention prompt; "" when no active rule applies (an agent can always prepend it). */
  prompt: string;
  rules: ServedRule[];
}

const byText = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/** Best evidence first: success rate, then more runs, then the longer-standing rule; the id breaks ties. */
export function servingOrder(a: PromotedRule, b: PromotedRule): number {
  return b.success_rate - a.success_rate || (b.n ?? -1) - (a.n ?? -1) || byText(a.promoted_at, b.promoted_at) || byText(a.rule_id, b.rule_id);
}

/** The seed's format, exactly (no trailing newline). */
export function preventionPrompt(phase: string, mitigations: readonly string[]): string {
  if (!mitigations.length) return '';
  return [`Based on past successful fixes in ${phase}:`, '', 'Recommended approaches:', ...mitigations.map((m) => `- ${m}`)].join('\n');
}

/** The active rules of a phase in serving order, and their prompt. */
export function phasePrompt(phase: string, rules: readonly PromotedRule[]): PhasePrompt {
  const applicable = rules.filter((r) => r.status === 'active' && r.applicable_phases.includes(phase)).sort(servingOrder);
  const mitigations = [...new Set(applicable.map((r) => r.mitigation))];
  return { phase, prompt: preventionPrompt(phase, mitigations), rules: applicable.map(servedRule) };
}

export const servedRule = (r: PromotedRule): ServedRule => ({
  rule_id: r.rule_id,
  mitigation: r.mitigation,
  success_rate: r.success_rate,
  n: r.n,
  wilson_lower: r.wilson_lower,
  applicable_phases: r.applicable_phases,
  promoted_at: r.promoted_at,
  source_task: r.source_task,
});

/** A phase as an agent names it when it asks for its prompt (`--phase`, `?phase=`): the telemetry's phase_id limits. */
export function requirePhase(value: unknown, name = 'phase'): string {
  if (value === undefined || value === null || value === '') throw new InvalidInput(`${name} is required: the phase_id whose prevention prompt you want`);
  if (typeof value !== 'string') throw new InvalidInput(`${name} must be given once, as one phase_id`);
  if (value.length > PHASE_MAX_CHARS) throw new InvalidInput(`${name} must be at most ${PHASE_MAX_CHARS} characters (got ${value.length})`);
  return value;
}

// ——— the rules file ———

/** The seed's `save_promoted_rules` shape: when it was written, how many rules, the rules by id. */
export interface RulesFile {
  promoted_at: string;
  count: number;
  rules: Record<string, PromotedRule>;
}

/** Every field in one fixed order, so two exports of the same rules are byte-identical apart from the file's time. */
export function ruleRecord(r: PromotedRule): PromotedRule {
  return {
    rule_id: r.rule_id,
    mitigation: r.mitigation,
    success_rate: r.success_rate,
    n: r.n,
    wilson_lower: r.wilson_lower,
    applicable_phases: [...r.applicable_phases],
    promoted_at: r.promoted_at,
    promotion_level: r.promotion_level,
    source_task: r.source_task,
    status: r.status,
    fingerprint: r.fingerprint,
    evidence: r.evidence && evidenceRecord(r.evidence),
    demoted_at: r.demoted_at,
    demotion: r.demotion && demotionRecord(r.demotion),
  };
}

const evidenceRecord = (e: PromotionEvidence): PromotionEvidence => ({
  campaign_id: e.campaign_id,
  report_path: e.report_path,
  reviewer: e.reviewer,
  decided_at: e.decided_at,
  verdicts: {
    gating: e.verdicts.gating,
    decisionMode: e.verdicts.decisionMode,
    seed: e.verdicts.seed,
    statistical: e.verdicts.statistical,
    treatmentSuccessRate: e.verdicts.treatmentSuccessRate,
    treatmentRuns: e.verdicts.treatmentRuns,
    ...(e.verdicts.why === undefined ? {} : { why: e.verdicts.why }),
  },
  treatment_sha: e.treatment_sha,
  branch: e.branch,
});

const windowRecord = (w: WindowCounts): WindowCounts => ({ from: w.from, to: w.to, events: w.events, failures: w.failures, failure_rate: w.failure_rate });

const demotionRecord = (d: DemotionEvidence): DemotionEvidence => ({
  test: d.test,
  phases: [...d.phases],
  before: windowRecord(d.before),
  after: windowRecord(d.after),
  z: d.z,
  p_value: d.p_value,
  alpha: d.alpha,
  min_sample: d.min_sample,
  reason: d.reason,
});

/** Active and demoted rules alike: a restore from the file must not resurrect a demoted rule. */
export function exportRules(rules: readonly PromotedRule[], now: Date): RulesFile {
  const sorted = [...rules].sort((a, b) => byText(a.rule_id, b.rule_id));
  return { promoted_at: now.toISOString(), count: sorted.length, rules: Object.fromEntries(sorted.map((r) => [r.rule_id, ruleRecord(r)])) };
}

const rate = (field: string) =>
  z.number({ error: `${field} must be a number from 0 to 1` }).min(0, `${field} must be at least 0`).max(1, `${field} must be at most 1`);

const isoTime = (field: string) =>
  z.iso
    .datetime({ offset: true, error: `${field} must be an ISO-8601 date-time with a time zone offset, e.g. 2026-11-28T09:30:00Z` })
    .transform((text) => new Date(text).toISOString());

const text = (field: string, max: number) =>
  z.string({ error: `${field} must be a string` }).min(1, `${field} must not be empty`).max(max, `${field} must be at most ${max} characters`);

const verdictsSchema = z
  .object({
    gating: z.enum(['PROMOTE', 'REJECT', 'INCONCLUSIVE'], { error: 'evidence.verdicts.gating must be PROMOTE, REJECT or INCONCLUSIVE' }),
    decisionMode: z.enum(['statistical', 'seed'], { error: 'evidence.verdicts.decisionMode must be statistical or seed' }),
    seed: z.enum(['PROMOTE', 'REJECT'], { error: 'evidence.verdicts.seed must be PROMOTE or REJECT' }),
    statistical: z.enum(['PROMOTE', 'REJECT', 'INCONCLUSIVE'], { error: 'evidence.verdicts.statistical must be PROMOTE, REJECT or INCONCLUSIVE' }),
    treatmentSuccessRate: rate('evidence.verdicts.treatmentSuccessRate'),
    treatmentRuns: z.number().int('evidence.verdicts.treatmentRuns must be an integer').min(0, 'evidence.verdicts.treatmentRuns must be at least 0'),
    why: z.string().max(4000, 'evidence.verdicts.why must be at most 4000 characters').optional(),
  })
  .strict();

const evidenceSchema = z
  .object({
    campaign_id: text('evidence.campaign_id', 200),
    report_path: text('evidence.report_path', 4096).nullable(),
    reviewer: text('evidence.reviewer', 255).nullable(),
    decided_at: isoTime('evidence.decided_at').nullable(),
    verdicts: verdictsSchema,
    treatment_sha: z.string().regex(/^[0-9a-f]{40}([0-9a-f]{24})?$/, 'evidence.treatment_sha must be a 40- or 64-character hexadecimal commit sha'),
    branch: text('evidence.branch', 255).nullable(),
  })
  .strict();

const windowSchema = (field: string) =>
  z
    .object({
      from: isoTime(`${field}.from`),
      to: isoTime(`${field}.to`),
      events: z.number().int().min(0, `${field}.events must be at least 0`),
      failures: z.number().int().min(0, `${field}.failures must be at least 0`),
      failure_rate: rate(`${field}.failure_rate`).nullable(),
    })
    .strict();

const demotionSchema = z
  .object({
    test: z.literal('two-proportion z-test (pooled, one-sided: failure rate after > before)', { error: 'demotion.test names an unknown test' }),
    phases: z.array(text('demotion.phases[]', PHASE_MAX_CHARS)).max(MAX_RULE_PHASES),
    before: windowSchema('demotion.before'),
    after: windowSchema('demotion.after'),
    z: z.number({ error: 'demotion.z must be a number' }),
    p_value: rate('demotion.p_value'),
    alpha: rate('demotion.alpha'),
    min_sample: z.number().int().min(1, 'demotion.min_sample must be at least 1'),
    reason: text('demotion.reason', 2000),
  })
  .strict();

const ruleSchema = z
  .object({
    rule_id: z.string({ error: 'rule_id must be a string' }).regex(RULE_ID_PATTERN, 'rule_id must be 1–128 characters of A–Z a–z 0–9 . _ : -'),
    mitigation: text('mitigation', MITIGATION_MAX_CHARS).refine((m) => oneLine(m) === m, {
      message: 'mitigation must be one line without control characters or surrounding blanks',
    }),
    success_rate: rate('success_rate'),
    n: z.number().int('n must be an integer').min(1, 'n must be at least 1').nullable().default(null),
    wilson_lower: rate('wilson_lower').nullable().default(null),
    applicable_phases: z
      .array(text('applicable_phases[]', PHASE_MAX_CHARS), { error: 'applicable_phases must be an array of phase ids' })
      .min(1, 'applicable_phases must name at least one phase')
      .max(MAX_RULE_PHASES, `applicable_phases must name at most ${MAX_RULE_PHASES} phases`)
      .refine((phases) => new Set(phases).size === phases.length, { message: 'applicable_phases must not repeat a phase' }),
    promoted_at: isoTime('promoted_at'),
    promotion_level: z.enum(PROMOTION_LEVELS, { error: `promotion_level must be ${PROMOTION_LEVELS.map((l) => `"${l}"`).join(' or ')}` }),
    source_task: z.string().regex(/^[A-Za-z0-9._:-]{1,128}$/, 'source_task must be a task id (1–128 characters of A–Z a–z 0–9 . _ : -)').nullable().default(null),
    status: z.enum(['active', 'demoted'], { error: 'status must be "active" or "demoted"' }).default('active'),
    fingerprint: z.string().regex(FINGERPRINT_PATTERN, 'fingerprint must be 1–128 characters of A–Z a–z 0–9 . _ : -').optional(),
    evidence: evidenceSchema.nullable().default(null),
    demoted_at: isoTime('demoted_at').nullable().default(null),
    demotion: demotionSchema.nullable().default(null),
  })
  .strict()
  .superRefine((rule, ctx) => {
    const demoted = rule.status === 'demoted';
    if (demoted !== (rule.demoted_at !== null)) {
      ctx.addIssue({ code: 'custom', path: ['demoted_at'], message: demoted ? 'demoted_at is required when status is "demoted"' : 'demoted_at must be null when status is "active"' });
    }
    if (demoted !== (rule.demotion !== null)) {
      ctx.addIssue({ code: 'custom', path: ['demotion'], message: demoted ? 'demotion is required when status is "demoted"' : 'demotion must be null when status is "active"' });
    }
    if (rule.demoted_at !== null && rule.demoted_at < rule.promoted_at) {
      ctx.addIssue({ code: 'custom', path: ['demoted_at'], message: 'demoted_at must not be before promoted_at' });
    }
  });

const rulesFileSchema = z
  .object({
    promoted_at: isoTime('promoted_at'),
    count: z.number({ error: 'count must be a number' }).int('count must be an integer').min(0, 'count must be at least 0'),
    rules: z.record(z.string(), z.unknown(), { error: 'rules must be an object of rules by rule id' }),
  })
  .strict();

/**
 * A rules file (the seed's shape, as `road rules export` writes it, or the seed's own file without ROAD's extra
 * fields) → rules. Throws InvalidInput naming the field: `rules["rule-1"].success_rate must be at most 1`.
 * A rule without a fingerprint is keyed by its rule id.
 */
export function parseRulesFile(value: unknown): PromotedRule[] {
  const file = rulesFileSchema.safeParse(value);
  if (!file.success) throw new InvalidInput(`rules file: ${describeZodError(file.error)}`);
  const entries = Object.entries(file.data.rules);
  if (entries.length > MAX_RULES_PER_FILE) throw new InvalidInput(`rules file: at most ${MAX_RULES_PER_FILE} rules (got ${entries.length})`);
  if (file.data.count !== entries.length) throw new InvalidInput(`rules file: count is ${file.data.count} but rules holds ${entries.length}`);
  const rules: PromotedRule[] = [];
  const owners = new Map<string, string>();
  for (const [key, raw] of entries) {
    const where = `rules[${JSON.stringify(key)}]`;
    const parsed = ruleSchema.safeParse(raw);
    if (!parsed.success) {
      const message = parsed.error.issues.map((issue) => {
        const path = issue.path.join('.');
        return path && !issue.message.startsWith(String(issue.path[0])) ? `${where}.${path}: ${issue.message}` : `${where}.${issue.message}`;
      });
      throw new InvalidInput(`rules file: ${message.join('; ')}`);
    }
    const { fingerprint, ...rest } = parsed.data;
    if (rest.rule_id !== key) throw new InvalidInput(`rules file: ${where}.rule_id is "${rest.rule_id}", not its key "${key}"`);
    const rule: PromotedRule = { ...rest, fingerprint: fingerprint ?? rest.rule_id };
    const owner = owners.get(rule.fingerprint);
    if (owner !== undefined) throw new InvalidInput(`rules file: ${where}.fingerprint is also the fingerprint of "${owner}": one rule per fingerprint`);
    owners.set(rule.fingerprint, key);
    rules.push(rule);
  }
  return rules;
}

/** JSON with object keys sorted at every level: jsonb returns keys in its own order, so content compares this way. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => byText(a, b));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

export const sameRule = (a: PromotedRule, b: PromotedRule): boolean => canonicalJson(ruleRecord(a)) === canonicalJson(ruleRecord(b));

/** The time of a rule's last change of state: a later promotion or demotion is newer knowledge. */
export const revisionOf = (r: PromotedRule): string => r.demoted_at ?? r.promoted_at;

export interface ImportPlan {
  insert: PromotedRule[];
  update: PromotedRule[];
  unchanged: PromotedRule[];
  /** Rules the database knows something newer about (a later promotion or a demotion): left as they are. */
  skipped: Array<{ rule_id: string; reason: string }>;
}

/**
 * Import, matched by fingerprint (never two rules for one): a new fingerprint is inserted; the same content is
 * unchanged; otherwise the file wins unless the stored rule changed later than the file's (so re-importing an old
 * export never re-activates a rule demoted since). A rule id already used by another fingerprint is a Conflict.
 */
export function planImport(stored: readonly PromotedRule[], incoming: readonly PromotedRule[]): ImportPlan {
  const byFingerprint = new Map(stored.map((r) => [r.fingerprint, r]));
  const byId = new Map(stored.map((r) => [r.rule_id, r]));
  const plan: ImportPlan = { insert: [], update: [], unchanged: [], skipped: [] };
  for (const rule of incoming) {
    const holder = byId.get(rule.rule_id);
    if (holder && holder.fingerprint !== rule.fingerprint) {
      throw new Conflict(`rule id ${rule.rule_id} is already the rule of another fingerprint (${holder.fingerprint}, not ${rule.fingerprint}): nothing was imported`);
    }
    const current = byFingerprint.get(rule.fingerprint);
    if (!current) plan.insert.push(rule);
    else if (sameRule(current, rule)) plan.unchanged.push(rule);
    else if (revisionOf(current) > revisionOf(rule)) {
      plan.skipped.push({ rule_id: rule.rule_id, reason: `the database holds a later ${current.status === 'demoted' ? 'demotion' : 'promotion'} (${revisionOf(current)})` });
    } else plan.update.push(rule);
  }
  return plan;
}

// ——— the rules as instructions for a coding agent ———

const evidenceLine = (r: PromotedRule): string => {
  const runs = r.n === null ? '' : ` (${Math.round(r.success_rate * r.n)}/${r.n} replay runs${r.wilson_lower === null ? '' : `, Wilson 95 % lower bound ${pct(r.wilson_lower)}`})`;
  const e = r.evidence;
  const source = [
    r.source_task && `task ${r.source_task}`,
    e && `campaign ${e.campaign_id}`,
    e?.reviewer && `approved by ${e.reviewer}${e.decided_at ? ` on ${e.decided_at.slice(0, 10)}` : ''}`,
    e?.report_path && `report ${e.report_path}`,
  ].filter(Boolean);
  return `- \`${r.rule_id}\` — ${pct(r.success_rate)} success${runs}; promoted ${r.promoted_at.slice(0, 10)}${source.length ? `; ${source.join(', ')}` : ''}`;
};

/**
 * An AGENTS.md-style file: a section per phase with its prevention prompt (what the agent should do) and one evidence
 * line per rule (why it should believe it). Active rules only: a demoted rule is no longer an instruction.
 */
export function renderRulesMarkdown(rules: readonly PromotedRule[], now: Date): string {
  const active = rules.filter((r) => r.status === 'active');
  const phases = [...new Set(active.flatMap((r) => r.applicable_phases))].sort(byText);
  const lines = [
    '# Promoted rules',
    '',
    `Written by \`road rules export --format markdown\` at ${now.toISOString()}: ${active.length} active rule(s) in ${phases.length} phase(s).`,
    'Each rule is a fix that passed an A/B replay and a reviewer\'s approval. When you work on a phase named below,',
    'follow its recommended approaches.',
  ];
  if (!phases.length) lines.push('', 'No active promoted rules yet.');
  for (const phase of phases) {
    const served = phasePrompt(phase, active);
    lines.push('', `## Phase \`${phase}\``, '', served.prompt, '', 'Evidence:', ...served.rules.map((s) => evidenceLine(active.find((r) => r.rule_id === s.rule_id)!)));
  }
  return lines.join('\n') + '\n';
}

// ——— demotion ———

/**
 * Φ(x), the standard normal CDF, through erfc (Numerical Recipes' Chebyshev fit, relative error < 1.2e-7 everywhere:
 * ample for comparing a p-value with α).
 */
export function normalCdf(x: number): number {
  return 0.5 * erfc(-x / Math.SQRT2);
}

function erfc(x: number): number {
  const t = 1 / (1 + 0.5 * Math.abs(x));
  const poly =
    -1.26551223 +
    t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277))))))));
  const y = t * Math.exp(-x * x + poly);
  return x >= 0 ? y : 2 - y;
}

export interface Proportion {
  events: number;
  failures: number;
}

/**
 * Pooled two-proportion z-test, one-sided (H1: the failure rate after is higher than before):
 * z = (p_after − p_before) / √(p̂(1 − p̂)(1/n_before + 1/n_after)), p = 1 − Φ(z). Null when either side is empty or
 * the pooled rate is 0 or 1 (no variance: nothing to test).
 */
export function twoProportionTest(before: Proportion, after: Proportion): { z: number; pValue: number } | null {
  if (before.events <= 0 || after.events <= 0) return null;
  const pooled = (before.failures + after.failures) / (before.events + after.events);
  const variance = pooled * (1 - pooled) * (1 / before.events + 1 / after.events);
  if (!(variance > 0)) return null;
  const z = (after.failures / after.events - before.failures / before.events) / Math.sqrt(variance);
  return { z, pValue: 1 - normalCdf(z) };
}

export interface DemotionOptions {
  alpha: number;
  minSample: number;
}

export interface DemotionDecision {
  demote: boolean;
  reason: string;
  z: number | null;
  pValue: number | null;
}

const rateText = (p: Proportion) => `${pct(p.failures / p.events)} (${p.failures}/${p.events})`;

/** Demote when the failure rate since promotion is significantly above the rate before it, with enough events on both sides. */
export function decideDemotion(before: Proportion, after: Proportion, options: DemotionOptions): DemotionDecision {
  if (after.events < options.minSample) {
    return { demote: false, reason: `too few events since promotion (${after.events} < ${options.minSample})`, z: null, pValue: null };
  }
  if (before.events < options.minSample) {
    return { demote: false, reason: `too few events before promotion (${before.events} < ${options.minSample})`, z: null, pValue: null };
  }
  const test = twoProportionTest(before, after);
  if (!test) {
    const what = before.failures + after.failures === 0 ? 'no failures' : 'only failures';
    return { demote: false, reason: `${what} before and after promotion: no rise to test`, z: null, pValue: null };
  }
  const change = `failure rate ${rateText(before)} before → ${rateText(after)} since promotion; z = ${test.z.toFixed(2)}, one-sided p = ${test.pValue.toPrecision(2)}`;
  if (test.pValue < options.alpha) return { demote: true, reason: `${change} < α ${options.alpha}`, ...test };
  return { demote: false, reason: `${change} ≥ α ${options.alpha}: no significant rise`, ...test };
}

export interface DemotionWindows {
  before: { from: string; to: string };
  after: { from: string; to: string };
  /** Whole hours in each window (0: no whole hour has passed since promotion). */
  hours: number;
}

/**
 * Whole UTC hours (the rollups' grain). After: the latest `windowHours` whole hours since promotion (so a rule that
 * stops working later is still caught); before: as many hours ending at the hour of promotion. The hour in which the
 * rule was promoted is in neither: its events are a mix of both.
 */
export function demotionWindows(promotedAt: string, now: Date, windowHours: number): DemotionWindows {
  const promoted = Date.parse(promotedAt);
  const promotionHour = Math.floor(promoted / HOUR_MS) * HOUR_MS;
  const afterTo = Math.floor(now.getTime() / HOUR_MS) * HOUR_MS;
  const afterFrom = Math.max(promotionHour + HOUR_MS, afterTo - windowHours * HOUR_MS);
  const hours = Math.max(0, (afterTo - afterFrom) / HOUR_MS);
  const iso = (ms: number) => new Date(ms).toISOString();
  return {
    before: { from: iso(promotionHour - hours * HOUR_MS), to: iso(promotionHour) },
    after: { from: iso(hours ? afterFrom : afterTo), to: iso(afterTo) },
    hours,
  };
}

export function demotionEvidence(
  rule: Pick<PromotedRule, 'applicable_phases'>,
  windows: DemotionWindows,
  before: Proportion,
  after: Proportion,
  decision: DemotionDecision & { z: number; pValue: number },
  options: DemotionOptions,
): DemotionEvidence {
  const side = (w: { from: string; to: string }, p: Proportion): WindowCounts => ({ ...w, ...p, failure_rate: p.events ? p.failures / p.events : null });
  return {
    test: 'two-proportion z-test (pooled, one-sided: failure rate after > before)',
    phases: [...rule.applicable_phases],
    before: side(windows.before, before),
    after: side(windows.after, after),
    z: decision.z,
    p_value: decision.pValue,
    alpha: options.alpha,
    min_sample: options.minSample,
    reason: decision.reason,
  };
}

/** Activity inputs are checked at the door: a bad level or sample size names the field. */
export function demotionSettings(input: { windowHours?: number; alpha?: number; minSample?: number }, defaults: { windowHours: number; alpha: number; minSample: number }) {
  const settings = { windowHours: input.windowHours ?? defaults.windowHours, alpha: input.alpha ?? defaults.alpha, minSample: input.minSample ?? defaults.minSample };
  if (!Number.isInteger(settings.windowHours) || settings.windowHours < 1 || settings.windowHours > 8760) {
    throw new InvalidInput(`windowHours must be an integer from 1 to 8760 (got ${settings.windowHours})`);
  }
  if (!(settings.alpha > 0 && settings.alpha <= 0.5)) throw new InvalidInput(`alpha must be above 0 and at most 0.5 (got ${settings.alpha})`);
  if (!Number.isInteger(settings.minSample) || settings.minSample < 1 || settings.minSample > 1_000_000) {
    throw new InvalidInput(`minSample must be an integer from 1 to 1000000 (got ${settings.minSample})`);
  }
  return settings;
}
