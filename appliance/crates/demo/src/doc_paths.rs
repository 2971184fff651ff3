//! The output folder of built plugins as the documents and scripts give it, held to
//! [`WORKSPACE_PLUGIN_DIR`]: the guides, the demo, CI and the image once named three
//! different folders. Test-only.

use std::path::PathBuf;

use crate::gateway::WORKSPACE_PLUGIN_DIR;

/// Every file that tells where built plugins land.
const FILES: &[&str] = &[
    "README.md",
    "plugins/README.md",
    "plugins/template/Cargo.toml",
    "plugin-sdk/GUIDE.md",
    "plugin-sdk/ABI.md",
    "deploy/INSTALL.md",
    "deploy/demo.sh",
    "deploy/ci/test-all.sh",
    "deploy/image/build.sh",
    "deploy/lab/run.sh",
    "deploy/systemd/syscalls.sh",
    "appliance/src/cli.rs",
];

/// The paths in `text` that name a wasm32 build output under a `target/` folder: from
/// `target/` to the end of the path (`target/X/wasm32-unknown-unknown/PROFILE...`).
fn output_paths(text: &str) -> Vec<&str> {
    let ends = |c: char| c.is_whitespace() || "`'\"),;]}".contains(c);
    let mut found = Vec::new();
    for (at, _) in text.match_indices("wasm32-unknown-unknown/") {
        let start = text[..at].rfind(ends).map_or(0, |i| i + 1);
        let end = text[at..].find(ends).map_or(text.len(), |i| at + i);
        let path = &text[start..end];
        if let Some(t) = path.find("target/") {
            found.push(&path[t..]);
        }
    }
    found
}

/// Whether `path` is in [`WORKSPACE_PLUGIN_DIR`] (the folder, or a file in it).
fn in_the_one_folder(path: &str) -> bool {
    path.strip_prefix(WORKSPACE_PLUGIN_DIR)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

#[test]
fn documents_and_scripts_name_one_output_folder_for_built_plugins() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../..");
    let mut problems = Vec::new();
    let mut seen = 0;
    for file in FILES {
        let text = std::fs::read_to_string(root.join(file))
            .unwrap_or_else(|e| panic!("cannot read {file}: {e}"));
        for path in output_paths(&text) {
            seen += 1;
            if !in_the_one_folder(path) {
                problems.push(format!("{file}: {path}"));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "built plugins land in {WORKSPACE_PLUGIN_DIR} (tungate_demo::WORKSPACE_PLUGIN_DIR); \
         these name another folder:\n{}",
        problems.join("\n")
    );
    assert!(seen >= 8, "only {seen} mentions found: is the scan broken?");
}

#[test]
fn the_scan_finds_other_folders() {
    let text = "built in `target/wasm32-unknown-unknown/release/`, or \
                @target/wasm-plugins/wasm32-unknown-unknown/plugin/x.wasm and \
                \"$ROOT/target/wasm-plugins/wasm32-unknown-unknown/plugin\"";
    let paths = output_paths(text);
    assert_eq!(
        paths,
        [
            "target/wasm32-unknown-unknown/release/",
            "target/wasm-plugins/wasm32-unknown-unknown/plugin/x.wasm",
            "target/wasm-plugins/wasm32-unknown-unknown/plugin",
        ]
    );
    assert!(!in_the_one_folder(paths[0]));
    assert!(in_the_one_folder(paths[1]) && in_the_one_folder(paths[2]));
    assert!(!in_the_one_folder(
        "target/wasm-plugins/wasm32-unknown-unknown/plugins"
    ));
}
