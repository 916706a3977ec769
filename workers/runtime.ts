/** One place that installs the SDK runtime: log level for both the TypeScript and the native (core) side. */
import { DefaultLogger, Runtime, type LogLevel } from '@temporalio/worker';

let installed = false;

export function installRuntime(options: { level?: LogLevel; shutdownSignals: NodeJS.Signals[] }): void {
  if (installed) return;
  installed = true;
  const level = options.level ?? ((process.env.ROAD_LOG_LEVEL ?? 'WARN').toUpperCase() as LogLevel);
  Runtime.install({
    logger: new DefaultLogger(level),
    shutdownSignals: options.shutdownSignals,
    telemetryOptions: { logging: { filter: { core: level, other: level } } },
  });
}
