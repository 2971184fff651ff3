// The Plugins page: upload a `.wasm` by drag and drop or file picker (`PUT
// /api/v1/plugins/{name}`, the validator's refusal shown as tungate words it), list modules
// with sha256 and size, bind one to a VIP at a chosen position with its JSON config and
// `on_error` choice (`PUT /api/v1/vips/{address}` with the new chain), unbind, replace a
// module (hot swap) and delete. It never judges a module itself: tungate's validator does.

import { useRef, useState } from 'preact/hooks';
import { ApiError, type Revision } from '../api/client';
import type { Plugin, Vip } from '../api/types';
import { BindingFields, draftIsValid, type BindingDraft } from '../components/BindingFields';
import { ActionDialog, Dialog } from '../components/Dialog';
import { Field, FormActions, GeneralErrors, toFormErrors } from '../components/Field';
import { Hash } from '../components/Hash';
import { TableHead } from '../components/Table';
import { EmptyState, ErrorState, Loading, describeError } from '../components/States';
import { useServices } from '../context';
import { useResource } from '../hooks';
import {
  bindableVips,
  draftToBinding,
  insertBinding,
  removeBinding,
  usesOf,
  type PluginUse,
} from '../lib/chain';
import type { MappedErrors } from '../lib/fieldErrors';
import { formatAgo, formatBytes, formatDateTime } from '../lib/format';
import { defaultPluginName, isValidPluginName } from '../lib/pluginName';
import { compareKeys } from '../lib/series';
import { ROUTE_HASH } from '../router';

interface PluginsData {
  plugins: Plugin[];
  vips: Vip[];
  /** The revision the lists were read at: every change made from them sends it. */
  revision: Revision | null;
}

type Action =
  | { kind: 'bind'; plugin: Plugin }
  | { kind: 'unbind'; use: PluginUse }
  | { kind: 'replace'; plugin: Plugin; file: File }
  | { kind: 'delete'; plugin: Plugin };

/** `#/plugins`. */
export function PluginsPage() {
  const { api } = useServices();
  const data = useResource<PluginsData>(async () => {
    const { plugins, vips, peers, revision } = await api.configView();
    // A VIP that peers serve but that has no entry yet can be bound too (the PUT creates it).
    return { plugins, vips: bindableVips(vips, peers), revision };
  });
  const revision = data.data?.revision ?? null;
  const [action, setAction] = useState<Action | null>(null);
  const close = () => setAction(null);
  const done = () => {
    setAction(null);
    void data.reload();
  };
  const plugins = [...(data.data?.plugins ?? [])].sort((a, b) => a.name.localeCompare(b.name));
  const vips = data.data?.vips ?? [];

  return (
    <section class="page" aria-labelledby="plugins-title">
      <div class="page-head">
        <h1 id="plugins-title">Plugins</h1>
        <p class="page-meta">
          Sandboxed WebAssembly modules that inspect each reply of a VIP and pass or drop it. tungate checks
          every upload before storing it.
        </p>
      </div>
      <UploadPanel existing={plugins} vips={vips} revision={revision} onUploaded={() => void data.reload()} />
      {data.error ? (
        <ErrorState error={data.error} what="the plugins" onRetry={() => void data.reload()} />
      ) : null}
      {data.loading && !data.data ? <Loading what="plugins" /> : null}
      {data.data ? <PluginList plugins={plugins} vips={vips} onAction={setAction} /> : null}

      {action?.kind === 'bind' ? (
        <BindDialog plugin={action.plugin} vips={vips} revision={revision} onClose={close} onDone={done} />
      ) : null}
      {action?.kind === 'unbind' ? (
        <UnbindDialog use={action.use} vips={vips} revision={revision} onClose={close} onDone={done} />
      ) : null}
      {action?.kind === 'replace' ? (
        <ReplaceDialog
          plugin={action.plugin}
          file={action.file}
          revision={revision}
          uses={usesOf(action.plugin.name, vips)}
          onClose={close}
          onDone={done}
        />
      ) : null}
      {action?.kind === 'delete' ? (
        <DeletePluginDialog
          plugin={action.plugin}
          revision={revision}
          uses={usesOf(action.plugin.name, vips)}
          onClose={close}
          onDone={done}
        />
      ) : null}
    </section>
  );
}

function UploadPanel(props: {
  existing: Plugin[];
  vips: Vip[];
  revision: Revision | null;
  onUploaded: () => void;
}) {
  const { api, notify } = useServices();
  const input = useRef<HTMLInputElement>(null);
  const [file, setFile] = useState<File | null>(null);
  const [name, setName] = useState('');
  const [dragging, setDragging] = useState(false);
  const [busy, setBusy] = useState(false);
  const [refusal, setRefusal] = useState<{ code: string; text: string } | null>(null);
  const [stored, setStored] = useState<Plugin | null>(null);

  const choose = (chosen: File | undefined | null) => {
    if (!chosen) return;
    setFile(chosen);
    setName(defaultPluginName(chosen.name));
    setRefusal(null);
    setStored(null);
  };
  const onDrop = (event: DragEvent) => {
    event.preventDefault();
    setDragging(false);
    choose(event.dataTransfer?.files?.[0]);
  };
  const replacing = props.existing.find((p) => p.name === name);
  const nameOk = isValidPluginName(name);

  const upload = async (event: Event) => {
    event.preventDefault();
    if (!file || !nameOk) return;
    setBusy(true);
    setRefusal(null);
    setStored(null);
    try {
      const plugin = await api.putPlugin(name, file, props.revision);
      setStored(plugin);
      setFile(null);
      if (input.current) input.current.value = '';
      notify(
        replacing
          ? `Plugin ${plugin.name} replaced; its bindings now run the new module.`
          : `Plugin ${plugin.name} uploaded.`,
      );
      props.onUploaded();
    } catch (failure) {
      setRefusal({
        code: failure instanceof ApiError ? (failure.code ?? failure.kind) : 'error',
        text: describeError(failure),
      });
    } finally {
      setBusy(false);
    }
  };

  return (
    <div class="card" data-testid="upload-card">
      <h2>Upload a plugin</h2>
      <div
        class={dragging ? 'dropzone dropzone-active' : 'dropzone'}
        onDragEnter={(e) => {
          e.preventDefault();
          setDragging(true);
        }}
        onDragOver={(e) => e.preventDefault()}
        onDragLeave={() => setDragging(false)}
        onDrop={onDrop}
        data-testid="dropzone"
      >
        <p>
          <strong>Drop a .wasm file here</strong> or{' '}
          <button
            type="button"
            class="btn btn-small"
            onClick={() => input.current?.click()}
            data-testid="choose-file"
          >
            choose a file…
          </button>
        </p>
        <input
          ref={input}
          type="file"
          accept=".wasm,application/wasm"
          class="sr-only"
          tabIndex={-1}
          aria-hidden="true"
          onChange={(e) => choose(e.currentTarget.files?.[0])}
          data-testid="file-input"
        />
        <p class="muted small">
          Uploading a module under an existing name replaces it everywhere it is bound (hot swap).
        </p>
      </div>
      {file ? (
        <form class="upload-form" onSubmit={(e) => void upload(e)} noValidate data-testid="upload-form">
          <p class="upload-file">
            <span class="mono">{file.name}</span> · {formatBytes(file.size)}
          </p>
          <Field
            id="upload-name"
            label="Plugin name"
            hint="Defaults to the file name. Letters, digits, ., _ and -; up to 64."
            errors={
              nameOk
                ? []
                : [{ message: 'Use 1–64 letters, digits, ., _ or - (not starting with .).', rest: [] }]
            }
          >
            {(control) => (
              <input
                {...control}
                class="mono"
                value={name}
                onInput={(e) => setName(e.currentTarget.value)}
                data-testid="upload-name"
              />
            )}
          </Field>
          {replacing ? (
            <p class="alert alert-warn" data-testid="upload-replaces">
              A plugin named <strong>{replacing.name}</strong> exists
              {usesOf(replacing.name, props.vips).length
                ? ` and is bound ${usesOf(replacing.name, props.vips).length} time(s)`
                : ''}
              . Uploading replaces its module: every binding switches to the new one.
            </p>
          ) : null}
          <FormActions
            submitLabel={replacing ? `Replace ${replacing.name}` : 'Upload'}
            busyLabel="Uploading…"
            busy={busy}
            disabled={!nameOk}
            onCancel={() => {
              setFile(null);
              if (input.current) input.current.value = '';
            }}
            testId="upload-submit"
          />
        </form>
      ) : null}
      {refusal ? (
        <div class="alert alert-error" role="alert" data-testid="upload-error" data-code={refusal.code}>
          <p class="alert-title">tungate did not store this module</p>
          <p class="pre-wrap">{refusal.text}</p>
        </div>
      ) : null}
      {stored ? (
        <p class="alert alert-ok" role="status" data-testid="upload-result">
          Stored <strong>{stored.name}</strong> ({formatBytes(stored.size)}), sha256{' '}
          <Hash sha256={stored.sha256} />
        </p>
      ) : null}
    </div>
  );
}

function PluginList(props: { plugins: Plugin[]; vips: Vip[]; onAction: (action: Action) => void }) {
  const replaceInput = useRef<HTMLInputElement>(null);
  const replaceTarget = useRef<Plugin | null>(null);
  const now = Date.now();
  if (props.plugins.length === 0) {
    return (
      <div class="card">
        <h2>Uploaded plugins</h2>
        <EmptyState title="No plugins uploaded" testId="empty-plugins">
          <p>Drop a .wasm module above. Once stored, bind it to a VIP to run it on that VIP's replies.</p>
        </EmptyState>
      </div>
    );
  }
  return (
    <div class="card">
      <h2>Uploaded plugins</h2>
      <input
        ref={replaceInput}
        type="file"
        accept=".wasm,application/wasm"
        class="sr-only"
        tabIndex={-1}
        aria-hidden="true"
        onChange={(e) => {
          const file = e.currentTarget.files?.[0];
          const plugin = replaceTarget.current;
          e.currentTarget.value = '';
          if (file && plugin) props.onAction({ kind: 'replace', plugin, file });
        }}
      />
      <div class="table-scroll">
        <table class="table" data-testid="plugins-table">
          <TableHead
            columns={[
              { label: 'Name' },
              { label: 'sha256' },
              { label: 'Size', numeric: true },
              { label: 'Uploaded' },
              { label: 'Bound to' },
              { label: 'Actions', hidden: true },
            ]}
          />
          <tbody>
            {props.plugins.map((plugin) => {
              const uses = usesOf(plugin.name, props.vips);
              const uploaded = new Date(plugin.uploaded_at * 1000);
              return (
                <tr key={plugin.name} data-testid={`plugin-row-${plugin.name}`}>
                  <th scope="row">
                    <span class="plugin-name">{plugin.name}</span>
                    {plugin.info && Object.keys(plugin.info).length ? (
                      <details class="info">
                        <summary>details</summary>
                        <dl>
                          {Object.entries(plugin.info).map(([key, value]) => (
                            <div key={key}>
                              <dt>{key}</dt>
                              <dd class="mono">
                                {typeof value === 'string' ? value : JSON.stringify(value)}
                              </dd>
                            </div>
                          ))}
                        </dl>
                      </details>
                    ) : null}
                  </th>
                  <td>
                    <Hash sha256={plugin.sha256} testId={`plugin-sha-${plugin.name}`} />
                  </td>
                  <td class="n" data-testid={`plugin-size-${plugin.name}`} data-value={String(plugin.size)}>
                    {formatBytes(plugin.size)}
                  </td>
                  <td title={uploaded.toString()}>
                    {formatDateTime(uploaded)}{' '}
                    <span class="muted small">({formatAgo(uploaded.getTime(), now)})</span>
                  </td>
                  <td>
                    {uses.length === 0 ? (
                      <span class="muted">not bound</span>
                    ) : (
                      <ul class="uses" data-testid={`plugin-uses-${plugin.name}`}>
                        {uses.map((use) => (
                          <li key={`${use.vip}#${use.position}`} class="chip">
                            <span class="mono">{use.vip}</span> <span class="muted">#{use.position}</span>
                            {use.binding.on_error === 'drop' ? (
                              <span class="muted small"> fail closed</span>
                            ) : null}
                            <button
                              type="button"
                              class="btn-icon"
                              onClick={() => props.onAction({ kind: 'unbind', use })}
                              aria-label={`Unbind ${plugin.name} from ${use.vip} position ${use.position}`}
                              title="Unbind"
                              data-testid={`unbind-${plugin.name}-${use.vip}-${use.position}`}
                            >
                              ×
                            </button>
                          </li>
                        ))}
                      </ul>
                    )}
                  </td>
                  <td class="actions">
                    <button
                      type="button"
                      class="btn btn-small btn-primary"
                      onClick={() => props.onAction({ kind: 'bind', plugin })}
                      data-testid={`bind-${plugin.name}`}
                    >
                      Bind…
                    </button>
                    <button
                      type="button"
                      class="btn btn-small"
                      onClick={() => {
                        replaceTarget.current = plugin;
                        replaceInput.current?.click();
                      }}
                      aria-label={`Replace the module of ${plugin.name}`}
                      data-testid={`replace-${plugin.name}`}
                    >
                      Replace…
                    </button>
                    <button
                      type="button"
                      class="btn btn-small btn-danger-ghost"
                      onClick={() => props.onAction({ kind: 'delete', plugin })}
                      aria-label={`Delete ${plugin.name}`}
                      data-testid={`delete-${plugin.name}`}
                    >
                      Delete
                    </button>
                  </td>
                </tr>
              );
            })}
          </tbody>
        </table>
      </div>
    </div>
  );
}

function BindDialog(props: {
  plugin: Plugin;
  vips: Vip[];
  revision: Revision | null;
  onClose: () => void;
  onDone: () => void;
}) {
  const { api, notify } = useServices();
  // What the form was opened from: a save is refused if the configuration changed since.
  const [revision] = useState(props.revision);
  const vips = [...props.vips].sort((a, b) => compareKeys(a.address, b.address));
  const [vipAddress, setVipAddress] = useState(vips[0]?.address ?? '');
  const chain = vips.find((v) => v.address === vipAddress)?.plugins ?? [];
  const [position, setPosition] = useState<number>(chain.length);
  const [draft, setDraft] = useState<BindingDraft>({ onError: 'pass', configText: '' });
  const [busy, setBusy] = useState(false);
  const [errors, setErrors] = useState<MappedErrors>({ fields: {}, general: [] });
  const at = Math.min(position, chain.length);

  if (vips.length === 0) {
    return (
      <Dialog title={`Bind ${props.plugin.name}`} onClose={props.onClose} testId="bind-dialog">
        <EmptyState title="No VIP to bind to">
          <p>
            Add a VIP on the <a href={ROUTE_HASH.config}>Peers &amp; VIPs</a> page first.
          </p>
        </EmptyState>
      </Dialog>
    );
  }

  const submit = async (event: Event) => {
    event.preventDefault();
    if (!draftIsValid(draft)) return;
    setBusy(true);
    setErrors({ fields: {}, general: [] });
    const newChain = insertBinding(chain, at, draftToBinding({ plugin: props.plugin.name, ...draft }));
    try {
      await api.putVip(vipAddress, { address: vipAddress, plugins: newChain }, revision);
      notify(`${props.plugin.name} bound to ${vipAddress} at #${at}.`);
      props.onDone();
    } catch (failure) {
      setErrors(
        toFormErrors(failure, {
          prefixes: [['vips', '*', 'plugins', at], ['plugins', at], []],
          fields: { config: Infinity, on_error: 0, plugin: 0 },
        }),
      );
    } finally {
      setBusy(false);
    }
  };

  return (
    <Dialog title={`Bind ${props.plugin.name} to a VIP`} onClose={props.onClose} wide testId="bind-dialog">
      <form onSubmit={(e) => void submit(e)} noValidate>
        <div class="form-row">
          <Field id="bind-vip" label="VIP">
            {(control) => (
              <select
                {...control}
                value={vipAddress}
                onChange={(e) => {
                  const next = e.currentTarget.value;
                  setVipAddress(next);
                  setPosition((vips.find((v) => v.address === next)?.plugins ?? []).length);
                }}
                data-testid="bind-vip"
              >
                {vips.map((v) => (
                  <option key={v.address} value={v.address}>
                    {v.address} ({v.plugins?.length ?? 0} plugin{v.plugins?.length === 1 ? '' : 's'})
                  </option>
                ))}
              </select>
            )}
          </Field>
          <Field id="bind-position" label="Position in the chain" errors={errors.fields.plugin}>
            {(control) => (
              <select
                {...control}
                value={String(at)}
                onChange={(e) => setPosition(Number(e.currentTarget.value))}
                data-testid="bind-position"
              >
                {Array.from({ length: chain.length + 1 }, (_, i) => (
                  <option key={i} value={String(i)}>
                    #{i} —{' '}
                    {chain.length === 0
                      ? 'the only plugin'
                      : i === 0
                        ? `first, before ${chain[0]?.plugin}`
                        : i === chain.length
                          ? `last, after ${chain[i - 1]?.plugin}`
                          : `between ${chain[i - 1]?.plugin} and ${chain[i]?.plugin}`}
                  </option>
                ))}
              </select>
            )}
          </Field>
        </div>
        <ol class="chain-preview" start={0} aria-label="The chain after binding">
          {insertBinding(
            chain.map((b) => ({ name: b.plugin, isNew: false })),
            at,
            { name: props.plugin.name, isNew: true },
          ).map((entry, i) => (
            <li key={i} class={entry.isNew ? 'chain-new' : undefined}>
              {entry.name}
              {entry.isNew ? ' (new)' : ''}
            </li>
          ))}
        </ol>
        <BindingFields
          idPrefix="bind"
          draft={draft}
          onChange={setDraft}
          errors={{ config: errors.fields.config, on_error: errors.fields.on_error }}
        />
        <GeneralErrors messages={errors.general} testId="bind-errors" />
        <FormActions
          submitLabel={`Bind to ${vipAddress}`}
          busyLabel="Binding…"
          busy={busy}
          disabled={!draftIsValid(draft)}
          onCancel={props.onClose}
          testId="bind-submit"
        />
      </form>
    </Dialog>
  );
}

function UnbindDialog(props: {
  use: PluginUse;
  vips: Vip[];
  revision: Revision | null;
  onClose: () => void;
  onDone: () => void;
}) {
  const { api, notify } = useServices();
  const { use } = props;
  return (
    <ActionDialog
      title={`Unbind ${use.binding.plugin} from ${use.vip}?`}
      confirmLabel="Unbind"
      danger
      action={async () => {
        const chain = props.vips.find((v) => v.address === use.vip)?.plugins ?? [];
        await api.putVip(
          use.vip,
          { address: use.vip, plugins: removeBinding(chain, use.position) },
          props.revision,
        );
        notify(`${use.binding.plugin} unbound from ${use.vip}.`);
      }}
      onClose={props.onClose}
      onDone={props.onDone}
    >
      <p>
        Removes position #{use.position} of the chain of <code>{use.vip}</code>. Replies of this VIP no longer
        pass through <strong>{use.binding.plugin}</strong> there.
      </p>
    </ActionDialog>
  );
}

function ReplaceDialog(props: {
  plugin: Plugin;
  file: File;
  revision: Revision | null;
  uses: PluginUse[];
  onClose: () => void;
  onDone: () => void;
}) {
  const { api, notify } = useServices();
  return (
    <ActionDialog
      title={`Replace ${props.plugin.name}?`}
      confirmLabel="Upload and replace"
      action={async () => {
        const stored = await api.putPlugin(props.plugin.name, props.file, props.revision);
        notify(
          `${stored.name} replaced (sha256 ${stored.sha256.slice(0, 12)}); its bindings run the new module.`,
        );
      }}
      onClose={props.onClose}
      onDone={props.onDone}
    >
      <p>
        Upload <span class="mono">{props.file.name}</span> ({formatBytes(props.file.size)}) as the new module
        of <strong>{props.plugin.name}</strong>.
      </p>
      <p>
        {props.uses.length
          ? `Its ${props.uses.length} binding(s) switch to the new module without stopping traffic; if tungate refuses the module, nothing changes.`
          : 'It is not bound anywhere yet.'}
      </p>
    </ActionDialog>
  );
}

function DeletePluginDialog(props: {
  plugin: Plugin;
  revision: Revision | null;
  uses: PluginUse[];
  onClose: () => void;
  onDone: () => void;
}) {
  const { api, notify } = useServices();
  return (
    <ActionDialog
      title={`Delete ${props.plugin.name}?`}
      confirmLabel="Delete"
      danger
      blocked={props.uses.length > 0}
      action={async () => {
        await api.deletePlugin(props.plugin.name, props.revision);
        notify(`Plugin ${props.plugin.name} deleted.`);
      }}
      onClose={props.onClose}
      onDone={props.onDone}
    >
      {props.uses.length ? (
        <p class="alert alert-warn">
          It is still bound ({props.uses.map((u) => `${u.vip} #${u.position}`).join(', ')}), and tungate does
          not delete a bound plugin. Unbind it first (the × next to each binding).
        </p>
      ) : (
        <p>The module is removed from tungate's store.</p>
      )}
    </ActionDialog>
  );
}
