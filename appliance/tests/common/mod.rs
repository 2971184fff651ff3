//! Shared helpers for tungate's integration tests (need root): network namespaces with
//! unique names that are removed also when a test fails, veth links, running code inside a
//! namespace on a dedicated thread (`setns`), raw frame sockets, packet crafting with
//! `etherparse` (independent of the code under test), and a `tungate` process started from
//! the real binary.
//!
//! Everything a test creates lives in namespaces it created; nothing here touches the
//! host's own interfaces, routes or nftables. Not every test uses every helper.
#![allow(dead_code)]

pub mod flood;
pub mod http;
pub mod icmp;
pub mod inproc;
pub mod net;
pub mod packets;
pub mod process;
pub mod requests;
pub mod stream;
pub mod wasm;

#[allow(unused_imports)]
pub use net::{FrameSocket, Netns, Topology};
#[allow(unused_imports)]
pub use process::Tungate;
