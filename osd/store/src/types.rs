//! Public value types: keys, operations, transactions, stats.

use crate::StoreError;
use bytes::Bytes;
use std::fmt;

/// Longest object name accepted, in bytes (Ceph's `osd_max_object_name_len`).
pub const MAX_OBJECT_NAME_LEN: usize = 2048;
/// Longest xattr name accepted, in bytes.
pub const MAX_XATTR_NAME_LEN: usize = 1024;
/// Longest omap key accepted, in bytes.
pub const MAX_OMAP_KEY_LEN: usize = 32 * 1024;
/// Largest logical object size accepted (offset + length of any write or truncate).
pub const MAX_OBJECT_SIZE: u64 = 4 << 30;

/// Placement group id (a collection in the store).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PgId {
    /// Pool id.
    pub pool: u64,
    /// PG seed inside the pool.
    pub seed: u32,
}

impl PgId {
    /// Builds a PG id.
    pub const fn new(pool: u64, seed: u32) -> Self {
        PgId { pool, seed }
    }
}

impl fmt::Display for PgId {
    /// Ceph style: `<pool>.<seed in hex>`, e.g. `1.2a`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:x}", self.pool, self.seed)
    }
}

/// Object key inside a PG.
///
/// The empty name `""` is reserved for the PG's meta object (PG log/info live in
/// its omap) and is never returned by `list_objects`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey {
    /// The PG (collection) holding the object.
    pub pg: PgId,
    /// Object name; `""` is the PG meta object.
    pub name: String,
}

impl ObjectKey {
    /// Builds a key.
    pub fn new(pg: PgId, name: impl Into<String>) -> Self {
        ObjectKey {
            pg,
            name: name.into(),
        }
    }

    /// The PG's meta object (empty name).
    pub fn meta(pg: PgId) -> Self {
        ObjectKey {
            pg,
            name: String::new(),
        }
    }

    /// True for the PG meta object.
    pub fn is_meta(&self) -> bool {
        self.name.is_empty()
    }
}

impl fmt::Display for ObjectKey {
    /// `<pg>/<name>`, with `<meta>` for the PG meta object.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.name.is_empty() {
            write!(f, "{}/<meta>", self.pg)
        } else {
            write!(f, "{}/{}", self.pg, self.name)
        }
    }
}

/// One mutation inside a [`Transaction`].
///
/// Ops that add data or metadata (`Touch`, `Write`, `WriteFull`, `Truncate`,
/// `SetXattrs`, `OmapSet`) create the object if it is absent, as Ceph's object
/// store does; removal ops on an absent object are no-ops. So a transaction can
/// only fail for resource reasons (no space, I/O, damaged data it had to read),
/// and then none of it is applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreOp {
    /// Creates an empty object if absent.
    Touch {
        /// Target object.
        key: ObjectKey,
    },
    /// Writes `data` at `offset`: creates, extends size, overwrites the range.
    /// A zero-length write only creates the object.
    Write {
        /// Target object.
        key: ObjectKey,
        /// Logical byte offset.
        offset: u64,
        /// Bytes to write.
        data: Bytes,
    },
    /// Replaces all data (size becomes `data.len()`); xattrs and omap stay.
    WriteFull {
        /// Target object.
        key: ObjectKey,
        /// New content.
        data: Bytes,
    },
    /// Shrinks, or extends with zeros, to `size`.
    Truncate {
        /// Target object.
        key: ObjectKey,
        /// New size in bytes.
        size: u64,
    },
    /// Removes data, xattrs and omap; no error if absent.
    Remove {
        /// Target object.
        key: ObjectKey,
    },
    /// Sets (adds or replaces) xattrs.
    SetXattrs {
        /// Target object.
        key: ObjectKey,
        /// `(name, value)` pairs.
        attrs: Vec<(String, Bytes)>,
    },
    /// Removes one xattr (no error if absent).
    RmXattr {
        /// Target object.
        key: ObjectKey,
        /// Xattr name.
        name: String,
    },
    /// Sets (adds or replaces) omap entries.
    OmapSet {
        /// Target object.
        key: ObjectKey,
        /// `(key, value)` pairs.
        entries: Vec<(Bytes, Bytes)>,
    },
    /// Removes omap entries (missing ones are ignored).
    OmapRm {
        /// Target object.
        key: ObjectKey,
        /// Omap keys to remove.
        keys: Vec<Bytes>,
    },
    /// Removes omap keys in `[start, end)`; an empty `end` means to the end.
    OmapRmRange {
        /// Target object.
        key: ObjectKey,
        /// First key removed (inclusive).
        start: Bytes,
        /// First key kept (exclusive); empty = no upper bound.
        end: Bytes,
    },
    /// Removes every omap entry of the object.
    OmapClear {
        /// Target object.
        key: ObjectKey,
    },
    /// Removes every object of the PG, including its meta object.
    RemoveCollection {
        /// The PG to empty.
        pg: PgId,
    },
}

impl StoreOp {
    /// The object this op targets (`None` for `RemoveCollection`).
    pub fn key(&self) -> Option<&ObjectKey> {
        match self {
            StoreOp::Touch { key }
            | StoreOp::Write { key, .. }
            | StoreOp::WriteFull { key, .. }
            | StoreOp::Truncate { key, .. }
            | StoreOp::Remove { key }
            | StoreOp::SetXattrs { key, .. }
            | StoreOp::RmXattr { key, .. }
            | StoreOp::OmapSet { key, .. }
            | StoreOp::OmapRm { key, .. }
            | StoreOp::OmapRmRange { key, .. }
            | StoreOp::OmapClear { key } => Some(key),
            StoreOp::RemoveCollection { .. } => None,
        }
    }

    /// Bytes of payload the op carries (data, names, values), for batching limits.
    pub fn payload_bytes(&self) -> u64 {
        let n = match self {
            StoreOp::Write { data, .. } | StoreOp::WriteFull { data, .. } => data.len(),
            StoreOp::SetXattrs { attrs, .. } => attrs.iter().map(|(k, v)| k.len() + v.len()).sum(),
            StoreOp::OmapSet { entries, .. } => {
                entries.iter().map(|(k, v)| k.len() + v.len()).sum()
            }
            StoreOp::OmapRm { keys, .. } => keys.iter().map(Bytes::len).sum(),
            _ => 0,
        };
        n as u64
    }

    /// Checks names, key lengths and offsets against the store's limits.
    pub fn validate(&self) -> Result<(), StoreError> {
        if let Some(key) = self.key() {
            check_len("object name", key.name.len(), MAX_OBJECT_NAME_LEN)?;
        }
        let end = |offset: u64, len: u64| -> Result<(), StoreError> {
            match offset.checked_add(len) {
                Some(e) if e <= MAX_OBJECT_SIZE => Ok(()),
                _ => Err(StoreError::InvalidArgument(format!(
                    "offset {offset} + length {len} exceeds the maximum object size \
                     {MAX_OBJECT_SIZE}"
                ))),
            }
        };
        match self {
            StoreOp::Write { offset, data, .. } => end(*offset, data.len() as u64),
            StoreOp::WriteFull { data, .. } => end(0, data.len() as u64),
            StoreOp::Truncate { size, .. } => end(*size, 0),
            StoreOp::SetXattrs { attrs, .. } => attrs
                .iter()
                .try_for_each(|(n, _)| check_len("xattr name", n.len(), MAX_XATTR_NAME_LEN)),
            StoreOp::RmXattr { name, .. } => {
                check_len("xattr name", name.len(), MAX_XATTR_NAME_LEN)
            }
            StoreOp::OmapSet { entries, .. } => entries
                .iter()
                .try_for_each(|(k, _)| check_len("omap key", k.len(), MAX_OMAP_KEY_LEN)),
            StoreOp::OmapRm { keys, .. } => keys
                .iter()
                .try_for_each(|k| check_len("omap key", k.len(), MAX_OMAP_KEY_LEN)),
            StoreOp::OmapRmRange { start, end, .. } => {
                check_len("omap key", start.len(), MAX_OMAP_KEY_LEN)?;
                check_len("omap key", end.len(), MAX_OMAP_KEY_LEN)
            }
            _ => Ok(()),
        }
    }
}

fn check_len(what: &str, len: usize, max: usize) -> Result<(), StoreError> {
    if len > max {
        Err(StoreError::InvalidArgument(format!(
            "{what} is {len} bytes long, the limit is {max}"
        )))
    } else {
        Ok(())
    }
}

/// An ordered list of ops applied atomically: later ops see earlier ones.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Transaction {
    /// The ops, applied in order.
    pub ops: Vec<StoreOp>,
}

impl Transaction {
    /// An empty transaction.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends an op.
    pub fn push(&mut self, op: StoreOp) -> &mut Self {
        self.ops.push(op);
        self
    }

    /// Number of ops.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// True if there are no ops.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Total payload bytes carried by the ops.
    pub fn payload_bytes(&self) -> u64 {
        self.ops.iter().map(StoreOp::payload_bytes).sum()
    }

    /// Validates every op (see [`StoreOp::validate`]).
    pub fn validate(&self) -> Result<(), StoreError> {
        self.ops.iter().try_for_each(StoreOp::validate)
    }

    /// Adds [`StoreOp::Touch`].
    pub fn touch(mut self, key: &ObjectKey) -> Self {
        self.ops.push(StoreOp::Touch { key: key.clone() });
        self
    }

    /// Adds [`StoreOp::Write`].
    pub fn write(mut self, key: &ObjectKey, offset: u64, data: impl Into<Bytes>) -> Self {
        self.ops.push(StoreOp::Write {
            key: key.clone(),
            offset,
            data: data.into(),
        });
        self
    }

    /// Adds [`StoreOp::WriteFull`].
    pub fn write_full(mut self, key: &ObjectKey, data: impl Into<Bytes>) -> Self {
        self.ops.push(StoreOp::WriteFull {
            key: key.clone(),
            data: data.into(),
        });
        self
    }

    /// Adds [`StoreOp::Truncate`].
    pub fn truncate(mut self, key: &ObjectKey, size: u64) -> Self {
        self.ops.push(StoreOp::Truncate {
            key: key.clone(),
            size,
        });
        self
    }

    /// Adds [`StoreOp::Remove`].
    pub fn remove(mut self, key: &ObjectKey) -> Self {
        self.ops.push(StoreOp::Remove { key: key.clone() });
        self
    }

    /// Adds [`StoreOp::SetXattrs`] with one attribute.
    pub fn set_xattr(mut self, key: &ObjectKey, name: &str, value: impl Into<Bytes>) -> Self {
        self.ops.push(StoreOp::SetXattrs {
            key: key.clone(),
            attrs: vec![(name.to_string(), value.into())],
        });
        self
    }

    /// Adds [`StoreOp::SetXattrs`].
    pub fn set_xattrs(mut self, key: &ObjectKey, attrs: Vec<(String, Bytes)>) -> Self {
        self.ops.push(StoreOp::SetXattrs {
            key: key.clone(),
            attrs,
        });
        self
    }

    /// Adds [`StoreOp::RmXattr`].
    pub fn rm_xattr(mut self, key: &ObjectKey, name: &str) -> Self {
        self.ops.push(StoreOp::RmXattr {
            key: key.clone(),
            name: name.to_string(),
        });
        self
    }

    /// Adds [`StoreOp::OmapSet`].
    pub fn omap_set(mut self, key: &ObjectKey, entries: Vec<(Bytes, Bytes)>) -> Self {
        self.ops.push(StoreOp::OmapSet {
            key: key.clone(),
            entries,
        });
        self
    }

    /// Adds [`StoreOp::OmapRm`].
    pub fn omap_rm(mut self, key: &ObjectKey, keys: Vec<Bytes>) -> Self {
        self.ops.push(StoreOp::OmapRm {
            key: key.clone(),
            keys,
        });
        self
    }

    /// Adds [`StoreOp::OmapRmRange`] (`end` empty = to the end).
    pub fn omap_rm_range(
        mut self,
        key: &ObjectKey,
        start: impl Into<Bytes>,
        end: impl Into<Bytes>,
    ) -> Self {
        self.ops.push(StoreOp::OmapRmRange {
            key: key.clone(),
            start: start.into(),
            end: end.into(),
        });
        self
    }

    /// Adds [`StoreOp::OmapClear`].
    pub fn omap_clear(mut self, key: &ObjectKey) -> Self {
        self.ops.push(StoreOp::OmapClear { key: key.clone() });
        self
    }

    /// Adds [`StoreOp::RemoveCollection`].
    pub fn remove_collection(mut self, pg: PgId) -> Self {
        self.ops.push(StoreOp::RemoveCollection { pg });
        self
    }
}

/// Result of `stat`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ObjectStat {
    /// Logical size in bytes.
    pub size: u64,
}

/// Space and object counts of a store (`statfs`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoreUsage {
    /// Capacity of the data device in bytes.
    pub total_bytes: u64,
    /// Bytes allocated to objects (and reserved headers) on the data device.
    pub used_bytes: u64,
    /// Bytes free for new data.
    pub available_bytes: u64,
    /// Number of objects, PG meta objects included.
    pub objects: u64,
    /// Disk space used by the metadata KV (0 for the memory store).
    pub kv_bytes: u64,
}

/// Identity and format of a store, fixed at mkfs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Superblock {
    /// Cluster fsid the store belongs to.
    pub fsid: String,
    /// OSD id the store belongs to.
    pub osd_id: u32,
    /// Engine kind: `"blockstore"` or `"memstore"`.
    pub engine: String,
    /// On-disk format version.
    pub format_version: u32,
    /// Size of the data device in bytes (0 for the memory store).
    pub block_size_bytes: u64,
}
