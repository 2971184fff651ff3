import { describe, expect, it } from 'vitest';
import { addressMatches, pageOf } from './paging';

describe('pageOf', () => {
  const rows = Array.from({ length: 10_000 }, (_, i) => i);
  it('gives a bounded slice and the page count', () => {
    const p = pageOf(rows, 3, 50);
    expect(p.items).toHaveLength(50);
    expect(p.items[0]).toBe(150);
    expect([p.page, p.pages, p.first, p.total]).toEqual([3, 200, 150, 10_000]);
  });
  it('clamps a page past the end to the last page, and below zero to the first', () => {
    expect(pageOf(rows.slice(0, 120), 9, 50)).toMatchObject({ page: 2, first: 100, pages: 3 });
    expect(pageOf(rows.slice(0, 120), 9, 50).items).toHaveLength(20);
    expect(pageOf(rows, -4, 50).page).toBe(0);
  });
  it('has one empty page for an empty list', () => {
    expect(pageOf([], 0)).toEqual({ items: [], page: 0, pages: 1, first: 0, total: 0 });
  });
});

describe('addressMatches', () => {
  it('matches part of an address, ignoring spaces', () => {
    expect(addressMatches('10.20.30.40', '20.30')).toBe(true);
    expect(addressMatches('10.20.30.40', ' 10.20.30.40 ')).toBe(true);
    expect(addressMatches('10.20.30.41', '10.20.30.40')).toBe(false);
  });
  it('matches everything with an empty query', () => {
    expect(addressMatches('192.0.2.1', '  ')).toBe(true);
  });
});
