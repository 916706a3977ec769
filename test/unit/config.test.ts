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

describe('road.config.json: repository, executor and replay (ROAD-E)', () => {
  const problem = (input: unknown): string => {
    const parsed = configSchema.safeParse(input);
    expect(parsed.success).toBe(false);
    return describeZodError(parsed.error!);
  };

  it('leaves repository and replay absent, and the executor manual, when the file says nothing', () => {
    const config = configSchema.parse({});
    expect(config.repository).toBeUndefined();
    expect(config.replay).toBeUndefined();
    expect(config.executor).toBe('manual');
  });

  it('fills the documented defaults of each section', () => {
    const config = configSchema.parse({ repository: { path: '../agent' }, executor: { command: ['./fix.sh', '--task'] }, replay: { command: ['./replay.sh'] } });
    expect(config.repository).toEqual({ path: '../agent', baselineRef: 'main', onApproval: 'branch' });
    expect(config.executor).toEqual({ command: ['./fix.sh', '--task'], timeout: '30m' });
    expect(config.replay).toEqual({
      command: ['./replay.sh'],
      repeats: 3,
      concurrency: 4,
      timeout: '10m',
      taskQueue: 'road-replay',
      decisionMode: 'statistical',
      maxRuns: 2000,
    });
  });

  it('takes configured cases with and without a phase', () => {
    const config = configSchema.parse({ replay: { command: ['r'], cases: [{ id: 'run-1', phaseId: 'plan' }, { id: 'run-2' }], repeats: 5 } });
    expect(config.replay!.cases).toEqual([{ id: 'run-1', phaseId: 'plan' }, { id: 'run-2' }]);
    expect(config.replay!.repeats).toBe(5);
  });

  it.each([
    [{ executor: 'auto' }, 'executor must be "manual" or { "command": [argv…], "timeout": "30m" }'],
    [{ executor: { command: 'make fix' } }, 'executor.command must be an argv array such as ["./run.sh", "--flag"], not a shell string'],
    [{ executor: { command: [] } }, 'executor.command must name a program (at least 1 item)'],
    [{ executor: { command: ['fix', ''] } }, 'executor.command items must not be empty'],
    [{ executor: { command: ['fix'], timeout: '2d' } }, 'executor.timeout must be at most 24 hours'],
    [{ executor: { command: ['fix'], timeout: 'soon' } }, 'executor.timeout must be a duration such as 90s, 30m, 2h'],
    [{ repository: { path: '' } }, 'repository.path must not be empty'],
    [{ repository: { path: '/src/agent', baselineRef: '' } }, 'repository.baselineRef must not be empty'],
    [{ repository: { path: '/src/agent', onApproval: 'push' } }, 'repository.onApproval must be "branch" or "merge"'],
    [{ replay: { command: ['r'], repeats: 21 } }, 'replay.repeats must be at most 20'],
    [{ replay: { command: ['r'], repeats: 0 } }, 'replay.repeats must be at least 1'],
    [{ replay: { command: ['r'], repeats: 2.5 } }, 'replay.repeats must be an integer from 1 to 20'],
    [{ replay: { command: ['r'], concurrency: 65 } }, 'replay.concurrency must be at most 64'],
    [{ replay: { command: ['r'], timeout: '25h' } }, 'replay.timeout must be at most 24 hours'],
    [{ replay: { command: ['r'], decisionMode: 'vibes' } }, 'replay.decisionMode must be "statistical" or "seed"'],
    [{ replay: { command: ['r'], cases: [{ id: 'a' }, { id: 'a' }] } }, 'replay.cases ids must be unique ("a" appears twice)'],
    [{ replay: { command: ['r'], cases: Array.from({ length: 101 }, (_, i) => ({ id: `c${i}` })) } }, 'replay.cases must list at most 100 cases'],
  ])('refuses %j naming the key and the limit', (input, message) => {
    expect(problem(input)).toContain(message);
  });

  it('refuses configured cases that would schedule more runs than replay.maxRuns', () => {
    // 60 cases × 20 repeats × 2 arms = 2,400 runs > the default cap of 2,000; 50 cases would be exactly 2,000.
    const cases = (n: number) => Array.from({ length: n }, (_, i) => ({ id: `case-${i}` }));
    expect(problem({ replay: { command: ['r'], repeats: 20, cases: cases(60) } })).toContain('2400 runs, more than replay.maxRuns (2000)');
    expect(configSchema.safeParse({ replay: { command: ['r'], repeats: 20, cases: cases(50) } }).success).toBe(true);
  });

  it('refuses unknown keys inside the new sections', () => {
    expect(problem({ executor: { command: ['fix'], shell: true } })).toMatch(/executor.*shell/);
    expect(problem({ replay: { command: ['r'], parallel: 3 } })).toMatch(/replay.*parallel/);
    expect(problem({ repository: { path: '/x', url: 'git@x' } })).toMatch(/repository.*url/);
  });
});
