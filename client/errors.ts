/**
 * Bad input from the person at the keyboard (exit 2 with a one-line message) or from an HTTP client (a 4xx).
 * `kind` tells the API which status fits; anything that is not a UsageError exits 1 / answers 5xx.
 */
export type UsageErrorKind = 'invalid' | 'not_found' | 'conflict' | 'forbidden';

export class UsageError extends Error {
  override name = 'UsageError';
  readonly exitCode = 2;
  constructor(
    message: string,
    readonly kind: UsageErrorKind = 'invalid',
  ) {
    super(message);
  }
}
