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

/// The zone-wide logs sync reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogKind {
    /// The metadata log (users, buckets).
    Metadata,
    /// The data log (bucket shards that changed).
    Data,
}

impl LogKind {
    fn bell(self) -> usize {
        match self {
            LogKind::Metadata => 0,
            LogKind::Data => 1,
        }
    }
}

/// One log entry with its marker.
#[derive(Debug, Clone)]
pub struct LogItem<T> {
    /// Position: pass it back to read what follows.
    pub marker: String,
    /// The entry.
    pub entry: T,
}

/// The marker of log position `seq` (20 digits, so markers sort as numbers).
pub fn marker_of(seq: u64) -> String {
    format!("{seq:020}")
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

    /// The position every entry of a log object written so far is at or
    /// below: the object's user version, as a marker ("" when it does not
    /// exist). Entries appended later sort after it.
    async fn log_position(&self, pool: &str, object: &str) -> Result<String> {
        match self
            .cluster()
            .op(
                pool,
                object,
                vec![sub::omap_get_range(
                    Bytes::new(),
                    Bytes::from_static(b"\xff"),
                    1,
                )],
            )
            .await
        {
            Ok(r) => Ok(marker_of(r.user_version)),
            Err(ClientError::NotFound(_)) => Ok(String::new()),
            Err(e) => Err(e.into()),
        }
    }

    /// Wakes peers waiting on this zone's `kind` log (an entry was appended).
    pub(crate) fn ring(&self, kind: LogKind, shard: u32) {
        self.inner.log_bells[kind.bell()].send_modify(|v| {
            if let Some(n) = v.get_mut(shard as usize) {
                *n = n.wrapping_add(1);
            }
        });
    }

    async fn position_of(&self, kind: LogKind, shard: u32) -> Result<String> {
        match kind {
            LogKind::Metadata => self.mdlog_position(shard).await,
            LogKind::Data => self.datalog_position(shard).await,
        }
    }

    /// Shards of a zone-wide log.
    pub fn log_shards(&self, kind: LogKind) -> u32 {
        match kind {
            LogKind::Metadata => self.params().mdlog_shards,
            LogKind::Data => self.params().datalog_shards,
        }
    }

    /// The position of every shard of `kind`.
    pub async fn log_positions(&self, kind: LogKind) -> Result<Vec<String>> {
        let reads = (0..self.log_shards(kind)).map(|s| self.position_of(kind, s));
        futures::future::join_all(reads).await.into_iter().collect()
    }

    /// The positions of `kind`'s shards once one differs from `known` (or
    /// at once when `known` does not fit), waiting at most `wait`: a peer's
    /// long poll, woken by appends of this process and re-read every
    /// `log_poll_interval` for appends made elsewhere.
    pub async fn wait_log_positions(
        &self,
        kind: LogKind,
        known: &[String],
        wait: std::time::Duration,
    ) -> Result<Vec<String>> {
        let deadline = tokio::time::Instant::now() + wait;
        let mut bell = self.inner.log_bells[kind.bell()].subscribe();
        let mut rung = bell.borrow_and_update().clone();
        let mut now = self.log_positions(kind).await?;
        loop {
            if known.len() != now.len() || known != now.as_slice() {
                return Ok(now);
            }
            let poll = tokio::time::Instant::now() + self.params().log_poll_interval;
            tokio::select! {
                changed = bell.changed() => {
                    if changed.is_err() {
                        return Ok(now);
                    }
                    // Only the shards this process appended to moved.
                    let next = bell.borrow_and_update().clone();
                    let moved: Vec<u32> = (0..next.len())
                        .filter(|&i| rung.get(i) != next.get(i))
                        .map(|i| i as u32)
                        .collect();
                    rung = next;
                    for s in moved {
                        if let Some(slot) = now.get_mut(s as usize) {
                            *slot = self.position_of(kind, s).await?;
                        }
                    }
                }
                _ = tokio::time::sleep_until(poll.min(deadline)) => {
                    if tokio::time::Instant::now() >= deadline {
                        return Ok(now);
                    }
                    // Appends made through other processes of the zone.
                    now = self.log_positions(kind).await?;
                }
            }
        }
    }

    /// Position of a data log shard (see [`Zone::bilog_position`]).
    pub async fn datalog_position(&self, shard: u32) -> Result<String> {
        self.log_position(&self.pools().log, &datalog_object(shard))
            .await
    }

    /// Position of a metadata log shard.
    pub async fn mdlog_position(&self, shard: u32) -> Result<String> {
        self.log_position(&self.pools().log, &mdlog_object(shard))
            .await
    }

    /// Position of a bucket index shard's log: sync that starts from it sees
    /// every change committed after the moment it was read.
    pub async fn bilog_position(&self, bucket: &BucketInfo, shard: u32) -> Result<String> {
        match self
            .log_position(&self.pools().index, &index::shard_object(&bucket.id, shard))
            .await?
        {
            p if p.is_empty() => Err(crate::ZoneError::NoSuchBucket(bucket.name.clone())),
            p => Ok(p),
        }
    }

    /// Every version in one bucket index shard after the raw index key
    /// `after` (full sync), with its key as the position.
    pub async fn list_shard_versions(
        &self,
        bucket: &BucketInfo,
        shard: u32,
        after: &[u8],
        max: u32,
    ) -> Result<(Vec<(Bytes, crate::IndexEntry)>, bool)> {
        let range = index::RangeReq {
            prefix: Bytes::from_static(index::VERSION_PREFIX),
            start_after: Bytes::copy_from_slice(after),
            max: max.clamp(1, 1000),
        };
        let snap = self
            .shard_read(bucket, shard, &[], std::slice::from_ref(&range))
            .await?;
        let (entries, more) = snap.ranges.into_iter().next().unwrap_or_default();
        let items = entries
            .into_iter()
            .map(|(k, v)| Ok((k, parse::<crate::IndexEntry>("index entry", &v)?)))
            .collect::<Result<Vec<_>>>()?;
        Ok((items, more))
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

    /// Removes the entries of a zone-wide log shard up to and including
    /// `through`; returns how many.
    pub async fn trim_zone_log(&self, kind: LogKind, shard: u32, through: &str) -> Result<u64> {
        let object = match kind {
            LogKind::Metadata => mdlog_object(shard),
            LogKind::Data => datalog_object(shard),
        };
        self.trim_log(&self.pools().log, &object, b"", through)
            .await
    }

    /// Removes the log entries of bucket instance `bucket_id`'s index shard
    /// up to and including `through`; returns how many.
    pub async fn trim_bilog_shard(
        &self,
        bucket_id: &str,
        shard: u32,
        through: &str,
    ) -> Result<u64> {
        self.trim_log(
            &self.pools().index,
            &index::shard_object(bucket_id, shard),
            BILOG_PREFIX,
            through,
        )
        .await
    }

    /// When (Unix ms) the first entry after `after` of a zone-wide log
    /// shard was logged; None when nothing follows it.
    pub async fn first_entry_after(
        &self,
        kind: LogKind,
        shard: u32,
        after: &str,
    ) -> Result<Option<u64>> {
        Ok(match kind {
            LogKind::Metadata => self
                .mdlog_list(shard, after, 1)
                .await?
                .0
                .first()
                .map(|i| i.entry.ts_ms),
            LogKind::Data => self
                .datalog_list(shard, after, 1)
                .await?
                .0
                .first()
                .map(|i| i.entry.ts_ms),
        })
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
