/**
 * A small target repository in a temp dir, like the agent's: `src/fix.txt` holds a bug the replay command trips on,
 * `src/other.txt` is outside every task's scope. The replay command (`replay.sh`, committed) really runs the code of
 * its worktree, so a candidate that fixes `src/fix.txt` changes outcomes and one that does not, does not.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export interface TargetRepo {
  dir: string;
  /** A directory outside the repository for executor scripts and markers. */
  scratch: string;
  git(...args: string[]): string;
  /** An executor script (argv for executor.command) whose body is a POSIX sh snippet run in the candidate worktree. */
  executor(name: string, body: string): string[];
}

const REPLAY_SH = `#!/bin/sh
# The case's outcome is decided by the code under test: src/fix.txt must say "fixed".
if grep -q fixed src/fix.txt; then
  echo '{"road":{"outcome":"SUCCESS","tokens":1000}}'
else
  echo "builder crashed on case $ROAD_CASE_ID" >&2
  echo '{"road":{"outcome":"FAILED","tokens":1500,"stop_reason":"builder_crash"}}'
fi
`;

export function createTargetRepo(): TargetRepo {
  const root = mkdtempSync(path.join(os.tmpdir(), 'road-target-'));
  const dir = path.join(root, 'repo');
  const scratch = path.join(root, 'scratch');
  execFileSync('mkdir', ['-p', path.join(dir, 'src'), scratch]);
  const git = (...args: string[]) => execFileSync('git', args, { cwd: dir, encoding: 'utf8', env: { ...process.env, GIT_AUTHOR_NAME: 'Agent', GIT_AUTHOR_EMAIL: 'agent@example.com', GIT_COMMITTER_NAME: 'Agent', GIT_COMMITTER_EMAIL: 'agent@example.com' } });
  git('init', '-q', '-b', 'main');
  writeFileSync(path.join(dir, 'src', 'fix.txt'), 'broken\n');
  writeFileSync(path.join(dir, 'src', 'other.txt'), 'other\n');
  writeFileSync(path.join(dir, 'replay.sh'), REPLAY_SH);
  chmodSync(path.join(dir, 'replay.sh'), 0o755);
  git('add', '-A');
  git('commit', '-q', '-m', 'baseline');
  return {
    dir,
    scratch,
    git,
    executor(name, body) {
      const file = path.join(scratch, `${name}.sh`);
      writeFileSync(
        file,
        `#!/bin/sh\nset -e\nexport GIT_AUTHOR_NAME=road-bot GIT_AUTHOR_EMAIL=road-bot@example.com GIT_COMMITTER_NAME=road-bot GIT_COMMITTER_EMAIL=road-bot@example.com\n${body}\n`,
      );
      return ['sh', file];
    },
  };
}
