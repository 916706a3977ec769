/**
 * Recorded histories must replay against the current workflow code: a failure here means a change would break
 * gates that are waiting right now (use `patched()` for such changes). Refresh with ROAD_RECORD_HISTORIES=1.
 */
import { DefaultLogger, Runtime, Worker, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { bundleWorkflows } from '../helpers/temporal.js';

const FIXTURES = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'histories');
// Worker state changes at INFO would drown the test output.
Runtime.install({ logger: new DefaultLogger('WARN') });

const files = readdirSync(FIXTURES).filter((f) => f.endsWith('.json'));
let bundle: WorkflowBundleWithSourceMap;

beforeAll(async () => {
  bundle = await bundleWorkflows();
});

describe('recorded workflow histories', () => {
  it('keeps the approval gate histories of every version of its decision handling', () => {
    // Before validated decisions (a valid approval; a gate wedged by an `Approve` Update), after, and with webhooks.
    for (const kept of ['approval-gate-approved.json', 'approval-gate-unvalidated-approve.json', 'approval-gate-validated.json', 'approval-gate-notified.json']) {
      expect(files).toContain(kept);
    }
  });

  it.each(files)('replays %s without a determinism violation', async (file) => {
    const history = JSON.parse(readFileSync(path.join(FIXTURES, file), 'utf8'));
    // Throws DeterminismViolationError (or the workflow's own failure) if the code no longer matches the history.
    await Worker.runReplayHistory({ workflowBundle: bundle }, history, file);
  });
});
