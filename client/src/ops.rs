//! Sub-op constructors and the common single-purpose calls built on `Cluster::op`.

use crate::{ClientError, Cluster};
use bytes::Bytes;
use meridian_proto::osd::sub_op::Op;
use meridian_proto::osd::*;

/// Builders for the sub-ops of a compound op.
pub mod sub {
    use super::*;

    /// Replace the object's data.
    pub fn write_full(data: Bytes) -> SubOp {
        SubOp {
            op: Some(Op::WriteFull(data)),
        }
    }
    /// Write `data` at `offset`.
    pub fn write(offset: u64, data: Bytes) -> SubOp {
        SubOp {
            op: Some(Op::Write(WriteAt { offset, data })),
        }
    }
    /// Append `data`.
    pub fn append(data: Bytes) -> SubOp {
        SubOp {
            op: Some(Op::Append(data)),
        }
    }
    /// Truncate (or extend with zeros) to `size`.
    pub fn truncate(size: u64) -> SubOp {
        SubOp {
            op: Some(Op::Truncate(size)),
        }
    }
    /// Remove the object.
    pub fn remove() -> SubOp {
        SubOp {
            op: Some(Op::Remove(Empty {})),
        }
    }
    /// Create the object (exclusive: fail if it exists).
    pub fn create(exclusive: bool) -> SubOp {
        SubOp {
            op: Some(Op::Create(exclusive)),
        }
    }
    /// Set one xattr.
    pub fn set_xattr(name: &str, value: Bytes) -> SubOp {
        SubOp {
            op: Some(Op::SetXattr(Xattr {
                name: name.into(),
                value,
            })),
        }
    }
    /// Set omap entries.
    pub fn omap_set(entries: Vec<(Bytes, Bytes)>) -> SubOp {
        SubOp {
            op: Some(Op::OmapSet(KvList {
                entries: entries
                    .into_iter()
                    .map(|(key, value)| KeyValue { key, value })
                    .collect(),
            })),
        }
    }
    /// Read `length` bytes at `offset` (0 = to the end).
    pub fn read(offset: u64, length: u64) -> SubOp {
        SubOp {
            op: Some(Op::Read(ReadAt { offset, length })),
        }
    }
    /// Remove omap keys.
    pub fn omap_rm(keys: Vec<Bytes>) -> SubOp {
        SubOp {
            op: Some(Op::OmapRm(KeyList { keys })),
        }
    }
    /// The values of the given omap keys (absent keys are left out).
    pub fn omap_get_values(keys: Vec<Bytes>) -> SubOp {
        SubOp {
            op: Some(Op::OmapGetValues(KeyList { keys })),
        }
    }
    /// Size and mtime.
    pub fn stat() -> SubOp {
        SubOp {
            op: Some(Op::Stat(Empty {})),
        }
    }
    /// All xattrs.
    pub fn get_xattrs() -> SubOp {
        SubOp {
            op: Some(Op::GetXattrs(Empty {})),
        }
    }
    /// One xattr.
    pub fn get_xattr(name: &str) -> SubOp {
        SubOp {
            op: Some(Op::GetXattr(name.into())),
        }
    }
    /// Up to `max` omap entries after `start_after` with `prefix`.
    pub fn omap_get_range(start_after: Bytes, prefix: Bytes, max: u32) -> SubOp {
        SubOp {
            op: Some(Op::OmapGetRange(OmapGetRange {
                start_after,
                prefix,
                max,
            })),
        }
    }
    /// Fail with GuardFailed unless the xattr compares as asked.
    pub fn cmp_xattr(name: &str, op: CmpOp, value: Bytes) -> SubOp {
        SubOp {
            op: Some(Op::CmpXattr(CmpXattr {
                name: name.into(),
                op: op as i32,
                value,
            })),
        }
    }
    /// Fail with GuardFailed unless the object's user version equals `v`.
    pub fn assert_version(v: u64) -> SubOp {
        SubOp {
            op: Some(Op::AssertVersion(v)),
        }
    }
    /// Set omap entries whose keys get the object's new user version appended
    /// (20 digits): ordered log entries without a read-modify-write.
    pub fn omap_set_seq(entries: Vec<(Bytes, Bytes)>) -> SubOp {
        SubOp {
            op: Some(Op::OmapSetSeq(KvList {
                entries: entries
                    .into_iter()
                    .map(|(key, value)| KeyValue { key, value })
                    .collect(),
            })),
        }
    }

    /// Guard: the omap key has exactly `value` (`None`: the key is absent).
    pub fn omap_cmp(key: Bytes, value: Option<Bytes>) -> SubOp {
        SubOp {
            op: Some(Op::OmapCmp(OmapCmp {
                key,
                absent: value.is_none(),
                value: value.unwrap_or_default(),
            })),
        }
    }

    /// Fail with NotFound unless the object exists.
    pub fn assert_exists() -> SubOp {
        SubOp {
            op: Some(Op::AssertExists(Empty {})),
        }
    }
}

/// An object's size and modification time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObjectStat {
    /// Size in bytes.
    pub size: u64,
    /// Last modification, Unix milliseconds.
    pub mtime_unix_ms: u64,
    /// User version (increments on each mutation).
    pub version: u64,
}

impl Cluster {
    /// Replaces an object's data (creating it).
    pub async fn write_full(
        &self,
        pool: &str,
        object: &str,
        data: Bytes,
    ) -> Result<u64, ClientError> {
        Ok(self
            .op(pool, object, vec![sub::write_full(data)])
            .await?
            .user_version)
    }

    /// Reads a whole object.
    pub async fn read(&self, pool: &str, object: &str) -> Result<Bytes, ClientError> {
        let r = self.op(pool, object, vec![sub::read(0, 0)]).await?;
        Ok(r.results
            .into_iter()
            .next()
            .map(|r| r.data)
            .unwrap_or_default())
    }

    /// Reads a byte range.
    pub async fn read_range(
        &self,
        pool: &str,
        object: &str,
        offset: u64,
        len: u64,
    ) -> Result<Bytes, ClientError> {
        let r = self.op(pool, object, vec![sub::read(offset, len)]).await?;
        Ok(r.results
            .into_iter()
            .next()
            .map(|r| r.data)
            .unwrap_or_default())
    }

    /// Size and mtime of an object.
    pub async fn stat(&self, pool: &str, object: &str) -> Result<ObjectStat, ClientError> {
        let r = self.op(pool, object, vec![sub::stat()]).await?;
        let s = r.results.first().cloned().unwrap_or_default();
        Ok(ObjectStat {
            size: s.size,
            mtime_unix_ms: s.mtime_unix_ms,
            version: r.user_version,
        })
    }

    /// Removes an object.
    pub async fn remove(&self, pool: &str, object: &str) -> Result<(), ClientError> {
        self.op(pool, object, vec![sub::remove()]).await.map(|_| ())
    }

    /// All xattrs of an object.
    pub async fn get_xattrs(
        &self,
        pool: &str,
        object: &str,
    ) -> Result<Vec<(String, Bytes)>, ClientError> {
        let r = self.op(pool, object, vec![sub::get_xattrs()]).await?;
        Ok(r.results
            .into_iter()
            .next()
            .map(|r| r.xattrs.into_iter().map(|x| (x.name, x.value)).collect())
            .unwrap_or_default())
    }

    /// Every omap entry of an object (paged internally).
    pub async fn omap_get_all(
        &self,
        pool: &str,
        object: &str,
    ) -> Result<Vec<(Bytes, Bytes)>, ClientError> {
        let mut out = Vec::new();
        let mut after = Bytes::new();
        loop {
            let r = self
                .op(
                    pool,
                    object,
                    vec![sub::omap_get_range(after.clone(), Bytes::new(), 1000)],
                )
                .await?;
            let res = r.results.into_iter().next().unwrap_or_default();
            let more = res.more;
            if let Some(l) = res.entries.last() {
                after = l.key.clone();
            }
            out.extend(res.entries.into_iter().map(|kv| (kv.key, kv.value)));
            if !more {
                return Ok(out);
            }
        }
    }
}
