/**
 * The demo's sample telemetry (examples/telemetry/events.jsonl), made by running the demo repository's own code: each
 * phase attempt of each run is `sh replay.sh` at the template (examples/demo-repo), so every failure in the telemetry
 * is one the code really has and the replay of that run reproduces it. Around that the script plays the agent: ~100
 * runs a day over 5 days, four phases per run, retries (a TIMEOUT up to 3 attempts, a FAILED up to 2; the run stops at
 * a phase that still fails), the files each phase touched, tokens with the model's noise, a project commit that moves
 * every few hours, and a little infrastructure trouble (rate limits) the code cannot cause.
 *
 * Deterministic: a seeded PRNG and the code's own draws, so a second run writes the same bytes.
 * It also writes the docs pages of the demo repository (docs/pages/*.md), which docs-build's prompt is made of.
 *
 *   npx tsx scripts/make-demo-telemetry.ts
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const DEMO_REPO_TEMPLATE = path.join(ROOT, 'examples', 'demo-repo');
export const DEMO_TELEMETRY = path.join(ROOT, 'examples', 'telemetry', 'events.jsonl');

/** The last run ends before this; load time shifts everything so the newest event is minutes old. */
const END = Date.parse('2026-11-28T12:00:00Z');
const DAYS = 5;
const SEED = 20261128;

const PHASES = ['auth-migration', 'schema-codegen', 'api-tests', 'docs-build'] as const;
type Phase = (typeof PHASES)[number];
const PHASE_TYPE: Record<Phase, string> = { 'auth-migration': 'migration', 'schema-codegen': 'codegen', 'api-tests': 'test', 'docs-build': 'docs' };
/** The files an attempt of the phase works on (docs-build adds the pages it changed; a failing test adds its file). */
const PHASE_FILES: Record<Phase, string[]> = {
  'auth-migration': ['src/auth/migrate.sh'],
  'schema-codegen': ['src/codegen/generate.sh', 'src/codegen/types.sh'],
  'api-tests': ['src/api/orders.sh'],
  'docs-build': ['docs/context.sh'],
};
/** Typical wall time of a successful attempt, ms. */
const PHASE_DURATION: Record<Phase, number> = { 'auth-migration': 95_000, 'schema-codegen': 70_000, 'api-tests': 160_000, 'docs-build': 120_000 };
const MAX_ATTEMPTS = { FAILED: 2, TIMEOUT: 3, STUCK: 3 } as const;

/** mulberry32: a tiny seeded PRNG. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface CodeResult {
  outcome: 'SUCCESS' | 'FAILED' | 'TIMEOUT' | 'STUCK';
  tokens: number;
  stopReason: string;
  why?: string;
  failedTests: string[];
  pages: string[];
}

/** Runs `sh replay.sh` for every (run, phase, attempt) in one shell: thousands of runs in seconds. */
function runCode(jobs: Array<{ run: string; phase: Phase; attempt: number }>): CodeResult[] {
  if (!jobs.length) return [];
  const loop = 'while read -r run phase attempt; do ROAD_CASE_ID=$run ROAD_PHASE_ID=$phase ROAD_ATTEMPT_REPLAYED=$attempt sh ./replay.sh; echo @@; done';
  const result = spawnSync('sh', ['-c', loop], {
    cwd: DEMO_REPO_TEMPLATE,
    input: jobs.map((j) => `${j.run} ${j.phase} ${j.attempt}\n`).join(''),
    encoding: 'utf8',
    maxBuffer: 256 * 1024 * 1024,
  });
  if (result.status !== 0) throw new Error(`replay.sh failed: ${result.stderr}`);
  const blocks = result.stdout.split('@@\n').slice(0, -1);
  if (blocks.length !== jobs.length) throw new Error(`expected ${jobs.length} results, got ${blocks.length}: ${result.stderr}`);
  return blocks.map((block) => {
    const lines = block.trim().split('\n');
    const road = (JSON.parse(lines.at(-1)!) as { road: { outcome: CodeResult['outcome']; tokens: number; stop_reason: string } }).road;
    const notes = (prefix: string) => lines.filter((l) => l.startsWith(prefix)).map((l) => l.slice(prefix.length));
    return { outcome: road.outcome, tokens: road.tokens, stopReason: road.stop_reason, why: notes('# why: ')[0], failedTests: notes('# failed test: '), pages: notes('# page: ') };
  });
}

// ---------------------------------------------------------------- the demo repository's docs pages

const TOPICS = [
  'orders', 'customers', 'invoices', 'payments', 'refunds', 'subscriptions', 'webhooks', 'authentication',
  'sessions', 'api-keys', 'pagination', 'errors', 'rate-limits', 'search', 'exports', 'audit-log',
];

/** An API reference page, ~4 KB: what docs-build's prompt carries when it carries every page. */
function docsPage(topic: string, random: () => number): string {
  const noun = topic.replace(/-/g, ' ');
  const resource = topic.replace(/-/g, '_');
  const single = noun.replace(/s$/, '');
  const fields: Array<[string, string, string]> = [
    ['id', 'string', `Unique identifier of the ${single}, set by the API.`],
    ['created_at', 'string (date-time)', 'When the object was created.'],
    ['updated_at', 'string (date-time)', 'When any field last changed.'],
    ['customer_id', 'string', 'The customer it belongs to; required on create.'],
    ['status', 'string', '`pending`, `active` or `closed`; moves only forward.'],
    ['amount', 'integer', 'In the minor unit of `currency`; at most 99,999,999.'],
    ['currency', 'string', 'Three-letter ISO code, lower case.'],
    ['metadata', 'object', 'Up to 50 keys of the integration\'s own, values up to 500 characters.'],
    ['livemode', 'boolean', 'False for objects made with a test key.'],
    ['description', 'string', 'Free text shown to the customer, at most 1,000 characters.'],
  ];
  const lines = [
    `# ${noun[0]!.toUpperCase()}${noun.slice(1)}`,
    '',
    `The ${noun} API lets an integration create, read, update and list ${noun}. Every request is authenticated with an`,
    `API key (see authentication.md), every list is paginated (see pagination.md), and every error has the shape`,
    `described in errors.md. Timestamps are ISO-8601 in UTC; amounts are integers in the currency's minor unit.`,
    '',
    '## The object',
    '',
    '| field | type | description |',
    '|---|---|---|',
    ...fields.map(([field, type, description]) => `| \`${field}\` | ${type} | ${description} |`),
  ];
  for (const [verb, suffix, what] of [
    ['POST', '', `Creates a ${single}.`],
    ['GET', '/{id}', `Returns one ${single} by id.`],
    ['PATCH', '/{id}', 'Updates the given fields; fields not sent keep their value.'],
    ['GET', '', `Lists ${noun}, newest first.`],
  ] as const) {
    lines.push(
      '',
      `## ${verb} /v1/${resource}${suffix}`,
      '',
      `${what} Idempotent when the request carries an \`Idempotency-Key\` header: the same key within 24 hours returns the`,
      `first response. Returns \`${verb === 'POST' ? 201 : 200}\` with the object, \`404\` when the id is unknown, \`409\` when another`,
      `request holds the same idempotency key, \`422\` naming the first invalid field.`,
      '',
      '```http',
      `${verb} /v1/${resource}${suffix.replace('{id}', `${resource.slice(0, 3)}_${Math.floor(random() * 1e8).toString(36)}`)} HTTP/1.1`,
      'Authorization: Bearer sk_test_…',
      '```',
      '',
      '```json',
      `{ "id": "${resource.slice(0, 3)}_${Math.floor(random() * 1e8).toString(36)}", "status": "${random() < 0.5 ? 'active' : 'pending'}", "amount": ${Math.floor(random() * 100_000)}, "currency": "eur", "created_at": "2026-11-2${Math.floor(random() * 8)}T0${Math.floor(random() * 9)}:1${Math.floor(random() * 9)}:00Z" }`,
      '```',
    );
  }
  return lines.join('\n') + '\n';
}

function writeDocsPages(): void {
  const random = prng(SEED + 1);
  const dir = path.join(DEMO_REPO_TEMPLATE, 'docs', 'pages');
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  for (const topic of TOPICS) writeFileSync(path.join(dir, `${topic}.md`), docsPage(topic, random));
  writeFileSync(
    path.join(DEMO_REPO_TEMPLATE, 'docs', 'index.md'),
    ['# API reference', '', 'One page per resource:', '', ...TOPICS.map((t) => `- [${t.replace(/-/g, ' ')}](pages/${t}.md)`), ''].join('\n'),
  );
}

// ---------------------------------------------------------------- the agent's runs

interface Run {
  id: string;
  startMs: number;
  commit: string;
  model: string;
  phases: Phase[];
}

function planRuns(random: () => number): Run[] {
  const startMs = END - DAYS * 86_400_000;
  const commits: Array<{ fromMs: number; sha: string }> = [];
  for (let at = startMs - 3_600_000; at < END; at += (3 + random() * 4) * 3_600_000) {
    commits.push({ fromMs: at, sha: Array.from({ length: 40 }, () => Math.floor(random() * 16).toString(16)).join('') });
  }
  const runs: Run[] = [];
  for (let hour = 0; hour < DAYS * 24; hour++) {
    const hourOfDay = hour % 24;
    // Busier in the working day (UTC 07–18), a few runs at night.
    const expected = hourOfDay >= 7 && hourOfDay < 19 ? 6.5 : 1.4;
    const count = Math.floor(expected + random() * 2 - 0.5);
    const minutes = Array.from({ length: Math.max(0, count) }, () => random() * 50).sort((a, b) => a - b);
    for (const minute of minutes) {
      const runStart = startMs + hour * 3_600_000 + minute * 60_000;
      const commit = commits.filter((c) => c.fromMs <= runStart).at(-1)!.sha;
      runs.push({
        id: `run-${String(runs.length + 1).padStart(5, '0')}`,
        startMs: runStart,
        commit,
        model: random() < 0.8 ? 'claude-sonnet-4-5' : 'claude-haiku-4-5',
        // Not every run changes the docs.
        phases: random() < 0.7 ? [...PHASES] : PHASES.filter((p) => p !== 'docs-build'),
      });
    }
  }
  return runs;
}

/** Trouble outside the code: the model provider's rate limit. Rare, and gone on the next attempt. */
function infrastructureFailure(random: () => number, phase: Phase, attempt: number): CodeResult | undefined {
  if (attempt === 1 && phase === 'api-tests' && random() < 0.008) {
    return { outcome: 'TIMEOUT', tokens: 900, stopReason: 'rate_limited', why: 'the model provider answered 429 for 10 minutes; gave up waiting', failedTests: [], pages: [] };
  }
  return undefined;
}

export function makeDemoTelemetry(): Array<Record<string, unknown>> {
  writeDocsPages();
  const random = prng(SEED);
  const runs = planRuns(random);

  // The code's answer for every attempt that can happen: first attempts, then retries of what failed.
  const results = new Map<string, CodeResult>();
  const key = (run: string, phase: Phase, attempt: number) => `${run} ${phase} ${attempt}`;
  let jobs = runs.flatMap((r) => r.phases.map((phase) => ({ run: r.id, phase, attempt: 1 })));
  while (jobs.length) {
    runCode(jobs).forEach((result, i) => results.set(key(jobs[i]!.run, jobs[i]!.phase, jobs[i]!.attempt), result));
    jobs = jobs
      .filter((j) => results.get(key(j.run, j.phase, j.attempt))!.outcome !== 'SUCCESS' && j.attempt < 3)
      .map((j) => ({ ...j, attempt: j.attempt + 1 }));
  }

  // A retry after trouble the code did not cause (a rate limit) was not among them.
  const codeResult = (run: string, phase: Phase, attempt: number): CodeResult => {
    if (!results.has(key(run, phase, attempt))) results.set(key(run, phase, attempt), runCode([{ run, phase, attempt }])[0]!);
    return results.get(key(run, phase, attempt))!;
  };

  const events: Array<Record<string, unknown>> = [];
  for (const run of runs) {
    let at = run.startMs;
    phases: for (const phase of run.phases) {
      for (let attempt = 1; ; attempt++) {
        const result = infrastructureFailure(random, phase, attempt) ?? codeResult(run.id, phase, attempt);
        const noise = 0.85 + random() * 0.3;
        const tokens = Math.round(result.tokens * noise);
        const completion = Math.round(tokens * (0.12 + random() * 0.06));
        const duration =
          result.outcome === 'TIMEOUT' ? (result.stopReason === 'rate_limited' ? 600_000 : 120_000) + Math.round(random() * 4000) : Math.round(PHASE_DURATION[phase] * (0.6 + random() * 0.9));
        at += duration + Math.round(random() * 20_000);
        const files = [...PHASE_FILES[phase], ...result.pages, ...(result.failedTests.length ? [...new Set(result.failedTests.map((t) => t.split('::')[0]!))] : [])];
        const event: Record<string, unknown> = {
          event_id: `demo:${run.id}:${phase}:${attempt}`,
          run_id: run.id,
          phase_id: phase,
          phase_type: PHASE_TYPE[phase],
          model: run.model,
          attempt,
          outcome: result.outcome,
          stop_reason: result.stopReason,
          ...(result.why ? { decision_rationale: result.why } : {}),
          tokens_used: tokens,
          prompt_tokens: tokens - completion,
          completion_tokens: completion,
          duration_ms: duration,
          files,
          ...(phase === 'api-tests' ? { tests_failed: result.failedTests } : {}),
          commit_sha: run.commit,
          occurred_at: new Date(at).toISOString(),
        };
        events.push(event);
        if (result.outcome === 'SUCCESS') continue phases;
        if (attempt >= MAX_ATTEMPTS[result.outcome]) break phases; // the run gives up
      }
    }
  }
  return events.sort((a, b) => String(a.occurred_at).localeCompare(String(b.occurred_at)) || String(a.event_id).localeCompare(String(b.event_id)));
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const events = makeDemoTelemetry();
  mkdirSync(path.dirname(DEMO_TELEMETRY), { recursive: true });
  writeFileSync(DEMO_TELEMETRY, events.map((e) => JSON.stringify(e)).join('\n') + '\n');
  const count = new Map<string, number>();
  for (const e of events) if (e.outcome !== 'SUCCESS') count.set(`${e.phase_id} ${e.stop_reason}`, (count.get(`${e.phase_id} ${e.stop_reason}`) ?? 0) + 1);
  const tokens = new Map<string, number>();
  for (const e of events) tokens.set(String(e.phase_id), (tokens.get(String(e.phase_id)) ?? 0) + Number(e.tokens_used));
  const runs = new Set(events.map((e) => e.run_id)).size;
  console.log(`${events.length} events of ${runs} runs → ${path.relative(ROOT, DEMO_TELEMETRY)} (${(readFileSync(DEMO_TELEMETRY).length / 1024).toFixed(0)} KiB)`);
  console.log('failures by phase and stop reason:', Object.fromEntries([...count].sort((a, b) => b[1] - a[1])));
  console.log('tokens by phase:', Object.fromEntries(tokens));
  console.log('docs pages:', readdirSync(path.join(DEMO_REPO_TEMPLATE, 'docs', 'pages')).length);
}
