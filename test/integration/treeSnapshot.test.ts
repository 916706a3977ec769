import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_SNAPSHOT_ENTRIES, snapshotTree, unchangedSince } from '../../activities/treeSnapshot.js';

let repo: string;
let worktree: string;
const git = (cwd: string, ...args: string[]) => execFileSync('git', ['-c', 'user.name=t', '-c', 'user.email=t@x', ...args], { cwd, encoding: 'utf8' });
const old = new Date(Date.now() - 60_000);

beforeAll(() => {
  repo = mkdtempSync(path.join(os.tmpdir(), 'road-test-snapshot-'));
  git(repo, 'init', '--quiet', '--initial-branch=main');
  writeFileSync(path.join(repo, 'a.txt'), 'aaaa\n');
  git(repo, 'add', '.');
  git(repo, 'commit', '--quiet', '-m', 'a');
  worktree = path.join(repo, '..', `${path.basename(repo)}-wt`);
  git(repo, 'worktree', 'add', '--detach', '--quiet', worktree, 'main');
});
afterAll(() => {
  rmSync(repo, { recursive: true, force: true });
  rmSync(worktree, { recursive: true, force: true });
});

/** Ages every entry so the snapshot is trusted (as it is a run or two after a checkout). */
function agedSnapshot() {
  for (const file of ['', 'a.txt', '.git']) utimesSync(path.join(worktree, file), old, old);
  // ctime cannot be set back: wait until it is older than the racy window instead.
  return new Promise<ReturnType<typeof snapshotTree>>((resolve) => setTimeout(() => resolve(snapshotTree(worktree)), 150));
}

describe('tree snapshots', () => {
  it('does not trust a tree written a moment ago (file times are too coarse to tell a change then)', () => {
    writeFileSync(path.join(worktree, 'a.txt'), 'aaaa\n');
    expect(snapshotTree(worktree)!.trusted).toBe(false);
  });

  it('stays unchanged when nothing was written, and sees a same-size rewrite with its mtime set back', async () => {
    const snapshot = (await agedSnapshot())!;
    expect(snapshot.trusted).toBe(true);
    expect(unchangedSince(snapshot)).toBe(true);
    writeFileSync(path.join(worktree, 'a.txt'), 'bbbb\n');
    utimesSync(path.join(worktree, 'a.txt'), old, old); // the ctime still moves
    expect(unchangedSince(snapshot)).toBe(false);
    git(worktree, 'checkout', '--force', '--quiet', '--detach', 'main');
  });

  it('sees a mode change, a new file and a moved HEAD', async () => {
    let snapshot = (await agedSnapshot())!;
    chmodSync(path.join(worktree, 'a.txt'), 0o755);
    expect(unchangedSince(snapshot)).toBe(false);
    git(worktree, 'checkout', '--force', '--quiet', '--detach', 'main');

    snapshot = (await agedSnapshot())!;
    writeFileSync(path.join(worktree, 'new.txt'), 'x');
    expect(unchangedSince(snapshot)).toBe(false);
    rmSync(path.join(worktree, 'new.txt'));

    snapshot = (await agedSnapshot())!;
    git(worktree, 'commit', '--quiet', '--allow-empty', '-m', 'empty'); // no file of the tree changes
    expect(unchangedSince(snapshot)).toBe(false);
  });

  it(`gives up on trees of more than ${MAX_SNAPSHOT_ENTRIES} entries (git checks those)`, () => {
    const big = mkdtempSync(path.join(os.tmpdir(), 'road-test-bigtree-'));
    try {
      writeFileSync(path.join(big, '.git'), 'gitdir: /nonexistent\n');
      for (let i = 0; i < MAX_SNAPSHOT_ENTRIES; i++) writeFileSync(path.join(big, `f${i}`), '');
      expect(snapshotTree(big)).toBeUndefined();
    } finally {
      rmSync(big, { recursive: true, force: true });
    }
  });
});
