// A peer's return tunnel in the peers form and table: its text, and the form's tunnel fields
// checked before the API sees them (the API checks them again and names the field).

/** The tunnel types a peer may send its replies through. */
export const TUNNELS = ['ipip', 'gue', 'fou', 'gre'] as const;
/** One of [`TUNNELS`]. */
export type TunnelKind = (typeof TUNNELS)[number];
/** GUE's UDP port when none is given (the kernel's examples use it too). */
export const DEFAULT_GUE_PORT = 6080;

/** "ipip", "gue :6080", "fou :5555", "gre", "gre key 7": a peer's return tunnel. */
export function tunnelText(peer: { tunnel?: TunnelKind; port?: number; key?: number }): string {
  const kind = peer.tunnel ?? 'ipip';
  if (kind === 'gue') return `gue :${peer.port ?? DEFAULT_GUE_PORT}`;
  if (kind === 'fou') return `fou :${peer.port ?? '?'}`;
  if (kind === 'gre' && peer.key !== undefined) return `gre key ${peer.key}`;
  return kind;
}

/** What the tunnel fields say, or the message of the first one the form refuses. */
export function tunnelFields(
  kind: TunnelKind,
  portText: string,
  keyText: string,
):
  | { ok: true; value: { tunnel?: TunnelKind; port?: number; key?: number } }
  | { ok: false; field: 'port' | 'key'; message: string } {
  const port = portText.trim();
  const key = keyText.trim();
  if (kind === 'gue' || kind === 'fou') {
    if (port === '') {
      return kind === 'fou'
        ? { ok: false, field: 'port', message: 'fou needs the UDP port its packets are sent to.' }
        : { ok: true, value: { tunnel: kind } };
    }
    if (!/^[0-9]+$/.test(port) || Number(port) < 1 || Number(port) > 65535) {
      return { ok: false, field: 'port', message: 'A UDP port is a number from 1 to 65535.' };
    }
    return { ok: true, value: { tunnel: kind, port: Number(port) } };
  }
  if (kind === 'gre' && key !== '') {
    if (!/^[0-9]+$/.test(key) || Number(key) > 4294967295) {
      return { ok: false, field: 'key', message: 'A GRE key is a number from 0 to 4294967295.' };
    }
    return { ok: true, value: { tunnel: kind, key: Number(key) } };
  }
  return { ok: true, value: kind === 'ipip' ? {} : { tunnel: kind } };
}
