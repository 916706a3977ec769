/** Runs the real `road` command (bin/road.js) as a user would, in a child process. */
import { spawn } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROAD = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'bin', 'road.js');

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export function road(args: string[], env: Record<string, string>): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [ROAD, ...args], {
      // A neutral working directory and ROAD_HOME keep a developer's road.config.json and running `road dev` out of the test.
      cwd: os.tmpdir(),
      env: { ...process.env, ROAD_HOME: path.join(os.tmpdir(), 'road-cli-test-home'), ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.once('error', reject);
    child.once('exit', (code) => resolve({ code, stdout, stderr }));
  });
}
