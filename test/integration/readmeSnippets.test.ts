/**
 * The README's telemetry snippets — curl, Python with `requests`, TypeScript — run as they are written there (found by
 * their `<!-- snippet: name -->` comments, so editing the README changes what runs here) against a real `road serve`
 * and PostgreSQL. Only what the snippets read from the environment is set: the database, the port, the URL and the
 * token. Each snippet gets a database of its own (they all record run-42), and the rows are checked against what
 * the README says was sent; lines of the form `# {…}` in a snippet are the output it promises (`…`: anything).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { PROJECT_ROOT, freePort } from '../../scripts/provision.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import { pythonWithRequests } from '../helpers/python.js';

const README = path.join(PROJECT_ROOT, 'README.md');
/** DESIGN.md §Telemetry: a SUCCESS without a stop_reason gets this one. */
const SUCCESS_STOP_REASON = 'completed';

function snippet(name: string): string {
  const readme = readFileSync(README, 'utf8');
  const found = new RegExp(`<!-- snippet: ${name}\\b[^>]*-->\\n\`\`\`\\w*\\n([\\s\\S]*?)\`\`\`\\n`).exec(readme);
  if (!found) throw new Error(`README.md has no fenced block after <!-- snippet: ${name} … -->`);
  return found[1]!;
}

/** The output a snippet promises: its `# {…}` comment lines, in order. */
function promisedOutput(code: string): string[] {
  return code
    .split('\n')
    .filter((line) => /^# [{[]/.test(line))
    .map((line) => line.slice(2));
}

/** Each promised line, in order, somewhere in `output` (server logs may run between them). */
function expectPromisedOutput(output: string, promised: string[]): void {
  expect(promised.length).toBeGreaterThan(0);
  let from = 0;
  for (const line of promised) {
    const pattern = new RegExp(line.split('…').map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('[^\\n]*?'));
    const match = pattern.exec(output.slice(from));
    expect(match, `the README promises ${line}\nin the output:\n${output}`).not.toBeNull();
    from += match!.index + match![0].length;
  }
}

interface Finished {
  status: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs a program in a process group of its own, `input` on stdin. It is finished when the program exits; whatever
 * it left running in the background (the curl snippet's `road serve &`) is then sent SIGTERM and awaited.
 */
function runSnippet(command: string, args: string[], input: string, env: NodeJS.ProcessEnv, timeoutMs = 60_000): Promise<Finished> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: PROJECT_ROOT, env, detached: true, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let status: number | null = null;
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const timer = setTimeout(() => signalGroup(child, 'SIGKILL'), timeoutMs);
    child.once('error', reject);
    child.once('exit', (code) => {
      status = code;
      signalGroup(child, 'SIGTERM');
    });
    // After the background children too: they hold the same output pipes.
    child.once('close', () => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr });
    });
    child.stdin.end(input);
  });
}

function signalGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  try {
    process.kill(-child.pid!, signal);
  } catch {
    // the group is gone already
  }
}

/** `road serve` as the README runs it: the CLI, in a child process, with a token and a database. */
async function startRoadServe(db: TestDatabase, token: string): Promise<{ url: string; stop(): Promise<void> }> {
  const port = await freePort();
  const env = snippetEnv({ DATABASE_URL: db.url, ROAD_API_TOKENS: token, ROAD_API_PORT: String(port) });
  const server = spawn(process.execPath, ['bin/road.js', 'serve'], { cwd: PROJECT_ROOT, env, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  server.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (server.exitCode !== null) throw new Error(`road serve exited (${server.exitCode}): ${stderr}`);
    const healthy = await fetch(`${url}/healthz`).then((response) => response.ok, () => false);
    if (healthy) break;
    if (Date.now() > deadline) throw new Error(`road serve did not listen on ${url} within 30 s: ${stderr}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return {
    url,
    async stop() {
      const exited = new Promise((resolve) => server.once('exit', resolve));
      server.kill('SIGTERM');
      await exited;
    },
  };
}

/** A new user's environment plus what a snippet reads: nothing of this suite's own settings leaks in. */
function snippetEnv(settings: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, ...settings };
  for (const name of ['ROAD_API_HOST', 'ROAD_URL', 'ROAD_API_TOKEN', 'ROAD_HOME', 'ROAD_CONFIG', 'NODE_OPTIONS']) {
    if (!(name in settings)) delete env[name];
  }
  if (!('DATABASE_URL' in settings)) delete env.DATABASE_URL;
  return env;
}

interface StoredEvent {
  event_id: string;
  attempt: number;
  outcome: string;
  stop_reason: string | null;
  tokens_used: string | null;
  files: string[] | null;
  model: string | null;
  occurred_at: Date;
}

async function storedRun(db: TestDatabase, runId: string): Promise<StoredEvent[]> {
  const { rows } = await db.pool.query<StoredEvent>(
    `SELECT event_id, attempt, outcome, stop_reason, tokens_used, files, model, occurred_at
       FROM phase_outcome_events WHERE run_id = $1 AND phase_id = 'auth-migration' ORDER BY attempt`,
    [runId],
  );
  return rows;
}

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function database(): Promise<TestDatabase> {
  const db = await createTestDatabase();
  cleanups.push(() => db.drop());
  return db;
}

describe("the README's telemetry snippets, run as written", () => {
  it('curl: starts road serve, records attempt 1 as FAILED, prints the summary the README shows', async () => {
    const db = await database();
    const code = snippet('curl');
    const port = await freePort();
    const result = await runSnippet('bash', ['-s'], code, snippetEnv({ DATABASE_URL: db.url, ROAD_API_PORT: String(port) }));
    expect(result.status, result.stderr).toBe(0);
    expectPromisedOutput(result.stdout, promisedOutput(code));

    const events = await storedRun(db, 'run-42');
    expect(events).toEqual([
      {
        event_id: expect.stringMatching(/^auto:/),
        attempt: 1,
        outcome: 'FAILED',
        stop_reason: 'builder_crash',
        tokens_used: '51200',
        files: ['src/auth/models.py'],
        model: null,
        occurred_at: new Date('2026-11-28T09:30:00Z'),
      },
    ]);
    expect(result.stdout).toContain(`"event_id":"${events[0]!.event_id}"`);
  }, 90_000);

  it('Python: attempt 1 FAILED with a file, attempt 2 SUCCESS with none; recording them again is a conflict', async () => {
    const python = pythonWithRequests();
    const db = await database();
    const token = 'readme-python-token-0123456789';
    const server = await startRoadServe(db, token);
    cleanups.push(() => server.stop());
    const code = snippet('python');
    const env = snippetEnv({ ROAD_URL: server.url, ROAD_API_TOKEN: token });

    const started = new Date();
    const first = await runSnippet(python, ['-'], code, env);
    expect(first.status, first.stderr).toBe(0);
    expectPromisedOutput(first.stdout, promisedOutput(code));

    const events = await storedRun(db, 'run-42');
    expect(events.map(({ attempt, outcome, stop_reason, tokens_used }) => ({ attempt, outcome, stop_reason, tokens_used }))).toEqual([
      { attempt: 1, outcome: 'FAILED', stop_reason: 'builder_crash', tokens_used: '51200' },
      { attempt: 2, outcome: 'SUCCESS', stop_reason: SUCCESS_STOP_REASON, tokens_used: '8300' },
    ]);
    expect(events[0]!.files).toEqual(['src/auth/models.py']);
    // files=() sends "files": [] — no file, whether ROAD stores that as an empty list or as no list.
    expect(events[1]!.files ?? []).toEqual([]);
    for (const event of events) expect(event.occurred_at.getTime()).toBeGreaterThanOrEqual(started.getTime() - 1000);

    // The README: recording the same attempt again with other content (here a new occurred_at) is a conflict, and
    // the first record stands.
    const again = await runSnippet(python, ['-'], code, env);
    expect(again.status, again.stderr).toBe(0);
    expect(again.stdout.match(/'status': 'conflict'/g)).toHaveLength(2);
    expect(await storedRun(db, 'run-42')).toEqual(events);
  }, 120_000);

  it('TypeScript: PhaseOutcomeRecorder records attempt 1 FAILED and attempt 2 SUCCESS with the default model', async () => {
    const db = await database();
    const code = snippet('typescript');
    const tsx = path.join(PROJECT_ROOT, 'node_modules', 'tsx', 'dist', 'cli.mjs');
    // tsx runs a module read from stdin as if it were a file in the working directory (the repository's root).
    const result = await runSnippet(process.execPath, [tsx], code, snippetEnv({ DATABASE_URL: db.url }));
    expect(result.status, result.stderr).toBe(0);

    const events = await storedRun(db, 'run-42');
    expect(events.map(({ attempt, outcome, stop_reason, tokens_used, model }) => ({ attempt, outcome, stop_reason, tokens_used, model }))).toEqual([
      { attempt: 1, outcome: 'FAILED', stop_reason: 'builder_crash', tokens_used: '51200', model: 'claude-sonnet' },
      { attempt: 2, outcome: 'SUCCESS', stop_reason: SUCCESS_STOP_REASON, tokens_used: null, model: 'claude-sonnet' },
    ]);
  }, 90_000);
});
