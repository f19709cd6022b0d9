//! Bucket index shards: one omap object per shard (`.dir.<bucket id>.<n>` in
//! the index pool), holding, by key prefix:
//!
//! | prefix | record |
//! |---|---|
//! | `hdr` | [`ShardHeader`]: live/deleting, versioning |
//! | `o<key>` | the current [`IndexEntry`] of a key (may be a delete marker) |
//! | `v<key>\0<order>.<version id>` | every version, newest first per key |
//! | `u<key>\0<upload id>` | multipart uploads in progress |
//! | `p<upload id>.<part, 5 digits>` | their parts |
//! | `i<inst>` | writes in progress ([`Intent`]) |
//! | `g<due ms, 20 digits><inst>` | unreferenced data awaiting GC |
//! | `t<key>` | the last delete of the key's null version ([`crate::replica::Stamp`]; multi-site only) |
//! | `l<seq, 20 digits>` | the bucket index log |
//!
//! Every change is one compound op: compare the header and each key the
//! change was computed from (per-key CAS, so writers of other keys never
//! conflict), then remove/set entries and append the bilog entry with
//! `omap_set_seq` (sequence = the shard object's new user version: ordered
//! and gap-free). The data log hint is written before the change, so no
//! change is ever without one, and again after it commits when other zones
//! read the logs: a sync agent that read the first hint before the change
//! landed is told again. (A gateway that dies between its commit and the
//! second hint leaves that to the agents' periodic comparison of each
//! shard's bilog with their markers.)

use crate::{
    BilogEntry, BucketInfo, DatalogEntry, Result, ShardHeader, ShardState, Zone, ZoneError, json,
    parse, shard_hash,
};
use bytes::Bytes;
use meridian_client::ClientError;
use meridian_client::ops::sub;
use meridian_proto::osd::SubOp;
use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

/// Omap key of the shard header.
pub const HDR: &[u8] = b"hdr";
/// Prefix of the bucket index log.
pub const BILOG_PREFIX: &[u8] = b"l";
/// Prefix of GC records.
pub const GC_PREFIX: &[u8] = b"g";
/// Prefix of intents.
pub const INTENT_PREFIX: &[u8] = b"i";
/// Prefix of current entries.
pub const CURRENT_PREFIX: &[u8] = b"o";
/// Prefix of version entries.
pub const VERSION_PREFIX: &[u8] = b"v";
/// Prefix of upload records.
pub const UPLOAD_PREFIX: &[u8] = b"u";
/// Prefix of part records.
pub const PART_PREFIX: &[u8] = b"p";
/// Prefix of null-version tombstones (multi-site conflict resolution).
pub const TOMBSTONE_PREFIX: &[u8] = b"t";
/// Prefix of the data of small versions stored inline in the shard.
pub const INLINE_PREFIX: &[u8] = b"d";

fn cat(parts: &[&[u8]]) -> Bytes {
    let mut v = Vec::with_capacity(parts.iter().map(|p| p.len()).sum());
    for p in parts {
        v.extend_from_slice(p);
    }
    Bytes::from(v)
}

/// `o<key>`.
pub fn current_key(key: &str) -> Bytes {
    cat(&[CURRENT_PREFIX, key.as_bytes()])
}
/// `v<key>\0`: every version of `key`.
pub fn versions_prefix(key: &str) -> Bytes {
    cat(&[VERSION_PREFIX, key.as_bytes(), b"\0"])
}
/// `v<key>\0<order>.<version id>`.
pub fn version_key(key: &str, order: &str, version_id: &str) -> Bytes {
    cat(&[
        VERSION_PREFIX,
        key.as_bytes(),
        b"\0",
        order.as_bytes(),
        b".",
        version_id.as_bytes(),
    ])
}
/// `u<key>\0<upload id>`.
pub fn upload_key(key: &str, upload_id: &str) -> Bytes {
    cat(&[UPLOAD_PREFIX, key.as_bytes(), b"\0", upload_id.as_bytes()])
}
/// `p<upload id>.`: every part of an upload.
pub fn parts_prefix(upload_id: &str) -> Bytes {
    cat(&[PART_PREFIX, upload_id.as_bytes(), b"."])
}
/// `p<upload id>.<part>`.
pub fn part_key(upload_id: &str, part: u32) -> Bytes {
    cat(&[
        PART_PREFIX,
        upload_id.as_bytes(),
        format!(".{part:05}").as_bytes(),
    ])
}
/// `t<key>`: when and where the key's null version was last deleted.
pub fn tombstone_key(key: &str) -> Bytes {
    cat(&[TOMBSTONE_PREFIX, key.as_bytes()])
}
/// `i<inst>`.
pub fn intent_key(inst: &str) -> Bytes {
    cat(&[INTENT_PREFIX, inst.as_bytes()])
}
/// `d<key>\0<inst>`: the stored bytes of an inline run of `key`.
pub fn inline_key(key: &str, inst: &str) -> Bytes {
    cat(&[INLINE_PREFIX, key.as_bytes(), b"\0", inst.as_bytes()])
}
/// `d<key>\0`: every inline run of `key`, newest first (see [`inline_inst`]).
pub fn inline_prefix(key: &str) -> Bytes {
    cat(&[INLINE_PREFIX, key.as_bytes(), b"\0"])
}
/// The instance id in an inline run's omap key.
pub fn inst_of_inline_key(k: &[u8]) -> String {
    let inst = k.rsplit(|&b| b == 0).next().unwrap_or_default();
    String::from_utf8_lossy(inst).into_owned()
}
/// A fresh instance id for an inline run: it sorts before the ids of runs
/// written earlier (by this clock), so the first entry under
/// [`inline_prefix`] is, almost always, the current version's data.
pub fn inline_inst(now_ns: u64) -> String {
    format!("{:016x}{:016x}", u64::MAX - now_ns, rand::random::<u64>())
}
/// `g<due ms><inst>`.
pub fn gc_key(due_ms: u64, inst: &str) -> Bytes {
    cat(&[
        GC_PREFIX,
        format!("{due_ms:020}").as_bytes(),
        inst.as_bytes(),
    ])
}

/// Ordering token of a version written at `mtime_ns`: newer sorts first.
pub fn order_token(mtime_ns: u64) -> String {
    format!("{:016x}", u64::MAX - mtime_ns)
}

/// The index shard object of `bucket_id`.
pub fn shard_object(bucket_id: &str, shard: u32) -> String {
    format!(".dir.{bucket_id}.{shard}")
}

/// The shard that holds `key` (stable: part of the layout).
pub fn shard_of(key: &str, num_shards: u32) -> u32 {
    shard_hash(key.as_bytes()) % num_shards.max(1)
}

/// A range of one shard to read along with the point lookups.
#[derive(Debug, Clone)]
pub struct RangeReq {
    /// Only keys with this prefix.
    pub prefix: Bytes,
    /// Keys after this one (empty: from the start of the prefix).
    pub start_after: Bytes,
    /// At most this many.
    pub max: u32,
}

impl RangeReq {
    /// The first `max` entries with `prefix`.
    pub fn prefix(prefix: Bytes, max: u32) -> Self {
        Self {
            prefix,
            start_after: Bytes::new(),
            max,
        }
    }
}

/// What one read of a shard saw.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// The shard header.
    pub hdr: ShardHeader,
    hdr_raw: Bytes,
    /// The point lookups that exist.
    pub values: BTreeMap<Bytes, Bytes>,
    /// The ranges, in request order, each with whether more entries follow.
    pub ranges: Vec<(Vec<(Bytes, Bytes)>, bool)>,
}

impl Snapshot {
    /// A point lookup, parsed.
    pub fn get<T: serde::de::DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>> {
        self.values
            .get(key)
            .map(|v| parse(&String::from_utf8_lossy(key), v))
            .transpose()
    }

    /// A point lookup, raw.
    pub fn raw(&self, key: &[u8]) -> Option<&Bytes> {
        self.values.get(key)
    }
}

/// A snapshot from the results of [values, ranges...] sub-ops.
fn snapshot_from(
    bucket: &BucketInfo,
    mut results: impl Iterator<Item = meridian_proto::osd::SubOpResult>,
) -> Result<Snapshot> {
    let values: BTreeMap<Bytes, Bytes> = results
        .next()
        .map(|r| r.entries.into_iter().map(|kv| (kv.key, kv.value)).collect())
        .unwrap_or_default();
    let ranges = results
        .map(|r| {
            (
                r.entries.into_iter().map(|kv| (kv.key, kv.value)).collect(),
                r.more,
            )
        })
        .collect();
    let hdr_raw = values
        .get(HDR)
        .cloned()
        .ok_or_else(|| ZoneError::NoSuchBucket(bucket.name.clone()))?;
    let hdr: ShardHeader = parse("shard header", &hdr_raw)?;
    if hdr.bucket_id != bucket.id {
        return Err(ZoneError::NoSuchBucket(bucket.name.clone()));
    }
    Ok(Snapshot {
        hdr,
        hdr_raw,
        values,
        ranges,
    })
}

/// The change a [`Zone::shard_update`] closure asks for.
#[derive(Debug, Default, Clone)]
pub struct ShardTxn {
    guards: Vec<(Bytes, Option<Bytes>)>,
    rm: Vec<Bytes>,
    set: Vec<(Bytes, Bytes)>,
    log: Vec<BilogEntry>,
}

impl ShardTxn {
    /// Also require `key` to hold `value` (`None`: absent) at commit.
    pub fn guard(&mut self, key: Bytes, value: Option<Bytes>) -> &mut Self {
        self.guards.push((key, value));
        self
    }
    /// Remove `key`.
    pub fn rm(&mut self, key: Bytes) -> &mut Self {
        self.rm.push(key);
        self
    }
    /// Set `key` to the JSON of `value`.
    pub fn set<T: serde::Serialize>(&mut self, key: Bytes, value: &T) -> &mut Self {
        self.set.push((key, json(value)));
        self
    }
    /// Set `key` to raw bytes.
    pub fn set_raw(&mut self, key: Bytes, value: Bytes) -> &mut Self {
        self.set.push((key, value));
        self
    }
    /// Append the bilog entry describing this change (one per change of a
    /// key; a batch of changes to distinct keys logs one each, in order).
    pub fn log(&mut self, entry: BilogEntry) -> &mut Self {
        self.log.push(entry);
        self
    }
    /// Adds `other`'s guards, changes and log entries to this one.
    pub fn absorb(&mut self, other: ShardTxn) -> &mut Self {
        self.guards.extend(other.guards);
        self.rm.extend(other.rm);
        self.set.extend(other.set);
        self.log.extend(other.log);
        self
    }
    /// True when nothing would change.
    pub fn is_empty(&self) -> bool {
        self.rm.is_empty() && self.set.is_empty() && self.log.is_empty()
    }
}

/// What a [`Zone::shard_update`] closure decided.
// Returned once per attempt and consumed at once: boxing the transaction
// would only add an allocation.
#[allow(clippy::large_enum_variant)]
pub enum Step<T> {
    /// Apply this change (if the snapshot still holds), then return T.
    Commit(ShardTxn, T),
    /// Change nothing; return T.
    Done(T),
}

/// Attempts of a compare-and-swap before giving up with `Contention`.
const CAS_ATTEMPTS: u32 = 64;

/// How long a pre-commit data log hint serves the later changes of its
/// shard (see `Zone::hint_before_commit`).
pub const HINT_SHARED_FOR: Duration = Duration::from_millis(100);
/// Shards remembered before stale hints are swept out.
const HINT_SHARED_MAX: usize = 4096;

/// A pre-commit data log hint that several changes of a shard wait on.
#[derive(Clone)]
pub(crate) struct SharedHint {
    /// When its write started.
    started: std::time::Instant,
    /// Set once the write ended: whether it was written.
    written: std::sync::Arc<tokio::sync::OnceCell<bool>>,
}

impl Zone {
    /// Reads point keys (plus the header) and ranges of one shard in one op.
    pub async fn shard_read(
        &self,
        bucket: &BucketInfo,
        shard: u32,
        keys: &[Bytes],
        ranges: &[RangeReq],
    ) -> Result<Snapshot> {
        let mut lookup: Vec<Bytes> = keys.to_vec();
        lookup.push(Bytes::from_static(HDR));
        let mut ops = vec![sub::omap_get_values(lookup)];
        for r in ranges {
            ops.push(sub::omap_get_range(
                r.start_after.clone(),
                r.prefix.clone(),
                r.max,
            ));
        }
        let obj = shard_object(&bucket.id, shard);
        let reply = match self.cluster().op(&self.pools().index, &obj, ops).await {
            Ok(r) => r,
            Err(ClientError::NotFound(_)) => {
                return Err(ZoneError::NoSuchBucket(bucket.name.clone()));
            }
            Err(e) => return Err(e.into()),
        };
        snapshot_from(bucket, reply.results.into_iter())
    }

    /// Records an intent and reads the key's shard state in one op (the
    /// header is compared against the last one seen): a PUT's first round
    /// trip also serves as the snapshot its link starts from. The returned
    /// snapshot shows the intent as written.
    pub(crate) async fn put_intent_and_read(
        &self,
        bucket: &BucketInfo,
        shard: u32,
        intent: (Bytes, Bytes),
        keys: &[Bytes],
        ranges: &[RangeReq],
    ) -> Result<Snapshot> {
        self.put_intents_and_read(bucket, shard, vec![intent], keys, ranges)
            .await
    }

    /// [`Zone::put_intent_and_read`] for several intents in one op.
    pub(crate) async fn put_intents_and_read(
        &self,
        bucket: &BucketInfo,
        shard: u32,
        intents: Vec<(Bytes, Bytes)>,
        keys: &[Bytes],
        ranges: &[RangeReq],
    ) -> Result<Snapshot> {
        let obj = shard_object(&bucket.id, shard);
        let cache_key = format!("{}/{shard}", bucket.id);
        for _ in 0..CAS_ATTEMPTS {
            let hdr = match self.cached_header(&cache_key) {
                Some(h) => h,
                None => {
                    let snap = self.shard_read(bucket, shard, &[], &[]).await?;
                    self.remember_header(&cache_key, snap.hdr_raw.clone());
                    snap.hdr_raw
                }
            };
            let mut lookup: Vec<Bytes> = keys.to_vec();
            lookup.push(Bytes::from_static(HDR));
            let mut ops = vec![
                sub::omap_cmp(Bytes::from_static(HDR), Some(hdr)),
                sub::omap_set(intents.clone()),
                sub::omap_get_values(lookup),
            ];
            for r in ranges {
                ops.push(sub::omap_get_range(
                    r.start_after.clone(),
                    r.prefix.clone(),
                    r.max,
                ));
            }
            match self.cluster().op(&self.pools().index, &obj, ops).await {
                Ok(reply) => {
                    // Reads in a compound op see the state before its writes.
                    let mut snap = snapshot_from(bucket, reply.results.into_iter().skip(2))?;
                    if snap.hdr.state != ShardState::Live {
                        return Err(ZoneError::NoSuchBucket(bucket.name.clone()));
                    }
                    snap.values.extend(intents.iter().cloned());
                    return Ok(snap);
                }
                Err(ClientError::GuardFailed(_)) => self.forget_header(&cache_key),
                Err(ClientError::NotFound(_)) => {
                    return Err(ZoneError::NoSuchBucket(bucket.name.clone()));
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(ZoneError::Contention(format!(
            "index shard {shard} of bucket {}",
            bucket.name
        )))
    }

    /// Read-compute-commit on one shard until the commit's guards hold: the
    /// closure sees a snapshot and returns the change; the commit requires
    /// the header and every looked-up key to be as seen (plus the closure's
    /// own guards). Writes to a deleting shard fail with NoSuchBucket.
    pub async fn shard_update<T>(
        &self,
        bucket: &BucketInfo,
        shard: u32,
        keys: Vec<Bytes>,
        ranges: Vec<RangeReq>,
        f: impl FnMut(&Snapshot) -> Result<Step<T>>,
    ) -> Result<T> {
        self.shard_update_from(bucket, shard, keys, ranges, None, false, f)
            .await
    }

    /// [`Zone::shard_update`] whose first attempt uses `first` (read with the
    /// same keys and ranges, its data log hint already written) instead of a
    /// read of its own. `quiet`: no data log hints at all (a replicated
    /// change every zone of the zonegroup already has; its bilog entry
    /// still records it).
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn shard_update_from<T>(
        &self,
        bucket: &BucketInfo,
        shard: u32,
        keys: Vec<Bytes>,
        ranges: Vec<RangeReq>,
        mut first: Option<Snapshot>,
        quiet: bool,
        mut f: impl FnMut(&Snapshot) -> Result<Step<T>>,
    ) -> Result<T> {
        let obj = shard_object(&bucket.id, shard);
        // A change that reads an object's current entry is (almost always) a
        // visible one: its data log hint goes out with the first read, which
        // costs no extra round trip. Any logged change without one gets it
        // before its commit: the hint must be durable first.
        let visible = keys.iter().any(|k| k.starts_with(CURRENT_PREFIX));
        let mut hinted = first.is_some() || quiet;
        for attempt in 0..CAS_ATTEMPTS {
            let snap = if let Some(s) = first.take() {
                s
            } else if visible && !hinted {
                let (snap, hint) = futures::join!(
                    self.shard_read(bucket, shard, &keys, &ranges),
                    self.hint_before_commit(bucket, shard)
                );
                hint?;
                hinted = true;
                snap?
            } else {
                self.shard_read(bucket, shard, &keys, &ranges).await?
            };
            if snap.hdr.state != ShardState::Live {
                return Err(ZoneError::NoSuchBucket(bucket.name.clone()));
            }
            let (txn, out) = match f(&snap)? {
                Step::Done(out) => return Ok(out),
                Step::Commit(txn, out) => (txn, out),
            };
            if txn.is_empty() {
                return Ok(out);
            }
            if !txn.log.is_empty() && !hinted {
                self.hint_before_commit(bucket, shard).await?;
                hinted = true;
            }
            let mut ops: Vec<SubOp> = Vec::with_capacity(keys.len() + txn.guards.len() + 4);
            ops.push(sub::omap_cmp(Bytes::from_static(HDR), Some(snap.hdr_raw)));
            for k in &keys {
                ops.push(sub::omap_cmp(k.clone(), snap.values.get(k).cloned()));
            }
            for (k, v) in txn.guards {
                ops.push(sub::omap_cmp(k, v));
            }
            if !txn.rm.is_empty() {
                ops.push(sub::omap_rm(txn.rm));
            }
            if !txn.set.is_empty() {
                ops.push(sub::omap_set(txn.set));
            }
            let logged = !txn.log.is_empty();
            if logged {
                ops.push(sub::omap_set_seq(
                    txn.log
                        .iter()
                        .map(|e| (Bytes::from_static(BILOG_PREFIX), json(e)))
                        .collect(),
                ));
            }
            match self.cluster().op(&self.pools().index, &obj, ops).await {
                Ok(_) => {
                    if logged && !quiet {
                        self.hint_after_commit(bucket, shard);
                    }
                    return Ok(out);
                }
                Err(ClientError::GuardFailed(_)) => {
                    metrics::counter!("meridian_zone_index_conflicts_total").increment(1);
                    let backoff = 1 + rand::random::<u64>() % (2 + u64::from(attempt.min(6)) * 8);
                    tokio::time::sleep(Duration::from_millis(backoff)).await;
                }
                Err(ClientError::NotFound(_)) => {
                    return Err(ZoneError::NoSuchBucket(bucket.name.clone()));
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(ZoneError::Contention(format!(
            "index shard {shard} of bucket {}",
            bucket.name
        )))
    }

    /// Sends a data log hint for a change that has committed, when other
    /// zones read this zone's logs. Hints for one shard are coalesced: while
    /// one is being written, later commits mark the shard and one more hint
    /// follows, so every commit is followed by a hint written after it.
    fn hint_after_commit(&self, bucket: &BucketInfo, shard: u32) {
        if !self.has_peers() {
            return;
        }
        let key = format!("{}:{shard}", bucket.id);
        {
            let mut m = self
                .inner
                .post_hints
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if let Some(again) = m.get_mut(&key) {
                *again = true;
                return;
            }
            m.insert(key.clone(), false);
        }
        let zone = self.clone();
        let bucket = bucket.clone();
        tokio::spawn(async move {
            loop {
                if let Err(e) = zone.datalog_hint(&bucket, shard).await {
                    tracing::warn!(bucket = %bucket.name, shard, error = %e, "data log hint after a commit not written; sync finds the change by comparing bilog heads");
                }
                let mut m = zone
                    .inner
                    .post_hints
                    .lock()
                    .unwrap_or_else(|p| p.into_inner());
                if m.get(&key) == Some(&true) {
                    m.insert(key.clone(), false);
                    continue;
                }
                m.remove(&key);
                break;
            }
        });
    }

    /// A data log hint for a change about to commit to `shard`, durable
    /// before the commit. Changes of one shard that start within
    /// [`HINT_SHARED_FOR`] of each other share one hint write instead of
    /// one each (a busy shard wrote as many hints as objects). The hint
    /// before a commit is only insurance for a gateway that dies between
    /// its commit and the hint after it (`hint_after_commit`), and never a
    /// full one: an agent may read a change's own hint before the change
    /// commits, as it may read a shared one. Such a change is found by the
    /// periodic comparison of bilog heads with markers either way; sharing
    /// only makes that path a little likelier after a crash.
    pub(crate) async fn hint_before_commit(&self, bucket: &BucketInfo, shard: u32) -> Result<()> {
        if !self.has_peers() {
            return Ok(());
        }
        let key = format!("{}:{shard}", bucket.id);
        let hint = {
            let mut m = self
                .inner
                .pre_hints
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            match m.get(&key) {
                Some(h) if h.started.elapsed() < HINT_SHARED_FOR => h.clone(),
                _ => {
                    if m.len() >= HINT_SHARED_MAX {
                        m.retain(|_, h| h.started.elapsed() < HINT_SHARED_FOR);
                    }
                    let h = SharedHint {
                        started: std::time::Instant::now(),
                        written: std::sync::Arc::new(tokio::sync::OnceCell::new()),
                    };
                    m.insert(key.clone(), h.clone());
                    h
                }
            }
        };
        // The first to get here writes it; the others wait for that write
        // (and take it over if the writer's request is dropped meanwhile).
        let mut wrote = false;
        let written = *hint
            .written
            .get_or_init(|| {
                wrote = true;
                async { self.datalog_hint(bucket, shard).await.is_ok() }
            })
            .await;
        if !wrote {
            metrics::counter!("meridian_zone_datalog_hints_shared_total").increment(1);
        }
        if written {
            return Ok(());
        }
        // The shared write failed: no change waits on a failed one again,
        // and this one writes its own (reporting why it failed too).
        {
            let mut m = self
                .inner
                .pre_hints
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if m.get(&key)
                .is_some_and(|h| std::sync::Arc::ptr_eq(&h.written, &hint.written))
            {
                m.remove(&key);
            }
        }
        self.datalog_hint(bucket, shard).await
    }

    /// Writes the data log entry "bucket shard changed", when another zone
    /// reads this zone's logs (as RGW logs data only with sync peers). A zone
    /// that gains a peer is fully synced by it first, and a change racing the
    /// period commit that adds the peer is found by the peer's periodic
    /// comparison of each bucket shard's bilog with its marker.
    pub(crate) async fn datalog_hint(&self, bucket: &BucketInfo, shard: u32) -> Result<()> {
        if !self.has_peers() {
            return Ok(());
        }
        let n =
            shard_hash(format!("{}:{shard}", bucket.id).as_bytes()) % self.params().datalog_shards;
        let entry = DatalogEntry {
            bucket: bucket.name.clone(),
            bucket_id: bucket.id.clone(),
            shard,
            ts_ms: meridian_common::now_unix_ms(),
        };
        self.cluster()
            .op(
                &self.pools().log,
                &crate::log::datalog_object(n),
                vec![sub::omap_set_seq(vec![(Bytes::new(), json(&entry))])],
            )
            .await?;
        metrics::counter!("meridian_zone_datalog_hints_total").increment(1);
        self.ring(crate::log::LogKind::Data, n);
        Ok(())
    }

    /// Creates the shards of a new bucket instance, live.
    pub(crate) async fn create_shards(&self, bucket: &BucketInfo) -> Result<()> {
        let hdr = ShardHeader {
            v: 1,
            bucket_id: bucket.id.clone(),
            state: ShardState::Live,
            versioning: bucket.versioning,
        };
        let futs = (0..bucket.num_shards).map(|s| {
            let hdr = json(&hdr);
            async move {
                self.cluster()
                    .op(
                        &self.pools().index,
                        &shard_object(&bucket.id, s),
                        vec![
                            sub::create(true),
                            sub::omap_set(vec![(Bytes::from_static(HDR), hdr)]),
                        ],
                    )
                    .await
            }
        });
        for r in futures::future::join_all(futs).await {
            r?;
        }
        Ok(())
    }

    /// Changes every shard header with `f` (versioning, deletion state), one CAS each.
    pub(crate) async fn update_headers(
        &self,
        bucket: &BucketInfo,
        shards: impl Iterator<Item = u32>,
        f: impl Fn(&mut ShardHeader) + Copy,
    ) -> Result<()> {
        for s in shards {
            let obj = shard_object(&bucket.id, s);
            let mut done = false;
            for _ in 0..CAS_ATTEMPTS {
                let snap = self.shard_read(bucket, s, &[], &[]).await?;
                let mut hdr = snap.hdr.clone();
                f(&mut hdr);
                if hdr == snap.hdr {
                    done = true;
                    break;
                }
                let ops = vec![
                    sub::omap_cmp(Bytes::from_static(HDR), Some(snap.hdr_raw.clone())),
                    sub::omap_set(vec![(Bytes::from_static(HDR), json(&hdr))]),
                ];
                match self.cluster().op(&self.pools().index, &obj, ops).await {
                    Ok(_) => {
                        done = true;
                        break;
                    }
                    Err(ClientError::GuardFailed(_)) => continue,
                    Err(e) => return Err(e.into()),
                }
            }
            if !done {
                return Err(ZoneError::Contention(format!("header of shard {s}")));
            }
        }
        Ok(())
    }
}

/// One shard's position in a merged, ordered scan of all shards.
struct ShardCursor {
    shard: u32,
    buf: VecDeque<(Bytes, Bytes)>,
    after: Bytes,
    done: bool,
}

/// An ordered scan of one key namespace across every shard of a bucket (a
/// k-way merge, fetching pages from each shard as it is consumed).
pub struct MergedScan<'a> {
    zone: &'a Zone,
    bucket: &'a BucketInfo,
    prefix: Bytes,
    page: u32,
    cursors: Vec<ShardCursor>,
}

impl<'a> MergedScan<'a> {
    /// Scans omap keys starting with `prefix`, after `start_after` (raw omap keys).
    pub fn new(
        zone: &'a Zone,
        bucket: &'a BucketInfo,
        prefix: Bytes,
        start_after: Bytes,
        page: u32,
    ) -> Self {
        let cursors = (0..bucket.num_shards)
            .map(|shard| ShardCursor {
                shard,
                buf: VecDeque::new(),
                after: start_after.clone(),
                done: false,
            })
            .collect();
        Self {
            zone,
            bucket,
            prefix,
            page: page.clamp(1, 1000),
            cursors,
        }
    }

    async fn fill(&mut self) -> Result<()> {
        let need: Vec<usize> = self
            .cursors
            .iter()
            .enumerate()
            .filter(|(_, c)| c.buf.is_empty() && !c.done)
            .map(|(i, _)| i)
            .collect();
        if need.is_empty() {
            return Ok(());
        }
        let (zone, bucket) = (self.zone, self.bucket);
        let reads = need.iter().map(|&i| {
            let c = &self.cursors[i];
            let range = RangeReq {
                prefix: self.prefix.clone(),
                start_after: c.after.clone(),
                max: self.page,
            };
            let shard = c.shard;
            async move {
                zone.shard_read(bucket, shard, &[], std::slice::from_ref(&range))
                    .await
            }
        });
        let snaps = futures::future::join_all(reads).await;
        for (i, snap) in need.into_iter().zip(snaps) {
            let snap = snap?;
            let (entries, more) = snap.ranges.into_iter().next().unwrap_or_default();
            let c = &mut self.cursors[i];
            if let Some((k, _)) = entries.last() {
                c.after = k.clone();
            }
            c.done = !more;
            c.buf.extend(entries);
        }
        Ok(())
    }

    /// The next entry in key order, or None at the end.
    pub async fn next(&mut self) -> Result<Option<(Bytes, Bytes)>> {
        self.fill().await?;
        let best = self
            .cursors
            .iter()
            .enumerate()
            .filter_map(|(i, c)| c.buf.front().map(|(k, _)| (i, k)))
            .min_by(|a, b| a.1.cmp(b.1))
            .map(|(i, _)| i);
        Ok(best.and_then(|i| self.cursors[i].buf.pop_front()))
    }

    /// Skips every entry up to and including `bound`.
    pub fn skip_through(&mut self, bound: &Bytes) {
        for c in &mut self.cursors {
            while c.buf.front().is_some_and(|(k, _)| k <= bound) {
                c.buf.pop_front();
            }
            if c.buf.is_empty() && !c.done && c.after < *bound {
                c.after = bound.clone();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_of_a_key_sort_newest_first_and_apart_from_longer_keys() {
        let a_old = version_key("a", &order_token(100), "x");
        let a_new = version_key("a", &order_token(200), "y");
        let ab = version_key("ab", &order_token(300), "z");
        let a_sub = version_key("a/b", &order_token(50), "w");
        let mut v = vec![ab.clone(), a_old.clone(), a_sub.clone(), a_new.clone()];
        v.sort();
        assert_eq!(v, vec![a_new.clone(), a_old.clone(), a_sub, ab]);
        assert!(a_new.starts_with(&versions_prefix("a")));
        assert!(!version_key("ab", "0", "q").starts_with(&versions_prefix("a")));
    }

    #[test]
    fn gc_keys_sort_by_due_time() {
        assert!(gc_key(9, "zz") < gc_key(10, "aa"));
        assert!(gc_key(10, "aa") < gc_key(10, "ab"));
    }

    #[test]
    fn part_keys_sort_numerically() {
        assert!(part_key("u", 9) < part_key("u", 10));
        assert!(part_key("u", 10).starts_with(&parts_prefix("u")));
    }
}
