import { describe, expect, it } from 'vitest';
import { ApiError } from '../api/client';
import type { FleetTotals } from '../api/types';
import { fleetCard } from './fleetTotals';

const totals: FleetTotals = {
  fleet: 'prod',
  prometheus: 'http://10.0.0.9:9090',
  gateways_up: 3,
  vips: [{ vip: '192.0.2.10', forwarded_packets: 2560, forwarded_bytes: 153600, dropped_packets: 640 }],
};

describe('fleetCard', () => {
  it('shows the totals the API answered', () => {
    expect(fleetCard(totals, null)).toEqual({ show: 'totals', totals });
  });

  it('shows nothing without a fleet Prometheus (409), on an older gateway (404), before the first answer', () => {
    const conflict = new ApiError('api', 'no Prometheus is configured', 409, 'conflict');
    expect(fleetCard(null, conflict)).toEqual({ show: 'nothing' });
    expect(fleetCard(null, new ApiError('api', 'no such resource', 404, 'not_found'))).toEqual({
      show: 'nothing',
    });
    expect(fleetCard(null, null)).toEqual({ show: 'nothing' });
  });

  it('leaves an unreachable API or a missing token to the rest of the page', () => {
    expect(fleetCard(totals, new ApiError('unreachable', 'Cannot reach the tungate API'))).toEqual({
      show: 'nothing',
    });
    expect(fleetCard(null, new ApiError('unauthorized', 'token', 401, 'unauthorized'))).toEqual({
      show: 'nothing',
    });
    expect(fleetCard(null, new Error('boom'))).toEqual({ show: 'nothing' });
  });

  it("shows the gateway's message when Prometheus failed", () => {
    const failed = new ApiError(
      'api',
      "the fleet's Prometheus at http://10.0.0.9:9090 could not give ...: connection refused",
      502,
      'bad_gateway',
    );
    expect(fleetCard(totals, failed)).toEqual({ show: 'error', message: failed.message });
  });
});
