/**
 * `road serve`: ROAD's HTTP API (Fastify). Agents in any language post phase outcomes; reviewers list and decide
 * approval requests. Every route under /v1 needs a bearer token from ROAD_API_TOKENS. Client input is answered
 * with a 2xx or a 4xx that says what is wrong — never a 500.
 */
import type { Client } from '@temporalio/client';
import Fastify, { type FastifyError, type FastifyInstance, type FastifyReply } from 'fastify';
import { createHash, timingSafeEqual } from 'node:crypto';
import { z } from 'zod';
import { listApprovals } from '../db/approvals.js';
import { storeEvents } from '../db/events.js';
import type { Pool } from '../db/pool.js';
import { summarize } from '../domain/telemetry.js';
import { describeZodError } from '../domain/validation.js';
import { submitDecision } from './approvals.js';
import { UsageError, type UsageErrorKind } from './errors.js';

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
    if (token.length < 16) throw new UsageError(`ROAD_API_TOKENS: every token must be at least 16 characters (one has ${token.length})`);
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
}

const STATUS_OF: Record<UsageErrorKind, number> = { invalid: 400, not_found: 404, conflict: 409, forbidden: 403 };

const decisionSchema = z.discriminatedUnion('action', [
  z.object({ action: z.literal('approve'), reviewer: z.string().optional(), comment: z.string().max(4000).optional() }).strict(),
  z.object({ action: z.literal('reject'), reviewer: z.string().optional(), reason: z.string().min(1).max(4000) }).strict(),
], { error: 'action must be "approve" or "reject"' });

const approvalsQuery = z.object({ status: z.enum(['PENDING', 'APPROVED', 'REJECTED', 'EXPIRED', 'SUPERSEDED']).optional() }).strict();

declare module 'fastify' {
  interface FastifyRequest {
    apiToken?: ApiToken;
  }
}

export function buildServer(deps: ServerDeps): FastifyInstance {
  const app = Fastify({ bodyLimit: MAX_BODY_BYTES, logger: deps.logger ?? false, return503OnClosing: true });

  // NDJSON: parsed line by line in the route, so one bad line is one invalid item, not a failed request.
  app.addContentTypeParser(NDJSON_TYPES, { parseAs: 'string' }, (_req, body, done) => done(null, { ndjson: body as string }));

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

  app.setErrorHandler((error: FastifyError, request, reply) => {
    if (error instanceof UsageError) return reply.code(STATUS_OF[error.kind]).send({ error: error.kind, message: error.message });
    if (error.statusCode && error.statusCode >= 400 && error.statusCode < 500) {
      const message = error.code === 'FST_ERR_CTP_BODY_TOO_LARGE' ? `the body is larger than ${MAX_BODY_BYTES} bytes (4 MiB): send smaller batches` : error.message;
      return reply.code(error.statusCode).send({ error: error.code ?? 'bad_request', message });
    }
    // Not the client's fault: the database or Temporal is unreachable, or a bug. Say so without leaking internals.
    request.log.error(error);
    return reply.code(503).header('retry-after', '5').send({ error: 'unavailable', message: 'ROAD could not complete the request; retry later' });
  });

  app.get('/healthz', async (_request, reply) => {
    try {
      await deps.pool.query('SELECT 1');
      return { status: 'ok' };
    } catch {
      return reply.code(503).send({ status: 'unavailable', database: 'unreachable' });
    }
  });

  app.post('/v1/events', async (request, reply) => {
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

  app.get('/v1/approvals', async (request) => {
    const query = approvalsQuery.safeParse(request.query);
    if (!query.success) throw new UsageError(describeZodError(query.error));
    return { approvals: await listApprovals(deps.pool, query.data) };
  });

  app.post<{ Params: { taskId: string } }>('/v1/approvals/:taskId/decision', async (request) => {
    const body = decisionSchema.safeParse(request.body);
    if (!body.success) throw new UsageError(describeZodError(body.error));
    const token = request.apiToken!;
    if (!token.reviewer) {
      throw new UsageError('this token is not bound to a reviewer: decisions need a token given as REVIEWER=TOKEN in ROAD_API_TOKENS', 'forbidden');
    }
    if (body.data.reviewer && body.data.reviewer !== token.reviewer) {
      throw new UsageError(`this token decides as ${token.reviewer}, not as ${body.data.reviewer}`, 'forbidden');
    }
    if (!deps.temporal) throw new Error('Temporal is not configured');
    const { action, ...decision } = body.data;
    const result = await submitDecision(
      { client: await deps.temporal(), pool: () => deps.pool, source: 'api' },
      request.params.taskId,
      action,
      { ...decision, reviewer: token.reviewer },
    );
    return result;
  });

  return app;
}

/** A sentinel that fails validation; its slot's result is replaced by the line's parse error. */
const PARSE_FAILED = Symbol('unparsed line');

type BodyItem = { value: unknown } | { parseError: string };

function eventsOf(body: unknown, reply: FastifyReply): BodyItem[] | undefined {
  if (body && typeof body === 'object' && 'ndjson' in body && typeof body.ndjson === 'string') {
    return body.ndjson
      .split('\n')
      .map((line, i) => ({ line: line.trim(), number: i + 1 }))
      .filter(({ line }) => line.length > 0)
      .map(({ line, number }): BodyItem => {
        try {
          return { value: JSON.parse(line) };
        } catch (error) {
          return { parseError: `line ${number} is not valid JSON: ${(error as Error).message}` };
        }
      });
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
