/**
 * Replay runs (ROAD-E): the record every replay run leaves, and the one line a replay command may print to say how
 * the run went. Pure and free of Node built-ins: workflows import these types and the parser.
 */

export type ReplayVariant = 'baseline' | 'treatment';
export type ReplayOutcome = 'SUCCESS' | 'FAILED' | 'TIMEOUT' | 'STUCK';

export const REPLAY_OUTCOMES: readonly ReplayOutcome[] = ['SUCCESS', 'FAILED', 'TIMEOUT', 'STUCK'];

export interface ReplayRunResult {
  campaignId: string;
  caseId: string;
  phaseId: string | null;
  variant: ReplayVariant;
  /** The commit sha the run replayed. */
  ref: string;
  /** 0..repeats-1 within (case, variant). */
  repeat: number;
  /** Position in the campaign's interleaved run order (baseline and treatment alternate so drift hits both). */
  runIndex: number;
  outcome: ReplayOutcome;
  tokens: number | null;
  durationMs: number;
  stopReason: string | null;
  retries: number | null;
  exitCode: number | null;
  startedAt: string;
  finishedAt: string;
}

/** What a replay command reported about itself on its last stdout line; absent keys stay absent. */
export interface RoadLine {
  outcome: ReplayOutcome;
  tokens?: number;
  durationMs?: number;
  stopReason?: string;
  retries?: number;
}

export type RoadLineParse =
  | { kind: 'none' } // the last line is not a `{"road":…}` line: fall back to the exit status
  | { kind: 'ok'; line: RoadLine }
  | { kind: 'invalid'; error: string }; // it is a `{"road":…}` line, but a key is wrong: the run reported nonsense

export const STOP_REASON_MAX_BYTES = 255;

const NUMERIC_KEYS = [
  ['tokens', 'tokens'],
  ['duration_ms', 'durationMs'],
  ['retries', 'retries'],
] as const;

/** UTF-8 length without TextEncoder's Node typing concerns or Buffer (a Node built-in). */
function utf8Bytes(text: string): number {
  let bytes = 0;
  for (const ch of text) {
    const code = ch.codePointAt(0)!;
    bytes += code < 0x80 ? 1 : code < 0x800 ? 2 : code < 0x10000 ? 3 : 4;
  }
  return bytes;
}

/**
 * Reads the LAST non-empty stdout line. Only a line that parses as a JSON object with a `road` key counts as a
 * report; anything else (logs, a JSON line of the tool's own) is `none`, so commands that print nothing special still
 * work by exit status. A report with a bad key is `invalid`, with a message naming the key and its limit.
 */
export function parseRoadLine(stdout: string): RoadLineParse {
  const lines = stdout.split(/\r?\n/);
  let last: string | undefined;
  for (let i = lines.length - 1; i >= 0; i--) {
    const trimmed = lines[i]!.trim();
    if (trimmed !== '') {
      last = trimmed;
      break;
    }
  }
  if (last === undefined || !last.startsWith('{')) return { kind: 'none' };
  let parsed: unknown;
  try {
    parsed = JSON.parse(last);
  } catch {
    return { kind: 'none' };
  }
  if (!isPlainObject(parsed) || !('road' in parsed)) return { kind: 'none' };
  const road = parsed.road;
  if (!isPlainObject(road)) return { kind: 'invalid', error: 'road must be an object' };

  const outcome = road.outcome;
  if (outcome === undefined) return { kind: 'invalid', error: 'road.outcome is required' };
  if (typeof outcome !== 'string' || !(REPLAY_OUTCOMES as readonly string[]).includes(outcome)) {
    return { kind: 'invalid', error: `road.outcome must be one of ${REPLAY_OUTCOMES.join(', ')}` };
  }
  const line: RoadLine = { outcome: outcome as ReplayOutcome };

  for (const [key, field] of NUMERIC_KEYS) {
    const value = road[key];
    if (value === undefined || value === null) continue;
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
      return { kind: 'invalid', error: `road.${key} must be a non-negative integer (at most ${Number.MAX_SAFE_INTEGER})` };
    }
    line[field] = value;
  }

  const stopReason = road.stop_reason;
  if (stopReason !== undefined && stopReason !== null) {
    if (typeof stopReason !== 'string') return { kind: 'invalid', error: 'road.stop_reason must be a string' };
    if (utf8Bytes(stopReason) > STOP_REASON_MAX_BYTES) {
      return { kind: 'invalid', error: `road.stop_reason must be at most ${STOP_REASON_MAX_BYTES} bytes` };
    }
    line.stopReason = stopReason;
  }
  return { kind: 'ok', line };
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
