/**
 * The end of a replay campaign: its stored runs compared (domain/comparison.ts), the report stored in PostgreSQL and
 * written as files a reviewer opens. Deterministic (the bootstrap is seeded by the campaign id), so a retry writes
 * the same report.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { IssueType } from '../domain/analysis.js';
import { compareCampaign as compare, renderReplayMarkdown, type DecisionMode } from '../domain/comparison.js';
import type { VerdictSummary } from '../domain/followup.js';
import { listReplayRuns, saveCampaignReport } from '../db/replay.js';
import type { Pool } from '../db/pool.js';
import { classifyActivityFailures } from './errors.js';
import { invalidInput } from './repository.js';

export interface CompareCampaignInput {
  campaignId: string;
  taskType: IssueType;
  failureStopReason: string | null;
  decisionMode: DecisionMode;
}

export interface CompareCampaignResult {
  verdicts: VerdictSummary;
  reportPaths: { markdown: string; json: string };
}

/** Where campaign reports are written: `<ROAD_HOME or .road>/reports/`. */
export const defaultReportsDir = (): string => path.resolve(process.env.ROAD_HOME ?? '.road', 'reports');

export function createCampaignActivities({ pool, now, reportsDir }: { pool: Pool; now: () => Date; reportsDir: string }) {
  return classifyActivityFailures({
    async compareCampaign(input: CompareCampaignInput): Promise<CompareCampaignResult> {
      const runs = await listReplayRuns(pool, input.campaignId);
      if (!runs.length) throw invalidInput(`campaign ${input.campaignId} has no stored runs to compare`);
      const report = compare({ runs, taskType: input.taskType, failureStopReason: input.failureStopReason, decisionMode: input.decisionMode, seed: input.campaignId });
      const markdown = renderReplayMarkdown(report);
      // File names from the campaign id: task ids and shas are [A-Za-z0-9._:-@], ':' is replaced for other file systems.
      const base = path.join(reportsDir, `replay-${input.campaignId.replace(/[^A-Za-z0-9._@-]/g, '_')}`);
      await mkdir(reportsDir, { recursive: true });
      await Promise.all([writeFile(`${base}.md`, markdown), writeFile(`${base}.json`, JSON.stringify(report, null, 2) + '\n')]);
      await saveCampaignReport(pool, { campaignId: input.campaignId, report: report as unknown as Record<string, unknown>, markdown }, now());
      return {
        verdicts: {
          gating: report.gating.verdict,
          decisionMode: report.gating.mode,
          seed: report.seed.verdict,
          statistical: report.statistical.verdict,
          treatmentSuccessRate: report.arms.treatment.successRate,
          treatmentRuns: report.arms.treatment.n,
          ...(report.why ? { why: report.why } : {}),
        },
        reportPaths: { markdown: `${base}.md`, json: `${base}.json` },
      };
    },
  });
}
