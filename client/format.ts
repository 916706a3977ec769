/** Plain-text tables and times for terminal output. */
export function formatTable(header: string[], rows: string[][], maxWidth = 48): string {
  const clip = (cell: string) => (cell.length > maxWidth ? cell.slice(0, maxWidth - 1) + '…' : cell);
  const cells = [header, ...rows.map((row) => row.map(clip))];
  const widths = header.map((_, i) => Math.max(...cells.map((row) => (row[i] ?? '').length)));
  return cells.map((row) => row.map((cell, i) => (cell ?? '').padEnd(widths[i]!)).join('  ').trimEnd()).join('\n');
}

/** `in 6d 23h`, `3m ago`: coarse, two units at most. */
export function relativeTime(at: Date, now: number): string {
  const delta = at.getTime() - now;
  let rest = Math.abs(delta) / 1000;
  const parts: string[] = [];
  for (const [unit, size] of [['d', 86_400], ['h', 3_600], ['m', 60], ['s', 1]] as const) {
    if (rest >= size && parts.length < 2) {
      parts.push(`${Math.floor(rest / size)}${unit}`);
      rest %= size;
    }
  }
  const text = parts.join(' ') || '0s';
  return delta >= 0 ? `in ${text}` : `${text} ago`;
}

/** Data for scripts: indented JSON on stdout. */
export function printJson(value: unknown): void {
  process.stdout.write(JSON.stringify(value, null, 2) + '\n');
}
