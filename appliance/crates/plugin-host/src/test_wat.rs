//! WAT plugins for the host's own tests: a well-behaved ABI v1 module whose filter body,
//! imports and extra items each test replaces to make it useful or hostile, and its ABI v2
//! twin ([`v2_text`]: the v2 marker and the v2 descriptor offsets).

/// The module; `;;IMPORTS;;`, `;;FILTER;;` and `;;EXTRA;;` are replaced.
///
/// Memory: refusal text at 512, counter name `seen` at 600, configure buffer at 1024 (up to
/// 4096 bytes), batch area at 8192 (descriptors from 8208, verdicts from 14352). Configure
/// refuses a config starting with `x`; otherwise it defines counter `seen{}`, which the
/// filters below add the batch size to.
const TEMPLATE: &str = r#"
(module
  ;;IMPORTS;;
  (import "tungate" "refuse_config" (func $refuse (param i32 i32)))
  (import "tungate" "counter_define" (func $define (param i32 i32 i32 i32) (result i32)))
  (import "tungate" "counter_add" (func $add (param i32 i64)))
  (memory (export "memory") 1)
  (global $seen (mut i32) (i32.const -1))
  (data (i32.const 512) "config starts with x!")
  (data (i32.const 600) "seen")
  (func (export "tungate_abi_v1"))
  (func (export "tungate_alloc") (param $size i32) (result i32)
    (if (result i32) (i32.le_u (local.get $size) (i32.const 4096))
      (then (i32.const 1024)) (else (i32.const 0))))
  (func (export "tungate_configure") (param $p i32) (param $l i32) (result i32)
    (if (i32.and (i32.gt_u (local.get $l) (i32.const 0))
                 (i32.eq (i32.load8_u (local.get $p)) (i32.const 120)))
      (then (call $refuse (i32.const 512) (i32.const 21)) (return (i32.const 1))))
    (global.set $seen (call $define (i32.const 600) (i32.const 4) (i32.const 0) (i32.const 0)))
    (i32.const 0))
  (func (export "tungate_batch_area") (result i32) (i32.const 8192))
  (func $verdict (param $i i32) (param $v i32)
    (i32.store8 (i32.add (i32.const 14352) (local.get $i)) (local.get $v)))
  ;; The descriptor's TOS byte (offset 21).
  (func $tos (param $i i32) (result i32)
    (i32.load8_u (i32.add (i32.const 8229) (i32.mul (local.get $i) (i32.const 96)))))
  (func (export "tungate_filter") (param $n i32) (local $i i32)
    (call $add (global.get $seen) (i64.extend_i32_u (local.get $n)))
    ;;FILTER;;
  )
  ;;EXTRA;;
  (@custom "tungate.plugin" "name=wat-test\nversion=0.0.1\n")
)
"#;

/// Writes verdict `$v` computed by the expression `VERDICT` (which may use `$i`) for each
/// packet.
fn each_packet(verdict: &str) -> String {
    format!(
        "(block $done (loop $next
           (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
           (call $verdict (local.get $i) {verdict})
           (local.set $i (i32.add (local.get $i) (i32.const 1)))
           (br $next)))"
    )
}

/// The filter body that passes everything.
pub const PASS_ALL: &str = "PASS_ALL";

/// A well-formed module with this filter body ([`PASS_ALL`] or any WAT instructions).
pub fn plugin(filter: &str) -> Vec<u8> {
    module("", filter, "")
}

/// A module with extra imports (placed first) and extra module items.
pub fn with(imports: &str, extra: &str) -> Vec<u8> {
    module(imports, PASS_ALL, extra)
}

/// The template with all three parts, as WAT text.
pub fn text(imports: &str, filter: &str, extra: &str) -> String {
    let filter = match filter {
        PASS_ALL => each_packet("(i32.const 0)"),
        other => other.to_owned(),
    };
    TEMPLATE
        .replace(";;IMPORTS;;", imports)
        .replace(";;FILTER;;", &filter)
        .replace(";;EXTRA;;", extra)
}

/// The template with all three parts, assembled.
pub fn module(imports: &str, filter: &str, extra: &str) -> Vec<u8> {
    plugin_raw(&text(imports, filter, extra))
}

/// The well-formed pass-everything module as WAT text, for tests that edit it.
pub fn pass_all_text() -> String {
    text("", PASS_ALL, "")
}

/// Assembles any WAT text.
pub fn plugin_raw(wat: &str) -> Vec<u8> {
    wat::parse_str(wat).unwrap_or_else(|e| panic!("test WAT does not assemble: {e}\n{wat}"))
}

/// The ABI v2 module with this filter body, as WAT text: the v1 template with the v2
/// marker, the v2 verdict offset (batch area 8192, descriptors from 8208, 192 bytes each,
/// verdicts from 20496), `$tos` reading the v2 TOS / traffic class byte (offset 45) and a
/// `$family` helper (offset 44: 4 or 6).
pub fn v2_text(filter: &str) -> String {
    use tungate_plugin_sdk::abi::v2;
    const { assert!(v2::AREA_VERDICTS_OFFSET == 20496 - 8192) };
    text(
        "",
        filter,
        "(func $family (param $i i32) (result i32)
           (i32.load8_u (i32.add (i32.const 8252) (i32.mul (local.get $i) (i32.const 192)))))",
    )
    .replace("tungate_abi_v1", v2::EXPORT_ABI_MARKER)
    .replace("(i32.const 14352)", "(i32.const 20496)")
    .replace(
        "(i32.const 8229) (i32.mul (local.get $i) (i32.const 96))",
        "(i32.const 8253) (i32.mul (local.get $i) (i32.const 192))",
    )
    .replace(
        ";; The descriptor's TOS byte (offset 21).",
        ";; The descriptor's TOS byte (v2 offset 45).",
    )
}

/// The ABI v2 module with this filter body, assembled.
pub fn v2_plugin(filter: &str) -> Vec<u8> {
    plugin_raw(&v2_text(filter))
}

/// For [`v2_plugin`]: drops the packets of this family (4 or 6), passes the others.
pub fn drop_family(family: u8) -> String {
    each_packet(&format!(
        "(i32.eq (call $family (local.get $i)) (i32.const {family}))"
    ))
}

/// Drops packets whose TOS equals `tos`, passes the others.
pub fn drop_tos(tos: u8) -> String {
    each_packet(&format!(
        "(i32.eq (call $tos (local.get $i)) (i32.const {tos}))"
    ))
}

/// Hostile filter bodies.
pub mod hostile {
    /// Never returns.
    pub const INFINITE_LOOP: &str = "(loop $forever (br $forever))";
    /// Grows memory by 1000 pages (64 MB), past any sane cap.
    pub const GROW_PAST_CAP: &str = "(drop (memory.grow (i32.const 1000)))";
    /// Executes `unreachable`.
    pub const UNREACHABLE: &str = "(unreachable)";
    /// Divides by zero.
    pub const DIV_BY_ZERO: &str =
        "(drop (i32.div_u (i32.const 1) (i32.sub (local.get $n) (local.get $n))))";
    /// Loads from far outside its memory.
    pub const OUT_OF_BOUNDS: &str = "(drop (i32.load (i32.const -4)))";
    /// Writes verdict 7 (not defined by ABI v1) for every packet.
    pub const VERDICT_SEVEN: &str = "VERDICT_SEVEN";
    /// Writes no verdict at all.
    pub const NO_VERDICT: &str = "";
    /// Traps (unreachable) when the first packet's TOS is 9, passes everything otherwise.
    pub const TRAP_ON_TOS_9: &str = "TRAP_ON_TOS_9";
}

/// Resolves the named hostile bodies that need the loop helper.
pub fn hostile_body(name: &str) -> String {
    match name {
        hostile::VERDICT_SEVEN => each_packet("(i32.const 7)"),
        hostile::TRAP_ON_TOS_9 => format!(
            "(if (i32.eq (call $tos (i32.const 0)) (i32.const 9)) (then unreachable)) {}",
            each_packet("(i32.const 0)")
        ),
        other => other.to_owned(),
    }
}
