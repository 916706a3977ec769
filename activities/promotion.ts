/**
 * ROAD-F's side effects for the improvement loop: `promoteRule` turns a task that can merge into a promoted rule (one
 * per fingerprint, idempotent), `checkDemotions` tests every active rule against the telemetry and demotes the rules
 * whose phases fail significantly more often since their promotion. The rules themselves are in domain/promotion.ts.
 */
import { configSchema } from '../domain/config.js';
import {
  decideDemotion,
  demotionEvidence,
  demotionSettings,
  demotionWindows,
  judgePromotion,
  mitigationFrom,
  checkPromotable,
  type DemotionEvidence,
  type PromotableSource,
  type PromoteRuleInput,
  type PromoteRuleResult,
  type PromotedRule,
} from '../domain/promotion.js';
import { loadCampaign } from '../db/replay.js';
import { foldPendingEvents } from '../db/rollups.js';
import { demoteRule, failureCounts, listRules, upsertPromotedRule } from '../db/rules.js';
import type { ActivityDeps } from './index.js';
import { classifyActivityFailures } from './errors.js';
import { git } from './git.js';
import { targetRepository } from './repository.js';

export type { PromoteRuleInput, PromoteRuleResult, PromotionSource } from '../domain/promotion.js';

export interface CheckDemotionsInput {
  /** The latest hours since promotion that are compared (default: promotion.demotion.windowHours, 168). */
  windowHours?: number;
  /** Level of the one-sided test (default: promotion.demotion.alpha, 0.05). */
  alpha?: number;
  /** Events each window needs (default: promotion.demotion.minSample, 30). */
  minSample?: number;
}

interface Counts {
  events: number;
  failures: number;
}

export interface DemotionCheck {
  checked: number;
  demoted: Array<{ ruleId: string; phases: string[]; reason: string; evidence: DemotionEvidence }>;
  kept: Array<{ ruleId: string; phases: string[]; reason: string; before: Counts; after: Counts; z: number | null; pValue: number | null }>;
  settings: { windowHours: number; alpha: number; minSample: number };
}

const pct = (fraction: number) => `${(fraction * 100).toFixed(1)} %`;

export function createPromotionActivities({ pool, config = configSchema.parse({}), now = () => new Date() }: Pick<ActivityDeps, 'pool' | 'config' | 'now'>) {
  /** The candidate commit's message, or why it could not be read (the task's title stands in then). */
  async function commitMessage(repositoryPath: string | undefined, treatmentSha: string): Promise<{ message?: string; problem?: string }> {
    try {
      const repository = repositoryPath ?? (await targetRepository(config));
      return { message: await git(repository, ['show', '-s', '--format=%s%n%b', treatmentSha]) };
    } catch (error) {
      return { problem: (error as Error).message };
    }
  }

  /** The treatment arm as the stored replay report counts it; the verdict summary when the report is not stored. */
  async function treatmentArm(source: PromotableSource): Promise<{ n: number; successes: number }> {
    const campaign = await loadCampaign(pool, { campaignId: source.campaignId });
    const arm = (campaign?.report as { arms?: { treatment?: { n?: unknown; successes?: unknown } } } | null | undefined)?.arms?.treatment;
    if (arm && Number.isInteger(arm.n) && Number.isInteger(arm.successes)) return { n: arm.n as number, successes: arm.successes as number };
    const n = source.verdicts.treatmentRuns;
    return { n, successes: Math.round(source.verdicts.treatmentSuccessRate * n) };
  }

  return classifyActivityFailures({
    /**
     * DESIGN.md §Promotion for one finished task. Idempotent: the rule is keyed by the task's fingerprint and dated by
     * the approval's decision time, so a retry (or a restarted loop) returns the stored rule and changes nothing.
     */
    async promoteRule(input: PromoteRuleInput): Promise<PromoteRuleResult> {
      const checked = checkPromotable(input);
      if (!checked.ok) return { promoted: false, reason: checked.reason };
      const { source } = checked;
      const [treatment, commit] = await Promise.all([treatmentArm(source), commitMessage(input.repositoryPath, source.candidate.treatmentSha)]);
      const judged = judgePromotion(
        input,
        { treatment, mitigation: mitigationFrom(commit.message, input.task.title), promotedAt: source.approval.decidedAt ?? now().toISOString() },
        config.promotion.minSuccessRate,
      );
      if (!judged.promoted) return { promoted: false, reason: judged.reason };
      const { rule, outcome } = await upsertPromotedRule(pool, judged.rule, now());
      const fallback = commit.problem ? ` (mitigation from the task title: the commit could not be read — ${commit.problem})` : '';
      const numbers = `${pct(rule.success_rate)} success in ${rule.n} treatment runs, Wilson lower bound ${pct(rule.wilson_lower ?? 0)}`;
      switch (outcome) {
        case 'inserted':
          return { promoted: true, rule, reason: `promoted ${rule.rule_id} for ${rule.applicable_phases.join(', ')}: ${numbers}${fallback}` };
        case 'replaced':
          return { promoted: true, rule, reason: `promoted ${rule.rule_id} again (replacing an earlier promotion of the same fingerprint): ${numbers}${fallback}` };
        case 'unchanged':
          return { promoted: true, rule, reason: `${rule.rule_id} was already promoted from campaign ${source.campaignId}` };
        case 'stale':
          return { promoted: false, rule, reason: `${rule.rule_id} holds a later promotion (campaign ${rule.evidence?.campaign_id ?? 'unknown'}, ${rule.promoted_at})` };
      }
    },

    /**
     * Every active rule: its phases' failure rate in the latest window since promotion against as many hours before it
     * (domain/promotion.ts demotionWindows, decideDemotion); a significant rise demotes the rule with the evidence.
     */
    async checkDemotions(input: CheckDemotionsInput = {}): Promise<DemotionCheck> {
      const settings = demotionSettings(input, config.promotion.demotion);
      const at = now();
      await foldPendingEvents(pool);
      const rules = await listRules(pool);
      const windows = new Map(rules.map((rule) => [rule.rule_id, demotionWindows(rule.promoted_at, at, settings.windowHours)]));
      const measured = rules.filter((rule) => windows.get(rule.rule_id)!.hours > 0);
      const counts = await failureCounts(
        pool,
        measured.flatMap((rule) => {
          const w = windows.get(rule.rule_id)!;
          return [
            { key: `${rule.rule_id}\nbefore`, phases: rule.applicable_phases, ...w.before },
            { key: `${rule.rule_id}\nafter`, phases: rule.applicable_phases, ...w.after },
          ];
        }),
      );
      const result: DemotionCheck = { checked: rules.length, demoted: [], kept: [], settings };
      const none = { events: 0, failures: 0 };
      for (const rule of rules) {
        const w = windows.get(rule.rule_id)!;
        const before = counts.get(`${rule.rule_id}\nbefore`) ?? none;
        const after = counts.get(`${rule.rule_id}\nafter`) ?? none;
        const keep = (reason: string, z: number | null = null, p: number | null = null) =>
          result.kept.push({ ruleId: rule.rule_id, phases: rule.applicable_phases, reason, before, after, z, pValue: p });
        if (!w.hours) {
          keep('promoted less than a whole hour ago: nothing to compare yet');
          continue;
        }
        const decision = decideDemotion(before, after, settings);
        if (!decision.demote || decision.z === null || decision.pValue === null) {
          keep(decision.reason, decision.z, decision.pValue);
          continue;
        }
        const evidence = demotionEvidence(rule, w, before, after, { ...decision, z: decision.z, pValue: decision.pValue }, settings);
        if (await demoteRule(pool, rule, evidence, at)) result.demoted.push({ ruleId: rule.rule_id, phases: rule.applicable_phases, reason: decision.reason, evidence });
        else keep('promoted again or demoted while it was checked: left as it is now');
      }
      return result;
    },
  });
}

export type PromotionActivities = ReturnType<typeof createPromotionActivities>;
/** A promoted rule as the activities return it (re-exported for the loop's report). */
export type { PromotedRule };
