#!/usr/bin/env node
/**
 * `road`: the command line of ROAD. Exit status: 0 success, 2 bad input — including an unknown id, a conflict or a
 * refusal — with one line naming the problem, 1 any other failure (client/errors.ts).
 */
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import type { Client } from '@temporalio/client';
import ora from 'ora';
import { listApprovals } from '../db/approvals.js';
import { createPool, type Pool } from '../db/pool.js';
import { decisionSummary, type ApprovalState } from '../domain/approval.js';
import type { RoadConfig } from '../domain/config.js';
import { isProvisioned, provision, type ProvisionReporter } from '../scripts/provision.js';
import { startApprovalGate, submitDecision } from './approvals.js';
import { loadConfig, readDevState, requireDatabaseUrl } from './config.js';
import { classifyError, exitCodeOf, UsageError } from './errors.js';
import { formatTable, printJson, relativeTime } from './format.js';
import { registerLoopCommands } from './commands/loop.js';
import { registerNotificationCommands } from './commands/notifications.js';
import { registerReplayCommands } from './commands/replay.js';
import { registerRuleCommands } from './commands/rules.js';
import { registerTaskCommands } from './commands/tasks.js';
import { connectClient, uiWorkflowUrl } from './temporal.js';

/** Resources a command opens lazily and the CLI closes on exit. */
export class Session {
  private client?: Client;
  private pool?: Pool;
  readonly config: RoadConfig;
  constructor() {
    this.config = loadConfig();
  }
  async temporal(): Promise<Client> {
    return (this.client ??= await connectClient(this.config));
  }
  database = (): Pool => (this.pool ??= createPool(requireDatabaseUrl(this.config), 4));
  async close(): Promise<void> {
    await Promise.allSettled([this.client?.connection.close(), this.pool?.end()]);
  }
}

/**
 * A spinner on stderr (stdout stays clean for --json), drawn only on a real terminal: a pseudo-terminal without a
 * width made ora redraw forever. stdin is left alone.
 */
const drawable = () => Boolean(process.stderr.isTTY) && (process.stderr.columns ?? 0) > 0;
function spinnerOn(text: string) {
  return ora({ text, stream: process.stderr, discardStdin: false, isEnabled: drawable() });
}

function spinnerReporter(): ProvisionReporter {
  let spinner: ReturnType<typeof ora> | undefined;
  return {
    step(label) {
      spinner?.stop();
      spinner = spinnerOn(label).start();
    },
    done(label, detail) {
      if (spinner) spinner.succeed(`${label}: ${detail}`);
      else spinnerOn('').succeed(`${label}: ${detail}`);
      spinner = undefined;
    },
  };
}

export async function ensureProvisioned(): Promise<void> {
  if (!isProvisioned()) await provision(spinnerReporter());
}


export function buildProgram(session: () => Session): Command {
  const program = new Command('road')
    .description('ROAD — the self-improvement loop of an autonomous coding agent, on Temporal and PostgreSQL')
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();

  program
    .command('provision')
    .description('build the Temporal CLI (dev server) and the time-skipping test server from package registries; idempotent')
    .option('--json', 'print what was built and how long it took as JSON')
    .action(async (opts: { json?: boolean }) => {
      const result = await provision(spinnerReporter());
      if (opts.json) printJson(result);
    });

  program
    .command('dev')
    .description('run PostgreSQL, the Temporal dev server (Web UI on :8233) and the ROAD worker as one process tree; on a fresh clone, the demo')
    .option('--no-demo', 'no demo telemetry, repository or loop (there is none anyway with DATABASE_URL, or with your own repository/executor/replay)')
    .action(async (opts: { demo: boolean }) => {
      const { runDev } = await import('./dev.js');
      await ensureProvisioned();
      await runDev(session().config, { demo: opts.demo });
    });

  program
    .command('worker')
    .description('run the ROAD worker against TEMPORAL_ADDRESS and DATABASE_URL (workflows, activities and replay runs)')
    .option('--replay-only', 'poll only the replay task queue (replay.taskQueue): add replay capacity on another machine')
    .action(async (opts: { replayOnly?: boolean }) => {
      const { runWorker } = await import('./run-worker.js');
      await runWorker(session().config, { replayOnly: opts.replayOnly });
    });

  program
    .command('serve')
    .description('run the HTTP API: POST /v1/events, GET /v1/approvals, POST /v1/approvals/:taskId/decision, GET /healthz')
    .option('--host <host>', 'interface to listen on', process.env.ROAD_API_HOST ?? '127.0.0.1')
    .option('--port <port>', 'port to listen on', process.env.ROAD_API_PORT ?? '8787')
    .action(async (opts: { host: string; port: string }) => {
      const { runServer } = await import('./serve.js');
      const port = Number(opts.port);
      if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UsageError(`--port must be an integer from 0 to 65535 (got ${opts.port})`);
      const s = session();
      await runServer({ config: s.config, host: opts.host, port, pool: s.database(), temporal: () => s.temporal() });
    });

  program
    .command('record')
    .description('record one phase outcome (for scripts; agents use the library or POST /v1/events)')
    .requiredOption('--run <id>', 'run_id')
    .requiredOption('--phase <id>', 'phase_id')
    .requiredOption('--outcome <outcome>', 'SUCCESS, FAILED, TIMEOUT or STUCK')
    .option('--stop-reason <text>', 'why the attempt stopped (< 256 bytes)')
    .option('--attempt <n>', 'attempt number within the run (default 1)', integer)
    .option('--tokens <n>', 'tokens_used', integer)
    .option('--prompt-tokens <n>', 'prompt_tokens', integer)
    .option('--completion-tokens <n>', 'completion_tokens', integer)
    .option('--duration-ms <n>', 'duration_ms', integer)
    .option('--event-id <id>', 'a stable id (default: derived from run, phase and attempt)')
    .option('--phase-type <type>', 'phase_type')
    .option('--model <name>', 'model')
    .option('--rationale <text>', 'decision_rationale (< 10 KiB)')
    .option('--files <paths>', 'comma-separated repo-relative paths the attempt touched', list)
    .option('--tests-failed <ids>', 'comma-separated ids of tests that failed', list)
    .option('--commit <sha>', 'commit_sha')
    .option('--occurred-at <iso>', 'when the attempt ended, ISO-8601 with offset (default: now)')
    .option('--metadata <json>', 'a JSON object (≤ 16 KiB)')
    .option('--json', 'print the result as JSON')
    .action(async (opts: RecordOptions) => {
      const { storeEvents } = await import('../db/events.js');
      const [result] = await storeEvents(session().database(), [eventFromOptions(opts)]);
      if (opts.json) printJson(result);
      else if (result!.status === 'accepted' || result!.status === 'duplicate') console.log(`${result!.status}: ${result!.event_id}`);
      if (result!.status === 'invalid' || result!.status === 'conflict') throw new UsageError(`${result!.status}: ${result!.message}`);
    });

  program
    .command('import <file>')
    .description('import a JSONL file of phase outcomes through the bulk COPY path; resumable (run it again after an interruption)')
    .option('--rejects <file>', 'where invalid and conflicting lines are written (default: FILE.rejects.jsonl)')
    .option('--chunk-size <n>', 'events per committed chunk', integer, 20_000)
    .option('--json', 'print the summary as JSON')
    .action(async (file: string, opts: { rejects?: string; chunkSize: number; json?: boolean }) => {
      const { importFile } = await import('./import.js');
      if (opts.chunkSize < 1 || opts.chunkSize > 1_000_000) throw new UsageError('--chunk-size must be from 1 to 1000000');
      const abort = new AbortController();
      const onSignal = () => abort.abort();
      process.once('SIGINT', onSignal);
      try {
        const report = await importFile(session().database(), file, {
          rejectsPath: opts.rejects ?? file.replace(/(\.jsonl?|\.ndjson)?$/, '.rejects.jsonl'),
          chunkSize: opts.chunkSize,
          progress: !opts.json && process.stderr.isTTY,
          signal: abort.signal,
        });
        if (opts.json) printJson(report);
        else {
          console.log(
            formatTable(
              ['ACCEPTED', 'DUPLICATE', 'CONFLICT', 'INVALID', 'LINES', 'SECONDS'],
              [[report.accepted, report.duplicate, report.conflict, report.invalid, report.lines, report.seconds].map((n) => n.toLocaleString('en-US'))],
            ),
          );
          if (report.rejectsFile) console.log(`Rejected lines (line number + reason): ${report.rejectsFile}`);
        }
        if (report.interrupted) throw new Error(`interrupted after line ${report.lines}: run the same command again to resume (stored events count as duplicates)`);
        if (report.invalid + report.conflict > 0) {
          throw new UsageError(`${report.invalid + report.conflict} line(s) rejected; every valid line was stored; see ${report.rejectsFile}`);
        }
      } finally {
        process.removeListener('SIGINT', onSignal);
      }
    });

  const windowOptions = (command: Command) =>
    command
      .option('--window <duration>', 'whole hours ending at --to: 7d, 36h, …', undefined)
      .option('--from <iso>', 'start of the window (ISO-8601, on a whole UTC hour), instead of --window')
      .option('--to <iso>', 'end of the window (on a whole UTC hour; default: the end of the current hour)')
      .option('--top <n>', 'items per section', integer, 10);

  windowOptions(
    program
      .command('analyze')
      .description('rank failure modes, cost sinks, retry patterns and flaky tests of a window, compared with the window before')
      .option('--out <file.md>', 'write the markdown report there, and the JSON report beside it (.json)')
      .option('--json', 'print the JSON report (schema road.analysis/v1)'),
  ).action(async (opts: AnalyzeCliOptions & { out?: string; json?: boolean }) => {
    const report = await runAnalysis(session().database(), opts);
    const { renderMarkdown } = await import('../domain/analysis.js');
    if (opts.out) {
      const { writeFileSync } = await import('node:fs');
      const jsonPath = opts.out.replace(/(\.md)?$/, '.json');
      writeFileSync(opts.out, renderMarkdown(report));
      writeFileSync(jsonPath, JSON.stringify(report, null, 2) + '\n');
      if (!opts.json) console.log(`wrote ${opts.out} and ${jsonPath}`);
    }
    if (opts.json) printJson(report);
    else if (!opts.out) console.log(renderMarkdown(report));
  });

  const tasks = program.command('tasks').description('follow-up tasks generated from the analysis');
  registerTaskCommands(tasks, session);
  registerReplayCommands(program, session);
  registerRuleCommands(program, session);
  registerLoopCommands(program, session);
  registerNotificationCommands(program, session);
  tasks
    .command('list', { isDefault: true })
    .description('list follow-up tasks with their status (default)')
    .option('--open', 'only tasks that are still open')
    .option('--json', 'print JSON')
    .action(async (opts: { open?: boolean; json?: boolean }) => {
      const { listTasks } = await import('../db/tasks.js');
      const rows = await listTasks(session().database(), { open: opts.open });
      if (opts.json) return printJson(rows);
      if (!rows.length) return console.log('No follow-up tasks yet: run `road tasks generate`.');
      console.log(
        formatTable(
          ['TASK', 'STATUS', 'SEVERITY', 'TITLE', 'ALLOWED FILES', 'ATTEMPTS'],
          rows.map((t) => [t.id, t.status, t.severity, t.title, t.allowed_files.join(', ') || '— (' + t.scope.note.split(':')[0] + ')', String(t.max_attempts)]),
        ),
      );
    });
  windowOptions(
    tasks
      .command('generate')
      .description('analyze a window and open a task for each top issue that has no open task yet')
      .option('--json', 'print the created and skipped tasks as JSON'),
  ).action(async (opts: AnalyzeCliOptions & { json?: boolean }) => {
    const { createFollowupTasks } = await import('../db/tasks.js');
    const s = session();
    const report = await runAnalysis(s.database(), opts);
    const result = await createFollowupTasks(s.database(), report, { phaseFiles: s.config.phases, maxAttempts: s.config.tasks.maxAttempts, limit: opts.top });
    if (opts.json) return printJson(result);
    if (!result.saved.length) console.log('No new task.');
    else console.log(formatTable(['TASK', 'STATUS', 'SEVERITY', 'TITLE', 'ALLOWED FILES'], result.saved.map((t) => [t.id, t.status, t.severity, t.title, t.allowed_files.join(', ') || '—'])));
    for (const s of result.skipped) console.log(`skipped #${s.rank} ${s.type}: ${s.why}`);
  });

  program
    .command('demo')
    .description('start an approval gate with sample evidence, to try the reviewer commands and the Temporal UI')
    .option('--task <id>', 'task id of the demo request', 'DEMO-1')
    .option('--reviewers <list>', 'comma-separated allowed reviewers (default: approval.reviewers of road.config.json, else alice@example.com)')
    .option('--timeout <duration>', 'how long to wait for a decision', '7d')
    .option('--json', 'print the started workflow as JSON')
    .action(async (opts: { task: string; reviewers?: string; timeout: string; json?: boolean }) => {
      const s = session();
      const reviewers = opts.reviewers?.split(',').map((r) => r.trim()).filter(Boolean) ??
        (s.config.approval.reviewers.length ? s.config.approval.reviewers : ['alice@example.com']);
      const handle = await startApprovalGate(await s.temporal(), s.config.temporal.taskQueue, {
        taskId: opts.task,
        title: 'Cut token use of auth-migration by trimming the repeated schema dump',
        candidateRef: 'road/demo-candidate',
        baselineRef: 'main',
        diffStat: { files: 2, insertions: 14, deletions: 31 },
        impact: {
          summary: 'Low risk: prompt assembly only; no runtime code path changes',
          files: ['src/autopack/prompts/auth.py', 'src/autopack/context/schema_dump.py'],
          phases: ['auth-migration'],
        },
        verdict: 'PROMOTE',
        evidence: { replay: { cases: 6, k: 3, baselineSuccess: 0.78, treatmentSuccess: 0.94, medianTokensRatio: 0.62 } },
        allowedReviewers: reviewers,
        author: 'road-bot',
        timeout: opts.timeout,
      });
      const ui = uiWorkflowUrl(readDevState()?.uiUrl ?? 'http://localhost:8233', s.config.temporal.namespace, handle.workflowId);
      if (opts.json) return printJson({ workflowId: handle.workflowId, runId: handle.firstExecutionRunId, ui });
      console.log(`Started approval gate ${handle.workflowId}\n  Temporal UI: ${ui}\n  Approve:     road approve ${opts.task} --reviewer ${reviewers[0]} --comment "looks good"`);
    });

  program
    .command('pending')
    .description('list approval requests waiting for a reviewer')
    .option('--json', 'print JSON')
    .action(async (opts: { json?: boolean }) => {
      const rows = await listApprovals(session().database(), { status: 'PENDING' });
      if (opts.json) return printJson(rows);
      if (!rows.length) return console.log('No approval request is waiting.');
      const now = Date.now();
      console.log(
        formatTable(
          ['TASK', 'TITLE', 'CANDIDATE', 'VERDICT', 'REVIEWERS', 'REQUESTED', 'EXPIRES'],
          rows.map((r) => [r.taskId, r.title, r.candidateRef, r.verdict ?? '—', r.allowedReviewers.join(', '), relativeTime(r.requestedAt, now), relativeTime(r.expiresAt, now)]),
        ),
      );
      console.log(`\nApprove with: road approve ${rows[0]!.taskId} --reviewer <you> [--comment "…"]`);
    });

  const decisionCommand = (name: 'approve' | 'reject') =>
    program
      .command(`${name} <taskId>`)
      .description(`${name} the candidate of a follow-up task (only allowlisted reviewers who are not its author count)`)
      .requiredOption('--reviewer <identity>', 'who decides (must be on the allowlist)')
      .option('--json', 'print the resulting status as JSON');

  decisionCommand('approve')
    .option('--comment <text>', 'a note for the audit')
    .action(async (taskId: string, opts: { reviewer: string; comment?: string; json?: boolean }) => {
      const s = session();
      const result = await submitDecision({ client: () => s.temporal(), pool: s.database }, taskId, 'approve', opts);
      printDecision(result.state, opts.json);
    });

  decisionCommand('reject')
    .requiredOption('--reason <text>', 'why the candidate is rejected')
    .action(async (taskId: string, opts: { reviewer: string; reason: string; json?: boolean }) => {
      const s = session();
      const result = await submitDecision({ client: () => s.temporal(), pool: s.database }, taskId, 'reject', opts);
      printDecision(result.state, opts.json);
    });

  program.addOption(new Option('--debug', 'print stack traces').hideHelp());
  return program;
}

interface AnalyzeCliOptions {
  window?: string;
  from?: string;
  to?: string;
  top: number;
}

async function runAnalysis(pool: Pool, opts: AnalyzeCliOptions) {
  const { analyze } = await import('../db/analysis.js');
  if (opts.top < 1 || opts.top > 1000) throw new UsageError(`--top must be from 1 to 1000 (got ${opts.top})`);
  // A large window takes seconds: a spinner on the terminal (stderr, so JSON on stdout stays clean).
  const spinner = drawable() ? spinnerOn('analysing telemetry…').start() : undefined; // off a terminal: silent
  try {
    // Events stored since the last fold are folded into the rollups first (analyze does it too; this shows it).
    const { foldPendingEvents, pendingEvents } = await import('../db/rollups.js');
    const pending = spinner ? await pendingEvents(pool) : 0;
    if (pending && spinner) {
      spinner.text = `folding ${pending.toLocaleString('en-US')} new events into the analysis rollups…`;
      await foldPendingEvents(pool);
      spinner.text = 'analysing telemetry…';
    }
    const report = await analyze(pool, opts, new Date());
    spinner?.succeed(`analysed ${report.totals.events.toLocaleString('en-US')} events from ${report.window.from} to ${report.window.to}`);
    return report;
  } catch (error) {
    spinner?.stop();
    if (error instanceof RangeError) throw new UsageError(error.message);
    throw error;
  }
}

function integer(value: string): number {
  const n = Number(value);
  if (!/^-?\d+$/.test(value.trim()) || !Number.isSafeInteger(n)) throw new InvalidArgumentError(`"${value}" is not an integer`);
  return n;
}

const list = (value: string): string[] => value.split(',').map((v) => v.trim()).filter(Boolean);

interface RecordOptions {
  run: string;
  phase: string;
  outcome: string;
  stopReason?: string;
  attempt?: number;
  tokens?: number;
  promptTokens?: number;
  completionTokens?: number;
  durationMs?: number;
  eventId?: string;
  phaseType?: string;
  model?: string;
  rationale?: string;
  files?: string[];
  testsFailed?: string[];
  commit?: string;
  occurredAt?: string;
  metadata?: string;
  json?: boolean;
}

function eventFromOptions(o: RecordOptions): Record<string, unknown> {
  let metadata: unknown;
  if (o.metadata !== undefined) {
    try {
      metadata = JSON.parse(o.metadata);
    } catch (error) {
      throw new UsageError(`--metadata is not valid JSON: ${(error as Error).message}`);
    }
  }
  const event: Record<string, unknown> = {
    event_id: o.eventId,
    run_id: o.run,
    phase_id: o.phase,
    phase_type: o.phaseType,
    model: o.model,
    attempt: o.attempt,
    outcome: o.outcome.toUpperCase(),
    stop_reason: o.stopReason,
    decision_rationale: o.rationale,
    tokens_used: o.tokens,
    prompt_tokens: o.promptTokens,
    completion_tokens: o.completionTokens,
    duration_ms: o.durationMs,
    files: o.files,
    tests_failed: o.testsFailed,
    commit_sha: o.commit,
    occurred_at: o.occurredAt ?? new Date().toISOString(),
    metadata,
  };
  return Object.fromEntries(Object.entries(event).filter(([, v]) => v !== undefined));
}

function printDecision(state: ApprovalState, json?: boolean): void {
  if (json) return printJson(state);
  console.log(`${state.taskId}: ${decisionSummary(state)}`);
  console.log(`can_merge: ${state.canMerge}${state.verdict ? ` (replay verdict ${state.verdict})` : ' (no replay verdict recorded)'}`);
}

export async function main(argv: string[]): Promise<number> {
  let opened: Session | undefined;
  const session = () => (opened ??= new Session());
  const program = buildProgram(session);
  try {
    await program.parseAsync(argv);
    return 0;
  } catch (error) {
    // commander has already printed its own message (and --help / --version exit 0).
    if (!(error instanceof CommanderError)) process.stderr.write(`road: ${classifyError(error).message}\n`);
    if (argv.includes('--debug') && error instanceof Error) process.stderr.write(`${error.stack}\n`);
    return exitCodeOf(error); // client/errors.ts: 2 for every refusal, 1 otherwise
  } finally {
    await opened?.close();
  }
}

if (import.meta.url === `file://${process.argv[1]}` || process.argv[1]?.endsWith('/client/cli.ts')) {
  process.exit(await main(process.argv));
}
