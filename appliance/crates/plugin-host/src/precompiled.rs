//! The compiled-module cache on disk: a restart loads each plugin's machine code instead of
//! compiling it again (seconds per module under emulation, during which the gateway is not
//! ready).
//!
//! An entry is `<dir>/<module sha256>-<engine key>.cwasm`: the module's identity and a hash
//! of everything the engine compiles with (wasmtime's `precompile_compatibility_hash`:
//! wasmtime's version, the target and its CPU features, the compiler settings, the
//! tunables and wasm features). Its content is a magic line, the sha256 of the payload, and
//! the payload, wasmtime's own serialisation of the compiled module. An entry whose name,
//! digest or payload does not match, or that wasmtime refuses, is removed and the module
//! compiled again: an entry is never trusted over the module it came from. [`Self::retain`]
//! keeps the directory bounded to the modules in use.
//!
//! This is the one module of the crate with `unsafe` code: loading machine code
//! (`Module::deserialize`) is unsafe because wasmtime cannot verify it. Nothing here runs
//! guest code or judges a module (that is [`super::validate`], which runs on the loaded
//! module exactly as on a freshly compiled one).

#![allow(unsafe_code)]

use std::collections::HashSet;
use std::fs;
use std::hash::{Hash, Hasher};
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use sha2::{Digest, Sha256};
use wasmtime::{Engine, Module};

/// The first bytes of every entry (the format of this file, not wasmtime's).
const MAGIC: &[u8] = b"tungate compiled module v1\n";
/// The suffix of entry files.
const SUFFIX: &str = ".cwasm";
/// The prefix of a file being written (renamed into place when complete).
const TEMP_PREFIX: &str = ".tmp-";

/// Counts of what the cache did since the host started.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CacheCounts {
    /// Modules loaded from an entry (not compiled).
    pub hits: u64,
    /// Modules compiled because no entry existed (an entry is then written).
    pub misses: u64,
    /// Entries refused (digest, format, or wasmtime refusing them), removed and recompiled.
    pub rejected: u64,
}

/// The compiled-module cache of one engine in one directory.
pub(crate) struct CompiledCache {
    dir: PathBuf,
    engine_key: String,
    hits: AtomicU64,
    misses: AtomicU64,
    rejected: AtomicU64,
}

/// Feeds everything hashed into a sha256 (stable across processes, unlike std's hasher).
struct Sha256Hasher(Sha256);

impl Hasher for Sha256Hasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    fn finish(&self) -> u64 {
        let digest = self.0.clone().finalize();
        u64::from_le_bytes(digest[..8].try_into().expect("a sha256 has 32 bytes"))
    }
}

/// The part of an entry's name that says which engine compiled it: 16 hex digits of a
/// sha256 over the engine's compatibility hash.
pub(crate) fn engine_key(engine: &Engine) -> String {
    let mut hasher = Sha256Hasher(Sha256::new());
    engine.precompile_compatibility_hash().hash(&mut hasher);
    hex::encode(&hasher.0.finalize()[..8])
}

impl CompiledCache {
    /// The cache of `engine` in `dir` (created, mode 0700, when the first entry is written).
    pub(crate) fn new(dir: PathBuf, engine: &Engine) -> CompiledCache {
        CompiledCache {
            dir,
            engine_key: engine_key(engine),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
        }
    }

    /// What the cache did so far.
    pub(crate) fn counts(&self) -> CacheCounts {
        CacheCounts {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            rejected: self.rejected.load(Ordering::Relaxed),
        }
    }

    fn entry(&self, sha256: &str) -> PathBuf {
        self.dir
            .join(format!("{sha256}-{}{SUFFIX}", self.engine_key))
    }

    /// The module `bytes` (whose sha256 is `sha256`) compiled by `engine`: loaded from its
    /// entry, or compiled now and its entry written. A compilation error is returned as
    /// is; a cache that cannot be read or written only costs the compilation.
    pub(crate) fn load_or_compile(
        &self,
        engine: &Engine,
        sha256: &str,
        bytes: &[u8],
    ) -> wasmtime::Result<Module> {
        let path = self.entry(sha256);
        let started = Instant::now();
        match self.load(engine, &path) {
            Ok(Some(module)) => {
                self.hits.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(
                    "plugin module {sha256}: loaded compiled from {} in {:?}",
                    path.display(),
                    started.elapsed()
                );
                return Ok(module);
            }
            Ok(None) => {
                self.misses.fetch_add(1, Ordering::Relaxed);
            }
            Err(why) => {
                self.rejected.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    "compiled-module cache entry {} refused ({why}): removed, compiling the \
                     module again",
                    path.display()
                );
                let _ = fs::remove_file(&path);
            }
        }
        let module = Module::new(engine, bytes)?;
        tracing::info!(
            "plugin module {sha256}: compiled in {:?}",
            started.elapsed()
        );
        if let Err(e) = self.store(&module, &path) {
            tracing::warn!(
                "cannot write compiled-module cache entry {}: {e} (the next start compiles \
                 this module again)",
                path.display()
            );
        }
        Ok(module)
    }

    /// The entry at `path`: `None` if there is none, `Err` with why if it is refused.
    fn load(&self, engine: &Engine, path: &Path) -> Result<Option<Module>, String> {
        let content = match fs::read(path) {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("cannot read it: {e}")),
        };
        let rest = content
            .strip_prefix(MAGIC)
            .ok_or("not a tungate compiled-module file")?;
        if rest.len() < 32 {
            return Err("truncated".into());
        }
        let (digest, payload) = rest.split_at(32);
        if Sha256::digest(payload).as_slice() != digest {
            return Err("its content does not match its digest (corrupted or truncated)".into());
        }
        // SAFETY: `payload` is what `Module::serialize` wrote into this cache (below), in
        // the state directory that only tungate writes (mode 0700, owned by its user), and
        // it is byte for byte what was written: its sha256 matches the digest stored with
        // it, so a torn or corrupted file never gets here. wasmtime itself refuses an
        // artifact of another wasmtime version or of an engine with other settings.
        unsafe { Module::deserialize(engine, payload) }
            .map(Some)
            .map_err(|e| format!("wasmtime refuses it: {e:#}"))
    }

    /// Writes `module`'s entry (a temporary file renamed into place).
    fn store(&self, module: &Module, path: &Path) -> std::io::Result<()> {
        let payload = module.serialize().map_err(std::io::Error::other)?;
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = self
            .dir
            .join(format!("{TEMP_PREFIX}{name}-{}", std::process::id()));
        let result = (|| {
            let mut file = fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)?;
            file.write_all(MAGIC)?;
            file.write_all(&Sha256::digest(&payload))?;
            file.write_all(&payload)?;
            drop(file);
            fs::rename(&tmp, path)
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result
    }

    /// Removes every entry but those of this engine for the modules in `keep` (sha256s),
    /// and leftover temporaries: entries of modules no longer used, and of other engines
    /// (another wasmtime version or settings), never pile up.
    pub(crate) fn retain(&self, keep: &HashSet<String>) {
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return;
        };
        let wanted: HashSet<String> = keep
            .iter()
            .map(|sha| format!("{sha}-{}{SUFFIX}", self.engine_key))
            .collect();
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !wanted.contains(&name) {
                let _ = fs::remove_file(entry.path());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_wat;
    use crate::validate::sha256_hex;
    use wasmtime::{Config, Store};

    /// An engine with or without epoch interruption (a setting compiled into the code, so
    /// wasmtime refuses an artifact of the other).
    fn engine(epochs: bool) -> Engine {
        let mut config = Config::new();
        config.epoch_interruption(epochs);
        Engine::new(&config).unwrap()
    }

    /// Runs the module's `tungate_batch_area` export (it needs only its own memory): the
    /// compiled code loaded from the cache is real code that runs.
    fn runs(engine: &Engine, module: &Module) -> i32 {
        let mut linker = wasmtime::Linker::new(engine);
        linker.define_unknown_imports_as_traps(module).unwrap();
        let mut store = Store::new(engine, ());
        store.set_epoch_deadline(u64::MAX / 2);
        let instance = linker.instantiate(&mut store, module).unwrap();
        instance
            .get_typed_func::<(), i32>(&mut store, "tungate_batch_area")
            .unwrap()
            .call(&mut store, ())
            .unwrap()
    }

    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }

    #[test]
    fn a_second_start_loads_what_the_first_compiled() {
        let dir = tempfile::tempdir().unwrap();
        let cache_dir = dir.path().join("compiled");
        let engine = engine(true);
        let bytes = test_wat::plugin(test_wat::PASS_ALL);
        let sha = sha256_hex(&bytes);

        let first = CompiledCache::new(cache_dir.clone(), &engine);
        let module = first.load_or_compile(&engine, &sha, &bytes).unwrap();
        assert_eq!(runs(&engine, &module), 8192);
        assert_eq!(
            first.counts(),
            CacheCounts {
                hits: 0,
                misses: 1,
                rejected: 0
            }
        );
        assert_eq!(
            entries(&cache_dir),
            [format!("{sha}-{}.cwasm", engine_key(&engine))]
        );

        // A restart: a new cache over the same directory and an equal engine.
        let engine = self::engine(true);
        let second = CompiledCache::new(cache_dir.clone(), &engine);
        let module = second.load_or_compile(&engine, &sha, &bytes).unwrap();
        assert_eq!(runs(&engine, &module), 8192);
        assert_eq!(
            second.counts(),
            CacheCounts {
                hits: 1,
                misses: 0,
                rejected: 0
            }
        );
    }

    #[test]
    fn a_corrupted_entry_is_removed_and_the_module_compiled_again() {
        let dir = tempfile::tempdir().unwrap();
        let engine = engine(true);
        let bytes = test_wat::plugin(test_wat::PASS_ALL);
        let sha = sha256_hex(&bytes);
        CompiledCache::new(dir.path().to_owned(), &engine)
            .load_or_compile(&engine, &sha, &bytes)
            .unwrap();
        let path = dir
            .path()
            .join(format!("{sha}-{}.cwasm", engine_key(&engine)));
        let good = fs::read(&path).unwrap();

        let mut flipped = good.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 0xff;
        let mut truncated = good.clone();
        truncated.truncate(good.len() / 2);
        let mut no_magic = good.clone();
        no_magic[0] = b'X';
        for (what, content) in [
            ("a flipped byte", flipped),
            ("truncated", truncated),
            ("no magic", no_magic),
            ("empty", Vec::new()),
        ] {
            fs::write(&path, &content).unwrap();
            let cache = CompiledCache::new(dir.path().to_owned(), &engine);
            let module = cache.load_or_compile(&engine, &sha, &bytes).unwrap();
            assert_eq!(runs(&engine, &module), 8192, "{what}");
            assert_eq!(
                cache.counts(),
                CacheCounts {
                    hits: 0,
                    misses: 0,
                    rejected: 1
                },
                "{what}"
            );
            // The entry was written again, whole: the next start loads it.
            assert_eq!(fs::read(&path).unwrap().len(), good.len(), "{what}");
            let next = CompiledCache::new(dir.path().to_owned(), &engine);
            next.load_or_compile(&engine, &sha, &bytes).unwrap();
            assert_eq!(next.counts().hits, 1, "{what}");
        }
    }

    #[test]
    fn another_engine_setting_misses_and_never_loads_the_other_s_code() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = test_wat::plugin(test_wat::PASS_ALL);
        let sha = sha256_hex(&bytes);
        let epochs = engine(true);
        let no_epochs = engine(false);
        assert_ne!(engine_key(&epochs), engine_key(&no_epochs));
        CompiledCache::new(dir.path().to_owned(), &epochs)
            .load_or_compile(&epochs, &sha, &bytes)
            .unwrap();

        // Another setting: another name, so a miss.
        let other = CompiledCache::new(dir.path().to_owned(), &no_epochs);
        let module = other.load_or_compile(&no_epochs, &sha, &bytes).unwrap();
        assert_eq!(runs(&no_epochs, &module), 8192);
        assert_eq!(other.counts().misses, 1);

        // The other engine's entry under this engine's name (as if the key failed to tell
        // them apart): wasmtime refuses it, the module is compiled again.
        let speed_entry = dir
            .path()
            .join(format!("{sha}-{}.cwasm", engine_key(&epochs)));
        let none_entry = dir
            .path()
            .join(format!("{sha}-{}.cwasm", engine_key(&no_epochs)));
        fs::copy(&speed_entry, &none_entry).unwrap();
        let swapped = CompiledCache::new(dir.path().to_owned(), &no_epochs);
        let module = swapped.load_or_compile(&no_epochs, &sha, &bytes).unwrap();
        assert_eq!(runs(&no_epochs, &module), 8192);
        assert_eq!(
            swapped.counts(),
            CacheCounts {
                hits: 0,
                misses: 0,
                rejected: 1
            }
        );
    }

    #[test]
    fn retain_keeps_only_this_engine_s_entries_of_modules_in_use() {
        let dir = tempfile::tempdir().unwrap();
        let epochs = engine(true);
        let no_epochs = engine(false);
        let a = test_wat::plugin(test_wat::PASS_ALL);
        let b = test_wat::plugin(test_wat::hostile::UNREACHABLE);
        let (sha_a, sha_b) = (sha256_hex(&a), sha256_hex(&b));
        let cache = CompiledCache::new(dir.path().to_owned(), &epochs);
        cache.load_or_compile(&epochs, &sha_a, &a).unwrap();
        cache.load_or_compile(&epochs, &sha_b, &b).unwrap();
        CompiledCache::new(dir.path().to_owned(), &no_epochs)
            .load_or_compile(&no_epochs, &sha_a, &a)
            .unwrap();
        fs::write(dir.path().join(".tmp-left-by-a-crash"), b"x").unwrap();
        assert_eq!(entries(dir.path()).len(), 4);

        cache.retain(&HashSet::from([sha_a.clone()]));
        assert_eq!(
            entries(dir.path()),
            [format!("{sha_a}-{}.cwasm", engine_key(&epochs))]
        );
        cache.retain(&HashSet::new());
        assert!(entries(dir.path()).is_empty());
    }
}
