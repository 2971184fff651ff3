//! The seam between the data path and whatever judges packets (the Wasm plugin chains).
//!
//! A worker owns one [`BatchFilter`] per VIP that has a chain. The control side builds a
//! complete [`WorkerFilters`] set per worker off the data path and hands it over through
//! [`FilterSlots`]; a worker picks its new set up between two batches, so every packet is
//! judged by exactly one generation of filters. Nothing here knows about Wasm.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// What a filter decided for one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Decision {
    /// Forward the packet (or hand it to the next filter).
    Pass = 0,
    /// A plugin dropped it on purpose.
    DropByPlugin = 1,
    /// A plugin failed (trap, deadline, bad verdict) and its binding fails closed.
    DropOnError = 2,
}

/// Judges batches of inner IPv4 packets for one VIP on one worker.
pub trait BatchFilter: Send {
    /// `packets[i]` is a whole inner IPv4 packet, header first, as it will be forwarded
    /// (before the TTL decrement). Write one decision per packet into `decisions[i]`
    /// (`decisions.len() == packets.len()`, all preset to [`Decision::Pass`]).
    fn filter(&mut self, packets: &[&[u8]], decisions: &mut [Decision]);

    /// Which binding decided the drop of `packets[packet]` in the last [`Self::filter`]
    /// call (asked only while a capture runs; `None` when unknown).
    fn culprit(&self, packet: usize) -> Option<Culprit> {
        let _ = packet;
        None
    }
}

/// The binding of a VIP's chain that dropped a packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Culprit {
    /// Its position in the VIP's chain (0 first).
    pub position: usize,
    /// Its plugin's name.
    pub plugin: Arc<str>,
}

/// One worker's filters, by VIP. A VIP absent from the map forwards everything.
#[derive(Default)]
pub struct WorkerFilters {
    /// The chain of each VIP that has plugins.
    pub by_vip: HashMap<IpAddr, Box<dyn BatchFilter>>,
}

/// Hands new filter sets from the control side to the workers, and takes the replaced ones
/// back: a set is dropped on the control side (at the next publish, or with the slots), never
/// on a worker, because freeing plugin instances (returning their memory to the pool) takes
/// far longer than a batch.
pub struct FilterSlots {
    progress: Arc<FilterProgress>,
    slots: Vec<Mutex<Option<(u64, WorkerFilters)>>>,
    retired: Mutex<Vec<WorkerFilters>>,
}

/// Which filter generation was published last and which one each worker took: read
/// without locks (atomics only), so that a hot swap can be seen to be in force.
#[derive(Debug)]
pub struct FilterProgress {
    published: AtomicU64,
    taken: Box<[AtomicU64]>,
}

impl FilterProgress {
    /// The newest published generation (0: none yet).
    pub fn published(&self) -> u64 {
        self.published.load(Ordering::Acquire)
    }

    /// The generation each worker took last, by worker index (0: none yet).
    pub fn taken(&self) -> Vec<u64> {
        self.taken
            .iter()
            .map(|g| g.load(Ordering::Acquire))
            .collect()
    }
}

impl FilterSlots {
    /// Slots for `workers` workers, all empty (generation 0 = no filters).
    pub fn new(workers: usize) -> Self {
        Self::numbered_from(0, workers)
    }

    /// Empty slots for `workers` new workers that go on numbering after `previous` (a
    /// restart), so generations never go back.
    pub fn following(previous: &FilterSlots, workers: usize) -> Self {
        Self::numbered_from(previous.generation(), workers)
    }

    fn numbered_from(generation: u64, workers: usize) -> Self {
        Self {
            progress: Arc::new(FilterProgress {
                published: AtomicU64::new(generation),
                taken: (0..workers).map(|_| AtomicU64::new(0)).collect(),
            }),
            slots: (0..workers).map(|_| Mutex::new(None)).collect(),
            retired: Mutex::new(Vec::new()),
        }
    }

    /// Which generation is published and which one each worker took (shared, live).
    pub fn progress(&self) -> Arc<FilterProgress> {
        self.progress.clone()
    }

    /// Number of workers served.
    pub fn workers(&self) -> usize {
        self.slots.len()
    }

    /// Publishes one set per worker (`sets.len()` must equal [`Self::workers`]) and returns
    /// the new generation. Sets not yet taken by a worker are replaced.
    pub fn publish(&self, sets: Vec<WorkerFilters>) -> u64 {
        assert_eq!(sets.len(), self.slots.len(), "one filter set per worker");
        // Free what the workers replaced since the last publish (here, not on a worker).
        let retired = std::mem::take(&mut *self.retired.lock().unwrap_or_else(|p| p.into_inner()));
        drop(retired);
        let generation = self.generation() + 1;
        for (slot, set) in self.slots.iter().zip(sets) {
            *slot.lock().unwrap_or_else(|p| p.into_inner()) = Some((generation, set));
        }
        self.progress.published.store(generation, Ordering::Release);
        generation
    }

    /// The newest published generation (cheap: one atomic load).
    pub fn generation(&self) -> u64 {
        self.progress.published()
    }

    /// Takes back a set a worker replaced, to be dropped on the control side.
    pub fn retire(&self, set: WorkerFilters) {
        self.retired
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(set);
    }

    /// Sets replaced by workers and not yet freed.
    pub fn retired(&self) -> usize {
        self.retired.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Takes worker `index`'s new set if one is waiting; called between batches. Records
    /// its generation as the one the worker runs (see [`FilterProgress::taken`]).
    pub fn take(&self, index: usize) -> Option<(u64, WorkerFilters)> {
        let taken = self.slots[index]
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some((generation, _)) = &taken {
            self.progress.taken[index].store(*generation, Ordering::Release);
        }
        taken
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    struct DropAll;
    impl BatchFilter for DropAll {
        fn filter(&mut self, _: &[&[u8]], d: &mut [Decision]) {
            d.fill(Decision::DropByPlugin);
        }
    }

    #[test]
    fn each_worker_takes_its_set_once() {
        let slots = FilterSlots::new(2);
        assert_eq!(slots.generation(), 0);
        assert!(slots.take(0).is_none());
        let mut a = WorkerFilters::default();
        a.by_vip
            .insert(Ipv4Addr::new(192, 0, 2, 1).into(), Box::new(DropAll));
        let g = slots.publish(vec![a, WorkerFilters::default()]);
        assert_eq!(g, 1);
        let progress = slots.progress();
        assert_eq!((progress.published(), progress.taken()), (1, vec![0, 0]));
        let (gen0, mut set0) = slots.take(0).unwrap();
        assert_eq!(gen0, 1);
        assert_eq!(progress.taken(), vec![1, 0], "worker 0 runs generation 1");
        let mut d = [Decision::Pass; 2];
        set0.by_vip
            .get_mut(&Ipv4Addr::new(192, 0, 2, 1).into())
            .unwrap()
            .filter(&[&[], &[]], &mut d);
        assert_eq!(d, [Decision::DropByPlugin; 2]);
        assert!(slots.take(0).is_none());
        assert!(slots.take(1).unwrap().1.by_vip.is_empty());
        slots.retire(set0);
        assert_eq!(slots.retired(), 1);
        slots.publish(vec![WorkerFilters::default(), WorkerFilters::default()]);
        assert_eq!(slots.retired(), 0, "freed by the next publish");
        let next = FilterSlots::following(&slots, 3);
        assert_eq!(next.progress().taken(), vec![0, 0, 0]);
        assert_eq!(
            next.publish((0..3).map(|_| WorkerFilters::default()).collect()),
            3,
            "numbering goes on after a restart"
        );
    }
}
