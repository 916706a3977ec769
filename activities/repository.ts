/**
 * The target repository of road.config.json, checked before any work starts, and the failures candidate and replay
 * activities share. A configuration problem is a non-retryable `InvalidConfiguration` whose message names the key:
 * retrying cannot fix road.config.json.
 */
import { Context } from '@temporalio/activity';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import { realpath, stat } from 'node:fs/promises';
import path from 'node:path';
import type { RoadConfig } from '../domain/config.js';
import { GitError, repositoryRoot } from './git.js';

export const invalidConfiguration = (message: string): ApplicationFailure => ApplicationFailure.nonRetryable(message, 'InvalidConfiguration');
export const invalidInput = (message: string): ApplicationFailure => ApplicationFailure.nonRetryable(message, 'InvalidInput');

/** The top directory of the configured repository's work tree (symlinks resolved). */
export async function targetRepository(config: RoadConfig): Promise<string> {
  if (!config.repository) {
    throw invalidConfiguration('repository is not set in road.config.json: add { "repository": { "path": "<the agent\'s git repository>" } }');
  }
  const configured = config.repository.path;
  const absolute = path.resolve(configured);
  const info = await stat(absolute).catch(() => undefined);
  if (!info?.isDirectory()) throw invalidConfiguration(`repository.path ${configured} is not a directory (resolved to ${absolute})`);
  let root: string | undefined;
  try {
    root = await repositoryRoot(absolute);
  } catch (error) {
    if (error instanceof GitError) throw invalidConfiguration(error.message);
    throw error;
  }
  if (!root) throw invalidConfiguration(`repository.path ${configured} is not a git work tree (resolved to ${absolute})`);
  const [realRoot, realConfigured] = await Promise.all([realpath(root), realpath(absolute)]);
  // A subdirectory would make allowed_files (repo-relative) and the diff's paths disagree.
  if (realRoot !== realConfigured) {
    throw invalidConfiguration(`repository.path ${configured} is inside the git work tree ${realRoot}, not its top: set repository.path to ${realRoot}`);
  }
  return realRoot;
}

/** The running activity's context, or undefined when a function is called outside an activity (a script, a test). */
export function activityContext(): Context | undefined {
  try {
    return Context.current();
  } catch {
    return undefined;
  }
}

/**
 * Heartbeats every second until the returned function is called: a checkout of a large repository or a long command
 * must not look like a dead worker, and cancellation reaches an activity only in a heartbeat's reply.
 */
export function heartbeatEverySecond(context: Context | undefined, details: () => unknown): () => void {
  if (!context) return () => undefined;
  const timer = setInterval(() => context.heartbeat(details()), 1_000);
  return () => clearInterval(timer);
}

/** What to throw once a cancelled activity has cleaned up: the SDK's own CancelledFailure. */
export function cancellation(context: Context | undefined): Error {
  const reason: unknown = context?.cancellationSignal.reason;
  return reason instanceof Error ? reason : new CancelledFailure('activity cancelled');
}

/** The last lines of a command's stderr for a failure message: enough to act on, small enough for history. */
export function tail(text: string, maxChars = 2_000): string {
  const trimmed = text.trimEnd();
  return trimmed.length <= maxChars ? trimmed : `…${trimmed.slice(trimmed.length - maxChars)}`;
}
