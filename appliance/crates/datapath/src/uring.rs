//! The worker's io_uring: the system calls of the packet loop. The packets themselves move
//! through the mapped AF_PACKET rings ([`super::ring`]); what is left for the kernel is
//! waking a worker whose receive rings are empty (one-shot `POLL_ADD` per receive socket,
//! armed only when the worker is about to sleep, with the sleep's timeout passed to the same
//! `io_uring_enter`) and kicking the transmit rings (one zero-length `SEND` per ring with
//! requested frames, all of a batch in one `io_uring_enter`, completed inline because they
//! carry `MSG_DONTWAIT`).
//!
//! Where io_uring is refused (`kernel.io_uring_disabled`, a seccomp filter) the same two
//! calls fall back to `poll(2)` and `send(2)`, with a warning, so the gateway still forwards.
//! It never touches packet memory and never blocks longer than the timeout it is given.
//!
//! [`LoopCalls`] and [`WorkerUring`] are public only so that an integration test can drive
//! the loop's sleep and kicks against real sockets in a network namespace
//! (`tests/it/loop_calls.rs`).

use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

use io_uring::{IoUring, opcode, types};

/// `user_data` of a transmit kick (receive polls carry their socket's slot).
const KICK: u64 = 1 << 63;

/// How the worker waits and kicks: through its io_uring, or plain system calls.
pub enum LoopCalls {
    /// The worker's own io_uring.
    Uring(Box<WorkerUring>),
    /// `poll(2)` and `send(2)` (io_uring refused by this host).
    Syscalls(Vec<libc::pollfd>),
}

impl LoopCalls {
    /// io_uring for `receive_fds` (the worker's receive sockets, in slot order), or the
    /// plain calls with a warning when the kernel refuses it.
    pub(crate) fn new(worker: usize, receive_fds: &[RawFd]) -> LoopCalls {
        match WorkerUring::new(receive_fds) {
            Ok(u) => LoopCalls::Uring(Box::new(u)),
            Err(e) => {
                tracing::warn!(
                    "worker {worker}: io_uring unavailable ({e}); using poll(2) and send(2) \
                     (allow io_uring: sysctl kernel.io_uring_disabled=0, and in the seccomp \
                     filter)"
                );
                LoopCalls::Syscalls(
                    receive_fds
                        .iter()
                        .map(|&fd| libc::pollfd {
                            fd,
                            events: libc::POLLIN,
                            revents: 0,
                        })
                        .collect(),
                )
            }
        }
    }

    /// Sleeps until a receive socket is readable or `timeout` has passed.
    pub fn wait(&mut self, timeout: Duration) {
        match self {
            LoopCalls::Uring(u) => u.wait(timeout),
            LoopCalls::Syscalls(fds) => {
                // SAFETY: fds is a valid array of pollfd of the length passed.
                unsafe {
                    libc::poll(
                        fds.as_mut_ptr(),
                        fds.len() as libc::nfds_t,
                        timeout.as_millis().min(i32::MAX as u128) as libc::c_int,
                    )
                };
                for p in fds.iter() {
                    if p.revents & libc::POLLERR != 0 {
                        clear_socket_error(p.fd);
                    }
                }
            }
        }
    }

    /// Asks the kernel to send the requested frames of each transmit ring in `transmit_fds`;
    /// returns once it has gone through them (which frames it took is read from the rings).
    pub fn kick(&mut self, transmit_fds: &[RawFd]) {
        match self {
            LoopCalls::Uring(u) => u.kick(transmit_fds),
            LoopCalls::Syscalls(_) => {
                for &fd in transmit_fds {
                    // SAFETY: a zero-length send with no buffer; the kernel reads the ring.
                    let rc = unsafe { libc::send(fd, std::ptr::null(), 0, libc::MSG_DONTWAIT) };
                    if rc < 0 {
                        tracing::debug!("transmit ring send: {}", io::Error::last_os_error());
                    }
                }
            }
        }
    }
}

/// Reads (and so clears) a socket's pending error: a receive socket whose device went away
/// or down reports `ENETDOWN` once, and until it is read every poll would return at once and
/// the worker would spin instead of sleeping.
fn clear_socket_error(fd: RawFd) {
    let mut error: libc::c_int = 0;
    let mut len = size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: error and len are valid for writes of the sizes passed.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ERROR,
            (&raw mut error).cast(),
            &mut len,
        )
    };
    if rc == 0 && error != 0 {
        tracing::debug!(
            "receive socket error: {}",
            io::Error::from_raw_os_error(error)
        );
    }
}

/// A worker's io_uring with its receive sockets' poll state.
pub struct WorkerUring {
    ring: IoUring,
    receive_fds: Vec<RawFd>,
    /// Whether a one-shot poll is in flight for each receive socket.
    armed: Vec<bool>,
    /// Kicks submitted and not completed yet.
    kicks_in_flight: usize,
}

impl WorkerUring {
    /// A ring large enough for one poll per receive socket plus a batch of kicks.
    pub fn new(receive_fds: &[RawFd]) -> io::Result<WorkerUring> {
        let entries = (2 * receive_fds.len() + 64).next_power_of_two() as u32;
        Ok(WorkerUring {
            ring: IoUring::new(entries)?,
            receive_fds: receive_fds.to_vec(),
            armed: vec![false; receive_fds.len()],
            kicks_in_flight: 0,
        })
    }

    fn wait(&mut self, timeout: Duration) {
        for slot in 0..self.receive_fds.len() {
            if !self.armed[slot] {
                let poll =
                    opcode::PollAdd::new(types::Fd(self.receive_fds[slot]), libc::POLLIN as u32)
                        .build()
                        .user_data(slot as u64);
                self.push(&poll);
                self.armed[slot] = true;
            }
        }
        let ts = types::Timespec::from(timeout);
        let args = types::SubmitArgs::new().timespec(&ts);
        match self.ring.submitter().submit_with_args(1, &args) {
            Ok(_) => {}
            Err(e) if matches!(e.raw_os_error(), Some(libc::ETIME | libc::EINTR)) => {}
            Err(e) => tracing::debug!("io_uring wait: {e}"),
        }
        self.reap();
    }

    fn kick(&mut self, transmit_fds: &[RawFd]) {
        if transmit_fds.is_empty() {
            return;
        }
        for &fd in transmit_fds {
            let send = opcode::Send::new(types::Fd(fd), std::ptr::null(), 0)
                .flags(libc::MSG_DONTWAIT)
                .build()
                .user_data(KICK);
            self.push(&send);
            self.kicks_in_flight += 1;
        }
        // With MSG_DONTWAIT the sends complete inline during the submission (never parked
        // for a retry), so the frames' states are final once they are reaped.
        while self.kicks_in_flight > 0 {
            if let Err(e) = self.ring.submit_and_wait(self.kicks_in_flight)
                && e.raw_os_error() != Some(libc::EINTR)
            {
                tracing::debug!("io_uring kick: {e}");
                self.kicks_in_flight = 0;
                break;
            }
            self.reap();
        }
    }

    /// Queues `entry`, submitting what is queued first if the submission queue is full.
    fn push(&mut self, entry: &io_uring::squeue::Entry) {
        loop {
            // SAFETY: the entries tungate queues (polls, zero-length sends) point at no
            // memory, so nothing must outlive the call; the fds stay open while the worker
            // (which owns this ring) lives.
            if unsafe { self.ring.submission().push(entry) }.is_ok() {
                return;
            }
            if let Err(e) = self.ring.submit() {
                tracing::debug!("io_uring submit: {e}");
            }
        }
    }

    /// Takes every completion: a receive poll that fired is disarmed, a kick is done.
    fn reap(&mut self) {
        for cqe in self.ring.completion() {
            if cqe.user_data() == KICK {
                self.kicks_in_flight = self.kicks_in_flight.saturating_sub(1);
                if cqe.result() < 0 {
                    tracing::debug!(
                        "transmit ring send: {}",
                        io::Error::from_raw_os_error(-cqe.result())
                    );
                }
            } else if let Some(armed) = self.armed.get_mut(cqe.user_data() as usize) {
                *armed = false;
                if cqe.result() > 0 && cqe.result() & i32::from(libc::POLLERR) != 0 {
                    clear_socket_error(self.receive_fds[cqe.user_data() as usize]);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::time::Instant;

    fn pipe() -> (OwnedFd, OwnedFd) {
        let mut fds = [0; 2];
        // SAFETY: fds has room for the two descriptors pipe(2) writes.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        // SAFETY: pipe(2) just returned these descriptors, owned by nobody else.
        unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
    }

    #[test]
    fn a_readable_socket_wakes_the_wait_and_a_quiet_one_times_out() {
        let (quiet_r, _quiet_w) = pipe();
        let (busy_r, busy_w) = pipe();
        let mut calls = LoopCalls::new(0, &[quiet_r.as_raw_fd(), busy_r.as_raw_fd()]);
        assert!(
            matches!(calls, LoopCalls::Uring(_)),
            "io_uring is available on this kernel"
        );
        let LoopCalls::Uring(u) = &mut calls else {
            unreachable!()
        };
        u.wait(Duration::from_millis(20));
        assert_eq!(
            u.armed,
            [true, true],
            "nothing readable: both polls stay armed"
        );
        // SAFETY: writes one byte from a valid buffer.
        let written = unsafe { libc::write(busy_w.as_raw_fd(), b"x".as_ptr().cast(), 1) };
        assert_eq!(written, 1);
        let started = Instant::now();
        u.wait(Duration::from_secs(10));
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the write woke the wait"
        );
        assert_eq!(u.armed, [true, false], "the readable socket's poll fired");
    }

    #[test]
    fn a_kick_completes_before_it_returns_and_errors_are_taken() {
        // A kick on a socket that cannot send completes (with an error) all the same.
        let (r, _w) = pipe();
        let mut u = WorkerUring::new(&[r.as_raw_fd()]).unwrap();
        u.kick(&[r.as_raw_fd(), r.as_raw_fd()]);
        assert_eq!(u.kicks_in_flight, 0);
    }

    #[test]
    fn the_syscall_fallback_wakes_and_times_out_the_same_way() {
        let (r, w) = pipe();
        let mut calls = LoopCalls::Syscalls(vec![libc::pollfd {
            fd: r.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        }]);
        let started = Instant::now();
        calls.wait(Duration::from_millis(30));
        assert!(
            started.elapsed() >= Duration::from_millis(25),
            "quiet: it slept"
        );
        // SAFETY: writes one byte from a valid buffer.
        let written = unsafe { libc::write(w.as_raw_fd(), b"x".as_ptr().cast(), 1) };
        assert_eq!(written, 1);
        let started = Instant::now();
        calls.wait(Duration::from_secs(10));
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the write woke it"
        );
        calls.kick(&[r.as_raw_fd()]);
    }
}
