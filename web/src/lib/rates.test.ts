import { describe, expect, it } from 'vitest';
import type { BindingStats, Stats, VipStats } from '../api/types';
import { computeRates, counterDelta, type CounterSample } from './rates';

function vip(
  address: string,
  packets: number,
  bytes: number,
  dropped: Record<string, number> = {},
): VipStats {
  return { address, peer: 'rs1', forwarded_packets: packets, forwarded_bytes: bytes, dropped };
}

function binding(
  partial: Partial<BindingStats> & Pick<BindingStats, 'vip' | 'position' | 'plugin'>,
): BindingStats {
  return { verdicts: {}, errors: {}, quarantined: false, ...partial };
}

function sample(atMs: number, stats: Partial<Stats>): CounterSample {
  return { atMs, stats: { totals: {}, vips: [], drops: {}, bindings: [], peers: [], ...stats } };
}

describe('counterDelta', () => {
  it('is unknown without a previous value', () => {
    expect(counterDelta(undefined, 10)).toBeNull();
  });
  it('is the growth of a growing counter', () => {
    expect(counterDelta(100, 250)).toBe(150);
    expect(counterDelta(7, 7)).toBe(0);
  });
  it('treats a counter that went down as reset to zero and counting again', () => {
    expect(counterDelta(1_000_000, 40)).toBe(40);
    expect(counterDelta(5, 0)).toBe(0);
  });
});

describe('computeRates per VIP', () => {
  it('has counters but no rates on the first sample', () => {
    const snap = computeRates(null, sample(1000, { vips: [vip('192.0.2.10', 500, 64_000)] }));
    expect(snap.intervalSeconds).toBeNull();
    expect(snap.vips).toEqual([
      {
        address: '192.0.2.10',
        peer: 'rs1',
        forwardedPackets: 500,
        forwardedBytes: 64_000,
        droppedPackets: 0,
        pps: null,
        bps: null,
        dropPps: null,
      },
    ]);
  });

  it('divides counter growth by the time between samples', () => {
    const a = sample(10_000, { vips: [vip('192.0.2.10', 1000, 100_000, { not_a_vip: 4 })] });
    // 2 s later: +3000 packets, +384000 bytes, +6 drops.
    const b = sample(12_000, { vips: [vip('192.0.2.10', 4000, 484_000, { not_a_vip: 10 })] });
    const v = computeRates(a, b).vips[0];
    expect(v?.pps).toBe(1500);
    expect(v?.bps).toBe(1_536_000); // 384000 B × 8 / 2 s
    expect(v?.dropPps).toBe(3);
    expect(v?.droppedPackets).toBe(10);
  });

  it('counts from zero after a reset (tungate restarted)', () => {
    const a = sample(0, { vips: [vip('192.0.2.10', 9_000_000, 900_000_000)] });
    const b = sample(500, { vips: [vip('192.0.2.10', 250, 16_000)] });
    const v = computeRates(a, b).vips[0];
    expect(v?.pps).toBe(500); // 250 packets in 0.5 s
    expect(v?.bps).toBe(256_000); // 16000 B × 8 / 0.5 s
  });

  it('gives a VIP that just appeared no rate until its second sample', () => {
    const a = sample(0, { vips: [vip('192.0.2.10', 10, 1000)] });
    const b = sample(1000, { vips: [vip('192.0.2.10', 20, 2000), vip('192.0.2.11', 5000, 50_000)] });
    const snap = computeRates(a, b);
    expect(snap.vips.map((v) => [v.address, v.pps])).toEqual([
      ['192.0.2.10', 10],
      ['192.0.2.11', null],
    ]);
  });

  it('drops a VIP that disappeared from the snapshot', () => {
    const a = sample(0, { vips: [vip('192.0.2.10', 10, 1000), vip('192.0.2.11', 10, 1000)] });
    const b = sample(1000, { vips: [vip('192.0.2.11', 30, 3000)] });
    expect(computeRates(a, b).vips.map((v) => v.address)).toEqual(['192.0.2.11']);
  });

  it('counts a drop reason new to an existing VIP from zero', () => {
    const a = sample(0, { vips: [vip('192.0.2.10', 0, 0, {})] });
    const b = sample(1000, { vips: [vip('192.0.2.10', 0, 0, { ttl_expired: 7, bad_checksum: 2 })] });
    expect(computeRates(a, b).vips[0]?.dropPps).toBe(9);
  });

  it('knows no rate when the clock did not advance', () => {
    const a = sample(5000, { vips: [vip('192.0.2.10', 10, 1000)] });
    const b = sample(5000, { vips: [vip('192.0.2.10', 20, 2000)] });
    const snap = computeRates(a, b);
    expect(snap.intervalSeconds).toBeNull();
    expect(snap.vips[0]?.pps).toBeNull();
  });
});

describe('computeRates for drops, bindings and totals', () => {
  it('rates every drop reason and sorts by total', () => {
    const a = sample(0, { drops: { not_a_vip: 100, ttl_expired: 10 } });
    const b = sample(4000, { drops: { not_a_vip: 140, ttl_expired: 10, inner_tunnel: 8 } });
    expect(computeRates(a, b).drops).toEqual([
      { reason: 'not_a_vip', total: 140, perSecond: 10 },
      { reason: 'ttl_expired', total: 10, perSecond: 0 },
      { reason: 'inner_tunnel', total: 8, perSecond: 2 },
    ]);
  });

  it('rates verdicts and errors per binding, keyed by VIP, position, plugin and hash', () => {
    const before = binding({
      vip: '192.0.2.10',
      position: 0,
      plugin: 'cidr-filter',
      sha256: 'aa',
      verdicts: { pass: 100, drop: 10 },
      errors: { trap: 1 },
    });
    const after = binding({
      vip: '192.0.2.10',
      position: 0,
      plugin: 'cidr-filter',
      sha256: 'aa',
      verdicts: { pass: 300, drop: 50 },
      errors: { trap: 3, deadline: 2 },
    });
    const rates = computeRates(sample(0, { bindings: [before] }), sample(2000, { bindings: [after] }))
      .bindings[0];
    expect(rates?.passPerSecond).toBe(100);
    expect(rates?.dropPerSecond).toBe(20);
    expect(rates?.errorsTotal).toBe(5);
    expect(rates?.errorsPerSecond).toBe(2); // (3-1) + (2-0) over 2 s
  });

  it('treats a hot-swapped module at the same position as a new binding', () => {
    const old = binding({
      vip: '192.0.2.10',
      position: 0,
      plugin: 'cidr-filter',
      sha256: 'aa',
      verdicts: { pass: 100 },
    });
    const swapped = binding({
      vip: '192.0.2.10',
      position: 0,
      plugin: 'cidr-filter',
      sha256: 'bb',
      verdicts: { pass: 150 },
    });
    const rates = computeRates(sample(0, { bindings: [old] }), sample(1000, { bindings: [swapped] }))
      .bindings[0];
    expect(rates?.passPerSecond).toBeNull();
    expect(rates?.errorsPerSecond).toBeNull();
  });

  it('rates the totals when the API gives them', () => {
    const a = sample(0, {
      totals: { forwarded_packets: 10, forwarded_bytes: 1000, dropped_packets: 1, received_packets: 11 },
    });
    const b = sample(1000, {
      totals: { forwarded_packets: 30, forwarded_bytes: 3000, dropped_packets: 4, received_packets: 34 },
    });
    expect(computeRates(a, b).totals).toEqual({
      forwardedPackets: 30,
      forwardedBytes: 3000,
      droppedPackets: 4,
      receivedPackets: 34,
      pps: 20,
      bps: 16_000,
      dropPps: 3,
    });
  });

  it('leaves totals unknown when the API omits their counters', () => {
    const snap = computeRates(sample(0, {}), sample(1000, {}));
    expect(snap.totals.pps).toBeNull();
    expect(snap.totals.forwardedPackets).toBeNull();
  });
});
