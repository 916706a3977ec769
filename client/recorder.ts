/**
 * PhaseOutcomeRecorder: the TypeScript library an agent process uses to record phase outcomes — no Temporal needed,
 * only PostgreSQL. Events are validated when recorded (a bad one throws at once, naming the field and the limit),
 * buffered, and written in batches on `flush()`, when the buffer fills, on a timer, and on `close()`.
 * A failed write keeps the buffer: nothing is lost, and the next flush retries (event ids make retries safe).
 *
 *   const recorder = new PhaseOutcomeRecorder({ databaseUrl: process.env.DATABASE_URL, runId: 'run-42' });
 *   recorder.recordFailure('auth-migration', 'builder_crash', { attempt: 1, tokens_used: 51_200 });
 *   await recorder.close();
 */
import { storeEvents, storeValid, type Judged } from '../db/events.js';
import { createPool, type Pool } from '../db/pool.js';
import { summarize, validateEvent, type IngestSummary, type ItemResult, type PhaseOutcomeEvent, type PhaseOutcomeInput } from '../domain/telemetry.js';

export class TelemetryError extends Error {
  override name = 'TelemetryError';
}
/** The event breaks the contract; `message` names the field and the limit. Nothing was buffered. */
export class InvalidEventError extends TelemetryError {
  override name = 'InvalidEventError';
}
/** Events reused an event_id with other content; the rest of the batch was stored. */
export class EventConflictError extends TelemetryError {
  override name = 'EventConflictError';
  /** Every result of the flush that threw (when a flush threw it), in the order the events were recorded. */
  results?: ItemResult[];
  constructor(readonly conflicts: ItemResult[]) {
    super(`${conflicts.length} event(s) conflict with stored events: ${conflicts.slice(0, 3).map((c) => c.message).join('; ')}`);
  }
}
/**
 * The database refused events the validator had accepted (its CHECKs and the contract disagree, e.g. a stricter
 * constraint added by hand); `refused` says why, naming the field. The rest of the batch was stored, and the refused
 * events left the buffer: retrying them cannot help. `conflicts` are the batch's conflicts, if any.
 */
export class EventRefusedError extends TelemetryError {
  override name = 'EventRefusedError';
  /** Every result of the flush that threw (when a flush threw it), in the order the events were recorded. */
  results?: ItemResult[];
  constructor(
    readonly refused: ItemResult[],
    readonly conflicts: ItemResult[] = [],
  ) {
    super(`${refused.length} event(s) refused by the database: ${refused.slice(0, 3).map((r) => r.message).join('; ')}`);
  }
}
/** The database could not be written; the events stay buffered for the next flush. */
export class TelemetryUnavailableError extends TelemetryError {
  override name = 'TelemetryUnavailableError';
}
export class RecorderClosedError extends TelemetryError {
  override name = 'RecorderClosedError';
}

export interface RecorderOptions {
  /** An existing pool (not closed by the recorder), or a URL for a pool the recorder owns. */
  pool?: Pool;
  databaseUrl?: string;
  /** run_id of every event that does not name its own. */
  runId?: string;
  /** Fields every event gets unless it sets them (model, phase_type, commit_sha, …). */
  defaults?: Partial<PhaseOutcomeInput>;
  /** Flush when this many events are buffered (default 500; the store takes ≤ 1,000 per batch). */
  maxBuffered?: number;
  /** Flush buffered events at least this often (default 2,000 ms; 0 = only on demand). */
  flushIntervalMs?: number;
  /** Errors of background flushes (timer, full buffer); by default they are kept for the next flush to throw. */
  onBackgroundError?: (error: TelemetryError) => void;
  /** The clock for occurred_at when an event does not give it. */
  now?: () => Date;
}

export type OutcomeFields = Partial<Omit<PhaseOutcomeInput, 'phase_id' | 'outcome'>>;

export interface FlushResult extends IngestSummary {
  results: ItemResult[];
}

export class PhaseOutcomeRecorder {
  private readonly pool: Pool;
  private readonly ownsPool: boolean;
  private buffer: Judged[] = [];
  private flushing: Promise<unknown> = Promise.resolve();
  private backgroundError?: TelemetryError;
  private readonly timer?: NodeJS.Timeout;
  private closed = false;
  private readonly maxBuffered: number;

  constructor(private readonly options: RecorderOptions) {
    if (!options.pool && !options.databaseUrl) throw new TelemetryError('PhaseOutcomeRecorder needs a pool or a databaseUrl');
    this.pool = options.pool ?? createPool(options.databaseUrl!, 2);
    this.ownsPool = !options.pool;
    this.maxBuffered = Math.min(Math.max(options.maxBuffered ?? 500, 1), 1000);
    const interval = options.flushIntervalMs ?? 2000;
    if (interval > 0) {
      this.timer = setInterval(() => this.background(), interval);
      this.timer.unref(); // never keeps the agent's process alive
    }
  }

  recordSuccess(phaseId: string, fields: OutcomeFields = {}): PhaseOutcomeEvent {
    return this.record({ ...fields, phase_id: phaseId, outcome: 'SUCCESS' });
  }
  recordFailure(phaseId: string, stopReason: string, fields: OutcomeFields = {}): PhaseOutcomeEvent {
    return this.record({ ...fields, phase_id: phaseId, outcome: 'FAILED', stop_reason: stopReason });
  }
  recordTimeout(phaseId: string, fields: OutcomeFields = {}): PhaseOutcomeEvent {
    return this.record({ stop_reason: 'timeout', ...fields, phase_id: phaseId, outcome: 'TIMEOUT' });
  }
  recordStuck(phaseId: string, fields: OutcomeFields = {}): PhaseOutcomeEvent {
    return this.record({ stop_reason: 'stuck', ...fields, phase_id: phaseId, outcome: 'STUCK' });
  }

  /** Validates and buffers one event; throws InvalidEventError at once when it breaks the contract. */
  record(input: Partial<PhaseOutcomeInput>): PhaseOutcomeEvent {
    if (this.closed) throw new RecorderClosedError('the recorder is closed');
    const checked = validateEvent(this.complete(input));
    if (!checked.ok) throw new InvalidEventError(checked.message);
    this.buffer.push({ index: this.buffer.length, event: checked.event, contentText: checked.contentText });
    if (this.buffer.length >= this.maxBuffered) this.background();
    return checked.event;
  }

  /** Stores a batch now, item by item: every valid event is stored, every invalid one is reported. */
  async recordBatch(inputs: ReadonlyArray<Partial<PhaseOutcomeInput>>): Promise<FlushResult> {
    if (this.closed) throw new RecorderClosedError('the recorder is closed');
    const results = await this.guard(() => storeEvents(this.pool, inputs.map((input) => this.complete(input))));
    return { ...summarize(results), results };
  }

  /**
   * Writes everything buffered. Throws EventConflictError when some events conflicted, EventRefusedError when the
   * database refused some (the rest are stored either way).
   */
  async flush(): Promise<FlushResult> {
    const pending = this.backgroundError;
    this.backgroundError = undefined;
    const run = this.flushing.then(() => this.writeBuffer());
    this.flushing = run.catch(() => undefined);
    const result = await run;
    if (pending && !(pending instanceof EventConflictError) && !(pending instanceof EventRefusedError)) throw pending;
    const rejected = rejectionOf([...(pending ? [pending] : []), result.results]);
    if (rejected) throw Object.assign(rejected, { results: result.results });
    return result;
  }

  /** Flushes and releases the recorder (and its pool, when it owns one). */
  async close(): Promise<FlushResult> {
    clearInterval(this.timer);
    try {
      return await this.flush();
    } finally {
      this.closed = true;
      if (this.ownsPool) await this.pool.end();
    }
  }

  get buffered(): number {
    return this.buffer.length;
  }

  private complete(input: Partial<PhaseOutcomeInput>): Partial<PhaseOutcomeInput> {
    return {
      ...this.options.defaults,
      ...(this.options.runId ? { run_id: this.options.runId } : {}),
      occurred_at: (this.options.now?.() ?? new Date()).toISOString(),
      ...input,
    };
  }

  private async writeBuffer(): Promise<FlushResult> {
    const batch = this.buffer.splice(0, this.buffer.length);
    if (!batch.length) return { ...summarize([]), results: [] };
    try {
      const results: ItemResult[] = [];
      for (let i = 0; i < batch.length; i += 1000) results.push(...(await this.guard(() => storeValid(this.pool, batch.slice(i, i + 1000)))));
      return { ...summarize(results), results };
    } catch (error) {
      this.buffer.unshift(...batch); // kept for the next flush: ids make the retry exactly-once
      throw error;
    }
  }

  private background(): void {
    const run = this.flushing.then(() => this.writeBuffer());
    this.flushing = run.then(
      (result) => {
        const rejected = rejectionOf([result.results]);
        if (rejected) this.report(rejected);
      },
      (error: TelemetryError) => this.report(error),
    );
  }

  private report(error: TelemetryError): void {
    if (this.options.onBackgroundError) this.options.onBackgroundError(error);
    else this.backgroundError = error;
  }

  private async guard<T>(write: () => Promise<T>): Promise<T> {
    try {
      return await write();
    } catch (error) {
      throw new TelemetryUnavailableError(`could not store phase outcomes: ${(error as Error).message}`, { cause: error });
    }
  }
}

/** The error for what a write did not store: refused events (and any conflicts beside them), else conflicts. */
function rejectionOf(sources: Array<TelemetryError | ItemResult[]>): EventRefusedError | EventConflictError | undefined {
  const conflicts: ItemResult[] = [];
  const refused: ItemResult[] = [];
  for (const source of sources) {
    if (source instanceof EventRefusedError) refused.push(...source.refused);
    if (source instanceof EventRefusedError || source instanceof EventConflictError) conflicts.push(...source.conflicts);
    if (Array.isArray(source)) {
      for (const result of source) {
        if (result.status === 'conflict') conflicts.push(result);
        // Events were validated when recorded: an invalid one now is one the database refused.
        if (result.status === 'invalid') refused.push(result);
      }
    }
  }
  if (refused.length) return new EventRefusedError(refused, conflicts);
  return conflicts.length ? new EventConflictError(conflicts) : undefined;
}
