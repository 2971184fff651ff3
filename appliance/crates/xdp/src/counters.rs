//! The program's counters as the control plane reads them: summed over CPUs, drops indexed
//! by [`DropReason`]. This module never reads the kernel; the filter fills it.

use tungate_packet::DropReason;

/// What the XDP program did with the frames it saw since it was loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct XdpCounters {
    /// Frames dropped, by reason ([`DropReason::index`]); only the outer-header reasons and
    /// `rx_overflow` are ever non-zero.
    pub drops: [u64; DropReason::COUNT],
    /// Frames redirected to an AF_XDP socket.
    pub redirected: u64,
    /// Frames passed to the kernel (the host's own traffic).
    pub passed: u64,
}

impl XdpCounters {
    /// Frames dropped for `reason`.
    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.drops[reason.index()]
    }

    /// The non-zero drop counters, in [`DropReason::ALL`] order.
    pub fn nonzero_drops(&self) -> impl Iterator<Item = (DropReason, u64)> + '_ {
        DropReason::ALL
            .into_iter()
            .map(|r| (r, self.dropped(r)))
            .filter(|(_, n)| *n > 0)
    }

    /// All frames dropped, whatever the reason.
    pub fn total_dropped(&self) -> u64 {
        self.drops.iter().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_by_reason_and_sums() {
        let mut c = XdpCounters::default();
        c.drops[DropReason::UnknownPeer.index()] = 3;
        c.drops[DropReason::RxOverflow.index()] = 2;
        assert_eq!(c.dropped(DropReason::UnknownPeer), 3);
        assert_eq!(c.dropped(DropReason::WrongGateway), 0);
        assert_eq!(c.total_dropped(), 5);
        let listed: Vec<_> = c.nonzero_drops().collect();
        assert_eq!(
            listed,
            [(DropReason::UnknownPeer, 3), (DropReason::RxOverflow, 2)]
        );
    }
}
