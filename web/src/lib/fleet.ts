// What the Fleet page shows, as plain data: whether this gateway is in a fleet (and whether
// its fleet has a store that lists the gateways), and one row per registered gateway. Pure
// functions of `GET /api/v1/status` and `GET /api/v1/fleet`, so they are unit-tested.

import type { Fleet, FleetFollow, FleetGateway, Status } from '../api/types';

/** Where this gateway stands in a fleet. */
export type FleetStanding =
  /** Started without `--fleet`: a gateway on its own. */
  | { kind: 'none' }
  /** `--fleet` without `--etcd`: it announces GIP, but no store lists the fleet. */
  | { kind: 'no-store'; follow: FleetFollow }
  /** `--fleet --etcd`: the fleet as listed in etcd. */
  | { kind: 'listed'; follow: FleetFollow; fleet: Fleet };

/** Reads the standing from the status and the fleet list (null: 404, no list). */
export function fleetStanding(status: Status, fleet: Fleet | null): FleetStanding {
  const follow = status.fleet ?? null;
  if (!follow) return { kind: 'none' };
  if (!fleet) return { kind: 'no-store', follow };
  return { kind: 'listed', follow, fleet };
}

/** One gateway as the page lists it. */
export interface FleetRow {
  member: string;
  /** This is the gateway the UI talks to. */
  self: boolean;
  address: string;
  version: string;
  io: string;
  ready: boolean;
  /** Why it is not ready (e.g. `egress interface eth1 is down (no carrier)`); null when ready. */
  notReady: string | null;
  /** `12 (latest)` or `11 (behind 12)`. */
  revision: string;
  latest: boolean;
  /** `announced`, `withdrawn`, `draining`, or `unknown` from a gateway that does not say. */
  announcement: string;
  /** Quarantined bindings (`VIP#position plugin`); they do not affect readiness. */
  quarantined: string[];
  error: string | null;
}

/** The rows of the fleet list, in member order. */
export function fleetRows(fleet: Fleet): FleetRow[] {
  return [...fleet.gateways]
    .sort((a, b) => a.member.localeCompare(b.member))
    .map((g: FleetGateway) => ({
      member: g.member,
      self: g.member === fleet.member,
      address: g.address,
      version: g.version,
      io: g.io,
      ready: g.ready,
      notReady: g.ready ? null : (g.not_ready ?? null),
      revision: g.latest
        ? `${g.applied_revision} (latest)`
        : `${g.applied_revision} (behind ${fleet.latest_revision})`,
      latest: g.latest,
      announcement: g.announcement ?? 'unknown',
      quarantined: g.quarantined ?? [],
      error: g.error ?? null,
    }));
}

/** This gateway's revision line: what it runs against the latest it has seen. */
export function revisionLine(follow: FleetFollow): string {
  if (!follow.etcd || follow.applied_revision == null) return 'configuration from the local file (no --etcd)';
  const latest = follow.latest_revision ?? follow.applied_revision;
  return follow.applied_revision >= latest
    ? `fleet revision ${follow.applied_revision} (latest)`
    : `fleet revision ${follow.applied_revision} in force; ${latest} is the latest (behind)`;
}
