//! The guest runtime behind [`crate::export_plugin!`]: the configure buffer, the batch area
//! and the batch loop that turns one `tungate_filter` call into per-packet
//! [`Plugin::on_packet`] calls.
//!
//! The batch area is a static of its own, all zeros, apart from the plugin's [`Runtime`]:
//! an all-zero static is linked into `.bss`, which the module carries no bytes for. In the
//! runtime (whose empty `Vec` is not all zeros) it made the data segment, and so the memory
//! image every instance maps, 12 KiB (three pages) larger.
//!
//! [`Runtime`] is plain Rust and is unit-tested natively; only the thin export shims at the
//! bottom are `wasm32`-only. This module never decides verdicts itself.

use alloc::string::String;
use alloc::vec::Vec;

use crate::abi::v2::{BatchArea, PacketDesc};
use crate::abi::{BATCH_MAX, MAX_CONFIG_BYTES};
use crate::packet::Packet;
use crate::plugin::{Plugin, configure_from_json};
use crate::sys;

/// A plugin's state inside the guest (the batch area it judges is passed to
/// [`Runtime::filter`]).
pub struct Runtime<P> {
    plugin: Option<P>,
    config: Vec<u8>,
}

impl<P> Default for Runtime<P> {
    fn default() -> Self {
        Runtime::new()
    }
}

impl<P> Runtime<P> {
    /// An unconfigured runtime.
    pub const fn new() -> Runtime<P> {
        Runtime {
            plugin: None,
            config: Vec::new(),
        }
    }

    /// A buffer of exactly `size` bytes for the configuration, or `None` if `size` is more
    /// than [`MAX_CONFIG_BYTES`].
    pub fn config_buffer(&mut self, size: usize) -> Option<&mut [u8]> {
        if size > MAX_CONFIG_BYTES {
            return None;
        }
        self.config.clear();
        self.config.resize(size, 0);
        Some(&mut self.config)
    }

    /// Whether a configuration was accepted.
    pub fn is_configured(&self) -> bool {
        self.plugin.is_some()
    }
}

impl<P: Plugin> Runtime<P> {
    /// Configures the plugin from the first `len` bytes of the configure buffer; on `Err`
    /// the previous plugin (if any) is kept.
    pub fn configure(&mut self, len: usize) -> Result<(), String> {
        let json = self.config.get(..len).ok_or_else(|| {
            String::from("the configuration is not inside the buffer from tungate_alloc")
        })?;
        let plugin = configure_from_json::<P>(json)?;
        self.plugin = Some(plugin);
        self.config = Vec::new();
        sys::flush_counters();
        Ok(())
    }

    /// Judges the first `count` packets of `area` (at most [`BATCH_MAX`]) and writes their
    /// verdicts; before configuration it writes nothing (the host sees unset verdicts).
    pub fn filter(&mut self, area: &mut BatchArea, count: usize) {
        let Some(plugin) = self.plugin.as_mut() else {
            return;
        };
        let n = count.min(BATCH_MAX);
        let now = area.now_ns;
        let (packets, verdicts) = (&area.packets[..n], &mut area.verdicts[..n]);
        for (desc, verdict) in packets.iter().zip(verdicts.iter_mut()) {
            *verdict = plugin.on_packet(&Packet::new(desc, now)) as u8;
        }
        sys::flush_counters();
    }
}

/// The guest's batch area before the first batch: all zeros, so that the static holding it
/// is linked into `.bss` (see the module's documentation). Its verdict bytes start 0, not
/// `VERDICT_UNSET`: the host sets the verdicts of every batch to `VERDICT_UNSET` before
/// each call, so what they were before is never seen.
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
const ZEROED_AREA: BatchArea = BatchArea {
    now_ns: 0,
    reserved: 0,
    packets: [PacketDesc::ZERO; BATCH_MAX],
    verdicts: [0; BATCH_MAX],
};

/// Builds the `tungate.plugin` custom section's bytes at compile time.
pub const fn metadata<const N: usize>(text: &str) -> [u8; N] {
    let bytes = text.as_bytes();
    let mut out = [0u8; N];
    let mut i = 0;
    while i < N {
        out[i] = bytes[i];
        i += 1;
    }
    out
}

#[cfg(target_arch = "wasm32")]
pub use wasm_exports::*;

#[cfg(target_arch = "wasm32")]
mod wasm_exports {
    use core::cell::UnsafeCell;

    use super::Runtime;
    use crate::abi::CONFIGURE_OK;
    use crate::abi::v2::BatchArea;
    use crate::plugin::Plugin;
    use crate::sys;

    /// Guest-global state. `wasm32-unknown-unknown` (without the atomics feature, which
    /// tungate's host does not enable) runs one thread, and the host never calls an export
    /// from inside an import, so no two borrows overlap.
    pub struct GuestCell<T>(UnsafeCell<T>);

    // SAFETY: see the type's documentation: one thread, no re-entrance.
    unsafe impl<T> Sync for GuestCell<T> {}

    impl<T> GuestCell<T> {
        /// Wraps a value.
        pub const fn new(value: T) -> Self {
            GuestCell(UnsafeCell::new(value))
        }

        /// Runs `f` with the value; `f` must not re-enter this cell.
        pub fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
            // SAFETY: single-threaded guest and no re-entrance (see the type's doc), so this
            // is the only live reference for the duration of `f`.
            f(unsafe { &mut *self.0.get() })
        }
    }

    /// The batch area (see [`super::ZEROED_AREA`]).
    static AREA: GuestCell<BatchArea> = GuestCell::new(super::ZEROED_AREA);

    /// `tungate_alloc`.
    pub fn export_alloc<P>(rt: &GuestCell<Runtime<P>>, size: i32) -> i32 {
        let Ok(size) = usize::try_from(size) else {
            return 0;
        };
        rt.with(|r| {
            r.config_buffer(size)
                .map_or(0, |b| b.as_mut_ptr() as usize as i32)
        })
    }

    /// `tungate_configure`.
    pub fn export_configure<P: Plugin>(rt: &GuestCell<Runtime<P>>, ptr: i32, len: i32) -> i32 {
        let result = rt.with(|r| {
            let start = r.config_buffer_addr();
            if ptr as usize != start {
                return Err(
                    "the configuration is not at the address tungate_alloc returned".into(),
                );
            }
            r.configure(usize::try_from(len).unwrap_or(usize::MAX))
        });
        match result {
            Ok(()) => CONFIGURE_OK,
            Err(reason) => {
                sys::refuse_config(&reason);
                1
            }
        }
    }

    /// `tungate_batch_area`.
    pub fn export_batch_area() -> i32 {
        AREA.with(|a| a as *mut BatchArea as usize as i32)
    }

    /// `tungate_filter`.
    pub fn export_filter<P: Plugin>(rt: &GuestCell<Runtime<P>>, count: i32) {
        let count = usize::try_from(count).unwrap_or(0);
        rt.with(|r| AREA.with(|a| r.filter(a, count)));
    }

    impl<P> Runtime<P> {
        fn config_buffer_addr(&self) -> usize {
            self.config.as_ptr() as usize
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::abi::v2::PacketDesc;
    use crate::abi::{VERDICT_UNSET, Verdict};
    use crate::plugin::Setup;

    /// Drops packets whose TTL is below the configured minimum.
    struct MinTtl(u8);

    #[derive(serde::Deserialize)]
    struct Cfg {
        min: u8,
    }

    impl Plugin for MinTtl {
        type Config = Cfg;
        fn configure(c: Cfg, _: &mut Setup) -> Result<Self, String> {
            Ok(MinTtl(c.min))
        }
        fn on_packet(&mut self, p: &Packet<'_>) -> Verdict {
            if p.ttl() < self.0 {
                Verdict::Drop
            } else {
                Verdict::Pass
            }
        }
    }

    fn with_ttl(ttl: u8) -> PacketDesc {
        let mut b = [0u8; 20];
        b[0] = 0x45;
        b[8] = ttl;
        PacketDesc::parse(&b)
    }

    fn v6_with_hop_limit(hop_limit: u8) -> PacketDesc {
        let mut b = [0u8; 40];
        b[0] = 0x60;
        b[6] = 59; // no next header
        b[7] = hop_limit;
        PacketDesc::parse(&b)
    }

    #[test]
    fn batch_loop_writes_one_verdict_per_packet_and_no_more() {
        let mut rt = Runtime::<MinTtl>::new();
        let mut area = BatchArea::new();
        rt.filter(&mut area, 3);
        assert!(
            area.verdicts.iter().all(|&v| v == VERDICT_UNSET),
            "unconfigured: nothing written"
        );
        let json = br#"{"min":10}"#;
        rt.config_buffer(json.len()).unwrap().copy_from_slice(json);
        rt.configure(json.len()).unwrap();
        assert!(rt.is_configured());
        area.packets[0] = with_ttl(5);
        area.packets[1] = v6_with_hop_limit(10);
        area.packets[2] = with_ttl(200);
        rt.filter(&mut area, 3);
        assert_eq!(area.verdicts[..4], [1, 0, 0, VERDICT_UNSET]);
        area.packets[1] = v6_with_hop_limit(9);
        rt.filter(&mut area, 3);
        assert_eq!(
            area.verdicts[..3],
            [1, 1, 0],
            "an IPv6 hop limit is the TTL"
        );
        rt.filter(&mut area, 1000);
        assert!(
            area.verdicts[3..].iter().all(|&v| v == Verdict::Drop as u8),
            "count is capped at BATCH_MAX; the zeroed descriptors have TTL 0"
        );
    }

    #[test]
    fn the_guest_batch_area_starts_all_zero_so_it_costs_no_image_bytes() {
        let a = ZEROED_AREA;
        assert_eq!((a.now_ns, a.reserved), (0, 0));
        assert!(
            a.packets
                .iter()
                .all(|d| d.as_bytes().iter().all(|&b| b == 0))
        );
        assert!(a.verdicts.iter().all(|&v| v == 0));
    }

    #[test]
    fn configure_errors() {
        let mut rt = Runtime::<MinTtl>::new();
        assert!(rt.config_buffer(MAX_CONFIG_BYTES + 1).is_none());
        rt.config_buffer(4).unwrap().copy_from_slice(b"{}  ");
        assert!(
            rt.configure(9)
                .unwrap_err()
                .contains("not inside the buffer")
        );
        let e = rt.configure(4).unwrap_err();
        assert!(e.contains("missing field `min`"), "{e}");
        assert!(!rt.is_configured());
    }

    #[test]
    fn metadata_copies_text() {
        const T: &str = "name=x\nversion=1\n";
        let m: [u8; T.len()] = metadata(T);
        assert_eq!(&m, T.as_bytes());
    }
}
