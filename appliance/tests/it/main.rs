//! tungate's integration tests, one test binary (most need root): each module is one
//! area, its helpers come from `tungate-test-support`. One binary means one link of
//! wasmtime and the whole appliance instead of one per area; the tests of all areas share
//! the process, so those that measure it or run under wall-clock plugin deadlines take the
//! machine alone (`tungate_test_support::machine`).

/// Turns each named test function (taking the gateway's [`IoPath`]) into two tests,
/// `NAME::packet` and `NAME::xdp`, with the same assertions: every forwarding test runs on
/// both I/O paths.
///
/// [`IoPath`]: tungate_test_support::topology::IoPath
#[macro_export]
macro_rules! on_both_io_paths {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[test]
                fn packet() {
                    super::$name(tungate_test_support::topology::IoPath::Packet);
                }

                #[test]
                fn xdp() {
                    super::$name(tungate_test_support::topology::IoPath::Xdp);
                }
            }
        )*
    };
}

mod admin_api;
mod admin_hardening;
mod capture;
mod cli_output;
mod demo;
mod fence;
mod fleet_bgp;
mod fleet_etcd;
mod fleet_prometheus;
mod forwarding;
mod frag_needed;
mod hostile_plugins;
mod hostile_requests;
mod hostile_traffic;
mod ipv6;
mod loop_calls;
mod netcfg_dnat;
mod netcfg_gateway;
mod netcfg_reconcile;
mod netcfg_rs;
mod peers_alive;
mod plugin_cache;
mod plugins_datapath;
mod plugins_examples;
mod plugins_hot_swap;
mod readiness;
mod run_modes;
mod spoofed_peer;
mod state_crash;
mod tunnels;
mod worker_cpus;
mod worker_priority;
mod xdp_path;
