//! The ingress interface's XDP state over rtnetlink: its name, which programs are attached
//! in which mode, and detaching a program that was attached through netlink (a leftover of
//! ours; a program held by a BPF link cannot be detached this way, the kernel says `EBUSY`).
//! This module never attaches anything.

use std::io;

use netlink_packet_core::{NLM_F_ACK, NLM_F_REQUEST, NetlinkMessage, NetlinkPayload};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::link::{LinkAttribute, LinkMessage, LinkXdp};
use netlink_sys::{Socket, protocols::NETLINK_ROUTE};

/// `XDP_FLAGS_SKB_MODE` (linux/if_link.h).
pub(crate) const FLAGS_SKB_MODE: u32 = 1 << 1;
/// `XDP_FLAGS_DRV_MODE`.
pub(crate) const FLAGS_DRV_MODE: u32 = 1 << 2;
/// `XDP_FLAGS_HW_MODE`.
pub(crate) const FLAGS_HW_MODE: u32 = 1 << 3;

/// One program attached to the interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Attached {
    /// The program's id.
    pub(crate) id: u32,
    /// The `XDP_FLAGS_*_MODE` flag of the mode it runs in.
    pub(crate) mode_flag: u32,
}

/// What rtnetlink says about the interface.
#[derive(Debug)]
pub(crate) struct LinkState {
    /// Its name.
    pub(crate) name: String,
    /// The XDP programs attached to it (one per mode at most).
    pub(crate) attached: Vec<Attached>,
}

/// Reads the interface's name and attached XDP programs.
pub(crate) fn query(ifindex: u32) -> io::Result<Option<LinkState>> {
    let mut msg = LinkMessage::default();
    msg.header.index = ifindex;
    let reply = match request(RouteNetlinkMessage::GetLink(msg), false) {
        Ok(r) => r,
        Err(e) if e.raw_os_error() == Some(libc::ENODEV) => return Ok(None),
        Err(e) => return Err(e),
    };
    let Some(RouteNetlinkMessage::NewLink(link)) = reply else {
        return Err(io::Error::other("no link in the reply to RTM_GETLINK"));
    };
    let mut state = LinkState {
        name: ifindex.to_string(),
        attached: Vec::new(),
    };
    for attribute in link.attributes {
        match attribute {
            LinkAttribute::IfName(name) => state.name = name,
            LinkAttribute::Xdp(xdp) => {
                for x in xdp {
                    let (id, mode_flag) = match x {
                        LinkXdp::DrvProgId(id) => (id, FLAGS_DRV_MODE),
                        LinkXdp::SkbProgId(id) => (id, FLAGS_SKB_MODE),
                        LinkXdp::HwProgId(id) => (id, FLAGS_HW_MODE),
                        _ => continue,
                    };
                    if id != 0 {
                        state.attached.push(Attached { id, mode_flag });
                    }
                }
            }
            _ => {}
        }
    }
    Ok(Some(state))
}

/// Detaches the program that netlink attached to the interface in the mode of `mode_flag`
/// (`ip link set dev DEV xdp off`).
pub(crate) fn detach(ifindex: u32, mode_flag: u32) -> io::Result<()> {
    let mut msg = LinkMessage::default();
    msg.header.index = ifindex;
    msg.attributes.push(LinkAttribute::Xdp(vec![
        LinkXdp::Fd(-1),
        LinkXdp::Flags(mode_flag),
    ]));
    request(RouteNetlinkMessage::SetLink(msg), true).map(|_| ())
}

/// The name of the loaded BPF program `id`: `None` when it is no longer loaded, an error
/// when the kernel will not say (listing programs needs CAP_SYS_ADMIN).
pub(crate) fn program_name(id: u32) -> io::Result<Option<String>> {
    for program in aya::programs::loaded_programs() {
        let program = program.map_err(io::Error::other)?;
        if program.id() == id {
            return Ok(Some(String::from_utf8_lossy(program.name()).into_owned()));
        }
    }
    Ok(None)
}

/// Sends one request on a fresh socket and returns its reply: the message, or `None` for an
/// acknowledgement (`ack`: the request asks for one).
fn request(message: RouteNetlinkMessage, ack: bool) -> io::Result<Option<RouteNetlinkMessage>> {
    let mut socket = Socket::new(NETLINK_ROUTE)?;
    socket.bind_auto()?;
    let mut nl = NetlinkMessage::from(message);
    nl.header.flags = NLM_F_REQUEST | if ack { NLM_F_ACK } else { 0 };
    nl.header.sequence_number = 1;
    nl.finalize();
    let mut out = vec![0; nl.buffer_len()];
    nl.serialize(&mut out);
    socket.send(&out, 0)?;
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let n = socket.recv(&mut &mut buffer[..], 0)?;
        let mut data = &buffer[..n.min(buffer.len())];
        while !data.is_empty() {
            let msg = NetlinkMessage::<RouteNetlinkMessage>::deserialize(data)
                .map_err(|e| io::Error::other(format!("undecodable netlink reply: {e}")))?;
            let len = (msg.header.length as usize).next_multiple_of(4);
            if msg.header.sequence_number == 1 {
                match msg.payload {
                    NetlinkPayload::InnerMessage(m) => return Ok(Some(m)),
                    NetlinkPayload::Error(e) => {
                        return match e.code {
                            None => Ok(None),
                            Some(code) => Err(io::Error::from_raw_os_error(-code.get())),
                        };
                    }
                    NetlinkPayload::Done(_) => return Ok(None),
                    _ => {}
                }
            }
            if len == 0 || len > data.len() {
                break;
            }
            data = &data[len..];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_has_a_name_and_no_program() {
        // Index 1 is the loopback of whatever namespace the test runs in.
        let lo = query(1).expect("RTM_GETLINK").expect("lo exists");
        assert_eq!(lo.name, "lo");
        assert!(lo.attached.is_empty(), "{lo:?}");
    }

    #[test]
    fn a_missing_interface_is_none() {
        assert!(query(999_999).expect("RTM_GETLINK").is_none());
    }
}
