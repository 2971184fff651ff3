//! One batch's accepted packets and their judgement: the packets are grouped by VIP, each
//! VIP's [`BatchFilter`] sees its group in one call, and the verdicts are applied (what a
//! filter rejected leaves the batch with its drop reason).
//!
//! This module only orders, hands out and removes packets; it never reads a socket, never
//! changes packet bytes and never counts (the caller counts each drop it reports).

use std::net::IpAddr;

use tungate_packet::DropReason;
use tungate_packet::vnet::VnetHeader;

use crate::filter::{Culprit, Decision, WorkerFilters};
use crate::io::Span;
use crate::tables::{PeerId, VipId};

/// One accepted packet of the current batch.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Accepted {
    /// The inner IPv4 packet, in a frame the worker holds.
    pub(crate) packet: Span,
    /// Offset of the inner header in the received frame, after the offload header (what
    /// the offload header's `csum_start` counts from).
    pub(crate) inner_in_frame: usize,
    /// The received offload header.
    pub(crate) vnet: VnetHeader,
    /// The VIP whose reply it is.
    pub(crate) vip: VipId,
    /// The peer it came from.
    pub(crate) peer: PeerId,
    /// The inner destination (the client).
    pub(crate) destination: IpAddr,
}

/// Buffers reused from batch to batch (no allocation per packet).
#[derive(Default)]
pub(crate) struct Scratch {
    decisions: Vec<Decision>,
    /// While a capture runs: the binding that dropped each packet.
    culprits: Vec<Option<Culprit>>,
    /// Always empty between calls; only its allocation is kept.
    views: Vec<&'static [u8]>,
}

impl Scratch {
    /// Buffers for batches of up to `batch` packets.
    pub(crate) fn with_capacity(batch: usize) -> Scratch {
        Scratch {
            decisions: Vec::with_capacity(batch),
            culprits: Vec::with_capacity(batch),
            views: Vec::with_capacity(batch),
        }
    }
}

/// Empties a vector of borrowed slices so its allocation can be reused with any lifetime
/// (the in-place `collect` keeps the allocation; no element is ever converted).
fn relifetime<'a, 'b>(mut v: Vec<&'a [u8]>) -> Vec<&'b [u8]> {
    v.clear();
    v.into_iter()
        .map(|_| -> &'b [u8] { unreachable!() })
        .collect()
}

/// Runs each VIP's filter on that VIP's packets of `accepted` (one call per VIP, the
/// packets in their order of arrival within it) and removes what a filter rejected,
/// reporting each to `dropped` with its reason (and, when `culprits` is asked for, while a
/// capture runs, the binding that dropped it). `address` names a VIP's address (its key
/// in `filters`), `bytes` gives a packet's bytes. With no filter at all the batch is left
/// as it is.
pub(crate) fn judge<'b>(
    accepted: &mut Vec<Accepted>,
    filters: &mut WorkerFilters,
    scratch: &mut Scratch,
    culprits: bool,
    address: impl Fn(VipId) -> Option<std::net::IpAddr>,
    bytes: impl Fn(Span) -> &'b [u8],
    mut dropped: impl FnMut(&Accepted, DropReason, Option<Culprit>),
) {
    if filters.by_vip.is_empty() {
        return;
    }
    // Stable: the order within a VIP (and so within a flow) holds.
    accepted.sort_by_key(|a| a.vip);
    let decisions = &mut scratch.decisions;
    decisions.clear();
    decisions.resize(accepted.len(), Decision::Pass);
    let found = &mut scratch.culprits;
    found.clear();
    if culprits {
        found.resize(accepted.len(), None);
    }
    let mut views: Vec<&'b [u8]> = relifetime(std::mem::take(&mut scratch.views));
    let mut start = 0;
    while start < accepted.len() {
        let vip = accepted[start].vip;
        let end = start
            + accepted[start..]
                .iter()
                .take_while(|a| a.vip == vip)
                .count();
        if let Some(filter) = address(vip).and_then(|a| filters.by_vip.get_mut(&a)) {
            views.clear();
            views.extend(accepted[start..end].iter().map(|a| bytes(a.packet)));
            filter.filter(&views, &mut decisions[start..end]);
            if culprits {
                for i in start..end {
                    if decisions[i] != Decision::Pass {
                        found[i] = filter.culprit(i - start);
                    }
                }
            }
        }
        start = end;
    }
    scratch.views = relifetime(views);
    let mut verdicts = decisions.iter();
    let mut culprits = found.drain(..);
    accepted.retain(|a| {
        let culprit = culprits.next().flatten();
        match verdicts.next() {
            Some(Decision::DropByPlugin) => {
                dropped(a, DropReason::Plugin, culprit);
                false
            }
            Some(Decision::DropOnError) => {
                dropped(a, DropReason::PluginError, culprit);
                false
            }
            Some(Decision::Pass) | None => true,
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::BatchFilter;
    use crate::io::FrameId;
    use std::sync::{Arc, Mutex};

    use std::net::Ipv4Addr;

    const VIPS: [Ipv4Addr; 3] = [
        Ipv4Addr::new(192, 0, 2, 1),
        Ipv4Addr::new(192, 0, 2, 2),
        Ipv4Addr::new(192, 0, 2, 3),
    ];

    /// Packet `n` of the batch: its bytes are `[n]`.
    fn packet(n: u32, vip: VipId) -> Accepted {
        Accepted {
            packet: Span {
                frame: FrameId::Ring {
                    source: 0,
                    index: n,
                },
                offset: 0,
                len: 1,
            },
            inner_in_frame: 0,
            vnet: VnetHeader::default(),
            peer: 0,
            vip,
            destination: Ipv4Addr::new(198, 51, 100, 1).into(),
        }
    }

    /// Records each call's packets; drops the packets whose byte is in `drop`, fails those
    /// in `fail`.
    struct Recorder {
        calls: Arc<Mutex<Vec<Vec<u8>>>>,
        drop: Vec<u8>,
        fail: Vec<u8>,
    }

    impl BatchFilter for Recorder {
        fn filter(&mut self, packets: &[&[u8]], decisions: &mut [Decision]) {
            assert!(decisions.iter().all(|d| *d == Decision::Pass), "preset");
            self.calls
                .lock()
                .unwrap()
                .push(packets.iter().map(|p| p[0]).collect());
            for (p, d) in packets.iter().zip(decisions) {
                if self.drop.contains(&p[0]) {
                    *d = Decision::DropByPlugin;
                } else if self.fail.contains(&p[0]) {
                    *d = Decision::DropOnError;
                }
            }
        }
    }

    fn run(
        accepted: &mut Vec<Accepted>,
        filters: &mut WorkerFilters,
        bytes: &[[u8; 1]],
    ) -> Vec<(u32, DropReason)> {
        let mut dropped = Vec::new();
        judge(
            accepted,
            filters,
            &mut Scratch::with_capacity(8),
            false,
            |vip| VIPS.get(vip as usize).map(|&v| v.into()),
            |span| match span.frame {
                FrameId::Ring { index, .. } => &bytes[index as usize][..],
                FrameId::Large => &[],
            },
            |a, reason, _| dropped.push((a.vip, reason)),
        );
        dropped
    }

    #[test]
    fn each_vip_is_judged_in_one_call_in_arrival_order_and_verdicts_apply() {
        let calls = Arc::new(Mutex::new(Vec::new()));
        let mut filters = WorkerFilters::default();
        filters.by_vip.insert(
            VIPS[0].into(),
            Box::new(Recorder {
                calls: calls.clone(),
                drop: vec![3],
                fail: vec![],
            }),
        );
        filters.by_vip.insert(
            VIPS[2].into(),
            Box::new(Recorder {
                calls: calls.clone(),
                drop: vec![],
                fail: vec![5],
            }),
        );
        let bytes: Vec<[u8; 1]> = (0..7).map(|n| [n]).collect();
        // Interleaved VIPs 2, 0, 1, 0, 2, 2, 0.
        let mut accepted: Vec<Accepted> = [2, 0, 1, 0, 2, 2, 0]
            .iter()
            .enumerate()
            .map(|(n, &vip)| packet(n as u32, vip))
            .collect();
        let dropped = run(&mut accepted, &mut filters, &bytes);
        assert_eq!(
            *calls.lock().unwrap(),
            vec![vec![1, 3, 6], vec![0, 4, 5]],
            "one call per VIP with a filter, arrival order kept"
        );
        assert_eq!(
            dropped,
            vec![(0, DropReason::Plugin), (2, DropReason::PluginError)]
        );
        let left: Vec<_> = accepted
            .iter()
            .map(|a| match a.packet.frame {
                FrameId::Ring { index, .. } => index,
                FrameId::Large => u32::MAX,
            })
            .collect();
        assert_eq!(
            left,
            vec![1, 6, 2, 0, 4],
            "grouped by VIP, the rejected gone"
        );
    }

    #[test]
    fn without_filters_the_batch_is_untouched() {
        let bytes = [[0u8], [1]];
        let mut accepted = vec![packet(0, 1), packet(1, 0)];
        let dropped = run(&mut accepted, &mut WorkerFilters::default(), &bytes);
        assert!(dropped.is_empty());
        assert_eq!(accepted[0].vip, 1, "not even sorted");
    }
}
