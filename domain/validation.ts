import type { z } from 'zod';

/** A zod error as one line that names each field and its limit: `timeout: must be at most 365 days; title must not be empty`. */
export function describeZodError(error: z.ZodError): string {
  return error.issues
    .map((issue) => {
      const where = issue.path.join('.');
      return where && !issue.message.startsWith(String(issue.path[0])) ? `${where}: ${issue.message}` : issue.message;
    })
    .join('; ');
}
