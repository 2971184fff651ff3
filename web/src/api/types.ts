// The JSON shapes of tungate's admin API, transcribed from the committed contract
// `appliance/src/admin/openapi.yaml`. This file owns only types: it must never add a field
// the contract does not define (if the UI needs one, the contract is extended first).

/** `Error.error.code`: the stable error codes of the API. */
export type ErrorCode =
  | 'bad_request'
  | 'invalid_json'
  | 'invalid_config'
  | 'not_found'
  | 'conflict'
  | 'unauthorized'
  | 'payload_too_large'
  | 'request_timeout'
  | 'unsupported_media_type'
  | 'plugin_rejected'
  | 'plugin_refused_config'
  | 'internal';

/** One `Error.error.details[]` entry: a message about one field. */
export interface ErrorDetail {
  field: string;
  message: string;
}

/** The body of every error answer: `{"error": {...}}`. */
export interface ErrorBody {
  error: {
    code: ErrorCode | string;
    message: string;
    field?: string;
    details?: ErrorDetail[];
  };
}

/** What the gateway decapsulates with. */
export type DecapMode = 'userspace' | 'kernel';

/** A binding's policy when its plugin traps or times out. */
export type OnError = 'pass' | 'drop';

/** A real server (RIP) and the VIPs it answers for. */
export interface Peer {
  name: string;
  address: string;
  vips?: string[];
}

/** `PUT /api/v1/peers/{name}` body. */
export interface PeerBody {
  name?: string;
  address: string;
  vips?: string[];
}

/** One plugin in a VIP's chain. */
export interface Binding {
  plugin: string;
  sha256?: string;
  config?: unknown;
  on_error?: OnError;
}

/** A VIP and its plugin chain, in order. */
export interface Vip {
  address: string;
  /** Served by several peers (declared so; otherwise a VIP under two peers is refused). */
  shared?: boolean;
  plugins?: Binding[];
}

/** `PUT /api/v1/vips/{address}` body. */
export interface VipBody {
  address?: string;
  /** Left out: an existing VIP keeps its flag, a new one is not shared. */
  shared?: boolean;
  plugins?: Binding[];
}

/** An uploaded plugin module's metadata. */
export interface Plugin {
  name: string;
  sha256: string;
  size: number;
  /** Seconds since the Unix epoch. */
  uploaded_at: number;
  /** What validation learnt (ABI version, exports); free-form. */
  info?: Record<string, unknown>;
  /** Bindings using it, as `vip#position`. */
  bound_to?: string[];
}

/** Packet totals of the whole gateway. */
export interface Totals {
  received_packets?: number;
  forwarded_packets?: number;
  forwarded_bytes?: number;
  dropped_packets?: number;
}

/** `GET /api/v1/status`. */
export interface Status {
  version: string;
  uptime_seconds: number;
  decap_mode: DecapMode;
  workers: number;
  gateway_address: string;
  ready: boolean;
  peers?: number;
  vips?: number;
  /** What the netcfg reconciler last found on the gateway; null when it does not run. */
  network?: NetworkStatus | null;
  totals: Totals;
}

/** `status.network`: whether the gateway's tunnels, rules and sysctls are as configured. */
export interface NetworkStatus {
  in_sync: boolean;
  passes: number;
  changes_applied: number;
  last_error: string | null;
}

/** Per-VIP counters in `GET /api/v1/stats`. */
export interface VipStats {
  address: string;
  peer?: string | null;
  forwarded_packets: number;
  forwarded_bytes: number;
  /** Packets dropped for this VIP, by reason. */
  dropped: Record<string, number>;
}

/** Per-binding counters in `GET /api/v1/stats`. */
export interface BindingStats {
  vip: string;
  position: number;
  plugin: string;
  sha256?: string;
  on_error?: OnError;
  verdicts: { pass?: number; drop?: number };
  errors: Record<string, number>;
  quarantined: boolean;
  counters?: Record<string, number>;
}

/** `GET /api/v1/stats`. */
export interface Stats {
  totals?: Totals;
  /** Packets dropped, by reason, over the whole gateway. */
  drops: Record<string, number>;
  vips: VipStats[];
  bindings: BindingStats[];
}
