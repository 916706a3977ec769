/**
 * Candidates (DESIGN.md §Candidate): a change on top of the baseline, written by the configured executor in a fresh
 * worktree or submitted by a person as a ref, checked against the task's allowed_files on the real diff, and recorded
 * on the branch `road/<task-id>`. Each attempt is one activity attempt: the workflow's retry policy (at most 2) is
 * the attempt budget, so a failure a second attempt might fix is retryable and a configuration problem is not.
 */
import { log } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { saveCandidateAttempt, type CandidateAttempt, type CandidateStatus } from '../db/candidates.js';
import { configSchema } from '../domain/config.js';
import { parseDuration } from '../domain/duration.js';
import { TASK_ID_PATTERN } from '../domain/followup.js';
import type { FollowupTask } from '../domain/tasks.js';
import { classifyActivityFailures } from './errors.js';
import {
  addWorktree,
  changedPaths,
  cleanEnvironment,
  commitAuthor,
  diffStat,
  isAncestor,
  isValidBranchName,
  removeWorktree,
  resolveCommit,
  setBranch,
  worktreeState,
  type DiffStat,
} from './git.js';
import type { ActivityDeps } from './index.js';
import { runProcessTree, SpawnError } from './process.js';
import { activityContext, cancellation, heartbeatEverySecond, invalidConfiguration, invalidInput, tail, targetRepository } from './repository.js';

export interface CandidateInput {
  task: FollowupTask;
  /** The attempt number to record (default: the activity's attempt, which the retry policy counts). */
  attempt?: number;
}

export interface ManualCandidateInput {
  task: FollowupTask;
  /** A branch, tag or sha in the target repository that descends from the baseline ref. */
  ref: string;
  /** Who wrote it: the identity the approval gate keeps from approving it. */
  author: string;
  /** The submission number to record (default: the activity's attempt). */
  attempt?: number;
}

export interface Candidate {
  taskId: string;
  baselineRef: string;
  baselineSha: string;
  /** `road/<task-id>`, pointing at treatmentSha. */
  branch: string;
  treatmentSha: string;
  author: string;
  /** Every path the diff from the baseline touches (a rename counts its old and its new path). */
  changedFiles: string[];
  diffStat: DiffStat;
  /** What the check noticed but did not refuse (uncommitted changes the executor left, which are not part of it). */
  notes: string[];
}

/** The failure types a workflow may see, as they appear on the wire (never rename one). */
export const CANDIDATE_FAILURES = {
  outOfScope: 'CandidateOutOfScope',
  noCommit: 'CandidateNoCommit',
  invalid: 'CandidateInvalid',
  executorFailed: 'ExecutorFailed',
  executorTimedOut: 'ExecutorTimedOut',
} as const;

const CANDIDATE_DIR_PREFIX = path.join(os.tmpdir(), 'road-candidate-');

export function createCandidateActivities({ pool, config = configSchema.parse({}), now = () => new Date() }: ActivityDeps) {
  /**
   * The attempt's row in `candidates`. It is an audit trail beside the workflow's history, not the source of truth:
   * a database that stays down for ~15 s costs the row (logged), never the executor's work or an attempt.
   */
  async function record(row: Omit<CandidateAttempt, 'recordedAt'>): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await saveCandidateAttempt(pool, { ...row, recordedAt: now().toISOString() });
        return;
      } catch (error) {
        if (attempt >= 5) {
          log.error('candidate attempt not recorded', { taskId: row.taskId, attempt: row.attempt, error: (error as Error).message });
          return;
        }
        await sleep(250 * 2 ** attempt);
      }
    }
  }

  /** Refuses the attempt after recording why; `retryable` says whether another attempt could do better. */
  async function refuse(
    row: Omit<CandidateAttempt, 'recordedAt' | 'status' | 'error' | 'branch'>,
    status: Exclude<CandidateStatus, 'ready'>,
    type: string,
    message: string,
    retryable: boolean,
  ): Promise<never> {
    await record({ ...row, status, error: message, branch: null });
    throw ApplicationFailure.create({
      message,
      type,
      nonRetryable: !retryable,
      details: [{ taskId: row.taskId, attempt: row.attempt, treatmentSha: row.treatmentSha, offendingFiles: row.offendingFiles }],
    });
  }

  /**
   * The checks a candidate passes whoever wrote it: a commit other than the baseline, descending from it, whose real
   * diff touches only allowed_files. On success the branch is moved and the attempt recorded.
   */
  async function accept(
    repo: string,
    task: FollowupTask,
    base: { baselineRef: string; baselineSha: string; source: CandidateAttempt['source']; attempt: number; notes: string[] },
    treatmentSha: string,
    author: string | undefined,
    retryable: boolean,
  ): Promise<Candidate> {
    const branch = branchOf(task.id);
    const row = {
      taskId: task.id,
      attempt: base.attempt,
      source: base.source,
      baselineRef: base.baselineRef,
      baselineSha: base.baselineSha,
      treatmentSha,
      author: author ?? null,
      changedFiles: [] as string[],
      offendingFiles: [] as string[],
      diffStat: null,
      notes: base.notes,
    };
    if (treatmentSha === base.baselineSha) {
      const what = base.source === 'executor' ? 'the executor left no commit' : `the submitted ref is the baseline itself`;
      const dirt = base.notes.length ? ` (${base.notes.join('; ')})` : '';
      return refuse(row, 'no_commit', CANDIDATE_FAILURES.noCommit, `${what}: HEAD is still ${base.baselineRef} (${short(base.baselineSha)})${dirt}`, retryable);
    }
    if (!(await isAncestor(repo, base.baselineSha, treatmentSha))) {
      return refuse(
        row,
        'not_on_baseline',
        CANDIDATE_FAILURES.invalid,
        `${short(treatmentSha)} does not descend from ${base.baselineRef} (${short(base.baselineSha)}): a candidate must be commits on top of the baseline (rebase it)`,
        retryable,
      );
    }
    const changedFiles = await changedPaths(repo, base.baselineSha, treatmentSha);
    row.changedFiles = changedFiles;
    if (!changedFiles.length) {
      return refuse(row, 'no_commit', CANDIDATE_FAILURES.noCommit, `${short(treatmentSha)} changes nothing against ${base.baselineRef} (${short(base.baselineSha)})`, retryable);
    }
    const allowed = new Set(task.allowed_files);
    const offending = changedFiles.filter((file) => !allowed.has(file));
    if (offending.length) {
      row.offendingFiles = offending;
      return refuse(
        row,
        'out_of_scope',
        CANDIDATE_FAILURES.outOfScope,
        `${short(treatmentSha)} touches ${offending.length} file(s) outside the task's allowed_files: ${offending.join(', ')} ` +
          `(allowed: ${task.allowed_files.join(', ')})`,
        retryable,
      );
    }
    const stat = await diffStat(repo, base.baselineSha, treatmentSha);
    const identity = author ?? (await commitAuthor(repo, treatmentSha));
    await setBranch(repo, branch, treatmentSha, `road: candidate attempt ${base.attempt} of task ${task.id}`);
    await record({ ...row, author: identity, diffStat: stat, status: 'ready', branch, error: null });
    return {
      taskId: task.id,
      baselineRef: base.baselineRef,
      baselineSha: base.baselineSha,
      branch,
      treatmentSha,
      author: identity,
      changedFiles,
      diffStat: stat,
      notes: base.notes,
    };
  }

  return classifyActivityFailures({
    /**
     * Runs executor.command (argv) in a fresh worktree at the baseline with the task at $ROAD_TASK_FILE. The executor
     * must commit its change; uncommitted changes are not part of the candidate (they are named in `notes`).
     * Failures: retryable CandidateOutOfScope, CandidateNoCommit, CandidateInvalid, ExecutorFailed, ExecutorTimedOut;
     * non-retryable InvalidConfiguration (no repository or executor, baseline ref missing, program not found) and
     * InvalidInput (a task without allowed_files).
     */
    async createCandidate(input: CandidateInput): Promise<Candidate> {
      const context = activityContext();
      const executor = config.executor;
      if (executor === 'manual') {
        throw invalidConfiguration('executor is "manual" in road.config.json: a person submits the candidate (road tasks submit), there is no command to run');
      }
      checkTask(input.task);
      const repo = await targetRepository(config);
      const baselineRef = config.repository!.baselineRef;
      const baselineSha = await baselineOf(repo, baselineRef, input.task.id);
      const attempt = input.attempt ?? context?.info.attempt ?? 1;
      const base = { baselineRef, baselineSha, source: 'executor' as const, attempt, notes: [] as string[] };
      const emptyRow = { ...base, taskId: input.task.id, treatmentSha: null, author: null, changedFiles: [], offendingFiles: [], diffStat: null };

      const scratch = await mkdtemp(CANDIDATE_DIR_PREFIX);
      const worktree = path.join(scratch, 'worktree');
      const taskFile = path.join(scratch, 'task.json'); // outside the worktree: it must not look like a change
      const started = Date.now();
      let stage = 'checking out the baseline';
      const stopHeartbeats = heartbeatEverySecond(context, () => ({ stage, elapsedMs: Date.now() - started }));
      try {
        await writeFile(taskFile, JSON.stringify(input.task, null, 2));
        await addWorktree(repo, worktree, baselineSha);
        stage = 'running the executor';
        let run;
        try {
          run = await runProcessTree(executor.command, {
            cwd: worktree,
            env: cleanEnvironment({
              ROAD_TASK_FILE: taskFile,
              ROAD_TASK_ID: input.task.id,
              ROAD_ATTEMPT: String(attempt),
              ROAD_BASELINE_REF: baselineRef,
              ROAD_BASELINE_SHA: baselineSha,
            }),
            timeoutMs: parseDuration(executor.timeout),
            signal: context?.cancellationSignal,
          });
        } catch (error) {
          if (error instanceof SpawnError) throw invalidConfiguration(`executor.command[0] ${error.message}`);
          throw error;
        }
        if (run.cancelled) throw cancellation(context);
        if (run.timedOut) {
          return await refuse(emptyRow, 'executor_timed_out', CANDIDATE_FAILURES.executorTimedOut, `the executor ran longer than executor.timeout (${executor.timeout}) and was killed with its process tree`, true);
        }
        if (run.exitCode !== 0) {
          const how = run.exitCode === null ? `was killed by ${run.exitSignal}` : `exited with status ${run.exitCode}`;
          const stderr = tail(run.stderr);
          return await refuse(emptyRow, 'executor_failed', CANDIDATE_FAILURES.executorFailed, `the executor ${how}${stderr ? `; stderr ends with:\n${stderr}` : ''}`, true);
        }
        stage = 'checking the candidate';
        const state = await worktreeState(worktree, { ignored: false });
        if (state.dirt.length) {
          const paths = state.dirt.map(pathOfStatusEntry);
          base.notes.push(`ignored ${paths.length} uncommitted change(s) the executor left: ${paths.slice(0, 10).join(', ')}${paths.length > 10 ? ', …' : ''}`);
        }
        return await accept(repo, input.task, base, state.head, undefined, true);
      } finally {
        // Success, failure or cancellation: the worktree goes, so a retry starts fresh and nothing accumulates.
        stage = 'removing the worktree';
        await removeWorktree(repo, worktree).catch((error: Error) => log.warn('candidate worktree not removed', { worktree, error: error.message }));
        await rm(scratch, { recursive: true, force: true });
        stopHeartbeats();
      }
    },

    /**
     * Checks a ref a person submitted (executor "manual") exactly like an executor's commit. Out of scope, not a
     * commit, not on the baseline: non-retryable (the same ref would be refused again; the person submits another).
     */
    async checkManualCandidate(input: ManualCandidateInput): Promise<Candidate> {
      const context = activityContext();
      checkTask(input.task);
      const author = input.author?.trim();
      if (!author || author.length > 255) throw invalidInput('author must be 1–255 characters (who wrote the fix)');
      if (typeof input.ref !== 'string' || !input.ref.trim() || input.ref.length > 255 || input.ref.startsWith('-')) {
        throw invalidInput('ref must be a branch, tag or commit sha (1–255 characters, not starting with "-")');
      }
      const repo = await targetRepository(config);
      const baselineRef = config.repository!.baselineRef;
      const baselineSha = await baselineOf(repo, baselineRef, input.task.id);
      const attempt = input.attempt ?? context?.info.attempt ?? 1;
      const treatmentSha = await resolveCommit(repo, input.ref.trim());
      if (!treatmentSha) {
        throw ApplicationFailure.nonRetryable(`ref ${input.ref} names no commit in ${repo}`, CANDIDATE_FAILURES.invalid);
      }
      return accept(repo, input.task, { baselineRef, baselineSha, source: 'manual', attempt, notes: [] }, treatmentSha, author, false);
    },
  });
}

export const branchOf = (taskId: string): string => `road/${taskId}`;

function checkTask(task: FollowupTask): void {
  if (!task || typeof task.id !== 'string' || !TASK_ID_PATTERN.test(task.id)) throw invalidInput('task.id must be 1–128 characters of A–Z a–z 0–9 . _ : -');
  if (!Array.isArray(task.allowed_files) || !task.allowed_files.length) {
    throw invalidInput(`task ${task.id} has no allowed_files (status ${task.status}): give it a scope before a candidate can be checked`);
  }
}

/** The baseline's sha; checked with the branch name before any work, so nothing is refused after the executor ran. */
async function baselineOf(repo: string, baselineRef: string, taskId: string): Promise<string> {
  const sha = await resolveCommit(repo, baselineRef);
  if (!sha) throw invalidConfiguration(`repository.baselineRef ${baselineRef} names no commit in ${repo}`);
  if (!(await isValidBranchName(repo, branchOf(taskId)))) throw invalidInput(`task.id ${taskId} cannot name a git branch (${branchOf(taskId)})`);
  return sha;
}

/** The path of a `git status --porcelain=v2 -z` entry (`1 .M N... 100644 100644 100644 <h> <h> src/x.py`). */
function pathOfStatusEntry(entry: string): string {
  const fieldsBeforePath: Record<string, number> = { '1': 8, '2': 9, u: 10, '?': 1, '!': 1 };
  const skip = fieldsBeforePath[entry.split(' ', 1)[0]!];
  // With -z a rename's original path is a token of its own: it is a path already.
  return skip === undefined ? entry : entry.split(' ').slice(skip).join(' ');
}

const short = (sha: string) => sha.slice(0, 12);
