//! Resource edits on a configuration document: put or delete one peer or one VIP, and who
//! binds a plugin. Pure functions from a document to a new one; validation and applying
//! are the control plane's job, so an edit never touches state or the data path.

use std::net::IpAddr;

use super::error::{ControlError, ErrorCode};
use tungate_config::validate::binding_field;
use tungate_config::{Document, Peer, Vip};

/// The document with `peer` added, or replacing the peer of the same name in place.
pub(crate) fn put_peer(doc: &Document, peer: Peer) -> Document {
    let mut out = doc.clone();
    match out.peers.iter_mut().find(|p| p.name == peer.name) {
        Some(slot) => *slot = peer,
        None => out.peers.push(peer),
    }
    out
}

/// The document without peer `name`.
pub(crate) fn delete_peer(doc: &Document, name: &str) -> Result<Document, ControlError> {
    let mut out = doc.clone();
    let before = out.peers.len();
    out.peers.retain(|p| p.name != name);
    if out.peers.len() == before {
        return Err(no_peer(name));
    }
    Ok(out)
}

/// The not-found error for peer `name`.
pub fn no_peer(name: &str) -> ControlError {
    ControlError::new(
        ErrorCode::NotFound,
        format!("no peer named {name:?}; GET /api/v1/peers lists them"),
    )
}

/// The document with `vip` added, or replacing the entry of the same address in place.
pub(crate) fn put_vip(doc: &Document, vip: Vip) -> Document {
    let mut out = doc.clone();
    match out.vips.iter_mut().find(|v| v.address == vip.address) {
        Some(slot) => *slot = vip,
        None => out.vips.push(vip),
    }
    out
}

/// The document without the VIP entry `address` (and so without its chain).
pub(crate) fn delete_vip(doc: &Document, address: IpAddr) -> Result<Document, ControlError> {
    let mut out = doc.clone();
    let before = out.vips.len();
    out.vips.retain(|v| v.address != address);
    if out.vips.len() == before {
        return Err(no_vip(address));
    }
    Ok(out)
}

/// The not-found error for VIP `address`.
pub fn no_vip(address: IpAddr) -> ControlError {
    ControlError::new(
        ErrorCode::NotFound,
        format!("no VIP entry for {address}; GET /api/v1/vips lists them"),
    )
}

/// Every binding of `plugin`: (field path `vips[i].plugins[j]`, VIP, position).
pub fn bindings_of(doc: &Document, plugin: &str) -> Vec<(String, IpAddr, usize)> {
    let mut out = Vec::new();
    for (i, vip) in doc.vips.iter().enumerate() {
        for (j, b) in vip.plugins.iter().enumerate() {
            if b.plugin == plugin {
                out.push((binding_field(i, j), vip.address, j));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use tungate_config::parse_toml;

    fn doc() -> Document {
        parse_toml(
            r#"
            [gateway]
            address = "10.0.0.1"
            [[peers]]
            name = "a"
            address = "10.0.1.2"
            [[peers]]
            name = "b"
            address = "10.0.1.3"
            [[vips]]
            address = "192.0.2.1"
            [[vips.plugins]]
            plugin = "x"
            [[vips.plugins]]
            plugin = "y"
            [[vips]]
            address = "192.0.2.2"
            [[vips.plugins]]
            plugin = "y"
            "#,
        )
        .unwrap()
    }

    #[test]
    fn peers_are_replaced_in_place_or_appended_and_deleted() {
        let d = doc();
        let replaced = put_peer(
            &d,
            Peer {
                name: "a".into(),
                address: "10.0.1.9".parse().unwrap(),
                vips: vec![],
                silent_after: None,
                check_source_mac: false,
                tunnel: Default::default(),
                port: None,
                key: None,
            },
        );
        assert_eq!(replaced.peers.len(), 2);
        assert_eq!(replaced.peers[0].address, IpAddr::from([10, 0, 1, 9]));
        let added = put_peer(
            &d,
            Peer {
                name: "c".into(),
                address: "10.0.1.4".parse().unwrap(),
                vips: vec![],
                silent_after: None,
                check_source_mac: false,
                tunnel: Default::default(),
                port: None,
                key: None,
            },
        );
        assert_eq!(added.peers[2].name, "c");
        let gone = delete_peer(&d, "a").unwrap();
        assert_eq!(gone.peers.len(), 1);
        assert_eq!(gone.peers[0].name, "b");
        assert_eq!(delete_peer(&d, "zz").unwrap_err().code, ErrorCode::NotFound);
    }

    #[test]
    fn vips_are_replaced_or_appended_and_deleted_and_bindings_found() {
        let d = doc();
        let one: IpAddr = "192.0.2.1".parse().unwrap();
        let replaced = put_vip(
            &d,
            Vip {
                address: one,
                shared: false,
                plugins: vec![],
            },
        );
        assert!(replaced.vips[0].plugins.is_empty());
        assert_eq!(replaced.vips.len(), 2);
        let added = put_vip(
            &d,
            Vip {
                address: "192.0.2.3".parse().unwrap(),
                shared: false,
                plugins: vec![],
            },
        );
        assert_eq!(added.vips.len(), 3);
        assert_eq!(delete_vip(&d, one).unwrap().vips.len(), 1);
        assert_eq!(
            delete_vip(&d, "192.0.2.9".parse().unwrap())
                .unwrap_err()
                .code,
            ErrorCode::NotFound
        );
        let y: Vec<String> = bindings_of(&d, "y").into_iter().map(|b| b.0).collect();
        assert_eq!(y, ["vips[0].plugins[1]", "vips[1].plugins[0]"]);
        assert!(bindings_of(&d, "z").is_empty());
    }
}
