/** One place that installs the SDK runtime: log level for both the TypeScript and the native (core) side. */
import { DefaultLogger, Runtime, type LogLevel } from '@temporalio/worker';

let installed = false;

export interface RuntimeOptions {
  level?: LogLevel;
  shutdownSignals: NodeJS.Signals[];
  /**
   * Where the SDK's own Prometheus exporter listens (`127.0.0.1:PORT`): worker task slots, poll and task latencies,
   * sticky cache. Only one runtime per process, so it is set here or never; `road worker` serves it on its /metrics.
   */
  prometheusBindAddress?: string;
}

export function installRuntime(options: RuntimeOptions): void {
  if (installed) return;
  installed = true;
  const level = options.level ?? ((process.env.ROAD_LOG_LEVEL ?? 'WARN').toUpperCase() as LogLevel);
  Runtime.install({
    logger: new DefaultLogger(level),
    shutdownSignals: options.shutdownSignals,
    telemetryOptions: {
      logging: { filter: { core: level, other: level } },
      ...(options.prometheusBindAddress ? { metrics: { prometheus: { bindAddress: options.prometheusBindAddress } } } : {}),
    },
  });
}
