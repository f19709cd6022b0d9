//! Whole-object state as recovery, repair and scrub move it between OSDs, and
//! the object's own metadata record (the `_m` xattr: version, user version,
//! mtime). User xattrs are stored under `u.` so they never collide with ours.

use crate::error::OsdError;
use crate::pglog::{Ev, ev, ver};
use bytes::Bytes;
use meridian_objectstore::{ObjectKey, ObjectStore, Transaction};
use meridian_proto::osd::{KeyValue, ObjectState, Xattr};
use prost::Message as _;

/// Name of the internal metadata xattr.
pub const META_XATTR: &str = "_m";
/// Prefix of user xattrs in the store.
pub const USER_XATTR_PREFIX: &str = "u.";

/// The object's metadata record.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ObjectMeta {
    /// PG version of the last mutation.
    #[prost(message, optional, tag = "1")]
    pub version: Option<meridian_proto::osd::Version>,
    /// User-visible version (increments on each mutation).
    #[prost(uint64, tag = "2")]
    pub user_version: u64,
    /// Last modification time, Unix milliseconds.
    #[prost(uint64, tag = "3")]
    pub mtime_unix_ms: u64,
}

impl ObjectMeta {
    /// The PG version of the last mutation.
    pub fn ev(&self) -> Ev {
        ev(&self.version)
    }
}

/// Reads the metadata record; `None` if the object does not exist.
pub fn load_meta(store: &dyn ObjectStore, key: &ObjectKey) -> Result<Option<ObjectMeta>, OsdError> {
    match store.stat(key)? {
        None => Ok(None),
        Some(_) => match store.getxattr(key, META_XATTR)? {
            Some(b) => {
                Ok(Some(ObjectMeta::decode(b.as_ref()).map_err(|e| {
                    OsdError::Decode(format!("{key}: object meta: {e}"))
                })?))
            }
            None => Ok(Some(ObjectMeta::default())),
        },
    }
}

/// Encodes the metadata record as the xattr value.
pub fn meta_value(m: &ObjectMeta) -> Bytes {
    Bytes::from(m.encode_to_vec())
}

/// Reads an object completely (data, every xattr, every omap entry).
pub fn read_state(store: &dyn ObjectStore, key: &ObjectKey) -> Result<ObjectState, OsdError> {
    let Some(_) = store.stat(key)? else {
        return Ok(ObjectState {
            name: key.name.clone(),
            exists: false,
            ..Default::default()
        });
    };
    let data = store.read(key, 0, None)?;
    let xattrs = store.getxattrs(key)?;
    let mut omap = Vec::new();
    let mut after: Option<Bytes> = None;
    loop {
        let page = store.omap_get(key, after.as_deref(), b"", 4096)?;
        let n = page.len();
        for (k, v) in page {
            after = Some(k.clone());
            omap.push(KeyValue { key: k, value: v });
        }
        if n < 4096 {
            break;
        }
    }
    let version = xattrs
        .iter()
        .find(|(n, _)| n == META_XATTR)
        .and_then(|(_, v)| ObjectMeta::decode(v.as_ref()).ok())
        .map(|m| m.ev())
        .unwrap_or((0, 0));
    Ok(ObjectState {
        name: key.name.clone(),
        exists: true,
        data,
        xattrs: xattrs
            .into_iter()
            .map(|(name, value)| Xattr { name, value })
            .collect(),
        omap,
        version: ver(version),
    })
}

/// Adds "make the object exactly `s`" to a transaction.
pub fn write_state(txn: Transaction, key: &ObjectKey, s: &ObjectState) -> Transaction {
    let mut txn = txn.remove(key);
    if !s.exists {
        return txn;
    }
    txn = txn.write_full(key, s.data.clone());
    if !s.xattrs.is_empty() {
        txn = txn.set_xattrs(
            key,
            s.xattrs
                .iter()
                .map(|x| (x.name.clone(), x.value.clone()))
                .collect(),
        );
    }
    if !s.omap.is_empty() {
        txn = txn.omap_set(
            key,
            s.omap
                .iter()
                .map(|kv| (kv.key.clone(), kv.value.clone()))
                .collect(),
        );
    }
    txn
}

/// A digest of an object's data (blake3) and of its xattrs + omap, for scrub.
pub fn digests(s: &ObjectState) -> (Bytes, Bytes) {
    let data = blake3::hash(&s.data);
    let mut h = blake3::Hasher::new();
    let mut xs: Vec<&Xattr> = s.xattrs.iter().collect();
    xs.sort_by(|a, b| a.name.cmp(&b.name));
    for x in xs {
        h.update(&(x.name.len() as u64).to_le_bytes());
        h.update(x.name.as_bytes());
        h.update(&(x.value.len() as u64).to_le_bytes());
        h.update(&x.value);
    }
    for kv in &s.omap {
        h.update(&(kv.key.len() as u64).to_le_bytes());
        h.update(&kv.key);
        h.update(&(kv.value.len() as u64).to_le_bytes());
        h.update(&kv.value);
    }
    (
        Bytes::copy_from_slice(data.as_bytes()),
        Bytes::copy_from_slice(h.finalize().as_bytes()),
    )
}
