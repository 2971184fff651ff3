//! The compiled-module cache across real restarts of `tungate run` (needs root): the first
//! start compiles the bound plugin and writes its entry in `<state>/compiled`, the next
//! start loads it instead of compiling, and a corrupted entry is refused, removed and the
//! module compiled again, with the plugin judging packets after every start.

use std::time::Duration;

use tungate_test_support::packets::{ethernet, ipip, udp};
use tungate_test_support::plugins;
use tungate_test_support::topology::{CIP, GIP, GW_RS_MAC, RIP, RS_MAC, VIP};
use tungate_test_support::{FrameSocket, Topology, Tungate};

const QUIET: Duration = Duration::from_millis(400);

/// The "plugin modules: …" line of a start's log.
fn cache_line(tg: &Tungate) -> String {
    tg.startup_log
        .lines()
        .find(|l| l.contains("plugin modules:"))
        .unwrap_or_else(|| panic!("no cache line in:\n{}", tg.startup_log))
        .to_owned()
}

/// The `.cwasm` entries in the state directory.
fn entries(tg: &Tungate) -> Vec<std::path::PathBuf> {
    let dir = tg.state_dir.join("compiled");
    let mut found: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .map(|e| e.path())
        .collect();
    found.sort();
    found
}

/// Sends `n` replies from the RS to the client; returns how many reached the client. The
/// binding denies the client's prefix: 0 means the plugin ran and dropped them (a plugin
/// that failed would apply `on_error = "pass"`).
fn delivered(t: &Topology, n: usize) -> usize {
    let rs = FrameSocket::open(&t.rs, "r0");
    let client = FrameSocket::open(&t.client, "c0");
    for i in 0..n {
        rs.send(&ethernet(
            GW_RS_MAC,
            RS_MAC,
            &ipip(RIP, GIP, &udp(VIP, CIP, 64, 20 + i)),
        ));
    }
    let to_client = |f: &[u8]| f.len() >= 34 && f[12..14] == [8, 0] && f[30..34] == CIP.octets();
    client.receive_for(QUIET, to_client).len()
}

#[test]
fn a_restart_loads_compiled_plugins_and_recompiles_a_corrupted_entry() {
    let t = Topology::new();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let module = dir.path().join("cidr-filter.wasm");
    std::fs::write(&module, plugins::plugin_wasm("cidr-filter")).unwrap();
    let config = format!(
        "{}[[vips]]\naddress = \"{VIP}\"\n[[vips.plugins]]\nplugin = \"cidr-filter\"\n\
         on_error = \"pass\"\nconfig = {{ deny = [\"{CIP}/32\"] }}\n",
        t.config("")
    );

    // First start: compiled, and its entry written.
    let tg = Tungate::start_in(
        &t.gw,
        &state,
        &config,
        &["--plugin", module.to_str().unwrap()],
    );
    let line = cache_line(&tg);
    assert!(
        line.contains("0 loaded compiled") && line.contains(" 1 compiled, 0 cache entries refused"),
        "{line}"
    );
    assert_eq!(delivered(&t, 3), 0, "the plugin drops the denied client");
    let written = entries(&tg);
    assert_eq!(written.len(), 1, "{written:?}");
    assert_eq!(tg.stop().0, 0);

    // Restart: loaded, not compiled.
    let tg = Tungate::start_in(&t.gw, &state, &config, &[]);
    let line = cache_line(&tg);
    assert!(
        line.contains("1 loaded compiled") && line.contains(" 0 compiled, 0 cache entries refused"),
        "{line}"
    );
    assert_eq!(
        delivered(&t, 3),
        0,
        "the loaded plugin drops the denied client"
    );
    assert_eq!(entries(&tg), written);
    assert_eq!(tg.stop().0, 0);

    // A corrupted entry: refused, removed, compiled again, written again.
    let mut bytes = std::fs::read(&written[0]).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x5a;
    std::fs::write(&written[0], &bytes).unwrap();
    let tg = Tungate::start_in(&t.gw, &state, &config, &[]);
    let line = cache_line(&tg);
    assert!(
        line.contains("0 loaded compiled") && line.contains(" 0 compiled, 1 cache entries refused"),
        "{line}"
    );
    assert_eq!(
        delivered(&t, 3),
        0,
        "the recompiled plugin drops the denied client"
    );
    assert_ne!(std::fs::read(&written[0]).unwrap(), bytes, "rewritten");
    assert_eq!(tg.stop().0, 0);

    // And loaded again on the next start.
    let tg = Tungate::start_in(&t.gw, &state, &config, &[]);
    assert!(
        cache_line(&tg).contains("1 loaded compiled"),
        "{}",
        tg.startup_log
    );
    assert_eq!(tg.stop().0, 0);
}
