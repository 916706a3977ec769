/**
 * The supervisor of `road dev`: the backoff and giving-up arithmetic as pure functions, and the Supervisor class
 * driven by in-memory children (a real one is exercised by test/integration/devSupervision.test.ts).
 */
import { describe, expect, it } from 'vitest';
import {
  decideRestart,
  DEFAULT_RESTART_POLICY,
  exitedWith,
  failedToStart,
  giveUpMessage,
  restartLine,
  Supervisor,
  type Child,
  type RestartPolicy,
  type Running,
} from '../../client/supervisor.js';

describe('decideRestart', () => {
  const policy: RestartPolicy = { initialDelayMs: 1_000, maxDelayMs: 30_000, maxRestarts: 5, windowMs: 60_000 };

  it('doubles the delay with each stop within the window, then gives up on the one after the last allowed restart', () => {
    // Stops one second apart: all within 60 s.
    const times: number[] = [];
    const decisions = [];
    for (let i = 0; i < 6; i++) {
      times.push(10_000 + i * 1_000);
      decisions.push(decideRestart(times, policy));
    }
    expect(decisions).toEqual([
      { restart: true, attempt: 1, delayMs: 1_000 },
      { restart: true, attempt: 2, delayMs: 2_000 },
      { restart: true, attempt: 3, delayMs: 4_000 },
      { restart: true, attempt: 4, delayMs: 8_000 },
      { restart: true, attempt: 5, delayMs: 16_000 },
      { restart: false, stops: 6 },
    ]);
  });

  it('forgives stops older than the window: a child that ran well starts again at attempt 1', () => {
    expect(decideRestart([0, 1_000, 2_000, 3_000, 4_000, 4_000 + 60_000], policy)).toEqual({ restart: true, attempt: 1, delayMs: 1_000 });
    // Exactly one window apart counts as outside it; one millisecond less is inside.
    expect(decideRestart([0, 60_000], policy)).toEqual({ restart: true, attempt: 1, delayMs: 1_000 });
    expect(decideRestart([1, 60_000], policy)).toEqual({ restart: true, attempt: 2, delayMs: 2_000 });
  });

  it('caps the delay', () => {
    const generous = { ...policy, maxRestarts: 10, maxDelayMs: 5_000 };
    const times = Array.from({ length: 8 }, (_, i) => i);
    expect(decideRestart(times, generous)).toEqual({ restart: true, attempt: 8, delayMs: 5_000 });
  });

  it('the default policy is 1, 2, 4, 8, 16 s and gives up on the 6th stop within a minute', () => {
    expect(DEFAULT_RESTART_POLICY).toEqual({ initialDelayMs: 1_000, maxDelayMs: 30_000, maxRestarts: 5, windowMs: 60_000 });
  });

  it('refuses to decide without a stop', () => {
    expect(() => decideRestart([], policy)).toThrow(/time of the stop/);
  });
});

describe('the one-line messages', () => {
  it('say what stopped, how, when it restarts and which attempt it is', () => {
    expect(restartLine('PostgreSQL', exitedWith(null, 'SIGKILL'), { attempt: 1, delayMs: 1_000 })).toBe(
      'PostgreSQL exited (signal SIGKILL); restarting in 1 s (attempt 1 of 5)',
    );
    expect(restartLine('Temporal dev server', exitedWith(1, null), { attempt: 3, delayMs: 1_500 })).toBe(
      'Temporal dev server exited (code 1); restarting in 1.5 s (attempt 3 of 5)',
    );
  });

  it('say why a restart failed on one line, shortened in the middle so that the cause at the end stays', () => {
    const error = new Error(`PostgreSQL did not start on 127.0.0.1:5432 with data in /var/${'x'.repeat(400)}: FATAL: has invalid permissions\nsecond line`);
    const line = failedToStart(error);
    expect(line.startsWith('did not start again (PostgreSQL did not start on 127.0.0.1:5432 with data in /var/xxx')).toBe(true);
    expect(line.endsWith('xxx: FATAL: has invalid permissions)')).toBe(true);
    expect(line).toContain('…');
    expect(line).not.toContain('second line');
    expect(line.length).toBe('did not start again ()'.length + 300);
  });

  it('name the child and its log when giving up', () => {
    expect(giveUpMessage('PostgreSQL', 'exited (code 1)', 6, '.road/postgres.log')).toBe(
      'PostgreSQL exited (code 1): it stopped 6 times within 60 s, so road dev gives up and stops; its log: .road/postgres.log',
    );
  });
});

// ---------------------------------------------------------------- the Supervisor with in-memory children

/** A child whose runs the test ends by hand; `failStarts` makes the next starts throw. */
function fakeChild(name: string) {
  const runs: Array<{ end: (how: string) => void; stopped: boolean }> = [];
  let failStarts = 0;
  const child: Child<Running & { index: number }> = {
    name,
    log: `.road/${name}.log`,
    async start() {
      if (failStarts > 0) {
        failStarts--;
        throw new Error(`${name} refuses to start\nand says more`);
      }
      let end!: (how: string) => void;
      const exited = new Promise<string>((resolve) => (end = resolve));
      const run = { end, stopped: false };
      runs.push(run);
      return { index: runs.length - 1, exited, stop: async () => void (run.stopped = true) };
    },
  };
  return { child, runs, failNextStarts: (n: number) => (failStarts = n) };
}

const fast: RestartPolicy = { initialDelayMs: 5, maxDelayMs: 40, maxRestarts: 3, windowMs: 60_000 };

async function until(what: string, check: () => boolean, timeoutMs = 2_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}

describe('Supervisor', () => {
  it('restarts a child that exits, saying so, and says when it runs again', async () => {
    const lines: string[] = [];
    const supervisor = new Supervisor({ policy: fast, say: (line) => lines.push(line) });
    const { child, runs } = fakeChild('PostgreSQL');
    const { first, stop } = await supervisor.supervise(child);
    expect(first.index).toBe(0);

    runs[0]!.end('exited (signal SIGKILL)');
    await until('the second run', () => runs.length === 2);
    expect(runs[0]!.stopped).toBe(true); // what was left of the first run is cleaned up before the restart
    await until('the recovery line', () => lines.length === 2);
    expect(lines[0]).toBe('PostgreSQL exited (signal SIGKILL); restarting in 0 s (attempt 1 of 3)');
    expect(lines[1]).toMatch(/^PostgreSQL is running again \([\d.]+ s after it stopped\)$/);

    await stop();
    expect(runs[1]!.stopped).toBe(true);
  });

  it('counts a restart that fails to start as a stop, and gives up naming the child, its last words and its log', async () => {
    const lines: string[] = [];
    const supervisor = new Supervisor({ policy: fast, say: (line) => lines.push(line) });
    const { child, runs, failNextStarts } = fakeChild('PostgreSQL');
    const { stop } = await supervisor.supervise(child);
    failNextStarts(100);
    runs[0]!.end('exited (signal SIGKILL)');

    const error = await supervisor.gaveUp;
    // maxRestarts 3: three restarts are tried (each fails), the 4th stop within the window gives up.
    expect(lines).toEqual([
      'PostgreSQL exited (signal SIGKILL); restarting in 0 s (attempt 1 of 3)',
      'PostgreSQL did not start again (PostgreSQL refuses to start); restarting in 0 s (attempt 2 of 3)',
      'PostgreSQL did not start again (PostgreSQL refuses to start); restarting in 0 s (attempt 3 of 3)',
    ]);
    expect(error.message).toBe(
      'PostgreSQL did not start again (PostgreSQL refuses to start): it stopped 4 times within 60 s, so road dev gives up and stops; its log: .road/PostgreSQL.log',
    );
    expect(runs).toHaveLength(1);
    await stop();
  });

  it('restarts nothing once road dev is stopping (Ctrl-C reaches the children too)', async () => {
    const lines: string[] = [];
    const supervisor = new Supervisor({ policy: fast, say: (line) => lines.push(line) });
    const { child, runs } = fakeChild('Temporal dev server');
    const { stop } = await supervisor.supervise(child);
    supervisor.stopping();
    runs[0]!.end('exited (signal SIGINT)');
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(runs).toHaveLength(1);
    expect(lines).toEqual([]);
    await stop();
    expect(runs[0]!.stopped).toBe(true);
  });

  it('a stop during the backoff cancels the restart at once', async () => {
    const lines: string[] = [];
    const slow: RestartPolicy = { ...fast, initialDelayMs: 60_000, maxDelayMs: 60_000 };
    const supervisor = new Supervisor({ policy: slow, say: (line) => lines.push(line) });
    const { child, runs } = fakeChild('ROAD worker');
    const { stop } = await supervisor.supervise(child);
    runs[0]!.end('stopped (boom)');
    await until('the restart line', () => lines.length === 1);
    const began = Date.now();
    await stop();
    expect(Date.now() - began).toBeLessThan(1_000);
    expect(runs).toHaveLength(1);
    expect(lines).toEqual(['ROAD worker stopped (boom); restarting in 60 s (attempt 1 of 3)']);
  });

  it('a first start that fails throws: there is nothing to restart yet', async () => {
    const supervisor = new Supervisor({ policy: fast, say: () => undefined });
    const { child, failNextStarts } = fakeChild('PostgreSQL');
    failNextStarts(1);
    await expect(supervisor.supervise(child)).rejects.toThrow('PostgreSQL refuses to start');
  });

  it('keeps restarting a child whose stops are spread out beyond the window', async () => {
    let clock = 0;
    const lines: string[] = [];
    const supervisor = new Supervisor({ policy: { ...fast, windowMs: 1_000 }, say: (line) => lines.push(line), now: () => clock });
    const { child, runs } = fakeChild('PostgreSQL');
    const { stop } = await supervisor.supervise(child);
    for (let i = 0; i < 6; i++) {
      clock += 5_000; // each run lasted longer than the window
      runs[i]!.end('exited (code 1)');
      await until(`run ${i + 2}`, () => runs.length === i + 2);
    }
    expect(lines.filter((line) => line.includes('(attempt 1 of 3)'))).toHaveLength(6);
    await stop();
  });
});
