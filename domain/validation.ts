import { z } from 'zod';
import { parseDuration } from './duration.js';

/**
 * A zod error as one line that names each field and its limit: `timeout: must be at most 365 days; title must not be
 * empty`. An issue whose message is empty is left out: another check reports that value, in its own words.
 */
export function describeZodError(error: z.ZodError): string {
  return error.issues
    .filter((issue) => issue.message !== '')
    .map((issue) => {
      const where = issue.path.join('.');
      return where && !issue.message.startsWith(String(issue.path[0])) ? `${where}: ${issue.message}` : issue.message;
    })
    .join('; ');
}

/**
 * A duration written as text (`90s`, `30m`, `7d`: domain/duration.ts), with an optional upper bound; every message
 * names the field (`replay.timeout must be at most 24 hours`).
 */
export function durationField(field: string, max?: { ms: number; text: string }) {
  return z.string({ error: `${field} must be a duration such as 90s, 30m, 7d` }).superRefine((text, ctx) => {
    let ms: number;
    try {
      ms = parseDuration(text);
    } catch {
      ctx.addIssue({ code: 'custom', message: `${field} must be a duration such as 90s, 30m, 7d` });
      return;
    }
    if (max && ms > max.ms) ctx.addIssue({ code: 'custom', message: `${field} must be at most ${max.text}` });
  });
}
