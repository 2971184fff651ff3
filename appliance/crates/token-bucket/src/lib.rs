//! The one token bucket of tungate: a budget of `burst` tokens that refills at `rate` tokens
//! per second. The data path limits its ICMP "fragmentation needed" answers with it and the
//! plugin host the log lines of each plugin instance.
//!
//! It owns only the arithmetic. The caller passes the time (`now`), so the bucket never
//! reads a clock, sleeps, locks, allocates or does I/O, and its behaviour is testable
//! without waiting. A crate of its own because its users (`tungate-datapath`,
//! `tungate-plugin-host`) share no lower crate where a rate limit belongs.

#![forbid(unsafe_code)]

use std::time::Instant;

/// A token bucket: at most `burst` tokens, refilled continuously at `rate` per second.
#[derive(Debug, Clone, Copy)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A bucket refilling at `rate` tokens per second up to `burst`, full at `now`.
    pub fn full(rate: f64, burst: f64, now: Instant) -> TokenBucket {
        TokenBucket {
            rate,
            burst,
            tokens: burst,
            last: now,
        }
    }

    /// Takes a token if there is one (after refilling up to `now`); `false` when the budget
    /// is spent. A `now` earlier than the last call counts as no time passed.
    pub fn take(&mut self, now: Instant) -> bool {
        self.tokens = self.refilled(now);
        self.last = self.last.max(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Whether a token is there at `now`, without taking it.
    pub fn has(&self, now: Instant) -> bool {
        self.refilled(now) >= 1.0
    }

    fn refilled(&self, now: Instant) -> f64 {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        (self.tokens + elapsed * self.rate).min(self.burst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn takes(bucket: &mut TokenBucket, now: Instant) -> usize {
        (0..1000).take_while(|_| bucket.take(now)).count()
    }

    #[test]
    fn a_full_bucket_gives_its_burst_then_refills_at_its_rate() {
        let start = Instant::now();
        let mut b = TokenBucket::full(20.0, 10.0, start);
        assert!(b.has(start));
        assert_eq!(takes(&mut b, start), 10, "the burst");
        assert!(!b.has(start));
        let later = start + Duration::from_millis(250);
        assert!(b.has(later), "5 tokens refilled in 250 ms");
        assert_eq!(takes(&mut b, later), 5);
        // A long pause refills only up to the burst.
        assert_eq!(takes(&mut b, later + Duration::from_secs(60)), 10);
    }

    #[test]
    fn has_does_not_spend_and_time_never_runs_backwards() {
        let start = Instant::now();
        let mut b = TokenBucket::full(1.0, 1.0, start + Duration::from_secs(1));
        for _ in 0..3 {
            assert!(b.has(start));
        }
        assert!(b.take(start), "an earlier `now` counts as no time passed");
        assert!(!b.take(start));
        // The clock of the bucket stays at its latest `now`: no refill is counted twice.
        assert!(!b.has(start + Duration::from_millis(1999)));
        assert!(b.has(start + Duration::from_secs(2)));
    }

    #[test]
    fn a_zero_rate_never_refills_and_a_zero_burst_never_admits() {
        let start = Instant::now();
        let mut none = TokenBucket::full(0.0, 2.0, start);
        assert_eq!(takes(&mut none, start + Duration::from_secs(3600)), 2);
        assert!(!none.take(start + Duration::from_secs(7200)));
        let mut closed = TokenBucket::full(100.0, 0.0, start);
        assert!(!closed.take(start + Duration::from_secs(1)));
    }
}
