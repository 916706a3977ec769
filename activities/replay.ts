/**
 * Replay runs (DESIGN.md §Replay): one activity per run, on the replay task queue, running replay.command (argv) in
 * a worktree of its ref. A run that finishes is a result whatever its outcome — FAILED and TIMEOUT are evidence, not
 * errors — and is stored in PostgreSQL before the activity returns, so a worker that dies loses nothing and a
 * restarted campaign reruns nothing: a run already stored under (campaign, run index) is returned without running.
 * Only infrastructure errors (a worktree that cannot be made, the database) fail the activity, and its retry
 * policy decides; configuration errors are non-retryable.
 */
import { ApplicationFailure } from '@temporalio/common';
import { log } from '@temporalio/activity';
import os from 'node:os';
import { performance } from 'node:perf_hooks';
import { CampaignConflictError, finishCampaign, listReplayRuns, loadReplayRun, saveCampaignReport, saveReplayRun, upsertCampaign } from '../db/replay.js';
import { configSchema, type ReplayConfig } from '../domain/config.js';
import { parseDuration } from '../domain/duration.js';
import { TASK_ID_PATTERN } from '../domain/followup.js';
import { parseRoadLine, STOP_REASON_MAX_BYTES, type ReplayRunResult, type ReplayVariant } from '../domain/replay.js';
import { classifyActivityFailures } from './errors.js';
import { cleanEnvironment, resolveCommit } from './git.js';
import type { ActivityDeps } from './index.js';
import { runProcessTree, SpawnError } from './process.js';
import { activityContext, cancellation, heartbeatEverySecond, invalidConfiguration, invalidInput, targetRepository } from './repository.js';
import { WorktreePool } from './worktreePool.js';

export interface ReplayRunInput {
  campaignId: string;
  taskId: string;
  caseId: string;
  phaseId: string | null;
  variant: ReplayVariant;
  /** The commit to replay (a sha; a branch or tag is resolved when the run starts). */
  ref: string;
  /** 0..repeats-1 within (case, variant). */
  repeat: number;
  /** The run's place in the campaign's interleaved order: with campaignId, its identity. */
  runIndex: number;
}

export interface StartCampaignInput {
  campaignId: string;
  taskId: string;
  workflowId?: string;
  baselineRef?: string;
  baselineSha: string;
  treatmentSha: string;
  /** What the campaign was asked to do (cases, repeats, concurrency, decision mode…), stored with it. */
  settings: Record<string, unknown>;
}

export interface SaveCampaignReportInput {
  campaignId: string;
  /** The versioned JSON report (domain/comparison.ts); `gating.verdict` is stored beside it. */
  report: Record<string, unknown>;
  markdown: string;
}

export interface FinishCampaignInput {
  campaignId: string;
  status: 'failed' | 'cancelled';
  error?: string;
}

/** A campaign as the activities report it: small, because it lands in workflow history. */
export interface CampaignSummary {
  campaignId: string;
  status: string;
  verdict: string | null;
  runsStored: number;
  runsPlanned: number | null;
}

/** Who ran a run, stored with it: replay workers scale out on several machines. */
const WORKER_ID = `${os.hostname()}:${process.pid}`;
const SHA = /^(?:[0-9a-f]{40}|[0-9a-f]{64})$/;

/** Worktree pools of this process, one per repository, shared by every factory (one worker, one set of worktrees). */
const pools = new Map<string, WorktreePool>();
let exitHookInstalled = false;

/** Removes this process's replay worktrees; call it when the worker has shut down. Leases after it fail. */
export async function disposeReplayWorktrees(): Promise<void> {
  const all = [...pools.values()];
  pools.clear();
  await Promise.all(all.map((pool) => pool.dispose()));
}

function poolFor(repo: string): WorktreePool {
  let pool = pools.get(repo);
  if (!pool) {
    pool = new WorktreePool(repo, (message, error) => log.warn(message, { error: error.message }));
    pools.set(repo, pool);
  }
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    // A worker that exits without disposeReplayWorktrees() (a crash, a test runner) still leaves no directories.
    process.once('exit', () => pools.forEach((p) => p.disposeSync()));
  }
  return pool;
}

export function createReplayActivities({ pool, config = configSchema.parse({}), now = () => new Date() }: ActivityDeps) {
  // The repository is checked once per factory (a git call per run would be per-run overhead); a failure is not
  // remembered, so a repository that appears later is found.
  let repository: Promise<string> | undefined;
  const repositoryOnce = () => {
    repository ??= targetRepository(config).catch((error: unknown) => {
      repository = undefined;
      throw error;
    });
    return repository;
  };
  /** Full shas are immutable: resolved once. Branch and tag names are resolved at every run (they move). */
  const knownCommits = new Set<string>();
  const commitOf = async (repo: string, ref: string): Promise<string> => {
    if (knownCommits.has(ref)) return ref;
    const sha = await resolveCommit(repo, ref);
    if (!sha) throw invalidInput(`ref ${ref} names no commit in ${repo} (is this replay worker's clone of the repository up to date?)`);
    if (sha === ref) knownCommits.add(sha);
    return sha;
  };

  return classifyActivityFailures({
    /**
     * One replay run, stored as it finishes; a run stored already is returned without running. Outcome: the
     * command's last stdout line `{"road":{…}}` when it prints one, else its exit status (0 → SUCCESS, else FAILED);
     * TIMEOUT after replay.timeout, with the process tree killed. Heartbeats every second; a cancelled activity
     * kills the tree and stores nothing.
     */
    async runReplay(input: ReplayRunInput): Promise<ReplayRunResult> {
      checkRunInput(input);
      const stored = await loadReplayRun(pool, input.campaignId, input.runIndex);
      if (stored) return sameRun(stored, input);

      const replay = replayConfig(config.replay);
      const context = activityContext();
      const repo = await repositoryOnce();
      const sha = await commitOf(repo, input.ref);
      const worktrees = poolFor(repo);
      const started = performance.now();
      const stopHeartbeats = heartbeatEverySecond(context, () => ({ runIndex: input.runIndex, elapsedMs: Math.round(performance.now() - started) }));
      let worktree: string;
      try {
        worktree = await worktrees.lease(sha); // the first lease of a commit checks it out, which can take a while
      } catch (error) {
        stopHeartbeats();
        throw error;
      }
      const startedAt = now();
      let run;
      try {
        run = await runProcessTree(replay.command, {
          cwd: worktree,
          env: cleanEnvironment({
            ROAD_VARIANT: input.variant,
            ROAD_REF: sha,
            ROAD_CASE_ID: input.caseId,
            ROAD_PHASE_ID: input.phaseId ?? '',
            ROAD_RUN_INDEX: String(input.runIndex),
            ROAD_REPEAT: String(input.repeat),
            ROAD_CAMPAIGN_ID: input.campaignId,
            ROAD_TASK_ID: input.taskId,
          }),
          timeoutMs: replay.timeoutMs,
          signal: context?.cancellationSignal,
        });
      } catch (error) {
        if (error instanceof SpawnError) throw invalidConfiguration(`replay.command[0] ${error.message}`);
        throw error;
      } finally {
        stopHeartbeats();
        worktrees.release(sha, worktree);
      }
      if (run.cancelled) throw cancellation(context);

      const result: ReplayRunResult = {
        campaignId: input.campaignId,
        caseId: input.caseId,
        phaseId: input.phaseId,
        variant: input.variant,
        ref: sha,
        repeat: input.repeat,
        runIndex: input.runIndex,
        ...outcomeOf(run, replay.timeout),
        exitCode: run.exitCode,
        startedAt: startedAt.toISOString(),
        finishedAt: new Date(Math.max(now().getTime(), startedAt.getTime())).toISOString(),
      };
      // Another attempt of this run may have stored first (a worker thought dead): the stored run is the run.
      return saveReplayRun(pool, result, WORKER_ID);
    },

    /** Every stored run of a campaign, in run order. */
    async storedReplayRuns(input: { campaignId: string }): Promise<ReplayRunResult[]> {
      return listReplayRuns(pool, input.campaignId);
    },

    /** Records a campaign's start (idempotent: a restarted campaign finds its record and keeps its runs). */
    async startCampaignRecord(input: StartCampaignInput): Promise<CampaignSummary> {
      if (typeof input.taskId !== 'string' || !TASK_ID_PATTERN.test(input.taskId)) throw invalidInput('taskId must be 1–128 characters of A–Z a–z 0–9 . _ : -');
      if (!SHA.test(input.baselineSha) || !SHA.test(input.treatmentSha)) throw invalidInput('baselineSha and treatmentSha must be full commit shas');
      if (input.baselineSha === input.treatmentSha) throw invalidInput('treatmentSha must differ from baselineSha: a campaign compares two commits');
      const settings = input.settings ?? {};
      const cases = settings.cases;
      const repeats = settings.repeats;
      const runsPlanned = Array.isArray(cases) && typeof repeats === 'number' ? cases.length * repeats * 2 : null;
      try {
        return summaryOf(
          await upsertCampaign(
            pool,
            { campaignId: input.campaignId, taskId: input.taskId, workflowId: input.workflowId ?? null, baselineRef: input.baselineRef ?? null,
              baselineSha: input.baselineSha, treatmentSha: input.treatmentSha, settings, runsPlanned },
            now(),
          ),
        );
      } catch (error) {
        if (error instanceof CampaignConflictError) throw ApplicationFailure.nonRetryable(error.message, 'CampaignConflict');
        throw error;
      }
    },

    /** Stores a campaign's report (JSON and markdown) and marks it completed; a stored report is kept. */
    async saveCampaignReport(input: SaveCampaignReportInput): Promise<CampaignSummary> {
      if (typeof input.markdown !== 'string' || typeof input.report !== 'object' || input.report === null) {
        throw invalidInput('saveCampaignReport needs report (a JSON object) and markdown (a string)');
      }
      return summaryOf(await saveCampaignReport(pool, input, now()));
    },

    /** Marks a campaign that ends without a report (failed or cancelled); a completed campaign stays completed. */
    async finishCampaignRecord(input: FinishCampaignInput): Promise<CampaignSummary> {
      if (input.status !== 'failed' && input.status !== 'cancelled') throw invalidInput('status must be "failed" or "cancelled"');
      return summaryOf(await finishCampaign(pool, input, now()));
    },
  });
}

function replayConfig(replay: ReplayConfig | undefined): ReplayConfig & { timeoutMs: number } {
  if (!replay) throw invalidConfiguration('replay is not set in road.config.json: add { "replay": { "command": ["<program>", "<arg>…"] } }');
  return { ...replay, timeoutMs: parseDuration(replay.timeout) };
}

function checkRunInput(input: ReplayRunInput): void {
  const problems: string[] = [];
  if (typeof input.campaignId !== 'string' || !/^[A-Za-z0-9._:@-]{1,200}$/.test(input.campaignId)) problems.push('campaignId must be 1–200 characters of A–Z a–z 0–9 . _ : @ -');
  if (typeof input.caseId !== 'string' || !input.caseId || input.caseId.length > 255) problems.push('caseId must be 1–255 characters');
  if (input.phaseId !== null && (typeof input.phaseId !== 'string' || !input.phaseId || input.phaseId.length > 255)) problems.push('phaseId must be null or 1–255 characters');
  if (input.variant !== 'baseline' && input.variant !== 'treatment') problems.push('variant must be "baseline" or "treatment"');
  if (typeof input.ref !== 'string' || !input.ref || input.ref.length > 255 || input.ref.startsWith('-')) problems.push('ref must be a commit sha (or a ref, not starting with "-")');
  if (!Number.isInteger(input.repeat) || input.repeat < 0 || input.repeat > 999) problems.push('repeat must be an integer from 0 to 999');
  if (!Number.isInteger(input.runIndex) || input.runIndex < 0 || input.runIndex > 99_999) problems.push('runIndex must be an integer from 0 to 99999');
  if (problems.length) throw invalidInput(`invalid replay run: ${problems.join('; ')}`);
}

/** A stored run must be the run asked for: the same index with another case or arm is a bug upstream, not a rerun. */
function sameRun(stored: ReplayRunResult, input: ReplayRunInput): ReplayRunResult {
  const differs =
    stored.caseId !== input.caseId ||
    stored.variant !== input.variant ||
    stored.repeat !== input.repeat ||
    stored.phaseId !== input.phaseId ||
    (SHA.test(input.ref) && stored.ref !== input.ref);
  if (differs) {
    throw ApplicationFailure.nonRetryable(
      `run ${input.runIndex} of campaign ${input.campaignId} is stored as case ${stored.caseId} ${stored.variant} repeat ${stored.repeat} at ${stored.ref.slice(0, 12)}, ` +
        `not case ${input.caseId} ${input.variant} repeat ${input.repeat} at ${input.ref.slice(0, 12)}`,
      'ReplayRunConflict',
    );
  }
  return stored;
}

type Measured = Pick<ReplayRunResult, 'outcome' | 'tokens' | 'durationMs' | 'stopReason' | 'retries'>;

/** The run's outcome: timeout first (whatever it printed), then its road line, then its exit status. */
export function outcomeOf(run: { timedOut: boolean; exitCode: number | null; stdout: string; elapsedMs: number }, timeoutText: string): Measured {
  const measured = Math.round(run.elapsedMs);
  if (run.timedOut) return { outcome: 'TIMEOUT', tokens: null, durationMs: measured, stopReason: `killed after replay.timeout (${timeoutText})`, retries: null };
  const parsed = parseRoadLine(run.stdout);
  if (parsed.kind === 'ok') {
    const { line } = parsed;
    return { outcome: line.outcome, tokens: line.tokens ?? null, durationMs: line.durationMs ?? measured, stopReason: line.stopReason ?? null, retries: line.retries ?? null };
  }
  if (parsed.kind === 'invalid') {
    // The command claimed to report and got it wrong: a broken run, counted as FAILED, with what was wrong.
    return { outcome: 'FAILED', tokens: null, durationMs: measured, stopReason: truncateBytes(`invalid road line: ${parsed.error}`, STOP_REASON_MAX_BYTES), retries: null };
  }
  return { outcome: run.exitCode === 0 ? 'SUCCESS' : 'FAILED', tokens: null, durationMs: measured, stopReason: null, retries: null };
}

function truncateBytes(text: string, max: number): string {
  let out = text;
  while (Buffer.byteLength(out) > max) out = out.slice(0, -1);
  return out;
}

function summaryOf(record: { campaignId: string; status: string; verdict: string | null; runsStored: number; runsPlanned: number | null }): CampaignSummary {
  return { campaignId: record.campaignId, status: record.status, verdict: record.verdict, runsStored: record.runsStored, runsPlanned: record.runsPlanned };
}
