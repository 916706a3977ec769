/**
 * A real webhook receiver for tests: node:http on 127.0.0.1, recording every request as it arrived (raw body and
 * headers). `answer` decides each status; `stop()` makes the port refuse connections, `start()` opens it again.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { NotificationRequest } from '../../domain/notify.js';
import { freePort } from '../../scripts/provision.js';

export interface ReceivedRequest {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  body: string;
  /** The status it was answered with. */
  status: number;
}

export interface Receiver {
  url: string;
  port: number;
  requests: ReceivedRequest[];
  /** Requests whose X-Road-Event is `event`. */
  of(event: string): ReceivedRequest[];
  /** Waits (real time) until `predicate` holds for the requests so far. */
  waitFor(predicate: (requests: ReceivedRequest[]) => boolean, timeoutMs?: number): Promise<ReceivedRequest[]>;
  start(): Promise<void>;
  stop(): Promise<void>;
}

/** `answer(request, n)`: the status for the n-th request (1-based); 200 by default. Listening unless `down`. */
export async function webhookReceiver(options: { answer?: (request: Omit<ReceivedRequest, 'status'>, n: number) => number; down?: boolean } = {}): Promise<Receiver> {
  const port = await freePort();
  const requests: ReceivedRequest[] = [];
  let server: Server | undefined;
  const receiver: Receiver = {
    url: `http://127.0.0.1:${port}/hooks/road`,
    port,
    requests,
    of: (event) => requests.filter((r) => r.headers['x-road-event'] === event),
    async waitFor(predicate, timeoutMs = 30_000) {
      const deadline = Date.now() + timeoutMs;
      while (!predicate(requests)) {
        if (Date.now() > deadline) throw new Error(`the receiver did not get what the test waited for; it got: ${requests.map((r) => `${r.headers['x-road-event']} → ${r.status}`).join(', ') || 'nothing'}`);
        await new Promise((resolve) => setTimeout(resolve, 25));
      }
      return requests;
    },
    async start() {
      server = createServer((req, res) => {
        const chunks: Buffer[] = [];
        req.on('data', (chunk: Buffer) => chunks.push(chunk));
        req.on('end', () => {
          const request = { method: req.method ?? '', path: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks).toString('utf8') };
          const status = options.answer?.(request, requests.length + 1) ?? 200;
          requests.push({ ...request, status });
          res.writeHead(status, { 'content-type': 'text/plain' }).end(status < 300 ? 'ok' : `refused with ${status}`);
        });
      });
      await new Promise<void>((resolve, reject) => {
        server!.once('error', reject);
        server!.listen(port, '127.0.0.1', () => resolve());
      });
    },
    async stop() {
      const s = server;
      server = undefined;
      if (!s) return;
      s.closeAllConnections();
      await new Promise<void>((resolve) => s.close(() => resolve()));
    },
  };
  if (!options.down) await receiver.start();
  return receiver;
}

/**
 * Verifies a request as a receiver would, independently of ROAD's code: HMAC-SHA256 of `<timestamp>.<raw body>`
 * under `secret`, compared in constant time with X-Road-Signature.
 */
export function signatureIsValid(request: ReceivedRequest, secret: string): boolean {
  const timestamp = String(request.headers['x-road-timestamp'] ?? '');
  const sent = String(request.headers['x-road-signature'] ?? '');
  const expected = 'sha256=' + createHmac('sha256', secret).update(timestamp + '.' + request.body).digest('hex');
  return sent.length === expected.length && timingSafeEqual(Buffer.from(sent), Buffer.from(expected));
}

/** An approval.requested notification for `taskId`, requested at `at` (by default a fixed instant) and due 7 days later. */
export function approvalRequested(taskId: string, at = new Date('2026-11-28T10:00:00.000Z')): NotificationRequest {
  return {
    event: 'approval.requested',
    key: `road-approval-${taskId}/run-1/approval.requested`,
    occurredAt: at.toISOString(),
    workflowId: `road-approval-${taskId}`,
    runId: 'run-1',
    approval: {
      taskId,
      title: `Fix ${taskId}`,
      status: 'PENDING',
      candidateRef: 'abc',
      reviewers: ['alice@example.com'],
      author: 'road-bot',
      requestedAt: at.toISOString(),
      expiresAt: new Date(at.getTime() + 7 * 86_400_000).toISOString(),
      canMerge: false,
    },
  };
}
