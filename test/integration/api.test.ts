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

describe('POST /v1/events on what broke it before (issue 8)', () => {
  const stored = async (id: string) =>
    (await db.pool.query('SELECT files, tests_failed, metadata FROM phase_outcome_events WHERE event_id = $1', [id])).rows[0] as Record<string, unknown> | undefined;

  it('answers a mixed batch — empty arrays beside a plain event — per item with 200, storing [] as []', async () => {
    const empty = event({ files: [], tests_failed: [] });
    const plain = event();
    const { status, body } = await post(JSON.stringify([empty, plain]));
    expect(status).toBe(200);
    expect(body.results!.map((r) => r.status)).toEqual(['accepted', 'accepted']);
    expect(await stored(empty.event_id)).toEqual({ files: [], tests_failed: [], metadata: null });
    // The same body again: duplicates.
    expect((await post(JSON.stringify([empty, plain]))).body.results!.map((r) => r.status)).toEqual(['duplicate', 'duplicate']);
  });

  it("the README's Python sequence: attempt 1 FAILED with files, attempt 2 SUCCESS with files=() — both accepted", async () => {
    const attempt = (n: number, outcome: string, files: string[]) =>
      post(JSON.stringify([{ run_id: 'run-py', phase_id: 'auth-migration', attempt: n, outcome, files, occurred_at: new Date().toISOString() }]));
    expect((await attempt(1, 'FAILED', ['src/auth/models.py'])).body.results![0]).toMatchObject({ status: 'accepted' });
    const second = await attempt(2, 'SUCCESS', []);
    expect(second.status).toBe(200);
    expect(second.body.results![0]).toMatchObject({ status: 'accepted' });
  });

  it('answers metadata nested 5,000 levels deep as one invalid item (200), not 503, and stores the event beside it', async () => {
    const beside = event();
    const deep = '{"a":'.repeat(5000) + '{}' + '}'.repeat(5000);
    const body = `[${JSON.stringify(event()).replace(/}$/, `,"metadata":${deep}}`)}, ${JSON.stringify(beside)}]`;
    const { status, body: answer } = await post(body);
    expect(status).toBe(200);
    expect(answer.results![0]).toMatchObject({ status: 'invalid', message: expect.stringMatching(/^metadata must be nested at most 32 levels deep/) });
    expect(answer.results![1]).toMatchObject({ status: 'accepted' });
  });

  it('keeps __proto__ and constructor keys of one event as data: the body is parsed, every event judged on its own', async () => {
    const poisoned = event();
    const beside = event();
    const body = `[${JSON.stringify(poisoned).replace(/}$/, ',"metadata":{"__proto__":{"admin":true},"constructor":{"prototype":{"x":1}}}}')}, ${JSON.stringify(beside)}]`;
    const { status, body: answer } = await post(body);
    expect(status).toBe(200);
    expect(answer.results!.map((r) => r.status)).toEqual(['accepted', 'accepted']);
    const metadata = (await stored(poisoned.event_id))!.metadata as Record<string, unknown>;
    expect(Object.keys(metadata).sort()).toEqual(['__proto__', 'constructor']); // stored exactly as sent
    expect(JSON.stringify(metadata)).toBe('{"__proto__":{"admin":true},"constructor":{"prototype":{"x":1}}}');
    expect(({} as Record<string, unknown>).admin).toBeUndefined();
    // An unknown top-level __proto__ field is that event's problem only.
    const top = await post(`[${JSON.stringify(event()).replace(/}$/, ',"__proto__":{"x":1}}')}, ${JSON.stringify(event())}]`);
    expect(top.body.results!.map((r) => [r.status, r.message])).toEqual([['invalid', 'unknown field "__proto__"'], ['accepted', undefined]]);
  });

  it('refuses lone surrogates as invalid items naming the field, and bytes that are not UTF-8 without storing U+FFFD', async () => {
    const { body } = await post(`[${JSON.stringify(event()).replace('"phase-001"', '"phase-\\ud800"')}, ${JSON.stringify(event())}]`);
    expect(body.results!.map((r) => r.status)).toEqual(['invalid', 'accepted']);
    expect(body.results![0]!.message).toMatch(/^phase_id must be well-formed Unicode/);
    const latin1 = Buffer.concat([Buffer.from(`[${JSON.stringify(event({ phase_id: 'caf' }))}`.replace('"caf"', '"caf')), Buffer.from([0xe9]), Buffer.from('"}]')]);
    const raw = await fetch(`${base}/v1/events`, { method: 'POST', headers: { authorization: `Bearer ${AGENT_TOKEN}`, 'content-type': 'application/json' }, body: latin1 });
    expect(raw.status).toBe(400);
    expect(((await raw.json()) as { message: string }).message).toMatch(/not valid UTF-8/);
    const lines = Buffer.concat([Buffer.from(JSON.stringify(event()) + '\n'), latin1.subarray(1, -1), Buffer.from('\n' + JSON.stringify(event()))]);
    const ndjson = await fetch(`${base}/v1/events`, { method: 'POST', headers: { authorization: `Bearer ${AGENT_TOKEN}`, 'content-type': 'application/x-ndjson' }, body: lines });
    const answer = (await ndjson.json()) as { results: Array<{ status: string; message?: string }> };
    expect(answer.results.map((r) => r.status)).toEqual(['accepted', 'invalid', 'accepted']);
    expect(answer.results[1]!.message).toBe('line 2 is not valid UTF-8');
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
