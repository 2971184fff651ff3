//! The sandbox limits as the documents state them (SECURITY.md, plugin-sdk/ABI.md,
//! plugin-sdk/GUIDE.md), checked against the constants of [`crate::engine`]: a constant
//! changed without its documents fails here, so each number lives in one place (the code)
//! and the documents are held to it. Test-only: nothing here runs in the gateway.

use std::path::PathBuf;

use crate::engine::*;

/// The workspace root (this crate is `appliance/crates/plugin-host`).
fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../..")
}

/// The cells of every Markdown table row of `file` whose first cell is `first`.
fn rows<'a>(text: &'a str, first: &str) -> Vec<Vec<&'a str>> {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix('|')?.strip_suffix('|'))
        .map(|l| l.split('|').map(str::trim).collect::<Vec<_>>())
        .filter(|cells| cells.first() == Some(&first))
        .collect()
}

/// `n` with `sep` between each group of three digits (`20,000`, `20 000`).
fn grouped(n: usize, sep: &str) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push_str(sep);
        }
        out.push(c);
    }
    out
}

/// Checks that the row of `file` whose first cell is `limit` has a second cell starting
/// with `expected`; returns the problem, if any.
fn check(file: &str, limit: &str, expected: &str) -> Option<String> {
    let text = std::fs::read_to_string(workspace().join(file))
        .unwrap_or_else(|e| panic!("cannot read {file}: {e}"));
    let found = rows(&text, limit);
    match found.as_slice() {
        [] => Some(format!("{file}: no table row for {limit:?}")),
        rows => rows.iter().find_map(|cells| {
            let cell = cells.get(1).copied().unwrap_or_default();
            (!cell.starts_with(expected))
                .then(|| format!("{file}: {limit:?} says {cell:?}, the code has {expected:?}"))
        }),
    }
}

#[test]
fn documents_state_the_limits_the_code_has() {
    let mib = |bytes: usize| format!("{} MiB", bytes >> 20);
    let kib = |bytes: usize| format!("{} KiB", bytes >> 10);
    let ms = |d: std::time::Duration| format!("{} ms", d.as_millis());
    let checks: Vec<(&str, &str, String)> = vec![
        // SECURITY.md, "The plugin sandbox".
        ("SECURITY.md", "module size", mib(MAX_MODULE_BYTES)),
        (
            "SECURITY.md",
            "functions defined by a module",
            grouped(MAX_FUNCTIONS as usize, " "),
        ),
        (
            "SECURITY.md",
            "linear memory per instance",
            mib(MEMORY_CAP_BYTES),
        ),
        (
            "SECURITY.md",
            "table elements",
            grouped(TABLE_ELEMENTS_CAP, " "),
        ),
        ("SECURITY.md", "wasm stack", kib(MAX_WASM_STACK_BYTES)),
        (
            "SECURITY.md",
            "one batch call (`tungate_filter`, ≤ 64 packets)",
            format!(
                "{} deadline (epoch interruption, {} tick)",
                ms(FILTER_DEADLINE),
                ms(EPOCH_TICK)
            ),
        ),
        (
            "SECURITY.md",
            "consecutive failing calls",
            QUARANTINE_AFTER.to_string(),
        ),
        (
            "SECURITY.md",
            "log lines per instance",
            format!("{LOG_LINES_PER_SECOND} per second, burst {LOG_BURST}"),
        ),
        (
            "SECURITY.md",
            "instance pool",
            format!("{MAX_INSTANCES} instances"),
        ),
        // plugin-sdk/ABI.md, "Limits and failure".
        (
            "plugin-sdk/ABI.md",
            "linear memory per instance",
            mib(MEMORY_CAP_BYTES),
        ),
        (
            "plugin-sdk/ABI.md",
            "instances in the pool (all generations)",
            MAX_INSTANCES.to_string(),
        ),
        (
            "plugin-sdk/ABI.md",
            "table elements",
            grouped(TABLE_ELEMENTS_CAP, ","),
        ),
        ("plugin-sdk/ABI.md", "wasm stack", kib(MAX_WASM_STACK_BYTES)),
        (
            "plugin-sdk/ABI.md",
            "filter call deadline",
            format!("{} ({} epoch ticks)", ms(FILTER_DEADLINE), ms(EPOCH_TICK)),
        ),
        (
            "plugin-sdk/ABI.md",
            "configure deadline",
            format!("{} s", CONFIGURE_DEADLINE.as_secs()),
        ),
        (
            "plugin-sdk/ABI.md",
            "consecutive failures before quarantine",
            QUARANTINE_AFTER.to_string(),
        ),
        // plugin-sdk/GUIDE.md, "Limits to design for".
        ("plugin-sdk/GUIDE.md", "module size", mib(MAX_MODULE_BYTES)),
    ];
    let problems: Vec<String> = checks
        .iter()
        .filter_map(|(file, limit, expected)| check(file, limit, expected))
        .collect();
    assert!(
        problems.is_empty(),
        "the documents disagree with appliance/crates/plugin-host/src/engine.rs:\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_checker_finds_a_wrong_number() {
    let table = "| limit | default |\n|---|---|\n| instance pool | 512 instances | x |\n";
    let found = rows(table, "instance pool");
    assert_eq!(found, vec![vec!["instance pool", "512 instances", "x"]]);
    assert!(!found[0][1].starts_with(&format!("{MAX_INSTANCES} instances")));
    assert_eq!(grouped(20_000, ","), "20,000");
    assert_eq!(grouped(4096, " "), "4 096");
    assert_eq!(grouped(512, " "), "512");
}
