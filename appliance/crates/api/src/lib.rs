//! The admin API from the outside, and the shapes both ends share.
//!
//! - [`wire`]: the bodies of `/api/v1/status` and `/api/v1/stats` — the admin server
//!   serialises exactly these types and every client deserialises them;
//! - [`client`]: an HTTP client of a running appliance;
//! - [`token`]: the one reader of admin token files;
//! - [`status`]: `tungate status`, a readable summary (its exit statuses included);
//! - [`capture`]: `tungate capture`, a capture of dropped packets into a pcapng file;
//! - [`drain`]: `tungate drain`, a fleet gateway's drain.
//!
//! Used by the CLI, `tungate demo` and the admin server (for [`wire`]). It never reaches
//! into a gateway other than through the API, and never depends on the server's crates.

pub mod capture;
pub mod client;
mod command;
pub mod drain;
pub mod status;
pub mod token;
pub mod wire;
