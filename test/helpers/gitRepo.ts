/** Real git repositories in temp dirs for candidate and replay tests, and a look at processes that must be gone. */
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export interface TestRepo {
  /** The repository's work tree (symlinks resolved, as ROAD reports paths). */
  dir: string;
  git(...args: string[]): string;
  /** Writes files (repo-relative path → content), stages them and commits; returns the new sha. */
  commit(message: string, files: Record<string, string>): string;
  sha(ref: string): string;
  worktrees(): string[];
  remove(): void;
}

const IDENTITY = ['-c', 'user.name=ROAD test', '-c', 'user.email=tester@road.test', '-c', 'commit.gpgsign=false'];

export function createTestRepo(files: Record<string, string> = {}): TestRepo {
  const dir = execFileSync('realpath', [mkdtempSync(path.join(os.tmpdir(), 'road-test-repo-'))], { encoding: 'utf8' }).trim();
  const git = (...args: string[]) => execFileSync('git', [...IDENTITY, ...args], { cwd: dir, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  git('init', '--quiet', '--initial-branch=main');
  const repo: TestRepo = {
    dir,
    git,
    commit(message, content) {
      for (const [file, text] of Object.entries(content)) {
        mkdirSync(path.dirname(path.join(dir, file)), { recursive: true });
        writeFileSync(path.join(dir, file), text);
      }
      git('add', '--all');
      git('commit', '--quiet', '--allow-empty', '-m', message);
      return repo.sha('HEAD');
    },
    sha: (ref) => git('rev-parse', '--verify', `${ref}^{commit}`).trim(),
    worktrees: () =>
      git('worktree', 'list', '--porcelain')
        .split('\n')
        .filter((line) => line.startsWith('worktree '))
        .map((line) => line.slice('worktree '.length)),
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
  if (Object.keys(files).length) repo.commit('baseline', files);
  return repo;
}

/** A shell script in a temp dir outside any repository (an executor or a replay command written by the test). */
export function writeScript(dir: string, name: string, body: string): string {
  const file = path.join(dir, name);
  writeFileSync(file, `#!/bin/sh\nset -e\n${body}\n`);
  chmodSync(file, 0o755);
  return file;
}

/** True while `pid` is a live process; a zombie waiting for its parent counts as gone. */
export function isRunning(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

/** Pids listed one per line in `file` (what a test command wrote about its children). */
export function pidsIn(file: string): number[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .split(/\s+/)
    .filter(Boolean)
    .map(Number);
}

/** Waits until `check` holds (polling), or fails with `what`. */
export async function eventually(check: () => boolean, what: string, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

const scratchDirs: string[] = [];

/** A temp dir removed by `removeScratchDirs()` (call it in afterAll). */
export function scratchDir(prefix: string): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), prefix));
  scratchDirs.push(dir);
  return dir;
}

export function removeScratchDirs(): void {
  for (const dir of scratchDirs.splice(0)) rmSync(dir, { recursive: true, force: true });
}
