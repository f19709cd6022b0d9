//! The encryption-at-rest master keys of the configuration
//! (`rgw_crypt_default_encryption_key`, `rgw_crypt_s3_kms_encryption_keys`),
//! parsed once here so the file, `config set` and the gateway agree.

use std::collections::BTreeMap;

/// A 256-bit key.
pub type Key = [u8; 32];

/// The default key (if set) and the KMS keys by id.
pub type MasterKeys = (Option<Key>, BTreeMap<String, Key>);

/// A base64 256-bit key.
pub fn parse_key(b64: &str) -> Result<Key, String> {
    let raw = base64_simd::STANDARD
        .decode_to_vec(b64.trim())
        .map_err(|_| "not base64".to_string())?;
    Key::try_from(raw.as_slice()).map_err(|_| format!("{} bytes, not 32", raw.len()))
}

/// Both options (empty: unset); `kms` is `id=base64key` items separated by
/// spaces, as RGW writes it.
pub fn parse(default: &str, kms: &str) -> Result<MasterKeys, String> {
    let default = match default.trim() {
        "" => None,
        k => Some(parse_key(k).map_err(|e| format!("rgw_crypt_default_encryption_key: {e}"))?),
    };
    let mut ring = BTreeMap::new();
    for item in kms.split_whitespace() {
        let (id, k) = item
            .split_once('=')
            .filter(|(id, _)| !id.is_empty())
            .ok_or_else(|| {
                format!("rgw_crypt_s3_kms_encryption_keys: {item:?} is not id=base64key")
            })?;
        let key = parse_key(k)
            .map_err(|e| format!("rgw_crypt_s3_kms_encryption_keys: key {id:?}: {e}"))?;
        ring.insert(id.to_string(), key);
    }
    Ok((default, ring))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rgw_style_key_options_parse_and_bad_ones_are_named() {
        let (d, kms) = parse(
            "4YSmvJtBv0aZ7geVgAsdpRnLBEwWSWlMIGnRS8a9TSA=",
            "testkey-1=YmluCmJvb3N0CmJvb3N0LWJ1aWxkCmNlcGguY29uZgo= testkey-2=4YSmvJtBv0aZ7geVgAsdpRnLBEwWSWlMIGnRS8a9TSA=",
        )
        .unwrap();
        assert!(d.is_some());
        assert_eq!(kms.keys().collect::<Vec<_>>(), ["testkey-1", "testkey-2"]);
        assert_eq!(parse("", "").unwrap(), (None, BTreeMap::new()));
        for (d, k) in [
            ("short", ""),
            ("c2hvcnQ=", ""),
            ("", "k"),
            ("", "=abc"),
            ("", "k=c2hvcnQ="),
        ] {
            assert!(parse(d, k).is_err(), "{d:?} {k:?}");
        }
    }
}
