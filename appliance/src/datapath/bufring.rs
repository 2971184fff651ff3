//! A provided-buffer ring (`IORING_REGISTER_PBUF_RING`) and the memory behind it: the kernel
//! picks a free buffer for each multishot receive; the worker hands buffers back in batches.
//!
//! This module owns the two memory mappings and the ring's tail; it never interprets the
//! bytes in a buffer. A buffer id is either in the ring (the kernel may write it) or held by
//! the worker (after its completion, until [`BufRing::recycle`]) — never both.

use std::io;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU16, Ordering};

use io_uring::IoUring;
use io_uring::types::BufRingEntry;

/// An anonymous, page-aligned memory mapping.
struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

impl Mapping {
    fn new(len: usize) -> io::Result<Mapping> {
        // SAFETY: an anonymous private mapping with no address hint has no preconditions.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr = NonNull::new(ptr.cast()).ok_or_else(|| io::Error::other("mmap gave null"))?;
        Ok(Mapping { ptr, len })
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: ptr/len are exactly the mapping created in `new`, unmapped only here.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

/// A registered buffer ring with `count` buffers of `size` bytes each.
pub struct BufRing {
    ring: Mapping,
    memory: Mapping,
    count: u16,
    size: usize,
    group: u16,
    tail: u16,
}

impl BufRing {
    /// Allocates the buffers, registers the ring as buffer group `group` of `uring` and
    /// puts every buffer in it. `count` must be a power of two (at most 32768).
    pub fn register(uring: &IoUring, group: u16, count: u16, size: usize) -> io::Result<BufRing> {
        if !count.is_power_of_two() || count > 32768 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "buffer count must be a power of two up to 32768",
            ));
        }
        let ring = Mapping::new(usize::from(count) * size_of::<BufRingEntry>())?;
        let memory = Mapping::new(usize::from(count) * size)?;
        // SAFETY: the ring mapping is page aligned, holds `count` entries and lives (in the
        // returned BufRing) until after `unregister` in Drop.
        unsafe {
            uring.submitter().register_buf_ring_with_flags(
                ring.ptr.as_ptr() as u64,
                count,
                group,
                0,
            )?;
        }
        let mut r = BufRing {
            ring,
            memory,
            count,
            size,
            group,
            tail: 0,
        };
        for bid in 0..count {
            r.recycle(bid);
        }
        r.publish();
        Ok(r)
    }

    /// The buffer group id.
    pub fn group(&self) -> u16 {
        self.group
    }

    /// Size of each buffer.
    pub fn buffer_size(&self) -> usize {
        self.size
    }

    /// Buffer `bid`'s bytes, for the worker that holds it (the kernel gave it back in a
    /// completion and it has not been recycled since).
    pub fn buffer(&mut self, bid: u16) -> &mut [u8] {
        let bid = usize::from(bid % self.count);
        // SAFETY: the range lies inside `memory`; the worker holds this buffer, so the kernel
        // does not write it now, and `&mut self` keeps two views of it from coexisting.
        unsafe {
            std::slice::from_raw_parts_mut(self.memory.ptr.as_ptr().add(bid * self.size), self.size)
        }
    }

    /// Raw pointer to buffer `bid` (for send requests that stay in flight across batches).
    pub fn buffer_ptr(&self, bid: u16) -> *mut u8 {
        let bid = usize::from(bid % self.count);
        // SAFETY: the offset stays inside the `memory` mapping.
        unsafe { self.memory.ptr.as_ptr().add(bid * self.size) }
    }

    /// Queues buffer `bid` to go back to the kernel at the next [`Self::publish`].
    pub fn recycle(&mut self, bid: u16) {
        let slot = usize::from(self.tail & (self.count - 1));
        let entries = self.ring.ptr.as_ptr().cast::<BufRingEntry>();
        // SAFETY: slot < count, so the entry lies inside the ring mapping; the kernel only
        // reads entries between its head and the published tail, and this one is past it.
        let entry = unsafe { &mut *entries.add(slot) };
        entry.set_addr(self.buffer_ptr(bid) as u64);
        entry.set_len(self.size as u32);
        entry.set_bid(bid);
        self.tail = self.tail.wrapping_add(1);
    }

    /// Makes every recycled buffer visible to the kernel (one release store).
    pub fn publish(&mut self) {
        let entries = self.ring.ptr.as_ptr().cast::<BufRingEntry>();
        // SAFETY: the tail field lives in the first entry of the ring mapping; the kernel
        // reads it concurrently, hence the atomic release store.
        unsafe {
            let tail = BufRingEntry::tail(entries).cast_mut();
            AtomicU16::from_ptr(tail).store(self.tail, Ordering::Release);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registers_and_refuses_bad_counts() {
        let uring = IoUring::new(8).unwrap();
        assert!(BufRing::register(&uring, 1, 3, 64).is_err());
        let mut r = BufRing::register(&uring, 1, 4, 128).unwrap();
        assert_eq!(r.buffer(2).len(), 128);
        r.buffer(2)[0] = 7;
        assert_eq!(r.buffer(6)[0], 7, "ids wrap modulo the count");
        assert_eq!(r.group(), 1);
        r.recycle(2);
        r.publish();
    }
}
