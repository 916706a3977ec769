/**
 * The README's webhook section, as written (found by its `<!-- snippet: … -->` comments): the `notify` example is a
 * valid configuration, the payload example is exactly what ROAD sends for those facts, and the Python receiver —
 * run as written with python3 — accepts deliveries made by ROAD's own notify activity and refuses forged, replayed
 * or stale ones.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createNotifyActivities } from '../../activities/notify.js';
import { configSchema } from '../../domain/config.js';
import { notificationBody, type ApprovalNotice, type NotificationBody, type NotificationRequest } from '../../domain/notify.js';
import { describeZodError } from '../../domain/validation.js';
import { freePort, PROJECT_ROOT, waitForPort } from '../../scripts/provision.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import { approvalRequested } from '../helpers/receiver.js';

const SECRET = 'readme-receiver-secret-0123456789';

function snippet(name: string): string {
  const readme = readFileSync(path.join(PROJECT_ROOT, 'README.md'), 'utf8');
  const found = new RegExp(`<!-- snippet: ${name}\\b[^>]*-->\\n\`\`\`\\w*\\n([\\s\\S]*?)\`\`\`\\n`).exec(readme);
  if (!found) throw new Error(`README.md has no fenced block after <!-- snippet: ${name} -->`);
  return found[1]!;
}

describe("the README's webhook examples", () => {
  it('the notify example is a valid road.config.json', () => {
    const parsed = configSchema.safeParse(JSON.parse(snippet('notify-config')));
    expect(parsed.success, parsed.success ? '' : describeZodError(parsed.error)).toBe(true);
    expect(parsed.data!.notify.map((t) => [t.name, t.events.length])).toEqual([
      ['reviewers', 3],
      ['oncall', 4],
    ]);
  });

  it('the payload example is exactly the body ROAD sends for its facts', () => {
    const example = JSON.parse(snippet('webhook-payload')) as NotificationBody;
    const [, workflowId, runId] = /\/workflows\/([^/]+)\/([^/]+)\/history$/.exec(example.links.temporal_ui)!;
    const { commands: _commands, ...approval } = example.approval!;
    const request: NotificationRequest = { event: 'approval.requested', key: 'k', occurredAt: example.occurred_at, workflowId: workflowId!, runId: runId!, approval: approval as ApprovalNotice };
    expect(notificationBody(request, { deliveryId: example.delivery, target: 'reviewers', uiBaseUrl: 'http://localhost:8080', namespace: 'default' })).toEqual(example);
  });
});

describe("the README's webhook receiver (Python), run as written", () => {
  let db: TestDatabase;
  let receiver: ChildProcess;
  let url: string;
  let output = '';

  beforeAll(async () => {
    db = await createTestDatabase();
    const dir = mkdtempSync(path.join(os.tmpdir(), 'road-receiver-'));
    writeFileSync(path.join(dir, 'receiver.py'), snippet('webhook-receiver'));
    const port = await freePort();
    receiver = spawn('python3', ['receiver.py'], { cwd: dir, env: { ...process.env, ROAD_WEBHOOK_SECRET: SECRET, PORT: String(port) }, stdio: ['ignore', 'pipe', 'pipe'] });
    receiver.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    receiver.stderr!.on('data', () => undefined); // http.server logs each request there
    await waitForPort(port, 15_000);
    url = `http://127.0.0.1:${port}/road`;
  }, 60_000);

  afterAll(async () => {
    if (receiver && receiver.exitCode === null) {
      const exited = new Promise((resolve) => receiver.once('exit', resolve));
      receiver.kill('SIGTERM');
      await exited;
    }
    await db?.drop();
  });

  async function until(predicate: () => boolean): Promise<void> {
    const deadline = Date.now() + 10_000;
    while (!predicate()) {
      if (Date.now() > deadline) throw new Error(`the receiver printed: ${output}`);
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
  }

  it("accepts ROAD's signed deliveries (secret from secretEnv) and handles each delivery id once", async () => {
    const config = configSchema.parse({ notify: [{ name: 'python', url, secretEnv: 'ROAD_WEBHOOK_SECRET' }] });
    const { notify } = createNotifyActivities({ pool: db.pool, config, env: { ROAD_WEBHOOK_SECRET: SECRET } });
    expect(await notify(approvalRequested('README-1', new Date()))).toMatchObject({ delivered: ['python'], failed: [] });
    await until(() => output.includes('approval.requested README-1'));
    const [line] = output.trim().split('\n');
    const deliveryId = line!.split(' ')[2]!;

    // The same delivery again (as a retry would send it, freshly signed): 204, but not handled twice.
    const { rows } = await db.pool.query<{ body: string }>('SELECT body::text AS body FROM notifications WHERE delivery_id = $1', [deliveryId]);
    const body = rows[0]!.body;
    expect((await post(body, deliveryId, sign(body))).status).toBe(204);
    expect(output.trim().split('\n')).toHaveLength(1);
  });

  it('refuses a forged body, another secret, and a stale timestamp with 401', async () => {
    const body = JSON.stringify({ event: 'approval.requested', approval: { taskId: 'FORGED-1' } });
    const valid = sign(body);
    expect((await post(body.replace('FORGED-1', 'FORGED-2'), 'd-1', valid)).status).toBe(401);
    expect((await post(body, 'd-2', sign(body, 'another-secret-0123456789'))).status).toBe(401);
    expect((await post(body, 'd-3', sign(body, SECRET, Math.floor(Date.now() / 1000) - 3600))).status).toBe(401);
    expect((await post(body, 'd-4', { timestamp: 'soon', signature: valid.signature })).status).toBe(401);
    // …while the same body, correctly signed now, is taken.
    expect((await post(body, 'd-5', sign(body))).status).toBe(204);
    await until(() => output.includes('approval.requested FORGED-1 d-5'));
    expect(output).not.toContain('FORGED-2');
  });

  function sign(body: string, secret = SECRET, timestamp = Math.floor(Date.now() / 1000)): { timestamp: string; signature: string } {
    return { timestamp: String(timestamp), signature: `sha256=${createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex')}` };
  }

  function post(body: string, delivery: string, signed: { timestamp: string; signature: string }): Promise<Response> {
    return fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-road-delivery': delivery, 'x-road-timestamp': signed.timestamp, 'x-road-signature': signed.signature },
      body,
    });
  }
});
