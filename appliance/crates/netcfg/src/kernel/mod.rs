//! The kernel side: one file per kind of object, each reading that kind back and creating,
//! changing and deleting it (over rtnetlink, nftables netlink, or `/proc/sys`), plus the
//! gateway's `userspace`-mode tunnel fence and its `kernel`-mode IPv6 forwarding guard.
//!
//! Nothing here decides what should exist: the plan does (and, for the fence, the control
//! plane, following the decap mode).

pub(crate) mod addresses;
pub(crate) mod fence;
pub(crate) mod fence6;
pub(crate) mod fou;
pub(crate) mod guard;
pub(crate) mod links;
pub(crate) mod nft;
pub(crate) mod routes;
pub(crate) mod rules;
pub(crate) mod sysctl;
