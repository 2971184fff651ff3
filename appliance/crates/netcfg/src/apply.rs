//! Carries out a [`Plan`]: each change through the kernel module of its kind, in order,
//! stopping at the first failure (the next apply continues from wherever the kernel is).
//!
//! New tunnels are created down and brought up only after their sysctls are set, so that a
//! tunnel never carries a packet with the kernel's default `forwarding`. Settings tungate
//! changes without owning them are remembered in the state file before they change.

use rtnetlink::Handle;

use crate::error::NetError;
use crate::kernel::{addresses, links, nft, routes, rules, sysctl};
use crate::model::{DesiredState, Item, SysctlSpec};
use crate::observe::setting_key;
use crate::plan::{Change, Plan};
use crate::state_file::StateFile;

/// The device of a per-device sysctl (`net/ipv4/conf/<device>/...`), if it is one.
fn sysctl_device(spec: &SysctlSpec) -> Option<&str> {
    let rest = spec.path.strip_prefix("net/ipv4/conf/")?;
    rest.split('/').next()
}

fn up_word(up: bool) -> &'static str {
    if up { "up" } else { "down" }
}

async fn link_is_up(handle: &Handle, name: &str) -> Result<Option<bool>, NetError> {
    Ok(links::list(handle)
        .await?
        .into_iter()
        .find(|l| l.name == name)
        .map(|l| l.up))
}

/// Executes `plan` for `desired`, keeping `state` (and its file) up to date; `on_done` hears
/// of each change once it is made (so a failure part-way still shows what was done).
pub async fn execute(
    handle: &Handle,
    plan: &Plan,
    desired: &DesiredState,
    state: &mut StateFile,
    on_done: &mut (dyn FnMut(&Change) + Send),
) -> Result<(), NetError> {
    let own_links = desired.tunnel_names();
    let alias = desired.role.link_alias();
    let mut to_bring_up: Vec<String> = Vec::new();
    for change in &plan.changes {
        if !matches!(change, Change::Delete { .. }) && change.item().stage() > 2 {
            for name in to_bring_up.drain(..) {
                links::set_up(handle, &name, true).await?;
            }
        }
        match change {
            Change::Create(Item::Tunnel(spec)) => {
                links::create_tunnel(handle, spec, alias).await?;
                if spec.up {
                    to_bring_up.push(spec.name.clone());
                }
            }
            Change::Update {
                from: Item::Tunnel(old),
                to: Item::Tunnel(new),
            } => {
                if old.local != new.local || old.remote != new.remote {
                    links::delete(handle, &old.name).await?;
                    links::create_tunnel(handle, new, alias).await?;
                } else if let Some(mtu) = new.mtu.filter(|m| old.mtu != Some(*m)) {
                    links::set_mtu(handle, &new.name, mtu).await?;
                }
                if new.up && !(old.up && old.local == new.local && old.remote == new.remote) {
                    to_bring_up.push(new.name.clone());
                } else if !new.up && old.up {
                    links::set_up(handle, &new.name, false).await?;
                }
            }
            Change::Delete {
                item: Item::Tunnel(spec),
                ..
            } => links::delete(handle, &spec.name).await?,

            Change::Create(Item::LinkState(spec))
            | Change::Update {
                to: Item::LinkState(spec),
                ..
            } => {
                let Some(now) = link_is_up(handle, &spec.name).await? else {
                    return Err(NetError::MissingInterface {
                        action: format!("setting link {} {}", spec.name, up_word(spec.up)),
                        interface: spec.name.clone(),
                        hint: if spec.name == "tunl0" {
                            " (tunl0 appears when the ipip module is loaded: load it)".into()
                        } else {
                            String::new()
                        },
                    });
                };
                if now != spec.up {
                    let key = setting_key(&Item::LinkState(spec.clone())).unwrap_or_default();
                    state.remember(&key, up_word(now), up_word(spec.up));
                    state.save()?;
                    links::set_up(handle, &spec.name, spec.up).await?;
                }
            }
            Change::Delete {
                item: Item::LinkState(spec),
                ..
            } => {
                let key = setting_key(&Item::LinkState(spec.clone())).unwrap_or_default();
                if let Some(saved) = state.originals.settings.get(&key).cloned() {
                    let now = link_is_up(handle, &spec.name).await?;
                    if now.map(up_word) == Some(saved.set.as_str()) && saved.original != saved.set {
                        links::set_up(handle, &spec.name, saved.original == "up").await?;
                    }
                }
                state.forget(&key);
                state.save()?;
            }

            Change::Create(Item::Sysctl(spec))
            | Change::Update {
                to: Item::Sysctl(spec),
                ..
            } => {
                let on_own_link = sysctl_device(spec).is_some_and(|d| own_links.contains(&d));
                if let Some(now) = sysctl::read(&spec.path)?
                    && !on_own_link
                    && now != spec.value
                {
                    let key = setting_key(&Item::Sysctl(spec.clone())).unwrap_or_default();
                    state.remember(&key, &now, &spec.value);
                    state.save()?;
                }
                sysctl::write(&spec.path, &spec.value)?;
            }
            Change::Delete {
                item: Item::Sysctl(spec),
                ..
            } => {
                let key = setting_key(&Item::Sysctl(spec.clone())).unwrap_or_default();
                if let Some(saved) = state.originals.settings.get(&key).cloned()
                    && sysctl::read(&spec.path)?.as_deref() == Some(saved.set.as_str())
                {
                    sysctl::write(&spec.path, &saved.original)?;
                }
                state.forget(&key);
                state.save()?;
            }

            Change::Create(Item::Address(spec)) => addresses::add(handle, spec).await?,
            Change::Delete {
                item: Item::Address(spec),
                ..
            } => addresses::delete(handle, spec).await?,

            Change::Create(Item::Route(spec)) => routes::add(handle, spec, false).await?,
            Change::Update {
                to: Item::Route(spec),
                ..
            } => routes::add(handle, spec, true).await?,
            Change::Delete {
                item: Item::Route(spec),
                ..
            } => routes::delete(handle, spec).await?,

            Change::Create(Item::Rule(spec)) => rules::add(handle, spec).await?,
            Change::Update {
                from: Item::Rule(old),
                to: Item::Rule(new),
            } => {
                rules::delete(handle, old).await?;
                rules::add(handle, new).await?;
            }
            Change::Delete {
                item: Item::Rule(spec),
                ..
            } => rules::delete(handle, spec).await?,

            Change::Create(Item::NftTable { .. })
            | Change::Update {
                to: Item::NftTable { .. },
                ..
            } => nft::ensure_table()?,
            Change::Delete {
                item: Item::NftTable { .. },
                ..
            } => nft::delete_table()?,
            Change::Create(Item::NftRule {
                spec: Some(spec), ..
            }) => nft::add_rule(spec)?,
            Change::Delete {
                item: Item::NftRule { comment, chain, .. },
                handle: Some(rule_handle),
            } => nft::delete_rule(chain, *rule_handle, comment)?,

            other => {
                return Err(NetError::Netlink {
                    action: format!("applying \"{other}\""),
                    detail: "tungate cannot make this change (a bug: please report it)".into(),
                });
            }
        }
        on_done(change);
    }
    for name in to_bring_up {
        links::set_up(handle, &name, true).await?;
    }
    Ok(())
}
