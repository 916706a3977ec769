/**
 * ROAD-F on the real PostgreSQL, a real git repository, the real `road` CLI and the HTTP API: a promotion stored once
 * however often it is retried, prompts served by CLI and HTTP, export → import into a fresh database, and demotion
 * from telemetry stored around a rule's promotion time.
 */
import type { FastifyInstance } from 'fastify';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPromotionActivities, type PromoteRuleInput } from '../../activities/promotion.js';
import { buildServer, parseApiTokens } from '../../client/server.js';
import { storeEvents } from '../../db/events.js';
import { saveCampaignReport, upsertCampaign } from '../../db/replay.js';
import { listRules } from '../../db/rules.js';
import { compareCampaign } from '../../domain/comparison.js';
import { configSchema } from '../../domain/config.js';
import type { VerdictSummary } from '../../domain/followup.js';
import type { FollowupTaskResult } from '../../workflows/followupTask.js';
import type { ReplayRunResult } from '../../domain/replay.js';
import type { PhaseOutcomeInput } from '../../domain/telemetry.js';
import { road } from '../helpers/cli.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import { createTestRepo, type TestRepo } from '../helpers/gitRepo.js';

const TOKEN = 'agent-token-0123456789';
const HOUR = 3_600_000;
let db: TestDatabase;
let repo: TestRepo;
let app: FastifyInstance;
let baselineSha: string;
const dir = mkdtempSync(path.join(os.tmpdir(), 'road-rules-test-'));
let clock = new Date('2026-06-12T00:00:00Z');
const config = configSchema.parse({});
const activities = () => createPromotionActivities({ pool: db.pool, config, now: () => clock });

beforeAll(async () => {
  db = await createTestDatabase();
  repo = createTestRepo({ 'src/auth.py': 'def login(): pass\n' });
  baselineSha = repo.sha('HEAD');
  app = buildServer({ pool: db.pool, tokens: parseApiTokens(TOKEN) });
});
afterAll(async () => {
  await app?.close();
  await db?.drop();
  repo?.remove();
  rmSync(dir, { recursive: true, force: true });
});

const cli = (args: string[], database = db) => road(args, { DATABASE_URL: database.url });

/**
 * A compared campaign with `successes` of `n` treatment runs succeeding (baseline: all failing), stored as the replay
 * activities store it; the verdict summary is read from the real report.
 */
async function storeCampaign(taskId: string, treatmentSha: string, successes: number, n: number): Promise<{ campaignId: string; verdicts: VerdictSummary }> {
  const campaignId = `${taskId}@${treatmentSha.slice(0, 12)}`;
  const runs: ReplayRunResult[] = [];
  for (let i = 0; i < n; i++) {
    for (const variant of ['baseline', 'treatment'] as const) {
      const success = variant === 'treatment' && i < successes;
      runs.push({
        campaignId, caseId: `case-${i % 10}`, phaseId: 'auth', variant, ref: variant === 'baseline' ? baselineSha : treatmentSha,
        repeat: Math.floor(i / 10), runIndex: runs.length, outcome: success ? 'SUCCESS' : 'FAILED', tokens: 1000, durationMs: 100,
        stopReason: success ? null : 'timeout', retries: 0, exitCode: success ? 0 : 1, startedAt: clock.toISOString(), finishedAt: clock.toISOString(),
      });
    }
  }
  const report = compareCampaign({ runs, taskType: 'failure_mode', failureStopReason: null, decisionMode: 'seed', seed: campaignId });
  await upsertCampaign(db.pool, { campaignId, taskId, baselineSha, treatmentSha, settings: {} }, clock);
  await saveCampaignReport(db.pool, { campaignId, report: report as unknown as Record<string, unknown>, markdown: '# report' }, clock);
  const verdicts: VerdictSummary = {
    gating: report.gating.verdict,
    decisionMode: report.gating.mode,
    seed: report.seed.verdict,
    statistical: report.statistical.verdict,
    treatmentSuccessRate: report.arms.treatment.successRate,
    treatmentRuns: report.arms.treatment.n,
  };
  return { campaignId, verdicts };
}

let taskSerial = 0;

interface FinishedTask {
  /** The promotion input: the task and the followupTask workflow's result, with the approval's decision time added. */
  input: PromoteRuleInput;
  /** The workflow's result exactly as its type says (its approval carries no decision time). */
  result: FollowupTaskResult;
  campaignId: string;
  treatmentSha: string;
}

/** A finished follow-up task of `phases` whose fix (a real commit) succeeded in `successes` of `n` replay runs. */
async function finishedTask(options: { phases: string[]; subject: string; successes: number; n: number; decidedAt: string; fingerprint?: string }): Promise<FinishedTask> {
  const taskId = `FAILURE-${++taskSerial}`;
  const treatmentSha = repo.commit(`${options.subject}\n\nWhy: the provider hangs.`, { [`src/fix-${taskSerial}.py`]: `${options.subject}\n` });
  const { campaignId, verdicts } = await storeCampaign(taskId, treatmentSha, options.successes, options.n);
  const canMerge = verdicts.gating === 'PROMOTE';
  const result: FollowupTaskResult = {
    taskId,
    type: 'failure_mode',
    stage: 'done',
    detail: 'approved by alice@example.com',
    attempts: [{ attempt: 1, outcome: 'accepted', message: 'candidate ready' }],
    candidate: { treatmentSha, branch: `road/${taskId}`, author: 'road-bot', changedFiles: [`src/fix-${taskSerial}.py`], diffStat: { files: 1, insertions: 1, deletions: 0 }, baselineSha, baselineRef: 'main' },
    campaignId,
    verdicts,
    reportPath: `.road/reports/${taskId}.md`,
    approval: { status: 'APPROVED', decidedBy: 'alice@example.com', canMerge },
    outcome: 'approved',
    canMerge,
  };
  const task = {
    id: taskId,
    fingerprint: options.fingerprint ?? `${String(taskSerial).padStart(4, '0')}${'f'.repeat(28)}`,
    title: `Stop failures in ${options.phases[0]}`,
    phase_ids: options.phases,
  };
  const input: PromoteRuleInput = { task, result: { ...result, approval: { ...result.approval!, decidedAt: options.decidedAt } }, repositoryPath: repo.dir };
  return { input, result, campaignId, treatmentSha };
}

const ruleCount = async (fingerprint: string) =>
  Number((await db.pool.query<{ n: string }>('SELECT count(*) AS n FROM promoted_rules WHERE fingerprint = $1', [fingerprint])).rows[0]!.n);

describe('promotion', () => {
  it('stores one rule per fingerprint however often it is promoted, retried or raced', async () => {
    const { input, result: workflowResult, campaignId, treatmentSha } = await finishedTask({
      phases: ['auth', 'database'], subject: 'Wrap auth calls in a 30 s timeout', successes: 28, n: 30, decidedAt: '2026-06-10T12:30:00.000Z', fingerprint: 'aaaa1111bbbb2222cccc3333dddd4444',
    });
    const first = await activities().promoteRule(input);
    expect(first.promoted).toBe(true);
    // 28/30: Wilson 95 % lower bound 0.7868 (computed independently: the root of (28/30 − L)² · 30 = 1.96² · L(1 − L)).
    expect(first.rule).toMatchObject({
      rule_id: 'rule-aaaa1111bbbb',
      mitigation: 'Wrap auth calls in a 30 s timeout',
      n: 30,
      applicable_phases: ['auth', 'database'],
      promoted_at: '2026-06-10T12:30:00.000Z',
      status: 'active',
      source_task: input.task.id,
      evidence: { campaign_id: campaignId, reviewer: 'alice@example.com', decided_at: '2026-06-10T12:30:00.000Z', treatment_sha: treatmentSha, branch: `road/${input.task.id}` },
    });
    expect(first.rule!.success_rate).toBeCloseTo(28 / 30, 12);
    expect(first.rule!.wilson_lower).toBeCloseTo(0.7868, 4);
    expect(first.reason).toMatch(/^promoted rule-aaaa1111bbbb for auth, database: 93\.3 % success in 30 treatment runs/);

    // A retried activity, a restarted loop, and two racing at once: still one rule, unchanged.
    clock = new Date(clock.getTime() + HOUR);
    const again = await activities().promoteRule(input);
    const raced = await Promise.all([activities().promoteRule(input), activities().promoteRule(input)]);
    for (const result of [again, ...raced]) {
      expect(result).toMatchObject({ promoted: true, reason: `rule-aaaa1111bbbb was already promoted from campaign ${campaignId}` });
      expect(result.rule).toEqual(first.rule);
    }
    // The workflow's result as it is (no decision time: the promotion would be dated by the clock, an hour later now):
    // the same campaign still changes nothing.
    const undated = await activities().promoteRule({ task: input.task, result: workflowResult, repositoryPath: repo.dir });
    expect(undated.rule).toEqual(first.rule);
    expect(await ruleCount(input.task.fingerprint)).toBe(1);

    // A later loop fixes the same issue again (another task, another commit): it replaces the rule's content.
    const later = await finishedTask({ phases: ['auth'], subject: 'Retry the auth provider with jittered backoff', successes: 30, n: 30, decidedAt: '2026-06-11T08:00:00.000Z', fingerprint: input.task.fingerprint });
    const replaced = await activities().promoteRule(later.input);
    expect(replaced).toMatchObject({ promoted: true, rule: { rule_id: 'rule-aaaa1111bbbb', mitigation: 'Retry the auth provider with jittered backoff', applicable_phases: ['auth'] } });
    expect(replaced.reason).toMatch(/^promoted rule-aaaa1111bbbb again/);
    // The first promotion retried after that: it is older, so it changes nothing.
    const stale = await activities().promoteRule(input);
    expect(stale.promoted).toBe(false);
    expect(stale.reason).toBe(`rule-aaaa1111bbbb holds a later promotion (campaign ${later.campaignId}, 2026-06-11T08:00:00.000Z)`);
    expect(await ruleCount(input.task.fingerprint)).toBe(1);
    const [stored] = (await listRules(db.pool)).filter((r) => r.fingerprint === input.task.fingerprint);
    expect(stored).toEqual(replaced.rule);
  });

  it('does not promote below 90 % treatment success, or a task that cannot merge, and says why', async () => {
    const { input: low, result } = await finishedTask({ phases: ['payments'], subject: 'Almost a fix', successes: 26, n: 30, decidedAt: '2026-06-10T12:00:00.000Z' });
    // The seed verdict promotes (all-failing baseline), so the task can merge; only the 90 % threshold stops it.
    expect(result.verdicts!.gating).toBe('PROMOTE');
    expect(await activities().promoteRule(low)).toEqual({
      promoted: false,
      reason: 'treatment success rate 86.7 % (26/30) is below promotion.minSuccessRate 90.0 %',
    });
    const rejected = { ...result, outcome: 'rejected' as const, canMerge: false, approval: { status: 'REJECTED', decidedBy: 'bob', canMerge: false } };
    expect(await activities().promoteRule({ task: low.task, result: rejected })).toEqual({ promoted: false, reason: 'not approved (REJECTED)' });
    // A task that failed before replay has no verdicts, campaign or approval.
    const failed: FollowupTaskResult = { taskId: low.task.id, type: 'failure_mode', stage: 'failed', detail: 'no candidate', attempts: [], outcome: 'failed', canMerge: false };
    expect(await activities().promoteRule({ task: low.task, result: failed })).toEqual({ promoted: false, reason: 'no approval decision' });
    expect(await ruleCount(low.task.fingerprint)).toBe(0);
  });

  it("falls back to the task's title when the commit cannot be read", async () => {
    const { input } = await finishedTask({ phases: ['uploads'], subject: 'Stream uploads in chunks', successes: 30, n: 30, decidedAt: '2026-06-10T12:00:00.000Z' });
    // No repositoryPath and no repository in road.config.json: the title stands in, and the reason says so.
    const result = await activities().promoteRule({ ...input, repositoryPath: undefined });
    expect(result.rule!.mitigation).toBe('Stop failures in uploads');
    expect(result.reason).toMatch(/mitigation from the task title: the commit could not be read — repository is not set in road\.config\.json/);
  });
});

describe('prevention prompts', () => {
  const expected = 'Based on past successful fixes in auth:\n\nRecommended approaches:\n- Retry the auth provider with jittered backoff';

  it('are served by `road prompts`', async () => {
    const text = await cli(['prompts', '--phase', 'auth']);
    expect(text).toMatchObject({ code: 0, stdout: `${expected}\n` });
    const json = await cli(['prompts', '--phase', 'auth', '--json']);
    expect(json.code).toBe(0);
    const body = JSON.parse(json.stdout) as { phase: string; prompt: string; rules: Array<Record<string, unknown>> };
    expect(body).toMatchObject({ phase: 'auth', prompt: expected });
    expect(body.rules.map((r) => r.rule_id)).toEqual(['rule-aaaa1111bbbb']);

    const none = await cli(['prompts', '--phase', 'no-such-phase']);
    expect(none).toMatchObject({ code: 0, stdout: '' });
    expect(none.stderr).toMatch(/No active promoted rule applies to phase "no-such-phase"/);
    expect(JSON.parse((await cli(['prompts', '--phase', 'no-such-phase', '--json'])).stdout)).toEqual({ phase: 'no-such-phase', prompt: '', rules: [] });

    const long = await cli(['prompts', '--phase', 'p'.repeat(256)]);
    expect(long.code).toBe(2);
    expect(long.stderr).toMatch(/--phase must be at most 255 characters \(got 256\)/);
  });

  it('are served by GET /v1/prompts', async () => {
    const get = (url: string, token: string | null = TOKEN) => app.inject({ method: 'GET', url, headers: token ? { authorization: `Bearer ${token}` } : {} });
    const ok = await get('/v1/prompts?phase=auth');
    expect(ok.statusCode).toBe(200);
    expect(ok.json()).toMatchObject({ phase: 'auth', prompt: expected, rules: [{ rule_id: 'rule-aaaa1111bbbb', n: 30 }] });
    // The later promotion named auth only: database, a phase of the replaced promotion, is served nothing now.
    expect((await get('/v1/prompts?phase=database')).json()).toEqual({ phase: 'database', prompt: '', rules: [] });
    // Phases are matched exactly, URL-decoded.
    expect((await get('/v1/prompts?phase=a%20phase%2Fwith%20spaces')).json()).toEqual({ phase: 'a phase/with spaces', prompt: '', rules: [] });

    const missing = await get('/v1/prompts');
    expect(missing.statusCode).toBe(400);
    expect(missing.json()).toEqual({ error: 'invalid_input', message: 'phase is required: the phase_id whose prevention prompt you want' });
    const tooLong = await get(`/v1/prompts?phase=${'p'.repeat(256)}`);
    expect(tooLong.statusCode).toBe(400);
    expect(tooLong.json().message).toBe('phase must be at most 255 characters (got 256)');
    const twice = await get('/v1/prompts?phase=a&phase=b');
    expect(twice.statusCode).toBe(400);
    expect(twice.json().message).toMatch(/^phase must be given once/);
    const unknown = await get('/v1/prompts?phase=auth&phaze=x');
    expect(unknown.statusCode).toBe(400);
    expect(unknown.json().message).toMatch(/unknown query parameter "phaze"/);
    expect((await get('/v1/prompts?phase=auth', null)).statusCode).toBe(401);
    expect((await get('/v1/prompts?phase=auth', 'wrong-token-0123456789')).statusCode).toBe(401);
  });
});

const events = (phase: string, from: string, count: number, failures: number, tag: string): Array<Partial<PhaseOutcomeInput>> =>
  Array.from({ length: count }, (_, i) => ({
    event_id: `${tag}-${phase}-${i}`,
    run_id: `run-${tag}-${i}`,
    phase_id: phase,
    outcome: i < failures ? ('FAILED' as const) : ('SUCCESS' as const),
    stop_reason: i < failures ? 'timeout' : undefined,
    occurred_at: new Date(Date.parse(from) + i * 60_000).toISOString(),
  }));

describe('demotion', () => {
  const PROMOTED = '2026-06-20T12:30:00.000Z';

  it("demotes a rule whose phases fail significantly more since its promotion, and keeps the others with a reason", async () => {
    const { input: regressed } = await finishedTask({ phases: ['checkout'], subject: 'Cache the cart between steps', successes: 30, n: 30, decidedAt: PROMOTED });
    const { input: quiet } = await finishedTask({ phases: ['search'], subject: 'Bound the search fan-out', successes: 30, n: 30, decidedAt: PROMOTED });
    const { input: steady } = await finishedTask({ phases: ['billing'], subject: 'Retry the invoice API once', successes: 30, n: 30, decidedAt: PROMOTED });
    for (const input of [regressed, quiet, steady]) expect((await activities().promoteRule(input)).promoted).toBe(true);

    const stored = await storeEvents(db.pool, [
      // checkout: 4/40 failures in the hours before the promotion hour, 16/40 after it.
      ...events('checkout', '2026-06-20T02:00:00Z', 40, 4, 'before'),
      ...events('checkout', '2026-06-21T02:00:00Z', 40, 16, 'after'),
      // search: plenty before, only 12 events since promotion.
      ...events('search', '2026-06-20T02:00:00Z', 40, 4, 'before'),
      ...events('search', '2026-06-21T02:00:00Z', 12, 12, 'after'),
      // billing: the same rate on both sides; 30 failures inside the promotion hour itself belong to neither window.
      ...events('billing', '2026-06-20T02:00:00Z', 40, 4, 'before'),
      ...events('billing', '2026-06-21T02:00:00Z', 40, 4, 'after'),
      ...events('billing', '2026-06-20T12:31:00Z', 25, 25, 'during'),
    ]);
    expect(stored.every((r) => r.status === 'accepted')).toBe(true);

    clock = new Date('2026-06-22T00:20:00Z');
    const check = await activities().checkDemotions({});
    expect(check.settings).toEqual({ windowHours: 168, alpha: 0.05, minSample: 30 });
    expect(check.demoted.map((d) => d.ruleId)).toEqual([regressed.task.fingerprint].map((f) => `rule-${f.slice(0, 12)}`));
    const evidence = check.demoted[0]!.evidence;
    // Whole hours: promoted 12:30 on the 20th, now 00:20 on the 22nd → after = 13:00 (20th) … 00:00 (22nd) = 35 h, and
    // before = the 35 h up to 12:00 on the 20th.
    expect(evidence.after).toMatchObject({ from: '2026-06-20T13:00:00.000Z', to: '2026-06-22T00:00:00.000Z', events: 40, failures: 16, failure_rate: 0.4 });
    expect(evidence.before).toMatchObject({ from: '2026-06-19T01:00:00.000Z', to: '2026-06-20T12:00:00.000Z', events: 40, failures: 4, failure_rate: 0.1 });
    // Pooled 20/80 = 0.25: z = 0.3 / √(0.25 · 0.75 · 2/40) = 0.3 / 0.096825 = 3.0984.
    expect(evidence.z).toBeCloseTo(3.0984, 4);
    expect(evidence.p_value).toBeLessThan(0.001);

    const kept = Object.fromEntries(check.kept.map((k) => [k.ruleId, k]));
    const id = (input: PromoteRuleInput) => `rule-${input.task.fingerprint.slice(0, 12)}`;
    expect(kept[id(quiet)]).toMatchObject({ reason: 'too few events since promotion (12 < 30)', after: { events: 12, failures: 12 } });
    expect(kept[id(steady)]!.before).toEqual({ events: 40, failures: 4 });
    expect(kept[id(steady)]!.after).toEqual({ events: 40, failures: 4 });
    expect(kept[id(steady)]!.reason).toMatch(/no significant rise$/);

    // Demoted: listed with its evidence, no longer served by the CLI or the API.
    const [rule] = (await listRules(db.pool, { all: true })).filter((r) => r.rule_id === id(regressed));
    expect(rule).toMatchObject({ status: 'demoted', demoted_at: clock.toISOString(), demotion: { reason: check.demoted[0]!.reason } });
    expect((await cli(['prompts', '--phase', 'checkout'])).stdout).toBe('');
    expect((await app.inject({ method: 'GET', url: '/v1/prompts?phase=checkout', headers: { authorization: `Bearer ${TOKEN}` } })).json()).toEqual({
      phase: 'checkout', prompt: '', rules: [],
    });
    expect((await cli(['prompts', '--phase', 'billing'])).stdout).toBe('Based on past successful fixes in billing:\n\nRecommended approaches:\n- Retry the invoice API once\n');

    // Checked again: the demoted rule is no longer a candidate, nothing else changes.
    const second = await activities().checkDemotions({});
    expect(second.demoted).toEqual([]);
    expect(second.checked).toBe(check.checked - 1);

    const list = await cli(['rules', 'list', '--all']);
    expect(list.code).toBe(0);
    expect(list.stdout).toMatch(new RegExp(`${id(regressed)}\\s+checkout\\s+100\\.0 %\\s+30\\s+88\\.6 %\\s+2026-06-20 12:30Z\\s+demoted\\s+${regressed.task.id}`));
    expect(list.stdout).toContain(`${id(regressed)} demoted 2026-06-22 00:20Z: failure rate 10.0 % (4/40) before → 40.0 % (16/40) since promotion`);
    expect((await cli(['rules', 'list'])).stdout).not.toContain(id(regressed));
  });

  it('refuses settings that make no sense, naming them', async () => {
    await expect(activities().checkDemotions({ alpha: 0 })).rejects.toThrow(/alpha must be above 0/);
    await expect(activities().checkDemotions({ minSample: 0 })).rejects.toThrow(/minSample must be an integer from 1/);
  });
});

describe('the rules file', () => {
  it('exports every rule in the seed shape and imports it into a fresh database as the same rules, twice without change', async () => {
    const file = path.join(dir, 'rules.json');
    const exported = await cli(['rules', 'export', file]);
    expect(exported.code).toBe(0);
    const all = await listRules(db.pool, { all: true });
    expect(exported.stdout).toBe(`wrote ${all.length} rule(s) to ${file} (json)\n`);
    const content = JSON.parse(readFileSync(file, 'utf8')) as { promoted_at: string; count: number; rules: Record<string, unknown> };
    expect(Object.keys(content)).toEqual(['promoted_at', 'count', 'rules']);
    expect(content.count).toBe(all.length);
    expect(Object.keys(content.rules)).toEqual(all.map((r) => r.rule_id));

    const fresh = await createTestDatabase();
    try {
      const first = await cli(['rules', 'import', file], fresh);
      expect(first).toMatchObject({ code: 0, stdout: `${file}: imported ${all.length}, updated 0, unchanged 0, skipped 0\n` });
      expect(await listRules(fresh.pool, { all: true })).toEqual(all);
      const second = await cli(['rules', 'import', file, '--json'], fresh);
      expect(JSON.parse(second.stdout)).toMatchObject({ imported: 0, updated: 0, unchanged: all.length, skipped: 0 });
      expect(await listRules(fresh.pool, { all: true })).toEqual(all);
      expect(Number((await fresh.pool.query<{ n: string }>('SELECT count(*) AS n FROM promoted_rules')).rows[0]!.n)).toBe(all.length);

      // An edited mitigation in the file updates the rule; a stale copy of a rule the database demoted later is skipped.
      const demoted = all.find((r) => r.status === 'demoted')!;
      const edited = JSON.parse(readFileSync(file, 'utf8')) as { rules: Record<string, Record<string, unknown>> };
      edited.rules['rule-aaaa1111bbbb']!.mitigation = 'Retry the auth provider with jittered backoff (max 3)';
      Object.assign(edited.rules[demoted.rule_id]!, { status: 'active', demoted_at: null, demotion: null });
      const editedFile = path.join(dir, 'edited.json');
      writeFileSync(editedFile, JSON.stringify(edited));
      const third = await cli(['rules', 'import', editedFile], fresh);
      expect(third.stdout).toBe(
        `${editedFile}: imported 0, updated 1, unchanged ${all.length - 2}, skipped 1\n  skipped ${demoted.rule_id}: the database holds a later demotion (${demoted.demoted_at})\n`,
      );
      expect((await listRules(fresh.pool, { all: true })).find((r) => r.rule_id === demoted.rule_id)!.status).toBe('demoted');
    } finally {
      await fresh.drop();
    }
  });

  it('refuses an invalid file with exit 2 and the field, and imports nothing', async () => {
    const bad = path.join(dir, 'bad.json');
    writeFileSync(bad, JSON.stringify({ promoted_at: '2026-07-01T00:00:00Z', count: 1, rules: { r1: { rule_id: 'r1', mitigation: 'm', success_rate: 1.5, applicable_phases: ['x'], promoted_at: '2026-07-01T00:00:00Z', promotion_level: 'prompt' } } }));
    const result = await cli(['rules', 'import', bad]);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/rules\["r1"\]\.success_rate must be at most 1/);
    writeFileSync(bad, '{"promoted_at": ');
    expect(await cli(['rules', 'import', bad])).toMatchObject({ code: 2, stderr: expect.stringMatching(/bad\.json is not JSON/) });
    expect(await cli(['rules', 'import', path.join(dir, 'missing.json')])).toMatchObject({ code: 2, stderr: expect.stringMatching(/cannot read .*missing\.json: no such file/) });
    expect((await listRules(db.pool, { all: true })).some((r) => r.rule_id === 'r1')).toBe(false);
  });

  it('writes markdown a coding agent reads as instructions', async () => {
    const file = path.join(dir, 'AGENTS.md');
    expect((await cli(['rules', 'export', file, '--format', 'markdown'])).code).toBe(0);
    const markdown = readFileSync(file, 'utf8');
    expect(markdown).toMatch(/^# Promoted rules\n/);
    expect(markdown).toContain('## Phase `auth`\n\nBased on past successful fixes in auth:\n\nRecommended approaches:\n- Retry the auth provider with jittered backoff\n');
    expect(markdown).toMatch(/- `rule-aaaa1111bbbb` — 100\.0 % success \(30\/30 replay runs, Wilson 95 % lower bound 88\.6 %\); promoted 2026-06-11; task FAILURE-\d+/);
    expect(markdown).not.toContain('## Phase `checkout`'); // demoted
    expect(await cli(['rules', 'export', file, '--format', 'yaml'])).toMatchObject({ code: 2, stderr: expect.stringMatching(/--format must be json or markdown/) });
  });
});
