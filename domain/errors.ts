/**
 * What ROAD refuses, and why, as error types that any layer may throw — workflows included (no imports at all).
 * Each kind is turned into a reply in exactly one place per surface:
 * - the CLI's exit status and the HTTP status: client/errors.ts (`exitCodeOf`, `httpReplyOf`);
 * - a non-retryable Temporal failure whose type is the class name: workflows/failures.ts (`refusalFailure`),
 *   which activities/errors.ts applies to every activity.
 */

/** The kinds of refusal, as they appear in the HTTP error envelope `{ error, message }`. */
export type RefusalKind = 'invalid_input' | 'not_found' | 'conflict' | 'forbidden' | 'not_configured';

/** The caller asked for something ROAD will not do; asking again, unchanged, gives the same answer. */
export abstract class Refusal extends Error {
  abstract readonly kind: RefusalKind;
}

/** Input that breaks a rule of ROAD's contracts (a field, a flag, a message payload). The message names the field and the limit. */
export class InvalidInput extends Refusal {
  override name = 'InvalidInput';
  readonly kind = 'invalid_input';
}

/** The thing the caller named does not exist (an unknown task, a gate that was never requested). */
export class NotFound extends Refusal {
  override name = 'NotFound';
  readonly kind = 'not_found';
}

/** The request is well formed but the thing's current state refuses it (a gate already decided). */
export class Conflict extends Refusal {
  override name = 'Conflict';
  readonly kind = 'conflict';
}

/** The caller may not do this (a reviewer not on the allowlist, the author, a token not bound to a reviewer). */
export class Forbidden extends Refusal {
  override name = 'Forbidden';
  readonly kind = 'forbidden';
}

/** This installation of ROAD lacks what the request needs (e.g. an API started without Temporal): no retry helps. */
export class NotConfigured extends Refusal {
  override name = 'NotConfigured';
  readonly kind = 'not_configured';
}

const REFUSALS = { InvalidInput, NotFound, Conflict, Forbidden, NotConfigured } as const;
/** The class names double as Temporal failure types: a failure of one of these types is that refusal. */
export type RefusalName = keyof typeof REFUSALS;

export function isRefusal(error: unknown): error is Refusal {
  return error instanceof Refusal;
}

/** The refusal a failure type names (e.g. an `ApplicationFailure` of type `InvalidInput`), or undefined. */
export function refusalNamed(name: string | undefined | null, message: string): Refusal | undefined {
  const Kind = name && Object.hasOwn(REFUSALS, name) ? REFUSALS[name as RefusalName] : undefined;
  return Kind ? new Kind(message) : undefined;
}
