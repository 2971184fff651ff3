// Edits of a VIP's plugin chain as pure functions: insert a binding at a position, remove
// one, move one, find where a plugin is bound, and list the VIPs a plugin can be bound to. The UI sends the result as the VIP's new
// chain (`PUT /api/v1/vips/{address}`). Never mutates its input, never talks to the API.

import type { Binding, OnError, Peer, Vip } from '../api/types';
import { parseConfigText } from './jsonConfig';

/** Returns a copy of `chain` with `binding` inserted at `position` (clamped to the ends). */
export function insertBinding<T>(chain: readonly T[], position: number, binding: T): T[] {
  const at = Math.max(0, Math.min(chain.length, Math.trunc(position)));
  return [...chain.slice(0, at), binding, ...chain.slice(at)];
}

/** Returns a copy of `chain` without the binding at `position`; RangeError if there is none. */
export function removeBinding<T>(chain: readonly T[], position: number): T[] {
  if (!Number.isInteger(position) || position < 0 || position >= chain.length) {
    throw new RangeError(`no binding at position ${position} (the chain has ${chain.length})`);
  }
  return chain.filter((_, i) => i !== position);
}

/** Returns a copy of `chain` with the binding at `from` moved to `to`. */
export function moveBinding<T>(chain: readonly T[], from: number, to: number): T[] {
  if (!Number.isInteger(from) || from < 0 || from >= chain.length) {
    throw new RangeError(`no binding at position ${from} (the chain has ${chain.length})`);
  }
  return insertBinding(removeBinding(chain, from), to, chain[from] as T);
}

/** Where a plugin is bound: one entry per (VIP, position), in VIP order. */
export interface PluginUse {
  vip: string;
  position: number;
  binding: Binding;
}

/** Every binding of the plugin named `plugin` across `vips`. */
export function usesOf(plugin: string, vips: readonly Vip[]): PluginUse[] {
  const uses: PluginUse[] = [];
  for (const vip of vips) {
    (vip.plugins ?? []).forEach((binding, position) => {
      if (binding.plugin === plugin) uses.push({ vip: vip.address, position, binding });
    });
  }
  return uses;
}

/**
 * The VIPs a plugin can be bound to: every VIP entry, plus every VIP a peer serves that has
 * no entry yet (with an empty chain: `PUT /api/v1/vips/{address}` creates the entry).
 */
export function bindableVips(vips: readonly Vip[], peers: readonly Peer[]): Vip[] {
  const known = new Set(vips.map((v) => v.address));
  const served: Vip[] = [];
  for (const address of peers.flatMap((p) => p.vips ?? [])) {
    if (known.has(address)) continue;
    known.add(address);
    served.push({ address, plugins: [] });
  }
  return [...vips, ...served];
}

/** A binding as a form holds it: the config still as the editor's text. */
export interface BindingFormValue {
  plugin: string;
  sha256?: string | undefined;
  onError: OnError;
  configText: string;
}

/**
 * The binding the API receives for a form value: `config` only when the editor has JSON,
 * `sha256` only when the binding was pinned. Throws a RangeError when
 * the config text is not JSON (forms check it first and never send such a value).
 */
export function draftToBinding(value: BindingFormValue): Binding {
  const parsed = parseConfigText(value.configText);
  if (!parsed.ok) throw new RangeError(`config of ${value.plugin}: ${parsed.message}`);
  const binding: Binding = { plugin: value.plugin, on_error: value.onError };
  if (value.sha256) binding.sha256 = value.sha256;
  if (!parsed.empty) binding.config = parsed.value;
  return binding;
}
