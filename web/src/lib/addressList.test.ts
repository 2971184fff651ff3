import { describe, expect, it } from 'vitest';
import { addressFamily, addressProblem, splitList } from './addressList';

describe('splitList', () => {
  it('splits on commas, spaces and new lines', () => {
    expect(splitList('192.0.2.10, 192.0.2.11\n192.0.2.12  192.0.2.13,')).toEqual([
      '192.0.2.10',
      '192.0.2.11',
      '192.0.2.12',
      '192.0.2.13',
    ]);
    expect(splitList('  ')).toEqual([]);
  });
});

describe('addressFamily and addressProblem', () => {
  it('knows IPv4 and IPv6 text and nothing else', () => {
    for (const v4 of ['192.0.2.10', '10.0.0.1', '255.255.255.255', '0.0.0.0'])
      expect(addressFamily(v4)).toBe(4);
    for (const v6 of ['2001:db8::10', '::1', 'fe80::1', '2001:0db8:0:0:0:0:0:1', '2001:db8:ff::', 'FD00::A'])
      expect(addressFamily(v6)).toBe(6);
    for (const bad of [
      '',
      '10.0.0',
      '10.0.0.256',
      '010.0.0.1',
      '2001:db8:::1',
      '2001:db8::1::2',
      'g::1',
      '1:2:3:4:5:6:7:8:9',
      'fe80::1%eth0',
      '::ffff:1.2.3.4',
      ' 10.0.0.1',
      'rs1',
    ])
      expect(addressFamily(bad), bad).toBeNull();
  });

  it('says what is wrong, naming both families', () => {
    expect(addressProblem('2001:db8::10')).toBeNull();
    expect(addressProblem('192.0.2.10')).toBeNull();
    expect(addressProblem('10.0.0.300')).toBe(
      '"10.0.0.300" is not an IPv4 address (like 192.0.2.10) or an IPv6 address (like 2001:db8::10).',
    );
    expect(addressProblem('')).toContain('IPv4 (e.g. 192.0.2.10) or IPv6');
  });
});
