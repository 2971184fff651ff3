//! Whether the interfaces the gateway forwards on can carry packets: the ingress interface
//! (where the tunnelled replies arrive) and the egress interface (where the decapsulated
//! replies leave) must exist, be administratively up and have carrier (`IFF_LOWER_UP`).
//! A gateway whose link lost carrier cannot carry replies, so this is part of its readiness
//! (`/readyz`): in a fleet it withdraws GIP until the link returns.
//!
//! The reconciler ([`crate::Reconciler`]) already receives every link notification; it calls
//! [`check`] on each one and after each pass and publishes the outcome in
//! [`crate::ReconcileStatus::links_down`]. This module only reads links; it changes nothing.

use std::fmt;

use tungate_config::Document;

use crate::error::NetError;
use crate::kernel::links::{self, LinkView};

/// What an interface is to the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkRole {
    /// `gateway.ingress_interface` (or the interface holding GIP).
    Ingress,
    /// `gateway.egress_interface`.
    Egress,
    /// Both: the same interface is configured (or found) for both.
    IngressEgress,
}

impl fmt::Display for LinkRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LinkRole::Ingress => "ingress",
            LinkRole::Egress => "egress",
            LinkRole::IngressEgress => "ingress and egress",
        })
    }
}

/// Why an interface cannot carry packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkFault {
    /// No interface of that name exists.
    Missing,
    /// It is administratively down (`ip link set NAME down`).
    AdminDown,
    /// It is up but has no carrier (cable, peer or switch port down).
    NoCarrier,
}

/// One interface the gateway needs that cannot carry packets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkDown {
    /// What the interface is to the gateway.
    pub role: LinkRole,
    /// Its name.
    pub name: String,
    /// What is wrong with it.
    pub fault: LinkFault,
}

impl fmt::Display for LinkDown {
    /// E.g. `egress interface eth1 is down (no carrier)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.fault {
            LinkFault::Missing => "does not exist",
            LinkFault::AdminDown => "is down (administratively)",
            LinkFault::NoCarrier => "is down (no carrier)",
        };
        write!(f, "{} interface {} {what}", self.role, self.name)
    }
}

/// The interfaces a gateway running `doc` forwards on, each with its role: the ingress
/// interface (`gateway.ingress_interface`, else the one holding GIP, if any) and
/// `gateway.egress_interface` when set (without it the egress follows the routes, and no
/// one interface is needed).
pub(crate) fn watched(doc: &Document) -> Vec<(LinkRole, String)> {
    let ingress = tungate_config::host::ingress_interface(doc);
    let egress = doc.gateway.egress_interface.clone();
    match (ingress, egress) {
        (Some(i), Some(e)) if i == e => vec![(LinkRole::IngressEgress, i)],
        (i, e) => i
            .map(|i| (LinkRole::Ingress, i))
            .into_iter()
            .chain(e.map(|e| (LinkRole::Egress, e)))
            .collect(),
    }
}

/// The fault of `link`, if it cannot carry packets.
fn fault(link: Option<&LinkView>) -> Option<LinkFault> {
    match link {
        None => Some(LinkFault::Missing),
        Some(l) if !l.up => Some(LinkFault::AdminDown),
        Some(l) if !l.carrier => Some(LinkFault::NoCarrier),
        Some(_) => None,
    }
}

/// Which of `wanted` cannot carry packets, given the namespace's `links`.
fn faults(wanted: &[(LinkRole, String)], links: &[LinkView]) -> Vec<LinkDown> {
    wanted
        .iter()
        .filter_map(|(role, name)| {
            let fault = fault(links.iter().find(|l| &l.name == name))?;
            Some(LinkDown {
                role: *role,
                name: name.clone(),
                fault,
            })
        })
        .collect()
}

/// Reads the links of this network namespace and says which of `wanted` cannot carry
/// packets (empty: all can).
pub(crate) async fn check(
    handle: &rtnetlink::Handle,
    wanted: &[(LinkRole, String)],
) -> Result<Vec<LinkDown>, NetError> {
    if wanted.is_empty() {
        return Ok(Vec::new());
    }
    Ok(faults(wanted, &links::list(handle).await?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(name: &str, up: bool, carrier: bool) -> LinkView {
        LinkView {
            index: 7,
            name: name.into(),
            alias: None,
            up,
            carrier,
            mtu: Some(1500),
            tunnel: None,
        }
    }

    fn wanted() -> Vec<(LinkRole, String)> {
        vec![
            (LinkRole::Ingress, "eth0".into()),
            (LinkRole::Egress, "eth1".into()),
        ]
    }

    #[test]
    fn links_up_with_carrier_have_no_fault() {
        let links = [link("eth0", true, true), link("eth1", true, true)];
        assert_eq!(faults(&wanted(), &links), vec![]);
    }

    #[test]
    fn each_fault_is_named_with_the_role_and_the_interface() {
        let links = [link("eth0", false, false), link("eth1", true, false)];
        let down = faults(&wanted(), &links);
        let text: Vec<String> = down.iter().map(ToString::to_string).collect();
        assert_eq!(
            text,
            [
                "ingress interface eth0 is down (administratively)",
                "egress interface eth1 is down (no carrier)"
            ]
        );
        let missing = faults(&wanted(), &[link("eth0", true, true)]);
        assert_eq!(missing.len(), 1);
        assert_eq!(
            missing[0].to_string(),
            "egress interface eth1 does not exist"
        );
    }

    #[test]
    fn the_same_interface_for_both_roles_is_watched_once() {
        let doc = tungate_config::parse_toml(
            "[gateway]\naddress = \"10.0.0.1\"\ningress_interface = \"eth0\"\n\
             egress_interface = \"eth0\"\n",
        )
        .unwrap();
        assert_eq!(
            watched(&doc),
            vec![(LinkRole::IngressEgress, "eth0".to_owned())]
        );
        let doc = tungate_config::parse_toml(
            "[gateway]\naddress = \"10.0.0.1\"\ningress_interface = \"eth0\"\n\
             egress_interface = \"eth1\"\n",
        )
        .unwrap();
        assert_eq!(watched(&doc), wanted());
    }

    #[test]
    fn without_an_egress_interface_only_the_ingress_is_watched() {
        let doc = tungate_config::parse_toml(
            "[gateway]\naddress = \"10.0.0.1\"\ningress_interface = \"eth0\"\n",
        )
        .unwrap();
        assert_eq!(watched(&doc), vec![(LinkRole::Ingress, "eth0".to_owned())]);
    }
}
