/**
 * Webhook notifications as pure rules (README §Running ROAD in production): which events exist, how road.config.json
 * names the receivers, when a gate reminds its reviewers, and what a receiver is sent. The workflows import this
 * file, so it holds no Node built-ins; signing and sending are activities/notify.ts.
 */
import { z } from 'zod';
import { severityOf, type FailureMode } from './analysis.js';
import type { ApprovalRequest, ApprovalState } from './approval.js';
import { formatDuration } from './duration.js';
import { normalizeIdentity } from './identity.js';

export const NOTIFY_EVENTS = ['approval.requested', 'approval.expiring', 'approval.decided', 'analysis.critical'] as const;
export type NotifyEvent = (typeof NOTIFY_EVENTS)[number];

/** The body's `schema`: a field is only ever added within v1. */
export const NOTIFICATION_SCHEMA = 'road.notification/v1';

// ---------------------------------------------------------------- configuration

export const MAX_NOTIFY_TARGETS = 20;
/** A shared secret shorter than this is guessable offline from one signed body. */
export const MIN_SECRET_LENGTH = 16;
const TARGET_NAME = /^[A-Za-z0-9._-]{1,64}$/;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,127}$/;
const TARGET_KEYS = new Set(['name', 'url', 'secret', 'secretEnv', 'events']);

/**
 * One receiver. Its name is what the notifications table, logs and metrics show: never the URL, which for Slack and
 * many chat tools is itself the credential.
 */
export interface NotifyTarget {
  name: string;
  url: string;
  /** The shared secret, given in the file … */
  secret?: string;
  /** … or the name of the environment variable that holds it (read by the worker when it sends). */
  secretEnv?: string;
  events: NotifyEvent[];
}

/**
 * road.config.json `notify`: a list of receivers. Every message names the entry and the key
 * (`notify[1].secret must be at least 16 characters`), which a zod union or a generic path would not.
 */
export function parseNotifyTargets(value: unknown): { ok: true; targets: NotifyTarget[] } | { ok: false; problems: string[] } {
  if (!Array.isArray(value)) return { ok: false, problems: ['notify must be a list of receivers: [{ "url": …, "secretEnv": … }]'] };
  if (value.length > MAX_NOTIFY_TARGETS) return { ok: false, problems: [`notify must list at most ${MAX_NOTIFY_TARGETS} receivers (got ${value.length})`] };
  const problems: string[] = [];
  const targets: NotifyTarget[] = [];
  value.forEach((entry: unknown, index) => {
    const at = `notify[${index}]`;
    if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) {
      problems.push(`${at} must be an object such as { "url": "https://…", "secretEnv": "ROAD_WEBHOOK_SECRET" }`);
      return;
    }
    const fields = entry as Record<string, unknown>;
    const unknownKeys = Object.keys(fields).filter((key) => !TARGET_KEYS.has(key));
    if (unknownKeys.length) problems.push(`${at} has unknown key(s) ${unknownKeys.map((k) => `"${k}"`).join(', ')} (known: ${[...TARGET_KEYS].join(', ')})`);

    const url = parseUrl(fields.url);
    if (!url) problems.push(`${at}.url must be an http:// or https:// URL`);

    let name: string | undefined;
    if (fields.name === undefined) name = url?.host.replace(/[^A-Za-z0-9._:-]/g, '-');
    else if (typeof fields.name === 'string' && TARGET_NAME.test(fields.name)) name = fields.name;
    else problems.push(`${at}.name must be 1 to 64 letters, digits, '.', '_' or '-'`);

    const hasSecret = fields.secret !== undefined;
    const hasSecretEnv = fields.secretEnv !== undefined;
    if (hasSecret === hasSecretEnv) {
      problems.push(`${at} needs exactly one of secret or secretEnv (every delivery is signed with it; prefer secretEnv, which keeps the secret out of the file)`);
    } else if (hasSecret && (typeof fields.secret !== 'string' || fields.secret.length < MIN_SECRET_LENGTH)) {
      problems.push(`${at}.secret must be at least ${MIN_SECRET_LENGTH} characters`);
    } else if (hasSecret && (fields.secret as string).length > 1024) {
      problems.push(`${at}.secret must be at most 1024 characters`);
    } else if (hasSecretEnv && (typeof fields.secretEnv !== 'string' || !ENV_NAME.test(fields.secretEnv))) {
      problems.push(`${at}.secretEnv must name an environment variable (letters, digits and _, not starting with a digit)`);
    }

    let events: NotifyEvent[] = [...NOTIFY_EVENTS];
    if (fields.events !== undefined) {
      const listed = fields.events;
      if (!Array.isArray(listed) || listed.length === 0) {
        problems.push(`${at}.events must be a non-empty list of ${NOTIFY_EVENTS.join(', ')} (leave it out for all of them)`);
      } else {
        const bad = listed.filter((e) => !(NOTIFY_EVENTS as readonly unknown[]).includes(e));
        if (bad.length) problems.push(`${at}.events: unknown event ${bad.map((e) => JSON.stringify(e)).join(', ')} (known: ${NOTIFY_EVENTS.join(', ')})`);
        events = NOTIFY_EVENTS.filter((e) => listed.includes(e));
      }
    }
    if (url && name) {
      targets.push({
        name,
        url: url.toString(),
        ...(hasSecret ? { secret: fields.secret as string } : { secretEnv: fields.secretEnv as string }),
        events,
      });
    }
  });
  const names = targets.map((t) => t.name);
  const twice = names.find((name, i) => names.indexOf(name) !== i);
  if (twice !== undefined) {
    problems.push(`notify: two receivers are named "${twice}" (a name defaults to the URL's host): give each a unique "name"`);
  }
  return problems.length ? { ok: false, problems } : { ok: true, targets };
}

function parseUrl(value: unknown): URL | undefined {
  if (typeof value !== 'string' || value.length > 2048) return undefined;
  try {
    const url = new URL(value);
    return url.protocol === 'http:' || url.protocol === 'https:' ? url : undefined;
  } catch {
    return undefined;
  }
}

/** The zod form for domain/config.ts: absent → no receivers. */
export const notifySchema = z
  .unknown()
  .default([])
  .transform((value, ctx): NotifyTarget[] => {
    const parsed = parseNotifyTargets(value);
    if (parsed.ok) return parsed.targets;
    for (const message of parsed.problems) ctx.addIssue({ code: 'custom', message });
    return z.NEVER;
  });

// ---------------------------------------------------------------- the gate's reminder

const DAY_MS = 86_400_000;

/**
 * When a gate reminds its reviewers that it is about to expire: 24 hours before, or — for a gate of 48 hours or less —
 * halfway, so that a reviewer always has had half the gate's time before being reminded, and the reminder never
 * arrives together with the request. `afterMs` is counted from the start of the wait, `leadMs` is what then remains.
 */
export function expiryReminder(timeoutMs: number): { afterMs: number; leadMs: number } {
  const leadMs = Math.min(DAY_MS, Math.floor(timeoutMs / 2));
  return { afterMs: timeoutMs - leadMs, leadMs };
}

// ---------------------------------------------------------------- what the workflows hand the activity

/** The facts of an approval request a notification carries (from the gate's state; small, it lives in history). */
export interface ApprovalNotice {
  taskId: string;
  title: string;
  status: 'PENDING' | 'APPROVED' | 'REJECTED' | 'EXPIRED';
  candidateRef: string;
  baselineRef?: string;
  verdict?: string;
  /** The replay's verdicts (followupTask puts them in the request's evidence), when there are any. */
  verdicts?: Record<string, unknown>;
  impactSummary?: string;
  /** Who may decide: the allowed reviewers other than the author. */
  reviewers: string[];
  author: string;
  requestedAt: string;
  expiresAt: string;
  decidedAt?: string;
  decidedBy?: string;
  decisionNote?: string;
  canMerge: boolean;
}

/** A failure mode an analysis found critical (DESIGN.md §Tasks: ≥ 5 occurrences). */
export interface CriticalFailureNotice {
  phaseId: string;
  stopReason: string;
  count: number;
  /** Its count in the previous window of the same length. */
  previousCount: number;
  runsAffected: number;
  lastSeen: string;
  sampleRuns: string[];
}

/** The notice of a gate's request as it stands now. */
export function approvalNotice(state: ApprovalState, request: ApprovalRequest): ApprovalNotice {
  const author = normalizeIdentity(state.author);
  const verdicts = request.evidence.verdicts;
  return {
    taskId: state.taskId,
    title: state.title,
    status: state.status,
    candidateRef: state.candidateRef,
    ...(request.baselineRef ? { baselineRef: request.baselineRef } : {}),
    ...(state.verdict ? { verdict: state.verdict } : {}),
    ...(typeof verdicts === 'object' && verdicts !== null && !Array.isArray(verdicts) ? { verdicts: verdicts as Record<string, unknown> } : {}),
    ...(request.impact.summary ? { impactSummary: request.impact.summary } : {}),
    reviewers: state.allowedReviewers.filter((reviewer) => normalizeIdentity(reviewer) !== author),
    author: state.author,
    requestedAt: state.requestedAt,
    expiresAt: state.expiresAt,
    ...(state.decidedAt ? { decidedAt: state.decidedAt } : {}),
    ...(state.decidedBy ? { decidedBy: state.decidedBy } : {}),
    ...(state.decisionNote ? { decisionNote: state.decisionNote } : {}),
    canMerge: state.canMerge,
  };
}

/** Everything a notification child workflow is started with. */
export interface NotificationRequest {
  event: NotifyEvent;
  /**
   * What the notification is about, unique and stable: `<workflow id>/<run id>/<event>`. The delivery id of each
   * receiver is derived from it, so a retry or a replayed workflow never sends another id.
   */
  key: string;
  /** Workflow time of the event (the same on every retry). */
  occurredAt: string;
  /** The workflow that raised it (for the Temporal UI link). */
  workflowId: string;
  runId: string;
  approval?: ApprovalNotice;
  analysis?: { window: { from: string; to: string }; failureModes: CriticalFailureNotice[] };
}

/**
 * The notification child's id: one per event of a workflow run. From the run id alone (unique on its own), so that a
 * recorded history replays under any workflow id, as replay tests and tools replay them.
 */
export const notificationWorkflowId = (runId: string, event: NotifyEvent): string => `road-notify-${runId}-${event}`;

/**
 * The failure modes of a report that are critical (DESIGN.md §Tasks: 5 occurrences or more — `severityOf`, the rule
 * the task ranking uses), in the shape a notification carries.
 */
export function criticalFailureModes(failureModes: FailureMode[]): CriticalFailureNotice[] {
  return failureModes
    .filter((mode) => severityOf('failure_mode', mode) === 'critical')
    .map((mode) => ({
      phaseId: mode.phase_id,
      stopReason: mode.stop_reason,
      count: mode.count,
      previousCount: mode.change.previous,
      runsAffected: mode.runs_affected,
      lastSeen: mode.last_seen,
      sampleRuns: mode.sample_runs.slice(0, 3),
    }));
}

// ---------------------------------------------------------------- the body a receiver gets

export interface DeliveryContext {
  deliveryId: string;
  target: string;
  /** The Temporal Web UI, e.g. http://localhost:8233 (dev) or http://localhost:8080 (compose). */
  uiBaseUrl: string;
  namespace: string;
}

/** The JSON body: Slack's `text` beside ROAD's structured payload (Slack ignores the other fields). */
export interface NotificationBody {
  text: string;
  schema: typeof NOTIFICATION_SCHEMA;
  event: NotifyEvent;
  delivery: string;
  occurred_at: string;
  links: { temporal_ui: string };
  approval?: ApprovalNotice & { commands: { approve: string; reject: string } };
  analysis?: { window: { from: string; to: string }; failure_modes: CriticalFailureNotice[] };
}

export const workflowUiUrl = (uiBaseUrl: string, namespace: string, workflowId: string, runId?: string): string =>
  `${uiBaseUrl.replace(/\/+$/, '')}/namespaces/${encodeURIComponent(namespace)}/workflows/${encodeURIComponent(workflowId)}` +
  (runId ? `/${encodeURIComponent(runId)}/history` : '');

/** The exact commands a reviewer runs (the same as the gate shows in the Temporal UI). */
export function decisionCommands(approval: Pick<ApprovalNotice, 'taskId' | 'reviewers'>): { approve: string; reject: string } {
  const reviewer = approval.reviewers[0] ?? '<you>';
  return {
    approve: `road approve ${approval.taskId} --reviewer ${reviewer} --comment "…"`,
    reject: `road reject ${approval.taskId} --reviewer ${reviewer} --reason "…"`,
  };
}

/**
 * The body for `request` (`failureModes` narrows an analysis to the modes this receiver has not been told of yet).
 * The same request gives the same body: the activity stores it on the first attempt and resends it unchanged.
 */
export function notificationBody(request: NotificationRequest, context: DeliveryContext, failureModes?: CriticalFailureNotice[]): NotificationBody {
  const link = workflowUiUrl(context.uiBaseUrl, context.namespace, request.workflowId, request.runId);
  const base = { schema: NOTIFICATION_SCHEMA, event: request.event, delivery: context.deliveryId, occurred_at: request.occurredAt, links: { temporal_ui: link } } as const;
  if (request.analysis) {
    const modes = failureModes ?? request.analysis.failureModes;
    return { text: criticalText(modes, request.analysis.window, link), ...base, analysis: { window: request.analysis.window, failure_modes: modes } };
  }
  const approval = request.approval!;
  const commands = decisionCommands(approval);
  return { text: approvalText(request.event, approval, commands, link), ...base, approval: { ...approval, commands } };
}

function verdictLine(approval: ApprovalNotice): string | undefined {
  const verdicts = approval.verdicts as { seed?: unknown; statistical?: unknown; treatmentSuccessRate?: unknown } | undefined;
  if (!approval.verdict && !verdicts) return undefined;
  const parts = [
    ...(typeof verdicts?.seed === 'string' ? [`seed ${verdicts.seed}`] : []),
    ...(typeof verdicts?.statistical === 'string' ? [`statistical ${verdicts.statistical}`] : []),
    ...(typeof verdicts?.treatmentSuccessRate === 'number' ? [`treatment success ${(verdicts.treatmentSuccessRate * 100).toFixed(1)} %`] : []),
  ];
  return `Replay verdict: ${approval.verdict ?? 'none'}${parts.length ? ` (${parts.join(', ')})` : ''}`;
}

function approvalText(event: NotifyEvent, approval: ApprovalNotice, commands: { approve: string; reject: string }, link: string): string {
  const subject = `${approval.taskId} — "${approval.title}"`;
  const candidate = `Candidate: ${approval.candidateRef}${approval.impactSummary ? ` · ${approval.impactSummary}` : ''}`;
  const decide = [`Reviewers: ${approval.reviewers.join(', ')}`, `Approve: ${commands.approve}`, `Reject:  ${commands.reject}`];
  const lines: Array<string | undefined> =
    event === 'approval.requested'
      ? [`ROAD: approval requested for ${subject}`, candidate, verdictLine(approval), `Expires: ${approval.expiresAt}`, ...decide]
      : event === 'approval.expiring'
        ? [
            `ROAD: the approval request for ${subject} expires in ${formatDuration(remaining(approval))}, at ${approval.expiresAt}`,
            candidate,
            verdictLine(approval),
            ...decide,
          ]
        : [
            approval.status === 'EXPIRED'
              ? `ROAD: the approval request for ${subject} EXPIRED without a decision`
              : `ROAD: ${subject} was ${approval.status} by ${approval.decidedBy}${approval.decisionNote ? `: "${approval.decisionNote}"` : ''}`,
            approval.status === 'APPROVED' ? `can_merge: ${approval.canMerge}` : undefined,
          ];
  return [...lines.filter((line): line is string => line !== undefined), link].join('\n');
}

/** How long an expiring gate has left, from the facts it carries (the reminder rule, not the wall clock). */
function remaining(approval: ApprovalNotice): number {
  return expiryReminder(Date.parse(approval.expiresAt) - Date.parse(approval.requestedAt)).leadMs;
}

function criticalText(modes: CriticalFailureNotice[], window: { from: string; to: string }, link: string): string {
  const lines = modes.map((m) => {
    return `• ${m.phaseId} / ${m.stopReason}: ${m.count} failures in ${m.runsAffected} run(s) (previous window: ${m.previousCount})`;
  });
  return [`ROAD: ${modes.length} new critical failure mode(s) in ${window.from} – ${window.to}`, ...lines, link].join('\n');
}

// ---------------------------------------------------------------- how a receiver's answer is judged

/**
 * Whether a receiver's HTTP status is worth another attempt: 408 (timeout), 429 (slow down) and every 5xx are;
 * any other 4xx — a wrong URL, a refused signature — is permanent, and 3xx is refused (configure the final URL:
 * following a redirect would resend a signed body to an address nobody configured).
 */
export function isRetryableStatus(status: number): boolean {
  return status === 408 || status === 429 || status >= 500;
}
