//! A worker's own cache of where each client address is reached: the resolver's answers
//! (next hop or unreachable) and the questions still open, for the current route
//! generation.
//!
//! It decides when to ask the resolver (first sight of a destination, or an unanswered
//! question older than [`ASK_AGAIN`]) and forgets everything when the routes change (a new
//! generation) or the cache grows past [`ROUTE_CACHE_MAX`]. It never talks to the kernel,
//! never blocks and never sends packets: the worker asks through its
//! [`crate::resolver::ResolverLink`] and routes by what [`RouteCache::lookup`] says.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use rustc_hash::FxHashMap;

use crate::resolver::{HopId, RouteAnswer};

/// How long a route request may stay unanswered before it is asked again.
pub(crate) const ASK_AGAIN: Duration = Duration::from_millis(500);
/// Largest cache before it is cleared.
pub(crate) const ROUTE_CACHE_MAX: usize = 1 << 16;

/// What the cache knows about one destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Entry {
    /// Reached through this next hop.
    Hop(HopId),
    /// No unicast route.
    Unreachable,
    /// Asked at this time, no answer yet.
    Asked(Instant),
}

/// Where a packet to a destination goes, as far as the cache knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lookup {
    /// Through this next hop (of the current [`crate::resolver::NextHops`]).
    Hop(HopId),
    /// Nowhere: the kernel has no unicast route.
    Unreachable,
    /// Not known yet. `ask`: the resolver should be asked now (first sight, or the last
    /// question is older than [`ASK_AGAIN`]); through [`RouteCache::ask`].
    Unresolved {
        /// Whether to ask the resolver now.
        ask: bool,
    },
}

/// One worker's route cache, valid for one route generation.
#[derive(Debug)]
pub(crate) struct RouteCache {
    generation: u64,
    entries: FxHashMap<IpAddr, Entry>,
}

impl RouteCache {
    /// An empty cache that belongs to no generation yet (the first
    /// [`Self::follow_generation`] adopts one).
    pub(crate) fn new() -> RouteCache {
        RouteCache {
            generation: u64::MAX,
            entries: FxHashMap::default(),
        }
    }

    /// Adopts the resolver's current route generation; a new one forgets every entry.
    pub(crate) fn follow_generation(&mut self, generation: u64) {
        if generation != self.generation {
            self.generation = generation;
            self.entries.clear();
        }
    }

    /// Takes in an answer of the resolver for `generation`. An answer of another generation
    /// is stale: the destination is forgotten (so it is asked again).
    pub(crate) fn answer(&mut self, destination: IpAddr, answer: RouteAnswer, generation: u64) {
        if generation != self.generation {
            self.entries.remove(&destination);
            return;
        }
        let entry = match answer {
            RouteAnswer::Hop(id) => Entry::Hop(id),
            RouteAnswer::Unreachable => Entry::Unreachable,
        };
        self.entries.insert(destination, entry);
    }

    /// Where `destination` goes. `now` is read only for a question still open (the clock
    /// costs more than the lookup).
    pub(crate) fn lookup(&self, destination: IpAddr, now: impl FnOnce() -> Instant) -> Lookup {
        match self.entries.get(&destination) {
            Some(Entry::Hop(id)) => Lookup::Hop(*id),
            Some(Entry::Unreachable) => Lookup::Unreachable,
            Some(Entry::Asked(at)) => Lookup::Unresolved {
                ask: now().saturating_duration_since(*at) > ASK_AGAIN,
            },
            None => Lookup::Unresolved { ask: true },
        }
    }

    /// Asks about `destination` with `send` (false: the resolver's queue was full) and,
    /// if it took the question, records it as asked at `now`. A full cache is cleared first.
    pub(crate) fn ask(&mut self, destination: IpAddr, now: Instant, send: impl FnOnce() -> bool) {
        if self.entries.len() >= ROUTE_CACHE_MAX {
            self.entries.clear();
        }
        if send() {
            self.entries.insert(destination, Entry::Asked(now));
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLIENT: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(198, 51, 100, 7));

    #[test]
    fn first_sight_asks_then_waits_then_asks_again() {
        let start = Instant::now();
        let mut cache = RouteCache::new();
        cache.follow_generation(1);
        assert_eq!(
            cache.lookup(CLIENT, || start),
            Lookup::Unresolved { ask: true }
        );
        cache.ask(CLIENT, start, || true);
        assert_eq!(
            cache.lookup(CLIENT, || start + ASK_AGAIN),
            Lookup::Unresolved { ask: false },
            "a fresh question is not repeated"
        );
        assert_eq!(
            cache.lookup(CLIENT, || start + ASK_AGAIN + Duration::from_millis(1)),
            Lookup::Unresolved { ask: true },
            "an unanswered question is asked again"
        );
    }

    #[test]
    fn answers_of_the_current_generation_are_kept_stale_ones_forgotten() {
        let now = Instant::now();
        let mut cache = RouteCache::new();
        cache.follow_generation(7);
        cache.ask(CLIENT, now, || true);
        cache.answer(CLIENT, RouteAnswer::Hop(3), 7);
        assert_eq!(cache.lookup(CLIENT, || now), Lookup::Hop(3));
        let other = IpAddr::from([203, 0, 113, 1]);
        cache.answer(other, RouteAnswer::Unreachable, 7);
        assert_eq!(cache.lookup(other, || now), Lookup::Unreachable);
        // An answer computed for an older generation removes the entry.
        cache.answer(CLIENT, RouteAnswer::Hop(4), 6);
        assert_eq!(
            cache.lookup(CLIENT, || now),
            Lookup::Unresolved { ask: true }
        );
    }

    #[test]
    fn a_route_change_forgets_everything() {
        let now = Instant::now();
        let mut cache = RouteCache::new();
        cache.follow_generation(1);
        cache.answer(CLIENT, RouteAnswer::Hop(0), 1);
        cache.follow_generation(1);
        assert_eq!(
            cache.lookup(CLIENT, || now),
            Lookup::Hop(0),
            "same generation"
        );
        cache.follow_generation(2);
        assert_eq!(
            cache.lookup(CLIENT, || now),
            Lookup::Unresolved { ask: true }
        );
        cache.answer(CLIENT, RouteAnswer::Hop(0), 1);
        assert_eq!(
            cache.len(),
            0,
            "an answer of the old generation is not kept"
        );
    }

    #[test]
    fn a_full_cache_is_cleared_before_it_grows() {
        let now = Instant::now();
        let mut cache = RouteCache::new();
        cache.follow_generation(0);
        for i in 0..ROUTE_CACHE_MAX as u32 {
            cache.answer(
                IpAddr::from(std::net::Ipv4Addr::from(i)),
                RouteAnswer::Hop(1),
                0,
            );
        }
        assert_eq!(cache.len(), ROUTE_CACHE_MAX);
        cache.ask(CLIENT, now, || false);
        assert_eq!(cache.len(), 0, "a refused question still makes room");
        assert_eq!(
            cache.lookup(CLIENT, || now),
            Lookup::Unresolved { ask: true },
            "a refused question is asked again at the next packet"
        );
        for i in 0..ROUTE_CACHE_MAX as u32 {
            cache.answer(
                IpAddr::from(std::net::Ipv4Addr::from(i)),
                RouteAnswer::Hop(1),
                0,
            );
        }
        cache.ask(CLIENT, now, || true);
        assert_eq!(cache.len(), 1, "cleared, then the question recorded");
        assert_eq!(
            cache.lookup(CLIENT, || now),
            Lookup::Unresolved { ask: false }
        );
    }
}
