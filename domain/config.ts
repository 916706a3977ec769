/** road.config.json: one zod-validated file; environment variables override the connection settings. */
import { z } from 'zod';
import { parseDuration } from './duration.js';
import { notifySchema } from './notify.js';

const durationText = z.string().refine(
  (text) => {
    try {
      parseDuration(text);
      return true;
    } catch {
      return false;
    }
  },
  { message: 'must be a duration such as 90s, 30m, 36h, 7d' },
);

const port = z.number().int().min(1).max(65535);

/** A duration with an upper bound, whose messages name the key (`replay.timeout must be at most 24 hours`). */
const boundedDuration = (key: string, maxMs: number, maxText: string) =>
  z.string({ error: `${key} must be a duration such as 90s, 30m, 2h` }).superRefine((text, ctx) => {
    let ms: number;
    try {
      ms = parseDuration(text);
    } catch {
      ctx.addIssue({ code: 'custom', message: `${key} must be a duration such as 90s, 30m, 2h` });
      return;
    }
    if (ms > maxMs) ctx.addIssue({ code: 'custom', message: `${key} must be at most ${maxText}` });
  });

const DAY_MS = 86_400_000;

/** A program and its arguments, run without a shell: no quoting rules, no injection through task text. */
const argv = (key: string) =>
  z
    .array(z.string({ error: `${key} items must be strings` }).min(1, `${key} items must not be empty`), {
      error: `${key} must be an argv array such as ["./run.sh", "--flag"], not a shell string`,
    })
    .min(1, `${key} must name a program (at least 1 item)`)
    .max(256, `${key} must have at most 256 items`);

const boundedInt = (key: string, min: number, max: number) =>
  z
    .number({ error: `${key} must be an integer from ${min} to ${max}` })
    .int(`${key} must be an integer from ${min} to ${max}`)
    .min(min, `${key} must be at least ${min}`)
    .max(max, `${key} must be at most ${max}`);

/** The target repository whose candidates ROAD builds and replays. */
const repositorySchema = z
  .object({
    /** Absolute, or relative to the directory of road.config.json. */
    path: z.string({ error: 'repository.path must be a path' }).min(1, 'repository.path must not be empty').max(4096, 'repository.path must be at most 4096 characters'),
    /** The ref candidates start from and replay compares against. */
    baselineRef: z.string().min(1, 'repository.baselineRef must not be empty').max(255, 'repository.baselineRef must be at most 255 characters').default('main'),
    /** What an approved candidate becomes: its branch `road/<task-id>` only, or a merge into the baseline ref. */
    onApproval: z.enum(['branch', 'merge'], { error: 'repository.onApproval must be "branch" or "merge"' }).default('branch'),
  })
  .strict();

const executorCommandSchema = z
  .object({
    command: argv('executor.command'),
    timeout: boundedDuration('executor.timeout', DAY_MS, '24 hours').default('30m'),
  })
  .strict();

const EXECUTOR_SHAPE = 'executor must be "manual" or { "command": [argv…], "timeout": "30m" }';

/**
 * "manual" or a command. Not a zod union: a union that fails reports only "Invalid input", and the person editing
 * road.config.json needs to hear that `executor.command` must be an array, not that the whole value is wrong.
 */
const executorSchema = z
  .unknown()
  .default('manual')
  .transform((value, ctx): 'manual' | z.output<typeof executorCommandSchema> => {
    if (value === 'manual') return 'manual';
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      ctx.addIssue({ code: 'custom', message: EXECUTOR_SHAPE });
      return z.NEVER;
    }
    const parsed = executorCommandSchema.safeParse(value);
    if (parsed.success) return parsed.data;
    for (const issue of parsed.error.issues) ctx.addIssue({ code: 'custom', message: issue.message, path: issue.path });
    return z.NEVER;
  });

/** Where replay cases come from when config lists none: the runs behind the task's evidence. */
const replayCaseSchema = z
  .object({
    id: z.string({ error: 'replay.cases[].id must be a string' }).min(1, 'replay.cases[].id must not be empty').max(255, 'replay.cases[].id must be at most 255 characters'),
    phaseId: z.string().min(1, 'replay.cases[].phaseId must not be empty').max(255, 'replay.cases[].phaseId must be at most 255 characters').optional(),
  })
  .strict();

export const MAX_REPLAY_CASES = 100;

const replaySchema = z
  .object({
    command: argv('replay.command'),
    cases: z.array(replayCaseSchema).max(MAX_REPLAY_CASES, `replay.cases must list at most ${MAX_REPLAY_CASES} cases`).optional(),
    repeats: boundedInt('replay.repeats', 1, 20).default(3),
    concurrency: boundedInt('replay.concurrency', 1, 64).default(4),
    timeout: boundedDuration('replay.timeout', DAY_MS, '24 hours').default('10m'),
    taskQueue: z.string().min(1, 'replay.taskQueue must not be empty').max(255, 'replay.taskQueue must be at most 255 characters').default('road-replay'),
    decisionMode: z.enum(['statistical', 'seed'], { error: 'replay.decisionMode must be "statistical" or "seed"' }).default('statistical'),
    /** The most runs one campaign may schedule (cases × repeats × 2). */
    maxRuns: boundedInt('replay.maxRuns', 2, 100_000).default(2000),
  })
  .strict()
  .superRefine((replay, ctx) => {
    const ids = (replay.cases ?? []).map((c) => c.id);
    const twice = ids.find((id, i) => ids.indexOf(id) !== i);
    if (twice !== undefined) ctx.addIssue({ code: 'custom', path: ['cases'], message: `replay.cases ids must be unique ("${twice}" appears twice)` });
    const runs = ids.length * replay.repeats * 2;
    if (runs > replay.maxRuns) {
      ctx.addIssue({
        code: 'custom',
        path: ['cases'],
        message: `replay: ${ids.length} cases × ${replay.repeats} repeats × 2 arms = ${runs} runs, more than replay.maxRuns (${replay.maxRuns})`,
      });
    }
  });

/** ROAD-F: how good a fix must be to become a promoted rule, and how a rule is demoted when its phases regress. */
const promotionSchema = z
  .object({
    /** Treatment success rate in replay a fix needs to be promoted (the seed's 90 %). */
    minSuccessRate: z
      .number({ error: 'promotion.minSuccessRate must be a number from 0 to 1' })
      .gt(0, 'promotion.minSuccessRate must be above 0')
      .max(1, 'promotion.minSuccessRate must be at most 1')
      .default(0.9),
    demotion: z
      .object({
        /** Level of the one-sided two-proportion test (failure rate after promotion > before). */
        alpha: z
          .number({ error: 'promotion.demotion.alpha must be a number above 0 and at most 0.5' })
          .gt(0, 'promotion.demotion.alpha must be above 0')
          .max(0.5, 'promotion.demotion.alpha must be at most 0.5')
          .default(0.05),
        /** Events each window needs before the test is trusted. */
        minSample: boundedInt('promotion.demotion.minSample', 1, 1_000_000).default(30),
        /** The latest hours since promotion compared with as many hours before it. */
        windowHours: boundedInt('promotion.demotion.windowHours', 1, 8760).default(168),
      })
      .strict()
      .default({ alpha: 0.05, minSample: 30, windowHours: 168 }),
  })
  .strict();

/** A file a task may touch: repo-relative, no `..`, and a real path — never a template or a glob. */
export const repoFile = z
  .string()
  .min(1)
  .max(1024)
  .refine((p) => !p.startsWith('/') && !/^[A-Za-z]:/.test(p) && !p.split(/[\\/]/).includes('..'), { message: 'must be repo-relative, without ".."' })
  .refine((p) => !/[*?{}<>$[\]]/.test(p), { message: 'must be a real path, not a template or glob' });

export const configSchema = z
  .object({
    temporal: z
      .object({
        address: z.string().min(1).default('localhost:7233'),
        namespace: z.string().min(1).default('default'),
        taskQueue: z.string().min(1).default('road'),
      })
      .strict()
      .default({ address: 'localhost:7233', namespace: 'default', taskQueue: 'road' }),
    database: z.object({ url: z.string().url().optional() }).strict().default({}),
    approval: z
      .object({
        /** Who may approve or reject follow-up tasks. */
        reviewers: z.array(z.string().trim().min(1).max(255)).max(50, 'approval.reviewers must name at most 50 reviewers').default([]),
        /** How long a request waits for a decision before it expires. */
        timeout: durationText.default('7d'),
      })
      .strict()
      .default({ reviewers: [], timeout: '7d' }),
    /** phase_id → the files that phase works on: task scope when the telemetry names no files. */
    phases: z.record(z.string().min(1).max(255), z.array(repoFile).min(1).max(50)).default({}),
    tasks: z
      .object({
        /** Attempts per follow-up task: at most 2 (DESIGN.md), which config may lower but never raise. */
        maxAttempts: z
          .number()
          .int()
          .min(1, 'tasks.maxAttempts must be at least 1')
          .max(2, 'tasks.maxAttempts must be at most 2: a follow-up task never gets more than 2 attempts')
          .default(2),
      })
      .strict()
      .default({ maxAttempts: 2 }),
    /** ROAD-E: the repository candidates are built in; absent → the loop refuses to run a task and names this key. */
    repository: repositorySchema.optional(),
    /** Who writes a candidate: a command (argv) run in a fresh worktree, or "manual" (a person submits a ref). */
    executor: executorSchema,
    /** ROAD-E: how baseline and treatment are replayed; absent → the loop refuses to run a task and names this key. */
    replay: replaySchema.optional(),
    /** ROAD-F: promotion threshold and demotion test; defaults when absent. */
    promotion: promotionSchema.default({ minSuccessRate: 0.9, demotion: { alpha: 0.05, minSample: 30, windowHours: 168 } }),
    /** Webhook receivers of approval and analysis events (domain/notify.ts); none when absent. */
    notify: notifySchema,
    dev: z
      .object({
        temporalPort: port.default(7233),
        uiPort: port.default(8233),
        postgresPort: port.default(5433),
      })
      .strict()
      .default({ temporalPort: 7233, uiPort: 8233, postgresPort: 5433 }),
  })
  .strict();

export type RoadConfig = z.output<typeof configSchema>;
export type RepositoryConfig = NonNullable<RoadConfig['repository']>;
export type ExecutorConfig = RoadConfig['executor'];
export type ReplayConfig = NonNullable<RoadConfig['replay']>;
export type PromotionConfig = RoadConfig['promotion'];

/** Applies DATABASE_URL, TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE and ROAD_TASK_QUEUE over the file's values. */
export function withEnvironment(config: RoadConfig, env: Record<string, string | undefined>): RoadConfig {
  return {
    ...config,
    temporal: {
      address: env.TEMPORAL_ADDRESS || config.temporal.address,
      namespace: env.TEMPORAL_NAMESPACE || config.temporal.namespace,
      taskQueue: env.ROAD_TASK_QUEUE || config.temporal.taskQueue,
    },
    database: { url: env.DATABASE_URL || config.database.url },
  };
}
