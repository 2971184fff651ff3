import { describe, expect, it } from 'vitest';
import { tunnelFields, tunnelText } from './tunnel';

describe('tunnelText', () => {
  it('names each tunnel with its port or key', () => {
    expect(tunnelText({})).toBe('ipip');
    expect(tunnelText({ tunnel: 'gue' })).toBe('gue :6080');
    expect(tunnelText({ tunnel: 'gue', port: 7000 })).toBe('gue :7000');
    expect(tunnelText({ tunnel: 'fou', port: 5555 })).toBe('fou :5555');
    expect(tunnelText({ tunnel: 'gre' })).toBe('gre');
    expect(tunnelText({ tunnel: 'gre', key: 7 })).toBe('gre key 7');
  });
});

describe('tunnelFields', () => {
  it('sends only what the tunnel uses', () => {
    expect(tunnelFields('ipip', '80', '7')).toEqual({ ok: true, value: {} });
    expect(tunnelFields('gue', '', '')).toEqual({ ok: true, value: { tunnel: 'gue' } });
    expect(tunnelFields('gue', ' 7000 ', '9')).toEqual({ ok: true, value: { tunnel: 'gue', port: 7000 } });
    expect(tunnelFields('fou', '5555', '')).toEqual({ ok: true, value: { tunnel: 'fou', port: 5555 } });
    expect(tunnelFields('gre', '80', '')).toEqual({ ok: true, value: { tunnel: 'gre' } });
    expect(tunnelFields('gre', '', '4294967295')).toEqual({
      ok: true,
      value: { tunnel: 'gre', key: 4294967295 },
    });
  });

  it('refuses a missing or impossible port and an impossible key, naming the field', () => {
    expect(tunnelFields('fou', '', '')).toMatchObject({ ok: false, field: 'port' });
    for (const port of ['0', '65536', 'abc', '-1', '1.5']) {
      expect(tunnelFields('gue', port, '')).toMatchObject({ ok: false, field: 'port' });
    }
    for (const key of ['4294967296', 'x', '-3']) {
      expect(tunnelFields('gre', '', key)).toMatchObject({ ok: false, field: 'key' });
    }
  });
});
