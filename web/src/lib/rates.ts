// Rates from counters: turns two `GET /api/v1/stats` samples into packets/s, bits/s and
// drops/s per VIP, per drop reason and per plugin binding. Owns the counter rules (first
// sight, resets, VIPs and bindings appearing or disappearing) and nothing else: no fetching,
// no drawing. It must never invent a rate it cannot know: unknown is `null`, not 0.

import type { BindingStats, Stats } from '../api/types';

/** One stats answer and when it arrived (milliseconds, monotonic clock). */
export interface CounterSample {
  atMs: number;
  stats: Stats;
}

/** Counters and rates of one VIP. */
export interface VipRates {
  address: string;
  peer: string | null;
  forwardedPackets: number;
  forwardedBytes: number;
  droppedPackets: number;
  /** Forwarded packets per second; null until two samples of this VIP exist. */
  pps: number | null;
  /** Forwarded bits per second (bytes × 8). */
  bps: number | null;
  /** Dropped packets per second, all reasons together. */
  dropPps: number | null;
}

/** A drop reason's total and rate (over the whole gateway). */
export interface DropRates {
  reason: string;
  total: number;
  perSecond: number | null;
}

/** A plugin binding's counters and rates. */
export interface BindingRates {
  /** Stable identity: VIP, position, plugin and module hash. */
  key: string;
  stats: BindingStats;
  passPerSecond: number | null;
  dropPerSecond: number | null;
  errorsTotal: number;
  errorsPerSecond: number | null;
}

/** Everything the dashboard shows that moves, computed from one pair of samples. */
export interface RateSnapshot {
  atMs: number;
  /** Seconds between the two samples; null for the first sample or a clock going backwards. */
  intervalSeconds: number | null;
  vips: VipRates[];
  drops: DropRates[];
  bindings: BindingRates[];
  totals: {
    forwardedPackets: number | null;
    forwardedBytes: number | null;
    droppedPackets: number | null;
    receivedPackets: number | null;
    pps: number | null;
    bps: number | null;
    dropPps: number | null;
  };
}

/**
 * How much a counter grew. A counter that went down was reset (tungate restarted, or the
 * VIP or binding was removed and added again): it counted up from zero, so the growth is its
 * new value — the rule Prometheus' `rate()` uses. No previous value: unknown.
 */
export function counterDelta(previous: number | undefined, next: number): number | null {
  if (previous === undefined) return null;
  return next >= previous ? next - previous : next;
}

/** Growth per second, or null when either the growth or the interval is unknown. */
function perSecond(delta: number | null, intervalSeconds: number | null): number | null {
  return delta === null || intervalSeconds === null ? null : delta / intervalSeconds;
}

/**
 * Growth of a set of counters keyed by reason, summed. When the owner existed before, a
 * reason missing from the previous sample counted from zero (a first drop of that kind).
 */
function mapDelta(previous: Record<string, number> | undefined, next: Record<string, number>): number | null {
  if (previous === undefined) return null;
  let sum = 0;
  for (const [reason, value] of Object.entries(next)) {
    sum += counterDelta(previous[reason] ?? 0, value) ?? 0;
  }
  return sum;
}

function sum(values: Record<string, number> | undefined): number {
  let total = 0;
  for (const value of Object.values(values ?? {})) total += value;
  return total;
}

/** Identity of a binding across samples: a different module at a position is another binding. */
export function bindingKey(binding: BindingStats): string {
  return `${binding.vip}#${binding.position}#${binding.plugin}#${binding.sha256 ?? ''}`;
}

/**
 * Rates are taken over at least this much real time: the counters a sample reads move in
 * bursts (packets arrive in batches, the poll period jitters), so a one-second difference
 * of a steady 50 pps reads 40, then 60, then 40. Over five seconds of measured time the
 * same jitter moves the rate by a fifth as much, and the figure is still the true average
 * over the interval it names.
 */
export const RATE_WINDOW_MS = 5000;

/**
 * Which earlier sample to take a rate against: the newest one at least `windowMs` older
 * than `next` (so the interval is real and long enough), or, while the history is shorter
 * than that, the oldest one there is. `history` is in arrival order. Null when empty.
 */
export function rateBaseline(
  history: readonly CounterSample[],
  next: CounterSample,
  windowMs: number = RATE_WINDOW_MS,
): CounterSample | null {
  let baseline: CounterSample | null = history[0] ?? null;
  for (const sample of history) {
    if (next.atMs - sample.atMs >= windowMs) baseline = sample;
    else break;
  }
  return baseline;
}

/** Computes every rate from the previous sample (null on the first one) and the new one. */
export function computeRates(previous: CounterSample | null, next: CounterSample): RateSnapshot {
  const elapsed = previous ? (next.atMs - previous.atMs) / 1000 : null;
  const interval = elapsed !== null && elapsed > 0 ? elapsed : null;
  const before = interval !== null ? previous?.stats : undefined;

  const previousVips = new Map((before?.vips ?? []).map((v) => [v.address, v]));
  const vips: VipRates[] = next.stats.vips.map((vip) => {
    const old = previousVips.get(vip.address);
    return {
      address: vip.address,
      peer: vip.peer ?? null,
      forwardedPackets: vip.forwarded_packets,
      forwardedBytes: vip.forwarded_bytes,
      droppedPackets: sum(vip.dropped),
      pps: perSecond(counterDelta(old?.forwarded_packets, vip.forwarded_packets), interval),
      bps: perSecond(scaleDelta(counterDelta(old?.forwarded_bytes, vip.forwarded_bytes), 8), interval),
      dropPps: perSecond(mapDelta(old?.dropped, vip.dropped ?? {}), interval),
    };
  });

  const drops: DropRates[] = Object.entries(next.stats.drops ?? {})
    .map(([reason, total]) => ({
      reason,
      total,
      perSecond: before ? perSecond(counterDelta(before.drops?.[reason] ?? 0, total), interval) : null,
    }))
    .sort((a, b) => b.total - a.total || a.reason.localeCompare(b.reason));

  const previousBindings = new Map((before?.bindings ?? []).map((b) => [bindingKey(b), b]));
  const bindings: BindingRates[] = next.stats.bindings.map((binding) => {
    const key = bindingKey(binding);
    const old = previousBindings.get(key);
    const errorsTotal = sum(binding.errors);
    return {
      key,
      stats: binding,
      passPerSecond: perSecond(
        old ? counterDelta(old.verdicts.pass ?? 0, binding.verdicts.pass ?? 0) : null,
        interval,
      ),
      dropPerSecond: perSecond(
        old ? counterDelta(old.verdicts.drop ?? 0, binding.verdicts.drop ?? 0) : null,
        interval,
      ),
      errorsTotal,
      errorsPerSecond: perSecond(mapDelta(old?.errors, binding.errors ?? {}), interval),
    };
  });

  const t = next.stats.totals;
  const oldTotals = before?.totals;
  return {
    atMs: next.atMs,
    intervalSeconds: interval,
    vips,
    drops,
    bindings,
    totals: {
      forwardedPackets: t?.forwarded_packets ?? null,
      forwardedBytes: t?.forwarded_bytes ?? null,
      droppedPackets: t?.dropped_packets ?? null,
      receivedPackets: t?.received_packets ?? null,
      pps: totalRate(oldTotals?.forwarded_packets, t?.forwarded_packets, 1, interval),
      bps: totalRate(oldTotals?.forwarded_bytes, t?.forwarded_bytes, 8, interval),
      dropPps: totalRate(oldTotals?.dropped_packets, t?.dropped_packets, 1, interval),
    },
  };
}

function scaleDelta(delta: number | null, factor: number): number | null {
  return delta === null ? null : delta * factor;
}

function totalRate(
  previous: number | undefined,
  next: number | undefined,
  factor: number,
  interval: number | null,
): number | null {
  if (next === undefined) return null;
  return perSecond(scaleDelta(counterDelta(previous, next), factor), interval);
}
