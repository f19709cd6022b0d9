//! Who may do what in a Meridian cluster: entities (`client.admin`,
//! `osd.3`, `mon.`), their secret keys, their capabilities per service
//! (`mon 'allow rw'`, `osd 'allow rwx pool=data'`) and the keyring files
//! that hold them, in Ceph's formats so operators can reuse what they know.
//!
//! The monitors keep every entity in their replicated state (never in the
//! cluster map); daemons and the CLI read their own key from a keyring.

mod caps;
mod entity;
mod keyring;

pub use caps::{Grant, Perms, PoolMatch, ServiceCaps, validate_caps};
pub use entity::{EntityName, EntityType};
pub use keyring::{Keyring, KeyringEntry};

/// Bytes of randomness in a secret key.
pub const KEY_BYTES: usize = 32;

/// Why a name, capability, key or keyring was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// An entity name is not `TYPE.ID` with a known type.
    #[error("bad entity name '{0}': expected mon., osd.N or client.NAME")]
    BadEntity(String),
    /// A capability string does not parse.
    #[error("bad capability for {service}: '{cap}': {why}")]
    BadCaps {
        /// The service the capability is for.
        service: String,
        /// The capability as given.
        cap: String,
        /// What is wrong with it.
        why: String,
    },
    /// A key is not base64 of [`KEY_BYTES`] bytes.
    #[error("bad key for {0}: expected base64 of {KEY_BYTES} bytes")]
    BadKey(String),
    /// A keyring file does not parse.
    #[error("keyring line {line}: {why}")]
    BadKeyring {
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        why: String,
    },
}

/// A new random secret key (base64 of [`KEY_BYTES`] bytes).
pub fn generate_key() -> String {
    use rand::RngCore as _;
    let mut raw = [0u8; KEY_BYTES];
    rand::rngs::OsRng.fill_bytes(&mut raw);
    base64_simd::STANDARD.encode_to_string(raw)
}

/// Checks that `key` is a secret key as [`generate_key`] makes them.
pub fn validate_key(entity: &str, key: &str) -> Result<(), AuthError> {
    match base64_simd::STANDARD.decode_to_vec(key.as_bytes()) {
        Ok(raw) if raw.len() == KEY_BYTES => Ok(()),
        _ => Err(AuthError::BadKey(entity.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_are_valid_and_distinct() {
        let (a, b) = (generate_key(), generate_key());
        assert_ne!(a, b);
        validate_key("client.a", &a).unwrap();
        assert_eq!(
            validate_key("client.a", "c2hvcnQ="),
            Err(AuthError::BadKey("client.a".into()))
        );
        assert!(validate_key("client.a", "not base64!").is_err());
    }
}
