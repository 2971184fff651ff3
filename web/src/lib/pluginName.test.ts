import { describe, expect, it } from 'vitest';
import { defaultPluginName, isValidPluginName } from './pluginName';

describe('defaultPluginName', () => {
  it.each([
    ['cidr-filter.wasm', 'cidr-filter'],
    ['CIDR_Filter.WASM', 'CIDR_Filter'],
    ['rate limit (v2).wasm', 'rate-limit-v2-'],
    ['.hidden.wasm', '_hidden'],
    ['module.v1.2.wasm', 'module.v1.2'],
    ['C:\\plugins\\geo.wasm', 'geo'],
    ['.wasm', 'plugin'],
    ['ünïcode.wasm', '-n-code'],
    [`${'x'.repeat(80)}.wasm`, 'x'.repeat(64)],
  ])('%s → %s', (file, expected) => {
    expect(defaultPluginName(file)).toBe(expected);
    expect(isValidPluginName(defaultPluginName(file))).toBe(true);
  });
});

describe('isValidPluginName', () => {
  it('follows the API pattern', () => {
    expect(isValidPluginName('cidr-filter')).toBe(true);
    expect(isValidPluginName('_x.y-z')).toBe(true);
    expect(isValidPluginName('')).toBe(false);
    expect(isValidPluginName('.dot')).toBe(false);
    expect(isValidPluginName('a/b')).toBe(false);
    expect(isValidPluginName('a'.repeat(64))).toBe(true);
    expect(isValidPluginName('a'.repeat(65))).toBe(false);
  });
});
