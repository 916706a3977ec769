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

export const LIMITS = {
  eventIdChars: 128,
  runIdChars: 255,
  phaseIdChars: 255, // "< 256 chars"
  nameChars: 255, // phase_type, model
  stopReasonBytes: 255, // "< 256 bytes"
  rationaleBytes: 10 * 1024 - 1, // "< 10 KiB"
  metadataBytes: 16 * 1024,
  files: 200,
  testsFailed: 500,
  pathBytes: 1024,
  testIdBytes: 1024,
} as const;

export type IngestStatus = 'accepted' | 'duplicate' | 'conflict' | 'invalid';

const utf8Bytes = (text: string): number => Buffer.byteLength(text, 'utf8');

/*
 * Two passes keep validation cheap (it runs on every event of a bulk import): zod checks types, enums and bounds in
 * UTF-16 units, which are necessary conditions; `exactIssues` then checks the real limits — code points for
 * character limits (as PostgreSQL counts them), UTF-8 bytes for byte limits, characters PostgreSQL cannot store,
 * and repo-relative paths — but only measures a string when its length could break the limit.
 */
const str = (field: string) => z.string({ error: `${field} must be a string` });
const bounded = (field: string, min: number, maxUnits: number, limit: string) =>
  str(field)
    .min(min, `${field} must not be empty`)
    .max(maxUnits, `${field} must be at most ${limit}`);

const count = (field: string) =>
  z
    .number({ error: `${field} must be a number` })
    .int(`${field} must be an integer`)
    .min(0, `${field} must be ≥ 0`)
    .max(Number.MAX_SAFE_INTEGER, `${field} is too large`);

// A code point is at most 2 UTF-16 units; a byte limit bounds the units too.
const chars = (field: string, min: number, max: number) => bounded(field, min, 2 * max, `${max} characters`);
const bytes = (field: string, max: number) => bounded(field, 0, max, `${max} bytes of UTF-8`);

export const phaseOutcomeSchema = z
  .object({
    event_id: str('event_id')
      .regex(/^[A-Za-z0-9._:-]{1,128}$/, `event_id must be 1–${LIMITS.eventIdChars} characters of A–Z a–z 0–9 . _ : -`)
      .optional(),
    run_id: chars('run_id', 1, LIMITS.runIdChars),
    phase_id: chars('phase_id', 1, LIMITS.phaseIdChars),
    phase_type: chars('phase_type', 0, LIMITS.nameChars).optional(),
    model: chars('model', 0, LIMITS.nameChars).optional(),
    attempt: z.number({ error: 'attempt must be a number' }).int('attempt must be an integer').min(1, 'attempt must be ≥ 1').max(1_000_000, 'attempt must be ≤ 1000000').default(1),
    outcome: z.enum(OUTCOMES, { error: `outcome must be one of ${OUTCOMES.join(', ')}` }),
    stop_reason: bytes('stop_reason', LIMITS.stopReasonBytes).optional(),
    decision_rationale: bytes('decision_rationale', LIMITS.rationaleBytes).optional(),
    tokens_used: count('tokens_used').optional(),
    prompt_tokens: count('prompt_tokens').optional(),
    completion_tokens: count('completion_tokens').optional(),
    duration_ms: count('duration_ms').optional(),
    files: z
      .array(bounded('files[]', 1, LIMITS.pathBytes, `${LIMITS.pathBytes} bytes`), { error: 'files must be an array of paths' })
      .max(LIMITS.files, `files must list at most ${LIMITS.files} paths`)
      .optional(),
    tests_failed: z
      .array(bounded('tests_failed[]', 1, LIMITS.testIdBytes, `${LIMITS.testIdBytes} bytes`), { error: 'tests_failed must be an array of test ids' })
      .max(LIMITS.testsFailed, `tests_failed must list at most ${LIMITS.testsFailed} test ids`)
      .optional(),
    commit_sha: str('commit_sha')
      .regex(/^[0-9a-fA-F]{7,64}$/, 'commit_sha must be 7–64 hexadecimal characters')
      .optional(),
    occurred_at: z.iso.datetime({
      offset: true,
      error: 'occurred_at must be an ISO-8601 date-time with a time zone offset, e.g. 2026-11-28T09:30:00Z',
    }),
    metadata: z.record(z.string(), z.unknown(), { error: 'metadata must be a JSON object' }).optional(),
  })
  .strict();

type Parsed = z.output<typeof phaseOutcomeSchema>;

const CHAR_LIMITS = [['run_id', LIMITS.runIdChars], ['phase_id', LIMITS.phaseIdChars], ['phase_type', LIMITS.nameChars], ['model', LIMITS.nameChars]] as const;
const BYTE_LIMITS = [['stop_reason', LIMITS.stopReasonBytes], ['decision_rationale', LIMITS.rationaleBytes]] as const;
// Control characters would break a path or test id (and NUL cannot be stored in PostgreSQL at all).
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const CONTROL = /[\u0000-\u001f\u007f]/;

// Backslashes, empty, `.` or `..` segments, or a leading `/` or drive: anything else is already a normal relative path.
const NEEDS_NORMALIZING = /\\|\/\/|(^|\/)\.{1,2}(\/|$)|^\/|^[A-Za-z]:/;

/** The exact limits; fills `files` with the normalised paths. */
function exactIssues(e: Parsed): string[] {
  const issues: string[] = [];
  for (const [field, max] of CHAR_LIMITS) {
    const value = e[field];
    if (value === undefined) continue;
    if (value.includes('\u0000')) issues.push(`${field} must not contain NUL characters`);
    if (value.length > max) {
      const n = [...value].length;
      if (n > max) issues.push(`${field} must be at most ${max} characters (got ${n})`);
    }
  }
  for (const [field, max] of BYTE_LIMITS) {
    const value = e[field];
    if (value === undefined) continue;
    if (value.includes('\u0000')) issues.push(`${field} must not contain NUL characters`);
    if (value.length * 3 > max) {
      const n = utf8Bytes(value);
      if (n > max) issues.push(`${field} must be at most ${max} bytes of UTF-8 (got ${n})`);
    }
  }
  if (e.files) {
    e.files = e.files.map((raw) => {
      const path = NEEDS_NORMALIZING.test(raw) ? posix.normalize(raw.replaceAll('\\', '/')).replace(/^\.\//, '') : raw;
      if (CONTROL.test(raw)) issues.push('files[] must not contain control characters');
      else if (path.startsWith('/') || /^[A-Za-z]:/.test(path)) issues.push(`files[] must be repo-relative, not absolute (got ${JSON.stringify(raw)})`);
      else if (path === '.' || path === '..' || path.startsWith('../')) issues.push(`files[] must not contain ".." or point at the repository root (got ${JSON.stringify(raw)})`);
      else if (utf8Bytes(path) > LIMITS.pathBytes) issues.push(`files[] must be at most ${LIMITS.pathBytes} bytes`);
      return path;
    });
  }
  if (e.tests_failed?.some((id) => CONTROL.test(id))) issues.push('tests_failed[] must not contain control characters');
  if (e.tests_failed?.some((id) => id.length * 3 > LIMITS.testIdBytes && utf8Bytes(id) > LIMITS.testIdBytes)) {
    issues.push(`tests_failed[] must be at most ${LIMITS.testIdBytes} bytes`);
  }
  if (e.metadata) {
    const json = JSON.stringify(e.metadata);
    if (json.includes('\\u0000')) issues.push('metadata must not contain NUL characters');
    const n = json.length * 3 > LIMITS.metadataBytes ? utf8Bytes(json) : json.length;
    if (n > LIMITS.metadataBytes) issues.push(`metadata must be at most ${LIMITS.metadataBytes} bytes as JSON (got ${n})`);
  }
  return issues;
}

export type PhaseOutcomeInput = z.input<typeof phaseOutcomeSchema>;

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

const CANONICAL_TIME = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

/** Validates and normalises one event; never throws. */
export function validateEvent(input: unknown): Validated {
  const parsed = phaseOutcomeSchema.safeParse(input);
  if (!parsed.success) return { ok: false, message: describeZodError(parsed.error) };
  const e = parsed.data;
  const issues = exactIssues(e);
  if (issues.length) return { ok: false, message: issues.join('; ') };
  const content: EventContent = {
    run_id: e.run_id,
    phase_id: e.phase_id,
    phase_type: e.phase_type ?? null,
    model: e.model ?? null,
    attempt: e.attempt,
    outcome: e.outcome,
    stop_reason: e.stop_reason ?? (e.outcome === 'SUCCESS' ? 'completed' : null),
    decision_rationale: e.decision_rationale ?? null,
    tokens_used: e.tokens_used ?? null,
    prompt_tokens: e.prompt_tokens ?? null,
    completion_tokens: e.completion_tokens ?? null,
    duration_ms: e.duration_ms ?? null,
    files: e.files ?? null,
    tests_failed: e.tests_failed ?? null,
    commit_sha: e.commit_sha?.toLowerCase() ?? null,
    occurred_at: CANONICAL_TIME.test(e.occurred_at) ? e.occurred_at : new Date(e.occurred_at).toISOString(),
    metadata: e.metadata ? sortedKeys(e.metadata) : null,
  };
  const contentText = canonicalContent(content);
  const event = content as PhaseOutcomeEvent;
  event.event_id = e.event_id ?? deriveEventId(e.run_id, e.phase_id, e.attempt);
  event.content_hash = hash('sha256', contentText, 'hex');
  return { ok: true, event, contentText };
}

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
    out[key] = sorted;
  }
  return (changed ? out : value) as T;
}

/** The id of an event that brought none: one outcome per (run, phase, attempt) — never the clock. */
export function deriveEventId(runId: string, phaseId: string, attempt: number): string {
  return 'auto:' + createHash('sha256').update(JSON.stringify([runId, phaseId, attempt])).digest('hex').slice(0, 40);
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
