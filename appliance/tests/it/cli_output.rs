//! What the CLI writes when nobody reads it, or a file does: a closed pipe ends a command
//! that only prints quietly (SIGPIPE, the shell's status 141) instead of a panic with a
//! backtrace, and `tungate run`'s log carries no ANSI colour codes when stderr is a file
//! (journald and log files keep them as text).

use std::os::unix::process::ExitStatusExt as _;
use std::process::{Command, Stdio};
use std::time::Duration;

use tungate_test_support::plugins::plugin_wasm;
use tungate_test_support::process::binary;
use tungate_test_support::wait::until;
use tungate_test_support::{Netns, Topology};

/// Runs `tungate ARGS` with its standard output a pipe whose reading end is already closed
/// (as `tungate ARGS | head -1` after `head` has its line): (exit status, stderr).
fn with_closed_stdout(args: &[&str]) -> (std::process::ExitStatus, String) {
    let (reader, writer) = std::io::pipe().expect("a pipe");
    drop(reader);
    let out = Command::new(binary())
        .args(args)
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .expect("tungate runs");
    (
        out.status,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn commands_that_print_end_quietly_on_a_closed_pipe() {
    let dir = tempfile::tempdir().unwrap();
    let module = dir.path().join("cidr_filter.wasm");
    std::fs::write(&module, plugin_wasm("cidr-filter")).unwrap();
    let config = dir.path().join("tungate.toml");
    std::fs::write(
        &config,
        "[gateway]\naddress = \"192.0.2.1\"\n\n[[peers]]\nname = \"rs1\"\naddress = \"192.0.2.10\"\nvips = [\"198.51.100.80\"]\n",
    )
    .unwrap();
    // Both print to standard output when they succeed (with an open pipe, exit 0).
    let cases = [
        vec!["plugin", "check", module.to_str().unwrap()],
        vec!["config", "check", config.to_str().unwrap()],
    ];
    for args in &cases {
        let ok = Command::new(binary()).args(args).output().unwrap();
        assert!(ok.status.success(), "{args:?}: {ok:?}");
        assert!(!ok.stdout.is_empty(), "{args:?} prints");

        let (status, stderr) = with_closed_stdout(args);
        assert_eq!(
            status.signal(),
            Some(libc::SIGPIPE),
            "{args:?} ends by SIGPIPE (status {status:?}), stderr: {stderr}"
        );
        assert!(
            stderr.is_empty(),
            "{args:?} says nothing on a closed pipe: {stderr}"
        );
    }
}

#[test]
fn run_logs_without_colour_codes_when_stderr_is_a_file() {
    let t = Topology::new();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tungate.toml");
    std::fs::write(&config, t.config("")).unwrap();
    let log = dir.path().join("tungate.log");
    let mut child = spawn_run(&t.gw, &config, &dir.path().join("state"), &log);
    let read = || std::fs::read(&log).unwrap_or_default();
    until(Duration::from_secs(20), "tungate run forwards", || {
        String::from_utf8_lossy(&read()).contains("forwarding")
            || matches!(child.try_wait(), Ok(Some(_)))
    });
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = child.wait().unwrap();
    let text = read();
    assert!(
        status.success(),
        "tungate run: {status:?}\n{}",
        String::from_utf8_lossy(&text)
    );
    assert!(
        String::from_utf8_lossy(&text).contains("forwarding"),
        "{}",
        String::from_utf8_lossy(&text)
    );
    assert!(
        !text.contains(&0x1b),
        "no ESC byte in a log written to a file:\n{}",
        String::from_utf8_lossy(&text).escape_debug()
    );
}

/// `tungate run` in `ns` with stderr to `log`.
fn spawn_run(
    ns: &Netns,
    config: &std::path::Path,
    state_dir: &std::path::Path,
    log: &std::path::Path,
) -> std::process::Child {
    Command::new("ip")
        .args(["netns", "exec", &ns.name, &binary(), "run", "--config"])
        .arg(config)
        .arg("--state-dir")
        .arg(state_dir)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .expect("start tungate run")
}
