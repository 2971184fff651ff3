//! Checks of a document against the host it is about to run on: the gateway address must
//! be one of this host's (in the current network namespace) and named interfaces must exist.
//!
//! These checks read the host's interface list; they never change anything.

use std::collections::HashSet;
use std::net::Ipv4Addr;

use super::model::Document;
use super::validate::{FieldError, Invalid};

/// The IPv4 addresses configured on this host's interfaces (in this network namespace).
pub(crate) fn local_ipv4_addresses() -> std::io::Result<HashSet<Ipv4Addr>> {
    let addrs = nix::ifaddrs::getifaddrs().map_err(std::io::Error::from)?;
    Ok(addrs
        .filter_map(|a| a.address)
        .filter_map(|s| s.as_sockaddr_in().map(|sin| sin.ip()))
        .collect())
}

/// Whether an interface of this name exists in this network namespace.
pub(crate) fn interface_exists(name: &str) -> bool {
    nix::net::if_::if_nametoindex(name).is_ok()
}

/// Checks the document against this host.
pub fn check_host(doc: &Document) -> Result<(), Invalid> {
    let mut problems = Vec::new();
    let gip = doc.gateway.address;
    match local_ipv4_addresses() {
        Ok(local) if !local.contains(&gip) => problems.push(FieldError {
            field: "gateway.address".into(),
            message: format!(
                "{gip} is not an address of this host; add it to an interface or give the \
                 address the real servers tunnel to"
            ),
        }),
        Ok(_) => {}
        Err(e) => problems.push(FieldError {
            field: "gateway.address".into(),
            message: format!("cannot list this host's addresses: {e}"),
        }),
    }
    for (field, value) in [
        ("gateway.egress_interface", &doc.gateway.egress_interface),
        ("gateway.ingress_interface", &doc.gateway.ingress_interface),
    ] {
        if let Some(name) = value
            && !interface_exists(name)
        {
            problems.push(FieldError {
                field: field.into(),
                message: format!("no interface named {name:?} on this host"),
            });
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Invalid(problems))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse_toml;

    #[test]
    fn loopback_is_local_and_a_documentation_address_is_not() {
        let ok =
            parse_toml("[gateway]\naddress = \"127.0.0.1\"\negress_interface = \"lo\"").unwrap();
        check_host(&ok).unwrap();
        let bad = parse_toml("[gateway]\naddress = \"203.0.113.77\"\negress_interface = \"nope0\"")
            .unwrap();
        let msg = check_host(&bad).unwrap_err().to_string();
        assert!(
            msg.contains("gateway.address: 203.0.113.77 is not an address of this host"),
            "{msg}"
        );
        assert!(
            msg.contains("gateway.egress_interface: no interface named \"nope0\""),
            "{msg}"
        );
    }
}
