import { describe, expect, it } from 'vitest';
import { deriveEventId, jsonbNumberBytes, validateEvent } from '../../domain/telemetry.js';

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

describe('the contract on nasty input (issue 8)', () => {
  const invalid = (input: unknown, options?: { receivedAt?: number }) => {
    const result = validateEvent(input, options);
    if (result.ok) throw new Error(`accepted: ${JSON.stringify(input).slice(0, 200)}`);
    return result.message;
  };

  it('takes [] as a valid "none", kept as an empty array (not the same content as leaving the field out)', () => {
    const none = ok({ ...base, files: [], tests_failed: [] });
    expect(none.files).toEqual([]);
    expect(none.tests_failed).toEqual([]);
    expect(ok({ ...base, files: [], tests_failed: [] }).content_hash).toBe(none.content_hash); // sent twice: a duplicate
    expect(ok(base).content_hash).not.toBe(none.content_hash);
  });

  it('refuses metadata nested deeper than 32 levels without recursing, naming metadata and the limit', () => {
    let deep: unknown = {};
    for (let i = 0; i < 100_000; i++) deep = { a: deep };
    expect(invalid({ ...base, metadata: deep })).toMatch(/^metadata must be nested at most 32 levels deep \(metadata\.a\.a.*is level 33\)$/);
    let array: unknown = [];
    for (let i = 0; i < 30; i++) array = [array];
    expect(ok({ ...base, metadata: { x: array } }).metadata).toEqual({ x: array }); // the object + 31 arrays = 32 levels
    expect(invalid({ ...base, metadata: { x: [array] } })).toMatch(/level 33/);
  });

  it('stores __proto__, constructor and prototype keys of metadata as sent (they are data, not prototypes)', () => {
    const metadata = JSON.parse('{"z": 1, "__proto__": {"polluted": true}, "constructor": {"name": "x"}, "prototype": 2}') as Record<string, unknown>;
    const event = ok({ ...base, metadata });
    expect(Object.keys(event.metadata!)).toEqual(['__proto__', 'constructor', 'prototype', 'z']); // sorted, all kept
    expect(Object.getPrototypeOf(event.metadata)).toBe(Object.prototype);
    expect(JSON.parse(JSON.stringify(event.metadata))).toEqual(metadata);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('refuses lone surrogates (they would be stored as U+FFFD), naming the field; a pair is one character', () => {
    expect(invalid({ ...base, run_id: 'run-\ud800' })).toMatch(/^run_id must be well-formed Unicode: it holds a lone UTF-16 surrogate \(code point 4\)$/);
    expect(invalid({ ...base, files: ['a/\udc00.py'] })).toMatch(/^files\[0\] must be well-formed Unicode/);
    expect(invalid({ ...base, metadata: { k: ['ok', '\ud83d'] } })).toMatch(/^metadata\.k\[1\] must be well-formed Unicode/);
    expect(invalid({ ...base, metadata: { 'k\udfff': 1 } })).toMatch(/the key\) must be well-formed Unicode/);
    expect(ok({ ...base, run_id: '😀'.repeat(255) }).run_id).toHaveLength(510);
  });

  it('refuses NUL anywhere (PostgreSQL stores none) and non-JSON metadata values, naming the path', () => {
    expect(invalid({ ...base, metadata: { 'a\u0000': 1 } })).toMatch(/metadata\["a\\u0000"\] \(the key\) must not contain NUL/);
    expect(invalid({ ...base, metadata: { n: Infinity } })).toMatch(/^metadata\.n must be a finite number/);
    expect(invalid({ ...base, metadata: { d: new Date(0) } })).toMatch(/^metadata\.d must be a JSON object \(got Date\)/);
    expect(invalid({ ...base, metadata: { a: [1, undefined] } })).toMatch(/^metadata\.a\[1\] must be a JSON value \(got undefined\)/);
    expect(ok({ ...base, metadata: { gone: undefined, kept: 1 } }).metadata).toEqual({ kept: 1 });
    // A backslash followed by "u0000" is text, not NUL.
    expect(ok({ ...base, metadata: { path: 'C:\\u0000' } }).metadata).toEqual({ path: 'C:\\u0000' });
  });

  it('measures metadata as jsonb writes it: ": " and ", " separators, numbers written out in full', () => {
    // {"pad": "…"}: the pad plus 11 bytes.
    ok({ ...base, metadata: { pad: 'm'.repeat(16384 - 11) } });
    expect(invalid({ ...base, metadata: { pad: 'm'.repeat(16385 - 11) } })).toBe('metadata must be at most 16384 bytes as jsonb text (got 16385)');
    // jsonb writes 5e-324 as "0." followed by 323 zeros and a 5: 326 bytes; 1e21 as 22 digits; 1.5e-7 as 0.00000015.
    expect([5e-324, 1e21, 1.5e-7, -1e-7, 123.5, -0].map(jsonbNumberBytes)).toEqual([326, 22, 10, 10, 5, 1]);
  });

  it('bounds occurred_at: from 2000-01-01T00:00:00Z to 1 day after ROAD received the event, both inclusive', () => {
    const receivedAt = Date.UTC(2026, 10, 28, 12, 0, 0, 500);
    expect(ok({ ...base, occurred_at: '2000-01-01T00:00:00Z' }).occurred_at).toBe('2000-01-01T00:00:00.000Z');
    expect(invalid({ ...base, occurred_at: '2000-01-01T00:59:59.999+01:00' })).toMatch(/^occurred_at must not be before 2000-01-01T00:00:00Z/);
    expect(invalid({ ...base, occurred_at: '0000-01-01T00:00:00Z' })).toMatch(/before 2000/);
    expect(validateEvent({ ...base, occurred_at: '2026-11-29T12:00:00.500Z' }, { receivedAt }).ok).toBe(true);
    expect(invalid({ ...base, occurred_at: '2026-11-29T12:00:00.501Z' }, { receivedAt })).toMatch(/^occurred_at must be at most 1 day after ROAD received the event \(received 2026-11-28T12:00:00\.500Z/);
    expect(invalid({ ...base, occurred_at: '2026-02-29T10:00:00Z' })).toMatch(/not a real date and time/);
    expect(invalid({ ...base, occurred_at: '2026-11-20T10:00:00+02' })).toMatch(/^occurred_at must be an ISO-8601 date-time/);
    // Digits past the millisecond are dropped (not rounded).
    expect(ok({ ...base, occurred_at: '2026-11-20T10:00:00.0009999999999999999999Z' }).occurred_at).toBe('2026-11-20T10:00:00.000Z');
  });

  it('normalises -0 to 0 and upper-case hex to lower case; refuses counts past 2^53 − 1 and paths at the root', () => {
    const event = ok({ ...base, tokens_used: -0, commit_sha: 'ABCDEF0' });
    expect(Object.is(event.tokens_used, 0)).toBe(true);
    expect(event.commit_sha).toBe('abcdef0');
    expect(invalid({ ...base, tokens_used: 2 ** 53 })).toMatch(/tokens_used must be at most 9007199254740991 \(2\^53 − 1\)/);
    expect(invalid({ ...base, files: ['./'] })).toMatch(/files\[0\] must name a file or directory, not the repository root/);
    expect(ok({ ...base, files: ['src\\a.py', 'a/../b/', './c//d'] }).files).toEqual(['src/a.py', 'b/', 'c/d']);
  });

  it('judges anything without throwing: wrong types, unknown and __proto__ fields, non-objects', () => {
    for (const input of [null, 42, 'text', [], [base], { ...base, run_id: 5 }, JSON.parse('{"__proto__": 1}')]) {
      expect(validateEvent(input).ok).toBe(false);
    }
    expect(invalid(JSON.parse('{"run_id":"r","phase_id":"p","outcome":"FAILED","occurred_at":"2026-11-20T10:00:00Z","__proto__":{"x":1}}'))).toBe('unknown field "__proto__"');
    expect(invalid({ ...base, run_id: undefined })).toBe('run_id is required');
    expect(invalid({ ...base, tokens_used: NaN })).toBe('tokens_used must be a finite number');
  });
});
