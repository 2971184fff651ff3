//! The diff between what should exist and what does: a [`Plan`] of create / update /
//! delete changes, one line each, in the order they must run.
//!
//! Pure logic: this module never reads or changes the kernel. Ownership decides what may be
//! changed or deleted: tungate deletes only objects it owns, updates settings it remembers,
//! and refuses (a conflict) to take over someone else's object that differs from what it
//! needs. A foreign object identical to the desired one is left alone and counts as done.

use std::collections::{HashMap, HashSet};
use std::fmt;

use crate::error::NetError;
use crate::model::{DesiredState, Item};

/// One object found in the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    /// What it is.
    pub item: Item,
    /// Whether tungate created it (an ownership mark, or a setting in the state file).
    pub owned: bool,
    /// A kernel handle needed to delete it (nftables rules), if any.
    pub handle: Option<u64>,
}

/// One change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Create the object.
    Create(Item),
    /// Change an existing object from `from` to `to` (same key).
    Update {
        /// What is there now.
        from: Item,
        /// What it becomes.
        to: Item,
    },
    /// Delete the object (for a remembered setting: restore its original value).
    Delete {
        /// What is there now.
        item: Item,
        /// Its kernel handle, if it needs one.
        handle: Option<u64>,
    },
}

impl Change {
    /// The object the change is about, as it will be (or, for a deletion, as it is).
    pub fn item(&self) -> &Item {
        match self {
            Change::Create(item) | Change::Update { to: item, .. } => item,
            Change::Delete { item, .. } => item,
        }
    }
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Change::Create(item) => write!(f, "+ {item}"),
            Change::Update { from, to } => write!(f, "~ {to} (was: {from})"),
            Change::Delete { item, .. } => match item {
                Item::Sysctl(_) | Item::LinkState(_) => write!(f, "- {item} (restore original)"),
                // The name is what identifies a link to delete (it may not even be ipip).
                Item::Tunnel(t) => write!(f, "- link {}", t.name),
                _ => write!(f, "- {item}"),
            },
        }
    }
}

/// The changes that turn the kernel's state into the desired one, in execution order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// The changes: deletions first (dependents before what they depend on), then creations
    /// and updates (links before what lives on them).
    pub changes: Vec<Change>,
}

impl Plan {
    /// Whether nothing would change.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for change in &self.changes {
            writeln!(f, "{change}")?;
        }
        Ok(())
    }
}

/// Settings tungate changes without owning the object: they may be updated whoever set them.
fn is_setting(item: &Item) -> bool {
    matches!(item, Item::Sysctl(_) | Item::LinkState(_))
}

/// The order of deletions: rules before routes before addresses before links, and settings
/// restored last (after the links whose per-device settings vanish with them).
fn delete_rank(item: &Item) -> u8 {
    match item {
        Item::NftRule { .. } => 0,
        Item::NftTable { .. } => 1,
        Item::Rule(_) => 2,
        Item::Route(_) => 3,
        Item::Address(_) => 4,
        Item::Tunnel(_) => 5,
        Item::LinkState(_) => 6,
        Item::Sysctl(_) => 7,
    }
}

/// Compares `desired` with what was `observed` and lists the changes.
///
/// Fails with [`NetError::Conflict`] when an object tungate needs exists, is not tungate's,
/// and differs from what tungate needs.
pub fn diff(desired: &DesiredState, observed: &[Observed]) -> Result<Plan, NetError> {
    let mut by_key: HashMap<String, &Observed> = HashMap::new();
    for o in observed {
        // Prefer tungate's own object when the kernel holds several with one key.
        let key = o.item.key();
        match by_key.get(&key) {
            Some(existing) if existing.owned || !o.owned => {}
            _ => {
                by_key.insert(key, o);
            }
        }
    }
    let mut wanted = HashSet::new();
    let mut upserts = Vec::new();
    for item in &desired.items {
        let key = item.key();
        if !wanted.insert(key.clone()) {
            continue;
        }
        match by_key.get(&key) {
            None => upserts.push(Change::Create(item.clone())),
            Some(found) if found.item.same_content(item) => {}
            Some(found) if found.owned || is_setting(item) => upserts.push(Change::Update {
                from: found.item.clone(),
                to: item.clone(),
            }),
            Some(found) => {
                return Err(NetError::Conflict {
                    key,
                    found: found.item.to_string(),
                });
            }
        }
    }
    let mut deletes: Vec<Change> = observed
        .iter()
        .filter(|o| o.owned && !wanted.contains(&o.item.key()))
        .map(|o| Change::Delete {
            item: o.item.clone(),
            handle: o.handle,
        })
        .collect();
    deletes.sort_by_key(|c| delete_rank(c.item()));
    deletes.dedup_by_key(|c| c.item().key());
    upserts.sort_by_key(|c| c.item().stage());
    deletes.extend(upserts);
    Ok(Plan { changes: deletes })
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::model::{AddressSpec, Role, RouteSpec, SysctlSpec, TunnelSpec};

    fn route(device: &str) -> Item {
        Item::Route(RouteSpec {
            table: 1,
            destination: Ipv4Addr::UNSPECIFIED,
            prefix: 0,
            device: device.into(),
        })
    }

    fn address(device: &str, last: u8) -> Item {
        Item::Address(AddressSpec {
            device: device.into(),
            address: Ipv4Addr::new(192, 0, 2, last),
            prefix: 32,
        })
    }

    fn seen(item: Item, owned: bool) -> Observed {
        Observed {
            item,
            owned,
            handle: None,
        }
    }

    fn state(items: Vec<Item>) -> DesiredState {
        DesiredState {
            role: Role::RealServer,
            items,
        }
    }

    fn lines(plan: &Plan) -> Vec<String> {
        plan.changes.iter().map(|c| c.to_string()).collect()
    }

    #[test]
    fn missing_objects_are_created_in_dependency_order() {
        let tunnel = Item::Tunnel(TunnelSpec {
            name: "tunl1".into(),
            local: Ipv4Addr::new(10, 0, 1, 2),
            remote: Ipv4Addr::new(10, 0, 0, 1),
            mtu: None,
            up: true,
        });
        let plan = diff(&state(vec![route("tunl1"), tunnel]), &[]).unwrap();
        assert_eq!(
            lines(&plan),
            [
                "+ link tunl1 ipip local 10.0.1.2 remote 10.0.0.1 up",
                "+ route 0.0.0.0/0 dev tunl1 table 1",
            ]
        );
    }

    #[test]
    fn equal_objects_need_nothing_whoever_owns_them() {
        let plan = diff(
            &state(vec![route("tunl1"), address("lo", 10)]),
            &[seen(route("tunl1"), true), seen(address("lo", 10), false)],
        )
        .unwrap();
        assert!(plan.is_empty(), "{plan}");
    }

    #[test]
    fn owned_objects_are_updated_and_foreign_ones_conflict() {
        let plan = diff(&state(vec![route("tunl1")]), &[seen(route("eth0"), true)]).unwrap();
        assert_eq!(
            lines(&plan),
            ["~ route 0.0.0.0/0 dev tunl1 table 1 (was: route 0.0.0.0/0 dev eth0 table 1)"]
        );
        let err = diff(&state(vec![route("tunl1")]), &[seen(route("eth0"), false)])
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "route 0.0.0.0/0 table 1 exists but was not created by tungate and differs (route \
             0.0.0.0/0 dev eth0 table 1); remove it or change the configuration so that \
             tungate does not need it"
        );
    }

    #[test]
    fn only_owned_leftovers_are_deleted_and_settings_restored_last() {
        let sysctl = Item::Sysctl(SysctlSpec {
            path: "net/ipv4/conf/all/arp_ignore".into(),
            value: "1".into(),
        });
        let plan = diff(
            &state(vec![]),
            &[
                seen(sysctl, true),
                seen(address("lo", 10), true),
                seen(address("lo", 11), false),
                seen(route("tunl1"), true),
            ],
        )
        .unwrap();
        assert_eq!(
            lines(&plan),
            [
                "- route 0.0.0.0/0 dev tunl1 table 1",
                "- address 192.0.2.10/32 dev lo",
                "- sysctl net.ipv4.conf.all.arp_ignore = 1 (restore original)",
            ]
        );
    }

    #[test]
    fn a_foreign_setting_is_updated_not_refused() {
        let want = Item::Sysctl(SysctlSpec {
            path: "net/ipv4/conf/all/arp_announce".into(),
            value: "2".into(),
        });
        let have = Item::Sysctl(SysctlSpec {
            path: "net/ipv4/conf/all/arp_announce".into(),
            value: "0".into(),
        });
        let plan = diff(&state(vec![want]), &[seen(have, false)]).unwrap();
        assert_eq!(
            lines(&plan),
            [
                "~ sysctl net.ipv4.conf.all.arp_announce = 2 (was: sysctl net.ipv4.conf.all.arp_announce = 0)"
            ]
        );
    }
}
