//! Object -> PG -> CRUSH input, the way Ceph's OSDMap computes it.
//!
//! Ported from Ceph `src/include/rados.h` (`ceph_stable_mod`),
//! `src/osd/osd_types.cc` (`pg_pool_t::hash_key`, `raw_pg_to_pps`,
//! `calc_pg_masks`) and `src/osd/OSDMap.cc` (`object_locator_to_pg`,
//! `raw_pg_to_pg`, `_pg_to_raw_osds`).

use crate::CrushMap;
use crate::hash::{ceph_str_hash_rjenkins, crush_hash32_2};

/// `ceph_stable_mod`: map `x` into `0..b` so that growing `b` towards the
/// next power of two only splits buckets (PGs) instead of reshuffling.
pub fn ceph_stable_mod(x: u32, b: u32, bmask: u32) -> u32 {
    if (x & bmask) < b {
        x & bmask
    } else {
        x & (bmask >> 1)
    }
}

/// `pg_pool_t::calc_pg_masks`: smallest `2^k - 1` covering `pg_num - 1`.
pub fn pg_num_mask(pg_num: u32) -> u32 {
    let v = pg_num.saturating_sub(1);
    let bits = 32 - v.leading_zeros();
    if bits >= 32 {
        u32::MAX
    } else {
        (1u32 << bits) - 1
    }
}

/// `pg_pool_t::hash_key`: rjenkins of the name, or of `ns \x1f name`
/// when the object lives in a namespace.
pub fn hash_key(namespace: &str, object_name: &str) -> u32 {
    if namespace.is_empty() {
        return ceph_str_hash_rjenkins(object_name.as_bytes());
    }
    let mut buf = Vec::with_capacity(namespace.len() + 1 + object_name.len());
    buf.extend_from_slice(namespace.as_bytes());
    buf.push(0x1f);
    buf.extend_from_slice(object_name.as_bytes());
    ceph_str_hash_rjenkins(&buf)
}

/// PG seed (`ps`) of an object in the default namespace:
/// `ceph_stable_mod(rjenkins(name), pg_num, pg_num_mask)`.
///
/// The pool id does not enter the hash (it never does in Ceph); it is in
/// the signature so call sites read pool first, like `pg_t(ps, pool)`.
pub fn object_to_pg(_pool_id: u64, pg_num: u32, object_name: &str) -> u32 {
    ceph_stable_mod(hash_key("", object_name), pg_num, pg_num_mask(pg_num))
}

/// `pg_pool_t::raw_pg_to_pps`: the CRUSH input `x` for PG `seed`.
///
/// With `hashpspool` (Ceph's default `FLAG_HASHPSPOOL`) the pool id is
/// hashed in so pools do not overlap; without it, it is simply added.
pub fn raw_pg_to_pps(pool_id: u64, seed: u32, pgp_num: u32, hashpspool: bool) -> u32 {
    let ps = ceph_stable_mod(seed, pgp_num, pg_num_mask(pgp_num));
    if hashpspool {
        // pg.pool() is 64-bit; the hash takes its low 32 bits, as in C.
        crush_hash32_2(ps, pool_id as u32)
    } else {
        ps.wrapping_add(pool_id as u32)
    }
}

/// A pool's placement parameters, bundling the free functions above.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PgPlacement {
    /// Pool id.
    pub pool_id: u64,
    /// Number of PGs objects hash into.
    pub pg_num: u32,
    /// Number of PGs used for placement (`<= pg_num` while splitting).
    pub pgp_num: u32,
    /// Ceph's `FLAG_HASHPSPOOL` (on for every pool created since Luminous).
    pub hashpspool: bool,
    /// CRUSH rule the pool uses.
    pub crush_rule: u32,
    /// Replica count (`size`): how many OSDs CRUSH is asked for.
    pub size: usize,
}

impl PgPlacement {
    /// PG seed of an object in this pool (default namespace).
    pub fn object_to_pg(&self, object_name: &str) -> u32 {
        self.object_to_pg_in_namespace("", object_name)
    }

    /// PG seed of an object in a RADOS namespace.
    pub fn object_to_pg_in_namespace(&self, namespace: &str, object_name: &str) -> u32 {
        let ps = hash_key(namespace, object_name);
        ceph_stable_mod(ps, self.pg_num, pg_num_mask(self.pg_num))
    }

    /// The CRUSH input for PG `seed`.
    pub fn pps(&self, seed: u32) -> u32 {
        raw_pg_to_pps(self.pool_id, seed, self.pgp_num, self.hashpspool)
    }

    /// Raw CRUSH placement of PG `seed` (Ceph's `_pg_to_raw_osds` before
    /// removing nonexistent OSDs and applying upmaps/up-state filtering).
    pub fn pg_to_raw_osds(&self, map: &CrushMap, seed: u32, osd_weights: &[u32]) -> Vec<i32> {
        map.do_rule(self.crush_rule, self.pps(seed), self.size, osd_weights)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks() {
        assert_eq!(pg_num_mask(1), 0);
        assert_eq!(pg_num_mask(2), 1);
        assert_eq!(pg_num_mask(8), 7);
        assert_eq!(pg_num_mask(12), 15);
        assert_eq!(pg_num_mask(768), 1023);
        assert_eq!(pg_num_mask(8192), 8191);
    }

    #[test]
    fn stable_mod_splits_only() {
        // Growing pg_num from 12 to 13 moves objects only from PG 4 to 12.
        for x in 0..10_000u32 {
            let a = ceph_stable_mod(x, 12, pg_num_mask(12));
            let b = ceph_stable_mod(x, 13, pg_num_mask(13));
            assert!(a == b || (a == 4 && b == 12), "x={x} {a}->{b}");
        }
    }
}
