//! The worker loop's system calls ([`tungate_datapath::uring`]) against real AF_PACKET and
//! AF_XDP sockets in a namespace (needs root): a receive socket whose device goes down
//! reports an error once, and the loop must clear it and sleep again rather than spin on it.
//! On the AF_XDP path the worker's io_uring polls its AF_XDP socket beside the TPACKET one
//! and kicks the AF_XDP transmit ring through the same ring.

use std::time::{Duration, Instant};

use tungate_datapath::uring::{LoopCalls, WorkerUring};
use tungate_test_support::topology::veth;
use tungate_test_support::xsk::BareXsk;
use tungate_test_support::{FrameSocket, Netns};

/// How long `wait` sleeps with nothing to read, measured.
fn sleep_of(calls: &mut LoopCalls, timeout: Duration) -> Duration {
    let started = Instant::now();
    calls.wait(timeout);
    started.elapsed()
}

fn a_device_going_down_wakes_the_loop_once(mut calls: LoopCalls, ns: &Netns) {
    assert!(
        sleep_of(&mut calls, Duration::from_millis(200)) >= Duration::from_millis(150),
        "nothing to read: the loop sleeps"
    );
    ns.ip(&["link", "set", "x0", "down"]);
    assert!(
        sleep_of(&mut calls, Duration::from_secs(10)) < Duration::from_secs(5),
        "the device going down wakes the loop"
    );
    // The error was read: the loop sleeps again (no spin on a socket in error).
    for _ in 0..3 {
        assert!(
            sleep_of(&mut calls, Duration::from_millis(200)) >= Duration::from_millis(150),
            "the loop spins on the socket's error"
        );
    }
}

fn topology() -> (Netns, Netns, FrameSocket) {
    let a = Netns::new("lc");
    let b = Netns::new("lc");
    veth(&a, "x0", "02:00:00:00:0c:01", &b, "x1", "02:00:00:00:0c:02");
    let socket = FrameSocket::open(&a, "x0");
    (a, b, socket)
}

#[test]
fn io_uring_clears_a_receive_socket_error_and_sleeps_again() {
    let (a, _b, socket) = topology();
    let calls = LoopCalls::Uring(Box::new(WorkerUring::new(&[socket.raw_fd()]).unwrap()));
    a_device_going_down_wakes_the_loop_once(calls, &a);
}

#[test]
fn the_poll_fallback_clears_it_too() {
    let (a, _b, socket) = topology();
    let calls = LoopCalls::Syscalls(vec![libc::pollfd {
        fd: socket.raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    }]);
    a_device_going_down_wakes_the_loop_once(calls, &a);
}

#[test]
fn on_the_af_xdp_path_io_uring_polls_and_kicks_the_af_xdp_socket_too() {
    let (a, _b, socket) = topology();
    // The receive set of an AF_XDP worker: its AF_XDP socket first, then the TPACKET one.
    let xsk = BareXsk::open(&a, "x0", 0);
    let uring = WorkerUring::new(&[xsk.raw_fd(), socket.raw_fd()]).unwrap();
    let mut calls = LoopCalls::Uring(Box::new(uring));
    // A kick of the AF_XDP transmit ring goes through the ring (a zero-length send with
    // MSG_DONTWAIT, completed inline) and leaves nothing behind that wakes the loop.
    for _ in 0..3 {
        calls.kick(&[xsk.raw_fd()]);
    }
    a_device_going_down_wakes_the_loop_once(calls, &a);
}
