/**
 * The fast path for the common event (domain/telemetry.ts fastEvent) against the contract's judge (judgeEvent), on
 * generated events: the common shape an agent sends, each given up to three twists drawn from the fast path's edges
 * — every bound at and one past it, the characters it leaves to the judge (backslash, quote, tab, é, NUL, a lone
 * surrogate), upper-case hex, non-canonical and unreal times, the time bounds to the millisecond, -0 and
 * non-integers, paths that normalisation changes, unsorted, nested or oversized metadata, unknown keys, keys present
 * with the value undefined, objects that are not plain.
 *
 * Wherever the fast path answers, its answer must be the judge's, exactly (event, COPY text, content hash); it must
 * answer for every untwisted event (else it would be "equal" by never answering); and it must answer for some
 * twisted ones too, so the edges inside its domain (a 255-character run id, a 128-character event id, 200 files)
 * are exercised, not only the ones outside it. Whether the judge agrees with the database and the README is
 * test/integration/eventContract.property.test.ts's to prove.
 */
import { isDeepStrictEqual } from 'node:util';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { fastEvent, judgeEvent, LIMITS } from '../../domain/telemetry.js';
import { generateEvents } from '../../scripts/generate-events.js';

const SEED = Number(process.env.ROAD_FUZZ_SEED ?? 20261128);
const RUNS = Number(process.env.ROAD_FAST_RUNS ?? 20_000);
const RECEIVED = Date.UTC(2026, 10, 28, 12, 0, 0, 321);
const iso = (ms: number) => new Date(ms).toISOString();

type Event = Record<string, unknown>;

interface Common {
  run: number;
  phase: number;
  attempt: number;
  outcome: string;
  tokens: number;
  at: number;
  withId: boolean;
  optional: boolean;
}

/** The common event: what Autopack sends. */
const commonArb: fc.Arbitrary<Common> = fc.record({
  run: fc.integer({ min: 0, max: 99_999 }),
  phase: fc.integer({ min: 1, max: 40 }),
  attempt: fc.integer({ min: 1, max: 3 }),
  outcome: fc.constantFrom('SUCCESS', 'FAILED', 'TIMEOUT', 'STUCK'),
  tokens: fc.integer({ min: 0, max: 40_000 }),
  at: fc.integer({ min: LIMITS.earliestOccurredAt, max: RECEIVED }),
  withId: fc.boolean(),
  optional: fc.boolean(),
});

function common(c: Common): Event {
  const run_id = `run-${c.run}`;
  const phase_id = `phase-${String(c.phase).padStart(3, '0')}`;
  const e: Event = { run_id, phase_id, outcome: c.outcome, occurred_at: iso(c.at) };
  if (c.withId) e.event_id = `${run_id}:${phase_id}:${c.attempt}`;
  if (c.optional) {
    Object.assign(e, {
      phase_type: 'build',
      model: 'claude-sonnet',
      attempt: c.attempt,
      tokens_used: c.tokens,
      prompt_tokens: Math.floor(c.tokens * 0.8),
      completion_tokens: c.tokens - Math.floor(c.tokens * 0.8),
      duration_ms: 5_000 + c.tokens,
      files: ['src/auth/models.py', `src/auth/${phase_id}.py`],
      commit_sha: '99e1ef7bc0ff',
      metadata: { agent: 'autopack', version: '0.9.1' },
    });
    if (c.outcome !== 'SUCCESS') {
      Object.assign(e, { stop_reason: 'tests_failed', decision_rationale: 'Rerun the builder: the patch did not apply.', tests_failed: [`tests/test_${phase_id}.py::test_1`] });
    }
  }
  return e;
}

const chars = (n: number, fill = 'a') => fill.repeat(n);
const odd = ['\\', '"', '\t', '\n', 'é', '😀', '\u0000', '\ud800', '\u007f', '\u0001', ' ', "'", ',', '{', '}'];

/** One change to the common event, at an edge of the fast path. */
const twistArb: fc.Arbitrary<(e: Event) => void> = fc.oneof(
  // text: lengths at and past the bounds, characters the fast path leaves to the judge
  fc.record({
    field: fc.constantFrom('run_id', 'phase_id', 'phase_type', 'model', 'stop_reason', 'decision_rationale'),
    length: fc.constantFrom(0, 1, 254, 255, 256, 10_239, 10_240),
    char: fc.option(fc.constantFrom(...odd), { nil: undefined }),
  }).map(({ field, length, char }) => (e: Event) => {
    e[field] = chars(length).slice(0, char && length ? length - 1 : length) + (char && length ? char : '');
  }),
  fc.record({ length: fc.constantFrom(1, 127, 128, 129), char: fc.option(fc.constantFrom('.', '_', ':', '-', '/', ' ', 'é'), { nil: undefined }) }).map(
    ({ length, char }) => (e: Event) => void (e.event_id = chars(length - (char ? 1 : 0), 'E') + (char ?? '')),
  ),
  // integers
  fc.record({
    field: fc.constantFrom('attempt', 'tokens_used', 'prompt_tokens', 'completion_tokens', 'duration_ms'),
    value: fc.constantFrom(-1, -0, 0, 1, 1.5, LIMITS.attemptMax, LIMITS.attemptMax + 1, Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER + 2, NaN, Infinity, '1', null),
  }).map(({ field, value }) => (e: Event) => void (e[field] = value)),
  // outcome
  fc.constantFrom('success', 'CRASHED', '', 1, null).map((value) => (e: Event) => void (e.outcome = value)),
  // commit sha
  fc.constantFrom('abcdef', 'abcdef0', 'ABCDEF0', 'abcdeF0', chars(64, 'f'), chars(65, 'f'), 'abcdefg', '', 7).map((value) => (e: Event) => void (e.commit_sha = value)),
  // time: format, calendar, bounds
  fc.constantFrom(
    '2026-11-28T09:30:00Z', '2026-11-28T09:30:00.5Z', '2026-11-28T09:30:00.000+00:00', '2026-11-28T09:30:00.0000Z', '2026-11-28 09:30:00.000Z',
    '2024-02-29T00:00:00.000Z', '2026-02-29T00:00:00.000Z', '2026-02-30T00:00:00.000Z', '2026-04-31T00:00:00.000Z', '2026-13-01T00:00:00.000Z',
    '2026-00-10T00:00:00.000Z', '2026-11-00T00:00:00.000Z', '2026-11-28T24:00:00.000Z', '2026-11-28T23:60:00.000Z', '2026-11-28T23:59:60.000Z',
    '1999-12-31T23:59:59.999Z', '2000-01-01T00:00:00.000Z', '2100-02-29T00:00:00.000Z', '2000-02-29T00:00:00.000Z',
    iso(RECEIVED + LIMITS.futureSlackMs), iso(RECEIVED + LIMITS.futureSlackMs + 1), '0999-01-01T00:00:00.000Z', 'yesterday',
  ).map((value) => (e: Event) => void (e.occurred_at = value)),
  // lists: counts, item lengths and characters, paths normalisation changes
  fc.record({
    field: fc.constantFrom('files', 'tests_failed'),
    items: fc.constantFrom(0, 1, 199, 200, 201, 499, 500, 501),
    length: fc.constantFrom(1, 1023, 1024, 1025),
  }).map(({ field, items, length }) => (e: Event) => void (e[field] = Array.from({ length: items }, (_, i) => `${i}/${chars(length)}`.slice(0, length)))),
  fc.constantFrom(
    '.', '..', './a', 'a/.', 'a/..', 'a/../b', '../a', '/abs', 'C:x', 'c:/x', 'a//b', 'a/', 'a/./b', '', 'a\\b', 'a"b', 'é', 'a b', '.hidden', '...', 'a..b', 'x:y',
  ).chain((item) => fc.constantFrom('files', 'tests_failed').map((field) => (e: Event) => void (e[field] = ['src/ok.py', item]))),
  fc.constantFrom<unknown>([1], [null], 'src/a.py', {}, null).map((value) => (e: Event) => void (e.files = value)),
  // metadata
  fc.constantFrom<unknown>(
    {}, { b: 1, a: 2 }, { a: { b: 1 } }, { a: [1] }, { a: 1.5 }, { a: 1e21 }, { a: -0 }, { a: Number.MAX_SAFE_INTEGER + 1 }, { a: NaN }, { a: '' },
    { a: 'x"y' }, { 'a"': 1 }, { a: 'é' }, { a: '\\' }, { a: null }, { a: true }, { a: false }, { a: undefined }, { '': 1 }, { '10': 1, '9': 2 },
    // jsonb prints 1e21 as 22 digits: 2 + 27 + 2 + 7 + N bytes with b of N characters; 16,384 is the limit.
    { a: 1e21, b: chars(16_384 - 38) }, { a: 1e21, b: chars(16_384 - 37) },
    { a: chars(16_384 - 9) }, { a: chars(16_384 - 8) }, { a: chars(16_384 - 7) }, { a: 'x', b: chars(16_384 - 17) }, { a: 'x', b: chars(16_384 - 16) },
    [], 'text', 1, null, new Date(0), Object.create(null) as object,
  ).map((value) => (e: Event) => void (e.metadata = value)),
  fc.constant((e: Event) => {
    // A fresh object: the constants above are shared between events.
    const metadata = Object.assign({}, typeof e.metadata === 'object' && !Array.isArray(e.metadata) ? e.metadata : {});
    e.metadata = Object.defineProperty(metadata, '__proto__', { value: 1, enumerable: true, configurable: true, writable: true });
  }),
  // keys and objects
  fc.constantFrom('colour', 'Run_id', '').map((key) => (e: Event) => void (e[key] = 'x')),
  fc.constantFrom('event_id', 'model', 'attempt', 'files', 'metadata', 'commit_sha').map((key) => (e: Event) => void (e[key] = undefined)),
  fc.constantFrom('run_id', 'phase_id', 'outcome', 'occurred_at').map((key) => (e: Event) => void delete e[key]),
);

type Input = { event: unknown; twisted: boolean };
const inputArb: fc.Arbitrary<Input> = fc
  .tuple(commonArb, fc.array(twistArb, { maxLength: 3 }), fc.constantFrom('plain', 'plain', 'plain', 'plain', 'null-prototype', 'class'))
  .map(([c, twists, kind]) => {
    const e = common(c);
    for (const twist of twists) twist(e);
    if (kind === 'plain') return { event: e, twisted: twists.length > 0 };
    const event = kind === 'class' ? Object.assign(new (class Event {})(), e) : Object.assign(Object.create(null) as object, e);
    return { event, twisted: true };
  });

describe('the fast path for the common event', () => {
  it(`answers for every common event and, wherever it answers, exactly as the contract's judge (${RUNS} generated events)`, () => {
    const tally = { plain: 0, plainFast: 0, twisted: 0, twistedFast: 0 };
    fc.assert(
      fc.property(inputArb, ({ event, twisted }) => {
        const fast = fastEvent(event, RECEIVED);
        const judged = judgeEvent(event, { receivedAt: RECEIVED });
        if (twisted) tally.twisted++;
        else tally.plain++;
        if (!fast) return !twisted ? false : true;
        if (twisted) tally.twistedFast++;
        else tally.plainFast++;
        return isDeepStrictEqual(fast, judged);
      }),
      { numRuns: RUNS, seed: SEED },
    );
    expect(tally.plainFast).toBe(tally.plain);
    expect(tally.plain).toBeGreaterThan(RUNS / 10);
    // Twists that stay inside the fast path's domain (bounds at the limit, '.hidden', [], {}, …) are answered by it.
    expect(tally.twistedFast).toBeGreaterThan(tally.twisted / 20);
    expect(tally.twistedFast).toBeLessThan(tally.twisted);
  });

  it('answers for the events bench:ingest generates, and leaves every refusal to the judge', () => {
    let n = 0;
    for (const event of generateEvents(5_000)) {
      const fast = fastEvent(event, RECEIVED);
      expect(fast, JSON.stringify(event)).toBeDefined();
      expect(fast).toEqual(judgeEvent(event, { receivedAt: RECEIVED }));
      n++;
    }
    expect(n).toBe(5_000);
    const refused = [
      { run_id: 'r', phase_id: 'p', outcome: 'SUCCESS', occurred_at: '2026-11-28T09:30:00.000Z', attempt: 0 },
      { run_id: 'r', phase_id: 'p', outcome: 'SUCCESS', occurred_at: '2026-11-28T09:30:00.000Z', files: ['../x'] },
      { run_id: 'r', phase_id: 'p', outcome: 'SUCCESS', occurred_at: iso(RECEIVED + LIMITS.futureSlackMs + 1) },
    ];
    for (const event of refused) {
      expect(judgeEvent(event, { receivedAt: RECEIVED }).ok).toBe(false);
      expect(fastEvent(event, RECEIVED)).toBeUndefined();
    }
    const accepted = { run_id: 'r', phase_id: 'p', outcome: 'FAILED', occurred_at: '2026-11-28T09:30:00.000Z', files: [], tests_failed: [], metadata: {} };
    expect(fastEvent(accepted, RECEIVED)).toEqual(judgeEvent(accepted, { receivedAt: RECEIVED }));
    expect(fastEvent(accepted, RECEIVED)).toMatchObject({ ok: true, event: { stop_reason: null, attempt: 1, files: [], tests_failed: [] } });
  });
});
