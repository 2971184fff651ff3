//! The errors of network configuration, and the translation of kernel error numbers into
//! messages that say what failed, where, and what to do.
//!
//! This module owns wording only; it never talks to the kernel itself.

use std::io;

/// Why planning, applying or removing the network configuration failed.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// The kernel cannot build ipip tunnels.
    #[error(
        "cannot create tunnel {tunnel}: this kernel has no ipip support (load the ipip module, \
         or use decap mode userspace)"
    )]
    NoIpip {
        /// The tunnel that was being created.
        tunnel: String,
    },
    /// The kernel cannot build a gre or fou/gue-encapsulated tunnel.
    #[error(
        "cannot create tunnel {tunnel}: this kernel lacks the {modules} module support it \
         needs (load it, or use decap mode userspace)"
    )]
    NoTunnelSupport {
        /// The tunnel that was being created.
        tunnel: String,
        /// The modules it needs.
        modules: &'static str,
    },
    /// The kernel has no fou/gue receive ports (no `fou` module).
    #[error(
        "cannot add fou/gue receive port {port}: this kernel has no fou support (load the fou \
         module, or use decap mode userspace)"
    )]
    NoFou {
        /// The port that was being added.
        port: u16,
    },
    /// A network interface the configuration names does not exist.
    #[error("{action}: no interface named {interface:?} in this network namespace{hint}")]
    MissingInterface {
        /// What was being done.
        action: String,
        /// The missing interface.
        interface: String,
        /// Extra advice (may be empty).
        hint: String,
    },
    /// The kernel refused for lack of privilege.
    #[error("{action}: permission denied (run as root or with CAP_NET_ADMIN)")]
    PermissionDenied {
        /// What was being done.
        action: String,
    },
    /// The object already exists in a form tungate did not create.
    #[error("{action}: already exists{hint}")]
    AlreadyExists {
        /// What was being done.
        action: String,
        /// Extra advice (may be empty).
        hint: String,
    },
    /// An object tungate wants to manage exists but belongs to someone else and differs.
    #[error(
        "{key} exists but was not created by tungate and differs ({found}); remove it or \
         change the configuration so that tungate does not need it"
    )]
    Conflict {
        /// The object, as in the plan (`route 0.0.0.0/0 table 1`).
        key: String,
        /// What was found instead.
        found: String,
    },
    /// Any other refusal of the kernel, with the operation and errno.
    #[error("{action}: {source}")]
    Kernel {
        /// What was being done.
        action: String,
        /// The error the kernel returned.
        source: io::Error,
    },
    /// The netlink conversation itself failed (socket, unexpected message).
    #[error("{action}: netlink failed: {detail}")]
    Netlink {
        /// What was being done.
        action: String,
        /// What went wrong.
        detail: String,
    },
    /// A sysctl could not be read or written under `/proc/sys`.
    #[error("sysctl {key}: cannot {verb} {path}: {source}")]
    Sysctl {
        /// The sysctl in dotted form.
        key: String,
        /// `read` or `write`.
        verb: &'static str,
        /// The file under `/proc/sys`.
        path: String,
        /// The I/O error.
        source: io::Error,
    },
    /// The state file (original values of changed settings) could not be read or written.
    #[error("state file {path}: {detail} (give another place with --state-file)")]
    StateFile {
        /// The file.
        path: String,
        /// What went wrong.
        detail: String,
    },
    /// The fence of `userspace` decap mode (`table inet tungate_fence`) could not be
    /// installed or removed.
    #[error(
        "cannot {action} the tunnel fence, nftables table inet tungate_fence (needs \
         CAP_NET_ADMIN and nf_tables with fib in the kernel): {source}"
    )]
    DropTable {
        /// `install` or `remove`.
        action: &'static str,
        /// The error from the kernel.
        source: io::Error,
    },
    /// An nftables request failed.
    #[error("nftables, {action}: {source}")]
    Nftables {
        /// What was being done.
        action: String,
        /// The error.
        source: io::Error,
    },
}

impl NetError {
    /// Turns a kernel error number into the matching error for `action` (a phrase such as
    /// `creating route 0.0.0.0/0 table 1`). `interface` names the interface involved, if one.
    pub(crate) fn from_errno(
        action: impl Into<String>,
        errno: i32,
        interface: Option<&str>,
    ) -> Self {
        let action = action.into();
        match errno {
            libc::EPERM | libc::EACCES => NetError::PermissionDenied { action },
            libc::ENODEV if interface.is_some() => NetError::MissingInterface {
                action,
                interface: interface.unwrap_or_default().to_owned(),
                hint: String::new(),
            },
            libc::EEXIST => NetError::AlreadyExists {
                action,
                hint: String::new(),
            },
            libc::EADDRINUSE => NetError::AlreadyExists {
                action,
                hint: " (the address is in use)".into(),
            },
            _ => NetError::Kernel {
                action,
                source: io::Error::from_raw_os_error(errno),
            },
        }
    }

    /// Turns an rtnetlink error into a [`NetError`] for `action`.
    pub(crate) fn from_rtnetlink(
        action: impl Into<String>,
        error: rtnetlink::Error,
        interface: Option<&str>,
    ) -> Self {
        match error {
            rtnetlink::Error::NetlinkError(msg) => {
                Self::from_errno(action, msg.raw_code().abs(), interface)
            }
            other => NetError::Netlink {
                action: action.into(),
                detail: other.to_string(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errnos_become_messages_that_say_what_and_what_to_do() {
        let cases: &[(i32, Option<&str>, &str)] = &[
            (
                libc::EPERM,
                None,
                "creating x: permission denied (run as root or with CAP_NET_ADMIN)",
            ),
            (
                libc::ENODEV,
                Some("eth9"),
                "creating x: no interface named \"eth9\" in this network namespace",
            ),
            (libc::EEXIST, None, "creating x: already exists"),
            (
                libc::EADDRINUSE,
                None,
                "creating x: already exists (the address is in use)",
            ),
        ];
        for (errno, iface, expected) in cases {
            let msg = NetError::from_errno("creating x", *errno, *iface).to_string();
            assert_eq!(&msg, expected);
        }
        let other = NetError::from_errno("creating x", libc::EINVAL, None).to_string();
        assert!(other.starts_with("creating x: Invalid argument"), "{other}");
    }

    #[test]
    fn the_ipip_message_names_the_tunnel_and_the_way_out() {
        let msg = NetError::NoIpip {
            tunnel: "tg-rs1".into(),
        }
        .to_string();
        assert_eq!(
            msg,
            "cannot create tunnel tg-rs1: this kernel has no ipip support (load the ipip \
             module, or use decap mode userspace)"
        );
    }
}
