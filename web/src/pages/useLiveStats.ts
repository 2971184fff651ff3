// The dashboard's live data: polls `GET /api/v1/stats` and `GET /api/v1/status` every
// second, turns counter pairs into rates (lib/rates) and keeps two minutes of them per VIP
// for the charts (lib/series). Owns the polling clock and the chart windows; never draws.

import { useRef, useState } from 'preact/hooks';
import type { ApiClient } from '../api/client';
import type { Status } from '../api/types';
import { usePoller } from '../hooks';
import { computeRates, type CounterSample, type RateSnapshot } from '../lib/rates';
import { SeriesWindow, type AlignedSeries } from '../lib/series';

/** Poll period of the dashboard. */
export const POLL_INTERVAL_MS = 1000;
/** Samples kept per chart: two minutes at one per second. */
export const WINDOW_SAMPLES = 120;

/** The three live charts' content. */
export interface ChartData {
  pps: AlignedSeries;
  bps: AlignedSeries;
  dropPps: AlignedSeries;
}

/** What the dashboard renders. */
export interface LiveStats {
  status: Status | null;
  statusError: unknown;
  snapshot: RateSnapshot | null;
  statsError: unknown;
  charts: ChartData;
  /** Wall-clock time of the last good stats answer. */
  lastUpdate: number | null;
  /** True until the first stats request finished (either way). */
  loading: boolean;
}

/** Polls stats and status while the dashboard is shown. */
export function useLiveStats(api: ApiClient): LiveStats {
  const windows = useRef({
    pps: new SeriesWindow(WINDOW_SAMPLES),
    bps: new SeriesWindow(WINDOW_SAMPLES),
    dropPps: new SeriesWindow(WINDOW_SAMPLES),
  });
  const previous = useRef<CounterSample | null>(null);
  const [state, setState] = useState<LiveStats>(() => ({
    status: null,
    statusError: null,
    snapshot: null,
    statsError: null,
    charts: chartsOf(windows.current),
    lastUpdate: null,
    loading: true,
  }));

  usePoller(async () => {
    const timedStats = api.stats().then((stats) => ({ stats, atMs: performance.now() }));
    const [statsResult, statusResult] = await Promise.allSettled([timedStats, api.status()]);
    const nowSeconds = Date.now() / 1000;
    const w = windows.current;

    let snapshot: RateSnapshot | null = null;
    if (statsResult.status === 'fulfilled') {
      const sample: CounterSample = statsResult.value;
      snapshot = computeRates(previous.current, sample);
      previous.current = sample;
      w.pps.push(nowSeconds, new Map<string, number | null>(snapshot.vips.map((v) => [v.address, v.pps])));
      w.bps.push(nowSeconds, new Map<string, number | null>(snapshot.vips.map((v) => [v.address, v.bps])));
      w.dropPps.push(
        nowSeconds,
        new Map<string, number | null>(snapshot.vips.map((v) => [v.address, v.dropPps])),
      );
    } else {
      // A gap in every line: the chart must not pretend traffic was steady meanwhile.
      for (const window of [w.pps, w.bps, w.dropPps]) window.push(nowSeconds, new Map());
    }

    setState((old) => ({
      status: statusResult.status === 'fulfilled' ? statusResult.value : old.status,
      statusError: statusResult.status === 'rejected' ? statusResult.reason : null,
      snapshot: snapshot ?? old.snapshot,
      statsError: statsResult.status === 'rejected' ? statsResult.reason : null,
      charts: chartsOf(w),
      lastUpdate: snapshot ? Date.now() : old.lastUpdate,
      loading: false,
    }));
  }, POLL_INTERVAL_MS);

  return state;
}

function chartsOf(w: { pps: SeriesWindow; bps: SeriesWindow; dropPps: SeriesWindow }): ChartData {
  return { pps: w.pps.aligned(), bps: w.bps.aligned(), dropPps: w.dropPps.aligned() };
}
