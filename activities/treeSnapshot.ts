/**
 * "Did this run touch its worktree?" without starting a process. A `git status` per run costs a process start of
 * the worker (a fork of a large Node process) plus git's own start — milliseconds of CPU each, which a campaign of
 * short runs on a small machine pays hundreds of times. This module answers in-process from the stat data of every
 * entry of a clean worktree (and of its HEAD and index in the git directory), as git's index does:
 *
 * - a file written, truncated or chmod-ed gets a new ctime (which no program can set back);
 * - an entry created, deleted or renamed changes its directory's mtime and ctime;
 * - a commit or checkout rewrites HEAD or the index.
 *
 * Like git, it must distrust "racily clean" entries: file times come from a coarse kernel clock, so a change made
 * within a few milliseconds of the previous one can leave them equal. A snapshot with any entry younger than
 * RACY_MS is not trusted, and the caller asks git instead (and snapshots again later, when the entries are older).
 */
import { lstatSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';

/** Trees with more entries than this are checked by git: a stat walk of them would block the event loop too long. */
export const MAX_SNAPSHOT_ENTRIES = 2_000;
/** Far above the kernel's timestamp granularity (a scheduler tick, ≤ 10 ms). */
const RACY_MS = 100;

export interface TreeSnapshot {
  entries: Array<[file: string, stat: string]>;
  /** False when an entry changed too recently for its times to be trusted. */
  trusted: boolean;
}

const statKey = (file: string): string | undefined => {
  const s = lstatSync(file, { bigint: true, throwIfNoEntry: false });
  return s && `${s.ino}:${s.mode}:${s.size}:${s.mtimeNs}:${s.ctimeNs}`;
};

/** The stat data of every entry of `worktree` and of its HEAD and index; undefined for a tree too large to walk. */
export function snapshotTree(worktree: string): TreeSnapshot | undefined {
  const takenAtNs = BigInt(Date.now()) * 1_000_000n;
  const files: string[] = [worktree];
  const dirs: string[] = [worktree];
  for (let dir = dirs.pop(); dir !== undefined; dir = dirs.pop()) {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const file = path.join(dir, entry.name);
      files.push(file);
      if (entry.isDirectory()) dirs.push(file);
      if (files.length > MAX_SNAPSHOT_ENTRIES) return undefined;
    }
  }
  const racyNs = BigInt(RACY_MS) * 1_000_000n;
  let trusted = true;
  const entries: TreeSnapshot['entries'] = [];
  for (const file of files) {
    const s = lstatSync(file, { bigint: true, throwIfNoEntry: false });
    if (!s) continue;
    entries.push([file, `${s.ino}:${s.mode}:${s.size}:${s.mtimeNs}:${s.ctimeNs}`]);
    if (takenAtNs - s.mtimeNs < racyNs || takenAtNs - s.ctimeNs < racyNs) trusted = false;
  }
  // git replaces HEAD and the index through a lock file and a rename: a new inode, whatever the clock says. So they
  // need no racy check (git's own `git status` rewrites the index, which would otherwise keep a snapshot untrusted).
  for (const file of gitFilesOf(worktree)) {
    const key = statKey(file);
    if (key) entries.push([file, key]);
  }
  return { entries, trusted };
}

/** True when every entry still has the stat data it had: nothing was written, created, deleted or moved. */
export function unchangedSince(snapshot: TreeSnapshot): boolean {
  return snapshot.entries.every(([file, key]) => statKey(file) === key);
}

/** HEAD and index of a worktree live in the repository's git directory, named by the worktree's `.git` file. */
function gitFilesOf(worktree: string): string[] {
  const match = /^gitdir: (.+)$/m.exec(readFileSync(path.join(worktree, '.git'), 'utf8'));
  if (!match) return [];
  const gitDir = path.resolve(worktree, match[1]!.trim());
  return [path.join(gitDir, 'HEAD'), path.join(gitDir, 'index')];
}
