// What the dashboard's fleet card shows, from the last `GET /api/v1/fleet/totals` outcome:
// the totals; the gateway's message when its fleet Prometheus failed (502 bad_gateway);
// nothing otherwise — no fleet Prometheus (409), an older gateway (404), or an API that is
// unreachable or wants a token (the rest of the page reports those). Pure: the card
// renders, this decides.

import { ApiError } from '../api/client';
import type { FleetTotals } from '../api/types';

/** The fleet card's content. */
export type FleetCard =
  { show: 'nothing' } | { show: 'error'; message: string } | { show: 'totals'; totals: FleetTotals };

/** The card for the latest answer (`totals`) or failure (`error`) of the fleet totals. */
export function fleetCard(totals: FleetTotals | null, error: unknown): FleetCard {
  if (error instanceof ApiError && error.code === 'bad_gateway') {
    return { show: 'error', message: error.message };
  }
  if (error) return { show: 'nothing' };
  return totals ? { show: 'totals', totals } : { show: 'nothing' };
}
