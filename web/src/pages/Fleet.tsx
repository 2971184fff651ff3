// The Fleet page (`#/fleet`): whether this gateway is in a fleet, its announcement of GIP
// and the fleet revision it runs, and the fleet's gateways as registered in etcd (`GET
// /api/v1/fleet`): address, version, I/O path, readiness, revision against the latest,
// announcement and quarantined plugins. Read-only; it refreshes every 2 s.

import { useEffect } from 'preact/hooks';
import type { Fleet, Status } from '../api/types';
import { TableHead } from '../components/Table';
import { EmptyState, ErrorState, Loading } from '../components/States';
import { useServices } from '../context';
import { useResource } from '../hooks';
import { fleetRows, fleetStanding, revisionLine, type FleetRow } from '../lib/fleet';

const REFRESH_MS = 2000;

/** `#/fleet`. */
export function FleetPage() {
  const { api } = useServices();
  const data = useResource<{ status: Status; fleet: Fleet | null }>(async () => {
    const [status, fleet] = await Promise.all([api.status(), api.fleet()]);
    return { status, fleet };
  });
  useEffect(() => {
    const timer = setInterval(() => void data.reload(), REFRESH_MS);
    return () => clearInterval(timer);
  }, [data.reload]);
  const standing = data.data ? fleetStanding(data.data.status, data.data.fleet) : null;

  return (
    <section class="page" aria-labelledby="fleet-title">
      <div class="page-head">
        <h1 id="fleet-title">Fleet</h1>
        <p class="page-meta">
          Gateways that share one GIP over ECMP and take their configuration and plugins from etcd.
        </p>
      </div>
      {data.error ? (
        <ErrorState
          error={data.error}
          what="the fleet"
          onRetry={() => void data.reload()}
          testId="fleet-error"
        />
      ) : null}
      {data.loading && !data.data ? <Loading what="the fleet" /> : null}
      {standing?.kind === 'none' ? (
        <EmptyState title="This gateway is not in a fleet." testId="fleet-none">
          <p>
            It runs on its own, with its configuration from its own file and API. Start it with{' '}
            <code>tungate run --fleet NAME --etcd URL</code> to share GIP with other gateways and take the
            configuration from etcd.
          </p>
        </EmptyState>
      ) : null}
      {standing && standing.kind !== 'none' ? (
        <div class="card" data-testid="fleet-self">
          <h2>This gateway</h2>
          <dl class="facts">
            <dt>Fleet</dt>
            <dd data-testid="fleet-name">{standing.follow.name}</dd>
            <dt>GIP</dt>
            <dd data-testid="fleet-announcement" data-value={standing.follow.announcement}>
              {standing.follow.announcement}
            </dd>
            <dt>Configuration</dt>
            <dd data-testid="fleet-revision">{revisionLine(standing.follow)}</dd>
            {standing.follow.error ? (
              <>
                <dt>Not applied</dt>
                <dd class="text-danger" data-testid="fleet-error-text">
                  {standing.follow.error}
                </dd>
              </>
            ) : null}
          </dl>
        </div>
      ) : null}
      {standing?.kind === 'no-store' ? (
        <EmptyState title="No fleet store: the fleet's gateways are not listed." testId="fleet-no-store">
          <p>
            This gateway announces GIP for fleet {standing.follow.name}, but was started without{' '}
            <code>--etcd</code>, so its configuration is its own and no list of the fleet exists.
          </p>
        </EmptyState>
      ) : null}
      {standing?.kind === 'listed' ? <FleetTable fleet={standing.fleet} /> : null}
      <PerGatewayNote />
    </section>
  );
}

const COLUMNS = [
  { label: 'Gateway' },
  { label: 'Admin address' },
  { label: 'Version' },
  { label: 'I/O path' },
  { label: 'Ready' },
  { label: 'Revision' },
  { label: 'GIP' },
  { label: 'Quarantined plugins' },
] as const;

function FleetTable(props: { fleet: Fleet }) {
  const rows = fleetRows(props.fleet);
  return (
    <div class="card" data-testid="fleet-card">
      <h2>
        Gateways of {props.fleet.name} · latest revision {props.fleet.latest_revision}
      </h2>
      {props.fleet.reachable ? null : (
        <p class="alert alert-error" role="alert" data-testid="fleet-unreachable">
          etcd is not answering this gateway{props.fleet.error ? `: ${props.fleet.error}` : ''}. The list is
          the last one read; forwarding goes on with the configuration in force, and changes are refused until
          etcd is back.
        </p>
      )}
      {rows.length === 0 ? (
        <p>No gateway is registered yet.</p>
      ) : (
        <div class="table-scroll">
          <table class="table" data-testid="fleet-table">
            <TableHead columns={COLUMNS} />
            <tbody>
              {rows.map((row) => (
                <GatewayRow key={row.member} row={row} />
              ))}
            </tbody>
          </table>
        </div>
      )}
      <p class="muted small">
        A quarantined plugin is shown here but does not make its gateway not ready: that would withdraw every
        gateway of the fleet at once for one plugin's fault.
      </p>
    </div>
  );
}

function GatewayRow(props: { row: FleetRow }) {
  const { row } = props;
  return (
    <tr data-testid="fleet-row" data-member={row.member} data-latest={String(row.latest)}>
      <td>
        {row.member}
        {row.self ? ' (this one)' : ''}
      </td>
      <td>{row.address}</td>
      <td>{row.version}</td>
      <td>{row.io}</td>
      <td data-testid="fleet-ready" class={row.ready ? undefined : 'text-danger'}>
        {row.ready ? 'ready' : row.notReady ? `NOT READY: ${row.notReady}` : 'NOT READY'}
      </td>
      <td class={row.latest ? undefined : 'text-danger'} title={row.error ?? undefined}>
        {row.revision}
      </td>
      <td data-testid="fleet-row-announcement">{row.announcement}</td>
      <td>{row.quarantined.length ? row.quarantined.join(', ') : 'none'}</td>
    </tr>
  );
}

function PerGatewayNote() {
  return (
    <div class="card" data-testid="fleet-plugin-state-note">
      <h2>Plugin state is per gateway</h2>
      <p>
        Each gateway runs its own plugin instances, and the router may send any packet of a flow to any
        gateway. State a plugin keeps (counters, <code>rate-limit</code>'s token buckets) is therefore per
        gateway: a fleet of N gateways lets up to N × the configured rate through, and a count is the sum over
        the gateways.
      </p>
    </div>
  );
}
