/** Loads road.config.json (or $ROAD_CONFIG) and applies the environment; `road dev` leaves its addresses in .road/dev.json. */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { configSchema, withEnvironment, type RoadConfig } from '../domain/config.js';
import { describeZodError } from '../domain/validation.js';
import { UsageError } from './errors.js';

export const STATE_DIR = path.resolve(process.env.ROAD_HOME ?? '.road');
export const DEV_STATE_FILE = path.join(STATE_DIR, 'dev.json');

export interface DevState {
  temporalAddress: string;
  namespace: string;
  taskQueue: string;
  databaseUrl: string;
  uiUrl: string;
  pid: number;
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): RoadConfig {
  const file = path.resolve(env.ROAD_CONFIG || 'road.config.json');
  let raw: unknown = {};
  if (existsSync(file)) {
    try {
      raw = JSON.parse(readFileSync(file, 'utf8'));
    } catch (error) {
      throw new UsageError(`${file} is not valid JSON: ${(error as Error).message}`);
    }
  } else if (env.ROAD_CONFIG) {
    throw new UsageError(`ROAD_CONFIG=${env.ROAD_CONFIG} does not exist`);
  }
  const parsed = configSchema.safeParse(raw);
  if (!parsed.success) throw new UsageError(`${path.basename(file)}: ${describeZodError(parsed.error)}`);
  const config = withEnvironment(parsed.data, env);
  // A relative repository.path belongs to the config file, not to whatever directory a worker was started in.
  if (config.repository && !path.isAbsolute(config.repository.path)) {
    config.repository = { ...config.repository, path: path.resolve(path.dirname(file), config.repository.path) };
  }
  // A running `road dev` fills in what neither the file nor the environment says.
  const dev = readDevState();
  if (dev && !env.DATABASE_URL && !parsed.data.database.url) config.database.url = dev.databaseUrl;
  const fileSetsAddress = typeof (raw as { temporal?: { address?: unknown } }).temporal?.address === 'string';
  if (dev && !env.TEMPORAL_ADDRESS && !fileSetsAddress) config.temporal.address = dev.temporalAddress;
  return config;
}

export function readDevState(): DevState | undefined {
  if (!existsSync(DEV_STATE_FILE)) return undefined;
  try {
    const state = JSON.parse(readFileSync(DEV_STATE_FILE, 'utf8')) as DevState;
    process.kill(state.pid, 0); // still running?
    return state;
  } catch {
    return undefined;
  }
}

export function requireDatabaseUrl(config: RoadConfig): string {
  if (!config.database.url) {
    throw new UsageError('no database: set DATABASE_URL, or database.url in road.config.json, or run `road dev` (npm start) first');
  }
  return config.database.url;
}
