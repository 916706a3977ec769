/**
 * Starting and watching improvement loops from TypeScript — what `road loop` and `road schedule` do, for programs:
 *
 *   import { Client, Connection } from '@temporalio/client';
 *   import { startImprovementLoop } from 'road/client/loop';
 *   const client = new Client({ connection: await Connection.connect({ address: 'localhost:7233' }) });
 *   const { workflowId } = await startImprovementLoop(client, { taskQueue: 'road', input: { window: '7d', topK: 3 } });
 */
import { ScheduleAlreadyRunning, WorkflowExecutionAlreadyStartedError, type Client, type ScheduleSpec, type WorkflowHandle } from '@temporalio/client';
import { Conflict, InvalidInput } from '../domain/errors.js';
import { LOOP_ID_PATTERN, loopInputSchema, loopWorkflowId, type LoopInput } from '../domain/loop.js';
import { describeZodError } from '../domain/validation.js';
import { parseDuration } from '../domain/duration.js';
import { IMPROVEMENT_LOOP_WORKFLOW, RoadKind, RoadStatus } from '../workflows/definitions.js';
import type { improvementLoop } from '../workflows/improvementLoop.js';

export interface StartLoopOptions {
  taskQueue: string;
  /** The loop's id (its workflow is `road-loop-<id>`); default: the start time, e.g. 20261128-140512. A used id is refused. */
  loopId?: string;
  input?: LoopInput;
}

function validInput(input: LoopInput = {}): LoopInput {
  const parsed = loopInputSchema.safeParse(input);
  if (!parsed.success) throw new InvalidInput(describeZodError(parsed.error));
  return input;
}

/** A new loop id from the clock, readable and sortable. */
export const newLoopId = (now = new Date()): string => now.toISOString().replace(/\.\d+Z$/, '').replace(/[-:]/g, '').replace('T', '-');

/** Starts a loop; the same id twice is refused for good (REJECT_DUPLICATE), never a second loop. */
export async function startImprovementLoop(client: Client, options: StartLoopOptions): Promise<WorkflowHandle<typeof improvementLoop>> {
  const loopId = options.loopId ?? newLoopId();
  if (!LOOP_ID_PATTERN.test(loopId)) throw new InvalidInput(`loop id must be 1–100 characters of A–Z a–z 0–9 . _ : - (got ${JSON.stringify(loopId)})`);
  const input = validInput(options.input);
  try {
    return await client.workflow.start<typeof improvementLoop>(IMPROVEMENT_LOOP_WORKFLOW, {
      taskQueue: options.taskQueue,
      workflowId: loopWorkflowId(loopId),
      workflowIdReusePolicy: 'REJECT_DUPLICATE',
      args: [input],
      staticSummary: `Improvement loop ${loopId}`,
      staticDetails: `Window ${input.window ?? '7d'}, top ${input.topK ?? 3}${input.requestedBy ? `, started by ${input.requestedBy}` : ''}`,
      typedSearchAttributes: [
        { key: RoadKind, value: 'loop' },
        { key: RoadStatus, value: 'demotion' },
      ],
    });
  } catch (error) {
    if (error instanceof WorkflowExecutionAlreadyStartedError) throw new Conflict(`loop ${loopId} was already started (workflow ${loopWorkflowId(loopId)}): loop ids are never reused`);
    throw error;
  }
}

export const scheduleIdOf = (id: string): string => `road-loop-schedule-${id}`;

export interface CreateScheduleOptions {
  taskQueue: string;
  /** The schedule's own id (default "weekly"); its loops are road-loop-<id>-<time>. */
  id?: string;
  /** e.g. "7d"; or a cron expression instead. */
  every?: string;
  cron?: string;
  input?: LoopInput;
}

/** A Temporal Schedule that starts a loop on a calendar; a loop still running when the next is due makes it skip. */
export async function createLoopSchedule(client: Client, options: CreateScheduleOptions) {
  const id = options.id ?? 'weekly';
  if (!LOOP_ID_PATTERN.test(id)) throw new InvalidInput(`schedule id must be 1–100 characters of A–Z a–z 0–9 . _ : - (got ${JSON.stringify(id)})`);
  if (Boolean(options.every) === Boolean(options.cron)) throw new InvalidInput('give exactly one of --every (e.g. 7d) and --cron (e.g. "0 6 * * 1")');
  const input = validInput({ requestedBy: `schedule ${id}`, ...options.input });
  let spec: ScheduleSpec;
  if (options.every) {
    let every: number;
    try {
      every = parseDuration(options.every);
    } catch (error) {
      throw new InvalidInput(`--every: ${(error as Error).message}`);
    }
    if (every < 60_000) throw new InvalidInput(`--every must be at least 1 minute (got ${options.every})`);
    spec = { intervals: [{ every }] };
  } else spec = { cronExpressions: [options.cron!] };
  try {
    return await client.schedule.create({
      scheduleId: scheduleIdOf(id),
      spec,
      action: {
        type: 'startWorkflow',
        workflowType: IMPROVEMENT_LOOP_WORKFLOW,
        workflowId: loopWorkflowId(id),
        taskQueue: options.taskQueue,
        args: [input],
        staticSummary: `Improvement loop (schedule ${id})`,
        typedSearchAttributes: [{ key: RoadKind, value: 'loop' }],
      },
      policies: { overlap: 'SKIP', catchupWindow: '1 day' },
      state: { note: `ROAD improvement loop, ${options.every ? `every ${options.every}` : `cron ${options.cron}`}` },
    });
  } catch (error) {
    if (error instanceof ScheduleAlreadyRunning) throw new Conflict(`schedule ${id} already exists: delete it first (road schedule delete ${id})`);
    if (error instanceof Error && /invalid|parse|cron|interval/i.test(error.message)) throw new InvalidInput(`the schedule's spec was refused: ${error.message}`);
    throw error;
  }
}
