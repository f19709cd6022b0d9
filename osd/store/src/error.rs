//! Typed errors of the object store.

use crate::ObjectKey;
use std::path::PathBuf;

/// Everything that can go wrong in an [`ObjectStore`](crate::ObjectStore) call.
///
/// Each message says what happened and, where there is one, what the operator
/// should do about it.
#[derive(thiserror::Error, Debug)]
pub enum StoreError {
    /// The object does not exist.
    #[error("object {key} does not exist")]
    NotFound {
        /// The object that was asked for.
        key: ObjectKey,
    },

    /// Stored data failed its blake3 checksum; the bytes are never returned.
    #[error(
        "object {key}: checksum mismatch in the chunk at logical offset {offset}; the local copy \
         is damaged: repair it from another replica (deep scrub / recovery) and check the disk"
    )]
    Corrupt {
        /// The damaged object.
        key: ObjectKey,
        /// Logical offset of the damaged chunk inside the object.
        offset: u64,
    },

    /// The block file has no room for the data of a transaction.
    #[error(
        "no space left in the block file: {needed} bytes needed, {available} bytes free; \
         remove data, mark the OSD out or grow the device"
    )]
    NoSpace {
        /// Bytes the transaction needed to allocate (at the failing step).
        needed: u64,
        /// Bytes free in the allocator at that time.
        available: u64,
    },

    /// The data directory belongs to another cluster (different fsid).
    #[error(
        "the store belongs to cluster fsid {found}, but this OSD is configured for fsid \
         {expected}; refusing to open it (nothing was changed): point the OSD at its own data \
         directory or run mkfs on an empty one"
    )]
    FsidMismatch {
        /// The fsid from the configuration.
        expected: String,
        /// The fsid recorded in the store.
        found: String,
    },

    /// The data directory belongs to another OSD of the same cluster.
    #[error(
        "the store belongs to osd.{found}, but this daemon is configured as osd.{expected}; \
         refusing to open it (nothing was changed): check the OSD id and data directory"
    )]
    OsdIdMismatch {
        /// The OSD id from the configuration.
        expected: u32,
        /// The OSD id recorded in the store.
        found: u32,
    },

    /// `open` was called on a directory that holds no store.
    #[error("{dir} holds no object store (no superblock): run mkfs first")]
    NotFormatted {
        /// The data directory.
        dir: PathBuf,
    },

    /// `mkfs` was called on a directory that already holds a store.
    #[error(
        "{dir} already holds an object store (fsid {fsid}); refusing to overwrite it: remove \
         the directory first if you really mean to destroy that data"
    )]
    AlreadyFormatted {
        /// The data directory.
        dir: PathBuf,
        /// The fsid of the store found there.
        fsid: String,
    },

    /// Another process (or another handle in this process) has the store open.
    #[error("{dir} is in use by another process or handle; stop it first")]
    Locked {
        /// The data directory.
        dir: PathBuf,
    },

    /// A persisted structure could not be decoded.
    #[error("damaged metadata ({what}): {reason}; run fsck and repair the OSD from its peers")]
    BadRecord {
        /// Which structure (e.g. "object record of 1.2a/foo").
        what: String,
        /// What is wrong with it.
        reason: String,
    },

    /// A persisted structure carries a format version this build does not know.
    #[error(
        "{what} has format version {found}, this build supports up to {supported}; upgrade \
         the meridian binary"
    )]
    UnsupportedVersion {
        /// Which structure.
        what: String,
        /// Version found on disk.
        found: u32,
        /// Newest version this build understands.
        supported: u32,
    },

    /// The request is malformed (name too long, offset overflow, bad config ...).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),

    /// An earlier unrecoverable I/O error stopped the store; writes are refused.
    #[error(
        "the store stopped accepting writes after an earlier I/O failure ({0}); restart the \
         OSD (it recovers from the last commit) and check the disk"
    )]
    Poisoned(String),

    /// The store has been shut down.
    #[error("the object store is shut down")]
    Closed,

    /// An I/O error on the block file or data directory.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, in the present tense ("read block file").
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// An error from the embedded KV (fjall).
    #[error("metadata KV ({context}): {source}")]
    Kv {
        /// What was being done.
        context: String,
        /// The underlying fjall error.
        #[source]
        source: fjall::Error,
    },
}

impl StoreError {
    /// Wraps an I/O error with what was being done.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        StoreError::Io {
            context: context.into(),
            source,
        }
    }

    /// Wraps a fjall error with what was being done.
    pub fn kv(context: impl Into<String>, source: fjall::Error) -> Self {
        StoreError::Kv {
            context: context.into(),
            source,
        }
    }

    /// True for [`StoreError::NotFound`].
    pub fn is_not_found(&self) -> bool {
        matches!(self, StoreError::NotFound { .. })
    }
}
