/**
 * Keeps `road dev`'s children alive: a child that stops (PostgreSQL, the Temporal dev server, the in-process worker)
 * is started again after a doubling delay, with one line saying so; one that keeps stopping — more than
 * `maxRestarts` times within `windowMs` — is given up on, and `gaveUp` settles with the message road dev exits with.
 * The restart arithmetic (`decideRestart`) and the lines (`restartLine`, `giveUpMessage`) are pure functions; the
 * Supervisor class only waits, sleeps and calls what it is given.
 */

export interface RestartPolicy {
  /** Delay before the first restart; each further restart within the window doubles it. */
  initialDelayMs: number;
  maxDelayMs: number;
  /** Restarts allowed within `windowMs`; the next stop gives up. */
  maxRestarts: number;
  windowMs: number;
}

/** 1, 2, 4, 8, 16 s: a database that crashed once is back in a second; one that cannot start is given up on in ~35 s. */
export const DEFAULT_RESTART_POLICY: RestartPolicy = { initialDelayMs: 1_000, maxDelayMs: 30_000, maxRestarts: 5, windowMs: 60_000 };

export type RestartDecision =
  | { restart: true; attempt: number; delayMs: number }
  | { restart: false; stops: number };

/**
 * What to do after a stop, given the times (ms) of every stop so far, the newest last. Stops older than the window
 * are forgiven, so a child that ran well for a while starts again at attempt 1 and the shortest delay.
 */
export function decideRestart(stopTimes: readonly number[], policy: RestartPolicy = DEFAULT_RESTART_POLICY): RestartDecision {
  const latest = stopTimes.at(-1);
  if (latest === undefined) throw new Error('decideRestart needs the time of the stop it decides about');
  const recent = stopTimes.filter((time) => latest - time < policy.windowMs).length;
  if (recent > policy.maxRestarts) return { restart: false, stops: recent };
  return { restart: true, attempt: recent, delayMs: Math.min(policy.initialDelayMs * 2 ** (recent - 1), policy.maxDelayMs) };
}

/** How a process ended, in the words of the one-line messages: "exited (signal SIGKILL)", "exited (code 1)". */
export function exitedWith(code: number | null, signal: NodeJS.Signals | string | null): string {
  return `exited (${signal ? `signal ${signal}` : `code ${code}`})`;
}

/** A start that failed, on one line: the message's first line, shortened. */
export function failedToStart(error: unknown): string {
  return `did not start again (${firstLine(error)})`;
}

/** The first line of an error's message; a long one keeps its head and its tail, where the cause usually is. */
export function firstLine(error: unknown, max = 300): string {
  const text = (error instanceof Error ? error.message : String(error)).split('\n')[0]!.trim();
  if (text.length <= max) return text;
  const head = Math.floor(max / 3);
  return `${text.slice(0, head)}…${text.slice(text.length - (max - head - 1))}`;
}

const seconds = (ms: number) => `${Number((ms / 1000).toFixed(1))} s`;

/** `PostgreSQL exited (signal SIGKILL); restarting in 1 s (attempt 1 of 5)` */
export function restartLine(name: string, how: string, decision: { attempt: number; delayMs: number }, policy: RestartPolicy = DEFAULT_RESTART_POLICY): string {
  return `${name} ${how}; restarting in ${seconds(decision.delayMs)} (attempt ${decision.attempt} of ${policy.maxRestarts})`;
}

/** Why road dev stops: the child, its last words, how often it stopped, and where its log is. */
export function giveUpMessage(name: string, how: string, stops: number, log: string | undefined, policy: RestartPolicy = DEFAULT_RESTART_POLICY): string {
  return (
    `${name} ${how}: it stopped ${stops} times within ${seconds(policy.windowMs)}, so road dev gives up and stops` +
    (log ? `; its log: ${log}` : '')
  );
}

/** A started child: settles `exited` with how it stopped ("exited (code 1)"); `stop()` must be safe after it stopped. */
export interface Running {
  exited: Promise<string>;
  stop(): Promise<void>;
}

export interface Child<R extends Running = Running> {
  /** As the messages name it: "PostgreSQL", "the Temporal dev server". */
  name: string;
  /** Where its output goes, named when road dev gives up on it. */
  log?: string;
  start(): Promise<R>;
}

export interface SupervisorOptions {
  policy?: RestartPolicy;
  /** One line per restart, give-up and recovery (road dev: stdout). */
  say?: (line: string) => void;
  now?: () => number;
}

export class Supervisor {
  readonly policy: RestartPolicy;
  /** Settles with the error road dev exits with, when a child keeps stopping. */
  readonly gaveUp: Promise<Error>;
  private giveUp!: (error: Error) => void;
  private shuttingDown = false;
  private readonly shutdown = new AbortController();
  private readonly say: (line: string) => void;
  private readonly now: () => number;

  constructor(options: SupervisorOptions = {}) {
    this.policy = options.policy ?? DEFAULT_RESTART_POLICY;
    this.say = options.say ?? ((line) => console.log(line));
    this.now = options.now ?? Date.now;
    this.gaveUp = new Promise((resolve) => (this.giveUp = resolve));
  }

  /**
   * From now on a child that stops is expected to (Ctrl-C reaches the children as well as road dev): no restart.
   * Synchronous, so that a signal handler can call it before the children's exits are seen.
   */
  stopping(): void {
    this.shuttingDown = true;
    this.shutdown.abort();
  }

  /**
   * Starts the child and watches it. A first start that fails throws (there is nothing to restart yet); the result is
   * the first run and a function that stops the child for good, whichever run it is in by then.
   */
  async supervise<R extends Running>(child: Child<R>): Promise<{ first: R; stop: () => Promise<void> }> {
    const first = await child.start();
    let current: Running = first;
    let stopped = false;
    const stopSignal = new AbortController();
    const watching = this.watch(child, first, stopSignal.signal, (run) => (current = run));
    return {
      first,
      stop: async () => {
        if (stopped) return;
        stopped = true;
        stopSignal.abort();
        await watching;
        await current.stop();
      },
    };
  }

  private async watch(child: Child, first: Running, stopSignal: AbortSignal, replace: (run: Running) => void): Promise<void> {
    const stopTimes: number[] = [];
    const over = AbortSignal.any([stopSignal, this.shutdown.signal]);
    const abandoned = new Promise<'over'>((resolve) => over.addEventListener('abort', () => resolve('over'), { once: true }));
    let running = first;
    for (;;) {
      let how = await Promise.race([running.exited, abandoned]);
      if (over.aborted) return;
      const stoppedAt = this.now();
      await running.stop().catch(() => undefined); // what is left of it (a worker's other poller, its connection)
      for (;;) {
        stopTimes.push(this.now());
        const decision = decideRestart(stopTimes, this.policy);
        if (!decision.restart) {
          this.giveUp(withoutStack(giveUpMessage(child.name, how, decision.stops, child.log, this.policy)));
          return;
        }
        this.say(restartLine(child.name, how, decision, this.policy));
        if (!(await sleep(decision.delayMs, over))) return;
        try {
          running = await child.start();
        } catch (error) {
          if (over.aborted) return;
          how = failedToStart(error);
          continue;
        }
        replace(running);
        if (over.aborted) return; // the caller's stop() stops this run
        this.say(`${child.name} is running again (${seconds(this.now() - stoppedAt)} after it stopped)`);
        break;
      }
    }
  }
}

/** false when the signal aborted the wait. */
const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<boolean>((resolve) => {
    if (signal.aborted) return resolve(false);
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve(true);
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      resolve(false);
    };
    signal.addEventListener('abort', onAbort, { once: true });
  });

/** The CLI prints the message alone; a stack would bury it. */
function withoutStack(message: string): Error {
  const error = new Error(message);
  error.stack = `Error: ${message}`;
  return error;
}
