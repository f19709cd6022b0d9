//! Robert Jenkins' hashes exactly as Ceph uses them.
//!
//! Ported from Ceph `src/crush/hash.c` (the `crush_hash32_rjenkins1_*`
//! family, used inside CRUSH) and `src/common/ceph_hash.cc`
//! (`ceph_str_hash_rjenkins`, used to hash object names to placement
//! seeds). All arithmetic is wrapping `u32`, as in C.

/// The only hash Ceph ever defined for buckets (`CRUSH_HASH_RJENKINS1`).
pub const CRUSH_HASH_RJENKINS1: u8 = 0;

/// Seed XORed into every CRUSH hash (`crush_hash_seed`).
const CRUSH_HASH_SEED: u32 = 1_315_423_911;

/// Jenkins' 96-bit mix (`crush_hashmix` / `mix` in Ceph); the same
/// sequence is used by both the CRUSH hashes and the string hash.
#[inline(always)]
fn mix(a: &mut u32, b: &mut u32, c: &mut u32) {
    *a = a.wrapping_sub(*b);
    *a = a.wrapping_sub(*c);
    *a ^= *c >> 13;
    *b = b.wrapping_sub(*c);
    *b = b.wrapping_sub(*a);
    *b ^= *a << 8;
    *c = c.wrapping_sub(*a);
    *c = c.wrapping_sub(*b);
    *c ^= *b >> 13;
    *a = a.wrapping_sub(*b);
    *a = a.wrapping_sub(*c);
    *a ^= *c >> 12;
    *b = b.wrapping_sub(*c);
    *b = b.wrapping_sub(*a);
    *b ^= *a << 16;
    *c = c.wrapping_sub(*a);
    *c = c.wrapping_sub(*b);
    *c ^= *b >> 5;
    *a = a.wrapping_sub(*b);
    *a = a.wrapping_sub(*c);
    *a ^= *c >> 3;
    *b = b.wrapping_sub(*c);
    *b = b.wrapping_sub(*a);
    *b ^= *a << 10;
    *c = c.wrapping_sub(*a);
    *c = c.wrapping_sub(*b);
    *c ^= *b >> 15;
}

/// `crush_hash32_rjenkins1`: hash of one 32-bit value.
pub fn crush_hash32(a: u32) -> u32 {
    let mut a = a;
    let mut hash = CRUSH_HASH_SEED ^ a;
    let mut b = a;
    let mut x = 231_232u32;
    let mut y = 1232u32;
    mix(&mut b, &mut x, &mut hash);
    mix(&mut y, &mut a, &mut hash);
    hash
}

/// `crush_hash32_rjenkins1_2`: used for the probabilistic "out" test
/// (partial reweight) and for hashing PG seeds with the pool id.
pub fn crush_hash32_2(a: u32, b: u32) -> u32 {
    let (mut a, mut b) = (a, b);
    let mut hash = CRUSH_HASH_SEED ^ a ^ b;
    let mut x = 231_232u32;
    let mut y = 1232u32;
    mix(&mut a, &mut b, &mut hash);
    mix(&mut x, &mut a, &mut hash);
    mix(&mut b, &mut y, &mut hash);
    hash
}

/// `crush_hash32_rjenkins1_3`: the straw2 draw hash `(x, item, r)`.
pub fn crush_hash32_3(a: u32, b: u32, c: u32) -> u32 {
    let (mut a, mut b, mut c) = (a, b, c);
    let mut hash = CRUSH_HASH_SEED ^ a ^ b ^ c;
    let mut x = 231_232u32;
    let mut y = 1232u32;
    mix(&mut a, &mut b, &mut hash);
    mix(&mut c, &mut x, &mut hash);
    mix(&mut y, &mut a, &mut hash);
    mix(&mut b, &mut x, &mut hash);
    mix(&mut y, &mut c, &mut hash);
    hash
}

/// `crush_hash32_rjenkins1_4`: used by list/tree buckets in Ceph.
pub fn crush_hash32_4(a: u32, b: u32, c: u32, d: u32) -> u32 {
    let (mut a, mut b, mut c, mut d) = (a, b, c, d);
    let mut hash = CRUSH_HASH_SEED ^ a ^ b ^ c ^ d;
    let mut x = 231_232u32;
    let mut y = 1232u32;
    mix(&mut a, &mut b, &mut hash);
    mix(&mut c, &mut d, &mut hash);
    mix(&mut a, &mut x, &mut hash);
    mix(&mut y, &mut b, &mut hash);
    mix(&mut c, &mut x, &mut hash);
    mix(&mut y, &mut d, &mut hash);
    hash
}

/// `crush_hash32_rjenkins1_5`: five-input variant, kept for completeness.
pub fn crush_hash32_5(a: u32, b: u32, c: u32, d: u32, e: u32) -> u32 {
    let (mut a, mut b, mut c, mut d, mut e) = (a, b, c, d, e);
    let mut hash = CRUSH_HASH_SEED ^ a ^ b ^ c ^ d ^ e;
    let mut x = 231_232u32;
    let mut y = 1232u32;
    mix(&mut a, &mut b, &mut hash);
    mix(&mut c, &mut d, &mut hash);
    mix(&mut e, &mut x, &mut hash);
    mix(&mut y, &mut a, &mut hash);
    mix(&mut b, &mut x, &mut hash);
    mix(&mut y, &mut c, &mut hash);
    mix(&mut d, &mut x, &mut hash);
    mix(&mut y, &mut e, &mut hash);
    hash
}

/// `ceph_str_hash_rjenkins`: Jenkins' lookup2 over a byte string; Ceph's
/// default `object_hash` for pools (names are hashed byte-wise, unsigned).
pub fn ceph_str_hash_rjenkins(data: &[u8]) -> u32 {
    let word = |k: &[u8]| -> u32 {
        u32::from(k[0]) | u32::from(k[1]) << 8 | u32::from(k[2]) << 16 | u32::from(k[3]) << 24
    };
    let mut a: u32 = 0x9e37_79b9;
    let mut b: u32 = a;
    let mut c: u32 = 0;
    let mut k = data;
    while k.len() >= 12 {
        a = a.wrapping_add(word(&k[0..4]));
        b = b.wrapping_add(word(&k[4..8]));
        c = c.wrapping_add(word(&k[8..12]));
        mix(&mut a, &mut b, &mut c);
        k = &k[12..];
    }
    // The C code truncates the length to `unsigned`; so do we.
    c = c.wrapping_add(data.len() as u32);
    // Mirror the fall-through switch: byte i of the tail goes to the
    // word and shift it would occupy; c's low byte holds the length.
    for (i, &byte) in k.iter().enumerate() {
        let v = u32::from(byte);
        match i {
            0..=3 => a = a.wrapping_add(v << (8 * i)),
            4..=7 => b = b.wrapping_add(v << (8 * (i - 4))),
            _ => c = c.wrapping_add(v << (8 * (i - 7))),
        }
    }
    mix(&mut a, &mut b, &mut c);
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reference values from Ceph's C `hash.c` (verbatim macro and
    /// functions) compiled with gcc: the `_2`/`_3` variants are also pinned
    /// by the placement vectors, the others only here.
    #[test]
    fn crush_hashes_match_ceph_c() {
        assert_eq!(crush_hash32(0), 398_764_043);
        assert_eq!(crush_hash32_2(0, 0), 430_787_817);
        assert_eq!(crush_hash32_3(1, 2, 3), 1_935_332_395);
        assert_eq!(crush_hash32_4(1, 2, 3, 4), 1_768_759_062);
        assert_eq!(crush_hash32_5(1, 2, 3, 4, 5), 1_262_657_953);
        let mut acc = [0u32; 5];
        for i in 0..100_000u32 {
            let (a, b, c, d, e) = (
                i.wrapping_mul(2_654_435_761),
                i ^ 0xdead_beef,
                i + 7,
                !i,
                i << 3,
            );
            let step = |x: u32, h: u32| x.wrapping_mul(31).wrapping_add(h);
            acc[0] = step(acc[0], crush_hash32(a));
            acc[1] = step(acc[1], crush_hash32_2(a, b));
            acc[2] = step(acc[2], crush_hash32_3(a, b, c));
            acc[3] = step(acc[3], crush_hash32_4(a, b, c, d));
            acc[4] = step(acc[4], crush_hash32_5(a, b, c, d, e));
        }
        assert_eq!(
            acc,
            [
                2_429_019_121,
                3_445_702_857,
                3_601_444_807,
                3_966_287_709,
                4_112_908_702
            ]
        );
    }

    #[test]
    fn string_hash_tail_matches_word_loop() {
        // A 12-byte key goes through the word loop plus an empty tail;
        // cross-check the tail path against a hand-unrolled version.
        let key = b"abcdefghijk"; // 11 bytes: every tail case is hit
        let mut a: u32 = 0x9e37_79b9;
        let mut b: u32 = a;
        let mut c: u32 = 11;
        c = c.wrapping_add(u32::from(key[10]) << 24);
        c = c.wrapping_add(u32::from(key[9]) << 16);
        c = c.wrapping_add(u32::from(key[8]) << 8);
        b = b.wrapping_add(u32::from(key[7]) << 24);
        b = b.wrapping_add(u32::from(key[6]) << 16);
        b = b.wrapping_add(u32::from(key[5]) << 8);
        b = b.wrapping_add(u32::from(key[4]));
        a = a.wrapping_add(u32::from(key[3]) << 24);
        a = a.wrapping_add(u32::from(key[2]) << 16);
        a = a.wrapping_add(u32::from(key[1]) << 8);
        a = a.wrapping_add(u32::from(key[0]));
        mix(&mut a, &mut b, &mut c);
        assert_eq!(ceph_str_hash_rjenkins(key), c);
    }
}
