/**
 * ROAD's Prometheus metrics (prom-client), for `road serve` (GET /metrics on the API's port) and the worker
 * (workers/metrics.ts). Two kinds:
 *
 * - what this process did: events by verdict and request latency (the API only), Node's own process metrics;
 * - the shared state, read when Prometheus scrapes (one cheap read-only query with a statement timeout, plus Temporal
 *   visibility counts cached for a while): the rollup backlog, approvals waiting by age, tasks by status, webhook
 *   deliveries by status, loops by stage. Every process that exports them reports the same values: aggregate with
 *   max(), not sum().
 *
 * A scrape always answers: a source that fails or is too slow sets its gauges to NaN and counts
 * road_metrics_collect_errors_total{source}, so an alert on the value never fires on a stale number.
 */
import type { Client } from '@temporalio/client';
import type { FastifyInstance } from 'fastify';
import { createHash, timingSafeEqual } from 'node:crypto';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { inTransaction, withClient, type Pool } from '../db/pool.js';
import { NOTIFY_EVENTS } from '../domain/notify.js';
import type { IngestStatus } from '../domain/telemetry.js';

const VERDICTS: IngestStatus[] = ['accepted', 'duplicate', 'conflict', 'invalid'];
/** followup_tasks.status (migration 1764200000000). */
const TASK_STATUSES = ['open', 'needs_scope', 'in_progress', 'awaiting_approval', 'done', 'rejected', 'abandoned'] as const;
const DELIVERY_STATUSES = ['pending', 'delivered', 'failed'] as const;
/** The stages a running loop reports in its RoadStatus search attribute (domain/loop.ts, less `done`). */
const LOOP_STAGES = ['demotion', 'analysis', 'tasks', 'report'] as const;
/** How long approvals have waited, by bucket: the default gate expires after 7 days. */
const WAIT_BUCKETS = [
  { age: 'under_1d', from: 0, to: 1 },
  { age: '1d_to_3d', from: 1, to: 3 },
  { age: '3d_to_7d', from: 3, to: 7 },
  { age: 'over_7d', from: 7, to: null },
] as const;

export const METRICS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

export interface RoadMetricsOptions {
  /** A pool for the state query (a dedicated one-connection pool keeps a busy API from delaying a scrape). */
  pool: Pool;
  /** Temporal, for running loops by stage (visibility counts); without it there is no road_loops_running. */
  temporal?: () => Promise<Client>;
  /** Register the API's own metrics (events by verdict, request latency). */
  api?: boolean;
  /** Longest a scrape waits for a source (default 2 s). */
  collectTimeoutMs?: number;
  /** How long the loop counts are reused (visibility queries cost the Temporal cluster; default 30 s). */
  loopsCacheMs?: number;
}

interface StateSnapshot {
  rollup: { pending: number; oldest: number | null };
  approvals: Record<string, number> & { oldest: number | null };
  tasks: Record<string, number>;
  notifications: Record<string, number>;
}

/**
 * One statement, read-only: rollup_pending is a small table (the worker folds every 5 s; a backlog of millions is
 * still a sequential scan of narrow rows), approvals and tasks are a few rows per task.
 */
const STATE_SQL = `
SELECT
  (SELECT json_build_object('pending', count(*), 'oldest', extract(epoch FROM now() - min(noted_at))) FROM rollup_pending) AS rollup,
  (SELECT json_build_object(${WAIT_BUCKETS.map(
    (b) =>
      `'${b.age}', count(*) FILTER (WHERE requested_at <= now() - interval '${b.from} days'${b.to === null ? '' : ` AND requested_at > now() - interval '${b.to} days'`})`,
  ).join(', ')}, 'oldest', extract(epoch FROM now() - min(requested_at)))
     FROM approval_requests WHERE status = 'PENDING') AS approvals,
  (SELECT coalesce(json_object_agg(status, n), '{}') FROM (SELECT status::text, count(*) AS n FROM followup_tasks GROUP BY 1) t) AS tasks,
  (SELECT coalesce(json_object_agg(event || ' ' || status, n), '{}') FROM (SELECT event, status, count(*) AS n FROM notifications GROUP BY 1, 2) t) AS notifications`;

export class RoadMetrics {
  readonly registry = new Registry();
  private readonly events?: Counter<'verdict'>;
  private readonly requests?: Histogram<'route' | 'method' | 'status_class'>;
  private readonly collectErrors: Counter<'source'>;
  private readonly rollupPending: Gauge;
  private readonly rollupOldest: Gauge;
  private readonly approvalsWaiting: Gauge<'age'>;
  private readonly approvalsOldest: Gauge;
  private readonly tasks: Gauge<'status'>;
  private readonly notifications: Gauge<'event' | 'status'>;
  private readonly loops?: Gauge<'stage'>;
  private loopsCache?: { at: number; counts: Promise<Record<string, number>> };
  private readonly timeoutMs: number;
  private readonly loopsCacheMs: number;

  constructor(private readonly options: RoadMetricsOptions) {
    this.timeoutMs = options.collectTimeoutMs ?? 2000;
    this.loopsCacheMs = options.loopsCacheMs ?? 30_000;
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry });
    if (options.api) {
      this.events = new Counter({ name: 'road_events_total', help: 'Phase outcome events received by the API, by verdict', labelNames: ['verdict'], registers });
      for (const verdict of VERDICTS) this.events.inc({ verdict }, 0);
      this.requests = new Histogram({
        name: 'road_http_request_duration_seconds',
        help: 'API request latency, by route pattern, method and status class',
        labelNames: ['route', 'method', 'status_class'],
        buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
        registers,
      });
    }
    this.collectErrors = new Counter({ name: 'road_metrics_collect_errors_total', help: 'Scrapes that could not read a source (its gauges are NaN then)', labelNames: ['source'], registers });
    this.rollupPending = new Gauge({ name: 'road_rollup_pending_events', help: 'Stored events not yet folded into the analysis rollups', registers });
    this.rollupOldest = new Gauge({ name: 'road_rollup_oldest_pending_age_seconds', help: 'Age of the oldest event waiting to be folded (0 when none waits)', registers });
    this.approvalsWaiting = new Gauge({ name: 'road_approvals_waiting', help: 'PENDING approval requests, by how long they have waited', labelNames: ['age'], registers });
    this.approvalsOldest = new Gauge({ name: 'road_approvals_oldest_waiting_seconds', help: 'How long the oldest PENDING approval request has waited (0 when none)', registers });
    this.tasks = new Gauge({ name: 'road_followup_tasks', help: 'Follow-up tasks, by status', labelNames: ['status'], registers });
    this.notifications = new Gauge({ name: 'road_notifications', help: 'Webhook deliveries, by event and status (failed: gave up or refused)', labelNames: ['event', 'status'], registers });
    if (options.temporal) {
      this.loops = new Gauge({ name: 'road_loops_running', help: 'Running improvement loops, by stage (Temporal visibility)', labelNames: ['stage'], registers });
    }
  }

  /** The exposition text: the shared state is read now (bounded by the collect timeout). */
  async text(): Promise<string> {
    await Promise.all([this.collectState(), this.collectLoops()]);
    // prom-client writes NaN as "Nan"; the exposition format spells it NaN (Prometheus itself reads either).
    return (await this.registry.metrics()).replace(/ Nan$/gm, ' NaN');
  }

  /** One API request, for the latency histogram (`route` is the route's pattern, never the raw URL). */
  observeRequest(route: string, method: string, statusCode: number, seconds: number): void {
    this.requests?.observe({ route, method, status_class: `${Math.floor(statusCode / 100)}xx` }, seconds);
  }

  /** A source this process could not read for a scrape (e.g. `temporal_sdk`, the SDK's exporter). */
  countCollectError(source: string): void {
    this.collectErrors.inc({ source });
  }

  /** The verdicts of one POST /v1/events. */
  countEvents(summary: Partial<Record<IngestStatus, number>>): void {
    if (!this.events) return;
    for (const verdict of VERDICTS) if (summary[verdict]) this.events.inc({ verdict }, summary[verdict]);
  }

  private async collectState(): Promise<void> {
    try {
      const state = await withTimeout(this.readState(), this.timeoutMs, 'the state query');
      this.rollupPending.set(Number(state.rollup.pending));
      this.rollupOldest.set(state.rollup.oldest === null ? 0 : Number(state.rollup.oldest));
      for (const bucket of WAIT_BUCKETS) this.approvalsWaiting.set({ age: bucket.age }, Number(state.approvals[bucket.age] ?? 0));
      this.approvalsOldest.set(state.approvals.oldest === null ? 0 : Number(state.approvals.oldest));
      for (const status of TASK_STATUSES) this.tasks.set({ status }, Number(state.tasks[status] ?? 0));
      for (const event of NOTIFY_EVENTS) {
        for (const status of DELIVERY_STATUSES) this.notifications.set({ event, status }, Number(state.notifications[`${event} ${status}`] ?? 0));
      }
    } catch {
      this.collectErrors.inc({ source: 'database' });
      for (const gauge of [this.rollupPending, this.rollupOldest, this.approvalsOldest]) gauge.set(Number.NaN);
      for (const bucket of WAIT_BUCKETS) this.approvalsWaiting.set({ age: bucket.age }, Number.NaN);
      for (const status of TASK_STATUSES) this.tasks.set({ status }, Number.NaN);
      for (const event of NOTIFY_EVENTS) for (const status of DELIVERY_STATUSES) this.notifications.set({ event, status }, Number.NaN);
    }
  }

  private readState(): Promise<StateSnapshot> {
    return withClient(this.options.pool, (client) =>
      inTransaction(
        client,
        async () => {
          // The server gives up too, so a slow scrape never leaves a query running behind it.
          await client.query(`SET LOCAL statement_timeout = ${Math.max(1, Math.floor(this.timeoutMs))}`);
          const { rows } = await client.query<StateSnapshot>(STATE_SQL);
          return rows[0]!;
        },
        'BEGIN READ ONLY',
      ),
    );
  }

  private async collectLoops(): Promise<void> {
    if (!this.loops || !this.options.temporal) return;
    const now = Date.now();
    if (!this.loopsCache || now - this.loopsCache.at > this.loopsCacheMs) {
      const temporal = this.options.temporal;
      const counts = (async () => {
        const client = await temporal();
        const entries = await Promise.all(
          LOOP_STAGES.map(async (stage) => {
            const { count } = await client.workflow.count(`RoadKind = "loop" AND ExecutionStatus = "Running" AND RoadStatus = "${stage}"`);
            return [stage, count] as const;
          }),
        );
        return Object.fromEntries(entries);
      })();
      // One question at a time, and a failure is kept as long as an answer would be: an unreachable or slow Temporal
      // is not asked again at every scrape.
      counts.catch(() => undefined);
      this.loopsCache = { at: now, counts };
    }
    try {
      const counts = await withTimeout(this.loopsCache!.counts, this.timeoutMs, 'Temporal visibility');
      for (const stage of LOOP_STAGES) this.loops.set({ stage }, counts[stage] ?? 0);
    } catch {
      this.collectErrors.inc({ source: 'temporal' });
      for (const stage of LOOP_STAGES) this.loops.set({ stage }, Number.NaN);
    }
  }
}

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} took longer than ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Whether a scrape may read /metrics: anyone, unless a token is set (then `Authorization: Bearer <token>`). */
export function metricsAccess(token: string | undefined): (authorization: string | undefined) => boolean {
  if (!token) return () => true;
  const expected = createHash('sha256').update(token).digest();
  return (authorization) => {
    const match = /^Bearer\s+(\S+)$/i.exec(authorization ?? '');
    return Boolean(match) && timingSafeEqual(createHash('sha256').update(match![1]!).digest(), expected);
  };
}

/**
 * GET /metrics on the API, and the hooks that feed it. Call before the routes' plugins are registered, so that their
 * requests are observed too.
 */
export function registerMetrics(app: FastifyInstance, metrics: RoadMetrics, options: { token?: string } = {}): void {
  const mayRead = metricsAccess(options.token);
  app.addHook('onResponse', (request, reply, done) => {
    metrics.observeRequest(request.routeOptions.url ?? 'unmatched', request.method, reply.statusCode, reply.elapsedTime / 1000);
    done();
  });
  // The verdicts, from the summary the events route answers with (before it is serialised).
  app.addHook('preSerialization', (request, _reply, payload, done) => {
    if (request.routeOptions.url === '/v1/events' && payload && typeof payload === 'object' && 'summary' in payload) {
      metrics.countEvents((payload as { summary: Partial<Record<IngestStatus, number>> }).summary);
    }
    done(null, payload);
  });
  app.get('/metrics', async (request, reply) => {
    if (!mayRead(request.headers.authorization)) {
      return reply
        .code(401)
        .header('www-authenticate', 'Bearer realm="road-metrics"')
        .send({ error: 'unauthorized', message: 'GET /metrics needs "Authorization: Bearer <ROAD_METRICS_TOKEN>"' });
    }
    return reply.type(METRICS_CONTENT_TYPE).send(await metrics.text());
  });
}
