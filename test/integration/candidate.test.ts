/**
 * Candidates on real git repositories in temp dirs and a real PostgreSQL: the executor runs in a fresh worktree, its
 * commit's real diff is checked against allowed_files (renames, deletions and mode changes included), the branch
 * road/<task-id> is recorded, and the worktree is gone afterwards whatever happened.
 */
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createCandidateActivities, type Candidate } from '../../activities/candidate.js';
import { loadConfig } from '../../client/config.js';
import { listCandidateAttempts } from '../../db/candidates.js';
import { configSchema, type RoadConfig } from '../../domain/config.js';
import type { FollowupTask } from '../../domain/tasks.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import { createTestRepo, eventually, isRunning, pidsIn, removeScratchDirs, scratchDir, writeScript, type TestRepo } from '../helpers/gitRepo.js';

let db: TestDatabase;
let repo: TestRepo;
let scripts: string;
let baseline: string;

beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  await db.drop();
  removeScratchDirs();
});

beforeEach(() => {
  repo = createTestRepo({
    'src/planner.py': 'def plan():\n    return 1\n',
    'src/limits.py': 'LIMIT = 10\n',
    'src/secret.py': 'KEY = "x"\n',
    'README.md': '# agent\n',
  });
  baseline = repo.sha('main');
  scripts = scratchDir('road-test-executor-');
  return () => repo.remove();
});

let taskCounter = 0;
function task(allowed: string[] = ['src/planner.py', 'src/limits.py']): FollowupTask {
  taskCounter++;
  return {
    id: `COST-SINK-${taskCounter}`,
    fingerprint: `fp-${taskCounter}`,
    type: 'cost_sink',
    rank: 1,
    severity: 'high',
    status: 'open',
    title: 'plan spends too many tokens',
    description: 'cut the planner prompt',
    phase_ids: ['plan'],
    evidence: {},
    allowed_files: allowed,
    scope: { source: 'evidence', note: 'test' },
    test_plan: [],
    preflight: [],
    max_attempts: 2,
    approval_gate: true,
  };
}

/** An executor: a script that edits the worktree it runs in (its cwd) and commits as executor@road.test. */
function executor(body: string): string[] {
  const side = scratchDir('road-test-side-');
  const script = writeScript(
    scripts,
    `exec-${Math.random().toString(36).slice(2)}.sh`,
    [
      `side="${side}"`,
      'pwd > "$side/cwd"',
      'cp "$ROAD_TASK_FILE" "$side/task.json"',
      'echo "$ROAD_TASK_ID $ROAD_ATTEMPT" > "$side/env"',
      'commit() { git -c user.name=Executor -c user.email=executor@road.test -c commit.gpgsign=false commit --quiet -m "$1"; }',
      body,
    ].join('\n'),
  );
  return ['sh', script, side];
}
const sideOf = (command: string[]) => command[2]!;

function configWith(command: string[] | 'manual', extra: Partial<{ timeout: string; baselineRef: string; path: string }> = {}): RoadConfig {
  return configSchema.parse({
    repository: { path: extra.path ?? repo.dir, baselineRef: extra.baselineRef ?? 'main' },
    executor: command === 'manual' ? 'manual' : { command, timeout: extra.timeout ?? '1m' },
  });
}

function activities(config: RoadConfig) {
  return createCandidateActivities({ pool: db.pool, config });
}

async function failureOf(promise: Promise<unknown>): Promise<ApplicationFailure> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(ApplicationFailure);
  return error as ApplicationFailure;
}

// Refusals are the point of most tests here: the SDK's WARN line for each failed activity would only be noise.
const inEnv = (attempt: number) => new MockActivityEnvironment({ attempt }, { logger: new DefaultLogger('ERROR') });
/** Runs an activity as attempt `attempt` would run (heartbeats and cancellation included). */
const run = <I, R>(attempt: number, activity: (input: I) => Promise<R>, input: I): Promise<R> => inEnv(attempt).run(activity, input) as Promise<R>;

describe('createCandidate', () => {
  it('records the executor commit on road/<task-id> with its real diff, and removes the worktree', async () => {
    const t = task();
    const command = executor(['printf "def plan():\\n    return 2\\n# cheaper\\n" > src/planner.py', 'git add src/planner.py', 'commit "cheaper plan"'].join('\n'));
    const candidate: Candidate = await run(1, activities(configWith(command)).createCandidate, { task: t });

    const branchSha = repo.sha(`road/${t.id}`);
    expect(candidate).toEqual({
      taskId: t.id,
      baselineRef: 'main',
      baselineSha: baseline,
      branch: `road/${t.id}`,
      treatmentSha: branchSha,
      author: 'executor@road.test',
      changedFiles: ['src/planner.py'],
      // "return 1" became "return 2" and a comment line was added: 2 insertions, 1 deletion.
      diffStat: { files: 1, insertions: 2, deletions: 1 },
      notes: [],
    });
    expect(repo.git('log', '-1', '--format=%s', branchSha).trim()).toBe('cheaper plan');
    expect(repo.git('rev-parse', `${branchSha}^`).trim()).toBe(baseline);

    // The executor saw the task, its id and attempt, and ran in a worktree that no longer exists.
    const side = sideOf(command);
    expect(JSON.parse(readFileSync(path.join(side, 'task.json'), 'utf8'))).toEqual(t);
    expect(readFileSync(path.join(side, 'env'), 'utf8').trim()).toBe(`${t.id} 1`);
    const cwd = readFileSync(path.join(side, 'cwd'), 'utf8').trim();
    expect(cwd).not.toBe(repo.dir);
    expect(existsSync(cwd)).toBe(false);
    expect(repo.worktrees()).toEqual([repo.dir]);
    // The main work tree was not touched: still on main at the baseline.
    expect(repo.sha('HEAD')).toBe(baseline);
    expect(repo.git('status', '--porcelain')).toBe('');

    const [row] = await listCandidateAttempts(db.pool, t.id);
    expect(row).toMatchObject({ attempt: 1, source: 'executor', status: 'ready', treatmentSha: branchSha, branch: `road/${t.id}`, changedFiles: ['src/planner.py'] });
  });

  it.each([
    {
      name: 'a rename of an allowed file to a path outside the scope',
      script: 'git mv src/planner.py src/planner_v2.py\ncommit "rename"',
      offending: ['src/planner_v2.py'],
    },
    {
      name: 'a deletion of a file outside the scope',
      script: 'git rm --quiet src/secret.py\ncommit "delete"',
      offending: ['src/secret.py'],
    },
    {
      name: 'a mode change of a file outside the scope (content unchanged)',
      script: 'chmod +x README.md\ngit add README.md\ncommit "mode"',
      offending: ['README.md'],
    },
    {
      name: 'an allowed edit next to a new file outside the scope',
      script: 'echo "# more" >> src/limits.py\nmkdir -p tools && echo x > tools/new.sh\ngit add -A\ncommit "both"',
      offending: ['tools/new.sh'],
    },
  ])('refuses $name, naming the offending paths (retryable: the second attempt may do better)', async ({ script, offending }) => {
    const t = task();
    const failure = await failureOf(run(1, activities(configWith(executor(script))).createCandidate, { task: t }));
    expect(failure.type).toBe('CandidateOutOfScope');
    expect(failure.nonRetryable).toBe(false);
    for (const file of offending) expect(failure.message).toContain(file);
    expect(failure.message).toContain('allowed: src/planner.py, src/limits.py');
    expect(repo.git('branch', '--list', `road/${t.id}`).trim()).toBe(''); // nothing recorded as the treatment
    expect(repo.worktrees()).toEqual([repo.dir]);
    const [row] = await listCandidateAttempts(db.pool, t.id);
    expect(row).toMatchObject({ status: 'out_of_scope', offendingFiles: offending, branch: null });
  });

  it('counts both paths of a rename: moving an out-of-scope file onto an allowed path is refused', async () => {
    const t = task();
    const failure = await failureOf(run(1, activities(configWith(executor('git rm --quiet src/planner.py\ngit mv src/secret.py src/planner.py\ncommit "swap"'))).createCandidate, { task: t }));
    expect(failure.type).toBe('CandidateOutOfScope');
    expect(failure.message).toMatch(/1 file\(s\) outside the task's allowed_files: src\/secret\.py /);
  });

  it('accepts a rename within the scope and reports both paths as changed', async () => {
    const t = task(['src/planner.py', 'src/planner_v2.py']);
    const candidate = await run(1, activities(configWith(executor('git mv src/planner.py src/planner_v2.py\ncommit "rename"'))).createCandidate, { task: t });
    expect(candidate.changedFiles).toEqual(['src/planner.py', 'src/planner_v2.py']);
    // Without rename detection a rename is a deletion and an addition of the same 2 lines.
    expect(candidate.diffStat).toEqual({ files: 2, insertions: 2, deletions: 2 });
  });

  it('moves road/<task-id> to the second attempt, and stores both attempts', async () => {
    const t = task();
    const script = [
      'if [ "$ROAD_ATTEMPT" = 1 ]; then echo "KEY = 1" > src/secret.py; else echo "LIMIT = 5" > src/limits.py; fi',
      'git add -A',
      'commit "attempt $ROAD_ATTEMPT"',
    ].join('\n');
    const acts = activities(configWith(executor(script)));
    const first = await failureOf(run(1, acts.createCandidate, { task: t }));
    expect(first.type).toBe('CandidateOutOfScope');
    const second = await run(2, acts.createCandidate, { task: t });
    expect(second.changedFiles).toEqual(['src/limits.py']);
    expect(repo.sha(`road/${t.id}`)).toBe(second.treatmentSha);

    // A later success replaces an earlier one on the branch (force-update), e.g. after a reviewer asked for a redo.
    const again = await run(2, activities(configWith(executor('echo "LIMIT = 4" > src/limits.py\ngit add -A\ncommit "redo"'))).createCandidate, { task: t, attempt: 3 });
    expect(repo.sha(`road/${t.id}`)).toBe(again.treatmentSha);
    expect(again.treatmentSha).not.toBe(second.treatmentSha);

    const rows = await listCandidateAttempts(db.pool, t.id);
    expect(rows.map((r) => [r.attempt, r.status])).toEqual([
      [1, 'out_of_scope'],
      [2, 'ready'],
      [3, 'ready'],
    ]);
  });

  it('refuses an executor that leaves no commit, naming its uncommitted changes', async () => {
    const t = task();
    const failure = await failureOf(run(1, activities(configWith(executor('echo "LIMIT = 5" > src/limits.py'))).createCandidate, { task: t }));
    expect(failure.type).toBe('CandidateNoCommit');
    expect(failure.nonRetryable).toBe(false);
    expect(failure.message).toContain('the executor left no commit');
    expect(failure.message).toContain('src/limits.py');
    expect(repo.worktrees()).toEqual([repo.dir]);
  });

  it('ignores uncommitted changes next to a commit, and says so', async () => {
    const t = task();
    const candidate = await run(1, 
      activities(configWith(executor('echo "LIMIT = 5" > src/limits.py\ngit add src/limits.py\ncommit "limit"\necho scratch > notes.txt\necho "KEY = 2" > src/secret.py'))).createCandidate,
      { task: t },
    );
    expect(candidate.changedFiles).toEqual(['src/limits.py']);
    expect(candidate.notes).toEqual(['ignored 2 uncommitted change(s) the executor left: src/secret.py, notes.txt']);
  });

  it('fails with the end of stderr when the executor exits non-zero (retryable)', async () => {
    const failure = await failureOf(run(1, activities(configWith(executor('echo "model overloaded" >&2\nexit 3'))).createCandidate, { task: task() }));
    expect(failure.type).toBe('ExecutorFailed');
    expect(failure.nonRetryable).toBe(false);
    expect(failure.message).toContain('exited with status 3');
    expect(failure.message).toContain('model overloaded');
    expect(repo.worktrees()).toEqual([repo.dir]);
  });

  it('kills the executor and every process it started when executor.timeout passes', async () => {
    const pids = path.join(scratchDir('road-test-pids-'), 'pids');
    const command = executor(`sleep 100 & echo $! >> "${pids}"\nsleep 100 & echo $! >> "${pids}"\necho $$ >> "${pids}"\nwait`);
    const started = Date.now();
    const failure = await failureOf(run(1, activities(configWith(command, { timeout: '1s' })).createCandidate, { task: task() }));
    expect(failure.type).toBe('ExecutorTimedOut');
    expect(failure.message).toContain('executor.timeout (1s)');
    expect(Date.now() - started).toBeLessThan(30_000); // not the 100 s the sleeps would take
    const started3 = pidsIn(pids);
    expect(started3).toHaveLength(3);
    await eventually(() => started3.every((pid) => !isRunning(pid)), 'the executor and its two sleeps to be gone');
    expect(repo.worktrees()).toEqual([repo.dir]);
    expect(existsSync(readFileSync(path.join(sideOf(command), 'cwd'), 'utf8').trim())).toBe(false);
  });

  it('kills the executor tree and removes the worktree when the activity is cancelled', async () => {
    const pids = path.join(scratchDir('road-test-pids-'), 'pids');
    const command = executor(`sleep 100 & echo $! >> "${pids}"\necho $$ >> "${pids}"\nwait`);
    const env = inEnv(1);
    const running = env.run(activities(configWith(command)).createCandidate, { task: task() }) as Promise<Candidate>;
    await eventually(() => pidsIn(pids).length === 2, 'the executor to start');
    env.cancel();
    await expect(running).rejects.toBeInstanceOf(CancelledFailure);
    const started = pidsIn(pids);
    await eventually(() => started.every((pid) => !isRunning(pid)), 'the cancelled executor tree to be gone');
    expect(repo.worktrees()).toEqual([repo.dir]);
    expect(existsSync(readFileSync(path.join(sideOf(command), 'cwd'), 'utf8').trim())).toBe(false);
  });

  it.each([
    ['no repository', () => configSchema.parse({ executor: { command: ['true'] } }), 'repository is not set'],
    ['executor "manual"', () => configWith('manual'), 'executor is "manual"'],
    ['a baseline ref that names no commit', () => configWith(['true'], { baselineRef: 'release' }), 'repository.baselineRef release names no commit'],
    ['a path that is no git repository', () => configWith(['true'], { path: scratchDir('road-test-plain-') }), 'is not a git work tree'],
    ['a path that does not exist', () => configWith(['true'], { path: '/nonexistent/road-repo' }), 'repository.path /nonexistent/road-repo is not a directory'],
    ['a subdirectory of a repository', () => configWith(['true'], { path: path.join(repo.dir, 'src') }), 'not its top: set repository.path to'],
    ['a program that does not exist', () => configWith(['/nonexistent/fixer']), 'executor.command[0] cannot start /nonexistent/fixer: no such file or command'],
  ])('refuses %s as non-retryable InvalidConfiguration naming the key', async (_name, config, message) => {
    const failure = await failureOf(run(1, activities(config()).createCandidate, { task: task() }));
    expect(failure.type).toBe('InvalidConfiguration');
    expect(failure.nonRetryable).toBe(true);
    expect(failure.message).toContain(message);
    expect(repo.worktrees()).toEqual([repo.dir]);
  });

  it('refuses a task without allowed_files before running anything', async () => {
    const command = executor('commit "never"');
    const failure = await failureOf(run(1, activities(configWith(command)).createCandidate, { task: { ...task([]), status: 'needs_scope' as const } }));
    expect(failure.type).toBe('InvalidInput');
    expect(failure.message).toContain('has no allowed_files (status needs_scope)');
    expect(existsSync(path.join(sideOf(command), 'cwd'))).toBe(false);
  });
});

describe('checkManualCandidate', () => {
  const author = 'alice@example.com';

  it('accepts a branch on top of the baseline that stays in scope, and records it on road/<task-id>', async () => {
    const t = task();
    repo.git('switch', '--quiet', '-c', 'alice/fix');
    const fix = repo.commit('fix limits', { 'src/limits.py': 'LIMIT = 3\n' });
    repo.git('switch', '--quiet', 'main');
    const candidate = await run(1, activities(configWith('manual')).checkManualCandidate, { task: t, ref: 'alice/fix', author });
    expect(candidate).toMatchObject({ treatmentSha: fix, baselineSha: baseline, branch: `road/${t.id}`, author, changedFiles: ['src/limits.py'] });
    expect(candidate.diffStat).toEqual({ files: 1, insertions: 1, deletions: 1 });
    expect(repo.sha(`road/${t.id}`)).toBe(fix);
    const [row] = await listCandidateAttempts(db.pool, t.id);
    expect(row).toMatchObject({ source: 'manual', status: 'ready', author });
  });

  it('refuses an out-of-scope ref for good (the person submits another)', async () => {
    repo.git('switch', '--quiet', '-c', 'bob/fix');
    repo.commit('touch the secret', { 'src/secret.py': 'KEY = "y"\n', 'src/limits.py': 'LIMIT = 2\n' });
    repo.git('switch', '--quiet', 'main');
    const failure = await failureOf(run(1, activities(configWith('manual')).checkManualCandidate, { task: task(), ref: 'bob/fix', author }));
    expect(failure.type).toBe('CandidateOutOfScope');
    expect(failure.nonRetryable).toBe(true);
    expect(failure.message).toContain('src/secret.py');
    expect(failure.message).not.toContain('src/limits.py (');
  });

  it('refuses a ref that names no commit, one not on top of the baseline, and the baseline itself', async () => {
    const acts = activities(configWith('manual'));
    const missing = await failureOf(run(1, acts.checkManualCandidate, { task: task(), ref: 'no-such-branch', author }));
    expect([missing.type, missing.nonRetryable]).toEqual(['CandidateInvalid', true]);

    // A branch from before the baseline's latest commit: its diff would silently revert that commit.
    const old = repo.sha('main');
    repo.commit('newer baseline', { 'README.md': '# agent v2\n' });
    repo.git('switch', '--quiet', '-c', 'stale', old);
    repo.commit('fix on a stale base', { 'src/limits.py': 'LIMIT = 1\n' });
    repo.git('switch', '--quiet', 'main');
    const stale = await failureOf(run(1, acts.checkManualCandidate, { task: task(), ref: 'stale', author }));
    expect([stale.type, stale.nonRetryable]).toEqual(['CandidateInvalid', true]);
    expect(stale.message).toContain('does not descend from main');

    const same = await failureOf(run(1, acts.checkManualCandidate, { task: task(), ref: 'main', author }));
    expect([same.type, same.nonRetryable]).toEqual(['CandidateNoCommit', true]);
  });

  it('refuses a ref that looks like an option and an empty author', async () => {
    const acts = activities(configWith('manual'));
    expect((await failureOf(run(1, acts.checkManualCandidate, { task: task(), ref: '--output=/tmp/x', author }))).type).toBe('InvalidInput');
    expect((await failureOf(run(1, acts.checkManualCandidate, { task: task(), ref: 'main', author: ' ' }))).message).toContain('author must be');
  });
});

describe('repository.path in road.config.json', () => {
  it('is relative to the config file, so a worker started elsewhere finds the same repository', async () => {
    const project = scratchDir('road-test-project-');
    mkdirSync(path.join(project, 'conf'));
    const file = path.join(project, 'conf', 'road.config.json');
    writeFileSync(file, JSON.stringify({ repository: { path: path.relative(path.dirname(file), repo.dir) }, executor: 'manual' }));
    const config = loadConfig({ ROAD_CONFIG: file });
    expect(config.repository!.path).toBe(repo.dir);
    repo.git('switch', '--quiet', '-c', 'carol/fix');
    repo.commit('fix', { 'src/limits.py': 'LIMIT = 9\n' });
    repo.git('switch', '--quiet', 'main');
    const candidate = await run(1, activities(config).checkManualCandidate, { task: task(), ref: 'carol/fix', author: 'carol@example.com' });
    expect(candidate.changedFiles).toEqual(['src/limits.py']);
  });
});
