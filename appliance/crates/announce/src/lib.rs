//! Fleet mode's routing side (`tungate run --fleet NAME`): every gateway of a fleet holds the
//! shared GIP and a routing daemon of the host (BIRD, `deploy/fleet/`) announces GIP/32 to
//! the upstream router only while tungate's **health link** is up.
//!
//! The health link ([`HealthLink`], `tg-health`) is a non-persistent TUN device this process
//! holds open: the kernel deletes it the instant the process ends, `kill -9` included, and
//! the routing daemon (which runs on its own, under its own systemd unit) sees the netlink
//! event at once and withdraws the route. While tungate runs, the [`Announcer`] thread keeps
//! the link up exactly while the gateway is ready (`/readyz`) and not draining; a drain
//! ([`AnnounceHandle::drain`]) sets it down, waits until the router has moved the traffic
//! (no packet received for a quiet period, bounded) and then asks the process to stop.
//!
//! This crate owns the device and that policy; it never touches packets, the configuration
//! or the routing daemon itself (it only speaks to it through the link's state).

mod follower;
mod health_link;

pub use follower::{
    AnnounceHandle, Announcement, Announcer, DRAIN_LIMIT, DRAIN_QUIET, DrainError, DrainReport,
    Link, RECHECK_INTERVAL, RETRY_INTERVAL, WITHDRAW_LIMIT,
};
pub use health_link::{HEALTH_DEVICE, HealthLink, LinkError};
