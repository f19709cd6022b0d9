//! Flexible checksums (`x-amz-checksum-*`): verified while the body streams,
//! whether the value came as a header or as an aws-chunked trailer. A body
//! whose checksum does not match ends in an error, so the write is abandoned
//! before anything becomes visible. Which checksum a new version keeps, and
//! how kept checksums appear in responses, is decided here too (the zone
//! computes and stores it).

use futures::StreamExt as _;
use http::HeaderMap;
use meridian_zone::checksum::{ChecksumAlgorithm, ChecksumType};
use meridian_zone::data;
use s3s::checksum::ChecksumHasher;
use s3s::crypto::{Checksum as _, Crc32, Crc32c, Crc64Nvme, Sha1, Sha256};
use s3s::{S3Result, TrailingHeaders, s3_error};

const ALGOS: [&str; 5] = [
    "x-amz-checksum-crc32",
    "x-amz-checksum-crc32c",
    "x-amz-checksum-sha1",
    "x-amz-checksum-sha256",
    "x-amz-checksum-crc64nvme",
];

/// Where the expected value is.
enum Source {
    Header(String),
    Trailer(TrailingHeaders),
}

/// One checksum the client declared.
pub struct Expected {
    header: &'static str,
    source: Source,
}

impl Expected {
    /// The algorithm of the declared value.
    pub fn algorithm(&self) -> Option<ChecksumAlgorithm> {
        ChecksumAlgorithm::parse(self.header.trim_start_matches("x-amz-checksum-"))
    }
}

/// The algorithm a request's checksums use (the first, if several).
pub fn declared(expected: &[Expected]) -> Option<ChecksumAlgorithm> {
    expected.iter().find_map(Expected::algorithm)
}

/// The algorithm a request names with `x-amz-checksum-algorithm` /
/// `x-amz-sdk-checksum-algorithm`.
pub fn named(alg: Option<&s3s::dto::ChecksumAlgorithm>) -> S3Result<Option<ChecksumAlgorithm>> {
    alg.map(|a| {
        ChecksumAlgorithm::parse(a.as_str()).ok_or_else(|| {
            s3_error!(
                InvalidRequest,
                "unknown checksum algorithm {}: use CRC32, CRC32C, CRC64NVME, SHA1 or SHA256",
                a.as_str()
            )
        })
    })
    .transpose()
}

/// The checksum a new version keeps: the one the request sent, else the one
/// it names, else `fallback`, else CRC64NVME (AWS's default for every new
/// object).
pub fn kept(
    expected: &[Expected],
    named_alg: Option<&s3s::dto::ChecksumAlgorithm>,
    fallback: Option<ChecksumAlgorithm>,
) -> S3Result<ChecksumAlgorithm> {
    Ok(declared(expected)
        .or(named(named_alg)?)
        .or(fallback)
        .unwrap_or(ChecksumAlgorithm::Crc64nvme))
}

/// Sets the `checksum_<algorithm>` field of an S3 output (any of the
/// shapes that carry the five) to `$value`.
macro_rules! set_checksum {
    ($out:expr, $alg:expr, $value:expr) => {{
        use meridian_zone::checksum::ChecksumAlgorithm as A;
        let v = Some($value);
        match $alg {
            A::Crc32 => $out.checksum_crc32 = v,
            A::Crc32c => $out.checksum_crc32c = v,
            A::Crc64nvme => $out.checksum_crc64nvme = v,
            A::Sha1 => $out.checksum_sha1 = v,
            A::Sha256 => $out.checksum_sha256 = v,
        }
    }};
}
pub(crate) use set_checksum;

/// Sets a kept checksum and its type on an S3 output (`$value`: the value to
/// show, e.g. `c.shown(parts)` for a multipart object).
macro_rules! set_kept_checksum {
    ($out:expr, $c:expr, $value:expr) => {{
        let c: &meridian_zone::checksum::ObjectChecksum = $c;
        if let Some(alg) = c.algorithm {
            $crate::checksum::set_checksum!($out, alg, $value);
            $out.checksum_type = Some($crate::checksum::type_dto(c.kind));
        }
    }};
}
pub(crate) use set_kept_checksum;

/// S3's name of a checksum type.
pub fn type_dto(kind: ChecksumType) -> s3s::dto::ChecksumType {
    s3s::dto::ChecksumType::from(kind.as_str().to_string())
}

/// The first checksum a CompleteMultipartUpload part (or any shape with the
/// five fields) lists, with its algorithm.
macro_rules! listed_checksums {
    ($p:expr) => {{
        use meridian_zone::checksum::ChecksumAlgorithm as A;
        [
            (A::Crc32, $p.checksum_crc32.clone()),
            (A::Crc32c, $p.checksum_crc32c.clone()),
            (A::Crc64nvme, $p.checksum_crc64nvme.clone()),
            (A::Sha1, $p.checksum_sha1.clone()),
            (A::Sha256, $p.checksum_sha256.clone()),
        ]
        .into_iter()
        .filter_map(|(a, v)| v.map(|v| (a, v)))
        .collect::<Vec<_>>()
    }};
}
pub(crate) use listed_checksums;

/// The checksums a request declares (headers, or the one its trailer will carry).
pub fn expected(
    headers: &HeaderMap,
    trailers: Option<&TrailingHeaders>,
) -> S3Result<Vec<Expected>> {
    let mut out = Vec::new();
    for h in ALGOS {
        if let Some(v) = headers.get(h) {
            let v = v
                .to_str()
                .map_err(|_| s3_error!(InvalidRequest, "{h} is not text"))?;
            out.push(Expected {
                header: h,
                source: Source::Header(v.to_string()),
            });
        }
    }
    if let Some(t) = headers.get("x-amz-trailer").and_then(|v| v.to_str().ok()) {
        for name in t.split(',').map(|n| n.trim().to_ascii_lowercase()) {
            let Some(h) = ALGOS.iter().find(|a| **a == name) else {
                continue;
            };
            let trailers = trailers.cloned().ok_or_else(|| {
                s3_error!(
                    InvalidRequest,
                    "x-amz-trailer names {name} but the body is not aws-chunked"
                )
            })?;
            out.push(Expected {
                header: h,
                source: Source::Trailer(trailers),
            });
        }
    }
    Ok(out)
}

fn hasher(expected: &[Expected]) -> ChecksumHasher {
    let mut h = ChecksumHasher::default();
    for e in expected {
        match e.header {
            "x-amz-checksum-crc32" => h.crc32 = Some(Crc32::new()),
            "x-amz-checksum-crc32c" => h.crc32c = Some(Crc32c::new()),
            "x-amz-checksum-sha1" => h.sha1 = Some(Sha1::new()),
            "x-amz-checksum-sha256" => h.sha256 = Some(Sha256::new()),
            _ => h.crc64nvme = Some(Crc64Nvme::new()),
        }
    }
    h
}

fn verify(expected: &[Expected], h: ChecksumHasher) -> Result<(), String> {
    let got = h.finalize();
    for e in expected {
        let want = match &e.source {
            Source::Header(v) => v.clone(),
            Source::Trailer(t) => t
                .read(|m| {
                    m.get(e.header)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_string)
                })
                .flatten()
                .ok_or_else(|| format!("FormatError: the trailer has no {}", e.header))?,
        };
        let have = match e.header {
            "x-amz-checksum-crc32" => got.checksum_crc32.clone(),
            "x-amz-checksum-crc32c" => got.checksum_crc32c.clone(),
            "x-amz-checksum-sha1" => got.checksum_sha1.clone(),
            "x-amz-checksum-sha256" => got.checksum_sha256.clone(),
            _ => got.checksum_crc64nvme.clone(),
        };
        if have.as_deref() != Some(want.trim()) {
            return Err(format!(
                "ChecksumMismatch: {} of the body is {}, the request says {want}",
                e.header,
                have.unwrap_or_default()
            ));
        }
    }
    Ok(())
}

/// `body`, checked against `expected` when it ends.
pub fn checked(body: data::Body, expected: Vec<Expected>) -> data::Body {
    if expected.is_empty() {
        return body;
    }
    let h = hasher(&expected);
    Box::pin(futures::stream::unfold(
        Some((body, h, expected)),
        |state| async move {
            let (mut body, mut h, expected) = state?;
            match body.next().await {
                Some(Ok(b)) => {
                    h.update(&b);
                    Some((Ok(b), Some((body, h, expected))))
                }
                Some(Err(e)) => Some((Err(e), None)),
                None => match verify(&expected, h) {
                    Ok(()) => None,
                    Err(m) => Some((Err(m), None)),
                },
            }
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn body(parts: &[&'static [u8]]) -> data::Body {
        let v: Vec<Result<Bytes, String>> =
            parts.iter().map(|p| Ok(Bytes::from_static(p))).collect();
        Box::pin(futures::stream::iter(v))
    }

    async fn drain(mut b: data::Body) -> Result<Vec<u8>, String> {
        let mut out = Vec::new();
        while let Some(c) = b.next().await {
            out.extend_from_slice(&c?);
        }
        Ok(out)
    }

    #[tokio::test]
    async fn header_checksums_are_verified_at_the_end() {
        // CRC32 of "hello world" is 0x0d4a1185.
        let good = base64_simd::STANDARD.encode_to_string(0x0d4a_1185u32.to_be_bytes());
        let mut h = HeaderMap::new();
        h.insert("x-amz-checksum-crc32", good.parse().unwrap());
        let exp = expected(&h, None).unwrap();
        assert_eq!(
            drain(checked(body(&[b"hello ", b"world"]), exp))
                .await
                .unwrap(),
            b"hello world"
        );
        let exp = expected(&h, None).unwrap();
        let err = drain(checked(body(&[b"hello there"]), exp))
            .await
            .unwrap_err();
        assert!(err.starts_with("ChecksumMismatch"), "{err}");
    }

    #[test]
    fn a_trailer_needs_an_aws_chunked_body() {
        let mut h = HeaderMap::new();
        h.insert("x-amz-trailer", "x-amz-checksum-crc32".parse().unwrap());
        assert!(expected(&h, None).is_err());
    }
}
