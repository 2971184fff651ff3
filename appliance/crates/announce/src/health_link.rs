//! The health link: a TUN device created without `TUNSETPERSIST`, so it exists exactly as
//! long as this process holds its file descriptor; set up or down with `SIOCSIFFLAGS`.
//!
//! It carries no traffic (nothing is ever read from or written to it): its only meaning is
//! its existence and its `IFF_UP` flag, which a routing daemon follows (BIRD: `protocol
//! static { check link on; route GIP/32 via "tg-health"; }`). It never touches another
//! device.

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// The health link's name.
pub const HEALTH_DEVICE: &str = "tg-health";

/// `TUNSETIFF` (`_IOW('T', 202, int)`, linux/if_tun.h).
const TUNSETIFF: libc::c_ulong = 0x4004_54ca;

/// Why the health link could not be made or changed.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// The name is not a valid interface name.
    #[error("{0:?} is not a valid interface name (1 to 15 bytes, no '/' or spaces)")]
    BadName(String),
    /// A device of that name exists already.
    #[error(
        "a device named {0} exists already in this network namespace (another `tungate run \
         --fleet` here, or a persistent device someone made): stop that tungate or remove \
         the device (ip link del {0})"
    )]
    Exists(String),
    /// `/dev/net/tun` could not be opened.
    #[error(
        "cannot open /dev/net/tun for the health link {name}: {source}; fleet mode needs the \
         tun driver and CAP_NET_ADMIN"
    )]
    Open {
        /// The device name.
        name: String,
        /// The I/O error.
        source: io::Error,
    },
    /// The kernel refused to create the device or to change its flags.
    #[error("cannot {action} the health link {name}: {source}")]
    Ioctl {
        /// What was tried.
        action: &'static str,
        /// The device name.
        name: String,
        /// The I/O error.
        source: io::Error,
    },
}

/// A TUN device that vanishes with this process.
pub struct HealthLink {
    name: String,
    /// Holding it keeps the device; closing it (or dying) deletes the device.
    _tun: File,
    /// An `AF_INET` datagram socket for the interface-flag ioctls.
    control: OwnedFd,
}

impl std::fmt::Debug for HealthLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HealthLink")
            .field("name", &self.name)
            .finish()
    }
}

/// A zeroed `ifreq` naming `name` (checked to fit by the caller).
fn ifreq(name: &str) -> libc::ifreq {
    // SAFETY: `ifreq` is a plain C struct (a name array and a union of integers and
    // addresses) for which all-zero bytes are a valid value.
    let mut request: libc::ifreq = unsafe { std::mem::zeroed() };
    for (slot, byte) in request.ifr_name.iter_mut().zip(name.bytes()) {
        *slot = byte as libc::c_char;
    }
    request
}

impl HealthLink {
    /// Creates the device `name` (down) in this process's network namespace. Refuses a
    /// name that exists already, so a persistent device of the same name (which would not
    /// vanish with this process) is never adopted.
    pub fn create(name: &str) -> Result<HealthLink, LinkError> {
        if name.is_empty()
            || name.len() >= libc::IFNAMSIZ
            || name
                .bytes()
                .any(|b| b == b'/' || b.is_ascii_whitespace() || b == 0)
        {
            return Err(LinkError::BadName(name.to_owned()));
        }
        let c_name = std::ffi::CString::new(name).map_err(|_| LinkError::BadName(name.into()))?;
        // SAFETY: `c_name` is a valid NUL-terminated string that outlives the call.
        if unsafe { libc::if_nametoindex(c_name.as_ptr()) } != 0 {
            return Err(LinkError::Exists(name.to_owned()));
        }
        let tun = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/net/tun")
            .map_err(|source| LinkError::Open {
                name: name.to_owned(),
                source,
            })?;
        let ioctl_error = |action| {
            let source = io::Error::last_os_error();
            LinkError::Ioctl {
                action,
                name: name.to_owned(),
                source,
            }
        };
        let mut request = ifreq(name);
        request.ifr_ifru.ifru_flags = (libc::IFF_TUN | libc::IFF_NO_PI) as libc::c_short;
        // SAFETY: TUNSETIFF reads and writes one `ifreq`, which `request` is; the fd is open.
        if unsafe { libc::ioctl(tun.as_raw_fd(), TUNSETIFF, &mut request) } < 0 {
            return Err(ioctl_error("create"));
        }
        // SAFETY: plain socket(2) call; the result is checked before it is owned.
        let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            return Err(ioctl_error("open a control socket for"));
        }
        // SAFETY: `fd` is a new, valid descriptor that nothing else owns.
        let control = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(HealthLink {
            name: name.to_owned(),
            _tun: tun,
            control,
        })
    }

    /// The device's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn flags(&self) -> Result<libc::c_short, LinkError> {
        let mut request = ifreq(&self.name);
        // SAFETY: SIOCGIFFLAGS reads the name and writes the flags of one `ifreq`.
        if unsafe { libc::ioctl(self.control.as_raw_fd(), libc::SIOCGIFFLAGS, &mut request) } < 0 {
            return Err(LinkError::Ioctl {
                action: "read the flags of",
                name: self.name.clone(),
                source: io::Error::last_os_error(),
            });
        }
        // SAFETY: the kernel filled the union's flags member.
        Ok(unsafe { request.ifr_ifru.ifru_flags })
    }

    /// Whether the device is up (`IFF_UP`).
    pub fn is_up(&self) -> Result<bool, LinkError> {
        Ok(self.flags()? & libc::IFF_UP as libc::c_short != 0)
    }
}

impl crate::Link for HealthLink {
    fn set_up(&mut self, up: bool) -> Result<(), LinkError> {
        let flags = self.flags()?;
        let wanted = if up {
            flags | libc::IFF_UP as libc::c_short
        } else {
            flags & !(libc::IFF_UP as libc::c_short)
        };
        if wanted == flags {
            return Ok(());
        }
        let mut request = ifreq(&self.name);
        request.ifr_ifru.ifru_flags = wanted;
        // SAFETY: SIOCSIFFLAGS reads one `ifreq` (name and flags), which `request` is.
        if unsafe { libc::ioctl(self.control.as_raw_fd(), libc::SIOCSIFFLAGS, &request) } < 0 {
            return Err(LinkError::Ioctl {
                action: if up { "set up" } else { "set down" },
                name: self.name.clone(),
                source: io::Error::last_os_error(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_names_are_refused_before_anything_is_made() {
        for name in ["", "a-name-far-too-long", "a/b", "a b"] {
            assert!(
                matches!(HealthLink::create(name), Err(LinkError::BadName(_))),
                "{name:?}"
            );
        }
    }

    #[test]
    fn an_existing_device_is_never_adopted() {
        // `lo` exists in every network namespace.
        assert!(matches!(
            HealthLink::create("lo"),
            Err(LinkError::Exists(n)) if n == "lo"
        ));
    }
}
