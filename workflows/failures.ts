/**
 * ROAD's refusals on Temporal's wire, both ways. Workflows, activities and clients import this module, so it holds
 * nothing but workflow-safe code. A failure's `type` is on the wire and in histories: never rename one.
 */
import { ApplicationFailure } from '@temporalio/common';
import { refusalNamed, type Refusal } from '../domain/errors.js';

/**
 * A refusal as a non-retryable failure: the same input would be refused again, so no retry policy may repeat it.
 * Throw it from a workflow (a plain Error would fail the workflow task and be retried forever) or an Update validator.
 */
export function refusalFailure(refusal: Refusal): ApplicationFailure {
  return ApplicationFailure.create({ message: refusal.message, type: refusal.name, nonRetryable: true });
}

/**
 * The refusal carried by a failure that came back from Temporal (an Update's validator, an activity, a workflow),
 * found anywhere in its cause chain; undefined when the failure is something else.
 */
export function refusalOf(error: unknown): Refusal | undefined {
  for (let cause = error, depth = 0; cause instanceof Error && depth < 8; cause = cause.cause, depth++) {
    if (cause instanceof ApplicationFailure) {
      const refusal = refusalNamed(cause.type, cause.message);
      if (refusal) return refusal;
    }
  }
  return undefined;
}
