//! What a plugin author writes against: the [`Plugin`] trait, the configure-time [`Setup`],
//! [`Counter`]s, logging and the clock.
//!
//! This is the safe, typed layer over [`crate::sys`]; it never deals with memory layout or
//! exports (that is [`crate::guest`]).

use alloc::format;
use alloc::string::String;

use serde::de::DeserializeOwned;

use crate::abi::{LogLevel, MAX_COUNTERS, Verdict, is_valid_counter_label, is_valid_counter_name};
use crate::packet::Packet;
use crate::sys;

/// A filtering plugin: built once per (binding, worker) from its configuration, then asked
/// about every packet of its VIP that earlier plugins let pass.
pub trait Plugin: Sized {
    /// The configuration, parsed from the binding's JSON `config` (use
    /// `#[serde(deny_unknown_fields)]` so typos are refused).
    type Config: DeserializeOwned;

    /// Builds the plugin; `Err(reason)` refuses the binding, and the operator sees `reason`.
    /// Define counters here through `setup`.
    fn configure(config: Self::Config, setup: &mut Setup) -> Result<Self, String>;

    /// Judges one packet. Runs on the data path: keep it free of allocation and formatting.
    fn on_packet(&mut self, packet: &Packet<'_>) -> Verdict;
}

/// Parses `json` as `P::Config` and configures `P`: exactly what the guest runtime does
/// with the binding's configuration, usable directly in native unit tests.
pub fn configure_from_json<P: Plugin>(json: &[u8]) -> Result<P, String> {
    let config: P::Config = serde_json::from_slice(json)
        .map_err(|e| format!("invalid config: {}", without_position(&e)))?;
    P::configure(config, &mut Setup { _private: () })
}

/// A JSON error's text without its ` at line L column C`: the host hands the plugin its
/// configuration re-serialised as compact JSON, so a position points into text the
/// operator never wrote (the binding's field path says where instead).
fn without_position(e: &serde_json::Error) -> String {
    let text = format!("{e}");
    let position = format!(" at line {} column {}", e.line(), e.column());
    match text.strip_suffix(position.as_str()) {
        Some(message) => message.into(),
        None => text,
    }
}

/// Configure-time services (only configure gets one).
pub struct Setup {
    _private: (),
}

impl Setup {
    /// Defines a counter shown as `name{label}` for this binding. `name`: 1 to 48 of
    /// `a-z 0-9 _`, starting with a letter; `label`: up to 64 printable ASCII characters
    /// without quotes or backslashes (keep labels bounded: configured values, never
    /// addresses seen in traffic). At most 256 counters per plugin.
    pub fn counter(&mut self, name: &str, label: &str) -> Result<Counter, String> {
        if !is_valid_counter_name(name) {
            return Err(format!(
                "counter name {name:?} is not 1 to 48 of a-z 0-9 _ starting with a letter"
            ));
        }
        if !is_valid_counter_label(label) {
            return Err(format!(
                "counter label {label:?} is not up to 64 printable ASCII characters without quotes or backslashes"
            ));
        }
        sys::define_counter(name, label)
            .map(|id| Counter { id })
            .ok_or_else(|| format!("the host refused counter {name}{{{label}}} (more than {MAX_COUNTERS} counters?)"))
    }

    /// The monotonic clock, in nanoseconds.
    pub fn now_ns(&self) -> u64 {
        sys::now_ns()
    }
}

/// A plugin-defined counter; adding is cheap (buffered in the guest, handed to the host
/// once per batch).
#[derive(Debug, Clone)]
pub struct Counter {
    id: u32,
}

impl Counter {
    /// Adds `n`.
    #[inline]
    pub fn add(&self, n: u64) {
        sys::counter_add(self.id, n);
    }

    /// Adds one.
    #[inline]
    pub fn increment(&self) {
        self.add(1);
    }

    /// The counter's value so far (native builds only: for unit tests).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn value(&self) -> u64 {
        sys::HOST.with_borrow(|h| h.counters.get(self.id as usize).map_or(0, |c| c.2))
    }
}

/// Sends a log line to the gateway's log (rate-limited by the host; keep it off the
/// per-packet path).
pub fn log(level: LogLevel, message: &str) {
    sys::log(level, message);
}

/// Logs at info level.
pub fn info(message: &str) {
    log(LogLevel::Info, message);
}

/// Logs at warn level.
pub fn warn(message: &str) {
    log(LogLevel::Warn, message);
}

/// The monotonic clock, in nanoseconds (inside `on_packet`, prefer [`Packet::now_ns`]).
pub fn now_ns() -> u64 {
    sys::now_ns()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::native;

    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Cfg {
        limit: u32,
    }

    struct Small {
        limit: u32,
        big: Counter,
    }

    impl Plugin for Small {
        type Config = Cfg;
        fn configure(c: Cfg, setup: &mut Setup) -> Result<Self, String> {
            if c.limit == 0 {
                return Err("limit must be positive".into());
            }
            info("configured");
            Ok(Small {
                limit: c.limit,
                big: setup.counter("too_big", "")?,
            })
        }
        fn on_packet(&mut self, p: &Packet<'_>) -> Verdict {
            if p.len() > self.limit {
                self.big.increment();
                Verdict::Drop
            } else {
                Verdict::Pass
            }
        }
    }

    #[test]
    fn configure_parses_and_refuses() {
        let e = configure_from_json::<Small>(br#"{"limit":0}"#)
            .err()
            .unwrap();
        assert_eq!(e, "limit must be positive");
        let e = configure_from_json::<Small>(br#"{"limt":1}"#)
            .err()
            .unwrap();
        assert!(e.starts_with("invalid config: unknown field `limt`"), "{e}");
        assert!(
            !e.contains("column"),
            "no position in re-serialised JSON: {e}"
        );
        let e = configure_from_json::<Small>(br#"{}"#).err().unwrap();
        assert_eq!(e, "invalid config: missing field `limit`");
        let mut s = configure_from_json::<Small>(br#"{"limit":30}"#).unwrap();
        let d = crate::PacketDesc::parse(&[0u8; 40]);
        assert_eq!(s.on_packet(&Packet::new(&d, 0)), Verdict::Drop);
        assert_eq!(s.big.value(), 1);
        assert_eq!(native::counter("too_big", ""), Some(1));
        assert_eq!(native::take_logs(), [(LogLevel::Info, "configured".into())]);
    }

    #[test]
    fn counter_names_are_checked_and_bounded() {
        let mut setup = Setup { _private: () };
        assert!(setup.counter("Bad", "").is_err());
        assert!(setup.counter("ok", "a\"b").is_err());
        let a = setup.counter("ok", "x").unwrap();
        let b = setup.counter("ok", "x").unwrap();
        assert_eq!(a.id, b.id, "same name and label, same counter");
        for i in 1..MAX_COUNTERS {
            setup.counter("n", &format!("{i}")).unwrap();
        }
        let e = setup.counter("n", "one-too-many").unwrap_err();
        assert!(e.contains("refused"), "{e}");
    }
}
