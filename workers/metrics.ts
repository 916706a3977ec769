/**
 * The worker's GET /metrics (ROAD_METRICS_PORT): ROAD's metrics (client/metrics.ts) followed by the Temporal SDK's own,
 * which the SDK's exporter serves on a loopback port of its own — one scrape target per worker process.
 */
import { createServer, type Server } from 'node:http';
import { createServer as createNetServer } from 'node:net';
import { metricsAccess, METRICS_CONTENT_TYPE, type RoadMetrics } from '../client/metrics.js';
import { InvalidInput } from '../domain/errors.js';

export interface WorkerMetricsSettings {
  port: number;
  host: string;
  token?: string;
}

/** ROAD_METRICS_PORT (unset: no metrics), ROAD_METRICS_HOST (default 0.0.0.0), ROAD_METRICS_TOKEN. */
export function workerMetricsSettings(env: NodeJS.ProcessEnv = process.env): WorkerMetricsSettings | undefined {
  const text = env.ROAD_METRICS_PORT?.trim();
  if (!text || env.ROAD_METRICS === 'off') return undefined;
  const port = Number(text);
  if (!/^\d+$/.test(text) || port < 1 || port > 65535) throw new InvalidInput(`ROAD_METRICS_PORT must be a port from 1 to 65535 (got ${text})`);
  return { port, host: env.ROAD_METRICS_HOST?.trim() || '0.0.0.0', token: env.ROAD_METRICS_TOKEN || undefined };
}

/** A free port on the loopback interface, for the SDK's exporter (which cannot report the port it chose). */
export function freeLoopbackPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createNetServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as { port: number };
      probe.close(() => resolve(port));
    });
  });
}

export interface WorkerMetricsServer {
  port: number;
  close(): Promise<void>;
}

/** Serves GET /metrics; `sdkMetricsUrl` is the SDK exporter's (http://127.0.0.1:PORT/metrics), if it runs. */
export async function serveWorkerMetrics(settings: WorkerMetricsSettings, metrics: RoadMetrics, sdkMetricsUrl?: string): Promise<WorkerMetricsServer> {
  const mayRead = metricsAccess(settings.token);
  const server: Server = createServer((request, response) => {
    const path = (request.url ?? '/').split('?')[0];
    if (request.method !== 'GET' || path !== '/metrics') {
      response.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ error: 'not_found', message: 'only GET /metrics is served here' }));
      return;
    }
    if (!mayRead(request.headers.authorization)) {
      response.writeHead(401, { 'content-type': 'application/json', 'www-authenticate': 'Bearer realm="road-metrics"' });
      response.end(JSON.stringify({ error: 'unauthorized', message: 'GET /metrics needs "Authorization: Bearer <ROAD_METRICS_TOKEN>"' }));
      return;
    }
    // The SDK's first, so that a failure to read it is already counted in ROAD's text.
    void (async () => {
      const sdk = await sdkMetrics(sdkMetricsUrl, metrics);
      return [await metrics.text(), sdk] as const;
    })().then(
      ([road, sdk]) => response.writeHead(200, { 'content-type': METRICS_CONTENT_TYPE }).end(sdk ? `${road}\n${sdk}` : road),
      (error: unknown) => response.writeHead(500, { 'content-type': 'text/plain' }).end(`metrics failed: ${(error as Error).message}`),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (error: NodeJS.ErrnoException) =>
      reject(error.code === 'EADDRINUSE' ? new Error(`ROAD_METRICS_PORT ${settings.port} is already in use on ${settings.host}`, { cause: error }) : error),
    );
    server.listen(settings.port, settings.host, () => resolve());
  });
  return {
    port: (server.address() as { port: number }).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** The SDK exporter's text, or '' when it does not answer in time (ROAD's own metrics are served all the same). */
async function sdkMetrics(url: string | undefined, metrics: RoadMetrics): Promise<string> {
  if (!url) return '';
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(2000) });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    return (await response.text()).trimEnd() + '\n';
  } catch {
    metrics.countCollectError('temporal_sdk');
    return '';
  }
}
