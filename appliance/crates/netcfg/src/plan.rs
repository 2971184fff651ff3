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
use crate::model::{
    AddressSpec, DesiredState, Fence6Spec, FouPortSpec, FoundNftRule, GuardSpec, Item,
    LinkStateSpec, NftRuleItem, NftRuleSpec, NftTableSpec, RouteSpec, RuleSpec, SysctlSpec,
    TunnelSpec,
};

/// One object found in the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Observed {
    /// What it is.
    pub(crate) item: Item,
    /// Whether tungate created it (an ownership mark, or a setting in the state file).
    pub(crate) owned: bool,
}

/// Creating, changing or deleting one object of type `T`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Edit<T> {
    /// Create the object.
    Create(T),
    /// Change an existing object from `from` to `to` (same key).
    Update {
        /// What is there now.
        from: T,
        /// What it becomes.
        to: T,
    },
    /// Delete the object (for a remembered setting: restore its original value).
    Delete(T),
}

/// A change of a rule in tungate's nftables table. Rules read back from the kernel are
/// known by their handle, rules to add by what they do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum NftRuleChange {
    /// Append a rule.
    Add(NftRuleSpec),
    /// Delete a rule found in the kernel and append its replacement.
    Replace {
        /// The rule in the kernel.
        from: FoundNftRule,
        /// What replaces it.
        to: NftRuleSpec,
    },
    /// Delete a rule found in the kernel.
    Delete(FoundNftRule),
}

/// One change, by the kind of object it is about: each kind is carried out by its own
/// module under `kernel/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Change {
    /// A tunnel device tungate owns.
    Tunnel(Edit<TunnelSpec>),
    /// A fou/gue receive port tungate added.
    FouPort(Edit<FouPortSpec>),
    /// The up/down state of a link tungate does not own.
    LinkState(Edit<LinkStateSpec>),
    /// A sysctl value.
    Sysctl(Edit<SysctlSpec>),
    /// An address.
    Address(Edit<AddressSpec>),
    /// A route.
    Route(Edit<RouteSpec>),
    /// A policy routing rule.
    Rule(Edit<RuleSpec>),
    /// tungate's nftables table and its chains.
    NftTable(Edit<NftTableSpec>),
    /// A rule in tungate's nftables table.
    NftRule(NftRuleChange),
    /// The gateway's IPv6 forwarding guard (a table of its own).
    Guard(Edit<GuardSpec>),
    /// The real server's IPv6 tunnel fence (a table of its own).
    Fence6(Edit<Fence6Spec>),
}

/// A change described by the items it is about, before it is typed: what ordering and
/// printing work on.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ItemChange {
    Create(Item),
    Update { from: Item, to: Item },
    Delete(Item),
}

impl ItemChange {
    /// The object the change is about, as it will be (or, for a deletion, as it is).
    fn item(&self) -> &Item {
        match self {
            ItemChange::Create(item) | ItemChange::Update { to: item, .. } => item,
            ItemChange::Delete(item) => item,
        }
    }

    /// The typed change. Fails only for shapes that the diff never produces (an update
    /// between kinds, a desired rule to delete, a found rule to create): a bug.
    fn typed(self) -> Result<Change, NetError> {
        use ItemChange::{Create, Delete, Update};
        let change = match self {
            Create(Item::Tunnel(t)) => Change::Tunnel(Edit::Create(t)),
            Update {
                from: Item::Tunnel(from),
                to: Item::Tunnel(to),
            } => Change::Tunnel(Edit::Update { from, to }),
            Delete(Item::Tunnel(t)) => Change::Tunnel(Edit::Delete(t)),
            Create(Item::FouPort(p)) => Change::FouPort(Edit::Create(p)),
            Update {
                from: Item::FouPort(from),
                to: Item::FouPort(to),
            } => Change::FouPort(Edit::Update { from, to }),
            Delete(Item::FouPort(p)) => Change::FouPort(Edit::Delete(p)),
            Create(Item::LinkState(l)) => Change::LinkState(Edit::Create(l)),
            Update {
                from: Item::LinkState(from),
                to: Item::LinkState(to),
            } => Change::LinkState(Edit::Update { from, to }),
            Delete(Item::LinkState(l)) => Change::LinkState(Edit::Delete(l)),
            Create(Item::Sysctl(s)) => Change::Sysctl(Edit::Create(s)),
            Update {
                from: Item::Sysctl(from),
                to: Item::Sysctl(to),
            } => Change::Sysctl(Edit::Update { from, to }),
            Delete(Item::Sysctl(s)) => Change::Sysctl(Edit::Delete(s)),
            Create(Item::Address(a)) => Change::Address(Edit::Create(a)),
            Update {
                from: Item::Address(from),
                to: Item::Address(to),
            } => Change::Address(Edit::Update { from, to }),
            Delete(Item::Address(a)) => Change::Address(Edit::Delete(a)),
            Create(Item::Route(r)) => Change::Route(Edit::Create(r)),
            Update {
                from: Item::Route(from),
                to: Item::Route(to),
            } => Change::Route(Edit::Update { from, to }),
            Delete(Item::Route(r)) => Change::Route(Edit::Delete(r)),
            Create(Item::Rule(r)) => Change::Rule(Edit::Create(r)),
            Update {
                from: Item::Rule(from),
                to: Item::Rule(to),
            } => Change::Rule(Edit::Update { from, to }),
            Delete(Item::Rule(r)) => Change::Rule(Edit::Delete(r)),
            Create(Item::NftTable(t)) => Change::NftTable(Edit::Create(t)),
            Update {
                from: Item::NftTable(from),
                to: Item::NftTable(to),
            } => Change::NftTable(Edit::Update { from, to }),
            Delete(Item::NftTable(t)) => Change::NftTable(Edit::Delete(t)),
            Create(Item::Guard(g)) => Change::Guard(Edit::Create(g)),
            Update {
                from: Item::Guard(from),
                to: Item::Guard(to),
            } => Change::Guard(Edit::Update { from, to }),
            Delete(Item::Guard(g)) => Change::Guard(Edit::Delete(g)),
            Create(Item::Fence6(f)) => Change::Fence6(Edit::Create(f)),
            Update {
                from: Item::Fence6(from),
                to: Item::Fence6(to),
            } => Change::Fence6(Edit::Update { from, to }),
            Delete(Item::Fence6(f)) => Change::Fence6(Edit::Delete(f)),
            Create(Item::NftRule(NftRuleItem::Wanted(spec))) => {
                Change::NftRule(NftRuleChange::Add(spec))
            }
            Update {
                from: Item::NftRule(NftRuleItem::Found(from)),
                to: Item::NftRule(NftRuleItem::Wanted(to)),
            } => Change::NftRule(NftRuleChange::Replace { from, to }),
            Delete(Item::NftRule(NftRuleItem::Found(found))) => {
                Change::NftRule(NftRuleChange::Delete(found))
            }
            impossible => {
                return Err(NetError::Netlink {
                    action: format!("planning \"{impossible}\""),
                    detail: "tungate cannot make this change (a bug: please report it)".into(),
                });
            }
        };
        Ok(change)
    }
}

impl fmt::Display for ItemChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ItemChange::Create(item) => write!(f, "+ {item}"),
            ItemChange::Update { from, to } => write!(f, "~ {to} (was: {from})"),
            ItemChange::Delete(item) => match item {
                Item::Sysctl(_) | Item::LinkState(_) => write!(f, "- {item} (restore original)"),
                // The name is what identifies a link to delete (it may not even be ipip).
                Item::Tunnel(t) => write!(f, "- link {}", t.name),
                _ => write!(f, "- {item}"),
            },
        }
    }
}

impl<T: Clone> Edit<T> {
    fn items(&self, item: impl Fn(T) -> Item) -> ItemChange {
        match self {
            Edit::Create(t) => ItemChange::Create(item(t.clone())),
            Edit::Update { from, to } => ItemChange::Update {
                from: item(from.clone()),
                to: item(to.clone()),
            },
            Edit::Delete(t) => ItemChange::Delete(item(t.clone())),
        }
    }
}

impl Change {
    fn items(&self) -> ItemChange {
        match self {
            Change::Tunnel(edit) => edit.items(Item::Tunnel),
            Change::FouPort(edit) => edit.items(Item::FouPort),
            Change::LinkState(edit) => edit.items(Item::LinkState),
            Change::Sysctl(edit) => edit.items(Item::Sysctl),
            Change::Address(edit) => edit.items(Item::Address),
            Change::Route(edit) => edit.items(Item::Route),
            Change::Rule(edit) => edit.items(Item::Rule),
            Change::NftTable(edit) => edit.items(Item::NftTable),
            Change::Guard(edit) => edit.items(Item::Guard),
            Change::Fence6(edit) => edit.items(Item::Fence6),
            Change::NftRule(NftRuleChange::Add(spec)) => {
                ItemChange::Create(Item::nft_rule(spec.clone()))
            }
            Change::NftRule(NftRuleChange::Replace { from, to }) => ItemChange::Update {
                from: Item::NftRule(NftRuleItem::Found(from.clone())),
                to: Item::nft_rule(to.clone()),
            },
            Change::NftRule(NftRuleChange::Delete(found)) => {
                ItemChange::Delete(Item::NftRule(NftRuleItem::Found(found.clone())))
            }
        }
    }

    /// Whether the change deletes its object (or restores a setting).
    pub(crate) fn is_delete(&self) -> bool {
        matches!(self.items(), ItemChange::Delete(_))
    }

    /// The creation stage of the object the change is about (see [`Item::stage`]).
    pub(crate) fn stage(&self) -> u8 {
        self.items().item().stage()
    }
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.items().fmt(f)
    }
}

/// The changes that turn the kernel's state into the desired one, in execution order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Plan {
    /// The changes: deletions first (dependents before what they depend on), then creations
    /// and updates (links before what lives on them).
    pub(crate) changes: Vec<Change>,
}

impl Plan {
    /// Whether nothing would change.
    pub(crate) fn is_empty(&self) -> bool {
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
        Item::NftRule(_) => 0,
        Item::NftTable(_) | Item::Fence6(_) => 1,
        Item::Rule(_) => 2,
        Item::Route(_) => 3,
        Item::Address(_) => 4,
        Item::Tunnel(_) => 5,
        // After the tunnels it guards are gone.
        Item::Guard(_) => 6,
        Item::FouPort(_) => 7,
        Item::LinkState(_) => 8,
        Item::Sysctl(_) => 9,
    }
}

/// Compares `desired` with what was `observed` and lists the changes.
///
/// Fails with [`NetError::Conflict`] when an object tungate needs exists, is not tungate's,
/// and differs from what tungate needs.
pub(crate) fn diff(desired: &DesiredState, observed: &[Observed]) -> Result<Plan, NetError> {
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
            None => upserts.push(ItemChange::Create(item.clone())),
            Some(found) if found.item.same_content(item) => {}
            Some(found) if found.owned || is_setting(item) => upserts.push(ItemChange::Update {
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
    let mut deletes: Vec<ItemChange> = observed
        .iter()
        .filter(|o| o.owned && !wanted.contains(&o.item.key()))
        .map(|o| ItemChange::Delete(o.item.clone()))
        .collect();
    deletes.sort_by_key(|c| delete_rank(c.item()));
    deletes.dedup_by_key(|c| c.item().key());
    upserts.sort_by_key(|c| c.item().stage());
    deletes.extend(upserts);
    let changes = deletes
        .into_iter()
        .map(ItemChange::typed)
        .collect::<Result<_, _>>()?;
    Ok(Plan { changes })
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::model::{AddressSpec, Role, RouteSpec, SysctlSpec, TunnelSpec};

    fn route(device: &str) -> Item {
        Item::Route(RouteSpec {
            table: 1,
            destination: Ipv4Addr::UNSPECIFIED.into(),
            prefix: 0,
            device: device.into(),
        })
    }

    fn address(device: &str, last: u8) -> Item {
        Item::Address(AddressSpec {
            device: device.into(),
            address: Ipv4Addr::new(192, 0, 2, last).into(),
            prefix: 32,
        })
    }

    fn seen(item: Item, owned: bool) -> Observed {
        Observed { item, owned }
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
            encap: crate::model::TunnelEncap::Ipip,
            local: Ipv4Addr::new(10, 0, 1, 2).into(),
            remote: Ipv4Addr::new(10, 0, 0, 1).into(),
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

    #[test]
    fn nft_rules_are_added_by_what_they_do_and_deleted_by_their_handle() {
        let wanted = NftRuleSpec::MarkReply {
            from: Ipv4Addr::new(10, 88, 0, 2),
            from_port: 8080,
            protocol: crate::model::L4Protocol::Tcp,
            mark: 0x7467,
        };
        let stale = FoundNftRule {
            chain: "dnat".into(),
            handle: 7,
            comment: "tungate: dnat tcp 192.0.2.10:80 to 10.88.0.3:80".into(),
        };
        let plan = diff(
            &state(vec![Item::nft_rule(wanted.clone())]),
            &[seen(Item::NftRule(NftRuleItem::Found(stale.clone())), true)],
        )
        .unwrap();
        assert_eq!(
            plan.changes,
            [
                Change::NftRule(NftRuleChange::Delete(stale)),
                Change::NftRule(NftRuleChange::Add(wanted)),
            ]
        );
        assert_eq!(
            lines(&plan),
            [
                "- nft rule \"tungate: dnat tcp 192.0.2.10:80 to 10.88.0.3:80\"",
                "+ nft rule \"tungate: mark tcp replies from 10.88.0.2:8080 with 0x7467\"",
            ]
        );
    }

    #[test]
    fn every_kind_becomes_its_own_typed_change() {
        let plan = diff(
            &state(vec![
                route("tunl1"),
                address("lo", 10),
                Item::nft_table(&crate::model::NftChain::ALL),
            ]),
            &[seen(route("eth0"), true)],
        )
        .unwrap();
        let kinds: Vec<&str> = plan
            .changes
            .iter()
            .map(|c| match c {
                Change::Address(Edit::Create(_)) => "address create",
                Change::Route(Edit::Update { .. }) => "route update",
                Change::NftTable(Edit::Create(_)) => "nft table create",
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        assert_eq!(
            kinds,
            ["address create", "route update", "nft table create"]
        );
    }

    #[test]
    fn shapes_the_diff_never_makes_are_refused_as_bugs() {
        let found = Item::NftRule(NftRuleItem::Found(FoundNftRule {
            chain: "dnat".into(),
            handle: 1,
            comment: "x".into(),
        }));
        let err = ItemChange::Create(found).typed().unwrap_err().to_string();
        assert!(err.contains("a bug: please report it"), "{err}");
        let mixed = ItemChange::Update {
            from: route("tunl1"),
            to: address("lo", 1),
        };
        assert!(mixed.typed().is_err());
    }
}
