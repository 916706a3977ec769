/**
 * Prometheus text format, read by a real parser (npm parse-prometheus-text-format, a port of prom2json and of the
 * official Python client's parser: it refuses any malformed line) plus the rules it does not check: one HELP and one
 * TYPE per family, before its samples; no series twice; label syntax. Values are read from the samples here, because
 * that parser folds a labelled histogram's series into one.
 */
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const parsePrometheusTextFormat = require('parse-prometheus-text-format') as (text: string) => ParsedFamily[];

export interface ParsedSample {
  labels?: Record<string, string>;
  value?: string;
  buckets?: Record<string, string>;
  count?: string;
  sum?: string;
}

export interface ParsedFamily {
  name: string;
  help: string;
  /** As the parser reports it: COUNTER, GAUGE, HISTOGRAM, SUMMARY, UNTYPED. */
  type: 'COUNTER' | 'GAUGE' | 'HISTOGRAM' | 'SUMMARY' | 'UNTYPED';
  metrics: ParsedSample[];
}

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export class Exposition {
  constructor(
    readonly families: ParsedFamily[],
    readonly samples: Sample[],
  ) {}

  family(name: string): ParsedFamily {
    const found = this.families.find((f) => f.name === name);
    if (!found) throw new Error(`no metric family ${name} in: ${this.families.map((f) => f.name).join(', ')}`);
    return found;
  }

  has(name: string): boolean {
    return this.families.some((f) => f.name === name);
  }

  /** Samples named `name` whose labels include `labels`. */
  find(name: string, labels: Record<string, string> = {}): Sample[] {
    return this.samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  }

  /** The value of the one sample named `name` whose labels include `labels` (NaN stays NaN). */
  value(name: string, labels: Record<string, string> = {}): number {
    const matches = this.find(name, labels);
    if (matches.length !== 1) throw new Error(`${name}${JSON.stringify(labels)} matches ${matches.length} samples`);
    return matches[0]!.value;
  }

  /** A histogram series (its labels without `le`): count, sum and cumulative buckets; undefined when absent. */
  histogram(name: string, labels: Record<string, string>): { count: number; sum: number; buckets: Record<string, number> } | undefined {
    const count = this.find(`${name}_count`, labels);
    if (count.length === 0) return undefined;
    if (count.length > 1) throw new Error(`${name}${JSON.stringify(labels)} matches ${count.length} series`);
    const buckets = Object.fromEntries(this.find(`${name}_bucket`, labels).map((b) => [b.labels.le!, b.value]));
    return { count: count[0]!.value, sum: this.value(`${name}_sum`, labels), buckets };
  }
}

const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})?\s+(\S+)(\s+-?\d+)?$/;
const LABEL = /\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*(,|$)/y;

/** `{a="x",b="y\"z"}` → { a: 'x', b: 'y"z' }, refusing anything else. */
function parseLabels(text: string, line: number): Record<string, string> {
  const labels: Record<string, string> = {};
  const inner = text.slice(1, -1);
  LABEL.lastIndex = 0;
  while (LABEL.lastIndex < inner.length) {
    const at = LABEL.lastIndex;
    const match = LABEL.exec(inner);
    if (!match || match.index !== at) throw new Error(`line ${line}: bad labels ${text}`);
    if (match[1]! in labels) throw new Error(`line ${line}: label ${match[1]} twice`);
    labels[match[1]!] = match[2]!.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
  }
  return labels;
}
const SUFFIXES = ['_bucket', '_count', '_sum', '_total', '_created', ''];

/** Parses `text`, throwing on anything a Prometheus server would refuse or misread. */
export function parseExposition(text: string): Exposition {
  const families = parsePrometheusTextFormat(text);
  const help = new Map<string, number>();
  const type = new Map<string, number>();
  const series = new Set<string>();
  const declared = new Set<string>();
  const samples: Sample[] = [];
  for (const [index, line] of text.split('\n').entries()) {
    if (!line.trim()) continue;
    const meta = /^# (HELP|TYPE) (\S+)/.exec(line);
    if (meta) {
      const counts = meta[1] === 'HELP' ? help : type;
      counts.set(meta[2]!, (counts.get(meta[2]!) ?? 0) + 1);
      declared.add(meta[2]!);
      continue;
    }
    if (line.startsWith('#')) continue;
    const sample = SAMPLE.exec(line);
    if (!sample) throw new Error(`line ${index + 1} is not a sample: ${line}`);
    const [, name, labels = '', value] = sample;
    if (Number.isNaN(Number(value)) && !/^(NaN|[+-]Inf)$/.test(value!)) throw new Error(`line ${index + 1}: ${value} is not a number`);
    const family = SUFFIXES.map((s) => (s && name!.endsWith(s) ? name!.slice(0, -s.length) : name!)).find((f) => declared.has(f));
    if (!family) throw new Error(`line ${index + 1}: ${name} comes before its # TYPE line (or has none)`);
    const parsedLabels = labels ? parseLabels(labels, index + 1) : {};
    const key = name + JSON.stringify(Object.entries(parsedLabels).sort());
    if (series.has(key)) throw new Error(`line ${index + 1}: the series ${name}${labels} appears twice`);
    series.add(key);
    samples.push({ name: name!, labels: parsedLabels, value: Number(value) });
  }
  for (const [name, n] of [...help, ...type]) if (n !== 1) throw new Error(`${name} has ${n} HELP or TYPE lines`);
  return new Exposition(families, samples);
}
