//! Applying a change replicated from another zone to this zone's index.
//!
//! Conflict rule (active-active): versions with their own id are never in
//! conflict: every zone ends up with all of them, ordered by mtime (then
//! version id), and the newest is current. The `null` version (unversioned
//! and suspended buckets) has one slot per key: of two writes, the one with
//! the newer mtime wins, and equal mtimes are broken by the id of the zone
//! the write came from (the larger id wins), so every zone picks the same
//! winner whatever order the changes arrive in. A delete of the null version
//! takes part in the same rule through a tombstone (`t<key>`: the delete's
//! time and zone), so a write older than a delete it races with loses in
//! every zone too. [`decide`] is that rule, as a pure function.

use crate::data::Body;
use crate::index::{self, RangeReq, ShardTxn, Snapshot, Step};
use crate::object::{VERSIONS_PER_READ, bilog, gc_for, tombstone_in, validate_key, versions_in};
use crate::{
    BilogOp, BucketInfo, DataRef, IndexEntry, Manifest, Result, Versioning, Zone, ZoneError, hex,
    now_ns,
};
use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// Orders competing writes of one key's null version: mtime, then zone id.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct Stamp {
    /// When the write (or delete) happened, ns since the Unix epoch.
    pub mtime_ns: u64,
    /// Id of the zone it happened in.
    pub zone: String,
}

impl Stamp {
    /// The stamp of a stored version.
    pub fn of(e: &IndexEntry) -> Stamp {
        Stamp {
            mtime_ns: e.mtime_ns,
            zone: e.source_zone.clone(),
        }
    }
}

/// A replicated change, as the source zone describes it.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    /// A version (object or delete marker) as the source stores it now.
    Version(Box<IndexEntry>),
    /// A version was removed at the source; `stamp` is when and where (it
    /// decides against competing writes of the null version).
    Removal {
        /// The object key.
        key: String,
        /// The removed version.
        version_id: String,
        /// The removal's time and zone.
        stamp: Stamp,
    },
}

impl Incoming {
    /// The object key.
    pub fn key(&self) -> &str {
        match self {
            Incoming::Version(v) => &v.key,
            Incoming::Removal { key, .. } => key,
        }
    }
}

/// Why nothing changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Skip {
    /// This zone already holds the change.
    AlreadyHave,
    /// A newer write (or delete) of the null version is here: the incoming
    /// change lost the conflict.
    Lost {
        /// The stamp that won.
        winner: Stamp,
    },
    /// The version to remove is not here.
    Absent,
}

/// What to do with an incoming change, given what the key holds here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Store the version; remove the local versions at these positions (an
    /// older null version it replaces); drop the key's tombstone.
    Insert {
        /// Positions in the local version list.
        replaces: Vec<usize>,
        /// Which local stamp lost to it (a resolved conflict), if any.
        beat: Option<Stamp>,
    },
    /// Only the attributes (tags, ACL) of the local version at this position change.
    UpdateAttrs(usize),
    /// Remove the local version at this position (and remember the delete as
    /// a tombstone when it is the null version).
    Remove {
        /// Position in the local version list.
        at: usize,
        /// The tombstone to leave.
        tombstone: Option<Stamp>,
    },
    /// Nothing to remove here, but remember the delete (a write of the null
    /// version older than it may still arrive).
    Tombstone(Stamp),
    /// Change nothing.
    Skip(Skip),
}

/// Decides how `incoming` applies to a key holding `local` (every version,
/// any order) and `tombstone` (the last delete of its null version).
pub fn decide(local: &[IndexEntry], tombstone: Option<&Stamp>, incoming: &Incoming) -> Plan {
    match incoming {
        Incoming::Version(v) => {
            let found = local.iter().position(|l| l.version_id == v.version_id);
            if v.version_id != "null" {
                return match found {
                    Some(i) if local[i].attrs == v.attrs => Plan::Skip(Skip::AlreadyHave),
                    Some(i) => Plan::UpdateAttrs(i),
                    None => Plan::Insert {
                        replaces: Vec::new(),
                        beat: None,
                    },
                };
            }
            let theirs = Stamp::of(v);
            if let Some(i) = found {
                let ours = Stamp::of(&local[i]);
                return match theirs.cmp(&ours) {
                    std::cmp::Ordering::Equal if local[i].attrs == v.attrs => {
                        Plan::Skip(Skip::AlreadyHave)
                    }
                    std::cmp::Ordering::Equal => Plan::UpdateAttrs(i),
                    std::cmp::Ordering::Greater => Plan::Insert {
                        replaces: vec![i],
                        beat: (ours.zone != theirs.zone).then_some(ours),
                    },
                    std::cmp::Ordering::Less => Plan::Skip(Skip::Lost { winner: ours }),
                };
            }
            match tombstone {
                Some(t) if *t >= theirs => Plan::Skip(Skip::Lost { winner: t.clone() }),
                _ => Plan::Insert {
                    replaces: Vec::new(),
                    beat: None,
                },
            }
        }
        Incoming::Removal {
            version_id, stamp, ..
        } => {
            let found = local.iter().position(|l| &l.version_id == version_id);
            if version_id != "null" {
                return match found {
                    Some(at) => Plan::Remove {
                        at,
                        tombstone: None,
                    },
                    None => Plan::Skip(Skip::Absent),
                };
            }
            match found {
                Some(at) => {
                    let ours = Stamp::of(&local[at]);
                    if ours <= *stamp {
                        Plan::Remove {
                            at,
                            tombstone: Some(stamp.clone()),
                        }
                    } else {
                        Plan::Skip(Skip::Lost { winner: ours })
                    }
                }
                None => match tombstone {
                    Some(t) if t >= stamp => Plan::Skip(Skip::Absent),
                    _ => Plan::Tombstone(stamp.clone()),
                },
            }
        }
    }
}

/// The version that is current among `versions`: the newest by mtime, then
/// by version id (what the index order gives).
pub fn current_of(versions: &[IndexEntry]) -> Option<&IndexEntry> {
    versions
        .iter()
        .min_by(|a, b| (&a.order, &a.version_id).cmp(&(&b.order, &b.version_id)))
}

/// What applying a replicated change did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// The version is stored here; `beat` is the local write it won over.
    Stored {
        /// The stamp of a null version from another zone that lost to it.
        beat: Option<Stamp>,
    },
    /// The version's attributes (tags, ACL) were updated.
    AttrsUpdated,
    /// The version was removed.
    Removed,
    /// Nothing to remove; the delete is remembered as a tombstone.
    Tombstoned,
    /// Nothing changed.
    Skipped(Skip),
}

impl Zone {
    /// Applies a version another zone stores. `body` streams its bytes
    /// (None for delete markers and empty objects); `trace` lists the zones
    /// the operation has been applied in so far (this zone is added).
    pub async fn apply_version(
        &self,
        bucket: &BucketInfo,
        v: IndexEntry,
        body: Option<Body>,
        trace: Vec<String>,
    ) -> Result<Applied> {
        validate_key(&v.key)?;
        let incoming = Incoming::Version(Box::new(v));
        let v = as_version(&incoming);
        // Decide on the index first: no bytes are stored for a change that loses.
        match self.replica_plan(bucket, &incoming).await? {
            Plan::Skip(s) => return Ok(Applied::Skipped(s)),
            Plan::Insert { .. } if !v.delete_marker && v.size > 0 => {}
            _ => {
                return self
                    .replica_commit(bucket, &incoming, None, None, trace)
                    .await;
            }
        }
        let body = body.ok_or_else(|| {
            ZoneError::InvalidArgument(format!("no data for version {} of {}", v.version_id, v.key))
        })?;
        let deadline = self.write_deadline();
        if self.stores_inline(v) {
            let data = self.read_replica_inline(bucket, body, v, deadline).await?;
            let inline = data.inline.as_ref();
            return self
                .replica_commit(bucket, &incoming, Some(&data.run), inline, trace)
                .await;
        }
        // The intent alone: the commit below writes the data log hints.
        let inst = self.begin_replica_write(bucket, &v.key, v.size).await?;
        let written = match self
            .store_replica_body(bucket, &inst, body, v, deadline)
            .await
        {
            Ok(w) => w,
            Err(e) => {
                self.abandon_write(bucket, &v.key, &inst, v.size).await;
                return Err(e);
            }
        };
        if !is_copy_of(v, &written.md5) {
            self.abandon_write(bucket, &v.key, &inst, v.size).await;
            return Err(ZoneError::BadDigest);
        }
        let r = self
            .replica_commit(bucket, &incoming, Some(&written.run(&inst)), None, trace)
            .await;
        if !matches!(r, Ok(Applied::Stored { .. })) {
            self.abandon_write(bucket, &v.key, &inst, v.size).await;
        }
        r
    }

    /// Stores the bytes of replicated version `v` as run `inst`. Other zones
    /// send plaintext; SSE-S3/SSE-KMS versions are sealed again here under
    /// this zone's copy of the same master key (with a fresh run key).
    async fn store_replica_body(
        &self,
        bucket: &BucketInfo,
        inst: &str,
        body: Body,
        v: &IndexEntry,
        deadline: std::time::Instant,
    ) -> Result<crate::data::Written> {
        let key = self.replica_data_key(v)?;
        let enc = crate::data::Encoding {
            key: key.as_ref(),
            hint: v.attrs.compress_hint(),
            // The version's checksum comes with it.
            checksum: None,
        };
        self.store_body(bucket, inst, body, (Some(v.size), None), deadline, enc)
            .await
    }

    /// The key replicated version `v` is sealed with here (None: stored in
    /// the clear). Other zones send plaintext; SSE-S3/SSE-KMS versions are
    /// sealed again under this zone's copy of the same master key.
    fn replica_data_key(&self, v: &IndexEntry) -> Result<Option<crate::crypt::DataKey>> {
        self.params()
            .keys
            .data_key(v.attrs.encryption.as_ref(), None)
    }

    /// Whether replicated version `v` (which has bytes) is stored inline in
    /// its key's index shard, as a local PUT of its size would be.
    fn stores_inline(&self, v: &IndexEntry) -> bool {
        v.size <= self.params().inline_max
    }

    /// Reads the bytes of replicated version `v` (at most `inline_max`)
    /// into memory, encoded as an inline run of its key's shard, to be
    /// written by the op that links it (as `Zone::put_inline` does): no
    /// intent and no data object, so nothing is left to collect if it loses.
    async fn read_replica_inline(
        &self,
        bucket: &BucketInfo,
        body: Body,
        v: &IndexEntry,
        deadline: std::time::Instant,
    ) -> Result<ReplicaData> {
        let key = self.replica_data_key(v)?;
        let enc = crate::data::Encoding {
            key: key.as_ref(),
            hint: v.attrs.compress_hint(),
            checksum: None,
        };
        let (written, run, stored, permit) = self
            .read_inline_version(bucket, &v.key, body, (v.size, deadline), enc)
            .await?;
        crate::object::check_written(&written, (Some(v.size), None))?;
        if !is_copy_of(v, &written.md5) {
            return Err(ZoneError::BadDigest);
        }
        Ok(ReplicaData {
            run,
            inline: Some(stored),
            _budget: Some(permit),
        })
    }

    /// Records the intent of a replicated write (its data is stored next).
    async fn begin_replica_write(
        &self,
        bucket: &BucketInfo,
        key: &str,
        size: u64,
    ) -> Result<String> {
        let (inst, intent) = crate::Intent::new(key, size);
        let shard = index::shard_of(key, bucket.num_shards);
        self.put_intent_and_read(
            bucket,
            shard,
            (index::intent_key(&inst), crate::json(&intent)),
            &[],
            &[],
        )
        .await?;
        Ok(inst)
    }

    /// Applies the removal of a version in another zone (`stamp`: when and
    /// where it happened).
    pub async fn apply_removal(
        &self,
        bucket: &BucketInfo,
        key: &str,
        version_id: &str,
        stamp: Stamp,
        trace: Vec<String>,
    ) -> Result<Applied> {
        validate_key(key)?;
        let incoming = Incoming::Removal {
            key: key.to_string(),
            version_id: version_id.to_string(),
            stamp,
        };
        self.replica_commit(bucket, &incoming, None, None, trace)
            .await
    }

    /// How `incoming` would apply to the key as it is now.
    pub async fn replica_plan(&self, bucket: &BucketInfo, incoming: &Incoming) -> Result<Plan> {
        let key = incoming.key();
        let shard = index::shard_of(key, bucket.num_shards);
        let snap = self
            .shard_read(
                bucket,
                shard,
                &[index::tombstone_key(key)],
                &[RangeReq::prefix(
                    index::versions_prefix(key),
                    VERSIONS_PER_READ,
                )],
            )
            .await?;
        let local: Vec<IndexEntry> = versions_in(&snap, 0)?.into_iter().map(|v| v.2).collect();
        Ok(decide(&local, tombstone_in(&snap, key)?.as_ref(), incoming))
    }

    /// How each of `incoming` (all keys of `shard`) would apply to its key
    /// as the index is now: one index read per [`PLANS_PER_READ`] keys,
    /// where [`Zone::replica_plan`] costs one read per key (a full sync
    /// asks this for a whole listing page before fetching anything).
    pub async fn replica_plans(
        &self,
        bucket: &BucketInfo,
        shard: u32,
        incoming: &[Incoming],
    ) -> Result<Vec<Plan>> {
        let refs: Vec<&Incoming> = incoming.iter().collect();
        let mut plans = Vec::with_capacity(incoming.len());
        for chunk in refs.chunks(PLANS_PER_READ) {
            plans.extend(self.replica_plans_of(bucket, shard, chunk).await?);
        }
        Ok(plans)
    }

    /// [`Zone::replica_plans`] for keys of `shard` in one index read.
    async fn replica_plans_of(
        &self,
        bucket: &BucketInfo,
        shard: u32,
        incoming: &[&Incoming],
    ) -> Result<Vec<Plan>> {
        if let Some(other) = incoming
            .iter()
            .find(|inc| index::shard_of(inc.key(), bucket.num_shards) != shard)
        {
            return Err(ZoneError::InvalidArgument(format!(
                "{} is not a key of shard {shard}",
                other.key()
            )));
        }
        let probe: Vec<StagedChange> = incoming
            .iter()
            .map(|inc| StagedChange::new(self, inc, (None, None), Vec::new()))
            .collect();
        let (keys, ranges) = lookups(&probe);
        let snap = self.shard_read(bucket, shard, &keys, &ranges).await?;
        incoming
            .iter()
            .enumerate()
            .map(|(n, inc)| {
                let local: Vec<IndexEntry> =
                    versions_in(&snap, n)?.into_iter().map(|v| v.2).collect();
                Ok(decide(
                    &local,
                    tombstone_in(&snap, inc.key())?.as_ref(),
                    inc,
                ))
            })
            .collect()
    }

    /// Decides and applies `incoming` in one compare-and-swap on the key's
    /// shard; `data` is the run holding the version's bytes (its intent is
    /// consumed), `inline` the omap key and bytes of an inline run.
    async fn replica_commit(
        &self,
        bucket: &BucketInfo,
        incoming: &Incoming,
        data: Option<&DataRef>,
        inline: Option<&(Bytes, Bytes)>,
        trace: Vec<String>,
    ) -> Result<Applied> {
        let shard = index::shard_of(incoming.key(), bucket.num_shards);
        let change = StagedChange::new(self, incoming, (data, inline), trace);
        let (keys, ranges) = lookups(std::slice::from_ref(&change));
        let quiet = self.quiet(&change.trace);
        let due = self.gc_due_ms();
        self.shard_update_from(bucket, shard, keys, ranges, None, quiet, |snap| {
            let mut txn = ShardTxn::default();
            match change.stage(snap, 0, due, &mut txn)? {
                Applied::Skipped(s) => Ok(Step::Done(Applied::Skipped(s))),
                applied => Ok(Step::Commit(txn, applied)),
            }
        })
        .await
    }

    /// Nobody needs a data log hint for a change every zone already has.
    fn quiet(&self, trace: &[String]) -> bool {
        self.zonegroup_zone_ids().iter().all(|z| trace.contains(z))
    }

    /// Applies versions of distinct keys of one bucket shard that another
    /// zone stores (full sync): one index op records the intents of the
    /// data of all but the small ones (at most `inline_max` bytes, read into
    /// memory and written inline by the commit, as a local PUT of their size
    /// would be), the bytes are stored concurrently, and one index op
    /// commits them all (with one bilog entry each). Per item as
    /// [`Zone::apply_version`]; the outer error means nothing was committed.
    pub async fn apply_versions(
        &self,
        bucket: &BucketInfo,
        shard: u32,
        items: Vec<(IndexEntry, Option<Body>, Vec<String>)>,
    ) -> Result<Vec<Result<Applied>>> {
        use futures::StreamExt as _;
        let mut out: Vec<Option<Result<Applied>>> = (0..items.len()).map(|_| None).collect();
        let mut live = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for (i, (v, body, trace)) in items.into_iter().enumerate() {
            if let Err(e) = validate_key(&v.key) {
                out[i] = Some(Err(e));
            } else if index::shard_of(&v.key, bucket.num_shards) != shard
                || !seen.insert(v.key.clone())
            {
                out[i] = Some(Err(ZoneError::InvalidArgument(format!(
                    "{} is not a distinct key of shard {shard}",
                    v.key
                ))));
            } else {
                live.push((i, Incoming::Version(Box::new(v)), body, trace));
            }
        }
        // Decide on the index first: no bytes are stored for a change that loses.
        let incoming: Vec<&Incoming> = live.iter().map(|(_, inc, ..)| inc).collect();
        let plans = self.replica_plans_of(bucket, shard, &incoming).await?;
        let mut with_data = Vec::new();
        let mut plain = Vec::new();
        for ((i, inc, body, trace), plan) in live.into_iter().zip(plans) {
            let v = as_version(&inc);
            match plan {
                Plan::Skip(s) => out[i] = Some(Ok(Applied::Skipped(s))),
                Plan::Insert { .. } if !v.delete_marker && v.size > 0 => match body {
                    Some(b) => with_data.push((i, inc, b, trace)),
                    None => {
                        out[i] = Some(Err(ZoneError::InvalidArgument(format!(
                            "no data for version {} of {}",
                            v.version_id, v.key
                        ))))
                    }
                },
                _ => plain.push((i, inc, trace)),
            }
        }
        // Small versions are read into memory and committed inline; the
        // others are stored in the data pool under intents, all in one op.
        let (inline, with_data): (Vec<_>, Vec<_>) = with_data
            .into_iter()
            .partition(|(_, inc, ..)| self.stores_inline(as_version(inc)));
        let intents: Vec<(String, crate::Intent)> = with_data
            .iter()
            .map(|(_, inc, _, _)| {
                let v = as_version(inc);
                crate::Intent::new(&v.key, v.size)
            })
            .collect();
        if !intents.is_empty() {
            let kvs = intents
                .iter()
                .map(|(inst, intent)| (index::intent_key(inst), crate::json(intent)))
                .collect();
            self.put_intents_and_read(bucket, shard, kvs, &[], &[])
                .await?;
        }
        let deadline = self.write_deadline();
        type Stored = (usize, Incoming, Vec<String>, Result<ReplicaData>);
        let mut stores: Vec<futures::future::BoxFuture<'_, Stored>> = Vec::new();
        for (i, inc, body, trace) in inline {
            stores.push(Box::pin(async move {
                let r = self
                    .read_replica_inline(bucket, body, as_version(&inc), deadline)
                    .await;
                (i, inc, trace, r)
            }));
        }
        for ((i, inc, body, trace), (inst, _)) in with_data.into_iter().zip(intents) {
            stores.push(Box::pin(async move {
                let v = as_version(&inc);
                let r = match self
                    .store_replica_body(bucket, &inst, body, v, deadline)
                    .await
                {
                    Ok(w) if !is_copy_of(v, &w.md5) => Err(ZoneError::BadDigest),
                    Ok(w) => Ok(ReplicaData::in_pool(w.run(&inst))),
                    Err(e) => Err(e),
                };
                if r.is_err() {
                    self.abandon_write(bucket, &v.key, &inst, v.size).await;
                }
                (i, inc, trace, r)
            }));
        }
        let stored: Vec<Stored> = futures::stream::iter(stores)
            .buffer_unordered(8)
            .collect()
            .await;
        let mut commit = Vec::new();
        for (i, inc, trace, r) in stored {
            match r {
                Ok(data) => commit.push((i, inc, Some(data), trace)),
                Err(e) => out[i] = Some(Err(e)),
            }
        }
        commit.extend(plain.into_iter().map(|(i, inc, t)| (i, inc, None, t)));
        // Logged in the order given.
        commit.sort_by_key(|c| c.0);
        // Runs in the data pool, which a change that is not applied leaves
        // to collect (an inline run is written only by its change).
        let runs: Vec<(usize, String, u64)> = commit
            .iter()
            .enumerate()
            .filter_map(|(n, (_, _, data, _))| {
                data.as_ref()
                    .filter(|d| d.inline.is_none())
                    .map(|d| (n, d.run.inst.clone(), d.run.size))
            })
            .collect();
        let changes: Vec<StagedChange> = commit
            .iter()
            .map(|(_, inc, data, t)| {
                let parts = data
                    .as_ref()
                    .map_or((None, None), |d| (Some(&d.run), d.inline.as_ref()));
                StagedChange::new(self, inc, parts, t.clone())
            })
            .collect();
        let (keys, ranges) = lookups(&changes);
        let quiet = changes.iter().all(|c| self.quiet(&c.trace));
        let due = self.gc_due_ms();
        let committed = self
            .shard_update_from(bucket, shard, keys, ranges, None, quiet, |snap| {
                let mut txn = ShardTxn::default();
                let mut results = Vec::with_capacity(changes.len());
                for (n, c) in changes.iter().enumerate() {
                    let mut one = ShardTxn::default();
                    let r = c.stage(snap, n, due, &mut one);
                    if r.is_ok() {
                        txn.absorb(one);
                    }
                    results.push(r);
                }
                Ok(Step::Commit(txn, results))
            })
            .await;
        let results = match committed {
            Ok(r) => r,
            Err(e) => {
                for (n, inst, size) in &runs {
                    let v = as_version(&commit[*n].1);
                    self.abandon_write(bucket, &v.key, inst, *size).await;
                }
                return Err(e);
            }
        };
        for (n, inst, size) in &runs {
            if !matches!(results[*n], Ok(Applied::Stored { .. })) {
                let v = as_version(&commit[*n].1);
                self.abandon_write(bucket, &v.key, inst, *size).await;
            }
        }
        for ((i, ..), r) in commit.iter().zip(results) {
            out[*i] = Some(r);
        }
        Ok(out
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(ZoneError::InvalidArgument("not applied".into()))))
            .collect())
    }
}

/// A single PUT's ETag is the MD5 of its bytes: a copy that does not hash
/// to it is not the same object (multipart ETags cannot be checked so).
fn is_copy_of(v: &IndexEntry, md5: &[u8]) -> bool {
    v.parts != 0 || v.etag.contains('-') || hex(md5) == v.etag
}

/// The version `apply_versions` built `inc` from.
/// Keys whose plans one index read decides (bounds the read's size).
pub const PLANS_PER_READ: usize = 64;

fn as_version(inc: &Incoming) -> &IndexEntry {
    match inc {
        Incoming::Version(v) => v,
        Incoming::Removal { .. } => unreachable!("apply_versions only stages versions"),
    }
}

/// Where a replicated version's bytes went, ready to be linked.
struct ReplicaData {
    /// The run record.
    run: DataRef,
    /// The omap key and stored bytes of an inline run, written by its link.
    inline: Option<(Bytes, Bytes)>,
    /// Write budget held by inline bytes until they are committed.
    _budget: Option<tokio::sync::OwnedSemaphorePermit>,
}

impl ReplicaData {
    /// A run already stored in the data pool.
    fn in_pool(run: DataRef) -> Self {
        ReplicaData {
            run,
            inline: None,
            _budget: None,
        }
    }
}

/// One replicated change about to be staged into a shard transaction.
struct StagedChange<'a> {
    incoming: &'a Incoming,
    data: Option<&'a DataRef>,
    /// The omap key and bytes of `data` when it is an inline run.
    inline: Option<&'a (Bytes, Bytes)>,
    /// The operation's zone trace, this zone included.
    trace: Vec<String>,
}

/// The keys and ranges a shard snapshot needs for `changes`: range `n`
/// holds the versions of change `n`'s key.
fn lookups(changes: &[StagedChange]) -> (Vec<Bytes>, Vec<RangeReq>) {
    let mut keys = Vec::new();
    let mut ranges = Vec::new();
    for c in changes {
        let key = c.incoming.key();
        keys.push(index::current_key(key));
        keys.push(index::tombstone_key(key));
        if let Some(run) = c.data.filter(|r| r.inline_shard.is_none()) {
            keys.push(index::intent_key(&run.inst));
        }
        ranges.push(RangeReq::prefix(
            index::versions_prefix(key),
            VERSIONS_PER_READ,
        ));
    }
    (keys, ranges)
}

impl<'a> StagedChange<'a> {
    fn new(
        zone: &Zone,
        incoming: &'a Incoming,
        (data, inline): (Option<&'a DataRef>, Option<&'a (Bytes, Bytes)>),
        mut trace: Vec<String>,
    ) -> Self {
        let me = zone.zone_id();
        if !trace.contains(&me) {
            trace.push(me);
        }
        StagedChange {
            incoming,
            data,
            inline,
            trace,
        }
    }

    /// Decides this change against `snap` (range `at` holds its key's
    /// versions) and adds what it does to `txn`; a skip adds nothing.
    fn stage(&self, snap: &Snapshot, at: usize, due: u64, txn: &mut ShardTxn) -> Result<Applied> {
        let (incoming, data, trace) = (self.incoming, self.data, &self.trace);
        let key = incoming.key().to_string();
        let cur_key = index::current_key(&key);
        let tomb_key = index::tombstone_key(&key);
        let versions = versions_in(snap, at)?;
        let mut after: Vec<IndexEntry> = versions.iter().map(|v| v.2.clone()).collect();
        let tomb = tombstone_in(snap, &key)?;
        let cur: Option<IndexEntry> = snap.get(&cur_key)?;
        let versioned = snap.hdr.versioning != Versioning::Off;
        let (result, log) = match (decide(&after, tomb.as_ref(), incoming), incoming) {
            (Plan::Skip(s), _) => return Ok(Applied::Skipped(s)),
            (Plan::Insert { mut replaces, beat }, Incoming::Version(v)) => {
                let mut e = (**v).clone();
                e.zone_trace = trace.clone();
                e.from_upload = String::new();
                e.manifest = Manifest {
                    runs: data.cloned().into_iter().collect(),
                };
                if let Some(run) = data.filter(|r| r.inline_shard.is_none()) {
                    if snap.raw(&index::intent_key(&run.inst)).is_none() {
                        return Err(ZoneError::Expired);
                    }
                    txn.rm(index::intent_key(&run.inst));
                }
                if let Some((k, bytes)) = self.inline {
                    txn.set_raw(k.clone(), bytes.clone());
                }
                replaces.sort_unstable();
                for i in replaces.into_iter().rev() {
                    let (k, raw, old) = &versions[i];
                    txn.guard(k.clone(), Some(raw.clone()));
                    txn.rm(k.clone());
                    gc_for(txn, &key, old.manifest.runs.clone(), due);
                    after.remove(i);
                }
                if tomb.is_some() {
                    txn.rm(tomb_key.clone());
                }
                txn.set(index::version_key(&key, &e.order, &e.version_id), &e);
                after.push(e.clone());
                let op = if e.delete_marker {
                    BilogOp::DeleteMarker
                } else {
                    BilogOp::Write
                };
                let log = bilog(op, &e, versioned, trace.clone(), e.mtime_ns);
                (Applied::Stored { beat }, log)
            }
            (Plan::UpdateAttrs(i), Incoming::Version(v)) => {
                let (k, raw, old) = &versions[i];
                let mut e = old.clone();
                e.attrs = v.attrs.clone();
                txn.guard(k.clone(), Some(raw.clone()));
                txn.set(k.clone(), &e);
                after[i] = e.clone();
                let log = bilog(BilogOp::Attrs, &e, versioned, trace.clone(), now_ns());
                (Applied::AttrsUpdated, log)
            }
            (Plan::Remove { at, tombstone }, Incoming::Removal { stamp, .. }) => {
                let (k, raw, old) = &versions[at];
                txn.guard(k.clone(), Some(raw.clone()));
                txn.rm(k.clone());
                if !old.delete_marker {
                    gc_for(txn, &key, old.manifest.runs.clone(), due);
                }
                after.remove(at);
                if let Some(t) = tombstone {
                    txn.set(tomb_key.clone(), &t);
                }
                let log = bilog(
                    BilogOp::Delete,
                    old,
                    versioned,
                    trace.clone(),
                    stamp.mtime_ns,
                );
                (Applied::Removed, log)
            }
            (Plan::Tombstone(t), Incoming::Removal { version_id, .. }) => {
                txn.set(tomb_key.clone(), &t);
                let gone = IndexEntry {
                    key: key.clone(),
                    version_id: version_id.clone(),
                    mtime_ns: t.mtime_ns,
                    source_zone: t.zone.clone(),
                    ..Default::default()
                };
                let log = bilog(BilogOp::Delete, &gone, versioned, trace.clone(), t.mtime_ns);
                (Applied::Tombstoned, log)
            }
            (plan, inc) => {
                return Err(ZoneError::Corrupt {
                    what: format!("replicated change to {key}"),
                    reason: format!("plan {plan:?} does not fit {inc:?}"),
                });
            }
        };
        // The current entry follows the newest version.
        match (current_of(&after), &cur) {
            (Some(c), Some(old)) if c == old => {}
            (Some(c), _) => {
                txn.set(cur_key.clone(), c);
            }
            (None, Some(_)) => {
                txn.rm(cur_key.clone());
            }
            (None, None) => {}
        }
        txn.log(log);
        Ok(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::order_token;

    fn null(mtime: u64, zone: &str, etag: &str) -> IndexEntry {
        IndexEntry {
            key: "k".into(),
            version_id: "null".into(),
            order: order_token(mtime),
            mtime_ns: mtime,
            etag: etag.into(),
            source_zone: zone.into(),
            ..Default::default()
        }
    }

    fn versioned(mtime: u64, vid: &str) -> IndexEntry {
        IndexEntry {
            version_id: vid.into(),
            ..null(mtime, "a", vid)
        }
    }

    fn stamp(mtime: u64, zone: &str) -> Stamp {
        Stamp {
            mtime_ns: mtime,
            zone: zone.into(),
        }
    }

    /// Applies a plan to a model key (versions + tombstone), as the index does.
    fn apply(state: &mut (Vec<IndexEntry>, Option<Stamp>), inc: &Incoming) {
        let plan = decide(&state.0, state.1.as_ref(), inc);
        match (plan, inc) {
            (Plan::Insert { mut replaces, .. }, Incoming::Version(v)) => {
                replaces.sort_unstable();
                for i in replaces.into_iter().rev() {
                    state.0.remove(i);
                }
                state.0.push((**v).clone());
                state.1 = None;
            }
            (Plan::UpdateAttrs(i), Incoming::Version(v)) => state.0[i].attrs = v.attrs.clone(),
            (Plan::Remove { at, tombstone }, _) => {
                state.0.remove(at);
                if tombstone.is_some() {
                    state.1 = tombstone;
                }
            }
            (Plan::Tombstone(t), _) => state.1 = Some(t),
            (Plan::Skip(_), _) => {}
            (p, i) => panic!("plan {p:?} for {i:?}"),
        }
    }

    fn visible(state: &(Vec<IndexEntry>, Option<Stamp>)) -> Option<(String, String)> {
        current_of(&state.0).map(|c| (c.version_id.clone(), c.etag.clone()))
    }

    #[test]
    fn newer_null_write_wins_and_ties_go_to_the_larger_zone_id() {
        let local = vec![null(10, "a", "x")];
        let newer = Incoming::Version(Box::new(null(11, "b", "y")));
        assert_eq!(
            decide(&local, None, &newer),
            Plan::Insert {
                replaces: vec![0],
                beat: Some(stamp(10, "a"))
            }
        );
        let older = Incoming::Version(Box::new(null(9, "b", "y")));
        assert_eq!(
            decide(&local, None, &older),
            Plan::Skip(Skip::Lost {
                winner: stamp(10, "a")
            })
        );
        let tie_larger = Incoming::Version(Box::new(null(10, "b", "y")));
        assert!(matches!(
            decide(&local, None, &tie_larger),
            Plan::Insert { .. }
        ));
        let local_b = vec![null(10, "b", "y")];
        let tie_smaller = Incoming::Version(Box::new(null(10, "a", "x")));
        assert!(matches!(
            decide(&local_b, None, &tie_smaller),
            Plan::Skip(Skip::Lost { .. })
        ));
    }

    #[test]
    fn a_delete_beats_older_writes_through_its_tombstone() {
        // Zone b deleted at 20; zone a's write at 15 arrives afterwards.
        let tomb = stamp(20, "b");
        assert_eq!(
            decide(
                &[],
                Some(&tomb),
                &Incoming::Version(Box::new(null(15, "a", "x")))
            ),
            Plan::Skip(Skip::Lost {
                winner: tomb.clone()
            })
        );
        // A write after the delete still wins.
        assert!(matches!(
            decide(
                &[],
                Some(&tomb),
                &Incoming::Version(Box::new(null(25, "a", "x")))
            ),
            Plan::Insert { .. }
        ));
        // A delete does not remove a newer write.
        let removal = Incoming::Removal {
            key: "k".into(),
            version_id: "null".into(),
            stamp: stamp(20, "b"),
        };
        assert!(matches!(
            decide(&[null(30, "a", "x")], None, &removal),
            Plan::Skip(Skip::Lost { .. })
        ));
        assert_eq!(
            decide(&[null(10, "a", "x")], None, &removal),
            Plan::Remove {
                at: 0,
                tombstone: Some(stamp(20, "b"))
            }
        );
        assert_eq!(decide(&[], None, &removal), Plan::Tombstone(stamp(20, "b")));
    }

    #[test]
    fn versions_with_ids_are_all_kept_and_the_newest_is_current() {
        let mut s = (Vec::new(), None);
        apply(&mut s, &Incoming::Version(Box::new(versioned(20, "v20"))));
        apply(&mut s, &Incoming::Version(Box::new(versioned(10, "v10"))));
        apply(&mut s, &Incoming::Version(Box::new(versioned(10, "v10"))));
        assert_eq!(s.0.len(), 2);
        assert_eq!(visible(&s).unwrap().0, "v20");
        apply(
            &mut s,
            &Incoming::Removal {
                key: "k".into(),
                version_id: "v20".into(),
                stamp: stamp(30, "a"),
            },
        );
        assert_eq!(visible(&s).unwrap().0, "v10");
        assert_eq!(
            decide(
                &s.0,
                None,
                &Incoming::Removal {
                    key: "k".into(),
                    version_id: "v20".into(),
                    stamp: stamp(30, "a")
                }
            ),
            Plan::Skip(Skip::Absent)
        );
    }

    /// Every order of delivery of a set of competing changes ends in the
    /// same visible state (the property that makes zones converge).
    #[test]
    fn every_delivery_order_converges() {
        let changes = [
            Incoming::Version(Box::new(null(10, "a", "a10"))),
            Incoming::Version(Box::new(null(12, "b", "b12"))),
            Incoming::Removal {
                key: "k".into(),
                version_id: "null".into(),
                stamp: stamp(11, "a"),
            },
            Incoming::Version(Box::new(null(12, "a", "a12"))),
            Incoming::Removal {
                key: "k".into(),
                version_id: "null".into(),
                stamp: stamp(14, "b"),
            },
            Incoming::Version(Box::new(null(13, "c", "c13"))),
        ];
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for take in 1..=changes.len() {
            let subset = &changes[..take];
            let mut outcomes = std::collections::BTreeSet::new();
            for _ in 0..200 {
                let mut order: Vec<usize> = (0..subset.len()).collect();
                for i in (1..order.len()).rev() {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    order.swap(i, (seed % (i as u64 + 1)) as usize);
                }
                let mut s = (Vec::new(), None);
                for i in order {
                    apply(&mut s, &subset[i]);
                }
                outcomes.insert(visible(&s));
            }
            assert_eq!(outcomes.len(), 1, "first {take} changes: {outcomes:?}");
        }
    }
}
