//! Pure, allocation-free packet work: IPv4 and IPv6 header checks, decapsulation (IP in IP,
//! GUE, FOU, GRE, over either family), TTL
//! decrement and the virtio-net (offload) header that AF_PACKET puts in front of every frame.
//!
//! Everything here works on byte slices the caller owns and returns offsets, addresses or a
//! [`DropReason`]. This module must never do I/O, allocate, panic on any input, or know how
//! packets are received or sent: that is [`tungate_datapath`]'s job. Its functions are what
//! the fuzz targets and the table-driven tests exercise.

#![forbid(unsafe_code)]

mod decap;
mod drop_reason;
pub mod icmpv6;
pub mod ipv4;
pub mod ipv6;
mod tunnel;
pub mod vnet;

pub use decap::{Accepted, Directory, Inner, LinkLayer, Rejected, classify};
pub use drop_reason::DropReason;
pub use tunnel::Tunnel;
