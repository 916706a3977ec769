/** road.config.json: one zod-validated file; environment variables override the connection settings. */
import { z } from 'zod';
import { parseDuration } from './duration.js';

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
