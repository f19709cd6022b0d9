//! The CRUSH map: devices, bucket hierarchy, rules, tunables and the
//! per-device-class shadow trees.
//!
//! Mirrors the state held by Ceph's `struct crush_map` plus the name and
//! class tables of `CrushWrapper` (`src/crush/crush.h`,
//! `src/crush/CrushWrapper.{h,cc}`). Only straw2 buckets with the
//! rjenkins1 hash exist here, so neither algorithm nor hash is stored.

use std::collections::BTreeMap;

use crate::CrushError;

/// Placeholder Ceph puts in an indep result slot it could not fill.
pub const CRUSH_ITEM_NONE: i32 = 0x7fff_ffff;

/// Marks an indep slot that is still being chosen (never returned).
pub(crate) const CRUSH_ITEM_UNDEF: i32 = 0x7fff_fffe;

/// Largest weight Ceph accepts for a device (100.0 in 16.16).
pub const CRUSH_MAX_DEVICE_WEIGHT: u32 = 100 * 0x10000;

/// Largest weight Ceph accepts for a bucket (65535.0 in 16.16).
pub const CRUSH_MAX_BUCKET_WEIGHT: u32 = 65535 * 0x10000;

/// The weight 1.0 in CRUSH's 16.16 fixed point.
pub const WEIGHT_ONE: u32 = 0x10000;

/// Knobs that change how `do_rule` retries; they are part of the map so
/// every client maps identically.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tunables {
    /// Collision retries inside the same bucket before re-descending.
    pub choose_local_tries: u32,
    /// Retries using a bucket permutation before re-descending.
    pub choose_local_fallback_tries: u32,
    /// Total descent attempts per replica (Ceph adds one internally).
    pub choose_total_tries: u32,
    /// chooseleaf's nested descent gets a single attempt when 1.
    pub chooseleaf_descend_once: u32,
    /// Feed the parent's r into the nested chooseleaf descent when > 0.
    pub chooseleaf_vary_r: u32,
    /// Start the nested chooseleaf descent at rep 0 (fewer remaps).
    pub chooseleaf_stable: u32,
    /// How legacy straw (v1) weights are derived; kept for the text format.
    pub straw_calc_version: u32,
    /// Bit set of bucket algorithms new buckets may use.
    pub allowed_bucket_algs: u32,
}

impl Default for Tunables {
    /// Ceph's current ("jewel" / optimal) profile.
    fn default() -> Self {
        Tunables {
            choose_local_tries: 0,
            choose_local_fallback_tries: 0,
            choose_total_tries: 50,
            chooseleaf_descend_once: 1,
            chooseleaf_vary_r: 1,
            chooseleaf_stable: 1,
            straw_calc_version: 1,
            allowed_bucket_algs: 54,
        }
    }
}

impl Tunables {
    /// Ceph's "argonaut" legacy values: what `crushtool -c` starts from
    /// before reading `tunable` lines, and what the text format omits.
    pub fn legacy() -> Self {
        Tunables {
            choose_local_tries: 2,
            choose_local_fallback_tries: 5,
            choose_total_tries: 19,
            chooseleaf_descend_once: 0,
            chooseleaf_vary_r: 0,
            chooseleaf_stable: 0,
            straw_calc_version: 0,
            allowed_bucket_algs: LEGACY_ALLOWED_BUCKET_ALGS,
        }
    }
}

/// `CRUSH_LEGACY_ALLOWED_BUCKET_ALGS`: uniform, list and straw.
pub(crate) const LEGACY_ALLOWED_BUCKET_ALGS: u32 = (1 << 1) | (1 << 2) | (1 << 4);

/// A leaf of the hierarchy (an OSD).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    /// Non-negative device id (the OSD id).
    pub id: i32,
    /// Name, conventionally `osd.<id>`.
    pub name: String,
    /// Device class (`hdd`, `ssd`, `nvme`, ...), if bound to one.
    pub class: Option<String>,
}

/// A straw2 bucket (interior node of the hierarchy).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bucket {
    /// Negative bucket id; the map stores it at slot `-1 - id`.
    pub id: i32,
    /// Unique name; shadow buckets are named `<original>~<class>`.
    pub name: String,
    /// Type id (index into the map's type names).
    pub type_id: i32,
    /// Children in draw order with their 16.16 weight in this bucket.
    pub items: Vec<(i32, u32)>,
    /// For a device-class shadow bucket, its class; `None` otherwise.
    pub class: Option<String>,
}

impl Bucket {
    /// Bucket weight: the (wrapping, as in C) sum of its item weights.
    pub fn weight(&self) -> u32 {
        self.items
            .iter()
            .fold(0u32, |acc, &(_, w)| acc.wrapping_add(w))
    }

    /// True for the per-class copies Ceph derives from the real tree.
    pub fn is_shadow(&self) -> bool {
        self.class.is_some()
    }
}

/// What kind of pool a rule serves (`crush_rule.type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleType {
    /// `CEPH_PG_TYPE_REPLICATED` (1).
    Replicated,
    /// `CEPH_PG_TYPE_ERASURE` (3).
    Erasure,
    /// Any other numeric type, kept verbatim.
    Other(u8),
}

impl RuleType {
    /// Ceph's numeric code for this rule type.
    pub fn code(self) -> u8 {
        match self {
            RuleType::Replicated => 1,
            RuleType::Erasure => 3,
            RuleType::Other(v) => v,
        }
    }

    /// Inverse of [`RuleType::code`].
    pub fn from_code(code: u8) -> Self {
        match code {
            1 => RuleType::Replicated,
            3 => RuleType::Erasure,
            v => RuleType::Other(v),
        }
    }
}

/// Most items one rule step may choose: a pool is at most 10 replicas in
/// Ceph and an erasure-coded set a few dozen chunks.
pub const MAX_CHOOSE_COUNT: i32 = 64;

/// Most retries a tunable or a rule step may set (Ceph's default total is
/// 50; maps tuned for sparse trees use a few hundred).
pub const MAX_TRIES: u32 = 1000;

/// One step of a placement rule (`struct crush_rule_step`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleStep {
    /// Does nothing (`CRUSH_RULE_NOOP`).
    Noop,
    /// Start from this item; a class-restricted take names the shadow bucket.
    Take(i32),
    /// Choose `n` distinct items of `type_id` (depth first, replicated).
    ChooseFirstN {
        /// Count; `<= 0` means `result_max + n`.
        n: i32,
        /// Type of the items to choose.
        type_id: i32,
    },
    /// Choose `n` distinct `type_id` items, then one device under each.
    ChooseLeafFirstN {
        /// Count; `<= 0` means `result_max + n`.
        n: i32,
        /// Failure-domain type.
        type_id: i32,
    },
    /// Positionally stable choose (erasure coding).
    ChooseIndep {
        /// Count; `<= 0` means `result_max + n`.
        n: i32,
        /// Type of the items to choose.
        type_id: i32,
    },
    /// Positionally stable chooseleaf (erasure coding).
    ChooseLeafIndep {
        /// Count; `<= 0` means `result_max + n`.
        n: i32,
        /// Failure-domain type.
        type_id: i32,
    },
    /// Append the working set to the result.
    Emit,
    /// Override the total descent attempts for the following steps.
    SetChooseTries(u32),
    /// Override the nested chooseleaf attempts for the following steps.
    SetChooseLeafTries(u32),
    /// Override `choose_local_tries` for the following steps.
    SetChooseLocalTries(u32),
    /// Override `choose_local_fallback_tries` for the following steps.
    SetChooseLocalFallbackTries(u32),
    /// Override `chooseleaf_vary_r` for the following steps.
    SetChooseLeafVaryR(u32),
    /// Override `chooseleaf_stable` for the following steps.
    SetChooseLeafStable(u32),
}

/// A placement rule (`struct crush_rule` plus its name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// Rule id (Ceph's rule number, equal to the legacy ruleset).
    pub id: u32,
    /// Rule name (e.g. `replicated_rule`).
    pub name: String,
    /// Pool type the rule is meant for.
    pub rule_type: RuleType,
    /// Deprecated minimum pool size, kept for the text format.
    pub min_size: u32,
    /// Deprecated maximum pool size, kept for the text format.
    pub max_size: u32,
    /// The steps, executed in order by `do_rule`.
    pub steps: Vec<RuleStep>,
}

/// A complete CRUSH map.
///
/// Build one with [`crate::CrushBuilder`] (the way the monitor edits the
/// map) or [`crate::text::parse`] (crushtool's text format); map PGs with
/// [`CrushMap::do_rule`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrushMap {
    /// Retry behaviour of `do_rule`.
    pub tunables: Tunables,
    pub(crate) devices: BTreeMap<i32, Device>,
    pub(crate) types: BTreeMap<i32, String>,
    /// Slot `i` holds bucket `-1 - i`.
    pub(crate) buckets: Vec<Option<Bucket>>,
    /// Slot `i` holds rule `i`.
    pub(crate) rules: Vec<Option<Rule>>,
    /// Class id -> class name (`CrushWrapper::class_name`).
    pub(crate) classes: BTreeMap<i32, String>,
    /// Original bucket -> class id -> shadow bucket (`class_bucket`).
    pub(crate) class_buckets: BTreeMap<i32, BTreeMap<i32, i32>>,
    /// One past the largest device id in any bucket (`crush_finalize`).
    pub(crate) max_devices: i32,
    /// Ceph's bucket array size (`max_buckets`): grows 8, 16, 32, ... and
    /// never shrinks; only the binary encoding shows it.
    pub(crate) bucket_capacity: usize,
}

impl CrushMap {
    /// An empty map with the given tunables and no types.
    pub(crate) fn empty(tunables: Tunables) -> Self {
        CrushMap {
            tunables,
            devices: BTreeMap::new(),
            types: BTreeMap::new(),
            buckets: Vec::new(),
            rules: Vec::new(),
            classes: BTreeMap::new(),
            class_buckets: BTreeMap::new(),
            max_devices: 0,
            bucket_capacity: 0,
        }
    }

    // ----- lookups -------------------------------------------------------

    /// All devices with a name, by id.
    pub fn devices(&self) -> impl Iterator<Item = &Device> {
        self.devices.values()
    }

    /// The device with this id.
    pub fn device(&self, id: i32) -> Option<&Device> {
        self.devices.get(&id)
    }

    /// The device with this name (e.g. `osd.3`).
    pub fn device_by_name(&self, name: &str) -> Option<&Device> {
        self.devices.values().find(|d| d.name == name)
    }

    /// One past the highest device id placed in any bucket; the length an
    /// `osd_weights` vector needs to cover every device.
    pub fn max_devices(&self) -> i32 {
        self.max_devices
    }

    /// All type ids and names, ascending by id.
    pub fn types(&self) -> impl Iterator<Item = (i32, &str)> {
        self.types.iter().map(|(&id, name)| (id, name.as_str()))
    }

    /// Id of the type with this name (e.g. `host`).
    pub fn type_id(&self, type_name: &str) -> Option<i32> {
        self.types
            .iter()
            .find(|(_, name)| name.as_str() == type_name)
            .map(|(&id, _)| id)
    }

    /// Name of the type with this id.
    pub fn type_name(&self, type_id: i32) -> Option<&str> {
        self.types.get(&type_id).map(String::as_str)
    }

    /// All buckets (shadow buckets included), ascending by slot.
    pub fn buckets(&self) -> impl Iterator<Item = &Bucket> {
        self.buckets.iter().flatten()
    }

    /// Refuses tunables and rule steps whose placement would not finish in
    /// reasonable time: a choose step for more than [`MAX_CHOOSE_COUNT`]
    /// items (each unfillable replica costs a full retry budget, so
    /// `firstn 1073741824` loops for hours — found by fuzzing), or a retry
    /// count above [`MAX_TRIES`]. Ceph accepts both and hangs the same way.
    pub fn check_limits(&self) -> Result<(), CrushError> {
        let over = |what: String, value: i64, limit: i64| {
            if value > limit {
                Err(CrushError::OverLimit { what, value, limit })
            } else {
                Ok(())
            }
        };
        for (what, n) in self.retry_budgets() {
            over(what, n.into(), MAX_TRIES.into())?;
        }
        for rule in self.rules() {
            for s in &rule.steps {
                if let RuleStep::ChooseFirstN { n, .. }
                | RuleStep::ChooseLeafFirstN { n, .. }
                | RuleStep::ChooseIndep { n, .. }
                | RuleStep::ChooseLeafIndep { n, .. } = *s
                {
                    let what = format!("rule {} step choose count", rule.name);
                    over(what, n.into(), MAX_CHOOSE_COUNT.into())?;
                }
            }
        }
        Ok(())
    }

    /// Every retry count the map sets, named: the tunables, then each
    /// rule's `set_*_tries` steps.
    pub fn retry_budgets(&self) -> impl Iterator<Item = (String, u32)> + '_ {
        let t = &self.tunables;
        let tunables = [
            ("choose_total_tries", t.choose_total_tries),
            ("choose_local_tries", t.choose_local_tries),
            ("choose_local_fallback_tries", t.choose_local_fallback_tries),
        ]
        .into_iter()
        .map(|(name, n)| (format!("tunable {name}"), n));
        let steps = self.rules().flat_map(|rule| {
            rule.steps.iter().filter_map(move |s| {
                let (name, n) = match *s {
                    RuleStep::SetChooseTries(n) => ("set_choose_tries", n),
                    RuleStep::SetChooseLeafTries(n) => ("set_chooseleaf_tries", n),
                    RuleStep::SetChooseLocalTries(n) => ("set_choose_local_tries", n),
                    RuleStep::SetChooseLocalFallbackTries(n) => {
                        ("set_choose_local_fallback_tries", n)
                    }
                    _ => return None,
                };
                Some((format!("rule {} step {name}", rule.name), n))
            })
        });
        tunables.chain(steps)
    }

    /// Refuses a bucket that contains itself, directly or further down:
    /// placement would descend it forever (found by fuzzing decoded maps).
    pub fn check_acyclic(&self) -> Result<(), CrushError> {
        // 0 unvisited, 1 on the current path, 2 done.
        let mut state = vec![0u8; self.buckets.len()];
        for start in self.buckets() {
            let Some(s) = slot_of(start.id) else { continue };
            if state[s] != 0 {
                continue;
            }
            // Depth-first without recursion: (bucket slot, next item index).
            let mut stack = vec![(s, 0usize)];
            state[s] = 1;
            while let Some(&(slot, next)) = stack.last() {
                let items = self.buckets[slot]
                    .as_ref()
                    .map_or(&[][..], |b| &b.items[..]);
                let Some(&(item, _)) = items.get(next) else {
                    state[slot] = 2;
                    stack.pop();
                    continue;
                };
                if let Some(top) = stack.last_mut() {
                    top.1 += 1;
                }
                let Some(child) = (item < 0).then(|| slot_of(item)).flatten() else {
                    continue;
                };
                if child >= state.len() {
                    continue;
                }
                match state[child] {
                    1 => {
                        let name = self.buckets[child]
                            .as_ref()
                            .map_or_else(|| item.to_string(), |b| b.name.clone());
                        return Err(CrushError::Cycle(name));
                    }
                    0 => {
                        state[child] = 1;
                        stack.push((child, 0));
                    }
                    _ => {}
                }
            }
        }
        Ok(())
    }

    /// The bucket with this (negative) id.
    pub fn bucket(&self, id: i32) -> Option<&Bucket> {
        slot_of(id)
            .and_then(|s| self.buckets.get(s))
            .and_then(Option::as_ref)
    }

    /// The bucket with this name; shadow buckets answer to `name~class`.
    pub fn bucket_by_name(&self, name: &str) -> Option<&Bucket> {
        self.buckets().find(|b| b.name == name)
    }

    /// All rules, ascending by id.
    pub fn rules(&self) -> impl Iterator<Item = &Rule> {
        self.rules.iter().flatten()
    }

    /// The rule with this id.
    pub fn rule(&self, id: u32) -> Option<&Rule> {
        self.rules.get(id as usize).and_then(Option::as_ref)
    }

    /// The rule with this name.
    pub fn rule_by_name(&self, name: &str) -> Option<&Rule> {
        self.rules().find(|r| r.name == name)
    }

    /// Device classes as (class id, name), ascending by id.
    pub fn classes(&self) -> impl Iterator<Item = (i32, &str)> {
        self.classes.iter().map(|(&id, n)| (id, n.as_str()))
    }

    /// Id of the device class with this name.
    pub fn class_id(&self, class: &str) -> Option<i32> {
        self.classes
            .iter()
            .find(|(_, n)| n.as_str() == class)
            .map(|(&id, _)| id)
    }

    /// The shadow bucket holding only `class` devices under `bucket_id`.
    pub fn shadow_bucket(&self, bucket_id: i32, class: &str) -> Option<i32> {
        let cid = self.class_id(class)?;
        self.class_buckets.get(&bucket_id)?.get(&cid).copied()
    }

    /// Name of any item: device name, bucket name, or `None`.
    pub fn item_name(&self, id: i32) -> Option<&str> {
        if id >= 0 {
            self.device(id).map(|d| d.name.as_str())
        } else {
            self.bucket(id).map(|b| b.name.as_str())
        }
    }

    /// Id of the item (device or bucket) with this name.
    pub fn item_id(&self, name: &str) -> Option<i32> {
        self.device_by_name(name)
            .map(|d| d.id)
            .or_else(|| self.bucket_by_name(name).map(|b| b.id))
    }

    /// The nearest ancestor of `item` of type `type_id` in the real
    /// (non-shadow) tree, like `CrushWrapper::get_parent_of_type`.
    pub fn ancestor_of_type(&self, item: i32, type_id: i32) -> Option<i32> {
        let mut cur = item;
        loop {
            let parent = self.parent_of(cur)?;
            if self.bucket(parent).map(|b| b.type_id) == Some(type_id) {
                return Some(parent);
            }
            cur = parent;
        }
    }

    /// First non-shadow bucket (by slot) that lists `item`.
    pub fn parent_of(&self, item: i32) -> Option<i32> {
        self.buckets()
            .filter(|b| !b.is_shadow())
            .find(|b| b.items.iter().any(|&(i, _)| i == item))
            .map(|b| b.id)
    }

    /// Every device under `item` (depth first, in item order).
    pub fn devices_under(&self, item: i32) -> Vec<i32> {
        let mut out = Vec::new();
        self.collect_devices(item, &mut out);
        out
    }

    fn collect_devices(&self, item: i32, out: &mut Vec<i32>) {
        if item >= 0 {
            out.push(item);
        } else if let Some(b) = self.bucket(item) {
            for &(child, _) in &b.items {
                self.collect_devices(child, out);
            }
        }
    }

    /// The weight `item` has in its first non-shadow parent, if any.
    pub fn item_weight(&self, item: i32) -> Option<u32> {
        let parent = self.bucket(self.parent_of(item)?)?;
        parent
            .items
            .iter()
            .find(|&&(i, _)| i == item)
            .map(|&(_, w)| w)
    }

    // ----- crate-internal mutation helpers -------------------------------

    pub(crate) fn bucket_mut(&mut self, id: i32) -> Option<&mut Bucket> {
        slot_of(id)
            .and_then(|s| self.buckets.get_mut(s))
            .and_then(Option::as_mut)
    }

    /// Place `bucket` at its own id's slot; fails if the slot is taken.
    pub(crate) fn insert_bucket(&mut self, bucket: Bucket) -> Result<(), CrushError> {
        let Some(slot) = slot_of(bucket.id) else {
            return Err(CrushError::InvalidBucketId(bucket.id));
        };
        if self.buckets.len() <= slot {
            self.buckets.resize(slot + 1, None);
        }
        // crush_add_bucket: the array doubles, starting at 8.
        while slot >= self.bucket_capacity {
            self.bucket_capacity = if self.bucket_capacity == 0 {
                8
            } else {
                self.bucket_capacity * 2
            };
        }
        if self.buckets[slot].is_some() {
            return Err(CrushError::DuplicateBucketId(bucket.id));
        }
        self.buckets[slot] = Some(bucket);
        Ok(())
    }

    /// Remove the bucket at `id`, freeing its slot for reuse.
    pub(crate) fn remove_bucket(&mut self, id: i32) -> Option<Bucket> {
        let slot = slot_of(id)?;
        let b = self.buckets.get_mut(slot)?.take();
        while matches!(self.buckets.last(), Some(None)) {
            self.buckets.pop();
        }
        b
    }

    /// `crush_get_next_bucket_id`: the lowest free slot.
    pub(crate) fn next_bucket_id(&self) -> i32 {
        let slot = self
            .buckets
            .iter()
            .position(Option::is_none)
            .unwrap_or(self.buckets.len());
        -1 - slot as i32
    }

    /// True if some bucket lists `item` as a child.
    pub(crate) fn item_is_linked(&self, item: i32) -> bool {
        self.buckets()
            .any(|b| b.items.iter().any(|&(i, _)| i == item))
    }

    /// Is `item` reachable from `root` (including `root == item`)?
    pub(crate) fn subtree_contains(&self, root: i32, item: i32) -> bool {
        if root == item {
            return true;
        }
        match self.bucket(root) {
            Some(b) => b.items.iter().any(|&(i, _)| self.subtree_contains(i, item)),
            None => false,
        }
    }

    /// `crush_finalize`: recompute `max_devices` from bucket contents.
    pub(crate) fn finalize(&mut self) {
        let max_item = self
            .buckets()
            .flat_map(|b| b.items.iter().map(|&(i, _)| i))
            .max()
            .unwrap_or(-1);
        self.max_devices = (max_item + 1).max(0);
    }

    /// `get_or_create_class_id`: new classes get max id + 1 (or 0).
    pub(crate) fn get_or_create_class_id(&mut self, class: &str) -> i32 {
        if let Some(id) = self.class_id(class) {
            return id;
        }
        let id = self.classes.keys().next_back().map_or(0, |&m| m + 1);
        self.classes.insert(id, class.to_string());
        id
    }

    /// Set `item`'s weight in the non-shadow-or-shadow bucket `bucket_id`
    /// and push the new bucket weight up through every parent, like
    /// `CrushWrapper::adjust_item_weight_in_bucket`. Returns whether the
    /// item was found there.
    pub(crate) fn adjust_item_weight_in_bucket(
        &mut self,
        item: i32,
        weight: u32,
        bucket_id: i32,
    ) -> bool {
        let Some(b) = self.bucket_mut(bucket_id) else {
            return false;
        };
        let mut changed = false;
        for entry in b.items.iter_mut().filter(|(i, _)| *i == item) {
            entry.1 = weight;
            changed = true;
        }
        if changed {
            let w = self.bucket(bucket_id).map_or(0, Bucket::weight);
            self.adjust_item_weight(bucket_id, w);
        }
        changed
    }

    /// `CrushWrapper::adjust_item_weight`: set `item`'s weight in every
    /// bucket that lists it (shadow buckets too) and propagate upwards.
    pub(crate) fn adjust_item_weight(&mut self, item: i32, weight: u32) -> bool {
        let holders: Vec<i32> = self
            .buckets()
            .filter(|b| b.items.iter().any(|&(i, _)| i == item))
            .map(|b| b.id)
            .collect();
        let mut changed = false;
        for bid in holders {
            changed |= self.adjust_item_weight_in_bucket(item, weight, bid);
        }
        changed
    }

    // ----- device classes: shadow trees ----------------------------------

    /// `CrushWrapper::rebuild_roots_with_classes`: drop classes nothing
    /// uses, delete every shadow tree and rebuild them, reusing the old
    /// shadow ids so existing rules keep pointing at the same buckets.
    pub(crate) fn rebuild_shadow_trees(&mut self) -> Result<(), CrushError> {
        let old = self.class_buckets.clone();
        self.cleanup_dead_classes();
        self.trim_shadow_roots();
        self.class_buckets.clear();
        self.populate_classes(&old)
    }

    /// `CrushWrapper::cleanup_dead_classes`.
    fn cleanup_dead_classes(&mut self) {
        let dead: Vec<i32> = self
            .classes
            .iter()
            .filter(|(_, name)| {
                let used_by_device = self
                    .devices
                    .values()
                    .any(|d| d.class.as_deref() == Some(name.as_str()));
                !used_by_device
            })
            .map(|(&id, _)| id)
            .filter(|&cid| !self.class_used_by_rule(cid))
            .collect();
        for cid in dead {
            self.classes.remove(&cid);
        }
    }

    /// Does a rule `take` a shadow bucket of class `cid`?
    fn class_used_by_rule(&self, cid: i32) -> bool {
        self.rules().any(|r| {
            r.steps.iter().any(|s| match *s {
                RuleStep::Take(root) => self
                    .class_buckets
                    .values()
                    .any(|m| m.get(&cid) == Some(&root)),
                _ => false,
            })
        })
    }

    /// `CrushWrapper::trim_roots_with_class`: remove all shadow trees.
    fn trim_shadow_roots(&mut self) {
        let roots: Vec<i32> = self
            .buckets()
            .filter(|b| b.is_shadow() && !self.item_is_linked(b.id))
            .map(|b| b.id)
            .collect();
        for r in roots {
            self.remove_root(r);
        }
    }

    /// `CrushWrapper::remove_root`: delete a bucket and its sub-buckets.
    fn remove_root(&mut self, id: i32) {
        let Some(b) = self.bucket(id) else {
            return;
        };
        let children: Vec<i32> = b.items.iter().map(|&(i, _)| i).filter(|&i| i < 0).collect();
        for c in children {
            self.remove_root(c);
        }
        self.remove_bucket(id);
        self.class_buckets.remove(&id);
    }

    /// `CrushWrapper::populate_classes`: clone every non-shadow root once
    /// per class, in (root id, class id) order.
    pub(crate) fn populate_classes(
        &mut self,
        old: &BTreeMap<i32, BTreeMap<i32, i32>>,
    ) -> Result<(), CrushError> {
        let used_ids: Vec<i32> = old.values().flat_map(|m| m.values().copied()).collect();
        let roots: Vec<i32> = self
            .buckets()
            .filter(|b| !b.is_shadow() && !self.item_is_linked(b.id))
            .map(|b| b.id)
            .collect::<std::collections::BTreeSet<i32>>()
            .into_iter()
            .collect();
        let class_ids: Vec<i32> = self.classes.keys().copied().collect();
        for r in roots {
            for &c in &class_ids {
                self.device_class_clone(r, c, old, &used_ids)?;
            }
        }
        Ok(())
    }

    /// `CrushWrapper::device_class_clone`: copy `original` keeping only
    /// devices of class `cid`; children are cloned first, so they get
    /// their ids before their parent.
    fn device_class_clone(
        &mut self,
        original: i32,
        cid: i32,
        old: &BTreeMap<i32, BTreeMap<i32, i32>>,
        used_ids: &[i32],
    ) -> Result<i32, CrushError> {
        let orig = self
            .bucket(original)
            .ok_or(CrushError::NoSuchBucket(original))?
            .clone();
        let class_name = self.classes[&cid].clone();
        let copy_name = format!("{}~{}", orig.name, class_name);
        if let Some(existing) = self.bucket_by_name(&copy_name) {
            return Ok(existing.id);
        }
        let mut items = Vec::with_capacity(orig.items.len());
        for &(item, weight) in &orig.items {
            if item >= 0 {
                let dev_class = self.devices.get(&item).and_then(|d| d.class.as_deref());
                if dev_class == Some(class_name.as_str()) {
                    items.push((item, weight));
                }
            } else {
                let child = self.device_class_clone(item, cid, old, used_ids)?;
                let child_weight = self.bucket(child).map_or(0, Bucket::weight);
                items.push((child, child_weight));
            }
        }
        let bno = match old.get(&original).and_then(|m| m.get(&cid)) {
            Some(&id) => id,
            None => {
                // A fresh id must not collide with a live bucket or with
                // any shadow id handed out before (rules may still use it).
                let mut bno = -1;
                while self.bucket(bno).is_some() || used_ids.contains(&bno) {
                    bno -= 1;
                }
                bno
            }
        };
        self.insert_bucket(Bucket {
            id: bno,
            name: copy_name,
            type_id: orig.type_id,
            items,
            class: Some(class_name),
        })?;
        self.class_buckets
            .entry(original)
            .or_default()
            .insert(cid, bno);
        Ok(bno)
    }
}

/// Slot index of a bucket id (`-1 - id`), if the id is negative.
pub(crate) fn slot_of(id: i32) -> Option<usize> {
    if id < 0 {
        Some((-1 - i64::from(id)) as usize)
    } else {
        None
    }
}

/// Ceph's `CrushWrapper::is_valid_crush_name`: `[-_.0-9a-zA-Z]+`.
pub(crate) fn is_valid_crush_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_' || c == b'.')
}
