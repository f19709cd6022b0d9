//! In-memory engine for unit tests of other crates.

use crate::{
    ObjectKey, ObjectStat, ObjectStore, PgId, StoreError, StoreOp, StoreUsage, Superblock,
    Transaction,
};
use bytes::Bytes;
use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::{Arc, RwLock};

#[derive(Clone, Debug, Default)]
struct MemObject {
    data: Vec<u8>,
    xattrs: BTreeMap<String, Bytes>,
    omap: BTreeMap<Bytes, Bytes>,
}

type Collections = BTreeMap<PgId, BTreeMap<String, MemObject>>;

struct MemInner {
    collections: RwLock<Collections>,
    superblock: Superblock,
}

/// In-memory [`ObjectStore`]: same semantics as the block store, no durability.
///
/// Cheap to clone: clones share the same contents.
#[derive(Clone)]
pub struct MemStore {
    inner: Arc<MemInner>,
}

impl Default for MemStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemStore {
    /// An empty store with fsid `"memstore"` and osd id 0.
    pub fn new() -> Self {
        Self::with_identity("memstore", 0)
    }

    /// An empty store reporting the given identity in its superblock.
    pub fn with_identity(fsid: &str, osd_id: u32) -> Self {
        MemStore {
            inner: Arc::new(MemInner {
                collections: RwLock::new(BTreeMap::new()),
                superblock: Superblock {
                    fsid: fsid.to_string(),
                    osd_id,
                    engine: "memstore".to_string(),
                    format_version: crate::block::FORMAT_VERSION,
                    block_size_bytes: 0,
                },
            }),
        }
    }

    fn read_lock(&self) -> std::sync::RwLockReadGuard<'_, Collections> {
        // `apply_op` cannot panic on validated input, so a poisoned lock still
        // guards consistent contents.
        self.inner
            .collections
            .read()
            .unwrap_or_else(|e| e.into_inner())
    }

    fn with_object<T>(
        &self,
        key: &ObjectKey,
        f: impl FnOnce(&MemObject) -> T,
    ) -> Result<T, StoreError> {
        let cols = self.read_lock();
        cols.get(&key.pg)
            .and_then(|c| c.get(&key.name))
            .map(f)
            .ok_or_else(|| StoreError::NotFound { key: key.clone() })
    }
}

fn obj_mut<'a>(cols: &'a mut Collections, key: &ObjectKey) -> &'a mut MemObject {
    cols.entry(key.pg)
        .or_default()
        .entry(key.name.clone())
        .or_default()
}

fn obj_existing<'a>(cols: &'a mut Collections, key: &ObjectKey) -> Option<&'a mut MemObject> {
    cols.get_mut(&key.pg).and_then(|c| c.get_mut(&key.name))
}

fn apply_op(cols: &mut Collections, op: StoreOp) {
    match op {
        StoreOp::Touch { key } => {
            obj_mut(cols, &key);
        }
        StoreOp::Write { key, offset, data } => {
            let o = obj_mut(cols, &key);
            if !data.is_empty() {
                let off = offset as usize;
                let end = off + data.len();
                if o.data.len() < end {
                    o.data.resize(end, 0);
                }
                o.data[off..end].copy_from_slice(&data);
            }
        }
        StoreOp::WriteFull { key, data } => {
            obj_mut(cols, &key).data = data.to_vec();
        }
        StoreOp::Truncate { key, size } => {
            obj_mut(cols, &key).data.resize(size as usize, 0);
        }
        StoreOp::Remove { key } => {
            if let Some(c) = cols.get_mut(&key.pg) {
                c.remove(&key.name);
                if c.is_empty() {
                    cols.remove(&key.pg);
                }
            }
        }
        StoreOp::SetXattrs { key, attrs } => {
            let o = obj_mut(cols, &key);
            o.xattrs.extend(attrs);
        }
        StoreOp::RmXattr { key, name } => {
            if let Some(o) = obj_existing(cols, &key) {
                o.xattrs.remove(&name);
            }
        }
        StoreOp::OmapSet { key, entries } => {
            let o = obj_mut(cols, &key);
            o.omap.extend(entries);
        }
        StoreOp::OmapRm { key, keys } => {
            if let Some(o) = obj_existing(cols, &key) {
                for k in keys {
                    o.omap.remove(&k);
                }
            }
        }
        StoreOp::OmapRmRange { key, start, end } => {
            if let Some(o) = obj_existing(cols, &key) {
                if !end.is_empty() && start >= end {
                    return;
                }
                let upper = if end.is_empty() {
                    Bound::Unbounded
                } else {
                    Bound::Excluded(end)
                };
                let doomed: Vec<Bytes> = o
                    .omap
                    .range((Bound::Included(start), upper))
                    .map(|(k, _)| k.clone())
                    .collect();
                for k in doomed {
                    o.omap.remove(&k);
                }
            }
        }
        StoreOp::OmapClear { key } => {
            if let Some(o) = obj_existing(cols, &key) {
                o.omap.clear();
            }
        }
        StoreOp::RemoveCollection { pg } => {
            cols.remove(&pg);
        }
    }
}

impl ObjectStore for MemStore {
    fn submit(&self, txn: Transaction) -> Result<(), StoreError> {
        txn.validate()?;
        let mut cols = self
            .inner
            .collections
            .write()
            .unwrap_or_else(|e| e.into_inner());
        for op in txn.ops {
            apply_op(&mut cols, op);
        }
        Ok(())
    }

    fn read(&self, key: &ObjectKey, offset: u64, len: Option<u64>) -> Result<Bytes, StoreError> {
        self.with_object(key, |o| {
            let size = o.data.len() as u64;
            let start = offset.min(size);
            let end = match len {
                Some(l) => start.saturating_add(l).min(size),
                None => size,
            };
            Bytes::copy_from_slice(&o.data[start as usize..end as usize])
        })
    }

    fn stat(&self, key: &ObjectKey) -> Result<Option<ObjectStat>, StoreError> {
        match self.with_object(key, |o| ObjectStat {
            size: o.data.len() as u64,
        }) {
            Ok(s) => Ok(Some(s)),
            Err(StoreError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn getxattr(&self, key: &ObjectKey, name: &str) -> Result<Option<Bytes>, StoreError> {
        self.with_object(key, |o| o.xattrs.get(name).cloned())
    }

    fn getxattrs(&self, key: &ObjectKey) -> Result<Vec<(String, Bytes)>, StoreError> {
        self.with_object(key, |o| {
            o.xattrs
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
    }

    fn omap_get(
        &self,
        key: &ObjectKey,
        start_after: Option<&[u8]>,
        prefix: &[u8],
        max: usize,
    ) -> Result<Vec<(Bytes, Bytes)>, StoreError> {
        self.with_object(key, |o| {
            let lower = match start_after {
                Some(s) if s >= prefix => Bound::Excluded(Bytes::copy_from_slice(s)),
                _ => Bound::Included(Bytes::copy_from_slice(prefix)),
            };
            o.omap
                .range((lower, Bound::Unbounded))
                .take_while(|(k, _)| k.starts_with(prefix))
                .take(max)
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
    }

    fn omap_get_values(
        &self,
        key: &ObjectKey,
        keys: &[Bytes],
    ) -> Result<Vec<(Bytes, Bytes)>, StoreError> {
        self.with_object(key, |o| {
            let mut wanted: Vec<&Bytes> = keys.iter().collect();
            wanted.sort();
            wanted.dedup();
            wanted
                .into_iter()
                .filter_map(|k| o.omap.get(k).map(|v| (k.clone(), v.clone())))
                .collect()
        })
    }

    fn list_objects(
        &self,
        pg: PgId,
        start_after: Option<&str>,
        max: usize,
    ) -> Result<Vec<String>, StoreError> {
        let cols = self.read_lock();
        let Some(c) = cols.get(&pg) else {
            return Ok(Vec::new());
        };
        let lower = Bound::Excluded(start_after.unwrap_or("").to_string());
        Ok(c.range((lower, Bound::Unbounded))
            .take(max)
            .map(|(k, _)| k.clone())
            .collect())
    }

    fn list_collections(&self) -> Result<Vec<PgId>, StoreError> {
        Ok(self
            .read_lock()
            .iter()
            .filter(|(_, c)| !c.is_empty())
            .map(|(pg, _)| *pg)
            .collect())
    }

    fn statfs(&self) -> Result<StoreUsage, StoreError> {
        let cols = self.read_lock();
        let mut used = 0u64;
        let mut objects = 0u64;
        for o in cols.values().flat_map(|c| c.values()) {
            objects += 1;
            used += o.data.len() as u64;
        }
        Ok(StoreUsage {
            total_bytes: u64::MAX,
            used_bytes: used,
            available_bytes: u64::MAX - used,
            objects,
            kv_bytes: 0,
        })
    }

    fn superblock(&self) -> &Superblock {
        &self.inner.superblock
    }
}
