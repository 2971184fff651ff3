//! Why loading, attaching or updating the XDP program failed. Every message names the
//! interface or map concerned and, where there is one, what to do about it.

use std::io;

/// An error of the XDP pre-filter.
#[derive(Debug, thiserror::Error)]
pub enum XdpError {
    /// The kernel refused to load the program or create its maps.
    #[error("loading the XDP program failed (needs root or CAP_BPF + CAP_NET_ADMIN): {0}")]
    Load(#[source] Box<aya::EbpfError>),
    /// Another tool's XDP program is attached to the interface: tungate never replaces it.
    #[error(
        "interface {interface} already has an XDP program that is not tungate's: `{name}` \
         (id {id}); refusing to replace it (remove it, e.g. `ip link set dev {interface} xdp \
         off`, or use gateway.io = \"packet\")"
    )]
    ForeignProgram {
        /// The interface.
        interface: String,
        /// The program's name in the kernel.
        name: String,
        /// The program's id (`bpftool prog show id ID`).
        id: u32,
    },
    /// An XDP program is attached to the interface and tungate cannot read its name to tell
    /// whether it is its own (reading it needs CAP_SYS_ADMIN): it is left alone.
    #[error(
        "interface {interface} already has an XDP program (id {id}) whose name tungate cannot \
         read ({reason}); refusing to replace it (remove it, e.g. `ip link set dev {interface} \
         xdp off`, or use gateway.io = \"packet\")"
    )]
    UnknownProgram {
        /// The interface.
        interface: String,
        /// The program's id.
        id: u32,
        /// Why its name could not be read.
        reason: String,
    },
    /// tungate's program is attached through a BPF link that another process holds: most
    /// likely another tungate runs on this interface.
    #[error(
        "interface {interface} already has tungate's XDP program (id {id}) attached by another \
         process through a BPF link: is another tungate running on it?"
    )]
    InUse {
        /// The interface.
        interface: String,
        /// The program's id.
        id: u32,
    },
    /// The interface's driver has no native XDP (`XdpMode::Native` asked for).
    #[error("the driver of interface {interface} has no native XDP (use generic XDP or TPACKET)")]
    NativeUnsupported {
        /// The interface.
        interface: String,
    },
    /// Attaching the program failed for another reason.
    #[error("attaching the XDP program to interface {interface} ({mode}) failed: {source}{hint}")]
    Attach {
        /// The interface.
        interface: String,
        /// "native" or "generic".
        mode: &'static str,
        /// What the kernel said.
        source: io::Error,
        /// What it probably means, or empty.
        hint: &'static str,
    },
    /// No interface has this index.
    #[error("no network interface has index {0}")]
    NoInterface(u32),
    /// A netlink request about the interface failed.
    #[error("netlink: {what} of interface {interface} failed: {source}")]
    Netlink {
        /// The request.
        what: &'static str,
        /// The interface (name or index).
        interface: String,
        /// What the kernel said.
        source: io::Error,
    },
    /// Reading or writing one of the program's maps failed.
    #[error("the XDP program's map `{map}`: {what} failed: {source}")]
    Map {
        /// The map's name.
        map: &'static str,
        /// The operation.
        what: &'static str,
        /// What failed.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// More peers than the peer map holds.
    #[error("{count} peers configured, the XDP peer map holds at most {max}")]
    TooManyPeers {
        /// Peers asked for.
        count: usize,
        /// The map's size.
        max: usize,
    },
    /// More distinct GUE/FOU ports than the port map holds.
    #[error("{count} distinct GUE/FOU ports configured, the XDP port map holds at most {max}")]
    TooManyUdpPorts {
        /// Ports asked for.
        count: usize,
        /// The map's size.
        max: usize,
    },
    /// A receive queue beyond the socket map.
    #[error("receive queue {queue} is beyond the XDP socket map (queues 0..{max})")]
    QueueOutOfRange {
        /// The queue.
        queue: u32,
        /// The map's size.
        max: u32,
    },
}

impl XdpError {
    /// The error of a map operation.
    pub(crate) fn map(
        map: &'static str,
        what: &'static str,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> XdpError {
        XdpError::Map {
            map,
            what,
            source: Box::new(source),
        }
    }
}
