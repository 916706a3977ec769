/**
 * `npm run fuzz:events [-- --runs N] [-- --seed S]`: the event-contract property test
 * (test/integration/eventContract.property.test.ts) for as long as you like. `npm test` runs it with a fixed seed
 * and 10 batches per path; here the default is 400 batches (≈ 90,000 events per path) and a fresh seed, printed
 * first so that a failure can be replayed: `npm run fuzz:events -- --seed S --runs N`. ROAD_FUZZ_RUNS and
 * ROAD_FUZZ_SEED work too.
 */
import { spawn } from 'node:child_process';
import { PROJECT_ROOT } from './provision.js';

const args = process.argv.slice(2);
const flag = (name: string) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : undefined;
};
const runs = flag('runs') ?? process.env.ROAD_FUZZ_RUNS ?? '400';
const seed = flag('seed') ?? process.env.ROAD_FUZZ_SEED ?? String(Math.floor(Math.random() * 2 ** 31));
if (!/^\d+$/.test(runs) || Number(runs) < 1) throw new Error(`--runs must be a positive integer (got ${runs})`);
if (!/^-?\d+$/.test(seed)) throw new Error(`--seed must be an integer (got ${seed})`);
console.error(`fuzz:events: ${runs} batches per path, seed ${seed} — replay with: npm run fuzz:events -- --seed ${seed} --runs ${runs}`);

const child = spawn(
  process.execPath,
  [`${PROJECT_ROOT}/node_modules/vitest/vitest.mjs`, 'run', 'test/integration/eventContract.property.test.ts', '--testTimeout', String(24 * 3600_000)],
  { cwd: PROJECT_ROOT, stdio: 'inherit', env: { ...process.env, ROAD_FUZZ_RUNS: runs, ROAD_FUZZ_SEED: seed } },
);
child.once('exit', (code, signal) => {
  if (code) console.error(`fuzz:events: FAILED with seed ${seed} (see the counterexample above)`);
  process.exit(code ?? (signal ? 1 : 0));
});
