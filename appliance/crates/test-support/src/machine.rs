//! Who has the machine: every integration test runs in one process (one test binary), so
//! a test that measures the process itself (its resident memory) or that checks exact
//! verdicts under wall-clock plugin deadlines takes the machine [`alone`], and every
//! [`Netns`](crate::Netns) holds it [`shared`] while it lives.
//!
//! The thread that holds the machine alone may still make namespaces (their shared hold
//! does not wait for it). A test waiting to run alone waits until no namespace of another
//! test is left. This module only orders tests; it never touches the network.

use std::sync::{Condvar, Mutex, MutexGuard};
use std::thread::ThreadId;

struct State {
    /// Shared holds, over all threads.
    shared: usize,
    /// The thread of the test that runs alone.
    alone: Option<ThreadId>,
}

static STATE: Mutex<State> = Mutex::new(State {
    shared: 0,
    alone: None,
});
static CHANGED: Condvar = Condvar::new();

fn state() -> MutexGuard<'static, State> {
    STATE.lock().unwrap_or_else(|p| p.into_inner())
}

/// The machine shared with other tests, until dropped.
#[must_use = "the machine is shared only while this guard lives"]
pub struct Shared(());

/// The machine for one test alone, until dropped.
#[must_use = "the test runs alone only while this guard lives"]
pub struct Alone(());

/// Takes the machine shared with other tests (waits while another test runs alone).
pub fn shared() -> Shared {
    let me = std::thread::current().id();
    let mut s = state();
    while s.alone.is_some_and(|owner| owner != me) {
        s = CHANGED.wait(s).unwrap_or_else(|p| p.into_inner());
    }
    s.shared += 1;
    Shared(())
}

/// Takes the machine for the calling test alone: waits until no other test holds it.
/// Take it first thing in the test, before making any namespace.
pub fn alone() -> Alone {
    let me = std::thread::current().id();
    let mut s = state();
    while s.alone.is_some() || s.shared > 0 {
        s = CHANGED.wait(s).unwrap_or_else(|p| p.into_inner());
    }
    s.alone = Some(me);
    Alone(())
}

impl Drop for Shared {
    fn drop(&mut self) {
        state().shared -= 1;
        CHANGED.notify_all();
    }
}

impl Drop for Alone {
    fn drop(&mut self) {
        state().alone = None;
        CHANGED.notify_all();
    }
}
