//! Where a fleet's data lives in etcd: everything under one prefix, `/tungate/<fleet>/`.
//!
//! ```text
//! /tungate/<fleet>/state/revision         {"by": member}: written by every change, so its
//!                                         mod revision is the fleet revision (the ETag)
//! /tungate/<fleet>/state/config           the fleet-wide document (JSON)
//! /tungate/<fleet>/state/plugins/<name>   a plugin's record and its module's chunk count
//! /tungate/<fleet>/modules/<sha256>/<i>   module bytes, chunk i (4 digits), ≤ 1 MiB each
//! /tungate/<fleet>/gateways/<member>      a gateway's registration, under its lease
//! ```
//! The state keys are small and change together in one transaction (a compare-and-swap on
//! the revision key); module chunks are content-addressed and written one request each
//! before the transaction that names them, so an 8 MiB module never meets etcd's 1.5 MiB
//! request limit nor a gRPC message limit. A module no plugin record references any more is
//! deleted (see the store's collection rules). This module only names keys.

/// The largest chunk of a module stored under one key.
pub(crate) const CHUNK_BYTES: usize = 1024 * 1024;

/// The keys of one fleet.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    root: String,
}

impl Layout {
    /// The layout of fleet `name`.
    pub(crate) fn new(name: &str) -> Layout {
        Layout {
            root: format!("/tungate/{name}/"),
        }
    }

    /// The prefix of the state (watched; read as one range).
    pub(crate) fn state(&self) -> String {
        format!("{}state/", self.root)
    }

    /// The revision key.
    pub(crate) fn revision(&self) -> String {
        format!("{}state/revision", self.root)
    }

    /// The document key.
    pub(crate) fn config(&self) -> String {
        format!("{}state/config", self.root)
    }

    /// The prefix of the plugin records.
    pub(crate) fn plugins(&self) -> String {
        format!("{}state/plugins/", self.root)
    }

    /// The record key of plugin `name`.
    pub(crate) fn plugin(&self, name: &str) -> String {
        format!("{}{name}", self.plugins())
    }

    /// The prefix of every chunk of the module with this sha256.
    pub(crate) fn module(&self, sha256: &str) -> String {
        format!("{}modules/{sha256}/", self.root)
    }

    /// Chunk `index` of the module with this sha256.
    pub(crate) fn chunk(&self, sha256: &str, index: usize) -> String {
        format!("{}{index:04}", self.module(sha256))
    }

    /// The prefix of the registrations.
    pub(crate) fn gateways(&self) -> String {
        format!("{}gateways/", self.root)
    }

    /// The registration key of `member`.
    pub(crate) fn gateway(&self, member: &str) -> String {
        format!("{}{member}", self.gateways())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_is_under_the_fleet_prefix_and_state_keys_under_the_watched_one() {
        let l = Layout::new("f1");
        for key in [l.revision(), l.config(), l.plugin("p")] {
            assert!(key.starts_with(&l.state()), "{key}");
        }
        for key in [l.chunk("ab", 3), l.gateway("gw1"), l.state()] {
            assert!(key.starts_with("/tungate/f1/"), "{key}");
        }
        assert_eq!(l.chunk("ab", 3), "/tungate/f1/modules/ab/0003");
        assert!(l.chunk("ab", 3).starts_with(&l.module("ab")));
        assert!(!l.chunk("abc", 3).starts_with(&l.module("ab")));
        assert!(!l.chunk("ab", 0).starts_with(&l.state()));
        assert!(!l.gateway("g").starts_with(&l.state()));
    }
}
