import { describe, expect, it } from 'vitest';
import type { Fleet, Status } from '../api/types';
import { fleetRows, fleetStanding, revisionLine } from './fleet';

const status = (fleet: Status['fleet']): Status => ({ fleet }) as Status;

const follow = {
  name: 'f1',
  announcement: 'announced' as const,
  etcd: true,
  applied_revision: 11,
  latest_revision: 12,
  error: 'fleet revision 12 is not applied here: too many plugin instances',
};

const fleet: Fleet = {
  name: 'f1',
  member: 'gw2',
  reachable: true,
  latest_revision: 12,
  gateways: [
    {
      member: 'gw2',
      address: '10.0.0.2:9080',
      version: '0.1.0',
      applied_revision: 11,
      error: 'fleet revision 12 is not applied here',
      ready: true,
      io: 'packet',
      quarantined: ['192.0.2.10#0 cidr-filter'],
      announcement: 'announced',
      latest: false,
    },
    {
      member: 'gw1',
      address: '10.0.0.1:9080',
      version: '0.1.0',
      applied_revision: 12,
      ready: true,
      io: 'xdp',
      latest: true,
    },
    {
      member: 'gw3',
      address: '10.0.0.3:9080',
      version: '0.1.0',
      applied_revision: 12,
      ready: false,
      not_ready: 'egress interface eth1 is down (no carrier)',
      io: 'packet',
      announcement: 'withdrawn',
      latest: true,
    },
  ],
};

describe('fleetStanding', () => {
  it('says not in a fleet without --fleet, no store without --etcd, else the list', () => {
    expect(fleetStanding(status(null), null)).toEqual({ kind: 'none' });
    expect(fleetStanding(status(undefined), null)).toEqual({ kind: 'none' });
    const bgpOnly = { ...follow, etcd: false, applied_revision: null, latest_revision: null, error: null };
    expect(fleetStanding(status(bgpOnly), null)).toEqual({ kind: 'no-store', follow: bgpOnly });
    expect(fleetStanding(status(follow), fleet)).toEqual({ kind: 'listed', follow, fleet });
  });
});

describe('fleetRows', () => {
  it('lists every gateway in member order with its revision against the latest', () => {
    const rows = fleetRows(fleet);
    expect(rows.map((r) => r.member)).toEqual(['gw1', 'gw2', 'gw3']);
    expect(rows[0]).toMatchObject({
      revision: '12 (latest)',
      latest: true,
      self: false,
      announcement: 'unknown',
    });
    expect(rows[0]?.quarantined).toEqual([]);
    expect(rows[1]).toMatchObject({
      revision: '11 (behind 12)',
      latest: false,
      self: true,
      ready: true,
      announcement: 'announced',
      quarantined: ['192.0.2.10#0 cidr-filter'],
      notReady: null,
    });
    expect(rows[0]?.notReady).toBeNull();
    expect(rows[2]).toMatchObject({
      ready: false,
      notReady: 'egress interface eth1 is down (no carrier)',
      announcement: 'withdrawn',
    });
  });
});

describe('revisionLine', () => {
  it('says latest, behind, or that the configuration is local', () => {
    expect(revisionLine(follow)).toBe('fleet revision 11 in force; 12 is the latest (behind)');
    expect(revisionLine({ ...follow, applied_revision: 12 })).toBe('fleet revision 12 (latest)');
    expect(revisionLine({ ...follow, etcd: false, applied_revision: null })).toBe(
      'configuration from the local file (no --etcd)',
    );
  });
});
