//! Sysctls, read and written as files under `/proc/sys` (never by running `sysctl`); a value
//! tungate changes on something it does not own is remembered in the state file first, and
//! put back when the setting is deleted.
//!
//! `/proc/sys/net` shows the values of the network namespace of the process that opened the
//! file, so these functions act on the caller's namespace.

use std::io::ErrorKind;
use std::path::PathBuf;

use crate::error::NetError;
use crate::model::SysctlSpec;
use crate::plan::Edit;
use crate::state_file::{StateFile, sysctl_key};

/// The root of the sysctl tree.
pub(crate) const PROC_SYS: &str = "/proc/sys";

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
pub(crate) fn read(path: &str) -> Result<Option<String>, NetError> {
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
pub(crate) fn write(path: &str, value: &str) -> Result<(), NetError> {
    std::fs::write(file(path), value).map_err(|source| NetError::Sysctl {
        key: dotted(path),
        verb: "write",
        path: file(path).display().to_string(),
        source,
    })
}

/// The device of a per-device sysctl (`net/ipv4/conf/<device>/...`), if it is one.
fn device_of(spec: &SysctlSpec) -> Option<&str> {
    let rest = spec.path.strip_prefix("net/ipv4/conf/")?;
    rest.split('/').next()
}

/// Whether writing `spec` over the value `now` must remember `now` first: not on a link
/// tungate creates (its settings go with it), and not when nothing changes.
fn must_remember(spec: &SysctlSpec, now: &str, own_links: &[&str]) -> bool {
    let on_own_link = device_of(spec).is_some_and(|d| own_links.contains(&d));
    !on_own_link && now != spec.value
}

/// Sets a sysctl (remembering the original value unless it is on one of `own_links`, the
/// links this desired state creates), or, for a deletion, puts the remembered original back
/// if the value is still the one tungate set.
pub(crate) fn apply(
    edit: &Edit<SysctlSpec>,
    own_links: &[&str],
    state: &mut StateFile,
) -> Result<(), NetError> {
    match edit {
        Edit::Create(spec) | Edit::Update { to: spec, .. } => {
            if let Some(now) = read(&spec.path)?
                && must_remember(spec, &now, own_links)
            {
                state.remember(&sysctl_key(&spec.path), &now, &spec.value);
                state.save()?;
            }
            write(&spec.path, &spec.value)
        }
        Edit::Delete(spec) => {
            let key = sysctl_key(&spec.path);
            if let Some(saved) = state.originals.settings.get(&key).cloned()
                && read(&spec.path)?.as_deref() == Some(saved.set.as_str())
            {
                write(&spec.path, &saved.original)?;
            }
            state.forget(&key);
            state.save()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn originals_are_remembered_only_off_own_links_and_on_a_real_change() {
        let on_tunnel = SysctlSpec::ipv4_conf("tg-rs1", "forwarding", "0");
        assert!(!must_remember(&on_tunnel, "1", &["tg-rs1"]));
        assert!(must_remember(&on_tunnel, "1", &["tg-rs2"]));
        let global = SysctlSpec::ipv4_conf("all", "arp_ignore", "1");
        assert!(must_remember(&global, "0", &["tg-rs1"]));
        assert!(!must_remember(&global, "1", &[]));
        let forward = SysctlSpec {
            path: "net/ipv4/ip_forward".into(),
            value: "1".into(),
        };
        assert_eq!(device_of(&forward), None);
        assert!(must_remember(&forward, "0", &["net"]));
    }

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
