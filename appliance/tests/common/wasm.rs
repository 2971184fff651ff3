//! A tiny ABI v1 plugin in WAT that passes every packet, made distinct by a tag in a custom
//! section: for tests that need many different modules that compile in a millisecond. It
//! reads no configuration (any is accepted).

/// The module tagged `tag` (other bytes and sha256 per tag, same behaviour).
pub fn pass_all_module(tag: &str) -> Vec<u8> {
    // Batch area at 8192: 16 header bytes, 64 descriptors of 96 bytes, then the verdicts
    // (plugin-sdk's abi.rs); verdict 0 is "pass".
    wat::parse_str(format!(
        r#"(module
             (memory (export "memory") 1)
             (func (export "tungate_abi_v1"))
             (func (export "tungate_alloc") (param i32) (result i32) (i32.const 1024))
             (func (export "tungate_configure") (param i32 i32) (result i32) (i32.const 0))
             (func (export "tungate_batch_area") (result i32) (i32.const 8192))
             (func (export "tungate_filter") (param $n i32)
               (memory.fill (i32.const 14352) (i32.const 0) (local.get $n)))
             (@custom "tag" "{tag}"))"#
    ))
    .expect("the tiny module is valid WAT")
}
