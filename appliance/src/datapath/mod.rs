//! The data path: io_uring workers that receive, check, decapsulate, filter and forward.
//!
//! It never runs tokio or axum code; the control side reaches it only through immutable
//! snapshots and [`filter::FilterSlots`], and reads its counters.

pub mod afpacket;
pub mod counters;
pub mod filter;
pub mod nftables;
pub mod resolver;
pub mod tables;
