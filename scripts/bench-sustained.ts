/**
 * `npm run bench:sustained [-- --seconds 300 --rate max --calibrate 20 --fold-events 300000 --every 30]`: can the
 * fold keep up with ingestion? In one run, on one dedicated database:
 *   1. fold vs (b): --fold-events generated events (as bench:ingest makes them) stored through the library bulk path
 *      (b), then folded into the rollups in one fold, each timed — the fold's rate must be at least (b)'s;
 *   2. the API's maximum: `road serve` in its own process, fed batches of 1,000 with 4 in flight as fast as it answers
 *      for --calibrate seconds, nothing folding;
 *   3. the sustained run: the same server fed at that rate (or --rate N events/s) for --seconds while this process
 *      folds as the worker does (keepRollupsCurrent, every 5 s, back to back when behind). Every --every seconds a
 *      row: accepted events/s, p50/p99 request latency, the pending backlog (events, age of the oldest) and what was
 *      folded (and the share of the time a fold was running). Verdict: the backlog at the end is under 10 seconds of
 *      ingest.
 * The events of phases 2 and 3 happen over the last day; the tables are emptied between phases. Loopback only; it
 * stops by itself (the feed after --seconds, then the server and the fold loop). `--previous-fold` runs it all with
 * the fold of 1764300000000_analysis_rollups.sql (the faster fold's migration reverted), for comparison; `--no-fold`
 * feeds without folding (what ingestion alone costs the database).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { runner } from 'node-pg-migrate';
import { bulkStoreEvents, type RawItem } from '../db/events.js';
import { createPool, type Pool } from '../db/pool.js';
import { foldPendingEvents, keepRollupsCurrent, pendingBacklog } from '../db/rollups.js';
import { benchDatabase, serverCpuSeconds } from './bench-database.js';
import { generateEvents } from './generate-events.js';
import { freePort, PROJECT_ROOT, waitForPort } from './provision.js';

const args = process.argv.slice(2);
const flag = (name: string) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : undefined;
};
function numberFlag(name: string, fallback: number, min: number, max: number): number {
  const value = Number(flag(name) ?? fallback);
  if (!Number.isFinite(value) || value < min || value > max) throw new Error(`--${name} must be a number from ${min} to ${max}`);
  return value;
}
const SECONDS = numberFlag('seconds', 300, 10, 3600);
const CALIBRATE_SECONDS = numberFlag('calibrate', 20, 5, 300);
const FOLD_EVENTS = numberFlag('fold-events', 300_000, 0, 10_000_000);
const EVERY_SECONDS = numberFlag('every', 30, 1, 600);
const RATE = flag('rate') === undefined || flag('rate') === 'max' ? 'max' : numberFlag('rate', 0, 1, 1_000_000);
const BATCH = 1000;
const IN_FLIGHT = 4;
const TOKEN = 'bench-token-0123456789abcdef';
/** The migration of the faster fold (reverted by --previous-fold). */
const FASTER_FOLD = 1_765_000_000_000;

const fmt = (n: number) => Math.round(n).toLocaleString('en-US');
const load = () => os.loadavg().map((l) => l.toFixed(1)).join(' ');

/** Phase 1: (b) then one fold of what it stored. */
async function foldVersusBulk(pool: Pool) {
  const items = function* (): Generator<RawItem> {
    let index = 0;
    for (const value of generateEvents(FOLD_EVENTS)) yield { index: index++, value };
  };
  let accepted = 0;
  process.stderr.write(`(b) library bulk path, ${fmt(FOLD_EVENTS)} events… `);
  let cpu = await serverCpuSeconds(pool);
  let started = performance.now();
  await bulkStoreEvents(pool, items(), {
    onChunk: (results) => {
      accepted += results.filter((r) => r.status === 'accepted').length;
    },
  });
  const bulkSeconds = (performance.now() - started) / 1000;
  const bulkCpu = cpu === undefined ? undefined : (await serverCpuSeconds(pool))! - cpu;
  const bulkLoad = load();
  process.stderr.write(`${bulkSeconds.toFixed(1)} s\nfold of the ${fmt(accepted)} pending events… `);
  cpu = await serverCpuSeconds(pool);
  started = performance.now();
  const folded = await foldPendingEvents(pool);
  const foldSeconds = (performance.now() - started) / 1000;
  const foldCpu = cpu === undefined ? undefined : (await serverCpuSeconds(pool))! - cpu;
  process.stderr.write(`${foldSeconds.toFixed(1)} s\n`);
  if (accepted !== FOLD_EVENTS || folded !== FOLD_EVENTS) throw new Error(`expected ${FOLD_EVENTS} accepted and folded, got ${accepted} and ${folded}`);
  const us = (seconds: number | undefined) => (seconds === undefined ? 'n/a' : `${((seconds / FOLD_EVENTS) * 1e6).toFixed(1)} µs`);
  const bulkRate = FOLD_EVENTS / bulkSeconds;
  const foldRate = FOLD_EVENTS / foldSeconds;
  console.log(`(b) library bulk path: ${fmt(bulkRate)} events/s (PostgreSQL CPU ${us(bulkCpu)} per event; load ${bulkLoad})`);
  console.log(`fold into the rollups: ${fmt(foldRate)} events/s (PostgreSQL CPU ${us(foldCpu)} per event; load ${load()})`);
  console.log(`fold / (b): ${(foldRate / bulkRate).toFixed(2)} → target fold ≥ (b): ${foldRate >= bulkRate ? 'met' : 'MISSED'}\n`);
  return { bulkRate, foldRate, bulkCpuUs: bulkCpu && (bulkCpu / FOLD_EVENTS) * 1e6, foldCpuUs: foldCpu && (foldCpu / FOLD_EVENTS) * 1e6 };
}

async function startServer(databaseUrl: string): Promise<{ port: number; server: ChildProcess }> {
  const port = await freePort();
  const server = spawn(process.execPath, [path.join(PROJECT_ROOT, 'bin', 'road.js'), 'serve', '--port', String(port)], {
    env: { ...process.env, DATABASE_URL: databaseUrl, ROAD_API_TOKENS: TOKEN },
    stdio: 'ignore',
  });
  await waitForPort(port, 30_000);
  return { port, server };
}

interface Interval {
  accepted: number;
  latencies: number[];
}

/**
 * Posts batches of the given events: at `rate` events/s when given (never more than IN_FLIGHT requests at once; a
 * batch due while all are busy goes when one answers), else as fast as the server answers. Stops after `seconds`.
 */
async function feed(port: number, events: Iterator<Record<string, unknown>>, seconds: number, rate: number | undefined, onAnswer: (accepted: number, ms: number) => void) {
  const started = performance.now();
  const deadline = started + seconds * 1000;
  let reserved = 0; // events of the batches already due
  const nextBatch = () => {
    const batch: unknown[] = [];
    for (let r = events.next(); !r.done; r = events.next()) if (batch.push(r.value) === BATCH) break;
    return batch;
  };
  const sender = async () => {
    for (;;) {
      const due = rate === undefined ? 0 : started + (reserved / rate) * 1000;
      if (due >= deadline || performance.now() >= deadline) return;
      reserved += BATCH;
      const wait = due - performance.now();
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
      const batch = nextBatch();
      if (!batch.length) throw new Error('the generated events ran out before the run ended');
      const body = JSON.stringify(batch);
      const t0 = performance.now();
      const response = await fetch(`http://127.0.0.1:${port}/v1/events`, {
        method: 'POST',
        headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
        body,
      });
      if (response.status !== 200) throw new Error(`POST /v1/events answered ${response.status}: ${await response.text()}`);
      const { summary } = (await response.json()) as { summary: { accepted: number } };
      onAnswer(summary.accepted, performance.now() - t0);
    }
  };
  await Promise.all(Array.from({ length: IN_FLIGHT }, sender));
  return (performance.now() - started) / 1000;
}

const percentile = (values: number[], p: number) => {
  if (!values.length) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1)]!;
};

async function main() {
  const database = await benchDatabase('road_bench_sustained');
  const pool = createPool(database.url, 4);
  const monitor = createPool(database.url, 1);
  let server: ChildProcess | undefined;
  let stopFolding: (() => Promise<void>) | undefined;
  try {
    if (args.includes('--previous-fold')) {
      await runner({ databaseUrl: database.url, dir: path.join(PROJECT_ROOT, 'db', 'migrations'), migrationsTable: 'road_migrations', direction: 'down', count: FASTER_FOLD, timestamp: true, log: () => undefined });
      console.error('with the previous fold (migration 1765000000000_faster_fold.sql reverted)');
    }
    console.error(`Sustained-load benchmark: PostgreSQL ${(await pool.query('SHOW server_version')).rows[0].server_version}, ${os.cpus().length} cores, load ${load()}`);
    const versus = FOLD_EVENTS ? await foldVersusBulk(pool) : undefined;
    await pool.query('TRUNCATE phase_outcome_events'); // empties the rollups and the pending list too
    await pool.query('VACUUM ANALYZE');

    const started = await startServer(database.url);
    server = started.server;
    // Events of runs over the last day, as a busy fleet would send them (the generator spreads the n it is asked for).
    const lastDay = (n: number) => generateEvents(n, { days: 1, end: new Date(), seed: 7 })[Symbol.iterator]();

    process.stderr.write(`the API's maximum: ${CALIBRATE_SECONDS} s as fast as it answers, nothing folding… `);
    let calibrated = 0;
    const calibrationSeconds = await feed(started.port, lastDay(CALIBRATE_SECONDS * 200_000), CALIBRATE_SECONDS, undefined, (accepted) => (calibrated += accepted));
    const maxRate = calibrated / calibrationSeconds;
    process.stderr.write(`${fmt(maxRate)} events/s\n`);
    console.log(`API maximum (batches of ${BATCH}, ${IN_FLIGHT} in flight, nothing folding): ${fmt(maxRate)} events/s (load ${load()})`);
    await pool.query('TRUNCATE phase_outcome_events');
    await pool.query('VACUUM ANALYZE');

    const rate = RATE === 'max' ? maxRate : RATE;
    console.log(`\nfeeding ${fmt(rate)} events/s for ${SECONDS} s, ${args.includes('--no-fold') ? 'nothing folding' : 'folding every 5 s as the worker does'}:\n`);
    const columns = ['t (s)', 'accepted/s', 'p50 ms', 'p99 ms', 'pending', 'oldest (s)', 'folds', 'folded/s', 'folding %', 'load'];
    const rows: string[][] = [];
    const print = (row: string[]) => console.log(row.map((cell, i) => (i ? cell.padStart(columns[i]!.length + 2) : cell.padEnd(6))).join(''));
    print(columns);
    let interval: Interval = { accepted: 0, latencies: [] };
    let folds = { count: 0, events: 0, ms: 0 };
    let total = 0;
    const allLatencies: number[] = [];
    const folding = !args.includes('--no-fold');
    stopFolding = keepRollupsCurrent(pool, {
      everyMs: folding ? 5_000 : 2_147_483_647,
      onFold: (fold) => {
        folds.count++;
        folds.events += fold.events;
        folds.ms += fold.ms;
      },
      onError: (error) => console.error(`fold failed: ${(error as Error).message}`),
    });
    const cpuBefore = await serverCpuSeconds(monitor);
    const t0 = performance.now();
    let sampled = t0;
    const samples: Array<{ t: number; rate: number; pending: number; ageMs: number }> = [];
    const sampler = setInterval(() => {
      void (async () => {
        const now = performance.now();
        const seconds = (now - sampled) / 1000;
        sampled = now;
        const current = interval;
        const folded = folds;
        interval = { accepted: 0, latencies: [] };
        folds = { count: 0, events: 0, ms: 0 };
        const backlog = await pendingBacklog(monitor);
        const row = [
          String(Math.round((now - t0) / 1000)), fmt(current.accepted / seconds), percentile(current.latencies, 0.5).toFixed(0),
          percentile(current.latencies, 0.99).toFixed(0), fmt(backlog.events), (backlog.oldestAgeMs / 1000).toFixed(1),
          String(folded.count), fmt(folded.events / seconds), ((folded.ms / 10) / seconds).toFixed(0), os.loadavg()[0]!.toFixed(1),
        ];
        samples.push({ t: (now - t0) / 1000, rate: current.accepted / seconds, pending: backlog.events, ageMs: backlog.oldestAgeMs });
        rows.push(row);
        print(row);
      })();
    }, EVERY_SECONDS * 1000);
    let feedSeconds: number;
    try {
      feedSeconds = await feed(started.port, lastDay(Math.ceil(rate * SECONDS * 1.2) + IN_FLIGHT * BATCH), SECONDS, rate, (accepted, ms) => {
        interval.accepted += accepted;
        interval.latencies.push(ms);
        allLatencies.push(ms);
        total += accepted;
      });
    } finally {
      clearInterval(sampler);
    }
    const end = await pendingBacklog(monitor);
    const cpuAfter = await serverCpuSeconds(monitor);
    const accepted = total / feedSeconds;
    const bound = 10 * accepted;
    console.log(`\naccepted ${fmt(total)} events in ${feedSeconds.toFixed(0)} s: ${fmt(accepted)} events/s (offered ${fmt(rate)}); request latency p50 ${percentile(allLatencies, 0.5).toFixed(0)} ms, p99 ${percentile(allLatencies, 0.99).toFixed(0)} ms`);
    if (cpuBefore !== undefined && cpuAfter !== undefined) {
      console.log(`PostgreSQL CPU meanwhile (ingestion and folding): ${(((cpuAfter - cpuBefore) / total) * 1e6).toFixed(1)} µs per accepted event, ${((cpuAfter - cpuBefore) / feedSeconds).toFixed(2)} cores`);
    }
    console.log(`backlog at the end: ${fmt(end.events)} events, the oldest ${(end.oldestAgeMs / 1000).toFixed(1)} s old (10 s of ingest: ${fmt(bound)}) → ${end.events < bound ? 'met' : 'MISSED'}`);
    if (args.includes('--json')) {
      console.log(JSON.stringify({ versus, maxRate, rate, accepted, seconds: feedSeconds, endBacklog: end, samples }));
    }
  } finally {
    await stopFolding?.();
    if (server && server.exitCode === null) {
      server.kill('SIGTERM');
      await new Promise((resolve) => server!.once('exit', resolve));
    }
    await monitor.end();
    await pool.end();
    await database.release(args.includes('--keep'));
  }
}

await main();
