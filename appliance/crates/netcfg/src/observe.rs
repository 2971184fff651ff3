//! Reads what exists in the kernel (and what the state file remembers) as [`Observed`]
//! objects for the plan: tungate's own objects, plus anyone's objects that share a key with
//! a desired one.
//!
//! Read-only: this module never changes the kernel or the state file.

use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;

use rtnetlink::Handle;

use crate::error::NetError;
use crate::kernel::{addresses, links, nft, routes, rules, sysctl};
use crate::model::{DesiredState, Item, LinkStateSpec, Role, SysctlSpec, TunnelSpec};
use crate::plan::Observed;
use crate::state_file::StateFile;

/// The state-file key of a setting (a sysctl or a foreign link's up/down state).
pub fn setting_key(item: &Item) -> Option<String> {
    match item {
        Item::Sysctl(s) => Some(format!("sysctl {}", s.path)),
        Item::LinkState(l) => Some(format!("link {}", l.name)),
        _ => None,
    }
}

/// Reads the kernel's side of everything `desired` is about.
pub async fn observe(
    handle: &Handle,
    desired: &DesiredState,
    state: &StateFile,
) -> Result<Vec<Observed>, NetError> {
    let wanted: HashSet<String> = desired.items.iter().map(Item::key).collect();
    let remembered = &state.originals.settings;
    let mut out = Vec::new();

    let link_list = links::list(handle).await?;
    let names: HashMap<u32, String> = link_list
        .iter()
        .map(|l| (l.index, l.name.clone()))
        .collect();
    let alias = desired.role.link_alias();
    let mut link_states: HashSet<String> = desired
        .items
        .iter()
        .filter_map(|i| match i {
            Item::LinkState(l) => Some(l.name.clone()),
            _ => None,
        })
        .collect();
    link_states.extend(
        remembered
            .keys()
            .filter_map(|k| k.strip_prefix("link "))
            .map(str::to_owned),
    );
    for link in &link_list {
        let owned = link.alias.as_deref() == Some(alias);
        let tunnel = Item::Tunnel(TunnelSpec {
            name: link.name.clone(),
            local: link.ipip.map_or(Ipv4Addr::UNSPECIFIED, |(l, _)| l),
            remote: link.ipip.map_or(Ipv4Addr::UNSPECIFIED, |(_, r)| r),
            mtu: link.mtu,
            up: link.up,
        });
        if owned || wanted.contains(&tunnel.key()) {
            out.push(Observed {
                item: tunnel,
                owned,
                handle: None,
            });
        }
        if link_states.contains(&link.name) {
            let item = Item::LinkState(LinkStateSpec {
                name: link.name.clone(),
                up: link.up,
            });
            let owned = setting_key(&item).is_some_and(|k| remembered.contains_key(&k));
            out.push(Observed {
                item,
                owned,
                handle: None,
            });
        }
    }

    for address in addresses::list(handle, &names).await? {
        let item = Item::Address(address.spec);
        if address.owned || wanted.contains(&item.key()) {
            out.push(Observed {
                item,
                owned: address.owned,
                handle: None,
            });
        }
    }
    for route in routes::list(handle, &names).await? {
        let item = Item::Route(route.spec);
        if route.owned || (!route.has_extras && wanted.contains(&item.key())) {
            out.push(Observed {
                item,
                owned: route.owned,
                handle: None,
            });
        }
    }
    for rule in rules::list(handle).await? {
        let item = Item::Rule(rule.spec);
        if rule.owned || wanted.contains(&item.key()) {
            out.push(Observed {
                item,
                owned: rule.owned,
                handle: None,
            });
        }
    }

    let mut sysctl_paths: Vec<String> = desired
        .items
        .iter()
        .filter_map(|i| match i {
            Item::Sysctl(s) => Some(s.path.clone()),
            _ => None,
        })
        .collect();
    sysctl_paths.extend(
        remembered
            .keys()
            .filter_map(|k| k.strip_prefix("sysctl "))
            .map(str::to_owned),
    );
    sysctl_paths.sort();
    sysctl_paths.dedup();
    for path in sysctl_paths {
        if let Some(value) = sysctl::read(&path)? {
            let item = Item::Sysctl(SysctlSpec { path, value });
            let owned = setting_key(&item).is_some_and(|k| remembered.contains_key(&k));
            out.push(Observed {
                item,
                owned,
                handle: None,
            });
        }
    }

    if desired.role == Role::RealServer
        && let Some(view) = nft::observe()?
    {
        out.push(Observed {
            item: Item::NftTable {
                chains: view.chains,
            },
            owned: true,
            handle: None,
        });
        for rule in view.rules {
            out.push(Observed {
                item: Item::NftRule {
                    comment: rule.comment,
                    chain: rule.chain,
                    spec: None,
                },
                owned: true,
                handle: Some(rule.handle),
            });
        }
    }
    Ok(out)
}
