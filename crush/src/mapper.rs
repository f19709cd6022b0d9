//! The CRUSH mapping algorithm: rule execution over straw2 buckets.
//!
//! A faithful port of Ceph `src/crush/mapper.c` (`crush_do_rule`,
//! `crush_choose_firstn`, `crush_choose_indep`, `bucket_straw2_choose`,
//! `bucket_perm_choose`, `is_out`). Control flow, retry counters and the
//! `r` arithmetic are kept as in C so results are bit-identical; only
//! straw2 buckets exist, so the per-algorithm dispatch is gone. Weight
//! sets (`choose_args`) are not supported (Ceph's default has none).

use crate::hash::{crush_hash32_2, crush_hash32_3};
use crate::ln::crush_ln;
use crate::map::{Bucket, CRUSH_ITEM_NONE, CRUSH_ITEM_UNDEF, CrushMap, RuleStep};

/// Retry budget handed down one `crush_choose_firstn` call.
#[derive(Clone, Copy)]
struct FirstnTries {
    tries: u32,
    recurse_tries: u32,
    local_retries: u32,
    local_fallback_retries: u32,
    vary_r: u32,
    stable: u32,
}

/// One `crush_do_rule` invocation: the map, the input and the reweights.
struct Mapper<'a> {
    map: &'a CrushMap,
    x: u32,
    weights: &'a [u32],
}

impl CrushMap {
    /// Map input `x` (a PG's placement seed) through rule `rule_id`,
    /// returning at most `result_max` items, exactly like Ceph's
    /// `crush_do_rule`.
    ///
    /// `osd_weights[i]` is OSD `i`'s reweight in 16.16 (`0x10000` = in,
    /// `0` = out, in between = probabilistically out); ids beyond the slice
    /// count as out. indep rules may return [`CRUSH_ITEM_NONE`] holes. An
    /// unknown rule maps to nothing.
    pub fn do_rule(
        &self,
        rule_id: u32,
        x: u32,
        result_max: usize,
        osd_weights: &[u32],
    ) -> Vec<i32> {
        let Some(rule) = self.rule(rule_id) else {
            return Vec::new();
        };
        let m = Mapper {
            map: self,
            x,
            weights: osd_weights,
        };
        let t = &self.tunables;
        // The original choose_total_tries counted retries, not tries.
        let mut choose_tries = t.choose_total_tries.wrapping_add(1);
        let mut choose_leaf_tries = 0u32;
        let mut choose_local_retries = t.choose_local_tries;
        let mut choose_local_fallback_retries = t.choose_local_fallback_tries;
        let mut vary_r = t.chooseleaf_vary_r;
        let mut stable = t.chooseleaf_stable;

        let scratch = result_max.max(1);
        let mut w = vec![0i32; scratch];
        let mut o = vec![0i32; scratch];
        let mut c = vec![0i32; scratch];
        let mut wsize = 0usize;
        let mut result = Vec::with_capacity(result_max);

        for step in &rule.steps {
            match *step {
                RuleStep::Noop => {}
                RuleStep::Take(item) => {
                    let valid =
                        (item >= 0 && item < self.max_devices) || self.bucket(item).is_some();
                    if valid {
                        w[0] = item;
                        wsize = 1;
                    }
                }
                RuleStep::SetChooseTries(n) => {
                    if n > 0 {
                        choose_tries = n;
                    }
                }
                RuleStep::SetChooseLeafTries(n) => {
                    if n > 0 {
                        choose_leaf_tries = n;
                    }
                }
                RuleStep::SetChooseLocalTries(n) => choose_local_retries = n,
                RuleStep::SetChooseLocalFallbackTries(n) => choose_local_fallback_retries = n,
                RuleStep::SetChooseLeafVaryR(n) => vary_r = n,
                RuleStep::SetChooseLeafStable(n) => stable = n,
                RuleStep::ChooseFirstN { n, type_id }
                | RuleStep::ChooseLeafFirstN { n, type_id }
                | RuleStep::ChooseIndep { n, type_id }
                | RuleStep::ChooseLeafIndep { n, type_id } => {
                    if wsize == 0 {
                        continue;
                    }
                    let firstn = matches!(
                        step,
                        RuleStep::ChooseFirstN { .. } | RuleStep::ChooseLeafFirstN { .. }
                    );
                    let recurse_to_leaf = matches!(
                        step,
                        RuleStep::ChooseLeafFirstN { .. } | RuleStep::ChooseLeafIndep { .. }
                    );
                    let mut osize = 0usize;
                    for &take in &w[..wsize] {
                        // numrep <= 0 is relative to result_max (CRUSH_N_MINUS).
                        let mut numrep = n;
                        if numrep <= 0 {
                            numrep = numrep.wrapping_add(result_max as i32);
                            if numrep <= 0 {
                                continue;
                            }
                        }
                        // The working item may be a device or CRUSH_ITEM_NONE.
                        let Some(bucket) = self.bucket(take) else {
                            continue;
                        };
                        let room = result_max - osize;
                        if firstn {
                            let recurse_tries = if choose_leaf_tries > 0 {
                                choose_leaf_tries
                            } else if t.chooseleaf_descend_once != 0 {
                                1
                            } else {
                                choose_tries
                            };
                            let tries = FirstnTries {
                                tries: choose_tries,
                                recurse_tries,
                                local_retries: choose_local_retries,
                                local_fallback_retries: choose_local_fallback_retries,
                                vary_r,
                                stable,
                            };
                            osize += m.choose_firstn(
                                bucket,
                                numrep,
                                type_id,
                                &mut o[osize..],
                                0,
                                room as i32,
                                tries,
                                recurse_to_leaf,
                                Some(&mut c[osize..]),
                                0,
                            );
                        } else {
                            let out_size = (numrep as usize).min(room);
                            let recurse_tries = if choose_leaf_tries > 0 {
                                choose_leaf_tries
                            } else {
                                1
                            };
                            m.choose_indep(
                                bucket,
                                out_size,
                                numrep,
                                type_id,
                                &mut o[osize..],
                                0,
                                choose_tries,
                                recurse_tries,
                                recurse_to_leaf,
                                Some(&mut c[osize..]),
                                0,
                            );
                            osize += out_size;
                        }
                    }
                    if recurse_to_leaf {
                        // Copy the final leaf values to the output set.
                        o[..osize].copy_from_slice(&c[..osize]);
                    }
                    std::mem::swap(&mut o, &mut w);
                    wsize = osize;
                }
                RuleStep::Emit => {
                    for &item in &w[..wsize] {
                        if result.len() >= result_max {
                            break;
                        }
                        result.push(item);
                    }
                    wsize = 0;
                }
            }
        }
        result
    }
}

impl Mapper<'_> {
    /// `bucket_straw2_choose`: every item draws `ln(u) / weight` and the
    /// largest draw wins; zero-weight items never win unless all are zero.
    fn straw2_choose(&self, bucket: &Bucket, r: i32) -> i32 {
        let mut high = 0usize;
        let mut high_draw = 0i64;
        for (i, &(item, weight)) in bucket.items.iter().enumerate() {
            let draw = if weight != 0 {
                let u = crush_hash32_3(self.x, item as u32, r as u32) & 0xffff;
                // ln is in [-2^48, 0]; C computes it in u64 and reinterprets.
                let ln = crush_ln(u).wrapping_sub(0x1_0000_0000_0000) as i64;
                ln / i64::from(weight)
            } else {
                i64::MIN
            };
            if i == 0 || draw > high_draw {
                high = i;
                high_draw = draw;
            }
        }
        bucket.items[high].0
    }

    /// `bucket_perm_choose`: item at position `r % size` of a pseudo-random
    /// permutation of the bucket; only used with
    /// `choose_local_fallback_tries > 0` (legacy tunables). Ceph caches the
    /// permutation per call; computing it afresh gives the same answer.
    fn perm_choose(&self, bucket: &Bucket, r: i32) -> i32 {
        let size = bucket.items.len() as u32;
        let id = bucket.id as u32;
        let pr = (r as u32) % size;
        if pr == 0 {
            let s = crush_hash32_3(self.x, id, 0) % size;
            return bucket.items[s as usize].0;
        }
        let mut perm: Vec<u32> = (0..size).collect();
        for p in 0..=pr {
            if p < size - 1 {
                let i = crush_hash32_3(self.x, id, p) % (size - p);
                if i != 0 {
                    perm.swap(p as usize, (p + i) as usize);
                }
            }
        }
        bucket.items[perm[pr as usize] as usize].0
    }

    /// `is_out`: reweight below 1.0 rejects a hash-chosen share of inputs.
    fn is_out(&self, item: i32) -> bool {
        if item < 0 {
            return false;
        }
        let Some(&w) = self.weights.get(item as usize) else {
            return true;
        };
        if w >= 0x10000 {
            return false;
        }
        if w == 0 {
            return true;
        }
        (crush_hash32_2(self.x, item as u32) & 0xffff) >= w
    }

    /// Type of an item (devices are type 0); `None` for a dangling bucket id.
    fn item_type(&self, item: i32) -> Option<i32> {
        if item >= 0 {
            Some(0)
        } else {
            self.map.bucket(item).map(|b| b.type_id)
        }
    }

    /// `crush_choose_firstn`: choose `numrep` distinct items of `type_id`
    /// below `bucket`, writing them to `out[outpos..]` (and, for
    /// chooseleaf, one device per item to `out2`). Returns the new outpos.
    #[allow(clippy::too_many_arguments)]
    fn choose_firstn(
        &self,
        bucket: &Bucket,
        numrep: i32,
        type_id: i32,
        out: &mut [i32],
        mut outpos: usize,
        out_size: i32,
        t: FirstnTries,
        recurse_to_leaf: bool,
        mut out2: Option<&mut [i32]>,
        parent_r: i32,
    ) -> usize {
        let mut count = out_size;
        let mut rep: i32 = if t.stable != 0 { 0 } else { outpos as i32 };
        while rep < numrep && count > 0 {
            // Keep trying until we get a non-out, non-colliding item.
            let mut ftotal: u32 = 0;
            let mut skip_rep = false;
            let mut item: i32 = 0;
            loop {
                let mut retry_descent = false;
                let mut in_bucket = bucket;
                let mut flocal: u32 = 0;
                loop {
                    let mut collide = false;
                    let mut retry_bucket = false;
                    // r' = r + f_total
                    let r = rep.wrapping_add(parent_r).wrapping_add(ftotal as i32);
                    let size = in_bucket.items.len() as u32;
                    let reject;
                    if size == 0 {
                        reject = true;
                    } else {
                        item = if t.local_fallback_retries > 0
                            && flocal >= (size >> 1)
                            && flocal > t.local_fallback_retries
                        {
                            self.perm_choose(in_bucket, r)
                        } else {
                            self.straw2_choose(in_bucket, r)
                        };
                        if item >= self.map.max_devices {
                            skip_rep = true;
                            break;
                        }
                        let Some(itemtype) = self.item_type(item) else {
                            skip_rep = true;
                            break;
                        };
                        if itemtype != type_id {
                            // Keep descending through intervening buckets.
                            match self.map.bucket(item) {
                                Some(b) if item < 0 => {
                                    in_bucket = b;
                                    continue;
                                }
                                _ => {
                                    skip_rep = true;
                                    break;
                                }
                            }
                        }
                        collide = out[..outpos].contains(&item);
                        let mut rej = false;
                        if !collide && recurse_to_leaf {
                            let leaves = out2.as_deref_mut().expect("chooseleaf has out2");
                            if item < 0 {
                                let sub_r = if t.vary_r != 0 {
                                    // C's shift on x86 (the amount masked): a
                                    // decoded map may carry any vary_r (fuzzing).
                                    r.wrapping_shr(t.vary_r - 1)
                                } else {
                                    0
                                };
                                let child = self.map.bucket(item).expect("type checked above");
                                let nested = FirstnTries {
                                    tries: t.recurse_tries,
                                    recurse_tries: 0,
                                    ..t
                                };
                                let got = self.choose_firstn(
                                    child,
                                    if t.stable != 0 { 1 } else { outpos as i32 + 1 },
                                    0,
                                    leaves,
                                    outpos,
                                    count,
                                    nested,
                                    false,
                                    None,
                                    sub_r,
                                );
                                if got <= outpos {
                                    // Didn't get a leaf.
                                    rej = true;
                                }
                            } else {
                                // We already have a leaf.
                                leaves[outpos] = item;
                            }
                        }
                        if !rej && !collide && itemtype == 0 {
                            rej = self.is_out(item);
                        }
                        reject = rej;
                    }
                    if reject || collide {
                        ftotal += 1;
                        flocal += 1;
                        if collide && flocal <= t.local_retries {
                            // Retry locally a few times.
                            retry_bucket = true;
                        } else if t.local_fallback_retries > 0
                            && flocal <= size.wrapping_add(t.local_fallback_retries)
                        {
                            // Exhaustive bucket search.
                            retry_bucket = true;
                        } else if ftotal < t.tries {
                            // Then retry the whole descent.
                            retry_descent = true;
                        } else {
                            // Give up on this replica.
                            skip_rep = true;
                        }
                    }
                    if !retry_bucket {
                        break;
                    }
                }
                if !retry_descent {
                    break;
                }
            }
            if !skip_rep {
                out[outpos] = item;
                outpos += 1;
                count -= 1;
            }
            rep += 1;
        }
        outpos
    }

    /// `crush_choose_indep`: breadth-first, positionally stable choice of
    /// `left` items into `out[outpos..outpos + left]`; unfilled slots end
    /// up as [`CRUSH_ITEM_NONE`].
    #[allow(clippy::too_many_arguments)]
    fn choose_indep(
        &self,
        bucket: &Bucket,
        left: usize,
        numrep: i32,
        type_id: i32,
        out: &mut [i32],
        outpos: usize,
        tries: u32,
        recurse_tries: u32,
        recurse_to_leaf: bool,
        mut out2: Option<&mut [i32]>,
        parent_r: i32,
    ) {
        let endpos = outpos + left;
        let mut left = left;
        // Initially the result is undefined.
        for rep in outpos..endpos {
            out[rep] = CRUSH_ITEM_UNDEF;
            if let Some(o2) = out2.as_deref_mut() {
                o2[rep] = CRUSH_ITEM_UNDEF;
            }
        }
        let mut ftotal: u32 = 0;
        while left > 0 && ftotal < tries {
            for rep in outpos..endpos {
                if out[rep] != CRUSH_ITEM_UNDEF {
                    continue;
                }
                let mut in_bucket = bucket;
                // Choose through intervening buckets.
                loop {
                    // The position, not the attempt, seeds the choice even
                    // in the nested call: r' = r + n * f_total (straw2 is
                    // never "uniform", so no (n+1) stride).
                    let r = (rep as i32)
                        .wrapping_add(parent_r)
                        .wrapping_add(numrep.wrapping_mul(ftotal as i32));
                    if in_bucket.items.is_empty() {
                        break;
                    }
                    let item = self.straw2_choose(in_bucket, r);
                    let itemtype = if item >= self.map.max_devices {
                        None
                    } else {
                        self.item_type(item)
                    };
                    let Some(itemtype) = itemtype else {
                        out[rep] = CRUSH_ITEM_NONE;
                        if let Some(o2) = out2.as_deref_mut() {
                            o2[rep] = CRUSH_ITEM_NONE;
                        }
                        left -= 1;
                        break;
                    };
                    if itemtype != type_id {
                        match self.map.bucket(item) {
                            Some(b) if item < 0 => {
                                in_bucket = b;
                                continue;
                            }
                            _ => {
                                out[rep] = CRUSH_ITEM_NONE;
                                if let Some(o2) = out2.as_deref_mut() {
                                    o2[rep] = CRUSH_ITEM_NONE;
                                }
                                left -= 1;
                                break;
                            }
                        }
                    }
                    if out[outpos..endpos].contains(&item) {
                        break;
                    }
                    if recurse_to_leaf {
                        let leaves = out2.as_deref_mut().expect("chooseleaf has out2");
                        if item < 0 {
                            let child = self.map.bucket(item).expect("type checked above");
                            self.choose_indep(
                                child,
                                1,
                                numrep,
                                0,
                                leaves,
                                rep,
                                recurse_tries,
                                0,
                                false,
                                None,
                                r,
                            );
                            if leaves[rep] == CRUSH_ITEM_NONE {
                                // Placed nothing; no leaf.
                                break;
                            }
                        } else {
                            // We already have a leaf.
                            leaves[rep] = item;
                        }
                    }
                    if itemtype == 0 && self.is_out(item) {
                        break;
                    }
                    out[rep] = item;
                    left -= 1;
                    break;
                }
            }
            ftotal += 1;
        }
        for rep in outpos..endpos {
            if out[rep] == CRUSH_ITEM_UNDEF {
                out[rep] = CRUSH_ITEM_NONE;
            }
            if let Some(o2) = out2.as_deref_mut()
                && o2[rep] == CRUSH_ITEM_UNDEF
            {
                o2[rep] = CRUSH_ITEM_NONE;
            }
        }
    }
}
