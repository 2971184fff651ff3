// The dashboard's live data: polls `GET /api/v1/stats` and `GET /api/v1/status` every
// second and keeps the tab's history (lib/liveHistory: rates over at least five seconds,
// 15 minutes of chart samples). The poller and the history live at module level, outside
// the dashboard component: they start when the dashboard is first shown and go on while
// the operator is on another page, so coming back shows the before and after of a change
// made there. A page reload starts afresh. Owns the polling clock; never draws.

import { useEffect, useState } from 'preact/hooks';
import { ApiError, type ApiClient } from '../api/client';
import type { Status } from '../api/types';
import { HISTORY_SECONDS, LiveHistory, type ChartData } from '../lib/liveHistory';
import type { CounterSample, RateSnapshot } from '../lib/rates';

export type { ChartData } from '../lib/liveHistory';

/** Poll period of the dashboard. */
export const POLL_INTERVAL_MS = 1000;
/** Seconds of chart history kept for the tab (15 minutes). */
export const WINDOW_SECONDS = HISTORY_SECONDS;

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

/** The tab's one poller and its history. */
class LiveFeed {
  private readonly history = new LiveHistory(WINDOW_SECONDS, POLL_INTERVAL_MS / 1000);
  private readonly listeners = new Set<() => void>();
  private api: ApiClient | null = null;
  private running = false;
  private state: LiveStats;

  constructor() {
    this.state = {
      status: null,
      statusError: null,
      snapshot: null,
      statsError: null,
      charts: this.history.charts(),
      lastUpdate: null,
      loading: true,
    };
  }

  /** What the dashboard shows now. */
  get current(): LiveStats {
    return this.state;
  }

  /** Polls through `api` from now on (starts the poller if it is not running). */
  attach(api: ApiClient): void {
    this.api = api;
    if (this.running) return;
    this.running = true;
    void this.tick();
  }

  /** Calls `listener` after every poll; returns the unsubscribe function. */
  subscribe(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private async tick(): Promise<void> {
    const api = this.api;
    if (!api) return;
    const timedStats = api.stats().then((stats): CounterSample => ({ stats, atMs: performance.now() }));
    const [statsResult, statusResult] = await Promise.allSettled([timedStats, api.status()]);
    const nowSeconds = Date.now() / 1000;
    let snapshot: RateSnapshot | null = null;
    if (statsResult.status === 'fulfilled') {
      snapshot = this.history.record(statsResult.value, nowSeconds);
    } else {
      // A gap in every line: the chart must not pretend traffic was steady meanwhile.
      this.history.recordFailure(nowSeconds);
    }
    const old = this.state;
    this.state = {
      status: statusResult.status === 'fulfilled' ? statusResult.value : old.status,
      statusError: statusResult.status === 'rejected' ? statusResult.reason : null,
      snapshot: snapshot ?? old.snapshot,
      statsError: statsResult.status === 'rejected' ? statsResult.reason : null,
      charts: this.history.charts(),
      lastUpdate: snapshot ? Date.now() : old.lastUpdate,
      loading: false,
    };
    for (const listener of this.listeners) listener();
    // Away from the dashboard, a refused token stops the background polling (no sign-in
    // prompt from a page that does not show stats); showing the dashboard resumes it.
    const refused =
      statsResult.status === 'rejected' &&
      statsResult.reason instanceof ApiError &&
      statsResult.reason.kind === 'unauthorized';
    if (refused && this.listeners.size === 0) {
      this.running = false;
      return;
    }
    setTimeout(() => void this.tick(), POLL_INTERVAL_MS);
  }
}

const feed = new LiveFeed();

/** The live stats, kept for the tab; polling starts with the first dashboard visit. */
export function useLiveStats(api: ApiClient): LiveStats {
  const [state, setState] = useState<LiveStats>(() => feed.current);
  useEffect(() => {
    const unsubscribe = feed.subscribe(() => setState(feed.current));
    feed.attach(api);
    setState(feed.current);
    return unsubscribe;
  }, [api]);
  return state;
}
