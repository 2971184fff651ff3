// What the VIP dialog sends and says about `shared`: the PUT body (the flag always sent, so
// the operator's choice is what tungate stores) and the notice when the choice and the peers
// that list the VIP disagree. Pure functions: the dialog renders, this decides.

import type { Binding, VipBody } from '../api/types';

/** The `PUT /api/v1/vips/{address}` body for this address, `shared` flag and chain. */
export function vipBody(address: string, shared: boolean, plugins: Binding[]): VipBody {
  return { address, shared, plugins };
}

/** What the notice under the checkbox says, and how loud. */
export interface SharedNotice {
  level: 'warn' | 'info';
  text: string;
}

/**
 * The notice for a VIP listed by the peers `servedBy` with `shared` as ticked, or null when
 * the two agree: a VIP under several peers must be shared (tungate refuses it otherwise); a
 * shared VIP under one peer or none is allowed, ready for more peers.
 */
export function sharedNotice(servedBy: readonly string[], shared: boolean): SharedNotice | null {
  if (servedBy.length > 1 && !shared) {
    return {
      level: 'warn',
      text: `Served by ${servedBy.length} peers (${servedBy.join(', ')}): tungate refuses this VIP unless it is shared.`,
    };
  }
  if (shared && servedBy.length <= 1) {
    return {
      level: 'info',
      text:
        servedBy.length === 1
          ? `Only ${servedBy[0]} serves it now; more peers may list it.`
          : 'No peer serves it yet; several peers may list it.',
    };
  }
  return null;
}
