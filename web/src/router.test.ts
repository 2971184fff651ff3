import { describe, expect, it } from 'vitest';
import { ROUTE_HASH, parseRoute } from './router';

describe('parseRoute', () => {
  it.each([
    ['', 'dashboard'],
    ['#', 'dashboard'],
    ['#/', 'dashboard'],
    ['#/dashboard', 'dashboard'],
    ['#/peers-vips', 'config'],
    ['#/plugins/', 'plugins'],
    ['#/plugins?x=1', 'plugins'],
    ['#/login', 'login'],
    ['#/nope', 'not-found'],
  ])('%s → %s', (hash, route) => {
    expect(parseRoute(hash)).toBe(route);
  });

  it('round-trips every page link', () => {
    for (const [route, hash] of Object.entries(ROUTE_HASH)) expect(parseRoute(hash)).toBe(route);
  });
});
