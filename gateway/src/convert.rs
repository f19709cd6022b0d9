//! Translations between the zone's types and s3s's: errors to S3 error codes,
//! times, ETags, request headers to object attributes.

use meridian_client::ClientError;
use meridian_zone::{ObjectAttrs, ZoneError};
use s3s::dto::{ETag, Timestamp, TimestampFormat};
use s3s::{S3Error, S3ErrorCode};
use std::time::{Duration, SystemTime};

/// Largest total of `x-amz-meta-*` names and values (AWS: 2 KB).
pub const MAX_METADATA_BYTES: usize = 2048;

/// The S3 error for a zone error.
pub fn s3_error(e: ZoneError) -> S3Error {
    use S3ErrorCode as C;
    let msg = e.to_string();
    let (code, status) = match &e {
        ZoneError::NoZone(_) => (C::ServiceUnavailable, None),
        ZoneError::NoSuchBucket(_) => (C::NoSuchBucket, None),
        ZoneError::NoSuchKey(_) => (C::NoSuchKey, None),
        ZoneError::DeleteMarker { version_id, .. } => {
            let mut err = S3Error::with_message(C::NoSuchKey, msg);
            let mut h = http::HeaderMap::new();
            h.insert(
                "x-amz-delete-marker",
                http::HeaderValue::from_static("true"),
            );
            if let Ok(v) = http::HeaderValue::from_str(version_id) {
                h.insert("x-amz-version-id", v);
            }
            err.set_headers(h);
            return err;
        }
        ZoneError::NoSuchVersion { .. } => (C::NoSuchVersion, None),
        ZoneError::NoSuchUpload(_) => (C::NoSuchUpload, None),
        ZoneError::BucketExists { owned_by_you, .. } => (
            if *owned_by_you {
                C::BucketAlreadyOwnedByYou
            } else {
                C::BucketAlreadyExists
            },
            None,
        ),
        ZoneError::BucketNotEmpty(_) => (C::BucketNotEmpty, None),
        ZoneError::PreconditionFailed => (C::PreconditionFailed, None),
        ZoneError::ObjectLocked(_) => (C::AccessDenied, None),
        ZoneError::CustomerKey(_) => (C::InvalidRequest, None),
        ZoneError::WrongCustomerKey => (C::AccessDenied, None),
        ZoneError::InvalidBucketState(_) => (C::InvalidBucketState, None),
        ZoneError::InvalidPart(_) => (C::InvalidPart, None),
        ZoneError::InvalidPartOrder => (C::InvalidPartOrder, None),
        ZoneError::EntityTooSmall { .. } => (C::EntityTooSmall, None),
        ZoneError::EntityTooLarge { .. } => (C::EntityTooLarge, None),
        ZoneError::BadDigest => (C::BadDigest, None),
        // s3s verifies payload hashes and chunk signatures while the body streams.
        ZoneError::Body(m) if m.contains("Sha256Mismatch") => (
            C::Custom("XAmzContentSHA256Mismatch".into()),
            Some(http::StatusCode::BAD_REQUEST),
        ),
        ZoneError::Body(m) if m.starts_with("ChecksumMismatch") => (C::BadDigest, None),
        ZoneError::Body(m) if m.contains("SignatureMismatch") => (C::SignatureDoesNotMatch, None),
        ZoneError::Body(m)
            if m.contains("FormatError") || m.contains("TooLarge") || m.contains("TooMany") =>
        {
            (C::InvalidRequest, None)
        }
        ZoneError::Body(_) => (C::IncompleteBody, None),
        ZoneError::InvalidArgument(_) => (C::InvalidArgument, None),
        ZoneError::InvalidRequest(_) => (C::InvalidRequest, None),
        ZoneError::InvalidBucketName { .. } => (C::InvalidBucketName, None),
        ZoneError::TooManyBuckets(_) => (C::TooManyBuckets, None),
        ZoneError::UserExists(_)
        | ZoneError::NoSuchUser(_)
        | ZoneError::KeyInUse(_)
        | ZoneError::NoSuchAccessKey(_) => (C::InvalidArgument, None),
        ZoneError::Contention(_) => (C::SlowDown, None),
        ZoneError::Refused { code, .. } => (
            C::from_bytes(code.as_bytes()).unwrap_or(C::ServiceUnavailable),
            None,
        ),
        ZoneError::MasterUnreachable(_) => (C::ServiceUnavailable, None),
        ZoneError::ReadOnly(_) => (C::AccessDenied, None),
        ZoneError::Expired => (C::RequestTimeout, None),
        ZoneError::Corrupt { .. } => {
            tracing::error!(error = %e, "stored state is unreadable");
            (C::InternalError, None)
        }
        ZoneError::Cluster(c) => match c {
            ClientError::TooLarge(_) => (C::EntityTooLarge, None),
            ClientError::Corrupt(_) => {
                tracing::error!(error = %e, "object data is corrupt on every replica");
                (C::InternalError, None)
            }
            ClientError::NoSpace(_) | ClientError::Full(_) => (
                C::Custom("InsufficientStorage".into()),
                Some(http::StatusCode::INSUFFICIENT_STORAGE),
            ),
            _ => {
                tracing::warn!(error = %e, "cluster op failed");
                (C::ServiceUnavailable, None)
            }
        },
    };
    let mut err = S3Error::with_message(code, msg);
    if let Some(s) = status {
        err.set_status_code(s);
    }
    err
}

/// Nanoseconds since the epoch as an S3 timestamp.
pub fn timestamp(ns: u64) -> Timestamp {
    Timestamp::from(SystemTime::UNIX_EPOCH + Duration::from_nanos(ns))
}

/// An S3 timestamp as nanoseconds since the epoch.
pub fn timestamp_ns(t: &Timestamp) -> i128 {
    time::OffsetDateTime::from(t.clone()).unix_timestamp_nanos()
}

/// A quoted strong ETag.
pub fn etag(e: &str) -> ETag {
    ETag::Strong(e.to_string())
}

/// An HTTP date (Expires) as text.
pub fn http_date(t: &Timestamp) -> Option<String> {
    let mut v = Vec::new();
    t.format(TimestampFormat::HttpDate, &mut v).ok()?;
    String::from_utf8(v).ok()
}

/// Parses a stored Expires back.
pub fn parse_http_date(s: &str) -> Option<Timestamp> {
    Timestamp::parse(TimestampFormat::HttpDate, s).ok()
}

/// Decodes a Content-MD5 header (base64 of 16 bytes).
pub fn content_md5(v: Option<&str>) -> Result<Option<[u8; 16]>, S3Error> {
    let Some(v) = v else { return Ok(None) };
    let bytes = base64_simd::STANDARD.decode_to_vec(v.trim()).map_err(|_| {
        S3Error::with_message(S3ErrorCode::InvalidDigest, "Content-MD5 is not base64")
    })?;
    let arr: [u8; 16] = bytes.try_into().map_err(|_| {
        S3Error::with_message(S3ErrorCode::InvalidDigest, "Content-MD5 is not 16 bytes")
    })?;
    Ok(Some(arr))
}

/// Parses an `x-amz-tagging` header / query (`k1=v1&k2=v2`).
pub fn parse_tagging(s: &str) -> Result<Vec<(String, String)>, S3Error> {
    let mut tags = Vec::new();
    for pair in s.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let dec = |x: &str| {
            urlencoding_decode(x).ok_or_else(|| {
                S3Error::with_message(S3ErrorCode::InvalidArgument, "bad x-amz-tagging")
            })
        };
        tags.push((dec(k)?, dec(v)?));
    }
    validate_tags(&tags)?;
    Ok(tags)
}

fn urlencoding_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                let h = std::str::from_utf8(&b[i + 1..i + 3]).ok()?;
                out.push(u8::from_str_radix(h, 16).ok()?);
                i += 2;
            }
            b'%' => return None,
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// AWS's tag limits: 10 per object, keys ≤ 128, values ≤ 256, keys unique.
pub fn validate_tags(tags: &[(String, String)]) -> Result<(), S3Error> {
    let bad = |m: &str| {
        Err(S3Error::with_message(
            S3ErrorCode::InvalidTag,
            m.to_string(),
        ))
    };
    if tags.len() > 10 {
        return bad("at most 10 tags per object");
    }
    let mut seen = std::collections::BTreeSet::new();
    for (k, v) in tags {
        if k.is_empty() || k.chars().count() > 128 {
            return bad("tag keys are 1 to 128 characters");
        }
        if v.chars().count() > 256 {
            return bad("tag values are at most 256 characters");
        }
        if !seen.insert(k) {
            return bad("tag keys must be unique");
        }
    }
    Ok(())
}

/// What the request headers of a PUT / CreateMultipartUpload / CopyObject(REPLACE) set.
pub struct AttrHeaders<'a> {
    pub content_type: Option<&'a str>,
    pub cache_control: Option<&'a str>,
    pub content_disposition: Option<&'a str>,
    pub content_encoding: Option<&'a str>,
    pub content_language: Option<&'a str>,
    pub expires: Option<&'a Timestamp>,
    pub metadata: Option<&'a std::collections::HashMap<String, String>>,
    pub tagging: Option<&'a str>,
    pub storage_class: Option<&'a str>,
}

/// Builds object attributes, enforcing the metadata size limit.
pub fn attrs(h: AttrHeaders<'_>) -> Result<ObjectAttrs, S3Error> {
    let metadata: std::collections::BTreeMap<String, String> = h
        .metadata
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
                .collect()
        })
        .unwrap_or_default();
    let meta_bytes: usize = metadata.iter().map(|(k, v)| k.len() + v.len()).sum();
    if meta_bytes > MAX_METADATA_BYTES {
        return Err(S3Error::with_message(
            S3ErrorCode::MetadataTooLarge,
            format!("user metadata is {meta_bytes} bytes; the limit is {MAX_METADATA_BYTES}"),
        ));
    }
    Ok(ObjectAttrs {
        content_type: h.content_type.map(str::to_string),
        cache_control: h.cache_control.map(str::to_string),
        content_disposition: h.content_disposition.map(str::to_string),
        // aws-chunked describes the request's transfer, not the object (AWS drops it).
        content_encoding: h.content_encoding.and_then(|c| {
            let kept: Vec<&str> = c
                .split(',')
                .map(str::trim)
                .filter(|t| !t.is_empty() && !t.eq_ignore_ascii_case("aws-chunked"))
                .collect();
            (!kept.is_empty()).then(|| kept.join(","))
        }),
        content_language: h.content_language.map(str::to_string),
        expires: h.expires.and_then(http_date),
        metadata,
        tags: h
            .tagging
            .map(parse_tagging)
            .transpose()?
            .unwrap_or_default(),
        storage_class: h.storage_class.map(str::to_string),
        ..Default::default()
    })
}
