/**
 * Reusable worktrees for replay runs. A fresh `git worktree add` per run costs tens of milliseconds and the disk
 * churn of a full checkout; a campaign runs hundreds of short runs of two refs. So each worker process keeps, per
 * commit, up to twice as many worktrees as runs of it in flight, and leases one per run. A run that wrote nothing
 * (a stat comparison in-process, activities/treeSnapshot.ts) puts its worktree straight back; otherwise `git status`
 * decides and a reset restores it, while the next run uses a spare.
 *
 * Layout: <tmpdir>/road-replay-worktrees/<repository hash>/<host>-<pid>-<random>/<sha12>-<n>. The process directory
 * is this process's alone, so two workers on one machine never share a worktree; directories of processes that died
 * without cleaning up are removed when a pool for the same repository starts.
 */
import { createHash, randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { mkdir, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { addWorktree, git, removeWorktree, resetWorktree, worktreeState } from './git.js';
import { snapshotTree, unchangedSince, type TreeSnapshot } from './treeSnapshot.js';

export const WORKTREE_ROOT = path.join(os.tmpdir(), 'road-replay-worktrees');

interface CommitSlots {
  free: string[];
  /** Worktrees being put back after a run. */
  cleaning: Set<Promise<void>>;
  created: number;
  leased: number;
}

export class WorktreePool {
  readonly dir: string;
  private readonly commits = new Map<string, CommitSlots>();
  private readonly all = new Set<string>();
  /** The stat data of each clean worktree: a run that wrote nothing is put back without asking git. */
  private readonly snapshots = new Map<string, TreeSnapshot | undefined>();
  private started: Promise<void> | undefined;
  private disposed = false;

  constructor(
    readonly repo: string,
    private readonly onError: (message: string, error: Error) => void = () => undefined,
  ) {
    this.dir = path.join(repositoryDir(repo), `${os.hostname()}-${process.pid}-${randomBytes(4).toString('hex')}`);
  }

  /** A worktree checked out at `sha`, clean, for this caller alone until `release`. */
  async lease(sha: string): Promise<string> {
    if (this.disposed) throw new Error('the replay worktree pool was disposed (the worker is shutting down)');
    this.started ??= this.start();
    await this.started;
    const slots = this.slotsOf(sha);
    for (;;) {
      const free = slots.free.pop();
      if (free) {
        slots.leased++;
        return free;
      }
      // Up to one spare per run in flight: the next run takes a clean worktree while the last one's is being
      // restored, so restoring never sits between two runs; beyond that, waiting for a restore beats a checkout.
      if (slots.created < 2 * (slots.leased + 1) || !slots.cleaning.size) break;
      await Promise.race(slots.cleaning);
    }
    const dir = path.join(this.dir, `${sha.slice(0, 12)}-${slots.created++}`);
    slots.leased++;
    try {
      await addWorktree(this.repo, dir, sha);
    } catch (error) {
      slots.leased--;
      throw error;
    }
    this.all.add(dir);
    // Just checked out, so not trusted yet (racily clean): the first release asks git and snapshots again.
    this.snapshots.set(dir, snapshotTree(dir));
    return dir;
  }

  /**
   * Puts a worktree back once it is at `sha` again; returns at once (the caller's run is finished, its result need
   * not wait). A worktree that cannot be restored is removed, and the next lease creates a new one.
   */
  release(sha: string, dir: string): void {
    const slots = this.slotsOf(sha);
    slots.leased--;
    if (!this.disposed && this.untouched(dir)) {
      slots.free.push(dir);
      return;
    }
    const restore = (async () => {
      const state = await worktreeState(dir, { ignored: true });
      if (state.head !== sha || !state.detached || state.dirt.length) await resetWorktree(dir, sha);
      if (this.disposed) throw new Error('disposed');
      this.snapshots.set(dir, snapshotTree(dir));
      slots.free.push(dir);
    })()
      .catch(async (error: Error) => {
        if (!this.disposed) this.onError(`replay worktree ${dir} could not be restored; it is removed`, error);
        this.all.delete(dir);
        this.snapshots.delete(dir);
        await removeWorktree(this.repo, dir).catch(() => undefined);
      })
      .finally(() => slots.cleaning.delete(restore));
    slots.cleaning.add(restore);
  }

  /** True when a trusted snapshot says the run wrote nothing; anything else is left to git. */
  private untouched(dir: string): boolean {
    const snapshot = this.snapshots.get(dir);
    if (!snapshot?.trusted) return false;
    try {
      return unchangedSince(snapshot);
    } catch {
      return false; // an entry the run made unreadable: git will say what happened
    }
  }

  /** Removes every worktree of this pool (worker shutdown); leases after this fail. */
  async dispose(): Promise<void> {
    this.disposed = true;
    await Promise.all([...this.commits.values()].flatMap((slots) => [...slots.cleaning]));
    await Promise.all([...this.all].map((dir) => rm(dir, { recursive: true, force: true })));
    this.all.clear();
    this.snapshots.clear();
    this.commits.clear();
    await rm(this.dir, { recursive: true, force: true });
    // One prune forgets every removed worktree (cheaper than `worktree remove` for each).
    await git(this.repo, ['worktree', 'prune']).catch(() => undefined);
  }

  /** Last resort when the process exits without dispose(): the directories go; git forgets them at its next prune. */
  disposeSync(): void {
    this.disposed = true;
    rmSync(this.dir, { recursive: true, force: true });
  }

  private slotsOf(sha: string): CommitSlots {
    let slots = this.commits.get(sha);
    if (!slots) this.commits.set(sha, (slots = { free: [], cleaning: new Set(), created: 0, leased: 0 }));
    return slots;
  }

  private async start(): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    await reapDeadProcesses(path.dirname(this.dir), this.repo);
  }
}

/** One directory per repository, so a prune after reaping concerns only worktrees of that repository. */
function repositoryDir(repo: string): string {
  return path.join(WORKTREE_ROOT, createHash('sha256').update(repo).digest('hex').slice(0, 16));
}

/** Removes the directories of workers on this host whose process is gone, then lets git forget their worktrees. */
async function reapDeadProcesses(dir: string, repo: string): Promise<void> {
  const host = os.hostname();
  let reaped = 0;
  for (const name of await readdir(dir).catch(() => [] as string[])) {
    const match = /^(.+)-(\d+)-[0-9a-f]+$/.exec(name);
    if (!match || match[1] !== host || isAlive(Number(match[2]))) continue;
    await rm(path.join(dir, name), { recursive: true, force: true });
    reaped++;
  }
  if (reaped) await git(repo, ['worktree', 'prune']);
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM'; // alive, someone else's
  }
}
