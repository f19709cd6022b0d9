//! Editing a CRUSH map the way the Ceph monitor does.
//!
//! Each operation replays the corresponding `CrushWrapper` method from
//! Ceph `src/crush/CrushWrapper.cc` so that bucket ids, item order,
//! weights and device-class shadow ids come out exactly as Ceph would
//! produce them for the same sequence of commands:
//!
//! | builder                         | Ceph command / method                          |
//! |---------------------------------|------------------------------------------------|
//! | [`CrushBuilder::new`]           | `OSDMap::build_simple_crush_map` (no rule)     |
//! | [`CrushBuilder::add_osd`]       | `osd crush add` (`insert_item`), then `osd crush set-device-class` (`update_device_class`) |
//! | [`CrushBuilder::remove_osd`]    | `osd crush remove` (`remove_item`)             |
//! | [`CrushBuilder::set_weight`]    | `osd crush reweight` (`adjust_item_weightf`)   |
//! | [`CrushBuilder::set_device_class`] | `osd crush set-device-class`                |
//! | [`CrushBuilder::add_replicated_rule`] | `osd crush rule create-replicated` (`add_simple_rule`) |
//! | [`CrushBuilder::remove_rule`]   | `osd crush rule rm` (`remove_rule`)            |
//!
//! Every operation is atomic: on error the map is left unchanged.
//! A [`CrushMap`] converts back into a builder (`CrushBuilder::from`),
//! so the monitor can keep a plain `CrushMap` in its state and edit it.

use std::collections::BTreeMap;

use crate::CrushError;
use crate::map::{
    Bucket, CRUSH_MAX_DEVICE_WEIGHT, CrushMap, Device, Rule, RuleStep, RuleType, Tunables,
    is_valid_crush_name,
};

/// Ceph's default bucket types (`OSDMap::build_simple_crush_map`).
pub const DEFAULT_TYPES: [(i32, &str); 12] = [
    (0, "osd"),
    (1, "host"),
    (2, "chassis"),
    (3, "rack"),
    (4, "row"),
    (5, "pdu"),
    (6, "pod"),
    (7, "room"),
    (8, "datacenter"),
    (9, "zone"),
    (10, "region"),
    (11, "root"),
];

/// Name of the root every default map starts with.
pub const DEFAULT_ROOT: &str = "default";

/// Edits a [`CrushMap`] with Ceph monitor semantics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrushBuilder {
    map: CrushMap,
}

impl Default for CrushBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl From<CrushMap> for CrushBuilder {
    /// Resume editing an existing map (e.g. one held in monitor state).
    fn from(map: CrushMap) -> Self {
        CrushBuilder { map }
    }
}

impl CrushBuilder {
    /// Ceph's default types, optimal tunables, and an empty root
    /// `default` (id -1); no devices and no rules.
    pub fn new() -> Self {
        let mut map = CrushMap::empty(Tunables::default());
        for (id, name) in DEFAULT_TYPES {
            map.types.insert(id, name.to_string());
        }
        map.insert_bucket(Bucket {
            id: -1,
            name: DEFAULT_ROOT.to_string(),
            type_id: 11,
            items: Vec::new(),
            class: None,
        })
        .expect("empty map has a free slot");
        map.finalize();
        CrushBuilder { map }
    }

    /// The map as built so far.
    pub fn map(&self) -> &CrushMap {
        &self.map
    }

    /// Finish editing.
    pub fn build(self) -> CrushMap {
        self.map
    }

    /// Replace the tunables (e.g. to reproduce an older cluster).
    pub fn set_tunables(&mut self, tunables: Tunables) -> &mut Self {
        self.map.tunables = tunables;
        self
    }

    /// Run `op` on a copy and commit only if it succeeds.
    fn atomically<T>(
        &mut self,
        op: impl FnOnce(&mut CrushMap) -> Result<T, CrushError>,
    ) -> Result<T, CrushError> {
        let mut next = self.map.clone();
        let out = op(&mut next)?;
        next.finalize();
        self.map = next;
        Ok(out)
    }

    /// Add OSD `id` (named `osd.<id>`) with 16.16 `weight` at `location`,
    /// creating missing buckets (straw2) as `ceph osd crush add` does, and
    /// bind it to `class` if given.
    ///
    /// `location` lists `(type, bucket name)` pairs, e.g.
    /// `[("root","default"),("rack","r1"),("host","h1")]`; any level may be
    /// omitted. If no `root` is given, `root=default` is assumed (Ceph's
    /// default OSD crush location is `root=default host=<hostname>`).
    /// Levels are linked from the lowest type up until an existing bucket
    /// is reached, exactly like `CrushWrapper::insert_item`.
    pub fn add_osd(
        &mut self,
        id: i32,
        weight: u32,
        class: Option<&str>,
        location: &[(&str, &str)],
    ) -> Result<(), CrushError> {
        if id < 0 {
            return Err(CrushError::InvalidDeviceId(id));
        }
        if weight > CRUSH_MAX_DEVICE_WEIGHT {
            return Err(CrushError::WeightOutOfRange(format!(
                "device weight limited to {}",
                CRUSH_MAX_DEVICE_WEIGHT / 0x10000
            )));
        }
        if let Some(c) = class
            && !is_valid_crush_name(c)
        {
            return Err(CrushError::InvalidName(c.to_string()));
        }
        let mut loc: BTreeMap<String, String> = BTreeMap::new();
        for &(t, name) in location {
            if self.map.type_id(t).is_none() {
                return Err(CrushError::UnknownType(t.to_string()));
            }
            if !is_valid_crush_name(name) {
                return Err(CrushError::InvalidName(name.to_string()));
            }
            loc.insert(t.to_string(), name.to_string());
        }
        if !loc.contains_key("root") && self.map.type_id("root").is_some() {
            loc.insert("root".to_string(), DEFAULT_ROOT.to_string());
        }
        self.atomically(|map| {
            insert_item(map, id, weight, &format!("osd.{id}"), &loc)?;
            if let Some(c) = class {
                update_device_class(map, id, c)?;
            }
            Ok(())
        })
    }

    /// Remove OSD `id` from every bucket and forget its name and class;
    /// emptied buckets stay, as in Ceph.
    pub fn remove_osd(&mut self, id: i32) -> Result<(), CrushError> {
        if self.map.device(id).is_none() && !self.map.item_is_linked(id) {
            return Err(CrushError::NoSuchDevice(id));
        }
        self.atomically(|map| {
            // CrushWrapper::remove_item: zero the weight (propagating up),
            // unlink from every bucket, then drop the last instance.
            let holders: Vec<i32> = map
                .buckets()
                .filter(|b| b.items.iter().any(|&(i, _)| i == id))
                .map(|b| b.id)
                .collect();
            for bid in holders {
                map.adjust_item_weight_in_bucket(id, 0, bid);
                if let Some(b) = map.bucket_mut(bid) {
                    b.items.retain(|&(i, _)| i != id);
                }
            }
            map.devices.remove(&id);
            map.rebuild_shadow_trees()
        })
    }

    /// Set OSD `id`'s CRUSH weight (16.16) everywhere it appears and
    /// update every ancestor's weight (`ceph osd crush reweight`).
    pub fn set_weight(&mut self, id: i32, weight: u32) -> Result<(), CrushError> {
        if id < 0 || !self.map.item_is_linked(id) {
            return Err(CrushError::NoSuchDevice(id));
        }
        if weight > CRUSH_MAX_DEVICE_WEIGHT {
            return Err(CrushError::WeightOutOfRange(format!(
                "device weight limited to {}",
                CRUSH_MAX_DEVICE_WEIGHT / 0x10000
            )));
        }
        self.atomically(|map| {
            map.adjust_item_weight(id, weight);
            Ok(())
        })
    }

    /// Bind OSD `id` to device class `class` and rebuild the shadow trees
    /// (`ceph osd crush set-device-class`); fails if it has another class.
    pub fn set_device_class(&mut self, id: i32, class: &str) -> Result<(), CrushError> {
        if !is_valid_crush_name(class) {
            return Err(CrushError::InvalidName(class.to_string()));
        }
        self.atomically(|map| update_device_class(map, id, class))
    }

    /// Create a rule `take root [class C]; chooseleaf firstn 0 type T; emit`
    /// (plain `choose ... type osd` when the failure domain is `osd`),
    /// under the lowest free rule id, like `add_simple_rule`.
    pub fn add_replicated_rule(
        &mut self,
        name: &str,
        root: &str,
        failure_domain_type: &str,
        class: Option<&str>,
    ) -> Result<u32, CrushError> {
        self.atomically(|map| {
            add_simple_rule(
                map,
                name,
                root,
                failure_domain_type,
                class,
                RuleMode::FirstN,
            )
        })
    }

    /// Like [`CrushBuilder::add_replicated_rule`] but `indep` (erasure
    /// pools): `set_chooseleaf_tries 5; set_choose_tries 100; take;
    /// chooseleaf indep 0 type T; emit`.
    pub fn add_erasure_rule(
        &mut self,
        name: &str,
        root: &str,
        failure_domain_type: &str,
        class: Option<&str>,
    ) -> Result<u32, CrushError> {
        self.atomically(|map| {
            add_simple_rule(map, name, root, failure_domain_type, class, RuleMode::Indep)
        })
    }

    /// Delete a rule by name; classes only it used disappear with it.
    pub fn remove_rule(&mut self, name: &str) -> Result<(), CrushError> {
        let id = self
            .map
            .rule_by_name(name)
            .ok_or_else(|| CrushError::NoSuchRule(name.to_string()))?
            .id;
        self.atomically(|map| {
            // Ceph never shrinks the rule array (`max_rules`).
            map.rules[id as usize] = None;
            map.rebuild_shadow_trees()
        })
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum RuleMode {
    FirstN,
    Indep,
}

/// `CrushWrapper::insert_item` for a device.
fn insert_item(
    map: &mut CrushMap,
    item: i32,
    weight: u32,
    name: &str,
    loc: &BTreeMap<String, String>,
) -> Result<(), CrushError> {
    if let Some(existing) = map.item_id(name)
        && existing != item
    {
        return Err(CrushError::DuplicateName(name.to_string()));
    }
    if map.item_is_linked(item) {
        return Err(CrushError::DeviceExists(item));
    }
    match map.devices.get_mut(&item) {
        Some(d) => d.name = name.to_string(),
        None => {
            map.devices.insert(
                item,
                Device {
                    id: item,
                    name: name.to_string(),
                    class: None,
                },
            );
        }
    }

    // Walk the types upwards: create missing buckets, stop at the first
    // existing one and link the chain into it with weight 0.
    let mut cur = item;
    let types: Vec<(i32, String)> = map.types().map(|(i, n)| (i, n.to_string())).collect();
    for (type_id, type_name) in types {
        if type_id == 0 {
            continue;
        }
        let Some(bucket_name) = loc.get(&type_name) else {
            continue;
        };
        match map.item_id(bucket_name) {
            None => {
                let id = map.next_bucket_id();
                map.insert_bucket(Bucket {
                    id,
                    name: bucket_name.clone(),
                    type_id,
                    items: vec![(cur, 0)],
                    class: None,
                })?;
                cur = id;
            }
            Some(id) => {
                let Some(b) = map.bucket(id) else {
                    return Err(CrushError::NotABucket(bucket_name.clone()));
                };
                if map.subtree_contains(id, cur) {
                    return Err(CrushError::DeviceExists(item));
                }
                if b.type_id != type_id {
                    return Err(CrushError::TypeMismatch {
                        bucket: bucket_name.clone(),
                        expected: type_name.clone(),
                        actual: map.type_name(b.type_id).unwrap_or("?").to_string(),
                    });
                }
                if map.subtree_contains(cur, id) {
                    return Err(CrushError::Cycle(bucket_name.clone()));
                }
                map.bucket_mut(id).expect("checked").items.push((cur, 0));
                break;
            }
        }
    }

    // adjust_item_weightf_in_loc: set the weight wherever the item sits
    // directly in a bucket named by the location (map order, by type name).
    let mut changed = false;
    for bucket_name in loc.values() {
        if let Some(bid) = map.bucket_by_name(bucket_name).map(|b| b.id) {
            changed |= map.adjust_item_weight_in_bucket(item, weight, bid);
        }
    }
    if !changed {
        return Err(CrushError::NoLocation(item));
    }
    map.finalize();
    map.rebuild_shadow_trees()
}

/// `CrushWrapper::update_device_class`.
fn update_device_class(map: &mut CrushMap, id: i32, class: &str) -> Result<(), CrushError> {
    let Some(dev) = map.devices.get(&id) else {
        return Err(CrushError::NoSuchDevice(id));
    };
    match dev.class.as_deref() {
        Some(c) if c == class => return Ok(()),
        Some(c) => {
            return Err(CrushError::ClassAlreadySet {
                device: id,
                class: c.to_string(),
            });
        }
        None => {}
    }
    map.get_or_create_class_id(class);
    map.devices.get_mut(&id).expect("checked").class = Some(class.to_string());
    map.rebuild_shadow_trees()
}

/// `CrushWrapper::add_simple_rule_at` with `rno = -1`.
fn add_simple_rule(
    map: &mut CrushMap,
    name: &str,
    root_name: &str,
    failure_domain: &str,
    class: Option<&str>,
    mode: RuleMode,
) -> Result<u32, CrushError> {
    if map.rule_by_name(name).is_some() {
        return Err(CrushError::DuplicateName(name.to_string()));
    }
    let rno = map
        .rules
        .iter()
        .position(Option::is_none)
        .unwrap_or(map.rules.len());
    let Some(mut root) = map.item_id(root_name) else {
        return Err(CrushError::UnknownItem(root_name.to_string()));
    };
    let type_id = map
        .type_id(failure_domain)
        .ok_or_else(|| CrushError::UnknownType(failure_domain.to_string()))?;
    if let Some(c) = class {
        let cid = map
            .class_id(c)
            .ok_or_else(|| CrushError::UnknownClass(c.to_string()))?;
        root = map
            .class_buckets
            .get(&root)
            .and_then(|m| m.get(&cid))
            .copied()
            .ok_or_else(|| CrushError::NoClassInRoot {
                root: root_name.to_string(),
                class: c.to_string(),
            })?;
    }
    let mut steps = Vec::new();
    if mode == RuleMode::Indep {
        steps.push(RuleStep::SetChooseLeafTries(5));
        steps.push(RuleStep::SetChooseTries(100));
    }
    steps.push(RuleStep::Take(root));
    // CRUSH_CHOOSE_N (0): as many as the pool size.
    steps.push(match (mode, type_id) {
        (RuleMode::FirstN, 0) => RuleStep::ChooseFirstN { n: 0, type_id: 0 },
        (RuleMode::FirstN, t) => RuleStep::ChooseLeafFirstN { n: 0, type_id: t },
        (RuleMode::Indep, 0) => RuleStep::ChooseIndep { n: 0, type_id: 0 },
        (RuleMode::Indep, t) => RuleStep::ChooseLeafIndep { n: 0, type_id: t },
    });
    steps.push(RuleStep::Emit);
    let (rule_type, min_size, max_size) = match mode {
        RuleMode::FirstN => (RuleType::Replicated, 1, 10),
        RuleMode::Indep => (RuleType::Erasure, 3, 20),
    };
    if map.rules.len() <= rno {
        map.rules.resize(rno + 1, None);
    }
    map.rules[rno] = Some(Rule {
        id: rno as u32,
        name: name.to_string(),
        rule_type,
        min_size,
        max_size,
        steps,
    });
    Ok(rno as u32)
}
