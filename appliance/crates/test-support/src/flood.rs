//! A bulk frame sender for load and flood tests: an AF_PACKET socket inside a namespace that
//! bypasses the qdisc layer and sends up to 64 frames per `sendmmsg`, either as fast as the
//! kernel takes them or paced to a rate. Every send loop is bounded in count and time.

use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use crate::frames::packet_socket;
use crate::netns::Netns;

/// Frames per `sendmmsg` call.
const BATCH: usize = 64;

/// A sending AF_PACKET socket bound to one interface of a namespace.
pub struct BulkSender {
    fd: OwnedFd,
}

impl BulkSender {
    /// Opens the socket on `interface` inside `ns`.
    pub fn open(ns: &Netns, interface: &str) -> BulkSender {
        let interface = interface.to_owned();
        let fd = ns.run(move || {
            let fd = packet_socket(&interface, 0);
            let one: libc::c_int = 1;
            // SAFETY: a valid c_int option value of the size passed.
            let rc = unsafe {
                libc::setsockopt(
                    fd.as_raw_fd(),
                    libc::SOL_PACKET,
                    libc::PACKET_QDISC_BYPASS,
                    (&raw const one).cast(),
                    size_of::<libc::c_int>() as u32,
                )
            };
            assert_eq!(rc, 0, "PACKET_QDISC_BYPASS");
            fd
        });
        BulkSender { fd }
    }

    /// Sends `frames[i]` for each index of `order`, in order, 64 per call, pacing to
    /// `per_second` frames per second when given (else as fast as the kernel takes them),
    /// and stops early when `deadline` passes. Returns how many of `order` were sent: a
    /// frame the kernel refuses (a full device queue) is tried again, never skipped.
    pub fn send(
        &self,
        frames: &[Vec<u8>],
        order: &[usize],
        per_second: Option<u64>,
        deadline: Instant,
    ) -> usize {
        let started = Instant::now();
        let mut sent = 0;
        let mut iov: Vec<libc::iovec> = Vec::with_capacity(BATCH);
        // SAFETY: mmsghdr is plain data; all-zero is valid before the fields are set.
        let mut msgs: Vec<libc::mmsghdr> =
            (0..BATCH).map(|_| unsafe { std::mem::zeroed() }).collect();
        while sent < order.len() && Instant::now() < deadline {
            if let Some(rate) = per_second {
                let due = started + Duration::from_secs_f64(sent as f64 / rate as f64);
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
            }
            let n = (order.len() - sent).min(BATCH);
            iov.clear();
            iov.extend(order[sent..sent + n].iter().map(|&i| libc::iovec {
                iov_base: frames[i].as_ptr() as *mut libc::c_void,
                iov_len: frames[i].len(),
            }));
            for (m, v) in msgs.iter_mut().zip(iov.iter_mut()) {
                m.msg_hdr.msg_iov = v;
                m.msg_hdr.msg_iovlen = 1;
            }
            // SAFETY: msgs[..n] point at iov[..n], which point at frames alive for the call.
            let rc = unsafe { libc::sendmmsg(self.fd.as_raw_fd(), msgs.as_mut_ptr(), n as u32, 0) };
            if rc > 0 {
                sent += rc as usize;
            } else {
                std::thread::yield_now();
            }
        }
        sent
    }
}
