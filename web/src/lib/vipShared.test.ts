import { describe, expect, it } from 'vitest';
import { sharedNotice, vipBody } from './vipShared';

describe('vipBody', () => {
  it('always sends the shared flag as ticked, with the address and the chain', () => {
    const chain = [
      { plugin: 'cidr-filter', on_error: 'drop' as const, config: { deny: ['198.51.100.0/24'] } },
    ];
    expect(vipBody('192.0.2.10', true, chain)).toEqual({
      address: '192.0.2.10',
      shared: true,
      plugins: chain,
    });
    expect(vipBody('192.0.2.11', false, [])).toEqual({ address: '192.0.2.11', shared: false, plugins: [] });
  });
});

describe('sharedNotice', () => {
  it('warns when several peers serve a VIP that is not shared', () => {
    const notice = sharedNotice(['rs1', 'rs2'], false);
    expect(notice?.level).toBe('warn');
    expect(notice?.text).toContain('rs1, rs2');
    expect(notice?.text).toContain('refuses');
  });

  it('says nothing when the flag and the peers agree', () => {
    expect(sharedNotice(['rs1', 'rs2'], true)).toBeNull();
    expect(sharedNotice(['rs1'], false)).toBeNull();
    expect(sharedNotice([], false)).toBeNull();
  });

  it('informs that a shared VIP with one peer or none is ready for more', () => {
    expect(sharedNotice(['rs1'], true)).toEqual({
      level: 'info',
      text: 'Only rs1 serves it now; more peers may list it.',
    });
    expect(sharedNotice([], true)?.level).toBe('info');
  });
});
