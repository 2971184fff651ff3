//! The plugin ABI: every number, name and memory layout that the host and a guest must agree
//! on. The items at this level are ABI v1 (its descriptor and batch area) plus everything v1
//! and v2 share (exports, imports, verdicts, limits); [`v2`] holds v2's marker, descriptor and
//! batch area.
//!
//! This module is the single definition of the ABI written down in `ABI.md`; the host
//! (`tungate`'s plugin host) and the guest runtime of this SDK both use it, so they cannot
//! drift apart. It owns constants and plain `#[repr(C)]` data only: it must never call the
//! host, allocate, or hold state.

pub mod v2;

/// The ABI version of the layout at this level (v1); a module announces it with the export
/// [`EXPORT_ABI_MARKER`]. The SDK's guest runtime speaks [`v2`].
pub const ABI_VERSION: u32 = 1;

/// Prefix of the version-marker export: a module exports exactly one function named
/// `tungate_abi_v<N>` (no parameters, no results; never called) to say it speaks ABI `N`.
pub const ABI_MARKER_PREFIX: &str = "tungate_abi_v";
/// The version marker of ABI v1.
pub const EXPORT_ABI_MARKER: &str = "tungate_abi_v1";
/// The guest's linear memory (memory index 0).
pub const EXPORT_MEMORY: &str = "memory";
/// `(size: i32) -> i32`: the address of a guest buffer of at least `size` bytes for the
/// configuration, valid until the next call into the guest; 0 if the guest cannot provide it.
pub const EXPORT_ALLOC: &str = "tungate_alloc";
/// `(ptr: i32, len: i32) -> i32`: configure the plugin from the JSON text at `ptr..ptr+len`
/// (inside the buffer from [`EXPORT_ALLOC`]); returns [`CONFIGURE_OK`] or any other value to
/// refuse, after calling the import [`IMPORT_REFUSE_CONFIG`] with the reason.
pub const EXPORT_CONFIGURE: &str = "tungate_configure";
/// `() -> i32`: the address of the guest's [`BatchArea`] (8-byte aligned); asked once, after
/// a successful configure.
pub const EXPORT_BATCH_AREA: &str = "tungate_batch_area";
/// `(count: i32) -> ()`: judge the first `count` (1..=[`BATCH_MAX`]) descriptors of the batch
/// area and write one verdict byte for each.
pub const EXPORT_FILTER: &str = "tungate_filter";

/// The only import module a plugin may use.
pub const IMPORT_MODULE: &str = "tungate";
/// `(name_ptr: i32, name_len: i32, label_ptr: i32, label_len: i32) -> i32`: defines a counter
/// (only while configuring); returns its id (0, 1, 2, … in definition order; the same id for
/// the same name and label) or -1 if refused (bad name or label, too many, or too late).
pub const IMPORT_COUNTER_DEFINE: &str = "counter_define";
/// `(id: i32, delta: i64) -> ()`: adds `delta` (taken as unsigned) to a defined counter;
/// unknown ids are ignored.
pub const IMPORT_COUNTER_ADD: &str = "counter_add";
/// `(level: i32, ptr: i32, len: i32) -> ()`: one UTF-8 log line; rate-limited by the host.
pub const IMPORT_LOG: &str = "log";
/// `() -> i64`: monotonic clock in nanoseconds (arbitrary origin, never goes back).
pub const IMPORT_NOW_NS: &str = "now_ns";
/// `(ptr: i32, len: i32) -> ()`: the UTF-8 reason for refusing a configuration; call it
/// before `tungate_configure` returns a refusal.
pub const IMPORT_REFUSE_CONFIG: &str = "refuse_config";

/// The value of `tungate_configure` that accepts the configuration.
pub const CONFIGURE_OK: i32 = 0;

/// Most packets in one batch (one `tungate_filter` call).
pub const BATCH_MAX: usize = 64;
/// How many leading bytes of each packet (IPv4 header first) a descriptor carries.
pub const HEADER_BYTES: usize = 64;
/// Size in bytes of one [`PacketDesc`].
pub const DESC_SIZE: usize = 96;
/// Offset of the descriptors inside the [`BatchArea`].
pub const AREA_PACKETS_OFFSET: usize = 16;
/// Offset of the verdict bytes inside the [`BatchArea`].
pub const AREA_VERDICTS_OFFSET: usize = AREA_PACKETS_OFFSET + BATCH_MAX * DESC_SIZE;
/// Size in bytes of the [`BatchArea`].
pub const BATCH_AREA_SIZE: usize = AREA_VERDICTS_OFFSET + BATCH_MAX;
/// Alignment the host requires of the batch area's address.
pub const BATCH_AREA_ALIGN: usize = 8;

/// Largest configuration (JSON text) the host hands to a plugin.
pub const MAX_CONFIG_BYTES: usize = 64 * 1024;
/// Most counters one plugin instance may define.
pub const MAX_COUNTERS: usize = 256;
/// Longest counter name.
pub const MAX_COUNTER_NAME: usize = 48;
/// Longest counter label value.
pub const MAX_COUNTER_LABEL: usize = 64;
/// Longest log line or refusal reason the host keeps (longer ones are cut).
pub const MAX_MESSAGE_BYTES: usize = 512;

/// The verdict code a plugin writes for a packet. Codes 2..=254 are reserved for later ABI
/// versions; the host treats them, and anything it does not know, as a plugin error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Verdict {
    /// Let the packet go on (to the next plugin, then to the client).
    Pass = 0,
    /// Drop the packet.
    Drop = 1,
}

impl Verdict {
    /// The verdict with this code, if the ABI defines it.
    pub const fn from_code(code: u8) -> Option<Verdict> {
        match code {
            0 => Some(Verdict::Pass),
            1 => Some(Verdict::Drop),
            _ => None,
        }
    }
}

/// The code the host writes into every verdict slot before a call, so that a slot the
/// plugin did not write is seen as an error rather than as a stale verdict.
pub const VERDICT_UNSET: u8 = 0xFF;

/// Log levels of the [`IMPORT_LOG`] import; the host treats unknown values as `Debug`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(i32)]
pub enum LogLevel {
    /// Something is broken.
    Error = 0,
    /// Something is wrong but the plugin goes on.
    Warn = 1,
    /// Worth telling an operator.
    Info = 2,
    /// Detail for debugging.
    Debug = 3,
}

impl LogLevel {
    /// The level with this code; unknown codes become [`LogLevel::Debug`].
    pub const fn from_code(code: i32) -> LogLevel {
        match code {
            0 => LogLevel::Error,
            1 => LogLevel::Warn,
            2 => LogLevel::Info,
            _ => LogLevel::Debug,
        }
    }
}

/// [`PacketDesc::flags`]: the bytes held a well-formed IPv4 header (the other fields are
/// meaningful only when this is set).
pub const FLAG_IPV4: u8 = 1 << 0;
/// The packet is a fragment (more-fragments set or a non-zero offset).
pub const FLAG_FRAGMENT: u8 = 1 << 1;
/// The packet is a fragment other than the first: it carries no transport header.
pub const FLAG_LATER_FRAGMENT: u8 = 1 << 2;
/// `src_port`/`dst_port` hold the transport ports (TCP, UDP, UDP-Lite, SCTP).
pub const FLAG_PORTS: u8 = 1 << 3;
/// `tcp_flags` holds the TCP flags byte.
pub const FLAG_TCP_FLAGS: u8 = 1 << 4;
/// The don't-fragment bit is set.
pub const FLAG_DONT_FRAGMENT: u8 = 1 << 5;

/// IP protocol numbers that descriptors give ports for.
pub mod protocol {
    /// ICMP.
    pub const ICMP: u8 = 1;
    /// ICMPv6.
    pub const ICMPV6: u8 = 58;
    /// TCP.
    pub const TCP: u8 = 6;
    /// UDP.
    pub const UDP: u8 = 17;
    /// SCTP.
    pub const SCTP: u8 = 132;
    /// UDP-Lite.
    pub const UDPLITE: u8 = 136;

    /// Whether the protocol's header starts with a source and a destination port.
    pub const fn has_ports(protocol: u8) -> bool {
        matches!(protocol, TCP | UDP | SCTP | UDPLITE)
    }
}

/// One packet as the host describes it to a plugin: 96 bytes, little-endian numbers,
/// addresses in network order. Built only by [`PacketDesc::parse`] (or zeroed), so the two
/// sides always agree on what each field means; read it through [`crate::Packet`].
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(C)]
pub struct PacketDesc {
    pub(crate) src: [u8; 4],
    pub(crate) dst: [u8; 4],
    pub(crate) len: u32,
    pub(crate) src_port: u16,
    pub(crate) dst_port: u16,
    pub(crate) protocol: u8,
    pub(crate) ttl: u8,
    pub(crate) tcp_flags: u8,
    pub(crate) flags: u8,
    pub(crate) ip_header_len: u8,
    pub(crate) tos: u8,
    pub(crate) fragment_offset: u16,
    pub(crate) ip_id: u16,
    pub(crate) captured: u16,
    pub(crate) reserved: u32,
    pub(crate) header: [u8; HEADER_BYTES],
}

const _: () = assert!(core::mem::size_of::<PacketDesc>() == DESC_SIZE);
const _: () = assert!(core::mem::align_of::<PacketDesc>() <= BATCH_AREA_ALIGN);
const _: () = assert!(core::mem::offset_of!(PacketDesc, header) == 32);

impl PacketDesc {
    /// The all-zero descriptor (no IPv4 header: [`FLAG_IPV4`] clear).
    pub const ZERO: PacketDesc = PacketDesc {
        src: [0; 4],
        dst: [0; 4],
        len: 0,
        src_port: 0,
        dst_port: 0,
        protocol: 0,
        ttl: 0,
        tcp_flags: 0,
        flags: 0,
        ip_header_len: 0,
        tos: 0,
        fragment_offset: 0,
        ip_id: 0,
        captured: 0,
        reserved: 0,
        header: [0; HEADER_BYTES],
    };

    /// Describes an IPv4 packet (header first). Never panics: bytes that are not a
    /// well-formed IPv4 header give a descriptor with only `len` and the header bytes set.
    pub fn parse(bytes: &[u8]) -> PacketDesc {
        let mut d = PacketDesc::ZERO;
        d.parse_into(bytes);
        d
    }

    /// Describes `bytes` into `self`, overwriting every field: the same descriptor as
    /// [`PacketDesc::parse`], written in place (the host writes straight into guest memory).
    #[inline]
    pub fn parse_into(&mut self, bytes: &[u8]) {
        let captured = match bytes.first_chunk::<HEADER_BYTES>() {
            // The common case, as one fixed-size copy.
            Some(head) => {
                self.header = *head;
                HEADER_BYTES
            }
            None => {
                self.header = [0; HEADER_BYTES];
                self.header[..bytes.len()].copy_from_slice(bytes);
                bytes.len()
            }
        };
        self.len = u32::try_from(bytes.len()).unwrap_or(u32::MAX).to_le();
        self.captured = (captured as u16).to_le();
        self.reserved = 0;
        self.src = [0; 4];
        self.dst = [0; 4];
        self.src_port = 0;
        self.dst_port = 0;
        self.protocol = 0;
        self.ttl = 0;
        self.tcp_flags = 0;
        self.flags = 0;
        self.ip_header_len = 0;
        self.tos = 0;
        self.fragment_offset = 0;
        self.ip_id = 0;
        let Some(ip) = bytes.first_chunk::<20>() else {
            return;
        };
        let ihl = usize::from(ip[0] & 0x0f) * 4;
        if ip[0] >> 4 != 4 || ihl < 20 || ihl > bytes.len() {
            return;
        }
        let frag = u16::from_be_bytes([ip[6], ip[7]]);
        let offset = (frag & 0x1fff) << 3;
        let mut flags = FLAG_IPV4;
        if frag & 0x4000 != 0 {
            flags |= FLAG_DONT_FRAGMENT;
        }
        if frag & 0x2000 != 0 || offset != 0 {
            flags |= FLAG_FRAGMENT;
        }
        if offset != 0 {
            flags |= FLAG_LATER_FRAGMENT;
        }
        self.tos = ip[1];
        self.ip_id = u16::from_be_bytes([ip[4], ip[5]]).to_le();
        self.fragment_offset = offset.to_le();
        self.ttl = ip[8];
        self.protocol = ip[9];
        self.src = [ip[12], ip[13], ip[14], ip[15]];
        self.dst = [ip[16], ip[17], ip[18], ip[19]];
        self.ip_header_len = ihl as u8;
        if offset == 0 {
            let l4 = &bytes[ihl..];
            if protocol::has_ports(self.protocol)
                && let Some(p) = l4.first_chunk::<4>()
            {
                self.src_port = u16::from_be_bytes([p[0], p[1]]).to_le();
                self.dst_port = u16::from_be_bytes([p[2], p[3]]).to_le();
                flags |= FLAG_PORTS;
            }
            if self.protocol == protocol::TCP && l4.len() >= 14 {
                self.tcp_flags = l4[13];
                flags |= FLAG_TCP_FLAGS;
            }
        }
        self.flags = flags;
    }

    /// The descriptor's 96 bytes exactly as they lie in guest memory.
    pub fn as_bytes(&self) -> &[u8; DESC_SIZE] {
        // SAFETY: `PacketDesc` is `repr(C)`, exactly DESC_SIZE bytes (asserted above) with no
        // padding (its fields add up to DESC_SIZE), and made only of integers, so every byte
        // is initialised and the reference lives as long as `self`.
        unsafe { &*(self as *const PacketDesc).cast::<[u8; DESC_SIZE]>() }
    }

    /// Guest memory (`bytes`, at least 4-byte aligned, a whole number of descriptors long)
    /// seen as descriptors, for the host to write them in place; `None` if misaligned or of
    /// the wrong length.
    pub fn slice_from_bytes_mut(bytes: &mut [u8]) -> Option<&mut [PacketDesc]> {
        if !(bytes.as_ptr() as usize).is_multiple_of(core::mem::align_of::<PacketDesc>())
            || !bytes.len().is_multiple_of(DESC_SIZE)
        {
            return None;
        }
        // SAFETY: aligned (checked) and `len / DESC_SIZE` whole descriptors long (checked);
        // `PacketDesc` is `repr(C)` integers without padding, so every byte pattern is a
        // valid value, and the result borrows `bytes` exclusively for its lifetime.
        Some(unsafe {
            core::slice::from_raw_parts_mut(
                bytes.as_mut_ptr().cast::<PacketDesc>(),
                bytes.len() / DESC_SIZE,
            )
        })
    }

    /// Consecutive descriptors as the bytes the host copies into guest memory.
    pub fn slice_as_bytes(descs: &[PacketDesc]) -> &[u8] {
        // SAFETY: as in `as_bytes`: `repr(C)` integers without padding, and an array of them
        // has no padding between elements (size is a multiple of the alignment), so the
        // `len * DESC_SIZE` bytes are initialised and borrowed for as long as `descs`.
        unsafe { core::slice::from_raw_parts(descs.as_ptr().cast::<u8>(), descs.len() * DESC_SIZE) }
    }
}

/// The guest's batch area, at the address `tungate_batch_area` returns: the host writes the
/// batch time and the descriptors, the guest writes the verdicts.
#[derive(Clone, PartialEq, Eq, Debug)]
#[repr(C, align(8))]
pub struct BatchArea {
    /// Monotonic time of the batch in nanoseconds (the same clock as `now_ns`).
    pub now_ns: u64,
    /// Zero; reserved for later ABI versions.
    pub reserved: u64,
    /// The packets of the batch; only the first `count` are meaningful.
    pub packets: [PacketDesc; BATCH_MAX],
    /// One [`Verdict`] code per packet.
    pub verdicts: [u8; BATCH_MAX],
}

const _: () = assert!(core::mem::size_of::<BatchArea>() == BATCH_AREA_SIZE.next_multiple_of(8));
const _: () = assert!(core::mem::offset_of!(BatchArea, packets) == AREA_PACKETS_OFFSET);
const _: () = assert!(core::mem::offset_of!(BatchArea, verdicts) == AREA_VERDICTS_OFFSET);

impl BatchArea {
    /// An empty area (all verdicts unset).
    pub const fn new() -> BatchArea {
        BatchArea {
            now_ns: 0,
            reserved: 0,
            packets: [PacketDesc::ZERO; BATCH_MAX],
            verdicts: [VERDICT_UNSET; BATCH_MAX],
        }
    }
}

impl Default for BatchArea {
    fn default() -> Self {
        BatchArea::new()
    }
}

/// Whether `name` may name a counter: 1 to [`MAX_COUNTER_NAME`] of `a-z 0-9 _`, starting
/// with a letter (it becomes part of a metric name).
pub fn is_valid_counter_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= MAX_COUNTER_NAME
        && b[0].is_ascii_lowercase()
        && b.iter()
            .all(|&c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_')
}

/// Whether `label` may be a counter's label value: 0 to [`MAX_COUNTER_LABEL`] printable ASCII
/// characters without `"` or `\` (it becomes a metric label value).
pub fn is_valid_counter_label(label: &str) -> bool {
    label.len() <= MAX_COUNTER_LABEL
        && label
            .bytes()
            .all(|c| (c == b' ' || c.is_ascii_graphic()) && c != b'"' && c != b'\\')
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A TCP SYN-ACK 192.0.2.10:443 -> 198.51.100.7:51000, TTL 63, DF, id 0x1234.
    fn syn_ack() -> [u8; 40] {
        let mut p = [0u8; 40];
        p[0] = 0x45;
        p[2..4].copy_from_slice(&40u16.to_be_bytes());
        p[4..6].copy_from_slice(&[0x12, 0x34]);
        p[6] = 0x40;
        p[8] = 63;
        p[9] = 6;
        p[12..16].copy_from_slice(&[192, 0, 2, 10]);
        p[16..20].copy_from_slice(&[198, 51, 100, 7]);
        p[20..22].copy_from_slice(&443u16.to_be_bytes());
        p[22..24].copy_from_slice(&51000u16.to_be_bytes());
        p[33] = 0x12;
        p
    }

    #[test]
    fn layout_offsets_match_abi_md() {
        assert_eq!(AREA_PACKETS_OFFSET, 16);
        assert_eq!(AREA_VERDICTS_OFFSET, 6160);
        assert_eq!(BATCH_AREA_SIZE, 6224);
        assert_eq!(core::mem::offset_of!(PacketDesc, len), 8);
        assert_eq!(core::mem::offset_of!(PacketDesc, src_port), 12);
        assert_eq!(core::mem::offset_of!(PacketDesc, protocol), 16);
        assert_eq!(core::mem::offset_of!(PacketDesc, flags), 19);
        assert_eq!(core::mem::offset_of!(PacketDesc, fragment_offset), 22);
        assert_eq!(core::mem::offset_of!(PacketDesc, captured), 26);
        assert!(EXPORT_ABI_MARKER.starts_with(ABI_MARKER_PREFIX));
        assert_eq!(&EXPORT_ABI_MARKER[ABI_MARKER_PREFIX.len()..], "1");
        assert_eq!(ABI_VERSION, 1);
    }

    #[test]
    fn parse_into_overwrites_every_field_of_a_used_descriptor() {
        let mut d = PacketDesc::parse(&syn_ack());
        for other in [&[0x60u8, 0, 0, 0][..], &[], &syn_ack()[..30]] {
            d.parse_into(other);
            assert_eq!(d, PacketDesc::parse(other), "{other:?}");
            d = PacketDesc::parse(&syn_ack());
        }
        let mut area = [0xffu8; 2 * DESC_SIZE + 8];
        let aligned = area.as_ptr().align_offset(8);
        let descs =
            PacketDesc::slice_from_bytes_mut(&mut area[aligned..aligned + 2 * DESC_SIZE]).unwrap();
        descs[1].parse_into(&syn_ack());
        assert_eq!(descs[1], PacketDesc::parse(&syn_ack()));
        assert!(
            PacketDesc::slice_from_bytes_mut(&mut area[aligned + 1..aligned + 1 + DESC_SIZE])
                .is_none()
        );
        assert!(
            PacketDesc::slice_from_bytes_mut(&mut area[aligned..aligned + DESC_SIZE - 4]).is_none()
        );
    }

    #[test]
    fn parse_tcp_first_fragment_fields_and_bytes() {
        let p = syn_ack();
        let d = PacketDesc::parse(&p);
        let b = d.as_bytes();
        assert_eq!(&b[0..4], &[192, 0, 2, 10]);
        assert_eq!(&b[4..8], &[198, 51, 100, 7]);
        assert_eq!(&b[8..12], &40u32.to_le_bytes());
        assert_eq!(&b[12..14], &443u16.to_le_bytes());
        assert_eq!(&b[14..16], &51000u16.to_le_bytes());
        assert_eq!(b[16], 6);
        assert_eq!(b[17], 63);
        assert_eq!(b[18], 0x12);
        assert_eq!(
            b[19],
            FLAG_IPV4 | FLAG_PORTS | FLAG_TCP_FLAGS | FLAG_DONT_FRAGMENT
        );
        assert_eq!(b[20], 20);
        assert_eq!(&b[24..26], &0x1234u16.to_le_bytes());
        assert_eq!(&b[26..28], &40u16.to_le_bytes());
        assert_eq!(&b[32..72], &p[..]);
        assert!(b[72..].iter().all(|&x| x == 0));
        let pair = [d, PacketDesc::ZERO];
        let two = PacketDesc::slice_as_bytes(&pair);
        assert_eq!(two.len(), 2 * DESC_SIZE);
        assert_eq!(&two[..DESC_SIZE], &b[..]);
        assert!(two[DESC_SIZE..].iter().all(|&x| x == 0));
    }

    #[test]
    fn parse_later_fragment_has_no_ports() {
        let mut p = syn_ack();
        p[6] = 0x20; // MF, offset 185*8
        p[7] = 185;
        let d = PacketDesc::parse(&p);
        assert_eq!(d.flags, FLAG_IPV4 | FLAG_FRAGMENT | FLAG_LATER_FRAGMENT);
        assert_eq!(u16::from_le(d.fragment_offset), 1480);
        assert_eq!((d.src_port, d.tcp_flags), (0, 0));
    }

    #[test]
    fn parse_never_panics_on_garbage() {
        let cases: &[&[u8]] = &[
            &[],
            &[0x45],
            &[0x60; 40],
            &[0x4f; 20],
            &[0x41; 30],
            &[
                0x45, 0, 0, 20, 0, 0, 0, 0, 64, 17, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 0, 53,
            ],
        ];
        for bytes in cases {
            let d = PacketDesc::parse(bytes);
            assert_eq!(u32::from_le(d.len) as usize, bytes.len());
            if bytes.len() == 22 {
                assert_eq!(d.flags, FLAG_IPV4, "UDP with 2 bytes of header: no ports");
            } else {
                assert_eq!(d.flags, 0, "{bytes:?}");
            }
        }
        let big = [0x45u8; 100];
        assert_eq!(u16::from_le(PacketDesc::parse(&big).captured), 64);
    }

    #[test]
    fn verdict_and_level_codes() {
        assert_eq!(Verdict::from_code(0), Some(Verdict::Pass));
        assert_eq!(Verdict::from_code(1), Some(Verdict::Drop));
        assert_eq!(Verdict::from_code(2), None);
        assert_eq!(Verdict::from_code(VERDICT_UNSET), None);
        assert_eq!(LogLevel::from_code(1), LogLevel::Warn);
        assert_eq!(LogLevel::from_code(99), LogLevel::Debug);
    }

    #[test]
    fn counter_names_and_labels() {
        assert!(is_valid_counter_name("packets"));
        assert!(is_valid_counter_name("dropped_by_port2"));
        for bad in ["", "2x", "Packets", "a-b", "a b", &"x".repeat(49)] {
            assert!(!is_valid_counter_name(bad), "{bad:?}");
        }
        assert!(is_valid_counter_label(""));
        assert!(is_valid_counter_label("10.0.0.0/8"));
        assert!(is_valid_counter_label("not allowed"));
        for bad in ["a\"b", "a\\b", "tab\t", "é", &"x".repeat(65)] {
            assert!(!is_valid_counter_label(bad), "{bad:?}");
        }
    }
}
