//! The one BPF command aya 0.13 does not offer for an XSKMAP: deleting an entry (unbinding
//! a queue's socket). A raw `bpf(2)` call; nothing else in the crate calls the kernel directly.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

/// `BPF_MAP_DELETE_ELEM` (linux/bpf.h).
const BPF_MAP_DELETE_ELEM: libc::c_long = 3;

/// The `map_elem` member of `union bpf_attr`.
#[repr(C)]
struct MapElemAttr {
    map_fd: u32,
    _pad: u32,
    key: u64,
    value: u64,
    flags: u64,
}

/// Deletes the entry `key` of an array-like map with 4-byte keys; `Ok(false)` when it had
/// none.
pub(crate) fn map_delete_u32(map: BorrowedFd<'_>, key: u32) -> io::Result<bool> {
    let attr = MapElemAttr {
        map_fd: map.as_raw_fd() as u32,
        _pad: 0,
        key: (&raw const key) as u64,
        value: 0,
        flags: 0,
    };
    // SAFETY: `attr` is a valid `bpf_attr` prefix of the size passed, its key pointer points
    // at `key`, which lives across the call; the kernel only reads both.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_MAP_DELETE_ELEM,
            &raw const attr,
            size_of::<MapElemAttr>(),
        )
    };
    if rc == 0 {
        return Ok(true);
    }
    let e = io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::ENOENT) {
        Ok(false)
    } else {
        Err(e)
    }
}
