import { describe, expect, it } from 'vitest';
import {
  applyDecision,
  applyUnvalidatedDecision,
  approvalRequestSchema,
  AUDIT_LIMITS,
  auditableAttempt,
  canMerge,
  decisionSummary,
  initialState,
  judgeSentDecision,
  parseDecision,
  pendingDetails,
  requireDecision,
  whyIgnored,
  type ApprovalRequestInput,
} from '../../domain/approval.js';
import { InvalidInput } from '../../domain/errors.js';
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

  it('refuses text PostgreSQL would refuse or change, naming the field', () => {
    expect(errorOf({ ...input, title: 'fix \u0000 it' })).toBe('title must not contain NUL characters');
    expect(errorOf({ ...input, impact: { ...input.impact, summary: 'half \udc00' } })).toBe('impact.summary must not contain lone UTF-16 surrogates');
    expect(errorOf({ ...input, impact: { ...input.impact, files: [''] } })).toMatch(/impact\.files\[\] must not be empty/);
    expect(errorOf({ ...input, author: 42 })).toBe('author must be a string');
    expect(errorOf({ ...input, evidence: { note: 'nul \u0000' } })).toBe('evidence must not contain NUL characters');
    expect(errorOf({ ...input, evidence: { ['key \ud800']: 1 } })).toBe('evidence must not contain lone UTF-16 surrogates');
    // Escaped look-alikes and paired surrogates are ordinary text.
    expect(approvalRequestSchema.safeParse({ ...input, evidence: { note: 'a literal \\u0000 and 🚀' } }).success).toBe(true);
  });

  it('refuses a request only its author could decide', () => {
    expect(errorOf({ ...input, allowedReviewers: [' BOB@example.com '] })).toMatch(/someone other than the author/);
  });
});

describe('decision rules', () => {
  const valid = (value: unknown) => {
    const parsed = parseDecision(value);
    if (!parsed.ok) throw new Error(parsed.message);
    return parsed.decision;
  };
  const problem = (value: unknown) => {
    const parsed = parseDecision(value);
    if (parsed.ok) throw new Error(`expected ${JSON.stringify(value)} to be refused`);
    return parsed.message;
  };

  it('accepts an allowlisted reviewer, case- and blank-insensitively', () => {
    expect(whyIgnored(pending, valid({ action: 'approve', reviewer: ' alice@example.COM' }))).toBeUndefined();
  });

  it('ignores strangers and the author', () => {
    expect(whyIgnored(pending, valid({ action: 'approve', reviewer: 'mallory' }))).toBe('mallory is not an allowed reviewer (allowed: Alice@Example.com, bob@example.com)');
    expect(whyIgnored(pending, valid({ action: 'approve', reviewer: 'Bob@example.com' }))).toMatch(/author: no self-approval/);
    expect(whyIgnored(pending, valid({ action: 'reject', reviewer: 'bob@example.com', reason: 'x' }))).toMatch(/no self-rejection/);
  });

  it('refuses a decision that breaks the rules, naming the field and the limit', () => {
    expect(problem({ action: 'Approve', reviewer: 'alice@example.com' })).toBe('action must be "approve" or "reject" (got "Approve")');
    expect(problem({ reviewer: 'alice@example.com' })).toBe('action must be "approve" or "reject" (got nothing)');
    expect(problem({ action: 'approve', reviewer: '  ' })).toBe('reviewer must not be empty');
    expect(problem({ action: 'approve' })).toBe('reviewer must be a string');
    expect(problem({ action: 'approve', reviewer: 42 })).toBe('reviewer must be a string');
    expect(problem({ action: 'approve', reviewer: 'a'.repeat(256) })).toBe('reviewer must be at most 255 characters');
    expect(problem({ action: 'approve', reviewer: 'alice\u0000' })).toBe('reviewer must not contain control characters');
    expect(problem({ action: 'approve', reviewer: 'alice', comment: 'x'.repeat(4001) })).toBe('comment must be at most 4000 characters');
    expect(problem({ action: 'approve', reviewer: 'alice', comment: 'nul \u0000' })).toBe('comment must not contain NUL characters');
    expect(problem({ action: 'approve', reviewer: 'alice', comment: 'half \ud800 a pair' })).toBe('comment must not contain lone UTF-16 surrogates');
    expect(problem({ action: 'reject', reviewer: 'alice', reason: ' ' })).toBe('reason must not be empty: a rejection says why the candidate is rejected');
    expect(problem({ action: 'reject', reviewer: 'alice' })).toBe('reason must not be empty: a rejection says why the candidate is rejected');
    expect(problem({ action: 'approve', reviewer: 'alice', reason: 'lgtm' })).toBe('reason belongs to a rejection: an approval takes a comment');
    expect(problem({ action: 'reject', reviewer: 'alice', reason: 'slow', reson: 'typo' })).toMatch(/^unknown field "reson": a decision is /);
    for (const notAnObject of ['lgtm', 42, null, [], undefined]) expect(problem(notAnObject)).toMatch(/^a decision must be a JSON object: /);
    // Emoji and other astral characters are fine; the limit counts UTF-16 units, so it never exceeds the column's characters.
    expect(valid({ action: 'approve', reviewer: 'alice', comment: '🚀'.repeat(2000) }).comment).toHaveLength(4000);
  });

  it('throws InvalidInput with one message for the CLI, the API and the Update validator', () => {
    expect(() => requireDecision({ action: 'reject', reviewer: 'alice' })).toThrow(InvalidInput);
    expect(() => requireDecision({ action: 'reject', reviewer: 'alice' })).toThrow('invalid decision: reason must not be empty');
  });

  it('lets the first valid decision win and numbers every attempt', () => {
    const first = applyDecision(pending, valid({ action: 'reject', reviewer: 'alice@example.com', reason: 'regressed' }), '2026-11-02T00:00:00.000Z');
    const second = applyDecision(first.state, valid({ action: 'approve', reviewer: 'alice@example.com' }), '2026-11-02T00:01:00.000Z');
    expect(first.state).toMatchObject({ status: 'REJECTED', decidedBy: 'alice@example.com', decisionNote: 'regressed' });
    expect(second.state.status).toBe('REJECTED');
    expect(second.attempt).toMatchObject({ seq: 2, outcome: 'ignored', reason: 'already REJECTED by alice@example.com' });
    expect(pending.attempts).toEqual([]); // the input state is not modified
  });

  it('refuses whatever a signal or the Update sends against the rules, as an ignored attempt that changes nothing else', () => {
    const at = '2026-11-02T00:00:00.000Z';
    const typo = judgeSentDecision(pending, 'Approve', { reviewer: 'alice@example.com', comment: 'ship it' }, at);
    expect(typo.state).toEqual({ ...pending, attempts: [typo.attempt] });
    expect(typo.attempt).toEqual({
      seq: 1,
      action: 'invalid',
      rawAction: 'Approve',
      reviewer: 'alice@example.com',
      note: '',
      at,
      outcome: 'ignored',
      reason: 'invalid decision: action must be "approve" or "reject" (got "Approve")',
    });
    const notAnObject = judgeSentDecision(typo.state, 'approve', 'lgtm', at);
    expect(notAnObject.state.status).toBe('PENDING');
    expect(notAnObject.attempt).toMatchObject({ seq: 2, action: 'approve', reviewer: '', outcome: 'ignored' });
    expect(notAnObject.attempt.reason).toMatch(/^invalid decision: a decision must be a JSON object/);
    const counted = judgeSentDecision(notAnObject.state, 'approve', { reviewer: 'alice@example.com' }, at);
    expect(counted.state).toMatchObject({ status: 'APPROVED', decidedBy: 'alice@example.com' });
    expect(counted.attempt.seq).toBe(3);
  });

  it('replays gates judged before validation the way they judged: an unknown action counted as a rejection', () => {
    const at = '2026-11-02T00:00:00.000Z';
    const legacy = applyUnvalidatedDecision(pending, 'Approve', { reviewer: 'alice@example.com', comment: 'ship it' }, at);
    expect(legacy.state).toMatchObject({ status: 'REJECTED', decidedBy: 'alice@example.com', decisionNote: '' });
    expect(legacy.attempt).toMatchObject({ action: 'reject', rawAction: 'Approve', outcome: 'accepted' });
    expect(applyUnvalidatedDecision(pending, 'reject', { reviewer: 'alice@example.com' }, at).attempt.reason).toBe('a rejection needs a reason');
    expect(applyUnvalidatedDecision(pending, 'approve', { reviewer: '' }, at).attempt.reason).toBe('reviewer must not be empty');
    expect(applyUnvalidatedDecision(pending, 'approve', { reviewer: 'alice@example.com' }, at).state.status).toBe('APPROVED');
  });

  it('reduces any recorded attempt to what the audit table holds', () => {
    const base = { seq: 1, reviewer: 'alice', note: '', at: '2026-11-02T00:00:00.000Z' };
    // An attempt recorded by a gate before validation: the audit CHECK allows only approve/reject/invalid.
    const legacyAccepted = auditableAttempt({ ...base, action: 'Approve' as 'approve', outcome: 'accepted' });
    expect(legacyAccepted).toMatchObject({ action: 'reject', rawAction: 'Approve', outcome: 'accepted' });
    expect(legacyAccepted).not.toHaveProperty('reason');
    const legacyIgnored = auditableAttempt({ ...base, action: 'x'.repeat(100) as 'approve', outcome: 'ignored', reason: 'r'.repeat(5000) });
    expect(legacyIgnored.action).toBe('invalid');
    expect(legacyIgnored.rawAction).toHaveLength(AUDIT_LIMITS.rawAction);
    expect(legacyIgnored.reason).toHaveLength(AUDIT_LIMITS.reason);
    const long = auditableAttempt({ ...base, action: 'approve', reviewer: '🚀'.repeat(300) + '\u0000', note: 'n'.repeat(5000), outcome: 'accepted' });
    expect(Array.from(long.reviewer)).toHaveLength(AUDIT_LIMITS.reviewer);
    expect(long.reviewer).not.toContain('\u0000');
    expect(long.note).toHaveLength(AUDIT_LIMITS.note);
    expect(auditableAttempt({ ...base, action: 'approve', outcome: 'ignored' }).reason).toBe('ignored');
  });

  it('clips an allowlist too long for the audit out of the reason', () => {
    const many = { ...pending, allowedReviewers: Array.from({ length: 50 }, (_, i) => `${'r'.repeat(200)}${i}@example.com`) };
    expect(whyIgnored(many, valid({ action: 'approve', reviewer: 'mallory' }))!.length).toBeLessThanOrEqual(AUDIT_LIMITS.reason);
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

  it('says who decided what, the same way in the CLI and the Temporal UI', () => {
    const decided = { status: 'APPROVED' as const, decidedBy: 'alice', decidedAt: '2026-11-02T00:00:00.000Z', decisionNote: 'ok' };
    expect(decisionSummary(decided)).toBe('APPROVED by alice at 2026-11-02T00:00:00.000Z — "ok"');
    expect(decisionSummary({ ...decided, decisionNote: '' })).toBe('APPROVED by alice at 2026-11-02T00:00:00.000Z');
  });
});
