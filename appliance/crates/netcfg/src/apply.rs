//! Carries out a [`Plan`]: each change through the `kernel` module of its kind of object, in
//! order, stopping at the first failure (the next apply continues from wherever the kernel
//! is).
//!
//! New tunnels are created down and brought up only after their sysctls are set, so that a
//! tunnel never carries a packet with the kernel's default `forwarding`: [`schedule`] (pure)
//! decides when. Settings tungate changes without owning them are remembered in the state
//! file before they change. This module decides nothing about what should exist (the plan
//! does) and builds no kernel message itself (the `kernel` modules do).

use rtnetlink::Handle;

use crate::error::NetError;
use crate::kernel::{addresses, fence6, fou, guard, links, nft, routes, rules, sysctl};
use crate::model::DesiredState;
use crate::plan::{Change, Plan};
use crate::state_file::StateFile;

/// The creation stage after which pending tunnels are brought up: their sysctls (stage 2)
/// are set, what lives on them (addresses, routes, rules) follows.
const LAST_STAGE_BEFORE_UP: u8 = 2;

/// One step of carrying out a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step<'a> {
    /// Make a change of the plan (and report it as done).
    Make(&'a Change),
    /// Bring up a tunnel that a change left down.
    BringUp(&'a str),
}

/// The steps of `plan`: its changes in order, with each tunnel that a change leaves down
/// brought up before the first creation or update past the sysctl stage (or at the end).
fn schedule(plan: &Plan) -> Vec<Step<'_>> {
    let mut steps = Vec::with_capacity(plan.changes.len());
    let mut pending: Vec<&str> = Vec::new();
    for change in &plan.changes {
        if !change.is_delete() && change.stage() > LAST_STAGE_BEFORE_UP {
            steps.extend(pending.drain(..).map(Step::BringUp));
        }
        steps.push(Step::Make(change));
        if let Change::Tunnel(edit) = change
            && let Some(name) = links::brought_up_later(edit)
        {
            pending.push(name);
        }
    }
    steps.extend(pending.into_iter().map(Step::BringUp));
    steps
}

/// Makes one change through the module of its kind of object.
async fn make(
    handle: &Handle,
    change: &Change,
    desired: &DesiredState,
    state: &mut StateFile,
) -> Result<(), NetError> {
    match change {
        Change::Tunnel(edit) => links::apply_tunnel(handle, edit, desired.role.link_alias()).await,
        Change::FouPort(edit) => fou::apply_port(edit, state),
        Change::LinkState(edit) => links::apply_link_state(handle, edit, state).await,
        Change::Sysctl(edit) => sysctl::apply(edit, &desired.tunnel_names(), state),
        Change::Address(edit) => addresses::apply(handle, edit).await,
        Change::Route(edit) => routes::apply(handle, edit).await,
        Change::Rule(edit) => rules::apply(handle, edit).await,
        Change::NftTable(edit) => nft::apply_table(edit),
        Change::NftRule(change) => nft::apply_rule(change),
        Change::Guard(edit) => guard::apply(edit),
        Change::Fence6(edit) => fence6::apply(edit),
    }
}

/// Executes `plan` for `desired`, keeping `state` (and its file) up to date; `on_done` hears
/// of each change once it is made (so a failure part-way still shows what was done).
pub(crate) async fn execute(
    handle: &Handle,
    plan: &Plan,
    desired: &DesiredState,
    state: &mut StateFile,
    on_done: &mut (dyn FnMut(&Change) + Send),
) -> Result<(), NetError> {
    for step in schedule(plan) {
        match step {
            Step::Make(change) => {
                make(handle, change, desired, state).await?;
                on_done(change);
            }
            Step::BringUp(name) => links::set_up(handle, name, true).await?,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::model::{AddressSpec, RouteSpec, SysctlSpec, TunnelSpec};
    use crate::plan::Edit;

    fn tunnel(name: &str, up: bool) -> TunnelSpec {
        TunnelSpec {
            name: name.into(),
            encap: crate::model::TunnelEncap::Ipip,
            local: Ipv4Addr::new(10, 0, 0, 1).into(),
            remote: Ipv4Addr::new(10, 0, 1, 2).into(),
            mtu: None,
            up,
        }
    }

    fn lines(plan: &Plan) -> Vec<String> {
        schedule(plan)
            .iter()
            .map(|step| match step {
                Step::Make(change) => change.to_string(),
                Step::BringUp(name) => format!("up {name}"),
            })
            .collect()
    }

    #[test]
    fn new_tunnels_come_up_after_their_sysctls_and_before_what_lives_on_them() {
        let plan = Plan {
            changes: vec![
                Change::Tunnel(Edit::Create(tunnel("tunl1", true))),
                Change::Tunnel(Edit::Create(tunnel("tunl2", false))),
                Change::Sysctl(Edit::Create(SysctlSpec::ipv4_conf(
                    "tunl1",
                    "rp_filter",
                    "0",
                ))),
                Change::Address(Edit::Create(AddressSpec {
                    device: "tunl1".into(),
                    address: Ipv4Addr::new(192, 0, 2, 10).into(),
                    prefix: 32,
                })),
                Change::Route(Edit::Create(RouteSpec {
                    table: 1,
                    destination: Ipv4Addr::UNSPECIFIED.into(),
                    prefix: 0,
                    device: "tunl1".into(),
                })),
            ],
        };
        assert_eq!(
            lines(&plan),
            [
                "+ link tunl1 ipip local 10.0.0.1 remote 10.0.1.2 up",
                "+ link tunl2 ipip local 10.0.0.1 remote 10.0.1.2 down",
                "+ sysctl net.ipv4.conf.tunl1.rp_filter = 0",
                "up tunl1",
                "+ address 192.0.2.10/32 dev tunl1",
                "+ route 0.0.0.0/0 dev tunl1 table 1",
            ]
        );
    }

    #[test]
    fn tunnels_with_nothing_after_them_come_up_at_the_end_and_deletions_wait_for_nothing() {
        let route = RouteSpec {
            table: 1,
            destination: Ipv4Addr::UNSPECIFIED.into(),
            prefix: 0,
            device: "tg-old".into(),
        };
        let plan = Plan {
            changes: vec![
                Change::Route(Edit::Delete(route)),
                Change::Tunnel(Edit::Update {
                    from: tunnel("tg-rs1", false),
                    to: tunnel("tg-rs1", true),
                }),
                Change::Sysctl(Edit::Update {
                    from: SysctlSpec::ipv4_conf("tg-rs1", "forwarding", "1"),
                    to: SysctlSpec::ipv4_conf("tg-rs1", "forwarding", "0"),
                }),
            ],
        };
        assert_eq!(
            lines(&plan),
            [
                "- route 0.0.0.0/0 dev tg-old table 1",
                "~ link tg-rs1 ipip local 10.0.0.1 remote 10.0.1.2 up (was: link tg-rs1 ipip \
                 local 10.0.0.1 remote 10.0.1.2 down)",
                "~ sysctl net.ipv4.conf.tg-rs1.forwarding = 0 (was: sysctl \
                 net.ipv4.conf.tg-rs1.forwarding = 1)",
                "up tg-rs1",
            ]
        );
    }
}
