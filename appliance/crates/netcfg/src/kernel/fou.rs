//! fou/gue receive ports (`ip fou add port PORT gue|ipproto 4`) over generic netlink: the
//! family "fou" (resolved through the generic netlink controller), `FOU_CMD_ADD`,
//! `FOU_CMD_DEL` and a `FOU_CMD_GET` dump. rtnetlink has no fou; the messages are small and
//! built here with `netlink-packet-core` over a `netlink-sys` socket (never the `ip` binary).
//!
//! Only ports without a local or peer address are managed (IPv4, or IPv6 with `-6`): those
//! are the ones tungate adds. The kernel keeps no owner mark on a port: which ports are tungate's is the state
//! file's business (see `apply_port`), not this module's.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

use netlink_packet_core::{
    DecodeError, DefaultNla, Emitable, NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST, NetlinkBuffer,
    NetlinkDeserializable, NetlinkHeader, NetlinkMessage, NetlinkPayload, NetlinkSerializable,
    NlaBuffer, NlasIterator,
};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_GENERIC};

use crate::error::NetError;
use crate::model::FouPortSpec;
use crate::plan::Edit;
use crate::state_file::{StateFile, fou_key};

/// The generic netlink controller's family id (`GENL_ID_CTRL`).
const GENL_ID_CTRL: u16 = 0x10;
/// `CTRL_CMD_GETFAMILY`.
const CTRL_CMD_GETFAMILY: u8 = 3;
/// `CTRL_ATTR_FAMILY_ID` (u16).
const CTRL_ATTR_FAMILY_ID: u16 = 1;
/// `CTRL_ATTR_FAMILY_NAME` (NUL-terminated string).
const CTRL_ATTR_FAMILY_NAME: u16 = 2;
/// The fou family's name (`FOU_GENL_NAME`) and version (`FOU_GENL_VERSION`).
const FOU_GENL_NAME: &str = "fou";
const FOU_GENL_VERSION: u8 = 1;
/// `FOU_CMD_ADD`, `FOU_CMD_DEL`, `FOU_CMD_GET`.
const FOU_CMD_ADD: u8 = 1;
const FOU_CMD_DEL: u8 = 2;
const FOU_CMD_GET: u8 = 3;
/// `FOU_ATTR_PORT` (be16), `FOU_ATTR_AF` (u8), `FOU_ATTR_IPPROTO` (u8), `FOU_ATTR_TYPE` (u8).
const FOU_ATTR_PORT: u16 = 1;
const FOU_ATTR_AF: u16 = 2;
const FOU_ATTR_IPPROTO: u16 = 3;
const FOU_ATTR_TYPE: u16 = 4;
/// `FOU_ATTR_LOCAL_V4` … `FOU_ATTR_IFINDEX`: a port bound to an address, a peer or a
/// device. The kernel reports them for every port, as zeros when unbound.
const FOU_ATTR_BOUND: std::ops::RangeInclusive<u16> = 6..=11;
/// `FOU_ENCAP_DIRECT` (fou) and `FOU_ENCAP_GUE`.
const FOU_ENCAP_DIRECT: u8 = 1;
const FOU_ENCAP_GUE: u8 = 2;
/// IP protocol numbers a fou (direct) port hands its packets to: IPv4 inside (4), IPv6
/// inside (41).
const IPPROTO_IPIP: u8 = 4;
const IPPROTO_IPV6: u8 = 41;
/// How long a request waits for the kernel's answer.
const REPLY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// A generic netlink message: the family (as the netlink message type), the command and
/// the attributes (type, value).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Genl {
    family: u16,
    cmd: u8,
    version: u8,
    attrs: Vec<(u16, Vec<u8>)>,
}

impl Genl {
    fn nlas(&self) -> Vec<DefaultNla> {
        self.attrs
            .iter()
            .map(|(kind, value)| DefaultNla::new(*kind, value.clone()))
            .collect()
    }

    fn attr(&self, kind: u16) -> Option<&[u8]> {
        self.attrs
            .iter()
            .find(|(k, _)| *k == kind)
            .map(|(_, v)| v.as_slice())
    }
}

impl NetlinkSerializable for Genl {
    fn message_type(&self) -> u16 {
        self.family
    }

    fn buffer_len(&self) -> usize {
        4 + self.nlas().as_slice().buffer_len()
    }

    fn serialize(&self, buffer: &mut [u8]) {
        buffer[0] = self.cmd;
        buffer[1] = self.version;
        buffer[2..4].fill(0);
        self.nlas().as_slice().emit(&mut buffer[4..]);
    }
}

impl NetlinkDeserializable for Genl {
    type Error = DecodeError;

    fn deserialize(header: &NetlinkHeader, payload: &[u8]) -> Result<Self, DecodeError> {
        if payload.len() < 4 {
            return Err(DecodeError::from(
                "generic netlink message shorter than its header",
            ));
        }
        let mut attrs = Vec::new();
        for nla in NlasIterator::new(&payload[4..]) {
            let nla: NlaBuffer<&[u8]> = nla?;
            attrs.push((
                nla.kind() & netlink_packet_core::NLA_TYPE_MASK,
                nla.value().to_vec(),
            ));
        }
        Ok(Genl {
            family: header.message_type,
            cmd: payload[0],
            version: payload[1],
            attrs,
        })
    }
}

/// The bytes of one request: `body` with the header flags `flags` and sequence `seq`.
fn request_bytes(body: Genl, flags: u16, seq: u32) -> Vec<u8> {
    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST | flags;
    header.sequence_number = seq;
    let mut message = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(body));
    message.finalize();
    let mut bytes = vec![0; message.buffer_len()];
    message.serialize(&mut bytes);
    bytes
}

/// The controller request that asks for the fou family's id.
fn family_request() -> Genl {
    let mut name = FOU_GENL_NAME.as_bytes().to_vec();
    name.push(0);
    Genl {
        family: GENL_ID_CTRL,
        cmd: CTRL_CMD_GETFAMILY,
        version: 1,
        attrs: vec![(CTRL_ATTR_FAMILY_NAME, name)],
    }
}

/// The attributes that name a port (what `FOU_CMD_DEL` needs) or, with its type, describe
/// it (`FOU_CMD_ADD`).
fn port_attrs(spec: FouPortSpec, with_type: bool) -> Vec<(u16, Vec<u8>)> {
    let mut attrs = vec![
        (FOU_ATTR_PORT, spec.port.to_be_bytes().to_vec()),
        (FOU_ATTR_AF, vec![af_of(spec.v6)]),
    ];
    if with_type {
        if spec.gue {
            attrs.push((FOU_ATTR_TYPE, vec![FOU_ENCAP_GUE]));
        } else {
            attrs.push((FOU_ATTR_TYPE, vec![FOU_ENCAP_DIRECT]));
            attrs.push((FOU_ATTR_IPPROTO, vec![spec.ipproto]));
        }
    }
    attrs
}

fn fou_message(family: u16, cmd: u8, attrs: Vec<(u16, Vec<u8>)>) -> Genl {
    Genl {
        family,
        cmd,
        version: FOU_GENL_VERSION,
        attrs,
    }
}

/// `FOU_ATTR_AF` of an IPv6 (`AF_INET6`) or IPv4 (`AF_INET`) port.
fn af_of(v6: bool) -> u8 {
    if v6 {
        libc::AF_INET6 as u8
    } else {
        libc::AF_INET as u8
    }
}

/// The port a `FOU_CMD_GET` answer describes, if it is a port bound to no address or device
/// (the only kind tungate manages) of a type tungate adds: GUE, FOU with ipproto 4 and,
/// over IPv6, FOU with ipproto 41.
fn port_of(answer: &Genl) -> Option<FouPortSpec> {
    let v6 = match answer.attr(FOU_ATTR_AF)? {
        [af] if *af == af_of(false) => false,
        [af] if *af == af_of(true) => true,
        _ => return None,
    };
    if answer
        .attrs
        .iter()
        .any(|(k, v)| FOU_ATTR_BOUND.contains(k) && v.iter().any(|&b| b != 0))
    {
        return None;
    }
    let port = u16::from_be_bytes(answer.attr(FOU_ATTR_PORT)?.try_into().ok()?);
    let (gue, ipproto) = match (answer.attr(FOU_ATTR_TYPE)?, answer.attr(FOU_ATTR_IPPROTO)) {
        ([FOU_ENCAP_GUE], _) => (true, 0),
        ([FOU_ENCAP_DIRECT], Some([IPPROTO_IPIP])) => (false, IPPROTO_IPIP),
        ([FOU_ENCAP_DIRECT], Some([IPPROTO_IPV6])) if v6 => (false, IPPROTO_IPV6),
        _ => return None,
    };
    Some(FouPortSpec {
        port,
        gue,
        v6,
        ipproto,
    })
}

/// Why a request failed: the kernel's error number, or a transport problem.
#[derive(Debug)]
enum Failure {
    Kernel(i32),
    Io(io::Error),
}

impl From<io::Error> for Failure {
    fn from(e: io::Error) -> Self {
        Failure::Io(e)
    }
}

/// One generic netlink socket and a sequence counter.
struct Connection {
    socket: Socket,
    seq: u32,
}

impl Connection {
    fn open() -> io::Result<Self> {
        let mut socket = Socket::new(NETLINK_GENERIC)?;
        socket.bind_auto()?;
        socket.connect(&SocketAddr::new(0, 0))?;
        // SAFETY: the descriptor belongs to `socket`, which outlives this borrow.
        let fd = unsafe { BorrowedFd::borrow_raw(socket.as_raw_fd()) };
        nix::sys::socket::setsockopt(
            &fd,
            nix::sys::socket::sockopt::ReceiveTimeout,
            &nix::sys::time::TimeVal::new(REPLY_TIMEOUT.as_secs() as _, 0),
        )?;
        Ok(Self { socket, seq: 0 })
    }

    /// Sends `body` and collects the answers until the acknowledgement (or, for a dump,
    /// the end of it).
    fn request(&mut self, body: Genl, flags: u16) -> Result<Vec<Genl>, Failure> {
        self.seq += 1;
        let seq = self.seq;
        self.socket.send(&request_bytes(body, flags, seq), 0)?;
        let mut answers = Vec::new();
        loop {
            let (bytes, _) = self.socket.recv_from_full()?;
            let mut rest = bytes.as_slice();
            while !rest.is_empty() {
                let len = NetlinkBuffer::new_checked(rest)
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?
                    .length() as usize;
                let (one, tail) = rest.split_at(len.min(rest.len()));
                rest = tail;
                let message = NetlinkMessage::<Genl>::deserialize(one)
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
                if message.header.sequence_number != seq {
                    continue;
                }
                match message.payload {
                    NetlinkPayload::InnerMessage(genl) => answers.push(genl),
                    NetlinkPayload::Error(e) => match e.code {
                        None => return Ok(answers),
                        Some(code) => return Err(Failure::Kernel(code.get().abs())),
                    },
                    NetlinkPayload::Done(_) => return Ok(answers),
                    _ => {}
                }
            }
            if flags & NLM_F_DUMP == 0 && flags & NLM_F_ACK == 0 && !answers.is_empty() {
                return Ok(answers);
            }
        }
    }

    /// The fou family's id; `None` when the kernel has no fou (no module).
    fn fou_family(&mut self) -> Result<Option<u16>, Failure> {
        match self.request(family_request(), 0) {
            Ok(answers) => Ok(answers
                .iter()
                .find_map(|a| a.attr(CTRL_ATTR_FAMILY_ID))
                .and_then(|v| v.try_into().ok())
                .map(u16::from_ne_bytes)),
            Err(Failure::Kernel(libc::ENOENT)) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

fn net_error(action: &str, failure: Failure) -> NetError {
    match failure {
        Failure::Kernel(libc::EPERM | libc::EACCES) => NetError::PermissionDenied {
            action: action.to_owned(),
        },
        Failure::Kernel(code) => NetError::Netlink {
            action: action.to_owned(),
            detail: io::Error::from_raw_os_error(code).to_string(),
        },
        Failure::Io(e) => NetError::Netlink {
            action: action.to_owned(),
            detail: e.to_string(),
        },
    }
}

/// The fou/gue ports (IPv4 and IPv6) of this network namespace that are bound to no address or device
/// (empty when the kernel has no fou).
pub(crate) fn list() -> Result<Vec<FouPortSpec>, NetError> {
    const ACTION: &str = "listing fou ports";
    let mut conn = Connection::open().map_err(|e| net_error(ACTION, Failure::Io(e)))?;
    let Some(family) = conn.fou_family().map_err(|e| net_error(ACTION, e))? else {
        return Ok(Vec::new());
    };
    let answers = conn
        .request(fou_message(family, FOU_CMD_GET, Vec::new()), NLM_F_DUMP)
        .map_err(|e| net_error(ACTION, e))?;
    Ok(answers.iter().filter_map(port_of).collect())
}

/// Sends one fou command about `spec`.
fn command(spec: FouPortSpec, cmd: u8, action: &str) -> Result<(), Failure> {
    let mut conn = Connection::open()?;
    let Some(family) = conn.fou_family()? else {
        return Err(Failure::Kernel(libc::EAFNOSUPPORT));
    };
    conn.request(
        fou_message(family, cmd, port_attrs(spec, cmd == FOU_CMD_ADD)),
        NLM_F_ACK,
    )
    .map(drop)
    .inspect_err(|e| tracing::debug!("{action}: {e:?}"))
}

/// Adds the receive port `spec`.
pub(crate) fn add(spec: FouPortSpec) -> Result<(), NetError> {
    let action = format!("adding {spec}");
    match command(spec, FOU_CMD_ADD, &action) {
        Ok(()) => Ok(()),
        Err(Failure::Kernel(libc::EAFNOSUPPORT)) => Err(NetError::NoFou { port: spec.port }),
        Err(Failure::Kernel(libc::EALREADY | libc::EEXIST | libc::EADDRINUSE)) => {
            Err(NetError::AlreadyExists {
                action,
                hint: format!(
                    " (UDP port {} is taken, by another fou port or a socket: free it or give \
                     the peer another port)",
                    spec.port
                ),
            })
        }
        Err(e) => Err(net_error(&action, e)),
    }
}

/// Deletes the receive port `spec`; a port that is already gone is not an error.
pub(crate) fn delete(spec: FouPortSpec) -> Result<(), NetError> {
    let action = format!("deleting {spec}");
    if !list()?
        .iter()
        .any(|p| p.port == spec.port && p.v6 == spec.v6)
    {
        return Ok(());
    }
    command(spec, FOU_CMD_DEL, &action).map_err(|e| net_error(&action, e))
}

/// Adds, changes (delete, then add) or deletes a receive port, and keeps the state file's
/// record of the ports tungate added (written before a port is added, forgotten once it is
/// deleted, so a port is never tungate's without the file saying so).
pub(crate) fn apply_port(edit: &Edit<FouPortSpec>, state: &mut StateFile) -> Result<(), NetError> {
    match edit {
        Edit::Create(spec) | Edit::Update { to: spec, .. } => {
            if let Edit::Update { from, .. } = edit {
                delete(*from)?;
            }
            state.remember(&fou_key(spec), "absent", &spec.to_string());
            state.save()?;
            add(*spec)
        }
        Edit::Delete(spec) => {
            delete(*spec)?;
            state.forget(&fou_key(spec));
            state.save()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{InnerFamilies, TunnelEncap};

    #[test]
    fn the_family_request_is_the_controllers_getfamily_with_the_name() {
        let bytes = request_bytes(family_request(), 0, 7);
        #[rustfmt::skip]
        let expected: Vec<u8> = [
            &28u32.to_ne_bytes()[..], &0x10u16.to_ne_bytes(), &1u16.to_ne_bytes(),
            &7u32.to_ne_bytes(), &0u32.to_ne_bytes(),
            &[3, 1, 0, 0],
            &8u16.to_ne_bytes(), &2u16.to_ne_bytes(), b"fou\0",
        ]
        .concat();
        assert_eq!(bytes, expected);
    }

    #[test]
    fn a_gue_port_is_added_with_its_port_in_network_order_and_the_gue_type() {
        let spec = FouPortSpec::gue(6080);
        let bytes = request_bytes(
            fou_message(29, FOU_CMD_ADD, port_attrs(spec, true)),
            NLM_F_ACK,
            1,
        );
        #[rustfmt::skip]
        let expected: Vec<u8> = [
            &44u32.to_ne_bytes()[..], &29u16.to_ne_bytes(), &5u16.to_ne_bytes(),
            &1u32.to_ne_bytes(), &0u32.to_ne_bytes(),
            &[1, 1, 0, 0],
            &6u16.to_ne_bytes(), &1u16.to_ne_bytes(), &[0x17, 0xc0, 0, 0],
            &5u16.to_ne_bytes(), &2u16.to_ne_bytes(), &[2, 0, 0, 0],
            &5u16.to_ne_bytes(), &4u16.to_ne_bytes(), &[2, 0, 0, 0],
        ]
        .concat();
        assert_eq!(bytes, expected);
    }

    #[test]
    fn a_fou_port_hands_its_packets_to_ipip_and_a_delete_names_only_the_port() {
        let spec = FouPortSpec::fou(5555);
        assert_eq!(
            port_attrs(spec, true),
            [
                (FOU_ATTR_PORT, vec![0x15, 0xb3]),
                (FOU_ATTR_AF, vec![2]),
                (FOU_ATTR_TYPE, vec![FOU_ENCAP_DIRECT]),
                (FOU_ATTR_IPPROTO, vec![4]),
            ]
        );
        assert_eq!(
            port_attrs(spec, false),
            [(FOU_ATTR_PORT, vec![0x15, 0xb3]), (FOU_ATTR_AF, vec![2])]
        );
    }

    #[test]
    fn an_ipv6_fou_port_is_added_for_af_inet6_with_the_inner_protocol() {
        for (ipproto, inner) in [(41, InnerFamilies::V6), (4, InnerFamilies::V4)] {
            let spec = TunnelEncap::Ip6Fou { port: 5555, inner }
                .receive_port()
                .unwrap();
            assert_eq!(
                spec.to_string(),
                format!("fou port 5555 ipproto {ipproto} -6")
            );
            assert_eq!(
                port_attrs(spec, true),
                [
                    (FOU_ATTR_PORT, vec![0x15, 0xb3]),
                    (FOU_ATTR_AF, vec![libc::AF_INET6 as u8]),
                    (FOU_ATTR_TYPE, vec![FOU_ENCAP_DIRECT]),
                    (FOU_ATTR_IPPROTO, vec![ipproto]),
                ]
            );
            // Read back through the wire format, as a dump answer.
            let bytes = request_bytes(fou_message(29, FOU_CMD_GET, port_attrs(spec, true)), 0, 1);
            let NetlinkPayload::InnerMessage(back) =
                NetlinkMessage::<Genl>::deserialize(&bytes).unwrap().payload
            else {
                panic!("not a message")
            };
            assert_eq!(port_of(&back), Some(spec));
        }
        // GUE needs no ipproto: the GUE header names the inner protocol.
        let gue = TunnelEncap::Ip6Gue {
            port: 6080,
            inner: InnerFamilies::Both,
        }
        .receive_port()
        .unwrap();
        assert_eq!(gue.to_string(), "fou port 6080 gue -6");
        assert_eq!(
            port_attrs(gue, true),
            [
                (FOU_ATTR_PORT, vec![0x17, 0xc0]),
                (FOU_ATTR_AF, vec![libc::AF_INET6 as u8]),
                (FOU_ATTR_TYPE, vec![FOU_ENCAP_GUE]),
            ]
        );
        // An IPv4 and an IPv6 port of one number are two kernel objects.
        assert_ne!(
            crate::model::Item::FouPort(gue).key(),
            crate::model::Item::FouPort(FouPortSpec::gue(6080)).key()
        );
        assert_ne!(fou_key(&gue), fou_key(&FouPortSpec::gue(6080)));
        assert_eq!(fou_key(&FouPortSpec::gue(6080)), "fou 6080");
    }

    #[test]
    fn dump_answers_are_read_back_and_foreign_shapes_skipped() {
        let answer = |attrs: Vec<(u16, Vec<u8>)>| {
            let bytes = request_bytes(fou_message(29, FOU_CMD_GET, attrs), 0, 1);
            NetlinkMessage::<Genl>::deserialize(&bytes).unwrap()
        };
        let gue = answer(port_attrs(FouPortSpec::gue(6080), true));
        let NetlinkPayload::InnerMessage(gue) = gue.payload else {
            panic!("not a message")
        };
        assert_eq!(port_of(&gue), Some(FouPortSpec::gue(6080)));
        // What the kernel reports of an unbound port: its address, peer and device as 0.
        let mut unbound = gue.clone();
        unbound.attrs.extend([
            (6, vec![0; 4]),
            (8, vec![0; 4]),
            (10, vec![0; 2]),
            (11, vec![0; 4]),
        ]);
        assert_eq!(port_of(&unbound), port_of(&gue));
        let mut bound = gue.clone();
        bound.attrs.push((6, vec![10, 0, 0, 1]));
        assert_eq!(port_of(&bound), None);
        let mut v6 = gue.clone();
        v6.attrs[1].1 = vec![libc::AF_INET6 as u8];
        assert_eq!(
            port_of(&v6),
            Some(FouPortSpec {
                v6: true,
                ..FouPortSpec::gue(6080)
            })
        );
        let mut unknown_af = gue.clone();
        unknown_af.attrs[1].1 = vec![7];
        assert_eq!(port_of(&unknown_af), None);
        // FOU with ipproto 41 (IPv6 inside) is tungate's over IPv6 only; other protocols never.
        let mut six_in_four = gue.clone();
        six_in_four.attrs[2].1 = vec![FOU_ENCAP_DIRECT];
        six_in_four.attrs.push((FOU_ATTR_IPPROTO, vec![41]));
        assert_eq!(port_of(&six_in_four), None);
        let mut six_in_six = six_in_four.clone();
        six_in_six.attrs[1].1 = vec![libc::AF_INET6 as u8];
        assert_eq!(
            port_of(&six_in_six),
            Some(FouPortSpec {
                port: 6080,
                gue: false,
                v6: true,
                ipproto: 41
            })
        );
        let mut gre_inside = six_in_six;
        gre_inside.attrs[3].1 = vec![47];
        assert_eq!(port_of(&gre_inside), None);
    }
}
