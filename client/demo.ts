/**
 * The demo `npm start` runs on a fresh clone: sample telemetry from examples/, a demo git repository with the bugs
 * that telemetry shows, an executor that writes fixes and a replay command that runs the repository's code — and an
 * improvement loop, `demo`, working the top issues up to a person's approval.
 *
 * It is a demo only where nothing real is configured: no DATABASE_URL (or database.url), and none of repository,
 * executor and replay in road.config.json; `road dev --no-demo` turns it off. Everything it does happens once: the
 * repository is kept, the telemetry is loaded once per database (the `road_demo` row), and the loop id `demo` is never
 * reused, so a second `npm start` finds it all where it was.
 */
import type { Client } from '@temporalio/client';
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { cleanEnvironment } from '../activities/git.js';
import { storeEvents } from '../db/events.js';
import type { Pool } from '../db/pool.js';
import { configSchema, type RoadConfig } from '../domain/config.js';
import { Conflict } from '../domain/errors.js';
import { loopWorkflowId, type LoopInput } from '../domain/loop.js';
import { startImprovementLoop } from './loop.js';

/** Resolved from this file, not the working directory: `npm start` may run anywhere, examples/ lives in the clone. */
export const EXAMPLES_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'examples');
export const DEMO_TELEMETRY = path.join(EXAMPLES_DIR, 'telemetry', 'events.jsonl');
export const DEMO_REPO_TEMPLATE = path.join(EXAMPLES_DIR, 'demo-repo');
export const DEMO_EXECUTOR = path.join(EXAMPLES_DIR, 'demo', 'executor.mjs');
export const DEMO_LOOP_ID = 'demo';
export const DEMO_REVIEWERS = ['alice@example.com', 'bob@example.com'];
/** The demo's top 3 issues — two failure modes and a cost sink — worked side by side. */
export const DEMO_LOOP_INPUT: LoopInput = { window: '7d', topK: 3, maxConcurrentTasks: 3, requestedBy: 'road dev (demo)' };
/** The newest sample event lands this long before the load: recent, and the whole set inside the 7-day window. */
const NEWEST_EVENT_AGE_MS = 10 * 60_000;
const LOAD_BATCH = 1000;

export type DemoDecision = { enabled: true; config: RoadConfig } | { enabled: false; why: string };

/**
 * Demo or not, and the configuration the worker gets: the demo's repository, executor, replay and reviewers under what
 * road.config.json says. Pure, so a test can ask it every question.
 */
export function demoDecision(config: RoadConfig, options: { demo: boolean; repoDir: string }): DemoDecision {
  if (!options.demo) return { enabled: false, why: 'the demo is off (--no-demo)' };
  if (config.database.url) return { enabled: false, why: 'no demo: DATABASE_URL (or database.url) names a real database, so nothing is loaded into it' };
  const own = [config.repository && 'repository', config.executor !== 'manual' && 'executor', config.replay && 'replay'].filter(Boolean);
  if (own.length) return { enabled: false, why: `no demo: road.config.json configures ${own.join(', ')} (your own target repository)` };
  const demo = configSchema.parse({
    repository: { path: options.repoDir, baselineRef: 'main', onApproval: 'merge' },
    executor: { command: [process.execPath, DEMO_EXECUTOR], timeout: '2m' },
    // The cases are the runs behind each issue (3 per issue); sh keeps a run at a few milliseconds.
    replay: { command: ['sh', 'replay.sh'], repeats: 3, concurrency: 4, timeout: '1m' },
  });
  return {
    enabled: true,
    config: {
      ...config,
      repository: demo.repository,
      executor: demo.executor,
      replay: demo.replay,
      approval: { ...config.approval, reviewers: config.approval.reviewers.length ? config.approval.reviewers : DEMO_REVIEWERS },
    },
  };
}

/**
 * The demo repository at `dir`: kept when it has a `main`, else made from examples/demo-repo as one commit. The commit's
 * author and dates are fixed, so the baseline has the same sha on every machine.
 */
export function prepareDemoRepository(dir: string): { created: boolean; baselineSha: string } {
  const git = (args: string[]) =>
    execFileSync('git', ['-c', 'commit.gpgsign=false', '-c', 'core.hooksPath=/dev/null', ...args], {
      cwd: dir,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
      env: cleanEnvironment({
        GIT_AUTHOR_NAME: 'ROAD demo',
        GIT_AUTHOR_EMAIL: 'demo@road.invalid',
        GIT_AUTHOR_DATE: '2026-11-23T00:00:00Z',
        GIT_COMMITTER_NAME: 'ROAD demo',
        GIT_COMMITTER_EMAIL: 'demo@road.invalid',
        GIT_COMMITTER_DATE: '2026-11-23T00:00:00Z',
      }),
    }).trim();
  if (existsSync(path.join(dir, '.git'))) {
    try {
      return { created: false, baselineSha: git(['rev-parse', '--verify', '--quiet', 'refs/heads/main^{commit}']) };
    } catch {
      // A start interrupted before its first commit: begin again.
    }
  }
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  cpSync(DEMO_REPO_TEMPLATE, dir, { recursive: true });
  git(['init', '--quiet', '--initial-branch', 'main']);
  git(['add', '--all']);
  git(['commit', '--quiet', '--message', 'Demo project: auth migration, schema codegen, API tests, docs build']);
  return { created: true, baselineSha: git(['rev-parse', 'HEAD']) };
}

export interface DemoTelemetry {
  loaded: boolean;
  events: number;
  runs: number;
  phases: number;
  days: number;
}

/**
 * Stores the sample events once per database, shifted in time so the newest is minutes old. Their ids are the file's,
 * so an interrupted load resumes with the shift it started with (the `road_demo` row) and finds what it stored.
 */
export async function loadDemoTelemetry(pool: Pool, now = new Date(), file = DEMO_TELEMETRY): Promise<DemoTelemetry> {
  const events = readFileSync(file, 'utf8')
    .split('\n')
    .filter((line) => line.trim())
    .map((line) => JSON.parse(line) as Record<string, unknown> & { occurred_at: string; run_id: string; phase_id: string });
  const times = events.map((e) => Date.parse(e.occurred_at));
  const newest = Math.max(...times);
  const summary = {
    events: events.length,
    runs: new Set(events.map((e) => e.run_id)).size,
    phases: new Set(events.map((e) => e.phase_id)).size,
    days: Math.round((newest - Math.min(...times)) / 86_400_000),
  };
  const shift = Math.round((now.getTime() - NEWEST_EVENT_AGE_MS - newest) / 1000) * 1000;
  await pool.query('INSERT INTO road_demo (id, source, shift_ms) VALUES (1, $1, $2) ON CONFLICT (id) DO NOTHING', [path.basename(file), shift]);
  const { rows } = await pool.query<{ shift_ms: string; loaded_at: Date | null }>('SELECT shift_ms, loaded_at FROM road_demo WHERE id = 1');
  if (rows[0]!.loaded_at) return { loaded: false, ...summary };

  const shiftMs = Number(rows[0]!.shift_ms);
  for (let start = 0; start < events.length; start += LOAD_BATCH) {
    const batch = events.slice(start, start + LOAD_BATCH).map((e) => ({ ...e, occurred_at: new Date(Date.parse(e.occurred_at) + shiftMs).toISOString() }));
    const refused = (await storeEvents(pool, batch)).find((r) => r.status === 'invalid' || r.status === 'conflict');
    if (refused) throw new Error(`${file} line ${start + refused.index + 1} was refused (${refused.status}): ${refused.message}`);
  }
  await pool.query('UPDATE road_demo SET loaded_at = now(), events = $1 WHERE id = 1', [events.length]);
  return { loaded: true, ...summary };
}

/** Starts the loop `demo`, or says what became of it: the id is never reused, so it starts once per Temporal store. */
export async function startDemoLoop(client: Client, taskQueue: string): Promise<{ started: boolean; status: string }> {
  try {
    await startImprovementLoop(client, { taskQueue, loopId: DEMO_LOOP_ID, input: DEMO_LOOP_INPUT });
    return { started: true, status: 'RUNNING' };
  } catch (error) {
    if (!(error instanceof Conflict)) throw error;
    const description = await client.workflow.getHandle(loopWorkflowId(DEMO_LOOP_ID)).describe();
    return { started: false, status: description.status.name };
  }
}
