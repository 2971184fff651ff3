// What the dashboard's fleet card shows, from the last `GET /api/v1/fleet/totals` outcome:
// nothing on a gateway without a fleet Prometheus (the API answers 409 conflict), the
// error when Prometheus failed (502), else the totals. Pure: the card renders, this decides.

import { ApiError } from '../api/client';
import type { FleetTotals } from '../api/types';

/** The fleet card's content. */
export type FleetCard =
  { show: 'nothing' } | { show: 'error'; message: string } | { show: 'totals'; totals: FleetTotals };

/** The card for the latest answer (`totals`) or failure (`error`) of the fleet totals. */
export function fleetCard(totals: FleetTotals | null, error: unknown): FleetCard {
  if (error instanceof ApiError && error.code === 'conflict') return { show: 'nothing' };
  if (error) {
    const message = error instanceof Error ? error.message : String(error);
    return { show: 'error', message };
  }
  return totals ? { show: 'totals', totals } : { show: 'nothing' };
}
