/**
 * Every side effect of ROAD's workflows. Built by one factory so that the worker, and tests, inject the pool
 * (and later the config, clock and command runner). Each activity is idempotent: a retry writes nothing twice.
 */
import type { ApprovalRequest, ApprovalState, DecisionAttempt } from '../domain/approval.js';
import { saveApprovalOutcome, saveApprovalRequest, saveDecisionAttempt } from '../db/approvals.js';
import type { Pool } from '../db/pool.js';

export interface ActivityDeps {
  pool: Pool;
}

export function createActivities({ pool }: ActivityDeps) {
  return {
    async persistApprovalRequest(input: { workflowId: string; state: ApprovalState; request: ApprovalRequest }): Promise<void> {
      await saveApprovalRequest(pool, input.workflowId, input.state, input.request);
    },

    async recordDecisionAttempt(input: { requestId: string; taskId: string; attempt: DecisionAttempt }): Promise<void> {
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
  };
}

export type RoadActivities = ReturnType<typeof createActivities>;
