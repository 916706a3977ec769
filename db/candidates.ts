/** Candidate attempts in PostgreSQL: one row per (task, attempt), written again by a retry of the same attempt. */
import type { Pool } from './pool.js';

export type CandidateStatus = 'ready' | 'out_of_scope' | 'no_commit' | 'not_on_baseline' | 'executor_failed' | 'executor_timed_out';

export interface CandidateAttempt {
  taskId: string;
  attempt: number;
  source: 'executor' | 'manual';
  status: CandidateStatus;
  baselineRef: string;
  baselineSha: string;
  treatmentSha: string | null;
  /** Set only when the candidate passed every check and was recorded there. */
  branch: string | null;
  author: string | null;
  changedFiles: string[];
  offendingFiles: string[];
  diffStat: { files: number; insertions: number; deletions: number } | null;
  notes: string[];
  error: string | null;
  recordedAt: string;
}

/** Upsert keyed by (task, attempt): the attempt's last word is what is stored. */
export async function saveCandidateAttempt(pool: Pool, row: CandidateAttempt): Promise<void> {
  await pool.query(
    `INSERT INTO candidates (task_id, attempt, source, status, baseline_ref, baseline_sha, treatment_sha, branch, author,
                             changed_files, offending_files, diff_stat, notes, error, recorded_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
     ON CONFLICT (task_id, attempt) DO UPDATE SET
       source = EXCLUDED.source, status = EXCLUDED.status, baseline_ref = EXCLUDED.baseline_ref,
       baseline_sha = EXCLUDED.baseline_sha, treatment_sha = EXCLUDED.treatment_sha, branch = EXCLUDED.branch,
       author = EXCLUDED.author, changed_files = EXCLUDED.changed_files, offending_files = EXCLUDED.offending_files,
       diff_stat = EXCLUDED.diff_stat, notes = EXCLUDED.notes, error = EXCLUDED.error, recorded_at = EXCLUDED.recorded_at`,
    [row.taskId, row.attempt, row.source, row.status, row.baselineRef, row.baselineSha, row.treatmentSha, row.branch,
     row.author, row.changedFiles, row.offendingFiles, row.diffStat && JSON.stringify(row.diffStat), row.notes,
     row.error?.slice(0, 4000) ?? null, row.recordedAt],
  );
}

export async function listCandidateAttempts(pool: Pool, taskId: string): Promise<CandidateAttempt[]> {
  const { rows } = await pool.query(
    `SELECT task_id, attempt, source, status, baseline_ref, baseline_sha, treatment_sha, branch, author, changed_files,
            offending_files, diff_stat, notes, error, recorded_at
       FROM candidates WHERE task_id = $1 ORDER BY attempt`,
    [taskId],
  );
  return rows.map((r) => ({
    taskId: r.task_id,
    attempt: r.attempt,
    source: r.source,
    status: r.status,
    baselineRef: r.baseline_ref,
    baselineSha: r.baseline_sha,
    treatmentSha: r.treatment_sha,
    branch: r.branch,
    author: r.author,
    changedFiles: r.changed_files,
    offendingFiles: r.offending_files,
    diffStat: r.diff_stat,
    notes: r.notes,
    error: r.error,
    recordedAt: (r.recorded_at as Date).toISOString(),
  }));
}
