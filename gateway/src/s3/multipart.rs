//! Multipart upload operations.

use super::object::write_controls;
use super::object::{body, cond_str, copy_source_conditions, declared_length};
use super::sse::{SseFields, customer_headers, set_sse_fields, write_sse};
use super::{MeridianS3, OrS3, denied, encoder, owner};
use crate::checksum::{self, listed_checksums, set_checksum, set_kept_checksum};
use crate::convert::{self, AttrHeaders, etag, timestamp};
use meridian_zone::Versioning;
use meridian_zone::checksum::{ChecksumType as Kind, ObjectChecksum};
use meridian_zone::object::WriteConditions;
use meridian_zone::object::{CompleteUpload, ListedPart};
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

/// `bytes=first-last` of an UploadPartCopy source (inclusive, must fit the source).
fn copy_range(r: Option<&str>, size: u64) -> S3Result<(u64, u64)> {
    let Some(r) = r else { return Ok((0, size)) };
    let bad = || {
        s3_error!(
            InvalidArgument,
            "x-amz-copy-source-range must be bytes=first-last within the source"
        )
    };
    let spec = r.strip_prefix("bytes=").ok_or_else(bad)?;
    let (a, b) = spec.split_once('-').ok_or_else(bad)?;
    let first: u64 = a.parse().map_err(|_| bad())?;
    let last: u64 = b.parse().map_err(|_| bad())?;
    if first > last || last >= size {
        return Err(s3_error!(
            InvalidRange,
            "The x-amz-copy-source-range is not satisfiable"
        ));
    }
    Ok((first, last + 1))
}

/// The checksum a new upload promises (`x-amz-checksum-algorithm`,
/// `x-amz-checksum-type`), checked against what S3 allows.
fn promised_checksum(
    alg: Option<&ChecksumAlgorithm>,
    kind: Option<&ChecksumType>,
) -> S3Result<Option<ObjectChecksum>> {
    let Some(alg) = checksum::named(alg)? else {
        if kind.is_some() {
            return Err(s3_error!(
                InvalidRequest,
                "x-amz-checksum-type requires x-amz-checksum-algorithm"
            ));
        }
        return Ok(None);
    };
    let kind = match kind {
        None => alg.default_type(),
        Some(k) => Kind::parse(k.as_str()).ok_or_else(|| {
            s3_error!(
                InvalidRequest,
                "x-amz-checksum-type must be COMPOSITE or FULL_OBJECT"
            )
        })?,
    };
    if !alg.supports(kind) {
        return Err(s3_error!(
            InvalidRequest,
            "The {} checksum type cannot be used with the {} checksum algorithm.",
            kind.as_str(),
            alg.as_str().to_lowercase()
        ));
    }
    Ok(Some(ObjectChecksum {
        algorithm: Some(alg),
        kind,
        value: String::new(),
    }))
}

/// The checksum fields of a part's record, on an S3 output.
macro_rules! part_checksum {
    ($out:expr, $rec:expr) => {
        if let Some(c) = &$rec.checksum
            && let Some(alg) = c.algorithm
        {
            set_checksum!($out, alg, c.value.clone());
        }
    };
}

fn part_number(p: i32) -> S3Result<u32> {
    u32::try_from(p)
        .ok()
        .filter(|p| (1..=meridian_zone::multipart::MAX_PART).contains(p))
        .ok_or_else(|| {
            s3_error!(
                InvalidArgument,
                "Part number must be an integer between 1 and 10000, inclusive"
            )
        })
}

impl MeridianS3 {
    pub(super) async fn do_create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        let (caller, b) = self.writable_bucket(&req, &req.input.bucket).await?;
        let i = &req.input;
        let mut attrs = convert::attrs(AttrHeaders {
            content_type: i.content_type.as_deref(),
            cache_control: i.cache_control.as_deref(),
            content_disposition: i.content_disposition.as_deref(),
            content_encoding: i.content_encoding.as_deref(),
            content_language: i.content_language.as_deref(),
            expires: i.expires.as_ref(),
            metadata: i.metadata.as_ref(),
            tagging: i.tagging.as_deref(),
            storage_class: i.storage_class.as_ref().map(|s| s.as_str()),
        })?;
        let owner = self
            .new_version_controls(&caller, &b, write_controls!(i), &mut attrs)
            .await?;
        // Parts derive their key from this record (SSE-C: from the key sent
        // again), and their checksum algorithm.
        attrs.encryption = self.seal_write(&req, &b, write_sse!(i))?.0;
        attrs.checksum =
            promised_checksum(i.checksum_algorithm.as_ref(), i.checksum_type.as_ref())?;
        let promised = attrs.checksum.clone();
        let sse = SseFields::of(attrs.encryption.as_ref());
        let upload_id = self
            .zone
            .create_upload(&b, &i.key, &owner, attrs)
            .await
            .or_s3()?;
        let mut out = CreateMultipartUploadOutput {
            bucket: Some(b.name.clone()),
            key: Some(i.key.clone()),
            upload_id: Some(upload_id),
            ..Default::default()
        };
        if let Some(c) = promised
            && let Some(alg) = c.algorithm
        {
            out.checksum_algorithm = Some(ChecksumAlgorithm::from(alg.as_str().to_string()));
            out.checksum_type = Some(checksum::type_dto(c.kind));
        }
        set_sse_fields!(out, sse);
        Ok(S3Response::new(out))
    }

    pub(super) async fn do_upload_part(
        &self,
        req: S3Request<UploadPartInput>,
    ) -> S3Result<S3Response<UploadPartOutput>> {
        let (_, b) = self.writable_bucket(&req, &req.input.bucket).await?;
        let length = declared_length(&req, req.input.content_length);
        let expected = crate::checksum::expected(&req.headers, req.trailing_headers.as_ref())?;
        let declared = checksum::declared(&expected)
            .or(checksum::named(req.input.checksum_algorithm.as_ref())?);
        let mut req = req;
        let customer = self.request_customer_key(&req, customer_headers!(req.input))?;
        let i = &mut req.input;
        let part = part_number(i.part_number)?;
        let md5 = convert::content_md5(i.content_md5.as_deref())?;
        let rec = self
            .zone
            .upload_part(
                &b,
                &i.key,
                &i.upload_id,
                part,
                crate::checksum::checked(body(i.body.take()), expected),
                length,
                md5,
                customer.as_ref(),
                declared,
            )
            .await
            .or_s3()?;
        let mut out = UploadPartOutput {
            e_tag: Some(etag(&rec.etag)),
            ..Default::default()
        };
        part_checksum!(out, rec);
        set_sse_fields!(out, SseFields::of(customer.map(|c| c.record()).as_ref()));
        Ok(S3Response::new(out))
    }

    pub(super) async fn do_upload_part_copy(
        &self,
        req: S3Request<UploadPartCopyInput>,
    ) -> S3Result<S3Response<UploadPartCopyOutput>> {
        let (_, b) = self.writable_bucket(&req, &req.input.bucket).await?;
        let i = &req.input;
        let part = part_number(i.part_number)?;
        let CopySource::Bucket {
            bucket: sb,
            key: sk,
            version_id: sv,
        } = &i.copy_source
        else {
            return Err(s3_error!(NotImplemented, "copy sources must be bucket/key"));
        };
        let (_, src_b, src) = self
            .readable_object_for_copy(&req, sb, sk, sv.as_deref())
            .await?;
        copy_source_conditions(
            &src,
            &i.copy_source_if_match,
            &i.copy_source_if_none_match,
            &i.copy_source_if_modified_since,
            &i.copy_source_if_unmodified_since,
        )?;
        let (start, end) = copy_range(i.copy_source_range.as_deref(), src.size)?;
        let src_customer = self.request_customer_key(&req, customer_headers!(i, copy_source))?;
        let src_key = self.read_key(src.attrs.encryption.as_ref(), src_customer.as_ref())?;
        let customer = self.request_customer_key(&req, customer_headers!(i))?;
        let body = self.zone.copy_source(
            (&src_b.id, &src.key),
            &src.manifest.runs,
            (start, end),
            src_key,
        );
        let rec = self
            .zone
            .upload_part(
                &b,
                &i.key,
                &i.upload_id,
                part,
                body,
                Some(end - start),
                None,
                customer.as_ref(),
                None,
            )
            .await
            .or_s3()?;
        let mut result = CopyPartResult {
            e_tag: Some(etag(&rec.etag)),
            last_modified: Some(timestamp(rec.mtime_ns)),
            ..Default::default()
        };
        part_checksum!(result, rec);
        Ok(S3Response::new(UploadPartCopyOutput {
            copy_part_result: Some(result),
            copy_source_version_id: (src.version_id != "null").then(|| src.version_id.clone()),
            ..Default::default()
        }))
    }

    async fn readable_object_for_copy<T>(
        &self,
        req: &S3Request<T>,
        bucket: &str,
        key: &str,
        vid: Option<&str>,
    ) -> S3Result<(
        super::Caller,
        std::sync::Arc<meridian_zone::BucketInfo>,
        meridian_zone::IndexEntry,
    )> {
        let caller = self.caller(req).await?;
        let b = self.bucket(bucket).await?;
        let e = self.zone.lookup(&b, key, vid).await.or_s3()?;
        if e.delete_marker {
            return Err(s3_error!(
                InvalidRequest,
                "the copy source is a delete marker"
            ));
        }
        if !caller.can_read_object(&b, &e) {
            return Err(denied());
        }
        Ok((caller, b, e))
    }

    pub(super) async fn do_complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        let (_, b) = self.writable_bucket(&req, &req.input.bucket).await?;
        let i = &req.input;
        let parts: Vec<ListedPart> =
            i.multipart_upload
                .as_ref()
                .and_then(|m| m.parts.as_ref())
                .map(|ps| {
                    ps.iter()
                        .map(|p| {
                            let number = part_number(p.part_number.unwrap_or(0))?;
                            let etag = p.e_tag.as_ref().map(|e| e.value().to_string()).ok_or_else(
                                || s3_error!(MalformedXML, "every Part needs an ETag"),
                            )?;
                            Ok(ListedPart {
                                number,
                                etag,
                                checksums: listed_checksums!(p),
                            })
                        })
                        .collect::<S3Result<Vec<_>>>()
                })
                .transpose()?
                .unwrap_or_default();
        if parts.is_empty() {
            return Err(s3_error!(
                MalformedXML,
                "The XML you provided did not list any part"
            ));
        }
        let r = self
            .zone
            .complete_upload(
                &b,
                &i.key,
                CompleteUpload {
                    upload_id: i.upload_id.clone(),
                    parts,
                    checksum: listed_checksums!(i).into_iter().next(),
                    size: i.mpu_object_size.and_then(|s| u64::try_from(s).ok()),
                },
                WriteConditions {
                    if_match: cond_str(&i.if_match),
                    if_none_match: cond_str(&i.if_none_match),
                },
            )
            .await
            .or_s3()?;
        let mut out = CompleteMultipartUploadOutput {
            bucket: Some(b.name.clone()),
            key: Some(i.key.clone()),
            e_tag: Some(etag(&r.etag)),
            location: Some(format!("/{}/{}", b.name, i.key)),
            version_id: (r.version_id != "null" || b.versioning != Versioning::Off)
                .then(|| r.version_id.clone()),
            ..Default::default()
        };
        if let Some(c) = &r.checksum {
            set_kept_checksum!(out, c, c.shown(r.parts));
        }
        Ok(S3Response::new(out))
    }

    pub(super) async fn do_abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        let (_, b) = self.writable_bucket(&req, &req.input.bucket).await?;
        let i = &req.input;
        self.zone
            .abort_upload(&b, &i.key, &i.upload_id)
            .await
            .or_s3()?;
        Ok(S3Response::new(AbortMultipartUploadOutput::default()))
    }

    pub(super) async fn do_list_parts(
        &self,
        req: S3Request<ListPartsInput>,
    ) -> S3Result<S3Response<ListPartsOutput>> {
        let (_, b) = self.writable_bucket(&req, &req.input.bucket).await?;
        let i = &req.input;
        let max = i.max_parts.unwrap_or(1000).clamp(0, 1000) as u32;
        let after = i.part_number_marker.unwrap_or(0).max(0) as u32;
        let page = self
            .zone
            .list_parts(&b, &i.key, &i.upload_id, after, max.max(1))
            .await
            .or_s3()?;
        let next = page.parts.last().map(|p| p.part as i32);
        let promised = page.upload.attrs.checksum.as_ref();
        Ok(S3Response::new(ListPartsOutput {
            checksum_algorithm: promised
                .and_then(|c| c.algorithm)
                .map(|a| ChecksumAlgorithm::from(a.as_str().to_string())),
            checksum_type: promised.map(|c| checksum::type_dto(c.kind)),
            bucket: Some(b.name.clone()),
            key: Some(i.key.clone()),
            upload_id: Some(i.upload_id.clone()),
            initiator: Some(Initiator {
                display_name: Some(page.upload.owner.clone()),
                id: Some(page.upload.owner.clone()),
            }),
            owner: Some(owner(&page.upload.owner)),
            is_truncated: Some(page.truncated),
            max_parts: Some(max as i32),
            part_number_marker: Some(after as i32),
            next_part_number_marker: next,
            storage_class: Some(StorageClass::from(
                page.upload
                    .attrs
                    .storage_class
                    .clone()
                    .unwrap_or_else(|| "STANDARD".into()),
            )),
            parts: Some(
                page.parts
                    .iter()
                    .map(|p| {
                        let mut part = Part {
                            e_tag: Some(etag(&p.etag)),
                            last_modified: Some(timestamp(p.mtime_ns)),
                            part_number: Some(p.part as i32),
                            size: Some(p.data.size as i64),
                            ..Default::default()
                        };
                        part_checksum!(part, p);
                        part
                    })
                    .collect(),
            ),
            ..Default::default()
        }))
    }

    pub(super) async fn do_list_multipart_uploads(
        &self,
        req: S3Request<ListMultipartUploadsInput>,
    ) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
        let (_, b) = self.writable_bucket(&req, &req.input.bucket).await?;
        let i = &req.input;
        let enc = encoder(&i.encoding_type)?;
        let max = i.max_uploads.unwrap_or(1000).clamp(0, 1000) as usize;
        let prefix = i.prefix.clone().unwrap_or_default();
        let page = self
            .zone
            .list_uploads(
                &b,
                &prefix,
                i.delimiter.as_deref(),
                i.key_marker.as_deref().filter(|k| !k.is_empty()),
                i.upload_id_marker.as_deref(),
                max,
            )
            .await
            .or_s3()?;
        let last = page.uploads.last();
        Ok(S3Response::new(ListMultipartUploadsOutput {
            bucket: Some(b.name.clone()),
            common_prefixes: Some(
                page.prefixes
                    .iter()
                    .map(|p| CommonPrefix {
                        prefix: Some(enc(p)),
                    })
                    .collect(),
            ),
            delimiter: i.delimiter.clone(),
            encoding_type: i.encoding_type.clone(),
            is_truncated: Some(page.truncated),
            key_marker: Some(i.key_marker.clone().unwrap_or_default()),
            max_uploads: Some(max as i32),
            next_key_marker: page.truncated.then(|| last.map(|u| enc(&u.key))).flatten(),
            next_upload_id_marker: page
                .truncated
                .then(|| last.map(|u| u.upload_id.clone()))
                .flatten(),
            prefix: Some(enc(&prefix)),
            upload_id_marker: Some(i.upload_id_marker.clone().unwrap_or_default()),
            uploads: Some(
                page.uploads
                    .iter()
                    .map(|u| MultipartUpload {
                        initiated: Some(timestamp(u.initiated_ns)),
                        initiator: Some(Initiator {
                            display_name: Some(u.owner.clone()),
                            id: Some(u.owner.clone()),
                        }),
                        key: Some(enc(&u.key)),
                        owner: Some(owner(&u.owner)),
                        storage_class: Some(StorageClass::from(
                            u.attrs
                                .storage_class
                                .clone()
                                .unwrap_or_else(|| "STANDARD".into()),
                        )),
                        upload_id: Some(u.upload_id.clone()),
                        ..Default::default()
                    })
                    .collect(),
            ),
            ..Default::default()
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_ranges_are_inclusive_and_bounded() {
        assert_eq!(copy_range(Some("bytes=0-9"), 100).unwrap(), (0, 10));
        assert_eq!(copy_range(None, 100).unwrap(), (0, 100));
        assert!(copy_range(Some("bytes=0-100"), 100).is_err());
        assert!(copy_range(Some("bytes=5-1"), 100).is_err());
        assert!(copy_range(Some("0-1"), 100).is_err());
    }
}
