import { describe, expect, it } from 'vitest';
import { SeriesWindow, compareKeys } from './series';

const m = (entries: [string, number | null][]) => new Map(entries);

describe('SeriesWindow', () => {
  it('aligns series on one time axis', () => {
    const w = new SeriesWindow(5);
    w.push(
      1,
      m([
        ['a', 1],
        ['b', 10],
      ]),
    );
    w.push(
      2,
      m([
        ['a', 2],
        ['b', 20],
      ]),
    );
    expect(w.aligned()).toEqual({
      keys: ['a', 'b'],
      data: [
        [1, 2],
        [1, 2],
        [10, 20],
      ],
    });
  });

  it('back-fills a series that appears later with gaps', () => {
    const w = new SeriesWindow(5);
    w.push(1, m([['a', 1]]));
    w.push(
      2,
      m([
        ['a', 2],
        ['b', 5],
      ]),
    );
    expect(w.aligned().data).toEqual([
      [1, 2],
      [1, 2],
      [null, 5],
    ]);
  });

  it('puts a gap where a series is missing, and forgets it once it scrolled out', () => {
    const w = new SeriesWindow(3);
    w.push(
      1,
      m([
        ['a', 1],
        ['b', 1],
      ]),
    );
    w.push(2, m([['a', 2]]));
    expect(w.aligned().data).toEqual([
      [1, 2],
      [1, 2],
      [1, null],
    ]);
    w.push(3, m([['a', 3]]));
    w.push(4, m([['a', 4]]));
    // Window is now t=2..4; b has only gaps there.
    expect(w.aligned()).toEqual({
      keys: ['a'],
      data: [
        [2, 3, 4],
        [2, 3, 4],
      ],
    });
  });

  it('keeps only the last `capacity` samples', () => {
    const w = new SeriesWindow(2);
    for (let t = 1; t <= 4; t++) w.push(t, m([['a', t * 10]]));
    expect(w.aligned().data).toEqual([
      [3, 4],
      [30, 40],
    ]);
    expect(w.length).toBe(2);
  });

  it('records an all-gap sample (API unreachable) without losing the series', () => {
    const w = new SeriesWindow(4);
    w.push(1, m([['a', 1]]));
    w.push(2, m([]));
    expect(w.aligned().data).toEqual([
      [1, 2],
      [1, null],
    ]);
  });

  it('treats null values as gaps, never as zero', () => {
    const w = new SeriesWindow(4);
    w.push(1, m([['a', null]]));
    expect(w.keys()).toEqual([]);
    w.push(2, m([['a', 0]]));
    expect(w.aligned().data).toEqual([
      [1, 2],
      [null, 0],
    ]);
  });

  it('returns copies that later pushes do not change', () => {
    const w = new SeriesWindow(3);
    w.push(1, m([['a', 1]]));
    const copy = w.aligned();
    w.push(2, m([['a', 2]]));
    expect(copy.data).toEqual([[1], [1]]);
  });

  it('refuses a window too small to draw a line', () => {
    expect(() => new SeriesWindow(1)).toThrow(RangeError);
    expect(() => new SeriesWindow(2.5)).toThrow(RangeError);
  });

  it('clears everything', () => {
    const w = new SeriesWindow(3);
    w.push(1, m([['a', 1]]));
    w.clear();
    expect(w.aligned()).toEqual({ keys: [], data: [[]] });
  });
});

describe('compareKeys', () => {
  it('orders IPv4 addresses numerically and other keys alphabetically', () => {
    expect(['10.0.0.10', '10.0.0.9', '9.255.0.1'].sort(compareKeys)).toEqual([
      '9.255.0.1',
      '10.0.0.9',
      '10.0.0.10',
    ]);
    expect(['b', 'a', '300.1.1.1'].sort(compareKeys)).toEqual(['300.1.1.1', 'a', 'b']);
  });

  it('orders IPv6 addresses numerically, after IPv4 and before other keys', () => {
    expect(
      ['peer', '2001:db8::10', '203.0.113.1', '2001:db8::9', '::1', '2001:db8:0:1::', '10.0.0.1'].sort(
        compareKeys,
      ),
    ).toEqual(['10.0.0.1', '203.0.113.1', '::1', '2001:db8::9', '2001:db8::10', '2001:db8:0:1::', 'peer']);
  });
});
