//! Namespaces, veth links, the standard `rs` / `gw` / `client` topology, and AF_PACKET
//! frame sockets opened inside a namespace.

use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A name unique to this process and call: `<prefix>-<pid>-<counter>`.
pub fn unique_name(prefix: &str) -> String {
    format!(
        "tg{prefix}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// Runs `ip ARGS`, panicking with its stderr if it fails.
pub fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A network namespace, deleted on drop (also when the test panics).
pub struct Netns {
    /// Its name (under /run/netns).
    pub name: String,
}

impl Netns {
    /// Creates a namespace named from `prefix`, with loopback up.
    pub fn new(prefix: &str) -> Netns {
        let ns = Netns {
            name: unique_name(prefix),
        };
        ip(&["netns", "add", &ns.name]);
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    /// Runs `ip -n NAME ARGS`.
    pub fn ip(&self, args: &[&str]) {
        let mut all = vec!["-n", &self.name];
        all.extend_from_slice(args);
        ip(&all);
    }

    /// Runs a command inside the namespace (`ip netns exec`) and returns its output.
    pub fn exec(&self, program: &str, args: &[&str]) -> std::process::Output {
        Command::new("ip")
            .args(["netns", "exec", &self.name, program])
            .args(args)
            .output()
            .expect("run ip netns exec")
    }

    /// Runs `f` on a new thread that has entered this namespace, and returns its result.
    /// Sockets created there stay in the namespace when used from other threads.
    pub fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        Netns::enter_and(&self.name, f)
    }

    /// Runs `f` on a new thread that has entered the namespace called `name`.
    pub fn enter_and<T: Send + 'static>(name: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
        let path = format!("/run/netns/{name}");
        std::thread::spawn(move || {
            let file = std::fs::File::open(&path).expect("open netns");
            nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
            f()
        })
        .join()
        .expect("namespace thread panicked")
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// Joins `a:a_if` and `b:b_if` with a veth pair, sets the MACs and brings both up.
pub fn veth(a: &Netns, a_if: &str, a_mac: &str, b: &Netns, b_if: &str, b_mac: &str) {
    a.ip(&[
        "link", "add", a_if, "address", a_mac, "type", "veth", "peer", "name", b_if, "address",
        b_mac, "netns", &b.name,
    ]);
    a.ip(&["link", "set", a_if, "up"]);
    b.ip(&["link", "set", b_if, "up"]);
}

/// MAC of the real server's interface `r0`.
pub const RS_MAC: [u8; 6] = [0x02, 0, 0, 0, 1, 2];
/// MAC of the gateway's interface `g0` (towards the real server).
pub const GW_RS_MAC: [u8; 6] = [0x02, 0, 0, 0, 1, 1];
/// MAC of the gateway's interface `g1` (towards the client).
pub const GW_CLIENT_MAC: [u8; 6] = [0x02, 0, 0, 0, 2, 1];
/// MAC of the client's interface `c0`.
pub const CLIENT_MAC: [u8; 6] = [0x02, 0, 0, 0, 2, 7];
/// The gateway address (on `g0`).
pub const GIP: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 1);
/// The real server's address (RIP, on `r0`).
pub const RIP: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 2);
/// The client's address (CIP, on `c0`).
pub const CIP: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 7);
/// The gateway's address towards the client (on `g1`).
pub const GW_CLIENT_IP: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
/// The VIP served by peer `rs1`.
pub const VIP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);

fn mac_text(m: [u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The three namespaces: `rs` (r0, RIP/24) — `gw` (g0 GIP/24; g1 GW_CLIENT_IP/24) —
/// `client` (c0, CIP/24).
pub struct Topology {
    /// The simulated real server.
    pub rs: Netns,
    /// Where tungate runs.
    pub gw: Netns,
    /// The client.
    pub client: Netns,
}

impl Topology {
    /// Builds the topology.
    pub fn new() -> Topology {
        let t = Topology {
            rs: Netns::new("rs"),
            gw: Netns::new("gw"),
            client: Netns::new("cl"),
        };
        veth(
            &t.gw,
            "g0",
            &mac_text(GW_RS_MAC),
            &t.rs,
            "r0",
            &mac_text(RS_MAC),
        );
        veth(
            &t.gw,
            "g1",
            &mac_text(GW_CLIENT_MAC),
            &t.client,
            "c0",
            &mac_text(CLIENT_MAC),
        );
        t.gw.ip(&["addr", "add", &format!("{GIP}/24"), "dev", "g0"]);
        t.gw.ip(&["addr", "add", &format!("{GW_CLIENT_IP}/24"), "dev", "g1"]);
        t.rs.ip(&["addr", "add", &format!("{RIP}/24"), "dev", "r0"]);
        t.client
            .ip(&["addr", "add", &format!("{CIP}/24"), "dev", "c0"]);
        t
    }

    /// The usual configuration: peer `rs1` (RIP) serving VIP, plus `extra` TOML.
    pub fn config(&self, extra: &str) -> String {
        format!(
            "[gateway]\naddress = \"{GIP}\"\n{extra}\n\
             [[peers]]\nname = \"rs1\"\naddress = \"{RIP}\"\nvips = [\"{VIP}\"]\n"
        )
    }
}

/// An AF_PACKET socket bound to `interface` of the calling thread's namespace, receiving
/// frames of EtherType `protocol` (0: none, a socket that only sends).
pub fn packet_socket(interface: &str, protocol: u16) -> OwnedFd {
    // SAFETY: plain socket(2) call.
    let fd = unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            i32::from(protocol.to_be()),
        )
    };
    assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
    // SAFETY: fd was just created and is owned by nobody else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let index = nix::net::if_::if_nametoindex(interface).expect("interface");
    // SAFETY: all-zero sockaddr_ll is valid; fields set below.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = protocol.to_be();
    sll.sll_ifindex = index as i32;
    // SAFETY: sll is a valid sockaddr_ll of the size passed.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&raw const sll).cast(),
            size_of::<libc::sockaddr_ll>() as u32,
        )
    };
    assert_eq!(rc, 0, "bind: {}", std::io::Error::last_os_error());
    fd
}

/// An AF_PACKET socket bound to one interface of a namespace: sends and receives whole
/// Ethernet frames (or L3 packets on L3 devices).
pub struct FrameSocket {
    fd: OwnedFd,
}

impl FrameSocket {
    /// Opens the socket on `interface` inside `ns` (receives IPv4 frames only).
    pub fn open(ns: &Netns, interface: &str) -> FrameSocket {
        let interface = interface.to_owned();
        let fd = ns.run(move || {
            let fd = packet_socket(&interface, 0x0800);
            // Room for a few thousand frames, so a test may read after sending.
            let size: libc::c_int = 16 << 20;
            // SAFETY: fd is open; the value is a c_int whose size is passed.
            unsafe {
                libc::setsockopt(
                    fd.as_raw_fd(),
                    libc::SOL_SOCKET,
                    libc::SO_RCVBUFFORCE,
                    (&raw const size).cast(),
                    size_of::<libc::c_int>() as u32,
                )
            };
            fd
        });
        FrameSocket { fd }
    }

    /// The raw socket, for setting extra options.
    pub fn raw_fd(&self) -> std::os::fd::RawFd {
        self.fd.as_raw_fd()
    }

    /// Sends one frame as it is.
    pub fn send(&self, frame: &[u8]) {
        // SAFETY: frame is a valid buffer of the given length.
        let n = unsafe { libc::send(self.fd.as_raw_fd(), frame.as_ptr().cast(), frame.len(), 0) };
        assert_eq!(
            n,
            frame.len() as isize,
            "send: {}",
            std::io::Error::last_os_error()
        );
    }

    /// Waits at most `limit` for an incoming frame that `wanted` accepts (others are
    /// skipped); true as soon as one arrives.
    pub fn wait_for(&self, limit: Duration, wanted: impl Fn(&[u8]) -> bool) -> bool {
        let deadline = Instant::now() + limit;
        let mut found = false;
        let mut remaining = limit;
        while !found && !remaining.is_zero() {
            let got = self.receive_for(remaining.min(Duration::from_millis(20)), |f| wanted(f));
            found = !got.is_empty();
            remaining = deadline.saturating_duration_since(Instant::now());
        }
        found
    }

    /// Receives frames until `deadline` passes with nothing more, keeping those `keep`
    /// accepts (incoming only; the socket also sees its own host's outgoing frames).
    pub fn receive_for(&self, quiet: Duration, keep: impl Fn(&[u8]) -> bool) -> Vec<Vec<u8>> {
        let mut got = Vec::new();
        let mut buf = vec![0u8; 70000];
        let mut deadline = Instant::now() + quiet;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return got;
            }
            let mut pfd = libc::pollfd {
                fd: self.fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: pfd is one valid pollfd.
            let rc = unsafe { libc::poll(&raw mut pfd, 1, left.as_millis().max(1) as i32) };
            if rc <= 0 {
                continue;
            }
            // SAFETY: an all-zero sockaddr_ll is valid for recvfrom to fill.
            let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
            let mut len = size_of::<libc::sockaddr_ll>() as u32;
            // SAFETY: buf and sll are valid for writes of the sizes given.
            let n = unsafe {
                libc::recvfrom(
                    self.fd.as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    libc::MSG_DONTWAIT,
                    (&raw mut sll).cast(),
                    &raw mut len,
                )
            };
            if n > 0 && sll.sll_pkttype != libc::PACKET_OUTGOING && keep(&buf[..n as usize]) {
                got.push(buf[..n as usize].to_vec());
                deadline = Instant::now() + quiet;
            }
        }
    }
}
