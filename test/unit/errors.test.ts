import { WorkflowUpdateFailedError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { CommanderError } from 'commander';
import { describe, expect, it } from 'vitest';
import { exitCodeOf, httpReplyOf, UsageError } from '../../client/errors.js';
import { Conflict, Forbidden, InvalidInput, NotConfigured, NotFound, type Refusal } from '../../domain/errors.js';
import { refusalFailure, refusalOf } from '../../workflows/failures.js';

describe('one mapping from error to exit status and HTTP reply', () => {
  // The contract as the README and scripts see it, written out here rather than read from the code.
  const table: Array<[Refusal, number, number, string]> = [
    [new InvalidInput('reviewer must not be empty'), 2, 400, 'invalid_input'],
    [new NotFound('unknown task X-1'), 2, 404, 'not_found'],
    [new Conflict('X-1 is already APPROVED'), 2, 409, 'conflict'],
    [new Forbidden('mallory is not an allowed reviewer'), 2, 403, 'forbidden'],
    [new NotConfigured('started without Temporal'), 2, 501, 'not_configured'],
  ];

  it.each(table)('%s → exit %i, HTTP %i', (refusal, exit, status, error) => {
    expect(exitCodeOf(refusal)).toBe(exit);
    expect(httpReplyOf(refusal)).toEqual({ status, body: { error, message: refusal.message }, headers: {} });
  });

  it('recognises a refusal that travelled through Temporal (an Update validator) by its failure type', () => {
    for (const [refusal, exit, status] of table) {
      const failure = refusalFailure(refusal);
      expect(failure).toMatchObject({ type: refusal.name, nonRetryable: true, message: refusal.message });
      const fromServer = new WorkflowUpdateFailedError('Workflow Update failed', failure);
      expect(refusalOf(fromServer)).toBeInstanceOf(refusal.constructor);
      expect(exitCodeOf(fromServer)).toBe(exit);
      expect(httpReplyOf(fromServer).status).toBe(status);
      expect(httpReplyOf(fromServer).body.message).toBe(refusal.message);
    }
    expect(refusalOf(ApplicationFailure.nonRetryable('boom', 'DatabaseRefused'))).toBeUndefined();
  });

  it('keeps the old UsageError name working, each kind as its honest refusal', () => {
    expect(new UsageError('bad flag')).toBeInstanceOf(InvalidInput);
    expect(new UsageError('gone', 'not_found')).toBeInstanceOf(NotFound);
    expect(new UsageError('decided', 'conflict')).toBeInstanceOf(Conflict);
    expect(exitCodeOf(new UsageError('no', 'forbidden'))).toBe(2);
  });

  it("maps commander's errors to 2 (and --help to 0), anything unknown to 1 and 500", () => {
    expect(exitCodeOf(new CommanderError(1, 'commander.unknownCommand', "unknown command 'x'"))).toBe(2);
    expect(exitCodeOf(new CommanderError(0, 'commander.helpDisplayed', '(outputHelp)'))).toBe(0);
    const bug = new TypeError('x is undefined');
    expect(exitCodeOf(bug)).toBe(1);
    expect(httpReplyOf(bug)).toMatchObject({ status: 500, body: { error: 'internal' } });
    expect(httpReplyOf(bug).body.message).not.toContain('x is undefined');
  });

  it("names the HTTP framework's own 4xx in ROAD words", () => {
    const tooLarge = Object.assign(new Error('Request body is too large'), { statusCode: 413, code: 'FST_ERR_CTP_BODY_TOO_LARGE' });
    expect(httpReplyOf(tooLarge)).toEqual({ status: 413, body: { error: 'payload_too_large', message: 'Request body is too large' }, headers: {} });
    const badJson = Object.assign(new SyntaxError('Unexpected end of JSON input'), { statusCode: 400, code: 'FST_ERR_CTP_INVALID_JSON_BODY' });
    expect(httpReplyOf(badJson).body.error).toBe('invalid_input');
  });
});
