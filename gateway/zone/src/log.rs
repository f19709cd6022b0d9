//! The zone's replication logs: the bucket index log lives in each index
//! shard (`l<seq>`); the data log (`datalog.<n>`) and metadata log
//! (`mdlog.<n>`) are omap objects in the log pool. Entry keys end in the log
//! object's user version (20 digits), so a marker is just the last key read.

use crate::index::{self, BILOG_PREFIX};
use crate::{BilogEntry, BucketInfo, DatalogEntry, MdlogEntry, Result, Zone, parse};
use bytes::Bytes;
use meridian_client::ClientError;
use meridian_client::ops::sub;

/// Data log shard object.
pub fn datalog_object(shard: u32) -> String {
    format!("datalog.{shard}")
}

/// Metadata log shard object.
pub fn mdlog_object(shard: u32) -> String {
    format!("mdlog.{shard}")
}

/// One log entry with its marker.
#[derive(Debug, Clone)]
pub struct LogItem<T> {
    /// Position: pass it back to read what follows.
    pub marker: String,
    /// The entry.
    pub entry: T,
}

impl Zone {
    async fn read_log<T: serde::de::DeserializeOwned>(
        &self,
        pool: &str,
        object: &str,
        prefix: &[u8],
        after: &str,
        max: u32,
    ) -> Result<(Vec<LogItem<T>>, bool)> {
        let start = if after.is_empty() {
            Bytes::new()
        } else {
            let mut k = prefix.to_vec();
            k.extend_from_slice(after.as_bytes());
            Bytes::from(k)
        };
        let r = match self
            .cluster()
            .op(
                pool,
                object,
                vec![sub::omap_get_range(
                    start,
                    Bytes::copy_from_slice(prefix),
                    max.clamp(1, 1000),
                )],
            )
            .await
        {
            Ok(r) => r.results.into_iter().next().unwrap_or_default(),
            Err(ClientError::NotFound(_)) => return Ok((Vec::new(), false)),
            Err(e) => return Err(e.into()),
        };
        let items = r
            .entries
            .iter()
            .map(|kv| {
                Ok(LogItem {
                    marker: String::from_utf8_lossy(&kv.key[prefix.len()..]).into_owned(),
                    entry: parse(object, &kv.value)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok((items, r.more))
    }

    /// Bucket index log entries of one shard after `after`.
    pub async fn bilog_list(
        &self,
        bucket: &BucketInfo,
        shard: u32,
        after: &str,
        max: u32,
    ) -> Result<(Vec<LogItem<BilogEntry>>, bool)> {
        self.read_log(
            &self.pools().index,
            &index::shard_object(&bucket.id, shard),
            BILOG_PREFIX,
            after,
            max,
        )
        .await
    }

    /// Data log entries of one shard after `after`.
    pub async fn datalog_list(
        &self,
        shard: u32,
        after: &str,
        max: u32,
    ) -> Result<(Vec<LogItem<DatalogEntry>>, bool)> {
        self.read_log(&self.pools().log, &datalog_object(shard), b"", after, max)
            .await
    }

    /// Metadata log entries of one shard after `after`.
    pub async fn mdlog_list(
        &self,
        shard: u32,
        after: &str,
        max: u32,
    ) -> Result<(Vec<LogItem<MdlogEntry>>, bool)> {
        self.read_log(&self.pools().log, &mdlog_object(shard), b"", after, max)
            .await
    }

    /// Removes log entries up to and including `through` (a marker), in pages.
    pub(crate) async fn trim_log(
        &self,
        pool: &str,
        object: &str,
        prefix: &[u8],
        through: &str,
    ) -> Result<u64> {
        let mut trimmed = 0;
        loop {
            let r = match self
                .cluster()
                .op(
                    pool,
                    object,
                    vec![sub::omap_get_range(
                        Bytes::new(),
                        Bytes::copy_from_slice(prefix),
                        1000,
                    )],
                )
                .await
            {
                Ok(r) => r.results.into_iter().next().unwrap_or_default(),
                Err(ClientError::NotFound(_)) => return Ok(trimmed),
                Err(e) => return Err(e.into()),
            };
            let keys: Vec<Bytes> = r
                .entries
                .into_iter()
                .map(|kv| kv.key)
                .filter(|k| k[prefix.len()..] <= *through.as_bytes())
                .collect();
            if keys.is_empty() {
                return Ok(trimmed);
            }
            let n = keys.len() as u64;
            self.cluster()
                .op(pool, object, vec![sub::omap_rm(keys)])
                .await?;
            trimmed += n;
            if !r.more {
                return Ok(trimmed);
            }
        }
    }

    /// Trims a zone without peers: every entry of the data and metadata logs
    /// (no zone will ever read them). With peers, sync markers decide (multi-site).
    pub async fn trim_unshared_logs(&self) -> Result<u64> {
        let mut n = 0;
        let through = "9".repeat(20);
        for s in 0..self.params().datalog_shards {
            n += self
                .trim_log(&self.pools().log, &datalog_object(s), b"", &through)
                .await?;
        }
        for s in 0..self.params().mdlog_shards {
            n += self
                .trim_log(&self.pools().log, &mdlog_object(s), b"", &through)
                .await?;
        }
        Ok(n)
    }

    /// Trims a bucket shard's index log entirely (a zone without peers).
    pub(crate) async fn trim_bilog(&self, bucket: &BucketInfo, shard: u32) -> Result<u64> {
        self.trim_log(
            &self.pools().index,
            &index::shard_object(&bucket.id, shard),
            BILOG_PREFIX,
            &"9".repeat(20),
        )
        .await
    }
}
