/**
 * `road tasks run | status | submit`: one follow-up task through candidate → replay → approval (the `followupTask`
 * workflow), and `road replay show`: a task's replay campaign and its report.
 */
import { WorkflowExecutionAlreadyStartedError, WorkflowNotFoundError, type Client } from '@temporalio/client';
import type { Command } from 'commander';
import { getTask } from '../../db/tasks.js';
import { followupTaskInputSchema, submitCandidateSchema, taskWorkflowId, type FollowupTaskStatus } from '../../domain/followup.js';
import { OPEN_STATUSES } from '../../domain/tasks.js';
import { describeZodError } from '../../domain/validation.js';
import {
  FOLLOWUP_TASK_WORKFLOW,
  followupTaskStatusQuery,
  RoadKind,
  RoadStatus,
  RoadTaskId,
  submitCandidateSignal,
} from '../../workflows/definitions.js';
import type { followupTask } from '../../workflows/followupTask.js';
import { readDevState } from '../config.js';
import { InvalidInput, NotFound, Conflict } from '../../domain/errors.js';
import { printJson } from '../format.js';
import { uiWorkflowUrl } from '../temporal.js';
import type { Session } from '../cli.js';

const list = (value: string): string[] => value.split(',').map((v) => v.trim()).filter(Boolean);

export function registerTaskCommands(tasks: Command, session: () => Session): void {
  tasks
    .command('run <taskId>')
    .description('work one open task: candidate (≤ 2 attempts) → A/B replay → approval gate, as the workflow road-task-<id>')
    .option('--reviewers <list>', 'comma-separated reviewers who may decide (default: approval.reviewers of road.config.json)', list)
    .option('--approval-timeout <duration>', 'how long the gate waits for a decision (default: approval.timeout)')
    .option('--json', 'print the started workflow as JSON')
    .action(async (taskId: string, opts: { reviewers?: string[]; approvalTimeout?: string; json?: boolean }) => {
      const s = session();
      const input = followupTaskInputSchema.safeParse({ taskId, reviewers: opts.reviewers, approvalTimeout: opts.approvalTimeout, requestedBy: process.env.USER });
      if (!input.success) throw new InvalidInput(describeZodError(input.error));
      const task = await getTask(s.database(), taskId);
      if (!task) throw new NotFound(`unknown task ${taskId} (see \`road tasks list\`)`);
      if (!(OPEN_STATUSES as readonly string[]).includes(task.status)) {
        throw new Conflict(`${taskId} is ${task.status}${task.status_note ? ` (${task.status_note})` : ''}: only open tasks can be run`);
      }
      if (task.status === 'needs_scope') throw new InvalidInput(`${taskId} has no allowed files yet: ${task.scope.note}`);
      const client = await s.temporal();
      const workflowId = taskWorkflowId(taskId);
      try {
        await client.workflow.start<typeof followupTask>(FOLLOWUP_TASK_WORKFLOW, {
          taskQueue: s.config.temporal.taskQueue,
          workflowId,
          args: [input.data],
          staticSummary: `${taskId}: ${task.title}`,
          staticDetails: `- **Task** ${taskId} (${task.type}, ${task.severity})\n- **Allowed files** ${task.allowed_files.join(', ')}\n- **Phases** ${task.phase_ids.join(', ')}`,
          typedSearchAttributes: [
            { key: RoadKind, value: 'task' },
            { key: RoadStatus, value: 'planning' },
            { key: RoadTaskId, value: taskId },
          ],
        });
      } catch (error) {
        if (error instanceof WorkflowExecutionAlreadyStartedError) throw new Conflict(`${taskId} is already running as ${workflowId}: see \`road tasks status ${taskId}\``);
        throw error;
      }
      const ui = uiWorkflowUrl(readDevState()?.uiUrl ?? 'http://localhost:8233', s.config.temporal.namespace, workflowId);
      if (opts.json) return printJson({ workflowId, ui });
      console.log(`Started ${workflowId}\n  Temporal UI: ${ui}\n  Follow it:   road tasks status ${taskId}`);
    });

  tasks
    .command('status <taskId>')
    .description("where a task's workflow stands: stage, attempts, candidate, replay verdicts, approval")
    .option('--json', 'print JSON')
    .action(async (taskId: string, opts: { json?: boolean }) => {
      const s = session();
      const status = await taskStatus(await s.temporal(), taskId);
      if (!status) {
        const task = await getTask(s.database(), taskId);
        if (!task) throw new NotFound(`unknown task ${taskId} (see \`road tasks list\`)`);
        if (opts.json) return printJson({ taskId, stage: 'not started', status: task.status, note: task.status_note });
        return console.log(`${taskId}: ${task.status}, never run — start it with \`road tasks run ${taskId}\``);
      }
      if (opts.json) return printJson(status);
      console.log(renderStatus(status));
    });

  tasks
    .command('submit <taskId>')
    .description('hand a fix you wrote to a task whose executor is "manual": a ref (branch or sha) in the target repository')
    .requiredOption('--ref <ref>', 'the branch or commit of the fix')
    .requiredOption('--author <identity>', 'who wrote it (may not approve it)')
    .action(async (taskId: string, opts: { ref: string; author: string }) => {
      const s = session();
      const submission = submitCandidateSchema.safeParse({ ref: opts.ref, author: opts.author });
      if (!submission.success) throw new InvalidInput(describeZodError(submission.error));
      const client = await s.temporal();
      const status = await taskStatus(client, taskId);
      if (!status || status.outcome) throw new Conflict(`${taskId} is not running: start it with \`road tasks run ${taskId}\``);
      if (status.stage !== 'awaiting_candidate') throw new Conflict(`${taskId} is not waiting for a candidate (stage: ${status.stage})`);
      await client.workflow.getHandle(taskWorkflowId(taskId)).signal(submitCandidateSignal, submission.data);
      console.log(`Submitted ${opts.ref} for ${taskId}; follow it with \`road tasks status ${taskId}\``);
    });
}

/** The live status of a running task, or the result of a finished one; undefined when it never ran. */
export async function taskStatus(client: Client, taskId: string): Promise<FollowupTaskStatus | undefined> {
  const handle = client.workflow.getHandle<typeof followupTask>(taskWorkflowId(taskId));
  try {
    const description = await handle.describe();
    if (description.status.name === 'COMPLETED') return await handle.result();
    const status = await handle.query(followupTaskStatusQuery);
    if (description.status.name !== 'RUNNING') return { ...status, stage: 'failed', detail: `the workflow is ${description.status.name.toLowerCase()}`, outcome: 'failed' };
    return status;
  } catch (error) {
    if (error instanceof WorkflowNotFoundError) return undefined;
    throw error;
  }
}

export function renderStatus(s: FollowupTaskStatus): string {
  const lines = [`${s.taskId}: ${s.stage}${s.outcome ? ` (${s.outcome})` : ''} — ${s.detail}`];
  for (const a of s.attempts) lines.push(`  attempt ${a.attempt}: ${a.outcome} — ${a.message}`);
  if (s.candidate) lines.push(`  candidate: ${s.candidate.treatmentSha.slice(0, 12)} on ${s.candidate.branch} (${s.candidate.changedFiles.join(', ')}; +${s.candidate.diffStat.insertions} −${s.candidate.diffStat.deletions})`);
  if (s.replay && !s.verdicts) lines.push(`  replay: ${s.replay.done} of ${s.replay.total} runs`);
  if (s.verdicts) {
    lines.push(`  replay verdict: ${s.verdicts.gating} (${s.verdicts.decisionMode}); seed ${s.verdicts.seed}, statistical ${s.verdicts.statistical}`);
    if (s.verdicts.why) lines.push(`    why they differ: ${s.verdicts.why}`);
  }
  if (s.reportPath) lines.push(`  report: ${s.reportPath}`);
  if (s.approval) lines.push(`  approval: ${s.approval.status}${s.approval.decidedBy ? ` by ${s.approval.decidedBy}` : ''}${s.approval.note ? ` — "${s.approval.note}"` : ''}; can_merge ${s.approval.canMerge}`);
  if (s.mergeCommand) lines.push(`  land it: ${s.mergeCommand}`);
  return lines.join('\n');
}
