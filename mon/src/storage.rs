//! Durable Raft storage for the monitors: redb on disk, raft's `MemStorage`
//! as the read side. Every write goes to redb first (one durable transaction
//! per Ready), then to memory; at start the memory copy is rebuilt from redb.

use protobuf::Message as _;
use raft::eraftpb::{ConfState, Entry, HardState, Snapshot};
use raft::storage::MemStorage;
use raft::{RaftState, Storage, StorageError};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use std::path::Path;
use std::sync::{Arc, RwLock};

const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("raft_log");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const KEY_HARD_STATE: &str = "hard_state";
const KEY_SNAPSHOT: &str = "snapshot";
const KEY_FORMAT: &str = "format";
const KEY_FSID: &str = "fsid";
/// On-disk format version of the monitor store.
const FORMAT_VERSION: &[u8] = b"1";

/// Errors of the monitor's durable store.
#[derive(Debug, thiserror::Error)]
pub enum MonStoreError {
    /// redb failed.
    #[error("monitor store: {0}")]
    Db(String),
    /// A stored record does not decode.
    #[error("monitor store is corrupt: {0}")]
    Corrupt(String),
    /// The store was written by another cluster.
    #[error(
        "monitor data dir belongs to cluster {found}, but the config says {expected}; point [mon] data at the right directory"
    )]
    FsidMismatch { expected: String, found: String },
}

fn dberr<E: std::fmt::Display>(e: E) -> MonStoreError {
    MonStoreError::Db(e.to_string())
}

/// The state machine's latest applied image, used to answer snapshot requests.
#[derive(Default, Clone)]
pub struct AppliedImage {
    /// Raft index of the last applied entry.
    pub index: u64,
    /// Term of that entry.
    pub term: u64,
    /// The state after applying it.
    pub data: ImageData,
}

/// An image's content, encoded only when a snapshot is actually taken (the
/// map history makes it too big to encode after every entry).
#[derive(Default, Clone)]
pub enum ImageData {
    /// Nothing applied yet.
    #[default]
    Empty,
    /// An encoded [`meridian_proto::mon::MonImage`] (read back from disk).
    Encoded(Arc<Vec<u8>>),
    /// A copy of the applied state.
    State(Arc<crate::state::MonState>),
}

impl ImageData {
    /// The encoded `MonImage`.
    pub fn encode(&self) -> Vec<u8> {
        use prost::Message as _;
        match self {
            ImageData::Empty => Vec::new(),
            ImageData::Encoded(b) => b.as_ref().clone(),
            ImageData::State(s) => s.image().encode_to_vec(),
        }
    }

    /// True before anything was applied.
    pub fn is_empty(&self) -> bool {
        match self {
            ImageData::Empty => true,
            ImageData::Encoded(b) => b.is_empty(),
            ImageData::State(_) => false,
        }
    }
}

/// Raft storage backed by redb.
#[derive(Clone)]
pub struct MonStorage {
    mem: MemStorage,
    db: Arc<Database>,
    image: Arc<RwLock<AppliedImage>>,
}

impl MonStorage {
    /// Opens (or creates) the store in `dir`; `voters` seeds the membership of a new store.
    pub fn open(dir: &Path, fsid: &str, voters: Vec<u64>) -> Result<Self, MonStoreError> {
        std::fs::create_dir_all(dir).map_err(dberr)?;
        let db = Database::create(dir.join("mon.redb")).map_err(dberr)?;
        let mem = MemStorage::new();
        let mut fresh = false;
        {
            let w = db.begin_write().map_err(db_err)?;
            {
                let mut meta = w.open_table(META).map_err(dberr)?;
                let found = meta
                    .get(KEY_FSID)
                    .map_err(dberr)?
                    .map(|v| v.value().to_vec());
                match found {
                    Some(f) if f != fsid.as_bytes() => {
                        return Err(MonStoreError::FsidMismatch {
                            expected: fsid.into(),
                            found: String::from_utf8_lossy(&f).into(),
                        });
                    }
                    Some(_) => {}
                    None => {
                        fresh = true;
                        meta.insert(KEY_FSID, fsid.as_bytes()).map_err(dberr)?;
                        meta.insert(KEY_FORMAT, FORMAT_VERSION).map_err(dberr)?;
                    }
                }
                w.open_table(LOG).map_err(dberr)?;
            }
            w.commit().map_err(dberr)?;
        }
        let store = Self {
            mem,
            db: Arc::new(db),
            image: Arc::new(RwLock::new(AppliedImage::default())),
        };
        if fresh {
            store
                .mem
                .wl()
                .set_conf_state(ConfState::from((voters, vec![])));
            // Persist the initial membership as an empty snapshot at index 0.
            let mut snap = Snapshot::default();
            snap.mut_metadata().set_conf_state(store.conf_state());
            store.put_meta(KEY_SNAPSHOT, &snap.write_to_bytes().map_err(dberr)?)?;
        } else {
            store.load()?;
        }
        Ok(store)
    }

    fn load(&self) -> Result<(), MonStoreError> {
        let r = self.db.begin_read().map_err(dberr)?;
        let meta = r.open_table(META).map_err(dberr)?;
        if let Some(v) = meta.get(KEY_SNAPSHOT).map_err(dberr)? {
            let snap = Snapshot::parse_from_bytes(v.value())
                .map_err(|e| MonStoreError::Corrupt(format!("snapshot: {e}")))?;
            let md = snap.get_metadata();
            if md.index > 0 {
                *self.image.write().unwrap_or_else(|p| p.into_inner()) = AppliedImage {
                    index: md.index,
                    term: md.term,
                    data: ImageData::Encoded(Arc::new(snap.get_data().to_vec())),
                };
                self.mem
                    .wl()
                    .apply_snapshot(snap.clone())
                    .map_err(|e| MonStoreError::Corrupt(format!("apply snapshot: {e}")))?;
            } else {
                self.mem.wl().set_conf_state(md.get_conf_state().clone());
            }
        }
        let log = r.open_table(LOG).map_err(dberr)?;
        let mut entries = Vec::new();
        for item in log.iter().map_err(dberr)? {
            let (_, v) = item.map_err(dberr)?;
            entries.push(
                Entry::parse_from_bytes(v.value())
                    .map_err(|e| MonStoreError::Corrupt(format!("log entry: {e}")))?,
            );
        }
        let first = self.mem.first_index().unwrap_or(1);
        entries.retain(|e| e.index >= first);
        if !entries.is_empty() {
            self.mem
                .wl()
                .append(&entries)
                .map_err(|e| MonStoreError::Corrupt(format!("append log: {e}")))?;
        }
        if let Some(v) = meta.get(KEY_HARD_STATE).map_err(dberr)? {
            let hs = HardState::parse_from_bytes(v.value())
                .map_err(|e| MonStoreError::Corrupt(format!("hard state: {e}")))?;
            self.mem.wl().set_hardstate(hs);
        }
        Ok(())
    }

    fn put_meta(&self, key: &str, value: &[u8]) -> Result<(), MonStoreError> {
        let w = self.db.begin_write().map_err(dberr)?;
        {
            let mut meta = w.open_table(META).map_err(dberr)?;
            meta.insert(key, value).map_err(dberr)?;
        }
        w.commit().map_err(dberr)
    }

    /// Durably appends entries (replacing any conflicting suffix) and the hard state, in one transaction.
    pub fn persist(&self, entries: &[Entry], hs: Option<&HardState>) -> Result<(), MonStoreError> {
        if entries.is_empty() && hs.is_none() {
            return Ok(());
        }
        let w = self.db.begin_write().map_err(dberr)?;
        {
            let mut log = w.open_table(LOG).map_err(dberr)?;
            if let Some(first) = entries.first() {
                // Raft may overwrite a conflicting tail: drop everything from the first new index.
                log.retain_in(first.index.., |_, _| false).map_err(dberr)?;
                for e in entries {
                    log.insert(e.index, e.write_to_bytes().map_err(dberr)?.as_slice())
                        .map_err(dberr)?;
                }
            }
            if let Some(hs) = hs {
                let mut meta = w.open_table(META).map_err(dberr)?;
                meta.insert(
                    KEY_HARD_STATE,
                    hs.write_to_bytes().map_err(dberr)?.as_slice(),
                )
                .map_err(dberr)?;
            }
        }
        w.commit().map_err(dberr)?;
        let mut core = self.mem.wl();
        if !entries.is_empty() {
            core.append(entries)
                .map_err(|e| MonStoreError::Corrupt(format!("append: {e}")))?;
        }
        if let Some(hs) = hs {
            core.set_hardstate(hs.clone());
        }
        Ok(())
    }

    /// Installs a snapshot received from the leader (replaces state and log).
    pub fn install_snapshot(&self, snap: &Snapshot) -> Result<(), MonStoreError> {
        let idx = snap.get_metadata().index;
        let w = self.db.begin_write().map_err(dberr)?;
        {
            let mut log = w.open_table(LOG).map_err(dberr)?;
            log.retain_in(..=idx, |_, _| false).map_err(dberr)?;
            let mut meta = w.open_table(META).map_err(dberr)?;
            meta.insert(
                KEY_SNAPSHOT,
                snap.write_to_bytes().map_err(dberr)?.as_slice(),
            )
            .map_err(dberr)?;
        }
        w.commit().map_err(dberr)?;
        self.mem
            .wl()
            .apply_snapshot(snap.clone())
            .map_err(|e| MonStoreError::Corrupt(format!("apply snapshot: {e}")))?;
        *self.image.write().unwrap_or_else(|p| p.into_inner()) = AppliedImage {
            index: idx,
            term: snap.get_metadata().term,
            data: ImageData::Encoded(Arc::new(snap.get_data().to_vec())),
        };
        Ok(())
    }

    /// Records the state machine image after applying `index` (answers snapshot requests).
    pub fn set_applied_image(&self, image: AppliedImage) {
        *self.image.write().unwrap_or_else(|p| p.into_inner()) = image;
    }

    /// Persists a snapshot of the applied image and drops the log before it.
    pub fn compact(&self) -> Result<u64, MonStoreError> {
        let image = self.image.read().unwrap_or_else(|p| p.into_inner()).clone();
        if image.index == 0 || image.index < self.mem.first_index().unwrap_or(1) {
            return Ok(0);
        }
        let mut snap = Snapshot::default();
        snap.set_data(image.data.encode().into());
        let md = snap.mut_metadata();
        md.index = image.index;
        md.term = image.term;
        md.set_conf_state(self.conf_state());
        let w = self.db.begin_write().map_err(dberr)?;
        {
            let mut log = w.open_table(LOG).map_err(dberr)?;
            log.retain_in(..=image.index, |_, _| false).map_err(dberr)?;
            let mut meta = w.open_table(META).map_err(dberr)?;
            meta.insert(
                KEY_SNAPSHOT,
                snap.write_to_bytes().map_err(dberr)?.as_slice(),
            )
            .map_err(dberr)?;
        }
        w.commit().map_err(dberr)?;
        self.mem
            .wl()
            .compact(image.index)
            .map_err(|e| MonStoreError::Corrupt(format!("compact: {e}")))?;
        Ok(image.index)
    }

    /// The persisted snapshot's cluster map bytes and index, if any.
    pub fn snapshot_image(&self) -> AppliedImage {
        self.image.read().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

fn db_err(e: redb::TransactionError) -> MonStoreError {
    MonStoreError::Db(e.to_string())
}

impl MonStorage {
    fn conf_state(&self) -> ConfState {
        self.mem
            .initial_state()
            .map(|s| s.conf_state)
            .unwrap_or_default()
    }
}

impl Storage for MonStorage {
    fn initial_state(&self) -> raft::Result<RaftState> {
        self.mem.initial_state()
    }
    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        context: raft::GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        self.mem.entries(low, high, max_size, context)
    }
    fn term(&self, idx: u64) -> raft::Result<u64> {
        let image = self.image.read().unwrap_or_else(|p| p.into_inner());
        if idx == image.index && idx != 0 {
            return Ok(image.term);
        }
        drop(image);
        self.mem.term(idx)
    }
    fn first_index(&self) -> raft::Result<u64> {
        self.mem.first_index()
    }
    fn last_index(&self) -> raft::Result<u64> {
        self.mem.last_index()
    }
    /// Snapshots are taken on demand from the latest applied image.
    fn snapshot(&self, request_index: u64, _to: u64) -> raft::Result<Snapshot> {
        let image = self.image.read().unwrap_or_else(|p| p.into_inner()).clone();
        if image.index < request_index || image.index == 0 {
            return Err(raft::Error::Store(
                StorageError::SnapshotTemporarilyUnavailable,
            ));
        }
        let mut snap = Snapshot::default();
        snap.set_data(image.data.encode().into());
        let md = snap.mut_metadata();
        md.index = image.index;
        md.term = image.term;
        md.set_conf_state(self.conf_state());
        Ok(snap)
    }
}
