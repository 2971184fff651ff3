//! Sysctls, read and written as files under `/proc/sys` (never by running `sysctl`).
//!
//! `/proc/sys/net` shows the values of the network namespace of the process that opened the
//! file, so these functions act on the caller's namespace.

use std::io::ErrorKind;
use std::path::PathBuf;

use crate::error::NetError;
use crate::model::SysctlSpec;

/// The root of the sysctl tree.
pub const PROC_SYS: &str = "/proc/sys";

fn file(path: &str) -> PathBuf {
    PathBuf::from(PROC_SYS).join(path)
}

fn dotted(path: &str) -> String {
    SysctlSpec {
        path: path.to_owned(),
        value: String::new(),
    }
    .dotted()
}

/// The value at `path` (relative to `/proc/sys`), or `None` when it does not exist (e.g. a
/// per-device setting of a device that is not there).
pub fn read(path: &str) -> Result<Option<String>, NetError> {
    match std::fs::read_to_string(file(path)) {
        Ok(text) => Ok(Some(text.trim().to_owned())),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(source) => Err(NetError::Sysctl {
            key: dotted(path),
            verb: "read",
            path: file(path).display().to_string(),
            source,
        }),
    }
}

/// Writes `value` at `path` (relative to `/proc/sys`).
pub fn write(path: &str, value: &str) -> Result<(), NetError> {
    std::fs::write(file(path), value).map_err(|source| NetError::Sysctl {
        key: dotted(path),
        verb: "write",
        path: file(path).display().to_string(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_real_value_and_reports_absent_ones() {
        let lo_mtu_like = read("net/ipv4/conf/lo/forwarding").unwrap();
        assert!(matches!(lo_mtu_like.as_deref(), Some("0") | Some("1")));
        assert_eq!(read("net/ipv4/conf/no-such-dev0/forwarding").unwrap(), None);
        let err = write("net/ipv4/conf/no-such-dev0/forwarding", "0").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("sysctl net.ipv4.conf.no-such-dev0.forwarding: cannot write"),
            "{err}"
        );
    }
}
