/**
 * The git operations of candidates and replay runs, each one `git` invocation with an argv array (never a shell
 * string: refs and paths come from config and people). Refs are passed after `--end-of-options`, so a ref that looks
 * like an option is refused by git instead of being obeyed.
 */
import { execFile } from 'node:child_process';
import { rm } from 'node:fs/promises';

export class GitError extends Error {
  constructor(
    readonly args: readonly string[],
    readonly exitCode: number | null,
    readonly stderr: string,
    readonly code?: string,
  ) {
    const detail = code === 'ENOENT' ? 'git is not installed (no git on PATH)' : stderr.trim().split('\n').slice(-3).join(' ') || `exit ${exitCode}`;
    super(`git ${args.slice(0, 3).join(' ')}${args.length > 3 ? ' …' : ''}: ${detail}`);
    this.name = 'GitError';
  }
}

/** Variables that would point git at another repository than the cwd's (a worker started from a git hook has them). */
const REPOSITORY_VARIABLES = ['GIT_DIR', 'GIT_WORK_TREE', 'GIT_INDEX_FILE', 'GIT_COMMON_DIR', 'GIT_OBJECT_DIRECTORY', 'GIT_NAMESPACE'];

/** The environment for a child process that runs in a worktree: the worker's, minus git's repository overrides. */
export function cleanEnvironment(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, ...extra };
  for (const name of REPOSITORY_VARIABLES) delete env[name];
  return env;
}

const gitEnvironment = cleanEnvironment({ GIT_TERMINAL_PROMPT: '0', LC_ALL: 'C' });

/** Runs git in `cwd`; resolves stdout, rejects with a GitError holding the exit code and stderr. */
export function git(cwd: string, args: readonly string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('git', args, { cwd, env: gitEnvironment, maxBuffer: 256 * 1024 * 1024, encoding: 'utf8' }, (error, stdout, stderr) => {
      if (!error) return resolve(stdout);
      const code = typeof error.code === 'string' ? error.code : undefined;
      const exitCode = typeof error.code === 'number' ? error.code : null;
      reject(new GitError(args, exitCode, stderr, code));
    });
  });
}

/** True when git answered with exit status 1 (its "no" for --is-ancestor, --verify --quiet…). */
const isNo = (error: unknown) => error instanceof GitError && error.exitCode === 1;

/** The top of the work tree `dir` (an existing directory) belongs to, or undefined when it is in no git work tree. */
export async function repositoryRoot(dir: string): Promise<string | undefined> {
  try {
    return (await git(dir, ['rev-parse', '--show-toplevel'])).trim() || undefined;
  } catch (error) {
    if (error instanceof GitError && error.code === 'ENOENT') throw error; // no git at all
    return undefined;
  }
}

/** The commit `ref` names (annotated tags peeled), or undefined when it names no commit. */
export async function resolveCommit(repo: string, ref: string): Promise<string | undefined> {
  if (ref.startsWith('-')) return undefined;
  try {
    return (await git(repo, ['rev-parse', '--verify', '--quiet', '--end-of-options', `${ref}^{commit}`])).trim() || undefined;
  } catch (error) {
    if (isNo(error) || (error instanceof GitError && error.exitCode === 128)) return undefined;
    throw error;
  }
}

/** Whether `ancestor` is `descendant` or one of its ancestors. */
export async function isAncestor(repo: string, ancestor: string, descendant: string): Promise<boolean> {
  try {
    await git(repo, ['merge-base', '--is-ancestor', ancestor, descendant]);
    return true;
  } catch (error) {
    if (isNo(error)) return false;
    throw error;
  }
}

/**
 * Worktree bookkeeping (.git/worktrees/) is not safe against itself: two `git worktree add` at once in one repository
 * can fail reading each other's half-made entry ("failed to read …/commondir"). This process serialises them per
 * repository; another process doing the same (a second worker on the machine) is ridden out by retrying.
 */
const worktreeLocks = new Map<string, Promise<unknown>>();
async function worktreeOperation<T>(repo: string, operation: () => Promise<T>): Promise<T> {
  const previous = worktreeLocks.get(repo) ?? Promise.resolve();
  const run = previous.catch(() => undefined).then(async () => {
    for (let attempt = 1; ; attempt++) {
      try {
        return await operation();
      } catch (error) {
        const racing = error instanceof GitError && /\.git\/worktrees\/|index\.lock|could not lock|File exists/.test(error.stderr);
        if (!racing || attempt >= 5) throw error;
        await new Promise((resolve) => setTimeout(resolve, 20 * attempt));
      }
    }
  });
  worktreeLocks.set(repo, run);
  try {
    return await run;
  } finally {
    if (worktreeLocks.get(repo) === run) worktreeLocks.delete(repo);
  }
}

/** A detached worktree of `sha` at `dir` (created; its parent must exist). */
export async function addWorktree(repo: string, dir: string, sha: string): Promise<void> {
  await worktreeOperation(repo, () => git(repo, ['worktree', 'add', '--detach', '--quiet', dir, sha]));
}

/**
 * Removes a worktree and its bookkeeping, whatever state the command left it in: `--force` twice also removes a
 * dirty or locked one; when git cannot (the directory half gone), the directory is deleted and `prune` forgets it.
 */
export async function removeWorktree(repo: string, dir: string): Promise<void> {
  await worktreeOperation(repo, async () => {
    try {
      await git(repo, ['worktree', 'remove', '--force', '--force', dir]);
    } catch {
      await rm(dir, { recursive: true, force: true });
    }
    await git(repo, ['worktree', 'prune']);
  });
}

export interface WorktreeState {
  head: string;
  /** False when the command checked out a branch: a reset must then not move that branch. */
  detached: boolean;
  /** Changed, untracked (and, when asked, ignored) paths, as `git status --porcelain=v2 -z` lists them. */
  dirt: string[];
}

/** HEAD and everything that differs from it, in one `git status` (cheap on a small tree). */
export async function worktreeState(worktree: string, options: { ignored: boolean }): Promise<WorktreeState> {
  const args = ['status', '--porcelain=v2', '-z', '--branch', '--untracked-files=all'];
  if (options.ignored) args.push('--ignored=matching');
  const entries = (await git(worktree, args)).split('\0').filter(Boolean);
  const header = (key: string) => entries.find((e) => e.startsWith(`# ${key} `))?.slice(key.length + 3) ?? '';
  return { head: header('branch.oid'), detached: header('branch.head') === '(detached)', dirt: entries.filter((e) => !e.startsWith('#')) };
}

/**
 * Back to exactly `sha`, detached: tracked changes undone, untracked and ignored files (nested repositories too)
 * removed. `checkout --detach`, not `reset --hard`: if the command checked out a branch, a reset would move it.
 */
export async function resetWorktree(worktree: string, sha: string): Promise<void> {
  await git(worktree, ['checkout', '--force', '--quiet', '--detach', sha]);
  await git(worktree, ['clean', '-ffdxq']);
}

/**
 * Every path the change from `base` to `head` touches, sorted: added, modified, deleted, type- or mode-changed.
 * Rename detection is off on purpose — a rename is its old path deleted and its new path added, so both count, and
 * no similarity heuristic decides what is in scope.
 */
export async function changedPaths(repo: string, base: string, head: string): Promise<string[]> {
  const raw = await git(repo, ['diff', '--raw', '-z', '--no-renames', '--no-ext-diff', '--no-textconv', base, head, '--']);
  return parseRawDiff(raw);
}

/** `git diff --raw -z`: `:<modes> <shas> <status>\0<path>\0` ([RC] entries carry a second path). */
export function parseRawDiff(raw: string): string[] {
  const tokens = raw.split('\0');
  const paths = new Set<string>();
  for (let i = 0; i < tokens.length; i++) {
    const meta = tokens[i]!;
    if (!meta.startsWith(':')) continue;
    const status = meta.split(' ').at(-1) ?? '';
    const count = /^[RC]/.test(status) ? 2 : 1;
    for (let k = 1; k <= count; k++) {
      const path = tokens[i + k];
      if (path) paths.add(path);
    }
    i += count;
  }
  return [...paths].sort();
}

export interface DiffStat {
  files: number;
  insertions: number;
  deletions: number;
}

/** Line counts as `git diff --numstat` gives them (binary files count as a file with no lines). */
export async function diffStat(repo: string, base: string, head: string): Promise<DiffStat> {
  const out = await git(repo, ['diff', '--numstat', '-z', '--no-renames', '--no-ext-diff', '--no-textconv', base, head, '--']);
  const stat: DiffStat = { files: 0, insertions: 0, deletions: 0 };
  for (const record of out.split('\0')) {
    const match = /^(\d+|-)\t(\d+|-)\t/.exec(record);
    if (!match) continue;
    stat.files += 1;
    stat.insertions += match[1] === '-' ? 0 : Number(match[1]);
    stat.deletions += match[2] === '-' ? 0 : Number(match[2]);
  }
  return stat;
}

/** The author of a commit as an identity the approval gate compares (`Name <email>` → email, else the name). */
export async function commitAuthor(repo: string, sha: string): Promise<string> {
  const [name = '', email = ''] = (await git(repo, ['log', '-1', '--format=%an%x00%ae', sha, '--'])).trim().split('\0');
  return email.trim() || name.trim();
}

/** Whether `refs/heads/<branch>` is a valid ref name (a task id may hold characters git refuses). */
export async function isValidBranchName(repo: string, branch: string): Promise<boolean> {
  try {
    await git(repo, ['check-ref-format', `refs/heads/${branch}`]);
    return true;
  } catch (error) {
    if (isNo(error)) return false;
    throw error;
  }
}

/** Points `refs/heads/<branch>` at `sha`, creating or moving it (a second attempt replaces the first). */
export async function setBranch(repo: string, branch: string, sha: string, reason: string): Promise<void> {
  await git(repo, ['update-ref', '-m', reason, `refs/heads/${branch}`, sha]);
}
