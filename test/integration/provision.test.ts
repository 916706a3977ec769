/** `road provision` as a user runs it: a second run only checks, and missing build tools give one clear message. */
import { mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { ProvisionResult } from '../../scripts/provision.js';
import { road } from '../helpers/cli.js';

const scratch = mkdtempSync(path.join(os.tmpdir(), 'road-provision-test-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

describe('road provision', () => {
  it('is idempotent: with the binaries built, a second run rebuilds nothing and takes well under 10 s', async () => {
    const started = performance.now();
    const result = await road(['provision', '--json'], {});
    const seconds = (performance.now() - started) / 1000;
    expect(result.code, result.stderr).toBe(0);
    const report = JSON.parse(result.stdout) as ProvisionResult;
    expect(report.temporalCli.built).toBe(false);
    expect(report.testServer.built).toBe(false);
    expect(seconds).toBeLessThan(10);
  });

  it('names every missing build tool and the variables that point at existing binaries instead', async () => {
    // A PATH that has node (to run road itself) and nothing else; an empty tools folder so everything must be built.
    const onlyNode = path.join(scratch, 'only-node');
    mkdirSync(onlyNode);
    symlinkSync(process.execPath, path.join(onlyNode, 'node'));

    const result = await road(['provision'], { PATH: onlyNode, ROAD_TOOLS_DIR: path.join(scratch, 'tools') });
    expect(result.code).toBe(1);
    const message = result.stderr.trim();
    expect(message.split('\n')).toHaveLength(1);
    for (const tool of ['`go`', '`java`', '`mvn`', 'TEMPORAL_CLI_PATH', 'TEMPORAL_TEST_SERVER_PATH']) expect(message).toContain(tool);
    expect(message).not.toMatch(/\n\s+at /); // no stack trace

    // With the CLI supplied through its variable, only the test server's tools are missing.
    const partly = await road(['provision'], {
      PATH: onlyNode,
      ROAD_TOOLS_DIR: path.join(scratch, 'tools'),
      TEMPORAL_CLI_PATH: process.execPath, // any existing executable stands in for it
    });
    expect(partly.code).toBe(1);
    expect(partly.stderr).not.toContain('`go`');
    expect(partly.stderr).toContain('`java`');
  });
});
