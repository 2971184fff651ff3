//! Waiting on observable state instead of sleeping: poll a condition until it holds, with a
//! limit that is a liveness bound (a failure names what never happened), not a speed claim.

use std::time::{Duration, Instant};

/// How often a condition is checked again.
const POLL: Duration = Duration::from_millis(20);

/// Polls `check` until it holds or `limit` passes; whether it held (checked once more at
/// the end).
pub fn eventually(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if check() {
            return true;
        }
        std::thread::sleep(POLL);
    }
    check()
}

/// Polls `check` until it holds; panics naming `what` if it still does not after `limit`.
pub fn until(limit: Duration, what: &str, check: impl FnMut() -> bool) {
    assert!(eventually(limit, check), "{what}: not after {limit:?}");
}

/// Whether a `GET /api/v1/status` answer shows the published filter generation in force on
/// every worker.
pub fn filters_in_force(status: &serde_json::Value) -> bool {
    let filters = &status["filters"];
    match (filters["published"].as_u64(), filters["workers"].as_array()) {
        (Some(published), Some(workers)) => workers.iter().all(|w| w.as_u64() == Some(published)),
        _ => false,
    }
}
