// The dashboard's fleet card: the fleet's totals per VIP, summed over every gateway by the
// fleet's Prometheus (`tungate run --fleet NAME --prometheus URL`), polled every 5 s. A
// gateway without one shows no card. Every number carries a `data-testid` and its raw value.

import { useState } from 'preact/hooks';
import type { FleetTotals } from '../api/types';
import { TableHead } from '../components/Table';
import { Value } from '../components/Value';
import { useServices } from '../context';
import { usePoller } from '../hooks';
import { fleetCard } from '../lib/fleetTotals';
import { formatCount, formatInteger } from '../lib/format';

/** How often the fleet totals are asked for (Prometheus scrapes every few seconds at best). */
const POLL_MS = 5000;

/** The fleet card, or nothing when this gateway has no fleet Prometheus. */
export function FleetTotalsCard() {
  const { api } = useServices();
  const [totals, setTotals] = useState<FleetTotals | null>(null);
  const [error, setError] = useState<unknown>(null);
  usePoller(async () => {
    try {
      setTotals(await api.fleetTotals());
      setError(null);
    } catch (failure) {
      setError(failure);
    }
  }, POLL_MS);
  const card = fleetCard(totals, error);
  if (card.show === 'nothing') return null;
  return (
    <div class="card" data-testid="fleet-totals">
      <h2>Fleet totals</h2>
      {card.show === 'error' ? (
        <p class="alert alert-warn" role="status" data-testid="fleet-totals-error">
          {card.message}
        </p>
      ) : (
        <>
          <p class="muted small">
            Fleet <span class="mono">{card.totals.fleet}</span>:{' '}
            <Value
              value={card.totals.gateways_up ?? null}
              format={formatInteger}
              testId="fleet-gateways-up"
            />{' '}
            gateways up, summed by the Prometheus at <span class="mono">{card.totals.prometheus}</span> as it
            last scraped them (a restarted gateway counts from zero again).
          </p>
          <div class="table-scroll">
            <table class="table" data-testid="fleet-vip-table">
              <TableHead
                columns={[
                  { label: 'VIP' },
                  { label: 'Forwarded', numeric: true },
                  { label: 'Bytes', numeric: true },
                  { label: 'Dropped', numeric: true },
                ]}
              />
              <tbody>
                {card.totals.vips.map((v) => (
                  <tr key={v.vip} data-testid={`fleet-vip-row-${v.vip}`}>
                    <th scope="row" class="mono">
                      {v.vip}
                    </th>
                    <td class="n">
                      <Value
                        value={v.forwarded_packets}
                        format={formatCount}
                        testId={`fleet-packets-${v.vip}`}
                      />
                    </td>
                    <td class="n">
                      <Value
                        value={v.forwarded_bytes}
                        format={(b) => `${formatCount(b)}B`}
                        testId={`fleet-bytes-${v.vip}`}
                      />
                    </td>
                    <td class="n">
                      <Value
                        value={v.dropped_packets}
                        format={formatCount}
                        testId={`fleet-dropped-${v.vip}`}
                      />
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        </>
      )}
    </div>
  );
}
