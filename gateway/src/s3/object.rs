//! Object operations: PUT/GET/HEAD/DELETE, copy, listings, tagging, ACLs.

use super::acl::grant_headers;
use super::bucket::{tag_set_of, tags_of};
use super::bucket_controls;
use super::object_lock;
use super::sse::{CustomerHeaders, SseFields, customer_headers, set_sse_fields, write_sse};
use super::{Caller, MeridianS3, OrS3, denied, encoder, max_keys, owner};
use crate::checksum::{self, set_checksum, set_kept_checksum};
use crate::convert::{self, AttrHeaders, etag, timestamp, timestamp_ns};
use futures::StreamExt as _;
use meridian_zone::object::{DeleteConditions, ListParams, PutOptions, WriteConditions};
use meridian_zone::{BucketInfo, IndexEntry, Versioning, ZoneError, data};
use s3s::dto::*;
use s3s::{S3Error, S3ErrorCode, S3Request, S3Response, S3Result, s3_error};

/// A request body as the zone consumes it.
pub(super) fn body(b: Option<StreamingBlob>) -> data::Body {
    match b {
        Some(b) => Box::pin(b.map(|r| r.map_err(|e| e.to_string()))),
        None => Box::pin(futures::stream::empty()),
    }
}

/// Object bytes as s3s sends them: the zone stream runs in its own task
/// (bounded by a small channel), so the body is Sync and a client that goes
/// away stops the reads.
fn blob(mut s: data::ByteStream) -> StreamingBlob {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<bytes::Bytes, std::io::Error>>(2);
    tokio::spawn(async move {
        while let Some(item) = s.next().await {
            let item = item.map_err(|e| {
                tracing::warn!(error = %e, "object read failed mid-stream");
                std::io::Error::other(e.to_string())
            });
            let stop = item.is_err();
            if tx.send(item).await.is_err() || stop {
                return;
            }
        }
    });
    StreamingBlob::wrap(tokio_stream_wrapper(rx))
}

fn tokio_stream_wrapper<T: Send + 'static>(
    mut rx: tokio::sync::mpsc::Receiver<T>,
) -> impl futures::Stream<Item = T> + Send + Sync + 'static {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

/// The declared payload length (decoded length for aws-chunked bodies).
pub(super) fn declared_length<T>(req: &S3Request<T>, content_length: Option<i64>) -> Option<u64> {
    req.headers
        .get("x-amz-decoded-content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .or(content_length.and_then(|l| u64::try_from(l).ok()))
}

pub(super) fn cond_str(c: &Option<ETagCondition>) -> Option<String> {
    c.as_ref().map(|c| match c {
        ETagCondition::Any => "*".to_string(),
        ETagCondition::ETag(e) => format!("\"{}\"", e.value()),
    })
}

/// An S3 timestamp in whole seconds (what HTTP dates carry).
fn whole_seconds(t: &Timestamp) -> i64 {
    convert::timestamp_ns(t).div_euclid(1_000_000_000) as i64
}

/// The version id header: absent for objects that never had versioning.
fn version_header(b: &BucketInfo, vid: &str) -> Option<String> {
    (vid != "null" || b.versioning != Versioning::Off).then(|| vid.to_string())
}

fn storage_class(e: &IndexEntry) -> String {
    e.attrs
        .storage_class
        .clone()
        .unwrap_or_else(|| "STANDARD".into())
}

/// 304, carrying the validators (ETag, Last-Modified) the client compares.
fn not_modified(e: &IndexEntry) -> S3Error {
    let mut err = S3Error::new(S3ErrorCode::NotModified);
    let mut h = http::HeaderMap::new();
    if let Ok(v) = http::HeaderValue::from_str(&format!("\"{}\"", e.etag)) {
        h.insert(http::header::ETAG, v);
    }
    if let Some(d) = convert::http_date(&timestamp(e.mtime_ns))
        && let Ok(v) = http::HeaderValue::from_str(&d)
    {
        h.insert(http::header::LAST_MODIFIED, v);
    }
    err.set_headers(h);
    err
}

/// What GET and HEAD share.
struct ReadRequest<'a> {
    bucket: &'a str,
    key: &'a str,
    version_id: Option<&'a str>,
    if_match: &'a Option<ETagCondition>,
    if_none_match: &'a Option<ETagCondition>,
    if_modified_since: &'a Option<Timestamp>,
    if_unmodified_since: &'a Option<Timestamp>,
    range: &'a Option<Range>,
    part_number: Option<i32>,
    customer: CustomerHeaders<'a>,
    /// `x-amz-checksum-mode: ENABLED`.
    checksum_mode: bool,
}

fn checksum_enabled(mode: Option<&ChecksumMode>) -> bool {
    mode.is_some_and(|m| m.as_str().eq_ignore_ascii_case(ChecksumMode::ENABLED))
}

/// The kept checksum a GET/HEAD with checksum mode reports: the object's for
/// a whole read, a part's for `partNumber` of a composite object, none for a
/// range (as AWS).
fn kept_checksum(out: &mut GetObjectOutput, e: &IndexEntry, ranged: bool, part: Option<i32>) {
    let Some(c) = &e.attrs.checksum else { return };
    let Some(alg) = c.algorithm else { return };
    match part {
        _ if ranged => {}
        None => set_kept_checksum!(out, c, c.shown(e.parts)),
        Some(n) if e.parts == 0 && n == 1 => set_kept_checksum!(out, c, c.value.clone()),
        Some(n) if c.kind == meridian_zone::checksum::ChecksumType::Composite => {
            if let Some(v) = usize::try_from(n - 1)
                .ok()
                .and_then(|i| e.part_checksums.get(i))
            {
                set_checksum!(out, alg, v.clone());
            }
        }
        Some(_) => {}
    }
}

/// What a write (PUT, copy, multipart upload) asks for its new version's
/// access and protection.
pub(super) struct WriteControls<'a> {
    pub canned: Option<&'a str>,
    pub grants: super::acl::GrantHeaders<'a>,
    pub lock: object_lock::LockHeaders<'a>,
}

/// The [`WriteControls`] of an S3 write input.
macro_rules! write_controls {
    ($i:expr) => {
        $crate::s3::object::WriteControls {
            canned: $i.acl.as_ref().map(|a| a.as_str()),
            grants: $crate::s3::acl::grant_headers!($i, no_write),
            lock: $crate::s3::object_lock::lock_headers!($i),
        }
    };
}
pub(super) use write_controls;

/// Outcome of the GET/HEAD preconditions.
enum Precondition {
    Proceed,
    NotModified,
}

fn check_read_conditions(
    e: &IndexEntry,
    if_match: &Option<ETagCondition>,
    if_none_match: &Option<ETagCondition>,
    if_modified_since: &Option<Timestamp>,
    if_unmodified_since: &Option<Timestamp>,
) -> S3Result<Precondition> {
    let secs = (e.mtime_ns / 1_000_000_000) as i128;
    let t_secs = |t: &Timestamp| timestamp_ns(t).div_euclid(1_000_000_000);
    let matches = |c: &ETagCondition| match c {
        ETagCondition::Any => true,
        ETagCondition::ETag(t) => t.value() == e.etag,
    };
    if let Some(c) = if_match {
        if !matches(c) {
            return Err(s3_error!(PreconditionFailed, "If-Match does not match"));
        }
    } else if let Some(t) = if_unmodified_since
        && secs > t_secs(t)
    {
        return Err(s3_error!(
            PreconditionFailed,
            "modified since If-Unmodified-Since"
        ));
    }
    if let Some(c) = if_none_match {
        if matches(c) {
            return Ok(Precondition::NotModified);
        }
    } else if let Some(t) = if_modified_since
        && secs <= t_secs(t)
    {
        return Ok(Precondition::NotModified);
    }
    Ok(Precondition::Proceed)
}

/// Resolves a Range header (or a part number) against an object of `size`:
/// (start, end exclusive, Content-Range if partial).
fn resolve_range(
    e: &IndexEntry,
    range: &Option<Range>,
    part: Option<i32>,
) -> S3Result<(u64, u64, Option<String>)> {
    let size = e.size;
    if let Some(p) = part {
        if range.is_some() {
            return Err(s3_error!(
                InvalidRequest,
                "Range and partNumber cannot both be given"
            ));
        }
        let sizes: Vec<u64> = if e.parts == 0 {
            vec![size]
        } else {
            e.part_sizes.clone()
        };
        if p < 1 || p as usize > sizes.len() {
            let mut err = S3Error::with_message(
                S3ErrorCode::Custom("InvalidPartNumber".into()),
                "The requested partnumber is not satisfiable",
            );
            err.set_status_code(http::StatusCode::RANGE_NOT_SATISFIABLE);
            return Err(err);
        }
        let start: u64 = sizes[..p as usize - 1].iter().sum();
        let end = start + sizes[p as usize - 1];
        let cr = (e.parts > 0).then(|| format!("bytes {start}-{}/{size}", end.saturating_sub(1)));
        return Ok((start, end, cr));
    }
    let Some(r) = range else {
        return Ok((0, size, None));
    };
    let unsatisfiable = || {
        let mut err = S3Error::with_message(
            S3ErrorCode::InvalidRange,
            "The requested range is not satisfiable",
        );
        let mut h = http::HeaderMap::new();
        if let Ok(v) = http::HeaderValue::from_str(&format!("bytes */{size}")) {
            h.insert(http::header::CONTENT_RANGE, v);
        }
        err.set_headers(h);
        err
    };
    let (start, end) = match *r {
        Range::Int { first, last } => {
            if first >= size {
                return Err(unsatisfiable());
            }
            let last = last.map_or(size - 1, |l| l.min(size - 1));
            if last < first {
                return Err(unsatisfiable());
            }
            (first, last + 1)
        }
        Range::Suffix { length } => {
            if length == 0 || size == 0 {
                return Err(unsatisfiable());
            }
            (size - length.min(size), size)
        }
    };
    Ok((
        start,
        end,
        Some(format!("bytes {start}-{}/{size}", end - 1)),
    ))
}

impl MeridianS3 {
    /// The object version, if the caller may read it (delete markers: 404 / 405).
    /// Sets the ACL, retention and legal hold of a new version `caller`
    /// writes into `b`, as the request names them and the bucket's controls
    /// allow; returns the version's owner.
    pub(super) async fn new_version_controls(
        &self,
        caller: &Caller,
        b: &BucketInfo,
        c: WriteControls<'_>,
        attrs: &mut meridian_zone::ObjectAttrs,
    ) -> S3Result<String> {
        let owner = bucket_controls::object_owner(caller, b, c.canned);
        self.set_object_acl(b, attrs, c.canned, c.grants, &owner)
            .await?;
        object_lock::set_write_lock(b, c.lock, attrs)?;
        Ok(owner)
    }

    /// An object version whose ACL the caller may read (`write` false) or replace.
    async fn acl_object<T>(
        &self,
        req: &S3Request<T>,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        write: bool,
    ) -> S3Result<(Caller, std::sync::Arc<BucketInfo>, IndexEntry)> {
        let caller = self.caller(req).await?;
        let b = self.bucket(bucket).await?;
        // The gate found the bucket policy allows this request.
        let granted = req.extensions.get::<super::access::PolicyGrant>().is_some();
        let e = match self.zone.lookup(&b, key, version_id).await {
            Ok(e) => e,
            Err(ZoneError::NoSuchKey(_) | ZoneError::NoSuchVersion { .. })
                if !granted && !caller.can_read_bucket(&b) =>
            {
                return Err(denied());
            }
            Err(err) => return Err(convert::s3_error(err)),
        };
        if !granted && !caller.can_object_acl(&b, &e, write) {
            return Err(denied());
        }
        Ok((caller, b, e))
    }

    /// The version a caller may read. `with_data`: its data is read next,
    /// so a small version's inline data comes with the look-up.
    async fn readable_object<T>(
        &self,
        req: &S3Request<T>,
        (bucket, key, version_id): (&str, &str, Option<&str>),
        with_data: bool,
    ) -> S3Result<(Caller, std::sync::Arc<BucketInfo>, IndexEntry)> {
        let caller = self.caller(req).await?;
        let b = self.bucket(bucket).await?;
        // The bucket policy first (this may be another bucket than the
        // request's: a copy's source).
        let action = if version_id.is_some() {
            "s3:GetObjectVersion"
        } else {
            "s3:GetObject"
        };
        // The request's facts are gathered only for a bucket with a policy.
        let policy = match super::access::policy_of(&b) {
            Some(p) => super::access::decide(&b, &p, &caller.facts(req), action, Some(key)),
            None => crate::policy::Decision::NoOpinion,
        };
        if policy == crate::policy::Decision::Deny {
            return Err(denied());
        }
        let granted = policy == crate::policy::Decision::Allow;
        let found = if with_data {
            self.zone.lookup_with_data(&b, key, version_id).await
        } else {
            self.zone.lookup(&b, key, version_id).await
        };
        let e = match found {
            Ok(e) => e,
            Err(err @ ZoneError::DeleteMarker { .. }) => {
                // Without ListBucket permission the caller only learns "access denied".
                if !granted && !caller.can_read_bucket(&b) {
                    return Err(denied());
                }
                return Err(convert::s3_error(err));
            }
            Err(ZoneError::NoSuchKey(_) | ZoneError::NoSuchVersion { .. })
                if !granted && !caller.can_read_bucket(&b) =>
            {
                return Err(denied());
            }
            Err(err) => return Err(convert::s3_error(err)),
        };
        if e.delete_marker {
            let mut err = S3Error::with_message(
                S3ErrorCode::MethodNotAllowed,
                "The specified method is not allowed against this resource (a delete marker)",
            );
            let mut h = http::HeaderMap::new();
            h.insert(
                "x-amz-delete-marker",
                http::HeaderValue::from_static("true"),
            );
            if let Ok(v) = http::HeaderValue::from_str(&e.version_id) {
                h.insert("x-amz-version-id", v);
            }
            err.set_headers(h);
            return Err(err);
        }
        if !granted && !caller.can_read_object(&b, &e) {
            return Err(denied());
        }
        Ok((caller, b, e))
    }

    pub(super) async fn do_put_object(
        &self,
        req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        if req.method == http::Method::POST && req.input.key.contains("${filename}") {
            // The form's file name does not reach the handler (s3s keeps it).
            return Err(s3_error!(
                NotImplemented,
                "the ${{filename}} key variable of POST uploads is not supported; name the key in the form"
            ));
        }
        let (caller, b) = self.writable_bucket(&req, &req.input.bucket).await?;
        let length = declared_length(&req, req.input.content_length);
        let expected = crate::checksum::expected(&req.headers, req.trailing_headers.as_ref())?;
        let keep = crate::checksum::kept(&expected, req.input.checksum_algorithm.as_ref(), None)?;
        let (encryption, data_key) = self.seal_write(&req, &b, write_sse!(req.input))?;
        let mut req = req;
        let input = &mut req.input;
        let mut attrs = convert::attrs(AttrHeaders {
            content_type: input.content_type.as_deref(),
            cache_control: input.cache_control.as_deref(),
            content_disposition: input.content_disposition.as_deref(),
            content_encoding: input.content_encoding.as_deref(),
            content_language: input.content_language.as_deref(),
            expires: input.expires.as_ref(),
            metadata: input.metadata.as_ref(),
            tagging: input.tagging.as_deref(),
            storage_class: input.storage_class.as_ref().map(|s| s.as_str()),
        })?;
        let owner = self
            .new_version_controls(&caller, &b, write_controls!(input), &mut attrs)
            .await?;
        let sse = SseFields::of(encryption.as_ref());
        attrs.encryption = encryption;
        let opts = PutOptions {
            owner,
            attrs,
            content_md5: convert::content_md5(input.content_md5.as_deref())?,
            length,
            conditions: WriteConditions {
                if_match: cond_str(&input.if_match),
                if_none_match: cond_str(&input.if_none_match),
            },
            data_key,
            checksum: Some(keep),
        };
        let r = self
            .zone
            .put_object(
                &b,
                &input.key,
                crate::checksum::checked(body(input.body.take()), expected),
                opts,
            )
            .await
            .or_s3()?;
        let mut out = PutObjectOutput {
            e_tag: Some(etag(&r.etag)),
            version_id: version_header(&b, &r.version_id),
            ..Default::default()
        };
        if let Some(c) = &r.checksum {
            set_kept_checksum!(out, c, c.shown(r.parts));
        }
        set_sse_fields!(out, sse);
        Ok(S3Response::new(out))
    }

    /// GET and HEAD: the version, its preconditions and range, the response headers.
    async fn read_object<T>(
        &self,
        req: &S3Request<T>,
        r: ReadRequest<'_>,
        with_body: bool,
    ) -> S3Result<GetObjectOutput> {
        let (_, b, e) = self
            .readable_object(req, (r.bucket, r.key, r.version_id), with_body)
            .await?;
        if let Precondition::NotModified = check_read_conditions(
            &e,
            r.if_match,
            r.if_none_match,
            r.if_modified_since,
            r.if_unmodified_since,
        )? {
            return Err(not_modified(&e));
        }
        let (start, end, content_range) = resolve_range(&e, r.range, r.part_number)?;
        // HEAD too needs an SSE-C object's key, as on AWS.
        let customer = self.request_customer_key(req, r.customer)?;
        let key = self.read_key(e.attrs.encryption.as_ref(), customer.as_ref())?;
        let a = &e.attrs;
        let (lock_mode, lock_until, legal_hold) = object_lock::lock_fields(a);
        let mut out = GetObjectOutput {
            body: with_body.then(|| {
                blob(
                    self.zone
                        .read_runs((&b.id, &e.key), &e.manifest.runs, (start, end), key),
                )
            }),
            e_tag: Some(etag(&e.etag)),
            last_modified: Some(timestamp(e.mtime_ns)),
            version_id: version_header(&b, &e.version_id),
            content_length: Some((end - start) as i64),
            content_range,
            accept_ranges: Some("bytes".into()),
            parts_count: (r.part_number.is_some() && e.parts > 0).then_some(e.parts as i32),
            content_type: Some(
                a.content_type
                    .clone()
                    .unwrap_or_else(|| "binary/octet-stream".into()),
            ),
            cache_control: a.cache_control.clone(),
            content_disposition: a.content_disposition.clone(),
            content_encoding: a.content_encoding.clone(),
            content_language: a.content_language.clone(),
            expires: a.expires.as_deref().and_then(convert::parse_http_date),
            metadata: (!a.metadata.is_empty()).then(|| {
                a.metadata
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            }),
            storage_class: a
                .storage_class
                .clone()
                .filter(|s| s != "STANDARD")
                .map(StorageClass::from),
            tag_count: (!a.tags.is_empty()).then_some(a.tags.len() as i32),
            object_lock_mode: lock_mode,
            object_lock_retain_until_date: lock_until,
            object_lock_legal_hold_status: legal_hold,
            ..Default::default()
        };
        set_sse_fields!(out, SseFields::of(a.encryption.as_ref()));
        if r.checksum_mode {
            kept_checksum(&mut out, &e, r.range.is_some(), r.part_number);
        }
        Ok(out)
    }

    pub(super) async fn do_get_object(
        &self,
        req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        let i = &req.input;
        let r = ReadRequest {
            bucket: &i.bucket,
            key: &i.key,
            version_id: i.version_id.as_deref(),
            if_match: &i.if_match,
            if_none_match: &i.if_none_match,
            if_modified_since: &i.if_modified_since,
            if_unmodified_since: &i.if_unmodified_since,
            range: &i.range,
            part_number: i.part_number,
            customer: customer_headers!(i),
            checksum_mode: checksum_enabled(i.checksum_mode.as_ref()),
        };
        Ok(S3Response::new(self.read_object(&req, r, true).await?))
    }

    pub(super) async fn do_head_object(
        &self,
        req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        let i = &req.input;
        let r = ReadRequest {
            bucket: &i.bucket,
            key: &i.key,
            version_id: i.version_id.as_deref(),
            if_match: &i.if_match,
            if_none_match: &i.if_none_match,
            if_modified_since: &i.if_modified_since,
            if_unmodified_since: &i.if_unmodified_since,
            range: &i.range,
            part_number: i.part_number,
            customer: customer_headers!(i),
            checksum_mode: checksum_enabled(i.checksum_mode.as_ref()),
        };
        let g = self.read_object(&req, r, false).await?;
        Ok(S3Response::new(HeadObjectOutput {
            accept_ranges: g.accept_ranges,
            cache_control: g.cache_control,
            content_disposition: g.content_disposition,
            content_encoding: g.content_encoding,
            content_language: g.content_language,
            content_length: g.content_length,
            content_range: g.content_range,
            content_type: g.content_type,
            e_tag: g.e_tag,
            expires: g.expires,
            last_modified: g.last_modified,
            metadata: g.metadata,
            parts_count: g.parts_count,
            storage_class: g.storage_class,
            version_id: g.version_id,
            object_lock_mode: g.object_lock_mode,
            object_lock_retain_until_date: g.object_lock_retain_until_date,
            object_lock_legal_hold_status: g.object_lock_legal_hold_status,
            server_side_encryption: g.server_side_encryption,
            ssekms_key_id: g.ssekms_key_id,
            sse_customer_algorithm: g.sse_customer_algorithm,
            sse_customer_key_md5: g.sse_customer_key_md5,
            checksum_crc32: g.checksum_crc32,
            checksum_crc32c: g.checksum_crc32c,
            checksum_crc64nvme: g.checksum_crc64nvme,
            checksum_sha1: g.checksum_sha1,
            checksum_sha256: g.checksum_sha256,
            checksum_type: g.checksum_type,
            ..Default::default()
        }))
    }

    pub(super) async fn do_delete_object(
        &self,
        req: S3Request<DeleteObjectInput>,
    ) -> S3Result<S3Response<DeleteObjectOutput>> {
        let (caller, b) = self.writable_bucket(&req, &req.input.bucket).await?;
        let i = &req.input;
        let conds = DeleteConditions {
            if_match: cond_str(&i.if_match),
            last_modified_s: i.if_match_last_modified_time.as_ref().map(whole_seconds),
            size: i
                .if_match_size
                .map(|n| {
                    u64::try_from(n).map_err(|_| {
                        s3_error!(InvalidArgument, "x-amz-if-match-size must not be negative")
                    })
                })
                .transpose()?,
            bypass_governance: self.may_bypass_governance(
                &req,
                &caller,
                &b,
                &i.key,
                i.bypass_governance_retention.unwrap_or(false),
            ),
            ..Default::default()
        };
        let r = self
            .zone
            .delete_object_if(
                &b,
                &i.key,
                i.version_id.as_deref(),
                caller.uid().unwrap_or(&b.owner),
                &conds,
            )
            .await
            .or_s3()?;
        Ok(S3Response::new(DeleteObjectOutput {
            delete_marker: r.delete_marker.then_some(true),
            version_id: r.version_id.and_then(|v| version_header(&b, &v)),
            ..Default::default()
        }))
    }

    pub(super) async fn do_delete_objects(
        &self,
        req: S3Request<DeleteObjectsInput>,
    ) -> S3Result<S3Response<DeleteObjectsOutput>> {
        // Decided key by key: the bucket policy may allow or deny each.
        self.refuse_if_read_only()?;
        let caller = self.caller(&req).await?;
        let b = self.bucket(&req.input.bucket).await?;
        let acl_allows = caller.can_write_bucket(&b);
        // Parsed once for every key of the request.
        let policy = super::access::policy_of(&b);
        let facts = policy.as_ref().map(|_| caller.facts(&req));
        let objects = &req.input.delete.objects;
        if objects.len() > 1000 {
            return Err(s3_error!(
                MalformedXML,
                "at most 1000 keys per DeleteObjects request"
            ));
        }
        let quiet = req.input.delete.quiet.unwrap_or(false);
        let who = caller.uid().unwrap_or(&b.owner).to_string();
        let todo: Vec<(String, Option<String>, bool, DeleteConditions)> = objects
            .iter()
            .map(|o| {
                // DeleteObjects' per-key conditions (ETag, LastModifiedTime, Size).
                let conds = DeleteConditions {
                    if_match: o.e_tag.as_ref().map(|e| format!("\"{}\"", e.value())),
                    last_modified_s: o.last_modified_time.as_ref().map(whole_seconds),
                    size: o.size.and_then(|n| u64::try_from(n).ok()),
                    bypass_governance: self.may_bypass_governance(
                        &req,
                        &caller,
                        &b,
                        &o.key,
                        req.input.bypass_governance_retention.unwrap_or(false),
                    ),
                    ..Default::default()
                };
                let action = if o.version_id.is_some() {
                    "s3:DeleteObjectVersion"
                } else {
                    "s3:DeleteObject"
                };
                let verdict = match (&policy, &facts) {
                    (Some(p), Some(f)) => super::access::decide(&b, p, f, action, Some(&o.key)),
                    _ => crate::policy::Decision::NoOpinion,
                };
                let allowed = match verdict {
                    crate::policy::Decision::Allow => true,
                    crate::policy::Decision::Deny => false,
                    crate::policy::Decision::NoOpinion => acl_allows,
                };
                (o.key.clone(), o.version_id.clone(), allowed, conds)
            })
            .collect();
        if !todo.iter().any(|(_, _, allowed, _)| *allowed) && !todo.is_empty() {
            return Err(denied());
        }
        let zone = self.zone.clone();
        let results: Vec<_> = futures::stream::iter(todo)
            .map(|(key, vid, allowed, conds)| {
                let (zone, b, who) = (zone.clone(), b.clone(), who.clone());
                async move {
                    let r = if allowed {
                        zone.delete_object_if(&b, &key, vid.as_deref(), &who, &conds)
                            .await
                    } else {
                        Err(ZoneError::Refused {
                            code: "AccessDenied".into(),
                            message: "Access Denied".into(),
                        })
                    };
                    ((key, vid), r)
                }
            })
            .buffered(16)
            .collect()
            .await;
        let mut deleted = Vec::new();
        let mut errors = Vec::new();
        for ((key, vid), r) in results {
            match r {
                Ok(d) => {
                    if !quiet {
                        deleted.push(DeletedObject {
                            key: Some(key),
                            version_id: vid.clone(),
                            delete_marker: d.delete_marker.then_some(true),
                            delete_marker_version_id: if d.delete_marker && vid.is_none() {
                                d.version_id.clone()
                            } else {
                                None
                            },
                        });
                    }
                }
                Err(e) => {
                    let s = convert::s3_error(e);
                    errors.push(Error {
                        code: Some(s.code().as_str().to_string()),
                        key: Some(key),
                        message: s.message().map(str::to_string),
                        version_id: vid,
                    });
                }
            }
        }
        Ok(S3Response::new(DeleteObjectsOutput {
            deleted: Some(deleted),
            errors: (!errors.is_empty()).then_some(errors),
            ..Default::default()
        }))
    }

    pub(super) async fn do_copy_object(
        &self,
        req: S3Request<CopyObjectInput>,
    ) -> S3Result<S3Response<CopyObjectOutput>> {
        let (caller, dst) = self.writable_bucket(&req, &req.input.bucket).await?;
        let i = &req.input;
        let CopySource::Bucket {
            bucket: sb,
            key: sk,
            version_id: sv,
        } = &i.copy_source
        else {
            return Err(s3_error!(NotImplemented, "copy sources must be bucket/key"));
        };
        let (_, src_b, src) = self
            .readable_object(&req, (sb, sk, sv.as_deref()), true)
            .await?;
        copy_source_conditions(
            &src,
            &i.copy_source_if_match,
            &i.copy_source_if_none_match,
            &i.copy_source_if_modified_since,
            &i.copy_source_if_unmodified_since,
        )?;
        let replace = i
            .metadata_directive
            .as_ref()
            .is_some_and(|d| d.as_str() == MetadataDirective::REPLACE);
        let replace_tags = i
            .tagging_directive
            .as_ref()
            .is_some_and(|d| d.as_str() == TaggingDirective::REPLACE);
        if !replace
            && !replace_tags
            && dst.id == src_b.id
            && i.key == **sk
            && i.storage_class.is_none()
            && i.acl.is_none()
            && i.grant_read.is_none()
            && i.grant_read_acp.is_none()
            && i.grant_write_acp.is_none()
            && i.grant_full_control.is_none()
            && i.server_side_encryption.is_none()
            && i.sse_customer_algorithm.is_none()
        {
            return Err(s3_error!(
                InvalidRequest,
                "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes."
            ));
        }
        let mut attrs = if replace {
            convert::attrs(AttrHeaders {
                content_type: i.content_type.as_deref(),
                cache_control: i.cache_control.as_deref(),
                content_disposition: i.content_disposition.as_deref(),
                content_encoding: i.content_encoding.as_deref(),
                content_language: i.content_language.as_deref(),
                expires: i.expires.as_ref(),
                metadata: i.metadata.as_ref(),
                tagging: None,
                storage_class: i.storage_class.as_ref().map(|s| s.as_str()),
            })?
        } else {
            let mut a = src.attrs.clone();
            if let Some(sc) = &i.storage_class {
                a.storage_class = Some(sc.as_str().to_string());
            }
            a
        };
        attrs.tags = if replace_tags {
            i.tagging
                .as_deref()
                .map(convert::parse_tagging)
                .transpose()?
                .unwrap_or_default()
        } else {
            src.attrs.tags.clone()
        };
        // A copy gets the ACL and retention its request names (or the
        // destination's default), never its source's (as AWS).
        let owner = self
            .new_version_controls(&caller, &dst, write_controls!(i), &mut attrs)
            .await?;
        // Read with the source's key, sealed as the request (or the
        // destination bucket) says: encryption is never copied.
        let src_customer = self.request_customer_key(&req, customer_headers!(i, copy_source))?;
        let src_key = self.read_key(src.attrs.encryption.as_ref(), src_customer.as_ref())?;
        let (encryption, data_key) = self.seal_write(&req, &dst, write_sse!(i))?;
        let sse = SseFields::of(encryption.as_ref());
        attrs.encryption = encryption;
        // The copy is summed again over its bytes: with the algorithm the
        // request names, else the source's.
        let keep = checksum::kept(
            &[],
            i.checksum_algorithm.as_ref(),
            src.attrs.checksum.as_ref().and_then(|c| c.algorithm),
        )?;
        let opts = PutOptions {
            owner,
            attrs,
            data_key,
            checksum: Some(keep),
            ..Default::default()
        };
        let r = self
            .zone
            .copy_object(&src_b, &src, &dst, &i.key, opts, src_key)
            .await
            .or_s3()?;
        let mut result = CopyObjectResult {
            e_tag: Some(etag(&r.etag)),
            last_modified: Some(timestamp(r.mtime_ns)),
            ..Default::default()
        };
        if let Some(c) = &r.checksum {
            set_kept_checksum!(result, c, c.value.clone());
        }
        let mut out = CopyObjectOutput {
            copy_object_result: Some(result),
            version_id: version_header(&dst, &r.version_id),
            copy_source_version_id: version_header(&src_b, &src.version_id),
            ..Default::default()
        };
        set_sse_fields!(out, sse);
        Ok(S3Response::new(out))
    }

    pub(super) async fn do_list_objects(
        &self,
        req: S3Request<ListObjectsInput>,
    ) -> S3Result<S3Response<ListObjectsOutput>> {
        let (_, b) = self.readable_bucket(&req, &req.input.bucket).await?;
        let i = &req.input;
        let enc = encoder(&i.encoding_type)?;
        let max = max_keys(i.max_keys)?;
        let params = ListParams {
            prefix: i.prefix.clone().unwrap_or_default(),
            delimiter: i.delimiter.clone().filter(|d| !d.is_empty()),
            after: i.marker.clone().filter(|m| !m.is_empty()),
            max,
        };
        let page = self.zone.list_objects(&b, &params).await.or_s3()?;
        let next_marker = (page.truncated && params.delimiter.is_some())
            .then(|| page.last.clone().map(|m| enc(&m)))
            .flatten();
        Ok(S3Response::new(ListObjectsOutput {
            name: Some(b.name.clone()),
            prefix: Some(enc(&params.prefix)),
            marker: Some(i.marker.clone().map(|m| enc(&m)).unwrap_or_default()),
            max_keys: Some(max as i32),
            is_truncated: Some(page.truncated),
            contents: Some(
                page.entries
                    .iter()
                    .map(|e| object_of(e, enc, true))
                    .collect(),
            ),
            common_prefixes: Some(
                page.prefixes
                    .iter()
                    .map(|p| CommonPrefix {
                        prefix: Some(enc(p)),
                    })
                    .collect(),
            ),
            delimiter: params.delimiter.as_deref().map(enc),
            next_marker,
            encoding_type: i.encoding_type.clone(),
            request_charged: None,
        }))
    }

    pub(super) async fn do_list_objects_v2(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        let (_, b) = self.readable_bucket(&req, &req.input.bucket).await?;
        let i = &req.input;
        let enc = encoder(&i.encoding_type)?;
        let max = max_keys(i.max_keys)?;
        let after = match &i.continuation_token {
            Some(t) => Some(decode_token(t)?),
            None => i.start_after.clone().filter(|s| !s.is_empty()),
        };
        let params = ListParams {
            prefix: i.prefix.clone().unwrap_or_default(),
            delimiter: i.delimiter.clone().filter(|d| !d.is_empty()),
            after,
            max,
        };
        let page = self.zone.list_objects(&b, &params).await.or_s3()?;
        let fetch_owner = i.fetch_owner.unwrap_or(false);
        Ok(S3Response::new(ListObjectsV2Output {
            name: Some(b.name.clone()),
            prefix: Some(enc(&params.prefix)),
            max_keys: Some(max as i32),
            key_count: Some((page.entries.len() + page.prefixes.len()) as i32),
            continuation_token: i.continuation_token.clone(),
            is_truncated: Some(page.truncated),
            next_continuation_token: page
                .truncated
                .then(|| page.last.as_deref().map(encode_token))
                .flatten(),
            contents: Some(
                page.entries
                    .iter()
                    .map(|e| object_of(e, enc, fetch_owner))
                    .collect(),
            ),
            common_prefixes: Some(
                page.prefixes
                    .iter()
                    .map(|p| CommonPrefix {
                        prefix: Some(enc(p)),
                    })
                    .collect(),
            ),
            delimiter: params.delimiter.as_deref().map(enc),
            encoding_type: i.encoding_type.clone(),
            start_after: i.start_after.as_deref().map(enc),
            request_charged: None,
        }))
    }

    pub(super) async fn do_list_object_versions(
        &self,
        req: S3Request<ListObjectVersionsInput>,
    ) -> S3Result<S3Response<ListObjectVersionsOutput>> {
        let (_, b) = self.readable_bucket(&req, &req.input.bucket).await?;
        let i = &req.input;
        let enc = encoder(&i.encoding_type)?;
        let max = max_keys(i.max_keys)?;
        let params = ListParams {
            prefix: i.prefix.clone().unwrap_or_default(),
            delimiter: i.delimiter.clone().filter(|d| !d.is_empty()),
            after: i.key_marker.clone().filter(|k| !k.is_empty()),
            max,
        };
        let page = self
            .zone
            .list_versions(&b, &params, i.version_id_marker.as_deref())
            .await
            .or_s3()?;
        let mut versions = Vec::new();
        let mut markers = Vec::new();
        for (e, latest) in &page.versions {
            if e.delete_marker {
                markers.push(DeleteMarkerEntry {
                    is_latest: Some(*latest),
                    key: Some(enc(&e.key)),
                    last_modified: Some(timestamp(e.mtime_ns)),
                    owner: Some(owner(&e.owner)),
                    version_id: Some(e.version_id.clone()),
                });
            } else {
                versions.push(ObjectVersion {
                    e_tag: Some(etag(&e.etag)),
                    is_latest: Some(*latest),
                    key: Some(enc(&e.key)),
                    last_modified: Some(timestamp(e.mtime_ns)),
                    owner: Some(owner(&e.owner)),
                    size: Some(e.size as i64),
                    storage_class: Some(ObjectVersionStorageClass::from(storage_class(e))),
                    version_id: Some(e.version_id.clone()),
                    ..Default::default()
                });
            }
        }
        let (next_key, next_vid) = match (&page.next, page.truncated) {
            (Some((k, v)), true) => (Some(enc(k)), (!v.is_empty()).then(|| v.clone())),
            _ => (None, None),
        };
        Ok(S3Response::new(ListObjectVersionsOutput {
            common_prefixes: Some(
                page.prefixes
                    .iter()
                    .map(|p| CommonPrefix {
                        prefix: Some(enc(p)),
                    })
                    .collect(),
            ),
            delete_markers: Some(markers),
            delimiter: params.delimiter.as_deref().map(enc),
            encoding_type: i.encoding_type.clone(),
            is_truncated: Some(page.truncated),
            key_marker: Some(i.key_marker.clone().map(|k| enc(&k)).unwrap_or_default()),
            max_keys: Some(max as i32),
            name: Some(b.name.clone()),
            next_key_marker: next_key,
            next_version_id_marker: next_vid,
            prefix: Some(enc(&params.prefix)),
            request_charged: None,
            version_id_marker: Some(i.version_id_marker.clone().unwrap_or_default()),
            versions: Some(versions),
        }))
    }

    pub(super) async fn do_get_object_tagging(
        &self,
        req: S3Request<GetObjectTaggingInput>,
    ) -> S3Result<S3Response<GetObjectTaggingOutput>> {
        let i = &req.input;
        let (_, b, e) = self
            .readable_object(&req, (&i.bucket, &i.key, i.version_id.as_deref()), false)
            .await?;
        Ok(S3Response::new(GetObjectTaggingOutput {
            tag_set: tag_set_of(&e.attrs.tags),
            version_id: version_header(&b, &e.version_id),
        }))
    }

    pub(super) async fn do_put_object_tagging(
        &self,
        req: S3Request<PutObjectTaggingInput>,
    ) -> S3Result<S3Response<PutObjectTaggingOutput>> {
        let (_, b) = self.writable_bucket(&req, &req.input.bucket).await?;
        let i = &req.input;
        let tags = tags_of(&i.tagging)?;
        let e = self
            .zone
            .update_attrs(&b, &i.key, i.version_id.as_deref(), |a| {
                a.tags = tags.clone();
                Ok(())
            })
            .await
            .or_s3()?;
        Ok(S3Response::new(PutObjectTaggingOutput {
            version_id: version_header(&b, &e.version_id),
        }))
    }

    pub(super) async fn do_delete_object_tagging(
        &self,
        req: S3Request<DeleteObjectTaggingInput>,
    ) -> S3Result<S3Response<DeleteObjectTaggingOutput>> {
        let (_, b) = self.writable_bucket(&req, &req.input.bucket).await?;
        let i = &req.input;
        let e = self
            .zone
            .update_attrs(&b, &i.key, i.version_id.as_deref(), |a| {
                a.tags.clear();
                Ok(())
            })
            .await
            .or_s3()?;
        Ok(S3Response::new(DeleteObjectTaggingOutput {
            version_id: version_header(&b, &e.version_id),
        }))
    }

    pub(super) async fn do_get_object_attributes(
        &self,
        req: S3Request<GetObjectAttributesInput>,
    ) -> S3Result<S3Response<GetObjectAttributesOutput>> {
        let i = &req.input;
        let (_, b, e) = self
            .readable_object(&req, (&i.bucket, &i.key, i.version_id.as_deref()), false)
            .await?;
        // As GET: an SSE-C object answers only with its key.
        let customer = self.request_customer_key(&req, customer_headers!(i))?;
        self.read_key(e.attrs.encryption.as_ref(), customer.as_ref())?;
        // One header, comma-separated (s3s keeps it as one item).
        let wants = |a: &str| {
            i.object_attributes
                .iter()
                .flat_map(|x| x.as_str().split(','))
                .any(|x| x.trim() == a)
        };
        if i.object_attributes.is_empty() {
            return Err(s3_error!(
                InvalidArgument,
                "x-amz-object-attributes names none of ETag, Checksum, ObjectParts, StorageClass, ObjectSize"
            ));
        }
        let parts = (wants(ObjectAttributes::OBJECT_PARTS) && e.parts > 0).then(|| {
            let max = i.max_parts.unwrap_or(1000).clamp(0, 1000) as usize;
            let after = i.part_number_marker.unwrap_or(0).max(0) as usize;
            let page: Vec<ObjectPart> = e
                .part_sizes
                .iter()
                .enumerate()
                .skip(after)
                .take(max)
                .map(|(n, size)| {
                    let mut p = ObjectPart {
                        part_number: Some(n as i32 + 1),
                        size: Some(*size as i64),
                        ..Default::default()
                    };
                    if let (Some(alg), Some(v)) = (
                        e.attrs.checksum.as_ref().and_then(|c| c.algorithm),
                        e.part_checksums.get(n),
                    ) {
                        set_checksum!(p, alg, v.clone());
                    }
                    p
                })
                .collect();
            let last = after + page.len();
            let truncated = last < e.part_sizes.len();
            GetObjectAttributesParts {
                is_truncated: Some(truncated),
                max_parts: Some(max as i32),
                next_part_number_marker: truncated.then_some(last as i32),
                part_number_marker: i.part_number_marker,
                parts: Some(page),
                total_parts_count: Some(e.parts as i32),
            }
        });
        let sum = e
            .attrs
            .checksum
            .as_ref()
            .filter(|_| wants(ObjectAttributes::CHECKSUM))
            .and_then(|c| {
                let alg = c.algorithm?;
                let mut out = Checksum {
                    checksum_type: Some(checksum::type_dto(c.kind)),
                    ..Default::default()
                };
                set_checksum!(out, alg, c.value.clone());
                Some(out)
            });
        Ok(S3Response::new(GetObjectAttributesOutput {
            checksum: sum,
            e_tag: wants(ObjectAttributes::ETAG).then(|| etag(&e.etag)),
            last_modified: Some(timestamp(e.mtime_ns)),
            object_parts: parts,
            object_size: wants(ObjectAttributes::OBJECT_SIZE).then_some(e.size as i64),
            storage_class: wants(ObjectAttributes::STORAGE_CLASS).then(|| {
                StorageClass::from(
                    e.attrs
                        .storage_class
                        .clone()
                        .unwrap_or_else(|| "STANDARD".into()),
                )
            }),
            version_id: version_header(&b, &e.version_id),
            ..Default::default()
        }))
    }

    pub(super) async fn do_get_object_acl(
        &self,
        req: S3Request<GetObjectAclInput>,
    ) -> S3Result<S3Response<GetObjectAclOutput>> {
        let i = &req.input;
        let (_, _, e) = self
            .acl_object(&req, &i.bucket, &i.key, i.version_id.as_deref(), false)
            .await?;
        Ok(S3Response::new(GetObjectAclOutput {
            grants: Some(super::acl::report(&e.owner, e.attrs.acl, &e.attrs.grants)),
            owner: Some(owner(&e.owner)),
            request_charged: None,
        }))
    }

    pub(super) async fn do_put_object_acl(
        &self,
        req: S3Request<PutObjectAclInput>,
    ) -> S3Result<S3Response<PutObjectAclOutput>> {
        self.refuse_if_read_only()?;
        let i = &req.input;
        let (_, b, e) = self
            .acl_object(&req, &i.bucket, &i.key, i.version_id.as_deref(), true)
            .await?;
        let r = self
            .replacement_acl(
                &b,
                i.acl.as_ref().map(|a| a.as_str()),
                grant_headers!(i),
                i.access_control_policy.as_ref(),
                &e.owner,
            )
            .await?;
        self.zone
            .update_attrs(&b, &i.key, i.version_id.as_deref(), |a| {
                a.acl = r.acl;
                a.grants = r.grants.clone();
                Ok(())
            })
            .await
            .or_s3()?;
        Ok(S3Response::new(PutObjectAclOutput::default()))
    }
}

/// The copy-source preconditions (all answered with 412, as AWS does).
pub(super) fn copy_source_conditions(
    src: &IndexEntry,
    if_match: &Option<ETagCondition>,
    if_none_match: &Option<ETagCondition>,
    if_modified_since: &Option<Timestamp>,
    if_unmodified_since: &Option<Timestamp>,
) -> S3Result<()> {
    match check_read_conditions(
        src,
        if_match,
        if_none_match,
        if_modified_since,
        if_unmodified_since,
    ) {
        Ok(Precondition::Proceed) => Ok(()),
        Ok(Precondition::NotModified) => Err(s3_error!(
            PreconditionFailed,
            "a copy-source condition does not hold"
        )),
        Err(e) => Err(e),
    }
}

fn object_of(e: &IndexEntry, enc: fn(&str) -> String, with_owner: bool) -> Object {
    Object {
        e_tag: Some(etag(&e.etag)),
        key: Some(enc(&e.key)),
        last_modified: Some(timestamp(e.mtime_ns)),
        owner: with_owner.then(|| owner(&e.owner)),
        size: Some(e.size as i64),
        storage_class: Some(ObjectStorageClass::from(storage_class(e))),
        ..Default::default()
    }
}

/// ListObjectsV2 continuation tokens: the last key, base64 (opaque to clients).
fn encode_token(key: &str) -> String {
    base64_simd::URL_SAFE_NO_PAD.encode_to_string(key.as_bytes())
}

fn decode_token(t: &str) -> S3Result<String> {
    base64_simd::URL_SAFE_NO_PAD
        .decode_to_vec(t)
        .ok()
        .and_then(|v| String::from_utf8(v).ok())
        .ok_or_else(|| {
            s3_error!(
                InvalidArgument,
                "The continuation token provided is incorrect"
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(size: u64) -> IndexEntry {
        IndexEntry {
            size,
            etag: "e".into(),
            mtime_ns: 10_000_000_000,
            ..Default::default()
        }
    }

    #[test]
    fn ranges_resolve_as_http_says() {
        let e = entry(100);
        let r = |r: Range| resolve_range(&e, &Some(r), None).map(|(s, e, _)| (s, e));
        assert_eq!(
            r(Range::Int {
                first: 0,
                last: Some(9)
            })
            .unwrap(),
            (0, 10)
        );
        assert_eq!(
            r(Range::Int {
                first: 90,
                last: None
            })
            .unwrap(),
            (90, 100)
        );
        assert_eq!(
            r(Range::Int {
                first: 90,
                last: Some(500)
            })
            .unwrap(),
            (90, 100)
        );
        assert_eq!(r(Range::Suffix { length: 5 }).unwrap(), (95, 100));
        assert_eq!(r(Range::Suffix { length: 500 }).unwrap(), (0, 100));
        assert!(
            r(Range::Int {
                first: 100,
                last: None
            })
            .is_err()
        );
        assert!(r(Range::Suffix { length: 0 }).is_err());
        let (_, _, cr) = resolve_range(
            &e,
            &Some(Range::Int {
                first: 1,
                last: Some(2),
            }),
            None,
        )
        .unwrap();
        assert_eq!(cr.as_deref(), Some("bytes 1-2/100"));
    }

    #[test]
    fn part_numbers_select_parts() {
        let mut e = entry(30);
        e.parts = 3;
        e.part_sizes = vec![10, 10, 10];
        let (s, end, cr) = resolve_range(&e, &None, Some(2)).unwrap();
        assert_eq!((s, end), (10, 20));
        assert_eq!(cr.as_deref(), Some("bytes 10-19/30"));
        assert!(resolve_range(&e, &None, Some(4)).is_err());
    }

    #[test]
    fn conditions_follow_rfc_precedence() {
        let e = entry(1);
        let tag = |s: &str| Some(ETagCondition::ETag(ETag::Strong(s.into())));
        let at = |secs: u64| Some(timestamp(secs * 1_000_000_000));
        assert!(check_read_conditions(&e, &tag("x"), &None, &None, &None).is_err());
        assert!(matches!(
            check_read_conditions(&e, &None, &tag("e"), &None, &None),
            Ok(Precondition::NotModified)
        ));
        assert!(matches!(
            check_read_conditions(&e, &None, &None, &at(10), &None),
            Ok(Precondition::NotModified)
        ));
        assert!(matches!(
            check_read_conditions(&e, &None, &None, &at(9), &None),
            Ok(Precondition::Proceed)
        ));
        assert!(check_read_conditions(&e, &None, &None, &None, &at(9)).is_err());
        // If-Match that holds overrides a failing If-Unmodified-Since.
        assert!(check_read_conditions(&e, &tag("e"), &None, &None, &at(9)).is_ok());
    }

    #[test]
    fn continuation_tokens_round_trip() {
        for k in ["a", "dir/ü b+c", ""] {
            assert_eq!(decode_token(&encode_token(k)).unwrap(), k);
        }
        assert!(decode_token("!!!").is_err());
    }
}
