// The dashboard: gateway status, live per-VIP packets/s, bits/s and drops/s charts, the
// per-VIP counters, drops by reason, the plugin bindings (quarantined ones highlighted) and,
// on a fleet gateway with a Prometheus, the fleet's totals (FleetTotalsCard).
// Read-only: it never changes configuration. Every moving number carries a `data-testid`
// and its raw value (components/Value) for the browser tests.

import { useMemo, useState } from 'preact/hooks';
import { ApiError } from '../api/client';
import type { NetworkStatus, PluginFault, Status } from '../api/types';
import { Hash } from '../components/Hash';
import { Pager } from '../components/Pager';
import { LiveChart, seriesColour } from '../components/LiveChart';
import { EmptyState, ErrorState, Loading } from '../components/States';
import { TableHead } from '../components/Table';
import { Value } from '../components/Value';
import { useServices } from '../context';
import {
  UNKNOWN,
  formatBitRate,
  formatCount,
  formatDuration,
  formatInteger,
  formatPercent,
  formatPps,
  humanize,
} from '../lib/format';
import { gatewayText } from '../lib/gateway';
import { addressMatches, pageOf } from '../lib/paging';
import type { BindingRates, DropRates, RateSnapshot, VipRates } from '../lib/rates';
import { compareKeys } from '../lib/series';
import { ROUTE_HASH } from '../router';
import { MAX_CHART_VIPS } from '../lib/liveHistory';
import { FleetTotalsCard } from './FleetTotalsCard';
import { WINDOW_SECONDS, useLiveStats, type ChartData } from './useLiveStats';

/** The live charts, left to right: what they draw, in which unit, and their test id. */
const CHARTS: readonly {
  title: string;
  series: keyof ChartData;
  format: (v: number) => string;
  testId: string;
}[] = [
  { title: 'Forwarded packets/s', series: 'pps', format: formatPps, testId: 'chart-pps' },
  { title: 'Forwarded bits/s', series: 'bps', format: formatBitRate, testId: 'chart-bps' },
  { title: 'Dropped packets/s', series: 'dropPps', format: formatPps, testId: 'chart-drops' },
];

/** The most time the charts span: the history kept for the tab. */
const CHART_WINDOW_SECONDS = WINDOW_SECONDS;

/**
 * One colour per VIP for charts and table alike: by the VIP's place among every address
 * shown now (current VIPs and those still visible in the charts), in address order.
 */
function useVipColours(snapshot: RateSnapshot | null, charts: ChartData): (key: string) => string {
  const keys = [
    ...new Set([
      ...(snapshot?.vips.map((v) => v.address) ?? []),
      ...charts.pps.keys,
      ...charts.bps.keys,
      ...charts.dropPps.keys,
    ]),
  ].sort(compareKeys);
  const id = keys.join('|');
  return useMemo(() => {
    const index = new Map(keys.map((key, i) => [key, i]));
    return (key: string) => seriesColour(index.get(key) ?? 0);
    // `id` stands for `keys`' content: the function changes only when the set of VIPs does.
  }, [id]);
}

/** `#/`: the live overview. */
export function DashboardPage() {
  const { api } = useServices();
  const live = useLiveStats(api);
  const { snapshot } = live;
  const statsError = live.statsError;
  const unauthorized = statsError instanceof ApiError && statsError.kind === 'unauthorized';

  return (
    <section class="page" aria-labelledby="dashboard-title">
      <div class="page-head">
        <h1 id="dashboard-title">Dashboard</h1>
        <p class="page-meta" data-testid="last-update">
          {live.lastUpdate
            ? `Live, every second · last update ${new Date(live.lastUpdate).toLocaleTimeString()}`
            : live.loading
              ? 'Connecting…'
              : 'No data yet'}
        </p>
      </div>

      <StatusPanel status={live.status} snapshot={snapshot} error={live.statusError} />
      <Problems status={live.status} />

      {statsError && !snapshot ? (
        <ErrorState error={statsError} what="the traffic statistics" testId="stats-error" />
      ) : null}
      {statsError && snapshot && !unauthorized ? (
        <p class="alert alert-warn" role="status" data-testid="stats-stale">
          The numbers below are from the last successful update; the latest request failed.
        </p>
      ) : null}
      {live.loading && !snapshot ? <Loading what="statistics" /> : null}

      {snapshot ? (
        <Traffic snapshot={snapshot} charts={live.charts} configuredVips={live.status?.vips ?? null} />
      ) : null}
      <FleetTotalsCard />
    </section>
  );
}

/** One plugin fault as a person reads it (the words of `tungate status`). */
function describeFault(fault: PluginFault): string {
  const what = fault.quarantined
    ? fault.on_error === 'drop'
      ? 'is quarantined and fails closed: every packet of the VIP is dropped'
      : "is quarantined and fails open: the VIP's packets pass unfiltered"
    : 'has failed calls';
  const last = fault.last_error ? `; last error: ${fault.last_error}` : '';
  return (
    `Plugin ${fault.plugin} at ${fault.vip}#${fault.position} ${what} ` +
    `(${fault.dropped_packets} dropped, ${fault.passed_packets} passed by on_error = ${fault.on_error})${last}`
  );
}

/**
 * What needs the operator: quarantined bindings as a problem (as `tungate status` exits 3
 * for them), failed plugin calls and an admin listener without TLS off loopback as warnings.
 */
function Problems(props: { status: Status | null }) {
  const faults = props.status?.plugin_faults ?? [];
  const admin = props.status?.admin;
  const problems = faults.filter((f) => f.quarantined).map(describeFault);
  const warnings = faults.filter((f) => !f.quarantined).map(describeFault);
  if (admin && !admin.loopback && !admin.tls) {
    warnings.push(
      `The admin API listens on ${admin.address} without TLS: the token crosses the network in clear.`,
    );
  }
  return (
    <>
      {problems.length ? (
        <div
          class="alert alert-error"
          role="alert"
          data-testid="status-problems"
          data-value={problems.length}
        >
          <p>
            <strong>Problem:</strong> {problems.length === 1 ? 'a plugin binding is' : 'plugin bindings are'}{' '}
            quarantined.
          </p>
          <ul>
            {problems.map((text) => (
              <li key={text}>{text}</li>
            ))}
          </ul>
        </div>
      ) : null}
      {warnings.length ? (
        <div
          class="alert alert-warn"
          role="status"
          data-testid="status-warnings"
          data-value={warnings.length}
        >
          <ul>
            {warnings.map((text) => (
              <li key={text}>{text}</li>
            ))}
          </ul>
        </div>
      ) : null}
    </>
  );
}

/** Whether the gateway's networking is as configured; the reconciler's error when not. */
function NetworkLine(props: { network: NetworkStatus | null | undefined }) {
  const { network } = props;
  if (!network) return null;
  if (network.in_sync) {
    return (
      <span class="stat-sub" data-testid="status-network" data-value="true">
        networking as configured
      </span>
    );
  }
  return (
    <span
      class="stat-sub stat-warn"
      data-testid="status-network"
      data-value="false"
      title={network.last_error ?? 'no reconciling pass yet'}
    >
      networking NOT as configured: {network.last_error ?? 'no reconciling pass yet'}
    </span>
  );
}

function StatusPanel(props: { status: Status | null; snapshot: RateSnapshot | null; error: unknown }) {
  const { status, snapshot } = props;
  const totals = snapshot?.totals;
  return (
    <div class="status-grid" data-testid="status-panel">
      <div class="stat-card">
        <span class="stat-label">State</span>
        {status ? (
          <span
            class={status.ready ? 'badge badge-ok' : 'badge badge-warn'}
            data-testid="status-ready"
            data-value={String(status.ready)}
            title={status.not_ready ?? undefined}
          >
            {status.ready ? 'Ready' : 'Not ready'}
          </span>
        ) : (
          <span class="badge badge-muted" data-testid="status-ready" data-value="">
            {props.error ? 'Unknown' : '…'}
          </span>
        )}
        <span class="stat-sub" data-testid="status-version">
          {status ? `tungate ${status.version}` : UNKNOWN}
        </span>
        <NetworkLine network={status?.network} />
      </div>
      <div class="stat-card">
        <span class="stat-label">Decapsulation</span>
        <span class="stat-value" data-testid="status-decap-mode" data-value={status?.decap_mode ?? ''}>
          {status?.decap_mode ?? UNKNOWN}
        </span>
        <span class="stat-sub">
          <Value
            value={status?.workers}
            format={(v) => (v == null ? UNKNOWN : `${v} worker${v === 1 ? '' : 's'}`)}
            testId="status-workers"
          />
        </span>
        <span
          class="stat-sub"
          data-testid="status-io"
          data-value={status?.io?.path ?? ''}
          title={status?.io?.reason ?? 'not known yet'}
        >
          {status?.io ? `I/O ${status.io.path}` : UNKNOWN}
        </span>
      </div>
      <div class="stat-card">
        <span class="stat-label">Uptime</span>
        <Value
          class="stat-value"
          value={status?.uptime_seconds}
          format={formatDuration}
          testId="status-uptime"
          title={status ? `${Math.floor(status.uptime_seconds)} seconds` : 'not known yet'}
        />
        <span
          class="stat-sub"
          data-testid="status-gateway"
          data-value={status?.gateway_address ?? ''}
          data-value6={status?.gateway_address6 ?? ''}
          title="The gateway's tunnel endpoints (GIPs): IPv4 (gateway.address) and IPv6 (gateway.address6)"
        >
          {status ? gatewayText(status) : UNKNOWN}
        </span>
      </div>
      <div class="stat-card">
        <span class="stat-label">Configured</span>
        <span class="stat-value">
          <Value
            value={status?.peers}
            format={(v) => (v == null ? UNKNOWN : String(v))}
            testId="status-peers"
          />{' '}
          <small>peers</small> ·{' '}
          <Value
            value={status?.vips}
            format={(v) => (v == null ? UNKNOWN : String(v))}
            testId="status-vips"
          />{' '}
          <small>VIPs</small>
        </span>
      </div>
      <div class="stat-card stat-card-accent">
        <span class="stat-label">Forwarded</span>
        <Value class="stat-value" value={totals?.pps} format={formatPps} testId="total-pps" />
        <span class="stat-sub">
          <Value value={totals?.bps} format={formatBitRate} testId="total-bps" /> ·{' '}
          <Value value={totals?.forwardedPackets} format={formatCount} testId="total-forwarded-packets" />{' '}
          packets
        </span>
      </div>
      <div class="stat-card">
        <span class="stat-label">Dropped</span>
        <Value class="stat-value" value={totals?.dropPps} format={formatPps} testId="total-drop-pps" />
        <span class="stat-sub">
          <Value value={totals?.droppedPackets} format={formatCount} testId="total-dropped-packets" /> packets
          ·{' '}
          <span
            title={`of ${formatInteger(totals?.receivedPackets)} packets received`}
            data-testid="total-drop-share"
          >
            {formatPercent(totals?.droppedPackets, totals?.receivedPackets)} of received
          </span>
        </span>
      </div>
    </div>
  );
}

function Traffic(props: { snapshot: RateSnapshot; charts: ChartData; configuredVips: number | null }) {
  const { snapshot, charts } = props;
  const colourOf = useVipColours(snapshot, charts);
  if (snapshot.vips.length === 0 && props.configuredVips) {
    return (
      <EmptyState title="No traffic counters yet" testId="no-vip-counters">
        <p>
          {props.configuredVips} VIP{props.configuredVips === 1 ? ' is' : 's are'} configured, but tungate
          reports no counters for them yet. They appear here once the data path runs with the current
          configuration.
        </p>
      </EmptyState>
    );
  }
  if (snapshot.vips.length === 0) {
    return (
      <EmptyState title="No VIPs yet" testId="empty-vips">
        <p>
          tungate forwards replies for the VIPs its peers serve. Add a peer and its VIPs on the{' '}
          <a href={ROUTE_HASH.config}>Peers &amp; VIPs</a> page; traffic shows up here within a second.
        </p>
      </EmptyState>
    );
  }
  const noTraffic =
    snapshot.vips.every((v) => v.forwardedPackets === 0 && v.droppedPackets === 0) &&
    snapshot.drops.every((d) => d.total === 0);
  return (
    <>
      {noTraffic ? (
        <p class="alert alert-info" role="status" data-testid="no-traffic">
          No traffic yet: no reply has been forwarded or dropped. The charts fill in as soon as real servers
          send replies through their tunnels to this gateway.
        </p>
      ) : null}
      {snapshot.vips.length > MAX_CHART_VIPS ? (
        <p class="muted small" data-testid="charts-busiest">
          The charts draw the {MAX_CHART_VIPS} busiest of {snapshot.vips.length} VIPs; the table lists every
          VIP.
        </p>
      ) : null}
      <div class="charts">
        {CHARTS.map((chart) => (
          <LiveChart
            key={chart.testId}
            title={chart.title}
            series={charts[chart.series]}
            format={chart.format}
            colourOf={colourOf}
            windowSeconds={CHART_WINDOW_SECONDS}
            testId={chart.testId}
          />
        ))}
      </div>
      <VipTable vips={snapshot.vips} colourOf={colourOf} />
      <div class="two-col">
        <DropsTable drops={snapshot.drops} />
        <BindingsTable bindings={snapshot.bindings} />
      </div>
    </>
  );
}

function VipTable(props: { vips: VipRates[]; colourOf: (key: string) => string }) {
  const [query, setQuery] = useState('');
  const [pageIndex, setPageIndex] = useState(0);
  const page = pageOf(
    props.vips.filter((v) => addressMatches(v.address, query)),
    pageIndex,
  );
  return (
    <div class="card">
      <h2>VIPs</h2>
      {props.vips.length > page.items.length || query ? (
        <Pager
          page={page}
          query={query}
          onQuery={(q) => {
            setQuery(q);
            setPageIndex(0);
          }}
          onPage={setPageIndex}
          what="VIPs"
          testId="vip-table-pager"
        />
      ) : null}
      <div class="table-scroll">
        <table class="table" data-testid="vip-table">
          <TableHead
            columns={[
              { label: 'VIP' },
              { label: 'Peer' },
              { label: 'Packets/s', numeric: true },
              { label: 'Bits/s', numeric: true },
              { label: 'Forwarded', numeric: true },
              { label: 'Drops/s', numeric: true },
              { label: 'Dropped', numeric: true },
            ]}
          />
          <tbody>
            {page.items.map((vip) => (
              <tr key={vip.address} data-testid={`vip-row-${vip.address}`}>
                <th scope="row" class="mono">
                  <span
                    class="swatch"
                    style={{ background: props.colourOf(vip.address) }}
                    aria-hidden="true"
                  />
                  {vip.address}
                </th>
                <td>{vip.peer ?? <span class="muted">—</span>}</td>
                <td class="n">
                  <Value value={vip.pps} format={formatPps} testId={`vip-pps-${vip.address}`} />
                </td>
                <td class="n">
                  <Value value={vip.bps} format={formatBitRate} testId={`vip-bps-${vip.address}`} />
                </td>
                <td class="n">
                  <Value
                    value={vip.forwardedPackets}
                    format={formatCount}
                    testId={`vip-forwarded-packets-${vip.address}`}
                  />
                  <span class="muted small"> pkts · </span>
                  <Value
                    value={vip.forwardedBytes}
                    format={(v) => `${formatCount(v)}B`}
                    testId={`vip-forwarded-bytes-${vip.address}`}
                  />
                </td>
                <td class="n">
                  <Value value={vip.dropPps} format={formatPps} testId={`vip-drop-pps-${vip.address}`} />
                </td>
                <td class="n">
                  <Value
                    class={vip.droppedPackets > 0 ? 'text-danger' : ''}
                    value={vip.droppedPackets}
                    format={formatCount}
                    testId={`vip-dropped-packets-${vip.address}`}
                  />
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </div>
  );
}

function DropsTable(props: { drops: DropRates[] }) {
  return (
    <div class="card">
      <h2>Drops by reason</h2>
      {props.drops.length === 0 || props.drops.every((d) => d.total === 0) ? (
        <p class="muted" data-testid="no-drops">
          No packet has been dropped.
        </p>
      ) : (
        <table class="table" data-testid="drops-table">
          <TableHead
            columns={[
              { label: 'Reason' },
              { label: 'Per second', numeric: true },
              { label: 'Total', numeric: true },
              { label: 'Packets' },
            ]}
          />
          <tbody>
            {props.drops.map((drop) => (
              <tr key={drop.reason} data-testid={`drop-row-${drop.reason}`}>
                <th scope="row">
                  {humanize(drop.reason)} <code class="muted small">{drop.reason}</code>
                </th>
                <td class="n">
                  <Value value={drop.perSecond} format={formatPps} testId={`drop-pps-${drop.reason}`} />
                </td>
                <td class="n">
                  <Value value={drop.total} format={formatCount} testId={`drop-total-${drop.reason}`} />
                </td>
                <td>
                  <CaptureButton reason={drop.reason} />
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <p class="muted small">
        Capture downloads the next {CAPTURE_COUNT} packets dropped for that reason (at most {CAPTURE_SECONDS}{' '}
        s) as a pcapng file for Wireshark; each packet's comment says why it was dropped. Drops before tungate
        reads a packet (receive overflow, inside XDP) are counted only.
      </p>
    </div>
  );
}

/** Packets and seconds of a capture started from the drop table. */
const CAPTURE_COUNT = 100;
const CAPTURE_SECONDS = 10;

/** Captures the next drops of one reason and hands the pcapng file to the browser. */
function CaptureButton(props: { reason: string }) {
  const { api } = useServices();
  const [state, setState] = useState<{ busy: boolean; error: string | null }>({ busy: false, error: null });
  const start = async () => {
    setState({ busy: true, error: null });
    try {
      const file = await api.capture({
        reason: props.reason,
        count: CAPTURE_COUNT,
        seconds: CAPTURE_SECONDS,
      });
      const url = URL.createObjectURL(file);
      const link = document.createElement('a');
      link.href = url;
      link.download = `tungate-${props.reason}-${new Date().toISOString().replace(/[:.]/g, '-')}.pcapng`;
      document.body.appendChild(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(url), 60_000);
      setState({ busy: false, error: null });
    } catch (error) {
      setState({ busy: false, error: error instanceof Error ? error.message : String(error) });
    }
  };
  return (
    <span>
      <button
        type="button"
        class="btn btn-small"
        disabled={state.busy}
        onClick={() => void start()}
        data-testid={`capture-${props.reason}`}
        title={`Download the next ${CAPTURE_COUNT} packets dropped as ${props.reason} (pcapng)`}
      >
        {state.busy ? `Capturing… (up to ${CAPTURE_SECONDS} s)` : 'Capture'}
      </button>
      {state.error ? (
        <span class="text-danger small" role="alert" data-testid={`capture-error-${props.reason}`}>
          {' '}
          {state.error}
        </span>
      ) : null}
    </span>
  );
}

function BindingsTable(props: { bindings: BindingRates[] }) {
  const quarantined = props.bindings.filter((b) => b.stats.quarantined).length;
  return (
    <div class="card">
      <h2>
        Plugin bindings{' '}
        {quarantined > 0 ? (
          <span class="badge badge-danger" data-testid="quarantined-count" data-value={String(quarantined)}>
            {quarantined} quarantined
          </span>
        ) : null}
      </h2>
      <p class="muted small" data-testid="bindings-per-gateway">
        These counters and each plugin's state (e.g. rate-limit's tables) belong to this gateway only. In a
        fleet (tungate run --fleet) the router spreads the flows over the gateways, so a limit applies per
        gateway and a flow may move to another gateway, which starts it from zero.
      </p>
      {props.bindings.length === 0 ? (
        <p class="muted" data-testid="no-bindings">
          No plugin is bound to a VIP. Bind one on the <a href={ROUTE_HASH.plugins}>Plugins</a> page.
        </p>
      ) : (
        <div class="table-scroll">
          <table class="table" data-testid="bindings-table">
            <TableHead
              columns={[
                { label: 'VIP · pos.' },
                { label: 'Plugin' },
                { label: 'Pass/s', numeric: true },
                { label: 'Drop/s', numeric: true },
                { label: 'Passed', numeric: true },
                { label: 'Dropped', numeric: true },
                { label: 'Errors', numeric: true },
                { label: 'State' },
              ]}
            />
            <tbody>
              {props.bindings.map((b) => {
                const id = `${b.stats.vip}-${b.stats.position}`;
                const errorsTitle = Object.entries(b.stats.errors ?? {})
                  .map(([kind, n]) => `${humanize(kind)}: ${formatInteger(n)}`)
                  .join('\n');
                const counters = Object.entries(b.stats.counters ?? {});
                return (
                  <tr
                    key={b.key}
                    class={b.stats.quarantined ? 'row-quarantined' : undefined}
                    data-testid={`binding-row-${id}`}
                    data-quarantined={String(b.stats.quarantined)}
                  >
                    <th scope="row" class="mono">
                      {b.stats.vip} <span class="muted">#{b.stats.position}</span>
                    </th>
                    <td>
                      <span class="plugin-name">{b.stats.plugin}</span>
                      {b.stats.sha256 ? <Hash sha256={b.stats.sha256} /> : null}
                      <div class="counters small" data-testid={`binding-counters-${id}`}>
                        {b.stats.on_error ? <span>on error: {b.stats.on_error}</span> : null}
                        {counters.map(([name, value]) => (
                          <span key={name} class="counter">
                            {name}{' '}
                            <Value
                              value={value}
                              format={formatCount}
                              testId={`binding-counter-${id}-${name}`}
                            />
                          </span>
                        ))}
                      </div>
                    </td>
                    <td class="n">
                      <Value value={b.passPerSecond} format={formatPps} testId={`binding-pass-pps-${id}`} />
                    </td>
                    <td class="n">
                      <Value value={b.dropPerSecond} format={formatPps} testId={`binding-drop-pps-${id}`} />
                    </td>
                    <td class="n">
                      <Value
                        value={b.stats.verdicts.pass ?? 0}
                        format={formatCount}
                        testId={`binding-pass-${id}`}
                      />
                    </td>
                    <td class="n">
                      <Value
                        value={b.stats.verdicts.drop ?? 0}
                        format={formatCount}
                        testId={`binding-drop-${id}`}
                      />
                    </td>
                    <td class="n">
                      <Value
                        class={b.errorsTotal > 0 ? 'text-danger' : ''}
                        value={b.errorsTotal}
                        format={formatCount}
                        testId={`binding-errors-${id}`}
                        title={errorsTitle || 'no errors'}
                      />
                    </td>
                    <td>
                      {b.stats.quarantined ? (
                        <span
                          class="badge badge-danger"
                          title="tungate quarantined this binding because its plugin kept failing (traps or time-outs)."
                        >
                          Quarantined
                        </span>
                      ) : (
                        <span class="badge badge-ok">Active</span>
                      )}
                    </td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        </div>
      )}
    </div>
  );
}
