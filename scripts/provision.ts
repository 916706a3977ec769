/**
 * Builds the two Temporal binaries ROAD needs from package registries only (this project runs offline):
 *  - the Temporal CLI (dev server + Web UI) with `go install`,
 *  - the Java time-skipping test server from Maven Central, behind a wrapper script with a class-data-sharing
 *    archive so the JVM listens well inside the SDK's 5 s connect window.
 * Idempotent: a stamp file per binary records what was built; a second run only checks.
 */
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const TEMPORAL_CLI_VERSION = 'v1.5.1';
export const PROJECT_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const TEST_SERVER_POM = path.join(PROJECT_ROOT, 'tools', 'test-server', 'pom.xml');

/** The ignored folder the binaries are built into (ROAD_TOOLS_DIR moves it, e.g. for tests of provisioning). */
function toolsDir(env: NodeJS.ProcessEnv): string {
  return path.resolve(env.ROAD_TOOLS_DIR || path.join(PROJECT_ROOT, '.tools'));
}
const testServerDir = (env: NodeJS.ProcessEnv) => path.join(toolsDir(env), 'test-server');

export interface ToolPaths {
  temporalCli: string;
  testServer: string;
}

/** Where the binaries are: the override variables win, else the project's `.tools/`. */
export function toolPaths(env: NodeJS.ProcessEnv = process.env): ToolPaths {
  return {
    temporalCli: env.TEMPORAL_CLI_PATH || path.join(toolsDir(env), 'bin', 'temporal'),
    testServer: env.TEMPORAL_TEST_SERVER_PATH || path.join(testServerDir(env), 'temporal-test-server'),
  };
}

export class ProvisionError extends Error {
  override name = 'ProvisionError';
}

export interface ProvisionReporter {
  step(label: string): void;
  done(label: string, detail: string): void;
}

export interface ProvisionResult {
  temporalCli: { path: string; built: boolean; ms: number };
  testServer: { path: string; built: boolean; ms: number; startMs?: number };
}

/** True when both binaries are present and match what this checkout asks for. */
export function isProvisioned(env: NodeJS.ProcessEnv = process.env): boolean {
  const paths = toolPaths(env);
  const cliReady = env.TEMPORAL_CLI_PATH ? existsSync(paths.temporalCli) : cliStampMatches(env);
  const serverReady = env.TEMPORAL_TEST_SERVER_PATH ? existsSync(paths.testServer) : testServerStampMatches(env);
  return cliReady && serverReady;
}

/** Every build tool that this run needs and PATH lacks, reported at once so one message says all that is missing. */
function requireBuildTools(env: NodeJS.ProcessEnv): void {
  const needed: Array<[command: string, why: string]> = [];
  if (!env.TEMPORAL_CLI_PATH && !cliStampMatches(env)) needed.push(['go', 'builds the Temporal CLI']);
  if (!env.TEMPORAL_TEST_SERVER_PATH && !testServerStampMatches(env)) {
    needed.push(['java', 'runs the time-skipping test server'], ['mvn', 'resolves the test server from Maven Central']);
  }
  const missing = needed.filter(([command]) => spawnSync(command, ['-version'], { stdio: 'ignore', env }).error);
  if (!missing.length) return;
  throw new ProvisionError(
    `cannot provision: ${missing.map(([c]) => `\`${c}\``).join(', ')} not on PATH (${missing.map(([c, why]) => `${c} ${why}`).join('; ')}). ` +
      'Install what is missing, or point TEMPORAL_CLI_PATH at an existing `temporal` binary and TEMPORAL_TEST_SERVER_PATH at an existing test-server executable.',
  );
}

export async function provision(reporter: ProvisionReporter, env: NodeJS.ProcessEnv = process.env): Promise<ProvisionResult> {
  const paths = toolPaths(env);
  requireBuildTools(env);
  const cli = await timed(() => provisionTemporalCli(paths.temporalCli, reporter, env));
  const server = await timed(() => provisionTestServer(paths.testServer, reporter, env));
  return {
    temporalCli: { path: paths.temporalCli, built: cli.value, ms: cli.ms },
    testServer: { path: paths.testServer, built: server.value.built, ms: server.ms, startMs: server.value.startMs },
  };
}

// ---------------------------------------------------------------- Temporal CLI

function cliStampPath(env: NodeJS.ProcessEnv): string {
  return path.join(toolsDir(env), 'bin', 'temporal.version');
}

function cliStampMatches(env: NodeJS.ProcessEnv): boolean {
  const binary = path.join(toolsDir(env), 'bin', 'temporal');
  return existsSync(binary) && readIfExists(cliStampPath(env)) === TEMPORAL_CLI_VERSION;
}

async function provisionTemporalCli(binary: string, reporter: ProvisionReporter, env: NodeJS.ProcessEnv): Promise<boolean> {
  const label = `Temporal CLI ${TEMPORAL_CLI_VERSION}`;
  if (env.TEMPORAL_CLI_PATH) {
    requireExecutable(binary, 'TEMPORAL_CLI_PATH');
    reporter.done(label, `using TEMPORAL_CLI_PATH=${binary}`);
    return false;
  }
  if (cliStampMatches(env)) {
    reporter.done(label, `already built at ${rel(binary)}`);
    return false;
  }
  reporter.step(`${label}: go install (first time: downloads modules and compiles, a few minutes)`);
  const bin = path.dirname(binary);
  mkdirSync(bin, { recursive: true });
  await run('go', ['install', `github.com/temporalio/cli/cmd/temporal@${TEMPORAL_CLI_VERSION}`], {
    ...env,
    GOBIN: bin,
    GOFLAGS: [env.GOFLAGS, '-buildvcs=false'].filter(Boolean).join(' '),
  });
  writeFileSync(cliStampPath(env), TEMPORAL_CLI_VERSION);
  reporter.done(label, `built ${rel(binary)}`);
  return true;
}

// ---------------------------------------------------------------- test server

function testServerStamp(): string {
  // The pom pins the version; its hash decides whether the classpath must be resolved again.
  return createHash('sha256').update(readFileSync(TEST_SERVER_POM)).digest('hex').slice(0, 16);
}

function testServerStampMatches(env: NodeJS.ProcessEnv): boolean {
  const wrapper = path.join(testServerDir(env), 'temporal-test-server');
  return existsSync(wrapper) && readIfExists(path.join(testServerDir(env), 'stamp')) === testServerStamp();
}

async function provisionTestServer(
  wrapper: string,
  reporter: ProvisionReporter,
  env: NodeJS.ProcessEnv,
): Promise<{ built: boolean; startMs?: number }> {
  const label = 'Temporal time-skipping test server';
  if (env.TEMPORAL_TEST_SERVER_PATH) {
    requireExecutable(wrapper, 'TEMPORAL_TEST_SERVER_PATH');
    reporter.done(label, `using TEMPORAL_TEST_SERVER_PATH=${wrapper}`);
    return { built: false };
  }
  if (testServerStampMatches(env)) {
    reporter.done(label, `already built at ${rel(wrapper)}`);
    return { built: false };
  }
  const dir = testServerDir(env);
  const lib = path.join(dir, 'lib');
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(lib, { recursive: true });

  reporter.step(`${label}: resolving the classpath with Maven`);
  await run('mvn', ['-q', '-B', '-f', TEST_SERVER_POM, 'dependency:copy-dependencies', '-DincludeScope=runtime', `-DoutputDirectory=${lib}`], env);

  // An explicit, sorted classpath: the CDS archive is only valid for the exact classpath it was dumped with.
  const classpath = readdirSync(lib).filter((f) => f.endsWith('.jar')).sort().map((f) => path.join(lib, f)).join(':');
  const archive = path.join(dir, 'test-server.jsa');
  const jvmFlags = ['-XX:TieredStopAtLevel=1', '-XX:+UseSerialGC', '-Xss512k', '-Xlog:disable', '-Xlog:all=off'];
  writeFileSync(
    wrapper,
    [
      '#!/bin/sh',
      '# Generated by `road provision`: Temporal time-skipping test server. Usage: temporal-test-server <port>',
      `exec java -Xshare:auto -XX:SharedArchiveFile='${archive}' ${jvmFlags.join(' ')} -cp '${classpath}' io.temporal.testserver.TestServer "$@"`,
      '',
    ].join('\n'),
  );
  chmodSync(wrapper, 0o755);

  reporter.step(`${label}: training run for the class-data-sharing archive`);
  await trainClassDataArchive(['-XX:ArchiveClassesAtExit=' + archive, ...jvmFlags, '-cp', classpath, 'io.temporal.testserver.TestServer']);
  const startMs = await measureTestServerStart(wrapper);
  writeFileSync(path.join(dir, 'stamp'), testServerStamp());
  reporter.done(label, `built ${rel(wrapper)} (JVM listens after ${startMs} ms)`);
  return { built: true, startMs };
}

/** Runs the server once until it listens, then stops it so the JVM dumps the classes it loaded. */
async function trainClassDataArchive(javaArgs: string[]): Promise<void> {
  const port = await freePort();
  const child = spawn('java', [...javaArgs, String(port)], { stdio: 'ignore' });
  try {
    await waitForPort(port, 60_000);
  } finally {
    child.kill('SIGTERM');
    await new Promise((resolve) => child.once('exit', resolve));
  }
}

/** Milliseconds from spawning the wrapper until its port accepts connections. */
export async function measureTestServerStart(wrapper: string): Promise<number> {
  const port = await freePort();
  const started = performance.now();
  const child = spawn(wrapper, [String(port)], { stdio: 'ignore' });
  try {
    await waitForPort(port, 30_000);
    return Math.round(performance.now() - started);
  } finally {
    child.kill('SIGTERM');
    await new Promise((resolve) => child.once('exit', resolve));
  }
}

// ---------------------------------------------------------------- helpers

/**
 * A port that is free now, for a server that will listen on it shortly. Chosen at random below the kernel's
 * ephemeral range (Linux: /proc/sys/net/ipv4/ip_local_port_range), never by listen(0): a port the kernel hands out
 * — to listen(0), and as the local end of every outgoing connection — can be taken by anything between this check and
 * its use, and with many processes connecting meanwhile (the test suite) it was: a dev server found its UI port taken.
 */
export async function freePort(): Promise<number> {
  let ephemeralFrom = 32_768;
  try {
    ephemeralFrom = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]) || ephemeralFrom;
  } catch {
    // not Linux: 32768 is below the BSD and Windows ranges too
  }
  const from = 10_000;
  for (let attempt = 0; attempt < 100 && ephemeralFrom > from + 1000; attempt++) {
    const port = from + Math.floor(Math.random() * (ephemeralFrom - from));
    if (await canListen(port)) return port;
  }
  return listen(0); // a machine whose ephemeral range starts low: the kernel's choice
}

/** Whether a server could listen on `port` (127.0.0.1) now. */
const canListen = (port: number) => listen(port).then(() => true, () => false);

/** Listens on `port` (0: any) of 127.0.0.1, closes, and returns the port. */
function listen(port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => {
      const { port: bound } = server.address() as net.AddressInfo;
      server.close(() => resolve(bound));
    });
  });
}

export async function waitForPort(port: number, timeoutMs: number, host = '127.0.0.1'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const open = await new Promise<boolean>((resolve) => {
      const socket = net.connect({ port, host });
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (open) return;
    if (Date.now() > deadline) throw new ProvisionError(`nothing listened on ${host}:${port} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

function requireExecutable(file: string, variable: string): void {
  if (!existsSync(file)) throw new ProvisionError(`${variable}=${file} does not exist`);
}

function run(command: string, args: string[], env: NodeJS.ProcessEnv): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    const keep = (chunk: Buffer) => {
      output = (output + chunk.toString()).slice(-4000);
    };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    child.once('error', reject);
    child.once('exit', (code) =>
      code === 0 ? resolve() : reject(new ProvisionError(`\`${command} ${args.join(' ')}\` failed (exit ${code}):\n${output.trim()}`)),
    );
  });
}

async function timed<T>(fn: () => Promise<T>): Promise<{ value: T; ms: number }> {
  const started = performance.now();
  const value = await fn();
  return { value, ms: Math.round(performance.now() - started) };
}

function readIfExists(file: string): string | undefined {
  return existsSync(file) ? readFileSync(file, 'utf8').trim() : undefined;
}

function rel(file: string): string {
  return path.relative(process.cwd(), file) || file;
}
