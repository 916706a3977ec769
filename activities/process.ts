/**
 * Runs one configured command (argv, never a shell string) as the leader of its own process group, so that a timeout
 * or a cancellation kills everything it started — a test runner's workers, an agent's tool calls — and not only the
 * first process. Whatever the command leaves running when it exits is killed too: a replay worktree is reused by
 * the next run, and an orphan writing into it would make two runs one.
 */
import { spawn } from 'node:child_process';
import { performance } from 'node:perf_hooks';

export interface RunOptions {
  cwd: string;
  env: NodeJS.ProcessEnv;
  timeoutMs: number;
  /** Aborting kills the process tree (an activity's cancellationSignal). */
  signal?: AbortSignal;
  /** Between SIGTERM and SIGKILL: time for the command to clean up after itself. */
  killGraceMs?: number;
  /** How much of the end of stdout and stderr is kept (the road line is the last line of stdout). */
  keepBytes?: number;
}

export interface RunResult {
  /** null when a signal ended the process. */
  exitCode: number | null;
  exitSignal: NodeJS.Signals | null;
  timedOut: boolean;
  cancelled: boolean;
  /** The last `keepBytes` of each stream. */
  stdout: string;
  stderr: string;
  /** Wall time from spawn to exit. */
  elapsedMs: number;
}

/** The command could not be started at all (ENOENT, EACCES…): a configuration problem, not a failed run. */
export class SpawnError extends Error {
  constructor(
    readonly program: string,
    readonly code: string | undefined,
    cause: Error,
  ) {
    super(`cannot start ${program}: ${code === 'ENOENT' ? 'no such file or command' : cause.message}`, { cause });
    this.name = 'SpawnError';
  }
}

/** The stdio of a command whose leftovers escaped its process group (setsid) is not waited for longer than this. */
const STDIO_DRAIN_MS = 2_000;

export function runProcessTree(argv: readonly string[], options: RunOptions): Promise<RunResult> {
  const [program, ...args] = argv;
  if (!program) return Promise.reject(new Error('an empty command cannot be run'));
  const keepBytes = options.keepBytes ?? 64 * 1024;
  const killGraceMs = options.killGraceMs ?? 2_000;

  return new Promise<RunResult>((resolve, reject) => {
    if (options.signal?.aborted) {
      resolve({ exitCode: null, exitSignal: null, timedOut: false, cancelled: true, stdout: '', stderr: '', elapsedMs: 0 });
      return;
    }
    const started = performance.now();
    // detached: the child calls setsid(), so its pid is also the id of a new process group that its children join.
    const child = spawn(program, args, { cwd: options.cwd, env: options.env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    const stdout = new TailBuffer(keepBytes);
    const stderr = new TailBuffer(keepBytes);
    child.stdout.on('data', (chunk: Buffer) => stdout.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => stderr.push(chunk));

    let timedOut = false;
    let cancelled = false;
    let exited: { code: number | null; signal: NodeJS.Signals | null; at: number } | undefined;
    let spawnFailed = false;
    let killTimer: NodeJS.Timeout | undefined;
    let drainTimer: NodeJS.Timeout | undefined;

    const killGroup = (signal: NodeJS.Signals) => {
      if (child.pid === undefined) return;
      try {
        process.kill(-child.pid, signal);
      } catch {
        // ESRCH: the whole group is gone already.
      }
    };
    const stop = () => {
      killGroup('SIGTERM');
      killTimer ??= setTimeout(() => killGroup('SIGKILL'), killGraceMs);
    };
    const onAbort = () => {
      if (exited) return;
      cancelled = true;
      stop();
    };
    const timeout = setTimeout(() => {
      if (exited) return;
      timedOut = true;
      stop();
    }, options.timeoutMs);
    options.signal?.addEventListener('abort', onAbort, { once: true });

    const cleanUp = () => {
      clearTimeout(timeout);
      clearTimeout(killTimer);
      clearTimeout(drainTimer);
      options.signal?.removeEventListener('abort', onAbort);
    };

    child.once('error', (error: NodeJS.ErrnoException) => {
      // 'error' without a pid: the program never started. (With a pid, a kill failed: 'exit' still follows.)
      if (child.pid !== undefined) return;
      spawnFailed = true;
      cleanUp();
      reject(new SpawnError(program, error.code, error));
    });
    child.once('exit', (code, signal) => {
      exited = { code, signal, at: performance.now() };
      // Leftovers of a finished command die with it; the group id stays valid while any member lives.
      killGroup('SIGKILL');
      // Background children that left the group may still hold the pipes: stop waiting for them after a while.
      drainTimer = setTimeout(() => {
        child.stdout.destroy();
        child.stderr.destroy();
        finish();
      }, STDIO_DRAIN_MS);
    });
    let finished = false;
    const finish = () => {
      if (finished || spawnFailed || !exited) return;
      finished = true;
      cleanUp();
      resolve({
        exitCode: exited.code,
        exitSignal: exited.signal,
        timedOut,
        cancelled,
        stdout: stdout.text(),
        stderr: stderr.text(),
        elapsedMs: exited.at - started,
      });
    };
    child.once('close', finish);
  });
}

/** Keeps the last `limit` bytes of a stream (a chatty command must not fill the worker's memory). */
class TailBuffer {
  private chunks: Buffer[] = [];
  private size = 0;
  constructor(private readonly limit: number) {}

  push(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.size += chunk.length;
    while (this.size - this.chunks[0]!.length >= this.limit) this.size -= this.chunks.shift()!.length;
  }

  text(): string {
    const all = Buffer.concat(this.chunks);
    return all.subarray(Math.max(0, all.length - this.limit)).toString('utf8');
  }
}
