/** `road replay show TASK_ID`: a task's latest replay campaign — its report when compared, its progress while running. */
import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import type { Command } from 'commander';
import { loadCampaign } from '../../db/replay.js';
import { replayProgressQuery, replayWorkflowId, type ReplayProgress } from '../../workflows/definitions.js';
import type { Session } from '../cli.js';
import { NotFound } from '../../domain/errors.js';
import { printJson } from '../format.js';

export function registerReplayCommands(program: Command, session: () => Session): void {
  const replay = program.command('replay').description('A/B replay campaigns of follow-up tasks');
  replay
    .command('show <taskId>')
    .description("a task's latest replay campaign: the report (markdown) when compared, its progress while it runs")
    .option('--json', 'print the campaign and its versioned report (road.replay/v1) as JSON')
    .action(async (taskId: string, opts: { json?: boolean }) => {
      const s = session();
      const campaign = await loadCampaign(s.database(), { taskId });
      if (!campaign) throw new NotFound(`no replay campaign for ${taskId} yet (it starts once the task has a candidate: \`road tasks status ${taskId}\`)`);
      const progress = campaign.status === 'running' ? await liveProgress(await s.temporal(), taskId) : undefined;
      if (opts.json) return printJson({ ...campaign, progress });
      if (campaign.reportMarkdown) return console.log(campaign.reportMarkdown);
      const done = progress?.done ?? campaign.runsStored;
      const total = progress?.total ?? campaign.runsPlanned ?? '?';
      console.log(
        [
          `${campaign.campaignId}: ${campaign.status}, ${done} of ${total} runs done` +
            (progress ? ` (${progress.running} running; successes so far: baseline ${progress.successes.baseline}/${progress.finished.baseline}, treatment ${progress.successes.treatment}/${progress.finished.treatment})` : ''),
          `  baseline ${campaign.baselineSha.slice(0, 12)} vs treatment ${campaign.treatmentSha.slice(0, 12)}`,
          ...(campaign.error ? [`  error: ${campaign.error}`] : []),
        ].join('\n'),
      );
    });
}

async function liveProgress(client: Client, taskId: string): Promise<ReplayProgress | undefined> {
  try {
    return await client.workflow.getHandle(replayWorkflowId(taskId)).query(replayProgressQuery);
  } catch (error) {
    if (error instanceof WorkflowNotFoundError) return undefined;
    throw error;
  }
}
