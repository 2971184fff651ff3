// The dashboard's memory for the browser tab: the recent stats samples rates are taken
// against, the chart windows (15 minutes at one sample a second) and the last snapshot.
// Kept outside any component (see pages/useLiveStats), so leaving the dashboard and coming
// back finds the history. Owns which VIPs the charts draw (only configured ones, the
// busiest few) and marking gaps; never fetches and never draws.

import {
  computeRates,
  rateBaseline,
  RATE_WINDOW_MS,
  type CounterSample,
  type RateSnapshot,
  type VipRates,
} from './rates';
import { SeriesWindow, compareKeys, type AlignedSeries } from './series';

/** How much chart history is kept: 15 minutes. */
export const HISTORY_SECONDS = 15 * 60;
/** The charts draw at most this many VIPs (the busiest), one colour each. */
export const MAX_CHART_VIPS = 8;

/** The three live charts' content. */
export interface ChartData {
  pps: AlignedSeries;
  bps: AlignedSeries;
  dropPps: AlignedSeries;
}

/** Orders VIPs busiest first: packets/s forwarded and dropped, then totals, then address. */
function busiestFirst(a: VipRates, b: VipRates): number {
  const rate = (v: VipRates) => (v.pps ?? 0) + (v.dropPps ?? 0);
  const total = (v: VipRates) => v.forwardedPackets + v.droppedPackets;
  return rate(b) - rate(a) || total(b) - total(a) || compareKeys(a.address, b.address);
}

/** Samples, rates and chart windows of one tab. */
export class LiveHistory {
  private readonly samples: CounterSample[] = [];
  private readonly windows: { pps: SeriesWindow; bps: SeriesWindow; dropPps: SeriesWindow };
  private last: RateSnapshot | null = null;

  /**
   * `capacity`: samples each chart keeps; `pollSeconds`: the expected time between samples
   * (a longer pause, e.g. the tab asleep, is drawn as a gap, not as a straight line).
   */
  constructor(
    capacity: number = HISTORY_SECONDS,
    private readonly pollSeconds = 1,
  ) {
    this.windows = {
      pps: new SeriesWindow(capacity),
      bps: new SeriesWindow(capacity),
      dropPps: new SeriesWindow(capacity),
    };
  }

  /** The newest snapshot, or null before the first good sample. */
  get snapshot(): RateSnapshot | null {
    return this.last;
  }

  /** Adds a good stats sample taken at `nowSeconds` (wall clock); returns its rates. */
  record(sample: CounterSample, nowSeconds: number): RateSnapshot {
    const snapshot = computeRates(rateBaseline(this.samples, sample), sample);
    this.samples.push(sample);
    // Keep only what a later baseline can be: the newest sample old enough, and the rest.
    while (this.samples.length > 1 && sample.atMs - (this.samples[1]?.atMs ?? 0) >= RATE_WINDOW_MS) {
      this.samples.shift();
    }
    this.markPause(nowSeconds);
    const configured = new Set(snapshot.vips.map((v) => v.address));
    const charted = [...snapshot.vips].sort(busiestFirst).slice(0, MAX_CHART_VIPS);
    const row = (value: (v: VipRates) => number | null) =>
      new Map<string, number | null>(charted.map((v) => [v.address, value(v)]));
    const { pps, bps, dropPps } = this.windows;
    for (const window of [pps, bps, dropPps]) window.retain(configured);
    pps.push(
      nowSeconds,
      row((v) => v.pps),
    );
    bps.push(
      nowSeconds,
      row((v) => v.bps),
    );
    dropPps.push(
      nowSeconds,
      row((v) => v.dropPps),
    );
    this.last = snapshot;
    return snapshot;
  }

  /** A failed sample at `nowSeconds`: a gap in every line. */
  recordFailure(nowSeconds: number): void {
    this.markPause(nowSeconds);
    for (const window of Object.values(this.windows)) window.push(nowSeconds, new Map());
  }

  /** The charts' content now. */
  charts(): ChartData {
    const { pps, bps, dropPps } = this.windows;
    return { pps: pps.aligned(), bps: bps.aligned(), dropPps: dropPps.aligned() };
  }

  /** After a pause of more than three poll periods, a gap right after the last sample. */
  private markPause(nowSeconds: number): void {
    const last = this.windows.pps.lastTime;
    if (last === null || nowSeconds - last <= 3 * this.pollSeconds) return;
    for (const window of Object.values(this.windows)) window.push(last + this.pollSeconds, new Map());
  }
}
