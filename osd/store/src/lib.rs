//! The OSD's local object store: an [`ObjectStore`] trait with atomic
//! transactions, and two engines — [`MemStore`] (memory, for unit tests) and
//! [`BlockStore`] (block file + embedded KV, the real one).
//!
//! # Semantics
//!
//! A [`Transaction`] is a list of [`StoreOp`]s applied in order (later ops see
//! earlier ones), atomically and durably: `submit` returns once the whole
//! transaction survives `kill -9` or power loss, and a crash never exposes part
//! of one. Concurrent submits are applied in submission order. Ops that add data
//! or metadata create the object; removal ops on an absent object are no-ops.
//! Per-object reads (`read`, `getxattr(s)`, `omap_get*`) return
//! [`StoreError::NotFound`] for an absent object; `stat` returns `None`.
//! The empty name is the PG meta object; `list_objects` never returns it.
//!
//! # BlockStore on-disk layout
//!
//! ```text
//! <dir>/LOCK    flock'ed while the store is open (one process at a time)
//! <dir>/block   data device: a file fallocate'd to block_size_bytes, used with O_DIRECT
//!               unit 0 (4 KiB): label = magic "MERIDIAN-BLOCK", version byte, fsid,
//!                               osd id, size, blake3 of the above
//!               units 1..     : object data, allocated in 4 KiB units
//! <dir>/kv/     fjall database, keyspaces:
//!   meta        "superblock" -> [version=1] JSON {fsid, osd_id, engine, format_version, block_size_bytes}
//!   objects     pool:u64be seed:u32be name            -> object record
//!   xattrs      pool:u64be seed:u32be len:u32be name attr_name -> value
//!   omap        pool:u64be seed:u32be len:u32be name omap_key  -> value
//! ```
//!
//! Big-endian integers make byte order equal numeric order, so one prefix scan
//! lists a PG's objects sorted by name (the meta object, whose key is the bare
//! PG prefix, sorts first and is skipped), and one prefix scan lists an object's
//! xattrs or omap sorted by key. The name length in xattr/omap keys keeps one
//! object's prefix from being a prefix of another's ("a"+"bc" vs "ab"+"c").
//!
//! Versioning: the superblock carries `format_version` ([`FORMAT_VERSION`],
//! covering the key layout) and a version byte; every object record and the
//! block label start with their own version byte. Xattr and omap values are
//! opaque user bytes. Unknown versions are refused with
//! [`StoreError::UnsupportedVersion`]; damaged structures give
//! [`StoreError::BadRecord`], never a panic.
//!
//! Object record (version 1): `version:u8, kind:u8, size:u64le`, then either
//! inline data (`blake3[32]`, then exactly `size` bytes), or an extent list
//! (`count:u32le`, per extent `logical:u64le, physical:u64le, length:u64le`,
//! then one blake3 per 64 KiB chunk of the extent). Data is cut into chunks
//! at logical multiples of 64 KiB; a chunk stores 1..=64 KiB, takes whole
//! 4 KiB units on the device, and its blake3 covers exactly its stored bytes.
//! An extent groups physically contiguous full chunks; missing chunks are holes
//! that read as zeros. Objects of at most `inline_threshold` bytes (default
//! 8 KiB) keep their data inline in the record: a small write then costs one
//! KV commit and no data-device sync. (A write that grows an object past the
//! threshold moves it to chunks; a truncate below it moves it back.)
//!
//! # Commit protocol (why it is crash-safe)
//!
//! One committer thread takes every transaction queued at that moment (the
//! submit queue is bounded) and applies them in order against an in-memory
//! overlay of the records it touches:
//!
//! 1. New data always goes to freshly allocated units (copy-on-write): a
//!    partial overwrite reads the touched chunks (verifying them), patches them
//!    and writes whole new chunks elsewhere. Committed data is never modified
//!    in place.
//! 2. All new extents of the group are written in one batched submission, then
//!    the block file is `fdatasync`ed.
//! 3. One fjall write batch with every changed record, xattr and omap entry is
//!    committed with `PersistMode::SyncAll` (journal fsync). **This is the
//!    atomic point**: before it the new extents are unreferenced garbage (free
//!    at the next open), after it they are referenced and already durable.
//! 4. Only then are the submitters woken, and the units of replaced or removed
//!    chunks are queued for reuse. They are recycled once no reader that might
//!    still hold the old record is active (readers hold a shared gate; the
//!    committer takes it exclusively to recycle), so a reader never sees
//!    another object's new bytes under an old checksum.
//!
//! The free-space map is never persisted: `open` rebuilds it by scanning all
//! object records, and refuses to open if two records claim the same unit. A
//! transaction that fails (no space, or a damaged chunk it had to read) is
//! rolled back alone; the others of its group still commit. A failed
//! `fdatasync` or KV commit poisons the store: whether the group is durable is
//! unknown, so that `submit` and every later one fail (a failed io_uring does
//! the same, see below) (the reason is logged
//! once and reported by [`ObjectStore::poisoned`]) until a restart, which
//! recovers from the last commit.
//!
//! # I/O engines
//!
//! io_uring (the `io-uring` crate) on a dedicated thread, O_DIRECT, 4096-aligned
//! buffers, many SQEs per `submit_and_wait`; reads go through it too. If
//! io_uring cannot be set up (seccomp EPERM, ENOSYS, ...) and the engine is
//! `auto`, or `pread` is configured, a small pread/pwrite thread pool (still
//! O_DIRECT) is used instead; a fallback logs one warning. A failure of the
//! ring itself — a failed submit, a completion for an operation it was not
//! given, an interrupted or short transfer — is fatal: operations of that
//! round may still be running or queued in the ring, and their completions
//! would be taken for a later round's, acknowledging writes that never
//! happened. So the ring is never used again, the store is poisoned (every
//! later write and block-file read fails), and a reopen builds a new ring and
//! recovers from the last commit. Every read verifies
//! the blake3 of every chunk it touches and returns [`StoreError::Corrupt`] on
//! a mismatch.
//!
//! # Fault injection
//!
//! Named failpoints — `store::ring_submit`, `store::data_sync`,
//! `store::kv_commit` — let tests (and a daemon started with `FAILPOINTS`)
//! make the ring submit, the block-file sync or the metadata commit fail; see
//! [`failpoints`] for the names, the actions and how to arm them.
//!
//! # Memory
//!
//! fjall's block cache and memtables are sized from `cache_bytes` (default
//! 1 GiB). The submit queue is bounded (`submit_queue_depth`) and a group
//! commit stops taking transactions past `max_batch_bytes` of payload.

#![warn(missing_docs)]

mod block;
mod error;
pub mod failpoints;
mod mem;
mod types;

#[doc(hidden)]
pub use block::fuzzing;
pub use block::{
    BlockStore, ChunkLayout, FORMAT_VERSION, FsckReport, IoEngine, IoEngineKind, ObjectLayout,
    StoreConfig, StoreCounters,
};
pub use bytes::Bytes;
pub use error::StoreError;
pub use mem::MemStore;
pub use types::{
    MAX_OBJECT_NAME_LEN, MAX_OBJECT_SIZE, MAX_OMAP_KEY_LEN, MAX_XATTR_NAME_LEN, ObjectKey,
    ObjectStat, PgId, StoreOp, StoreUsage, Superblock, Transaction,
};

/// A transaction handed to the store with [`ObjectStore::queue`]: wait for
/// its commit with [`Pending::wait`] (blocking) or [`Pending::committed`]
/// (async, so a daemon's task needs no blocking thread per write in flight).
pub struct Pending(PendingInner);

enum PendingInner {
    Done(Result<(), StoreError>),
    Waiting(tokio::sync::oneshot::Receiver<Result<(), StoreError>>),
}

impl Pending {
    /// A transaction whose outcome is already known.
    pub fn done(r: Result<(), StoreError>) -> Self {
        Self(PendingInner::Done(r))
    }

    pub(crate) fn waiting(rx: tokio::sync::oneshot::Receiver<Result<(), StoreError>>) -> Self {
        Self(PendingInner::Waiting(rx))
    }

    /// Blocks until the transaction is durable (or failed).
    pub fn wait(self) -> Result<(), StoreError> {
        futures::executor::block_on(self.committed())
    }

    /// Resolves once the transaction is durable (or failed).
    pub async fn committed(self) -> Result<(), StoreError> {
        match self.0 {
            PendingInner::Done(r) => r,
            PendingInner::Waiting(rx) => rx.await.map_err(|_| StoreError::Closed)?,
        }
    }
}

/// A local object store with atomic, durable, ordered transactions.
pub trait ObjectStore: Send + Sync + 'static {
    /// Applies `txn` atomically and durably; returns once committed (survives
    /// kill -9 / power loss). Ops apply in order, later ops see earlier ones.
    /// Concurrent submits are applied in submission order, even on one object.
    fn submit(&self, txn: Transaction) -> Result<(), StoreError>;

    /// Hands `txn` to the store and returns without waiting for the commit:
    /// transactions queued one after another (by one caller) are applied in
    /// that order, so a PG can keep several ops in flight and still log them
    /// in version order. The default commits before returning.
    fn queue(&self, txn: Transaction) -> Pending {
        Pending::done(self.submit(txn))
    }

    /// Like [`queue`](Self::queue), but hands `txn` back instead of blocking
    /// when the store's submit queue is full, so an async caller can queue
    /// on its own thread and fall back to a blocking one only then. The
    /// default commits before returning, as `queue` does.
    fn try_queue(&self, txn: Transaction) -> Result<Pending, Transaction> {
        Ok(self.queue(txn))
    }

    /// Reads up to `len` bytes (all if `None`) from `offset`; short at EOF.
    /// `NotFound` if absent; `Corrupt` on a checksum mismatch (never wrong bytes).
    fn read(&self, key: &ObjectKey, offset: u64, len: Option<u64>) -> Result<Bytes, StoreError>;

    /// Size of the object, or `None` if absent.
    fn stat(&self, key: &ObjectKey) -> Result<Option<ObjectStat>, StoreError>;

    /// One xattr (`None` if the object has no such xattr; `NotFound` if no object).
    fn getxattr(&self, key: &ObjectKey, name: &str) -> Result<Option<Bytes>, StoreError>;

    /// All xattrs, sorted by name.
    fn getxattrs(&self, key: &ObjectKey) -> Result<Vec<(String, Bytes)>, StoreError>;

    /// Up to `max` omap entries whose key starts with `prefix` and is greater
    /// than `start_after`, sorted by key.
    fn omap_get(
        &self,
        key: &ObjectKey,
        start_after: Option<&[u8]>,
        prefix: &[u8],
        max: usize,
    ) -> Result<Vec<(Bytes, Bytes)>, StoreError>;

    /// The entries for the given omap keys that exist, sorted by key.
    fn omap_get_values(
        &self,
        key: &ObjectKey,
        keys: &[Bytes],
    ) -> Result<Vec<(Bytes, Bytes)>, StoreError>;

    /// Up to `max` object names of `pg` after `start_after`, sorted; excludes "".
    fn list_objects(
        &self,
        pg: PgId,
        start_after: Option<&str>,
        max: usize,
    ) -> Result<Vec<String>, StoreError>;

    /// PGs holding at least one object (the meta object counts).
    fn list_collections(&self) -> Result<Vec<PgId>, StoreError>;

    /// Total / used / available bytes and the object count.
    fn statfs(&self) -> Result<StoreUsage, StoreError>;

    /// Identity and format of the store.
    fn superblock(&self) -> &Superblock;

    /// Why the store stopped accepting writes, if it did: after an
    /// unrecoverable failure (a failed data sync or metadata commit, a broken
    /// io_uring) every later `submit` fails until the store is reopened, so
    /// the daemon should stop serving and get itself marked down.
    fn poisoned(&self) -> Option<String> {
        None
    }
}

impl<T: ObjectStore + ?Sized> ObjectStore for std::sync::Arc<T> {
    fn submit(&self, txn: Transaction) -> Result<(), StoreError> {
        (**self).submit(txn)
    }
    fn queue(&self, txn: Transaction) -> Pending {
        (**self).queue(txn)
    }
    fn read(&self, key: &ObjectKey, offset: u64, len: Option<u64>) -> Result<Bytes, StoreError> {
        (**self).read(key, offset, len)
    }
    fn stat(&self, key: &ObjectKey) -> Result<Option<ObjectStat>, StoreError> {
        (**self).stat(key)
    }
    fn getxattr(&self, key: &ObjectKey, name: &str) -> Result<Option<Bytes>, StoreError> {
        (**self).getxattr(key, name)
    }
    fn getxattrs(&self, key: &ObjectKey) -> Result<Vec<(String, Bytes)>, StoreError> {
        (**self).getxattrs(key)
    }
    fn omap_get(
        &self,
        key: &ObjectKey,
        start_after: Option<&[u8]>,
        prefix: &[u8],
        max: usize,
    ) -> Result<Vec<(Bytes, Bytes)>, StoreError> {
        (**self).omap_get(key, start_after, prefix, max)
    }
    fn omap_get_values(
        &self,
        key: &ObjectKey,
        keys: &[Bytes],
    ) -> Result<Vec<(Bytes, Bytes)>, StoreError> {
        (**self).omap_get_values(key, keys)
    }
    fn list_objects(
        &self,
        pg: PgId,
        start_after: Option<&str>,
        max: usize,
    ) -> Result<Vec<String>, StoreError> {
        (**self).list_objects(pg, start_after, max)
    }
    fn list_collections(&self) -> Result<Vec<PgId>, StoreError> {
        (**self).list_collections()
    }
    fn statfs(&self) -> Result<StoreUsage, StoreError> {
        (**self).statfs()
    }
    fn superblock(&self) -> &Superblock {
        (**self).superblock()
    }
    fn poisoned(&self) -> Option<String> {
        (**self).poisoned()
    }
}
