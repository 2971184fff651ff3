// A sliding window of time series for the live charts, kept in the column layout uPlot
// draws (one shared time axis, one array per series). Owns aligning series that appear or
// disappear mid-window (gaps are null, never 0) and trimming to a fixed length. It must
// never compute rates or touch the DOM.

import { addressFamily } from './addressList';

/** The window's content, ready for uPlot: `data[0]` is time in seconds, then one row per key. */
export interface AlignedSeries {
  keys: string[];
  data: [number[], ...(number | null)[][]];
}

/** A fixed-length window of per-key values sampled on one shared clock. */
export class SeriesWindow {
  private readonly times: number[] = [];
  private readonly rows = new Map<string, (number | null)[]>();

  /** `capacity`: how many samples the window keeps (e.g. 120 one-second samples). */
  constructor(private readonly capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 2) {
      throw new RangeError(`SeriesWindow capacity must be an integer ≥ 2, got ${capacity}`);
    }
  }

  /**
   * Appends one sample: `values` maps each key present now to its value (null: unknown).
   * A key absent from `values` gets a gap; a new key is back-filled with gaps.
   */
  push(atSeconds: number, values: ReadonlyMap<string, number | null>): void {
    const length = this.times.length;
    for (const key of values.keys()) {
      if (!this.rows.has(key)) this.rows.set(key, new Array<number | null>(length).fill(null));
    }
    this.times.push(atSeconds);
    for (const [key, row] of this.rows) row.push(values.get(key) ?? null);

    const excess = this.times.length - this.capacity;
    if (excess > 0) {
      this.times.splice(0, excess);
      for (const row of this.rows.values()) row.splice(0, excess);
    }
    // A series with nothing left to draw has scrolled out of the window: forget it.
    for (const [key, row] of this.rows) {
      if (row.every((v) => v === null)) this.rows.delete(key);
    }
  }

  /**
   * Forgets every series whose key is not in `keys` (e.g. a VIP removed from the
   * configuration): its line and legend entry go at once, not when it scrolls out.
   */
  retain(keys: ReadonlySet<string>): void {
    for (const key of [...this.rows.keys()]) {
      if (!keys.has(key)) this.rows.delete(key);
    }
  }

  /** Time of the newest sample (seconds), or null when empty. */
  get lastTime(): number | null {
    return this.times.length ? (this.times[this.times.length - 1] ?? null) : null;
  }

  /** Empties the window (e.g. after the API was unreachable for a long time). */
  clear(): void {
    this.times.length = 0;
    this.rows.clear();
  }

  /** Number of samples held. */
  get length(): number {
    return this.times.length;
  }

  /** The keys in a stable (sorted) order, so colours do not jump between redraws. */
  keys(): string[] {
    return [...this.rows.keys()].sort(compareKeys);
  }

  /** Copies the window out in uPlot's column layout. */
  aligned(): AlignedSeries {
    const keys = this.keys();
    const rows = keys.map((key) => [...(this.rows.get(key) ?? [])]);
    return { keys, data: [[...this.times], ...rows] };
  }
}

/**
 * Orders addresses numerically, IPv4 before IPv6 (as tungate lists them), then other keys
 * alphabetically.
 */
export function compareKeys(a: string, b: string): number {
  const ka = addressKey(a);
  const kb = addressKey(b);
  if (ka !== null && kb !== null) return ka < kb ? -1 : ka > kb ? 1 : 0;
  if (ka !== null) return -1;
  if (kb !== null) return 1;
  return a.localeCompare(b);
}

/** An address as a number that orders like it, IPv6 above every IPv4; null for other keys. */
function addressKey(text: string): bigint | null {
  const v4 = ipv4Number(text);
  if (v4 !== null) return BigInt(v4);
  if (addressFamily(text) !== 6) return null;
  const [head, tail] = text.includes('::') ? text.split('::') : [text, undefined];
  const groups = (part: string | undefined) => (part ? part.split(':') : []);
  const left = groups(head);
  const right = groups(tail);
  const all =
    tail === undefined ? left : [...left, ...Array(8 - left.length - right.length).fill('0'), ...right];
  return all.reduce((value, group) => (value << 16n) | BigInt(parseInt(group, 16)), 1n);
}

function ipv4Number(text: string): number | null {
  const parts = text.split('.');
  if (parts.length !== 4) return null;
  let value = 0;
  for (const part of parts) {
    if (!/^\d{1,3}$/.test(part)) return null;
    const octet = Number(part);
    if (octet > 255) return null;
    value = value * 256 + octet;
  }
  return value;
}
