/**
 * The real `road worker` as a separate process in its own process group, so that a test can SIGKILL it — and any
 * command it left running — as a crashed machine would be.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROAD = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'bin', 'road.js');

/** Starts `road worker` and resolves once it polls its task queues. */
export function startRoadWorker(cwd: string, env: Record<string, string>): Promise<ChildProcess> {
  const child = spawn(process.execPath, [ROAD, 'worker'], { cwd, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let output = '';
  return new Promise((resolve, reject) => {
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      if (output.includes('ROAD worker on task queue')) resolve(child);
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.once('exit', (code) => reject(new Error(`road worker exited (${code}) before it was ready:\n${output}`)));
  });
}

/** SIGKILL to the worker's whole process group; resolves when the worker is gone. */
export async function killRoadWorker(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  try {
    process.kill(-child.pid!, 'SIGKILL');
  } catch {
    return; // already gone
  }
  await exited;
}
