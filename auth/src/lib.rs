//! Who may do what in a Meridian cluster: entities (`client.admin`,
//! `osd.3`, `mon.`), their secret keys, their capabilities per service
//! (`mon 'allow rw'`, `osd 'allow rwx pool=data'`) and the keyring files
//! that hold them, in Ceph's formats so operators can reuse what they know.
//!
//! The monitors keep every entity in their replicated state (never in the
//! cluster map); daemons and the CLI read their own key from a keyring.

pub mod access;
mod caps;
mod entity;
pub mod grpc;
mod keyring;
pub mod ticket;
pub mod transport;

pub use caps::{Grant, Perms, PoolMatch, ServiceCaps, validate_caps};
pub use entity::{EntityName, EntityType};
pub use keyring::{Keyring, KeyringEntry, stage_keyring_file, write_keyring_file};

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
    /// A timestamp too far from this clock.
    #[error("clock skew: {off_ms} ms off (at most {max_ms} ms allowed)")]
    Skew {
        /// How far off.
        off_ms: u64,
        /// The bound.
        max_ms: u64,
    },
    /// A proof of key that does not match the entity's key.
    #[error("{0} did not prove its key")]
    BadProof(String),
    /// A ticket that does not parse or whose signature does not match.
    #[error("bad ticket: {0}")]
    BadTicket(String),
    /// A ticket signed with a service secret this service does not hold
    /// (retired, or not fetched yet).
    #[error("ticket signed with unknown service secret {0}: authenticate again")]
    UnknownServiceSecret(u64),
    /// A ticket past its expiry.
    #[error("ticket of {entity} expired {ago_ms} ms ago: authenticate again")]
    Expired {
        /// Its holder.
        entity: String,
        /// How long ago.
        ago_ms: u64,
    },
    /// A request whose signature does not match its ticket's session key.
    #[error("request signature does not match for {0}")]
    BadRequestSignature(String),
    /// A keyring file cannot be read or holds no usable key.
    #[error("keyring {path}: {why}")]
    KeyringFile {
        /// The file.
        path: String,
        /// What is wrong.
        why: String,
    },
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
    base64_simd::STANDARD.encode_to_string(ticket::fresh_secret())
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
