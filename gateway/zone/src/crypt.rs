//! Encryption at rest: object data is stored AES-256-CTR encrypted, each run
//! (a PUT, a part) under its own key derived from the version's data key
//! and the run's instance id, so ranged reads decrypt from any offset and no
//! two runs share a keystream.
//!
//! Data keys: SSE-C uses the customer's key itself (only its MD5 is kept);
//! SSE-S3 and SSE-KMS derive it from a master key
//! (`rgw_crypt_default_encryption_key`, or the named key of
//! `rgw_crypt_s3_kms_encryption_keys`) and a random selector stored with the
//! version, as RGW's static-key modes do. The master keys never leave the
//! configuration; a zone replicating SSE-S3/SSE-KMS objects needs the same
//! keys.

use crate::{Result, ZoneError};
use aes::Aes256;
use ctr::cipher::{KeyIvInit, StreamCipher, StreamCipherSeek};
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use std::collections::BTreeMap;

type RunCipher = ctr::Ctr128BE<Aes256>;

/// A 256-bit key.
pub use meridian_common::crypt_keys::Key;

/// How a version's data is encrypted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SseMode {
    /// SSE-C: the client sends its key with every request.
    Customer,
    /// SSE-S3 (`AES256`): the zone's default key.
    S3,
    /// SSE-KMS (`aws:kms`): a named key.
    Kms,
}

/// The encryption record of a version (no key material).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Encryption {
    /// Mode.
    pub mode: SseMode,
    /// SSE-KMS key id ("" otherwise).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub key_id: String,
    /// SSE-C: base64 MD5 of the customer key (checked on every read).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub key_md5: String,
    /// SSE-S3/SSE-KMS: base64 random bytes the data key is derived with.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub selector: String,
}

/// An SSE-C key as a request sends it: the key and the base64 MD5 of it.
#[derive(Clone)]
pub struct CustomerKey {
    /// The key.
    pub key: Key,
    /// Base64 MD5 of the key (as `x-amz-server-side-encryption-customer-key-MD5`).
    pub md5: String,
}

impl std::fmt::Debug for CustomerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CustomerKey(md5 {})", self.md5)
    }
}

impl CustomerKey {
    /// From the request's base64 key and base64 MD5 of it (both checked).
    pub fn from_headers(key_b64: &str, md5_b64: &str) -> std::result::Result<Self, String> {
        use md5::Digest as _;
        let key = meridian_common::crypt_keys::parse_key(key_b64).map_err(|e| {
            format!("The secret key was invalid for the specified algorithm ({e}).")
        })?;
        let md5 = base64_simd::STANDARD.encode_to_string(md5::Md5::digest(key));
        if md5 != md5_b64.trim() {
            return Err(
                "The calculated MD5 hash of the key did not match the hash that was provided."
                    .into(),
            );
        }
        Ok(Self { key, md5 })
    }

    /// The SSE-C record of a version written with this key.
    pub fn record(&self) -> Encryption {
        Encryption {
            mode: SseMode::Customer,
            key_id: String::new(),
            key_md5: self.md5.clone(),
            selector: String::new(),
        }
    }
}

/// The key a version's runs are encrypted under.
#[derive(Clone, PartialEq, Eq)]
pub struct DataKey(Key);

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKey(..)")
    }
}

fn hmac(key: &[u8], data: &[u8]) -> Key {
    let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes any key length");
    m.update(data);
    m.finalize().into_bytes().into()
}

impl DataKey {
    /// The customer's own key (SSE-C).
    pub fn customer(key: Key) -> Self {
        Self(key)
    }

    /// Encrypts or decrypts (the same in CTR) `buf`, which sits at byte
    /// `offset` of run `inst`.
    pub fn apply(&self, inst: &str, offset: u64, buf: &mut [u8]) {
        let run_key = hmac(&self.0, format!("meridian-run:{inst}").as_bytes());
        let mut c = RunCipher::new(&run_key.into(), &[0u8; 16].into());
        c.seek(offset);
        c.apply_keystream(buf);
    }
}

/// The master keys a gateway is configured with.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct KeyRing {
    /// `rgw_crypt_default_encryption_key`: SSE-S3, and every write that asks
    /// for no encryption.
    pub default: Option<Key>,
    /// `rgw_crypt_s3_kms_encryption_keys`: SSE-KMS keys by id.
    pub kms: BTreeMap<String, Key>,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRing")
            .field("default", &self.default.is_some())
            .field("kms", &self.kms.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl KeyRing {
    /// From the two options (see [`meridian_common::crypt_keys::parse`]).
    pub fn parse(default: &str, kms: &str) -> std::result::Result<Self, String> {
        let (default, kms) = meridian_common::crypt_keys::parse(default, kms)?;
        Ok(Self { default, kms })
    }

    fn master(&self, mode: SseMode, key_id: &str) -> Result<&Key> {
        match mode {
            SseMode::S3 => self.default.as_ref().ok_or_else(|| {
                ZoneError::InvalidArgument(
                    "SSE-S3 needs rgw_crypt_default_encryption_key on this zone's gateways".into(),
                )
            }),
            SseMode::Kms => self.kms.get(key_id).ok_or_else(|| {
                ZoneError::InvalidArgument(format!(
                    "no KMS key {key_id:?} in rgw_crypt_s3_kms_encryption_keys"
                ))
            }),
            SseMode::Customer => Err(ZoneError::InvalidArgument(
                "SSE-C data needs the customer's key".into(),
            )),
        }
    }

    /// A new SSE-S3/SSE-KMS record and its data key.
    pub fn seal(&self, mode: SseMode, key_id: &str) -> Result<(Encryption, DataKey)> {
        let master = self.master(mode, key_id)?;
        let selector: Key = rand::random();
        let enc = Encryption {
            mode,
            key_id: key_id.to_string(),
            key_md5: String::new(),
            selector: base64_simd::STANDARD.encode_to_string(selector),
        };
        Ok((enc, DataKey(hmac(master, &selector))))
    }

    /// The data key of a version encrypted as `enc` (None: not encrypted);
    /// an SSE-C version needs the request's key, and only the right one.
    pub fn data_key(
        &self,
        enc: Option<&Encryption>,
        customer: Option<&CustomerKey>,
    ) -> Result<Option<DataKey>> {
        match (enc, customer) {
            (None, None) => Ok(None),
            (None, Some(_)) => Err(ZoneError::CustomerKey(
                "the object is not encrypted with a customer key; send no SSE-C headers".into(),
            )),
            (Some(e), c) if e.mode == SseMode::Customer => match c {
                None => Err(ZoneError::CustomerKey(
                    "The object was stored using a form of Server Side Encryption. The correct parameters must be provided to retrieve the object.".into(),
                )),
                Some(c) if c.md5 != e.key_md5 => Err(ZoneError::WrongCustomerKey),
                Some(c) => Ok(Some(DataKey(c.key))),
            },
            (Some(_), Some(_)) => Err(ZoneError::CustomerKey(
                "the object is not encrypted with a customer key; send no SSE-C headers".into(),
            )),
            (Some(e), None) => self.open(e).map(Some),
        }
    }

    /// The data key of an SSE-S3/SSE-KMS version.
    pub fn open(&self, enc: &Encryption) -> Result<DataKey> {
        let master = self.master(enc.mode, &enc.key_id)?;
        let selector = base64_simd::STANDARD
            .decode_to_vec(&enc.selector)
            .map_err(|_| ZoneError::Corrupt {
                what: "encryption record".into(),
                reason: "selector is not base64".into(),
            })?;
        Ok(DataKey(hmac(master, &selector)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn customer_keys_must_match_their_md5() {
        use md5::Digest as _;
        let key = [9u8; 32];
        let b64 = base64_simd::STANDARD.encode_to_string(key);
        let md5 = base64_simd::STANDARD.encode_to_string(md5::Md5::digest(key));
        let c = CustomerKey::from_headers(&b64, &md5).unwrap();
        assert_eq!(c.record().key_md5, md5);
        assert!(CustomerKey::from_headers(&b64, "AAAAAAAAAAAAAAAAAAAAAA==").is_err());
        assert!(CustomerKey::from_headers("c2hvcnQ=", &md5).is_err());
        let ring = KeyRing::default();
        let rec = c.record();
        assert!(ring.data_key(Some(&rec), Some(&c)).unwrap().is_some());
        assert!(matches!(
            ring.data_key(Some(&rec), None),
            Err(ZoneError::CustomerKey(_))
        ));
        let other = CustomerKey::from_headers(
            &base64_simd::STANDARD.encode_to_string([1u8; 32]),
            &base64_simd::STANDARD.encode_to_string(md5::Md5::digest([1u8; 32])),
        )
        .unwrap();
        assert!(matches!(
            ring.data_key(Some(&rec), Some(&other)),
            Err(ZoneError::WrongCustomerKey)
        ));
    }

    #[test]
    fn ranged_decryption_matches_the_whole() {
        let k = DataKey::customer([7; 32]);
        let plain: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        let mut sealed = plain.clone();
        k.apply("inst1", 0, &mut sealed);
        assert_ne!(sealed, plain);
        // Any range decrypts alone, including unaligned ones.
        for (a, b) in [(0, 10_000), (17, 33), (4096, 9999), (9_999, 10_000)] {
            let mut part = sealed[a..b].to_vec();
            k.apply("inst1", a as u64, &mut part);
            assert_eq!(part, plain[a..b]);
        }
        // Another run of the same key gets another keystream.
        let mut other = plain.clone();
        k.apply("inst2", 0, &mut other);
        assert_ne!(other, sealed);
    }

    #[test]
    fn key_rings_derive_a_new_key_per_version() {
        let ring = KeyRing::parse(
            "4YSmvJtBv0aZ7geVgAsdpRnLBEwWSWlMIGnRS8a9TSA=",
            "testkey-1=YmluCmJvb3N0CmJvb3N0LWJ1aWxkCmNlcGguY29uZgo= testkey-2=4YSmvJtBv0aZ7geVgAsdpRnLBEwWSWlMIGnRS8a9TSA=",
        )
        .unwrap();
        assert!(ring.default.is_some());
        assert_eq!(ring.kms.len(), 2);
        let (enc, key) = ring.seal(SseMode::Kms, "testkey-1").unwrap();
        assert_eq!(ring.open(&enc).unwrap(), key);
        let (enc2, key2) = ring.seal(SseMode::Kms, "testkey-1").unwrap();
        assert_ne!(enc.selector, enc2.selector);
        assert_ne!(key, key2);
        assert!(ring.seal(SseMode::Kms, "nope").is_err());
        assert!(KeyRing::default().seal(SseMode::S3, "").is_err());
    }
}
