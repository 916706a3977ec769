/**
 * The phase-outcome event contract (DESIGN.md §Telemetry): validation with messages that name the field and the
 * limit, normalisation to one stored form, the derived event id, and the content hash that tells a duplicate
 * (same id, same content) from a conflict (same id, other content).
 */
import { createHash, hash } from 'node:crypto';
import { posix } from 'node:path';
import { z } from 'zod';
import { describeZodError } from './validation.js';

export const OUTCOMES = ['SUCCESS', 'FAILED', 'TIMEOUT', 'STUCK'] as const;
export type Outcome = (typeof OUTCOMES)[number];

/*
 * THE EVENT CONTRACT. Every rule an event must meet lives here, once: the validator below (zod for the shape, then
 * the exact checks) is driven by these tables, and the CHECKs of db/migrations/1764400000000_event_contract.sql
 * state the same rules for the stored row — test/integration/eventContract.property.test.ts proves that both
 * accept exactly the same events. Change a rule here, change the CHECK in a new migration, and the test tells
 * whether they still agree.
 */
export const LIMITS = {
  eventIdChars: 128,
  runIdChars: 255,
  phaseIdChars: 255, // "< 256 chars"
  nameChars: 255, // phase_type, model
  stopReasonBytes: 255, // "< 256 bytes"
  rationaleBytes: 10 * 1024 - 1, // "< 10 KiB"
  attemptMax: 1_000_000,
  /** Counts are JSON numbers (doubles): beyond 2^53 − 1 a double cannot tell n from n + 1. */
  countMax: Number.MAX_SAFE_INTEGER,
  commitShaMinChars: 7,
  commitShaMaxChars: 64,
  files: 200,
  testsFailed: 500,
  pathBytes: 1024,
  testIdBytes: 1024,
  /** metadata in jsonb's own text form (`metadata::text`): what PostgreSQL stores and its CHECK measures. */
  metadataBytes: 16 * 1024,
  /** The metadata object itself is level 1; `{"a": {"b": []}}` nests 3 levels. */
  metadataDepth: 32,
  /** occurred_at from this instant (inclusive)… */
  earliestOccurredAt: Date.UTC(2000, 0, 1),
  /** …to this long after ROAD received the event (inclusive): clock skew, not the future. */
  futureSlackMs: 24 * 60 * 60 * 1000,
} as const;

/** Text columns: a well-formed string without NUL, its length measured in code points (as PostgreSQL's char_length) or UTF-8 bytes. */
export const TEXT_RULES = [
  { field: 'run_id', required: true, unit: 'characters', min: 1, max: LIMITS.runIdChars },
  { field: 'phase_id', required: true, unit: 'characters', min: 1, max: LIMITS.phaseIdChars },
  { field: 'phase_type', required: false, unit: 'characters', min: 0, max: LIMITS.nameChars },
  { field: 'model', required: false, unit: 'characters', min: 0, max: LIMITS.nameChars },
  { field: 'stop_reason', required: false, unit: 'bytes', min: 0, max: LIMITS.stopReasonBytes },
  { field: 'decision_rationale', required: false, unit: 'bytes', min: 0, max: LIMITS.rationaleBytes },
] as const;
export type TextField = (typeof TEXT_RULES)[number]['field'];

/** Integer columns, as JSON numbers. */
export const INTEGER_RULES = [
  { field: 'attempt', min: 1, max: LIMITS.attemptMax },
  { field: 'tokens_used', min: 0, max: LIMITS.countMax },
  { field: 'prompt_tokens', min: 0, max: LIMITS.countMax },
  { field: 'completion_tokens', min: 0, max: LIMITS.countMax },
  { field: 'duration_ms', min: 0, max: LIMITS.countMax },
] as const;
export type IntegerField = (typeof INTEGER_RULES)[number]['field'];

/**
 * Lists of strings. `[]` is a valid "none" and is stored as an empty array — distinct from leaving the field out
 * ("not reported"), so the two are different content for the same event_id. Items: no control characters, 1 to
 * itemBytes bytes of UTF-8 (paths measured after normalisation).
 */
export const LIST_RULES = [
  { field: 'files', noun: 'paths', maxItems: LIMITS.files, itemBytes: LIMITS.pathBytes },
  { field: 'tests_failed', noun: 'test ids', maxItems: LIMITS.testsFailed, itemBytes: LIMITS.testIdBytes },
] as const;
export type ListField = (typeof LIST_RULES)[number]['field'];

export const EVENT_ID_PATTERN = new RegExp(`^[A-Za-z0-9._:-]{1,${LIMITS.eventIdChars}}$`);
export const COMMIT_SHA_PATTERN = new RegExp(`^[0-9a-fA-F]{${LIMITS.commitShaMinChars},${LIMITS.commitShaMaxChars}}$`);

/**
 * The database's CHECK constraints and the rule each states, in words: when PostgreSQL refuses a row anyway
 * (db/events.ts re-judges the batch), the refused event's message names the field and the rule.
 */
export const DATABASE_CHECKS: Record<string, { field: string; rule: string }> = {
  phase_outcome_events_event_id_check: { field: 'event_id', rule: `1–${LIMITS.eventIdChars} characters of A–Z a–z 0–9 . _ : -` },
  phase_outcome_events_run_id_check: { field: 'run_id', rule: `1–${LIMITS.runIdChars} characters` },
  phase_outcome_events_phase_id_check: { field: 'phase_id', rule: `1–${LIMITS.phaseIdChars} characters` },
  phase_outcome_events_phase_type_check: { field: 'phase_type', rule: `at most ${LIMITS.nameChars} characters` },
  phase_outcome_events_model_check: { field: 'model', rule: `at most ${LIMITS.nameChars} characters` },
  phase_outcome_events_attempt_check: { field: 'attempt', rule: `an integer from 1 to ${LIMITS.attemptMax}` },
  phase_outcome_events_stop_reason_check: { field: 'stop_reason', rule: `at most ${LIMITS.stopReasonBytes} bytes of UTF-8` },
  phase_outcome_events_decision_rationale_check: { field: 'decision_rationale', rule: `at most ${LIMITS.rationaleBytes} bytes of UTF-8` },
  ...Object.fromEntries(
    INTEGER_RULES.filter((r) => r.field !== 'attempt').map((r) => [`phase_outcome_events_${r.field}_check`, { field: r.field, rule: `an integer from 0 to ${LIMITS.countMax}` }]),
  ),
  phase_outcome_events_files_check: {
    field: 'files',
    rule: `at most ${LIMITS.files} normalised repo-relative paths of 1–${LIMITS.pathBytes} bytes, without control characters, backslashes, "." or ".." segments`,
  },
  phase_outcome_events_tests_failed_check: { field: 'tests_failed', rule: `at most ${LIMITS.testsFailed} test ids of 1–${LIMITS.testIdBytes} bytes without control characters` },
  phase_outcome_events_commit_sha_check: { field: 'commit_sha', rule: `${LIMITS.commitShaMinChars}–${LIMITS.commitShaMaxChars} lower-case hexadecimal characters` },
  phase_outcome_events_metadata_check: {
    field: 'metadata',
    rule: `a JSON object of at most ${LIMITS.metadataBytes} bytes as jsonb text, nested at most ${LIMITS.metadataDepth} levels`,
  },
  phase_outcome_events_occurred_at_check: { field: 'occurred_at', rule: 'from 2000-01-01T00:00:00Z to 1 day after ROAD received the event' },
  phase_outcome_events_content_hash_check: { field: 'content_hash', rule: '64 lower-case hexadecimal characters' },
};

export type IngestStatus = 'accepted' | 'duplicate' | 'conflict' | 'invalid';

const utf8Bytes = (text: string): number => Buffer.byteLength(text, 'utf8');

// ------------------------------------------------------------------------------------------------- the shape (zod)

/** zod checks types, required fields and unknown keys; every bound is an exact check below, from the tables. */
const typed = (field: string, what: string) => ({
  error: (issue: { input?: unknown }) => (issue.input === undefined ? `${field} is required` : `${field} must be ${what}`),
});
const text = (field: string) => z.string(typed(field, 'a string'));
// NaN and ±Infinity (1e400 in JSON) are numbers zod refuses: integerIssue says why, so zod stays quiet about them.
const integer = (field: string) =>
  z.number({ error: (issue) => (typeof issue.input === 'number' ? '' : issue.input === undefined ? `${field} is required` : `${field} must be a number`) });
const list = (field: string, noun: string) =>
  z.array(z.string({ error: (issue) => `${field}[${String(issue.path?.at(-1) ?? '')}] must be a string` }), typed(field, `an array of ${noun}`));

export const phaseOutcomeSchema = z
  .object(
    {
      event_id: text('event_id').optional(),
      run_id: text('run_id'),
      phase_id: text('phase_id'),
      phase_type: text('phase_type').optional(),
      model: text('model').optional(),
      attempt: integer('attempt').optional(),
      outcome: z.enum(OUTCOMES, { error: `outcome must be one of ${OUTCOMES.join(', ')}` }),
      stop_reason: text('stop_reason').optional(),
      decision_rationale: text('decision_rationale').optional(),
      tokens_used: integer('tokens_used').optional(),
      prompt_tokens: integer('prompt_tokens').optional(),
      completion_tokens: integer('completion_tokens').optional(),
      duration_ms: integer('duration_ms').optional(),
      files: list('files', 'paths').optional(),
      tests_failed: list('tests_failed', 'test ids').optional(),
      commit_sha: text('commit_sha').optional(),
      occurred_at: text('occurred_at'),
      // Judged by inspectMetadata before zod runs (iteratively: a deep value must not reach a recursive walker).
      metadata: z.custom<Record<string, unknown>>(() => true).optional(),
    },
    {
      error: (issue) =>
        issue.code === 'unrecognized_keys'
          ? `unknown field${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => JSON.stringify(k)).join(', ')}`
          : undefined,
    },
  )
  .strict();

export type PhaseOutcomeInput = z.input<typeof phaseOutcomeSchema>;

// ------------------------------------------------------------------------------------------------- exact checks

// eslint-disable-next-line no-control-regex -- matching control characters is the point
const CONTROL = /[\u0000-\u001f\u007f]/;
// Backslashes, empty, `.` or `..` segments, or a leading `/` or drive: anything else is already a normal relative path.
const NEEDS_NORMALIZING = /\\|\/\/|(^|\/)\.{1,2}(\/|$)|^\/|^[A-Za-z]:/;
const ABSOLUTE = /^(\/|[A-Za-z]:)/;

// String.prototype.isWellFormed is in Node ≥ 20; the project's lib setting predates its typing.
type WellFormedString = string & { isWellFormed(): boolean };

/** Why a string cannot be stored as it is, or undefined: PostgreSQL stores no NUL, and a lone surrogate would become U+FFFD. */
function unstorable(field: string, value: string): string | undefined {
  if (!(value as WellFormedString).isWellFormed()) {
    const at = [...value].findIndex((c) => c.length === 1 && c >= '\ud800' && c <= '\udfff');
    return `${field} must be well-formed Unicode: it holds a lone UTF-16 surrogate (code point ${at})`;
  }
  if (value.includes('\u0000')) return `${field} must not contain NUL characters`;
  return undefined;
}

function textIssue(rule: (typeof TEXT_RULES)[number], value: string): string | undefined {
  const bad = unstorable(rule.field, value);
  if (bad) return bad;
  if (value.length < rule.min) return `${rule.field} must not be empty`;
  if (rule.unit === 'characters') {
    // A code point is 1 or 2 UTF-16 units: within the limit in units is within it in code points.
    if (value.length > rule.max) {
      const n = [...value].length;
      if (n > rule.max) return `${rule.field} must be at most ${rule.max} characters (got ${n})`;
    }
  } else if (value.length * 3 > rule.max) {
    // A UTF-16 unit is at most 3 bytes of UTF-8.
    const n = utf8Bytes(value);
    if (n > rule.max) return `${rule.field} must be at most ${rule.max} bytes of UTF-8 (got ${n})`;
  }
  return undefined;
}

function integerIssue(rule: (typeof INTEGER_RULES)[number], value: number): string | undefined {
  if (!Number.isFinite(value)) return `${rule.field} must be a finite number`;
  if (!Number.isInteger(value)) return `${rule.field} must be an integer`;
  if (value < rule.min) return `${rule.field} must be ≥ ${rule.min}`;
  if (value > rule.max) return `${rule.field} must be at most ${rule.max}${rule.max === Number.MAX_SAFE_INTEGER ? ' (2^53 − 1)' : ''}`;
  return undefined;
}

/** A path as stored: `/` separators, no `.` or empty segments, `..` resolved, no leading `./`. */
export function normalizePath(raw: string): string {
  return NEEDS_NORMALIZING.test(raw) ? posix.normalize(raw.replaceAll('\\', '/')).replace(/^\.\//, '') : raw;
}

/** Checks a list's items; returns the items as stored (paths normalised). */
function listItems(rule: (typeof LIST_RULES)[number], items: readonly string[], issues: string[]): string[] {
  const { field } = rule;
  if (items.length > rule.maxItems) issues.push(`${field} must list at most ${rule.maxItems} ${rule.noun} (got ${items.length})`);
  const stored: string[] = [];
  for (let i = 0; i < items.length && issues.length < 10; i++) {
    const raw = items[i]!;
    const at = `${field}[${i}]`;
    const bad = unstorable(at, raw);
    if (bad) issues.push(bad);
    else if (CONTROL.test(raw)) issues.push(`${at} must not contain control characters`);
    else if (raw === '') issues.push(`${at} must not be empty`);
    else {
      const item = field === 'files' ? normalizePath(raw) : raw;
      if (field === 'files' && ABSOLUTE.test(item)) issues.push(`${at} must be repo-relative, not absolute (got ${JSON.stringify(raw)})`);
      else if (field === 'files' && (item === '..' || item.startsWith('../'))) issues.push(`${at} must not contain ".." that leaves the repository (got ${JSON.stringify(raw)})`);
      else if (field === 'files' && (item === '' || item === '.' || item === './')) issues.push(`${at} must name a file or directory, not the repository root (got ${JSON.stringify(raw)})`);
      else if (item.length * 3 > rule.itemBytes && utf8Bytes(item) > rule.itemBytes) issues.push(`${at} must be at most ${rule.itemBytes} bytes of UTF-8 (got ${utf8Bytes(item)})`);
      stored.push(item);
    }
  }
  return stored;
}

const DATE_TIME = /^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d+))?(?:Z|([+-])(\d\d):(\d\d))$/;
const DATE_TIME_FORMAT = 'occurred_at must be an ISO-8601 date-time with seconds and a time zone offset, e.g. 2026-11-28T09:30:00Z';
const daysIn = (year: number, month: number) =>
  month === 2 ? (year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0) ? 29 : 28) : [4, 6, 9, 11].includes(month) ? 30 : 31;

/**
 * occurred_at as milliseconds since the epoch (digits past the millisecond are dropped), or the reason it is not
 * acceptable: the format (RFC 3339: seconds and an offset required, hours 00–23), a real calendar date, and the
 * bounds. Computed field by field — never by Date's lenient parser, which accepts more than this grammar.
 */
export function parseOccurredAt(value: string, receivedAt: number): number | string {
  const m = DATE_TIME.exec(value);
  if (!m) return DATE_TIME_FORMAT;
  const [year, month, day, hour, minute, second] = m.slice(1, 7).map(Number) as [number, number, number, number, number, number];
  const [offHours, offMinutes] = [Number(m[9] ?? 0), Number(m[10] ?? 0)];
  if (month < 1 || month > 12 || day < 1 || day > daysIn(year, month) || hour > 23 || minute > 59 || second > 59 || offHours > 23 || offMinutes > 59) {
    return `${DATE_TIME_FORMAT} (got ${JSON.stringify(value)}, which is not a real date and time)`;
  }
  // Years before 1000 are out of range whatever the offset (and Date.UTC would read 0–99 as 1900–1999).
  const ms = year < 1000 ? -Infinity : Date.UTC(year, month - 1, day, hour, minute, second, Number(((m[7] ?? '') + '000').slice(0, 3))) - (m[8] === '-' ? -1 : 1) * (offHours * 60 + offMinutes) * 60_000;
  if (ms < LIMITS.earliestOccurredAt) return `occurred_at must not be before 2000-01-01T00:00:00Z (got ${value})`;
  if (ms > receivedAt + LIMITS.futureSlackMs) {
    return `occurred_at must be at most 1 day after ROAD received the event (received ${new Date(receivedAt).toISOString()}, got ${value})`;
  }
  return ms;
}

// ------------------------------------------------------------------------------------------------- metadata

const JSON_ESCAPED = /[\u0000-\u001f"\\]/; // eslint-disable-line no-control-regex -- what JSON escapes

/** Bytes of a string in jsonb's text form: quoted, with `"` `\` \b \f \n \r \t escaped in 2 bytes and other controls in 6. */
function jsonStringBytes(value: string): number {
  let n = 2 + (value.length < 64 && /^[\x20-\x7e]*$/.test(value) ? value.length : utf8Bytes(value));
  if (JSON_ESCAPED.test(value)) {
    for (let i = 0; i < value.length; i++) {
      const c = value.charCodeAt(i);
      if (c === 0x22 || c === 0x5c || c === 0x08 || c === 0x0c || c === 0x0a || c === 0x0d || c === 0x09) n += 1;
      else if (c < 0x20) n += 5;
    }
  }
  return n;
}

/**
 * Bytes of a number in jsonb's text form. jsonb keeps a JSON number as numeric, which prints positionally: the
 * shortest round-trip form JSON.stringify writes (1e+21, 1.5e-7) comes back as 1000000000000000000000, 0.00000015.
 */
export function jsonbNumberBytes(value: number): number {
  const written = JSON.stringify(value);
  const e = written.indexOf('e');
  if (e < 0) return written.length;
  const sign = written[0] === '-' ? 1 : 0;
  const mantissa = written.slice(sign, e);
  const point = mantissa.indexOf('.');
  const digits = point < 0 ? mantissa : mantissa.slice(0, point) + mantissa.slice(point + 1);
  const decimalPoint = (point < 0 ? mantissa.length : point) + Number(written.slice(e + 1)); // position in digits
  if (decimalPoint <= 0) return sign + 2 + -decimalPoint + digits.length; // 0.000ddd
  if (decimalPoint >= digits.length) return sign + decimalPoint; // ddd000
  return sign + digits.length + 1;
}

const isPlainObject = (value: object): boolean => {
  const proto = Object.getPrototypeOf(value) as unknown;
  return proto === Object.prototype || proto === null;
};

/** `metadata.a.b[2]`, or `metadata["a key"]` for keys that are not identifiers. */
const memberPath = (parent: string, key: string | number) =>
  parent.endsWith('…') ? parent
  : parent.length > 120 ? `${parent}…`
  : typeof key === 'number' ? `${parent}[${key}]`
  : /^[A-Za-z_$][\w$]*$/.test(key) ? `${parent}.${key}`
  : `${parent}[${JSON.stringify(key.length > 40 ? key.slice(0, 40) + '…' : key)}]`;

/**
 * Why metadata breaks the contract, or undefined. An iterative walk, run before anything recursive (zod, sorting,
 * JSON.stringify) touches the value, so a value nested thousands of levels deep is refused, not a stack overflow.
 * It checks: a plain object at the top; JSON values only (no undefined in arrays, functions, symbols, bigints,
 * Dates or other class instances; keys whose value is undefined are left out, as JSON.stringify does); finite
 * numbers; strings and keys well-formed and without NUL; nesting depth; and the size in jsonb's text form.
 */
export function inspectMetadata(metadata: unknown): string | undefined {
  if (typeof metadata !== 'object' || metadata === null || Array.isArray(metadata) || !isPlainObject(metadata)) return 'metadata must be a JSON object';
  let bytes = 0;
  // Paths are spelled out only for a message: each frame knows its parent and its key.
  interface Frame {
    value: unknown;
    depth: number;
    parent?: Frame;
    key?: string | number;
  }
  const pathOf = (frame: Frame): string => (frame.parent ? memberPath(pathOf(frame.parent), frame.key!) : 'metadata');
  const stack: Frame[] = [{ value: metadata, depth: 1 }];
  while (stack.length) {
    const frame = stack.pop()!;
    const { value, depth } = frame;
    switch (typeof value) {
      case 'string': {
        const bad = unstorable('', value);
        if (bad) return pathOf(frame) + bad;
        bytes += jsonStringBytes(value);
        break;
      }
      case 'number':
        if (!Number.isFinite(value)) return `${pathOf(frame)} must be a finite number (JSON has no ${value})`;
        bytes += jsonbNumberBytes(value);
        break;
      case 'boolean':
        bytes += value ? 4 : 5;
        break;
      case 'object': {
        if (value === null) {
          bytes += 4;
          break;
        }
        if (depth > LIMITS.metadataDepth) return `metadata must be nested at most ${LIMITS.metadataDepth} levels deep (${pathOf(frame)} is level ${depth})`;
        if (Array.isArray(value)) {
          if (Object.getPrototypeOf(value) !== Array.prototype) return `${pathOf(frame)} must be a JSON array`;
          bytes += 2 + Math.max(0, value.length - 1) * 2; // [ ] and ", "
          for (let i = value.length - 1; i >= 0; i--) {
            if (value[i] === undefined) return `${memberPath(pathOf(frame), i)} must be a JSON value (got undefined)`;
            stack.push({ value: value[i], depth: depth + 1, parent: frame, key: i });
          }
        } else {
          if (!isPlainObject(value)) return `${pathOf(frame)} must be a JSON object (got ${value.constructor?.name ?? 'an object'})`;
          let members = 0;
          const keys = Object.keys(value);
          for (let i = keys.length - 1; i >= 0; i--) {
            const key = keys[i]!;
            const member = (value as Record<string, unknown>)[key];
            if (member === undefined) continue; // as JSON.stringify: the key is left out
            const bad = unstorable('', key);
            if (bad) return `${memberPath(pathOf(frame), key)} (the key)${bad}`;
            members++;
            bytes += jsonStringBytes(key) + 2; // "key": 
            stack.push({ value: member, depth: depth + 1, parent: frame, key });
          }
          bytes += 2 + Math.max(0, members - 1) * 2; // { } and ", "
        }
        break;
      }
      default:
        return `${pathOf(frame)} must be a JSON value (got ${typeof value})`;
    }
  }
  if (bytes > LIMITS.metadataBytes) return `metadata must be at most ${LIMITS.metadataBytes} bytes as jsonb text (got ${bytes})`;
  return undefined;
}

// ------------------------------------------------------------------------------------------------- the validator

/** An event as stored: every optional field present (null when absent), ids resolved, time in UTC. */
export interface PhaseOutcomeEvent {
  event_id: string;
  run_id: string;
  phase_id: string;
  phase_type: string | null;
  model: string | null;
  attempt: number;
  outcome: Outcome;
  stop_reason: string | null;
  decision_rationale: string | null;
  tokens_used: number | null;
  prompt_tokens: number | null;
  completion_tokens: number | null;
  duration_ms: number | null;
  files: string[] | null;
  tests_failed: string[] | null;
  commit_sha: string | null;
  occurred_at: string;
  metadata: Record<string, unknown> | null;
  /** sha256 of the canonical content (everything but event_id): equal hashes are the same event. */
  content_hash: string;
}

export type Validated = { ok: true; event: PhaseOutcomeEvent; contentText: string } | { ok: false; message: string };

export interface ValidateOptions {
  /** When ROAD received the event (ms since the epoch; default now): occurred_at may be at most 1 day later. */
  receivedAt?: number;
}

/**
 * Validates and normalises one event; never throws, whatever `input` is. The common event takes the fast path
 * (fastEvent, below); every other is judged by judgeEvent, which gives the reasons.
 */
export function validateEvent(input: unknown, options: ValidateOptions = {}): Validated {
  return fastEvent(input, options.receivedAt ?? Date.now()) ?? judgeEvent(input, options);
}

/** The contract's judgement of one event: every rule, every reason. */
export function judgeEvent(input: unknown, options: ValidateOptions = {}): Validated {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) return { ok: false, message: 'an event must be a JSON object' };
  const raw = input as Record<string, unknown>;
  const issues: string[] = [];
  // First, before zod sees the event: metadata of any depth is judged without recursion.
  const metadataIssue = raw.metadata === undefined ? undefined : inspectMetadata(raw.metadata);
  const shape = phaseOutcomeSchema.safeParse(input);
  if (!shape.success) issues.push(describeZodError(shape.error));

  if (typeof raw.event_id === 'string' && !EVENT_ID_PATTERN.test(raw.event_id)) {
    issues.push(`event_id must be 1–${LIMITS.eventIdChars} characters of A–Z a–z 0–9 . _ : -`);
  }
  for (const rule of TEXT_RULES) {
    const value = raw[rule.field];
    const issue = typeof value === 'string' ? textIssue(rule, value) : undefined;
    if (issue) issues.push(issue);
  }
  for (const rule of INTEGER_RULES) {
    const value = raw[rule.field];
    const issue = typeof value === 'number' ? integerIssue(rule, value) : undefined;
    if (issue) issues.push(issue);
  }
  const lists: Partial<Record<ListField, string[]>> = {};
  for (const rule of LIST_RULES) {
    const value = raw[rule.field];
    if (Array.isArray(value) && value.every((item) => typeof item === 'string')) lists[rule.field] = listItems(rule, value as string[], issues);
  }
  if (typeof raw.commit_sha === 'string' && !COMMIT_SHA_PATTERN.test(raw.commit_sha)) {
    issues.push(`commit_sha must be ${LIMITS.commitShaMinChars}–${LIMITS.commitShaMaxChars} hexadecimal characters`);
  }
  const occurredAt = typeof raw.occurred_at === 'string' ? parseOccurredAt(raw.occurred_at, options.receivedAt ?? Date.now()) : undefined;
  if (typeof occurredAt === 'string') issues.push(occurredAt);
  if (metadataIssue) issues.push(metadataIssue);
  if (issues.length || !shape.success) return { ok: false, message: issues.filter(Boolean).join('; ') };

  const e = shape.data;
  const content: EventContent = {
    run_id: e.run_id,
    phase_id: e.phase_id,
    phase_type: e.phase_type ?? null,
    model: e.model ?? null,
    attempt: e.attempt ?? 1,
    outcome: e.outcome,
    stop_reason: e.stop_reason ?? (e.outcome === 'SUCCESS' ? 'completed' : null),
    decision_rationale: e.decision_rationale ?? null,
    // + 0: -0 (valid JSON) is stored as 0.
    tokens_used: e.tokens_used === undefined ? null : e.tokens_used + 0,
    prompt_tokens: e.prompt_tokens === undefined ? null : e.prompt_tokens + 0,
    completion_tokens: e.completion_tokens === undefined ? null : e.completion_tokens + 0,
    duration_ms: e.duration_ms === undefined ? null : e.duration_ms + 0,
    files: lists.files ?? null,
    tests_failed: lists.tests_failed ?? null,
    commit_sha: e.commit_sha?.toLowerCase() ?? null,
    occurred_at: CANONICAL_TIME.test(e.occurred_at) ? e.occurred_at : new Date(occurredAt as number).toISOString(),
    metadata: e.metadata ? sortedKeys(e.metadata) : null,
  };
  const contentText = canonicalContent(content);
  const event = content as PhaseOutcomeEvent;
  event.event_id = e.event_id ?? deriveEventId(e.run_id, e.phase_id, content.attempt);
  event.content_hash = hash('sha256', contentText, 'hex');
  return { ok: true, event, contentText };
}

const CANONICAL_TIME = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

type EventContent = Omit<PhaseOutcomeEvent, 'event_id' | 'content_hash'>;

/** The content columns in table order */
export const CONTENT_COLUMNS = [
  'run_id', 'phase_id', 'phase_type', 'model', 'attempt', 'outcome', 'stop_reason', 'decision_rationale', 'tokens_used',
  'prompt_tokens', 'completion_tokens', 'duration_ms', 'files', 'tests_failed', 'commit_sha', 'occurred_at', 'metadata',
] as const satisfies ReadonlyArray<keyof EventContent>;

/**
 * The canonical form of an event's content: its columns in table order, tab-separated, in PostgreSQL COPY text
 * format (metadata with sorted keys). Its hash is content_hash, and the bulk path streams it to COPY as it is.
 */
export function canonicalContent(content: EventContent): string {
  let text = '';
  for (let i = 0; i < CONTENT_COLUMNS.length; i++) {
    if (i) text += '\t';
    text += copyField(content[CONTENT_COLUMNS[i]!]);
  }
  return text;
}

/** One value in COPY text format: NULL as \N, arrays as array literals, objects as JSON, with COPY's escapes. */
export function copyField(value: unknown): string {
  if (value === null || value === undefined) return '\\N';
  if (typeof value === 'number') return String(value);
  if (typeof value === 'string') return escapeCopy(value);
  if (Array.isArray(value)) {
    // An array literal: every element double-quoted, with " and \ backslash-escaped.
    let literal = '{';
    for (let i = 0; i < value.length; i++) {
      const item = String(value[i]);
      literal += (i ? ',"' : '"') + (ARRAY_SPECIAL.test(item) ? item.replace(/["\\]/g, '\\$&') : item) + '"';
    }
    return escapeCopy(literal + '}');
  }
  return escapeCopy(JSON.stringify(value));
}

const ARRAY_SPECIAL = /["\\]/;
const COPY_SPECIAL = /[\\\n\r\t]/;
const COPY_ESCAPES: Record<string, string> = { '\\': '\\\\', '\n': '\\n', '\r': '\\r', '\t': '\\t' };
const escapeCopy = (text: string): string => (COPY_SPECIAL.test(text) ? text.replace(/[\\\n\r\t]/g, (c) => COPY_ESCAPES[c]!) : text);

/** The value with object keys sorted at every depth; returns the input itself when it already is (the usual case). */
export function sortedKeys<T>(value: T): T {
  if (Array.isArray(value)) {
    let changed = false;
    const items = value.map((item) => {
      const sorted = sortedKeys(item);
      if (sorted !== item) changed = true;
      return sorted;
    });
    return (changed ? items : value) as T;
  }
  if (!value || typeof value !== 'object') return value;
  const keys = Object.keys(value);
  let changed = false;
  for (let i = 1; i < keys.length; i++) if (keys[i - 1]! > keys[i]!) changed = true;
  const out: Record<string, unknown> = {};
  for (const key of changed ? [...keys].sort() : keys) {
    const v = (value as Record<string, unknown>)[key];
    const sorted = sortedKeys(v);
    if (sorted !== v) changed = true;
    // Not `out[key] = …`: for the key "__proto__" that would set the copy's prototype and drop the member.
    if (key === '__proto__') Object.defineProperty(out, key, { value: sorted, enumerable: true, writable: true, configurable: true });
    else out[key] = sorted;
  }
  return (changed ? out : value) as T;
}

/** The id of an event that brought none: one outcome per (run, phase, attempt) — never the clock. */
export function deriveEventId(runId: string, phaseId: string, attempt: number): string {
  return 'auto:' + createHash('sha256').update(JSON.stringify([runId, phaseId, attempt])).digest('hex').slice(0, 40);
}

// ------------------------------------------------------------------------------------------------- the common event

/*
 * The common event, in one pass (issue 12). Agents send nearly every event in one shape: known fields of
 * the right types, printable ASCII text, short relative paths, lower-case hex, the canonical UTC time, flat metadata
 * with sorted keys. For such an event `fastEvent` returns exactly what `judgeEvent` (above, the contract) returns —
 * the same stored event, COPY text and content hash — without zod, without a second pass per rule and with no
 * intermediate objects. For anything else it returns undefined and the judge decides: the fast path never refuses, so
 * it can only be wrong by accepting; test/unit/fastEvent.property.test.ts proves on generated events (biased to this
 * path's edges) that whatever it accepts, the judge accepts identically.
 */

// Printable ASCII without the backslash: stored as is, and nothing in COPY's text format to escape.
const PLAIN_TEXT = /^[\x20-\x5b\x5d-\x7e]*$/;
// …and without the double quote: as is inside an array literal's quotes and inside a JSON string.
const PLAIN_ITEM = /^[\x20\x21\x23-\x5b\x5d-\x7e]+$/;
const PLAIN_KEY = /^[\x20\x21\x23-\x5b\x5d-\x7e]*$/;
const LOWER_HEX_SHA = new RegExp(`^[0-9a-f]{${LIMITS.commitShaMinChars},${LIMITS.commitShaMaxChars}}$`);
const OUTCOME = new Set<string>(OUTCOMES);

const plainText = (value: unknown, min: number, max: number): value is string =>
  typeof value === 'string' && value.length >= min && value.length <= max && PLAIN_TEXT.test(value);
const count = (value: unknown, min: number, max: number): value is number =>
  typeof value === 'number' && Number.isInteger(value) && value >= min && value <= max;
const optionalCount = (value: unknown) => value === undefined || count(value, 0, LIMITS.countMax);
const isPlain = (value: object, proto: object) => Object.getPrototypeOf(value) === proto;
/** A count as stored (-0 as 0), null when absent. */
const storedCount = (n: unknown) => (n === undefined ? null : (n as number) + 0);
/** A nullable column in COPY text. */
const or = (value: string | number | null) => (value === null ? '\\N' : value);

/** A list of plain items as an array literal in COPY text, or undefined when the judge must look. */
function listLiteral(value: unknown, maxItems: number, maxBytes: number, paths: boolean): string | undefined {
  if (!Array.isArray(value) || !isPlain(value, Array.prototype) || value.length > maxItems) return undefined;
  let literal = '{';
  for (let i = 0; i < value.length; i++) {
    const item: unknown = value[i];
    if (typeof item !== 'string' || item.length > maxBytes || !PLAIN_ITEM.test(item) || (paths && NEEDS_NORMALIZING.test(item))) return undefined;
    literal += (i ? ',"' : '"') + item + '"';
  }
  return literal + '}';
}

/** Whether the value is the canonical time of a real instant within the contract's bounds. */
function canonicalTime(value: unknown, receivedAt: number): boolean {
  if (typeof value !== 'string' || !CANONICAL_TIME.test(value)) return false;
  const year = +value.slice(0, 4);
  const month = +value.slice(5, 7);
  const day = +value.slice(8, 10);
  const hour = +value.slice(11, 13);
  const minute = +value.slice(14, 16);
  const second = +value.slice(17, 19);
  if (year < 2000 || month < 1 || month > 12 || day < 1 || day > daysIn(year, month) || hour > 23 || minute > 59 || second > 59) return false;
  const ms = Date.UTC(year, month - 1, day, hour, minute, second, +value.slice(20, 23));
  return ms >= LIMITS.earliestOccurredAt && ms <= receivedAt + LIMITS.futureSlackMs;
}

/** Flat metadata with sorted plain keys and plain values, as JSON (its COPY text), or undefined. */
function flatMetadata(value: unknown): string | undefined {
  if (typeof value !== 'object' || value === null || !isPlain(value, Object.prototype)) return undefined;
  const keys = Object.keys(value);
  let bytes = 2 + Math.max(0, keys.length - 1) * 2; // jsonb's text form: { } and ", " between members
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i]!;
    if ((i && keys[i - 1]! >= key) || !PLAIN_KEY.test(key)) return undefined;
    const member: unknown = (value as Record<string, unknown>)[key];
    bytes += key.length + 4; // "key": 
    if (typeof member === 'string') {
      if (member !== '' && !PLAIN_ITEM.test(member)) return undefined;
      bytes += member.length + 2;
    } else if (typeof member === 'number') {
      if (!Number.isSafeInteger(member)) return undefined;
      bytes += String(member + 0).length;
    } else if (typeof member === 'boolean') bytes += member ? 4 : 5;
    else if (member === null) bytes += 4;
    else return undefined;
    if (bytes > LIMITS.metadataBytes) return undefined;
  }
  return JSON.stringify(value);
}

/** The event as `judgeEvent` would accept and store it, or undefined when it is not of the common kind. */
export function fastEvent(input: unknown, receivedAt: number): Validated | undefined {
  if (typeof input !== 'object' || input === null || !isPlain(input, Object.prototype)) return undefined;
  const e = input as Record<string, unknown>;
  const { run_id, phase_id, outcome, occurred_at } = e;
  if (!plainText(run_id, 1, LIMITS.runIdChars) || !plainText(phase_id, 1, LIMITS.phaseIdChars) || typeof outcome !== 'string' || !OUTCOME.has(outcome)) return undefined;
  if (!canonicalTime(occurred_at, receivedAt)) return undefined;
  const eventId = e.event_id;
  const phaseType = e.phase_type;
  const model = e.model;
  const attempt = e.attempt;
  const stopReason = e.stop_reason;
  const rationale = e.decision_rationale;
  const tokens = e.tokens_used;
  const prompt = e.prompt_tokens;
  const completion = e.completion_tokens;
  const duration = e.duration_ms;
  const files = e.files;
  const tests = e.tests_failed;
  const commit = e.commit_sha;
  const metadata = e.metadata;
  // The required four and every optional one present: more keys means an unknown one, or a known one present with
  // the value undefined — the judge says what that means.
  const present =
    4 + +(eventId !== undefined) + +(phaseType !== undefined) + +(model !== undefined) + +(attempt !== undefined) + +(stopReason !== undefined) +
    +(rationale !== undefined) + +(tokens !== undefined) + +(prompt !== undefined) + +(completion !== undefined) + +(duration !== undefined) +
    +(files !== undefined) + +(tests !== undefined) + +(commit !== undefined) + +(metadata !== undefined);
  if (Object.keys(e).length !== present) return undefined;
  if (eventId !== undefined && (typeof eventId !== 'string' || !EVENT_ID_PATTERN.test(eventId))) return undefined;
  if (phaseType !== undefined && !plainText(phaseType, 0, LIMITS.nameChars)) return undefined;
  if (model !== undefined && !plainText(model, 0, LIMITS.nameChars)) return undefined;
  if (attempt !== undefined && !count(attempt, 1, LIMITS.attemptMax)) return undefined;
  if (stopReason !== undefined && !plainText(stopReason, 0, LIMITS.stopReasonBytes)) return undefined;
  if (rationale !== undefined && !plainText(rationale, 0, LIMITS.rationaleBytes)) return undefined;
  if (!optionalCount(tokens) || !optionalCount(prompt) || !optionalCount(completion) || !optionalCount(duration)) return undefined;
  const filesText = files === undefined ? '\\N' : listLiteral(files, LIMITS.files, LIMITS.pathBytes, true);
  const testsText = tests === undefined ? '\\N' : listLiteral(tests, LIMITS.testsFailed, LIMITS.testIdBytes, false);
  if (filesText === undefined || testsText === undefined) return undefined;
  if (commit !== undefined && (typeof commit !== 'string' || !LOWER_HEX_SHA.test(commit))) return undefined;
  const metadataText = metadata === undefined ? '\\N' : flatMetadata(metadata);
  if (metadataText === undefined) return undefined;

  const event: PhaseOutcomeEvent = {
    run_id,
    phase_id,
    phase_type: (phaseType as string | undefined) ?? null,
    model: (model as string | undefined) ?? null,
    attempt: (attempt as number | undefined) ?? 1,
    outcome: outcome as PhaseOutcomeEvent['outcome'],
    stop_reason: (stopReason as string | undefined) ?? (outcome === 'SUCCESS' ? 'completed' : null),
    decision_rationale: (rationale as string | undefined) ?? null,
    tokens_used: storedCount(tokens),
    prompt_tokens: storedCount(prompt),
    completion_tokens: storedCount(completion),
    duration_ms: storedCount(duration),
    files: files === undefined ? null : (files as string[]).slice(),
    tests_failed: tests === undefined ? null : (tests as string[]).slice(),
    commit_sha: (commit as string | undefined) ?? null,
    occurred_at: occurred_at as string,
    metadata: (metadata as Record<string, unknown> | undefined) ?? null,
    event_id: '',
    content_hash: '',
  };
  const contentText =
    `${run_id}\t${phase_id}\t${or(event.phase_type)}\t${or(event.model)}\t${event.attempt}\t${outcome}\t${or(event.stop_reason)}\t` +
    `${or(event.decision_rationale)}\t${or(event.tokens_used)}\t${or(event.prompt_tokens)}\t${or(event.completion_tokens)}\t` +
    `${or(event.duration_ms)}\t${filesText}\t${testsText}\t${or(event.commit_sha)}\t${occurred_at as string}\t${metadataText}`;
  event.event_id = (eventId as string | undefined) ?? deriveEventId(run_id, phase_id, event.attempt);
  event.content_hash = hash('sha256', contentText, 'hex');
  return { ok: true, event, contentText };
}

export interface ItemResult {
  index: number;
  status: IngestStatus;
  event_id?: string;
  message?: string;
}

export interface IngestSummary {
  accepted: number;
  duplicate: number;
  conflict: number;
  invalid: number;
}

export const emptySummary = (): IngestSummary => ({ accepted: 0, duplicate: 0, conflict: 0, invalid: 0 });

export function summarize(results: Iterable<{ status: IngestStatus }>, into: IngestSummary = emptySummary()): IngestSummary {
  for (const r of results) into[r.status]++;
  return into;
}

export const conflictMessage = (eventId: string) =>
  `event_id ${eventId} is already recorded with other content; an event is immutable — give a new event a new event_id`;

/**
 * Splits a batch's valid events into the first occurrence of each event id (to store) and repeats (judged once the
 * stored content of that id is known: same hash → duplicate, else conflict).
 */
export function splitRepeats<T extends { event: PhaseOutcomeEvent }>(items: T[]): { firsts: T[]; repeats: T[] } {
  const seen = new Set<string>();
  const firsts: T[] = [];
  const repeats: T[] = [];
  for (const item of items) {
    if (seen.has(item.event.event_id)) repeats.push(item);
    else {
      seen.add(item.event.event_id);
      firsts.push(item);
    }
  }
  return { firsts, repeats };
}
