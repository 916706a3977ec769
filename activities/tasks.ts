/**
 * The follow-up task's bookkeeping: resolving a start request into a plan (the stored task, the worker's
 * road.config.json, the baseline commit) and moving the task's status as its workflow moves.
 */
import { parseDuration } from '../domain/duration.js';
import { casesFor, failureStopReasonOf, type TaskPlan } from '../domain/followup.js';
import { Conflict, NotFound } from '../domain/errors.js';
import { OPEN_STATUSES, type TaskStatus } from '../domain/tasks.js';
import { getTask, updateTaskStatus } from '../db/tasks.js';
import type { ActivityDeps } from './index.js';
import { classifyActivityFailures } from './errors.js';
import { resolveCommit } from './git.js';
import { invalidConfiguration, targetRepository } from './repository.js';

export interface PlanFollowupTaskInput {
  taskId: string;
  reviewers?: string[];
  approvalTimeout?: string;
}

export interface SetTaskStatusInput {
  taskId: string;
  status: TaskStatus;
  note: string;
}

const NOTE_MAX_CHARS = 2_000;

export function createTaskActivities({ pool, config }: Required<Pick<ActivityDeps, 'pool' | 'config'>>) {
  return classifyActivityFailures({
    /**
     * Everything the workflow needs, resolved once and kept in its history (a replay of the workflow never rereads
     * a config file that may have changed). Configuration problems name the key and are not retried.
     */
    async planFollowupTask(input: PlanFollowupTaskInput): Promise<TaskPlan> {
      const task = await getTask(pool, input.taskId);
      if (!task) throw new NotFound(`unknown task ${input.taskId}`);
      if (!(OPEN_STATUSES as readonly string[]).includes(task.status)) throw new Conflict(`${task.id} is ${task.status}: only open tasks can be worked`);
      if (!task.allowed_files.length) throw invalidConfiguration(`${task.id} has no allowed files: ${task.scope.note}`);
      const replay = config.replay;
      if (!replay) throw invalidConfiguration('replay is not set in road.config.json: add { "replay": { "command": ["<program>", "<args>…"] } }');
      const repositoryPath = await targetRepository(config);
      const baselineRef = config.repository!.baselineRef;
      const baselineSha = await resolveCommit(repositoryPath, baselineRef);
      if (!baselineSha) throw invalidConfiguration(`repository.baselineRef ${baselineRef} names no commit in ${repositoryPath}`);
      const cases = casesFor(task, replay.cases);
      if (!cases.length) {
        throw invalidConfiguration(`no replay cases for ${task.id}: its evidence names no runs and replay.cases is empty — list cases in replay.cases`);
      }
      const runs = cases.length * replay.repeats * 2;
      if (runs > replay.maxRuns) throw invalidConfiguration(`${cases.length} cases × ${replay.repeats} repeats × 2 = ${runs} runs, more than replay.maxRuns (${replay.maxRuns})`);
      const reviewers = input.reviewers?.length ? input.reviewers : config.approval.reviewers;
      if (!reviewers.length) throw invalidConfiguration('no reviewers: set approval.reviewers in road.config.json (or pass --reviewers)');
      const executor = config.executor;
      return {
        task: { ...task, status: task.status === 'needs_scope' ? 'needs_scope' : 'open' },
        executor: executor === 'manual' ? 'manual' : 'command',
        executorTimeoutMs: executor === 'manual' ? 0 : parseDuration(executor.timeout),
        repositoryPath,
        baselineRef,
        baselineSha,
        cases,
        repeats: replay.repeats,
        concurrency: replay.concurrency,
        runTimeoutMs: parseDuration(replay.timeout),
        replayTaskQueue: replay.taskQueue,
        decisionMode: replay.decisionMode,
        reviewers,
        approvalTimeout: input.approvalTimeout ?? config.approval.timeout,
        failureStopReason: failureStopReasonOf(task),
      };
    },

    /** Idempotent; a closed task (done, rejected, abandoned) keeps its status. */
    async setTaskStatus(input: SetTaskStatusInput): Promise<void> {
      await updateTaskStatus(pool, input.taskId, input.status, input.note.slice(0, NOTE_MAX_CHARS));
    },
  });
}
