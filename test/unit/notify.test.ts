/** Webhook notifications as pure rules: road.config.json `notify`, the reminder, the body, ids and signatures. */
import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { deliveryIdOf, signatureOf } from '../../activities/notify.js';
import type { FailureMode } from '../../domain/analysis.js';
import { configSchema } from '../../domain/config.js';
import { criticalFailureModes, expiryReminder, isRetryableStatus, NOTIFY_EVENTS, notificationBody, type ApprovalNotice, type NotificationRequest } from '../../domain/notify.js';
import { describeZodError } from '../../domain/validation.js';

const HOUR = 3_600_000;
const SECRET = '0123456789abcdef';

const problem = (notify: unknown): string => {
  const parsed = configSchema.safeParse({ notify });
  expect(parsed.success).toBe(false);
  return describeZodError(parsed.error!);
};

describe('road.config.json notify', () => {
  it('is empty when absent, and fills a receiver\'s name (its URL\'s host) and events (all of them)', () => {
    expect(configSchema.parse({}).notify).toEqual([]);
    const [target] = configSchema.parse({ notify: [{ url: 'https://hooks.example.com/services/T0/B0/XYZ', secretEnv: 'ROAD_WEBHOOK_SECRET' }] }).notify;
    expect(target).toEqual({ name: 'hooks.example.com', url: 'https://hooks.example.com/services/T0/B0/XYZ', secretEnv: 'ROAD_WEBHOOK_SECRET', events: [...NOTIFY_EVENTS] });
    const named = configSchema.parse({ notify: [{ name: 'ops', url: 'http://127.0.0.1:9000/x', secret: SECRET, events: ['approval.decided', 'approval.requested'] }] }).notify[0];
    expect(named).toMatchObject({ name: 'ops', secret: SECRET, events: ['approval.requested', 'approval.decided'] });
  });

  it.each([
    ['not a list', { url: 'https://x.test' }, 'notify must be a list of receivers'],
    ['no URL', [{ secret: SECRET }], 'notify[0].url must be an http:// or https:// URL'],
    ['another scheme', [{ url: 'ftp://x.test/hook', secret: SECRET }], 'notify[0].url must be an http:// or https:// URL'],
    ['a short secret', [{ url: 'https://x.test', secret: '0123456789abcde' }], 'notify[0].secret must be at least 16 characters'],
    ['no secret', [{ url: 'https://x.test' }], 'notify[0] needs exactly one of secret or secretEnv'],
    ['both secrets', [{ url: 'https://x.test', secret: SECRET, secretEnv: 'S' }], 'notify[0] needs exactly one of secret or secretEnv'],
    ['a bad variable name', [{ url: 'https://x.test', secretEnv: '1SECRET' }], 'notify[0].secretEnv must name an environment variable'],
    ['an unknown event', [{ url: 'https://x.test', secret: SECRET, events: ['approval.requested', 'approval.approved'] }], 'notify[0].events: unknown event "approval.approved"'],
    ['no events', [{ url: 'https://x.test', secret: SECRET, events: [] }], 'notify[0].events must be a non-empty list'],
    ['a bad name', [{ name: 'has space', url: 'https://x.test', secret: SECRET }], 'notify[0].name must be 1 to 64 letters'],
    ['an unknown key', [{ url: 'https://x.test', secret: SECRET, retries: 3 }], 'notify[0] has unknown key(s) "retries"'],
    ['the same host twice, unnamed', [{ url: 'https://x.test/a', secret: SECRET }, { url: 'https://x.test/b', secret: SECRET }], 'notify: two receivers are named "x.test"'],
    ['a second entry that is no object', [{ url: 'https://x.test', secret: SECRET }, 'https://y.test'], 'notify[1] must be an object'],
    ['21 receivers', Array.from({ length: 21 }, (_, i) => ({ name: `r${i}`, url: 'https://x.test', secret: SECRET })), 'notify must list at most 20 receivers (got 21)'],
  ])('refuses %s, naming the key', (_case, notify, message) => {
    expect(problem(notify)).toContain(message);
  });
});

describe('the reminder before a gate expires', () => {
  it.each([
    ['7 days', 168, 144, 24],
    ['49 hours', 49, 25, 24],
    ['48 hours', 48, 24, 24],
    ['36 hours', 36, 18, 18],
    ['2 hours', 2, 1, 1],
  ])('%s: after %i h, with %i h left', (_case, timeoutHours, afterHours, leadHours) => {
    expect(expiryReminder(timeoutHours * HOUR)).toEqual({ afterMs: afterHours * HOUR, leadMs: leadHours * HOUR });
  });
});

describe('what a receiver answers', () => {
  it('retries 408, 429 and 5xx; a 3xx or any other 4xx is final', () => {
    expect([408, 429, 500, 502, 503, 504, 599].every(isRetryableStatus)).toBe(true);
    expect([301, 302, 307, 400, 401, 403, 404, 410, 413, 422].some(isRetryableStatus)).toBe(false);
  });
});

describe('delivery ids and signatures', () => {
  it('derives one UUID per event and receiver, the same on every call', () => {
    const id = deliveryIdOf('road-approval-T-1/run-1/approval.requested', 'ops');
    expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(deliveryIdOf('road-approval-T-1/run-1/approval.requested', 'ops')).toBe(id);
    expect(deliveryIdOf('road-approval-T-1/run-1/approval.requested', 'chat')).not.toBe(id);
    expect(deliveryIdOf('road-approval-T-1/run-1/approval.decided', 'ops')).not.toBe(id);
  });

  it('signs <timestamp>.<body> with HMAC-SHA256, as a receiver recomputes it', () => {
    const body = '{"text":"hi"}';
    const expected = createHmac('sha256', SECRET).update(`1764000000.${body}`).digest('hex');
    expect(signatureOf(SECRET, 1764000000, body)).toBe(`sha256=${expected}`);
    expect(signatureOf(SECRET, 1764000001, body)).not.toBe(`sha256=${expected}`);
  });
});

describe('notification bodies', () => {
  const approval: ApprovalNotice = {
    taskId: 'FAILURE-2',
    title: 'Stop the builder crash',
    status: 'PENDING',
    candidateRef: '0123456789abcdef',
    verdict: 'PROMOTE',
    verdicts: { seed: 'PROMOTE', statistical: 'PROMOTE', treatmentSuccessRate: 0.9 },
    reviewers: ['bob@example.com', 'carol@example.com'],
    author: 'road-bot',
    requestedAt: '2026-11-28T10:00:00.000Z',
    expiresAt: '2026-12-05T10:00:00.000Z',
    canMerge: false,
  };
  const request = (event: NotificationRequest['event'], facts: Partial<NotificationRequest> = {}): NotificationRequest => ({
    event,
    key: `road-approval-FAILURE-2/r1/${event}`,
    occurredAt: '2026-11-28T10:00:01.000Z',
    workflowId: 'road-approval-FAILURE-2',
    runId: 'r1',
    approval,
    ...facts,
  });
  const context = { deliveryId: 'd-1', target: 'ops', uiBaseUrl: 'http://localhost:8080/', namespace: 'road prod' };

  it('carries the request, the commands and the link, with a text for Slack', () => {
    const body = notificationBody(request('approval.requested'), context);
    expect(body.links.temporal_ui).toBe('http://localhost:8080/namespaces/road%20prod/workflows/road-approval-FAILURE-2/r1/history');
    expect(body.approval!.commands).toEqual({
      approve: 'road approve FAILURE-2 --reviewer bob@example.com --comment "…"',
      reject: 'road reject FAILURE-2 --reviewer bob@example.com --reason "…"',
    });
    expect(body.text.split('\n')).toEqual([
      'ROAD: approval requested for FAILURE-2 — "Stop the builder crash"',
      'Candidate: 0123456789abcdef',
      'Replay verdict: PROMOTE (seed PROMOTE, statistical PROMOTE, treatment success 90.0 %)',
      'Expires: 2026-12-05T10:00:00.000Z',
      'Reviewers: bob@example.com, carol@example.com',
      'Approve: road approve FAILURE-2 --reviewer bob@example.com --comment "…"',
      'Reject:  road reject FAILURE-2 --reviewer bob@example.com --reason "…"',
      body.links.temporal_ui,
    ]);
  });

  it('says how long an expiring gate has left, and how a decided one ended', () => {
    expect(notificationBody(request('approval.expiring'), context).text).toContain('expires in 1 day, at 2026-12-05T10:00:00.000Z');
    const short = { ...approval, expiresAt: '2026-11-29T22:00:00.000Z' }; // a 36-hour gate: reminded with 18 hours left
    expect(notificationBody(request('approval.expiring', { approval: short }), context).text).toContain('expires in 18 hours');
    const rejected = { ...approval, status: 'REJECTED' as const, decidedBy: 'bob@example.com', decisionNote: 'touches the runner' };
    expect(notificationBody(request('approval.decided', { approval: rejected }), context).text).toMatch(/^ROAD: FAILURE-2 — "Stop the builder crash" was REJECTED by bob@example.com: "touches the runner"$/m);
  });

  it('announces only critical failure modes (5 occurrences or more)', () => {
    const mode = (stopReason: string, count: number): FailureMode => ({
      rank: 1,
      phase_id: 'deploy',
      stop_reason: stopReason,
      count,
      outcomes: { FAILED: count, TIMEOUT: 0, STUCK: 0 },
      share_of_phase: 0.5,
      runs_affected: count - 1,
      first_seen: '2026-11-27T00:00:00.000Z',
      last_seen: '2026-11-28T00:00:00.000Z',
      sample_rationales: [],
      sample_runs: ['r1', 'r2', 'r3', 'r4'],
      top_files: [],
      change: { previous: 1, delta: count - 1, percent: null },
    });
    const critical = criticalFailureModes([mode('db_timeout', 5), mode('lint', 4)]);
    expect(critical).toEqual([{ phaseId: 'deploy', stopReason: 'db_timeout', count: 5, previousCount: 1, runsAffected: 4, lastSeen: '2026-11-28T00:00:00.000Z', sampleRuns: ['r1', 'r2', 'r3'] }]);
    const window = { from: '2026-11-21T00:00:00.000Z', to: '2026-11-28T00:00:00.000Z' };
    const body = notificationBody(request('analysis.critical', { approval: undefined, analysis: { window, failureModes: critical } }), context);
    expect(body.text.split('\n').slice(0, 2)).toEqual([
      'ROAD: 1 new critical failure mode(s) in 2026-11-21T00:00:00.000Z – 2026-11-28T00:00:00.000Z',
      '• deploy / db_timeout: 5 failures in 4 run(s) (previous window: 1)',
    ]);
  });
});
