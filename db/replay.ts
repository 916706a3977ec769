/**
 * Replay campaigns and their runs in PostgreSQL. A run is written once, as it finishes (INSERT … ON CONFLICT DO
 * NOTHING), and whoever asks again gets the stored row: a retried activity or a restarted campaign never counts a
 * run twice, and never runs it twice either (the activity reads first).
 */
import type { ReplayOutcome, ReplayRunResult, ReplayVariant } from '../domain/replay.js';
import type { Pool } from './pool.js';

const RUN_COLUMNS = `campaign_id, run_index, case_id, phase_id, variant, ref, repeat, outcome, tokens, duration_ms, stop_reason,
  retries, exit_code, started_at, finished_at`;

interface RunRow {
  campaign_id: string;
  run_index: number;
  case_id: string;
  phase_id: string | null;
  variant: string;
  ref: string;
  repeat: number;
  outcome: string;
  tokens: string | null;
  duration_ms: string;
  stop_reason: string | null;
  retries: string | null;
  exit_code: number | null;
  started_at: Date;
  finished_at: Date;
}

const toRun = (row: RunRow): ReplayRunResult => ({
  campaignId: row.campaign_id,
  caseId: row.case_id,
  phaseId: row.phase_id,
  variant: row.variant as ReplayVariant,
  ref: row.ref,
  repeat: row.repeat,
  runIndex: row.run_index,
  outcome: row.outcome as ReplayOutcome,
  tokens: row.tokens === null ? null : Number(row.tokens),
  durationMs: Number(row.duration_ms),
  stopReason: row.stop_reason,
  retries: row.retries === null ? null : Number(row.retries),
  exitCode: row.exit_code,
  startedAt: row.started_at.toISOString(),
  finishedAt: row.finished_at.toISOString(),
});

export async function loadReplayRun(pool: Pool, campaignId: string, runIndex: number): Promise<ReplayRunResult | undefined> {
  const { rows } = await pool.query<RunRow>(`SELECT ${RUN_COLUMNS} FROM replay_runs WHERE campaign_id = $1 AND run_index = $2`, [campaignId, runIndex]);
  return rows[0] && toRun(rows[0]);
}

/** Stores a finished run unless one is stored under its (campaign, run index) already; returns the stored run. */
export async function saveReplayRun(pool: Pool, run: ReplayRunResult, worker: string): Promise<ReplayRunResult> {
  const { rows } = await pool.query<RunRow>(
    `INSERT INTO replay_runs (${RUN_COLUMNS}, worker)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
     ON CONFLICT (campaign_id, run_index) DO NOTHING
     RETURNING ${RUN_COLUMNS}`,
    [run.campaignId, run.runIndex, run.caseId, run.phaseId, run.variant, run.ref, run.repeat, run.outcome, run.tokens,
     run.durationMs, run.stopReason, run.retries, run.exitCode, run.startedAt, run.finishedAt, worker],
  );
  if (rows[0]) return toRun(rows[0]);
  const stored = await loadReplayRun(pool, run.campaignId, run.runIndex);
  if (!stored) throw new Error(`replay run ${run.campaignId}#${run.runIndex} was neither inserted nor found`);
  return stored;
}

/** Every stored run of a campaign in run order (what a restarted campaign skips, what the comparison reads). */
export async function listReplayRuns(pool: Pool, campaignId: string): Promise<ReplayRunResult[]> {
  const { rows } = await pool.query<RunRow>(`SELECT ${RUN_COLUMNS} FROM replay_runs WHERE campaign_id = $1 ORDER BY run_index`, [campaignId]);
  return rows.map(toRun);
}

export type CampaignStatus = 'running' | 'completed' | 'failed' | 'cancelled';
export type Verdict = 'PROMOTE' | 'REJECT' | 'INCONCLUSIVE';

export interface CampaignStart {
  campaignId: string;
  taskId: string;
  /** The campaign's workflow (road-replay-<task-id>), for a person going from the table to the Temporal UI. */
  workflowId?: string | null;
  baselineRef?: string | null;
  baselineSha: string;
  treatmentSha: string;
  /** What the campaign was asked to do (cases, repeats, concurrency, decision mode…). */
  settings: Record<string, unknown>;
  /** cases × repeats × 2, when known. */
  runsPlanned?: number | null;
}

export interface CampaignRecord extends Required<CampaignStart> {
  status: CampaignStatus;
  verdict: Verdict | null;
  report: Record<string, unknown> | null;
  reportMarkdown: string | null;
  error: string | null;
  createdAt: string;
  finishedAt: string | null;
  /** Runs stored so far. */
  runsStored: number;
}

const CAMPAIGN_COLUMNS = `c.campaign_id, c.task_id, c.workflow_id, c.baseline_ref, c.baseline_sha, c.treatment_sha, c.settings, c.runs_planned, c.status,
  c.verdict, c.report, c.report_markdown, c.error, c.created_at, c.finished_at,
  (SELECT count(*)::int FROM replay_runs r WHERE r.campaign_id = c.campaign_id) AS runs_stored`;

interface CampaignRow {
  campaign_id: string;
  task_id: string;
  workflow_id: string | null;
  baseline_ref: string | null;
  baseline_sha: string;
  treatment_sha: string;
  settings: Record<string, unknown>;
  runs_planned: number | null;
  status: CampaignStatus;
  verdict: Verdict | null;
  report: Record<string, unknown> | null;
  report_markdown: string | null;
  error: string | null;
  created_at: Date;
  finished_at: Date | null;
  runs_stored: number;
}

const toCampaign = (row: CampaignRow): CampaignRecord => ({
  campaignId: row.campaign_id,
  taskId: row.task_id,
  workflowId: row.workflow_id,
  baselineRef: row.baseline_ref,
  baselineSha: row.baseline_sha,
  treatmentSha: row.treatment_sha,
  settings: row.settings,
  runsPlanned: row.runs_planned,
  status: row.status,
  verdict: row.verdict,
  report: row.report,
  reportMarkdown: row.report_markdown,
  error: row.error,
  createdAt: row.created_at.toISOString(),
  finishedAt: row.finished_at?.toISOString() ?? null,
  runsStored: row.runs_stored,
});

/** Thrown when a campaign id is reused for other refs: the id is derived from them, so that is a bug upstream. */
export class CampaignConflictError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CampaignConflictError';
  }
}

/**
 * Records a campaign's start, or finds it recorded (a restarted campaign keeps its first record and its runs). The
 * same id with other refs or another task is refused.
 */
export async function upsertCampaign(pool: Pool, start: CampaignStart, now: Date): Promise<CampaignRecord> {
  await pool.query(
    `INSERT INTO replay_campaigns (campaign_id, task_id, workflow_id, baseline_ref, baseline_sha, treatment_sha, settings, runs_planned, created_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
     ON CONFLICT (campaign_id) DO NOTHING`,
    [start.campaignId, start.taskId, start.workflowId ?? null, start.baselineRef ?? null, start.baselineSha, start.treatmentSha,
     JSON.stringify(start.settings), start.runsPlanned ?? null, now],
  );
  const stored = await loadCampaign(pool, { campaignId: start.campaignId });
  if (!stored) throw new Error(`replay campaign ${start.campaignId} was neither inserted nor found`);
  const differs = (['taskId', 'baselineSha', 'treatmentSha'] as const).filter((key) => stored[key] !== start[key]);
  if (differs.length) {
    throw new CampaignConflictError(
      `replay campaign ${start.campaignId} is recorded with another ${differs.join(', ')} (${differs.map((k) => stored[k]).join(', ')})`,
    );
  }
  return stored;
}

/** One campaign by id, or the latest campaign of a task. */
export async function loadCampaign(pool: Pool, key: { campaignId: string } | { taskId: string }): Promise<CampaignRecord | undefined> {
  const { rows } =
    'campaignId' in key
      ? await pool.query<CampaignRow>(`SELECT ${CAMPAIGN_COLUMNS} FROM replay_campaigns c WHERE c.campaign_id = $1`, [key.campaignId])
      : await pool.query<CampaignRow>(
          `SELECT ${CAMPAIGN_COLUMNS} FROM replay_campaigns c WHERE c.task_id = $1 ORDER BY c.created_at DESC, c.campaign_id DESC LIMIT 1`,
          [key.taskId],
        );
  return rows[0] && toCampaign(rows[0]);
}

export interface CampaignReport {
  campaignId: string;
  /** The versioned JSON report (its `gating.verdict`, when present, is stored beside it for listings). */
  report: Record<string, unknown>;
  markdown: string;
}

/**
 * Stores the report and marks the campaign completed. Idempotent: a retry writes the same values again; a campaign
 * that already has a report keeps the first one (a comparison is deterministic, so a second would be the same).
 */
export async function saveCampaignReport(pool: Pool, input: CampaignReport, now: Date): Promise<CampaignRecord> {
  const gating = input.report.gating as { verdict?: unknown } | undefined;
  const verdict = typeof gating?.verdict === 'string' ? gating.verdict : null;
  await pool.query(
    `UPDATE replay_campaigns
        SET status = 'completed', report = $2, report_markdown = $3, verdict = $4, error = NULL, finished_at = greatest($5, created_at)
      WHERE campaign_id = $1 AND report IS NULL`,
    [input.campaignId, JSON.stringify(input.report), input.markdown, verdict, now],
  );
  const stored = await loadCampaign(pool, { campaignId: input.campaignId });
  if (!stored) throw new Error(`replay campaign ${input.campaignId} is not recorded: record its start first`);
  return stored;
}

/** Marks a campaign that ends without a report (failed, cancelled); a completed campaign stays completed. */
export async function finishCampaign(
  pool: Pool,
  input: { campaignId: string; status: 'failed' | 'cancelled'; error?: string },
  now: Date,
): Promise<CampaignRecord> {
  await pool.query(
    `UPDATE replay_campaigns SET status = $2, error = $3, finished_at = greatest($4, created_at)
      WHERE campaign_id = $1 AND status <> 'completed'`,
    [input.campaignId, input.status, input.error?.slice(0, 4000) ?? null, now],
  );
  const stored = await loadCampaign(pool, { campaignId: input.campaignId });
  if (!stored) throw new Error(`replay campaign ${input.campaignId} is not recorded: record its start first`);
  return stored;
}
