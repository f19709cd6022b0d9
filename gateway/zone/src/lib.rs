//! A zone's S3 state, stored in the zone's cluster pools (Ceph RGW's layout):
//! users and access keys, buckets, sharded bucket indexes with their bucket
//! index logs, striped object data, multipart uploads, the data and metadata
//! logs, and garbage collection. The S3 gateway and the multi-site sync agent
//! both write through this crate, so they agree on every byte of the layout.
//!
//! Consistency model (see `index` for the details): each bucket index shard
//! is one omap object, and every change to it is one compound op guarded by
//! per-key compare-and-swap, carrying its bucket index log entry. Object data
//! is always written to fresh names first and becomes visible only when the
//! index points at it; every data object is referenced at all times by an
//! index entry, a pending-write intent, a part record of a live upload or a
//! GC record in the same shard, so a crash at any point leaves nothing
//! unreachable. A writer stores data only within its write budget (see
//! [`ZoneParams::write_budget`]), so GC never collects the intent of a writer
//! that may still add a stripe.

pub mod bucket;
pub mod checksum;
pub mod compress;
pub mod crypt;
pub mod data;
mod error;
pub mod gc;
pub mod index;
pub mod lifecycle;
pub mod log;
pub mod multipart;
pub mod object;
pub mod records;
pub mod replica;
pub mod sync_policy;
pub mod user;

pub use error::ZoneError;
pub use records::*;

use bytes::Bytes;
use meridian_client::{ClientError, Cluster};
use meridian_proto::mon::PoolCreate;
use meridian_proto::mon::mon_command::Cmd;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Result of zone operations.
pub type Result<T, E = ZoneError> = std::result::Result<T, E>;

/// The settings of one zone as a gateway (or the admin CLI) sees them.
#[derive(Debug, Clone)]
pub struct ZoneParams {
    /// Zone name; the pools are named after it.
    pub zone: String,
    /// Zonegroup name (S3 LocationConstraint / GetBucketLocation).
    pub zonegroup: String,
    /// Index shards of new buckets.
    pub index_shards: u32,
    /// Data log shards.
    pub datalog_shards: u32,
    /// Metadata log shards.
    pub mdlog_shards: u32,
    /// Replaced or deleted data stays this long before GC deletes it, so
    /// reads that already started finish.
    pub gc_min_wait: Duration,
    /// A pending write older than this is considered crashed; its data is collected.
    pub pending_expiry: Duration,
    /// pg_num of the zone's pools when this zone creates them.
    pub pool_pg_num: u32,
    /// Replicas of the zone's pools when this zone creates them.
    pub pool_size: u32,
    /// How long bucket and user records are cached.
    pub cache_ttl: Duration,
    /// Largest single PUT / part.
    pub max_put_size: u64,
    /// PUTs of at most this many bytes store their data inline in the index
    /// shard (see [`DataRef`]).
    pub inline_max: u64,
    /// Null-version tombstones are dropped by GC after this long.
    pub tombstone_ttl: Duration,
    /// How often a peer waiting on this zone's log positions re-reads them
    /// (changes written through this process wake it at once).
    pub log_poll_interval: Duration,
    /// Trim the logs in each GC pass when no other zone reads them (the zone
    /// has no multi-site peers; see [`Zone::has_peers`]). Off: never trim here.
    pub trim_logs_without_peers: bool,
    /// Master keys of SSE-S3 and SSE-KMS.
    pub keys: crypt::KeyRing,
    /// SSE-C and SSE-KMS requests must come over TLS (`rgw_crypt_require_ssl`).
    pub sse_require_tls: bool,
    /// Object data of writes buffered at once across the process, in bytes
    /// (the gateway's `memory_target` sets it).
    pub write_buffer_bytes: u64,
    /// Object data read ahead of clients at once across the process, in bytes.
    pub read_buffer_bytes: u64,
}

impl ZoneParams {
    /// How long a PUT or part may take to store its data: the pending expiry
    /// less a margin (a quarter of it, at most 60 s) for stripe writes still
    /// on their way and clock differences between gateways, so GC never
    /// collects the intent of a writer that may still store a stripe.
    pub fn write_budget(&self) -> Duration {
        self.pending_expiry - (self.pending_expiry / 4).min(Duration::from_secs(60))
    }

    /// The buffer bounds of a gateway's `memory_target`.
    pub fn with_memory(self, budget: meridian_common::GatewayMemoryBudget) -> Self {
        Self {
            write_buffer_bytes: budget.write_buffers,
            read_buffer_bytes: budget.read_buffers,
            ..self
        }
    }

    /// The settings of `zone` from the cluster config's `[global]` rgw_* options
    /// (and the buffer bounds of the default gateway `memory_target`).
    pub fn from_global(g: &meridian_common::GlobalSection, zone: &str, zonegroup: &str) -> Self {
        Self {
            zone: zone.to_string(),
            zonegroup: zonegroup.to_string(),
            index_shards: g.rgw_bucket_index_shards.max(1),
            datalog_shards: g.rgw_data_log_num_shards.max(1),
            mdlog_shards: g.rgw_md_log_max_shards.max(1),
            gc_min_wait: Duration::from_secs(g.rgw_gc_obj_min_wait_s),
            pending_expiry: Duration::from_secs(g.rgw_pending_expiry_s.max(1)),
            pool_pg_num: g.rgw_pool_pg_num.max(1),
            pool_size: g.osd_pool_default_size.max(1),
            cache_ttl: Duration::from_millis(g.rgw_cache_ttl_ms),
            max_put_size: g.rgw_max_put_size,
            inline_max: g.rgw_inline_max_size.min(data::STRIPE),
            trim_logs_without_peers: true,
            log_poll_interval: Duration::from_millis(g.rgw_sync_log_poll_ms.max(10)),
            tombstone_ttl: Duration::from_secs(g.rgw_sync_tombstone_ttl_s),
            sse_require_tls: g.rgw_crypt_require_ssl,
            // A gateway's own `memory_target` replaces these (`with_memory`);
            // admin commands move little data.
            write_buffer_bytes: meridian_common::GatewayMemoryBudget::default().write_buffers,
            read_buffer_bytes: meridian_common::GatewayMemoryBudget::default().read_buffers,
            // Checked when the configuration was loaded or set.
            keys: crypt::KeyRing::parse(
                &g.rgw_crypt_default_encryption_key,
                &g.rgw_crypt_s3_kms_encryption_keys,
            )
            .unwrap_or_else(|e| {
                tracing::error!(error = %e, "encryption keys unusable; SSE-S3/SSE-KMS refused");
                crypt::KeyRing::default()
            }),
        }
    }
}

/// The four pools of a zone, named as Ceph names them.
#[derive(Debug, Clone)]
pub struct ZonePools {
    /// Users, access keys, bucket records.
    pub meta: String,
    /// Bucket index shards.
    pub index: String,
    /// Object data stripes.
    pub data: String,
    /// Data log, metadata log, GC hints.
    pub log: String,
}

impl ZonePools {
    /// `<zone>.meridian.{meta,buckets.index,buckets.data,log}`.
    pub fn for_zone(zone: &str) -> Self {
        Self {
            meta: format!("{zone}.meridian.meta"),
            index: format!("{zone}.meridian.buckets.index"),
            data: format!("{zone}.meridian.buckets.data"),
            log: format!("{zone}.meridian.log"),
        }
    }
}

/// A handle on one zone's state (cheap to clone).
#[derive(Clone)]
pub struct Zone {
    inner: Arc<ZoneInner>,
}

struct ZoneInner {
    cluster: Cluster,
    params: ZoneParams,
    pools: ZonePools,
    buckets: Mutex<HashMap<String, (Instant, Arc<BucketInfo>)>>,
    keys: Mutex<HashMap<String, (Instant, Arc<User>)>>,
    /// Last seen header of each index shard (for writes that need no read).
    headers: Mutex<HashMap<String, bytes::Bytes>>,
    /// Bounds the object data of writes buffered across all requests (KiB).
    write_buffers: Arc<tokio::sync::Semaphore>,
    /// Bounds the object data read ahead of clients across all requests
    /// (KiB; a permit travels with the bytes until the client took them).
    read_buffers: Arc<tokio::sync::Semaphore>,
    /// Index shards with a post-commit data log hint being written (true:
    /// another commit came meanwhile and needs one more).
    post_hints: Mutex<HashMap<String, bool>>,
    /// The newest pre-commit data log hint of each index shard (when it
    /// was started, and whether it was written), shared by the changes
    /// that start within `index::HINT_SHARED_FOR` of it.
    pre_hints: Mutex<HashMap<String, index::SharedHint>>,
    /// Rung on every metadata / data log append made by this process: one
    /// counter per log shard, so a waiting peer re-reads only what moved.
    log_bells: [tokio::sync::watch::Sender<Vec<u64>>; 2],
}

impl Zone {
    /// Opens the zone, creating its pools if they do not exist yet.
    pub async fn open(cluster: Cluster, params: ZoneParams) -> Result<Zone> {
        let (md_shards, data_shards) = (
            params.mdlog_shards.max(1) as usize,
            params.datalog_shards.max(1) as usize,
        );
        let pools = ZonePools::for_zone(&params.zone);
        // At least one stripe each: a request waits for a whole stripe's room.
        let room = |bytes: u64| data::kib(bytes.max(data::STRIPE)) as usize;
        let write_buffers = Arc::new(tokio::sync::Semaphore::new(room(params.write_buffer_bytes)));
        let read_buffers = Arc::new(tokio::sync::Semaphore::new(room(params.read_buffer_bytes)));
        let zone = Zone {
            inner: Arc::new(ZoneInner {
                cluster,
                pools,
                params,
                buckets: Mutex::new(HashMap::new()),
                keys: Mutex::new(HashMap::new()),
                headers: Mutex::new(HashMap::new()),
                write_buffers,
                read_buffers,
                post_hints: Mutex::new(HashMap::new()),
                pre_hints: Mutex::new(HashMap::new()),
                log_bells: [
                    tokio::sync::watch::channel(vec![0; md_shards]).0,
                    tokio::sync::watch::channel(vec![0; data_shards]).0,
                ],
            }),
        };
        zone.ensure_pools().await?;
        Ok(zone)
    }

    /// Opens the zone only if its pools exist (admin commands must not create them).
    pub async fn open_existing(cluster: Cluster, params: ZoneParams) -> Result<Zone> {
        let pools = ZonePools::for_zone(&params.zone);
        if cluster.map().pool_by_name(&pools.meta).is_none() {
            return Err(ZoneError::NoZone(params.zone.clone()));
        }
        Self::open(cluster, params).await
    }

    async fn ensure_pools(&self) -> Result<()> {
        let p = &self.inner.pools;
        for (name, pg_num) in [
            (&p.meta, self.inner.params.pool_pg_num),
            (&p.index, self.inner.params.pool_pg_num),
            (&p.data, self.inner.params.pool_pg_num * 2),
            (&p.log, self.inner.params.pool_pg_num),
        ] {
            if self.cluster().map().pool_by_name(name).is_some() {
                continue;
            }
            let r = self
                .cluster()
                .mon_command(Cmd::PoolCreate(PoolCreate {
                    name: name.clone(),
                    pg_num,
                    size: self.inner.params.pool_size,
                    min_size: 0,
                    crush_rule: String::new(),
                    application: "s3".into(),
                }))
                .await;
            match r {
                Ok(_) => tracing::info!(pool = %name, pg_num, "created zone pool"),
                // Another gateway of the zone created it first.
                Err(ClientError::Command(m)) if m.contains("already exists") => {}
                Err(e) => return Err(e.into()),
            }
        }
        // Wait until our map has them, so the first op does not race the map.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let view = self.cluster().map();
            if [&p.meta, &p.index, &p.data, &p.log]
                .iter()
                .all(|n| view.pool_by_name(n).is_some())
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(ZoneError::Cluster(ClientError::Other(
                    "zone pools were created but never appeared in the cluster map".into(),
                )));
            }
            self.cluster()
                .wait_for_newer_map(view.epoch(), Duration::from_millis(500))
                .await;
        }
    }

    /// The cluster client.
    pub fn cluster(&self) -> &Cluster {
        &self.inner.cluster
    }

    /// The zone's settings.
    pub fn params(&self) -> &ZoneParams {
        &self.inner.params
    }

    /// The zone's pools.
    pub fn pools(&self) -> &ZonePools {
        &self.inner.pools
    }

    /// This zone's id in its realm ("" while the zone is in none): the
    /// origin of the versions written here and the first hop of every
    /// operation's zone trace.
    pub fn zone_id(&self) -> String {
        let view = self.cluster().map();
        view.map
            .multisite
            .as_ref()
            .and_then(|ms| ms.zones.iter().find(|z| z.name == self.params().zone))
            .map(|z| z.id.clone())
            .unwrap_or_default()
    }

    /// Ids of every zone of this zone's zonegroup in the current period
    /// (this one included; empty when the zone is in no realm).
    pub fn zonegroup_zone_ids(&self) -> Vec<String> {
        let view = self.cluster().map();
        let Some(ms) = &view.map.multisite else {
            return Vec::new();
        };
        let Some(z) = ms.zones.iter().find(|z| z.name == self.params().zone) else {
            return Vec::new();
        };
        ms.realms
            .iter()
            .filter(|r| r.id == z.realm_id)
            .filter_map(|r| ms.periods.iter().find(|p| p.id == r.current_period))
            .flat_map(|p| p.zonegroups.iter())
            .filter(|g| g.zones.iter().any(|x| x.id == z.id))
            .flat_map(|g| g.zones.iter().map(|x| x.id.clone()))
            .collect()
    }

    /// True when another zone of the current period may read this zone's
    /// logs (then only sync markers may trim them, never a GC pass).
    pub fn has_peers(&self) -> bool {
        let view = self.cluster().map();
        let Some(ms) = &view.map.multisite else {
            return false;
        };
        let Some(z) = ms.zones.iter().find(|z| z.name == self.params().zone) else {
            return false;
        };
        ms.realms
            .iter()
            .filter(|r| r.id == z.realm_id)
            .filter_map(|r| ms.periods.iter().find(|p| p.id == r.current_period))
            .flat_map(|p| p.zonegroups.iter().flat_map(|g| g.zones.iter()))
            .any(|other| other.id != z.id)
    }

    fn cache_get<T>(
        map: &Mutex<HashMap<String, (Instant, Arc<T>)>>,
        key: &str,
        ttl: Duration,
    ) -> Option<Arc<T>> {
        let m = map.lock().unwrap_or_else(|p| p.into_inner());
        m.get(key)
            .filter(|(at, _)| at.elapsed() < ttl)
            .map(|(_, v)| v.clone())
    }

    fn cache_put<T>(map: &Mutex<HashMap<String, (Instant, Arc<T>)>>, key: &str, v: Arc<T>) {
        let mut m = map.lock().unwrap_or_else(|p| p.into_inner());
        // Bounded: an expired or overfull cache is simply dropped.
        if m.len() > 10_000 {
            m.clear();
        }
        m.insert(key.to_string(), (Instant::now(), v));
    }

    fn cached_header(&self, key: &str) -> Option<Bytes> {
        self.inner
            .headers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
            .cloned()
    }

    fn remember_header(&self, key: &str, hdr: Bytes) {
        let mut m = self.inner.headers.lock().unwrap_or_else(|p| p.into_inner());
        if m.len() > 100_000 {
            m.clear();
        }
        m.insert(key.to_string(), hdr);
    }

    fn forget_header(&self, key: &str) {
        self.inner
            .headers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
    }

    fn cache_forget<T>(map: &Mutex<HashMap<String, (Instant, Arc<T>)>>, key: &str) {
        map.lock().unwrap_or_else(|p| p.into_inner()).remove(key);
    }
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    const D: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(D[(b >> 4) as usize] as char);
        s.push(D[(b & 15) as usize] as char);
    }
    s
}

/// A random 64-bit id as 16 hex digits (bucket ids, data instances, upload ids).
pub fn random_id() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// A random RFC 4122 version-4 UUID (realm, zonegroup, zone and period ids, as Ceph's).
pub fn random_uuid() -> String {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex(&b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// Nanoseconds since the Unix epoch.
pub fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// A stable 32-bit hash (FNV-1a) used to pick shards; never changes, since
/// the shard of an existing key must not move.
pub fn shard_hash(s: &[u8]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in s {
        h ^= *b as u32;
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

pub(crate) fn json<T: serde::Serialize>(v: &T) -> Bytes {
    Bytes::from(serde_json::to_vec(v).expect("records serialize"))
}

pub(crate) fn parse<T: serde::de::DeserializeOwned>(what: &str, b: &[u8]) -> Result<T> {
    serde_json::from_slice(b).map_err(|e| ZoneError::Corrupt {
        what: what.to_string(),
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_hash_is_fnv1a() {
        // Reference values of 32-bit FNV-1a: the hash is part of the on-disk layout.
        assert_eq!(shard_hash(b""), 0x811c_9dc5);
        assert_eq!(shard_hash(b"a"), 0xe40c_292c);
        assert_eq!(shard_hash(b"foobar"), 0xbf9c_f968);
    }

    #[test]
    fn pools_follow_cephs_names() {
        let p = ZonePools::for_zone("us-east");
        assert_eq!(p.meta, "us-east.meridian.meta");
        assert_eq!(p.index, "us-east.meridian.buckets.index");
        assert_eq!(p.data, "us-east.meridian.buckets.data");
        assert_eq!(p.log, "us-east.meridian.log");
    }
}
