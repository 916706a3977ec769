/**
 * Every side effect of ROAD's workflows. Built by one factory so that the worker, and tests, inject the pool
 * (and later the config, clock and command runner). Each activity is idempotent: a retry writes nothing twice.
 * Every activity's failures are classified (activities/errors.ts): only faults that heal are retried.
 */
import type { ApprovalRequest, ApprovalState, DecisionAttempt } from '../domain/approval.js';
import { saveApprovalOutcome, saveApprovalRequest, saveDecisionAttempt } from '../db/approvals.js';
import type { Pool } from '../db/pool.js';
import { analyze, type AnalyzeOptions } from '../db/analysis.js';
import { createFollowupTasks } from '../db/tasks.js';
import type { AnalysisReport } from '../domain/analysis.js';
import { configSchema, type RoadConfig } from '../domain/config.js';
import { createCampaignActivities, defaultReportsDir } from './campaign.js';
import { createCandidateActivities } from './candidate.js';
import { classifyActivityFailures } from './errors.js';
import { createReplayActivities } from './replay.js';
import { createLoopActivities } from './loop.js';
import { createNotifyActivities } from './notify.js';
import { createPromotionActivities } from './promotion.js';
import { createTaskActivities } from './tasks.js';

export interface ActivityDeps {
  pool: Pool;
  /** road.config.json (phases → files, tasks.maxAttempts); defaults when absent. */
  config?: RoadConfig;
  /** The clock of "now" for default windows. */
  now?: () => Date;
  /** Where replay reports are written (default: <ROAD_HOME or .road>/reports). */
  reportsDir?: string;
}

/** One decision attempt for the audit; named because it lives in workflow histories. */
export interface RecordDecisionAttemptInput {
  requestId: string;
  attempt: DecisionAttempt;
}

export function createActivities({ pool, config = configSchema.parse({}), now = () => new Date(), reportsDir = defaultReportsDir() }: ActivityDeps) {
  return classifyActivityFailures({
    ...createTaskActivities({ pool, config }),
    ...createCampaignActivities({ pool, now, reportsDir }),
    ...createLoopActivities({ config, reportsDir }),
    ...createPromotionActivities({ pool, config, now }),
    ...createCandidateActivities({ pool, config, now }),
    ...createReplayActivities({ pool, config, now }),
    ...createNotifyActivities({ pool, config, now }),
    /** ROAD-B for the loop: the same versioned JSON report as `road analyze --json`. Read-only, so safe to retry. */
    async analyzeTelemetry(input: AnalyzeOptions): Promise<AnalysisReport> {
      return analyze(pool, input, now());
    },

    /** ROAD-C for the loop. Idempotent: a retry finds the tasks it saved open and skips their fingerprints. */
    async generateTasks(input: { report: AnalysisReport; limit?: number }) {
      return createFollowupTasks(pool, input.report, { phaseFiles: config.phases, maxAttempts: config.tasks.maxAttempts, limit: input.limit });
    },

    async persistApprovalRequest(input: { workflowId: string; state: ApprovalState; request: ApprovalRequest }): Promise<void> {
      await saveApprovalRequest(pool, input.workflowId, input.state, input.request);
    },

    /** Histories from before decisions were validated may hold any attempt: saveDecisionAttempt stores it safely. */
    async recordDecisionAttempt(input: RecordDecisionAttemptInput): Promise<void> {
      await saveDecisionAttempt(pool, input.requestId, input.attempt, 'workflow');
    },

    async finalizeApproval(input: {
      requestId: string;
      status: ApprovalState['status'];
      decidedAt: string;
      decidedBy: string | null;
      decisionNote: string | null;
      canMerge: boolean;
    }): Promise<void> {
      await saveApprovalOutcome(pool, input);
    },
  });
}

export type RoadActivities = ReturnType<typeof createActivities>;
