#!/usr/bin/env node
/**
 * The demo's executor — road.config.json `"executor": { "command": ["node", "examples/demo/executor.mjs"] }` — stands
 * in for the coding agent that writes a follow-up task's fix. ROAD runs it in a fresh worktree of the demo repository
 * at the baseline, with the task at $ROAD_TASK_FILE; it edits one of the task's allowed files and commits. The commit's
 * subject line says what the fix does: it is the line a promoted rule adds to the phase's prevention prompt.
 *
 * It knows one fix per issue of the demo telemetry. The schema-codegen fix is deliberately the wrong one — it retries
 * a deterministic type error instead of correcting the type map — so the demo shows replay turning a candidate down
 * next to ones it promotes.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';

const FIXES = [
  {
    phase: 'auth-migration',
    file: 'src/auth/migrate.sh',
    find: '  for table in "$@"; do echo "$table"; done\n',
    replace: '  # Sorted, like every other transaction on these tables: two lock orders can never cross.\n  printf \'%s\\n\' "$@" | sort\n',
    subject: 'Take the migration\'s table locks in sorted order, the order the session sweeper uses',
  },
  {
    phase: 'schema-codegen',
    file: 'src/codegen/generate.sh',
    find: '  if check_types "$schema"; then\n',
    replace:
      '  # A mismatch may be a bad generation: generate once more before giving up.\n' +
      '  if ! check_types "$schema"; then\n' +
      '    generate_types "$schema" > /dev/null\n' +
      '    TOKENS=$((TOKENS + 2900 + 450 * columns))\n' +
      '  fi\n' +
      '  if check_types "$schema"; then\n',
    subject: 'Regenerate the schema types once when they do not match the rows the driver returns',
  },
  {
    phase: 'docs-build',
    file: 'docs/context.sh',
    find: '  ls docs/pages/*.md\n',
    replace: '  for page in "$@"; do echo "docs/pages/$page.md"; done\n',
    subject: 'Give docs-build only the pages the run changed and the index, not every page',
  },
  {
    phase: 'api-tests',
    file: 'src/api/orders.sh',
    find: '  sort -k2,2nr\n',
    replace: '  # Orders placed in the same millisecond: the later id first, so the order never depends on luck.\n  sort -k2,2nr -k1.3,1nr\n',
    subject: 'List orders by created_at and then by id, so orders placed in the same millisecond keep their order',
  },
];

function fail(message) {
  process.stderr.write(`demo executor: ${message}\n`);
  process.exit(1);
}

const taskFile = process.env.ROAD_TASK_FILE;
if (!taskFile) fail('ROAD_TASK_FILE is not set: ROAD runs this with the task it works on');
const task = JSON.parse(readFileSync(taskFile, 'utf8'));

const fix = FIXES.find((f) => task.phase_ids.includes(f.phase));
if (!fix) fail(`no fix known for ${task.id} (${task.title}): the demo executor knows the four phases of the demo telemetry`);
if (!task.allowed_files.includes(fix.file)) {
  fail(`the fix for ${task.id} belongs in ${fix.file}, which the task may not touch (allowed: ${task.allowed_files.join(', ')})`);
}
const before = readFileSync(fix.file, 'utf8');
if (!before.includes(fix.find)) fail(`${fix.file} no longer has the code this fix rewrites; was it fixed already?`);
writeFileSync(fix.file, before.replace(fix.find, fix.replace));

const identity = ['-c', 'user.name=ROAD demo executor', '-c', 'user.email=executor@road.invalid', '-c', 'commit.gpgsign=false'];
execFileSync('git', [...identity, 'commit', '--quiet', '--no-verify', '-m', fix.subject, '-m', `${task.id}: ${task.title}`, '--', fix.file], { stdio: 'inherit' });
console.log(`${task.id}: committed "${fix.subject}" (${fix.file})`);
