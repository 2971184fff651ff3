//! tungate's plugin SDK: the ABI definitions (v1 and v2) shared with the host, and the guest
//! API for writing a filtering plugin in Rust, which speaks ABI v2 (IPv4 and IPv6 packets).
//!
//! A plugin is one type implementing [`Plugin`] (a typed configuration and a per-packet
//! method) plus one [`export_plugin!`] line; the macro writes the wasm exports, the batch
//! loop and the ABI version marker:
//!
//! ```
//! use tungate_plugin_sdk::{Packet, Plugin, Setup, Verdict, export_plugin};
//!
//! /// Drops replies whose TTL is below a minimum.
//! pub struct MinTtl(u8);
//!
//! #[derive(serde::Deserialize)]
//! pub struct Config {
//!     min_ttl: u8,
//! }
//!
//! impl Plugin for MinTtl {
//!     type Config = Config;
//!     fn configure(config: Config, _setup: &mut Setup) -> Result<Self, String> {
//!         Ok(MinTtl(config.min_ttl))
//!     }
//!     fn on_packet(&mut self, packet: &Packet<'_>) -> Verdict {
//!         if packet.ttl() < self.0 { Verdict::Drop } else { Verdict::Pass }
//!     }
//! }
//!
//! export_plugin!(MinTtl);
//! ```
//!
//! Build it with `cargo build --release --target wasm32-unknown-unknown` (crate type
//! `cdylib`). On any other target the same code compiles natively against an in-process
//! host ([`native`]), so plugin logic is unit-tested with plain `cargo test`.
//!
//! The crate is `no_std` + `alloc`. It owns the ABI ([`abi`], written down in `ABI.md`) and
//! the guest side of it; it must never contain host-side policy.

#![no_std]

extern crate alloc;
#[cfg(not(target_arch = "wasm32"))]
extern crate std;

pub mod abi;
pub mod guest;
pub mod net;
pub mod packet;
pub mod plugin;
mod sys;

pub use abi::v2::PacketDesc;
pub use abi::{LogLevel, Verdict};
pub use net::{IpPrefix, Ipv4Prefix, Ipv6Prefix, PrefixMap};
pub use packet::{Packet, TcpFlags};
pub use plugin::{Counter, Plugin, Setup, configure_from_json, info, log, now_ns, warn};

/// Re-exported for the macro's use.
#[doc(hidden)]
pub use serde;

/// Writes the wasm exports of ABI v2 for a [`Plugin`] type (on `wasm32` only; elsewhere it
/// expands to nothing): `tungate_abi_v2`, `tungate_alloc`, `tungate_configure`,
/// `tungate_batch_area`, `tungate_filter`, and a `tungate.plugin` custom section with the
/// crate's name and version.
#[macro_export]
macro_rules! export_plugin {
    ($plugin:ty) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            use $crate::guest::{GuestCell, Runtime};

            static RUNTIME: GuestCell<Runtime<$plugin>> = GuestCell::new(Runtime::new());

            /// ABI version marker (never called).
            #[unsafe(no_mangle)]
            pub extern "C" fn tungate_abi_v2() {}

            /// The configure buffer.
            #[unsafe(no_mangle)]
            pub extern "C" fn tungate_alloc(size: i32) -> i32 {
                $crate::guest::export_alloc(&RUNTIME, size)
            }

            /// Configures the plugin.
            #[unsafe(no_mangle)]
            pub extern "C" fn tungate_configure(ptr: i32, len: i32) -> i32 {
                $crate::guest::export_configure(&RUNTIME, ptr, len)
            }

            /// The batch area's address.
            #[unsafe(no_mangle)]
            pub extern "C" fn tungate_batch_area() -> i32 {
                $crate::guest::export_batch_area()
            }

            /// Judges a batch.
            #[unsafe(no_mangle)]
            pub extern "C" fn tungate_filter(count: i32) {
                $crate::guest::export_filter(&RUNTIME, count)
            }

            const META: &str = concat!(
                "name=",
                env!("CARGO_PKG_NAME"),
                "\nversion=",
                env!("CARGO_PKG_VERSION"),
                "\n"
            );
            #[used]
            #[unsafe(link_section = "tungate.plugin")]
            static METADATA: [u8; META.len()] = $crate::guest::metadata(META);
        };
    };
}

/// The in-process host of native (non-wasm) builds, for unit tests: what the plugin code
/// on the current thread defined, counted and logged.
#[cfg(not(target_arch = "wasm32"))]
pub mod native {
    use alloc::string::String;
    use alloc::vec::Vec;

    use crate::abi::LogLevel;
    use crate::sys::HOST;

    /// Every counter defined on this thread: (name, label, value).
    pub fn counters() -> Vec<(String, String, u64)> {
        HOST.with_borrow(|h| h.counters.clone())
    }

    /// The value of one counter, if defined.
    pub fn counter(name: &str, label: &str) -> Option<u64> {
        HOST.with_borrow(|h| {
            h.counters
                .iter()
                .find(|(n, l, _)| n == name && l == label)
                .map(|c| c.2)
        })
    }

    /// The log lines so far (and forgets them).
    pub fn take_logs() -> Vec<(LogLevel, String)> {
        HOST.with_borrow_mut(|h| core::mem::take(&mut h.logs))
    }

    /// Asserts that each configuration (JSON) is refused with a reason containing the
    /// given text: the table-driven test every plugin wants for its bad configurations.
    #[track_caller]
    pub fn assert_refusals<P: crate::Plugin>(cases: &[(&[u8], &str)]) {
        for (json, want) in cases {
            let shown = String::from_utf8_lossy(json);
            match crate::configure_from_json::<P>(json) {
                Ok(_) => panic!("{shown}: accepted, expected a refusal containing {want:?}"),
                Err(e) => assert!(
                    e.contains(want),
                    "{shown}: refused with {e:?}, expected {want:?} in it"
                ),
            }
        }
    }

    /// The bytes of a reply `src` → `dst` (both of one family: an IPv4 or an IPv6 packet)
    /// with TTL/hop limit 64, `protocol` and, for TCP, UDP, UDP-Lite and SCTP, the ports
    /// (TCP: flags ACK), `len` bytes long in all (at least the headers): what a plugin's
    /// unit tests judge through [`crate::PacketDesc::parse`].
    ///
    /// # Panics
    ///
    /// If the two addresses are of different families.
    pub fn reply(
        src: core::net::IpAddr,
        dst: core::net::IpAddr,
        protocol: u8,
        ports: (u16, u16),
        len: usize,
    ) -> Vec<u8> {
        use core::net::IpAddr;
        let (mut p, l4) = match (src, dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                let mut p = alloc::vec![0u8; len.max(40)];
                p[0] = 0x45;
                p[2..4].copy_from_slice(&(len.max(40) as u16).to_be_bytes());
                p[8] = 64;
                p[9] = protocol;
                p[12..16].copy_from_slice(&s.octets());
                p[16..20].copy_from_slice(&d.octets());
                (p, 20)
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                let mut p = alloc::vec![0u8; len.max(60)];
                p[0] = 0x60;
                p[4..6].copy_from_slice(&((len.max(60) - 40) as u16).to_be_bytes());
                p[6] = protocol;
                p[7] = 64;
                p[8..24].copy_from_slice(&s.octets());
                p[24..40].copy_from_slice(&d.octets());
                (p, 40)
            }
            _ => panic!("reply: {src} and {dst} are of different families"),
        };
        if crate::abi::protocol::has_ports(protocol) {
            p[l4..l4 + 2].copy_from_slice(&ports.0.to_be_bytes());
            p[l4 + 2..l4 + 4].copy_from_slice(&ports.1.to_be_bytes());
        }
        if protocol == crate::abi::protocol::TCP {
            p[l4 + 12] = 0x50;
            p[l4 + 13] = 0x10;
        }
        p.truncate(len.max(l4 + 20));
        p
    }

    /// Forgets every counter and log line of this thread.
    pub fn reset() {
        HOST.with_borrow_mut(|h| *h = Default::default());
    }
}
