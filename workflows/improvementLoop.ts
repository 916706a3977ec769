/**
 * One pass of ROAD's self-improvement loop (DESIGN.md): the story of the process, top to bottom.
 *
 * demote rules that stopped working → analyse the window → open tasks for the top issues → work each task as a
 * `followupTask` child (candidate → replay → approval) → land and promote each fix that can merge → the loop report.
 *
 * The history stays small whatever the telemetry (≤ 20 tasks, a handful of events each), so no continueAsNew: a
 * loop is one bounded pass, and a Schedule starts the next.
 */
import {
  ApplicationFailure,
  ChildWorkflowFailure,
  ActivityFailure,
  executeChild,
  log,
  patched,
  proxyActivities,
  proxyLocalActivities,
  setCurrentDetails,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { createActivities } from '../activities/index.js';
import { taskWorkflowId } from '../domain/followup.js';
import { criticalFailureModes } from '../domain/notify.js';
import { loopInputSchema, type LoopInput, type LoopReport, type LoopStage, type LoopStatus, type LoopTaskEntry } from '../domain/loop.js';
import type { FollowupTask } from '../domain/tasks.js';
import { describeZodError } from '../domain/validation.js';
import { loopStatusQuery, RoadKind, RoadStatus } from './definitions.js';
import { followupTask, type FollowupTaskResult } from './followupTask.js';
import { announce } from './notification.js';

type Activities = ReturnType<typeof createActivities>;

// Reads and idempotent writes: retried while the database is away; permanent errors fail fast (activities/errors.ts).
const { analyzeTelemetry, generateTasks, checkDemotions, promoteRule, landCandidate, writeLoopReport } = proxyActivities<Activities>({
  startToCloseTimeout: '10 minutes',
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '1 minute', maximumAttempts: Number.POSITIVE_INFINITY },
});

// Which events have webhook receivers (config only, no I/O): no notification child is started for nobody.
const { notificationEvents } = proxyLocalActivities<Activities>({ startToCloseTimeout: '10 seconds', retry: { maximumAttempts: 3 } });

/** Loops announce the critical failure modes of their analysis to webhook receivers from this patch on. */
export const CRITICAL_NOTIFICATIONS_PATCH = 'notify-critical-failures';

export async function improvementLoop(input: LoopInput = {}): Promise<LoopReport> {
  const parsed = loopInputSchema.safeParse(input ?? {});
  if (!parsed.success) throw ApplicationFailure.nonRetryable(`invalid loop input: ${describeZodError(parsed.error)}`, 'InvalidInput');
  const settings = parsed.data;
  const info = workflowInfo();
  const loopId = info.workflowId.replace(/^road-loop-/, '');
  const status: LoopStatus = { loopId, stage: 'demotion', detail: 'checking promoted rules', startedAt: new Date().toISOString(), settings, tasks: [], skipped: [], demoted: [] };
  setHandler(loopStatusQuery, () => status);
  const moveTo = (stage: LoopStage, detail: string) => {
    status.stage = stage;
    status.detail = detail;
    upsertSearchAttributes([{ key: RoadStatus, value: stage }]);
    setCurrentDetails(detailsOf(status));
  };
  upsertSearchAttributes([{ key: RoadKind, value: 'loop' }]);
  moveTo('demotion', 'checking whether the phases of promoted rules regressed since their promotion');

  // 1. Rules whose phases got worse since promotion are demoted first, so this loop's analysis sees them as issues.
  const demotions = await checkDemotions({});
  status.demoted = demotions.demoted.map((d) => ({ ruleId: d.ruleId, phases: d.phases, reason: d.reason }));

  // 2. Analysis and tasks: issues that already have an open task are skipped, never worked twice.
  moveTo('analysis', `analysing the last ${settings.window} of telemetry`);
  const report = await analyzeTelemetry({ window: settings.window, top: Math.max(settings.topK, 10) });
  const critical = criticalFailureModes(report.failure_modes);
  if (critical.length && patched(CRITICAL_NOTIFICATIONS_PATCH) && (await wantsEvent('analysis.critical'))) {
    // Started, not awaited: which of them are new to each receiver is decided when it is sent (activities/notify.ts).
    await announce('analysis.critical', { analysis: { window: report.window, failureModes: critical } });
  }
  const generated = await generateTasks({ report, limit: settings.topK });
  const issues = report.failure_modes.length + report.cost_sinks.length + report.retry_patterns.length + report.flaky_tests.length;
  status.analysis = { window: { from: report.window.from, to: report.window.to }, events: report.totals.events, issues };
  status.skipped = [...generated.skipped];
  const workable: FollowupTask[] = [];
  for (const task of generated.saved) {
    if (task.status === 'needs_scope') status.skipped.push({ rank: task.rank, type: task.type, fingerprint: task.fingerprint, why: `${task.id} needs scope: ${task.scope.note}` });
    else workable.push(task);
  }
  status.tasks = workable.map((t) => ({ taskId: t.id, title: t.title, type: t.type, severity: t.severity, outcome: 'running', detail: 'queued' }));

  // 3. Each task in its own child workflow, a few at a time; an approved fix is landed and promoted as soon as it is.
  moveTo('tasks', `${workable.length} task(s): candidate → replay → approval; \`road loop status ${loopId}\``);
  let next = 0;
  const lane = async () => {
    while (next < workable.length) {
      const task = workable[next]!;
      const entry = status.tasks[next++]!;
      entry.detail = 'working';
      setCurrentDetails(detailsOf(status));
      await workTask(task, entry, settings);
      setCurrentDetails(detailsOf(status));
    }
  };
  await Promise.all(Array.from({ length: Math.min(settings.maxConcurrentTasks, workable.length) }, lane));

  // 4. The report.
  moveTo('report', 'writing the loop report');
  const finished: LoopReport = { ...status, stage: 'done', detail: summaryOf(status), schema: 'road.loop/v1', finishedAt: new Date().toISOString() };
  finished.reportPaths = await writeLoopReport({ report: finished });
  moveTo('done', finished.detail);
  return { ...finished, stage: 'done' };
}

async function workTask(task: FollowupTask, entry: LoopTaskEntry, settings: ReturnType<typeof loopInputSchema.parse>): Promise<void> {
  let result: FollowupTaskResult;
  try {
    result = await executeChild(followupTask, {
      workflowId: taskWorkflowId(task.id),
      staticSummary: `${task.id}: ${task.title}`,
      args: [{ taskId: task.id, reviewers: settings.reviewers, approvalTimeout: settings.approvalTimeout, requestedBy: `loop ${workflowInfo().workflowId}` }],
    });
  } catch (error) {
    entry.outcome = 'failed';
    entry.detail = innermost(error);
    return;
  }
  entry.outcome = result.outcome;
  entry.detail = result.detail;
  entry.verdicts = result.verdicts;
  entry.canMerge = result.canMerge;
  entry.decidedBy = result.approval?.decidedBy;
  if (!result.canMerge || !result.candidate) return;
  entry.landing = await landCandidate({ taskId: task.id, candidate: result.candidate });
  const promotion = await promoteRule({ task, result });
  entry.promotion = { promoted: promotion.promoted, ruleId: promotion.rule?.rule_id, reason: promotion.reason };
}

function innermost(error: unknown): string {
  let current: unknown = error;
  while ((current instanceof ChildWorkflowFailure || current instanceof ActivityFailure) && current.cause) current = current.cause;
  return current instanceof Error ? current.message : String(current);
}

function summaryOf(s: LoopStatus): string {
  const count = (outcome: LoopTaskEntry['outcome']) => s.tasks.filter((t) => t.outcome === outcome).length;
  const promoted = s.tasks.filter((t) => t.promotion?.promoted).length;
  return `${s.tasks.length} task(s): ${count('approved')} approved, ${count('rejected')} rejected, ${count('expired')} expired, ${count('failed')} failed; ${promoted} rule(s) promoted, ${s.demoted.length} demoted`;
}

function detailsOf(s: LoopStatus): string {
  return [
    `**${s.stage}** — ${s.detail}`,
    '',
    ...s.tasks.map((t) => `- ${t.taskId} (${t.type}): **${t.outcome}** — ${t.detail}${t.promotion?.promoted ? ` · rule ${t.promotion.ruleId}` : ''}`),
    ...(s.demoted.length ? [`- Demoted: ${s.demoted.map((d) => d.ruleId).join(', ')}`] : []),
    `- Status: \`road loop status ${s.loopId}\``,
  ].join('\n');
}

/** Whether some receiver wants `event`; false when that cannot be told (a notification never fails a loop). */
async function wantsEvent(event: 'analysis.critical'): Promise<boolean> {
  try {
    return (await notificationEvents()).includes(event);
  } catch (error) {
    log.warn('could not tell which events have webhook receivers', { error: (error as Error).message });
    return false;
  }
}
