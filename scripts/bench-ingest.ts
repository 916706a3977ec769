/**
 * `npm run bench:ingest [-- --events N]`: how fast phase outcomes get into PostgreSQL, measured in one run on one
 * server, so the ratios compare like with like:
 *   (a) raw COPY of the generated events into an unconstrained table — this machine's ceiling;
 *   (b) the library's bulk path (validation, content hashes, COPY, verdicts: db/events.ts bulkStoreEvents);
 *   (c) the HTTP API (`road serve` in its own process), batches of 1,000 over loopback, timed from the first request
 *       to the last answer (not the server's start).
 *   (g) the events table alone: the same events validated and formatted before the clock starts, then COPYed as (b)
 *       does (chunks of 20,000 on two connections) — (b) with everything ROAD does in Node for free, so the most (b)
 *       can reach while the database enforces the contract (CHECKs, primary key, indexes, the rollup trigger).
 * Prints events/s, b/a and c/a, peak RSS (with RSS at each quarter of (b), to show memory is flat in N) and the CPU
 * each path costs per event: this process, the API's server, and PostgreSQL's (when it runs on this machine).
 * `--only b` or `--only c` runs just that path (e.g. under `node --cpu-prof`); ratios then need (a) and are left out.
 * `--server-cpu-prof DIR` writes the API server's CPU profile to DIR.
 *
 * `--guarantees`: only the database's CPU per stored event, whole and without each of its guarantees in turn
 * (COPY of the same rows in a rolled-back transaction, the backend's own CPU, the least of --rounds, default 3).
 *
 * `--metrics-cost`: only (c), with GET /metrics off (ROAD_METRICS=off) and on (scraped every --scrape-every ms,
 * default 5000), in the order off, on, on, off per round (--rounds, default 1), each on an emptied table: what the
 * metrics cost the API, in events/s and in the server's CPU per event.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { PoolClient } from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { bulkStoreEvents, copyLine, DEFAULT_CHUNK_SIZE, EVENT_COLUMNS, type RawItem } from '../db/events.js';
import { copyField, validateEvent } from '../domain/telemetry.js';
import { createPool, inTransaction, withClient, type Pool } from '../db/pool.js';
import { benchDatabase, processCpuSeconds, serverCpuSeconds } from './bench-database.js';
import { freePort, PROJECT_ROOT, waitForPort } from './provision.js';
import { generateEvents } from './generate-events.js';

const args = process.argv.slice(2);
const flag = (name: string) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : undefined;
};
const N = Number(flag('events') ?? 1_000_000);
const HTTP_BATCH = 1000;
const HTTP_CONCURRENCY = Number(flag('http-concurrency') ?? 4);
if (!Number.isInteger(N) || N < 1000) throw new Error('--events must be an integer ≥ 1000');

const fmt = (n: number) => Math.round(n).toLocaleString('en-US');
const us = (cpuSeconds: number) => `${((cpuSeconds / N) * 1e6).toFixed(1)} µs`;
const mib = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(0)} MiB`;

/** Peak RSS of this process while `fn` runs (sampled every 50 ms). */
async function measured<T>(label: string, fn: (progress: (done: number) => void) => Promise<T>, pool?: Pool) {
  const pgCpu = pool && (await serverCpuSeconds(pool));
  let peak = process.memoryUsage().rss;
  const quarters: number[] = [];
  const timer = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 50);
  const started = performance.now();
  const cpu = process.cpuUsage();
  process.stderr.write(`${label}… `);
  try {
    const value = await fn((done) => {
      while (quarters.length < 4 && done >= ((quarters.length + 1) * N) / 4) quarters.push(process.memoryUsage().rss);
    });
    const seconds = (performance.now() - started) / 1000;
    const used = process.cpuUsage(cpu);
    const cpuSeconds = (used.user + used.system) / 1e6;
    const pgCpuSeconds = pgCpu === undefined ? undefined : (await serverCpuSeconds(pool!))! - pgCpu;
    process.stderr.write(`${seconds.toFixed(1)} s (this process used ${cpuSeconds.toFixed(1)} s of CPU)\n`);
    return { value, seconds, rate: N / seconds, peak: Math.max(peak, process.memoryUsage().rss), quarters, cpuSeconds, pgCpuSeconds };
  } finally {
    clearInterval(timer);
  }
}

/** (a) the ceiling: the same events, formatted for COPY with no validation, into a table with no constraints. */
async function rawCopy(pool: Pool, progress: (done: number) => void) {
  await pool.query(`DROP TABLE IF EXISTS bench_raw;
    CREATE TABLE bench_raw (event_id text, run_id text, phase_id text, phase_type text, model text, attempt integer, outcome text,
      stop_reason text, decision_rationale text, tokens_used bigint, prompt_tokens bigint, completion_tokens bigint,
      duration_ms bigint, files text[], tests_failed text[], commit_sha text, occurred_at timestamptz, metadata jsonb)`);
  const client = await pool.connect();
  try {
    let done = 0;
    const lines = function* () {
      let batch = '';
      for (const e of generateEvents(N)) {
        batch += rawLine(e);
        if (++done % 1000 === 0) {
          progress(done);
          yield batch;
          batch = '';
        }
      }
      if (batch) yield batch;
    };
    await pipeline(Readable.from(lines()), client.query(copyFrom('COPY bench_raw FROM STDIN')));
  } finally {
    client.release();
  }
}

const RAW_FIELDS = ['event_id', 'run_id', 'phase_id', 'phase_type', 'model', 'attempt', 'outcome', 'stop_reason', 'decision_rationale', 'tokens_used', 'prompt_tokens', 'completion_tokens', 'duration_ms', 'files', 'tests_failed', 'commit_sha', 'occurred_at', 'metadata'] as const;
const rawLine = (e: Record<string, unknown>) => RAW_FIELDS.map((f) => copyField(e[f])).join('\t') + '\n';

/** (b) the library bulk path with every invariant and exactly-once judging. */
async function bulkPath(pool: Pool, progress: (done: number) => void) {
  let done = 0;
  const counts = { accepted: 0, duplicate: 0, conflict: 0, invalid: 0 };
  const items = function* (): Generator<RawItem> {
    let index = 0;
    for (const value of generateEvents(N)) yield { index: index++, value };
  };
  await bulkStoreEvents(pool, items(), {
    onChunk: (results) => {
      for (const r of results) counts[r.status]++;
      done += results.length;
      progress(done);
    },
  });
  return counts;
}

const CHUNK = DEFAULT_CHUNK_SIZE; // (b)'s chunks

/** The COPY text of the next `count` events as (b) stores them, in chunks of CHUNK rows: validated, hashed, formatted. */
function formattedChunks(events: Iterator<unknown>, count: number): string[] {
  const chunks: string[] = [];
  const lines: string[] = [];
  for (let i = 0; i < count; i++) {
    const next = events.next();
    if (next.done) break;
    const checked = validateEvent(next.value);
    if (!checked.ok) throw new Error(`a generated event is invalid: ${checked.message}`);
    if (lines.push(copyLine(undefined, checked.event, checked.contentText)) === CHUNK) chunks.push(lines.splice(0).join(''));
  }
  if (lines.length) chunks.push(lines.join(''));
  return chunks;
}

/** COPYs preformatted rows (EVENT_COLUMNS) into the events table. */
const copyEvents = (client: PoolClient, text: string) =>
  pipeline(Readable.from([text]), client.query(copyFrom(`COPY phase_outcome_events (${EVENT_COLUMNS.join(', ')}) FROM STDIN`)));

/**
 * (g) The events table alone: (b)'s rows, formatted while the clock is stopped (200,000 at a time, so memory stays
 * flat), COPYed in (b)'s chunks and transactions on two connections. Only the COPYs are timed.
 */
async function tableAlone(pool: Pool, progress: (done: number) => void) {
  let seconds = 0;
  let pgSeconds: number | undefined = 0;
  const events = generateEvents(N)[Symbol.iterator]();
  for (let done = 0; done < N; ) {
    const chunks = formattedChunks(events, Math.min(10 * CHUNK, N - done));
    const pgBefore = await serverCpuSeconds(pool);
    const started = performance.now();
    let next = 0;
    const copier = async () => {
      for (let chunk = chunks[next++]; chunk !== undefined; chunk = chunks[next++]) {
        await withClient(pool, (client) => inTransaction(client, () => copyEvents(client, chunk)));
      }
    };
    await Promise.all([copier(), copier()]);
    seconds += (performance.now() - started) / 1000;
    const pgAfter = await serverCpuSeconds(pool);
    pgSeconds = pgBefore === undefined || pgAfter === undefined || pgSeconds === undefined ? undefined : pgSeconds + pgAfter - pgBefore;
    progress((done += Math.min(10 * CHUNK, N - done)));
  }
  return { rate: N / seconds, pgCpuSeconds: pgSeconds };
}

/**
 * `--guarantees`: PostgreSQL's CPU per stored event (the backend's own, from /proc), with everything the events table
 * enforces and without each part of it in turn: the same rows COPYed in a transaction that drops the part first and is
 * rolled back after. The least of --rounds runs of each.
 */
async function guaranteeCosts(pool: Pool) {
  const rows = Math.min(N, 100_000);
  const rounds = Number(flag('rounds') ?? 3);
  const text = formattedChunks(generateEvents(rows)[Symbol.iterator](), rows).join('');
  const { rows: checks } = await pool.query<{ conname: string }>(
    "SELECT conname FROM pg_constraint WHERE conrelid = 'phase_outcome_events'::regclass AND contype = 'c'",
  );
  const { rows: indexes } = await pool.query<{ name: string }>(
    "SELECT indexrelid::regclass::text AS name FROM pg_index WHERE indrelid = 'phase_outcome_events'::regclass AND NOT indisprimary",
  );
  const parts: Record<string, string[]> = {
    [`its ${checks.length} CHECK constraints`]: checks.map((c) => `ALTER TABLE phase_outcome_events DROP CONSTRAINT ${c.conname}`),
    [`its ${indexes.length} secondary indexes`]: indexes.map((i) => `DROP INDEX ${i.name}`),
    'the rollup trigger (pending rows)': ['DROP TRIGGER phase_outcome_events_pending ON phase_outcome_events'],
    'the primary key': ['ALTER TABLE phase_outcome_events DROP CONSTRAINT phase_outcome_events_pkey'],
  };
  const variants: Array<[string, string[]]> = [
    ['everything', []],
    ...Object.entries(parts).map(([name, sql]): [string, string[]] => [`without ${name}`, sql]),
    ['none of those (heap, types, NOT NULL)', Object.values(parts).flat()],
  ];
  /** The backend's CPU per row for COPYing the rows after `drops`, all rolled back. */
  const cost = (drops: string[]) =>
    withClient(pool, async (client) => {
      const pid = (await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
      await client.query('BEGIN');
      try {
        for (const sql of drops) await client.query(sql);
        const before = backendCpu(pid);
        await copyEvents(client, text);
        return ((backendCpu(pid) - before) / rows) * 1e6;
      } finally {
        await client.query('ROLLBACK');
      }
    });
  // Rounds go through every variant in turn, so a noisy minute does not land on one of them only.
  const least = variants.map(() => Infinity);
  for (let round = 0; round < rounds; round++) {
    for (const [i, [, drops]] of variants.entries()) least[i] = Math.min(least[i]!, await cost(drops));
  }
  console.log(`PostgreSQL CPU per stored event (its backend; ${fmt(rows)} events, least of ${rounds}):`);
  for (const [i, [name, drops]] of variants.entries()) {
    console.log(`  ${name.padEnd(42)} ${least[i]!.toFixed(1).padStart(5)} µs${drops.length ? `   (${(least[0]! - least[i]!).toFixed(1)} µs less)` : ''}`);
  }
}

/** A backend's CPU seconds, or why --guarantees cannot measure it. */
function backendCpu(pid: number): number {
  try {
    return processCpuSeconds(pid);
  } catch {
    throw new Error('--guarantees reads the backend\'s CPU from /proc: it needs PostgreSQL on this machine');
  }
}

/**
 * (c) `road serve` in its own process; this process posts JSON batches of 1,000 with a few requests in flight.
 * `scrapeEveryMs`: GET /metrics at that interval meanwhile, as Prometheus would.
 */
async function httpPath(databaseUrl: string, progress: (done: number) => void, serverEnv: Record<string, string> = {}, scrapeEveryMs?: number) {
  const port = await freePort();
  const token = 'bench-token-0123456789abcdef';
  const profile = flag('server-cpu-prof'); // a directory: the server's CPU profile, for a look at its hot path
  const nodeArgs = profile ? ['--cpu-prof', `--cpu-prof-dir=${profile}`] : [];
  const server = spawn(process.execPath, [...nodeArgs, path.join(PROJECT_ROOT, 'bin', 'road.js'), 'serve', '--port', String(port)], {
    env: { ...process.env, DATABASE_URL: databaseUrl, ROAD_API_TOKENS: token, ...serverEnv },
    stdio: 'ignore',
  });
  let scrapes = 0;
  let scraper: NodeJS.Timeout | undefined;
  try {
    await waitForPort(port, 30_000);
    if (scrapeEveryMs) {
      scraper = setInterval(() => {
        void fetch(`http://127.0.0.1:${port}/metrics`).then(async (response) => {
          if (response.status !== 200) throw new Error(`GET /metrics answered ${response.status}`);
          await response.text();
          scrapes++;
        });
      }, scrapeEveryMs);
    }
    // From the first request on: the server's start (loading its modules) is not the API's speed.
    const startCpu = processCpuSeconds(server.pid!);
    const started = performance.now();
    const counts = { accepted: 0, duplicate: 0, conflict: 0, invalid: 0 };
    const events = generateEvents(N)[Symbol.iterator]();
    let done = 0;
    const nextBatch = () => {
      const batch: unknown[] = [];
      for (let r = events.next(); !r.done; r = events.next()) if (batch.push(r.value) === HTTP_BATCH) break;
      return batch;
    };
    const worker = async () => {
      for (let batch = nextBatch(); batch.length; batch = nextBatch()) {
        const response = await fetch(`http://127.0.0.1:${port}/v1/events`, {
          method: 'POST',
          headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
          body: JSON.stringify(batch),
        });
        if (response.status !== 200) throw new Error(`POST /v1/events answered ${response.status}: ${await response.text()}`);
        const { summary } = (await response.json()) as { summary: typeof counts };
        for (const k of Object.keys(counts) as Array<keyof typeof counts>) counts[k] += summary[k];
        progress((done += batch.length));
      }
    };
    await Promise.all(Array.from({ length: HTTP_CONCURRENCY }, worker));
    const seconds = (performance.now() - started) / 1000;
    const serverPeak = Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${server.pid}/status`, 'utf8'))?.[1] ?? 0) * 1024;
    return { counts, serverPeak, serverCpuSeconds: processCpuSeconds(server.pid!) - startCpu, scrapes, seconds };
  } finally {
    clearInterval(scraper);
    server.kill('SIGTERM');
    await new Promise((resolve) => server.once('exit', resolve));
  }
}

/** (c) without and with metrics, alternating on an emptied table each time: the cost of GET /metrics and its hooks. */
async function metricsCost(pool: Pool, databaseUrl: string) {
  const rounds = Number(flag('rounds') ?? 1);
  const scrapeEveryMs = Number(flag('scrape-every') ?? 5000);
  const runs: Array<{ metrics: boolean; rate: number; serverCpuUs: number; scrapes: number }> = [];
  for (let round = 0; round < rounds; round++) {
    for (const metrics of [false, true, true, false]) {
      await pool.query('TRUNCATE phase_outcome_events');
      await pool.query('VACUUM ANALYZE');
      const label = `(c) HTTP, metrics ${metrics ? `on, scraped every ${scrapeEveryMs} ms` : 'off'}`;
      const run = await measured(label, (p) => httpPath(databaseUrl, p, metrics ? {} : { ROAD_METRICS: 'off' }, metrics ? scrapeEveryMs : undefined));
      if (run.value.counts.accepted !== N) throw new Error(`expected ${N} accepted, got ${run.value.counts.accepted}`);
      runs.push({ metrics, rate: N / run.value.seconds, serverCpuUs: (run.value.serverCpuSeconds / N) * 1e6, scrapes: run.value.scrapes });
    }
  }
  const mean = (values: number[]) => values.reduce((sum, v) => sum + v, 0) / values.length;
  const side = (on: boolean) => runs.filter((r) => r.metrics === on);
  const [off, on] = [side(false), side(true)];
  for (const r of runs) console.log(`metrics ${r.metrics ? 'on ' : 'off'}  ${fmt(r.rate)} events/s  server ${r.serverCpuUs.toFixed(1)} µs/event${r.metrics ? `  (${r.scrapes} scrapes)` : ''}`);
  const rateOff = mean(off.map((r) => r.rate));
  const rateOn = mean(on.map((r) => r.rate));
  const cpuOff = mean(off.map((r) => r.serverCpuUs));
  const cpuOn = mean(on.map((r) => r.serverCpuUs));
  console.log(`\nmean: off ${fmt(rateOff)} events/s, on ${fmt(rateOn)} events/s → cost ${(((rateOff - rateOn) / rateOff) * 100).toFixed(1)} % of throughput`);
  console.log(`server CPU: off ${cpuOff.toFixed(1)} µs/event, on ${cpuOn.toFixed(1)} µs/event → ${(((cpuOn - cpuOff) / cpuOff) * 100).toFixed(1)} %`);
  console.log(`target: < 5 % → ${(rateOff - rateOn) / rateOff < 0.05 ? 'met' : 'MISSED'}`);
  if (args.includes('--json')) console.log(JSON.stringify({ events: N, scrapeEveryMs, runs, rateOff, rateOn, cpuOff, cpuOn }));
}

async function main() {
  const database = await benchDatabase('road_bench');
  const databaseUrl = database.url;
  const pool = createPool(databaseUrl, 4);
  try {
    console.error(`Ingest benchmark: ${fmt(N)} generated events, PostgreSQL ${(await pool.query('SHOW server_version')).rows[0].server_version}, ${os.cpus().length} cores`);
    if (args.includes('--metrics-cost')) return await metricsCost(pool, databaseUrl);
    if (args.includes('--guarantees')) return await guaranteeCosts(pool);
    const only = flag('only');
    if (only !== undefined && only !== 'b' && only !== 'c') throw new Error('--only must be b or c');
    const pgUs = (run: { pgCpuSeconds?: number }) => (run.pgCpuSeconds === undefined ? 'n/a' : us(run.pgCpuSeconds));
    if (only === 'b') {
      const b = await measured('(b) library bulk path', (p) => bulkPath(pool, p), pool);
      console.log(`(b) ${fmt(b.rate)} events/s; CPU per event ${us(b.cpuSeconds)} here + ${pgUs(b)} PostgreSQL; ${fmt(b.value.accepted)} accepted`);
      return;
    }
    if (only === 'c') {
      const c = await measured(`(c) HTTP, batches of ${HTTP_BATCH}, ${HTTP_CONCURRENCY} in flight`, (p) => httpPath(databaseUrl, p), pool);
      console.log(`(c) ${fmt(N / c.value.seconds)} events/s; CPU per event ${us(c.cpuSeconds)} client + ${us(c.value.serverCpuSeconds)} server + ${pgUs(c)} PostgreSQL; ${fmt(c.value.counts.accepted)} accepted`);
      return;
    }
    const a = await measured('(a) raw COPY, unconstrained table', (p) => rawCopy(pool, p), pool);
    const b = await measured('(b) library bulk path', (p) => bulkPath(pool, p), pool);
    await pool.query('TRUNCATE phase_outcome_events');
    const g = (await measured('(g) the events table alone', (p) => tableAlone(pool, p))).value;
    await pool.query('TRUNCATE phase_outcome_events; DROP TABLE bench_raw');
    await pool.query('VACUUM ANALYZE'); // (c) starts from the same empty table and settled server as (b)
    const c = await measured(`(c) HTTP, batches of ${HTTP_BATCH}, ${HTTP_CONCURRENCY} in flight`, (p) => httpPath(databaseUrl, p), pool);
    c.rate = N / c.value.seconds; // from the first request to the last answer
    const stored = Number((await pool.query('SELECT count(*) FROM phase_outcome_events')).rows[0].count);

    const rows = [
      ['(a) raw COPY (ceiling)', fmt(a.rate), '1.00', mib(a.peak), '—'],
      ['(b) library bulk path', fmt(b.rate), (b.rate / a.rate).toFixed(2), mib(b.peak), `${fmt(b.value.accepted)} accepted`],
      ['(g) the events table alone (b\'s limit)', fmt(g.rate), (g.rate / a.rate).toFixed(2), '—', '—'],
      ['(c) HTTP API', fmt(c.rate), (c.rate / a.rate).toFixed(2), `${mib(c.peak)} client, ${mib(c.value.serverPeak)} server`, `${fmt(c.value.counts.accepted)} accepted`],
    ];
    const widths = rows[0]!.map((_, i) => Math.max(...[['path', 'events/s', 'ratio to (a)', 'peak RSS', 'result'], ...rows].map((r) => r[i]!.length)));
    const print = (r: string[]) => console.log(r.map((cell, i) => cell.padEnd(widths[i]!)).join('  '));
    print(['path', 'events/s', 'ratio to (a)', 'peak RSS', 'result']);
    rows.forEach(print);
    console.log(`\nCPU per event: (a) ${us(a.cpuSeconds)} here + ${pgUs(a)} PostgreSQL; (b) ${us(b.cpuSeconds)} here + ${pgUs(b)} PostgreSQL; (g) ${pgUs(g)} PostgreSQL; (c) ${us(c.cpuSeconds)} client + ${us(c.value.serverCpuSeconds)} server + ${pgUs(c)} PostgreSQL`);
    if (b.pgCpuSeconds !== undefined && c.pgCpuSeconds !== undefined) {
      // Every core busy is the most a path can do: cores / (CPU seconds per event, every process's).
      const cores = os.cpus().length;
      const ceiling = (cpuSeconds: number) => (cores * N) / cpuSeconds;
      const bCeiling = ceiling(b.cpuSeconds + b.pgCpuSeconds);
      const cCeiling = ceiling(c.cpuSeconds + c.value.serverCpuSeconds + c.pgCpuSeconds);
      console.log(
        `with all ${cores} cores busy at that CPU per event: (b) ≤ ${fmt(bCeiling)}/s (measured ${((b.rate / bCeiling) * 100).toFixed(0)} % of it, b/a ≤ ${(bCeiling / a.rate).toFixed(2)}), ` +
          `(c) ≤ ${fmt(cCeiling)}/s (measured ${((c.rate / cCeiling) * 100).toFixed(0)} %, c/a ≤ ${(cCeiling / a.rate).toFixed(2)})`,
      );
    }
    console.log(`RSS at 25/50/75/100 % of (b): ${b.quarters.map(mib).join(' / ')} (flat = streaming)`);
    const verdict = (ok: boolean) => (ok ? 'met' : 'MISSED');
    console.log(`targets: (b) ≥ 50,000 events/s → ${verdict(b.rate >= 50_000)}; b/a ≥ 0.5 → ${verdict(b.rate / a.rate >= 0.5)} (g/a = ${(g.rate / a.rate).toFixed(2)}: (b) with ROAD's work in Node free); c/a ≥ 0.3 → ${verdict(c.rate / a.rate >= 0.3)}`);
    if (b.value.accepted !== N || c.value.counts.accepted !== N || stored !== N) {
      throw new Error(`expected ${N} accepted on each path, got bulk ${b.value.accepted}, http ${c.value.counts.accepted}, stored ${stored}`);
    }
    if (args.includes('--json')) {
      console.log(JSON.stringify({ events: N, raw: a.rate, bulk: b.rate, tableAlone: g.rate, http: c.rate, gOverA: g.rate / a.rate, bOverA: b.rate / a.rate, cOverA: c.rate / a.rate, peakRss: { raw: a.peak, bulk: b.peak, httpClient: c.peak, httpServer: c.value.serverPeak }, bulkRssQuarters: b.quarters, cpuUsPerEvent: { rawClient: (a.cpuSeconds / N) * 1e6, rawPostgres: a.pgCpuSeconds && (a.pgCpuSeconds / N) * 1e6, bulkClient: (b.cpuSeconds / N) * 1e6, bulkPostgres: b.pgCpuSeconds && (b.pgCpuSeconds / N) * 1e6, tableAlonePostgres: g.pgCpuSeconds && (g.pgCpuSeconds / N) * 1e6, httpClient: (c.cpuSeconds / N) * 1e6, httpServer: (c.value.serverCpuSeconds / N) * 1e6, httpPostgres: c.pgCpuSeconds && (c.pgCpuSeconds / N) * 1e6 } }));
    }
  } finally {
    await pool.end();
    await database.release();
  }
}

await main();
