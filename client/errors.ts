/**
 * The one place where an error becomes the CLI's exit status and the HTTP API's reply. Code anywhere throws a refusal
 * from domain/errors.ts (InvalidInput, NotFound, Conflict, Forbidden, NotConfigured); a refusal that travelled through
 * Temporal (an Update validator, an activity) is recognised by its failure type.
 *
 * | what                                   | exit | HTTP                 |
 * |----------------------------------------|------|----------------------|
 * | InvalidInput (and commander's errors)  | 2    | 400 invalid_input    |
 * | NotFound                               | 2    | 404 not_found        |
 * | Conflict                               | 2    | 409 conflict         |
 * | Forbidden                              | 2    | 403 forbidden        |
 * | NotConfigured                          | 2    | 501 not_configured   |
 * | database or Temporal unreachable       | 1    | 503 unavailable      |
 * | anything else (a bug)                  | 1    | 500 internal         |
 *
 * The exit statuses are DESIGN.md's contract (0 / 2 / 1); 503 carries Retry-After: only there may a caller retry.
 */
import { CommanderError } from 'commander';
import { isTransientFault } from '../activities/errors.js';
import { Conflict, Forbidden, InvalidInput, isRefusal, NotFound, type Refusal, type RefusalKind } from '../domain/errors.js';
import { refusalOf } from '../workflows/failures.js';

export { Conflict, Forbidden, InvalidInput, NotConfigured, NotFound, type RefusalKind } from '../domain/errors.js';

/** The kinds the old UsageError took, and the refusal each stands for. */
const LEGACY_KINDS = { invalid: InvalidInput, not_found: NotFound, conflict: Conflict, forbidden: Forbidden } as const;

/**
 * @deprecated The old catch-all name: `new UsageError(message, kind)` builds the refusal the kind stands for
 * (InvalidInput, NotFound, Conflict or Forbidden). Throw those directly in new code.
 */
export const UsageError = function UsageError(message: string, kind: keyof typeof LEGACY_KINDS = 'invalid') {
  return new LEGACY_KINDS[kind](message);
} as unknown as new (message: string, kind?: keyof typeof LEGACY_KINDS) => Refusal;

export type ErrorKind = RefusalKind | 'unavailable' | 'internal';

/**
 * DESIGN.md §Interfaces: 0 success, 2 bad input (a one-line message naming the problem), 1 any other failure. Every
 * refusal is the caller's to fix, so all of them are 2 (the message says which kind); scripts depend on this.
 */
export const EXIT_CODES: Record<ErrorKind, number> = {
  invalid_input: 2,
  not_found: 2,
  conflict: 2,
  forbidden: 2,
  not_configured: 2,
  unavailable: 1,
  internal: 1,
};

const HTTP_STATUS: Record<ErrorKind, number> = {
  invalid_input: 400,
  not_found: 404,
  conflict: 409,
  forbidden: 403,
  not_configured: 501,
  unavailable: 503,
  internal: 500,
};

/** Statuses the HTTP framework itself answers with (malformed JSON, body too large, …), under ROAD's own names. */
const FRAMEWORK_ERRORS: Record<number, string> = {
  400: 'invalid_input',
  404: 'not_found',
  405: 'method_not_allowed',
  406: 'not_acceptable',
  413: 'payload_too_large',
  415: 'unsupported_media_type',
  429: 'too_many_requests',
};

export interface ClassifiedError {
  kind: ErrorKind;
  /** What went wrong, in one line. */
  message: string;
}

/** What kind of error this is, for a caller: the person at the keyboard or an HTTP client. */
export function classifyError(error: unknown): ClassifiedError {
  const message = error instanceof Error ? error.message : String(error);
  if (error instanceof CommanderError) return { kind: 'invalid_input', message };
  if (isRefusal(error)) return { kind: error.kind, message };
  const refusal = refusalOf(error);
  if (refusal) return { kind: refusal.kind, message: refusal.message };
  if (isTransientFault(error)) return { kind: 'unavailable', message };
  return { kind: 'internal', message };
}

/** The CLI's exit status for an error (commander's --help and --version exit 0). */
export function exitCodeOf(error: unknown): number {
  if (error instanceof CommanderError && error.exitCode === 0) return 0;
  return EXIT_CODES[classifyError(error).kind];
}

export interface HttpErrorReply {
  status: number;
  /** The one error envelope of every route. */
  body: { error: string; message: string };
  headers: Record<string, string>;
}

/**
 * The reply to an error; a 4xx raised by the HTTP framework keeps its status under a ROAD name. Internals never
 * reach the client: a 5xx says only what the client may do about it.
 */
export function httpReplyOf(error: unknown): HttpErrorReply {
  const frameworkStatus = (error as { statusCode?: unknown } | null)?.statusCode;
  if (!isRefusal(error) && typeof frameworkStatus === 'number' && frameworkStatus >= 400 && frameworkStatus < 500) {
    const message = error instanceof Error ? error.message : String(error);
    return { status: frameworkStatus, body: { error: FRAMEWORK_ERRORS[frameworkStatus] ?? 'bad_request', message }, headers: {} };
  }
  const { kind, message } = classifyError(error);
  const status = HTTP_STATUS[kind];
  if (kind === 'unavailable') {
    const body = { error: kind, message: 'a service ROAD depends on (PostgreSQL or Temporal) is unreachable; retry later' };
    return { status, body, headers: { 'retry-after': '5' } };
  }
  if (kind === 'internal') {
    return { status, body: { error: kind, message: 'ROAD failed to complete the request; retrying will not help (see the server log)' }, headers: {} };
  }
  return { status, body: { error: kind, message }, headers: {} };
}
