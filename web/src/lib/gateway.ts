// The gateway's tunnel endpoints as the dashboard shows them: its IPv4 GIP and its IPv6
// GIP (gateway.address6), either of which may be absent. Pure: the page renders, this says.

import type { Status } from '../api/types';

/**
 * The gateway's GIPs, IPv4 first: `gateway_address` (the IPv4 GIP, or the IPv6 one on a
 * gateway without IPv4), then `gateway_address6` when it is another address. A tungate that
 * does not send `gateway_address6` gives its one address.
 */
export function gatewayAddresses(status: Pick<Status, 'gateway_address' | 'gateway_address6'>): string[] {
  const all = [status.gateway_address];
  const v6 = status.gateway_address6;
  if (v6 != null && v6 !== status.gateway_address) all.push(v6);
  return all;
}

/** "gateway 10.0.0.1 + 2001:db8::1": the line under the uptime. */
export function gatewayText(status: Pick<Status, 'gateway_address' | 'gateway_address6'>): string {
  return `gateway ${gatewayAddresses(status).join(' + ')}`;
}
