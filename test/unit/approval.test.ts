import { describe, expect, it } from 'vitest';
import { applyDecision, approvalRequestSchema, canMerge, initialState, pendingDetails, whyIgnored, type ApprovalRequestInput } from '../../domain/approval.js';
import { describeZodError } from '../../domain/validation.js';

const input: ApprovalRequestInput = {
  taskId: 'COST-SINK-1',
  title: 'Trim the schema dump',
  candidateRef: 'abc123',
  impact: { summary: 'prompt only', files: ['src/a.py'], phases: ['auth'] },
  verdict: 'PROMOTE',
  allowedReviewers: ['Alice@Example.com', 'bob@example.com'],
  author: 'bob@example.com',
};
const request = approvalRequestSchema.parse(input);
const T0 = Date.UTC(2026, 10, 1);
const pending = initialState('wf/run', request, T0);

function errorOf(value: unknown): string {
  const parsed = approvalRequestSchema.safeParse(value);
  if (parsed.success) throw new Error('expected a validation error');
  return describeZodError(parsed.error);
}

describe('approval request validation', () => {
  it('defaults the timeout to 7 days', () => {
    expect(request.timeout).toBe(7 * 24 * 3600 * 1000);
    expect(Date.parse(pending.expiresAt) - T0).toBe(request.timeout);
  });

  it('names the field and the limit', () => {
    expect(errorOf({ ...input, taskId: 'x'.repeat(129) })).toBe('taskId must be at most 128 characters');
    expect(errorOf({ ...input, taskId: 'has space' })).toMatch(/taskId may contain only letters, digits and \. _ : -/);
    expect(errorOf({ ...input, allowedReviewers: [] })).toMatch(/allowedReviewers must name at least one reviewer/);
    expect(errorOf({ ...input, timeout: '400d' })).toMatch(/timeout must be at most 365 days/);
    expect(errorOf({ ...input, timeout: 'soon' })).toMatch(/"soon" is not a duration/);
    expect(errorOf({ ...input, evidence: { blob: 'x'.repeat(64 * 1024) } })).toMatch(/evidence must be at most 64 KiB/);
  });

  it('refuses a request only its author could decide', () => {
    expect(errorOf({ ...input, allowedReviewers: [' BOB@example.com '] })).toMatch(/someone other than the author/);
  });
});

describe('decision rules', () => {
  it('accepts an allowlisted reviewer, case- and blank-insensitively', () => {
    expect(whyIgnored(pending, 'approve', { reviewer: ' alice@example.COM' })).toBeUndefined();
  });

  it('ignores strangers, the author, empty reviewers and reasonless rejections', () => {
    expect(whyIgnored(pending, 'approve', { reviewer: 'mallory' })).toBe('mallory is not an allowed reviewer (allowed: Alice@Example.com, bob@example.com)');
    expect(whyIgnored(pending, 'approve', { reviewer: 'Bob@example.com' })).toMatch(/author: no self-approval/);
    expect(whyIgnored(pending, 'reject', { reviewer: 'bob@example.com', reason: 'x' })).toMatch(/no self-rejection/);
    expect(whyIgnored(pending, 'approve', { reviewer: '  ' })).toBe('reviewer must not be empty');
    expect(whyIgnored(pending, 'reject', { reviewer: 'alice@example.com', reason: ' ' })).toBe('a rejection needs a reason');
  });

  it('lets the first valid decision win and numbers every attempt', () => {
    const first = applyDecision(pending, 'reject', { reviewer: 'alice@example.com', reason: 'regressed' }, '2026-11-02T00:00:00.000Z');
    const second = applyDecision(first.state, 'approve', { reviewer: 'alice@example.com' }, '2026-11-02T00:01:00.000Z');
    expect(first.state).toMatchObject({ status: 'REJECTED', decidedBy: 'alice@example.com', decisionNote: 'regressed' });
    expect(second.state.status).toBe('REJECTED');
    expect(second.attempt).toMatchObject({ seq: 2, outcome: 'ignored', reason: 'already REJECTED by alice@example.com' });
    expect(pending.attempts).toEqual([]); // the input state is not modified
  });

  it('can_merge needs both an approval and a PROMOTE verdict', () => {
    expect(canMerge('APPROVED', 'PROMOTE')).toBe(true);
    expect(canMerge('APPROVED', 'INCONCLUSIVE')).toBe(false);
    expect(canMerge('APPROVED', undefined)).toBe(false);
    expect(canMerge('REJECTED', 'PROMOTE')).toBe(false);
  });

  it('tells the reviewer in the UI what to run, leaving the author out', () => {
    const details = pendingDetails(pending, request.timeout);
    expect(details).toContain('road approve COST-SINK-1 --reviewer Alice@Example.com');
    expect(details).toContain('road reject COST-SINK-1 --reviewer Alice@Example.com --reason');
    expect(details).toContain('7 days after the request');
    expect(details).not.toMatch(/Allowed reviewers:.*bob@example.com,/);
  });
});
