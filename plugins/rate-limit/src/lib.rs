//! `rate-limit`: a token bucket per client (or per client prefix) on a VIP's replies.
//!
//! Useful against reflection and amplification: a VIP's replies to any one client cannot
//! exceed the configured rate, whatever the requests claimed. Configuration (JSON, unknown
//! keys refused):
//!
//! ```json
//! { "unit": "packets", "rate": 1000, "burst": 2000, "client_prefix_len": 32,
//!   "client_prefix_len_v6": 64, "max_clients": 65536 }
//! ```
//!
//! - `unit`: `packets` (each packet costs 1) or `bytes` (each costs its length);
//! - `rate`: tokens added per second (1 to 10^10); `burst`: bucket size (default `rate`,
//!   at least the largest packet when counting bytes);
//! - `client_prefix_len` (default 32): IPv4 clients are grouped by this prefix (e.g. 24
//!   shares one bucket per /24);
//! - `client_prefix_len_v6` (default 64, 0 to 128): IPv6 clients (ABI v2) are grouped by
//!   this prefix; the default gives one bucket per /64, since one IPv6 host can pick any
//!   address of its /64 and would otherwise get a fresh bucket per address;
//! - `max_clients` (default 65,536, at most 1,048,576): buckets kept; when the table is
//!   full the least recently seen client in the probe window loses its bucket (a new
//!   bucket starts full, so eviction never drops traffic by itself). The table holds
//!   twice `max_clients` slots (rounded up to a power of two) of 40 bytes, all written at
//!   configure time: 80 KiB per 1,024 clients, 5 MiB at the default, in each instance
//!   (one per worker). The host's cap on an instance's memory (16 MiB by default) fails
//!   the configure step of a larger table: above 131,072 clients at that cap.
//!
//! Counters: `dropped{rate}` (packets over the rate), `evicted{}` (buckets recycled).

use serde::Deserialize;
use std::net::IpAddr;

use tungate_plugin_sdk::net::{mask, mask6};
use tungate_plugin_sdk::{Counter, Packet, Plugin, Setup, Verdict, export_plugin};

/// Nanotokens per token: buckets count in billionths so that refills are exact integers.
const NANO: u64 = 1_000_000_000;
/// Largest `rate` and `burst`.
pub const MAX_RATE: u64 = 10_000_000_000;
/// Largest `max_clients`.
pub const MAX_CLIENTS: usize = 1 << 20;
/// Slots probed for a client before evicting.
const PROBE: usize = 8;

/// What a token stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Unit {
    /// One packet.
    Packets,
    /// One byte.
    Bytes,
}

/// The binding's configuration.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// What a token stands for.
    pub unit: Unit,
    /// Tokens per second.
    pub rate: u64,
    /// Bucket size; default `rate`.
    #[serde(default)]
    pub burst: Option<u64>,
    /// Clients sharing a bucket: prefix length 0 to 32.
    #[serde(default = "default_prefix_len")]
    pub client_prefix_len: u8,
    /// IPv6 clients sharing a bucket: prefix length 0 to 128.
    #[serde(default = "default_prefix_len_v6")]
    pub client_prefix_len_v6: u8,
    /// Buckets kept.
    #[serde(default = "default_max_clients")]
    pub max_clients: usize,
}

fn default_prefix_len() -> u8 {
    32
}

fn default_prefix_len_v6() -> u8 {
    64
}

fn default_max_clients() -> usize {
    65_536
}

/// A client (its prefix) as a bucket key: the family (4 or 6; 0 marks a free slot), and
/// the masked address as a host-order number, high and low halves (IPv4 in the low 32
/// bits), so the two families never share a bucket. Two `u64`s rather than a `u128`: a
/// `u128` is 16-byte aligned, which made a slot 64 bytes instead of 40 (the table, twice
/// `max_clients` slots, is nearly all of the plugin's memory).
#[derive(Clone, Copy, Default, PartialEq, Eq)]
struct Key {
    family: u8,
    addr: [u64; 2],
}

impl Key {
    fn new(family: u8, addr: u128) -> Key {
        Key {
            family,
            addr: [(addr >> 64) as u64, addr as u64],
        }
    }
}

/// One client's bucket; free while its key's family is 0.
#[derive(Clone, Copy, Default)]
struct Slot {
    key: Key,
    last_ns: u64,
    nanotokens: u64,
}

const _: () = assert!(core::mem::size_of::<Slot>() == 40);

impl Slot {
    fn used(&self) -> bool {
        self.key.family != 0
    }
}

/// The plugin.
pub struct RateLimit {
    unit: Unit,
    rate: u64,
    capacity: u64,
    /// Nanoseconds to fill an empty bucket: longer gaps refill no more.
    fill_ns: u64,
    mask: u32,
    mask_v6: u128,
    slots: Vec<Slot>,
    shift: u32,
    dropped: Counter,
    evicted: Counter,
}

impl Plugin for RateLimit {
    type Config = Config;

    fn configure(c: Config, setup: &mut Setup) -> Result<Self, String> {
        if c.rate == 0 || c.rate > MAX_RATE {
            return Err(format!(
                "rate {} is out of range: give 1 to {MAX_RATE}",
                c.rate
            ));
        }
        let burst = c.burst.unwrap_or(c.rate);
        if burst == 0 || burst > MAX_RATE {
            return Err(format!(
                "burst {burst} is out of range: give 1 to {MAX_RATE}"
            ));
        }
        if c.unit == Unit::Bytes && burst < 65_535 {
            return Err(format!(
                "burst {burst} bytes is smaller than the largest IPv4 packet (65535): such packets could never pass"
            ));
        }
        if c.client_prefix_len > 32 {
            return Err(format!(
                "client_prefix_len {} is more than 32",
                c.client_prefix_len
            ));
        }
        if c.client_prefix_len_v6 > 128 {
            return Err(format!(
                "client_prefix_len_v6 {} is more than 128",
                c.client_prefix_len_v6
            ));
        }
        if c.max_clients == 0 || c.max_clients > MAX_CLIENTS {
            return Err(format!(
                "max_clients {} is out of range: give 1 to {MAX_CLIENTS}",
                c.max_clients
            ));
        }
        // Twice the clients, rounded up to a power of two, keeps probe chains short.
        let size = (c.max_clients * 2).next_power_of_two().max(PROBE);
        Ok(RateLimit {
            unit: c.unit,
            rate: c.rate,
            capacity: burst * NANO,
            fill_ns: (burst * NANO).div_ceil(c.rate),
            mask: mask(c.client_prefix_len),
            mask_v6: mask6(c.client_prefix_len_v6),
            slots: vec![Slot::default(); size],
            shift: 64 - size.trailing_zeros(),
            dropped: setup.counter("dropped", "rate")?,
            evicted: setup.counter("evicted", "")?,
        })
    }

    #[inline]
    fn on_packet(&mut self, packet: &Packet<'_>) -> Verdict {
        let cost = match self.unit {
            Unit::Packets => NANO,
            // At most 2^32 × 10^9 < 2^64: cannot wrap (a checked 64-bit multiply is slow in wasm).
            Unit::Bytes => u64::from(packet.len()).wrapping_mul(NANO),
        };
        let now = packet.now_ns();
        let (rate, capacity, fill_ns) = (self.rate, self.capacity, self.fill_ns);
        let key = match packet.dst() {
            IpAddr::V4(a) => Key::new(4, u128::from(u32::from(a) & self.mask)),
            IpAddr::V6(a) => Key::new(6, u128::from(a) & self.mask_v6),
        };
        let slot = self.slot_for(key, now);
        let elapsed = now.saturating_sub(slot.last_ns);
        slot.last_ns = now.max(slot.last_ns);
        // Never more than a full bucket's worth: fill_ns × rate <= capacity + rate < 2^64.
        let refill = elapsed.min(fill_ns).wrapping_mul(rate);
        slot.nanotokens = slot.nanotokens.saturating_add(refill).min(capacity);
        if slot.nanotokens >= cost {
            slot.nanotokens -= cost;
            Verdict::Pass
        } else {
            self.dropped.increment();
            Verdict::Drop
        }
    }
}

impl RateLimit {
    /// The bucket of `key`, made (full) if the client is new.
    #[inline]
    fn slot_for(&mut self, key: Key, now: u64) -> &mut Slot {
        let len = self.slots.len();
        let folded = key.addr[0] ^ key.addr[1] ^ u64::from(key.family);
        let start = (folded.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> self.shift) as usize;
        let mut oldest = start;
        for i in 0..PROBE {
            let at = (start + i) & (len - 1);
            let s = self.slots[at];
            if s.used() && s.key == key {
                return &mut self.slots[at];
            }
            if !s.used() {
                oldest = at;
                break;
            }
            if s.last_ns < self.slots[oldest].last_ns {
                oldest = at;
            }
        }
        if self.slots[oldest].used() {
            self.evicted.increment();
        }
        self.slots[oldest] = Slot {
            key,
            last_ns: now,
            nanotokens: self.capacity,
        };
        &mut self.slots[oldest]
    }
}

export_plugin!(RateLimit);

#[cfg(test)]
mod tests {
    use super::*;
    use tungate_plugin_sdk::{PacketDesc, configure_from_json, native};

    fn reply(client: impl Into<IpAddr>, len: usize) -> PacketDesc {
        let client = client.into();
        let vip: IpAddr = match client {
            IpAddr::V4(_) => [192, 0, 2, 10].into(),
            IpAddr::V6(_) => "2001:db8::10".parse().unwrap(),
        };
        PacketDesc::parse(&native::reply(vip, client, 17, (53, 40000), len))
    }

    fn v6(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ipv6_clients_share_a_bucket_per_prefix_and_never_with_ipv4() {
        let mut f = configure_from_json::<RateLimit>(
            br#"{"unit":"packets","rate":1,"burst":2,"client_prefix_len_v6":64}"#,
        )
        .unwrap();
        let t = 7;
        let a = reply(v6("2001:db8:ff:1::1"), 60);
        let same_64 = reply(v6("2001:db8:ff:1:ffff::9"), 60);
        let other_64 = reply(v6("2001:db8:ff:2::1"), 60);
        assert_eq!(verdicts(&mut f, &a, t, 1), 1);
        assert_eq!(
            verdicts(&mut f, &same_64, t, 3),
            1,
            "the /64's second token, then nothing"
        );
        assert_eq!(
            verdicts(&mut f, &other_64, t, 3),
            2,
            "another /64: its own bucket"
        );
        // An IPv4 client whose number equals the masked IPv6 key's low bits: its own bucket.
        let mut g = configure_from_json::<RateLimit>(
            br#"{"unit":"packets","rate":1,"burst":1,"client_prefix_len_v6":128}"#,
        )
        .unwrap();
        assert_eq!(verdicts(&mut g, &reply(v6("::a00:1"), 60), t, 1), 1);
        assert_eq!(verdicts(&mut g, &reply([10, 0, 0, 1], 60), t, 1), 1);
        assert_eq!(verdicts(&mut g, &reply(v6("::a00:1"), 60), t, 1), 0);
        assert_eq!(native::counter("dropped", "rate"), Some(2 + 1 + 1));
    }

    fn verdicts(f: &mut RateLimit, d: &PacketDesc, now: u64, n: usize) -> usize {
        (0..n)
            .filter(|_| f.on_packet(&Packet::new(d, now)) == Verdict::Pass)
            .count()
    }

    #[test]
    fn packets_per_second_with_burst_and_refill() {
        let mut f =
            configure_from_json::<RateLimit>(br#"{"unit":"packets","rate":10,"burst":5}"#).unwrap();
        let a = reply([198, 51, 100, 1], 40);
        let b = reply([198, 51, 100, 2], 40);
        let t0 = 1_000_000_000;
        assert_eq!(verdicts(&mut f, &a, t0, 8), 5, "the burst, then nothing");
        assert_eq!(
            verdicts(&mut f, &b, t0, 3),
            3,
            "another client has its own bucket"
        );
        assert_eq!(
            verdicts(&mut f, &a, t0 + 100_000_000, 3),
            1,
            "0.1 s at 10/s = 1 token"
        );
        assert_eq!(
            verdicts(&mut f, &a, t0 + 350_000_000, 5),
            2,
            "0.25 s later: 2.5 tokens"
        );
        assert_eq!(
            verdicts(&mut f, &a, t0 + 10_000_000_000, 9),
            5,
            "refill stops at the burst"
        );
        assert_eq!(native::counter("dropped", "rate"), Some(3 + 2 + 3 + 4));
    }

    #[test]
    fn bytes_and_client_prefixes() {
        let mut f = configure_from_json::<RateLimit>(
            br#"{"unit":"bytes","rate":100000,"client_prefix_len":24}"#,
        )
        .unwrap();
        let t = 5;
        let big = reply([203, 0, 113, 1], 40_000);
        let neighbour = reply([203, 0, 113, 200], 40_000);
        let elsewhere = reply([203, 0, 114, 1], 40_000);
        assert_eq!(verdicts(&mut f, &big, t, 1), 1);
        assert_eq!(
            verdicts(&mut f, &neighbour, t, 2),
            1,
            "same /24: 100000 - 40000 leaves one more"
        );
        assert_eq!(verdicts(&mut f, &elsewhere, t, 1), 1);
    }

    #[test]
    fn eviction_keeps_the_table_bounded_and_counts() {
        let mut f = configure_from_json::<RateLimit>(
            br#"{"unit":"packets","rate":1,"burst":1,"max_clients":4}"#,
        )
        .unwrap();
        assert_eq!(f.slots.len(), 8);
        for i in 0..100u8 {
            let d = reply([10, 0, 0, i], 40);
            assert_eq!(
                verdicts(&mut f, &d, u64::from(i), 1),
                1,
                "new clients start full"
            );
        }
        let used = f.slots.iter().filter(|s| s.used()).count();
        assert!(used <= 8);
        assert_eq!(native::counter("evicted", ""), Some(100 - used as u64));
    }

    #[test]
    fn time_going_backwards_does_not_refill() {
        let mut f =
            configure_from_json::<RateLimit>(br#"{"unit":"packets","rate":1,"burst":1}"#).unwrap();
        let d = reply([10, 0, 0, 1], 40);
        assert_eq!(verdicts(&mut f, &d, 5_000_000_000, 1), 1);
        assert_eq!(verdicts(&mut f, &d, 1, 1), 0);
        assert_eq!(verdicts(&mut f, &d, 5_500_000_000, 1), 0);
        assert_eq!(verdicts(&mut f, &d, 6_000_000_000, 1), 1);
    }

    #[test]
    fn bad_configs_are_refused_with_reasons() {
        let cases: &[(&[u8], &str)] = &[
            (br#"{"unit":"packets","rate":0}"#, "rate 0 is out of range"),
            (
                br#"{"unit":"packets","rate":1,"burst":0}"#,
                "burst 0 is out of range",
            ),
            (
                br#"{"unit":"bytes","rate":1000}"#,
                "smaller than the largest IPv4 packet",
            ),
            (
                br#"{"unit":"packets","rate":1,"client_prefix_len":33}"#,
                "more than 32",
            ),
            (
                br#"{"unit":"packets","rate":1,"client_prefix_len_v6":129}"#,
                "client_prefix_len_v6 129 is more than 128",
            ),
            (
                br#"{"unit":"packets","rate":1,"max_clients":0}"#,
                "max_clients 0",
            ),
            (br#"{"unit":"frames","rate":1}"#, "unknown variant `frames`"),
            (br#"{"rate":1}"#, "missing field `unit`"),
        ];
        native::assert_refusals::<RateLimit>(cases);
    }
}
