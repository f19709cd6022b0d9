//! Garbage collection and consistency checks. Unreferenced data is always
//! named by a GC record (`g…`) in its bucket's index shard, written in the
//! same op that unreferenced it; a crashed writer's data is named by its
//! intent (`i…`). GC turns expired intents into GC records with a
//! compare-and-swap (so a writer that finishes late finds its intent gone and
//! fails instead of linking deleted data), deletes the data of due records,
//! then drops the records.

use crate::data::{stripe_count, stripe_name};
use crate::index::{self, GC_PREFIX, INTENT_PREFIX, PART_PREFIX, RangeReq, UPLOAD_PREFIX};
use crate::{BucketInfo, GcRecord, IndexEntry, Intent, PartRecord, Result, Zone, now_ns, parse};
use bytes::Bytes;
use meridian_client::ClientError;
use meridian_client::ops::sub;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// What a GC pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct GcReport {
    /// Buckets visited.
    pub buckets: u64,
    /// GC records completed.
    pub records: u64,
    /// Expired intents (crashed writes) collected.
    pub expired_writes: u64,
    /// Part records of uploads that no longer exist collected.
    pub orphaned_parts: u64,
    /// Data objects deleted.
    pub objects_deleted: u64,
    /// Log entries trimmed (zone without peers).
    pub log_entries_trimmed: u64,
    /// Null-version tombstones older than `rgw_sync_tombstone_ttl_s` dropped.
    pub tombstones_expired: u64,
}

impl GcReport {
    fn add(&mut self, o: &GcReport) {
        self.buckets += o.buckets;
        self.records += o.records;
        self.expired_writes += o.expired_writes;
        self.orphaned_parts += o.orphaned_parts;
        self.objects_deleted += o.objects_deleted;
        self.log_entries_trimmed += o.log_entries_trimmed;
        self.tombstones_expired += o.tombstones_expired;
    }
}

/// A pending GC record (`gc list`).
#[derive(Debug, Clone, Serialize)]
pub struct GcItem {
    /// Bucket.
    pub bucket: String,
    /// Key the data belonged to.
    pub key: String,
    /// Due, Unix ms.
    pub due_ms: u64,
    /// Data objects it will delete.
    pub objects: u64,
}

/// `bucket check`: data objects nothing references, and references to data that is gone.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CheckReport {
    /// Bucket.
    pub bucket: String,
    /// Data objects of the bucket: stripes in the data pool and inline runs.
    pub data_objects: u64,
    /// Data objects referenced by nothing (no version, part of a live upload,
    /// intent or GC record).
    pub orphans: Vec<String>,
    /// Stripes a version or part references that do not exist.
    pub missing: Vec<String>,
}

/// The upload id of a part record's omap key (`p<upload id>.<part>`).
fn upload_of_part(key: &[u8]) -> &[u8] {
    let rest = key.get(1..).unwrap_or_default();
    rest.iter()
        .rposition(|&b| b == b'.')
        .map_or(rest, |dot| &rest[..dot])
}

/// The upload id of an upload record's omap key (`u<key>\0<upload id>`;
/// object keys never hold NUL).
fn upload_of_record(key: &[u8]) -> &[u8] {
    key.iter()
        .position(|&b| b == 0)
        .map_or(&[][..], |nul| &key[nul + 1..])
}

fn due_of(key: &[u8]) -> u64 {
    std::str::from_utf8(key.get(1..21).unwrap_or_default())
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

impl Zone {
    /// One GC pass over every bucket. `include_all` ignores the minimum wait
    /// of GC records (never the expiry of writes in progress).
    pub async fn gc_process(&self, include_all: bool) -> Result<GcReport> {
        let mut report = GcReport::default();
        // A zone with multi-site peers keeps its logs for them.
        let trim = self.params().trim_logs_without_peers && !self.has_peers();
        for b in self.list_buckets(None).await? {
            let info = match self.bucket_fresh(&b.name).await {
                Ok((i, _)) => i,
                Err(crate::ZoneError::NoSuchBucket(_)) => continue,
                Err(e) => return Err(e),
            };
            report.buckets += 1;
            for s in 0..info.num_shards {
                let r = self.collect_shard(&info, s, include_all, false).await?;
                report.add(&r);
                if trim {
                    report.log_entries_trimmed += self.trim_bilog(&info, s).await?;
                }
            }
        }
        if trim {
            report.log_entries_trimmed += self.trim_unshared_logs().await?;
        }
        Ok(report)
    }

    /// Collects one shard: expired intents (all, if `everything`) become GC
    /// records; due records (all, if `include_all`) are deleted.
    pub(crate) async fn collect_shard(
        &self,
        b: &BucketInfo,
        shard: u32,
        include_all: bool,
        everything: bool,
    ) -> Result<GcReport> {
        let mut report = GcReport::default();
        let obj = index::shard_object(&b.id, shard);
        let expiry = self.params().pending_expiry.as_nanos() as u64;
        let now = now_ns();
        // Intents: crashed writes.
        let mut after = Bytes::new();
        loop {
            let snap = self
                .shard_read(
                    b,
                    shard,
                    &[],
                    &[RangeReq {
                        prefix: Bytes::from_static(INTENT_PREFIX),
                        start_after: after.clone(),
                        max: 1000,
                    }],
                )
                .await?;
            let (entries, more) = snap.ranges.into_iter().next().unwrap_or_default();
            for (k, v) in &entries {
                let intent: Intent = parse("intent", v)?;
                if !everything && intent.started_ns + expiry > now {
                    continue;
                }
                let rec = GcRecord {
                    runs: vec![intent.data.clone()],
                    key: intent.key.clone(),
                };
                let ops = vec![
                    sub::omap_cmp(k.clone(), Some(v.clone())),
                    sub::omap_rm(vec![k.clone()]),
                    sub::omap_set(vec![(
                        index::gc_key(meridian_common::now_unix_ms(), &intent.data.inst),
                        crate::json(&rec),
                    )]),
                ];
                match self.cluster().op(&self.pools().index, &obj, ops).await {
                    Ok(_) => report.expired_writes += 1,
                    // Linked or abandoned meanwhile: not ours to collect.
                    Err(ClientError::GuardFailed(_)) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            match entries.last() {
                Some((k, _)) if more => after = k.clone(),
                _ => break,
            }
        }
        report.orphaned_parts += self.collect_orphaned_parts(b, shard).await?;
        report.tombstones_expired += self.expire_tombstones(b, shard).await?;
        // GC records, oldest due first.
        let now_ms = meridian_common::now_unix_ms();
        loop {
            let snap = self
                .shard_read(
                    b,
                    shard,
                    &[],
                    &[RangeReq::prefix(Bytes::from_static(GC_PREFIX), 100)],
                )
                .await?;
            let (entries, _) = snap.ranges.into_iter().next().unwrap_or_default();
            let due: Vec<_> = entries
                .into_iter()
                .filter(|(k, _)| include_all || due_of(k) <= now_ms)
                .collect();
            if due.is_empty() {
                break;
            }
            let mut done = Vec::with_capacity(due.len());
            for (k, v) in due {
                let rec: GcRecord = parse("gc record", &v)?;
                report.objects_deleted +=
                    self.delete_runs((&b.id, &rec.key), &rec.runs).await? as u64;
                report.records += 1;
                done.push(k);
            }
            self.cluster()
                .op(&self.pools().index, &obj, vec![sub::omap_rm(done)])
                .await?;
        }
        Ok(report)
    }

    /// Drops tombstones older than the tombstone TTL: by then every zone
    /// has long applied the delete, and a write older than it that still
    /// arrives (after an outage longer than the TTL) wins instead of losing.
    async fn expire_tombstones(&self, b: &BucketInfo, shard: u32) -> Result<u64> {
        let ttl = self.params().tombstone_ttl.as_nanos() as u64;
        let now = now_ns();
        let obj = index::shard_object(&b.id, shard);
        let mut after = Bytes::new();
        let mut n = 0;
        loop {
            let snap = self
                .shard_read(
                    b,
                    shard,
                    &[],
                    &[RangeReq {
                        prefix: Bytes::from_static(index::TOMBSTONE_PREFIX),
                        start_after: after.clone(),
                        max: 1000,
                    }],
                )
                .await?;
            let (entries, more) = snap.ranges.into_iter().next().unwrap_or_default();
            for (k, v) in &entries {
                let t: crate::replica::Stamp = parse("tombstone", v)?;
                if t.mtime_ns.saturating_add(ttl) > now {
                    continue;
                }
                let ops = vec![
                    sub::omap_cmp(k.clone(), Some(v.clone())),
                    sub::omap_rm(vec![k.clone()]),
                ];
                match self.cluster().op(&self.pools().index, &obj, ops).await {
                    Ok(_) => n += 1,
                    Err(ClientError::GuardFailed(_)) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            match entries.last() {
                Some((k, _)) if more => after = k.clone(),
                _ => return Ok(n),
            }
        }
    }

    /// Turns part records whose upload is gone into GC records. Such parts
    /// came from an UploadPart whose commit raced the upload's completion or
    /// abort before part commits rewrote the upload record; nothing else
    /// would ever remove them.
    async fn collect_orphaned_parts(&self, b: &BucketInfo, shard: u32) -> Result<u64> {
        // Parts are read before uploads: a part was committed while its
        // upload existed, and upload ids are never reused, so an upload that
        // the later read misses is gone for good.
        let parts = self
            .scan_shard(b, shard, Bytes::from_static(PART_PREFIX))
            .await?;
        if parts.is_empty() {
            return Ok(0);
        }
        let uploads: BTreeSet<Bytes> = self
            .scan_shard(b, shard, Bytes::from_static(UPLOAD_PREFIX))
            .await?
            .into_iter()
            .map(|(k, _)| Bytes::copy_from_slice(upload_of_record(&k)))
            .collect();
        let obj = index::shard_object(&b.id, shard);
        let mut collected = 0;
        for (k, v) in parts {
            if uploads.contains(upload_of_part(&k)) {
                continue;
            }
            let part: PartRecord = parse("part record", &v)?;
            let rec = GcRecord {
                runs: vec![part.data.clone()],
                key: format!(
                    "part {} of upload {}",
                    part.part,
                    String::from_utf8_lossy(upload_of_part(&k))
                ),
            };
            let ops = vec![
                sub::omap_cmp(k.clone(), Some(v.clone())),
                sub::omap_rm(vec![k.clone()]),
                sub::omap_set(vec![(
                    index::gc_key(meridian_common::now_unix_ms(), &part.data.inst),
                    crate::json(&rec),
                )]),
            ];
            match self.cluster().op(&self.pools().index, &obj, ops).await {
                Ok(_) => collected += 1,
                // Removed meanwhile (another GC pass): not ours any more.
                Err(ClientError::GuardFailed(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(collected)
    }

    /// Pending GC records of every bucket (due ones only, unless `include_all`).
    pub async fn gc_list(&self, include_all: bool) -> Result<Vec<GcItem>> {
        let now_ms = meridian_common::now_unix_ms();
        let mut out = Vec::new();
        for b in self.list_buckets(None).await? {
            let Ok((info, _)) = self.bucket_fresh(&b.name).await else {
                continue;
            };
            for s in 0..info.num_shards {
                let entries = self
                    .scan_shard(&info, s, Bytes::from_static(GC_PREFIX))
                    .await?;
                for (k, v) in entries {
                    let due_ms = due_of(&k);
                    if !include_all && due_ms > now_ms {
                        continue;
                    }
                    let rec: GcRecord = parse("gc record", &v)?;
                    out.push(GcItem {
                        bucket: info.name.clone(),
                        key: rec.key,
                        due_ms,
                        objects: rec.runs.iter().map(|r| stripe_count(r.size)).sum(),
                    });
                }
            }
        }
        Ok(out)
    }

    /// Drops the upload records of a shard whose bucket is being deleted
    /// (DeleteBucket aborts its multipart uploads, as AWS does); their parts
    /// are then orphaned and collected with the rest. The shard is marked
    /// deleting, so no part can be added meanwhile. Returns how many went.
    pub(crate) async fn drop_uploads_of_deleting_shard(
        &self,
        b: &BucketInfo,
        shard: u32,
    ) -> Result<u64> {
        let obj = index::shard_object(&b.id, shard);
        let mut dropped = 0;
        for (k, v) in self
            .scan_shard(b, shard, Bytes::from_static(UPLOAD_PREFIX))
            .await?
        {
            let ops = vec![sub::omap_cmp(k.clone(), Some(v)), sub::omap_rm(vec![k])];
            match self.cluster().op(&self.pools().index, &obj, ops).await {
                Ok(_) => dropped += 1,
                Err(ClientError::GuardFailed(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(dropped)
    }

    /// Every entry of one shard with `prefix` (paged).
    async fn scan_shard(
        &self,
        b: &BucketInfo,
        shard: u32,
        prefix: Bytes,
    ) -> Result<Vec<(Bytes, Bytes)>> {
        let mut out = Vec::new();
        self.scan_shard_pages(b, shard, prefix, 1000, |page| out.extend(page))
            .await?;
        Ok(out)
    }

    /// Hands every entry of one shard with `prefix` to `page`, `max` at a time.
    async fn scan_shard_pages(
        &self,
        b: &BucketInfo,
        shard: u32,
        prefix: Bytes,
        max: u32,
        mut page: impl FnMut(Vec<(Bytes, Bytes)>),
    ) -> Result<()> {
        let mut after = Bytes::new();
        loop {
            let snap = self
                .shard_read(
                    b,
                    shard,
                    &[],
                    &[RangeReq {
                        prefix: prefix.clone(),
                        start_after: after.clone(),
                        max,
                    }],
                )
                .await?;
            let (entries, more) = snap.ranges.into_iter().next().unwrap_or_default();
            if let Some((k, _)) = entries.last() {
                after = k.clone();
            }
            page(entries);
            if !more {
                return Ok(());
            }
        }
    }

    /// Compares the data pool and the inline runs with everything the
    /// bucket's index references.
    pub async fn check_bucket(&self, name: &str) -> Result<CheckReport> {
        let (b, _) = self.bucket_fresh(name).await?;
        // inst -> stripes that may exist; `exact` insts must have all of them.
        let mut may: BTreeMap<String, u64> = BTreeMap::new();
        let mut exact: BTreeSet<String> = BTreeSet::new();
        let mut note = |inst: &str, size: u64, must: bool| {
            let e = may.entry(inst.to_string()).or_insert(0);
            *e = (*e).max(stripe_count(size));
            if must {
                exact.insert(format!("{inst}:{}", stripe_count(size)));
            }
        };
        let mut inline_report = CheckReport::default();
        for s in 0..b.num_shards {
            // Inline runs of this shard: omap key -> a version (not only a
            // GC record) references it.
            let mut inline: BTreeMap<Bytes, bool> = BTreeMap::new();
            // Sources before destinations (intent → part or version, part →
            // version, anything → GC record), so data that moves from one
            // reference to another during the scan is seen in one of them.
            for (_, v) in self
                .scan_shard(&b, s, Bytes::from_static(INTENT_PREFIX))
                .await?
            {
                let i: Intent = parse("intent", &v)?;
                note(&i.data.inst, i.data.size, false);
            }
            let parts = self
                .scan_shard(&b, s, Bytes::from_static(PART_PREFIX))
                .await?;
            let uploads: BTreeSet<Bytes> = self
                .scan_shard(&b, s, Bytes::from_static(UPLOAD_PREFIX))
                .await?
                .into_iter()
                .map(|(k, _)| Bytes::copy_from_slice(upload_of_record(&k)))
                .collect();
            for (k, v) in parts {
                // A part of an upload that is gone references nothing (GC
                // collects it); its data shows as orphaned until then.
                if uploads.contains(upload_of_part(&k)) {
                    let p: PartRecord = parse("part record", &v)?;
                    note(&p.data.inst, p.data.size, true);
                }
            }
            for (_, v) in self
                .scan_shard(&b, s, Bytes::from_static(index::VERSION_PREFIX))
                .await?
            {
                let e: IndexEntry = parse("index entry", &v)?;
                for r in &e.manifest.runs {
                    match r.inline_shard {
                        Some(_) => {
                            inline.insert(index::inline_key(&e.key, &r.inst), true);
                        }
                        None => note(&r.inst, r.size, true),
                    }
                }
            }
            for (_, v) in self
                .scan_shard(&b, s, Bytes::from_static(GC_PREFIX))
                .await?
            {
                let g: GcRecord = parse("gc record", &v)?;
                for r in &g.runs {
                    match r.inline_shard {
                        Some(_) => {
                            inline
                                .entry(index::inline_key(&g.key, &r.inst))
                                .or_insert(false);
                        }
                        None => note(&r.inst, r.size, false),
                    }
                }
            }
            // Inline data last: it is written with the version that references
            // it and deleted only after that version became a GC record.
            let shard_obj = index::shard_object(&b.id, s);
            let named = |k: &[u8]| format!("{shard_obj}/{}", String::from_utf8_lossy(k));
            // Values come with the keys (the op has no keys-only range):
            // pages of at most 16 MiB, none kept.
            let per_page = (16 << 20) / self.params().inline_max.max(1);
            let prefix = Bytes::from_static(index::INLINE_PREFIX);
            self.scan_shard_pages(&b, s, prefix, per_page.clamp(1, 1000) as u32, |page| {
                for (k, _) in page {
                    inline_report.data_objects += 1;
                    if inline.remove(&k).is_none() {
                        inline_report.orphans.push(named(&k));
                    }
                }
            })
            .await?;
            for (k, must) in inline {
                if must {
                    inline_report.missing.push(named(&k));
                }
            }
        }
        let prefix = format!("{}_", b.id);
        let present: BTreeSet<String> = self
            .cluster()
            .list(&self.pools().data)
            .await?
            .into_iter()
            .filter(|n| n.starts_with(&prefix))
            .collect();
        let mut report = CheckReport {
            bucket: name.into(),
            data_objects: present.len() as u64 + inline_report.data_objects,
            orphans: inline_report.orphans,
            missing: inline_report.missing,
        };
        for n in &present {
            let rest = &n[prefix.len()..];
            let (inst, stripe) = match rest.split_once('.') {
                Some((i, s)) => (i, s.parse::<u64>().unwrap_or(u64::MAX)),
                None => (rest, 0),
            };
            if may.get(inst).is_none_or(|count| stripe >= *count) {
                report.orphans.push(n.clone());
            }
        }
        for e in exact {
            let (inst, count) = e.split_once(':').unwrap_or_default();
            for s in 0..count.parse::<u64>().unwrap_or(0) {
                let name = stripe_name(&b.id, inst, s);
                if !present.contains(&name) {
                    report.missing.push(name);
                }
            }
        }
        Ok(report)
    }

    /// Runs GC every `period` until the process ends (every gateway runs one;
    /// concurrent passes are safe: every step is idempotent or guarded).
    pub async fn gc_worker(self, period: Duration) {
        loop {
            tokio::time::sleep(period).await;
            match self.gc_process(false).await {
                Ok(r) if r.records > 0 || r.expired_writes > 0 => {
                    tracing::info!(
                        records = r.records,
                        crashed_writes = r.expired_writes,
                        deleted = r.objects_deleted,
                        "gc pass"
                    );
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "gc pass failed; retrying next period"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_and_upload_keys_name_their_upload() {
        let part = index::part_key("0123456789abcdef0123456789abcdef", 42);
        assert_eq!(upload_of_part(&part), b"0123456789abcdef0123456789abcdef");
        let up = index::upload_key("dir/a.b.c", "0123456789abcdef0123456789abcdef");
        assert_eq!(upload_of_record(&up), b"0123456789abcdef0123456789abcdef");
        assert_eq!(upload_of_record(b"ukey-without-nul"), b"");
    }
}
