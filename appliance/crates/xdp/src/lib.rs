//! The XDP pre-filter on the ingress interface and its loader.
//!
//! The program (`bpf/ingress.bpf.c`, built into the committed `bpf/ingress.bpf.o` by
//! `bpf/build.sh`) runs on every frame the ingress interface receives: the host's own traffic
//! (anything but IPv4 or IPv6 carrying IPIP, IPv6, GRE, or UDP to the gateway on a configured
//! GUE/FOU port; in IPv6 behind a bounded walk of extension headers) passes to the kernel
//! untouched; tunnel frames failing the outer checks or not matching
//! their peer's configured tunnel are dropped and counted under the names of [`tungate_packet::DropReason`];
//! valid ones are redirected to the AF_XDP socket bound to their receive queue.
//!
//! [`IngressFilter`] loads it, attaches it through a BPF link (gone when the process dies, kill
//! -9 included), refuses to replace another tool's XDP program, and keeps its maps (peers,
//! gateway addresses, sockets, counters) up to date without reloading. This crate never opens
//! AF_XDP sockets nor touches packets itself: the data path binds its sockets here.

mod counters;
mod error;
mod filter;
mod interface;
mod program;
mod sys;

pub use counters::XdpCounters;
pub use error::XdpError;
pub use filter::{IngressFilter, XdpMode};
pub use program::{
    MAX_EXTENSION_HEADERS, MAX_PEERS, MAX_QUEUES, MAX_REDIRECT_FRAME, MAX_UDP_PORTS, PROGRAM_NAME,
};
