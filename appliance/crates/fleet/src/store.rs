//! The fleet store on etcd: reading a fleet state (one range read of the state keys, the
//! modules fetched chunk by chunk at that read's revision and checked against their
//! sha256), committing a change as a compare-and-swap on the revision key's mod revision,
//! seeding an empty fleet, collecting module chunks no plugin references any more, and the
//! blocking [`FleetStore`] the control thread calls.
//!
//! # Collecting module chunks, and the upload race
//! A module's chunks are written (one request each) *before* the transaction that makes a
//! plugin record point at them, so a collector running in between could delete chunks a
//! commit is about to reference. Two rules make every interleaving safe:
//! - **A commit guards its chunks**: the transaction that writes a plugin record also
//!   compares every chunk key's version > 0. If a collector removed one meanwhile, the
//!   transaction changes nothing; the committer sees the revision unchanged (so it was
//!   not a stale write), writes the chunks again and retries (at most
//!   [`COMMIT_ATTEMPTS`] times). A record therefore never points at missing chunks.
//! - **A collector deletes only what the latest revision does not reference, in a
//!   transaction that compares that revision**: a replace or delete drops the replaced
//!   module's chunks in the very transaction that stops referencing them (when no other
//!   plugin record holds the same sha256); a commit that fails as stale drops the module
//!   it wrote if the latest revision does not reference it. Either transaction fails if
//!   a commit landed since the references were read, so chunks a new record points at are
//!   never deleted.
//!
//! A grace period was not needed: the guard makes deleting an in-flight upload's chunks
//! cost that uploader one more write of them, never a dangling record. Readers read the
//! chunks at the revision of the state they read (etcd keeps old revisions until it is
//! compacted), so a gateway still catching up with a revision whose module was replaced
//! since still gets its bytes.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, DeleteOptions, GetOptions, PutOptions, Txn, TxnOp,
};
use serde::{Deserialize, Serialize};

use crate::layout::{CHUNK_BYTES, Layout};
use tungate_config::Document;
use tungate_control::Revision;
use tungate_control::fleet::{FleetChange, FleetPlugin, FleetState, FleetStore, FleetWriteError};
use tungate_control::store::{PluginRecord, sha256_hex};

/// How long one etcd request may take before etcd counts as unreachable.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);

/// How many times a commit writes its module's chunks again after a collector removed
/// them before the commit's transaction (see the module docs).
pub(crate) const COMMIT_ATTEMPTS: usize = 3;

/// What one commit transaction did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Attempt {
    /// Committed at this revision.
    Committed(Revision),
    /// The fleet revision moved past the expected one.
    Stale,
    /// The revision was still the expected one, but a chunk of the module the change
    /// references was gone (a collector ran between writing them and the transaction).
    ChunksGone,
}

/// A plugin's entry in the state: its record and how many chunks its module has.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct PluginEntry {
    record: PluginRecord,
    chunks: usize,
}

/// What the revision key holds (its mod revision is what counts).
#[derive(Serialize)]
struct RevisionMark<'a> {
    by: &'a str,
}

/// An etcd connection for one fleet, shared by the control thread (commits) and the
/// fleet tasks (follow, register).
#[derive(Clone)]
pub(crate) struct Etcd {
    endpoints: Vec<String>,
    options: ConnectOptions,
    client: Arc<tokio::sync::Mutex<Option<Client>>>,
    pub(crate) layout: Layout,
    pub(crate) member: String,
    modules: Arc<Mutex<HashMap<String, Arc<Vec<u8>>>>>,
}

fn unreachable(e: impl std::fmt::Display) -> FleetWriteError {
    FleetWriteError::Unreachable(e.to_string())
}

/// Runs one etcd request with [`REQUEST_TIMEOUT`].
async fn timed<T>(
    request: impl Future<Output = Result<T, etcd_client::Error>>,
) -> Result<T, FleetWriteError> {
    match tokio::time::timeout(REQUEST_TIMEOUT, request).await {
        Ok(result) => result.map_err(unreachable),
        Err(_) => Err(unreachable(format!(
            "no answer within {}s",
            REQUEST_TIMEOUT.as_secs()
        ))),
    }
}

impl Etcd {
    /// A store for fleet `name` at `endpoints`; connects on first use.
    pub(crate) fn new(
        endpoints: Vec<String>,
        options: ConnectOptions,
        name: &str,
        member: &str,
    ) -> Etcd {
        Etcd {
            endpoints,
            options,
            client: Arc::default(),
            layout: Layout::new(name),
            member: member.to_owned(),
            modules: Arc::default(),
        }
    }

    /// A connected client (tonic reconnects it by itself once connected).
    pub(crate) async fn client(&self) -> Result<Client, FleetWriteError> {
        let mut slot = self.client.lock().await;
        if let Some(c) = slot.as_ref() {
            return Ok(c.clone());
        }
        let connect = Client::connect(self.endpoints.clone(), Some(self.options.clone()));
        let client = timed(connect).await?;
        *slot = Some(client.clone());
        Ok(client)
    }

    /// Reads the fleet state (none for an empty fleet).
    pub(crate) async fn read(&self) -> Result<Option<FleetState>, FleetWriteError> {
        let mut c = self.client().await?;
        let resp = timed(c.get(self.layout.state(), Some(GetOptions::new().with_prefix()))).await?;
        let read_at = resp.header().map_or(0, |h| h.revision());
        let mut revision = None;
        let mut document = None;
        let mut entries = Vec::new();
        let plugins_prefix = self.layout.plugins();
        for kv in resp.kvs() {
            let key = String::from_utf8_lossy(kv.key());
            if key == self.layout.revision() {
                revision = Some(Revision::new(kv.mod_revision() as u64));
            } else if key == self.layout.config() {
                document = Some(
                    tungate_config::parse_json(kv.value())
                        .map_err(|e| unreachable(format!("{key} is not a valid document: {e}")))?,
                );
            } else if key.starts_with(&plugins_prefix) {
                let entry: PluginEntry = serde_json::from_slice(kv.value())
                    .map_err(|e| unreachable(format!("{key} is not a plugin entry: {e}")))?;
                entries.push(entry);
            }
        }
        let (Some(revision), Some(document)) = (revision, document) else {
            return Ok(None);
        };
        let mut plugins = BTreeMap::new();
        for entry in entries {
            let bytes = self.module(&entry, read_at).await?;
            plugins.insert(
                entry.record.name.clone(),
                FleetPlugin {
                    record: entry.record,
                    bytes,
                },
            );
        }
        Ok(Some(FleetState {
            revision,
            document,
            plugins,
        }))
    }

    /// A module's bytes: from the memory cache, else fetched chunk by chunk as of etcd
    /// revision `at` (the state read's: a later commit may have collected them) and
    /// checked.
    async fn module(&self, entry: &PluginEntry, at: i64) -> Result<Arc<Vec<u8>>, FleetWriteError> {
        let sha = &entry.record.sha256;
        if let Some(bytes) = self.modules.lock().expect("module cache").get(sha) {
            return Ok(bytes.clone());
        }
        let mut c = self.client().await?;
        let mut bytes = Vec::with_capacity(entry.record.size as usize);
        for index in 0..entry.chunks {
            let key = self.layout.chunk(sha, index);
            let resp = timed(c.get(key.clone(), Some(GetOptions::new().with_revision(at)))).await?;
            let kv = resp
                .kvs()
                .first()
                .ok_or_else(|| unreachable(format!("module chunk {key} is missing")))?;
            bytes.extend_from_slice(kv.value());
        }
        if sha256_hex(&bytes) != *sha {
            return Err(unreachable(format!(
                "the module of plugin {:?} read from etcd does not match its sha256 {sha}",
                entry.record.name
            )));
        }
        let bytes = Arc::new(bytes);
        self.modules
            .lock()
            .expect("module cache")
            .insert(sha.clone(), bytes.clone());
        Ok(bytes)
    }

    /// Writes a module's chunks (one request each) and returns its state entry.
    async fn put_module(&self, plugin: &FleetPlugin) -> Result<PluginEntry, FleetWriteError> {
        let mut c = self.client().await?;
        let chunks: Vec<&[u8]> = plugin.bytes.chunks(CHUNK_BYTES).collect();
        for (index, chunk) in chunks.iter().enumerate() {
            let key = self.layout.chunk(&plugin.record.sha256, index);
            timed(c.put(key, chunk.to_vec(), None)).await?;
        }
        self.modules
            .lock()
            .expect("module cache")
            .insert(plugin.record.sha256.clone(), plugin.bytes.clone());
        Ok(PluginEntry {
            record: plugin.record.clone(),
            chunks: chunks.len(),
        })
    }

    fn revision_mark(&self) -> Vec<u8> {
        serde_json::to_vec(&RevisionMark { by: &self.member }).expect("serialises")
    }

    fn put_json(key: String, value: &impl Serialize) -> TxnOp {
        TxnOp::put(key, serde_json::to_vec(value).expect("serialises"), None)
    }

    /// The compares that a record pointing at `entry`'s module holds only if every chunk
    /// is still there.
    fn chunk_guards(&self, entry: &PluginEntry) -> Vec<Compare> {
        (0..entry.chunks)
            .map(|i| {
                let key = self.layout.chunk(&entry.record.sha256, i);
                Compare::version(key, CompareOp::Greater, 0)
            })
            .collect()
    }

    /// The plugin entries of the latest state and the revision key's mod revision.
    async fn entries(&self) -> Result<(i64, Vec<PluginEntry>), FleetWriteError> {
        let mut c = self.client().await?;
        let resp = timed(c.get(self.layout.state(), Some(GetOptions::new().with_prefix()))).await?;
        let mut revision = 0;
        let mut entries = Vec::new();
        for kv in resp.kvs() {
            let key = String::from_utf8_lossy(kv.key());
            if key == self.layout.revision() {
                revision = kv.mod_revision();
            } else if key.starts_with(&self.layout.plugins()) {
                let entry: PluginEntry = serde_json::from_slice(kv.value())
                    .map_err(|e| unreachable(format!("{key} is not a plugin entry: {e}")))?;
                entries.push(entry);
            }
        }
        Ok((revision, entries))
    }

    /// The delete of the module plugin `name` references now, if the change replacing or
    /// deleting that record (the new record pointing at `new_sha`, if any) leaves no
    /// record referencing it. Read from the latest state: if that is not the expected
    /// revision, the transaction carrying the delete fails on its revision compare.
    async fn collect_replaced(
        &self,
        name: &str,
        new_sha: Option<&str>,
    ) -> Result<Option<TxnOp>, FleetWriteError> {
        let (_, entries) = self.entries().await?;
        let Some(old) = entries.iter().find(|e| e.record.name == name) else {
            return Ok(None);
        };
        let sha = &old.record.sha256;
        let still_used = new_sha == Some(sha.as_str())
            || entries
                .iter()
                .any(|e| e.record.name != name && e.record.sha256 == *sha);
        Ok((!still_used).then(|| {
            TxnOp::delete(
                self.layout.module(sha),
                Some(DeleteOptions::new().with_prefix()),
            )
        }))
    }

    /// Deletes the chunks of the module `sha256` if the latest revision references it
    /// nowhere, in a transaction that fails if a commit landed since (best effort: what
    /// it leaves is garbage, never a dangling record). Returns whether it deleted them.
    pub(crate) async fn collect_unreferenced(&self, sha256: &str) -> Result<bool, FleetWriteError> {
        let (revision, entries) = self.entries().await?;
        if entries.iter().any(|e| e.record.sha256 == sha256) {
            return Ok(false);
        }
        let txn = Txn::new()
            .when([Compare::mod_revision(
                self.layout.revision(),
                CompareOp::Equal,
                revision,
            )])
            .and_then([TxnOp::delete(
                self.layout.module(sha256),
                Some(DeleteOptions::new().with_prefix()),
            )]);
        let mut c = self.client().await?;
        Ok(timed(c.txn(txn)).await?.succeeded())
    }

    /// Writes the module `change` adds, if any (its chunks, before the commit).
    pub(crate) async fn write_module(
        &self,
        change: &FleetChange,
    ) -> Result<Option<PluginEntry>, FleetWriteError> {
        match change {
            FleetChange::PutPlugin(plugin) => Ok(Some(self.put_module(plugin).await?)),
            FleetChange::Document(_) | FleetChange::DeletePlugin(_) => Ok(None),
        }
    }

    /// One commit transaction of `change` against `expected`, its module (if any) already
    /// written as `written`: the revision compare, the chunk guards, the change, and the
    /// delete of a module the change stops referencing.
    pub(crate) async fn try_commit(
        &self,
        expected: Revision,
        change: &FleetChange,
        written: Option<&PluginEntry>,
    ) -> Result<Attempt, FleetWriteError> {
        let mut compares = vec![Compare::mod_revision(
            self.layout.revision(),
            CompareOp::Equal,
            expected.number() as i64,
        )];
        let mut ops = vec![TxnOp::put(
            self.layout.revision(),
            self.revision_mark(),
            None,
        )];
        match (change, written) {
            (FleetChange::Document(doc), _) => {
                ops.push(Self::put_json(self.layout.config(), doc));
            }
            (FleetChange::PutPlugin(plugin), Some(entry)) => {
                compares.extend(self.chunk_guards(entry));
                let name = &plugin.record.name;
                ops.extend(
                    self.collect_replaced(name, Some(&plugin.record.sha256))
                        .await?,
                );
                ops.push(Self::put_json(self.layout.plugin(name), entry));
            }
            (FleetChange::PutPlugin(_), None) => {
                return Err(unreachable("a plugin commit without its module written"));
            }
            (FleetChange::DeletePlugin(name), _) => {
                ops.extend(self.collect_replaced(name, None).await?);
                ops.push(TxnOp::delete(self.layout.plugin(name), None));
            }
        }
        let txn = Txn::new().when(compares).and_then(ops);
        let mut c = self.client().await?;
        let resp = timed(c.txn(txn)).await?;
        if resp.succeeded() {
            let revision = resp
                .header()
                .map(|h| h.revision())
                .ok_or_else(|| unreachable("etcd answered without a header"))?;
            return Ok(Attempt::Committed(Revision::new(revision as u64)));
        }
        let (now, _) = self.entries().await?;
        Ok(if now == expected.number() as i64 {
            Attempt::ChunksGone
        } else {
            Attempt::Stale
        })
    }

    /// Commits `change` if the revision key's mod revision is still `expected`; writes
    /// the module's chunks again if a collector removed them meanwhile, and drops them if
    /// the commit was stale and nothing references them.
    pub(crate) async fn commit(
        &self,
        expected: Revision,
        change: FleetChange,
    ) -> Result<Revision, FleetWriteError> {
        for _ in 0..COMMIT_ATTEMPTS {
            let written = self.write_module(&change).await?;
            match self.try_commit(expected, &change, written.as_ref()).await? {
                Attempt::Committed(revision) => return Ok(revision),
                Attempt::ChunksGone => {
                    tracing::info!(
                        "fleet: a module's chunks were collected before the commit; writing them again"
                    );
                }
                Attempt::Stale => {
                    if let Some(entry) = written {
                        let sha = &entry.record.sha256;
                        if let Err(e) = self.collect_unreferenced(sha).await {
                            tracing::warn!("fleet: cannot drop the unused module {sha}: {e}");
                        }
                    }
                    return Err(FleetWriteError::Stale { expected });
                }
            }
        }
        Err(unreachable(format!(
            "the module's chunks were collected before each of {COMMIT_ATTEMPTS} commits"
        )))
    }

    /// Seeds an empty fleet; if it is not empty (another gateway seeded it first), returns
    /// its state instead.
    pub(crate) async fn seed(
        &self,
        document: Document,
        plugins: Vec<FleetPlugin>,
    ) -> Result<(FleetState, bool), FleetWriteError> {
        let mut ops = vec![
            TxnOp::put(self.layout.revision(), self.revision_mark(), None),
            Self::put_json(self.layout.config(), &document),
        ];
        let mut compares = vec![Compare::create_revision(
            self.layout.revision(),
            CompareOp::Equal,
            0,
        )];
        for plugin in &plugins {
            let entry = self.put_module(plugin).await?;
            compares.extend(self.chunk_guards(&entry));
            ops.push(Self::put_json(
                self.layout.plugin(&plugin.record.name),
                &entry,
            ));
        }
        let txn = Txn::new().when(compares).and_then(ops);
        let mut c = self.client().await?;
        let seeded = timed(c.txn(txn)).await?.succeeded();
        let state = self
            .read()
            .await?
            .ok_or_else(|| unreachable("the fleet is still empty after seeding it"))?;
        Ok((state, seeded))
    }

    /// Puts `value` under `key` with `lease`.
    pub(crate) async fn put_leased(
        &self,
        key: String,
        value: Vec<u8>,
        lease: i64,
    ) -> Result<(), FleetWriteError> {
        let mut c = self.client().await?;
        timed(c.put(key, value, Some(PutOptions::new().with_lease(lease)))).await?;
        Ok(())
    }
}

/// The [`FleetStore`] the control thread calls: each call blocks on the fleet runtime.
pub(crate) struct BlockingStore {
    pub(crate) etcd: Etcd,
    pub(crate) runtime: tokio::runtime::Handle,
}

impl FleetStore for BlockingStore {
    fn commit(&self, expected: Revision, change: FleetChange) -> Result<Revision, FleetWriteError> {
        self.runtime.block_on(self.etcd.commit(expected, change))
    }

    fn seed(
        &self,
        document: Document,
        plugins: Vec<FleetPlugin>,
    ) -> Result<(FleetState, bool), FleetWriteError> {
        self.runtime.block_on(self.etcd.seed(document, plugins))
    }
}

#[cfg(test)]
mod tests {
    //! Against a real etcd (Debian's `etcd-server`) in a namespace of the test's own: the
    //! collection rules of the module docs, with the upload race built step by step.

    use super::*;
    use tungate_test_support::Netns;
    use tungate_test_support::etcd::Etcd as EtcdServer;

    fn plugin(name: &str, bytes: Vec<u8>) -> FleetPlugin {
        FleetPlugin {
            record: PluginRecord {
                name: name.to_owned(),
                sha256: sha256_hex(&bytes),
                size: bytes.len() as u64,
                uploaded_at: 0,
                info: serde_json::Value::Null,
            },
            bytes: Arc::new(bytes),
        }
    }

    /// The chunk keys of module `sha` in etcd.
    async fn chunk_keys(store: &Etcd, sha: &str) -> Vec<String> {
        let mut c = store.client().await.unwrap();
        let options = GetOptions::new().with_prefix().with_keys_only();
        c.get(store.layout.module(sha), Some(options))
            .await
            .unwrap()
            .kvs()
            .iter()
            .map(|kv| String::from_utf8_lossy(kv.key()).into_owned())
            .collect()
    }

    /// Runs `f` with a store of a fresh fleet on a real etcd.
    fn with_etcd<F: Future<Output = ()>>(f: impl FnOnce(Etcd) -> F + Send + 'static) {
        let ns = Netns::new("fleetgc");
        ns.ip(&["link", "set", "lo", "up"]);
        let _server = EtcdServer::start(&ns, "127.0.0.1");
        ns.run(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let store = Etcd::new(
                vec!["http://127.0.0.1:2379".into()],
                ConnectOptions::new(),
                "f1",
                "gw1",
            );
            runtime.block_on(f(store));
        });
    }

    fn document() -> Document {
        tungate_config::parse_toml("[gateway]\naddress = \"10.99.0.1\"\n").unwrap()
    }

    #[test]
    fn a_replaced_or_deleted_module_is_collected_in_the_same_transaction_unless_still_used() {
        with_etcd(|store| async move {
            // 2.5 MiB: three chunks.
            let a = plugin("p", vec![1; CHUNK_BYTES * 5 / 2]);
            let (state, seeded) = store.seed(document(), vec![a.clone()]).await.unwrap();
            assert!(seeded);
            assert_eq!(chunk_keys(&store, &a.record.sha256).await.len(), 3);
            // q shares p's module: replacing p keeps the chunks q still points at.
            let q = plugin("q", a.bytes.to_vec());
            let r1 = store
                .commit(state.revision, FleetChange::PutPlugin(q))
                .await
                .unwrap();
            let b = plugin("p", vec![2; 10]);
            let r2 = store
                .commit(r1, FleetChange::PutPlugin(b.clone()))
                .await
                .unwrap();
            assert_eq!(chunk_keys(&store, &a.record.sha256).await.len(), 3);
            // q deleted: nothing references A any more, its chunks go with the record.
            let r3 = store
                .commit(r2, FleetChange::DeletePlugin("q".into()))
                .await
                .unwrap();
            assert!(chunk_keys(&store, &a.record.sha256).await.is_empty());
            assert_eq!(chunk_keys(&store, &b.record.sha256).await.len(), 1);
            let now = store.read().await.unwrap().unwrap();
            assert_eq!(now.revision, r3);
            assert_eq!(now.plugins.keys().collect::<Vec<_>>(), ["p"]);
            assert_eq!(now.plugins["p"].bytes, b.bytes);
            // A reader still on r1 gets A's bytes: chunks are read at the state's revision.
            let old = PluginEntry {
                record: a.record.clone(),
                chunks: 3,
            };
            // (Fresh stores: the module cache would answer otherwise.)
            let fresh = || {
                Etcd::new(
                    vec!["http://127.0.0.1:2379".into()],
                    ConnectOptions::new(),
                    "f1",
                    "gw2",
                )
            };
            let bytes = fresh().module(&old, r1.number() as i64).await.unwrap();
            assert_eq!(bytes, a.bytes);
            match fresh().module(&old, 0).await {
                Err(e) => assert!(e.to_string().contains("is missing"), "{e}"),
                Ok(bytes) => panic!("{} bytes of a collected module read", bytes.len()),
            }
            // A stale upload leaves no chunks behind.
            let c = plugin("c", vec![3; 100]);
            let stale = store.commit(r1, FleetChange::PutPlugin(c.clone())).await;
            assert!(
                matches!(stale, Err(FleetWriteError::Stale { .. })),
                "{stale:?}"
            );
            assert!(chunk_keys(&store, &c.record.sha256).await.is_empty());
        });
    }

    #[test]
    fn chunks_collected_between_an_upload_and_its_commit_are_written_again_never_dangling() {
        with_etcd(|store| async move {
            let (state, _) = store.seed(document(), Vec::new()).await.unwrap();
            let x = plugin("x", vec![7; CHUNK_BYTES + 1]);
            let sha = x.record.sha256.clone();
            let change = FleetChange::PutPlugin(x.clone());
            // Uploader U1 wrote X's chunks against the seeded revision...
            let written = store.write_module(&change).await.unwrap().unwrap();
            assert_eq!(chunk_keys(&store, &sha).await.len(), 2);
            // ...then a collector (e.g. another gateway whose stale upload of the same
            // module it cleans up) finds X unreferenced and deletes it...
            assert!(store.collect_unreferenced(&sha).await.unwrap());
            assert!(chunk_keys(&store, &sha).await.is_empty());
            // ...so U1's transaction refuses to point at missing chunks and changes nothing.
            let attempt = store
                .try_commit(state.revision, &change, Some(&written))
                .await
                .unwrap();
            assert_eq!(attempt, Attempt::ChunksGone);
            assert!(store.read().await.unwrap().unwrap().plugins.is_empty());
            // The commit as a whole writes them again and lands with every chunk present.
            let r = store.commit(state.revision, change).await.unwrap();
            assert_eq!(chunk_keys(&store, &sha).await.len(), 2);
            let now = store.read().await.unwrap().unwrap();
            assert_eq!(now.revision, r);
            assert_eq!(now.plugins["x"].bytes, x.bytes);
            // Once referenced, a collector leaves it alone.
            assert!(!store.collect_unreferenced(&sha).await.unwrap());
            assert_eq!(chunk_keys(&store, &sha).await.len(), 2);
            // A collector that read the references before a commit that references the
            // module fails on the revision compare: prepared by hand, as it would run.
            let y = plugin("y", vec![8; 10]);
            let change = FleetChange::PutPlugin(y.clone());
            let written = store.write_module(&change).await.unwrap().unwrap();
            let (seen, entries) = store.entries().await.unwrap();
            assert!(entries.iter().all(|e| e.record.sha256 != y.record.sha256));
            let r2 = store.commit(r, change).await.unwrap();
            assert_eq!(written.chunks, 1);
            let late = Txn::new()
                .when([Compare::mod_revision(
                    store.layout.revision(),
                    CompareOp::Equal,
                    seen,
                )])
                .and_then([TxnOp::delete(
                    store.layout.module(&y.record.sha256),
                    Some(DeleteOptions::new().with_prefix()),
                )]);
            let mut c = store.client().await.unwrap();
            assert!(!c.txn(late).await.unwrap().succeeded());
            assert_eq!(chunk_keys(&store, &y.record.sha256).await.len(), 1);
            assert_eq!(store.read().await.unwrap().unwrap().revision, r2);
        });
    }
}
