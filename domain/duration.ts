/** Human durations used in configuration and on the command line: `90s`, `30m`, `36h`, `7d`, `2w`, `7 days`. */
const UNIT_MS: Record<string, number> = {
  ms: 1,
  s: 1_000,
  sec: 1_000,
  second: 1_000,
  m: 60_000,
  min: 60_000,
  minute: 60_000,
  h: 3_600_000,
  hour: 3_600_000,
  d: 86_400_000,
  day: 86_400_000,
  w: 604_800_000,
  week: 604_800_000,
};

const DURATION = /^\s*(\d+(?:\.\d+)?)\s*([a-z]+?)s?\s*$/i;

/** Milliseconds for a duration string, or an Error whose message says what is accepted. */
export function parseDuration(text: string): number {
  const match = DURATION.exec(text);
  const unit = match ? (UNIT_MS[match[2]!.toLowerCase()] ?? UNIT_MS[match[2]!.toLowerCase() + 's']) : undefined;
  if (!match || unit === undefined) {
    throw new Error(`"${text}" is not a duration (use a number and a unit: 90s, 30m, 36h, 7d, 2w)`);
  }
  const ms = Number(match[1]) * unit;
  if (!Number.isFinite(ms) || ms <= 0) throw new Error(`"${text}" must be a positive duration`);
  return Math.round(ms);
}

/** `7 days`, `36 hours`, `90 seconds`: the largest whole unit, for messages and UI details. */
export function formatDuration(ms: number): string {
  const units: Array<[string, number]> = [
    ['day', 86_400_000],
    ['hour', 3_600_000],
    ['minute', 60_000],
    ['second', 1_000],
  ];
  for (const [name, size] of units) {
    if (ms >= size && ms % size === 0) {
      const n = ms / size;
      return `${n} ${name}${n === 1 ? '' : 's'}`;
    }
  }
  return `${ms} ms`;
}
