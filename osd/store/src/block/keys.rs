//! KV key encoding. All integers are big-endian so that byte order equals
//! numeric order; see the crate docs for the full layout.

use crate::{ObjectKey, PgId, StoreError};

/// Length of an encoded PG prefix: pool (8) + seed (4).
pub(crate) const PG_PREFIX_LEN: usize = 12;

/// `pool:u64be | seed:u32be`.
pub(crate) fn pg_prefix(pg: PgId) -> Vec<u8> {
    let mut k = Vec::with_capacity(PG_PREFIX_LEN);
    k.extend_from_slice(&pg.pool.to_be_bytes());
    k.extend_from_slice(&pg.seed.to_be_bytes());
    k
}

/// Key of an object record in the `objects` keyspace: `pg | name`.
/// The meta object "" is exactly the PG prefix, so it sorts first.
pub(crate) fn object_key(key: &ObjectKey) -> Vec<u8> {
    let mut k = pg_prefix(key.pg);
    k.extend_from_slice(key.name.as_bytes());
    k
}

/// Prefix of an object's entries in the `xattrs` and `omap` keyspaces:
/// `pg | name_len:u32be | name`. The length makes one object's prefix never a
/// prefix of another object's.
pub(crate) fn sub_prefix(key: &ObjectKey) -> Vec<u8> {
    let mut k = pg_prefix(key.pg);
    k.extend_from_slice(&(key.name.len() as u32).to_be_bytes());
    k.extend_from_slice(key.name.as_bytes());
    k
}

/// `sub_prefix(key) | suffix`.
pub(crate) fn sub_key(key: &ObjectKey, suffix: &[u8]) -> Vec<u8> {
    let mut k = sub_prefix(key);
    k.extend_from_slice(suffix);
    k
}

/// Decodes `pg | name` from the `objects` keyspace.
pub(crate) fn decode_object_key(raw: &[u8]) -> Result<ObjectKey, StoreError> {
    let bad = |reason: &str| StoreError::BadRecord {
        what: format!("object key {raw:02x?}"),
        reason: reason.to_string(),
    };
    if raw.len() < PG_PREFIX_LEN {
        return Err(bad("shorter than a PG prefix"));
    }
    let (pg, name) = raw.split_at(PG_PREFIX_LEN);
    let pg = decode_pg(pg).ok_or_else(|| bad("bad PG prefix"))?;
    let name = std::str::from_utf8(name).map_err(|_| bad("name is not UTF-8"))?;
    Ok(ObjectKey::new(pg, name))
}

/// Decodes the 12-byte PG prefix.
pub(crate) fn decode_pg(raw: &[u8]) -> Option<PgId> {
    let pool = u64::from_be_bytes(raw.get(0..8)?.try_into().ok()?);
    let seed = u32::from_be_bytes(raw.get(8..12)?.try_into().ok()?);
    Some(PgId { pool, seed })
}

/// The smallest key greater than every key starting with `prefix`
/// (`None` if there is none, i.e. the prefix is all 0xff).
pub(crate) fn prefix_successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut p = prefix.to_vec();
    while let Some(last) = p.pop() {
        if last < 0xff {
            p.push(last + 1);
            return Some(p);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_keys_sort_by_pg_then_name() {
        let a = object_key(&ObjectKey::new(PgId::new(1, 2), "b"));
        let b = object_key(&ObjectKey::new(PgId::new(1, 2), "ba"));
        let c = object_key(&ObjectKey::new(PgId::new(1, 3), ""));
        let m = object_key(&ObjectKey::meta(PgId::new(1, 2)));
        assert!(m < a && a < b && b < c);
        assert_eq!(
            decode_object_key(&b).unwrap(),
            ObjectKey::new(PgId::new(1, 2), "ba")
        );
    }

    #[test]
    fn sub_prefixes_never_nest() {
        let a = sub_key(&ObjectKey::new(PgId::new(1, 2), "a"), b"bc");
        let ab = sub_prefix(&ObjectKey::new(PgId::new(1, 2), "ab"));
        assert!(!a.starts_with(&ab));
    }

    #[test]
    fn successor() {
        assert_eq!(prefix_successor(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_successor(&[1, 0xff]), Some(vec![2]));
        assert_eq!(prefix_successor(&[0xff, 0xff]), None);
    }
}
