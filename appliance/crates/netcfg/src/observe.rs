//! Reads what exists in the kernel (and what the state file remembers) as [`Observed`]
//! objects for the plan: tungate's own objects, plus anyone's objects that share a key with
//! a desired one.
//!
//! Read-only: this module never changes the kernel or the state file.

use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;

use rtnetlink::Handle;

use crate::error::NetError;
use crate::kernel::{addresses, fence6, fou, guard, links, nft, routes, rules, sysctl};
use crate::model::{
    DesiredState, Item, LinkStateSpec, NftRuleItem, NftTableSpec, Role, SysctlSpec, TunnelEncap,
    TunnelSpec,
};
use crate::plan::Observed;
use crate::state_file::{FOU_KEY, LINK_KEY, SYSCTL_KEY, StateFile, fou_key, link_key, sysctl_key};

/// Reads the kernel's side of everything `desired` is about.
pub(crate) async fn observe(
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
            .filter_map(|k| k.strip_prefix(LINK_KEY))
            .map(str::to_owned),
    );
    for link in &link_list {
        let owned = link.alias.as_deref() == Some(alias);
        let (encap, local, remote) = link.tunnel.unwrap_or((
            TunnelEncap::Other,
            Ipv4Addr::UNSPECIFIED.into(),
            Ipv4Addr::UNSPECIFIED.into(),
        ));
        let tunnel = Item::Tunnel(TunnelSpec {
            name: link.name.clone(),
            encap,
            local,
            remote,
            mtu: link.mtu,
            up: link.up,
        });
        if owned || wanted.contains(&tunnel.key()) {
            out.push(Observed {
                item: tunnel,
                owned,
            });
        }
        if link_states.contains(&link.name) {
            let owned = remembered.contains_key(&link_key(&link.name));
            let item = Item::LinkState(LinkStateSpec {
                name: link.name.clone(),
                up: link.up,
            });
            out.push(Observed { item, owned });
        }
    }

    for address in addresses::list(handle, &names).await? {
        let item = Item::Address(address.spec);
        if address.owned || wanted.contains(&item.key()) {
            out.push(Observed {
                item,
                owned: address.owned,
            });
        }
    }
    for route in routes::list(handle, &names).await? {
        let item = Item::Route(route.spec);
        if route.owned || (!route.has_extras && wanted.contains(&item.key())) {
            out.push(Observed {
                item,
                owned: route.owned,
            });
        }
    }
    for rule in rules::list(handle).await? {
        let item = Item::Rule(rule.spec);
        if rule.owned || wanted.contains(&item.key()) {
            out.push(Observed {
                item,
                owned: rule.owned,
            });
        }
    }

    let wants_fou = desired.items.iter().any(|i| matches!(i, Item::FouPort(_)));
    if wants_fou || remembered.keys().any(|k| k.starts_with(FOU_KEY)) {
        for port in fou::list()? {
            let item = Item::FouPort(port);
            let owned = remembered.contains_key(&fou_key(&port));
            if owned || wanted.contains(&item.key()) {
                out.push(Observed { item, owned });
            }
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
            .filter_map(|k| k.strip_prefix(SYSCTL_KEY))
            .map(str::to_owned),
    );
    sysctl_paths.sort();
    sysctl_paths.dedup();
    for path in sysctl_paths {
        if let Some(value) = sysctl::read(&path)? {
            let owned = remembered.contains_key(&sysctl_key(&path));
            let item = Item::Sysctl(SysctlSpec { path, value });
            out.push(Observed { item, owned });
        }
    }

    // A kernel without nf_tables cannot hold a guard: only a wanted one makes that an error.
    let wants_guard = desired.items.iter().any(|i| matches!(i, Item::Guard(_)));
    let guard = match desired.role {
        Role::Gateway => {
            guard::observe().or_else(|e| if wants_guard { Err(e) } else { Ok(None) })?
        }
        Role::RealServer => None,
    };
    if let Some(spec) = guard {
        out.push(Observed {
            item: Item::Guard(spec),
            owned: true,
        });
    }

    // As for the guard: without nf_tables only a wanted IPv6 fence makes that an error.
    if desired.role == Role::RealServer {
        let wants_fence6 = desired.items.iter().any(|i| matches!(i, Item::Fence6(_)));
        if let Some(spec) =
            fence6::observe().or_else(|e| if wants_fence6 { Err(e) } else { Ok(None) })?
        {
            out.push(Observed {
                item: Item::Fence6(spec),
                owned: true,
            });
        }
    }

    if desired.role == Role::RealServer
        && let Some(view) = nft::observe()?
    {
        out.push(Observed {
            item: Item::NftTable(NftTableSpec {
                chains: view.chains,
            }),
            owned: true,
        });
        for rule in view.rules {
            out.push(Observed {
                item: Item::NftRule(NftRuleItem::Found(rule)),
                owned: true,
            });
        }
    }
    Ok(out)
}
