// The "Peers & VIPs" page: lists, adds, edits and deletes peers (real servers) and VIPs
// with their plugin chains, through `PUT`/`DELETE /api/v1/peers/{name}` and
// `/api/v1/vips/{address}`, and shows the API's validation errors next to the field they
// name. Before sending, it checks only that addresses are IPv4 or IPv6 text (a typo is
// pointed at without a round trip); tungate's answer is the authority on the rest. Each peer's
// liveness (packets received, when last heard from, silent longer than its `silent_after`)
// comes from `GET /api/v1/stats`, polled while the page is shown.

import { useMemo, useState } from 'preact/hooks';
import { DEFAULT_GUE_PORT, TUNNELS, type TunnelKind, tunnelFields, tunnelText } from '../lib/tunnel';
import type { Revision } from '../api/client';
import type { Binding, Peer, PeerStats, Plugin, Vip } from '../api/types';
import { BindingFields, draftIsValid, type BindingDraft } from '../components/BindingFields';
import { ActionDialog, Dialog } from '../components/Dialog';
import { Field, FormActions, GeneralErrors, toFormErrors } from '../components/Field';
import { Pager } from '../components/Pager';
import { EmptyState, ErrorState, Loading } from '../components/States';
import { RowActions, TableHead } from '../components/Table';
import { useServices } from '../context';
import { usePoller, useResource } from '../hooks';
import { draftToBinding, moveBinding, removeBinding } from '../lib/chain';
import { addressProblem, splitList } from '../lib/addressList';
import type { MappedErrors } from '../lib/fieldErrors';
import { configToText } from '../lib/jsonConfig';
import { addressMatches, pageOf } from '../lib/paging';
import { compareKeys } from '../lib/series';
import { sharedNotice, vipBody } from '../lib/vipShared';
import { ROUTE_HASH } from '../router';

interface ConfigData {
  peers: Peer[];
  vips: Vip[];
  plugins: Plugin[];
  /** The revision the lists were read at: every change made from them sends it. */
  revision: Revision | null;
}

type Editing =
  | { kind: 'peer'; peer: Peer | null }
  | { kind: 'vip'; vip: Vip | null }
  | { kind: 'delete-peer'; peer: Peer }
  | { kind: 'delete-vip'; vip: Vip };

const NO_ERRORS: MappedErrors = { fields: {}, general: [] };

/** How often the peers' liveness is read again. */
const LIVENESS_POLL_MS = 2000;

/** The peers' liveness by name, polled (an empty map until the first answer or on error). */
function usePeerLiveness(): Map<string, PeerStats> {
  const { api } = useServices();
  const [byName, setByName] = useState<Map<string, PeerStats>>(() => new Map());
  usePoller(async () => {
    try {
      const stats = await api.stats();
      setByName(new Map((stats.peers ?? []).map((p) => [p.name, p])));
    } catch {
      // The page's own load reports a gateway that does not answer; keep the last view.
    }
  }, LIVENESS_POLL_MS);
  return byName;
}

/** "12s ago", "3m ago", "2h ago", "1d ago" from a number of seconds. */
export function agoText(seconds: number): string {
  const s = Math.max(0, Math.floor(seconds));
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.floor(s / 60)}m ago`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ago`;
  return `${Math.floor(s / 86400)}d ago`;
}

/** One peer's liveness cell: when last heard from, with a warning badge when silent. */
function Liveness(props: { name: string; stats: PeerStats | undefined }) {
  const p = props.stats;
  if (!p) return <span class="muted">–</span>;
  const heard = p.last_heard_unix == null ? 'never heard from' : `heard ${agoText(p.silent_seconds)}`;
  return (
    <span data-testid={`peer-liveness-${props.name}`} data-silent={String(p.silent)}>
      {p.silent ? (
        <span
          class="badge badge-warn"
          title={`Nothing from this peer for longer than its silent_after (${p.silent_after_seconds}s): is its tunnel up?`}
        >
          silent
        </span>
      ) : (
        <span class="badge badge-ok">alive</span>
      )}{' '}
      <span class="muted">
        {heard} · {p.received_packets} packets
      </span>
    </span>
  );
}

/** `#/peers-vips`. */
export function ConfigPage() {
  const { api, notify } = useServices();
  const data = useResource<ConfigData>(() => api.configView());
  const revision = data.data?.revision ?? null;
  const [editing, setEditing] = useState<Editing | null>(null);
  const close = () => setEditing(null);
  const closeAndReload = () => {
    setEditing(null);
    void data.reload();
  };

  return (
    <section class="page" aria-labelledby="config-title">
      <div class="page-head">
        <h1 id="config-title">Peers &amp; VIPs</h1>
        <p class="page-meta">
          Peers are the real servers whose tunnelled replies tungate accepts; each serves some VIPs. A VIP's
          plugin chain runs on every reply it sends.
        </p>
      </div>
      {data.error ? (
        <ErrorState error={data.error} what="peers and VIPs" onRetry={() => void data.reload()} />
      ) : null}
      {data.loading && !data.data ? <Loading what="peers and VIPs" /> : null}
      {data.data ? (
        <div class="two-col two-col-even">
          <PeersCard
            peers={data.data.peers}
            onAdd={() => setEditing({ kind: 'peer', peer: null })}
            onEdit={(peer) => setEditing({ kind: 'peer', peer })}
            onDelete={(peer) => setEditing({ kind: 'delete-peer', peer })}
          />
          <VipsCard
            vips={data.data.vips}
            peers={data.data.peers}
            onAdd={() => setEditing({ kind: 'vip', vip: null })}
            onEdit={(vip) => setEditing({ kind: 'vip', vip })}
            onDelete={(vip) => setEditing({ kind: 'delete-vip', vip })}
          />
        </div>
      ) : null}

      {editing?.kind === 'peer' ? (
        <PeerDialog peer={editing.peer} revision={revision} onClose={close} onSaved={closeAndReload} />
      ) : null}
      {editing?.kind === 'vip' ? (
        <VipDialog
          vip={editing.vip}
          revision={revision}
          plugins={data.data?.plugins ?? []}
          peers={data.data?.peers ?? []}
          onClose={close}
          onSaved={closeAndReload}
        />
      ) : null}
      {editing?.kind === 'delete-peer' ? (
        <ActionDialog
          title={`Delete peer ${editing.peer.name}?`}
          confirmLabel="Delete"
          danger
          action={async () => {
            await api.deletePeer(editing.peer.name, revision);
            notify(`Peer ${editing.peer.name} deleted.`);
          }}
          onClose={close}
          onDone={closeAndReload}
        >
          <p>
            tungate will stop accepting tunnelled replies from <code>{editing.peer.address}</code>: replies it
            sends are dropped from then on.
          </p>
        </ActionDialog>
      ) : null}
      {editing?.kind === 'delete-vip' ? (
        <ActionDialog
          title={`Delete VIP ${editing.vip.address}?`}
          confirmLabel="Delete"
          danger
          action={async () => {
            const address = editing.vip.address;
            const hasEntry = (data.data?.vips ?? []).some((v) => v.address === address);
            if (hasEntry) {
              await api.deleteVip(address, revision);
            } else {
              // Only peers list it: it leaves their lists. The first write is checked against
              // the revision the page loaded; the next ones follow from it in this one action.
              let ifMatch = revision;
              for (const peer of (data.data?.peers ?? []).filter((p) => p.vips?.includes(address))) {
                await api.putPeer(
                  peer.name,
                  { ...peer, vips: (peer.vips ?? []).filter((v) => v !== address) },
                  ifMatch,
                );
                ifMatch = null;
              }
            }
            notify(`VIP ${address} deleted.`);
          }}
          onClose={close}
          onDone={closeAndReload}
        >
          <p>
            This removes the VIP's entry and its plugin chain
            {editing.vip.plugins?.length ? ` (${editing.vip.plugins.length} binding(s))` : ''}.
          </p>
        </ActionDialog>
      ) : null}
    </section>
  );
}

function PeersCard(props: {
  peers: Peer[];
  onAdd: () => void;
  onEdit: (peer: Peer) => void;
  onDelete: (peer: Peer) => void;
}) {
  const liveness = usePeerLiveness();
  return (
    <div class="card" data-testid="peers-card">
      <div class="card-head">
        <h2>Peers</h2>
        <button type="button" class="btn btn-primary" onClick={props.onAdd} data-testid="add-peer">
          Add peer
        </button>
      </div>
      {props.peers.length === 0 ? (
        <EmptyState title="No peers yet" testId="empty-peers">
          <p>Add a real server (its tunnel source address, the RIP) and the VIPs it answers for.</p>
        </EmptyState>
      ) : (
        <table class="table" data-testid="peers-table">
          <TableHead
            columns={[
              { label: 'Name' },
              { label: 'Address (RIP)' },
              { label: 'Serves VIPs' },
              { label: 'Tunnel' },
              { label: 'Actions', hidden: true },
            ]}
          />
          <tbody>
            {props.peers.map((peer) => (
              <tr key={peer.name} data-testid={`peer-row-${peer.name}`}>
                <th scope="row">{peer.name}</th>
                <td class="mono">{peer.address}</td>
                <td class="mono">
                  {peer.vips?.length ? <VipList vips={peer.vips} /> : <span class="muted">none</span>}
                </td>
                <td>
                  <span class="mono" data-testid={`peer-tunnel-${peer.name}`}>
                    {tunnelText(peer)}
                  </span>{' '}
                  <Liveness name={peer.name} stats={liveness.get(peer.name)} />
                </td>
                <RowActions
                  what={`peer ${peer.name}`}
                  onEdit={() => props.onEdit(peer)}
                  onDelete={() => props.onDelete(peer)}
                />
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </div>
  );
}

/**
 * Every VIP: those with an entry (a plugin chain, `shared`) and those only a peer lists,
 * in address order.
 */
function allVips(entries: readonly Vip[], peers: readonly Peer[]): Vip[] {
  const byAddress = new Map(entries.map((v) => [v.address, v]));
  for (const peer of peers) {
    for (const address of peer.vips ?? []) {
      if (!byAddress.has(address)) byAddress.set(address, { address });
    }
  }
  return [...byAddress.values()].sort((a, b) => compareKeys(a.address, b.address));
}

/** VIPs a peer serves shown in a row: the first few, then how many more. */
const VIPS_IN_A_ROW = 5;

function VipList(props: { vips: readonly string[] }) {
  const shown = props.vips.slice(0, VIPS_IN_A_ROW).join(', ');
  const more = props.vips.length - VIPS_IN_A_ROW;
  return (
    <>
      {shown}
      {more > 0 ? <span class="muted"> and {more} more</span> : null}
    </>
  );
}

function VipsCard(props: {
  vips: Vip[];
  peers: Peer[];
  onAdd: () => void;
  onEdit: (vip: Vip) => void;
  onDelete: (vip: Vip) => void;
}) {
  const [query, setQuery] = useState('');
  const [pageIndex, setPageIndex] = useState(0);
  const servedByMap = useMemo(() => {
    const map = new Map<string, string[]>();
    for (const peer of props.peers) {
      for (const address of peer.vips ?? []) map.set(address, [...(map.get(address) ?? []), peer.name]);
    }
    return map;
  }, [props.peers]);
  const servedBy = (address: string) => servedByMap.get(address) ?? [];
  const sorted = useMemo(() => allVips(props.vips, props.peers), [props.vips, props.peers]);
  const matching = useMemo(() => sorted.filter((v) => addressMatches(v.address, query)), [sorted, query]);
  const page = pageOf(matching, pageIndex);
  const vips = page.items;
  return (
    <div class="card" data-testid="vips-card">
      <div class="card-head">
        <h2>VIPs</h2>
        <button type="button" class="btn btn-primary" onClick={props.onAdd} data-testid="add-vip">
          Add VIP
        </button>
      </div>
      {sorted.length === 0 ? (
        <EmptyState title="No VIPs yet" testId="empty-vips">
          <p>Add a VIP to give it a plugin chain. Peers list the VIPs they serve.</p>
        </EmptyState>
      ) : (
        <Pager
          page={page}
          query={query}
          onQuery={(q) => {
            setQuery(q);
            setPageIndex(0);
          }}
          onPage={setPageIndex}
          what="VIPs"
          testId="vips-pager"
        />
      )}
      {sorted.length === 0 ? null : (
        <table class="table" data-testid="vips-table">
          <TableHead
            columns={[
              { label: 'VIP' },
              { label: 'Served by' },
              { label: 'Plugin chain' },
              { label: 'Actions', hidden: true },
            ]}
          />
          <tbody>
            {vips.map((vip) => {
              const peers = servedBy(vip.address);
              return (
                <tr key={vip.address} data-testid={`vip-config-row-${vip.address}`}>
                  <th scope="row" class="mono">
                    {vip.address}
                    {vip.shared ? (
                      <>
                        {' '}
                        <span class="badge badge-muted" data-testid={`vip-shared-${vip.address}`}>
                          shared
                        </span>
                      </>
                    ) : null}
                  </th>
                  <td>{peers.length ? peers.join(', ') : <span class="muted">no peer</span>}</td>
                  <td>
                    {vip.plugins?.length ? (
                      <ol class="chain-summary">
                        {vip.plugins.map((b, i) => (
                          <li key={i}>
                            <span class="chain-pos">#{i}</span> {b.plugin}
                            {b.on_error === 'drop' ? <span class="muted small"> (fail closed)</span> : null}
                          </li>
                        ))}
                      </ol>
                    ) : (
                      <span class="muted">no plugins</span>
                    )}
                  </td>
                  <RowActions
                    what={`VIP ${vip.address}`}
                    onEdit={() => props.onEdit(vip)}
                    onDelete={() => props.onDelete(vip)}
                  />
                </tr>
              );
            })}
          </tbody>
        </table>
      )}
    </div>
  );
}

function PeerDialog(props: {
  peer: Peer | null;
  revision: Revision | null;
  onClose: () => void;
  onSaved: () => void;
}) {
  const { api, notify } = useServices();
  // What the form was opened from: a save is refused if the configuration changed since.
  const [revision] = useState(props.revision);
  const editing = props.peer !== null;
  const [name, setName] = useState(props.peer?.name ?? '');
  const [address, setAddress] = useState(props.peer?.address ?? '');
  const [vipsText, setVipsText] = useState((props.peer?.vips ?? []).join(', '));
  const [tunnel, setTunnel] = useState<TunnelKind>(props.peer?.tunnel ?? 'ipip');
  const [portText, setPortText] = useState(props.peer?.port?.toString() ?? '');
  const [keyText, setKeyText] = useState(props.peer?.key?.toString() ?? '');
  const [busy, setBusy] = useState(false);
  const [errors, setErrors] = useState<MappedErrors>(NO_ERRORS);

  const submit = async (event: Event) => {
    event.preventDefault();
    setErrors(NO_ERRORS);
    const vips = splitList(vipsText);
    const addressError = addressProblem(address.trim());
    const vipErrors = vips.flatMap((v, i) => {
      const problem = addressProblem(v);
      return problem ? [{ message: problem, rest: [i] }] : [];
    });
    if (addressError || vipErrors.length > 0) {
      setErrors({
        fields: {
          ...(addressError ? { address: [{ message: addressError, rest: [] }] } : {}),
          ...(vipErrors.length > 0 ? { vips: vipErrors } : {}),
        },
        general: [],
      });
      return;
    }
    const tunnelValue = tunnelFields(tunnel, portText, keyText);
    if (!tunnelValue.ok) {
      setErrors({
        fields: { [tunnelValue.field]: [{ message: tunnelValue.message, rest: [] }] },
        general: [],
      });
      return;
    }
    setBusy(true);
    try {
      // The dialog has no field for `silent_after` or `check_source_mac`: an edit keeps the
      // peer's own.
      const silentAfter = props.peer?.silent_after;
      const checkSourceMac = props.peer?.check_source_mac;
      await api.putPeer(
        name.trim(),
        {
          name: name.trim(),
          address: address.trim(),
          vips,
          ...tunnelValue.value,
          ...(silentAfter ? { silent_after: silentAfter } : {}),
          ...(checkSourceMac ? { check_source_mac: true } : {}),
        },
        revision,
      );
      notify(`Peer ${name.trim()} saved.`);
      props.onSaved();
    } catch (failure) {
      setErrors(
        toFormErrors(failure, {
          prefixes: [['peers', '*'], []],
          fields: { name: 0, address: 0, vips: 1, tunnel: 0, port: 0, key: 0 },
        }),
      );
    } finally {
      setBusy(false);
    }
  };

  const vipEntries = splitList(vipsText);
  return (
    <Dialog
      title={editing ? `Edit peer ${props.peer?.name}` : 'Add a peer'}
      onClose={props.onClose}
      testId="peer-dialog"
    >
      <form onSubmit={(e) => void submit(e)} noValidate>
        <Field
          id="peer-name"
          label="Name"
          hint={
            editing
              ? 'The name identifies the peer; to rename, add a new peer and delete this one.'
              : 'Up to 12 letters, digits, - or _.'
          }
          errors={errors.fields.name}
        >
          {(control) => (
            <input
              {...control}
              value={name}
              required
              disabled={editing}
              maxLength={12}
              autoFocus={!editing}
              onInput={(e) => setName(e.currentTarget.value)}
              data-testid="peer-name"
            />
          )}
        </Field>
        <Field
          id="peer-address"
          label="Address (RIP)"
          hint="The real server's tunnel source address, IPv4 or IPv6, e.g. 10.0.1.11 or 2001:db8::11 (an IPv6 peer needs the gateway's IPv6 address, gateway.address6)."
          errors={errors.fields.address}
        >
          {(control) => (
            <input
              {...control}
              class="mono"
              value={address}
              required
              autoFocus={editing}
              onInput={(e) => setAddress(e.currentTarget.value)}
              data-testid="peer-address"
            />
          )}
        </Field>
        <Field
          id="peer-vips"
          label="VIPs it serves"
          hint="IPv4 or IPv6 addresses separated by commas or spaces. Replies from other sources are dropped."
          errors={errors.fields.vips}
          describeRest={(rest) =>
            typeof rest[0] === 'number'
              ? `VIP ${vipEntries[rest[0]] ?? `#${rest[0] + 1}`}`
              : String(rest.join('.'))
          }
        >
          {(control) => (
            <input
              {...control}
              class="mono"
              value={vipsText}
              onInput={(e) => setVipsText(e.currentTarget.value)}
              data-testid="peer-vips"
            />
          )}
        </Field>
        <Field
          id="peer-tunnel"
          label="Return tunnel"
          hint="How the real server sends its replies: ipip (default), gue or fou (UDP), gre."
          errors={errors.fields.tunnel}
        >
          {(control) => (
            <select
              {...control}
              value={tunnel}
              onChange={(e) => setTunnel(e.currentTarget.value as TunnelKind)}
              data-testid="peer-tunnel"
            >
              {TUNNELS.map((t) => (
                <option key={t} value={t}>
                  {t}
                </option>
              ))}
            </select>
          )}
        </Field>
        {tunnel === 'gue' || tunnel === 'fou' ? (
          <Field
            id="peer-port"
            label="UDP port"
            hint={
              tunnel === 'gue'
                ? `The UDP destination port; empty for ${DEFAULT_GUE_PORT}.`
                : 'The UDP destination port (required for fou).'
            }
            errors={errors.fields.port}
          >
            {(control) => (
              <input
                {...control}
                class="mono"
                value={portText}
                inputMode="numeric"
                onInput={(e) => setPortText(e.currentTarget.value)}
                data-testid="peer-port"
              />
            )}
          </Field>
        ) : null}
        {tunnel === 'gre' ? (
          <Field
            id="peer-key"
            label="GRE key"
            hint="The key its packets carry (0 to 4294967295); empty when they carry none."
            errors={errors.fields.key}
          >
            {(control) => (
              <input
                {...control}
                class="mono"
                value={keyText}
                inputMode="numeric"
                onInput={(e) => setKeyText(e.currentTarget.value)}
                data-testid="peer-key"
              />
            )}
          </Field>
        ) : null}
        <GeneralErrors messages={errors.general} />
        <FormActions
          submitLabel={editing ? 'Save peer' : 'Add peer'}
          busyLabel="Saving…"
          busy={busy}
          onCancel={props.onClose}
          testId="peer-save"
        />
      </form>
    </Dialog>
  );
}

interface ChainRow extends BindingDraft {
  plugin: string;
  sha256: string | undefined;
}

function toRow(binding: Binding): ChainRow {
  return {
    plugin: binding.plugin,
    sha256: binding.sha256,
    onError: binding.on_error ?? 'pass',
    configText: configToText(binding.config),
  };
}

function VipDialog(props: {
  vip: Vip | null;
  revision: Revision | null;
  plugins: Plugin[];
  peers: Peer[];
  onClose: () => void;
  onSaved: () => void;
}) {
  const { api, notify } = useServices();
  // What the form was opened from: a save is refused if the configuration changed since.
  const [revision] = useState(props.revision);
  const editing = props.vip !== null;
  const [address, setAddress] = useState(props.vip?.address ?? '');
  const [shared, setShared] = useState(props.vip?.shared ?? false);
  // Adding: the peer that serves the new VIP (preselected when there is only one).
  const [peerName, setPeerName] = useState(() =>
    props.peers.length === 1 ? (props.peers[0]?.name ?? '') : '',
  );
  const [rows, setRows] = useState<ChainRow[]>(() => (props.vip?.plugins ?? []).map(toRow));
  const [busy, setBusy] = useState(false);
  const [errors, setErrors] = useState<MappedErrors>(NO_ERRORS);

  const move = (from: number, to: number) => setRows(moveBinding(rows, from, to));
  const remove = (at: number) => setRows(removeBinding(rows, at));
  const update = (at: number, row: ChainRow) => setRows(rows.map((r, i) => (i === at ? row : r)));

  const submit = async (event: Event) => {
    event.preventDefault();
    const addressError = editing ? null : addressProblem(address.trim());
    if (addressError) {
      setErrors({ fields: { address: [{ message: addressError, rest: [] }] }, general: [] });
      return;
    }
    if (!rows.every(draftIsValid)) {
      setErrors({
        fields: {},
        general: ['Fix the plugin configuration marked below: it is not valid JSON.'],
      });
      return;
    }
    setBusy(true);
    setErrors(NO_ERRORS);
    const target = address.trim();
    try {
      await api.putVip(target, vipBody(target, shared, rows.map(draftToBinding)), revision);
      // The peer's write follows from the checked VIP write in this one action: no If-Match.
      const peer = editing ? undefined : props.peers.find((p) => p.name === peerName);
      if (peer && !(peer.vips ?? []).includes(target)) {
        try {
          await api.putPeer(peer.name, { ...peer, vips: [...(peer.vips ?? []), target] });
        } catch (failure) {
          // The VIP exists now; say plainly that its peer was not set.
          const why = failure instanceof Error ? failure.message : String(failure);
          setErrors({
            fields: {},
            general: [`VIP ${target} was added, but peer ${peer.name} could not be set to serve it: ${why}`],
          });
          return;
        }
      }
      notify(peer ? `VIP ${target} saved, served by ${peer.name}.` : `VIP ${target} saved.`);
      props.onSaved();
    } catch (failure) {
      setErrors(
        toFormErrors(failure, {
          prefixes: [['vips', '*'], []],
          fields: { address: 0, shared: 0, plugins: Infinity },
        }),
      );
    } finally {
      setBusy(false);
    }
  };

  const chainErrors = errors.fields.plugins ?? [];
  // Messages about binding #i: `plugins[i].config…` goes to its config field (the path below
  // the field kept), a bare `plugins[i]` to the binding as a whole.
  const rowErrors = (i: number, field: string) =>
    chainErrors
      .filter((e) => e.rest[0] === i && (e.rest[1] === field || (field === 'plugin' && e.rest.length === 1)))
      .map((e) => ({ message: e.message, rest: e.rest.slice(2) }));
  const otherChainErrors = chainErrors.filter(
    (e) =>
      typeof e.rest[0] !== 'number' ||
      !['config', 'on_error', 'plugin', 'sha256', undefined].includes(e.rest[1] as string | undefined),
  );
  const knownPlugins = props.plugins.map((p) => p.name);
  const servedBy = props.peers.filter((p) => p.vips?.includes(address.trim())).map((p) => p.name);
  const notice = sharedNotice(servedBy, shared);

  return (
    <Dialog
      title={editing ? `Edit VIP ${props.vip?.address}` : 'Add a VIP'}
      onClose={props.onClose}
      wide
      testId="vip-dialog"
    >
      <form onSubmit={(e) => void submit(e)} noValidate>
        <Field
          id="vip-address"
          label="VIP address"
          hint={
            editing
              ? 'The address identifies the VIP; to change it, add a new VIP and delete this one.'
              : 'The virtual IP clients connect to, IPv4 or IPv6, e.g. 192.0.2.10 or 2001:db8::10 (plugins bound to an IPv6 VIP must speak ABI v2).'
          }
          errors={errors.fields.address}
        >
          {(control) => (
            <input
              {...control}
              class="mono"
              value={address}
              required
              disabled={editing}
              autoFocus={!editing}
              onInput={(e) => setAddress(e.currentTarget.value)}
              data-testid="vip-address"
            />
          )}
        </Field>
        {editing ? null : (
          <Field
            id="vip-peer"
            label="Served by peer"
            hint={
              props.peers.length
                ? 'The real server whose tunnelled replies carry this VIP; replies for a VIP no peer serves are dropped.'
                : 'No peer yet: add the real server on this page first, or pick it later by editing the peer.'
            }
          >
            {(control) => (
              <select
                {...control}
                value={peerName}
                onChange={(e) => setPeerName(e.currentTarget.value)}
                data-testid="vip-peer"
              >
                <option value="">No peer yet</option>
                {props.peers.map((p) => (
                  <option key={p.name} value={p.name}>
                    {p.name} ({p.address})
                  </option>
                ))}
              </select>
            )}
          </Field>
        )}
        <fieldset class="field" aria-describedby="vip-shared-hint">
          <legend>Real servers</legend>
          <label class="radio">
            <input
              type="checkbox"
              checked={shared}
              onChange={(e) => setShared(e.currentTarget.checked)}
              data-testid="vip-shared"
            />
            Shared: served by several peers
          </label>
          <p class="field-hint" id="vip-shared-hint">
            Sent as <code>shared</code>. Tick it when LVS balances this VIP over several real servers (several
            peers list it); tungate refuses a VIP under two peers otherwise.
          </p>
          {notice ? (
            <p
              class={notice.level === 'warn' ? 'alert alert-warn' : 'muted small'}
              data-testid="vip-shared-notice"
              data-level={notice.level}
            >
              {notice.text}
            </p>
          ) : null}
          {errors.fields.shared?.length ? (
            <ul class="field-errors">
              {errors.fields.shared.map((e, k) => (
                <li key={k}>{e.message}</li>
              ))}
            </ul>
          ) : null}
        </fieldset>
        <fieldset class="chain-editor" data-testid="chain-editor">
          <legend>Plugin chain (runs in this order on every reply)</legend>
          {rows.length === 0 ? (
            <p class="muted">No plugins: replies are forwarded after the built-in checks only.</p>
          ) : null}
          <ol class="chain-rows">
            {rows.map((row, i) => (
              <li key={`${i}-${row.plugin}`} class="chain-row" data-testid={`chain-row-${i}`}>
                <div class="chain-row-head">
                  <span class="chain-pos">#{i}</span>
                  <label class="sr-only" for={`chain-${i}-plugin`}>
                    Plugin at position {i}
                  </label>
                  <select
                    id={`chain-${i}-plugin`}
                    value={row.plugin}
                    onChange={(e) => update(i, { ...row, plugin: e.currentTarget.value, sha256: undefined })}
                  >
                    {[...new Set([row.plugin, ...knownPlugins])].map((name) => (
                      <option key={name} value={name}>
                        {name}
                        {knownPlugins.includes(name) ? '' : ' (not uploaded)'}
                      </option>
                    ))}
                  </select>
                  {row.sha256 ? (
                    <span class="muted small" title={row.sha256}>
                      pinned to {row.sha256.slice(0, 12)}
                    </span>
                  ) : null}
                  <span class="spacer" />
                  <button
                    type="button"
                    class="btn btn-small"
                    disabled={i === 0}
                    onClick={() => move(i, i - 1)}
                    aria-label={`Move ${row.plugin} up`}
                  >
                    ↑
                  </button>
                  <button
                    type="button"
                    class="btn btn-small"
                    disabled={i === rows.length - 1}
                    onClick={() => move(i, i + 1)}
                    aria-label={`Move ${row.plugin} down`}
                  >
                    ↓
                  </button>
                  <button
                    type="button"
                    class="btn btn-small btn-danger-ghost"
                    onClick={() => remove(i)}
                    aria-label={`Remove ${row.plugin} from the chain`}
                  >
                    Remove
                  </button>
                </div>
                {rowErrors(i, 'plugin').length ? (
                  <ul class="field-errors">
                    {rowErrors(i, 'plugin').map((e, k) => (
                      <li key={k}>{e.message}</li>
                    ))}
                  </ul>
                ) : null}
                <BindingFields
                  idPrefix={`chain-${i}`}
                  draft={row}
                  onChange={(draft) => update(i, { ...row, ...draft })}
                  errors={{ config: rowErrors(i, 'config'), on_error: rowErrors(i, 'on_error') }}
                />
              </li>
            ))}
          </ol>
          {knownPlugins.length ? (
            <button
              type="button"
              class="btn"
              onClick={() =>
                setRows([
                  ...rows,
                  { plugin: knownPlugins[0] ?? '', sha256: undefined, onError: 'pass', configText: '' },
                ])
              }
              data-testid="chain-add"
            >
              Add a plugin to the chain
            </button>
          ) : (
            <p class="muted">
              No plugin uploaded yet: upload one on the <a href={ROUTE_HASH.plugins}>Plugins</a> page.
            </p>
          )}
          {otherChainErrors.length ? (
            <ul class="field-errors">
              {otherChainErrors.map((e, k) => (
                <li key={k}>
                  {e.rest.length ? `#${String(e.rest[0])}: ` : ''}
                  {e.message}
                </li>
              ))}
            </ul>
          ) : null}
        </fieldset>
        <GeneralErrors messages={errors.general} />
        <FormActions
          submitLabel={editing ? 'Save VIP' : 'Add VIP'}
          busyLabel="Saving…"
          busy={busy}
          onCancel={props.onClose}
          testId="vip-save"
        />
      </form>
    </Dialog>
  );
}
