//! Object versions: PUT (intent → data → link), lookup, delete (with
//! delete markers and version promotion), attribute updates and listings.
//! "Link" is the one place a new version becomes visible; PUT, copy,
//! completed multipart uploads and (later) sync all go through it.

use crate::checksum::{ChecksumAlgorithm, ChecksumType, ObjectChecksum};
use crate::data::Body;
use crate::index::{self, MergedScan, RangeReq, Snapshot, Step};
use crate::replica::Stamp;
use crate::{
    BilogEntry, BilogOp, BucketInfo, DataRef, GcRecord, IndexEntry, Intent, Manifest, ObjectAttrs,
    PartRecord, Result, UploadRecord, Versioning, Zone, ZoneError, hex, now_ns, parse, random_id,
};
use bytes::Bytes;
use md5::{Digest as _, Md5};
use std::time::Instant;

/// Largest key (AWS: 1024 bytes of UTF-8).
pub const MAX_KEY_LEN: usize = 1024;
/// Versions of one key a single index read considers (replacing the `null`
/// version of a key with more versions than this finds only the newest ones).
pub(crate) const VERSIONS_PER_READ: u32 = 10_000;

/// Conditions of a conditional write (If-Match / If-None-Match on PUT).
#[derive(Debug, Clone, Default)]
pub struct WriteConditions {
    /// Write only if the current version has this ETag.
    pub if_match: Option<String>,
    /// Write only if the current version does not have this ETag (`*`: does not exist).
    pub if_none_match: Option<String>,
}

impl WriteConditions {
    fn check(&self, cur: Option<&IndexEntry>) -> Result<()> {
        let live = cur.filter(|e| !e.delete_marker);
        if let Some(m) = &self.if_match
            && !live.is_some_and(|e| etag_matches(m, &e.etag))
        {
            return Err(ZoneError::PreconditionFailed);
        }
        if let Some(m) = &self.if_none_match
            && live.is_some_and(|e| etag_matches(m, &e.etag))
        {
            return Err(ZoneError::PreconditionFailed);
        }
        Ok(())
    }
}

/// True if an If-Match style list (`*`, or comma-separated quoted ETags) matches `etag`.
pub fn etag_matches(list: &str, etag: &str) -> bool {
    list.split(',')
        .map(str::trim)
        .any(|t| t == "*" || t.trim_start_matches("W/").trim_matches('"') == etag)
}

/// What a PUT carries besides its body.
#[derive(Debug, Clone, Default)]
pub struct PutOptions {
    /// Owner uid.
    pub owner: String,
    /// HTTP attributes.
    pub attrs: ObjectAttrs,
    /// The body's MD5 as the client declared it (Content-MD5).
    pub content_md5: Option<[u8; 16]>,
    /// Declared length, when known (Content-Length / x-amz-decoded-content-length).
    pub length: Option<u64>,
    /// Conditional write.
    pub conditions: WriteConditions,
    /// The key the data is stored under (`attrs.encryption` says how it was chosen).
    pub data_key: Option<crate::crypt::DataKey>,
    /// The additional checksum the version keeps (computed over the body).
    pub checksum: Option<crate::checksum::ChecksumAlgorithm>,
}

/// What a successful write returns.
#[derive(Debug, Clone, PartialEq)]
pub struct PutResult {
    /// ETag without quotes.
    pub etag: String,
    /// Version id (`null` in unversioned buckets).
    pub version_id: String,
    /// The version's mtime, ns.
    pub mtime_ns: u64,
    /// Size.
    pub size: u64,
    /// The version's additional checksum.
    pub checksum: Option<crate::checksum::ObjectChecksum>,
    /// Parts (0 for a single PUT): a composite checksum shows their count.
    pub parts: u32,
}

/// Conditions of a conditional delete (S3's `If-Match`,
/// `x-amz-if-match-last-modified-time`, `x-amz-if-match-size`; lifecycle
/// uses the exact mtime). They hold against the version the delete takes
/// (the current one without a version id); a missing one is no error and
/// nothing is done, as S3 answers 204.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeleteConditions {
    /// The version's ETag matches this If-Match list.
    pub if_match: Option<String>,
    /// Its mtime, in whole seconds, is this.
    pub last_modified_s: Option<i64>,
    /// Its mtime is exactly this (ns).
    pub mtime_ns: Option<u64>,
    /// Its size is this.
    pub size: Option<u64>,
    /// `x-amz-bypass-governance-retention` by a caller allowed to.
    pub bypass_governance: bool,
}

impl DeleteConditions {
    fn is_empty(&self) -> bool {
        self.if_match.is_none()
            && self.last_modified_s.is_none()
            && self.mtime_ns.is_none()
            && self.size.is_none()
    }

    fn check(&self, e: &IndexEntry) -> Result<()> {
        let fails = self
            .if_match
            .as_ref()
            .is_some_and(|m| !etag_matches(m, &e.etag))
            || self
                .last_modified_s
                .is_some_and(|s| (e.mtime_ns / 1_000_000_000) as i64 != s)
            || self.mtime_ns.is_some_and(|ns| e.mtime_ns != ns)
            || self.size.is_some_and(|sz| e.size != sz);
        if fails {
            Err(ZoneError::PreconditionFailed)
        } else {
            Ok(())
        }
    }
}

/// What a delete did.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DeleteResult {
    /// Version id created (a delete marker) or removed.
    pub version_id: Option<String>,
    /// A delete marker was created, or the removed version was one.
    pub delete_marker: bool,
}

/// The multipart side of a link: the upload it completes.
#[derive(Debug, Clone, Default)]
pub struct CompleteUpload {
    /// Upload id.
    pub upload_id: String,
    /// Parts the client listed.
    pub parts: Vec<ListedPart>,
    /// The object's checksum as the client computed it (checked, if given).
    pub checksum: Option<(crate::checksum::ChecksumAlgorithm, String)>,
    /// The object's size as the client declared it (`x-amz-mp-object-size`).
    pub size: Option<u64>,
}

impl CompleteUpload {
    /// A completion of `upload_id` from (part number, ETag) pairs alone.
    pub fn of(upload_id: &str, parts: Vec<(u32, String)>) -> Self {
        CompleteUpload {
            upload_id: upload_id.to_string(),
            parts: parts
                .into_iter()
                .map(|(number, etag)| ListedPart {
                    number,
                    etag,
                    checksums: Vec::new(),
                })
                .collect(),
            ..Default::default()
        }
    }
}

/// A part as CompleteMultipartUpload lists it.
#[derive(Debug, Clone, Default)]
pub struct ListedPart {
    /// Part number.
    pub number: u32,
    /// Its ETag.
    pub etag: String,
    /// Its checksums as the client computed them (each must match).
    pub checksums: Vec<(crate::checksum::ChecksumAlgorithm, String)>,
}

/// A version about to be linked into the index.
pub(crate) struct Link {
    pub key: String,
    /// Filled in except version_id, order and mtime_ns (unless `fixed`).
    pub entry: IndexEntry,
    pub intent: Option<String>,
    pub upload: Option<CompleteUpload>,
    pub conditions: WriteConditions,
    /// A snapshot of the key's shard taken with the intent (saves a read).
    pub first: Option<Snapshot>,
    /// The omap key and stored bytes of an inline run, written with the link.
    pub inline: Option<(Bytes, Bytes)>,
}

/// Minimum size of every part but the last.
pub const MIN_PART_SIZE: u64 = 5 << 20;

/// A version id of a version written at `mtime_ns`: its order token and 8
/// random hex digits, so the index key can be computed from the id alone.
pub fn new_version_id(mtime_ns: u64) -> String {
    format!(
        "{}{:08x}",
        index::order_token(mtime_ns),
        rand::random::<u32>()
    )
}

/// The index key of version `vid` of `key`, when computable from the id.
fn version_key_of(key: &str, vid: &str) -> Option<Bytes> {
    if vid.len() == 24 && vid.bytes().all(|b| b.is_ascii_hexdigit()) {
        Some(index::version_key(key, &vid[..16], vid))
    } else {
        None
    }
}

/// The current version of `key` in `snap` (which read its current key).
fn current_in(snap: &Snapshot, key: &str) -> Result<IndexEntry> {
    let e: IndexEntry = snap
        .get(&index::current_key(key))?
        .ok_or_else(|| ZoneError::NoSuchKey(key.into()))?;
    if e.delete_marker {
        return Err(ZoneError::DeleteMarker {
            key: key.into(),
            version_id: e.version_id,
        });
    }
    Ok(e)
}

/// The index entry of a PUT that stored `written` as `run` (no run when empty).
fn put_entry(
    key: &str,
    written: &crate::data::Written,
    run: DataRef,
    owner: String,
    mut attrs: ObjectAttrs,
) -> IndexEntry {
    attrs.checksum = written.checksum.clone();
    IndexEntry {
        key: key.to_string(),
        size: written.size,
        etag: hex(&written.md5),
        owner,
        attrs,
        manifest: Manifest {
            runs: if written.size == 0 {
                Vec::new()
            } else {
                vec![run]
            },
        },
        ..Default::default()
    }
}

/// Checks what a body stored against its declared length and Content-MD5.
pub(crate) fn check_written(
    w: &crate::data::Written,
    (length, content_md5): (Option<u64>, Option<[u8; 16]>),
) -> Result<()> {
    if let Some(l) = length
        && w.size != l
    {
        return Err(ZoneError::Body(format!(
            "the body had {} bytes, not the declared {l}",
            w.size
        )));
    }
    if let Some(m) = content_md5
        && m != w.md5
    {
        return Err(ZoneError::BadDigest);
    }
    Ok(())
}

/// Checks a key against S3's limits.
pub fn validate_key(key: &str) -> Result<()> {
    if key.is_empty() || key.len() > MAX_KEY_LEN {
        return Err(ZoneError::InvalidArgument(format!(
            "object keys are 1 to {MAX_KEY_LEN} bytes"
        )));
    }
    if key.contains('\0') {
        return Err(ZoneError::InvalidArgument(
            "object keys must not contain NUL".into(),
        ));
    }
    Ok(())
}

impl Intent {
    /// A new write of at most `size_bound` bytes for `key`, with a fresh instance id.
    pub(crate) fn new(key: &str, size_bound: u64) -> (String, Intent) {
        let inst = random_id();
        let intent = Intent {
            data: DataRef::plain(&inst, size_bound),
            key: key.to_string(),
            started_ns: now_ns(),
        };
        (inst, intent)
    }
}

/// What a link reads of the key's shard: the current entry, the intent (and
/// upload), every version (and part).
fn link_reads(
    key: &str,
    intent: Option<&str>,
    upload: Option<&str>,
) -> (Vec<Bytes>, Vec<RangeReq>) {
    let mut keys = vec![index::current_key(key), index::tombstone_key(key)];
    if let Some(i) = intent {
        keys.push(index::intent_key(i));
    }
    let mut ranges = vec![RangeReq::prefix(
        index::versions_prefix(key),
        VERSIONS_PER_READ,
    )];
    if let Some(u) = upload {
        keys.push(index::upload_key(key, u));
        ranges.push(RangeReq::prefix(index::parts_prefix(u), 10_000));
    }
    (keys, ranges)
}

/// All versions of the key in a snapshot range, newest first, with raw values.
pub(crate) fn versions_in(
    snap: &Snapshot,
    range: usize,
) -> Result<Vec<(Bytes, Bytes, IndexEntry)>> {
    let Some((entries, _)) = snap.ranges.get(range) else {
        return Ok(Vec::new());
    };
    entries
        .iter()
        .map(|(k, v)| Ok((k.clone(), v.clone(), parse::<IndexEntry>("index entry", v)?)))
        .collect()
}

pub(crate) fn gc_for(txn: &mut index::ShardTxn, key: &str, runs: Vec<DataRef>, due_ms: u64) {
    if runs.is_empty() {
        return;
    }
    let tag = runs.first().map(|r| r.inst.clone()).unwrap_or_default();
    txn.set(
        index::gc_key(due_ms, &tag),
        &GcRecord {
            runs,
            key: key.to_string(),
        },
    );
}

/// The bilog entry of an operation on version `e`, made at `op_ns` and
/// applied so far in the zones of `trace`.
pub(crate) fn bilog(
    op: BilogOp,
    e: &IndexEntry,
    versioned: bool,
    trace: Vec<String>,
    op_ns: u64,
) -> BilogEntry {
    BilogEntry {
        op,
        key: e.key.clone(),
        version_id: e.version_id.clone(),
        mtime_ns: e.mtime_ns,
        etag: e.etag.clone(),
        size: e.size,
        zone_trace: trace,
        versioned,
        op_ns,
        source_zone: e.source_zone.clone(),
    }
}

/// The tombstone of `key` in a snapshot that looked it up.
pub(crate) fn tombstone_in(snap: &Snapshot, key: &str) -> Result<Option<Stamp>> {
    snap.get(&index::tombstone_key(key))
}

impl Zone {
    pub(crate) fn gc_due_ms(&self) -> u64 {
        meridian_common::now_unix_ms() + self.params().gc_min_wait.as_millis() as u64
    }

    /// Records a part write in progress in the key's shard (before any data
    /// is stored), while its upload exists; returns the upload's encryption.
    pub(crate) async fn begin_part(
        &self,
        bucket: &BucketInfo,
        key: &str,
        upload: &str,
        size_bound: u64,
    ) -> Result<(String, ObjectAttrs)> {
        let (inst, intent) = Intent::new(key, size_bound);
        let shard = index::shard_of(key, bucket.num_shards);
        let ukey = index::upload_key(key, upload);
        let attrs = self
            .shard_update(bucket, shard, vec![ukey.clone()], vec![], |snap| {
                let rec: crate::UploadRecord = snap
                    .get(&ukey)?
                    .ok_or_else(|| ZoneError::NoSuchUpload(upload.into()))?;
                let mut txn = index::ShardTxn::default();
                txn.set(index::intent_key(&inst), &intent);
                Ok(Step::Commit(txn, rec.attrs))
            })
            .await?;
        Ok((inst, attrs))
    }

    /// Undoes a write that was not linked (and never will be): its data, then
    /// its intent. The intent may already be gone (GC collected it while the
    /// data was still being written), so data this cannot delete gets a GC
    /// record of its own rather than rely on the intent.
    pub(crate) async fn abandon_write(
        &self,
        bucket: &BucketInfo,
        key: &str,
        inst: &str,
        bound: u64,
    ) {
        use meridian_client::ops::sub;
        let run = DataRef::plain(inst, bound);
        let shard = index::shard_of(key, bucket.num_shards);
        let obj = index::shard_object(&bucket.id, shard);
        let mut ops = vec![sub::omap_rm(vec![index::intent_key(inst)])];
        if let Err(e) = self
            .delete_runs((&bucket.id, key), std::slice::from_ref(&run))
            .await
        {
            tracing::warn!(bucket = %bucket.name, key, error = %e, "abandoned write's data left to GC");
            let rec = GcRecord {
                runs: vec![run],
                key: key.to_string(),
            };
            ops.push(sub::omap_set(vec![(
                index::gc_key(meridian_common::now_unix_ms(), inst),
                crate::json(&rec),
            )]));
        }
        if let Err(e) = self.cluster().op(&self.pools().index, &obj, ops).await
            && !matches!(e, meridian_client::ClientError::NotFound(_))
        {
            // The intent, if still there, keeps the data reachable for GC.
            tracing::warn!(bucket = %bucket.name, key, error = %e, "abandoned write's intent left to GC");
        }
    }

    /// When a write starting now must have stored its data (see
    /// [`crate::ZoneParams::write_budget`]).
    pub(crate) fn write_deadline(&self) -> Instant {
        Instant::now() + self.params().write_budget()
    }

    /// Stores `body` as run `inst` (by `deadline`, sealed with `key`) and
    /// checks it against the declared length and MD5.
    pub(crate) async fn store_body(
        &self,
        bucket: &BucketInfo,
        inst: &str,
        body: Body,
        (length, content_md5): (Option<u64>, Option<[u8; 16]>),
        deadline: Instant,
        enc: crate::data::Encoding<'_>,
    ) -> Result<crate::data::Written> {
        let limit = self.params().max_put_size;
        if let Some(l) = length
            && l > limit
        {
            return Err(ZoneError::EntityTooLarge { limit });
        }
        let w = self
            .write_run(
                &bucket.id,
                inst,
                body,
                length.unwrap_or(limit),
                deadline,
                enc,
            )
            .await?;
        check_written(&w, (length, content_md5))?;
        Ok(w)
    }

    /// PutObject.
    pub async fn put_object(
        &self,
        bucket: &BucketInfo,
        key: &str,
        body: Body,
        opts: PutOptions,
    ) -> Result<PutResult> {
        validate_key(key)?;
        if let Some(len) = opts.length
            && len <= self.params().inline_max.min(self.params().max_put_size)
        {
            return self.put_inline(bucket, key, body, len, opts).await;
        }
        let bound = opts.length.unwrap_or(self.params().max_put_size);
        let deadline = self.write_deadline();
        let (inst, first) = self.begin_put(bucket, key, bound).await?;
        let written = match self
            .store_body(
                bucket,
                &inst,
                body,
                (opts.length, opts.content_md5),
                deadline,
                crate::data::Encoding {
                    key: opts.data_key.as_ref(),
                    hint: opts.attrs.compress_hint(),
                    checksum: opts.checksum,
                },
            )
            .await
        {
            Ok(w) => w,
            Err(e) => {
                self.abandon_write(bucket, key, &inst, bound).await;
                return Err(e);
            }
        };
        let entry = put_entry(key, &written, written.run(&inst), opts.owner, opts.attrs);
        let r = self
            .link(
                bucket,
                Link {
                    key: key.to_string(),
                    entry,
                    intent: Some(inst.clone()),
                    upload: None,
                    conditions: opts.conditions,
                    first: Some(first),
                    inline: None,
                },
            )
            .await;
        // Not linked, for sure: the data goes now. (Expired: GC took the
        // intent and deleted what was stored by then; the rest is ours.)
        if matches!(
            r,
            Err(ZoneError::PreconditionFailed | ZoneError::NoSuchBucket(_) | ZoneError::Expired)
        ) {
            self.abandon_write(bucket, key, &inst, bound).await;
        }
        r
    }

    /// A PUT of at most `inline_max` bytes: the body is read into memory and
    /// written inline into the key's index shard by the link itself, so the
    /// PUT is one read and one replicated write, and leaves nothing behind
    /// when it fails (no intent, no data object to collect).
    async fn put_inline(
        &self,
        bucket: &BucketInfo,
        key: &str,
        body: Body,
        len: u64,
        opts: PutOptions,
    ) -> Result<PutResult> {
        let (written, run, stored, _permit) = self
            .read_inline_version(
                bucket,
                key,
                body,
                (len, self.write_deadline()),
                crate::data::Encoding {
                    key: opts.data_key.as_ref(),
                    hint: opts.attrs.compress_hint(),
                    checksum: opts.checksum,
                },
            )
            .await?;
        check_written(&written, (Some(len), opts.content_md5))?;
        let stored = (written.size > 0).then_some(stored);
        let entry = put_entry(key, &written, run, opts.owner, opts.attrs);
        self.link(
            bucket,
            Link {
                key: key.to_string(),
                entry,
                intent: None,
                upload: None,
                conditions: opts.conditions,
                first: None,
                inline: stored,
            },
        )
        .await
    }

    /// Reads a body of at most `limit` bytes into a new inline run of
    /// `key`'s shard: what was written, the run record, the omap key and
    /// value the link writes, and the write budget the bytes hold until then.
    pub(crate) async fn read_inline_version(
        &self,
        bucket: &BucketInfo,
        key: &str,
        body: Body,
        (limit, deadline): (u64, Instant),
        enc: crate::data::Encoding<'_>,
    ) -> Result<(
        crate::data::Written,
        DataRef,
        (Bytes, Bytes),
        tokio::sync::OwnedSemaphorePermit,
    )> {
        let inst = index::inline_inst(now_ns());
        let (written, stored, permit) = self
            .read_inline_run(&inst, body, (limit, deadline), enc)
            .await?;
        let mut run = written.run(&inst);
        run.inline_shard = Some(index::shard_of(key, bucket.num_shards));
        Ok((
            written,
            run,
            (index::inline_key(key, &inst), stored),
            permit,
        ))
    }

    /// A PUT's first step: its intent, written together with the read its
    /// link starts from, and the data log hint in parallel (the hint is
    /// durable before the link; a PUT that fails leaves a harmless one).
    pub(crate) async fn begin_put(
        &self,
        bucket: &BucketInfo,
        key: &str,
        size_bound: u64,
    ) -> Result<(String, Snapshot)> {
        let (inst, intent) = Intent::new(key, size_bound);
        let shard = index::shard_of(key, bucket.num_shards);
        let (keys, ranges) = link_reads(key, Some(&inst), None);
        let (snap, hint) = futures::join!(
            self.put_intent_and_read(
                bucket,
                shard,
                (index::intent_key(&inst), crate::json(&intent)),
                &keys,
                &ranges,
            ),
            self.hint_before_commit(bucket, shard)
        );
        hint?;
        Ok((inst, snap?))
    }

    /// Makes a new version current: the one compare-and-swap on the key's shard.
    pub(crate) async fn link(&self, bucket: &BucketInfo, l: Link) -> Result<PutResult> {
        let shard = index::shard_of(&l.key, bucket.num_shards);
        let cur_key = index::current_key(&l.key);
        let (keys, ranges) = link_reads(
            &l.key,
            l.intent.as_deref(),
            l.upload.as_ref().map(|u| u.upload_id.as_str()),
        );
        let due = self.gc_due_ms();
        let first = l.first.clone();
        let zone_id = self.zone_id();
        let tomb_key = index::tombstone_key(&l.key);
        self.shard_update_from(bucket, shard, keys, ranges, first, false, |snap| {
            let cur: Option<IndexEntry> = snap.get(&cur_key)?;
            let tomb = tombstone_in(snap, &l.key)?;
            let mut txn = index::ShardTxn::default();
            let mut entry = l.entry.clone();
            if let Some(i) = &l.intent {
                if snap.raw(&index::intent_key(i)).is_none() {
                    return Err(ZoneError::Expired);
                }
                txn.rm(index::intent_key(i));
            }
            if let Some(u) = &l.upload {
                let ukey = index::upload_key(&l.key, &u.upload_id);
                let Some(rec) = snap.get::<UploadRecord>(&ukey)? else {
                    // A retried complete whose first attempt succeeded.
                    if let Some(c) = cur.as_ref().filter(|c| c.from_upload == u.upload_id) {
                        return Ok(Step::Done(PutResult {
                            etag: c.etag.clone(),
                            version_id: c.version_id.clone(),
                            mtime_ns: c.mtime_ns,
                            size: c.size,
                            checksum: c.attrs.checksum.clone(),
                            parts: c.parts,
                        }));
                    }
                    return Err(ZoneError::NoSuchUpload(u.upload_id.clone()));
                };
                let (parts, _) = snap.ranges.get(1).cloned().unwrap_or_default();
                let unused = assemble_upload(&mut entry, &rec, u, &parts, &mut txn)?;
                gc_for(&mut txn, &l.key, unused, meridian_common::now_unix_ms());
                txn.rm(ukey);
            }
            l.conditions.check(cur.as_ref())?;
            if let Some((k, v)) = &l.inline {
                txn.set_raw(k.clone(), v.clone());
            }
            let versioning = snap.hdr.versioning;
            // After everything this zone has seen of the key, whatever the
            // clocks say: a write here follows the writes and deletes it saw.
            let mtime = now_ns()
                .max(cur.as_ref().map_or(0, |c| c.mtime_ns + 1))
                .max(tomb.as_ref().map_or(0, |t| t.mtime_ns + 1));
            if tomb.is_some() {
                txn.rm(tomb_key.clone());
            }
            entry.mtime_ns = mtime;
            entry.source_zone = zone_id.clone();
            entry.order = index::order_token(mtime);
            entry.version_id = if versioning == Versioning::Enabled {
                new_version_id(mtime)
            } else {
                "null".into()
            };
            if entry.version_id == "null" {
                // The new version replaces the null version, wherever it is.
                for (k, raw, old) in versions_in(snap, 0)? {
                    if old.version_id == "null" {
                        txn.guard(k.clone(), Some(raw));
                        txn.rm(k);
                        gc_for(&mut txn, &l.key, old.manifest.runs, due);
                    }
                }
            }
            txn.set(cur_key.clone(), &entry);
            txn.set(
                index::version_key(&l.key, &entry.order, &entry.version_id),
                &entry,
            );
            txn.log(bilog(
                BilogOp::Write,
                &entry,
                versioning != Versioning::Off,
                vec![zone_id.clone()],
                mtime,
            ));
            Ok(Step::Commit(
                txn,
                PutResult {
                    etag: entry.etag.clone(),
                    version_id: entry.version_id.clone(),
                    mtime_ns: mtime,
                    size: entry.size,
                    checksum: entry.attrs.checksum.clone(),
                    parts: entry.parts,
                },
            ))
        })
        .await
    }

    /// [`Zone::lookup`] before a read of the version's data: the current
    /// version's look-up also reads the key's newest inline run, which is the
    /// version's data when it is stored inline, so a small GET is one read.
    pub async fn lookup_with_data(
        &self,
        bucket: &BucketInfo,
        key: &str,
        version_id: Option<&str>,
    ) -> Result<IndexEntry> {
        match version_id {
            None => {
                validate_key(key)?;
                self.current_version(bucket, key, true).await
            }
            Some(_) => self.lookup(bucket, key, version_id).await,
        }
    }

    /// The current version of `key`; `with_data`: with its inline data, when
    /// the key's newest inline run (read in the same op) is the version's.
    async fn current_version(
        &self,
        bucket: &BucketInfo,
        key: &str,
        with_data: bool,
    ) -> Result<IndexEntry> {
        let shard = index::shard_of(key, bucket.num_shards);
        let k = index::current_key(key);
        let newest_inline = with_data.then(|| RangeReq::prefix(index::inline_prefix(key), 1));
        let snap = self
            .shard_read(
                bucket,
                shard,
                std::slice::from_ref(&k),
                newest_inline.as_slice(),
            )
            .await?;
        let mut e = current_in(&snap, key)?;
        if let Some((ik, stored)) = snap.ranges.first().and_then(|(r, _)| r.first()) {
            let inst = index::inst_of_inline_key(ik);
            for run in &mut e.manifest.runs {
                if run.inline_shard.is_some() && run.inst == inst {
                    run.prefetched = Some(stored.clone());
                }
            }
        }
        Ok(e)
    }

    /// The current version of `key` (None) or a given version.
    pub async fn lookup(
        &self,
        bucket: &BucketInfo,
        key: &str,
        version_id: Option<&str>,
    ) -> Result<IndexEntry> {
        validate_key(key)?;
        let shard = index::shard_of(key, bucket.num_shards);
        match version_id {
            None => self.current_version(bucket, key, false).await,
            Some(vid) => {
                let not_found = || ZoneError::NoSuchVersion {
                    key: key.into(),
                    version_id: vid.into(),
                };
                if let Some(k) = version_key_of(key, vid) {
                    let snap = self
                        .shard_read(bucket, shard, std::slice::from_ref(&k), &[])
                        .await?;
                    return snap.get(&k)?.ok_or_else(not_found);
                }
                if vid != "null" {
                    return Err(not_found());
                }
                let snap = self
                    .shard_read(
                        bucket,
                        shard,
                        &[],
                        &[RangeReq::prefix(
                            index::versions_prefix(key),
                            VERSIONS_PER_READ,
                        )],
                    )
                    .await?;
                versions_in(&snap, 0)?
                    .into_iter()
                    .map(|(_, _, e)| e)
                    .find(|e| e.version_id == "null")
                    .ok_or_else(not_found)
            }
        }
    }

    /// DeleteObject (with or without a version id).
    pub async fn delete_object(
        &self,
        bucket: &BucketInfo,
        key: &str,
        version_id: Option<&str>,
        owner: &str,
    ) -> Result<DeleteResult> {
        self.delete_object_if(bucket, key, version_id, owner, &DeleteConditions::default())
            .await
    }

    /// DeleteObject with conditions on the version it takes (see
    /// [`DeleteConditions`]), checked in the same index transaction.
    pub async fn delete_object_if(
        &self,
        bucket: &BucketInfo,
        key: &str,
        version_id: Option<&str>,
        owner: &str,
        conds: &DeleteConditions,
    ) -> Result<DeleteResult> {
        validate_key(key)?;
        let shard = index::shard_of(key, bucket.num_shards);
        let cur_key = index::current_key(key);
        let ranges = vec![RangeReq::prefix(
            index::versions_prefix(key),
            VERSIONS_PER_READ,
        )];
        let due = self.gc_due_ms();
        let zone_id = self.zone_id();
        // A delete of a null version is remembered where other zones may
        // still send an older write of it (see `replica`).
        let tombstones = self.has_peers();
        let tomb_key = index::tombstone_key(key);
        let keys = vec![cur_key.clone(), tomb_key.clone()];
        self.shard_update(bucket, shard, keys, ranges, |snap| {
            let cur: Option<IndexEntry> = snap.get(&cur_key)?;
            let tomb = tombstone_in(snap, key)?;
            let versions = versions_in(snap, 0)?;
            let versioning = snap.hdr.versioning;
            let mut txn = index::ShardTxn::default();
            let op_ns = now_ns()
                .max(cur.as_ref().map_or(0, |c| c.mtime_ns + 1))
                .max(tomb.as_ref().map_or(0, |t| t.mtime_ns + 1));
            let stamp = Stamp {
                mtime_ns: op_ns,
                zone: zone_id.clone(),
            };
            if !conds.is_empty() {
                let subject = match version_id {
                    None => cur.as_ref().filter(|c| !c.delete_marker),
                    Some(vid) => versions.iter().map(|v| &v.2).find(|v| v.version_id == vid),
                };
                match subject {
                    None => return Ok(Step::Done(DeleteResult::default())),
                    Some(e) => conds.check(e)?,
                }
            }
            match version_id {
                None if versioning == Versioning::Off => {
                    let Some(cur) = cur else {
                        return Ok(Step::Done(DeleteResult::default()));
                    };
                    for (k, raw, _) in versions.iter().filter(|v| v.2.version_id == "null") {
                        txn.guard(k.clone(), Some(raw.clone()));
                        txn.rm(k.clone());
                    }
                    txn.rm(cur_key.clone());
                    gc_for(&mut txn, key, cur.manifest.runs.clone(), due);
                    if tombstones {
                        txn.set(tomb_key.clone(), &stamp);
                    }
                    txn.log(bilog(
                        BilogOp::Delete,
                        &cur,
                        false,
                        vec![zone_id.clone()],
                        op_ns,
                    ));
                    Ok(Step::Commit(txn, DeleteResult::default()))
                }
                None => {
                    let mtime = op_ns;
                    let vid = if versioning == Versioning::Enabled {
                        new_version_id(mtime)
                    } else {
                        "null".to_string()
                    };
                    if vid == "null" {
                        for (k, raw, old) in versions.iter().filter(|v| v.2.version_id == "null") {
                            txn.guard(k.clone(), Some(raw.clone()));
                            txn.rm(k.clone());
                            gc_for(&mut txn, key, old.manifest.runs.clone(), due);
                        }
                    }
                    let marker = IndexEntry {
                        key: key.to_string(),
                        version_id: vid.clone(),
                        order: index::order_token(mtime),
                        mtime_ns: mtime,
                        delete_marker: true,
                        owner: owner.to_string(),
                        source_zone: zone_id.clone(),
                        ..Default::default()
                    };
                    if tomb.is_some() {
                        txn.rm(tomb_key.clone());
                    }
                    txn.set(cur_key.clone(), &marker);
                    txn.set(index::version_key(key, &marker.order, &vid), &marker);
                    txn.log(bilog(
                        BilogOp::DeleteMarker,
                        &marker,
                        true,
                        vec![zone_id.clone()],
                        mtime,
                    ));
                    Ok(Step::Commit(
                        txn,
                        DeleteResult {
                            version_id: Some(vid),
                            delete_marker: true,
                        },
                    ))
                }
                Some(vid) => {
                    let Some(pos) = versions.iter().position(|v| v.2.version_id == vid) else {
                        // Deleting a version that does not exist succeeds, as on AWS.
                        return Ok(Step::Done(DeleteResult {
                            version_id: Some(vid.to_string()),
                            delete_marker: false,
                        }));
                    };
                    let (k, raw, target) = &versions[pos];
                    if let Some(why) = target
                        .attrs
                        .lock_forbids_delete(now_ns() / 1_000_000, conds.bypass_governance)
                    {
                        return Err(ZoneError::ObjectLocked(why));
                    }
                    txn.guard(k.clone(), Some(raw.clone()));
                    txn.rm(k.clone());
                    if !target.delete_marker {
                        gc_for(&mut txn, key, target.manifest.runs.clone(), due);
                    }
                    if cur.as_ref().is_some_and(|c| c.version_id == vid) {
                        // The latest goes: the next newest becomes current.
                        match versions.get(pos + 1) {
                            Some((nk, nraw, next)) => {
                                txn.guard(nk.clone(), Some(nraw.clone()));
                                txn.set(cur_key.clone(), next);
                            }
                            None => {
                                txn.rm(cur_key.clone());
                            }
                        }
                    }
                    if tombstones && vid == "null" {
                        txn.set(tomb_key.clone(), &stamp);
                    }
                    txn.log(bilog(
                        BilogOp::Delete,
                        target,
                        versioning != Versioning::Off,
                        vec![zone_id.clone()],
                        op_ns,
                    ));
                    Ok(Step::Commit(
                        txn,
                        DeleteResult {
                            version_id: Some(vid.to_string()),
                            delete_marker: target.delete_marker,
                        },
                    ))
                }
            }
        })
        .await
    }

    /// Changes the attributes (tags, ACL, retention) of a version in place;
    /// `f` sees the stored attributes and may refuse.
    pub async fn update_attrs(
        &self,
        bucket: &BucketInfo,
        key: &str,
        version_id: Option<&str>,
        f: impl Fn(&mut ObjectAttrs) -> Result<()>,
    ) -> Result<IndexEntry> {
        let target = self.lookup(bucket, key, version_id).await?;
        let shard = index::shard_of(key, bucket.num_shards);
        let vkey = index::version_key(key, &target.order, &target.version_id);
        let cur_key = index::current_key(key);
        let zone_id = self.zone_id();
        self.shard_update(
            bucket,
            shard,
            vec![cur_key.clone(), vkey.clone()],
            vec![],
            |snap| {
                let mut e: IndexEntry =
                    snap.get(&vkey)?.ok_or_else(|| ZoneError::NoSuchVersion {
                        key: key.into(),
                        version_id: target.version_id.clone(),
                    })?;
                if e.delete_marker {
                    return Err(ZoneError::DeleteMarker {
                        key: key.into(),
                        version_id: e.version_id,
                    });
                }
                f(&mut e.attrs)?;
                let mut txn = index::ShardTxn::default();
                txn.set(vkey.clone(), &e);
                let cur: Option<IndexEntry> = snap.get(&cur_key)?;
                if cur.is_some_and(|c| c.version_id == e.version_id) {
                    txn.set(cur_key.clone(), &e);
                }
                txn.log(bilog(
                    BilogOp::Attrs,
                    &e,
                    snap.hdr.versioning != Versioning::Off,
                    vec![zone_id.clone()],
                    now_ns(),
                ));
                Ok(Step::Commit(txn, e.clone()))
            },
        )
        .await
    }

    /// CopyObject: the source's bytes (decrypted with `src_key`) streamed into
    /// a new version of `dst_key`.
    pub async fn copy_object(
        &self,
        src_bucket: &BucketInfo,
        src: &IndexEntry,
        dst_bucket: &BucketInfo,
        dst_key: &str,
        opts: PutOptions,
        src_key: Option<crate::crypt::DataKey>,
    ) -> Result<PutResult> {
        let body = self.copy_source(
            (&src_bucket.id, &src.key),
            &src.manifest.runs,
            (0, src.size),
            src_key,
        );
        let mut opts = opts;
        opts.length = Some(src.size);
        opts.content_md5 = None;
        let r = self.put_object(dst_bucket, dst_key, body, opts).await?;
        Ok(r)
    }
}

/// Checks a CompleteMultipartUpload part list against the stored parts and
/// fills `entry` with the manifest and ETag; returns the runs of uploaded
/// parts the object does not use (for GC) and removes every part record.
fn assemble_upload(
    entry: &mut IndexEntry,
    rec: &UploadRecord,
    u: &CompleteUpload,
    stored: &[(Bytes, Bytes)],
    txn: &mut index::ShardTxn,
) -> Result<Vec<DataRef>> {
    if u.parts.is_empty() {
        return Err(ZoneError::InvalidArgument(
            "you must specify at least one part".into(),
        ));
    }
    let mut by_num = std::collections::BTreeMap::new();
    for (k, v) in stored {
        let p: PartRecord = parse("part record", v)?;
        txn.guard(k.clone(), Some(v.clone()));
        txn.rm(k.clone());
        by_num.insert(p.part, p);
    }
    // As AWS orders its checks: part order, then each part's existence and
    // ETag, then the sizes.
    let mut prev = 0u32;
    for lp in &u.parts {
        let (num, etag) = (lp.number, &lp.etag);
        if num <= prev {
            return Err(ZoneError::InvalidPartOrder);
        }
        prev = num;
        let Some(p) = by_num.get(&num) else {
            return Err(ZoneError::InvalidPart(format!(
                "part {num} was not uploaded (or was uploaded to another upload)"
            )));
        };
        if etag.trim_matches('"') != p.etag {
            return Err(ZoneError::InvalidPart(format!(
                "part {num} has ETag \"{}\", not {etag}",
                p.etag
            )));
        }
        for (alg, value) in &lp.checksums {
            let kept = p.checksum.as_ref().filter(|c| c.algorithm == Some(*alg));
            if kept.is_some_and(|c| c.value != value.trim()) {
                return Err(ZoneError::InvalidPart(format!(
                    "part {num}'s {} checksum is not {value}",
                    alg.as_str()
                )));
            }
        }
    }
    let mut md5 = Md5::new();
    let mut runs = Vec::with_capacity(u.parts.len());
    let mut sizes = Vec::with_capacity(u.parts.len());
    for (i, lp) in u.parts.iter().enumerate() {
        let num = &lp.number;
        let p = &by_num[num];
        if i + 1 < u.parts.len() && p.data.size < MIN_PART_SIZE {
            return Err(ZoneError::EntityTooSmall {
                part: *num,
                size: p.data.size,
            });
        }
        let mut raw = [0u8; 16];
        for (j, b) in raw.iter_mut().enumerate() {
            *b = u8::from_str_radix(p.etag.get(j * 2..j * 2 + 2).unwrap_or("00"), 16).unwrap_or(0);
        }
        md5.update(raw);
        if p.data.size > 0 {
            runs.push(p.data.clone());
        }
        sizes.push(p.data.size);
    }
    let used: std::collections::BTreeSet<u32> = u.parts.iter().map(|p| p.number).collect();
    let listed: Vec<&PartRecord> = u.parts.iter().map(|lp| &by_num[&lp.number]).collect();
    let (checksum, part_checksums) = upload_checksum(rec, u, &listed)?;
    let unused = by_num
        .into_iter()
        .filter(|(n, _)| !used.contains(n))
        .map(|(_, p)| p.data)
        .collect();
    entry.size = sizes.iter().sum();
    entry.etag = format!("{}-{}", hex(&md5.finalize()), u.parts.len());
    entry.manifest = Manifest { runs };
    entry.parts = u.parts.len() as u32;
    if let Some(declared) = u.size
        && declared != sizes.iter().sum::<u64>()
    {
        return Err(ZoneError::InvalidRequest(format!(
            "x-amz-mp-object-size is {declared}, the parts hold {} bytes",
            sizes.iter().sum::<u64>()
        )));
    }
    entry.part_sizes = sizes;
    entry.attrs = rec.attrs.clone();
    entry.attrs.checksum = checksum;
    entry.part_checksums = part_checksums;
    entry.owner = rec.owner.clone();
    entry.from_upload = u.upload_id.clone();
    Ok(unused)
}

/// The checksum of a completed upload (and its parts' checksums): the type
/// and algorithm the upload promised (full-object CRC64NVME if none), from
/// the parts' checksums; checked against the client's value when it sent
/// one. None when a part has no checksum of that algorithm (uploaded before
/// parts kept checksums).
fn upload_checksum(
    rec: &UploadRecord,
    u: &CompleteUpload,
    parts: &[&PartRecord],
) -> Result<(Option<ObjectChecksum>, Vec<String>)> {
    let (alg, kind) = rec
        .attrs
        .checksum
        .as_ref()
        .and_then(|c| c.algorithm.map(|a| (a, c.kind)))
        .unwrap_or((ChecksumAlgorithm::Crc64nvme, ChecksumType::FullObject));
    let values: Option<Vec<(&str, u64)>> = parts
        .iter()
        .map(|p| {
            p.checksum
                .as_ref()
                .filter(|c| c.algorithm == Some(alg))
                .map(|c| (c.value.as_str(), p.data.size))
        })
        .collect();
    let Some(values) = values else {
        return Ok((None, Vec::new()));
    };
    let sum = crate::checksum::combine(alg, kind, &values);
    if let (Some((want_alg, want)), Some(have)) = (&u.checksum, &sum) {
        let want = want.trim();
        if *want_alg != alg {
            return Err(ZoneError::InvalidRequest(format!(
                "the upload's checksum algorithm is {}, not {}",
                alg.as_str(),
                want_alg.as_str()
            )));
        }
        if want != have.value && want != have.shown(parts.len() as u32) {
            return Err(ZoneError::BadDigest);
        }
    }
    Ok((sum, values.iter().map(|(v, _)| v.to_string()).collect()))
}

/// One page of ListObjects.
#[derive(Debug, Clone, Default)]
pub struct ObjectPage {
    /// Current versions (no delete markers), in key order.
    pub entries: Vec<IndexEntry>,
    /// CommonPrefixes.
    pub prefixes: Vec<String>,
    /// More follow.
    pub truncated: bool,
    /// The last key or prefix returned (the next marker).
    pub last: Option<String>,
}

/// One page of ListObjectVersions.
#[derive(Debug, Clone, Default)]
pub struct VersionPage {
    /// Versions and delete markers, keys ascending, versions newest first; with is-latest.
    pub versions: Vec<(IndexEntry, bool)>,
    /// CommonPrefixes.
    pub prefixes: Vec<String>,
    /// More follow.
    pub truncated: bool,
    /// Where the next page starts (key, version id).
    pub next: Option<(String, String)>,
}

/// What a listing asks for.
#[derive(Debug, Clone, Default)]
pub struct ListParams {
    /// Keys starting with this.
    pub prefix: String,
    /// Roll keys up at the first delimiter after the prefix.
    pub delimiter: Option<String>,
    /// Start after this key (marker / start-after / continuation token).
    pub after: Option<String>,
    /// At most this many keys + prefixes.
    pub max: usize,
}

/// The CommonPrefix of `key` under `prefix`/`delim`, if it has one.
fn common_prefix(key: &str, prefix: &str, delim: Option<&str>) -> Option<String> {
    let d = delim.filter(|d| !d.is_empty())?;
    let rest = key.strip_prefix(prefix)?;
    rest.find(d)
        .map(|i| format!("{prefix}{}", &rest[..i + d.len()]))
}

/// An omap key just past every key that starts with `ns` + `p`.
fn past_prefix(ns: &[u8], p: &str) -> Bytes {
    let mut v = ns.to_vec();
    v.extend_from_slice(p.as_bytes());
    v.push(0xff);
    Bytes::from(v)
}

impl Zone {
    /// ListObjects (v1 and v2): current versions, rolled up by delimiter.
    pub async fn list_objects(&self, bucket: &BucketInfo, p: &ListParams) -> Result<ObjectPage> {
        let ns = index::CURRENT_PREFIX;
        let start = match &p.after {
            // A marker that is itself a common prefix skips everything under it.
            Some(a) => match common_prefix(a, &p.prefix, p.delimiter.as_deref()) {
                Some(cp) if a.starts_with(&cp) => past_prefix(ns, &cp),
                _ => index::current_key(a),
            },
            None => Bytes::new(),
        };
        let mut scan = MergedScan::new(
            self,
            bucket,
            index::current_key(&p.prefix),
            start,
            (p.max as u32 + 1).min(1000),
        );
        let mut page = ObjectPage::default();
        if p.max == 0 {
            return Ok(page);
        }
        while let Some((_, v)) = scan.next().await? {
            let e: IndexEntry = parse("index entry", &v)?;
            if e.delete_marker {
                continue;
            }
            if page.entries.len() + page.prefixes.len() >= p.max {
                page.truncated = true;
                break;
            }
            if let Some(cp) = common_prefix(&e.key, &p.prefix, p.delimiter.as_deref()) {
                scan.skip_through(&past_prefix(ns, &cp));
                page.last = Some(cp.clone());
                page.prefixes.push(cp);
            } else {
                page.last = Some(e.key.clone());
                page.entries.push(e);
            }
        }
        Ok(page)
    }

    /// ListObjectVersions.
    pub async fn list_versions(
        &self,
        bucket: &BucketInfo,
        p: &ListParams,
        version_marker: Option<&str>,
    ) -> Result<VersionPage> {
        let ns = index::VERSION_PREFIX;
        let mut resumed_key = None;
        let start = match (&p.after, version_marker.filter(|v| !v.is_empty())) {
            (Some(k), Some(vid)) => {
                resumed_key = Some(k.clone());
                match version_key_of(k, vid) {
                    Some(vk) => vk,
                    None => match self.lookup(bucket, k, Some(vid)).await {
                        Ok(e) => index::version_key(k, &e.order, &e.version_id),
                        // The marker's null version was deleted since the
                        // last page (a client deleting what it lists): its
                        // place is gone with it, so go on from the key's
                        // first version still there, listing a newer one
                        // again rather than skipping an older one.
                        Err(ZoneError::NoSuchVersion { .. } | ZoneError::NoSuchKey(_))
                            if vid == "null" =>
                        {
                            resumed_key = None;
                            index::versions_prefix(k)
                        }
                        Err(e) => return Err(e),
                    },
                }
            }
            (Some(k), None) => match common_prefix(k, &p.prefix, p.delimiter.as_deref()) {
                Some(cp) if k.starts_with(&cp) => past_prefix(ns, &cp),
                _ => past_prefix(ns, &format!("{k}\0")),
            },
            _ => Bytes::new(),
        };
        let mut scan = MergedScan::new(
            self,
            bucket,
            {
                let mut v = ns.to_vec();
                v.extend_from_slice(p.prefix.as_bytes());
                Bytes::from(v)
            },
            start,
            (p.max as u32 + 1).min(1000),
        );
        let mut page = VersionPage::default();
        if p.max == 0 {
            return Ok(page);
        }
        let mut last_key: Option<String> = resumed_key;
        while let Some((_, v)) = scan.next().await? {
            let e: IndexEntry = parse("index entry", &v)?;
            if page.versions.len() + page.prefixes.len() >= p.max {
                page.truncated = true;
                break;
            }
            if let Some(cp) = common_prefix(&e.key, &p.prefix, p.delimiter.as_deref()) {
                scan.skip_through(&past_prefix(ns, &cp));
                page.next = Some((cp.clone(), String::new()));
                page.prefixes.push(cp);
                continue;
            }
            let latest = last_key.as_deref() != Some(e.key.as_str());
            last_key = Some(e.key.clone());
            page.next = Some((e.key.clone(), e.version_id.clone()));
            page.versions.push((e, latest));
        }
        Ok(page)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_prefixes_roll_up_at_the_first_delimiter() {
        assert_eq!(
            common_prefix("a/b/c", "", Some("/")),
            Some("a/".to_string())
        );
        assert_eq!(
            common_prefix("a/b/c", "a/", Some("/")),
            Some("a/b/".to_string())
        );
        assert_eq!(common_prefix("a/b", "a/", Some("/")), None);
        assert_eq!(common_prefix("abc", "", None), None);
        assert_eq!(common_prefix("x--y--z", "", Some("--")), Some("x--".into()));
    }

    #[test]
    fn etag_conditions_parse_lists_and_wildcards() {
        assert!(etag_matches("*", "abc"));
        assert!(etag_matches("\"abc\"", "abc"));
        assert!(etag_matches("\"x\", \"abc\"", "abc"));
        assert!(etag_matches("W/\"abc\"", "abc"));
        assert!(!etag_matches("\"abd\"", "abc"));
    }

    #[test]
    fn version_ids_carry_their_index_order() {
        let old = new_version_id(1_000);
        let new = new_version_id(2_000);
        let (ko, kn) = (
            version_key_of("k", &old).unwrap(),
            version_key_of("k", &new).unwrap(),
        );
        assert!(kn < ko, "newer versions sort first");
        assert!(version_key_of("k", "null").is_none());
        assert!(version_key_of("k", "zzzz").is_none());
    }

    #[test]
    fn conditions_compare_the_live_version() {
        let e = IndexEntry {
            etag: "abc".into(),
            ..Default::default()
        };
        let dm = IndexEntry {
            delete_marker: true,
            ..Default::default()
        };
        let none_match = WriteConditions {
            if_none_match: Some("*".into()),
            ..Default::default()
        };
        assert!(none_match.check(None).is_ok());
        assert!(none_match.check(Some(&dm)).is_ok());
        assert!(none_match.check(Some(&e)).is_err());
        let if_match = WriteConditions {
            if_match: Some("\"abc\"".into()),
            ..Default::default()
        };
        assert!(if_match.check(Some(&e)).is_ok());
        assert!(if_match.check(None).is_err());
    }
}
