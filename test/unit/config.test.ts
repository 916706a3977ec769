import { describe, expect, it } from 'vitest';
import { configSchema, withEnvironment } from '../../domain/config.js';
import { describeZodError } from '../../domain/validation.js';

describe('road.config.json', () => {
  it('fills defaults for an empty file', () => {
    const config = configSchema.parse({});
    expect(config.temporal).toEqual({ address: 'localhost:7233', namespace: 'default', taskQueue: 'road' });
    expect(config.approval).toEqual({ reviewers: [], timeout: '7d' });
    expect(config.dev.uiPort).toBe(8233);
  });

  it('names the field of a bad value and refuses unknown keys', () => {
    const bad = configSchema.safeParse({ approval: { timeout: 'a while' }, dev: { uiPort: 70000 }, extra: 1 });
    expect(bad.success).toBe(false);
    const message = describeZodError(bad.error!);
    expect(message).toMatch(/approval\.timeout: must be a duration/);
    expect(message).toMatch(/dev\.uiPort/);
    expect(message).toMatch(/extra/);
  });

  it('lets the environment override connections', () => {
    const config = withEnvironment(configSchema.parse({}), { TEMPORAL_ADDRESS: 'temporal:7233', ROAD_TASK_QUEUE: 'q', DATABASE_URL: 'postgres://x/y' });
    expect(config.temporal).toEqual({ address: 'temporal:7233', namespace: 'default', taskQueue: 'q' });
    expect(config.database.url).toBe('postgres://x/y');
  });
});
