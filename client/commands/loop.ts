/** `road loop start | status | list` and `road schedule create | list | delete | trigger`. */
import { ScheduleNotFoundError, WorkflowNotFoundError, type Client } from '@temporalio/client';
import type { Command } from 'commander';
import { InvalidInput, NotFound } from '../../domain/errors.js';
import type { LoopInput, LoopStatus } from '../../domain/loop.js';
import { followupTaskStatusQuery, loopStatusQuery, loopWorkflowId, taskWorkflowId } from '../../workflows/definitions.js';
import type { improvementLoop } from '../../workflows/improvementLoop.js';
import type { Session } from '../cli.js';
import { readDevState } from '../config.js';
import { formatTable, printJson } from '../format.js';
import { createLoopSchedule, scheduleIdOf, startImprovementLoop } from '../loop.js';
import { uiWorkflowUrl } from '../temporal.js';

const list = (value: string): string[] => value.split(',').map((v) => v.trim()).filter(Boolean);
const whole = (name: string) => (value: string): number => {
  if (!/^\d+$/.test(value.trim())) throw new InvalidInput(`${name} must be a whole number (got "${value}")`);
  return Number(value);
};

interface LoopOptions {
  window?: string;
  topK?: number;
  maxConcurrent?: number;
  reviewers?: string[];
  approvalTimeout?: string;
}

const loopOptions = (command: Command) =>
  command
    .option('--window <duration>', 'the analysis window, e.g. 7d (default 7d)')
    .option('--top-k <n>', 'issues of the ranking that become tasks, 1–20 (default 3)', whole('--top-k'))
    .option('--max-concurrent <n>', 'tasks worked at the same time, 1–10 (default 2)', whole('--max-concurrent'))
    .option('--reviewers <list>', 'comma-separated reviewers who may decide (default: approval.reviewers of road.config.json)', list)
    .option('--approval-timeout <duration>', 'how long each gate waits for a reviewer (default: approval.timeout)');

const inputOf = (o: LoopOptions, requestedBy: string): LoopInput => ({
  ...(o.window ? { window: o.window } : {}),
  ...(o.topK !== undefined ? { topK: o.topK } : {}),
  ...(o.maxConcurrent !== undefined ? { maxConcurrentTasks: o.maxConcurrent } : {}),
  ...(o.reviewers ? { reviewers: o.reviewers } : {}),
  ...(o.approvalTimeout ? { approvalTimeout: o.approvalTimeout } : {}),
  requestedBy,
});

export function registerLoopCommands(program: Command, session: () => Session): void {
  const loop = program.command('loop').description('improvement loops: analysis → tasks → candidate → replay → approval → promoted rules');

  loopOptions(loop.command('start').description('start one improvement loop now (workflow road-loop-<id>)'))
    .option('--id <id>', 'the loop id (default: the start time); an id is never reused')
    .option('--json', 'print the started workflow as JSON')
    .action(async (opts: LoopOptions & { id?: string; json?: boolean }) => {
      const s = session();
      const handle = await startImprovementLoop(await s.temporal(), { taskQueue: s.config.temporal.taskQueue, loopId: opts.id, input: inputOf(opts, `cli ${process.env.USER ?? ''}`.trim()) });
      const loopId = handle.workflowId.replace(/^road-loop-/, '');
      const ui = uiWorkflowUrl(readDevState()?.uiUrl ?? 'http://localhost:8233', s.config.temporal.namespace, handle.workflowId);
      if (opts.json) return printJson({ loopId, workflowId: handle.workflowId, ui });
      console.log(`Started loop ${loopId} (${handle.workflowId})\n  Temporal UI: ${ui}\n  Follow it:   road loop status ${loopId}\n  Decide:      road pending, then road approve <task> --reviewer <you>`);
    });

  loop
    .command('status <loopId>')
    .description("a loop's stage and each task's state (live while it runs, the report once it is done)")
    .option('--json', 'print JSON')
    .action(async (loopId: string, opts: { json?: boolean }) => {
      const client = await session().temporal();
      const status = await loopStatus(client, loopId);
      if (opts.json) return printJson(status);
      console.log(renderLoopStatus(status));
    });

  loop
    .command('list')
    .description('recent loops, newest first (from Temporal visibility)')
    .option('--limit <n>', 'how many', whole('--limit'), 20)
    .option('--json', 'print JSON')
    .action(async (opts: { limit: number; json?: boolean }) => {
      const client = await session().temporal();
      let rows: Array<{ loopId: string; status: string; stage: string; started: string; closed: string | null }> = [];
      // Not every visibility store can ORDER BY (the dev server's SQLite cannot): sort here, newest first.
      for await (const w of client.workflow.list({ query: `RoadKind = 'loop'` })) {
        rows.push({
          loopId: w.workflowId.replace(/^road-loop-/, ''),
          status: w.status.name,
          stage: String(w.typedSearchAttributes.getAll().find((p) => p.key.name === 'RoadStatus')?.value ?? '—'),
          started: w.startTime.toISOString(),
          closed: w.closeTime?.toISOString() ?? null,
        });
        if (rows.length >= 10_000) break;
      }
      rows = rows.sort((a, b) => (a.started < b.started ? 1 : -1)).slice(0, opts.limit);
      if (opts.json) return printJson(rows);
      if (!rows.length) return console.log('No loop yet: start one with `road loop start`.');
      console.log(formatTable(['LOOP', 'STATUS', 'STAGE', 'STARTED', 'CLOSED'], rows.map((r) => [r.loopId, r.status, r.stage, r.started, r.closed ?? '—'])));
    });

  const schedule = program.command('schedule').description('Temporal Schedules that start improvement loops (e.g. weekly)');
  loopOptions(schedule.command('create').description('create a schedule that starts a loop every interval or on a cron'))
    .option('--id <id>', 'the schedule id', 'weekly')
    .option('--every <duration>', 'e.g. 7d')
    .option('--cron <expression>', 'e.g. "0 6 * * 1" (Mondays 06:00 UTC)')
    .option('--json', 'print JSON')
    .action(async (opts: LoopOptions & { id: string; every?: string; cron?: string; json?: boolean }) => {
      const s = session();
      const handle = await createLoopSchedule(await s.temporal(), { taskQueue: s.config.temporal.taskQueue, id: opts.id, every: opts.every, cron: opts.cron, input: inputOf(opts, `schedule ${opts.id}`) });
      const next = (await handle.describe()).info.nextActionTimes[0]?.toISOString() ?? '—';
      if (opts.json) return printJson({ scheduleId: handle.scheduleId, next });
      console.log(`Created schedule ${handle.scheduleId}; next loop at ${next}\n  Start one now: road schedule trigger ${opts.id}`);
    });
  schedule
    .command('list')
    .description('ROAD loop schedules with their next run')
    .option('--json', 'print JSON')
    .action(async (opts: { json?: boolean }) => {
      const client = await session().temporal();
      const rows: Array<{ id: string; scheduleId: string; spec: string; next: string; recent: number; paused: boolean }> = [];
      for await (const sched of client.schedule.list()) {
        if (!sched.scheduleId.startsWith(scheduleIdOf(''))) continue;
        const intervals = sched.spec?.intervals?.map((i) => `every ${Number(i.every) / 3_600_000}h`) ?? [];
        rows.push({
          id: sched.scheduleId.slice(scheduleIdOf('').length),
          scheduleId: sched.scheduleId,
          spec: [...intervals, ...(sched.spec?.calendars?.length ? ['calendar'] : [])].join(', ') || '—',
          next: sched.info.nextActionTimes[0]?.toISOString() ?? '—',
          recent: sched.info.recentActions.length,
          paused: sched.state.paused,
        });
      }
      if (opts.json) return printJson(rows);
      if (!rows.length) return console.log('No loop schedule: create one with `road schedule create --every 7d`.');
      console.log(formatTable(['ID', 'SPEC', 'NEXT', 'RECENT RUNS', 'PAUSED'], rows.map((r) => [r.id, r.spec, r.next, String(r.recent), String(r.paused)])));
    });
  schedule
    .command('trigger <id>')
    .description('start the schedule\'s loop now')
    .action(async (id: string) => {
      await scheduleHandle(await session().temporal(), id, (h) => h.trigger());
      console.log(`Triggered ${scheduleIdOf(id)}: \`road loop list\` shows the loop it started.`);
    });
  schedule
    .command('delete <id>')
    .description('delete a schedule (loops it started keep running)')
    .action(async (id: string) => {
      await scheduleHandle(await session().temporal(), id, (h) => h.delete());
      console.log(`Deleted ${scheduleIdOf(id)}.`);
    });
}

async function scheduleHandle(client: Client, id: string, act: (handle: ReturnType<Client['schedule']['getHandle']>) => Promise<void>): Promise<void> {
  try {
    await act(client.schedule.getHandle(scheduleIdOf(id)));
  } catch (error) {
    if (error instanceof ScheduleNotFoundError) throw new NotFound(`no schedule ${id} (see \`road schedule list\`)`);
    throw error;
  }
}

/** The loop's status: its report once done, its live status (with each running task's stage) while it runs. */
export async function loopStatus(client: Client, loopId: string): Promise<LoopStatus & { workflowStatus: string }> {
  const handle = client.workflow.getHandle<typeof improvementLoop>(loopWorkflowId(loopId));
  let description;
  try {
    description = await handle.describe();
  } catch (error) {
    if (error instanceof WorkflowNotFoundError) throw new NotFound(`no loop ${loopId} (see \`road loop list\`)`);
    throw error;
  }
  if (description.status.name === 'COMPLETED') return { ...(await handle.result()), workflowStatus: 'COMPLETED' };
  const status = await handle.query(loopStatusQuery);
  if (description.status.name === 'RUNNING') {
    // A running task's own stage says more than "running": ask each of them.
    await Promise.all(
      status.tasks
        .filter((t) => t.outcome === 'running' && t.detail !== 'queued')
        .map(async (t) => {
          const task = await client.workflow.getHandle(taskWorkflowId(t.taskId)).query(followupTaskStatusQuery).catch(() => undefined);
          if (task) t.detail = `${task.stage}: ${task.detail}`;
        }),
    );
  }
  return { ...status, workflowStatus: description.status.name };
}

export function renderLoopStatus(s: LoopStatus & { workflowStatus: string; reportPaths?: { markdown: string } }): string {
  const lines = [`loop ${s.loopId}: ${s.workflowStatus.toLowerCase()}, stage ${s.stage} — ${s.detail}`];
  if (s.analysis) lines.push(`  analysis: ${s.analysis.events} events from ${s.analysis.window.from} to ${s.analysis.window.to}, ${s.analysis.issues} issues`);
  for (const t of s.tasks) {
    const extra = [
      t.verdicts ? `replay ${t.verdicts.gating}` : '',
      t.decidedBy ? `by ${t.decidedBy}` : '',
      t.landing ? `landing ${t.landing.status}` : '',
      t.promotion ? (t.promotion.promoted ? `rule ${t.promotion.ruleId}` : `not promoted (${t.promotion.reason})`) : '',
    ].filter(Boolean);
    lines.push(`  ${t.taskId} [${t.outcome}] ${t.title}${extra.length ? ` — ${extra.join(', ')}` : ''}`, `      ${t.detail}`);
  }
  for (const d of s.demoted) lines.push(`  demoted ${d.ruleId} (${d.phases.join(', ')}): ${d.reason}`);
  if (s.skipped.length) lines.push(`  ${s.skipped.length} issue(s) skipped (a task is already open)`);
  if (s.reportPaths) lines.push(`  report: ${s.reportPaths.markdown}`);
  return lines.join('\n');
}
