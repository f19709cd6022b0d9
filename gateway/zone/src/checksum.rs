//! S3's additional checksums as a version keeps them: the algorithm, whether
//! the value covers the whole object or is a checksum of its parts'
//! checksums (multipart `COMPOSITE`), and the value. Every write computes
//! one (CRC64NVME when the client names none, as AWS does), so GET/HEAD with
//! `x-amz-checksum-mode: ENABLED` and GetObjectAttributes can report it.

use serde::{Deserialize, Serialize};
use sha1::Digest as _;

/// A checksum algorithm S3 defines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChecksumAlgorithm {
    /// CRC-32 (ISO-HDLC, as zlib).
    Crc32,
    /// CRC-32C (Castagnoli).
    Crc32c,
    /// CRC-64/NVME (AWS's default).
    Crc64nvme,
    /// SHA-1.
    Sha1,
    /// SHA-256.
    Sha256,
}

/// Every algorithm, in the order S3 documents them.
pub const ALGORITHMS: [ChecksumAlgorithm; 5] = [
    ChecksumAlgorithm::Crc32,
    ChecksumAlgorithm::Crc32c,
    ChecksumAlgorithm::Crc64nvme,
    ChecksumAlgorithm::Sha1,
    ChecksumAlgorithm::Sha256,
];

impl ChecksumAlgorithm {
    /// The name S3 uses (`CRC32`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            ChecksumAlgorithm::Crc32 => "CRC32",
            ChecksumAlgorithm::Crc32c => "CRC32C",
            ChecksumAlgorithm::Crc64nvme => "CRC64NVME",
            ChecksumAlgorithm::Sha1 => "SHA1",
            ChecksumAlgorithm::Sha256 => "SHA256",
        }
    }

    /// The algorithm S3 names `name` (any case).
    pub fn parse(name: &str) -> Option<Self> {
        ALGORITHMS
            .into_iter()
            .find(|a| a.as_str().eq_ignore_ascii_case(name))
    }

    /// The request/response header carrying a value of this algorithm.
    pub fn header(self) -> &'static str {
        match self {
            ChecksumAlgorithm::Crc32 => "x-amz-checksum-crc32",
            ChecksumAlgorithm::Crc32c => "x-amz-checksum-crc32c",
            ChecksumAlgorithm::Crc64nvme => "x-amz-checksum-crc64nvme",
            ChecksumAlgorithm::Sha1 => "x-amz-checksum-sha1",
            ChecksumAlgorithm::Sha256 => "x-amz-checksum-sha256",
        }
    }

    fn crc(self) -> Option<crc_fast::CrcAlgorithm> {
        match self {
            ChecksumAlgorithm::Crc32 => Some(crc_fast::CrcAlgorithm::Crc32IsoHdlc),
            ChecksumAlgorithm::Crc32c => Some(crc_fast::CrcAlgorithm::Crc32Iscsi),
            ChecksumAlgorithm::Crc64nvme => Some(crc_fast::CrcAlgorithm::Crc64Nvme),
            _ => None,
        }
    }

    /// Bytes of a value.
    fn width(self) -> usize {
        match self {
            ChecksumAlgorithm::Crc32 | ChecksumAlgorithm::Crc32c => 4,
            ChecksumAlgorithm::Crc64nvme => 8,
            ChecksumAlgorithm::Sha1 => 20,
            ChecksumAlgorithm::Sha256 => 32,
        }
    }

    /// Whether a multipart upload can have a checksum of this type with this
    /// algorithm: CRCs combine into a full-object value, hashes do not;
    /// CRC64NVME is full-object only (as on AWS).
    pub fn supports(self, kind: ChecksumType) -> bool {
        match kind {
            ChecksumType::FullObject => self.crc().is_some(),
            ChecksumType::Composite => self != ChecksumAlgorithm::Crc64nvme,
        }
    }

    /// The type a multipart upload gets when it names only the algorithm.
    pub fn default_type(self) -> ChecksumType {
        if self == ChecksumAlgorithm::Crc64nvme {
            ChecksumType::FullObject
        } else {
            ChecksumType::Composite
        }
    }
}

/// What a checksum covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ChecksumType {
    /// The object's bytes, as one stream.
    #[default]
    FullObject,
    /// The checksums of a multipart object's parts, concatenated.
    Composite,
}

impl ChecksumType {
    /// The name S3 uses.
    pub fn as_str(self) -> &'static str {
        match self {
            ChecksumType::FullObject => "FULL_OBJECT",
            ChecksumType::Composite => "COMPOSITE",
        }
    }

    /// The type S3 names `name`.
    pub fn parse(name: &str) -> Option<Self> {
        [ChecksumType::FullObject, ChecksumType::Composite]
            .into_iter()
            .find(|t| t.as_str().eq_ignore_ascii_case(name))
    }
}

/// A checksum kept with a version or a part. On an upload record it is the
/// checksum the upload promised, with an empty value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ObjectChecksum {
    /// Algorithm.
    pub algorithm: Option<ChecksumAlgorithm>,
    /// What it covers.
    #[serde(default)]
    pub kind: ChecksumType,
    /// Base64 of the value (for a composite one, without the `-N` suffix).
    #[serde(default)]
    pub value: String,
}

impl ObjectChecksum {
    /// The value as GET/HEAD/CompleteMultipartUpload show it: a composite
    /// value carries its part count.
    pub fn shown(&self, parts: u32) -> String {
        match self.kind {
            ChecksumType::Composite => format!("{}-{parts}", self.value),
            ChecksumType::FullObject => self.value.clone(),
        }
    }
}

/// A running checksum.
pub enum Hasher {
    /// One of the CRCs.
    Crc(ChecksumAlgorithm, crc_fast::Digest),
    /// SHA-1.
    Sha1(sha1::Sha1),
    /// SHA-256.
    Sha256(sha2::Sha256),
}

impl Hasher {
    /// A hasher of `alg`.
    pub fn new(alg: ChecksumAlgorithm) -> Hasher {
        match (alg, alg.crc()) {
            (_, Some(c)) => Hasher::Crc(alg, crc_fast::Digest::new(c)),
            (ChecksumAlgorithm::Sha1, _) => Hasher::Sha1(sha1::Sha1::new()),
            _ => Hasher::Sha256(sha2::Sha256::new()),
        }
    }

    /// Adds bytes.
    pub fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Crc(_, d) => d.update(data),
            Hasher::Sha1(h) => h.update(data),
            Hasher::Sha256(h) => h.update(data),
        }
    }

    /// The algorithm.
    pub fn algorithm(&self) -> ChecksumAlgorithm {
        match self {
            Hasher::Crc(a, _) => *a,
            Hasher::Sha1(_) => ChecksumAlgorithm::Sha1,
            Hasher::Sha256(_) => ChecksumAlgorithm::Sha256,
        }
    }

    /// The full-object checksum of what was added.
    pub fn finish(self) -> ObjectChecksum {
        let alg = self.algorithm();
        let raw = match self {
            Hasher::Crc(a, d) => crc_bytes(a, d.finalize()),
            Hasher::Sha1(h) => h.finalize().to_vec(),
            Hasher::Sha256(h) => h.finalize().to_vec(),
        };
        ObjectChecksum {
            algorithm: Some(alg),
            kind: ChecksumType::FullObject,
            value: b64(&raw),
        }
    }
}

fn crc_bytes(alg: ChecksumAlgorithm, v: u64) -> Vec<u8> {
    let be = v.to_be_bytes();
    be[8 - alg.width()..].to_vec()
}

fn b64(raw: &[u8]) -> String {
    base64_simd::STANDARD.encode_to_string(raw)
}

/// The raw bytes of a base64 value of `alg`.
pub fn decode(alg: ChecksumAlgorithm, value: &str) -> Option<Vec<u8>> {
    base64_simd::STANDARD
        .decode_to_vec(value.trim())
        .ok()
        .filter(|v| v.len() == alg.width())
}

/// The checksum of a multipart object from its parts' full checksums
/// (base64) and sizes: for `Composite`, the checksum of the parts' raw
/// checksums concatenated; for `FullObject`, the parts' CRCs combined as if
/// the object had been hashed in one stream. None if a part's value is
/// unreadable or the algorithm cannot make that type.
pub fn combine(
    alg: ChecksumAlgorithm,
    kind: ChecksumType,
    parts: &[(&str, u64)],
) -> Option<ObjectChecksum> {
    if !alg.supports(kind) {
        return None;
    }
    let raws: Vec<Vec<u8>> = parts
        .iter()
        .map(|(v, _)| decode(alg, v))
        .collect::<Option<_>>()?;
    let value = match kind {
        ChecksumType::Composite => {
            let mut h = Hasher::new(alg);
            for r in &raws {
                h.update(r);
            }
            h.finish().value
        }
        ChecksumType::FullObject => {
            let crc = alg.crc()?;
            let mut acc: Option<u64> = None;
            for (raw, (_, size)) in raws.iter().zip(parts) {
                let v = raw.iter().fold(0u64, |a, b| (a << 8) | u64::from(*b));
                acc = Some(match acc {
                    None => v,
                    Some(a) => crc_fast::checksum_combine(crc, a, v, *size),
                });
            }
            // No parts: the checksum of nothing.
            b64(&crc_bytes(
                alg,
                acc.unwrap_or_else(|| crc_fast::checksum(crc, b"")),
            ))
        }
    };
    Some(ObjectChecksum {
        algorithm: Some(alg),
        kind,
        value,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full(alg: ChecksumAlgorithm, data: &[u8]) -> String {
        let mut h = Hasher::new(alg);
        h.update(data);
        h.finish().value
    }

    #[test]
    fn known_values() {
        // CRC32("hello world") = 0x0d4a1185; CRC32C = 0xc99465aa.
        assert_eq!(
            decode(
                ChecksumAlgorithm::Crc32,
                &full(ChecksumAlgorithm::Crc32, b"hello world")
            ),
            Some(0x0d4a_1185u32.to_be_bytes().to_vec())
        );
        assert_eq!(
            decode(
                ChecksumAlgorithm::Crc32c,
                &full(ChecksumAlgorithm::Crc32c, b"hello world")
            ),
            Some(0xc994_65aau32.to_be_bytes().to_vec())
        );
        assert_eq!(
            full(ChecksumAlgorithm::Sha256, b""),
            "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
        );
    }

    #[test]
    fn full_object_crcs_combine_to_the_checksum_of_the_whole() {
        let parts: [&[u8]; 3] = [b"the first part, ", b"a second one", b" and the tail"];
        let whole: Vec<u8> = parts.concat();
        for alg in [
            ChecksumAlgorithm::Crc32,
            ChecksumAlgorithm::Crc32c,
            ChecksumAlgorithm::Crc64nvme,
        ] {
            let vals: Vec<String> = parts.iter().map(|p| full(alg, p)).collect();
            let listed: Vec<(&str, u64)> = vals
                .iter()
                .zip(parts)
                .map(|(v, p)| (v.as_str(), p.len() as u64))
                .collect();
            let c = combine(alg, ChecksumType::FullObject, &listed).unwrap();
            assert_eq!(c.value, full(alg, &whole), "{alg:?}");
        }
        // Hashes cannot be combined into a full-object value.
        assert!(combine(ChecksumAlgorithm::Sha256, ChecksumType::FullObject, &[]).is_none());
    }

    #[test]
    fn composite_is_the_checksum_of_the_part_checksums() {
        let a = full(ChecksumAlgorithm::Sha256, b"part one");
        let b = full(ChecksumAlgorithm::Sha256, b"part two");
        let c = combine(
            ChecksumAlgorithm::Sha256,
            ChecksumType::Composite,
            &[(&a, 8), (&b, 8)],
        )
        .unwrap();
        let mut raw = decode(ChecksumAlgorithm::Sha256, &a).unwrap();
        raw.extend(decode(ChecksumAlgorithm::Sha256, &b).unwrap());
        assert_eq!(c.value, full(ChecksumAlgorithm::Sha256, &raw));
        assert_eq!(c.shown(2), format!("{}-2", c.value));
        assert!(
            combine(
                ChecksumAlgorithm::Crc64nvme,
                ChecksumType::Composite,
                &[(&a, 8)]
            )
            .is_none()
        );
        // A value of the wrong width is refused.
        assert!(
            combine(
                ChecksumAlgorithm::Crc32,
                ChecksumType::Composite,
                &[(&a, 8)]
            )
            .is_none()
        );
    }
}
