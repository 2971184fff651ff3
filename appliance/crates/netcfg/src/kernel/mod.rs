//! The kernel side: one file per kind of object, each reading that kind back and creating,
//! changing and deleting it (over rtnetlink, nftables netlink, or `/proc/sys`).
//!
//! Nothing here decides what should exist; the plan does.

pub mod addresses;
pub mod links;
pub mod nft;
pub mod routes;
pub mod rules;
pub mod sysctl;
