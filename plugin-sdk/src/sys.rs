//! The host calls, one safe function each, for both targets.
//!
//! On `wasm32` these are the `tungate` imports of ABI v1 (counter additions are buffered in
//! the guest and flushed once per batch, so the hot path makes no host call per packet). On
//! any other target a native backend keeps counters, log lines and refusals in thread-local
//! state, so plugin logic is unit-tested without wasm (each test runs on its own thread);
//! read it through [`crate::native`] (refusals need no host there: configure returns them). Nothing else in the SDK touches imports or that state.

#[cfg(target_arch = "wasm32")]
pub(crate) use wasm::*;

#[cfg(not(target_arch = "wasm32"))]
pub(crate) use native::*;

#[cfg(target_arch = "wasm32")]
mod wasm {
    use alloc::vec::Vec;

    use crate::abi::LogLevel;
    use crate::guest::GuestCell;

    #[link(wasm_import_module = "tungate")]
    unsafe extern "C" {
        #[link_name = "counter_define"]
        fn tg_counter_define(
            name_ptr: *const u8,
            name_len: usize,
            label_ptr: *const u8,
            label_len: usize,
        ) -> i32;
        #[link_name = "counter_add"]
        fn tg_counter_add(id: i32, delta: i64);
        #[link_name = "log"]
        fn tg_log(level: i32, ptr: *const u8, len: usize);
        #[link_name = "now_ns"]
        fn tg_now_ns() -> i64;
        #[link_name = "refuse_config"]
        fn tg_refuse_config(ptr: *const u8, len: usize);
    }

    /// Counter additions not yet handed to the host, by counter id (ids are dense: the
    /// host numbers counters 0, 1, 2, … in definition order).
    static PENDING: GuestCell<Vec<u64>> = GuestCell::new(Vec::new());

    pub(crate) fn define_counter(name: &str, label: &str) -> Option<u32> {
        // SAFETY: the pointers and lengths describe live `&str`s for the whole call; the
        // host only reads them.
        let id =
            unsafe { tg_counter_define(name.as_ptr(), name.len(), label.as_ptr(), label.len()) };
        let id = u32::try_from(id).ok()?;
        PENDING.with(|p| {
            if p.len() <= id as usize {
                p.resize(id as usize + 1, 0);
            }
        });
        Some(id)
    }

    #[inline]
    pub(crate) fn counter_add(id: u32, delta: u64) {
        PENDING.with(|p| {
            if let Some(v) = p.get_mut(id as usize) {
                *v = v.wrapping_add(delta);
            }
        });
    }

    /// Hands the additions to the host: one call per counter that changed (a plugin has
    /// at most 256 counters, so the scan is cheap next to a batch).
    pub(crate) fn flush_counters() {
        PENDING.with(|p| {
            for (id, v) in p.iter_mut().enumerate() {
                if *v != 0 {
                    // SAFETY: a plain host call with two integers.
                    unsafe { tg_counter_add(id as i32, core::mem::take(v) as i64) };
                }
            }
        });
    }

    pub(crate) fn log(level: LogLevel, message: &str) {
        // SAFETY: the pointer and length describe a live `&str`; the host only reads it.
        unsafe { tg_log(level as i32, message.as_ptr(), message.len()) }
    }

    pub(crate) fn now_ns() -> u64 {
        // SAFETY: a plain host call without arguments.
        unsafe { tg_now_ns() as u64 }
    }

    pub(crate) fn refuse_config(reason: &str) {
        // SAFETY: the pointer and length describe a live `&str`; the host only reads it.
        unsafe { tg_refuse_config(reason.as_ptr(), reason.len()) }
    }
}

#[cfg(not(target_arch = "wasm32"))]
mod native {
    use alloc::string::{String, ToString};
    use alloc::vec::Vec;
    use core::cell::RefCell;

    use crate::abi::{LogLevel, MAX_COUNTERS, is_valid_counter_label, is_valid_counter_name};

    /// What a plugin told the (native) host on this thread.
    #[derive(Default)]
    pub(crate) struct NativeHost {
        pub(crate) counters: Vec<(String, String, u64)>,
        pub(crate) logs: Vec<(LogLevel, String)>,
    }

    std::thread_local! {
        pub(crate) static HOST: RefCell<NativeHost> = RefCell::new(NativeHost::default());
    }

    pub(crate) fn define_counter(name: &str, label: &str) -> Option<u32> {
        if !is_valid_counter_name(name) || !is_valid_counter_label(label) {
            return None;
        }
        HOST.with_borrow_mut(|h| {
            if let Some(i) = h
                .counters
                .iter()
                .position(|(n, l, _)| n == name && l == label)
            {
                return Some(i as u32);
            }
            if h.counters.len() >= MAX_COUNTERS {
                return None;
            }
            h.counters.push((name.to_string(), label.to_string(), 0));
            Some((h.counters.len() - 1) as u32)
        })
    }

    pub(crate) fn counter_add(id: u32, delta: u64) {
        HOST.with_borrow_mut(|h| {
            if let Some(c) = h.counters.get_mut(id as usize) {
                c.2 = c.2.wrapping_add(delta);
            }
        });
    }

    pub(crate) fn flush_counters() {}

    pub(crate) fn log(level: LogLevel, message: &str) {
        HOST.with_borrow_mut(|h| h.logs.push((level, message.to_string())));
    }

    pub(crate) fn now_ns() -> u64 {
        use std::sync::OnceLock;
        use std::time::Instant;
        static START: OnceLock<Instant> = OnceLock::new();
        let start = *START.get_or_init(Instant::now);
        u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}
