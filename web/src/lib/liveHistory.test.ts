import { describe, expect, it } from 'vitest';
import type { Stats, VipStats } from '../api/types';
import { LiveHistory, MAX_CHART_VIPS } from './liveHistory';
import { computeRates, rateBaseline, type CounterSample } from './rates';

function vip(address: string, packets: number): VipStats {
  return { address, peer: 'rs1', forwarded_packets: packets, forwarded_bytes: packets * 100, dropped: {} };
}

function sample(atMs: number, vips: VipStats[]): CounterSample {
  const stats: Stats = { totals: {}, vips, drops: {}, bindings: [], peers: [] };
  return { atMs, stats };
}

/**
 * A steady 50 packets/s that the gateway counts in bursts of 10 every 200 ms, polled about
 * once a second with the jitter a browser timer and a request add (0.9 to 1.15 s apart).
 */
function steadyFiftyPps(samples: number): CounterSample[] {
  const gaps = [1000, 1150, 900, 1100, 950, 1120, 910, 1000, 1140, 930];
  const out: CounterSample[] = [];
  let at = 0;
  for (let i = 0; i < samples; i += 1) {
    const counted = Math.floor(at / 200) * 10;
    out.push(sample(at, [vip('192.0.2.10', counted)]));
    at += gaps[i % gaps.length] ?? 1000;
  }
  return out;
}

describe('rateBaseline', () => {
  const history = [0, 1000, 2000, 3000, 4000, 5000, 6000].map((t) => sample(t, []));
  it('is the newest sample at least the window older', () => {
    expect(rateBaseline(history, sample(7200, []), 5000)?.atMs).toBe(2000);
    expect(rateBaseline(history, sample(7000, []), 5000)?.atMs).toBe(2000);
  });
  it('is the oldest sample while the history is shorter than the window', () => {
    expect(rateBaseline(history.slice(0, 3), sample(3000, []), 5000)?.atMs).toBe(0);
  });
  it('is null without history', () => {
    expect(rateBaseline([], sample(3000, []), 5000)).toBeNull();
  });
});

describe('rates at a steady 50 pps, sampled with jitter', () => {
  const samples = steadyFiftyPps(40);

  it('zigzag when taken between consecutive samples (the old way)', () => {
    const rates = samples.slice(1).map((s, i) => computeRates(samples[i] ?? null, s).vips[0]?.pps ?? 0);
    const spread = Math.max(...rates) - Math.min(...rates);
    expect(spread).toBeGreaterThan(10);
  });

  it('stay within ±3 of 50 over the real interval of at least five seconds', () => {
    const history = new LiveHistory(900, 1);
    const rates: number[] = [];
    for (const s of samples) {
      const pps = history.record(s, s.atMs / 1000).vips[0]?.pps;
      if (s.atMs >= 5000 && pps != null) rates.push(pps);
    }
    expect(rates.length).toBeGreaterThan(30);
    for (const pps of rates) expect(Math.abs(pps - 50)).toBeLessThanOrEqual(3);
  });
});

describe('LiveHistory', () => {
  it('drops a removed VIP from every chart at once, and charts only the busiest', () => {
    const history = new LiveHistory(900, 1);
    const many = (n: number, at: number) =>
      Array.from({ length: n }, (_, i) => vip(`203.0.113.${i + 1}`, i === 5 ? at * 100 : at));
    for (let t = 0; t < 3; t += 1) history.record(sample(t * 1000, many(20, t)), t);
    const charts = history.charts();
    expect(charts.pps.keys.length).toBe(MAX_CHART_VIPS);
    expect(charts.pps.keys).toContain('203.0.113.6');

    history.record(sample(3000, [vip('203.0.113.6', 400), vip('203.0.113.1', 3)]), 3);
    for (const chart of Object.values(history.charts())) {
      expect(chart.keys).toEqual(['203.0.113.1', '203.0.113.6']);
    }
  });

  it('keeps at most its capacity of samples', () => {
    const history = new LiveHistory(10, 1);
    for (let t = 0; t < 25; t += 1) history.record(sample(t * 1000, [vip('192.0.2.10', t * 50)]), t);
    expect(history.charts().pps.data[0]).toHaveLength(10);
  });

  it('draws a pause (the tab asleep) as a gap, not a line', () => {
    const history = new LiveHistory(900, 1);
    history.record(sample(0, [vip('192.0.2.10', 0)]), 100);
    history.record(sample(1000, [vip('192.0.2.10', 50)]), 101);
    history.record(sample(60_000, [vip('192.0.2.10', 3000)]), 160);
    const { data } = history.charts().pps;
    expect(data[0]).toEqual([100, 101, 102, 160]);
    expect(data[1]?.[2]).toBeNull();
    expect(data[1]?.[3]).toBeCloseTo(50, 5);
  });
});
