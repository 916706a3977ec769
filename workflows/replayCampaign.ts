/**
 * A/B replay campaign (ROAD-E): the same cases run at the baseline and at the candidate, k times each, interleaved,
 * then compared. Runs go to the replay task queue, so replay workers can scale out on other machines; each run is
 * stored as it finishes, so a crashed worker or a restarted campaign never runs a stored run again.
 *
 * record the campaign → run what is not stored yet (bounded concurrency) → compare → the verdicts and the report.
 */
import { ApplicationFailure, log, proxyActivities, setCurrentDetails, setHandler, upsertSearchAttributes, workflowInfo } from '@temporalio/workflow';
import type { createActivities } from '../activities/index.js';
import { interleavedRuns, type PlannedRun, type ReplayCase, type VerdictSummary } from '../domain/followup.js';
import type { IssueType } from '../domain/analysis.js';
import type { ReplayRunResult } from '../domain/replay.js';
import { replayProgressQuery, RoadKind, RoadStatus, RoadTaskId, type ReplayProgress } from './definitions.js';

type Activities = ReturnType<typeof createActivities>;

export interface ReplayCampaignInput {
  campaignId: string;
  taskId: string;
  taskType: IssueType;
  failureStopReason: string | null;
  baselineRef: string;
  baselineSha: string;
  treatmentSha: string;
  cases: ReplayCase[];
  repeats: number;
  concurrency: number;
  runTimeoutMs: number;
  taskQueue: string;
  decisionMode: 'statistical' | 'seed';
}

export interface ReplayCampaignResult {
  campaignId: string;
  verdicts: VerdictSummary;
  /** Where the markdown and JSON reports were written (also stored in PostgreSQL). */
  reportPaths: { markdown: string; json: string };
  runs: number;
}

// Bookkeeping in PostgreSQL must survive a database restart; permanent errors fail fast (activities/errors.ts).
const { startCampaignRecord, storedReplayRuns, compareCampaign, finishCampaignRecord } = proxyActivities<Activities>({
  startToCloseTimeout: '2 minutes',
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '1 minute', maximumAttempts: Number.POSITIVE_INFINITY },
});

export async function replayCampaign(input: ReplayCampaignInput): Promise<ReplayCampaignResult> {
  const plan = interleavedRuns(input.cases, input.repeats);
  if (!plan.length) throw ApplicationFailure.nonRetryable(`campaign ${input.campaignId} has no runs: no cases`, 'InvalidInput');
  // A run that hangs is killed by the activity at runTimeoutMs and reported TIMEOUT; the activity timeout only
  // catches a worker that died, and the heartbeat timeout notices that within seconds.
  const { runReplay } = proxyActivities<Activities>({
    taskQueue: input.taskQueue,
    startToCloseTimeout: input.runTimeoutMs + 120_000,
    heartbeatTimeout: '15 seconds',
    retry: { maximumAttempts: 2, nonRetryableErrorTypes: ['InvalidConfiguration', 'InvalidInput'] },
  });

  const progress: ReplayProgress = {
    campaignId: input.campaignId,
    total: plan.length,
    done: 0,
    running: 0,
    successes: { baseline: 0, treatment: 0 },
    finished: { baseline: 0, treatment: 0 },
    failedRuns: 0,
  };
  setHandler(replayProgressQuery, () => progress);
  upsertSearchAttributes([
    { key: RoadKind, value: 'campaign' },
    { key: RoadStatus, value: 'RUNNING' },
    { key: RoadTaskId, value: input.taskId },
  ]);

  await startCampaignRecord({
    campaignId: input.campaignId,
    taskId: input.taskId,
    workflowId: workflowInfo().workflowId,
    baselineRef: input.baselineRef,
    baselineSha: input.baselineSha,
    treatmentSha: input.treatmentSha,
    settings: { cases: input.cases, repeats: input.repeats, concurrency: input.concurrency, runTimeoutMs: input.runTimeoutMs, decisionMode: input.decisionMode },
  });
  const count = (run: Pick<ReplayRunResult, 'variant' | 'outcome'>) => {
    progress.done++;
    progress.finished[run.variant]++;
    if (run.outcome === 'SUCCESS') progress.successes[run.variant]++;
  };
  const stored = new Set<number>();
  for (const run of await storedReplayRuns({ campaignId: input.campaignId })) {
    stored.add(run.runIndex);
    count(run);
  }
  showProgress(input, progress);

  const pending = plan.filter((run) => !stored.has(run.runIndex));
  const failures: Array<{ run: PlannedRun; message: string }> = [];
  let next = 0;
  const lane = async () => {
    while (next < pending.length) {
      const run = pending[next++]!;
      progress.running++;
      try {
        const result = await runReplay({
          campaignId: input.campaignId,
          taskId: input.taskId,
          caseId: run.caseId,
          phaseId: run.phaseId,
          variant: run.variant,
          ref: run.variant === 'baseline' ? input.baselineSha : input.treatmentSha,
          repeat: run.repeat,
          runIndex: run.runIndex,
        });
        count(result);
      } catch (error) {
        // An infrastructure failure after its retries: the other runs go on, the campaign fails at the end.
        failures.push({ run, message: (error as Error).cause instanceof Error ? ((error as Error).cause as Error).message : (error as Error).message });
        progress.failedRuns++;
        log.warn('replay run failed', { runIndex: run.runIndex, caseId: run.caseId, variant: run.variant });
      } finally {
        progress.running--;
        showProgress(input, progress);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(input.concurrency, pending.length)) }, lane));

  if (failures.length) {
    upsertSearchAttributes([{ key: RoadStatus, value: 'FAILED' }]);
    const first = failures[0]!;
    const message =
      `${failures.length} of ${plan.length} replay runs could not be run (first: case ${first.run.caseId}, ${first.run.variant}, run ${first.run.runIndex}: ${first.message}); ` +
      'stored runs are kept — run the task again to retry only the missing ones';
    await finishCampaignRecord({ campaignId: input.campaignId, status: 'failed', error: message });
    throw ApplicationFailure.nonRetryable(message, 'ReplayInfrastructureFailed');
  }

  const compared = await compareCampaign({
    campaignId: input.campaignId,
    taskType: input.taskType,
    failureStopReason: input.failureStopReason,
    decisionMode: input.decisionMode,
  });
  upsertSearchAttributes([{ key: RoadStatus, value: compared.verdicts.gating }]);
  setCurrentDetails(
    [
      `**${compared.verdicts.gating}** (${compared.verdicts.decisionMode} verdict) after ${plan.length} runs`,
      '',
      `- Seed verdict: ${compared.verdicts.seed}; statistical verdict: ${compared.verdicts.statistical}`,
      ...(compared.verdicts.why ? [`- Why they differ: ${compared.verdicts.why}`] : []),
      `- Report: \`${compared.reportPaths.markdown}\` — or \`road replay show ${input.taskId}\``,
    ].join('\n'),
  );
  return { campaignId: input.campaignId, verdicts: compared.verdicts, reportPaths: compared.reportPaths, runs: plan.length };
}

function showProgress(input: ReplayCampaignInput, p: ReplayProgress): void {
  setCurrentDetails(
    [
      `**Replaying** ${input.taskId}: ${p.done} of ${p.total} runs done, ${p.running} running`,
      '',
      `- Baseline \`${input.baselineSha.slice(0, 12)}\` vs treatment \`${input.treatmentSha.slice(0, 12)}\`: ${input.cases.length} case(s) × ${input.repeats} × 2`,
      ...(p.failedRuns ? [`- ${p.failedRuns} run(s) failed to run (infrastructure)`] : []),
      `- Progress: \`road replay show ${input.taskId}\``,
    ].join('\n'),
  );
}
