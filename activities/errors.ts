/**
 * Which failures of an activity may be retried. ROAD's durable writes retry without limit, which is right only for
 * faults that heal by themselves (the database restarting, a dropped connection, a lock conflict). Everything else
 * is made non-retryable here, so that a workflow learns of it at once instead of waiting on attempt 17 forever:
 *
 * - a refusal (domain/errors.ts: InvalidInput, NotFound, …) → non-retryable, type = its class name;
 * - a permanent database error (constraint violation 23xxx, data exception 22xxx, undefined column, …) →
 *   non-retryable, type `DatabaseRefused`, naming the SQLSTATE and the constraint;
 * - a fault that heals (see `isTransientFault`) → thrown as it is, retried by the activity's retry policy;
 * - anything else (a bug, an unknown error) → retried up to UNCLASSIFIED_ATTEMPTS attempts, then non-retryable.
 *
 * Use: `classifyActivityFailures({ async myActivity() {…} })` around an activity factory's result, or
 * `throw asActivityFailure(error)` in a catch block.
 */
import { activityInfo } from '@temporalio/activity';
import { ApplicationFailure, TemporalFailure } from '@temporalio/common';
import { isRefusal } from '../domain/errors.js';
import { refusalFailure } from '../workflows/failures.js';

/** Attempts given to an error nobody classified: enough to ride out a blip, few enough to surface a bug in seconds. */
export const UNCLASSIFIED_ATTEMPTS = 5;

/** The failure type of a permanent database error. */
export const DATABASE_REFUSED = 'DatabaseRefused';

/** SQLSTATEs that heal with time (https://www.postgresql.org/docs/current/errcodes-appendix.html). */
const TRANSIENT_SQLSTATES = new Set([
  '40001', // serialization_failure
  '40P01', // deadlock_detected
  '55P03', // lock_not_available
  '57014', // query_canceled (statement_timeout)
  '57P01', // admin_shutdown
  '57P02', // crash_shutdown
  '57P03', // cannot_connect_now (starting up, recovering)
  '58030', // io_error
]);
/** Whole SQLSTATE classes that heal: 08 connection exception, 53 insufficient resources (too_many_connections, disk full). */
const TRANSIENT_SQLSTATE_CLASSES = new Set(['08', '53']);

/** Node and DNS error codes of a network that may come back. */
const TRANSIENT_NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'EHOSTDOWN',
  'ENETUNREACH',
  'ENETDOWN',
  'EAI_AGAIN',
  'ENOTFOUND', // a compose service whose name does not resolve yet
]);

/** gRPC status codes (Temporal) that heal: DEADLINE_EXCEEDED 4, RESOURCE_EXHAUSTED 8, ABORTED 10, UNAVAILABLE 14. */
const TRANSIENT_GRPC_CODES = new Set([4, 8, 10, 14]);

/**
 * Lost or never-made connections reported as plain Errors: node-postgres's messages, and @temporalio/client's when
 * Connection.connect() finds no server.
 */
const TRANSIENT_MESSAGES =
  /Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error|Connection is closed|Failed to connect before the deadline/i;

const SQLSTATE = /^[0-9A-Z]{5}$/;

/** A PostgreSQL error as node-postgres reports it. */
interface DatabaseError extends Error {
  code: string;
  constraint?: string;
  table?: string;
  column?: string;
  detail?: string;
}

function isDatabaseError(error: unknown): error is DatabaseError {
  const code: unknown = (error as { code?: unknown } | null)?.code;
  // node-postgres names its DatabaseError after the protocol message, 'error'; Node's own errors have codes like EPIPE.
  return error instanceof Error && error.name === 'error' && typeof code === 'string' && SQLSTATE.test(code);
}

/** The error and its causes, outermost first (wrappers such as "cannot reach Temporal at …" keep the fault as cause). */
function causeChain(error: unknown): unknown[] {
  const chain: unknown[] = [];
  for (let cause = error; cause !== undefined && cause !== null && chain.length < 8; cause = (cause as { cause?: unknown }).cause) {
    chain.push(cause);
    if (typeof cause !== 'object') break;
  }
  return chain;
}

/** True when retrying the same operation later may succeed because the fault is in a dependency that can recover. */
export function isTransientFault(error: unknown): boolean {
  return causeChain(error).some((cause) => {
    if (!(cause instanceof Error)) return false;
    const { code } = cause as { code?: unknown };
    if (isDatabaseError(cause)) return TRANSIENT_SQLSTATES.has(cause.code) || TRANSIENT_SQLSTATE_CLASSES.has(cause.code.slice(0, 2));
    if (typeof code === 'string' && TRANSIENT_NETWORK_CODES.has(code)) return true;
    if (typeof code === 'number' && 'metadata' in cause && TRANSIENT_GRPC_CODES.has(code)) return true; // a gRPC status
    if (cause.name === 'TransportError') return true; // @temporalio/client could not reach the server
    return TRANSIENT_MESSAGES.test(cause.message);
  });
}

/** True for a database error that the same statement will meet again: a constraint, bad data, a missing column. */
export function isPermanentDatabaseError(error: unknown): error is DatabaseError {
  return isDatabaseError(error) && !isTransientFault(error);
}

/** The SQLSTATE classes ROAD meets most, in words for the failure message. */
const SQLSTATE_CLASS_NAMES: Record<string, string> = {
  '22': 'data exception',
  '23': 'integrity constraint violation',
  '42': 'syntax error or access rule violation',
  '0A': 'feature not supported',
  '25': 'invalid transaction state',
  '28': 'invalid authorization',
  '3D': 'invalid catalog name',
};

/** One line that says what the database refused and that a retry cannot help. */
export function describeDatabaseError(error: DatabaseError): string {
  const kind = SQLSTATE_CLASS_NAMES[error.code.slice(0, 2)] ?? 'database error';
  const where = error.constraint ? `, constraint ${error.constraint}` : error.column ? `, column ${error.column}` : '';
  return `the database refused the write: ${error.message} (SQLSTATE ${error.code}, ${kind}${where}); retrying cannot help`;
}

/** The attempt number of the running activity, or 1 outside an activity (a direct call, a unit test). */
function currentAttempt(): number {
  try {
    return activityInfo().attempt;
  } catch {
    return 1;
  }
}

/**
 * The error an activity should throw for `error`, classified as above. Temporal's own failures (an ApplicationFailure
 * someone chose, a cancellation) and aborts pass through untouched.
 */
export function asActivityFailure(error: unknown): unknown {
  if (error instanceof TemporalFailure) return error;
  if (error instanceof Error && error.name === 'AbortError') return error;
  if (isRefusal(error)) return refusalFailure(error);
  if (isTransientFault(error)) return error;
  if (isPermanentDatabaseError(error)) {
    return ApplicationFailure.create({
      type: DATABASE_REFUSED,
      message: describeDatabaseError(error),
      nonRetryable: true,
      details: [{ sqlstate: error.code, constraint: error.constraint ?? null, table: error.table ?? null, column: error.column ?? null }],
      cause: error,
    });
  }
  const attempt = currentAttempt();
  if (attempt < UNCLASSIFIED_ATTEMPTS) return error;
  const name = error instanceof Error ? error.name : 'Error';
  const message = error instanceof Error ? error.message : String(error);
  return ApplicationFailure.create({
    type: name,
    message: `${message} (gave up after ${attempt} attempts: not a fault known to heal)`,
    nonRetryable: true,
    cause: error instanceof Error ? error : undefined,
  });
}

type AsyncFunctions = Record<string, (...args: never[]) => Promise<unknown>>;

/**
 * The same activities, each throwing `asActivityFailure(error)` instead of `error`. Wrap a factory's result once:
 * `return classifyActivityFailures({ async recordThing(input: RecordThingInput) { … } })`.
 */
export function classifyActivityFailures<T extends AsyncFunctions>(activities: T): T {
  const classified: Record<string, unknown> = {};
  for (const [name, activity] of Object.entries(activities)) {
    // A named function expression keeps the activity's name in stack traces.
    classified[name] = {
      async [name](...args: never[]) {
        try {
          return await activity(...args);
        } catch (error) {
          throw asActivityFailure(error);
        }
      },
    }[name];
  }
  return classified as T;
}
