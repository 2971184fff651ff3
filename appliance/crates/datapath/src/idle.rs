//! The worker's idle policy: whether a worker whose receive sources are empty keeps
//! looking (spins) or sleeps in its io_uring wait.
//!
//! Sleeping costs a wakeup (the sender's softirq wakes the thread, a context switch, on a
//! virtual machine the halted vCPU's exit), spinning costs the whole gap until the next
//! frame. The policy spins only while gaps have been short: after each idle period of
//! length `g` (spin or sleep, up to the next frame), the next spin lasts up to `2g` if `g`
//! was under [`SPIN_MAX`], and half the last limit otherwise — so a burst's gaps between
//! frames are spun across, the gaps between bursts at moderate rates are soon slept through
//! (a fixed spin was paid in full between every two bursts), and with no traffic the worker
//! sleeps at once. It owns only that decision: it never touches a socket or the clock
//! (times come from the caller).

use std::time::{Duration, Instant};

/// The longest spin: gaps longer than this are slept through.
pub(crate) const SPIN_MAX: Duration = Duration::from_micros(50);

/// What an idle worker does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Next {
    /// Look at the receive sources again.
    Spin,
    /// Sleep in the io_uring wait.
    Sleep,
}

/// The idle state of one worker.
#[derive(Debug)]
pub(crate) struct Idle {
    /// How long the next idle period may be spun.
    limit: Duration,
    /// When the current idle period began (the first empty look).
    since: Option<Instant>,
}

impl Default for Idle {
    fn default() -> Self {
        Idle {
            limit: SPIN_MAX,
            since: None,
        }
    }
}

impl Idle {
    /// The receive sources were empty at `now`: spin or sleep.
    pub(crate) fn empty(&mut self, now: Instant) -> Next {
        let since = *self.since.get_or_insert(now);
        if now.saturating_duration_since(since) < self.limit {
            Next::Spin
        } else {
            Next::Sleep
        }
    }

    /// Frames arrived at `now`: an idle period (if one ran) ends, and sets the next limit.
    pub(crate) fn work(&mut self, now: Instant) {
        if let Some(since) = self.since.take() {
            let gap = now.saturating_duration_since(since);
            self.limit = if gap < SPIN_MAX {
                (2 * gap).min(SPIN_MAX)
            } else {
                self.limit / 2
            };
        }
    }

    /// How long the next idle period may be spun (for tests).
    #[cfg(test)]
    fn limit(&self) -> Duration {
        self.limit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const US: Duration = Duration::from_micros(1);

    /// One idle period of `gap` starting at `at`, looked at every µs: what the policy did
    /// (the time it spun before it slept, or the whole gap), and the time after it.
    fn idle_period(idle: &mut Idle, at: Instant, gap: Duration) -> (Duration, Instant) {
        let mut t = at;
        let mut spun = Duration::ZERO;
        while t < at + gap {
            match idle.empty(t) {
                Next::Spin => {
                    t += US;
                    spun += US;
                }
                Next::Sleep => break,
            }
        }
        idle.work(at + gap);
        (spun, at + gap)
    }

    #[test]
    fn short_gaps_are_spun_across_and_the_first_idle_period_spins_at_most_spin_max() {
        let mut idle = Idle::default();
        let t = Instant::now();
        let (spun, t) = idle_period(&mut idle, t, 200 * US);
        assert_eq!(
            spun, SPIN_MAX,
            "a first long gap: spin SPIN_MAX, then sleep"
        );
        let (spun, t) = idle_period(&mut idle, t, 3 * US);
        assert!(
            spun <= 3 * US,
            "the limit halved to 25 µs still covers 3 µs"
        );
        assert_eq!(idle.limit(), 6 * US, "next: twice the gap");
        let (spun, _) = idle_period(&mut idle, t, 5 * US);
        assert_eq!(
            spun,
            5 * US,
            "5 µs is under the 6 µs limit: spun across, no sleep"
        );
        assert_eq!(idle.limit(), 10 * US);
    }

    #[test]
    fn gaps_between_bursts_are_slept_through_soon_and_bursts_keep_the_spin_short() {
        // Bursts: 10 frames 1 µs apart, then 80 µs until the next burst (moderate rate).
        let mut idle = Idle::default();
        let mut t = Instant::now();
        let mut spun_between = Vec::new();
        for _ in 0..20 {
            for _ in 0..10 {
                t = idle_period(&mut idle, t, US).1;
            }
            let (spun, next) = idle_period(&mut idle, t, 80 * US);
            spun_between.push(spun);
            t = next;
        }
        assert_eq!(spun_between[0], 2 * US, "1 µs gaps left a 2 µs limit");
        assert!(
            spun_between.iter().all(|s| *s <= 2 * US),
            "never the full 50 µs between bursts: {spun_between:?}"
        );
    }

    #[test]
    fn with_no_traffic_the_limit_decays_to_sleeping_at_once() {
        let mut idle = Idle::default();
        let mut t = Instant::now();
        for _ in 0..20 {
            t = idle_period(&mut idle, t, Duration::from_millis(100)).1;
        }
        assert_eq!(idle.limit(), Duration::ZERO);
        assert_eq!(idle.empty(t), Next::Sleep, "sleeps on the first empty look");
    }

    #[test]
    fn frames_with_no_idle_period_change_nothing() {
        let mut idle = Idle::default();
        idle.work(Instant::now());
        assert_eq!(idle.limit(), SPIN_MAX);
    }
}
