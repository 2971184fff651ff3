//! tungate: the reply gateway (LD-OUT) of an LVS tunnelling cluster.
//!
//! Real servers send their replies (inner VIP->CIP) through IPIP tunnels (outer RIP->GIP)
//! to this gateway, which checks and decapsulates them, runs the VIP's Wasm plugins and
//! forwards the accepted inner packets to the clients. The modules:
//! - [`config`]: the declarative document and its validation;
//! - [`netcfg`]: tunnels, routes, rules, sysctls and nftables over netlink (gateway and RS);
//! - [`store`]: the state directory (accepted config, plugin modules, admin token);
//! - [`packet`]: pure header checks and decapsulation;
//! - [`datapath`]: the workers (AF_PACKET rings), sockets, tables and counters;
//! - [`daemon`]: `tungate run`;
//! - [`control`]: the control plane, the one writer of state (documents, plugins, filters);
//! - [`admin`]: the admin HTTP API, auth, `/metrics` and the embedded web UI;
//! - [`telemetry`]: every Prometheus metric, rendered at scrape time;
//! - [`plugin_host`]: the sandboxed Wasm plugins that judge each VIP's replies;
//! - [`api_client`]: a client of the admin API (for `status` and `demo`);
//! - [`status`]: `tungate status`, a summary of a running appliance;
//! - [`demo`]: `tungate demo`, the whole reply path in network namespaces on one host;
//! - [`cli`]: the command line, which dispatches to the modules below.

pub mod admin;
pub mod api_client;
pub mod cli;
pub mod config;
pub mod control;
pub mod daemon;
pub mod datapath;
pub mod demo;
pub mod netcfg;
pub mod packet;
pub mod plugin_host;
pub mod status;
pub mod store;
pub mod telemetry;

/// The exit status for a configuration or usage error.
pub const EXIT_BAD_CONFIG: i32 = 2;
