/**
 * Every signal, query, update and search-attribute key of ROAD's workflows. The client imports this module too,
 * so it must stay free of anything but Temporal's workflow-safe packages.
 */
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';
import type { ApprovalState, DecisionAttempt, DecisionInput, DecisionRequest } from '../domain/approval.js';
import type { FollowupTaskStatus, SubmitCandidateInput } from '../domain/followup.js';
import type { LoopStatus } from '../domain/loop.js';

export const TASK_QUEUE_DEFAULT = 'road';

// ---- governance gate (the names in quotes are on the wire and in running histories: never change them)
export const approveSignal = defineSignal<[DecisionInput]>('approve');
export const rejectSignal = defineSignal<[DecisionInput]>('reject');
/**
 * Same rules as the signals, but answers with the judged attempt: the CLI uses it to say at once whether it counted.
 * Its validator refuses a decision that breaks the rules (domain/approval.ts `decisionSchema`) before it reaches
 * history, with an `InvalidInput` failure.
 */
export const decideUpdate = defineUpdate<DecisionAttempt, [DecisionRequest]>('decide');
export const approvalStatusQuery = defineQuery<ApprovalState>('status');

/** Workflow ids are derived from the task id so that the CLI finds a gate without listing. */
export const approvalWorkflowId = (taskId: string): string => `road-approval-${taskId}`;

// ---- search attributes (registered on the dev server at start; visible and filterable in the Temporal UI)
export const RoadKind = defineSearchAttributeKey('RoadKind', SearchAttributeType.KEYWORD);
export const RoadStatus = defineSearchAttributeKey('RoadStatus', SearchAttributeType.KEYWORD);
export const RoadTaskId = defineSearchAttributeKey('RoadTaskId', SearchAttributeType.KEYWORD);
export const RoadIssueType = defineSearchAttributeKey('RoadIssueType', SearchAttributeType.KEYWORD);
export const RoadPhase = defineSearchAttributeKey('RoadPhase', SearchAttributeType.KEYWORD_LIST);

/** Name → type, for registering them on a server. */
export const SEARCH_ATTRIBUTES = {
  RoadKind: 'KEYWORD',
  RoadStatus: 'KEYWORD',
  RoadTaskId: 'KEYWORD',
  RoadIssueType: 'KEYWORD',
  RoadPhase: 'KEYWORD_LIST',
} as const;

// ---- follow-up task (ROAD-E) and its replay campaign
/** Workflow type names, for clients that start them by name. */
export const FOLLOWUP_TASK_WORKFLOW = 'followupTask';
export const REPLAY_CAMPAIGN_WORKFLOW = 'replayCampaign';
/** A person's fix for a task whose executor is "manual": a ref in the target repository and who wrote it. */
export const submitCandidateSignal = defineSignal<[SubmitCandidateInput]>('submitCandidate');
export const followupTaskStatusQuery = defineQuery<FollowupTaskStatus>('followupTaskStatus');
export const replayProgressQuery = defineQuery<ReplayProgress>('replayProgress');
export { taskWorkflowId, replayWorkflowId } from '../domain/followup.js';

export interface ReplayProgress {
  campaignId: string;
  total: number;
  done: number;
  running: number;
  /** Successes so far per arm. */
  successes: { baseline: number; treatment: number };
  finished: { baseline: number; treatment: number };
  failedRuns: number;
}

// ---- improvement loop (ROAD-F)
export const IMPROVEMENT_LOOP_WORKFLOW = 'improvementLoop';
export const loopStatusQuery = defineQuery<LoopStatus>('loopStatus');
export { loopWorkflowId } from '../domain/loop.js';
