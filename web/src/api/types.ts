// The JSON shapes of tungate's admin API under the names the UI uses. Every shape comes from
// `schema.gen.ts`, which `npm run api:types` generates from the committed contract
// `appliance/crates/admin/src/openapi.yaml` (and `npm run api:check` keeps in step with it). This
// file only names them: a field the UI needs is added to the contract, never here.

import type { components } from './schema.gen';

type Schemas = components['schemas'];

/** `Error.error.code`: the stable error codes of the API. */
export type ErrorCode = Schemas['Error']['error']['code'];

/** One `Error.error.details[]` entry: a message about one field. */
export type ErrorDetail = Schemas['ErrorDetail'];

/**
 * The body of every error answer: `{"error": {...}}`. The code is widened to any string: a
 * newer gateway may answer with a code this UI does not know yet, and the UI still shows it.
 */
export type ErrorBody = {
  error: Omit<Schemas['Error']['error'], 'code'> & { code: ErrorCode | (string & {}) };
};

/** What the gateway decapsulates with. */
export type DecapMode = Schemas['Status']['decap_mode'];

/** A binding's policy when its plugin traps or times out. */
export type OnError = NonNullable<Schemas['Binding']['on_error']>;

/** A real server (RIP) and the VIPs it answers for. */
export type Peer = Schemas['Peer'];

/** `PUT /api/v1/peers/{name}` body. */
export type PeerBody = Schemas['PeerBody'];

/** One plugin in a VIP's chain. */
export type Binding = Schemas['Binding'];

/** A VIP and its plugin chain, in order. */
export type Vip = Schemas['Vip'];

/** `PUT /api/v1/vips/{address}` body (`shared` left out: an existing VIP keeps its flag). */
export type VipBody = Schemas['VipBody'];

/** An uploaded plugin module's metadata. */
export type Plugin = Schemas['Plugin'];

/** Packet totals of the whole gateway. */
export type Totals = Schemas['Totals'];

/** `GET /api/v1/fleet/totals`: the fleet's per-VIP sums, from its Prometheus. */
export type FleetTotals = Schemas['FleetTotals'];

/** `GET /api/v1/status`. */
export type Status = Schemas['Status'];

/** `status.network`: whether the gateway's tunnels, rules and sysctls are as configured. */
export type NetworkStatus = NonNullable<Status['network']>;

/** `status.plugin_faults[]`: a binding quarantined or with failed calls. */
export type PluginFault = Status['plugin_faults'] extends (infer F)[] | undefined ? F : never;

/** Per-VIP counters in `GET /api/v1/stats`. */
export type VipStats = Schemas['VipStats'];

/** Per-peer counters and liveness in `GET /api/v1/stats`. */
export type PeerStats = Schemas['PeerStats'];

/** Per-binding counters in `GET /api/v1/stats`. */
export type BindingStats = Schemas['BindingStats'];

/** `GET /api/v1/stats`. */
export type Stats = Schemas['Stats'];

/** `status.fleet`: the announcement of GIP beside the fleet revisions (null without `--fleet`). */
export type FleetFollow = NonNullable<Status['fleet']>;

/** `GET /api/v1/fleet`: the fleet's gateways as registered in etcd. */
export type Fleet = Schemas['Fleet'];

/** One gateway of `GET /api/v1/fleet`. */
export type FleetGateway = Schemas['FleetGateway'];
