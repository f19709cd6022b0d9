//! The real engine: a preallocated block file plus a fjall keyspace for metadata.
//! See the crate docs for the layout and the commit protocol.

mod alloc;
mod commit;
pub(crate) mod io;
mod keys;
mod record;

/// The on-disk decoders, for the fuzz targets (not an API).
pub mod fuzzing {
    /// Runs every record decoder over `raw`; only a panic is a failure.
    pub fn decode_all(raw: &[u8]) {
        let _ = super::record::decode_record(&|| "fuzz".into(), raw);
        let _ = super::record::decode_superblock(raw);
        let _ = super::record::decode_label(raw);
        let _ = super::keys::decode_object_key(raw);
        let _ = super::keys::decode_pg(raw);
    }

    /// Valid encodings of each record kind: seeds of the fuzz corpus.
    pub fn seeds() -> Vec<Vec<u8>> {
        use super::record::{CHUNK, Chunk, Label, ObjData, ObjState, UNIT};
        let chunks = [
            (
                0,
                Chunk {
                    phys: 16 * UNIT,
                    len: CHUNK as u32,
                    hash: [1; 32],
                },
            ),
            (
                1,
                Chunk {
                    phys: 16 * UNIT + CHUNK,
                    len: 100,
                    hash: [2; 32],
                },
            ),
        ];
        let key = crate::ObjectKey::new(crate::PgId { pool: 3, seed: 7 }, "obj");
        vec![
            super::record::encode_record(&ObjState::empty()),
            super::record::encode_record(&ObjState {
                size: 5,
                data: ObjData::Inline(b"hello".to_vec()),
            }),
            super::record::encode_record(&ObjState {
                size: CHUNK + 100,
                data: ObjData::Chunks(chunks.into_iter().collect()),
            }),
            super::record::encode_superblock(&crate::Superblock {
                fsid: "8f2c1a4e-0000-4000-8000-000000000001".into(),
                osd_id: 2,
                engine: "blockstore".into(),
                format_version: super::FORMAT_VERSION,
                block_size_bytes: 1 << 30,
            }),
            super::record::encode_label(&Label {
                fsid: "8f2c1a4e-0000-4000-8000-000000000001".into(),
                osd_id: 2,
                block_size_bytes: 1 << 30,
            }),
            super::keys::object_key(&key),
            super::keys::sub_key(&key, b"omap-key"),
            super::keys::pg_prefix(key.pg),
        ]
    }
}

use crate::{
    ObjectKey, ObjectStat, ObjectStore, PgId, StoreError, StoreUsage, Superblock, Transaction,
};
use alloc::Allocator;
use bytes::Bytes;
use crossbeam::channel::{self, Sender};
use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode, Readable};
use io::{Io, IoDone, IoOp, Want};
use record::{CHUNK, ObjData, ObjState, UNIT};
use std::collections::BTreeMap;
use std::fs::File;
use std::ops::Bound;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, RwLock};
use std::thread::JoinHandle;

/// On-disk format version of the block store (key layout + record encodings).
pub const FORMAT_VERSION: u32 = 1;

const BLOCK_FILE: &str = "block";
const KV_DIR: &str = "kv";
const LOCK_FILE: &str = "LOCK";
const SUPERBLOCK_KEY: &[u8] = b"superblock";

/// Which I/O engine the block store should use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IoEngine {
    /// io_uring if the kernel and sandbox allow it, else the pread pool (logged once).
    #[default]
    Auto,
    /// io_uring or fail to open.
    IoUring,
    /// The pread/pwrite thread pool.
    Pread,
}

/// The engine actually running.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IoEngineKind {
    /// io_uring on a dedicated thread.
    IoUring,
    /// pread/pwrite thread pool.
    Pread,
}

impl IoEngineKind {
    /// `"io_uring"` or `"pread"`.
    pub fn as_str(self) -> &'static str {
        match self {
            IoEngineKind::IoUring => "io_uring",
            IoEngineKind::Pread => "pread",
        }
    }
}

/// Configuration of a [`BlockStore`]; every field has a default.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct StoreConfig {
    /// Cluster fsid; `open` refuses a store of another fsid.
    pub fsid: String,
    /// OSD id; `open` refuses a store of another OSD.
    pub osd_id: u32,
    /// Size of the block file created by mkfs (rounded down to 4 KiB; open uses the
    /// size recorded at mkfs). Default 10 GiB.
    pub block_size_bytes: u64,
    /// I/O engine. Default `auto`.
    pub engine: IoEngine,
    /// Memory target for metadata caching (fjall block cache + memtables). Default 1 GiB.
    pub cache_bytes: u64,
    /// Objects up to this size keep their data inline in the KV record. Default 8 KiB.
    pub inline_threshold: u64,
    /// Bound of the submit queue (transactions waiting for the committer). Default 1024.
    pub submit_queue_depth: usize,
    /// A group commit stops taking queued transactions past this many payload bytes. Default 64 MiB.
    pub max_batch_bytes: u64,
    /// io_uring ring size. Default 256.
    pub ring_entries: u32,
    /// Threads of the pread/pwrite pool. Default 4.
    pub pread_threads: usize,
    /// Reserve the block file's whole size at mkfs (fallocate); `false`
    /// leaves it sparse. Default true.
    pub preallocate: bool,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            fsid: String::new(),
            osd_id: 0,
            block_size_bytes: 10 << 30,
            engine: IoEngine::Auto,
            cache_bytes: 1 << 30,
            inline_threshold: 8 << 10,
            submit_queue_depth: 1024,
            max_batch_bytes: 64 << 20,
            ring_entries: 256,
            pread_threads: 4,
            preallocate: true,
        }
    }
}

impl StoreConfig {
    /// Defaults with the given identity.
    pub fn new(fsid: impl Into<String>, osd_id: u32) -> Self {
        StoreConfig {
            fsid: fsid.into(),
            osd_id,
            ..Default::default()
        }
    }

    fn validate(&self) -> Result<(), StoreError> {
        let bad = |m: String| Err(StoreError::InvalidArgument(m));
        if self.fsid.is_empty() {
            return bad("fsid must not be empty".into());
        }
        if self.block_size_bytes < (1 << 20) {
            return bad(format!(
                "block_size_bytes = {} is too small (minimum 1 MiB)",
                self.block_size_bytes
            ));
        }
        if self.submit_queue_depth == 0 || self.ring_entries < 2 {
            return bad("submit_queue_depth and ring_entries must be positive".into());
        }
        Ok(())
    }
}

/// Plain counters of the block store (monotonic since open).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoreCounters {
    /// Transactions submitted.
    pub submits: u64,
    /// Transactions committed.
    pub txns_committed: u64,
    /// Transactions that failed (nothing of them applied).
    pub txns_failed: u64,
    /// Group commits (one durable KV commit each).
    pub kv_commits: u64,
    /// fdatasync calls on the block file.
    pub data_syncs: u64,
    /// Bytes written to the block file.
    pub bytes_written: u64,
    /// Bytes read from the block file (client reads and read-modify-write).
    pub bytes_read: u64,
    /// Chunks read back for read-modify-write.
    pub rmw_chunk_reads: u64,
    /// Times freed space could not be recycled yet because readers were active.
    pub reclaim_deferred: u64,
}

#[derive(Default)]
struct Counters {
    submits: AtomicU64,
    txns_committed: AtomicU64,
    txns_failed: AtomicU64,
    kv_commits: AtomicU64,
    data_syncs: AtomicU64,
    bytes_written: AtomicU64,
    bytes_read: AtomicU64,
    rmw_chunk_reads: AtomicU64,
    reclaim_deferred: AtomicU64,
}

impl Counters {
    fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }

    fn snapshot(&self) -> StoreCounters {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        StoreCounters {
            submits: g(&self.submits),
            txns_committed: g(&self.txns_committed),
            txns_failed: g(&self.txns_failed),
            kv_commits: g(&self.kv_commits),
            data_syncs: g(&self.data_syncs),
            bytes_written: g(&self.bytes_written),
            bytes_read: g(&self.bytes_read),
            rmw_chunk_reads: g(&self.rmw_chunk_reads),
            reclaim_deferred: g(&self.reclaim_deferred),
        }
    }
}

/// Allocator plus space freed by committed transactions that is not reusable
/// yet (readers may still be reading it).
struct SpaceState {
    alloc: Allocator,
    pending_free: Vec<(u64, u64)>,
}

impl SpaceState {
    fn pending_units(&self) -> u64 {
        self.pending_free.iter().map(|p| p.1).sum()
    }
}

struct Spaces {
    meta: Keyspace,
    objects: Keyspace,
    xattrs: Keyspace,
    omap: Keyspace,
}

/// Shared state of an open block store (the committer thread holds a reference).
pub(crate) struct Inner {
    cfg: StoreConfig,
    superblock: Superblock,
    db: Database,
    ks: Spaces,
    block: Arc<File>,
    io: Io,
    space: Mutex<SpaceState>,
    /// Readers hold it shared while they use extents found in a record; freed
    /// extents are recycled only under the exclusive lock.
    gate: RwLock<()>,
    pg_counts: Mutex<BTreeMap<PgId, u64>>,
    counters: Counters,
    /// Set once by the first unrecoverable failure; shared with the I/O engine,
    /// which sets it when the ring fails.
    poison: Poison,
    /// Test hook: microseconds a read sleeps between reading the record and
    /// reading the data (widens the window the reclaim gate protects).
    read_pause_us: AtomicU64,
    /// Consecutive failed attempts to recycle freed space.
    reclaim_streak: AtomicU64,
    _lock: File,
}

/// The reason an open store stopped accepting writes: set once, by the first
/// unrecoverable failure, and kept until the store is closed.
#[derive(Clone, Default)]
pub(crate) struct Poison(Arc<OnceLock<String>>);

impl Poison {
    /// Records `reason` unless the store is already poisoned; logs only the first.
    pub(crate) fn set(&self, reason: String) {
        let mut first = false;
        let now = self.0.get_or_init(|| {
            first = true;
            reason
        });
        if first {
            tracing::error!(reason = %now, "object store poisoned; it refuses writes until restarted");
        }
    }

    /// The reason, if poisoned.
    pub(crate) fn get(&self) -> Option<&str> {
        self.0.get().map(String::as_str)
    }
}

/// After this many deferred recycling attempts, the committer waits for readers.
const MAX_RECLAIM_STREAK: u64 = 32;

/// Largest single read of physically contiguous chunks (8 MiB).
const MAX_READ_RUN: u64 = 128 * CHUNK;

struct Submission {
    txn: Transaction,
    reply: tokio::sync::oneshot::Sender<Result<(), StoreError>>,
}

/// The block-file object store. Dropping it drains queued transactions and
/// stops its threads.
pub struct BlockStore {
    inner: Arc<Inner>,
    tx: Option<Sender<Submission>>,
    committer: Option<JoinHandle<()>>,
}

/// Where an object's bytes are, for fsck, debugging and tests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectLayout {
    /// Logical size.
    pub size: u64,
    /// True if the data is stored inline in the KV record.
    pub inline: bool,
    /// Stored chunks (empty when inline).
    pub chunks: Vec<ChunkLayout>,
}

/// One stored chunk of an object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkLayout {
    /// Logical offset in the object.
    pub logical: u64,
    /// Byte offset in the block file.
    pub physical: u64,
    /// Stored length (the checksummed bytes).
    pub len: u64,
}

/// Result of [`BlockStore::fsck`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FsckReport {
    /// Object records scanned.
    pub objects: u64,
    /// Chunks referenced by records.
    pub chunks: u64,
    /// Bytes of the block file referenced by records (including the label unit).
    pub used_bytes: u64,
    /// Bytes free in the live allocator.
    pub free_bytes: u64,
    /// Bytes freed by commits but not yet recycled.
    pub pending_free_bytes: u64,
    /// Free extents in the allocator (fragmentation indicator).
    pub free_extents: u64,
    /// total - used - free - pending: non-zero on an idle store means leaked or double-counted space.
    pub unaccounted_bytes: i64,
    /// Problems found (overlapping extents, bad records, checksum failures with `deep`).
    pub errors: Vec<String>,
}

fn lock_dir(dir: &Path) -> Result<File, StoreError> {
    let f = File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(dir.join(LOCK_FILE))
        .map_err(|e| StoreError::io(format!("open lock file in {}", dir.display()), e))?;
    // SAFETY: flock on a valid descriptor.
    let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
            return Err(StoreError::Locked {
                dir: dir.to_path_buf(),
            });
        }
        return Err(StoreError::io(format!("lock {}", dir.display()), e));
    }
    Ok(f)
}

fn open_db(dir: &Path, cache_bytes: u64) -> Result<(Database, Spaces), StoreError> {
    let kv = dir.join(KV_DIR);
    // Memory target: 3/4 to the block cache, the rest to memtables.
    let memtable = (cache_bytes / 16).clamp(2 << 20, 64 << 20);
    let db = Database::builder(&kv)
        .cache_size(cache_bytes / 4 * 3)
        .open()
        .map_err(|e| StoreError::kv(format!("open {}", kv.display()), e))?;
    let open = |name: &str| {
        db.keyspace(name, || {
            KeyspaceCreateOptions::default().max_memtable_size(memtable)
        })
        .map_err(|e| StoreError::kv(format!("open keyspace {name}"), e))
    };
    let ks = Spaces {
        meta: open("meta")?,
        objects: open("objects")?,
        xattrs: open("xattrs")?,
        omap: open("omap")?,
    };
    Ok((db, ks))
}

fn read_superblock(ks: &Spaces) -> Result<Option<Superblock>, StoreError> {
    match ks
        .meta
        .get(SUPERBLOCK_KEY)
        .map_err(|e| StoreError::kv("read superblock", e))?
    {
        Some(v) => Ok(Some(record::decode_superblock(&v)?)),
        None => Ok(None),
    }
}

fn fsync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StoreError::io(format!("fsync directory {}", dir.display()), e))
}

fn read_label(path: &Path) -> Result<record::Label, StoreError> {
    let f = File::open(path).map_err(|e| StoreError::io(format!("open {}", path.display()), e))?;
    let mut buf = vec![0u8; UNIT as usize];
    f.read_exact_at(&mut buf, 0)
        .map_err(|e| StoreError::io(format!("read the label of {}", path.display()), e))?;
    record::decode_label(&buf)
}

fn open_block_file(path: &Path) -> Result<File, StoreError> {
    let direct = File::options()
        .read(true)
        .write(true)
        .custom_flags(libc::O_DIRECT)
        .open(path);
    match direct {
        Ok(f) => Ok(f),
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
            tracing::warn!(
                path = %path.display(),
                "the filesystem refuses O_DIRECT; the block store uses buffered I/O \
                 (durability still comes from fdatasync)"
            );
            File::options()
                .read(true)
                .write(true)
                .open(path)
                .map_err(|e| StoreError::io(format!("open {}", path.display()), e))
        }
        Err(e) => Err(StoreError::io(format!("open {}", path.display()), e)),
    }
}

impl BlockStore {
    /// Hands `txn` to the committer. With `block`, waits for room in the
    /// submit queue; without, hands `txn` back when the queue is full.
    fn enqueue(&self, txn: Transaction, block: bool) -> Result<crate::Pending, Transaction> {
        // Before anything else: even an empty transaction is not acknowledged
        // by a store that can no longer promise durability.
        if let Some(reason) = self.inner.poisoned() {
            return Ok(crate::Pending::done(Err(StoreError::Poisoned(reason))));
        }
        if let Err(e) = txn.validate() {
            return Ok(crate::Pending::done(Err(e)));
        }
        let pending = self.send_to_committer(txn, block)?;
        Counters::add(&self.inner.counters.submits, 1);
        Ok(pending)
    }

    /// The send half of [`enqueue`](Self::enqueue): `Err` only when the
    /// queue is full and `block` is false.
    fn send_to_committer(
        &self,
        txn: Transaction,
        block: bool,
    ) -> Result<crate::Pending, Transaction> {
        if txn.is_empty() {
            return Ok(crate::Pending::done(Ok(())));
        }
        let Some(tx) = self.tx.as_ref() else {
            return Ok(crate::Pending::done(Err(StoreError::Closed)));
        };
        let (rtx, rrx) = tokio::sync::oneshot::channel();
        let sub = Submission { txn, reply: rtx };
        let sent = if block {
            tx.send(sub).map_err(|_| None)
        } else {
            tx.try_send(sub).map_err(|e| match e {
                channel::TrySendError::Full(sub) => Some(sub.txn),
                channel::TrySendError::Disconnected(_) => None,
            })
        };
        match sent {
            Ok(()) => Ok(crate::Pending::waiting(rrx)),
            Err(Some(txn)) => Err(txn),
            Err(None) => Ok(crate::Pending::done(Err(StoreError::Closed))),
        }
    }

    /// Formats `dir` as a new, empty store for `cfg.fsid` / `cfg.osd_id`.
    ///
    /// Refuses a directory that already holds a store. Creates the block file
    /// (fallocate'd to `block_size_bytes`) with its label, then the KV
    /// superblock, which marks the store as formatted.
    pub fn mkfs(dir: impl AsRef<Path>, cfg: &StoreConfig) -> Result<(), StoreError> {
        let dir = dir.as_ref();
        cfg.validate()?;
        std::fs::create_dir_all(dir)
            .map_err(|e| StoreError::io(format!("create {}", dir.display()), e))?;
        let _lock = lock_dir(dir)?;
        if dir.join(KV_DIR).exists() {
            let (db, ks) = open_db(dir, 16 << 20)?;
            if let Some(sb) = read_superblock(&ks)? {
                return Err(StoreError::AlreadyFormatted {
                    dir: dir.to_path_buf(),
                    fsid: sb.fsid,
                });
            }
            drop(ks);
            drop(db);
        }
        let size = cfg.block_size_bytes / UNIT * UNIT;
        let path = dir.join(BLOCK_FILE);
        let f = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .map_err(|e| StoreError::io(format!("create {}", path.display()), e))?;
        // SAFETY: fallocate on a valid descriptor.
        let rc = if cfg.preallocate {
            unsafe { libc::fallocate(f.as_raw_fd(), 0, 0, size as libc::off_t) }
        } else {
            f.set_len(size)
                .map_err(|e| StoreError::io(format!("size {}", path.display()), e))?;
            0
        };
        if rc != 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EOPNOTSUPP) {
                tracing::warn!("fallocate is not supported here; the block file is sparse");
                f.set_len(size)
                    .map_err(|e| StoreError::io(format!("size {}", path.display()), e))?;
            } else {
                return Err(StoreError::io(
                    format!("preallocate {} bytes for {}", size, path.display()),
                    e,
                ));
            }
        }
        let label = record::encode_label(&record::Label {
            fsid: cfg.fsid.clone(),
            osd_id: cfg.osd_id,
            block_size_bytes: size,
        });
        f.write_all_at(&label, 0)
            .and_then(|_| f.sync_all())
            .map_err(|e| StoreError::io(format!("write the label of {}", path.display()), e))?;
        drop(f);
        let (db, ks) = open_db(dir, 16 << 20)?;
        let sb = Superblock {
            fsid: cfg.fsid.clone(),
            osd_id: cfg.osd_id,
            engine: "blockstore".to_string(),
            format_version: FORMAT_VERSION,
            block_size_bytes: size,
        };
        let mut b = db.batch().durability(Some(PersistMode::SyncAll));
        b.insert(&ks.meta, SUPERBLOCK_KEY, record::encode_superblock(&sb));
        b.commit()
            .map_err(|e| StoreError::kv("write superblock", e))?;
        fsync_dir(&dir.join(KV_DIR))?;
        fsync_dir(dir)?;
        tracing::info!(dir = %dir.display(), fsid = %cfg.fsid, osd_id = cfg.osd_id, size, "formatted object store");
        Ok(())
    }

    /// Opens a formatted store, checking that it belongs to `cfg.fsid` and
    /// `cfg.osd_id` before anything is written; rebuilds the allocator from the
    /// object records and starts the I/O and committer threads.
    pub fn open(dir: impl AsRef<Path>, cfg: &StoreConfig) -> Result<BlockStore, StoreError> {
        Self::open_with(dir.as_ref(), cfg, io_uring::IoUring::new)
    }

    pub(crate) fn open_with(
        dir: &Path,
        cfg: &StoreConfig,
        setup: impl FnOnce(u32) -> std::io::Result<io_uring::IoUring>,
    ) -> Result<BlockStore, StoreError> {
        cfg.validate()?;
        let not_formatted = || StoreError::NotFormatted {
            dir: dir.to_path_buf(),
        };
        if !dir.is_dir() {
            return Err(not_formatted());
        }
        let block_path = dir.join(BLOCK_FILE);
        if !block_path.exists() || !dir.join(KV_DIR).exists() {
            return Err(not_formatted());
        }
        let lock = lock_dir(dir)?;
        // Identity first, read-only: a foreign store is refused untouched.
        let label = read_label(&block_path)?;
        if label.fsid != cfg.fsid {
            return Err(StoreError::FsidMismatch {
                expected: cfg.fsid.clone(),
                found: label.fsid,
            });
        }
        if label.osd_id != cfg.osd_id {
            return Err(StoreError::OsdIdMismatch {
                expected: cfg.osd_id,
                found: label.osd_id,
            });
        }
        let (db, ks) = open_db(dir, cfg.cache_bytes)?;
        let sb = read_superblock(&ks)?.ok_or_else(not_formatted)?;
        if sb.format_version > FORMAT_VERSION {
            return Err(StoreError::UnsupportedVersion {
                what: "store format".into(),
                found: sb.format_version,
                supported: FORMAT_VERSION,
            });
        }
        if sb.fsid != label.fsid
            || sb.osd_id != label.osd_id
            || sb.block_size_bytes != label.block_size_bytes
        {
            return Err(StoreError::BadRecord {
                what: "superblock".into(),
                reason: format!(
                    "the KV says fsid {} osd.{} size {}, the block file label says fsid {} \
                     osd.{} size {}: kv/ and block come from different stores",
                    sb.fsid,
                    sb.osd_id,
                    sb.block_size_bytes,
                    label.fsid,
                    label.osd_id,
                    label.block_size_bytes
                ),
            });
        }
        let block = open_block_file(&block_path)?;
        let len = block
            .metadata()
            .map_err(|e| StoreError::io("stat the block file", e))?
            .len();
        if len < sb.block_size_bytes {
            return Err(StoreError::BadRecord {
                what: "block file".into(),
                reason: format!(
                    "{} bytes long, the superblock says {}",
                    len, sb.block_size_bytes
                ),
            });
        }
        let total_units = sb.block_size_bytes / UNIT;
        // Rebuild the free map and the per-PG object counts from the records.
        let mut alloc = Allocator::new(1, total_units);
        let mut pg_counts: BTreeMap<PgId, u64> = BTreeMap::new();
        for item in ks.objects.iter() {
            let (k, v) = item
                .into_inner()
                .map_err(|e| StoreError::kv("scan object records", e))?;
            let key = keys::decode_object_key(&k)?;
            let dec = record::decode_record(&|| format!("object record of {key}"), &v)?;
            if let ObjData::Chunks(chunks) = &dec.state.data {
                for c in chunks.values() {
                    alloc
                        .mark_used(c.phys / UNIT, c.alloc_len() / UNIT)
                        .map_err(|o| StoreError::BadRecord {
                            what: format!("object record of {key}"),
                            reason: format!(
                                "block range [{}, +{}) units is outside the device or already \
                                 used by another object",
                                o.start, o.len
                            ),
                        })?;
                }
            }
            *pg_counts.entry(key.pg).or_default() += 1;
        }
        let block = Arc::new(block);
        let poison = Poison::default();
        let want = match cfg.engine {
            IoEngine::Auto => Want::Auto,
            IoEngine::IoUring => Want::Uring,
            IoEngine::Pread => Want::Pread,
        };
        let io = Io::start(
            block.clone(),
            want,
            cfg.ring_entries,
            cfg.pread_threads,
            poison.clone(),
            setup,
        )?;
        let inner = Arc::new(Inner {
            cfg: cfg.clone(),
            superblock: sb,
            db,
            ks,
            block,
            io,
            space: Mutex::new(SpaceState {
                alloc,
                pending_free: Vec::new(),
            }),
            gate: RwLock::new(()),
            pg_counts: Mutex::new(pg_counts),
            counters: Counters::default(),
            poison,
            read_pause_us: AtomicU64::new(0),
            reclaim_streak: AtomicU64::new(0),
            _lock: lock,
        });
        let (tx, rx) = channel::bounded(cfg.submit_queue_depth);
        let c_inner = inner.clone();
        let committer = std::thread::Builder::new()
            .name("store-commit".into())
            .spawn(move || commit::committer_loop(c_inner, rx))
            .map_err(|e| StoreError::io("spawn the committer thread", e))?;
        tracing::info!(
            dir = %dir.display(),
            engine = inner.io.kind().as_str(),
            "object store open"
        );
        Ok(BlockStore {
            inner,
            tx: Some(tx),
            committer: Some(committer),
        })
    }

    /// `"io_uring"` or `"pread"`: the I/O engine in use.
    pub fn engine_name(&self) -> &'static str {
        self.inner.io.kind().as_str()
    }

    /// The I/O engine in use.
    pub fn engine_kind(&self) -> IoEngineKind {
        self.inner.io.kind()
    }

    /// Counters since open (group commits, syncs, bytes ...).
    pub fn counters(&self) -> StoreCounters {
        self.inner.counters.snapshot()
    }

    /// The configuration the store was opened with.
    pub fn config(&self) -> &StoreConfig {
        &self.inner.cfg
    }

    /// Test hook: makes every read pause between looking up the object record
    /// and reading its data, to exercise space recycling under readers.
    #[doc(hidden)]
    pub fn debug_set_read_pause(&self, pause: std::time::Duration) {
        self.inner
            .read_pause_us
            .store(pause.as_micros() as u64, Ordering::Relaxed);
    }

    /// Where an object's data lives (`None` if absent).
    pub fn object_layout(&self, key: &ObjectKey) -> Result<Option<ObjectLayout>, StoreError> {
        let snap = self.inner.db.snapshot();
        let Some(st) = self.inner.load_record(&snap, key)? else {
            return Ok(None);
        };
        Ok(Some(match &st.data {
            ObjData::Inline(_) => ObjectLayout {
                size: st.size,
                inline: true,
                chunks: Vec::new(),
            },
            ObjData::Chunks(m) => ObjectLayout {
                size: st.size,
                inline: false,
                chunks: m
                    .iter()
                    .map(|(i, c)| ChunkLayout {
                        logical: i * CHUNK,
                        physical: c.phys,
                        len: u64::from(c.len),
                    })
                    .collect(),
            },
        }))
    }

    /// Checks the allocator invariants against the records: no two live chunks
    /// share a block, everything is inside the device, and (on an idle store)
    /// used + free + pending = total. With `deep`, also verifies every checksum.
    pub fn fsck(&self, deep: bool) -> Result<FsckReport, StoreError> {
        let inner = &self.inner;
        let _g = inner.gate.read().unwrap_or_else(|e| e.into_inner());
        let snap = inner.db.snapshot();
        let total_units = inner.superblock.block_size_bytes / UNIT;
        let mut check = Allocator::new(1, total_units);
        let mut rep = FsckReport::default();
        let mut used_units = 1u64; // the label
        for item in snap.iter(&inner.ks.objects) {
            let (k, v) = item
                .into_inner()
                .map_err(|e| StoreError::kv("scan object records", e))?;
            rep.objects += 1;
            let key = match keys::decode_object_key(&k) {
                Ok(k) => k,
                Err(e) => {
                    rep.errors.push(e.to_string());
                    continue;
                }
            };
            let dec = match record::decode_record(&|| format!("object record of {key}"), &v) {
                Ok(d) => d,
                Err(e) => {
                    rep.errors.push(e.to_string());
                    continue;
                }
            };
            match &dec.state.data {
                ObjData::Inline(data) => {
                    if deep && dec.inline_hash != Some(*blake3::hash(data).as_bytes()) {
                        rep.errors
                            .push(format!("{key}: inline data fails its checksum"));
                    }
                }
                ObjData::Chunks(chunks) => {
                    for (idx, c) in chunks {
                        rep.chunks += 1;
                        let units = c.alloc_len() / UNIT;
                        if check.mark_used(c.phys / UNIT, units).is_err() {
                            rep.errors.push(format!(
                                "{key}: chunk {idx} at block offset {} overlaps another chunk \
                                 or leaves the device",
                                c.phys
                            ));
                        } else {
                            used_units += units;
                        }
                    }
                    if deep {
                        let want = (0, dec.state.size);
                        if let Err(e) = inner.read_chunked(&key, &dec.state, want) {
                            rep.errors.push(e.to_string());
                        }
                    }
                }
            }
        }
        let space = inner.space();
        rep.used_bytes = used_units * UNIT;
        rep.free_bytes = space.alloc.free_units() * UNIT;
        rep.pending_free_bytes = space.pending_units() * UNIT;
        rep.free_extents = space.alloc.free_extents() as u64;
        rep.unaccounted_bytes = (total_units * UNIT) as i64
            - rep.used_bytes as i64
            - rep.free_bytes as i64
            - rep.pending_free_bytes as i64;
        Ok(rep)
    }
}

impl Drop for BlockStore {
    fn drop(&mut self) {
        self.tx = None;
        if let Some(t) = self.committer.take() {
            let _ = t.join();
        }
        if let Err(e) = self.inner.db.persist(PersistMode::SyncAll) {
            tracing::warn!(error = ?e, "persist the metadata KV at shutdown");
        }
    }
}

impl Inner {
    fn space(&self) -> MutexGuard<'_, SpaceState> {
        self.space.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn poison(&self, reason: String) {
        self.poison.set(reason);
    }

    fn poisoned(&self) -> Option<String> {
        self.poison.get().map(str::to_string)
    }

    /// Reads and decodes the record of `key` (verifying inline data).
    fn load_record(
        &self,
        snap: &impl Readable,
        key: &ObjectKey,
    ) -> Result<Option<ObjState>, StoreError> {
        let raw = snap
            .get(&self.ks.objects, keys::object_key(key))
            .map_err(|e| StoreError::kv(format!("read the record of {key}"), e))?;
        Self::decode_loaded(key, raw.as_deref())
    }

    /// Decodes a record read from the KV (verifying inline data).
    fn decode_loaded(key: &ObjectKey, raw: Option<&[u8]>) -> Result<Option<ObjState>, StoreError> {
        let Some(raw) = raw else { return Ok(None) };
        let dec = record::decode_record(&|| format!("object record of {key}"), raw)?;
        if let (Some(h), ObjData::Inline(d)) = (dec.inline_hash, &dec.state.data)
            && blake3::hash(d).as_bytes() != &h
        {
            return Err(StoreError::Corrupt {
                key: key.clone(),
                offset: 0,
            });
        }
        Ok(Some(dec.state))
    }

    fn require_object(&self, snap: &impl Readable, key: &ObjectKey) -> Result<(), StoreError> {
        let found = snap
            .contains_key(&self.ks.objects, keys::object_key(key))
            .map_err(|e| StoreError::kv(format!("look up {key}"), e))?;
        if found {
            Ok(())
        } else {
            Err(StoreError::NotFound { key: key.clone() })
        }
    }

    /// Reads `[start, end)` of a chunked object, verifying every chunk it touches.
    ///
    /// Chunks that follow each other both in the object and on the device
    /// (what one write leaves) are read with one I/O op per run of up to
    /// [`MAX_READ_RUN`] bytes. When one run covers the whole range, the
    /// answer is a slice of its buffer: no copy, no zero-filled staging.
    fn read_chunked(
        &self,
        key: &ObjectKey,
        st: &ObjState,
        (start, end): (u64, u64),
    ) -> Result<Bytes, StoreError> {
        let len = end.saturating_sub(start) as usize;
        let ObjData::Chunks(chunks) = &st.data else {
            return Ok(Bytes::from(vec![0u8; len]));
        };
        if start >= end {
            return Ok(Bytes::new());
        }
        let first = start / CHUNK;
        let last = (end - 1) / CHUNK;
        let wanted: Vec<(u64, &record::Chunk)> =
            chunks.range(first..=last).map(|(i, c)| (*i, c)).collect();
        // Index ranges of `wanted` read by one I/O op each. Within a run,
        // every chunk but the last is full, so object offset and buffer
        // offset differ by a constant.
        let mut runs: Vec<std::ops::Range<usize>> = Vec::new();
        for (i, (idx, c)) in wanted.iter().enumerate() {
            let joins = match (runs.last(), i.checked_sub(1).map(|p| wanted[p])) {
                (Some(r), Some((pidx, p))) => {
                    pidx + 1 == *idx
                        && u64::from(p.len) == CHUNK
                        && p.phys + p.alloc_len() == c.phys
                        && c.phys + c.alloc_len() - wanted[r.start].1.phys <= MAX_READ_RUN
                }
                _ => false,
            };
            match runs.last_mut() {
                Some(r) if joins => r.end = i + 1,
                _ => runs.push(i..i + 1),
            }
        }
        let ops = runs
            .iter()
            .map(|r| {
                let (head, tail) = (wanted[r.start].1, wanted[r.end - 1].1);
                IoOp::Read {
                    offset: head.phys,
                    len: (tail.phys + tail.alloc_len() - head.phys) as usize,
                }
            })
            .collect();
        let done = self
            .io
            .run(ops)
            .map_err(|e| StoreError::io(format!("read {key} from the block file"), e))?;
        let mut bufs = Vec::with_capacity(runs.len());
        for (r, d) in runs.iter().zip(done) {
            let IoDone::Read(buf) = d else {
                return Err(StoreError::io(
                    "read the block file",
                    std::io::Error::other("the I/O engine answered a read with a write"),
                ));
            };
            Counters::add(&self.counters.bytes_read, buf.len() as u64);
            let base = wanted[r.start].1.phys;
            for (idx, c) in &wanted[r.clone()] {
                let at = (c.phys - base) as usize;
                let stored = buf.as_slice().get(at..at + c.len as usize);
                if stored.is_none_or(|s| blake3::hash(s).as_bytes() != &c.hash) {
                    return Err(StoreError::Corrupt {
                        key: key.clone(),
                        offset: idx * CHUNK,
                    });
                }
            }
            bufs.push(buf);
        }
        // One run holding every byte of the range: hand out a slice of it.
        if runs.len() == 1
            && wanted.first().is_some_and(|(i, _)| *i == first)
            && wanted
                .last()
                .is_some_and(|(i, c)| *i == last && end <= last * CHUNK + u64::from(c.len))
            && let Some(buf) = bufs.pop()
        {
            let base = first * CHUNK;
            return Ok(Bytes::from_owner(buf).slice((start - base) as usize..(end - base) as usize));
        }
        // Holes, a tail past the stored bytes, or several runs: assemble.
        let mut out = Vec::with_capacity(len);
        for (r, buf) in runs.iter().zip(&bufs) {
            let base = wanted[r.start].1.phys;
            for (idx, c) in &wanted[r.clone()] {
                let cs = idx * CHUNK;
                let from = start.max(cs);
                let to = end.min(cs + u64::from(c.len));
                if from >= to {
                    continue;
                }
                out.resize((from - start) as usize, 0);
                let at = (c.phys - base + (from - cs)) as usize;
                out.extend_from_slice(&buf.as_slice()[at..at + (to - from) as usize]);
            }
        }
        out.resize(len, 0);
        Ok(Bytes::from(out))
    }

    /// Recycles space freed by committed transactions if no reader is active.
    fn try_reclaim(&self) {
        let mut space = self.space();
        if space.pending_free.is_empty() {
            return;
        }
        // Readers hold the gate shared from the moment they read a record until
        // they are done with its extents; with it exclusive, none can still be
        // using an extent that a durable commit has freed.
        match self.gate.try_write() {
            Ok(_g) => {
                Self::release_pending(&mut space);
                self.reclaim_streak.store(0, Ordering::Relaxed);
            }
            Err(_) => {
                Counters::add(&self.counters.reclaim_deferred, 1);
                // Under a constant stream of readers, stop waiting for a gap.
                if self.reclaim_streak.fetch_add(1, Ordering::Relaxed) + 1 >= MAX_RECLAIM_STREAK {
                    drop(space);
                    self.reclaim_blocking();
                    self.reclaim_streak.store(0, Ordering::Relaxed);
                }
            }
        }
    }

    /// Like `try_reclaim`, but waits for active readers (used when out of space).
    fn reclaim_blocking(&self) -> bool {
        if self.space().pending_free.is_empty() {
            return false;
        }
        let _g = self.gate.write().unwrap_or_else(|e| e.into_inner());
        let mut space = self.space();
        Self::release_pending(&mut space);
        true
    }

    fn release_pending(space: &mut SpaceState) {
        for (s, n) in std::mem::take(&mut space.pending_free) {
            if let Err(o) = space.alloc.release(s, n) {
                // Would mean a double free: keep running, fsck will report it.
                tracing::error!(start = o.start, len = o.len, "released a block range twice");
            }
        }
    }
}

impl ObjectStore for BlockStore {
    fn submit(&self, txn: Transaction) -> Result<(), StoreError> {
        self.queue(txn).wait()
    }

    fn queue(&self, txn: Transaction) -> crate::Pending {
        self.enqueue(txn, true)
            .unwrap_or_else(|_| crate::Pending::done(Err(StoreError::Closed)))
    }

    fn try_queue(&self, txn: Transaction) -> Result<crate::Pending, Transaction> {
        self.enqueue(txn, false)
    }

    fn read(&self, key: &ObjectKey, offset: u64, len: Option<u64>) -> Result<Bytes, StoreError> {
        let inner = &self.inner;
        let _g = inner.gate.read().unwrap_or_else(|e| e.into_inner());
        let snap = inner.db.snapshot();
        let st = inner
            .load_record(&snap, key)?
            .ok_or_else(|| StoreError::NotFound { key: key.clone() })?;
        let start = offset.min(st.size);
        let end = match len {
            Some(l) => start.saturating_add(l).min(st.size),
            None => st.size,
        };
        match &st.data {
            ObjData::Inline(d) => Ok(Bytes::copy_from_slice(&d[start as usize..end as usize])),
            ObjData::Chunks(_) => {
                let pause = inner.read_pause_us.load(Ordering::Relaxed);
                if pause > 0 {
                    std::thread::sleep(std::time::Duration::from_micros(pause));
                }
                inner.read_chunked(key, &st, (start, end))
            }
        }
    }

    fn stat(&self, key: &ObjectKey) -> Result<Option<ObjectStat>, StoreError> {
        let snap = self.inner.db.snapshot();
        let raw = snap
            .get(&self.inner.ks.objects, keys::object_key(key))
            .map_err(|e| StoreError::kv(format!("read the record of {key}"), e))?;
        match raw {
            None => Ok(None),
            Some(raw) => {
                let dec = record::decode_record(&|| format!("object record of {key}"), &raw)?;
                Ok(Some(ObjectStat {
                    size: dec.state.size,
                }))
            }
        }
    }

    fn getxattr(&self, key: &ObjectKey, name: &str) -> Result<Option<Bytes>, StoreError> {
        let snap = self.inner.db.snapshot();
        self.inner.require_object(&snap, key)?;
        let v = snap
            .get(&self.inner.ks.xattrs, keys::sub_key(key, name.as_bytes()))
            .map_err(|e| StoreError::kv(format!("read xattr {name} of {key}"), e))?;
        Ok(v.map(|v| Bytes::copy_from_slice(&v)))
    }

    fn getxattrs(&self, key: &ObjectKey) -> Result<Vec<(String, Bytes)>, StoreError> {
        let snap = self.inner.db.snapshot();
        self.inner.require_object(&snap, key)?;
        let prefix = keys::sub_prefix(key);
        let mut out = Vec::new();
        for item in snap.prefix(&self.inner.ks.xattrs, &prefix) {
            let (k, v) = item
                .into_inner()
                .map_err(|e| StoreError::kv(format!("read xattrs of {key}"), e))?;
            let name =
                std::str::from_utf8(&k[prefix.len()..]).map_err(|_| StoreError::BadRecord {
                    what: format!("xattr of {key}"),
                    reason: "name is not UTF-8".into(),
                })?;
            out.push((name.to_string(), Bytes::copy_from_slice(&v)));
        }
        Ok(out)
    }

    fn omap_get(
        &self,
        key: &ObjectKey,
        start_after: Option<&[u8]>,
        prefix: &[u8],
        max: usize,
    ) -> Result<Vec<(Bytes, Bytes)>, StoreError> {
        let snap = self.inner.db.snapshot();
        self.inner.require_object(&snap, key)?;
        let base = keys::sub_prefix(key);
        let full_prefix = keys::sub_key(key, prefix);
        let lower = match start_after {
            Some(s) if s >= prefix => Bound::Excluded(keys::sub_key(key, s)),
            _ => Bound::Included(full_prefix.clone()),
        };
        let upper = match keys::prefix_successor(&full_prefix) {
            Some(u) => Bound::Excluded(u),
            None => Bound::Unbounded,
        };
        let mut out = Vec::new();
        let empty_range = match (&lower, &upper) {
            (Bound::Excluded(l) | Bound::Included(l), Bound::Excluded(u)) => l >= u,
            _ => false,
        };
        if max == 0 || empty_range {
            return Ok(out);
        }
        for item in snap.range(&self.inner.ks.omap, (lower, upper)) {
            let (k, v) = item
                .into_inner()
                .map_err(|e| StoreError::kv(format!("read omap of {key}"), e))?;
            out.push((
                Bytes::copy_from_slice(&k[base.len()..]),
                Bytes::copy_from_slice(&v),
            ));
            if out.len() >= max {
                break;
            }
        }
        Ok(out)
    }

    fn omap_get_values(
        &self,
        key: &ObjectKey,
        keys_wanted: &[Bytes],
    ) -> Result<Vec<(Bytes, Bytes)>, StoreError> {
        let snap = self.inner.db.snapshot();
        self.inner.require_object(&snap, key)?;
        let mut wanted: Vec<&Bytes> = keys_wanted.iter().collect();
        wanted.sort();
        wanted.dedup();
        let mut out = Vec::new();
        for k in wanted {
            let v = snap
                .get(&self.inner.ks.omap, keys::sub_key(key, k))
                .map_err(|e| StoreError::kv(format!("read omap of {key}"), e))?;
            if let Some(v) = v {
                out.push((k.clone(), Bytes::copy_from_slice(&v)));
            }
        }
        Ok(out)
    }

    fn list_objects(
        &self,
        pg: PgId,
        start_after: Option<&str>,
        max: usize,
    ) -> Result<Vec<String>, StoreError> {
        let snap = self.inner.db.snapshot();
        let prefix = keys::pg_prefix(pg);
        // Excluding `pg | start_after` (or the bare prefix: the meta object).
        let mut lower = prefix.clone();
        lower.extend_from_slice(start_after.unwrap_or("").as_bytes());
        let upper = match keys::prefix_successor(&prefix) {
            Some(u) => Bound::Excluded(u),
            None => Bound::Unbounded,
        };
        let mut out = Vec::new();
        if max == 0 {
            return Ok(out);
        }
        for item in snap.range(&self.inner.ks.objects, (Bound::Excluded(lower), upper)) {
            let k = item
                .key()
                .map_err(|e| StoreError::kv(format!("list objects of {pg}"), e))?;
            out.push(keys::decode_object_key(&k)?.name);
            if out.len() >= max {
                break;
            }
        }
        Ok(out)
    }

    fn list_collections(&self) -> Result<Vec<PgId>, StoreError> {
        let counts = self
            .inner
            .pg_counts
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        Ok(counts
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(pg, _)| *pg)
            .collect())
    }

    fn statfs(&self) -> Result<StoreUsage, StoreError> {
        let inner = &self.inner;
        let total = inner.superblock.block_size_bytes / UNIT * UNIT;
        let (free, pending) = {
            let s = inner.space();
            (s.alloc.free_units() * UNIT, s.pending_units() * UNIT)
        };
        let objects = inner
            .pg_counts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .sum();
        let kv_bytes = inner
            .db
            .disk_space()
            .map_err(|e| StoreError::kv("measure KV disk space", e))?;
        Ok(StoreUsage {
            total_bytes: total,
            used_bytes: total - free - pending,
            available_bytes: free + pending,
            objects,
            kv_bytes,
        })
    }

    fn superblock(&self) -> &Superblock {
        &self.inner.superblock
    }

    fn poisoned(&self) -> Option<String> {
        self.inner.poisoned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poison_keeps_the_first_reason() {
        let p = Poison::default();
        assert_eq!(p.get(), None);
        p.set("fdatasync failed".into());
        p.clone().set("a later failure".into());
        assert_eq!(p.get(), Some("fdatasync failed"));
    }

    #[test]
    fn auto_engine_falls_back_when_io_uring_is_denied() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = StoreConfig::new("f", 1);
        cfg.block_size_bytes = 8 << 20;
        cfg.cache_bytes = 16 << 20;
        BlockStore::mkfs(dir.path(), &cfg).unwrap();
        let denied = |_| Err(std::io::Error::from_raw_os_error(libc::ENOSYS));
        let s = BlockStore::open_with(dir.path(), &cfg, denied).unwrap();
        assert_eq!(s.engine_name(), "pread");
        let k = ObjectKey::new(PgId::new(1, 1), "x");
        s.submit(Transaction::new().write_full(&k, vec![7u8; 100_000]))
            .unwrap();
        assert_eq!(s.read(&k, 0, None).unwrap(), vec![7u8; 100_000]);
    }
}
