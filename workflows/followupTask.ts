/**
 * One follow-up task, from a candidate fix to a reviewer's decision (DESIGN.md §Follow-up task workflow):
 *
 * plan → candidate (≤ 2 attempts, or a person's ref) → A/B replay campaign (child) → governance gate (child) → result.
 *
 * A reviewer approves evidence, not a promise, so the gate comes after replay. A candidate the replay rejects never
 * reaches a reviewer. Landing and promotion are the improvement loop's (ROAD-F); this returns what they need.
 */
import {
  ActivityFailure,
  ApplicationFailure,
  ChildWorkflowFailure,
  condition,
  executeChild,
  startChild,
  log,
  proxyActivities,
  setCurrentDetails,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { createActivities } from '../activities/index.js';
import type { ApprovalRequestInput, ApprovalState } from '../domain/approval.js';
import { parseDuration } from '../domain/duration.js';
import {
  campaignIdOf,
  followupTaskInputSchema,
  mergeCommandFor,
  submitCandidateSchema,
  type CandidateSummary,
  type FollowupTaskInput,
  type FollowupTaskStatus,
  type SubmitCandidateInput,
  type TaskPlan,
  type TaskStage,
} from '../domain/followup.js';
import { describeZodError } from '../domain/validation.js';
import { approvalGate } from './approvalGate.js';
import {
  approvalWorkflowId,
  followupTaskStatusQuery,
  replayWorkflowId,
  RoadIssueType,
  RoadKind,
  RoadPhase,
  RoadStatus,
  RoadTaskId,
  submitCandidateSignal,
} from './definitions.js';
import { replayCampaign, type ReplayCampaignResult } from './replayCampaign.js';

type Activities = ReturnType<typeof createActivities>;

// Bookkeeping in PostgreSQL must survive a database restart; permanent errors fail fast (activities/errors.ts).
const { planFollowupTask, setTaskStatus } = proxyActivities<Activities>({
  startToCloseTimeout: '1 minute',
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '1 minute', maximumAttempts: Number.POSITIVE_INFINITY, nonRetryableErrorTypes: ['InvalidConfiguration', 'InvalidInput'] },
});
// A person's ref is checked once per submission; only infrastructure errors are worth a second try.
const { checkManualCandidate } = proxyActivities<Activities>({
  startToCloseTimeout: '5 minutes',
  retry: { maximumAttempts: 3, nonRetryableErrorTypes: ['InvalidConfiguration', 'InvalidInput', 'CandidateOutOfScope', 'CandidateInvalid'] },
});

export interface FollowupTaskResult extends FollowupTaskStatus {
  outcome: NonNullable<FollowupTaskStatus['outcome']>;
  canMerge: boolean;
  plan?: Pick<TaskPlan, 'baselineRef' | 'baselineSha' | 'decisionMode' | 'repeats'> & { cases: number };
}

export async function followupTask(input: FollowupTaskInput): Promise<FollowupTaskResult> {
  const parsed = followupTaskInputSchema.safeParse(input);
  if (!parsed.success) throw ApplicationFailure.nonRetryable(`invalid follow-up task input: ${describeZodError(parsed.error)}`, 'InvalidInput');
  const { taskId } = parsed.data;
  const status: FollowupTaskStatus = { taskId, type: null, stage: 'planning', detail: 'resolving the task and the configuration', attempts: [] };
  const submissions: Array<Required<SubmitCandidateInput>> = [];
  setHandler(followupTaskStatusQuery, () => status);
  // Signals have no validator: refuse what cannot be applied before it touches state, and say so in the status.
  setHandler(submitCandidateSignal, (raw) => {
    const checked = submitCandidateSchema.safeParse(raw);
    if (!checked.success) {
      status.attempts.push({ attempt: status.attempts.length + 1, outcome: 'refused', message: `submitCandidate refused: ${describeZodError(checked.error)}` });
      return;
    }
    if (status.stage !== 'awaiting_candidate') {
      log.warn('submitCandidate ignored: the task is not waiting for a candidate', { stage: status.stage });
      return;
    }
    submissions.push(checked.data);
  });

  const moveTo = (stage: TaskStage, detail: string) => {
    status.stage = stage;
    status.detail = detail;
    upsertSearchAttributes([{ key: RoadStatus, value: stage }]);
    setCurrentDetails(detailsOf(status));
  };
  const finish = async (outcome: FollowupTaskResult['outcome'], detail: string, canMerge = false): Promise<FollowupTaskResult> => {
    status.outcome = outcome;
    moveTo(outcome === 'failed' ? 'failed' : 'done', detail);
    await setTaskStatus({ taskId, status: TASK_STATUS_OF[outcome], note: detail });
    return { ...status, outcome, canMerge };
  };

  upsertSearchAttributes([
    { key: RoadKind, value: 'task' },
    { key: RoadTaskId, value: taskId },
  ]);
  const plan = await planFollowupTask({ taskId, reviewers: parsed.data.reviewers, approvalTimeout: parsed.data.approvalTimeout });
  status.type = plan.task.type;
  upsertSearchAttributes([
    { key: RoadIssueType, value: plan.task.type },
    { key: RoadPhase, value: plan.task.phase_ids },
  ]);
  await setTaskStatus({ taskId, status: 'in_progress', note: `started by ${workflowInfo().workflowId}` });

  // ---- candidate
  let candidate: CandidateSummary | undefined;
  if (plan.executor === 'command') {
    moveTo('candidate', `the executor is writing a fix (at most ${plan.task.max_attempts} attempts; changes limited to ${plan.task.allowed_files.join(', ')})`);
    // The attempts are the activity's attempts: maximumAttempts from the task (≤ 2), bad configuration is final.
    const { createCandidate } = proxyActivities<Activities>({
      startToCloseTimeout: plan.executorTimeoutMs + 120_000,
      heartbeatTimeout: '30 seconds',
      retry: { maximumAttempts: plan.task.max_attempts, initialInterval: '1 second', nonRetryableErrorTypes: ['InvalidConfiguration', 'InvalidInput'] },
    });
    try {
      candidate = await createCandidate({ task: plan.task });
      status.attempts.push({ attempt: status.attempts.length + 1, outcome: 'accepted', message: `commit ${candidate.treatmentSha.slice(0, 12)} on ${candidate.branch}` });
    } catch (error) {
      const message = failureMessage(error);
      status.attempts.push({ attempt: plan.task.max_attempts, outcome: 'refused', message });
      return finish('failed', `no acceptable candidate after ${plan.task.max_attempts} attempt(s): ${message}`);
    }
  } else {
    const deadlineMs = parseDuration(plan.approvalTimeout);
    for (let attempt = 1; attempt <= plan.task.max_attempts && !candidate; attempt++) {
      moveTo(
        'awaiting_candidate',
        `waiting for a person's fix (attempt ${attempt} of ${plan.task.max_attempts}): commit it in the target repository touching only ` +
          `${plan.task.allowed_files.join(', ')}, then run \`road tasks submit ${taskId} --ref <branch-or-sha> --author <you>\``,
      );
      if (!(await condition(() => submissions.length > 0, deadlineMs))) {
        return finish('failed', `no candidate was submitted within ${plan.approvalTimeout}`);
      }
      const submission = submissions.shift()!;
      try {
        candidate = await checkManualCandidate({ task: plan.task, ref: submission.ref, author: submission.author });
        status.attempts.push({ attempt, outcome: 'accepted', message: `${submission.ref} by ${submission.author}: commit ${candidate.treatmentSha.slice(0, 12)}` });
      } catch (error) {
        status.attempts.push({ attempt, outcome: 'refused', message: `${submission.ref} by ${submission.author}: ${failureMessage(error)}` });
      }
    }
    if (!candidate) return finish('failed', `no acceptable candidate after ${plan.task.max_attempts} submission(s): ${status.attempts.at(-1)?.message}`);
  }
  status.candidate = candidate;

  // ---- A/B replay
  const campaignId = campaignIdOf(taskId, candidate.treatmentSha);
  status.campaignId = campaignId;
  moveTo('replay', `replaying ${plan.cases.length} case(s) × ${plan.repeats} at the baseline and at the candidate; progress: \`road replay show ${taskId}\``);
  let replay: ReplayCampaignResult;
  try {
    replay = await executeChild(replayCampaign, {
      workflowId: replayWorkflowId(taskId),
      staticSummary: `Replay ${taskId}: ${candidate.baselineSha.slice(0, 12)} vs ${candidate.treatmentSha.slice(0, 12)}`,
      args: [
        {
          campaignId,
          taskId,
          taskType: plan.task.type,
          failureStopReason: plan.failureStopReason,
          baselineRef: candidate.baselineRef,
          baselineSha: candidate.baselineSha,
          treatmentSha: candidate.treatmentSha,
          cases: plan.cases,
          repeats: plan.repeats,
          concurrency: plan.concurrency,
          runTimeoutMs: plan.runTimeoutMs,
          taskQueue: plan.replayTaskQueue,
          decisionMode: plan.decisionMode,
        },
      ],
    });
  } catch (error) {
    return finish('failed', `the replay campaign failed: ${failureMessage(error)}`);
  }
  status.verdicts = replay.verdicts;
  status.reportPath = replay.reportPaths.markdown;
  status.replay = { done: replay.runs, total: replay.runs };
  if (replay.verdicts.gating === 'REJECT') {
    return finish('rejected', `the replay rejected the candidate (${replay.verdicts.decisionMode} verdict); report: ${replay.reportPaths.markdown}`);
  }

  // ---- governance gate
  const request: ApprovalRequestInput = {
    taskId,
    title: plan.task.title,
    candidateRef: candidate.treatmentSha,
    baselineRef: candidate.baselineSha,
    diffStat: candidate.diffStat,
    impact: {
      summary: `${candidate.diffStat.files} file(s), +${candidate.diffStat.insertions} −${candidate.diffStat.deletions}; replay ${replay.verdicts.gating} ` +
        `(seed ${replay.verdicts.seed}, statistical ${replay.verdicts.statistical}); treatment success ${(replay.verdicts.treatmentSuccessRate * 100).toFixed(1)} % of ${replay.verdicts.treatmentRuns} runs`,
      files: candidate.changedFiles,
      phases: plan.task.phase_ids,
    },
    rollbackPlan: `Revert the candidate: git revert ${candidate.treatmentSha} (branch ${candidate.branch})`,
    verdict: replay.verdicts.gating,
    evidence: { campaignId, verdicts: replay.verdicts, report: replay.reportPaths, branch: candidate.branch, inconclusive: replay.verdicts.gating === 'INCONCLUSIVE' },
    allowedReviewers: plan.reviewers,
    author: candidate.author,
    timeout: plan.approvalTimeout,
  };
  let approval: ApprovalState;
  try {
    const gate = await startChild(approvalGate, {
      workflowId: approvalWorkflowId(taskId),
      staticSummary: `Approval gate for ${taskId}: ${plan.task.title}`,
      args: [request],
    });
    // The stage says "waiting for a reviewer" only once there is a gate to decide.
    await setTaskStatus({ taskId, status: 'awaiting_approval', note: `replay verdict ${replay.verdicts.gating}` });
    moveTo('approval', `waiting for a reviewer: \`road approve ${taskId} --reviewer <you>\` or \`road reject ${taskId} --reviewer <you> --reason "…"\``);
    approval = await gate.result();
  } catch (error) {
    return finish('failed', `the approval gate failed: ${failureMessage(error)}`);
  }
  status.approval = { status: approval.status, decidedBy: approval.decidedBy, decidedAt: approval.decidedAt, note: approval.decisionNote, canMerge: approval.canMerge };
  if (approval.canMerge) status.mergeCommand = mergeCommandFor(plan.repositoryPath, candidate.baselineRef, candidate.branch);
  switch (approval.status) {
    case 'APPROVED':
      return finish('approved', `approved by ${approval.decidedBy}${approval.canMerge ? `; land it with: ${status.mergeCommand}` : ' (not mergeable: the replay verdict was not PROMOTE)'}`, approval.canMerge);
    case 'REJECTED':
      return finish('rejected', `rejected by ${approval.decidedBy}: ${approval.decisionNote}`);
    default:
      return finish('expired', `no reviewer decided before ${approval.expiresAt}`);
  }
}

const TASK_STATUS_OF = { approved: 'done', rejected: 'rejected', expired: 'abandoned', failed: 'abandoned' } as const;

/** The innermost message of an activity or child failure: what a person needs to act on. */
function failureMessage(error: unknown): string {
  let current: unknown = error;
  while ((current instanceof ActivityFailure || current instanceof ChildWorkflowFailure) && current.cause) current = current.cause;
  return current instanceof Error ? current.message : String(current);
}

function detailsOf(s: FollowupTaskStatus): string {
  return [
    `**${s.stage.replace('_', ' ')}** — ${s.detail}`,
    '',
    ...(s.candidate ? [`- Candidate: \`${s.candidate.treatmentSha.slice(0, 12)}\` on \`${s.candidate.branch}\` (${s.candidate.changedFiles.join(', ')})`] : []),
    ...(s.verdicts ? [`- Replay: **${s.verdicts.gating}** (seed ${s.verdicts.seed}, statistical ${s.verdicts.statistical})`] : []),
    ...s.attempts.map((a) => `- Attempt ${a.attempt}: ${a.outcome} — ${a.message}`),
    `- Status: \`road tasks status ${s.taskId}\``,
  ].join('\n');
}
