//! The configuration's revision: one number for the whole state (the document and the
//! stored plugins), raised by every change and kept in the state directory, so that a
//! writer can say which state its change was made against (`If-Match`) and a stale write
//! is refused instead of silently undoing someone else's.
//!
//! This module owns only the number, its `ETag` form and the `If-Match` test; the control
//! plane decides when it is raised, the store keeps it. (A fleet will take the revision
//! from etcd: this type is the one place that changes then.)

use std::fmt;

/// The revision of the whole configuration state; it only grows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Revision(u64);

impl Revision {
    /// The revision of a state that never changed (a fresh state directory).
    pub const ZERO: Revision = Revision(0);

    /// The revision numbered `n`.
    pub const fn new(n: u64) -> Revision {
        Revision(n)
    }

    /// Its number.
    pub fn number(self) -> u64 {
        self.0
    }

    /// The revision after this one.
    #[must_use]
    pub fn next(self) -> Revision {
        Revision(self.0.saturating_add(1))
    }

    /// As an HTTP entity tag, quoted: `"17"`.
    pub fn etag(self) -> String {
        format!("\"{}\"", self.0)
    }
}

impl fmt::Display for Revision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// An `If-Match` precondition (RFC 9110 §13.1.1): `*` or a list of entity tags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IfMatch {
    /// `*`: any current state will do.
    Any,
    /// The entity tags listed, as sent (quotes and `W/` included).
    Tags(Vec<String>),
}

impl IfMatch {
    /// Parses a header value. Never fails: a tag that is not one of ours simply never
    /// matches (the change is then refused as stale, which is what `If-Match` asks).
    pub fn parse(value: &str) -> IfMatch {
        if value.trim() == "*" {
            return IfMatch::Any;
        }
        IfMatch::Tags(
            value
                .split(',')
                .map(|t| t.trim().to_owned())
                .filter(|t| !t.is_empty())
                .collect(),
        )
    }

    /// Whether the state at `current` satisfies it (strong comparison: a weak `W/` tag
    /// never matches).
    pub fn admits(&self, current: Revision) -> bool {
        match self {
            IfMatch::Any => true,
            IfMatch::Tags(tags) => {
                let ours = current.etag();
                tags.contains(&ours)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etags_are_quoted_numbers_and_if_match_compares_strongly() {
        let r = Revision::new(17);
        assert_eq!(r.etag(), "\"17\"");
        assert_eq!(r.next(), Revision::new(18));
        assert!(IfMatch::parse("\"17\"").admits(r));
        assert!(IfMatch::parse(" \"3\", \"17\" ").admits(r));
        assert!(IfMatch::parse("*").admits(r));
        for stale in ["\"16\"", "W/\"17\"", "17", "", "\"017\"", "garbage"] {
            assert!(!IfMatch::parse(stale).admits(r), "{stale:?}");
        }
    }
}
