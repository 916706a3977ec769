import { describe, expect, it } from 'vitest';
import { formatDuration, parseDuration } from '../../domain/duration.js';

describe('durations', () => {
  it.each([
    ['90s', 90 * 1000],
    ['30m', 30 * 60 * 1000],
    ['36h', 36 * 3600 * 1000],
    ['7d', 7 * 86400 * 1000],
    ['7 days', 7 * 86400 * 1000],
    ['2w', 14 * 86400 * 1000],
    ['1.5h', 90 * 60 * 1000],
  ])('%s', (text, ms) => expect(parseDuration(text)).toBe(ms));

  it('rejects what is not a duration, saying what is accepted', () => {
    expect(() => parseDuration('7')).toThrow(/use a number and a unit/);
    expect(() => parseDuration('3 fortnights')).toThrow(/not a duration/);
    expect(() => parseDuration('0d')).toThrow(/positive/);
  });

  it('formats with the largest whole unit', () => {
    expect(formatDuration(7 * 86400 * 1000)).toBe('7 days');
    expect(formatDuration(86400 * 1000)).toBe('1 day');
    expect(formatDuration(36 * 3600 * 1000)).toBe('36 hours');
    expect(formatDuration(1500)).toBe('1500 ms');
  });
});
