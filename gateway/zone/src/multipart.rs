//! Multipart uploads: the upload record and its part records live in the
//! key's index shard, so completing an upload (link the version, drop the
//! upload and every part record, GC unused parts) is one atomic shard op and
//! any gateway of the zone can continue an upload another one started.

use crate::checksum::ChecksumAlgorithm;
use crate::data::Body;
use crate::index::{self, MergedScan, RangeReq, Step};
use crate::object::{CompleteUpload, Link, PutResult, WriteConditions, validate_key};
use crate::{
    BucketInfo, GcRecord, IndexEntry, ObjectAttrs, PartRecord, Result, UploadRecord, Zone,
    ZoneError, hex, now_ns, parse, random_id,
};
use bytes::Bytes;

/// Largest part number.
pub const MAX_PART: u32 = 10_000;

/// ListParts result.
#[derive(Debug, Clone, Default)]
pub struct PartPage {
    /// The upload.
    pub upload: UploadRecord,
    /// Parts after the marker, ascending.
    pub parts: Vec<PartRecord>,
    /// More follow.
    pub truncated: bool,
}

/// ListMultipartUploads result.
#[derive(Debug, Clone, Default)]
pub struct UploadPage {
    /// Uploads, by key then upload id.
    pub uploads: Vec<UploadRecord>,
    /// CommonPrefixes.
    pub prefixes: Vec<String>,
    /// More follow.
    pub truncated: bool,
}

impl Zone {
    /// CreateMultipartUpload.
    pub async fn create_upload(
        &self,
        bucket: &BucketInfo,
        key: &str,
        owner: &str,
        attrs: ObjectAttrs,
    ) -> Result<String> {
        validate_key(key)?;
        let upload_id = format!("{}{}", random_id(), random_id());
        let rec = UploadRecord {
            key: key.into(),
            upload_id: upload_id.clone(),
            initiated_ns: now_ns(),
            owner: owner.into(),
            attrs,
            part_commits: 0,
        };
        let ukey = index::upload_key(key, &upload_id);
        let shard = index::shard_of(key, bucket.num_shards);
        self.shard_update(bucket, shard, vec![ukey.clone()], vec![], |_| {
            let mut txn = index::ShardTxn::default();
            txn.set(ukey.clone(), &rec);
            Ok(Step::Commit(txn, ()))
        })
        .await?;
        Ok(upload_id)
    }

    /// UploadPart (and UploadPartCopy, with the source as `body`), sealed
    /// with the upload's encryption (`customer_key` for SSE-C) and summed with
    /// the upload's checksum algorithm (CRC64NVME if it named none; a part
    /// whose request names another algorithm is refused): data first,
    /// then the part record; a re-uploaded part number replaces the old one.
    /// The part record's commit also rewrites the upload record (bumping
    /// `part_commits`), so a completion or abort, which compares the upload
    /// record it read, cannot commit past a part it did not see: it retries
    /// and sees the part (without this the part record, and its data,
    /// outlived the upload, referenced by nothing anyone removes).
    #[allow(clippy::too_many_arguments)]
    pub async fn upload_part(
        &self,
        bucket: &BucketInfo,
        key: &str,
        upload_id: &str,
        part: u32,
        body: Body,
        length: Option<u64>,
        content_md5: Option<[u8; 16]>,
        customer_key: Option<&crate::crypt::CustomerKey>,
        declared: Option<ChecksumAlgorithm>,
    ) -> Result<PartRecord> {
        if part == 0 || part > MAX_PART {
            return Err(ZoneError::InvalidArgument(format!(
                "part numbers are 1 to {MAX_PART}"
            )));
        }
        let bound = length.unwrap_or(self.params().max_put_size);
        let deadline = self.write_deadline();
        let (inst, attrs) = self.begin_part(bucket, key, upload_id, bound).await?;
        // A part is sealed as the upload said (SSE-C: with the same key
        // again), and compressed as the object's type says.
        let promised = attrs.checksum.as_ref().and_then(|c| c.algorithm);
        let sealed = match (promised, declared) {
            (Some(p), Some(d)) if p != d => Err(ZoneError::InvalidRequest(format!(
                "Checksum Type mismatch occurred, expected checksum Type: {}, actual checksum Type: {}",
                p.as_str().to_lowercase(),
                d.as_str().to_lowercase()
            ))),
            _ => self
                .params()
                .keys
                .data_key(attrs.encryption.as_ref(), customer_key),
        };
        let stored = match sealed {
            Ok(data_key) => {
                self.store_body(
                    bucket,
                    &inst,
                    body,
                    (length, content_md5),
                    deadline,
                    crate::data::Encoding {
                        key: data_key.as_ref(),
                        hint: attrs.compress_hint(),
                        checksum: Some(promised.unwrap_or(ChecksumAlgorithm::Crc64nvme)),
                    },
                )
                .await
            }
            Err(e) => Err(e),
        };
        let written = match stored {
            Ok(w) => w,
            Err(e) => {
                self.abandon_write(bucket, key, &inst, bound).await;
                return Err(e);
            }
        };
        let rec = PartRecord {
            part,
            etag: hex(&written.md5),
            data: written.run(&inst),
            checksum: written.checksum.clone(),
            mtime_ns: now_ns(),
        };
        let ukey = index::upload_key(key, upload_id);
        let pkey = index::part_key(upload_id, part);
        let ikey = index::intent_key(&inst);
        let shard = index::shard_of(key, bucket.num_shards);
        let due = meridian_common::now_unix_ms() + self.params().gc_min_wait.as_millis() as u64;
        let r = self
            .shard_update(
                bucket,
                shard,
                vec![ukey.clone(), pkey.clone(), ikey.clone()],
                vec![],
                |snap| {
                    let Some(mut upload) = snap.get::<UploadRecord>(&ukey)? else {
                        return Err(ZoneError::NoSuchUpload(upload_id.into()));
                    };
                    if snap.raw(&ikey).is_none() {
                        return Err(ZoneError::Expired);
                    }
                    let mut txn = index::ShardTxn::default();
                    upload.part_commits += 1;
                    txn.set(ukey.clone(), &upload);
                    if let Some(old) = snap.get::<PartRecord>(&pkey)? {
                        txn.set(
                            index::gc_key(due, &old.data.inst),
                            &GcRecord {
                                runs: vec![old.data],
                                key: key.into(),
                            },
                        );
                    }
                    txn.rm(ikey.clone());
                    txn.set(pkey.clone(), &rec);
                    Ok(Step::Commit(txn, ()))
                },
            )
            .await;
        if let Err(e) = r {
            // Abandoned only when the record is surely not committed (a
            // cluster error may hide a commit that applied; then the intent
            // stays and GC decides). Expired: GC took the intent and deleted
            // what was stored by then; the rest is ours to delete.
            if !matches!(e, ZoneError::Cluster(_)) {
                self.abandon_write(bucket, key, &inst, bound).await;
            }
            return Err(e);
        }
        Ok(rec)
    }

    /// ListParts.
    pub async fn list_parts(
        &self,
        bucket: &BucketInfo,
        key: &str,
        upload_id: &str,
        after_part: u32,
        max: u32,
    ) -> Result<PartPage> {
        let ukey = index::upload_key(key, upload_id);
        let shard = index::shard_of(key, bucket.num_shards);
        let range = RangeReq {
            prefix: index::parts_prefix(upload_id),
            start_after: if after_part == 0 {
                Bytes::new()
            } else {
                index::part_key(upload_id, after_part)
            },
            max: max.clamp(1, 1000),
        };
        let snap = self
            .shard_read(bucket, shard, std::slice::from_ref(&ukey), &[range])
            .await?;
        let upload: UploadRecord = snap
            .get(&ukey)?
            .ok_or_else(|| ZoneError::NoSuchUpload(upload_id.into()))?;
        let (entries, more) = snap.ranges.into_iter().next().unwrap_or_default();
        let parts = entries
            .iter()
            .map(|(_, v)| parse("part record", v))
            .collect::<Result<Vec<PartRecord>>>()?;
        Ok(PartPage {
            upload,
            parts,
            truncated: more,
        })
    }

    /// CompleteMultipartUpload.
    pub async fn complete_upload(
        &self,
        bucket: &BucketInfo,
        key: &str,
        upload: CompleteUpload,
        conditions: WriteConditions,
    ) -> Result<PutResult> {
        validate_key(key)?;
        self.link(
            bucket,
            Link {
                key: key.into(),
                entry: IndexEntry {
                    key: key.into(),
                    ..Default::default()
                },
                intent: None,
                upload: Some(upload),
                conditions,
                first: None,
                inline: None,
            },
        )
        .await
    }

    /// AbortMultipartUpload: the upload and its parts go; their data to GC (due now).
    pub async fn abort_upload(
        &self,
        bucket: &BucketInfo,
        key: &str,
        upload_id: &str,
    ) -> Result<()> {
        let ukey = index::upload_key(key, upload_id);
        let shard = index::shard_of(key, bucket.num_shards);
        self.shard_update(
            bucket,
            shard,
            vec![ukey.clone()],
            vec![RangeReq::prefix(index::parts_prefix(upload_id), 10_000)],
            |snap| {
                if snap.raw(&ukey).is_none() {
                    return Err(ZoneError::NoSuchUpload(upload_id.into()));
                }
                let mut txn = index::ShardTxn::default();
                let mut runs = Vec::new();
                for (k, v) in snap.ranges.first().map(|r| r.0.as_slice()).unwrap_or(&[]) {
                    let p: PartRecord = parse("part record", v)?;
                    txn.guard(k.clone(), Some(v.clone()));
                    txn.rm(k.clone());
                    runs.push(p.data);
                }
                if !runs.is_empty() {
                    txn.set(
                        index::gc_key(meridian_common::now_unix_ms(), upload_id),
                        &GcRecord {
                            runs,
                            key: key.into(),
                        },
                    );
                }
                txn.rm(ukey.clone());
                Ok(Step::Commit(txn, ()))
            },
        )
        .await
    }

    /// ListMultipartUploads.
    pub async fn list_uploads(
        &self,
        bucket: &BucketInfo,
        prefix: &str,
        delimiter: Option<&str>,
        key_marker: Option<&str>,
        upload_id_marker: Option<&str>,
        max: usize,
    ) -> Result<UploadPage> {
        let ns = index::UPLOAD_PREFIX;
        let start = match (key_marker, upload_id_marker) {
            (Some(k), Some(u)) if !u.is_empty() => index::upload_key(k, u),
            (Some(k), _) => {
                let mut v = index::upload_key(k, "").to_vec();
                v.push(0xff);
                Bytes::from(v)
            }
            _ => Bytes::new(),
        };
        let mut scan_prefix = ns.to_vec();
        scan_prefix.extend_from_slice(prefix.as_bytes());
        let mut scan = MergedScan::new(
            self,
            bucket,
            Bytes::from(scan_prefix),
            start,
            (max as u32 + 1).min(1000),
        );
        let mut page = UploadPage::default();
        if max == 0 {
            return Ok(page);
        }
        while let Some((_, v)) = scan.next().await? {
            let u: UploadRecord = parse("upload record", &v)?;
            if page.uploads.len() + page.prefixes.len() >= max {
                page.truncated = true;
                break;
            }
            let cp = delimiter.filter(|d| !d.is_empty()).and_then(|d| {
                u.key.strip_prefix(prefix).and_then(|rest| {
                    rest.find(d)
                        .map(|i| format!("{prefix}{}", &rest[..i + d.len()]))
                })
            });
            if let Some(cp) = cp {
                let mut bound = ns.to_vec();
                bound.extend_from_slice(cp.as_bytes());
                bound.push(0xff);
                scan.skip_through(&Bytes::from(bound));
                page.prefixes.push(cp);
            } else {
                page.uploads.push(u);
            }
        }
        Ok(page)
    }
}
