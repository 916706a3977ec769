import type { z } from 'zod';

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
