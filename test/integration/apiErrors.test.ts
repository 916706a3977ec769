/**
 * One error envelope `{ error, message }` for every route and one status per kind of error (client/errors.ts), seen
 * from outside: a real `road serve` app on a real PostgreSQL, and the real `road` CLI. 503 only when a dependency
 * is unreachable; nothing a client sends is answered with a 5xx.
 */
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildServer, parseApiTokens, type ServerDeps } from '../../client/server.js';
import { connectClient } from '../../client/temporal.js';
import { configSchema } from '../../domain/config.js';
import { createPool } from '../../db/pool.js';
import { freePort } from '../../scripts/provision.js';
import { road } from '../helpers/cli.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';

const REVIEWER = 'carol@example.com=carol-token-0123456789';
const AUTH = { authorization: 'Bearer carol-token-0123456789' };
let db: TestDatabase;
const apps: FastifyInstance[] = [];

beforeAll(async () => {
  db = await createTestDatabase();
});

afterAll(async () => {
  await Promise.all(apps.map((app) => app.close()));
  await db?.drop();
});

async function serve(deps: Partial<ServerDeps> = {}): Promise<string> {
  const app = buildServer({ pool: db.pool, tokens: parseApiTokens(REVIEWER), ...deps });
  apps.push(app);
  return app.listen({ host: '127.0.0.1', port: 0 });
}

async function call(base: string, path: string, init: RequestInit = {}) {
  const response = await fetch(`${base}${path}`, { ...init, headers: { ...AUTH, 'content-type': 'application/json', ...init.headers } });
  return { status: response.status, retryAfter: response.headers.get('retry-after'), body: (await response.json()) as Record<string, unknown> };
}

const decide = (body: unknown) => ({ method: 'POST', body: typeof body === 'string' ? body : JSON.stringify(body) });

describe('the HTTP error envelope', () => {
  it('answers client mistakes with a 4xx in ROAD words, never a framework code', async () => {
    const base = await serve();
    const cases: Array<[string, RequestInit, number, string]> = [
      ['/v1/approvals/T-1/decision', decide('{"action": '), 400, 'invalid_input'], // malformed JSON
      ['/v1/approvals/T-1/decision', decide({ action: 'Approve' }), 400, 'invalid_input'],
      ['/v1/approvals/T-1/decision', decide('"approve"'), 400, 'invalid_input'],
      ['/v1/approvals/T-1/decision', { ...decide('<decision/>'), headers: { 'content-type': 'application/xml' } }, 415, 'unsupported_media_type'],
      ['/v1/approvals?status=MAYBE', {}, 400, 'invalid_input'],
      ['/v1/nowhere', {}, 404, 'not_found'],
    ];
    for (const [path, init, status, error] of cases) {
      const reply = await call(base, path, init);
      expect([path, reply.status, reply.body.error], String(init.body)).toEqual([path, status, error]);
      expect(Object.keys(reply.body).sort()).toEqual(['error', 'message']);
      expect(String(reply.body.message)).not.toMatch(/FST_/);
    }
  });

  it('answers a decision to an API started without Temporal with 501: configuration, not a reason to retry', async () => {
    const base = await serve();
    const reply = await call(base, '/v1/approvals/T-1/decision', decide({ action: 'approve' }));
    expect(reply).toEqual({
      status: 501,
      retryAfter: null,
      body: { error: 'not_configured', message: 'this API was started without Temporal, so it cannot take decisions' },
    });
  });

  it('answers 503 with Retry-After only when PostgreSQL or Temporal is unreachable', async () => {
    const noDatabase = createPool(`postgres://road@127.0.0.1:${await freePort()}/road`);
    try {
      const base = await serve({ pool: noDatabase });
      const reply = await call(base, '/v1/approvals');
      expect([reply.status, reply.retryAfter, reply.body.error]).toEqual([503, '5', 'unavailable']);
    } finally {
      await noDatabase.end();
    }
    const address = `127.0.0.1:${await freePort()}`;
    const config = configSchema.parse({ temporal: { address } });
    const base = await serve({ temporal: () => connectClient(config) });
    const reply = await call(base, '/v1/approvals/T-1/decision', decide({ action: 'approve' }));
    expect([reply.status, reply.retryAfter, reply.body.error]).toEqual([503, '5', 'unavailable']);
  });

  it('answers a bug with 500 and keeps its details in the server log', async () => {
    const base = await serve({
      temporal: async () => {
        throw new TypeError("Cannot read properties of undefined (reading 'connection')");
      },
    });
    const reply = await call(base, '/v1/approvals/T-1/decision', decide({ action: 'approve' }));
    expect(reply.status).toBe(500);
    expect(reply.retryAfter).toBeNull();
    expect(reply.body.error).toBe('internal');
    expect(String(reply.body.message)).not.toMatch(/Cannot read/);
  });
});

describe('the CLI exit status', () => {
  it('exits 1 with one line when the database or Temporal is unreachable, and 2 for invalid input', async () => {
    const closed = await freePort();
    const noDatabase = await road(['pending'], { DATABASE_URL: `postgres://road@127.0.0.1:${closed}/road` });
    expect(noDatabase.code).toBe(1);
    expect(noDatabase.stderr.trim().split('\n')).toHaveLength(1);
    expect(noDatabase.stderr).toMatch(/^road: .*ECONNREFUSED/);

    const noTemporal = await road(['approve', 'T-1', '--reviewer', 'carol@example.com'], {
      DATABASE_URL: db.url,
      TEMPORAL_ADDRESS: `127.0.0.1:${closed}`,
    });
    expect(noTemporal.code).toBe(1);
    expect(noTemporal.stderr).toMatch(/^road: cannot reach Temporal at 127\.0\.0\.1:\d+/);

    // Invalid input is refused before anything is contacted: no server needed.
    const typo = await road(['reject', 'T-1', '--reviewer', 'carol@example.com', '--reason', ''], {
      DATABASE_URL: db.url,
      TEMPORAL_ADDRESS: `127.0.0.1:${closed}`,
    });
    expect(typo.code).toBe(2);
    expect(typo.stderr.trim()).toBe('road: invalid decision: reason must not be empty: a rejection says why the candidate is rejected');
  }, 120_000); // three CLI processes, one waiting out Temporal's 5 s connect timeout, on a loaded machine
});
