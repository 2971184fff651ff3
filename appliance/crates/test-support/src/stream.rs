//! A numbered stream of good replies through the gateway while a test does something else:
//! a sender in `rs` paces IPIP-encapsulated UDP replies (VIP -> CIP, each carrying its
//! sequence number) until told to stop, and a receiver in `client` collects the numbers
//! that arrive. Counts only; no timing is asserted. Both loops are bounded in time.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::flood::BulkSender;
use crate::frames::FrameSocket;
use crate::packets::{ethernet, ipip, udp};
use crate::topology::{CIP, GIP, GW_RS_MAC, RIP, RS_MAC, Topology, VIP};

/// Longest a stream may run (its loops stop by themselves after this).
const LONGEST: Duration = Duration::from_secs(300);
/// Frames handed to the sender per call (paced inside it).
const CHUNK: usize = 100;

/// The frame of good reply `n`: VIP -> CIP, UDP, the number in the first payload bytes.
pub fn numbered(n: u32) -> Vec<u8> {
    let mut p = udp(VIP, CIP, 64, 4);
    p[28..32].copy_from_slice(&n.to_be_bytes());
    p[26..28].fill(0); // no UDP checksum: the number is the only thing that changes
    ethernet(GW_RS_MAC, RS_MAC, &ipip(RIP, GIP, &p))
}

/// The number of a reply as the client receives it (Ethernet + inner IPv4 + UDP).
pub fn number_of(frame: &[u8]) -> Option<u32> {
    (frame.len() >= 46 && frame[26..30] == VIP.octets() && frame[30..34] == CIP.octets())
        .then(|| u32::from_be_bytes(frame[42..46].try_into().unwrap()))
}

/// A running numbered stream.
pub struct NumberedStream {
    stop: Arc<AtomicBool>,
    sender: Option<JoinHandle<u32>>,
    receiver: Option<JoinHandle<Vec<u32>>>,
}

/// What a stream delivered.
pub struct Delivered {
    /// Replies sent (numbered 0..sent).
    pub sent: u32,
    /// Numbers received by the client, in arrival order.
    pub received: Vec<u32>,
}

impl Delivered {
    /// Whether every reply arrived exactly once and in order.
    pub fn complete(&self) -> bool {
        self.received.len() == self.sent as usize && self.received.iter().copied().eq(0..self.sent)
    }

    /// Replies that never arrived.
    pub fn missing(&self) -> usize {
        let got: std::collections::BTreeSet<u32> = self.received.iter().copied().collect();
        (0..self.sent).filter(|n| !got.contains(n)).count()
    }
}

impl NumberedStream {
    /// Starts sending `per_second` replies from `rs` (the client's neighbour must be resolved
    /// already) and receiving them in `client`; the receiver stops `quiet` after the last
    /// reply arrives.
    pub fn start(t: &Topology, per_second: u64, quiet: Duration) -> NumberedStream {
        let stop = Arc::new(AtomicBool::new(false));
        let client = FrameSocket::open(&t.client, "c0");
        let receiver = std::thread::spawn(move || {
            client
                .receive_for(quiet, |f| number_of(f).is_some())
                .iter()
                .filter_map(|f| number_of(f))
                .collect()
        });
        let sender = BulkSender::open(&t.rs, "r0");
        let sending = stop.clone();
        let sender = std::thread::spawn(move || {
            let started = Instant::now();
            let mut next = 0u32;
            while !sending.load(Ordering::Relaxed) && started.elapsed() < LONGEST {
                let frames: Vec<Vec<u8>> = (next..next + CHUNK as u32).map(numbered).collect();
                let order: Vec<usize> = (0..CHUNK).collect();
                let due = started + Duration::from_secs_f64(f64::from(next) / per_second as f64);
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
                let sent = sender.send(&frames, &order, Some(per_second), Instant::now() + LONGEST);
                next += sent as u32;
            }
            next
        });
        NumberedStream {
            stop,
            sender: Some(sender),
            receiver: Some(receiver),
        }
    }

    /// Stops sending, waits for the receiver to fall quiet, and returns what was delivered.
    pub fn finish(mut self) -> Delivered {
        self.stop.store(true, Ordering::Relaxed);
        let sent = self.sender.take().unwrap().join().expect("stream sender");
        let received = self
            .receiver
            .take()
            .unwrap()
            .join()
            .expect("stream receiver");
        Delivered { sent, received }
    }
}

impl Drop for NumberedStream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
