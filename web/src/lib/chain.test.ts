import { describe, expect, it } from 'vitest';
import type { Binding, Vip } from '../api/types';
import { bindableVips, draftToBinding, insertBinding, moveBinding, removeBinding, usesOf } from './chain';

const a: Binding = { plugin: 'a' };
const b: Binding = { plugin: 'b' };
const c: Binding = { plugin: 'c' };

describe('chain edits', () => {
  it('inserts at a position, clamped to the ends', () => {
    expect(insertBinding([a, b], 1, c)).toEqual([a, c, b]);
    expect(insertBinding([a, b], 0, c)).toEqual([c, a, b]);
    expect(insertBinding([a, b], 2, c)).toEqual([a, b, c]);
    expect(insertBinding([a, b], 99, c)).toEqual([a, b, c]);
    expect(insertBinding([a, b], -3, c)).toEqual([c, a, b]);
    expect(insertBinding([], 0, c)).toEqual([c]);
  });

  it('removes a position and refuses one that does not exist', () => {
    expect(removeBinding([a, b, c], 1)).toEqual([a, c]);
    expect(() => removeBinding([a], 1)).toThrow(RangeError);
    expect(() => removeBinding([a], -1)).toThrow(RangeError);
  });

  it('moves an entry', () => {
    expect(moveBinding([a, b, c], 0, 2)).toEqual([b, c, a]);
    expect(moveBinding([a, b, c], 2, 0)).toEqual([c, a, b]);
    expect(moveBinding([a, b, c], 1, 1)).toEqual([a, b, c]);
    expect(() => moveBinding([a], 3, 0)).toThrow(RangeError);
  });

  it('never changes its input', () => {
    const chain = [a, b];
    insertBinding(chain, 0, c);
    removeBinding(chain, 0);
    moveBinding(chain, 0, 1);
    expect(chain).toEqual([a, b]);
  });
});

describe('usesOf', () => {
  it('finds every VIP and position binding a plugin', () => {
    const vips: Vip[] = [
      { address: '192.0.2.10', plugins: [a, b, a] },
      { address: '192.0.2.11' },
      { address: '192.0.2.12', plugins: [b] },
    ];
    expect(usesOf('a', vips).map((u) => `${u.vip}#${u.position}`)).toEqual(['192.0.2.10#0', '192.0.2.10#2']);
    expect(usesOf('b', vips).map((u) => `${u.vip}#${u.position}`)).toEqual(['192.0.2.10#1', '192.0.2.12#0']);
    expect(usesOf('zzz', vips)).toEqual([]);
  });
});

describe('draftToBinding', () => {
  it('sends config only when the editor has some, and keeps a pinned hash', () => {
    expect(draftToBinding({ plugin: 'cidr-filter', onError: 'drop', configText: '  ' })).toEqual({
      plugin: 'cidr-filter',
      on_error: 'drop',
    });
    expect(
      draftToBinding({
        plugin: 'cidr-filter',
        sha256: 'ab',
        onError: 'pass',
        configText: '{"deny":["10.0.0.0/8"]}',
      }),
    ).toEqual({ plugin: 'cidr-filter', sha256: 'ab', on_error: 'pass', config: { deny: ['10.0.0.0/8'] } });
  });

  it('keeps falsy JSON configs (0, false, null) as configs', () => {
    expect(draftToBinding({ plugin: 'p', onError: 'pass', configText: 'false' }).config).toBe(false);
    expect(draftToBinding({ plugin: 'p', onError: 'pass', configText: 'null' })).toHaveProperty(
      'config',
      null,
    );
  });

  it('refuses config text that is not JSON', () => {
    expect(() => draftToBinding({ plugin: 'p', onError: 'pass', configText: '{deny:' })).toThrow(RangeError);
  });
});

describe('bindableVips', () => {
  it('adds the VIPs peers serve without an entry, once each, after the entries', () => {
    const entries: Vip[] = [{ address: '192.0.2.10', shared: true, plugins: [a] }];
    const peers = [
      { name: 'rs1', address: '10.0.1.2', vips: ['192.0.2.10', '192.0.2.11'] },
      { name: 'rs2', address: '10.0.1.3', vips: ['192.0.2.11', '192.0.2.12'] },
      { name: 'rs3', address: '10.0.1.4' },
    ];
    expect(bindableVips(entries, peers)).toEqual([
      { address: '192.0.2.10', shared: true, plugins: [a] },
      { address: '192.0.2.11', plugins: [] },
      { address: '192.0.2.12', plugins: [] },
    ]);
    expect(bindableVips([], [])).toEqual([]);
  });
});
