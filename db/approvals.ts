/** Parameterised SQL for approval requests and their audit. Every write is an idempotent upsert. */
import { inTransaction, withClient, type Pool } from './pool.js';
import type { ApprovalRequest, ApprovalState, DecisionAttempt } from '../domain/approval.js';
import { auditableAttempt, rollbackPlanFor } from '../domain/approval.js';

export interface ApprovalRow {
  requestId: string;
  workflowId: string;
  taskId: string;
  title: string;
  candidateRef: string;
  verdict: string | null;
  status: string;
  allowedReviewers: string[];
  author: string;
  requestedAt: Date;
  expiresAt: Date;
  decidedAt: Date | null;
  decidedBy: string | null;
  decisionNote: string | null;
  canMerge: boolean;
  impact: { summary: string; files: string[]; phases: string[] };
  rollbackPlan: string;
}

export interface AuditRow {
  attemptId: string;
  action: string;
  /** What was sent as the action when it was neither approve nor reject. */
  rawAction: string | null;
  reviewer: string;
  note: string;
  outcome: string;
  reason: string | null;
  source: string;
  attemptedAt: Date;
}

/** Stores a new request; a stale PENDING request of the same task (its workflow was terminated) is superseded. */
export async function saveApprovalRequest(pool: Pool, workflowId: string, state: ApprovalState, request: ApprovalRequest): Promise<void> {
  await withClient(pool, (client) => inTransaction(client, async () => {
    await client.query(
      `UPDATE approval_requests SET status = 'SUPERSEDED' WHERE task_id = $1 AND status = 'PENDING' AND request_id <> $2`,
      [state.taskId, state.requestId],
    );
    await client.query(
      `INSERT INTO approval_requests (request_id, workflow_id, task_id, title, candidate_ref, baseline_ref, diff_stat, impact,
         rollback_plan, verdict, evidence, allowed_reviewers, author, requested_at, expires_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
       ON CONFLICT (request_id) DO NOTHING`,
      [
        state.requestId,
        workflowId,
        state.taskId,
        request.title,
        request.candidateRef,
        request.baselineRef ?? null,
        request.diffStat ? JSON.stringify(request.diffStat) : null,
        JSON.stringify(request.impact),
        rollbackPlanFor(request),
        request.verdict ?? null,
        JSON.stringify(request.evidence),
        request.allowedReviewers,
        request.author,
        state.requestedAt,
        state.expiresAt,
      ],
    );
  }));
}

/** Audits one attempt. Whatever the attempt holds is reduced to what the table allows, so auditing cannot fail on it. */
export async function saveDecisionAttempt(
  pool: Pool,
  requestId: string,
  attempt: DecisionAttempt,
  source: 'workflow' | 'cli' | 'api',
  attemptId = `wf-${attempt.seq}`,
): Promise<void> {
  const row = auditableAttempt(attempt);
  await pool.query(
    `INSERT INTO approval_audit (request_id, attempt_id, action, raw_action, reviewer, note, outcome, reason, source, attempted_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
     ON CONFLICT (request_id, attempt_id) DO NOTHING`,
    [requestId, attemptId, row.action, row.rawAction ?? null, row.reviewer, row.note, row.outcome, row.reason ?? null, source, row.at],
  );
}

export async function saveApprovalOutcome(
  pool: Pool,
  outcome: { requestId: string; status: string; decidedAt: string; decidedBy: string | null; decisionNote: string | null; canMerge: boolean },
): Promise<void> {
  await pool.query(
    `UPDATE approval_requests
        SET status = $2, decided_at = $3, decided_by = $4, decision_note = $5, can_merge = $6
      WHERE request_id = $1 AND status IN ('PENDING', 'SUPERSEDED')`,
    [outcome.requestId, outcome.status, outcome.decidedAt, outcome.decidedBy, outcome.decisionNote, outcome.canMerge],
  );
}

const SELECT_APPROVAL = `
  SELECT request_id AS "requestId", workflow_id AS "workflowId", task_id AS "taskId", title, candidate_ref AS "candidateRef",
         verdict, status::text AS status, allowed_reviewers AS "allowedReviewers", author, requested_at AS "requestedAt",
         expires_at AS "expiresAt", decided_at AS "decidedAt", decided_by AS "decidedBy", decision_note AS "decisionNote",
         can_merge AS "canMerge", impact, rollback_plan AS "rollbackPlan"
    FROM approval_requests`;

export async function listApprovals(pool: Pool, filter: { status?: string; limit?: number } = {}): Promise<ApprovalRow[]> {
  const { rows } = await pool.query<ApprovalRow>(
    `${SELECT_APPROVAL} WHERE ($1::approval_status IS NULL OR status = $1::approval_status) ORDER BY requested_at DESC LIMIT $2`,
    [filter.status ?? null, filter.limit ?? 200],
  );
  return rows;
}

/** The newest request of a task, or undefined when the task never asked for approval. */
export async function latestApprovalForTask(pool: Pool, taskId: string): Promise<ApprovalRow | undefined> {
  const { rows } = await pool.query<ApprovalRow>(`${SELECT_APPROVAL} WHERE task_id = $1 ORDER BY requested_at DESC LIMIT 1`, [taskId]);
  return rows[0];
}

export async function auditTrail(pool: Pool, requestId: string): Promise<AuditRow[]> {
  const { rows } = await pool.query<AuditRow>(
    `SELECT attempt_id AS "attemptId", action, raw_action AS "rawAction", reviewer, note, outcome, reason, source, attempted_at AS "attemptedAt"
       FROM approval_audit WHERE request_id = $1 ORDER BY attempted_at, attempt_id`,
    [requestId],
  );
  return rows;
}
