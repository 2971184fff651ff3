import { describe, expect, it } from 'vitest';
import { splitList } from './addressList';

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
