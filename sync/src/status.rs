//! What sync remembers, in the destination zone's log pool (so any gateway
//! or agent of the zone can resume it): the phase and per-shard markers of
//! metadata and data sync, one status per bucket shard per source, the sync
//! error log, the conflict log, and the leases that keep two workers off the
//! same shard.
//!
//! | object | omap keys |
//! |---|---|
//! | `sync.meta.status` | `global`, `shard.<n>` |
//! | `sync.data.<source id>.status` | `global`, `shard.<n>` |
//! | `sync.bucket.<source id>.status` | `<bucket id>.<shard>` |
//! | `sync.errors` | `<source id>.<time ns, 20 digits>.<rand>` |
//! | `sync.conflicts` | `<time ns, 20 digits>.<rand>` |
//! | `sync.leases` | `<worker name>` |

use crate::SyncError;
use crate::machine::{Phase, ShardStatus};
use bytes::Bytes;
use meridian_client::ClientError;
use meridian_client::ops::sub;
use meridian_zone::Zone;
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use std::collections::BTreeMap;

/// The overall phase of metadata or data sync from one source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct GlobalStatus {
    /// Init (positions not yet read), full, incremental.
    pub phase: Phase,
    /// Full sync: items (metadata records or bucket shards) done so far.
    pub full_done: u64,
    /// Full sync: items found so far.
    pub full_total: u64,
    /// Full sync: the last item completed (resume point).
    pub full_marker: String,
    /// Metadata sync: the id of the master zone the markers are positions
    /// of ("" in statuses written before it was recorded).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub source: String,
}

/// A change sync could not apply after its retries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct ErrorRecord {
    /// Source zone id ("" for metadata from the master).
    pub source_zone: String,
    /// `data` or `metadata`.
    pub kind: String,
    /// Bucket name (data).
    pub bucket: String,
    /// Bucket instance (data).
    pub bucket_id: String,
    /// Bucket index shard (data).
    pub shard: u32,
    /// Object key (data) or `section:name` (metadata).
    pub key: String,
    /// Version id (data).
    pub version_id: String,
    /// The last error.
    pub error: String,
    /// When first recorded, Unix ms.
    pub ts_ms: u64,
    /// Background retries so far.
    pub retries: u32,
    /// `write` or `delete` (data).
    pub op: String,
    /// The operation's time, ns (decides conflicts of a delete).
    pub op_ns: u64,
    /// The operation's zone trace.
    pub trace: Vec<String>,
}

/// A write that lost to another zone's newer write of the same key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct ConflictRecord {
    /// Bucket.
    pub bucket: String,
    /// Object key.
    pub key: String,
    /// The zone whose change lost.
    pub loser_zone: String,
    /// Its mtime, ns.
    pub loser_mtime_ns: u64,
    /// The zone whose change won.
    pub winner_zone: String,
    /// Its mtime, ns.
    pub winner_mtime_ns: u64,
    /// When it was resolved here, Unix ms.
    pub ts_ms: u64,
}

/// A worker's claim on a shard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
struct Lease {
    holder: String,
    until_ms: u64,
}

/// The metadata sync status object.
pub const META_STATUS: &str = "sync.meta.status";

/// The data sync status object of a source.
pub fn data_status(source_id: &str) -> String {
    format!("sync.data.{source_id}.status")
}

/// The bucket shard status object of a source.
pub fn bucket_status(source_id: &str) -> String {
    format!("sync.bucket.{source_id}.status")
}

const ERRORS: &str = "sync.errors";
const CONFLICTS: &str = "sync.conflicts";
const LEASES: &str = "sync.leases";
const GLOBAL: &str = "global";

fn shard_key(n: u32) -> String {
    format!("shard.{n:05}")
}

/// The key of a bucket shard's status.
pub fn bucket_shard_key(bucket_id: &str, shard: u32) -> String {
    format!("{bucket_id}.{shard:05}")
}

fn json<T: Serialize>(v: &T) -> Bytes {
    Bytes::from(serde_json::to_vec(v).expect("status records serialize"))
}

fn parse<T: DeserializeOwned>(what: &str, b: &[u8]) -> Result<T, SyncError> {
    serde_json::from_slice(b).map_err(|e| SyncError::Corrupt(format!("{what}: {e}")))
}

/// Reads and writes sync state in a zone's log pool.
#[derive(Clone)]
pub struct StatusStore {
    zone: Zone,
}

impl StatusStore {
    /// The store of `zone`.
    pub fn new(zone: Zone) -> Self {
        Self { zone }
    }

    fn pool(&self) -> String {
        self.zone.pools().log.clone()
    }

    async fn get(
        &self,
        object: &str,
        keys: Vec<String>,
    ) -> Result<BTreeMap<String, Bytes>, SyncError> {
        let r = self
            .zone
            .cluster()
            .op(
                &self.pool(),
                object,
                vec![sub::omap_get_values(
                    keys.into_iter().map(Bytes::from).collect(),
                )],
            )
            .await;
        match r {
            Ok(r) => Ok(r
                .results
                .into_iter()
                .next()
                .unwrap_or_default()
                .entries
                .into_iter()
                .map(|kv| (String::from_utf8_lossy(&kv.key).into_owned(), kv.value))
                .collect()),
            Err(ClientError::NotFound(_)) => Ok(BTreeMap::new()),
            Err(e) => Err(SyncError::Local(e.to_string())),
        }
    }

    async fn set(&self, object: &str, kvs: Vec<(String, Bytes)>) -> Result<(), SyncError> {
        self.zone
            .cluster()
            .op(
                &self.pool(),
                object,
                vec![sub::omap_set(
                    kvs.into_iter().map(|(k, v)| (Bytes::from(k), v)).collect(),
                )],
            )
            .await
            .map(|_| ())
            .map_err(|e| SyncError::Local(e.to_string()))
    }

    async fn all(&self, object: &str) -> Result<Vec<(String, Bytes)>, SyncError> {
        match self.zone.cluster().omap_get_all(&self.pool(), object).await {
            Ok(v) => Ok(v
                .into_iter()
                .map(|(k, v)| (String::from_utf8_lossy(&k).into_owned(), v))
                .collect()),
            Err(ClientError::NotFound(_)) => Ok(Vec::new()),
            Err(e) => Err(SyncError::Local(e.to_string())),
        }
    }

    async fn rm(&self, object: &str, keys: Vec<String>) -> Result<(), SyncError> {
        match self
            .zone
            .cluster()
            .op(
                &self.pool(),
                object,
                vec![sub::omap_rm(keys.into_iter().map(Bytes::from).collect())],
            )
            .await
        {
            Ok(_) | Err(ClientError::NotFound(_)) => Ok(()),
            Err(e) => Err(SyncError::Local(e.to_string())),
        }
    }

    /// The overall status in `object`.
    pub async fn global(&self, object: &str) -> Result<GlobalStatus, SyncError> {
        match self.get(object, vec![GLOBAL.into()]).await?.get(GLOBAL) {
            Some(v) => parse(object, v),
            None => Ok(GlobalStatus::default()),
        }
    }

    /// Stores the overall status.
    pub async fn set_global(&self, object: &str, g: &GlobalStatus) -> Result<(), SyncError> {
        self.set(object, vec![(GLOBAL.into(), json(g))]).await
    }

    /// Every shard status in `object`.
    pub async fn shards(&self, object: &str) -> Result<BTreeMap<u32, ShardStatus>, SyncError> {
        let mut out = BTreeMap::new();
        for (k, v) in self.all(object).await? {
            if let Some(n) = k.strip_prefix("shard.").and_then(|n| n.parse().ok()) {
                out.insert(n, parse(&k, &v)?);
            }
        }
        Ok(out)
    }

    /// Stores shard statuses (one op).
    pub async fn set_shards(
        &self,
        object: &str,
        shards: &BTreeMap<u32, ShardStatus>,
    ) -> Result<(), SyncError> {
        let kvs = shards
            .iter()
            .map(|(n, s)| (shard_key(*n), json(s)))
            .collect();
        self.set(object, kvs).await
    }

    /// Stores one shard's status.
    pub async fn set_shard(&self, object: &str, n: u32, s: &ShardStatus) -> Result<(), SyncError> {
        self.set(object, vec![(shard_key(n), json(s))]).await
    }

    /// Drops every status in `object` (`data sync init`).
    pub async fn reset(&self, object: &str) -> Result<(), SyncError> {
        match self.zone.cluster().remove(&self.pool(), object).await {
            Ok(_) | Err(ClientError::NotFound(_)) => Ok(()),
            Err(e) => Err(SyncError::Local(e.to_string())),
        }
    }

    /// A bucket shard's status for `source`.
    pub async fn bucket_shard(
        &self,
        source: &str,
        bucket_id: &str,
        shard: u32,
    ) -> Result<ShardStatus, SyncError> {
        let key = bucket_shard_key(bucket_id, shard);
        match self
            .get(&bucket_status(source), vec![key.clone()])
            .await?
            .get(&key)
        {
            Some(v) => parse(&key, v),
            None => Ok(ShardStatus::default()),
        }
    }

    /// A bucket shard's status for `source`, None when it was never synced.
    pub async fn bucket_shard_if_any(
        &self,
        source: &str,
        bucket_id: &str,
        shard: u32,
    ) -> Result<Option<ShardStatus>, SyncError> {
        let key = bucket_shard_key(bucket_id, shard);
        match self
            .get(&bucket_status(source), vec![key.clone()])
            .await?
            .get(&key)
        {
            Some(v) => parse(&key, v).map(Some),
            None => Ok(None),
        }
    }

    /// Stores a bucket shard's status.
    pub async fn set_bucket_shard(
        &self,
        source: &str,
        bucket_id: &str,
        shard: u32,
        s: &ShardStatus,
    ) -> Result<(), SyncError> {
        self.set(
            &bucket_status(source),
            vec![(bucket_shard_key(bucket_id, shard), json(s))],
        )
        .await
    }

    /// Every bucket shard status for `source`, by key `<bucket id>.<shard>`.
    pub async fn bucket_shards(
        &self,
        source: &str,
    ) -> Result<BTreeMap<String, ShardStatus>, SyncError> {
        self.all(&bucket_status(source))
            .await?
            .into_iter()
            .map(|(k, v)| Ok((k.clone(), parse(&k, &v)?)))
            .collect()
    }

    /// A page of the bucket shard statuses for `source` after key `after`
    /// (`<bucket id>.<shard>`), and whether more follow.
    pub async fn bucket_shards_page(
        &self,
        source: &str,
        after: &str,
        max: u32,
    ) -> Result<(Vec<(String, ShardStatus)>, bool), SyncError> {
        let r = self
            .zone
            .cluster()
            .op(
                &self.pool(),
                &bucket_status(source),
                vec![sub::omap_get_range(
                    Bytes::copy_from_slice(after.as_bytes()),
                    Bytes::new(),
                    max.clamp(1, 1000),
                )],
            )
            .await;
        let page = match r {
            Ok(r) => r.results.into_iter().next().unwrap_or_default(),
            Err(ClientError::NotFound(_)) => return Ok((Vec::new(), false)),
            Err(e) => return Err(SyncError::Local(e.to_string())),
        };
        let items = page
            .entries
            .iter()
            .map(|kv| {
                let k = String::from_utf8_lossy(&kv.key).into_owned();
                let st = parse(&k, &kv.value)?;
                Ok((k, st))
            })
            .collect::<Result<Vec<_>, SyncError>>()?;
        Ok((items, page.more))
    }

    /// Drops the statuses of one bucket's shards (`bucket sync init`).
    pub async fn reset_bucket(
        &self,
        source: &str,
        bucket_id: &str,
        shards: u32,
    ) -> Result<(), SyncError> {
        let keys = (0..shards)
            .map(|s| bucket_shard_key(bucket_id, s))
            .collect();
        self.rm(&bucket_status(source), keys).await
    }

    /// Appends to the sync error log; returns the entry's marker.
    pub async fn add_error(&self, e: &ErrorRecord) -> Result<String, SyncError> {
        let marker = format!(
            "{}.{:020}.{:08x}",
            if e.source_zone.is_empty() {
                "meta"
            } else {
                &e.source_zone
            },
            meridian_zone::now_ns(),
            rand::random::<u32>()
        );
        self.set(ERRORS, vec![(marker.clone(), json(e))]).await?;
        Ok(marker)
    }

    /// Replaces an error entry (its retry count, last error).
    pub async fn update_error(&self, marker: &str, e: &ErrorRecord) -> Result<(), SyncError> {
        self.set(ERRORS, vec![(marker.to_string(), json(e))]).await
    }

    /// The sync error log, oldest first.
    pub async fn errors(&self) -> Result<Vec<(String, ErrorRecord)>, SyncError> {
        self.all(ERRORS)
            .await?
            .into_iter()
            .map(|(k, v)| Ok((k.clone(), parse(&k, &v)?)))
            .collect()
    }

    /// Removes error log entries.
    pub async fn remove_errors(&self, markers: Vec<String>) -> Result<(), SyncError> {
        self.rm(ERRORS, markers).await
    }

    /// Records a resolved conflict.
    pub async fn add_conflict(&self, c: &ConflictRecord) -> Result<(), SyncError> {
        let marker = format!(
            "{:020}.{:08x}",
            meridian_zone::now_ns(),
            rand::random::<u32>()
        );
        self.set(CONFLICTS, vec![(marker, json(c))]).await
    }

    /// The conflict log, oldest first.
    pub async fn conflicts(&self) -> Result<Vec<ConflictRecord>, SyncError> {
        self.all(CONFLICTS)
            .await?
            .into_iter()
            .map(|(k, v)| parse(&k, &v))
            .collect()
    }

    /// Takes or renews the lease `name` for `holder` for `ttl_ms`; false
    /// when another live holder has it.
    pub async fn lease(&self, name: &str, holder: &str, ttl_ms: u64) -> Result<bool, SyncError> {
        let cur = self.get(LEASES, vec![name.to_string()]).await?.remove(name);
        let now = meridian_common::now_unix_ms();
        if let Some(raw) = &cur {
            let l: Lease = parse(name, raw)?;
            if l.holder != holder && l.until_ms > now {
                return Ok(false);
            }
        }
        let next = json(&Lease {
            holder: holder.to_string(),
            until_ms: now + ttl_ms,
        });
        let r = self
            .zone
            .cluster()
            .op(
                &self.pool(),
                LEASES,
                vec![
                    sub::omap_cmp(Bytes::from(name.to_string()), cur),
                    sub::omap_set(vec![(Bytes::from(name.to_string()), next)]),
                ],
            )
            .await;
        match r {
            Ok(_) => Ok(true),
            Err(ClientError::GuardFailed(_)) => Ok(false),
            Err(e) => Err(SyncError::Local(e.to_string())),
        }
    }

    /// Gives a lease up (a clean stop), if `holder` has it.
    pub async fn release(&self, name: &str, holder: &str) -> Result<(), SyncError> {
        let cur = self.get(LEASES, vec![name.to_string()]).await?.remove(name);
        if let Some(raw) = cur {
            let l: Lease = parse(name, &raw)?;
            if l.holder == holder {
                self.rm(LEASES, vec![name.to_string()]).await?;
            }
        }
        Ok(())
    }
}
