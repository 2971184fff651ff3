//! The fleet store on etcd: reading a fleet state (one range read of the state keys, the
//! modules fetched chunk by chunk and checked against their sha256), committing a change
//! as a compare-and-swap on the revision key's mod revision, seeding an empty fleet, and
//! the blocking [`FleetStore`] the control thread calls.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use etcd_client::{Client, Compare, CompareOp, ConnectOptions, GetOptions, PutOptions, Txn, TxnOp};
use serde::{Deserialize, Serialize};

use crate::layout::{CHUNK_BYTES, Layout};
use tungate_config::Document;
use tungate_control::Revision;
use tungate_control::fleet::{FleetChange, FleetPlugin, FleetState, FleetStore, FleetWriteError};
use tungate_control::store::{PluginRecord, sha256_hex};

/// How long one etcd request may take before etcd counts as unreachable.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);

/// A plugin's entry in the state: its record and how many chunks its module has.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct PluginEntry {
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
            let bytes = self.module(&entry).await?;
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

    /// A module's bytes: from the memory cache, else fetched chunk by chunk and checked.
    async fn module(&self, entry: &PluginEntry) -> Result<Arc<Vec<u8>>, FleetWriteError> {
        let sha = &entry.record.sha256;
        if let Some(bytes) = self.modules.lock().expect("module cache").get(sha) {
            return Ok(bytes.clone());
        }
        let mut c = self.client().await?;
        let mut bytes = Vec::with_capacity(entry.record.size as usize);
        for index in 0..entry.chunks {
            let key = self.layout.chunk(sha, index);
            let resp = timed(c.get(key.clone(), None)).await?;
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

    /// Commits `change` if the revision key's mod revision is still `expected`.
    pub(crate) async fn commit(
        &self,
        expected: Revision,
        change: FleetChange,
    ) -> Result<Revision, FleetWriteError> {
        let mut ops = vec![TxnOp::put(
            self.layout.revision(),
            self.revision_mark(),
            None,
        )];
        match change {
            FleetChange::Document(doc) => ops.push(Self::put_json(self.layout.config(), &doc)),
            FleetChange::PutPlugin(plugin) => {
                let entry = self.put_module(&plugin).await?;
                ops.push(Self::put_json(
                    self.layout.plugin(&plugin.record.name),
                    &entry,
                ));
            }
            FleetChange::DeletePlugin(name) => {
                ops.push(TxnOp::delete(self.layout.plugin(&name), None));
            }
        }
        let txn = Txn::new()
            .when([Compare::mod_revision(
                self.layout.revision(),
                CompareOp::Equal,
                expected.number() as i64,
            )])
            .and_then(ops);
        let mut c = self.client().await?;
        let resp = timed(c.txn(txn)).await?;
        if !resp.succeeded() {
            return Err(FleetWriteError::Stale { expected });
        }
        let revision = resp
            .header()
            .map(|h| h.revision())
            .ok_or_else(|| unreachable("etcd answered without a header"))?;
        Ok(Revision::new(revision as u64))
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
        for plugin in &plugins {
            let entry = self.put_module(plugin).await?;
            ops.push(Self::put_json(
                self.layout.plugin(&plugin.record.name),
                &entry,
            ));
        }
        let txn = Txn::new()
            .when([Compare::create_revision(
                self.layout.revision(),
                CompareOp::Equal,
                0,
            )])
            .and_then(ops);
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
