/**
 * docker-compose.yml, Dockerfile and .dockerignore, checked by parsing (no Docker engine needed): the start order,
 * the published ports, the settings ROAD reads, the search attributes ROAD's workflows set, and every file the
 * build and the mounts refer to. Expectations come from the sources (workflows/definitions.ts, domain/config.ts,
 * the CLI), not from the compose file itself.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { buildProgram } from '../../client/cli.js';
import { metricsEnabled } from '../../client/serve.js';
import { parseApiTokens } from '../../client/server.js';
import { workerMetricsSettings } from '../../workers/metrics.js';
import { configSchema, withEnvironment, type RoadConfig } from '../../domain/config.js';
import { decideUpdate, SEARCH_ATTRIBUTES, TASK_QUEUE_DEFAULT } from '../../workflows/definitions.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const read = (file: string): string => readFileSync(path.join(ROOT, file), 'utf8');

// ---- compose model (only what the checks need) and helpers

interface Service {
  image?: string;
  build?: string | { context?: string; dockerfile?: string };
  command?: string | string[];
  entrypoint?: string | string[];
  environment?: Record<string, string | number | boolean | null> | string[];
  ports?: Array<string | number | { target: number; published?: string | number }>;
  volumes?: Array<string | { type?: string; source?: string; target: string }>;
  depends_on?: string[] | Record<string, { condition?: string }>;
  healthcheck?: { test: string | string[] };
  networks?: string[] | Record<string, unknown>;
  restart?: string;
  labels?: string[] | Record<string, string>;
}
interface Compose {
  services: Record<string, Service>;
  networks?: Record<string, unknown>;
  volumes?: Record<string, unknown>;
}

const compose = parse(read('docker-compose.yml')) as Compose;
const services = compose.services;

/** The only variable compose requires (`${ROAD_API_TOKENS:?…}`); everything else must have a default. */
const TEST_ENV: Record<string, string> = { ROAD_API_TOKENS: 'alice@example.com=0123456789abcdef0123,ingest-0123456789abcdef' };

/** Compose variable substitution: ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error}, ${VAR?error}, $VAR, $$. */
function interpolate(text: string, env: Record<string, string> = TEST_ENV): string {
  return text.replace(/\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)/g, (match, braced?: string, op?: string, arg?: string, bare?: string) => {
    if (match === '$$') return '$';
    const name = (braced ?? bare)!;
    const value = env[name];
    const unset = op?.startsWith(':') ? !value : value === undefined;
    if (!unset) return value!;
    if (op === ':-' || op === '-') return arg ?? '';
    if (op === ':?' || op === '?') throw new Error(`compose requires ${name}: ${arg}`);
    return '';
  });
}

function service(name: string): Service {
  const found = services[name];
  if (!found) throw new Error(`docker-compose.yml has no service ${name}`);
  return found;
}

function environment(name: string): Record<string, string> {
  const env = service(name).environment ?? {};
  const entries: Array<[string, string]> = Array.isArray(env)
    ? env.map((line) => {
        const at = line.indexOf('=');
        return [line.slice(0, at), line.slice(at + 1)];
      })
    : Object.entries(env).map(([key, value]) => [key, value === null ? '' : String(value)]);
  return Object.fromEntries(entries.map(([key, value]) => [key, interpolate(value)]));
}

function dependsOn(name: string): Record<string, string> {
  const deps = service(name).depends_on ?? {};
  if (Array.isArray(deps)) return Object.fromEntries(deps.map((dep) => [dep, 'service_started']));
  return Object.fromEntries(Object.entries(deps).map(([dep, spec]) => [dep, spec.condition ?? 'service_started']));
}

/** Container ports a service publishes on the host. */
function publishedPorts(name: string): number[] {
  return (service(name).ports ?? []).map((port) => {
    if (typeof port === 'object') return Number(port.target);
    const spec = interpolate(String(port)).split('/')[0]!;
    return Number(spec.split(':').at(-1));
  });
}

const asArgs = (value: string | string[] | undefined): string[] => (value === undefined ? [] : Array.isArray(value) ? value : value.split(/\s+/));

/** Entry point plus command, as one text after interpolation (for the shell jobs). */
function script(name: string): string {
  const s = service(name);
  return interpolate([...asArgs(s.entrypoint), ...asArgs(s.command)].join('\n'));
}

const imageName = (name: string): string => interpolate(service(name).image ?? '').split(':')[0]!;
const imageTag = (name: string): string => interpolate(service(name).image ?? '').split(':')[1] ?? 'latest';

const ROAD_SERVICES = ['road-worker', 'road-api'] as const;
const roadConfig = (name: string): RoadConfig => withEnvironment(configSchema.parse({}), environment(name));

// ---- Dockerfile model

interface Instruction {
  op: string;
  args: string;
}

function dockerfile(): Instruction[] {
  const lines = read('Dockerfile').split('\n');
  const instructions: Instruction[] = [];
  let pending = '';
  for (const raw of lines) {
    const line = raw.trim();
    if (!pending && (line === '' || line.startsWith('#'))) continue;
    if (pending && line.startsWith('#')) continue;
    pending += (pending ? ' ' : '') + line.replace(/\\$/, '').trim();
    if (line.endsWith('\\')) continue;
    const match = /^(\w+)\s+(.*)$/.exec(pending);
    if (match) instructions.push({ op: match[1]!.toUpperCase(), args: match[2]! });
    pending = '';
  }
  return instructions;
}

const instructions = dockerfile();
const all = (op: string): string[] => instructions.filter((i) => i.op === op).map((i) => i.args);
const last = (op: string): string | undefined => all(op).at(-1);
const workdir = last('WORKDIR') ?? '/';
const dockerEnv = Object.fromEntries(
  all('ENV').flatMap((args) => [...args.matchAll(/([A-Za-z_][A-Za-z0-9_]*)=("[^"]*"|\S+)/g)].map((m) => [m[1]!, m[2]!.replace(/^"|"$/g, '')])),
);
const dockerignore = read('.dockerignore')
  .split('\n')
  .map((line) => line.trim())
  .filter((line) => line && !line.startsWith('#'));

const packageJson = JSON.parse(read('package.json')) as { dependencies: Record<string, string>; engines?: { node?: string } };

/** Bare package names a source file imports (static, dynamic, side-effect). */
function importedPackages(file: string): string[] {
  const text = read(file);
  const specifiers = [...text.matchAll(/(?:from\s+|import\s*\(\s*|import\s+)['"]([^'"]+)['"]/g)].map((m) => m[1]!);
  return specifiers
    .filter((s) => !s.startsWith('.') && !s.startsWith('node:') && !s.startsWith('/'))
    .map((s) => (s.startsWith('@') ? s.split('/').slice(0, 2).join('/') : s.split('/')[0]!));
}

// ---- the checks

describe('docker-compose.yml: services and start order', () => {
  it('defines the PostgreSQL, Temporal and ROAD services', () => {
    for (const name of ['postgresql', 'temporal-admin-tools', 'temporal', 'temporal-create-namespace', 'temporal-ui', 'road-worker', 'road-api']) {
      expect(services, name).toHaveProperty([name]);
    }
    expect(imageName('postgresql')).toBe('postgres');
    expect(imageName('temporal')).toBe('temporalio/server');
    expect(imageName('temporal-admin-tools')).toBe('temporalio/admin-tools');
    expect(imageName('temporal-create-namespace')).toBe('temporalio/admin-tools');
    expect(imageName('temporal-ui')).toBe('temporalio/ui');
  });

  it('pins every pulled image to a version (no implicit latest)', () => {
    for (const [name, s] of Object.entries(services)) {
      if (!s.image || s.build) continue; // ROAD's own image is built here
      expect(imageTag(name), `${name}: ${s.image}`).toMatch(/^\d[\w.-]*$/);
    }
    // The schema the admin tools install must be the one the server expects.
    expect(imageTag('temporal-admin-tools')).toBe(imageTag('temporal'));
    expect(imageTag('temporal-create-namespace')).toBe(imageTag('temporal'));
  });

  it('starts in order: postgres healthy → schemas set up → temporal healthy → namespace ready → ROAD', () => {
    expect(dependsOn('temporal-admin-tools')).toMatchObject({ postgresql: 'service_healthy' });
    expect(dependsOn('temporal')).toMatchObject({ 'temporal-admin-tools': 'service_completed_successfully' });
    expect(dependsOn('temporal-create-namespace')).toMatchObject({ temporal: 'service_healthy' });
    expect(dependsOn('temporal-ui')).toMatchObject({ temporal: 'service_healthy' });
    for (const name of ROAD_SERVICES) {
      expect(dependsOn(name), name).toMatchObject({ 'temporal-create-namespace': 'service_completed_successfully', postgresql: 'service_healthy' });
    }
  });

  it('gives a healthcheck to every service waited on as healthy, and lets one-shot jobs finish', () => {
    for (const name of Object.keys(services)) {
      for (const [dep, condition] of Object.entries(dependsOn(name))) {
        expect(services, `${name} depends on ${dep}`).toHaveProperty([dep]);
        if (condition === 'service_healthy') expect(service(dep).healthcheck, `${dep} needs a healthcheck`).toBeDefined();
        if (condition === 'service_completed_successfully') expect(['always', 'unless-stopped'], `${dep} must be allowed to exit`).not.toContain(service(dep).restart);
      }
    }
  });

  it('publishes the Temporal frontend (7233), the Temporal UI (8080) and the ROAD API (8787)', () => {
    expect(publishedPorts('temporal')).toContain(7233);
    expect(publishedPorts('temporal-ui')).toContain(8080);
    expect(publishedPorts('road-api')).toContain(8787);
  });

  it('puts every service on a shared, declared network and declares every named volume', () => {
    const declaredNetworks = Object.keys(compose.networks ?? {});
    const declaredVolumes = Object.keys(compose.volumes ?? {});
    const shared = declaredNetworks.filter((network) =>
      Object.values(services).every((s) => (Array.isArray(s.networks) ? s.networks : Object.keys(s.networks ?? {})).includes(network)),
    );
    expect(shared.length, 'one network that every service joins').toBeGreaterThan(0);
    for (const [name, s] of Object.entries(services)) {
      for (const volume of s.volumes ?? []) {
        const source = typeof volume === 'string' ? interpolate(volume).split(':')[0]! : (volume.source ?? '');
        if (source && !source.startsWith('.') && !source.startsWith('/') && !source.startsWith('~')) {
          expect(declaredVolumes, `${name} uses volume ${source}`).toContain(source);
        }
      }
    }
  });
});

describe('docker-compose.yml: Temporal on PostgreSQL', () => {
  it('sets up the databases the server uses, with the postgres12 schemas', () => {
    const server = environment('temporal');
    expect(server.DB).toBe('postgres12');
    expect(server.POSTGRES_SEEDS).toBe('postgresql');
    const setup = script('temporal-admin-tools');
    expect(setup).toContain('temporal-sql-tool');
    expect(setup).toMatch(/--plugin postgres12/);
    const databases = { temporal: server.DBNAME ?? 'temporal', visibility: server.VISIBILITY_DBNAME ?? 'temporal_visibility' };
    for (const [schema, db] of Object.entries(databases)) {
      expect(setup, db).toMatch(new RegExp(`--db ${db} create(-database)?\\b`));
      expect(setup, db).toMatch(new RegExp(`--db ${db} setup-schema -v 0\\.0`));
      expect(setup, db).toMatch(new RegExp(`--db ${db} update-schema -d /etc/temporal/schema/postgresql/v12/${schema}/versioned`));
    }
  });

  it('connects the server and the admin tools with the PostgreSQL service credentials', () => {
    const pg = environment('postgresql');
    const server = environment('temporal');
    expect(server.POSTGRES_USER).toBe(pg.POSTGRES_USER);
    expect(server.POSTGRES_PWD).toBe(pg.POSTGRES_PASSWORD);
    const tools = environment('temporal-admin-tools');
    expect(tools.SQL_USER ?? server.POSTGRES_USER).toBe(pg.POSTGRES_USER);
    expect(tools.SQL_PASSWORD).toBe(pg.POSTGRES_PASSWORD);
  });

  it('mounts a dynamic config file that exists and enables the Updates ROAD uses', () => {
    const file = environment('temporal').DYNAMIC_CONFIG_FILE_PATH;
    expect(file).toBeTruthy();
    const mount = (service('temporal').volumes ?? [])
      .map((v) => (typeof v === 'string' ? interpolate(v).split(':') : [v.source ?? '', v.target]))
      .find(([, target]) => target && path.posix.resolve('/etc/temporal', file!).startsWith(target.replace(/\/?$/, '/')));
    expect(mount, `a volume mounts ${file}`).toBeDefined();
    const [source, target] = mount as [string, string];
    const hostFile = path.join(ROOT, source, path.posix.relative(target, path.posix.resolve('/etc/temporal', file!)));
    expect(existsSync(hostFile), hostFile).toBe(true);
    const config = parse(readFileSync(hostFile, 'utf8')) as Record<string, Array<{ value: unknown }>>;
    for (const [key, values] of Object.entries(config)) {
      expect(Array.isArray(values) && values.every((v) => 'value' in v), `${key} is a list of { value, constraints }`).toBe(true);
    }
    // The approval gate answers reviewers through a workflow Update.
    expect(decideUpdate.type).toBe('update');
    expect(config['frontend.enableUpdateWorkflowExecution']?.[0]?.value).toBe(true);
  });

  it('registers every search attribute of workflows/definitions.ts, with its type, in the namespace ROAD uses', () => {
    const cliType = { KEYWORD: 'Keyword', KEYWORD_LIST: 'KeywordList' } as const;
    const job = script('temporal-create-namespace');
    const jobEnv = environment('temporal-create-namespace');
    expect(jobEnv.TEMPORAL_ADDRESS).toBe(roadConfig('road-worker').temporal.address);
    expect(job).toMatch(/temporal operator namespace create --namespace "\$NS"/);
    expect(job).toMatch(/NS="\$TEMPORAL_NAMESPACE"/);

    const registered = Object.fromEntries(
      [...job.matchAll(/search-attribute create --namespace "\$NS" --name (\w+) --type (\w+)/g)].map((m) => [m[1]!, m[2]!]),
    );
    const expected = Object.fromEntries(Object.entries(SEARCH_ATTRIBUTES).map(([name, type]) => [name, cliType[type]]));
    expect(registered).toEqual(expected);
    // …and waits until the frontend accepts a query over each of them.
    for (const name of Object.keys(SEARCH_ATTRIBUTES)) expect(job).toMatch(new RegExp(`--query "[^"]*\\b${name} = `));

    for (const name of ROAD_SERVICES) expect(roadConfig(name).temporal.namespace, name).toBe(jobEnv.TEMPORAL_NAMESPACE);
    expect(environment('temporal-ui').TEMPORAL_DEFAULT_NAMESPACE).toBe(jobEnv.TEMPORAL_NAMESPACE);
  });
});

describe('docker-compose.yml: the ROAD services', () => {
  it.each(ROAD_SERVICES)('%s reaches Temporal and its own database', (name) => {
    const env = environment(name);
    for (const key of ['DATABASE_URL', 'TEMPORAL_ADDRESS', 'TEMPORAL_NAMESPACE', 'ROAD_TASK_QUEUE']) expect(env, `${name}.${key}`).toHaveProperty([key]);
    const config = roadConfig(name);

    const [host, port] = config.temporal.address.split(':');
    expect(imageName(host!), `TEMPORAL_ADDRESS ${config.temporal.address} names the server service`).toBe('temporalio/server');
    expect(port).toBe('7233');
    expect(config.temporal.taskQueue).toBe(TASK_QUEUE_DEFAULT);

    const url = new URL(config.database.url!);
    const pg = environment('postgresql');
    expect(url.protocol).toMatch(/^postgres(ql)?:$/);
    expect(url.hostname).toBe('postgresql');
    expect(url.port || '5432').toBe('5432');
    expect(decodeURIComponent(url.username)).toBe(pg.POSTGRES_USER);
    expect(decodeURIComponent(url.password)).toBe(pg.POSTGRES_PASSWORD);
    // ROAD has a database of its own on the shared server, not Temporal's.
    expect(url.pathname.slice(1)).toBe(pg.POSTGRES_DB);
    expect(['temporal', 'temporal_visibility', 'postgres']).not.toContain(pg.POSTGRES_DB);
  });

  it('runs both from the image the Dockerfile builds', () => {
    for (const name of ROAD_SERVICES) {
      const build = service(name).build;
      const context = typeof build === 'string' ? build : (build?.context ?? '.');
      const file = typeof build === 'object' && build.dockerfile ? build.dockerfile : 'Dockerfile';
      expect(path.resolve(ROOT, context, file), name).toBe(path.join(ROOT, 'Dockerfile'));
    }
    expect(service('road-api').image).toBe(service('road-worker').image);
  });

  it('requires ROAD_API_TOKENS for the API rather than defaulting it, and passes it through intact', () => {
    expect(environment('road-api').ROAD_API_TOKENS).toBe(TEST_ENV.ROAD_API_TOKENS);
    expect(parseApiTokens(environment('road-api').ROAD_API_TOKENS).map((t) => t.reviewer)).toEqual(['alice@example.com', undefined]);
    expect(() => interpolate(String((service('road-api').environment as Record<string, string>).ROAD_API_TOKENS), {})).toThrow(/ROAD_API_TOKENS/);
  });

  it('points the worker at the bundle the image prebuilds', () => {
    expect(environment('road-worker').ROAD_WORKFLOW_BUNDLE ?? dockerEnv.ROAD_WORKFLOW_BUNDLE).toBe(dockerEnv.ROAD_WORKFLOW_BUNDLE);
  });

  const program = buildProgram(() => {
    throw new Error('no session in this test');
  });
  const cliCommand = (name: string) => program.commands.find((c) => c.name() === name);

  /** `road <command> [--option value]…` of a service, checked against the CLI's own definitions. */
  function checkRoadCommand(name: string): { command: string; options: Record<string, string> } {
    const [command, ...rest] = asArgs(service(name).command);
    const defined = cliCommand(command!);
    expect(defined, `road ${command} is a CLI command`).toBeDefined();
    const known = new Set(defined!.options.map((o) => o.long));
    const options: Record<string, string> = {};
    for (let i = 0; i < rest.length; i++) {
      const flag = rest[i]!;
      expect(known, `road ${command} ${flag}`).toContain(flag);
      if (!defined!.options.find((o) => o.long === flag)!.isBoolean()) options[flag] = rest[++i]!;
    }
    return { command: command!, options };
  }

  it('runs the worker with `road worker`', () => {
    expect(checkRoadCommand('road-worker').command).toBe('worker');
  });

  it('serves the API with `road serve` on the published port, health-checked on /healthz', () => {
    const { command, options } = checkRoadCommand('road-api');
    expect(command).toBe('serve');
    expect(options['--host']).toBe('0.0.0.0');
    const port = Number(options['--port']);
    expect(publishedPorts('road-api')).toContain(port);
    expect(asArgs(service('road-api').healthcheck?.test).join(' ')).toContain(`:${port}/healthz`);
  });
});

describe('Dockerfile and .dockerignore', () => {
  it('builds on Node 24, a version CI tests, and runs bin/road.js as a non-root user', () => {
    expect(instructions[0]?.op).toBe('FROM');
    expect(last('FROM')).toMatch(/^node:24[\w.-]*-slim\b/);
    // engines names the versions .ci/run tests: 24 (the image's) and 20.
    expect(packageJson.engines?.node).toBe('^20.19.0 || ^24.0.0');
    const entrypoint = JSON.parse(last('ENTRYPOINT') ?? '[]') as string[];
    expect(entrypoint[0]).toBe('node');
    expect(existsSync(path.join(ROOT, entrypoint[1]!)), entrypoint[1]).toBe(true);
    expect(entrypoint[1]).toBe('bin/road.js');
    const user = last('USER');
    expect(user).toBeDefined();
    expect(['root', '0']).not.toContain(user!.split(':')[0]);
  });

  it('copies only sources that exist and that .dockerignore does not exclude', () => {
    const copies = all('COPY').filter((args) => !args.startsWith('--from'));
    expect(copies.length).toBeGreaterThan(0);
    for (const args of copies) {
      const parts = args.split(/\s+/).filter((part) => !part.startsWith('--'));
      for (const source of parts.slice(0, -1)) {
        expect(existsSync(path.join(ROOT, source)), `COPY ${source}`).toBe(true);
        expect(dockerignore, `COPY ${source} is excluded by .dockerignore`).not.toContain(source.replace(/\/$/, ''));
      }
    }
    // Every source folder the CLI, the worker and the API import from is in the image.
    for (const folder of ['bin', 'client', 'domain', 'workflows', 'activities', 'db', 'workers']) {
      expect(copies.some((args) => args.split(/\s+/).includes(folder)) || copies.some((args) => /^\.\s/.test(args)), folder).toBe(true);
      expect(statSync(path.join(ROOT, folder)).isDirectory()).toBe(true);
    }
  });

  it('installs runtime dependencies only, which must include what the image runs at build time', () => {
    const install = all('RUN').find((args) => args.includes('npm ci'));
    expect(install).toMatch(/npm ci --omit=dev/);
    for (const file of ['bin/road.js', 'workers/build-bundle.ts']) {
      for (const pkg of importedPackages(file)) expect(packageJson.dependencies, `${file} imports ${pkg}`).toHaveProperty([pkg]);
    }
    expect(packageJson.dependencies).toHaveProperty(['tsx']);
  });

  it('prebuilds the workflow bundle where ROAD_WORKFLOW_BUNDLE points', () => {
    const build = all('RUN').find((args) => args.includes('workers/build-bundle.ts'));
    expect(build, 'a RUN step builds the bundle').toBeDefined();
    expect(existsSync(path.join(ROOT, 'workers/build-bundle.ts'))).toBe(true);
    const output = /workers\/build-bundle\.ts\s+(\S+)/.exec(build!)?.[1];
    expect(output, 'the bundle path is given').toBeDefined();
    expect(path.posix.resolve(workdir, output!)).toBe(dockerEnv.ROAD_WORKFLOW_BUNDLE);
  });

  it('keeps local state, dependencies and secrets out of the build context', () => {
    for (const entry of ['node_modules', '.tools', '.road', 'dist', '.git', '.env']) expect(dockerignore, entry).toContain(entry);
  });
});

describe('docker-compose.yml: metrics for Prometheus', () => {
  const labels = (name: string): Record<string, string> => {
    const l = service(name).labels ?? {};
    return Array.isArray(l) ? Object.fromEntries(l.map((entry) => [entry.slice(0, entry.indexOf('=')), entry.slice(entry.indexOf('=') + 1)])) : l;
  };
  const scrapeLabels = (port: number) => ({ 'prometheus.io/scrape': 'true', 'prometheus.io/port': String(port), 'prometheus.io/path': '/metrics' });

  it('the worker serves /metrics on the port its labels name, on every interface of its container, published on loopback', () => {
    const settings = workerMetricsSettings(environment('road-worker'));
    expect(settings, 'ROAD_METRICS_PORT is set').toBeDefined();
    expect(settings!.host).toBe('0.0.0.0');
    expect(labels('road-worker')).toMatchObject(scrapeLabels(settings!.port));
    expect(publishedPorts('road-worker')).toContain(settings!.port);
    const published = (service('road-worker').ports ?? []).map((p) => interpolate(String(p)));
    expect(published.find((p) => p.endsWith(`:${settings!.port}`))).toMatch(/^127\.0\.0\.1:/);
  });

  it('the API serves /metrics on its own published port', () => {
    const args = asArgs(service('road-api').command);
    const port = Number(args[args.indexOf('--port') + 1]);
    expect(metricsEnabled(environment('road-api'))).toBe(true);
    expect(labels('road-api')).toMatchObject(scrapeLabels(port));
    expect(publishedPorts('road-api')).toContain(port);
  });

  it('leaves /metrics open unless ROAD_METRICS_TOKEN is given, and then passes it to both', () => {
    for (const name of ROAD_SERVICES) {
      expect(environment(name).ROAD_METRICS_TOKEN, name).toBe('');
      const raw = (service(name).environment as Record<string, string>).ROAD_METRICS_TOKEN!;
      expect(interpolate(raw, { ...TEST_ENV, ROAD_METRICS_TOKEN: 'scrape-0123456789abcdef' }), name).toBe('scrape-0123456789abcdef');
    }
  });

  it('points webhook links at the Temporal UI it publishes', () => {
    const ui = new URL(environment('road-worker').ROAD_TEMPORAL_UI_URL!);
    expect(Number(ui.port)).toBe(publishedPorts('temporal-ui')[0]);
    expect('ROAD_WEBHOOK_SECRET' in environment('road-worker')).toBe(true);
  });
});
