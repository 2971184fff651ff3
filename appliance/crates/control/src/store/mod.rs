//! The state directory (default `/var/lib/tungate`): the accepted configuration document,
//! the uploaded plugin modules, and the admin token — everything that must survive a
//! restart, a crash or `kill -9`.
//!
//! Layout (all written with [`atomic::write_atomic`], so a reader never sees a torn file):
//! ```text
//! <state>/lock                 held (flock) by the one tungate using this directory
//! <state>/config.json          the accepted document (JSON, as the admin API serves it)
//! <state>/seed.sha256          sha256 of the config file that last seeded the state
//! <state>/revision             the configuration state's revision (a decimal number)
//! <state>/admin-token          the generated admin bearer token (0600)
//! <state>/plugins/index.json   plugin name -> record (sha256, size, upload time, ABI info)
//! <state>/plugins/<sha256>.wasm  module bytes, content-addressed
//! <state>/compiled/<sha256>-<engine>.cwasm  compiled modules: a cache the plugin host
//!                              writes and checks (`tungate_plugin_host::precompiled`)
//! ```
//! Order of writes keeps every restart consistent: a module's bytes are written before the
//! index names them, the index before a configuration may bind them. This module judges no
//! content: validating documents and modules is the caller's job.

mod atomic;

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::revision::Revision;
use atomic::{remove_stale_temporaries, write_atomic};
use tungate_config::Document;

/// The default state directory.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/tungate";

const CONFIG_FILE: &str = "config.json";
const SEED_FILE: &str = "seed.sha256";
const REVISION_FILE: &str = "revision";
const TOKEN_FILE: &str = "admin-token";
const PLUGIN_DIR: &str = "plugins";
const PLUGIN_INDEX: &str = "index.json";
const COMPILED_DIR: &str = "compiled";

/// Why the state directory could not be used.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A file operation failed.
    #[error("state directory {path}: {source}")]
    Io {
        /// The file or directory concerned.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Another process holds the directory.
    #[error("state directory {0} is in use by another tungate (its lock file is held)")]
    Locked(PathBuf),
    /// A stored file does not parse (it was edited by hand or written by another version).
    #[error("state file {path} is not valid: {message}; fix or remove it")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// No plugin has this name.
    #[error("no plugin named {0:?} is stored")]
    NoSuchPlugin(String),
    /// A module's bytes no longer match the sha256 they are stored under.
    #[error("plugin module {0} does not match its sha256; upload it again")]
    Tampered(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_owned(),
        source,
    }
}

/// What the store knows of one uploaded plugin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginRecord {
    /// The plugin's name (what bindings refer to).
    pub name: String,
    /// sha256 of the module bytes, hex.
    pub sha256: String,
    /// Module size in bytes.
    pub size: u64,
    /// Upload time, seconds since the Unix epoch.
    pub uploaded_at: u64,
    /// What validation learnt of the module (ABI version, exports, …), kept for display.
    #[serde(default)]
    pub info: serde_json::Value,
}

/// What seeding from a config file did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seeded {
    /// The state was empty: the file's document is now the state.
    Empty,
    /// The file is the one that seeded the state before: the stored document (which may
    /// hold changes made through the API since) is kept.
    Unchanged,
    /// The file changed since it last seeded the state: its document replaces the stored one.
    Replaced,
}

/// An open, locked state directory.
#[derive(Debug)]
pub struct StateDir {
    root: PathBuf,
    _lock: nix::fcntl::Flock<File>,
}

/// Hex sha256 of `bytes`: a module's identity, as the plugin host defines it (the store
/// names module files and seeds by it).
pub use tungate_plugin_host::validate::sha256_hex;

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl StateDir {
    /// Opens (creating with mode 0700 if needed) and locks the state directory, and removes
    /// what interrupted writes left: temporaries, and module files that no index entry names
    /// (a crash between storing a module and the index that would name it). A corrupt
    /// index is left for [`Self::plugins`] to report.
    pub fn open(root: &Path) -> Result<Self, StoreError> {
        let plugins = root.join(PLUGIN_DIR);
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&plugins)
            .map_err(io(&plugins))?;
        let lock_path = root.join("lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&lock_path)
            .map_err(io(&lock_path))?;
        let lock = nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock)
            .map_err(|_| StoreError::Locked(root.to_owned()))?;
        remove_stale_temporaries(root).map_err(io(root))?;
        remove_stale_temporaries(&plugins).map_err(io(&plugins))?;
        let state = Self {
            root: root.to_owned(),
            _lock: lock,
        };
        if let Ok(index) = state.plugins() {
            state.remove_unreferenced_modules(&index)?;
        }
        Ok(state)
    }

    /// The directory's path.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The folder of the compiled-module cache (the plugin host owns its content; removing
    /// it only costs compiling the modules again).
    pub fn compiled_dir(&self) -> PathBuf {
        self.root.join(COMPILED_DIR)
    }

    /// The stored document, if any.
    pub fn config(&self) -> Result<Option<Document>, StoreError> {
        let path = self.root.join(CONFIG_FILE);
        match fs::read(&path) {
            Ok(bytes) => {
                tungate_config::parse_json(&bytes)
                    .map(Some)
                    .map_err(|e| StoreError::Corrupt {
                        path,
                        message: e.to_string(),
                    })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(&path)(e)),
        }
    }

    /// Stores `doc` as the accepted document (atomically).
    pub fn save_config(&self, doc: &Document) -> Result<(), StoreError> {
        let path = self.root.join(CONFIG_FILE);
        let mut bytes = serde_json::to_vec_pretty(doc).expect("a Document always serialises");
        bytes.push(b'\n');
        write_atomic(&path, &bytes, 0o600).map_err(io(&path))
    }

    /// The stored revision ([`Revision::ZERO`] when none was stored yet).
    pub fn revision(&self) -> Result<Revision, StoreError> {
        let path = self.root.join(REVISION_FILE);
        match fs::read_to_string(&path) {
            Ok(s) => s
                .trim()
                .parse::<u64>()
                .map(Revision::new)
                .map_err(|e| StoreError::Corrupt {
                    path,
                    message: format!("not a revision number: {e}"),
                }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Revision::ZERO),
            Err(e) => Err(io(&path)(e)),
        }
    }

    /// Stores `revision` (atomically). The control plane stores a raised revision before
    /// the change it numbers, so a crash between the two leaves a revision that is newer
    /// than needed (a client's `If-Match` fails and it reloads), never one that is stale.
    pub fn save_revision(&self, revision: Revision) -> Result<(), StoreError> {
        let path = self.root.join(REVISION_FILE);
        write_atomic(&path, format!("{revision}\n").as_bytes(), 0o600).map_err(io(&path))
    }

    /// Seeds the state from a config file's text and parsed document. The rule: a file seeds
    /// an empty state; the same file again keeps the stored document (with its API changes);
    /// a file whose content changed since it last seeded replaces the stored document.
    pub fn seed(&self, file_text: &[u8], doc: &Document) -> Result<Seeded, StoreError> {
        let digest = sha256_hex(file_text);
        let seed_path = self.root.join(SEED_FILE);
        let last = match fs::read_to_string(&seed_path) {
            Ok(s) => Some(s.trim().to_owned()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(io(&seed_path)(e)),
        };
        let outcome = match (self.config()?, last) {
            (None, _) => Seeded::Empty,
            (Some(_), Some(last)) if last == digest => return Ok(Seeded::Unchanged),
            (Some(_), _) => Seeded::Replaced,
        };
        self.save_config(doc)?;
        write_atomic(&seed_path, format!("{digest}\n").as_bytes(), 0o600)
            .map_err(io(&seed_path))?;
        Ok(outcome)
    }

    /// Whether `file_text` is the content of the config file that last seeded the state
    /// (so the stored document, with its API changes, wins over it).
    pub fn seeded_by(&self, file_text: &[u8]) -> Result<bool, StoreError> {
        let seed_path = self.root.join(SEED_FILE);
        match fs::read_to_string(&seed_path) {
            Ok(s) => Ok(s.trim() == sha256_hex(file_text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(io(&seed_path)(e)),
        }
    }

    /// Records `file_text` as the content that seeded the stored document (call it after
    /// the file's document was stored with [`Self::save_config`]).
    pub fn record_seed(&self, file_text: &[u8]) -> Result<(), StoreError> {
        let seed_path = self.root.join(SEED_FILE);
        let digest = sha256_hex(file_text);
        write_atomic(&seed_path, format!("{digest}\n").as_bytes(), 0o600).map_err(io(&seed_path))
    }

    /// The admin token stored in the state directory, generated (32 random bytes, hex, file
    /// mode 0600) on first use.
    pub fn admin_token(&self) -> Result<String, StoreError> {
        let path = self.root.join(TOKEN_FILE);
        match fs::read_to_string(&path) {
            Ok(s) if !s.trim().is_empty() => return Ok(s.trim().to_owned()),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(&path)(e)),
        }
        let token = hex::encode(rand::random::<[u8; 32]>());
        write_atomic(&path, format!("{token}\n").as_bytes(), 0o600).map_err(io(&path))?;
        Ok(token)
    }

    /// The path of the generated admin token file.
    pub fn admin_token_path(&self) -> PathBuf {
        self.root.join(TOKEN_FILE)
    }

    fn plugin_dir(&self) -> PathBuf {
        self.root.join(PLUGIN_DIR)
    }

    /// All stored plugins, by name.
    pub fn plugins(&self) -> Result<BTreeMap<String, PluginRecord>, StoreError> {
        let path = self.plugin_dir().join(PLUGIN_INDEX);
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| StoreError::Corrupt {
                path,
                message: e.to_string(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
            Err(e) => Err(io(&path)(e)),
        }
    }

    fn save_index(&self, index: &BTreeMap<String, PluginRecord>) -> Result<(), StoreError> {
        let path = self.plugin_dir().join(PLUGIN_INDEX);
        let bytes = serde_json::to_vec_pretty(index).expect("records always serialise");
        write_atomic(&path, &bytes, 0o600).map_err(io(&path))
    }

    /// Stores a (validated) module under `name`, replacing any earlier module of that name.
    pub fn put_plugin(
        &self,
        name: &str,
        bytes: &[u8],
        info: serde_json::Value,
    ) -> Result<PluginRecord, StoreError> {
        let sha256 = sha256_hex(bytes);
        let blob = self.plugin_dir().join(format!("{sha256}.wasm"));
        if !blob.exists() {
            write_atomic(&blob, bytes, 0o600).map_err(io(&blob))?;
        }
        let record = PluginRecord {
            name: name.to_owned(),
            sha256,
            size: bytes.len() as u64,
            uploaded_at: now_secs(),
            info,
        };
        let mut index = self.plugins()?;
        index.insert(name.to_owned(), record.clone());
        self.save_index(&index)?;
        self.remove_unreferenced_modules(&index)?;
        Ok(record)
    }

    /// The module bytes of a stored plugin, checked against their sha256.
    pub fn plugin_bytes(&self, name: &str) -> Result<(PluginRecord, Vec<u8>), StoreError> {
        let record = self
            .plugins()?
            .remove(name)
            .ok_or_else(|| StoreError::NoSuchPlugin(name.into()))?;
        let blob = self.plugin_dir().join(format!("{}.wasm", record.sha256));
        let bytes = fs::read(&blob).map_err(io(&blob))?;
        if sha256_hex(&bytes) != record.sha256 {
            return Err(StoreError::Tampered(record.sha256));
        }
        Ok((record, bytes))
    }

    /// Removes a stored plugin (the caller checks it is not bound).
    pub fn delete_plugin(&self, name: &str) -> Result<PluginRecord, StoreError> {
        let mut index = self.plugins()?;
        let record = index
            .remove(name)
            .ok_or_else(|| StoreError::NoSuchPlugin(name.into()))?;
        self.save_index(&index)?;
        self.remove_unreferenced_modules(&index)?;
        Ok(record)
    }

    /// Removes module files no record names (left by replacements, deletions or a crash
    /// between writing a module and its index).
    fn remove_unreferenced_modules(
        &self,
        index: &BTreeMap<String, PluginRecord>,
    ) -> Result<(), StoreError> {
        let dir = self.plugin_dir();
        for entry in fs::read_dir(&dir).map_err(io(&dir))? {
            let entry = entry.map_err(io(&dir))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(sha) = name.strip_suffix(".wasm")
                && !index.values().any(|r| r.sha256 == sha)
            {
                fs::remove_file(entry.path()).map_err(io(&entry.path()))?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use tungate_config::parse_toml;

    fn doc(gip: &str) -> Document {
        parse_toml(&format!("[gateway]\naddress = \"{gip}\"")).unwrap()
    }

    #[test]
    fn one_process_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let _held = StateDir::open(dir.path()).unwrap();
        assert!(matches!(
            StateDir::open(dir.path()),
            Err(StoreError::Locked(_))
        ));
    }

    #[test]
    fn seeding_rule() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::open(dir.path()).unwrap();
        assert_eq!(state.config().unwrap(), None);
        assert_eq!(
            state.seed(b"file one", &doc("10.0.0.1")).unwrap(),
            Seeded::Empty
        );
        // A change made through the API survives a restart with the same file...
        state.save_config(&doc("10.0.0.2")).unwrap();
        assert_eq!(
            state.seed(b"file one", &doc("10.0.0.1")).unwrap(),
            Seeded::Unchanged
        );
        assert_eq!(state.config().unwrap(), Some(doc("10.0.0.2")));
        assert!(state.seeded_by(b"file one").unwrap());
        assert!(!state.seeded_by(b"file two").unwrap());
        // ...and an edited file replaces it.
        assert_eq!(
            state.seed(b"file two", &doc("10.0.0.3")).unwrap(),
            Seeded::Replaced
        );
        assert_eq!(state.config().unwrap(), Some(doc("10.0.0.3")));
        state.record_seed(b"file three").unwrap();
        assert!(state.seeded_by(b"file three").unwrap());
        assert!(!state.seeded_by(b"file two").unwrap());
    }

    #[test]
    fn opening_removes_modules_no_index_entry_names() {
        let dir = tempfile::tempdir().unwrap();
        let kept = {
            let state = StateDir::open(dir.path()).unwrap();
            state
                .put_plugin("f", b"module-a", serde_json::Value::Null)
                .unwrap()
        };
        // What a crash after writing a module but before the index leaves behind.
        let orphan = dir
            .path()
            .join("plugins")
            .join(format!("{}.wasm", sha256_hex(b"module-b")));
        fs::write(&orphan, b"module-b").unwrap();
        let state = StateDir::open(dir.path()).unwrap();
        assert!(!orphan.exists());
        assert_eq!(
            state.plugin_bytes("f").unwrap(),
            (kept, b"module-a".to_vec())
        );
    }

    #[test]
    fn corrupt_config_is_reported_not_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::open(dir.path()).unwrap();
        fs::write(dir.path().join(CONFIG_FILE), b"{\"gateway\":").unwrap();
        let err = state.config().unwrap_err().to_string();
        assert!(err.contains("config.json is not valid"), "{err}");
    }

    #[test]
    fn the_revision_survives_a_reopen_and_a_corrupt_one_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = StateDir::open(dir.path()).unwrap();
            assert_eq!(s.revision().unwrap(), Revision::ZERO);
            s.save_revision(Revision::new(41)).unwrap();
        }
        let s = StateDir::open(dir.path()).unwrap();
        assert_eq!(s.revision().unwrap(), Revision::new(41));
        fs::write(dir.path().join(REVISION_FILE), "x\n").unwrap();
        assert!(matches!(s.revision(), Err(StoreError::Corrupt { .. })));
    }

    #[test]
    fn token_is_generated_once_with_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::open(dir.path()).unwrap();
        let t1 = state.admin_token().unwrap();
        assert_eq!(t1.len(), 64);
        assert_eq!(state.admin_token().unwrap(), t1);
        let mode = fs::metadata(state.admin_token_path())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn plugins_are_stored_by_sha256_and_garbage_collected() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::open(dir.path()).unwrap();
        let a = state
            .put_plugin("f", b"module-a", serde_json::json!({"abi": 1}))
            .unwrap();
        assert_eq!(a.sha256, sha256_hex(b"module-a"));
        assert_eq!(state.plugin_bytes("f").unwrap().1, b"module-a");
        let b = state
            .put_plugin("f", b"module-b", serde_json::Value::Null)
            .unwrap();
        assert!(
            !dir.path()
                .join("plugins")
                .join(format!("{}.wasm", a.sha256))
                .exists()
        );
        assert!(
            dir.path()
                .join("plugins")
                .join(format!("{}.wasm", b.sha256))
                .exists()
        );
        // Tampering is detected.
        fs::write(
            dir.path()
                .join("plugins")
                .join(format!("{}.wasm", b.sha256)),
            b"evil",
        )
        .unwrap();
        assert!(matches!(
            state.plugin_bytes("f"),
            Err(StoreError::Tampered(_))
        ));
        state.delete_plugin("f").unwrap();
        assert!(state.plugins().unwrap().is_empty());
        assert!(matches!(
            state.delete_plugin("f"),
            Err(StoreError::NoSuchPlugin(_))
        ));
        assert_eq!(fs::read_dir(dir.path().join("plugins")).unwrap().count(), 1); // index.json
    }
}
