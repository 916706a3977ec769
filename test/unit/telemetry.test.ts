import { describe, expect, it } from 'vitest';
import { deriveEventId, validateEvent } from '../../domain/telemetry.js';

const base = { run_id: 'r', phase_id: 'p', outcome: 'FAILED', occurred_at: '2026-11-20T10:00:00Z' };
const ok = (input: unknown) => {
  const result = validateEvent(input);
  if (!result.ok) throw new Error(result.message);
  return result.event;
};

describe('validateEvent', () => {
  it('gives equal content the same hash whatever the metadata key order, and other content another hash', () => {
    const a = ok({ ...base, metadata: { b: 1, a: { y: 2, x: [{ d: 1, c: 2 }] } } });
    const b = ok({ ...base, metadata: { a: { x: [{ c: 2, d: 1 }], y: 2 }, b: 1 } });
    const c = ok({ ...base, metadata: { a: { x: [{ c: 2, d: 1 }], y: 3 }, b: 1 } });
    expect(a.content_hash).toBe(b.content_hash);
    expect(c.content_hash).not.toBe(a.content_hash);
  });

  it('gives the same instant written with another offset the same hash', () => {
    expect(ok({ ...base, occurred_at: '2026-11-20T12:00:00+02:00' }).content_hash).toBe(ok(base).content_hash);
  });

  it('derives the id from run, phase and attempt only — not from the clock or the content', () => {
    const first = ok({ ...base, attempt: 2 });
    const later = ok({ ...base, attempt: 2, occurred_at: '2026-11-21T10:00:00Z', outcome: 'SUCCESS' });
    expect(first.event_id).toBe(later.event_id);
    expect(first.event_id).toBe(deriveEventId('r', 'p', 2));
    expect(deriveEventId('r', 'p', 3)).not.toBe(first.event_id);
    // The parts are delimited: ("ab", "c") and ("a", "bc") are different phases of different runs.
    expect(deriveEventId('ab', 'c', 1)).not.toBe(deriveEventId('a', 'bc', 1));
  });

  it('refuses control characters in paths and test ids, and reports every broken field at once', () => {
    for (const bad of [{ files: ['a\nb.py'] }, { tests_failed: ['t\u0000'] }]) {
      const result = validateEvent({ ...base, ...bad });
      expect(result.ok).toBe(false);
    }
    const many = validateEvent({ ...base, outcome: 'NOPE', attempt: 0, tokens_used: -1 });
    expect(many.ok).toBe(false);
    if (!many.ok) for (const field of ['outcome', 'attempt', 'tokens_used']) expect(many.message).toContain(field);
  });
});
