/**
 * A Python 3 that imports `requests`, for the README's Python snippet: python3 itself when it has it, else a virtual
 * environment in the ignored .tools/python, made once with `requests` from PyPI. Never a skip: a machine without
 * Python 3 gets an error that says so.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, renameSync, rmSync } from 'node:fs';
import path from 'node:path';
import { PROJECT_ROOT } from '../../scripts/provision.js';

const REQUESTS = 'requests>=2.28,<3';

export function pythonWithRequests(options: { venvDir?: string; useSystem?: boolean } = {}): string {
  const venvDir = options.venvDir ?? path.join(PROJECT_ROOT, '.tools', 'python');
  const venvPython = path.join(venvDir, 'bin', 'python');
  const importsRequests = (python: string) => spawnSync(python, ['-c', 'import requests'], { stdio: 'ignore' }).status === 0;

  if (existsSync(venvPython) && importsRequests(venvPython)) return venvPython;
  if (spawnSync('python3', ['--version'], { stdio: 'ignore' }).error) {
    throw new Error("python3 is not on PATH: the README's Python snippet is run by the tests; install Python 3 (with its venv module)");
  }
  if (options.useSystem !== false && importsRequests('python3')) return 'python3';

  // Made aside and renamed into place, so an interrupted install is never mistaken for a finished one.
  const scratch = `${venvDir}.tmp-${process.pid}`;
  rmSync(scratch, { recursive: true, force: true });
  try {
    execFileSync('python3', ['-m', 'venv', scratch], { stdio: 'pipe' });
    execFileSync(path.join(scratch, 'bin', 'python'), ['-m', 'pip', 'install', '--quiet', '--disable-pip-version-check', REQUESTS], { stdio: 'pipe' });
    rmSync(venvDir, { recursive: true, force: true });
    renameSync(scratch, venvDir);
  } catch (error) {
    rmSync(scratch, { recursive: true, force: true });
    const stderr = String((error as { stderr?: Buffer }).stderr ?? '').trim().split('\n').slice(-1)[0];
    throw new Error(`could not make a Python environment with ${REQUESTS} in ${venvDir}: ${stderr || (error as Error).message}`, { cause: error });
  }
  return venvPython;
}
