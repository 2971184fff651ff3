import { describe, expect, it } from 'vitest';
import {
  formatAgo,
  formatBitRate,
  formatBytes,
  formatCount,
  formatDateTime,
  formatDuration,
  formatInteger,
  formatPercent,
  formatPps,
  humanize,
  shortHash,
} from './format';

describe('formatPps / formatBitRate / formatCount', () => {
  it.each([
    [0, '0 pps'],
    [7, '7 pps'],
    [950, '950 pps'],
    [0.5, '0.5 pps'],
    [12.345, '12.3 pps'],
    [999, '999 pps'],
    [999.7, '1.00 kpps'],
    [1000, '1.00 kpps'],
    [1234, '1.23 kpps'],
    [45_600, '45.6 kpps'],
    [999_499, '999 kpps'],
    [999_960, '1.00 Mpps'],
    [1_234_567, '1.23 Mpps'],
    [650_000, '650 kpps'],
    [2.5e9, '2.50 Gpps'],
  ])('pps %d → %s', (value, expected) => {
    expect(formatPps(value)).toBe(expected);
  });

  it('formats bit rates with SI prefixes', () => {
    expect(formatBitRate(1_200_000)).toBe('1.20 Mbit/s');
    expect(formatBitRate(64 * 8 * 420_000)).toBe('215 Mbit/s');
    expect(formatBitRate(10e9)).toBe('10.0 Gbit/s');
    expect(formatBitRate(800)).toBe('800 bit/s');
  });

  it('formats bare counts without a unit', () => {
    expect(formatCount(950)).toBe('950');
    expect(formatCount(1_234_567)).toBe('1.23 M');
    expect(formatCount(12_000)).toBe('12.0 k');
  });

  it('shows a dash for unknown values', () => {
    expect(formatPps(null)).toBe('—');
    expect(formatBitRate(undefined)).toBe('—');
    expect(formatCount(Number.NaN)).toBe('—');
    expect(formatInteger(null)).toBe('—');
    expect(formatBytes(Number.POSITIVE_INFINITY)).toBe('—');
    expect(formatDuration(undefined)).toBe('—');
  });

  it('keeps the sign of negative values', () => {
    expect(formatCount(-1500)).toBe('-1.50 k');
  });
});

describe('formatInteger', () => {
  it.each([
    [0, '0'],
    [999, '999'],
    [1000, '1,000'],
    [1_234_567, '1,234,567'],
    [-42_000, '-42,000'],
  ])('%d → %s', (value, expected) => {
    expect(formatInteger(value)).toBe(expected);
  });
});

describe('formatBytes', () => {
  it.each([
    [0, '0 B'],
    [512, '512 B'],
    [1024, '1.00 KiB'],
    [1536, '1.50 KiB'],
    [150 * 1024, '150 KiB'],
    [2 * 1024 * 1024, '2.00 MiB'],
    [1023, '1023 B'],
  ])('%d → %s', (value, expected) => {
    expect(formatBytes(value)).toBe(expected);
  });
});

describe('formatDuration', () => {
  it.each([
    [0, '0 s'],
    [42.9, '42 s'],
    [60, '1 min 00 s'],
    [303, '5 min 03 s'],
    [3 * 3600 + 4 * 60 + 59, '3 h 04 min'],
    [2 * 86400 + 3 * 3600 + 5, '2 d 03 h'],
    [-5, '0 s'],
  ])('%d s → %s', (value, expected) => {
    expect(formatDuration(value)).toBe(expected);
  });
});

describe('dates and words', () => {
  it('formats a local date to the minute', () => {
    expect(formatDateTime(new Date(2025, 2, 7, 14, 5, 59))).toBe('2025-03-07 14:05');
  });

  it('says how long ago, coarsely', () => {
    const now = 1_000_000_000_000;
    expect(formatAgo(now - 10_000, now)).toBe('just now');
    expect(formatAgo(now - 5 * 60_000, now)).toBe('5 min ago');
    expect(formatAgo(now - 3 * 3_600_000, now)).toBe('3 h ago');
    expect(formatAgo(now - 2 * 86_400_000, now)).toBe('2 d ago');
  });

  it('shortens hashes to 12 hex digits', () => {
    const sha = 'ab'.repeat(32);
    expect(shortHash(sha)).toBe('abababababab');
    expect(shortHash('abc')).toBe('abc');
  });

  it('turns reason codes into words, abbreviations in capitals', () => {
    expect(humanize('bad_checksum')).toBe('Bad checksum');
    expect(humanize('ttl-expired')).toBe('TTL expired');
    expect(humanize('not_a_vip')).toBe('Not a VIP');
    expect(humanize('bad_gue')).toBe('Bad GUE');
    expect(humanize('wrong_gre_key')).toBe('Wrong GRE key');
    expect(humanize('bad_udp_length')).toBe('Bad UDP length');
    expect(humanize('unknown_vips')).toBe('Unknown VIPs');
    expect(humanize('inner_ipip')).toBe('Inner IPIP');
  });

  it('formats shares as percentages', () => {
    expect(formatPercent(1, 2500)).toBe('0.04 %');
    expect(formatPercent(125, 1000)).toBe('12.5 %');
    expect(formatPercent(0, 10)).toBe('0 %');
    expect(formatPercent(1, 3)).toBe('33.3 %');
    expect(formatPercent(1, 300)).toBe('0.33 %');
    expect(formatPercent(5, 0)).toBe('—');
    expect(formatPercent(null, 10)).toBe('—');
  });
});
