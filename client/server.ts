/**
 * `road serve`: ROAD's HTTP API (Fastify). Agents in any language post phase outcomes; reviewers list and decide
 * approval requests. Every route under /v1 needs a bearer token from ROAD_API_TOKENS. Client input is answered
 * with a 2xx or a 4xx that says what is wrong — never a 500.
 */
import type { Client } from '@temporalio/client';
import Fastify, { type FastifyError, type FastifyInstance, type FastifyReply } from 'fastify';
import { isUtf8 } from 'node:buffer';
import { createHash, timingSafeEqual } from 'node:crypto';
import { z } from 'zod';
import { listApprovals } from '../db/approvals.js';
import { storeEvents } from '../db/events.js';
import { activeRulesForPhase } from '../db/rules.js';
import type { Pool } from '../db/pool.js';
import { requireDecision } from '../domain/approval.js';
import { phasePrompt, requirePhase } from '../domain/promotion.js';
import { summarize } from '../domain/telemetry.js';
import { describeZodError } from '../domain/validation.js';
import { submitDecision } from './approvals.js';
import { Forbidden, httpReplyOf, InvalidInput, NotConfigured } from './errors.js';
import { registerMetrics, type RoadMetrics } from './metrics.js';

export const MAX_EVENTS_PER_REQUEST = 1000;
export const MAX_BODY_BYTES = 4 * 1024 * 1024;
const NDJSON_TYPES = ['application/x-ndjson', 'application/ndjson', 'application/jsonl', 'application/x-jsonlines'];

/** One API token; a token bound to a reviewer (`alice@example.com=TOKEN`) may also decide approvals as that reviewer. */
export interface ApiToken {
  digest: Buffer;
  reviewer?: string;
}

/** ROAD_API_TOKENS: comma-separated `TOKEN` or `REVIEWER=TOKEN` entries. */
export function parseApiTokens(value: string | undefined): ApiToken[] {
  const entries = (value ?? '').split(',').map((e) => e.trim()).filter(Boolean);
  return entries.map((entry) => {
    const at = entry.lastIndexOf('=');
    const [reviewer, token] = at > 0 ? [entry.slice(0, at).trim(), entry.slice(at + 1).trim()] : [undefined, entry];
    if (token.length < 16) throw new InvalidInput(`ROAD_API_TOKENS: every token must be at least 16 characters (one has ${token.length})`);
    return { digest: sha256(token), reviewer };
  });
}

const sha256 = (text: string) => createHash('sha256').update(text).digest();

export interface ServerDeps {
  pool: Pool;
  tokens: ApiToken[];
  /** Temporal, for approval decisions; connected on first use. */
  temporal?: () => Promise<Client>;
  logger?: boolean;
  /** Prometheus metrics: GET /metrics and the hooks that feed it (client/metrics.ts); none when absent. */
  metrics?: RoadMetrics;
  /** ROAD_METRICS_TOKEN: when set, GET /metrics needs it as a bearer token. */
  metricsToken?: string;
}

const approvalsQuery = z.object({ status: z.enum(['PENDING', 'APPROVED', 'REJECTED', 'EXPIRED', 'SUPERSEDED']).optional() }).strict();

declare module 'fastify' {
  interface FastifyRequest {
    apiToken?: ApiToken;
  }
}

export function buildServer(deps: ServerDeps): FastifyInstance {
  const app = Fastify({ bodyLimit: MAX_BODY_BYTES, logger: deps.logger ?? false, return503OnClosing: true });

  // NDJSON: parsed line by line in the route, so one bad line is one invalid item, not a failed request.
  app.addContentTypeParser(NDJSON_TYPES, { parseAs: 'buffer' }, (_req, body, done) => done(null, { ndjson: body as Buffer }));

  app.addHook('onRequest', async (request, reply) => {
    if (!request.url.startsWith('/v1/')) return;
    const header = request.headers.authorization ?? '';
    const match = /^Bearer\s+(\S+)$/i.exec(header);
    const digest = match ? sha256(match[1]!) : undefined;
    const token = digest && deps.tokens.find((t) => timingSafeEqual(t.digest, digest));
    if (!token) {
      return reply
        .code(401)
        .header('www-authenticate', 'Bearer realm="road"')
        .send({ error: 'unauthorized', message: match ? 'the bearer token is not valid' : 'missing "Authorization: Bearer <token>" header' });
    }
    request.apiToken = token;
  });

  // Every error of every route, in one envelope `{ error, message }` (client/errors.ts decides the status).
  app.setErrorHandler((error: FastifyError, request, reply) => {
    const answer = httpReplyOf(error);
    if (error.code === 'FST_ERR_CTP_BODY_TOO_LARGE') answer.body.message = `the body is larger than ${MAX_BODY_BYTES} bytes (4 MiB): send smaller batches`;
    if (answer.status >= 500) request.log.error(error);
    return reply.code(answer.status).headers(answer.headers).send(answer.body);
  });
  app.setNotFoundHandler((request, reply) =>
    reply.code(404).send({ error: 'not_found', message: `no route ${request.method} ${request.url.split('?')[0]}` }),
  );

  if (deps.metrics) registerMetrics(app, deps.metrics, { token: deps.metricsToken });

  app.get('/healthz', async (_request, reply) => {
    try {
      await deps.pool.query('SELECT 1');
      return { status: 'ok' };
    } catch {
      return reply.code(503).send({ status: 'unavailable', database: 'unreachable' });
    }
  });

  // Events get a JSON parser of their own (in a plugin scope: other routes keep Fastify's). Fastify's default refuses
  // a whole body when any key is named __proto__ or constructor — one event's metadata would cost every event beside
  // it — while JSON.parse never sets a prototype from a key: each event is judged on its own (domain/telemetry.ts).
  void app.register(async (events) => {
    events.removeContentTypeParser('application/json');
    events.addContentTypeParser('application/json', { parseAs: 'buffer' }, (_req, body, done) => {
      try {
        done(null, parseJsonBody(body as Buffer));
      } catch (error) {
        done(error as Error, undefined);
      }
    });
    events.post('/v1/events', async (request, reply) => {
      const items = eventsOf(request.body, reply);
      if (!items) return reply;
      if (items.length > MAX_EVENTS_PER_REQUEST) {
        return reply.code(413).send({ error: 'too_many_events', message: `at most ${MAX_EVENTS_PER_REQUEST} events per request (got ${items.length}): send smaller batches` });
      }
      const results = await storeEvents(deps.pool, items.map((item) => ('parseError' in item ? PARSE_FAILED : item.value)));
      // Lines that were not JSON are invalid items with the parser's reason.
      items.forEach((item, index) => {
        if ('parseError' in item) results[index] = { index, status: 'invalid', message: item.parseError };
      });
      return { summary: summarize(results), results };
    });
  });

  app.get('/v1/approvals', async (request) => {
    const query = approvalsQuery.safeParse(request.query);
    if (!query.success) throw new InvalidInput(describeZodError(query.error));
    return { approvals: await listApprovals(deps.pool, query.data) };
  });

  // An agent asks at the start of every phase: one probe of the active rules' GIN index. No rule → 200 with prompt "".
  app.get('/v1/prompts', async (request) => {
    const query = (request.query ?? {}) as Record<string, unknown>;
    const unknown = Object.keys(query).filter((key) => key !== 'phase');
    if (unknown.length) throw new InvalidInput(`unknown query parameter ${unknown.map((k) => JSON.stringify(k)).join(', ')}: only phase is accepted`);
    const phase = requirePhase(query.phase);
    return phasePrompt(phase, await activeRulesForPhase(deps.pool, phase));
  });

  // The body is a decision without its reviewer (the token says who decides): domain/approval.ts judges the rest.
  app.post<{ Params: { taskId: string } }>('/v1/approvals/:taskId/decision', async (request) => {
    const token = request.apiToken!;
    if (!token.reviewer) {
      throw new Forbidden('this token is not bound to a reviewer: decisions need a token given as REVIEWER=TOKEN in ROAD_API_TOKENS');
    }
    const body: unknown = request.body;
    const named = body && typeof body === 'object' && !Array.isArray(body) ? (body as Record<string, unknown>).reviewer : undefined;
    if (named !== undefined && named !== token.reviewer) {
      throw new Forbidden(`this token decides as ${token.reviewer}, not as ${typeof named === 'string' ? named : JSON.stringify(named)}`);
    }
    const decision = requireDecision(body && typeof body === 'object' && !Array.isArray(body) ? { ...body, reviewer: token.reviewer } : body);
    if (!deps.temporal) throw new NotConfigured('this API was started without Temporal, so it cannot take decisions');
    const { action, ...rest } = decision;
    return submitDecision({ client: await deps.temporal(), pool: () => deps.pool, source: 'api' }, request.params.taskId, action, rest);
  });

  return app;
}

/** A sentinel that fails validation; its slot's result is replaced by the line's parse error. */
const PARSE_FAILED = Symbol('unparsed line');

type BodyItem = { value: unknown } | { parseError: string };

/**
 * A JSON body: UTF-8 (JSON text is; a decoder would replace bad bytes with U+FFFD and store what was never sent),
 * an optional byte-order mark, then JSON.parse — which builds any nesting depth without recursion.
 */
function parseJsonBody(body: Buffer): unknown {
  if (!isUtf8(body)) throw new InvalidInput('the body is not valid UTF-8 (JSON text must be)');
  const text = body.toString('utf8').replace(/^\uFEFF/, '');
  if (!text.trim()) throw new InvalidInput('the body is empty: send a JSON array of events');
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new InvalidInput(`the body is not valid JSON: ${(error as Error).message}`);
  }
}

function eventsOf(body: unknown, reply: FastifyReply): BodyItem[] | undefined {
  if (body && typeof body === 'object' && 'ndjson' in body && Buffer.isBuffer(body.ndjson)) {
    const lines: BodyItem[] = [];
    let start = 0;
    for (let number = 1; start <= body.ndjson.length; number++) {
      const end = body.ndjson.indexOf(0x0a, start);
      const bytes = body.ndjson.subarray(start, end < 0 ? body.ndjson.length : end);
      start = end < 0 ? body.ndjson.length + 1 : end + 1;
      // Line by line, so a line that is not UTF-8 is one invalid item.
      if (!isUtf8(bytes)) {
        lines.push({ parseError: `line ${number} is not valid UTF-8` });
        continue;
      }
      const line = bytes.toString('utf8').replace(number === 1 ? /^\uFEFF/ : /^$/, '').trim();
      if (!line) continue;
      try {
        lines.push({ value: JSON.parse(line) });
      } catch (error) {
        lines.push({ parseError: `line ${number} is not valid JSON: ${(error as Error).message}` });
      }
    }
    return lines;
  }
  if (!Array.isArray(body)) {
    void reply.code(400).send({
      error: 'bad_request',
      message: 'the body must be a JSON array of events (Content-Type: application/json) or NDJSON (Content-Type: application/x-ndjson)',
    });
    return undefined;
  }
  return body.map((value) => ({ value }));
}
