/**
 * The event contract, property-tested on the real PostgreSQL (issue 8). Generated events — biased to every bound
 * of the contract and to the nasty classes: empty arrays and strings, NUL and other control characters, lone and
 * paired surrogates, astral characters, upper-case hex, deep and wide metadata, __proto__/constructor keys, extreme
 * integers, floats, -0, dates at and past the bounds, wrong types — are judged by an oracle written here from the
 * README's field list (not by the validator's code), and then:
 *
 *   1. through each of the three ways in — the bulk path (bulkStoreEvents), POST /v1/events (the real Fastify app)
 *      and PhaseOutcomeRecorder — what the oracle accepts is `accepted` and reads back equal to what was sent
 *      (modulo the documented normalisations, which the oracle applies), what it refuses is `invalid` with a
 *      message naming a field it found wrong, and nothing throws; sent again, every accepted event is `duplicate`;
 *   2. the database alone, fed the oracle's rows without any validator, refuses exactly the rows the oracle refuses
 *      (for the events PostgreSQL can represent at all: no NUL, no lone surrogate, right types, JSON values).
 *
 * Together: validator = oracle = CHECKs. Loosening or tightening any one rule or CHECK fails this test.
 * ROAD_FUZZ_RUNS (batches per path, default 10 × ≈ 230 events) and ROAD_FUZZ_SEED set the run; `npm run
 * fuzz:events` runs it long. A failure prints the seed and the shrunk batch.
 */
import { createHash } from 'node:crypto';
import fc from 'fast-check';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { EventConflictError, InvalidEventError, PhaseOutcomeRecorder } from '../../client/recorder.js';
import { buildServer, parseApiTokens } from '../../client/server.js';
import { bulkStoreEvents } from '../../db/events.js';
import { LIMITS, OUTCOMES, type ItemResult } from '../../domain/telemetry.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';

const RUNS = Number(process.env.ROAD_FUZZ_RUNS ?? 10);
const SEED = Number(process.env.ROAD_FUZZ_SEED ?? 20261128);
/** Stops generating after this long, when set (a failure is reported at once, without shrinking: no limit needed). */
const TIME_LIMIT_MS = Number(process.env.ROAD_FUZZ_TIME_LIMIT_MS ?? 0);
/** ~15 s alone on 2 cores; room for a machine busy with the rest of the suite. */
const TIMEOUT_MS = RUNS * 15_000;
const BATCH = { minLength: 210, maxLength: 250 };
const TOKEN = 'property-token-0123456789';

// ------------------------------------------------------------------------------------------- the oracle (the spec)

const KNOWN = new Set([
  'event_id', 'run_id', 'phase_id', 'phase_type', 'model', 'attempt', 'outcome', 'stop_reason', 'decision_rationale', 'tokens_used',
  'prompt_tokens', 'completion_tokens', 'duration_ms', 'files', 'tests_failed', 'commit_sha', 'occurred_at', 'metadata',
]);
const encoder = new TextEncoder();
const bytesOf = (s: string) => encoder.encode(s).length;
function codePoints(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++, n++) {
    const c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length && s.charCodeAt(i + 1) >= 0xdc00 && s.charCodeAt(i + 1) <= 0xdfff) i++;
  }
  return n;
}
function hasLoneSurrogate(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0xdc00 && c <= 0xdfff) return true;
    if (c >= 0xd800 && c <= 0xdbff) {
      const next = s.charCodeAt(i + 1);
      if (!(next >= 0xdc00 && next <= 0xdfff)) return true;
      i++;
    }
  }
  return false;
}
const hasControl = (s: string) => [...s].some((c) => c.charCodeAt(0) < 0x20 || c === '\u007f');

/** A path as the README says it is stored: / separators, "." and empty segments dropped, ".." resolved. */
function normalizedPath(raw: string): string {
  const p = raw.replaceAll('\\', '/');
  const absolute = p.startsWith('/');
  const out: string[] = [];
  for (const segment of p.split('/')) {
    if (segment === '' || segment === '.') continue;
    if (segment === '..' && out.length && out.at(-1) !== '..') out.pop();
    else if (segment !== '..' || !absolute) out.push(segment);
  }
  const joined = (absolute ? '/' : '') + out.join('/');
  return joined && joined !== '/' && /\/\.{0,2}$/.test(p) && !/(^|\/)\.{1,2}$/.test(p) ? `${joined}/` : joined;
}

interface Row {
  [column: string]: unknown;
}
interface Verdict {
  /** Fields the spec finds wrong (empty: valid). */
  bad: Set<string>;
  /** Right types, known keys, a parseable time, JSON values only, no NUL or lone surrogate: PostgreSQL can hold the row. */
  representable: boolean;
  /** The stored form of every column the event gives (for a valid event: what must read back). */
  row: Row;
}

/** jsonb text sizes of metadata (computed by PostgreSQL itself), keyed by JSON text. */
type Sizes = Map<string, number>;

/** How many levels of arrays and objects `v` nests below itself, counting at most `max`. */
function nestingBelow(v: unknown, max: number): number {
  let level = 0;
  let frontier: unknown[] = [v];
  while (level < max) {
    frontier = frontier.flatMap((x) => (x && typeof x === 'object' ? Object.values(x as object) : [])).filter((x) => x && typeof x === 'object');
    if (!frontier.length) return level;
    level++;
  }
  return level;
}

function metadataVerdict(value: unknown): { ok: boolean; representable: boolean; depthOk: boolean } {
  let ok = true;
  let representable = true;
  let depthOk = true;
  const visit = (v: unknown, depth: number): void => {
    if (typeof v === 'string') {
      if (v.includes('\u0000') || hasLoneSurrogate(v)) ok = representable = false;
    } else if (typeof v === 'number') {
      if (!Number.isFinite(v)) ok = representable = false;
    } else if (typeof v === 'boolean' || v === null) {
      // fine
    } else if (Array.isArray(v) || (typeof v === 'object' && v !== null && [Object.prototype, null].includes(Object.getPrototypeOf(v)))) {
      if (depth > LIMITS.metadataDepth) {
        ok = depthOk = false;
        // Much deeper values are not sent to the database alone (JSON.stringify itself recurses).
        if (depth + nestingBelow(v, 8) > 40) representable = false;
        return;
      }
      if (Array.isArray(v)) {
        for (const item of v) {
          if (item === undefined) ok = representable = false;
          else visit(item, depth + 1);
        }
      } else {
        for (const key of Object.keys(v)) {
          const member = (v as Record<string, unknown>)[key];
          if (member === undefined) continue;
          if (key.includes('\u0000') || hasLoneSurrogate(key)) ok = representable = false;
          visit(member, depth + 1);
        }
      }
    } else ok = representable = false; // undefined in an array, functions, Dates, …
  };
  visit(value, 1);
  return { ok, representable, depthOk };
}

function oracle(input: unknown, receivedAt: number, sizes: Sizes): Verdict {
  const bad = new Set<string>();
  const row: Row = {};
  if (typeof input !== 'object' || input === null || Array.isArray(input)) return { bad: new Set(['event']), representable: false, row };
  let representable = true;
  const e = input as Record<string, unknown>;
  const wrongType = (field: string) => {
    bad.add(field);
    representable = false;
  };
  for (const key of Object.keys(e)) if (!KNOWN.has(key)) wrongType(key);

  const text = (field: string, required: boolean, unit: 'chars' | 'bytes', min: number, max: number) => {
    const v = e[field];
    if (v === undefined) {
      if (required) wrongType(field);
      return;
    }
    if (typeof v !== 'string') return wrongType(field);
    if (v.includes('\u0000') || hasLoneSurrogate(v)) {
      bad.add(field);
      representable = false;
    }
    const n = unit === 'chars' ? codePoints(v) : bytesOf(v);
    if (n < min || n > max) bad.add(field);
    row[field] = v;
  };
  text('run_id', true, 'chars', 1, 255);
  text('phase_id', true, 'chars', 1, 255);
  text('phase_type', false, 'chars', 0, 255);
  text('model', false, 'chars', 0, 255);
  text('stop_reason', false, 'bytes', 0, 255);
  text('decision_rationale', false, 'bytes', 0, 10 * 1024 - 1);

  if (e.event_id !== undefined) {
    if (typeof e.event_id !== 'string') wrongType('event_id');
    else {
      if (e.event_id.length < 1 || e.event_id.length > 128 || [...e.event_id].some((c) => !/[A-Za-z0-9._:-]/.test(c))) bad.add('event_id');
      if (e.event_id.includes('\u0000') || hasLoneSurrogate(e.event_id)) representable = false;
      row.event_id = e.event_id;
    }
  }
  const integer = (field: string, min: number, max: number, fallback: number | null) => {
    const v = e[field];
    if (v === undefined) return void (row[field] = fallback);
    if (typeof v !== 'number') return wrongType(field);
    if (!Number.isFinite(v)) representable = false;
    if (!Number.isInteger(v) || v < min || v > max) bad.add(field);
    row[field] = v === 0 ? 0 : v; // -0 is stored as 0
  };
  integer('attempt', 1, 1_000_000, 1);
  for (const field of ['tokens_used', 'prompt_tokens', 'completion_tokens', 'duration_ms']) integer(field, 0, 2 ** 53 - 1, null);

  if (e.outcome === undefined) wrongType('outcome');
  else if (typeof e.outcome !== 'string') wrongType('outcome');
  else {
    if (!(OUTCOMES as readonly string[]).includes(e.outcome)) bad.add('outcome');
    row.outcome = e.outcome;
    if (e.stop_reason === undefined && e.outcome === 'SUCCESS') row.stop_reason = 'completed';
  }

  const list = (field: 'files' | 'tests_failed', maxItems: number) => {
    const v = e[field];
    if (v === undefined) return;
    if (!Array.isArray(v) || v.some((item) => typeof item !== 'string')) return wrongType(field);
    if (v.length > maxItems) bad.add(field);
    row[field] = (v as string[]).map((item) => {
      if (item.includes('\u0000') || hasLoneSurrogate(item)) {
        bad.add(field);
        representable = false;
      }
      if (item === '' || hasControl(item)) bad.add(field);
      const stored = field === 'files' ? normalizedPath(item) : item;
      if (field === 'files' && (stored === '' || stored === '.' || stored.startsWith('/') || /^[A-Za-z]:/.test(stored) || stored === '..' || stored.startsWith('../'))) bad.add(field);
      if (bytesOf(stored) > 1024) bad.add(field);
      return stored;
    });
  };
  list('files', 200);
  list('tests_failed', 500);

  if (e.commit_sha !== undefined) {
    if (typeof e.commit_sha !== 'string') wrongType('commit_sha');
    else {
      if (!/^[0-9a-f]{7,64}$/i.test(e.commit_sha)) bad.add('commit_sha');
      if (e.commit_sha.includes('\u0000') || hasLoneSurrogate(e.commit_sha)) representable = false;
      row.commit_sha = e.commit_sha.toLowerCase();
    }
  }

  const at = e.occurred_at;
  if (typeof at !== 'string') wrongType('occurred_at');
  else {
    const m = /^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d+))?(Z|([+-])(\d\d):(\d\d))$/.exec(at);
    const [y, mo, d, h, mi, s] = (m ?? []).slice(1, 7).map(Number) as number[];
    const calendar = m && y! >= 1000 && new Date(Date.UTC(y!, mo! - 1, d!)).getUTCDate() === d && mo! >= 1 && mo! <= 12 && d! >= 1;
    if (!m || !calendar && y! >= 1000 || h! > 23 || mi! > 59 || s! > 59 || Number(m[10] ?? 0) > 23 || Number(m[11] ?? 0) > 59) wrongType('occurred_at');
    else if (y! < 1000) bad.add('occurred_at');
    else {
      const ms = Date.UTC(y!, mo! - 1, d!, h!, mi!, s!, Number((m[7] ?? '').padEnd(3, '0').slice(0, 3))) - (m[9] === '-' ? -1 : 1) * (Number(m[10] ?? 0) * 60 + Number(m[11] ?? 0)) * 60_000;
      if (ms < Date.UTC(2000, 0, 1) || ms > receivedAt + 86_400_000) bad.add('occurred_at');
      row.occurred_at = new Date(ms).toISOString();
    }
  }

  if (e.metadata !== undefined) {
    const v = e.metadata;
    if (typeof v !== 'object' || v === null) wrongType('metadata');
    else {
      const judged = metadataVerdict(v);
      if (Array.isArray(v) || !judged.ok) bad.add('metadata');
      if (!judged.representable) representable = false;
      if (judged.representable) {
        const json = JSON.stringify(v);
        row.metadata = JSON.parse(json) as unknown;
        if (!Array.isArray(v) && judged.depthOk && sizes.get(json)! > LIMITS.metadataBytes) bad.add('metadata');
      }
    }
  }
  return { bad, representable, row };
}

// ------------------------------------------------------------------------------------------- the arbitraries

const FILLS = ['a', 'é', '€', '😀']; // 1, 2, 3, 4 bytes of UTF-8; 😀 is two UTF-16 units and one code point
/** Characters every text field takes (control characters, a paired surrogate, quotes, backslashes, BOM, LS). */
const HARMLESS = ['\u0001', '\n', '\t', '\r', '\u007f', '\\', '"', '😀', 'Z', '\u2028', '\ufeff', ' '];
/** Characters no text field takes: NUL (PostgreSQL stores none) and lone surrogates (they would become U+FFFD). */
const UNSTORABLE = ['\u0000', '\ud800', '\udfff', '\udfff\ud800', 'a\u0000'];

/** Mostly the clean arbitrary, now and then the nasty one: most events are valid, and every field is nasty in some. */
const mostly = <T, U>(clean: fc.Arbitrary<T>, nasty: fc.Arbitrary<U>, odds = 40) =>
  fc.oneof({ arbitrary: clean as fc.Arbitrary<unknown>, weight: odds }, { arbitrary: nasty as fc.Arbitrary<unknown>, weight: 1 });

/** A string of `length` (code points or bytes) of one fill character, with `special` put in at `at`. */
function sized(length: number, unit: 'chars' | 'bytes', fill: string, special: string | null, at: number): string {
  let s = unit === 'chars' ? fill.repeat(length) : fill.repeat(Math.floor(length / bytesOf(fill))) + 'a'.repeat(length % bytesOf(fill));
  if (special !== null) {
    const chars = [...s];
    chars.splice(chars.length ? at % chars.length : 0, chars.length ? 1 : 0, special);
    s = chars.join('');
  }
  return s;
}
/** Text at and inside its bounds (clean), or past them, with NUL or a lone surrogate, or of the wrong type (nasty). */
function textArb(min: number, max: number, unit: 'chars' | 'bytes', specials = HARMLESS) {
  const clean = fc
    .tuple(
      fc.oneof(
        { arbitrary: fc.constantFrom(...[min, min + 1, max - 1, max].filter((n) => n >= min && n <= max)), weight: 1 },
        { arbitrary: fc.integer({ min: Math.max(min, 1), max: Math.max(min, 1, Math.min(max, 24)) }), weight: 3 },
      ),
      fc.constantFrom(...FILLS),
      fc.option(fc.constantFrom(...specials), { freq: 3 }),
      fc.nat(),
    )
    .map(([length, fill, special, at]) => sized(length, unit, fill, special, at));
  const nasty = fc.oneof(
    fc.tuple(fc.constantFrom(...[min - 1, max + 1].filter((n) => n >= 0)), fc.constantFrom(...FILLS), fc.nat()).map(([length, fill, at]) => sized(length, unit, fill, null, at)),
    fc.tuple(fc.integer({ min: Math.max(min, 1), max: Math.max(min, 1, Math.min(max, 12)) }), fc.constantFrom(...UNSTORABLE), fc.nat()).map(([length, special, at]) => sized(length, unit, 'a', special, at)),
  );
  return { clean, nasty };
}

const absent = fc.constant(undefined);
const wrongTypes = fc.constantFrom<unknown>(null, 5, true, 'text', [], {}, ['x']);
/** A field: present and clean, absent, or nasty (past a bound, unstorable, or of the wrong type). */
const field = (arbs: { clean: fc.Arbitrary<unknown>; nasty: fc.Arbitrary<unknown> }, presence = 3, nastiness = 4) =>
  fc.oneof(
    { arbitrary: arbs.clean, weight: 30 * presence },
    { arbitrary: absent, weight: 30 },
    { arbitrary: fc.oneof({ arbitrary: arbs.nasty, weight: 4 }, { arbitrary: wrongTypes, weight: 1 }), weight: nastiness },
  );

const integerArb = (min: number, max: number) => ({
  clean: fc.oneof(fc.constantFrom(min, min + 1, max - 1, max, ...(min === 0 ? [-0] : [])), fc.integer({ min, max: Math.min(max, 1e9) })),
  nasty: fc.constantFrom(min - 1, max + 1, 1.5, 2 ** 31, 2 ** 53, 2 ** 63, 1e21, -1, NaN, Infinity, -Infinity),
});

const cleanSegment = fc.constantFrom('src', 'a.py', 'tests', 'é', '😀', '.hidden', 'a b', 'x:y', '.', '', '..a', 'C');
const nastySegment = fc.constantFrom('..', 'C:', 'c:', '\u0000', '\u0001x', 'a\nb', '\u007f', '\ud800', 'x'.repeat(1020), 'é'.repeat(512));
const pathOf = (segment: fc.Arbitrary<string>) =>
  fc
    .tuple(fc.array(segment, { minLength: 1, maxLength: 4 }), fc.constantFrom('/', '/', '\\'), fc.constantFrom('', '', '', '/', './', '\\', '../'))
    .map(([segments, sep, lead]) => lead + segments.join(sep));
const pathArb = {
  clean: fc.oneof(
    { arbitrary: pathOf(cleanSegment).filter((p) => !/^(\/|\\|\.\.\/)/.test(p)), weight: 8 },
    // exactly at the byte limit (4 + 1020 bytes; 4 + 510 × 2), and longer before normalisation only
    { arbitrary: fc.constantFrom('src/' + 'p'.repeat(1020), 'src/' + 'é'.repeat(510), './' + 'p'.repeat(1024), 'a/../' + 'p'.repeat(1024)), weight: 1 },
    // valid, each breaking exactly one rule of the stored form until normalised
    { arbitrary: fc.constantFrom('src//a.py', 'src/./a.py', 'src\\a.py', './src/a.py', 'src/a/.', 'src/../b.py', 'a/b/'), weight: 2 },
  ),
  nasty: fc.oneof(
    pathOf(fc.oneof({ arbitrary: cleanSegment, weight: 3 }, { arbitrary: nastySegment, weight: 1 })),
    // one of each kind: too long, absolute, drive, empty, the root, leaving the repository, control characters
    fc.constantFrom('src/' + 'p'.repeat(1021), 'src/' + 'é'.repeat(510) + 'x', '/etc/passwd', '\\abs', 'C:\\x', 'c:rel', '', '.', './', 'a/..'),
    fc.constantFrom('..', '../a', 'a/../..', 'a\\..\\..\\b', './../x', 'src/..'),
    fc.constantFrom('a\u0001b', 'a\tb', 'a\nb', 'a\u007f', 'a\u001f/b', 'a\u0000'),
  ),
};
const listArb = (item: { clean: fc.Arbitrary<string>; nasty: fc.Arbitrary<string> }, max: number) => ({
  clean: fc.oneof(
    { arbitrary: fc.array(item.clean, { maxLength: 4 }), weight: 8 },
    { arbitrary: fc.constant<string[]>([]), weight: 4 },
    { arbitrary: fc.constant(max).map((n) => Array.from({ length: n }, (_, i) => `t/${i}`)), weight: 2 },
  ),
  nasty: fc.oneof(
    {
      weight: 6,
      arbitrary: fc.tuple(fc.array(item.clean, { maxLength: 3 }), item.nasty, fc.nat()).map(([items, bad, at]) => {
        items.splice(at % (items.length + 1), 0, bad);
        return items;
      }),
    },
    { weight: 3, arbitrary: fc.constant(max + 1).map((n) => Array.from({ length: n }, (_, i) => `t/${i}`)) },
    { weight: 1, arbitrary: fc.constantFrom<unknown>(['a', 3], ['a', null], 'src/a.py') },
  ),
});
const testIdArb = (() => {
  const { clean, nasty } = textArb(1, LIMITS.testIdBytes, 'bytes', ['\\', '"', '😀', ' ', '::', '\u2028']);
  return { clean, nasty: fc.oneof(nasty, fc.constant(''), fc.constantFrom('a\nb', 'tab\there', '\u007f', '\u0001', 'x\u001f')) };
})();

const hex = (n: number) => createHash('sha256').update(String(n)).digest('hex').repeat(2).slice(0, n);
const hexArb = {
  clean: fc.tuple(fc.constantFrom(7, 8, 12, 40, 63, 64), fc.constantFrom('lower', 'upper', 'mixed')).map(([n, style]) =>
    style === 'lower' ? hex(n) : style === 'upper' ? hex(n).toUpperCase() : [...hex(n)].map((c, i) => (i % 2 ? c.toUpperCase() : c)).join(''),
  ),
  nasty: fc.constantFrom(hex(6), hex(65), hex(39) + 'g', hex(40).slice(0, 39) + ' ', 'é' + hex(9), '', hex(7) + '\u0000'),
};

/** occurred_at relative to when ROAD receives the batch (`received`): at and past both bounds, any offset and precision. */
const timeArb = fc.oneof(
  {
    weight: 16,
    arbitrary: fc
      .tuple(
        fc.oneof({ weight: 1, arbitrary: fc.constantFrom('early', 'early-1', 'late', 'late+1', 'late-1') }, { weight: 4, arbitrary: fc.constant('typical') }),
        fc.constantFrom('Z', '+00:00', '-00:00', '+05:30', '-23:59', '+23:59'),
        fc.constantFrom('', '.5', '.123', '.123456', '.999999999'),
        fc.integer({ min: 0, max: 10_000_000 }),
      )
      .map(([at, offset, fraction, jitter]) => ({ at, offset, fraction, jitter })),
  },
  {
    weight: 1,
    arbitrary: fc.constantFrom(
      '2026-11-20T10:00:00', '2026-02-30T00:00:00Z', '2024-02-29T12:00:00Z', '2026-11-20 10:00:00Z', '2026-11-20T10:00Z', '0000-01-01T00:00:00Z',
      '1999-12-31T23:59:59.999Z', '2099-01-01T00:00:00Z', '2026-11-20T24:00:00Z', '2026-11-20T10:00:00+24:00', '2026-11-20t10:00:00z',
      'yesterday', '2026-11-20T10:00:60Z', '+002026-11-20T10:00:00Z',
    ),
  },
);
type TimeSpec = string | { at: string; offset: string; fraction: string; jitter: number };

/** Renders a time spec: the instant exactly (to the millisecond), written with the spec's offset and fraction style. */
function renderTime(spec: TimeSpec, received: number): string {
  if (typeof spec === 'string') return spec;
  const instant = {
    early: Date.UTC(2000, 0, 1),
    'early-1': Date.UTC(2000, 0, 1) - 1,
    late: received + 86_400_000,
    'late+1': received + 86_400_000 + 1,
    'late-1': received + 86_400_000 - 1,
    typical: received - 86_400_000 * 30 - spec.jitter * 1000,
  }[spec.at]!;
  const [oh, om] = spec.offset === 'Z' ? [0, 0] : spec.offset.slice(1).split(':').map(Number);
  const offsetMs = (spec.offset.startsWith('-') ? -1 : 1) * (oh! * 60 + om!) * 60_000;
  const local = new Date(instant + offsetMs).toISOString(); // the wall-clock time at that offset
  const ms = local.slice(20, 23);
  // Digits past the millisecond are allowed and dropped; fewer digits only when they say the same milliseconds.
  const fraction =
    spec.fraction === '' ? (ms === '000' ? '' : `.${ms}`)
    : spec.fraction === '.5' ? (ms.endsWith('00') ? `.${ms[0]}` : `.${ms}`)
    : `.${ms}${spec.fraction.slice(4)}`;
  return `${local.slice(0, 19)}${fraction}${spec.offset}`;
}

const cleanLeaf = fc.oneof(
  fc.constantFrom<unknown>(0, -0, 1.5, 5e-324, 1e21, 1.7976931348623157e308, -1e-7, 2 ** 53 + 2, true, false, null, '', 'é', '😀', 'tab\there', 'quote"back\\', '\u0001\u001f\u007f', '\\u0000'),
  fc.string({ maxLength: 8 }).filter((x) => !x.includes('\u0000')),
  fc.integer(),
);
const nastyLeaf = fc.constantFrom<unknown>('\u0000', 'a\u0000', '\ud800', '\udfff', Infinity, NaN, -Infinity, new Date(0), () => 1, Symbol('s'), 10n);
const KEYS = ['a', 'b', 'agent', '__proto__', 'constructor', 'prototype', 'toString', 'hasOwnProperty', 'é', '😀', '', 'a b', '\n'];
const NASTY_KEYS = ['k\u0000', 'k\ud800', '\udc00'];
/** An object with own keys (also "__proto__", which a literal or plain assignment would turn into a prototype). */
const objectOf = (members: Array<[string, unknown]>) => {
  const o: Record<string, unknown> = {};
  for (const [key, value] of members) Object.defineProperty(o, key, { value, enumerable: true, writable: true, configurable: true });
  return o;
};
const jsonValue = (leaf: fc.Arbitrary<unknown>, keys: fc.Arbitrary<string>) =>
  fc.letrec<{ value: unknown }>((tie) => ({
    value: fc.oneof(
      { depthSize: 'small', withCrossShrink: true },
      leaf,
      fc.array(tie('value'), { maxLength: 3 }),
      fc.array(fc.tuple(keys, tie('value')), { maxLength: 3 }).map(objectOf),
    ),
  })).value;
/** JSON text of values too deep for JSON.stringify (it recurses: ~5,000 levels overflow Node's stack). */
const DEEP_JSON = Symbol('json text');
const nested = (depth: number, array: boolean) => {
  let v: unknown = array ? [] : {};
  for (let i = 1; i < depth; i++) v = array ? [v] : { n: v };
  const json = array ? '['.repeat(depth) + ']'.repeat(depth) : '{"n":'.repeat(depth - 1) + '{}' + '}'.repeat(depth - 1);
  Object.defineProperty(v as object, DEEP_JSON, { value: json });
  // fast-check prints counterexamples recursively too.
  Object.defineProperty(v as object, fc.toStringMethod, { value: () => `<${depth} levels of ${array ? 'arrays' : 'objects'}>` });
  return v;
};
/** JSON.stringify, but values made by `nested` are written from their stored text. */
function toJson(value: unknown): string {
  const deep: string[] = [];
  let text: string | undefined;
  try {
    text = JSON.stringify(value, (_key, v: unknown) => {
    const stored = v && typeof v === 'object' ? (v as Record<symbol, string>)[DEEP_JSON] : undefined;
      return stored === undefined ? (typeof v === 'bigint' ? `${v}n` : v) : `\u0000deep${deep.push(stored) - 1}\u0000`;
    });
  } catch {
    return '"<too deep to print>"'; // a deep value parsed back from JSON (it has no stored text)
  }
  return text === undefined ? 'null' : text.replace(/"\\u0000deep(\d+)\\u0000"/g, (_m, i: string) => deep[Number(i)]!);
}
const metadataArb = {
  clean: fc.oneof(
    { weight: 8, arbitrary: fc.array(fc.tuple(fc.constantFrom(...KEYS), jsonValue(cleanLeaf, fc.constantFrom(...KEYS))), { maxLength: 4 }).map(objectOf) },
    { weight: 1, arbitrary: fc.tuple(fc.constantFrom(31, 32), fc.boolean()).map(([depth, array]) => ({ deep: nested(depth - 1, array) })) },
    // {"pad": "…"} is the pad plus 11 bytes as jsonb text: at and below 16 KiB; numbers that jsonb writes out long.
    { weight: 1, arbitrary: fc.constantFrom(16383, 16384).map((n) => ({ pad: 'm'.repeat(n - 11) })) },
    { weight: 1, arbitrary: fc.constantFrom(1, 49).map((n) => ({ n: Array(n).fill(5e-324) })) },
    { weight: 1, arbitrary: fc.constant({ undefinedIsLeftOut: undefined, kept: 1 }) },
  ),
  nasty: fc.oneof(
    { depthSize: 'small' },
    fc.array(fc.tuple(fc.constantFrom(...KEYS, ...NASTY_KEYS), jsonValue(fc.oneof(cleanLeaf, nastyLeaf), fc.constantFrom(...KEYS, ...NASTY_KEYS))), { minLength: 1, maxLength: 4 }).map(objectOf),
    fc.tuple(fc.constantFrom(33, 34, 5000), fc.boolean()).map(([depth, array]) => ({ deep: nested(depth - 1, array) })),
    fc.constant({ pad: 'm'.repeat(16385 - 11) }),
    fc.constantFrom(51, 60).map((n) => ({ n: Array(n).fill(5e-324) })),
    fc.constant(Object.fromEntries(Array.from({ length: 2000 }, (_, i) => [`k${i}`, i]))),
    fc.constantFrom<unknown>([], [1], 'text', { when: new Date(0) }, { f: () => 1 }, { a: [1, undefined] }, Object.assign(Object.create({ inherited: 1 }) as object, { own: 1 })),
    // one defect each, in an otherwise clean object
    fc.constantFrom<unknown>(
      { agent: 'x', n: Infinity }, { n: [1, NaN] }, { deep: { x: -Infinity } }, { s: 'a\u0000b' }, { 'k\u0000': 1 }, { s: ['\ud800'] }, { '\udc00k': true },
    ),
    fc.constantFrom<unknown>(
      { agent: 'x', n: Infinity }, { n: [1, NaN] }, { deep: { x: -Infinity } }, { s: 'a\u0000b' }, { 'k\u0000': 1 }, { s: ['\ud800'] }, { '\udc00k': true },
      { s: Symbol('s') }, { b: 10n }, { m: new Map() }, { r: /x/ },
    ),
  ),
};

interface Spec {
  eventId: undefined | { length: number; bad: string | null } | { wrong: unknown };
  runId: undefined | { length: number; fill: string; special: string | null } | { wrong: unknown };
  fields: Record<string, unknown>;
  time: TimeSpec | undefined;
  extra: null | 'colour' | '__proto__' | 'not-an-object';
}

const specArb: fc.Arbitrary<Spec> = fc.record({
  eventId: fc.oneof(
    { weight: 4, arbitrary: absent },
    { weight: 8, arbitrary: fc.record({ length: fc.constantFrom(1, 20, 127, 128), bad: fc.constant(null) }) },
    { weight: 1, arbitrary: fc.record({ length: fc.constantFrom(0, 20, 129), bad: fc.option(fc.constantFrom(' ', 'é', '/', '\u0000', '\ud800'), { nil: null }) }) },
    { weight: 1, arbitrary: fc.record({ wrong: wrongTypes }) },
  ),
  runId: fc.oneof(
    { weight: 14, arbitrary: fc.record({ length: fc.constantFrom(1, 12, 254, 255), fill: fc.constantFrom(...FILLS), special: fc.option(fc.constantFrom(...HARMLESS), { freq: 4 }) }) },
    { weight: 1, arbitrary: fc.record({ length: fc.constantFrom(0, 256, 12), fill: fc.constantFrom(...FILLS), special: fc.option(fc.constantFrom(...UNSTORABLE), { freq: 2 }) }) },
    { weight: 1, arbitrary: fc.oneof(absent, fc.record({ wrong: wrongTypes })) },
  ),
  fields: fc.record(
    {
      phase_id: mostly(textArb(1, LIMITS.phaseIdChars, 'chars').clean, fc.oneof(textArb(1, LIMITS.phaseIdChars, 'chars').nasty, wrongTypes, absent)),
      phase_type: field(textArb(0, LIMITS.nameChars, 'chars')),
      model: field(textArb(0, LIMITS.nameChars, 'chars')),
      attempt: field(integerArb(1, LIMITS.attemptMax)),
      outcome: mostly(fc.constantFrom<unknown>(...OUTCOMES), fc.constantFrom<unknown>('success', 'CRASHED', '', undefined, 1, null)),
      stop_reason: field(textArb(0, LIMITS.stopReasonBytes, 'bytes')),
      decision_rationale: field({
        clean: fc.oneof({ weight: 8, arbitrary: textArb(0, 40, 'bytes').clean }, { weight: 1, arbitrary: textArb(LIMITS.rationaleBytes, LIMITS.rationaleBytes, 'bytes').clean }),
        nasty: textArb(0, LIMITS.rationaleBytes, 'bytes').nasty,
      }),
      tokens_used: field(integerArb(0, LIMITS.countMax)),
      prompt_tokens: field(integerArb(0, LIMITS.countMax), 1),
      completion_tokens: field(integerArb(0, LIMITS.countMax), 1),
      duration_ms: field(integerArb(0, LIMITS.countMax), 1),
      files: field(listArb(pathArb, LIMITS.files)),
      tests_failed: field(listArb(testIdArb, LIMITS.testsFailed)),
      commit_sha: field(hexArb),
      metadata: field(metadataArb, 2, 8),
    },
  ),
  time: mostly(timeArb, fc.constantFrom<unknown>(undefined, 42, null)) as fc.Arbitrary<TimeSpec | undefined>,
  extra: fc.oneof({ weight: 40, arbitrary: fc.constant(null) }, { weight: 1, arbitrary: fc.constantFrom<Spec['extra']>('colour', '__proto__', 'not-an-object') }),
});

let serial = 0;
let shortSerial = 0;
/** The event a spec stands for, sent at `received`: unique ids (so every valid event is new), the rest as generated. */
function materialize(spec: Spec, received: number, path: string): unknown {
  if (spec.extra === 'not-an-object') return spec.fields.phase_id ?? null;
  const unique = `${path}${(++serial).toString(36)}`;
  const event: Record<string, unknown> = {};
  if (spec.eventId && 'wrong' in spec.eventId) event.event_id = spec.eventId.wrong;
  else if (spec.eventId) {
    // Ids too short to hold the unique tag are unique within the batch; the batch's database forgets them first.
    const CHARSET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:-';
    const short = CHARSET[shortSerial % 66]! + (shortSerial++).toString(36);
    let id = (spec.eventId.length <= unique.length ? short : `${unique}.`).padEnd(spec.eventId.length, 'x').slice(0, spec.eventId.length);
    if (spec.eventId.bad && id.length) id = id.slice(0, -1) + spec.eventId.bad;
    event.event_id = id;
  }
  if (spec.runId && 'wrong' in spec.runId) event.run_id = spec.runId.wrong;
  else if (spec.runId) {
    const { length, fill, special } = spec.runId;
    const chars = [...`${unique}-`.slice(0, length)];
    while (chars.length < length) chars.push(fill);
    if (special !== null && length) chars[length - 1] = special;
    event.run_id = chars.join('');
    // A run id too short to be unique would derive colliding event ids: such events name their own.
    if (event.event_id === undefined && length < unique.length + 1) event.event_id = `${unique}.own`;
  }
  for (const [field, value] of Object.entries(spec.fields)) if (value !== undefined) event[field] = value;
  if (spec.time !== undefined) event.occurred_at = spec.time !== null && typeof spec.time === 'object' ? renderTime(spec.time, received) : spec.time;
  if (spec.extra === 'colour') event.colour = 'red';
  if (spec.extra === '__proto__') Object.defineProperty(event, '__proto__', { value: { polluted: true }, enumerable: true, writable: true, configurable: true });
  return event;
}

// ------------------------------------------------------------------------------------------- the three ways in

let dbs: Record<'bulk' | 'http' | 'recorder' | 'database', TestDatabase>;
let app: FastifyInstance;

beforeAll(async () => {
  const [bulk, http, recorder, database] = await Promise.all([createTestDatabase(), createTestDatabase(), createTestDatabase(), createTestDatabase()]);
  dbs = { bulk, http, recorder, database };
  app = buildServer({ pool: http.pool, tokens: parseApiTokens(TOKEN) });
  await app.ready();
  // Inserts rows one by one, each in its own subtransaction, and says which the database refused and why.
  await database.pool.query(`
    CREATE FUNCTION test_try_rows(rows jsonb) RETURNS TABLE (i integer, refused text) LANGUAGE plpgsql AS $$
    DECLARE r jsonb;
    BEGIN
      i := 0;
      FOR r IN SELECT value FROM jsonb_array_elements(rows) LOOP
        i := i + 1;
        BEGIN
          INSERT INTO phase_outcome_events SELECT * FROM jsonb_populate_record(NULL::phase_outcome_events, r);
          refused := NULL;
        EXCEPTION WHEN OTHERS THEN
          refused := SQLSTATE || ' ' || SQLERRM;
        END;
        RETURN NEXT;
      END LOOP;
    END $$`);
});
afterAll(async () => {
  vi.useRealTimers();
  await app?.close();
  await Promise.all(Object.values(dbs ?? {}).map((db) => db.drop()));
});

const COLUMNS = ['event_id', 'run_id', 'phase_id', 'phase_type', 'model', 'attempt', 'outcome', 'stop_reason', 'decision_rationale', 'tokens_used', 'prompt_tokens', 'completion_tokens', 'duration_ms', 'files', 'tests_failed', 'commit_sha', 'occurred_at', 'metadata'];

/** The stored rows of these ids, as the contract's values (bigint as number, time as ISO). */
async function readBack(db: TestDatabase, ids: string[]): Promise<Map<string, Row>> {
  const { rows } = await db.pool.query(`SELECT ${COLUMNS.join(', ')} FROM phase_outcome_events WHERE event_id = ANY($1)`, [ids]);
  return new Map(
    rows.map((r: Row) => {
      for (const c of ['tokens_used', 'prompt_tokens', 'completion_tokens', 'duration_ms']) if (r[c] !== null) r[c] = Number(r[c]);
      r.occurred_at = (r.occurred_at as Date).toISOString();
      return [r.event_id as string, r];
    }),
  );
}

/** The row a valid event must read back as: absent optional columns NULL. */
function expectedRow(verdict: Verdict): Row {
  const row: Row = {};
  for (const c of COLUMNS) row[c] = verdict.row[c] ?? null;
  return row;
}

const deriveId = (e: Record<string, unknown>) =>
  'auto:' + createHash('sha256').update(JSON.stringify([e.run_id, e.phase_id, e.attempt ?? 1])).digest('hex').slice(0, 40);

/** jsonb text sizes of the metadata in these events, measured by PostgreSQL. */
async function metadataSizes(events: unknown[]): Promise<Sizes> {
  const texts = new Set<string>();
  for (const e of events) {
    const m = (e as { metadata?: unknown } | null)?.metadata;
    if (m && typeof m === 'object' && !Array.isArray(m) && metadataVerdict(m).ok) texts.add(JSON.stringify(m));
  }
  const list = [...texts];
  const { rows } = await dbs.database.pool.query<{ n: number }>('SELECT octet_length(t::jsonb::text) AS n FROM unnest($1::text[]) WITH ORDINALITY AS u(t, o) ORDER BY o', [list]);
  return new Map(list.map((t, i) => [t, rows[i]!.n]));
}

type Send = (events: unknown[]) => Promise<ItemResult[]>;

/** Checks one path on one batch: every verdict against the oracle, every accepted event read back. */
async function checkPath(name: string, db: TestDatabase, events: unknown[], judged: unknown[], received: number, send: Send) {
  const sizes = await metadataSizes(judged);
  const verdicts = judged.map((e) => oracle(e, received, sizes));
  for (const v of verdicts) for (const field of v.bad) badFields.set(field, (badFields.get(field) ?? 0) + 1);
  // Ids too short to be unique across batches may be stored already: then the verdict is duplicate or conflict.
  const ids = verdicts.map((v, i) => (v.bad.size ? '' : String((judged[i] as Record<string, unknown>).event_id ?? deriveId(judged[i] as Record<string, unknown>))));
  const known = new Set((await db.pool.query<{ event_id: string }>('SELECT event_id FROM phase_outcome_events WHERE event_id = ANY($1)', [ids])).rows.map((r) => r.event_id));
  const results = await send(events);
  expect(results.map((r) => r.index), `${name}: one result per event, in order`).toEqual(events.map((_, i) => i));
  const accepted: Array<{ id: string; verdict: Verdict; event: Record<string, unknown> }> = [];
  results.forEach((result, i) => {
    const verdict = verdicts[i]!;
    const what = `${name} #${i} ${toJson(judged[i]).slice(0, 300)} → ${result.status} ${result.message ?? ''}`;
    if (verdict.bad.size === 0 && known.has(ids[i]!)) {
      expect(['duplicate', 'conflict'], what).toContain(result.status);
    } else if (verdict.bad.size === 0) {
      known.add(ids[i]!); // a later event of the batch with this id is a repeat
      expect(result.status, what).toBe('accepted');
      const event = judged[i] as Record<string, unknown>;
      expect(result.event_id, what).toBe(event.event_id ?? deriveId(event));
      accepted.push({ id: result.event_id!, verdict, event });
    } else {
      expect(result.status, `${what} — expected invalid for ${[...verdict.bad].join(', ')}`).toBe('invalid');
      expect([...verdict.bad].some((field) => result.message!.includes(field)), `${what} — the message must name one of ${[...verdict.bad].join(', ')}`).toBe(true);
      // Refused by the validator, not by PostgreSQL after the validator let it through (the defence in depth
      // would hide the disagreement otherwise).
      expect(result.message, `${what} — the validator let it through`).not.toMatch(/refused by the database/);
    }
  });
  const stored = await readBack(db, accepted.map((a) => a.id));
  for (const { id, verdict, event } of accepted) {
    expect(stored.get(id), `${name}: ${id} reads back as sent: ${toJson(event).slice(0, 300)}`).toEqual({ ...expectedRow(verdict), event_id: id });
  }
  return { accepted: accepted.length, invalid: results.length - accepted.length, acceptedEvents: accepted.map((a) => a.event) };
}

const bulkSend: Send = async (events) => {
  const results: ItemResult[] = [];
  await bulkStoreEvents(dbs.bulk.pool, events.map((value, index) => ({ index, value })), { chunkSize: 97, onChunk: (chunk) => void results.push(...chunk) });
  return results;
};
const httpSend: Send = async (events) => {
  const response = await app.inject({ method: 'POST', url: '/v1/events', headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' }, payload: toJson(events) });
  expect(response.statusCode, response.body.slice(0, 500)).toBe(200);
  return (response.json() as { results: ItemResult[] }).results;
};

/** How often the oracle found each field wrong: evidence that every rule is exercised. */
const badFields = new Map<string, number>();
const counts = { bulk: { accepted: 0, invalid: 0 }, http: { accepted: 0, invalid: 0 }, recorder: { accepted: 0, invalid: 0 }, database: { rows: 0, refused: 0 } };

describe('the event contract: validator, oracle and CHECKs agree on generated events', () => {
  const run = (property: fc.IAsyncProperty<[Spec[]]>) =>
    fc.assert(property, { numRuns: RUNS, seed: SEED, endOnFailure: true, interruptAfterTimeLimit: TIME_LIMIT_MS || undefined, markInterruptAsFailure: false });

  it(`through the bulk path, POST /v1/events and PhaseOutcomeRecorder (≥ ${RUNS * BATCH.minLength} events each)`, async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    try {
      await run(
        fc.asyncProperty(fc.array(specArb, BATCH), async (specs) => {
          // One instant of reception per batch (a frozen clock), so the "1 day after" bound is exact to the millisecond.
          // In the past of the database's clock (recorded_at is its now()), and not on a whole second.
          const received = Math.floor(Date.now() / 1000) * 1000 - 679;
          vi.setSystemTime(received);

          shortSerial = 0;
          const bulk = specs.map((s) => materialize(s, received, 'b'));
          const b = await checkPath('bulk', dbs.bulk, bulk, bulk, received, bulkSend);
          // The same bodies again: every accepted one is a duplicate (an empty array and every normalisation included).
          const again = await bulkSend(b.acceptedEvents);
          expect(again.map((r) => r.status)).toEqual(b.acceptedEvents.map(() => 'duplicate'));

          // Over HTTP the server sees the JSON of the events: judged as JSON.parse(JSON.stringify(…)).
          shortSerial = 0;
          const http = specs.map((s) => materialize(s, received, 'h'));
          const h = await checkPath('http', dbs.http, http, http.map((e) => JSON.parse(toJson(e)) as unknown), received, httpSend);

          // The recorder takes objects (its typed API): occurred_at defaults to its clock.
          shortSerial = 0;
          const recorded = specs.filter((s) => s.extra !== 'not-an-object').map((s) => materialize(s, received, 'r'));
          const at = new Date(received - 5000);
          const recorder = new PhaseOutcomeRecorder({ pool: dbs.recorder.pool, flushIntervalMs: 0, maxBuffered: 1000, now: () => at });
          const r = await checkPath(
            'recorder',
            dbs.recorder,
            recorded,
            recorded.map((e) => ({ occurred_at: at.toISOString(), ...(e as object) })),
            received,
            async (events) => {
              const results: ItemResult[] = [];
              const buffered: number[] = [];
              events.forEach((event, index) => {
                try {
                  recorder.record(event as never);
                  buffered.push(index);
                } catch (error) {
                  if (!(error instanceof InvalidEventError)) throw error;
                  results.push({ index, status: 'invalid', message: error.message });
                }
              });
              const flushed = await recorder.close().catch((error: unknown) => {
                // Conflicts (ids too short to be unique) are thrown after the rest is stored, with every result.
                if (error instanceof EventConflictError && error.results) return { results: error.results };
                throw error;
              });
              // A flush's results carry the position each event had in the buffer.
              for (const result of flushed.results) results.push({ ...result, index: buffered[result.index]! });
              return results.sort((x, y) => x.index - y.index);
            },
          );
          for (const [path, c] of [['bulk', b], ['http', h], ['recorder', r]] as const) {
            counts[path].accepted += c.accepted;
            counts[path].invalid += c.invalid;
          }
        }),
      );
    } finally {
      vi.useRealTimers();
    }
    console.log(`event contract property: ${JSON.stringify(counts)} (seed ${SEED}, ${RUNS} batches per path); invalid for ${JSON.stringify(Object.fromEntries([...badFields].sort((a, b) => b[1] - a[1])))}`);
    for (const path of ['bulk', 'http', 'recorder'] as const) {
      // ≥ 2,000 events per path (the recorder takes objects only: ~1 % fewer).
      expect(counts[path].accepted + counts[path].invalid).toBeGreaterThanOrEqual(RUNS * BATCH.minLength * (path === 'recorder' ? 0.96 : 1));
      // The bias is real: both verdicts are common.
      expect(counts[path].accepted).toBeGreaterThan(RUNS * 20);
      expect(counts[path].invalid).toBeGreaterThan(RUNS * 20);
    }
  }, TIMEOUT_MS);

  it('in the database alone: the CHECKs refuse exactly the rows the oracle refuses', async () => {
    await run(
      fc.asyncProperty(fc.array(specArb, BATCH), async (specs) => {
        const received = Date.now();
        shortSerial = 0;
        const events = specs.map((s) => materialize(s, received, 'd'));
        const sizes = await metadataSizes(events);
        const rows: Row[] = [];
        const verdicts: Verdict[] = [];
        for (const event of events) {
          const verdict = oracle(event, received, sizes);
          if (!verdict.representable) continue;
          const e = event as Record<string, unknown>;
          rows.push({
            ...verdict.row,
            event_id: verdict.row.event_id ?? deriveId(e),
            content_hash: createHash('sha256').update(String(rows.length)).digest('hex'),
            // The CHECK bounds occurred_at by recorded_at: the same instant the oracle judged against.
            recorded_at: new Date(received).toISOString(),
          });
          verdicts.push(verdict);
          // The same event as sent, not in its stored form (paths not normalised, hex not lower-cased): the CHECKs
          // also refuse a row written around the validator in a form the validator would never store.
          const rawFiles = Array.isArray(e.files) ? (e.files as string[]) : undefined;
          const notNormal = (rawFiles && rawFiles.some((raw, i) => raw !== (verdict.row.files as string[])[i])) || (typeof e.commit_sha === 'string' && e.commit_sha !== verdict.row.commit_sha);
          if (notNormal) {
            const stored = rows.at(-1)!;
            const asSent = { bad: new Set([...verdict.bad].filter((f) => f !== 'event_id').concat('not in stored form')), representable: true, row: {} };
            if (rawFiles?.some((raw, i) => raw !== (verdict.row.files as string[])[i])) {
              rows.push({ ...stored, event_id: `raw.${++serial}`, files: rawFiles });
              verdicts.push(asSent);
            }
            if (typeof e.commit_sha === 'string' && e.commit_sha !== verdict.row.commit_sha) {
              rows.push({ ...stored, event_id: `raw.${++serial}`, commit_sha: e.commit_sha });
              verdicts.push(asSent);
            }
          }
        }
        // In a transaction rolled back afterwards: ids too short to be unique never meet those of another batch.
        const client = await dbs.database.pool.connect();
        let tried: Array<{ i: number; refused: string | null }>;
        try {
          await client.query('BEGIN');
          tried = (await client.query<{ i: number; refused: string | null }>('SELECT i, refused FROM test_try_rows($1::jsonb) ORDER BY i', [JSON.stringify(rows)])).rows;
        } finally {
          await client.query('ROLLBACK');
          client.release();
        }
        tried.forEach(({ refused }, k) => {
          if (refused?.startsWith('23505')) return; // a short id met again: uniqueness, not a rule of the contract
          const bad = [...verdicts[k]!.bad];
          expect(refused === null, `row ${JSON.stringify(rows[k]).slice(0, 400)}: oracle says ${bad.length ? `invalid (${bad.join(', ')})` : 'valid'}, the database ${refused ?? 'stored it'}`).toBe(bad.length === 0);
        });
        counts.database.rows += rows.length;
        counts.database.refused += tried.filter((t) => t.refused !== null).length;
      }),
    );
    console.log(`event contract in the database: ${JSON.stringify(counts.database)}`);
    expect(counts.database.rows).toBeGreaterThan(RUNS * 100);
    expect(counts.database.refused).toBeGreaterThan(RUNS * 20);
  }, TIMEOUT_MS);

  // The CHECKs settle "at most L characters" by the byte length first and count characters only past L bytes, and
  // take bytes for characters where only ASCII is allowed: strings whose byte and character lengths fall on either
  // side of a limit are where such a shortcut would go wrong, and where the events above rarely land.
  it('in the database alone, at the character and byte bounds of its text CHECKs', async () => {
    const rules: Record<string, { min: number; max: number; allowed?: RegExp; fills: string[] }> = {
      event_id: { min: 1, max: LIMITS.eventIdChars, allowed: /^[A-Za-z0-9._:-]*$/, fills: ['a', 'Z', '.', 'é', ' ', '😀'] },
      run_id: { min: 1, max: LIMITS.runIdChars, fills: FILLS },
      phase_id: { min: 1, max: LIMITS.phaseIdChars, fills: FILLS },
      phase_type: { min: 0, max: LIMITS.nameChars, fills: FILLS },
      model: { min: 0, max: LIMITS.nameChars, fills: FILLS },
      commit_sha: { min: LIMITS.commitShaMinChars, max: LIMITS.commitShaMaxChars, allowed: /^[0-9a-f]*$/, fills: ['a', '0', 'f', 'A', 'g', 'é'] },
      content_hash: { min: 64, max: 64, allowed: /^[0-9a-f]*$/, fills: ['a', '0', 'f', 'A', 'g', 'é'] },
    };
    // Lengths in characters at every bound, and those whose multi-byte forms cross a bound in bytes only.
    const lengths = [...new Set(Object.values(rules).flatMap(({ min, max }) => [min - 1, min, min + 1, max - 1, max, max + 1, Math.floor(max / 2), Math.floor(max / 4) + 1]))].filter((n) => n >= 0);
    const caseArb = fc.record({
      field: fc.constantFrom(...Object.keys(rules)),
      length: fc.oneof({ weight: 4, arbitrary: fc.constantFrom(...lengths) }, { weight: 1, arbitrary: fc.integer({ min: 0, max: 300 }) }),
      fill: fc.nat(),
      twist: fc.option(fc.record({ char: fc.nat(), at: fc.nat() }), { freq: 3 }),
    });
    let rows = 0;
    let refusedRows = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(caseArb, { minLength: 100, maxLength: 200 }), async (cases) => {
        const received = Date.now();
        const tried = cases.map(({ field, length, fill, twist }, k) => {
          const rule = rules[field]!;
          const value = sized(length, 'chars', rule.fills[fill % rule.fills.length]!, twist ? rule.fills[twist.char % rule.fills.length]! : null, twist?.at ?? 0);
          const chars = [...value].length;
          const valid = chars >= rule.min && chars <= rule.max && (!rule.allowed || rule.allowed.test(value));
          const row: Row = {
            event_id: `bound.${k}`, run_id: 'run', phase_id: 'phase', attempt: 1, outcome: 'SUCCESS', occurred_at: new Date(received).toISOString(),
            metadata: {}, content_hash: createHash('sha256').update(String(k)).digest('hex'), recorded_at: new Date(received).toISOString(),
            [field]: value,
          };
          return { row, valid };
        });
        const client = await dbs.database.pool.connect();
        let refused: Array<string | null>;
        try {
          await client.query('BEGIN');
          refused = (await client.query<{ refused: string | null }>('SELECT refused FROM test_try_rows($1::jsonb) ORDER BY i', [JSON.stringify(tried.map((t) => t.row))])).rows.map((r) => r.refused);
        } finally {
          await client.query('ROLLBACK');
          client.release();
        }
        tried.forEach(({ row, valid }, k) => {
          if (refused[k]?.startsWith('23505')) return; // the same generated event_id twice
          expect(refused[k] === null, `${JSON.stringify(row).slice(0, 300)}: ${valid ? 'valid' : 'invalid'}, the database ${refused[k] ?? 'stored it'}`).toBe(valid);
          rows++;
          if (refused[k] !== null) refusedRows++;
        });
      }),
      { numRuns: RUNS, seed: SEED, endOnFailure: true },
    );
    // Both verdicts are common, so each bound is met from both sides.
    expect(rows).toBeGreaterThan(RUNS * 90);
    expect(refusedRows).toBeGreaterThan(rows / 5);
    expect(rows - refusedRows).toBeGreaterThan(rows / 5);
  }, TIMEOUT_MS);
});
