//! `setsockopt` for the data path's sockets (AF_PACKET rings, AF_XDP rings and UMEM): one
//! checked call that passes a value's size with it. It never chooses an option itself.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

/// Sets option `name` of level `level` on socket `fd` to `value`.
pub(crate) fn set<T>(
    fd: &OwnedFd,
    level: libc::c_int,
    name: libc::c_int,
    value: &T,
) -> io::Result<()> {
    // SAFETY: fd is an open socket; value points at a T whose size is passed.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (value as *const T).cast(),
            size_of::<T>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}
