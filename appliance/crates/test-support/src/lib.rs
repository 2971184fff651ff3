//! The one harness of tungate's integration tests, examples and benchmarks (most need
//! root): network namespaces with unique names that are removed also when a test fails
//! ([`netns`]), the standard `rs` / `gw` / `client` topology ([`topology`]), AF_PACKET frame
//! sockets and a bulk sender inside a namespace ([`frames`], [`flood`]), an ICMP watcher
//! ([`icmp`]), a real etcd for the fleet tests ([`etcd`]), packet crafting with `etherparse`, independent of the code under test
//! ([`packets`]), a numbered reply stream ([`stream`]), the real `tungate` binary as a
//! process ([`process`]), the admin API over raw HTTP ([`http`], [`requests`]), plugin
//! modules ([`plugins`], [`hostile`]), the gateway in-process, wired like `tungate run`
//! ([`inproc`]), waits on observable state ([`wait`]), who has the machine when tests
//! share one process ([`machine`]), the fleet topology with BIRD and ECMP ([`fleet`]), and a real Prometheus ([`prometheus`]).
//!
//! Everything a test creates lives in namespaces it created; nothing here touches the
//! host's own interfaces, routes, rules, sysctls or nftables.

pub mod etcd;
pub mod fleet;
pub mod flood;
pub mod frames;
pub mod hostile;
pub mod http;
pub mod icmp;
pub mod inproc;
pub mod machine;
pub mod netns;
pub mod packets;
pub mod plugins;
pub mod process;
pub mod prometheus;
pub mod requests;
pub mod stream;
pub mod topology;
pub mod wait;
pub mod xsk;

pub use frames::FrameSocket;
pub use netns::Netns;
pub use process::Tungate;
pub use topology::Topology;
