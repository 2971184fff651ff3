//! Hostile plugins, written in WAT and assembled here: each is a valid ABI v1 module that
//! passes the upload check and then misbehaves on every batch, in its own way. Shared by
//! the hostile-plugin test and its benchmark (`examples/hostile_plugins.rs`).

/// Where the verdict bytes of the batch area (at 8192) start: 8192 + 16 + 64 × 96.
const VERDICTS: u32 = 14352;

/// A hostile plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hostile {
    /// Loops forever in every batch call: hits the deadline each time.
    Deadline,
    /// Busy-waits 2 ms per batch call (on the host clock): slow, yet under the deadline.
    SlowUnderDeadline,
    /// Grows its memory to the cap (16 MiB) and writes to every page, every batch.
    MemoryToCap,
    /// Tries to grow its memory past the cap every batch.
    MemoryPastCap,
    /// Logs 1000 lines per batch.
    LogFlood,
    /// Has this many functions (and passes everything).
    ManyFunctions(u32),
}

impl Hostile {
    /// Every kind, with 5000 functions for [`Hostile::ManyFunctions`].
    pub const ALL: [Hostile; 6] = [
        Hostile::Deadline,
        Hostile::SlowUnderDeadline,
        Hostile::MemoryToCap,
        Hostile::MemoryPastCap,
        Hostile::LogFlood,
        Hostile::ManyFunctions(5000),
    ];

    /// The name it is uploaded under.
    pub fn name(self) -> String {
        match self {
            Hostile::Deadline => "deadline".into(),
            Hostile::SlowUnderDeadline => "slow-under-deadline".into(),
            Hostile::MemoryToCap => "memory-to-cap".into(),
            Hostile::MemoryPastCap => "memory-past-cap".into(),
            Hostile::LogFlood => "log-flood".into(),
            Hostile::ManyFunctions(n) => format!("functions-{n}"),
        }
    }

    /// The module, as WAT text.
    pub fn wat(self) -> String {
        let (body, extra) = match self {
            Hostile::Deadline => ("(loop $forever (br $forever))".to_owned(), String::new()),
            Hostile::SlowUnderDeadline => (
                "(local.set $until (i64.add (call $now) (i64.const 2000000)))
                 (loop $spin (br_if $spin (i64.lt_u (call $now) (local.get $until))))"
                    .to_owned(),
                String::new(),
            ),
            Hostile::MemoryToCap => (
                // Grow to 256 pages (16 MiB) if not there yet, then dirty the last byte of
                // every page (away from the batch area in page 0).
                "(drop (memory.grow (i32.sub (i32.const 256) (memory.size))))
                 (local.set $i (i32.const 0))
                 (loop $touch
                   (i32.store8 (i32.add (i32.mul (local.get $i) (i32.const 65536))
                                        (i32.const 65535))
                               (local.get $i))
                   (local.set $i (i32.add (local.get $i) (i32.const 1)))
                   (br_if $touch (i32.lt_u (local.get $i) (memory.size))))"
                    .to_owned(),
                String::new(),
            ),
            Hostile::MemoryPastCap => (
                "(drop (memory.grow (i32.const 1000)))".to_owned(),
                String::new(),
            ),
            Hostile::LogFlood => (
                "(local.set $i (i32.const 0))
                 (loop $again
                   (call $log (i32.const 2) (i32.const 512) (i32.const 25))
                   (local.set $i (i32.add (local.get $i) (i32.const 1)))
                   (br_if $again (i32.lt_u (local.get $i) (i32.const 1000))))"
                    .to_owned(),
                String::new(),
            ),
            Hostile::ManyFunctions(n) => (
                String::new(),
                (0..n)
                    .map(|k| format!("(func $f{k} (param i32) (result i32) (i32.add (local.get 0) (i32.const {k})))\n"))
                    .collect(),
            ),
        };
        format!(
            r#"(module
  (import "tungate" "log" (func $log (param i32 i32 i32)))
  (import "tungate" "now_ns" (func $now (result i64)))
  (memory (export "memory") 1)
  (data (i32.const 512) "a line from a noisy plugin")
  (func (export "tungate_abi_v1"))
  (func (export "tungate_alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "tungate_configure") (param i32 i32) (result i32) (i32.const 0))
  (func (export "tungate_batch_area") (result i32) (i32.const 8192))
  (func (export "tungate_filter") (param $n i32) (local $i i32) (local $until i64)
    {body}
    (memory.fill (i32.const {VERDICTS}) (i32.const 0) (local.get $n)))
  {extra}
)"#
        )
    }

    /// The module bytes.
    pub fn module(self) -> Vec<u8> {
        wat::parse_str(self.wat()).unwrap_or_else(|e| panic!("{self:?} does not assemble: {e}"))
    }
}
