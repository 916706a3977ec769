/** Bad input from the person at the keyboard: exit 2 with a one-line message. Anything else exits 1. */
export class UsageError extends Error {
  override name = 'UsageError';
  readonly exitCode = 2;
}
