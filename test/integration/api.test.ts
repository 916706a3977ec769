/**
 * `road serve`'s HTTP API over real loopback HTTP and a real PostgreSQL: per-item results, NDJSON, the limits
 * (413), malformed bodies (400), auth (401/403), and no client input ever answered with a 5xx.
 */
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildServer, MAX_BODY_BYTES, MAX_EVENTS_PER_REQUEST, parseApiTokens } from '../../client/server.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';

const AGENT_TOKEN = 'agent-token-0123456789';
const REVIEWER_TOKEN = 'alice-token-0123456789';
let db: TestDatabase;
let app: FastifyInstance;
let base: string;

beforeAll(async () => {
  db = await createTestDatabase();
  app = buildServer({ pool: db.pool, tokens: parseApiTokens(`${AGENT_TOKEN}, alice@example.com=${REVIEWER_TOKEN}`) });
  base = await app.listen({ host: '127.0.0.1', port: 0 });
});
afterAll(async () => {
  await app?.close();
  await db?.drop();
});

let serial = 0;
const event = (overrides: Record<string, unknown> = {}) => ({
  event_id: `api-${++serial}`,
  run_id: 'run-api',
  phase_id: 'phase-001',
  outcome: 'FAILED',
  stop_reason: 'builder_crash',
  occurred_at: '2026-11-27T08:00:00Z',
  ...overrides,
});

async function post(body: string, headers: Record<string, string> = {}) {
  const response = await fetch(`${base}/v1/events`, {
    method: 'POST',
    headers: { authorization: `Bearer ${AGENT_TOKEN}`, 'content-type': 'application/json', ...headers },
    body,
  });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> & { results?: Array<Record<string, unknown>> } };
}

describe('POST /v1/events', () => {
  it('answers per item: accepted, duplicate, conflict, invalid — storing every valid item', async () => {
    const a = event();
    const b = event();
    const { status, body } = await post(JSON.stringify([a, a, { ...a, tokens_used: 5 }, { ...b, phase_id: 'x'.repeat(256) }, b]));
    expect(status).toBe(200);
    expect(body.summary).toEqual({ accepted: 2, duplicate: 1, conflict: 1, invalid: 1 });
    expect(body.results!.map((r) => r.status)).toEqual(['accepted', 'duplicate', 'conflict', 'invalid', 'accepted']);
    expect(body.results![3]!.message).toMatch(/phase_id must be at most 255 characters \(got 256\)/);
    const { rows } = await db.pool.query('SELECT event_id FROM phase_outcome_events WHERE event_id = ANY($1) ORDER BY event_id', [[a.event_id, b.event_id]]);
    expect(rows).toHaveLength(2);
  });

  it('takes NDJSON, judging a line that is not JSON as one invalid item', async () => {
    const lines = [JSON.stringify(event()), '{"run_id": broken', '', JSON.stringify(event())].join('\n');
    const { status, body } = await post(lines, { 'content-type': 'application/x-ndjson' });
    expect(status).toBe(200);
    expect(body.summary).toEqual({ accepted: 2, duplicate: 0, conflict: 0, invalid: 1 });
    expect(body.results![1]!.message).toMatch(/line 2 is not valid JSON/);
  });

  it(`refuses more than ${MAX_EVENTS_PER_REQUEST} events with 413 and stores none of them`, async () => {
    const batch = Array.from({ length: MAX_EVENTS_PER_REQUEST + 1 }, () => event());
    const { status, body } = await post(JSON.stringify(batch));
    expect(status).toBe(413);
    expect(body.message).toMatch(/at most 1000 events per request \(got 1001\)/);
    const { rows } = await db.pool.query('SELECT count(*)::int AS n FROM phase_outcome_events WHERE event_id = $1', [batch[0]!.event_id]);
    expect(rows[0].n).toBe(0);
  });

  it('accepts exactly 1,000 events', async () => {
    const { status, body } = await post(JSON.stringify(Array.from({ length: MAX_EVENTS_PER_REQUEST }, () => event())));
    expect(status).toBe(200);
    expect(body.summary).toMatchObject({ accepted: MAX_EVENTS_PER_REQUEST });
  });

  it('refuses a body over 4 MiB with 413', async () => {
    // One event whose metadata alone is 4 MiB: the body is refused before any parsing.
    const body = JSON.stringify([event({ metadata: { pad: 'x'.repeat(MAX_BODY_BYTES) } })]);
    const { status, body: answer } = await post(body);
    expect(status).toBe(413);
    expect(answer.message).toMatch(/larger than 4194304 bytes/);
  });

  it('answers a malformed or wrongly shaped body with 400 and an unknown media type with 415', async () => {
    expect((await post('[{"run_id": ')).status).toBe(400);
    expect((await post('')).status).toBe(400);
    const object = await post(JSON.stringify(event()));
    expect(object.status).toBe(400);
    expect(object.body.message).toMatch(/must be a JSON array of events/);
    expect((await post('<xml/>', { 'content-type': 'application/xml' })).status).toBe(415);
  });

  it('never answers client input with a 5xx', async () => {
    const bodies = ['null', '42', '"text"', '[null, 1, "a", [], {}]', '[{"occurred_at": {"$gt": 1}}]', '{"__proto__": {"x": 1}}', '[{"metadata": "\\u0000"}]', '[' + '['.repeat(5000) + ']'.repeat(5000) + ']'];
    for (const body of bodies) {
      const { status } = await post(body);
      expect(status, body.slice(0, 40)).toBeLessThan(500);
    }
  });
});

describe('authentication', () => {
  it('refuses a missing or wrong bearer token with 401', async () => {
    const missing = await fetch(`${base}/v1/events`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '[]' });
    expect(missing.status).toBe(401);
    expect(missing.headers.get('www-authenticate')).toMatch(/Bearer/);
    expect(((await missing.json()) as { message: string }).message).toMatch(/missing "Authorization: Bearer <token>"/);
    expect((await post('[]', { authorization: 'Bearer not-the-token-at-all' })).status).toBe(401);
    expect((await post('[]', { authorization: `Basic ${AGENT_TOKEN}` })).status).toBe(401);
    expect((await fetch(`${base}/v1/approvals`)).status).toBe(401);
  });

  it('lets anyone check health, without a token', async () => {
    const response = await fetch(`${base}/healthz`);
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ status: 'ok' });
  });

  it('lets only a token bound to a reviewer decide, and only as that reviewer', async () => {
    const decide = (token: string, body: unknown) =>
      fetch(`${base}/v1/approvals/TASK-1/decision`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
    expect((await decide(AGENT_TOKEN, { action: 'approve' })).status).toBe(403);
    expect((await decide(REVIEWER_TOKEN, { action: 'approve', reviewer: 'mallory@example.com' })).status).toBe(403);
    expect((await decide(REVIEWER_TOKEN, { action: 'maybe' })).status).toBe(400);
    expect((await decide(REVIEWER_TOKEN, { action: 'reject' })).status).toBe(400); // a rejection needs a reason
  });

  it('refuses tokens shorter than 16 characters at start', () => {
    expect(() => parseApiTokens('short')).toThrow(/at least 16 characters/);
  });
});

describe('GET /v1/approvals', () => {
  it('lists requests by status and refuses an unknown status with 400', async () => {
    const ok = await fetch(`${base}/v1/approvals?status=PENDING`, { headers: { authorization: `Bearer ${AGENT_TOKEN}` } });
    expect(ok.status).toBe(200);
    expect(await ok.json()).toEqual({ approvals: [] });
    const bad = await fetch(`${base}/v1/approvals?status=MAYBE`, { headers: { authorization: `Bearer ${AGENT_TOKEN}` } });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { message: string }).message).toMatch(/status/);
  });
});
