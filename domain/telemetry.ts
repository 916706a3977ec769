/**
 * The phase-outcome event contract (DESIGN.md §Telemetry): validation with messages that name the field and the
 * limit, normalisation to one stored form, the derived event id, and the content hash that tells a duplicate
 * (same id, same content) from a conflict (same id, other content).
 */
import { createHash } from 'node:crypto';
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
// PostgreSQL text cannot hold NUL; refusing it here keeps the database from failing a whole batch.
const noNul = (field: string) => (text: string) => !text.includes('\u0000') || `${field} must not contain NUL characters`;

function text(field: string, options: { min?: number; maxChars?: number; maxBytes?: number }) {
  return z.string({ error: `${field} must be a string` }).superRefine((value, ctx) => {
    const nul = noNul(field)(value);
    if (nul !== true) ctx.addIssue({ code: 'custom', message: nul });
    if (options.min && value.length < options.min) ctx.addIssue({ code: 'custom', message: `${field} must not be empty` });
    // Characters are code points, as PostgreSQL counts them.
    if (options.maxChars !== undefined && value.length > options.maxChars && [...value].length > options.maxChars) {
      ctx.addIssue({ code: 'custom', message: `${field} must be at most ${options.maxChars} characters (got ${[...value].length})` });
    }
    if (options.maxBytes !== undefined && utf8Bytes(value) > options.maxBytes) {
      ctx.addIssue({ code: 'custom', message: `${field} must be at most ${options.maxBytes} bytes of UTF-8 (got ${utf8Bytes(value)})` });
    }
  });
}

const count = (field: string) =>
  z
    .number({ error: `${field} must be a number` })
    .int(`${field} must be an integer`)
    .min(0, `${field} must be ≥ 0`)
    .max(Number.MAX_SAFE_INTEGER, `${field} is too large`);

/** A repo-relative path: no `..` segment, not absolute; normalised (`./a//b` → `a/b`). */
const repoPath = text('files[]', { min: 1, maxBytes: LIMITS.pathBytes })
  .transform((value) => posix.normalize(value.replaceAll('\\', '/')).replace(/^\.\//, ''))
  .refine((value) => !value.startsWith('/') && !/^[A-Za-z]:/.test(value), { message: 'files[] must be repo-relative, not absolute' })
  .refine((value) => value !== '.' && !value.split('/').includes('..'), { message: 'files[] must not contain ".." or point at the repository root' });

export const phaseOutcomeSchema = z
  .object({
    event_id: z
      .string({ error: 'event_id must be a string' })
      .regex(/^[A-Za-z0-9._:-]{1,128}$/, `event_id must be 1–${LIMITS.eventIdChars} characters of A–Z a–z 0–9 . _ : -`)
      .optional(),
    run_id: text('run_id', { min: 1, maxChars: LIMITS.runIdChars }),
    phase_id: text('phase_id', { min: 1, maxChars: LIMITS.phaseIdChars }),
    phase_type: text('phase_type', { maxChars: LIMITS.nameChars }).optional(),
    model: text('model', { maxChars: LIMITS.nameChars }).optional(),
    attempt: z.number({ error: 'attempt must be a number' }).int('attempt must be an integer').min(1, 'attempt must be ≥ 1').max(1_000_000, 'attempt must be ≤ 1000000').default(1),
    outcome: z.enum(OUTCOMES, { error: `outcome must be one of ${OUTCOMES.join(', ')}` }),
    stop_reason: text('stop_reason', { maxBytes: LIMITS.stopReasonBytes }).optional(),
    decision_rationale: text('decision_rationale', { maxBytes: LIMITS.rationaleBytes }).optional(),
    tokens_used: count('tokens_used').optional(),
    prompt_tokens: count('prompt_tokens').optional(),
    completion_tokens: count('completion_tokens').optional(),
    duration_ms: count('duration_ms').optional(),
    files: z.array(repoPath).max(LIMITS.files, `files must list at most ${LIMITS.files} paths`).optional(),
    tests_failed: z
      .array(text('tests_failed[]', { min: 1, maxBytes: LIMITS.testIdBytes }))
      .max(LIMITS.testsFailed, `tests_failed must list at most ${LIMITS.testsFailed} test ids`)
      .optional(),
    commit_sha: z
      .string({ error: 'commit_sha must be a string' })
      .regex(/^[0-9a-fA-F]{7,64}$/, 'commit_sha must be 7–64 hexadecimal characters')
      .transform((sha) => sha.toLowerCase())
      .optional(),
    occurred_at: z.iso
      .datetime({ offset: true, error: 'occurred_at must be an ISO-8601 date-time with a time zone offset, e.g. 2026-11-28T09:30:00Z' })
      .transform((value) => new Date(value).toISOString()),
    metadata: z
      .record(z.string(), z.unknown(), { error: 'metadata must be a JSON object' })
      .superRefine((value, ctx) => {
        const json = JSON.stringify(value);
        if (json.includes('\\u0000')) ctx.addIssue({ code: 'custom', message: 'metadata must not contain NUL characters' });
        if (utf8Bytes(json) > LIMITS.metadataBytes) {
          ctx.addIssue({ code: 'custom', message: `metadata must be at most ${LIMITS.metadataBytes} bytes as JSON (got ${utf8Bytes(json)})` });
        }
      })
      .optional(),
  })
  .strict();

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

export type Validated = { ok: true; event: PhaseOutcomeEvent } | { ok: false; message: string };

/** Validates and normalises one event; never throws. */
export function validateEvent(input: unknown): Validated {
  const parsed = phaseOutcomeSchema.safeParse(input);
  if (!parsed.success) return { ok: false, message: describeZodError(parsed.error) };
  const e = parsed.data;
  const content = {
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
    commit_sha: e.commit_sha ?? null,
    occurred_at: e.occurred_at,
    metadata: e.metadata ?? null,
  };
  return {
    ok: true,
    event: {
      event_id: e.event_id ?? deriveEventId(e.run_id, e.phase_id, e.attempt),
      ...content,
      content_hash: createHash('sha256').update(canonicalJson(content)).digest('hex'),
    },
  };
}

/** The id of an event that brought none: one outcome per (run, phase, attempt) — never the clock. */
export function deriveEventId(runId: string, phaseId: string, attempt: number): string {
  return 'auto:' + createHash('sha256').update(JSON.stringify([runId, phaseId, attempt])).digest('hex').slice(0, 40);
}

/** JSON with object keys sorted at every depth, so equal content always hashes equally. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
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
