/** `road notifications`: the webhook deliveries (road.config.json `notify`), latest first — what failed, and why. */
import type { Command } from 'commander';
import { listDeliveries, type DeliveryStatus } from '../../db/notifications.js';
import { InvalidInput } from '../../domain/errors.js';
import type { Session } from '../cli.js';
import { formatTable, printJson, relativeTime } from '../format.js';

const STATUSES: DeliveryStatus[] = ['pending', 'delivered', 'failed'];

export function registerNotificationCommands(program: Command, session: () => Session): void {
  program
    .command('notifications')
    .description('list webhook deliveries, latest first: event, receiver, status, attempts and the last error')
    .option('--status <status>', `only ${STATUSES.join(', ')}`)
    .option('--limit <n>', 'at most this many (1–1000)', '50')
    .option('--json', 'print the deliveries as JSON (with the body sent)')
    .action(async (opts: { status?: string; limit: string; json?: boolean }) => {
      if (opts.status !== undefined && !(STATUSES as string[]).includes(opts.status)) {
        throw new InvalidInput(`--status must be one of ${STATUSES.join(', ')} (got ${opts.status})`);
      }
      const limit = Number(opts.limit);
      if (!Number.isInteger(limit) || limit < 1 || limit > 1000) throw new InvalidInput(`--limit must be an integer from 1 to 1000 (got ${opts.limit})`);
      const rows = await listDeliveries(session().database(), { status: opts.status as DeliveryStatus | undefined, limit });
      if (opts.json) return printJson(rows.map((row) => ({ ...row, body: JSON.parse(row.body) as unknown })));
      if (!rows.length) return console.log(opts.status ? `No ${opts.status} deliveries.` : 'No webhook deliveries yet (road.config.json "notify" lists the receivers).');
      const now = Date.now();
      console.log(
        formatTable(
          ['DELIVERY', 'EVENT', 'TASK', 'RECEIVER', 'STATUS', 'ATTEMPTS', 'UPDATED', 'LAST ERROR'],
          rows.map((r) => [r.deliveryId, r.event, r.taskId ?? '—', r.target, r.status, String(r.attempts), relativeTime(r.updatedAt, now), r.lastError ?? '']),
          60,
        ),
      );
    });
}
