/**
 * `road import FILE.jsonl`: streams a JSONL file of phase outcomes through the bulk (COPY) path. Each chunk commits
 * as a whole and event ids make every event exactly-once, so an interrupted import is resumed by running the same
 * command again: what was stored comes back as `duplicate`, the rest is stored. Invalid and conflicting lines go to
 * a rejects file (line number + reason), and nothing valid is lost because of them.
 */
import { SingleBar } from 'cli-progress';
import { createReadStream, createWriteStream, rmSync, statSync, type WriteStream } from 'node:fs';
import { isUtf8 } from 'node:buffer';
import { once } from 'node:events';
import { bulkStoreEvents, type RawItem } from '../db/events.js';
import type { Pool } from '../db/pool.js';
import { emptySummary, summarize, type IngestSummary } from '../domain/telemetry.js';
import { UsageError } from './errors.js';

export interface ImportOptions {
  rejectsPath: string;
  chunkSize?: number;
  /** Show a progress bar (on stderr, when it is a terminal). */
  progress?: boolean;
  /** Stop reading (after the chunk in flight commits) when this signal aborts. */
  signal?: AbortSignal;
}

export interface ImportReport extends IngestSummary {
  file: string;
  lines: number;
  rejectsFile?: string;
  seconds: number;
  interrupted: boolean;
}

export async function importFile(pool: Pool, file: string, options: ImportOptions): Promise<ImportReport> {
  let size: number;
  try {
    size = statSync(file).size;
  } catch {
    throw new UsageError(`cannot read ${file}: no such file`);
  }
  rmSync(options.rejectsPath, { force: true }); // the rejects file always describes the latest run
  const started = performance.now();
  const input = createReadStream(file);
  const summary = emptySummary();
  let lineCount = 0;
  let rejects: WriteStream | undefined;
  let interrupted = false;

  const bar = options.progress
    ? new SingleBar({
        format: 'importing |{bar}| {percentage}% · {lines} lines · {rate} lines/s · {accepted} accepted, {duplicate} duplicate, {rejected} rejected',
        barsize: 24,
        hideCursor: true,
        stream: process.stderr,
        etaBuffer: 50,
      })
    : undefined;
  bar?.start(size, 0, { lines: 0, rate: 0, accepted: 0, duplicate: 0, rejected: 0 });

  async function* items(): AsyncGenerator<RawItem> {
    for await (const bytes of lines(input)) {
      if (options.signal?.aborted) {
        interrupted = true;
        break;
      }
      lineCount++;
      // Judged as bytes first: a decoder would turn what is not UTF-8 into U+FFFD and store what was never sent.
      if (!isUtf8(bytes)) {
        yield { index: lineCount, parseError: 'not valid UTF-8' };
        continue;
      }
      const raw = bytes.toString('utf8');
      const line = (lineCount === 1 ? raw.replace(/^\uFEFF/, '') : raw).trim();
      if (!line) continue;
      try {
        yield { index: lineCount, value: JSON.parse(line) };
      } catch (error) {
        yield { index: lineCount, parseError: `not valid JSON: ${(error as Error).message}` };
      }
    }
  }

  try {
    await bulkStoreEvents(pool, items(), {
      chunkSize: options.chunkSize,
      onChunk: async (results) => {
        summarize(results, summary);
        for (const r of results) {
          if (r.status !== 'invalid' && r.status !== 'conflict') continue;
          rejects ??= createWriteStream(options.rejectsPath);
          const written = rejects.write(JSON.stringify({ line: r.index, status: r.status, event_id: r.event_id, reason: r.message }) + '\n');
          if (!written) await once(rejects, 'drain');
        }
        const seconds = (performance.now() - started) / 1000;
        const done = summary.accepted + summary.duplicate + summary.conflict + summary.invalid;
        bar?.update(input.bytesRead, {
          lines: done.toLocaleString('en-US'),
          rate: Math.round(done / seconds).toLocaleString('en-US'),
          accepted: summary.accepted.toLocaleString('en-US'),
          duplicate: summary.duplicate.toLocaleString('en-US'),
          rejected: (summary.invalid + summary.conflict).toLocaleString('en-US'),
        });
      },
    });
  } finally {
    input.destroy();
    bar?.stop();
    if (rejects) {
      rejects.end();
      await once(rejects, 'finish');
    }
  }
  return {
    file,
    lines: lineCount,
    ...summary,
    rejectsFile: rejects ? options.rejectsPath : undefined,
    seconds: Math.round((performance.now() - started) / 10) / 100,
    interrupted,
  };
}

/** The lines of a byte stream, split at \n (a \r before it is JSON whitespace), as bytes. */
async function* lines(input: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
  let rest: Buffer = Buffer.alloc(0);
  for await (const chunk of input) {
    const data: Buffer = rest.length ? Buffer.concat([rest, chunk]) : chunk;
    let start = 0;
    for (let end = data.indexOf(0x0a); end >= 0; end = data.indexOf(0x0a, start)) {
      yield data.subarray(start, end);
      start = end + 1;
    }
    rest = data.subarray(start);
  }
  if (rest.length) yield rest;
}
