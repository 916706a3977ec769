/** Follow-up tasks in PostgreSQL: the open fingerprints a loop must not duplicate, saving a generation, listing. */
import type { AnalysisReport, IssueType, Severity } from '../domain/analysis.js';
import { generateTasks, OPEN_STATUSES, type FollowupTask, type Generated, type TaskStatus } from '../domain/tasks.js';
import { inTransaction, withClient, type Pool } from './pool.js';

export async function openFingerprints(pool: Pool): Promise<Set<string>> {
  const { rows } = await pool.query<{ fingerprint: string }>('SELECT fingerprint FROM followup_tasks WHERE status = ANY($1::task_status[])', [OPEN_STATUSES]);
  return new Set(rows.map((r) => r.fingerprint));
}

/** Fingerprints whose task was approved (done) since `since`, with why they are not worked again yet. */
export async function recentlyFixed(pool: Pool, since: string): Promise<Map<string, string>> {
  const { rows } = await pool.query<{ fingerprint: string; task_id: string; updated_at: Date }>(
    `SELECT DISTINCT ON (fingerprint) fingerprint, task_id, updated_at FROM followup_tasks
      WHERE status = 'done' AND updated_at >= $1 ORDER BY fingerprint, updated_at DESC`,
    [since],
  );
  return new Map(rows.map((r) => [r.fingerprint, `fixed by ${r.task_id} on ${r.updated_at.toISOString()}, inside this window: waiting for telemetry after the fix (demotion watches its rule)`]));
}

/**
 * Saves one generation of tasks in a transaction. A task whose fingerprint got an open task meanwhile (a concurrent
 * loop) is skipped; an id already used by an earlier loop gets the generation number appended (FAILURE-2.7).
 */
export async function saveTasks(pool: Pool, tasks: FollowupTask[]): Promise<{ saved: FollowupTask[]; generation: number }> {
  return withClient(pool, (client) => inTransaction(client, async () => {
    const generation = Number((await client.query<{ g: string }>("SELECT nextval('followup_task_generation') AS g")).rows[0]!.g);
    const saved: FollowupTask[] = [];
    for (const task of tasks) {
      const taken = (await client.query('SELECT 1 FROM followup_tasks WHERE task_id = $1', [task.id])).rowCount;
      const id = taken ? `${task.id}.${generation}` : task.id;
      const { rowCount } = await client.query(
        `INSERT INTO followup_tasks (task_id, fingerprint, type, rank, severity, status, title, description, phase_ids, evidence,
                                     allowed_files, scope, test_plan, preflight, max_attempts, approval_gate, generation)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)
         ON CONFLICT (fingerprint) WHERE status IN ('open', 'needs_scope', 'in_progress', 'awaiting_approval') DO NOTHING`,
        [id, task.fingerprint, task.type, task.rank, task.severity, task.status, task.title, task.description, task.phase_ids,
         JSON.stringify(task.evidence), task.allowed_files, JSON.stringify(task.scope), JSON.stringify(task.test_plan),
         JSON.stringify(task.preflight), task.max_attempts, task.approval_gate, generation],
      );
      if (rowCount) saved.push({ ...task, id });
    }
    return { saved, generation };
  }));
}

export interface StoredTask extends Omit<FollowupTask, 'status'> {
  status: TaskStatus;
  generation: number;
  created_at: string;
  /** What the task's workflow last said about it (why it failed, who approved it, …). */
  status_note: string | null;
}

const SELECT_TASK = `
  SELECT task_id AS id, fingerprint, type, rank, severity, status, title, description, phase_ids, evidence, allowed_files,
         scope, test_plan, preflight, max_attempts, approval_gate, generation::int AS generation, created_at, status_note
    FROM followup_tasks`;

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- a row of SELECT_TASK
const storedTask = (r: any): StoredTask => ({ ...r, type: r.type as IssueType, severity: r.severity as Severity, created_at: (r.created_at as Date).toISOString() });

export async function listTasks(pool: Pool, filter: { status?: TaskStatus; open?: boolean } = {}): Promise<StoredTask[]> {
  const { rows } = await pool.query(
    `${SELECT_TASK}
     WHERE ($1::task_status IS NULL OR status = $1) AND (NOT $2 OR status = ANY($3::task_status[]))
     ORDER BY generation DESC, rank`,
    [filter.status ?? null, filter.open ?? false, OPEN_STATUSES],
  );
  return rows.map(storedTask);
}

/** ROAD-C end to end: the report's merged ranking → tasks (skipping issues with an open task) → saved. */
export async function createFollowupTasks(
  pool: Pool,
  report: AnalysisReport,
  options: { phaseFiles: Record<string, string[]>; maxAttempts: number; limit?: number },
): Promise<{ saved: FollowupTask[]; skipped: Generated['skipped']; generation: number }> {
  const generated = generateTasks(report, { ...options, openFingerprints: await openFingerprints(pool), recentlyFixed: await recentlyFixed(pool, report.window.from) });
  const { saved, generation } = await saveTasks(pool, generated.tasks);
  const raced = generated.tasks.filter((t) => !saved.some((s) => s.fingerprint === t.fingerprint));
  return { saved, generation, skipped: [...generated.skipped, ...raced.map((t) => ({ rank: t.rank, type: t.type, fingerprint: t.fingerprint, why: 'another loop opened a task for this issue at the same moment' }))] };
}

/** One stored task, or undefined. */
export async function getTask(pool: Pool, taskId: string): Promise<StoredTask | undefined> {
  const { rows } = await pool.query(
    `${SELECT_TASK} WHERE task_id = $1`,
    [taskId],
  );
  return rows[0] && storedTask(rows[0]);
}

/**
 * Moves a task to a status (idempotent: setting the status it has changes nothing). A closed task is not reopened
 * by a late retry of an earlier step: done, rejected and abandoned are final.
 */
export async function updateTaskStatus(pool: Pool, taskId: string, status: TaskStatus, note: string | null = null): Promise<boolean> {
  const { rowCount } = await pool.query(
    `UPDATE followup_tasks SET status = $2, status_note = $4, updated_at = now()
      WHERE task_id = $1 AND (status = $2 OR status = ANY($3::task_status[]))`,
    [taskId, status, OPEN_STATUSES, note],
  );
  return Boolean(rowCount);
}
