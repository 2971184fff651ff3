//! The architecture rule as a check: the packet work, the data path and the plugin host
//! never link an async runtime or the kernel-configuration stack. `cargo tree` lists each
//! crate's normal (non-dev) dependencies; any of tokio, axum, hyper or rtnetlink among them
//! fails the test with the path that pulls it in.

use std::path::Path;
use std::process::Command;

/// Crates that must stay free of the async side.
const CHECKED: [&str; 4] = [
    "tungate-packet",
    "tungate-datapath",
    "tungate-plugin-host",
    "tungate-token-bucket",
];
/// Packages none of them may depend on, directly or not.
const FORBIDDEN: [&str; 4] = ["tokio", "axum", "hyper", "rtnetlink"];

/// Each dependency path of `package` that reaches a forbidden package, as
/// `package -> … -> forbidden`.
fn forbidden_paths(package: &str) -> Vec<String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
    let output = Command::new(&cargo)
        .args([
            "tree",
            "--offline",
            "--edges",
            "normal",
            "--prefix",
            "depth",
        ])
        .args(["--format", "{p}", "--package", package, "--manifest-path"])
        .arg(&manifest)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cargo} tree: {e}"));
    assert!(
        output.status.success(),
        "cargo tree -p {package} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let tree = String::from_utf8(output.stdout).expect("cargo tree prints UTF-8");
    let mut path: Vec<&str> = Vec::new();
    let mut found = Vec::new();
    for line in tree.lines() {
        // "<depth><name> v<version> ...": the depth digits, then the package.
        let digits = line.bytes().take_while(u8::is_ascii_digit).count();
        let Ok(depth) = line[..digits].parse::<usize>() else {
            continue;
        };
        let name = line[digits..].split_whitespace().next().unwrap_or_default();
        path.truncate(depth);
        path.push(name);
        if FORBIDDEN.contains(&name) {
            found.push(path.join(" -> "));
        }
    }
    assert!(
        tree.lines()
            .next()
            .is_some_and(|l| l.starts_with(&format!("0{package} "))),
        "cargo tree printed no tree for {package}:\n{tree}"
    );
    found
}

#[test]
fn the_packet_side_links_no_async_runtime_or_netlink_stack() {
    let mut problems = Vec::new();
    for package in CHECKED {
        problems.extend(forbidden_paths(package));
    }
    assert!(
        problems.is_empty(),
        "these crates must not depend on {FORBIDDEN:?} (keep the async side in control, \
         netcfg, admin or api):\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_check_sees_a_forbidden_package_where_there_is_one() {
    // tungate-netcfg is built on rtnetlink and tokio: the same check must find them there,
    // or the test above proves nothing.
    let found = forbidden_paths("tungate-netcfg");
    for expected in ["tokio", "rtnetlink"] {
        assert!(
            found.iter().any(|p| p.ends_with(&format!("-> {expected}"))),
            "{expected} not found under tungate-netcfg: {found:?}"
        );
    }
}
