//! Ceph's binary CRUSH map encoding (`crushtool -c` output,
//! `ceph osd getcrushmap`), lossless unlike the 3-decimal text format.
//!
//! Ported from Ceph `src/crush/CrushWrapper.cc` (`encode`, `decode`,
//! `decode_crush_bucket`) as of Pacific (16.2): little-endian, with the
//! Luminous device-class tables and an empty `choose_args` section.
//! [`encode`] reproduces crushtool's bytes exactly; [`decode`] accepts
//! what Ceph writes as long as every bucket is straw2/rjenkins1 and there
//! are no weight sets. Use it to persist a map without losing weight
//! precision, or to import a map from a Ceph cluster.

use std::collections::BTreeMap;

use crate::CrushError;
use crate::map::{Bucket, CrushMap, Device, Rule, RuleStep, RuleType, Tunables};

/// `CRUSH_MAGIC`: first word of every encoded map.
const CRUSH_MAGIC: u32 = 0x0001_0000;
/// `CRUSH_BUCKET_STRAW2`.
const ALG_STRAW2: u8 = 5;

// crush_rule_step opcodes (src/crush/crush.h).
const OP_NOOP: u32 = 0;
const OP_TAKE: u32 = 1;
const OP_CHOOSE_FIRSTN: u32 = 2;
const OP_CHOOSE_INDEP: u32 = 3;
const OP_EMIT: u32 = 4;
const OP_CHOOSELEAF_FIRSTN: u32 = 6;
const OP_CHOOSELEAF_INDEP: u32 = 7;
const OP_SET_CHOOSE_TRIES: u32 = 8;
const OP_SET_CHOOSELEAF_TRIES: u32 = 9;
const OP_SET_CHOOSE_LOCAL_TRIES: u32 = 10;
const OP_SET_CHOOSE_LOCAL_FALLBACK_TRIES: u32 = 11;
const OP_SET_CHOOSELEAF_VARY_R: u32 = 12;
const OP_SET_CHOOSELEAF_STABLE: u32 = 13;

/// Encode `map` exactly as Ceph 16.2's `CrushWrapper::encode` does.
pub fn encode(map: &CrushMap) -> Vec<u8> {
    let mut e = Vec::new();
    put_u32(&mut e, CRUSH_MAGIC);
    let max_buckets = map.bucket_capacity.max(map.buckets.len());
    put_i32(&mut e, max_buckets as i32);
    put_u32(&mut e, map.rules.len() as u32);
    put_i32(&mut e, map.max_devices);

    for slot in 0..max_buckets {
        let Some(b) = map.buckets.get(slot).and_then(Option::as_ref) else {
            put_u32(&mut e, 0);
            continue;
        };
        put_u32(&mut e, u32::from(ALG_STRAW2));
        put_i32(&mut e, b.id);
        e.extend_from_slice(&(b.type_id as u16).to_le_bytes());
        e.push(ALG_STRAW2);
        e.push(0); // hash: rjenkins1
        put_u32(&mut e, b.weight());
        put_u32(&mut e, b.items.len() as u32);
        for &(item, _) in &b.items {
            put_i32(&mut e, item);
        }
        for &(_, w) in &b.items {
            put_u32(&mut e, w);
        }
    }

    for slot in &map.rules {
        let Some(r) = slot else {
            put_u32(&mut e, 0);
            continue;
        };
        put_u32(&mut e, 1);
        put_u32(&mut e, r.steps.len() as u32);
        // crush_rule_mask: ruleset (== id), type, min_size, max_size.
        e.extend_from_slice(&[
            r.id as u8,
            r.rule_type.code(),
            r.min_size as u8,
            r.max_size as u8,
        ]);
        for step in &r.steps {
            let (op, a1, a2) = step_code(*step);
            put_u32(&mut e, op);
            put_i32(&mut e, a1);
            put_i32(&mut e, a2);
        }
    }

    put_string_map(&mut e, map.types.iter().map(|(&k, v)| (k, v.as_str())));
    let mut names: BTreeMap<i32, &str> = BTreeMap::new();
    for d in map.devices.values() {
        names.insert(d.id, &d.name);
    }
    for b in map.buckets() {
        names.insert(b.id, &b.name);
    }
    put_string_map(&mut e, names.into_iter());
    put_string_map(
        &mut e,
        map.rules()
            .filter(|r| !r.name.is_empty())
            .map(|r| (r.id as i32, r.name.as_str())),
    );

    let t = &map.tunables;
    put_u32(&mut e, t.choose_local_tries);
    put_u32(&mut e, t.choose_local_fallback_tries);
    put_u32(&mut e, t.choose_total_tries);
    put_u32(&mut e, t.chooseleaf_descend_once);
    e.push(t.chooseleaf_vary_r as u8);
    e.push(t.straw_calc_version as u8);
    put_u32(&mut e, t.allowed_bucket_algs);
    e.push(t.chooseleaf_stable as u8);

    // class_map covers devices and shadow buckets.
    let mut class_map: BTreeMap<i32, i32> = BTreeMap::new();
    for d in map.devices.values() {
        if let Some(cid) = d.class.as_deref().and_then(|c| map.class_id(c)) {
            class_map.insert(d.id, cid);
        }
    }
    for b in map.buckets() {
        if let Some(cid) = b.class.as_deref().and_then(|c| map.class_id(c)) {
            class_map.insert(b.id, cid);
        }
    }
    put_u32(&mut e, class_map.len() as u32);
    for (k, v) in class_map {
        put_i32(&mut e, k);
        put_i32(&mut e, v);
    }
    put_string_map(&mut e, map.classes.iter().map(|(&k, v)| (k, v.as_str())));
    put_u32(&mut e, map.class_buckets.len() as u32);
    for (orig, by_class) in &map.class_buckets {
        put_i32(&mut e, *orig);
        put_u32(&mut e, by_class.len() as u32);
        for (cid, shadow) in by_class {
            put_i32(&mut e, *cid);
            put_i32(&mut e, *shadow);
        }
    }
    put_u32(&mut e, 0); // choose_args: none
    e
}

/// Decode a binary CRUSH map as written by Ceph (`crushtool -c`,
/// `ceph osd getcrushmap`, or [`encode`]).
pub fn decode(bytes: &[u8]) -> Result<CrushMap, CrushError> {
    let mut d = Decoder { buf: bytes, pos: 0 };
    if d.u32()? != CRUSH_MAGIC {
        return Err(d.err("bad magic number"));
    }
    let max_buckets = d.i32()?;
    let max_rules = d.u32()?;
    let max_devices = d.i32()?;
    if !(0..=1 << 24).contains(&max_buckets) || max_rules > 1 << 16 {
        return Err(d.err("implausible bucket or rule count"));
    }

    let mut map = CrushMap::empty(Tunables::legacy());
    // (id, type, items) per non-empty slot, named once the names are read.
    let mut raw_buckets: Vec<RawBucket> = Vec::new();
    for slot in 0..max_buckets as usize {
        let alg = d.u32()?;
        if alg == 0 {
            continue;
        }
        let id = d.i32()?;
        let type_id = i32::from(d.u16()?);
        let alg2 = d.u8()?;
        let hash = d.u8()?;
        let _weight = d.u32()?;
        let size = d.u32()? as usize;
        if alg != u32::from(ALG_STRAW2) || alg2 != ALG_STRAW2 {
            return Err(CrushError::UnsupportedBucketAlg {
                bucket: id.to_string(),
                alg: alg_name(alg2).to_string(),
            });
        }
        if hash != 0 {
            return Err(CrushError::UnsupportedHash {
                bucket: id.to_string(),
                hash: hash.to_string(),
            });
        }
        if size > bytes.len() {
            return Err(d.err("bucket size exceeds input"));
        }
        let mut ids = Vec::with_capacity(size);
        for _ in 0..size {
            ids.push(d.i32()?);
        }
        let mut items = Vec::with_capacity(size);
        for item in ids {
            items.push((item, d.u32()?));
        }
        if i64::from(id) != -1 - slot as i64 {
            return Err(d.err(format!("bucket id {id} stored in slot {slot}")));
        }
        raw_buckets.push((id, type_id, items));
    }

    for slot in 0..max_rules {
        if d.u32()? == 0 {
            map.rules.push(None);
            continue;
        }
        let len = d.u32()? as usize;
        let ruleset = d.u8()?;
        let rule_type = RuleType::from_code(d.u8()?);
        let min_size = u32::from(d.u8()?);
        let max_size = u32::from(d.u8()?);
        if u32::from(ruleset) != slot & 0xff {
            return Err(d.err("crush ruleset_id != rule_id; encoding is too old"));
        }
        if len > bytes.len() {
            return Err(d.err("rule length exceeds input"));
        }
        let mut steps = Vec::with_capacity(len);
        for _ in 0..len {
            let (op, a1, a2) = (d.u32()?, d.i32()?, d.i32()?);
            steps.push(
                step_from_code(op, a1, a2).ok_or_else(|| d.err(format!("unknown rule op {op}")))?,
            );
        }
        map.rules.push(Some(Rule {
            id: slot,
            name: String::new(),
            rule_type,
            min_size,
            max_size,
            steps,
        }));
    }

    map.types = d.string_map()?;
    let names = d.string_map()?;
    for (id, name) in d.string_map()? {
        if let Some(Some(r)) = usize::try_from(id).ok().and_then(|i| map.rules.get_mut(i)) {
            r.name = name;
        }
    }

    let t = &mut map.tunables;
    if !d.at_end() {
        t.choose_local_tries = d.u32()?;
        t.choose_local_fallback_tries = d.u32()?;
        t.choose_total_tries = d.u32()?;
    }
    if !d.at_end() {
        t.chooseleaf_descend_once = d.u32()?;
    }
    if !d.at_end() {
        t.chooseleaf_vary_r = u32::from(d.u8()?);
    }
    if !d.at_end() {
        t.straw_calc_version = u32::from(d.u8()?);
    }
    if !d.at_end() {
        t.allowed_bucket_algs = d.u32()?;
    }
    if !d.at_end() {
        t.chooseleaf_stable = u32::from(d.u8()?);
    }
    let mut class_map: BTreeMap<i32, i32> = BTreeMap::new();
    if !d.at_end() {
        for _ in 0..d.count()? {
            let (k, v) = (d.i32()?, d.i32()?);
            class_map.insert(k, v);
        }
        map.classes = d.string_map()?;
        for _ in 0..d.count()? {
            let orig = d.i32()?;
            let entry = map.class_buckets.entry(orig).or_default();
            for _ in 0..d.count()? {
                let (cid, shadow) = (d.i32()?, d.i32()?);
                entry.insert(cid, shadow);
            }
        }
    }
    if !d.at_end() && d.u32()? != 0 {
        return Err(CrushError::Unsupported(
            "choose_args (weight sets) are not supported".into(),
        ));
    }

    let class_of = |id: i32, map: &CrushMap| -> Option<String> {
        class_map.get(&id).and_then(|c| map.classes.get(c)).cloned()
    };
    for (id, name) in &names {
        if *id >= 0 {
            let class = class_of(*id, &map);
            map.devices.insert(
                *id,
                Device {
                    id: *id,
                    name: name.clone(),
                    class,
                },
            );
        }
    }
    for (id, type_id, items) in raw_buckets {
        let name = names
            .get(&id)
            .cloned()
            .unwrap_or_else(|| format!("bucket{}", -1 - i64::from(id)));
        let class = class_of(id, &map);
        map.insert_bucket(Bucket {
            id,
            name,
            type_id,
            items,
            class,
        })?;
    }
    map.bucket_capacity = max_buckets as usize;
    map.max_devices = max_devices;
    map.check_acyclic()?;
    map.check_limits()?;
    Ok(map)
}

/// A decoded bucket before names and classes are known.
type RawBucket = (i32, i32, Vec<(i32, u32)>);

fn alg_name(alg: u8) -> &'static str {
    match alg {
        1 => "uniform",
        2 => "list",
        3 => "tree",
        4 => "straw",
        5 => "straw2",
        _ => "unknown",
    }
}

fn step_code(step: RuleStep) -> (u32, i32, i32) {
    match step {
        RuleStep::Noop => (OP_NOOP, 0, 0),
        RuleStep::Take(item) => (OP_TAKE, item, 0),
        RuleStep::ChooseFirstN { n, type_id } => (OP_CHOOSE_FIRSTN, n, type_id),
        RuleStep::ChooseIndep { n, type_id } => (OP_CHOOSE_INDEP, n, type_id),
        RuleStep::Emit => (OP_EMIT, 0, 0),
        RuleStep::ChooseLeafFirstN { n, type_id } => (OP_CHOOSELEAF_FIRSTN, n, type_id),
        RuleStep::ChooseLeafIndep { n, type_id } => (OP_CHOOSELEAF_INDEP, n, type_id),
        RuleStep::SetChooseTries(v) => (OP_SET_CHOOSE_TRIES, v as i32, 0),
        RuleStep::SetChooseLeafTries(v) => (OP_SET_CHOOSELEAF_TRIES, v as i32, 0),
        RuleStep::SetChooseLocalTries(v) => (OP_SET_CHOOSE_LOCAL_TRIES, v as i32, 0),
        RuleStep::SetChooseLocalFallbackTries(v) => {
            (OP_SET_CHOOSE_LOCAL_FALLBACK_TRIES, v as i32, 0)
        }
        RuleStep::SetChooseLeafVaryR(v) => (OP_SET_CHOOSELEAF_VARY_R, v as i32, 0),
        RuleStep::SetChooseLeafStable(v) => (OP_SET_CHOOSELEAF_STABLE, v as i32, 0),
    }
}

fn step_from_code(op: u32, a1: i32, a2: i32) -> Option<RuleStep> {
    Some(match op {
        OP_NOOP => RuleStep::Noop,
        OP_TAKE => RuleStep::Take(a1),
        OP_CHOOSE_FIRSTN => RuleStep::ChooseFirstN { n: a1, type_id: a2 },
        OP_CHOOSE_INDEP => RuleStep::ChooseIndep { n: a1, type_id: a2 },
        OP_EMIT => RuleStep::Emit,
        OP_CHOOSELEAF_FIRSTN => RuleStep::ChooseLeafFirstN { n: a1, type_id: a2 },
        OP_CHOOSELEAF_INDEP => RuleStep::ChooseLeafIndep { n: a1, type_id: a2 },
        OP_SET_CHOOSE_TRIES => RuleStep::SetChooseTries(a1 as u32),
        OP_SET_CHOOSELEAF_TRIES => RuleStep::SetChooseLeafTries(a1 as u32),
        OP_SET_CHOOSE_LOCAL_TRIES => RuleStep::SetChooseLocalTries(a1 as u32),
        OP_SET_CHOOSE_LOCAL_FALLBACK_TRIES => RuleStep::SetChooseLocalFallbackTries(a1 as u32),
        OP_SET_CHOOSELEAF_VARY_R => RuleStep::SetChooseLeafVaryR(a1 as u32),
        OP_SET_CHOOSELEAF_STABLE => RuleStep::SetChooseLeafStable(a1 as u32),
        _ => return None,
    })
}

fn put_u32(e: &mut Vec<u8>, v: u32) {
    e.extend_from_slice(&v.to_le_bytes());
}

fn put_i32(e: &mut Vec<u8>, v: i32) {
    e.extend_from_slice(&v.to_le_bytes());
}

/// `encode(map<int32_t, string>)`: count, then (key, length, bytes).
fn put_string_map<'a>(e: &mut Vec<u8>, entries: impl Iterator<Item = (i32, &'a str)>) {
    let entries: Vec<(i32, &str)> = entries.collect();
    put_u32(e, entries.len() as u32);
    for (k, v) in entries {
        put_i32(e, k);
        put_u32(e, v.len() as u32);
        e.extend_from_slice(v.as_bytes());
    }
}

struct Decoder<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Decoder<'_> {
    fn err(&self, message: impl Into<String>) -> CrushError {
        CrushError::Decode {
            offset: self.pos,
            message: message.into(),
        }
    }

    fn at_end(&self) -> bool {
        self.pos >= self.buf.len()
    }

    fn take<const N: usize>(&mut self) -> Result<[u8; N], CrushError> {
        let end = self.pos + N;
        let Some(bytes) = self.buf.get(self.pos..end) else {
            return Err(self.err("truncated input"));
        };
        self.pos = end;
        Ok(bytes.try_into().expect("length checked"))
    }

    fn u8(&mut self) -> Result<u8, CrushError> {
        Ok(self.take::<1>()?[0])
    }

    fn u16(&mut self) -> Result<u16, CrushError> {
        Ok(u16::from_le_bytes(self.take()?))
    }

    fn u32(&mut self) -> Result<u32, CrushError> {
        Ok(u32::from_le_bytes(self.take()?))
    }

    fn i32(&mut self) -> Result<i32, CrushError> {
        Ok(i32::from_le_bytes(self.take()?))
    }

    /// An element count, sanity-checked against the remaining input.
    fn count(&mut self) -> Result<usize, CrushError> {
        let n = self.u32()? as usize;
        if n > self.buf.len() - self.pos {
            return Err(self.err("count exceeds input"));
        }
        Ok(n)
    }

    /// `decode_32_or_64_string_map`: some old encoders wrote 64-bit keys;
    /// names are never empty, so a zero length means "that was the key's
    /// high half".
    fn string_map(&mut self) -> Result<BTreeMap<i32, String>, CrushError> {
        let mut m = BTreeMap::new();
        for _ in 0..self.count()? {
            let key = self.i32()?;
            let mut len = self.u32()? as usize;
            if len == 0 {
                len = self.u32()? as usize;
                if len == 0 {
                    // An empty name would encode as the 64-bit key quirk
                    // and not decode again (found by fuzzing).
                    return Err(self.err("empty name"));
                }
            }
            let Some(bytes) = self.buf.get(self.pos..self.pos + len) else {
                return Err(self.err("truncated string"));
            };
            self.pos += len;
            let s = String::from_utf8(bytes.to_vec()).map_err(|_| self.err("name is not UTF-8"))?;
            m.insert(key, s);
        }
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builder::CrushBuilder;

    /// A map whose buckets contain each other would make placement descend
    /// forever; the decoder refuses it (the fuzz target `crush_binary` hung
    /// on one before).
    #[test]
    fn a_bucket_cycle_is_refused() {
        let mut b = CrushBuilder::new();
        b.add_osd(0, 0x10000, None, &[("host", "h0")]).unwrap();
        let mut map = b.build();
        assert!(decode(&encode(&map)).is_ok());
        for (id, child) in [(-10, -11), (-11, -12), (-12, -10)] {
            map.insert_bucket(Bucket {
                id,
                name: format!("loop{}", -id),
                type_id: 1,
                items: vec![(child, 0x10000)],
                class: None,
            })
            .unwrap();
        }
        assert!(matches!(map.check_acyclic(), Err(CrushError::Cycle(_))));
        let e = decode(&encode(&map)).expect_err("a cyclic map decodes");
        assert!(e.to_string().contains("cycle"), "{e}");
    }

    /// A retry budget that would keep every placement busy for minutes is
    /// refused, whichever way the map arrives.
    #[test]
    fn an_oversized_retry_budget_is_refused() {
        let mut b = CrushBuilder::new();
        b.add_osd(0, 0x10000, None, &[("host", "h0")]).unwrap();
        let mut map = b.build();
        map.tunables.choose_total_tries = crate::map::MAX_TRIES;
        assert!(decode(&encode(&map)).is_ok());
        map.tunables.choose_total_tries = crate::map::MAX_TRIES + 1;
        let e = decode(&encode(&map)).expect_err("decoded");
        assert!(matches!(e, CrushError::OverLimit { .. }), "{e}");
        assert!(e.to_string().contains("choose_total_tries"), "{e}");
    }
}
