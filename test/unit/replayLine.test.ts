import { describe, expect, it } from 'vitest';
import { parseRoadLine } from '../../domain/replay.js';

describe('the road line a replay command prints last', () => {
  it('reads every key from the last non-empty line, after logs and trailing blank lines', () => {
    const stdout = [
      'building…',
      '{"road":{"outcome":"FAILED","tokens":1200}}', // an earlier report does not count: only the last line does
      'replaying 3 steps',
      '{"road":{"outcome":"SUCCESS","tokens":4521,"duration_ms":90500,"stop_reason":"done","retries":2}}',
      '',
      '   ',
      '',
    ].join('\n');
    expect(parseRoadLine(stdout)).toEqual({
      kind: 'ok',
      line: { outcome: 'SUCCESS', tokens: 4521, durationMs: 90500, stopReason: 'done', retries: 2 },
    });
  });

  it('needs only the outcome, and reads CRLF output', () => {
    expect(parseRoadLine('log\r\n{"road":{"outcome":"STUCK"}}\r\n')).toEqual({ kind: 'ok', line: { outcome: 'STUCK' } });
    expect(parseRoadLine('{"road":{"outcome":"TIMEOUT","tokens":null}}')).toEqual({
      kind: 'ok',
      line: { outcome: 'TIMEOUT' },
    });
  });

  it('is no report when the last line is not a road line, so the exit status decides', () => {
    expect(parseRoadLine('')).toEqual({ kind: 'none' });
    expect(parseRoadLine('\n\n')).toEqual({ kind: 'none' });
    expect(parseRoadLine('all tests passed\n')).toEqual({ kind: 'none' });
    expect(parseRoadLine('{"road":{"outcome":"SUCCESS"}}\nbye')).toEqual({ kind: 'none' });
    expect(parseRoadLine('{"status":"ok"}')).toEqual({ kind: 'none' });
    expect(parseRoadLine('{"road": truncated')).toEqual({ kind: 'none' });
    expect(parseRoadLine('["road"]')).toEqual({ kind: 'none' });
  });

  it.each([
    ['{"road":"SUCCESS"}', /^road must be an object/],
    ['{"road":{}}', /^road\.outcome is required/],
    ['{"road":{"outcome":"success"}}', /^road\.outcome must be one of SUCCESS, FAILED, TIMEOUT, STUCK/],
    ['{"road":{"outcome":"SUCCESS","tokens":-1}}', /^road\.tokens must be a non-negative integer/],
    ['{"road":{"outcome":"SUCCESS","tokens":1.5}}', /^road\.tokens must be a non-negative integer/],
    ['{"road":{"outcome":"SUCCESS","tokens":"12"}}', /^road\.tokens must be a non-negative integer/],
    ['{"road":{"outcome":"SUCCESS","duration_ms":1e300}}', /^road\.duration_ms must be a non-negative integer/],
    ['{"road":{"outcome":"SUCCESS","retries":9007199254740992}}', /^road\.retries must be a non-negative integer/],
    ['{"road":{"outcome":"FAILED","stop_reason":42}}', /^road\.stop_reason must be a string/],
  ])('%s is invalid, naming the key', (stdout, message) => {
    const parsed = parseRoadLine(stdout);
    expect(parsed.kind).toBe('invalid');
    expect(parsed.kind === 'invalid' && parsed.error).toMatch(message);
  });

  it('limits stop_reason to 255 bytes of UTF-8, not 255 characters', () => {
    const line = (reason: string) => JSON.stringify({ road: { outcome: 'FAILED', stop_reason: reason } });
    expect(parseRoadLine(line('x'.repeat(255)))).toEqual({
      kind: 'ok',
      line: { outcome: 'FAILED', stopReason: 'x'.repeat(255) },
    });
    expect(parseRoadLine(line('x'.repeat(256)))).toEqual({
      kind: 'invalid',
      error: 'road.stop_reason must be at most 255 bytes',
    });
    // 'é' is 2 bytes, '€' 3 and '𝄞' 4: 127 × 2 + 1 = 255 fits, 85 × 3 + 1 = 256 does not, 64 × 4 = 256 does not.
    expect(parseRoadLine(line('é'.repeat(127) + 'x')).kind).toBe('ok');
    expect(parseRoadLine(line('€'.repeat(85) + 'x')).kind).toBe('invalid');
    expect(parseRoadLine(line('𝄞'.repeat(64))).kind).toBe('invalid');
    expect(parseRoadLine(line('𝄞'.repeat(63) + 'xxx')).kind).toBe('ok');
  });
});
