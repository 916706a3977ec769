/**
 * Measures the quick start (README): `npm start` on an empty state folder until the first approval request, and the
 * demo loop's wall time with a reviewer who approves every PROMOTE request the moment `road pending` lists it.
 * Each round runs the real `npm start` from this clone with its state in a temporary folder (ROAD_HOME) and free
 * ports, so a running `npm start` of one's own is not disturbed.
 *
 *   npx tsx scripts/measure-demo.ts [rounds = 3]
 */
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { freePort, PROJECT_ROOT } from './provision.js';

const run = promisify(execFile);
const rounds = Number(process.argv[2] ?? 3);

interface Round {
  runningS: number;
  firstApprovalS: number;
  allRequestsS: number;
  loopWallS: number;
}

async function measure(): Promise<Round> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'road-measure-demo-'));
  const dev = { temporalPort: await freePort(), uiPort: await freePort(), postgresPort: await freePort() };
  writeFileSync(path.join(dir, 'road.config.json'), JSON.stringify({ dev }));
  const env: NodeJS.ProcessEnv = { ...process.env, ROAD_HOME: path.join(dir, '.road'), ROAD_CONFIG: path.join(dir, 'road.config.json') };
  delete env.DATABASE_URL;
  delete env.TEMPORAL_ADDRESS;
  const road = async (...args: string[]) => (await run(process.execPath, [path.join(PROJECT_ROOT, 'bin', 'road.js'), ...args], { env })).stdout;

  const started = performance.now();
  const npm = spawn('npm', ['start'], { cwd: PROJECT_ROOT, env, stdio: ['ignore', 'pipe', 'ignore'], detached: true });
  const seconds = () => (performance.now() - started) / 1000;
  let output = '';
  let runningS: number | undefined;
  npm.stdout!.on('data', (chunk: Buffer) => {
    output += chunk.toString();
    if (runningS === undefined && output.includes('ROAD dev is running.')) runningS = seconds();
  });
  try {
    let firstApprovalS: number | undefined;
    const decided = new Set<string>();
    for (;;) {
      if (seconds() > 300) throw new Error('the demo did not finish within 300 s');
      await new Promise((resolve) => setTimeout(resolve, 250));
      const pending = await road('pending', '--json').then((out) => JSON.parse(out) as Array<{ taskId: string; verdict: string }>, () => undefined);
      if (!pending) continue; // road dev is not up yet
      if (pending.length && firstApprovalS === undefined) firstApprovalS = seconds();
      for (const request of pending.filter((r) => !decided.has(r.taskId))) {
        decided.add(request.taskId);
        if (request.verdict === 'PROMOTE') await road('approve', request.taskId, '--reviewer', 'alice@example.com', '--comment', 'measured');
        else await road('reject', request.taskId, '--reviewer', 'alice@example.com', '--reason', `replay says ${request.verdict}`);
      }
      const status = await road('loop', 'status', 'demo', '--json').then((out) => JSON.parse(out) as { workflowStatus: string; startedAt: string; finishedAt?: string }, () => undefined);
      if (status?.workflowStatus === 'COMPLETED') {
        const loopWallS = (Date.parse(status.finishedAt!) - Date.parse(status.startedAt)) / 1000;
        return { runningS: runningS!, firstApprovalS: firstApprovalS!, allRequestsS: seconds(), loopWallS };
      }
    }
  } finally {
    process.kill(-npm.pid!, 'SIGINT');
    await new Promise((resolve) => npm.once('close', resolve));
    rmSync(dir, { recursive: true, force: true });
  }
}

const results: Round[] = [];
for (let i = 0; i < rounds; i++) {
  const round = await measure();
  results.push(round);
  console.log(`round ${i + 1}: "ROAD dev is running" ${round.runningS.toFixed(1)} s, first approval request ${round.firstApprovalS.toFixed(1)} s after npm start; loop wall time ${round.loopWallS.toFixed(1)} s; npm start → loop completed ${round.allRequestsS.toFixed(1)} s`);
}
const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
console.log(
  `median of ${rounds}: "ROAD dev is running" ${median(results.map((r) => r.runningS)).toFixed(1)} s, first approval request ${median(results.map((r) => r.firstApprovalS)).toFixed(1)} s, ` +
    `loop wall time ${median(results.map((r) => r.loopWallS)).toFixed(1)} s, npm start → loop completed ${median(results.map((r) => r.allRequestsS)).toFixed(1)} s; ` +
    `load average ${os.loadavg()[0]!.toFixed(1)} on ${os.cpus().length} cores`,
);
