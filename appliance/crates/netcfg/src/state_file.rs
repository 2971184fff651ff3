//! The state file: the original values of settings tungate changed but does not own (sysctls
//! and the up/down state of links such as `tunl0`), so that `down` can put them back.
//!
//! One small JSON file per role, written atomically (a temporary file renamed over the old
//! one). The default places are [`default_path`]; `--state-file` overrides them. This module
//! never touches the kernel.

use std::collections::BTreeMap;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::NetError;
use crate::model::Role;

/// The directory of the default state files.
pub(crate) const STATE_DIR: &str = "/var/lib/tungate";

/// The default state file of `role`: `/var/lib/tungate/netcfg-gateway.json` or
/// `/var/lib/tungate/netcfg-rs.json`.
pub(crate) fn default_path(role: Role) -> PathBuf {
    Path::new(STATE_DIR).join(format!("netcfg-{}.json", role.as_str()))
}

/// How the key of a remembered sysctl starts (the rest is its path under `/proc/sys`).
pub(crate) const SYSCTL_KEY: &str = "sysctl ";
/// How the key of a remembered link state starts (the rest is the link's name).
pub(crate) const LINK_KEY: &str = "link ";

/// How the key of a fou/gue receive port tungate added starts (the rest is the port).
pub(crate) const FOU_KEY: &str = "fou ";

/// The key under which a fou/gue receive port that tungate added is remembered (its
/// original is `absent`: `down` deletes it): `fou PORT`, `fou PORT/ipv6` for an IPv6 one.
pub(crate) fn fou_key(port: &crate::model::FouPortSpec) -> String {
    format!("{FOU_KEY}{}", port.id())
}

/// The key under which the original value of the sysctl at `path` is remembered.
pub(crate) fn sysctl_key(path: &str) -> String {
    format!("{SYSCTL_KEY}{path}")
}

/// The key under which the original up/down state of link `name` is remembered.
pub(crate) fn link_key(name: &str) -> String {
    format!("{LINK_KEY}{name}")
}

/// What tungate found and what it set, for one setting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Remembered {
    /// The value before tungate first changed it.
    pub(crate) original: String,
    /// The value tungate set (restored only while the setting still has it).
    pub(crate) set: String,
}

/// The contents of a state file, keyed by [`sysctl_key`] (`sysctl net/ipv4/conf/all/arp_ignore`)
/// or [`link_key`] (`link tunl0`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Originals {
    /// Format version (1).
    pub(crate) version: u32,
    /// The remembered settings.
    pub(crate) settings: BTreeMap<String, Remembered>,
}

/// A state file on disk and its contents.
#[derive(Debug, Clone)]
pub(crate) struct StateFile {
    path: PathBuf,
    /// The contents (changes are written by [`StateFile::save`]).
    pub(crate) originals: Originals,
}

impl StateFile {
    /// Loads `path`; a missing file is an empty state.
    pub(crate) fn load(path: &Path) -> Result<Self, NetError> {
        let fail = |detail: String| NetError::StateFile {
            path: path.display().to_string(),
            detail,
        };
        let originals = match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| fail(format!("is not a tungate state file: {e}")))?,
            Err(e) if e.kind() == ErrorKind::NotFound => Originals {
                version: 1,
                ..Default::default()
            },
            Err(e) => return Err(fail(format!("cannot read: {e}"))),
        };
        Ok(Self {
            path: path.to_owned(),
            originals,
        })
    }

    /// Remembers that `key` had `original` and now gets `set`; an earlier original is kept
    /// (it is the value from before tungate).
    pub(crate) fn remember(&mut self, key: &str, original: &str, set: &str) {
        let entry = self
            .originals
            .settings
            .entry(key.to_owned())
            .or_insert_with(|| Remembered {
                original: original.to_owned(),
                set: set.to_owned(),
            });
        entry.set = set.to_owned();
    }

    /// Forgets `key` (after it was restored, or when there is nothing to restore).
    pub(crate) fn forget(&mut self, key: &str) {
        self.originals.settings.remove(key);
    }

    /// Writes the file atomically (or removes it when nothing is remembered).
    pub(crate) fn save(&self) -> Result<(), NetError> {
        let fail = |detail: String| NetError::StateFile {
            path: self.path.display().to_string(),
            detail,
        };
        if self.originals.settings.is_empty() {
            return match std::fs::remove_file(&self.path) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
                Err(e) => Err(fail(format!("cannot remove: {e}"))),
            };
        }
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| fail(format!("cannot create {}: {e}", dir.display())))?;
        }
        let mut text = serde_json::to_string_pretty(&self.originals)
            .map_err(|e| fail(format!("cannot serialise: {e}")))?;
        text.push('\n');
        let tmp = self.path.with_extension("json.tmp");
        std::fs::write(&tmp, text)
            .map_err(|e| fail(format!("cannot write {}: {e}", tmp.display())))?;
        std::fs::rename(&tmp, &self.path)
            .map_err(|e| fail(format!("cannot rename into place: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_the_first_original_and_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/state.json");
        let mut state = StateFile::load(&path).unwrap();
        assert!(state.originals.settings.is_empty());
        state.remember("sysctl a", "0", "1");
        state.remember("sysctl a", "1", "2");
        state.save().unwrap();
        let again = StateFile::load(&path).unwrap();
        assert_eq!(
            again.originals.settings["sysctl a"],
            Remembered {
                original: "0".into(),
                set: "2".into()
            }
        );
        let mut again = again;
        again.forget("sysctl a");
        again.save().unwrap();
        assert!(!path.exists(), "an empty state removes the file");
    }

    #[test]
    fn a_foreign_file_is_refused_with_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.json");
        std::fs::write(&path, "{\"hello\": 1}").unwrap();
        let err = StateFile::load(&path).unwrap_err().to_string();
        assert!(err.contains("x.json: is not a tungate state file"), "{err}");
        assert_eq!(
            default_path(Role::RealServer),
            Path::new("/var/lib/tungate/netcfg-rs.json")
        );
    }
}
