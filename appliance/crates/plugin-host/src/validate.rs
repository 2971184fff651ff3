//! Judges an uploaded module before tungate accepts it: size, wasm magic, structure,
//! compilation, the ABI version marker (v1 or v2, exactly one: it chooses the module's
//! descriptor layout), the exact exports, the imports and the start function policy (the
//! same in v1 and v2).
//!
//! Every refusal is its own [`Refusal`] variant whose message says what is wrong and what to
//! do. This module compiles (that is part of judging) but never instantiates or runs guest
//! code; identity is the module's sha256 in hex.

use std::fmt;

use sha2::{Digest, Sha256};
use tungate_plugin_sdk::abi;
use wasmparser::{Encoding, Parser, Payload};
use wasmtime::{ExternType, FuncType, Module, ValType};

use super::engine::{Limits, PluginEngine};

/// The ABI versions this host speaks, each with its marker export.
pub const SUPPORTED_ABIS: [(u32, &str); 2] = [
    (abi::ABI_VERSION, abi::EXPORT_ABI_MARKER),
    (abi::v2::VERSION, abi::v2::EXPORT_ABI_MARKER),
];

/// The custom section in which the SDK records the plugin's crate name and version.
pub(crate) const METADATA_SECTION: &str = "tungate.plugin";

/// Why a module was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Larger than the limit.
    #[error(
        "the module is {size} bytes, more than the limit of {max}: build it with the `plugin` profile (opt-level s, stripped)"
    )]
    TooLarge {
        /// Its size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// Defines more functions than the limit.
    #[error(
        "the module defines {count} functions, more than the limit of {max}: compiling it would \
         take too long; plugins built with the SDK define a few hundred"
    )]
    TooManyFunctions {
        /// How many it defines.
        count: u32,
        /// The limit.
        max: u32,
    },
    /// Does not start with `\0asm`.
    #[error("not a WebAssembly module: the file does not start with the wasm magic bytes \\0asm")]
    NotWasm,
    /// A component or another binary format version.
    #[error(
        "not a core WebAssembly module (version 1): it is a {0}; build for wasm32-unknown-unknown as a cdylib"
    )]
    NotCoreModule(String),
    /// The binary is malformed or fails validation or compilation.
    #[error("the module does not compile: {0}")]
    DoesNotCompile(String),
    /// Has a start function.
    #[error(
        "the module has a start function; the ABI forbids it (do one-time work in tungate_configure)"
    )]
    StartFunction,
    /// No `tungate_abi_v*` export.
    #[error(
        "no ABI version marker: export a function `tungate_abi_v2` (IPv4 and IPv6; the SDK's \
         export_plugin! macro does) or `tungate_abi_v1` (the IPv4-only layout)"
    )]
    MissingAbiMarker,
    /// More than one `tungate_abi_v*` export.
    #[error(
        "the module exports several ABI version markers ({found}); a module speaks exactly one \
         ABI, which chooses its packet layout: export only `tungate_abi_v2` (IPv4 and IPv6) or \
         only `tungate_abi_v1` (IPv4 only)"
    )]
    SeveralAbiMarkers {
        /// The markers found.
        found: String,
    },
    /// A marker of a version this host does not speak.
    #[error(
        "the module speaks ABI {found:?}, this gateway speaks {supported}: rebuild it with a matching tungate-plugin-sdk"
    )]
    WrongAbiVersion {
        /// The marker found.
        found: String,
        /// The versions this host speaks.
        supported: &'static str,
    },
    /// A required export is missing.
    #[error("missing export `{name}` ({expected}); the ABI requires it")]
    MissingExport {
        /// The export.
        name: &'static str,
        /// What it must be.
        expected: String,
    },
    /// A required export has the wrong kind or signature.
    #[error("export `{name}` is {found}, the ABI requires {expected}")]
    ExportType {
        /// The export.
        name: &'static str,
        /// What it must be.
        expected: String,
        /// What it is.
        found: String,
    },
    /// Imports something from WASI.
    #[error(
        "imports `{module}.{name}` from WASI; tungate plugins get no WASI (only the `tungate` imports): build for wasm32-unknown-unknown, not wasm32-wasip1"
    )]
    WasiImport {
        /// The import module.
        module: String,
        /// The import name.
        name: String,
    },
    /// Imports from a module other than `tungate`.
    #[error(
        "imports `{module}.{name}` from unknown module `{module}`; only `tungate` imports are provided"
    )]
    UnknownImportModule {
        /// The import module.
        module: String,
        /// The import name.
        name: String,
    },
    /// Imports a `tungate` name that the ABI does not have.
    #[error(
        "imports `tungate.{name}`, which the ABI does not provide (known: counter_define, counter_add, log, now_ns, refuse_config)"
    )]
    UnknownImport {
        /// The import name.
        name: String,
    },
    /// Imports a `tungate` function with the wrong signature (or as a non-function).
    #[error("imports `tungate.{name}` as {found}, the ABI provides {expected}")]
    ImportType {
        /// The import name.
        name: &'static str,
        /// What the ABI provides.
        expected: String,
        /// What the module asks for.
        found: String,
    },
    /// Its memory is unusable (too large initially, shared or 64-bit).
    #[error("its memory {0}")]
    Memory(String),
}

/// What a check found out about an accepted module.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ModuleInfo {
    /// The plugin's crate name from the SDK's metadata section, if present.
    pub name: Option<String>,
    /// Its version from the metadata section, if present.
    pub version: Option<String>,
    /// sha256 of the module bytes, lowercase hex: the module's identity.
    pub sha256: String,
    /// Size in bytes.
    pub size: usize,
    /// The ABI version it speaks (1: IPv4 descriptors only; 2: IPv4 and IPv6), chosen by
    /// its marker export.
    pub abi_version: u32,
    /// Every export, in module order.
    pub exports: Vec<String>,
    /// Every import as `module.name`, in module order.
    pub imports: Vec<String>,
}

/// An accepted module, compiled.
pub struct CheckedModule {
    /// The compiled module.
    pub module: Module,
    /// What the check found.
    pub info: ModuleInfo,
}

/// sha256 of `bytes` in lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A wasm value type as the ABI uses them.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Ty {
    I32,
    I64,
}

/// A function signature of the ABI.
struct Sig(&'static [Ty], &'static [Ty]);

impl fmt::Display for Sig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |l: &[Ty]| {
            l.iter()
                .map(|t| match t {
                    Ty::I32 => "i32",
                    Ty::I64 => "i64",
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        write!(f, "func ({}) -> ({})", list(self.0), list(self.1))
    }
}

impl Sig {
    fn matches(&self, ty: &FuncType) -> bool {
        fn same(want: &[Ty], got: impl ExactSizeIterator<Item = ValType>) -> bool {
            want.len() == got.len()
                && want.iter().zip(got).all(|(w, g)| match w {
                    Ty::I32 => matches!(g, ValType::I32),
                    Ty::I64 => matches!(g, ValType::I64),
                })
        }
        same(self.0, ty.params()) && same(self.1, ty.results())
    }
}

use Ty::{I32, I64};

/// The signature of a version marker export.
const MARKER_SIG: Sig = Sig(&[], &[]);

/// The function exports both ABI versions require (besides the marker), with their
/// signatures.
const REQUIRED_FUNCS: &[(&str, Sig)] = &[
    (abi::EXPORT_ALLOC, Sig(&[I32], &[I32])),
    (abi::EXPORT_CONFIGURE, Sig(&[I32, I32], &[I32])),
    (abi::EXPORT_BATCH_AREA, Sig(&[], &[I32])),
    (abi::EXPORT_FILTER, Sig(&[I32], &[])),
];

/// The imports both ABI versions provide (module `tungate`), with their signatures.
const PROVIDED_IMPORTS: &[(&str, Sig)] = &[
    (
        abi::IMPORT_COUNTER_DEFINE,
        Sig(&[I32, I32, I32, I32], &[I32]),
    ),
    (abi::IMPORT_COUNTER_ADD, Sig(&[I32, I64], &[])),
    (abi::IMPORT_LOG, Sig(&[I32, I32, I32], &[])),
    (abi::IMPORT_NOW_NS, Sig(&[], &[I64])),
    (abi::IMPORT_REFUSE_CONFIG, Sig(&[I32, I32], &[])),
];

fn describe(ty: &ExternType) -> String {
    match ty {
        ExternType::Func(f) => {
            let p: Vec<String> = f.params().map(|t| t.to_string()).collect();
            let r: Vec<String> = f.results().map(|t| t.to_string()).collect();
            format!("func ({}) -> ({})", p.join(", "), r.join(", "))
        }
        ExternType::Global(_) => "a global".into(),
        ExternType::Table(_) => "a table".into(),
        ExternType::Memory(_) => "a memory".into(),
        ExternType::Tag(_) => "a tag".into(),
    }
}

/// Checks `bytes` exactly as an upload is checked; on success the module is compiled.
pub fn check_module(engine: &PluginEngine, bytes: &[u8]) -> Result<CheckedModule, Refusal> {
    check_module_with(engine, bytes, &|bytes| Module::new(engine.engine(), bytes))
}

/// [`check_module`], with `compile` turning the bytes into a module (e.g. from the
/// compiled-module cache); every check runs on the module it returns.
pub(crate) fn check_module_with(
    engine: &PluginEngine,
    bytes: &[u8],
    compile: &dyn Fn(&[u8]) -> wasmtime::Result<Module>,
) -> Result<CheckedModule, Refusal> {
    let max = engine.limits().max_module_bytes;
    if bytes.len() > max {
        return Err(Refusal::TooLarge {
            size: bytes.len(),
            max,
        });
    }
    if !bytes.starts_with(b"\0asm") {
        return Err(Refusal::NotWasm);
    }
    let metadata = scan_structure(bytes, engine.limits())?;
    let module = compile(bytes).map_err(|e| Refusal::DoesNotCompile(format!("{e:#}")))?;

    let (abi_version, marker) = check_abi_marker(&module)?;
    let imports = check_imports(&module)?;
    let exports = check_exports(&module, marker)?;
    let field = |key: &str| {
        metadata.as_deref().and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix(key)?.strip_prefix('=').map(str::to_owned))
        })
    };
    let info = ModuleInfo {
        name: field("name"),
        version: field("version"),
        sha256: sha256_hex(bytes),
        size: bytes.len(),
        abi_version,
        exports,
        imports,
    };
    Ok(CheckedModule { module, info })
}

/// Walks the sections before compiling (which would refuse an oversized memory less clearly,
/// and would spend its time on too many functions): the binary kind, the start section, the
/// number of functions, the memories, the metadata section.
fn scan_structure(bytes: &[u8], limits: &Limits) -> Result<Option<String>, Refusal> {
    let memory_cap = limits.memory_cap_bytes;
    let mut metadata = None;
    for payload in Parser::new(0).parse_all(bytes) {
        let payload = payload.map_err(|e| Refusal::DoesNotCompile(e.to_string()))?;
        match payload {
            Payload::Version { encoding, num, .. } => match encoding {
                Encoding::Module if num == 1 => {}
                Encoding::Module => {
                    return Err(Refusal::NotCoreModule(format!(
                        "module of binary version {num}"
                    )));
                }
                Encoding::Component => return Err(Refusal::NotCoreModule("component".into())),
            },
            Payload::StartSection { .. } => return Err(Refusal::StartFunction),
            Payload::FunctionSection(reader) if reader.count() > limits.max_functions => {
                return Err(Refusal::TooManyFunctions {
                    count: reader.count(),
                    max: limits.max_functions,
                });
            }
            Payload::MemorySection(reader) => {
                for memory in reader {
                    let m = memory.map_err(|e| Refusal::DoesNotCompile(e.to_string()))?;
                    if m.shared || m.memory64 {
                        return Err(Refusal::Memory(
                            "is shared or 64-bit; the ABI needs a plain 32-bit memory".into(),
                        ));
                    }
                    let page = 1u64 << m.page_size_log2.unwrap_or(16);
                    let min = m.initial.saturating_mul(page);
                    if min > memory_cap as u64 {
                        return Err(Refusal::Memory(format!(
                            "starts at {min} bytes, more than the cap of {memory_cap} bytes per instance"
                        )));
                    }
                }
            }
            Payload::CustomSection(section) if section.name() == METADATA_SECTION => {
                metadata = Some(String::from_utf8_lossy(section.data()).into_owned());
            }
            _ => {}
        }
    }
    Ok(metadata)
}

/// The ABI version the module's one marker names, and that marker.
fn check_abi_marker(module: &Module) -> Result<(u32, &'static str), Refusal> {
    let markers: Vec<&str> = module
        .exports()
        .map(|e| e.name())
        .filter(|n| n.starts_with(abi::ABI_MARKER_PREFIX))
        .collect();
    match markers.as_slice() {
        [] => Err(Refusal::MissingAbiMarker),
        [one] => SUPPORTED_ABIS
            .iter()
            .find(|(_, marker)| marker == one)
            .copied()
            .ok_or_else(|| Refusal::WrongAbiVersion {
                found: (*one).to_owned(),
                supported: "v1 and v2",
            }),
        _ => Err(Refusal::SeveralAbiMarkers {
            found: markers.join(", "),
        }),
    }
}

fn check_imports(module: &Module) -> Result<Vec<String>, Refusal> {
    let mut list = Vec::new();
    for import in module.imports() {
        let (m, n) = (import.module(), import.name());
        if m.starts_with("wasi") {
            return Err(Refusal::WasiImport {
                module: m.into(),
                name: n.into(),
            });
        }
        if m != abi::IMPORT_MODULE {
            return Err(Refusal::UnknownImportModule {
                module: m.into(),
                name: n.into(),
            });
        }
        let Some((name, sig)) = PROVIDED_IMPORTS.iter().find(|(name, _)| *name == n) else {
            return Err(Refusal::UnknownImport { name: n.into() });
        };
        let ty = import.ty();
        if !matches!(&ty, ExternType::Func(f) if sig.matches(f)) {
            return Err(Refusal::ImportType {
                name,
                expected: sig.to_string(),
                found: describe(&ty),
            });
        }
        list.push(format!("{m}.{n}"));
    }
    Ok(list)
}

fn check_exports(module: &Module, marker: &'static str) -> Result<Vec<String>, Refusal> {
    let find = |name: &str| module.exports().find(|e| e.name() == name).map(|e| e.ty());
    let marker = [(marker, MARKER_SIG)];
    for (name, sig) in marker.iter().chain(REQUIRED_FUNCS) {
        match find(name) {
            None => {
                return Err(Refusal::MissingExport {
                    name,
                    expected: sig.to_string(),
                });
            }
            Some(ExternType::Func(f)) if sig.matches(&f) => {}
            Some(other) => {
                return Err(Refusal::ExportType {
                    name,
                    expected: sig.to_string(),
                    found: describe(&other),
                });
            }
        }
    }
    match find(abi::EXPORT_MEMORY) {
        None => {
            return Err(Refusal::MissingExport {
                name: abi::EXPORT_MEMORY,
                expected: "a memory".into(),
            });
        }
        Some(ExternType::Memory(_)) => {}
        Some(other) => {
            return Err(Refusal::ExportType {
                name: abi::EXPORT_MEMORY,
                expected: "a memory".into(),
                found: describe(&other),
            });
        }
    }
    Ok(module.exports().map(|e| e.name().to_owned()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_wat;

    fn engine() -> PluginEngine {
        PluginEngine::new(Limits {
            max_instances: 2,
            max_module_bytes: 64 << 10,
            ..Limits::default()
        })
        .unwrap()
    }

    fn refusal(bytes: &[u8]) -> Refusal {
        match check_module(&engine(), bytes) {
            Ok(_) => panic!("accepted"),
            Err(r) => r,
        }
    }

    #[test]
    fn a_well_formed_module_is_accepted_and_described() {
        let bytes = test_wat::plugin(test_wat::PASS_ALL);
        let checked = check_module(&engine(), &bytes).unwrap();
        let info = checked.info;
        assert_eq!(info.sha256, hex::encode(Sha256::digest(&bytes)));
        assert_eq!(info.sha256.len(), 64);
        assert_eq!(info.size, bytes.len());
        assert_eq!(info.abi_version, 1);
        assert_eq!(info.name.as_deref(), Some("wat-test"));
        assert_eq!(info.version.as_deref(), Some("0.0.1"));
        for e in [
            "memory",
            "tungate_abi_v1",
            "tungate_alloc",
            "tungate_configure",
            "tungate_batch_area",
            "tungate_filter",
        ] {
            assert!(info.exports.iter().any(|x| x == e), "{e}");
        }
        assert_eq!(
            info.imports,
            [
                "tungate.refuse_config",
                "tungate.counter_define",
                "tungate.counter_add"
            ]
        );
    }

    #[test]
    fn the_marker_chooses_the_abi_version() {
        for (version, wat) in [
            (1, test_wat::pass_all_text()),
            (2, test_wat::v2_text(test_wat::PASS_ALL)),
        ] {
            let info = check_module(&engine(), &test_wat::plugin_raw(&wat))
                .unwrap()
                .info;
            assert_eq!(info.abi_version, version);
            let marker = format!("tungate_abi_v{version}");
            assert!(info.exports.contains(&marker), "{:?}", info.exports);
        }
    }

    #[test]
    fn too_many_functions_are_refused_before_compiling() {
        let functions = |n: usize| -> String {
            (0..n)
                .map(|k| format!("(func (result i32) (i32.const {k}))"))
                .collect()
        };
        // The template itself defines 7 functions.
        let limited = |max_functions| {
            PluginEngine::new(Limits {
                max_instances: 2,
                max_functions,
                ..Limits::default()
            })
            .unwrap()
        };
        let base = test_wat::with("", "");
        assert!(check_module(&limited(7), &base).is_ok());
        let one_more = test_wat::with("", &functions(1));
        assert_eq!(
            check_module(&limited(7), &one_more).err(),
            Some(Refusal::TooManyFunctions { count: 8, max: 7 })
        );
        // At the default limit, a module with thousands of functions more is refused from
        // its function section, without compiling any of them.
        let many = test_wat::with("", &functions(crate::engine::MAX_FUNCTIONS as usize));
        let r = check_module(&limited(crate::engine::MAX_FUNCTIONS), &many)
            .err()
            .expect("refused");
        assert_eq!(
            r,
            Refusal::TooManyFunctions {
                count: crate::engine::MAX_FUNCTIONS + 7,
                max: crate::engine::MAX_FUNCTIONS
            }
        );
        assert!(
            r.to_string().contains("more than the limit of 10000"),
            "{r}"
        );
    }

    #[test]
    fn size_and_magic() {
        let huge = vec![0u8; (64 << 10) + 1];
        assert_eq!(
            refusal(&huge),
            Refusal::TooLarge {
                size: huge.len(),
                max: 64 << 10
            }
        );
        assert_eq!(refusal(b"\x7fELF\x02\x01\x01"), Refusal::NotWasm);
        assert_eq!(refusal(b""), Refusal::NotWasm);
        assert_eq!(
            refusal(b"\0asm\x0d\x00\x01\x00"),
            Refusal::NotCoreModule("component".into())
        );
        assert!(matches!(
            refusal(b"\0asm\x01\x00\x00\x00\x01\xff"),
            Refusal::DoesNotCompile(_)
        ));
    }

    #[test]
    fn each_abi_violation_has_its_refusal() {
        use test_wat::with;
        type Case = (Vec<u8>, Box<dyn Fn(&Refusal) -> bool>, &'static str);
        let cases: Vec<Case> = vec![
            (
                with("", "(start $noop) (func $noop)"),
                Box::new(|r| *r == Refusal::StartFunction),
                "start function",
            ),
            (
                test_wat::plugin_raw(
                    &test_wat::pass_all_text().replace("tungate_abi_v1", "something_else"),
                ),
                Box::new(|r| *r == Refusal::MissingAbiMarker),
                "no ABI version marker: export a function `tungate_abi_v2`",
            ),
            (
                test_wat::plugin_raw(
                    &test_wat::pass_all_text().replace("tungate_abi_v1", "tungate_abi_v3"),
                ),
                Box::new(
                    |r| matches!(r, Refusal::WrongAbiVersion { found, .. } if found == "tungate_abi_v3"),
                ),
                "speaks ABI \"tungate_abi_v3\", this gateway speaks v1 and v2",
            ),
            (
                test_wat::plugin_raw(&test_wat::pass_all_text().replace(
                    "(func (export \"tungate_abi_v1\"))",
                    "(func (export \"tungate_abi_v1\")) (func (export \"tungate_abi_v2\"))",
                )),
                Box::new(|r| {
                    matches!(r, Refusal::SeveralAbiMarkers { found }
                        if found == "tungate_abi_v1, tungate_abi_v2")
                }),
                "several ABI version markers (tungate_abi_v1, tungate_abi_v2)",
            ),
            (
                test_wat::plugin_raw(&test_wat::pass_all_text().replace(
                    "(func (export \"tungate_abi_v1\"))",
                    "(func (export \"tungate_abi_v2\") (param i32))",
                )),
                Box::new(|r| {
                    matches!(
                        r,
                        Refusal::ExportType {
                            name: "tungate_abi_v2",
                            ..
                        }
                    )
                }),
                "func () -> ()",
            ),
            (
                with(
                    r#"(import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32)))"#,
                    "",
                ),
                Box::new(|r| matches!(r, Refusal::WasiImport { .. })),
                "from WASI",
            ),
            (
                with(r#"(import "env" "abort" (func))"#, ""),
                Box::new(
                    |r| matches!(r, Refusal::UnknownImportModule { module, .. } if module == "env"),
                ),
                "unknown module `env`",
            ),
            (
                with(r#"(import "tungate" "exec" (func))"#, ""),
                Box::new(|r| matches!(r, Refusal::UnknownImport { name } if name == "exec")),
                "`tungate.exec`",
            ),
            (
                with(r#"(import "tungate" "now_ns" (func (result i32)))"#, ""),
                Box::new(|r| matches!(r, Refusal::ImportType { name: "now_ns", .. })),
                "func () -> (i64)",
            ),
            (
                with(r#"(import "tungate" "log" (global i32))"#, ""),
                Box::new(|r| matches!(r, Refusal::ImportType { name: "log", .. })),
                "as a global",
            ),
            (
                test_wat::plugin_raw(
                    &test_wat::pass_all_text().replace("(export \"tungate_filter\")", ""),
                ),
                Box::new(|r| {
                    matches!(
                        r,
                        Refusal::MissingExport {
                            name: "tungate_filter",
                            ..
                        }
                    )
                }),
                "missing export `tungate_filter`",
            ),
            (
                test_wat::plugin_raw(
                    &test_wat::pass_all_text()
                        .replace(
                            "(func (export \"tungate_batch_area\") (result i32)",
                            "(func (export \"tungate_batch_area\") (result i64)",
                        )
                        .replace("(i32.const 8192)", "(i64.const 8192)"),
                ),
                Box::new(|r| {
                    matches!(
                        r,
                        Refusal::ExportType {
                            name: "tungate_batch_area",
                            ..
                        }
                    )
                }),
                "func () -> (i32)",
            ),
            (
                test_wat::plugin_raw(&test_wat::pass_all_text().replace(
                    "(memory (export \"memory\") 1)",
                    "(memory (export \"memory\") 300)",
                )),
                Box::new(|r| matches!(r, Refusal::Memory(_))),
                "more than the cap",
            ),
            (
                test_wat::plugin_raw(
                    &test_wat::pass_all_text()
                        .replace("(memory (export \"memory\") 1)", "(memory 1)"),
                ),
                Box::new(|r| matches!(r, Refusal::MissingExport { name: "memory", .. })),
                "missing export `memory`",
            ),
            (
                test_wat::plugin_raw("(module (func (export \"tungate_abi_v1\") (i32.add)))"),
                Box::new(|r| matches!(r, Refusal::DoesNotCompile(_))),
                "does not compile",
            ),
        ];
        for (bytes, is_expected, text) in cases {
            let r = refusal(&bytes);
            assert!(is_expected(&r), "expected {text:?}, got {r:?}");
            assert!(r.to_string().contains(text), "{text:?} not in {r}");
        }
    }
}
