/**
 * The improvement loop's own side effects: landing an approved fix in the target repository (road.config.json
 * `repository.onApproval`) and writing the loop report. Both are idempotent: a retry after a crash never merges twice.
 */
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { mergeCommandFor, type CandidateSummary } from '../domain/followup.js';
import { renderLoopMarkdown, type LoopReport, type LoopTaskEntry } from '../domain/loop.js';
import type { RoadConfig } from '../domain/config.js';
import { classifyActivityFailures } from './errors.js';
import { addWorktree, git, GitError, isAncestor, removeWorktree, resolveCommit } from './git.js';
import { targetRepository } from './repository.js';

export interface LandCandidateInput {
  taskId: string;
  candidate: CandidateSummary;
}

export type Landing = NonNullable<LoopTaskEntry['landing']>;

export function createLoopActivities({ config, reportsDir }: { config: RoadConfig; reportsDir: string }) {
  return classifyActivityFailures({
    /**
     * "branch" (default): the fix stays on road/<task-id> and the answer is the command that merges it. "merge": ROAD
     * moves the baseline branch itself — fast-forward when it can, else a merge commit made in a scratch worktree;
     * a conflict changes nothing. Already merged (a retry) is a success, not a second merge.
     */
    async landCandidate(input: LandCandidateInput): Promise<Landing> {
      const repo = await targetRepository(config);
      const { baselineRef, branch, treatmentSha } = input.candidate;
      const command = mergeCommandFor(repo, baselineRef, branch);
      if (config.repository?.onApproval !== 'merge') return { status: 'branch', detail: `on ${branch}; land it with: ${command}` };

      const ref = `refs/heads/${baselineRef}`;
      const tip = await resolveCommit(repo, ref);
      if (!tip) return { status: 'refused', detail: `repository.baselineRef ${baselineRef} is not a branch, so ROAD cannot merge into it; ${command}` };
      if (await isAncestor(repo, treatmentSha, tip)) return { status: 'already_merged', detail: `${treatmentSha.slice(0, 12)} is already on ${baselineRef}` };

      const checkedOutIn = await worktreeOf(repo, ref);
      if (checkedOutIn && (await git(checkedOutIn, ['status', '--porcelain', '--untracked-files=no'])).trim()) {
        return { status: 'refused', detail: `${baselineRef} is checked out with uncommitted changes in ${checkedOutIn}; nothing changed. Land it by hand: ${command}` };
      }
      let newTip = treatmentSha;
      let how = 'fast-forward';
      if (!(await isAncestor(repo, tip, treatmentSha))) {
        const merged = await mergeInScratch(repo, tip, treatmentSha, `ROAD: merge ${branch} (${input.taskId})`);
        if (!merged) return { status: 'conflict', detail: `${baselineRef} moved since the candidate and the merge conflicts; nothing changed. Rebase ${branch} or merge by hand: ${command}` };
        newTip = merged;
        how = 'merge commit';
      }
      if (checkedOutIn) await git(checkedOutIn, ['merge', '--ff-only', '--quiet', newTip]);
      // Compare-and-swap: if someone moved the branch meanwhile, git refuses and the retry starts from the new tip.
      else await git(repo, ['update-ref', '-m', `road: land ${input.taskId}`, ref, newTip, tip]);
      return { status: 'merged', detail: `${baselineRef} ${tip.slice(0, 12)} → ${newTip.slice(0, 12)} (${how})` };
    },

    /** The loop report as files a person opens (markdown) and a program reads (JSON). */
    async writeLoopReport(input: { report: LoopReport }): Promise<{ markdown: string; json: string }> {
      const base = path.join(reportsDir, `loop-${input.report.loopId.replace(/[^A-Za-z0-9._@-]/g, '_')}`);
      await mkdir(reportsDir, { recursive: true });
      const paths = { markdown: `${base}.md`, json: `${base}.json` };
      const report = { ...input.report, reportPaths: paths };
      await Promise.all([writeFile(paths.markdown, renderLoopMarkdown(report)), writeFile(paths.json, JSON.stringify(report, null, 2) + '\n')]);
      return paths;
    },
  });
}

/** The worktree that has `ref` checked out, if any (the main one of a non-bare repository, usually). */
async function worktreeOf(repo: string, ref: string): Promise<string | undefined> {
  let current: string | undefined;
  for (const line of (await git(repo, ['worktree', 'list', '--porcelain'])).split('\n')) {
    if (line.startsWith('worktree ')) current = line.slice('worktree '.length);
    else if (line === `branch ${ref}`) return current;
  }
  return undefined;
}

/** A merge of `theirs` into `ours` in a scratch worktree: the merge commit's sha, or undefined on a conflict. */
async function mergeInScratch(repo: string, ours: string, theirs: string, message: string): Promise<string | undefined> {
  const dir = path.join(await mkdtemp(path.join(os.tmpdir(), 'road-land-')), 'worktree');
  await addWorktree(repo, dir, ours);
  try {
    await git(dir, ['-c', 'user.name=ROAD', '-c', 'user.email=road@localhost', 'merge', '--no-ff', '--no-edit', '-m', message, theirs]);
    return (await git(dir, ['rev-parse', 'HEAD'])).trim();
  } catch (error) {
    if (!(error instanceof GitError)) throw error;
    return undefined;
  } finally {
    await removeWorktree(repo, dir);
  }
}
