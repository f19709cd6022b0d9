//! Placement properties the architecture relies on, on maps built with
//! `CrushBuilder`: determinism, spread proportional to weight, near-minimal
//! movement when an OSD is added, distinct failure domains, class
//! restriction, and out OSDs never chosen.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use meridian_crush::{CRUSH_ITEM_NONE, CrushBuilder, CrushMap, PgPlacement, WEIGHT_ONE, text};

const PG_NUM: u32 = 8192;
const SIZE: usize = 3;

fn pool(rule: u32) -> PgPlacement {
    PgPlacement {
        pool_id: 1,
        pg_num: PG_NUM,
        pgp_num: PG_NUM,
        hashpspool: true,
        crush_rule: rule,
        size: SIZE,
    }
}

fn all_in(map: &CrushMap) -> Vec<u32> {
    vec![WEIGHT_ONE; map.max_devices() as usize]
}

/// Every PG's raw placement.
fn place_all(map: &CrushMap, rule: u32, weights: &[u32]) -> Vec<Vec<i32>> {
    let p = pool(rule);
    (0..PG_NUM)
        .map(|seed| p.pg_to_raw_osds(map, seed, weights))
        .collect()
}

/// 4 hosts x 3 OSDs; `weights[h][i]` in whole units.
fn four_hosts(weights: [[u32; 3]; 4]) -> (CrushBuilder, u32) {
    let mut b = CrushBuilder::new();
    for (h, ws) in weights.iter().enumerate() {
        for (i, &w) in ws.iter().enumerate() {
            let id = (h * 3 + i) as i32;
            let host = format!("host{h}");
            b.add_osd(id, w * WEIGHT_ONE, Some("hdd"), &[("host", &host)])
                .unwrap();
        }
    }
    let rule = b
        .add_replicated_rule("replicated_rule", "default", "host", None)
        .unwrap();
    (b, rule)
}

/// 3 racks x 3 hosts x 2 OSDs; OSDs with odd ids are ssd, the rest hdd.
fn rack_map() -> CrushBuilder {
    let mut b = CrushBuilder::new();
    let mut id = 0;
    for r in 0..3 {
        for h in 0..3 {
            for _ in 0..2 {
                let class = if id % 2 == 1 { "ssd" } else { "hdd" };
                let rack = format!("rack{r}");
                let host = format!("r{r}h{h}");
                b.add_osd(
                    id,
                    WEIGHT_ONE + (id as u32 % 3) * WEIGHT_ONE / 2,
                    Some(class),
                    &[("root", "default"), ("rack", &rack), ("host", &host)],
                )
                .unwrap();
                id += 1;
            }
        }
    }
    b
}

#[test]
fn same_input_same_output() {
    let (b1, rule) = four_hosts([[1, 2, 3], [2, 2, 2], [4, 1, 1], [3, 2, 1]]);
    let (b2, _) = four_hosts([[1, 2, 3], [2, 2, 2], [4, 1, 1], [3, 2, 1]]);
    assert_eq!(b1.map(), b2.map(), "building is deterministic");
    let map = b1.build();
    let w = all_in(&map);
    let first = place_all(&map, rule, &w);
    assert_eq!(first, place_all(&map, rule, &w));
    assert_eq!(first, place_all(&b2.build(), rule, &w));
    // And through the text format (all weights here are exact in 3 decimals).
    let reparsed = text::parse(&text::format(&map)).unwrap();
    assert_eq!(reparsed, map);
    assert_eq!(first, place_all(&reparsed, rule, &w));
}

#[test]
fn no_floating_point_in_the_crate() {
    // Placement must be identical on every machine: integer math only.
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    for entry in std::fs::read_dir(src).unwrap() {
        let path = entry.unwrap().path();
        let code = std::fs::read_to_string(&path).unwrap();
        for (n, line) in code.lines().enumerate() {
            let code_part = line.split("//").next().unwrap();
            for word in code_part.split(|c: char| !c.is_ascii_alphanumeric() && c != '_') {
                assert!(
                    word != "f32" && word != "f64",
                    "{}:{}: floating point: {line}",
                    path.display(),
                    n + 1
                );
            }
        }
    }
}

/// Replica count per OSD vs its weight share, within +-10%.
fn check_proportional(map: &CrushMap, placements: &[Vec<i32>]) {
    let mut count: BTreeMap<i32, u64> = BTreeMap::new();
    for set in placements {
        assert_eq!(set.len(), SIZE);
        for &osd in set {
            *count.entry(osd).or_default() += 1;
        }
    }
    let total_weight: u64 = map
        .devices()
        .map(|d| u64::from(map.item_weight(d.id).unwrap()))
        .sum();
    let replicas = (placements.len() * SIZE) as u64;
    for d in map.devices() {
        let w = u64::from(map.item_weight(d.id).unwrap());
        let expected = replicas * w / total_weight;
        let got = count.get(&d.id).copied().unwrap_or(0);
        let lo = expected * 9 / 10;
        let hi = expected * 11 / 10;
        assert!(
            (lo..=hi).contains(&got),
            "{}: {got} replicas, expected {expected} +-10%",
            d.name
        );
    }
}

#[test]
fn spread_follows_weights_equal() {
    let (b, rule) = four_hosts([[1; 3]; 4]);
    let map = b.build();
    check_proportional(&map, &place_all(&map, rule, &all_in(&map)));
}

#[test]
fn spread_follows_weights_unequal() {
    // Unequal OSDs, equal hosts (6 units each), so with 3 replicas over 4
    // hosts every OSD can reach exactly its weight share.
    let (b, rule) = four_hosts([[1, 2, 3], [2, 2, 2], [4, 1, 1], [3, 2, 1]]);
    let map = b.build();
    check_proportional(&map, &place_all(&map, rule, &all_in(&map)));
}

/// Replica placements (pg, osd) present before but not after.
fn moved(before: &[Vec<i32>], after: &[Vec<i32>]) -> u64 {
    before
        .iter()
        .zip(after)
        .map(|(a, b)| {
            let b: BTreeSet<i32> = b.iter().copied().collect();
            a.iter().filter(|osd| !b.contains(osd)).count() as u64
        })
        .sum()
}

/// Build with `build`, place all PGs, add osd.12 (weight `new_weight`
/// units) at `location`, place again; return (moved, minimal) where
/// minimal is the new OSD's weight share of all replicas.
fn growth(
    build: impl Fn() -> (CrushBuilder, u32),
    new_weight: u32,
    location: &[(&str, &str)],
) -> (u64, u64) {
    let (mut b, rule) = build();
    let before_map = b.map().clone();
    let before = place_all(&before_map, rule, &all_in(&before_map));
    let old_total: u64 = before_map
        .devices()
        .map(|d| u64::from(before_map.item_weight(d.id).unwrap()))
        .sum();
    b.add_osd(12, new_weight * WEIGHT_ONE, Some("hdd"), location)
        .unwrap();
    let after_map = b.build();
    let after = place_all(&after_map, rule, &all_in(&after_map));
    assert!(
        after.iter().any(|s| s.contains(&12)),
        "new OSD received nothing"
    );
    let new = u64::from(new_weight * WEIGHT_ONE);
    let replicas = u64::from(PG_NUM) * SIZE as u64;
    (moved(&before, &after), replicas * new / (old_total + new))
}

/// Builds a map and returns it with its rule id.
type MapFactory = Box<dyn Fn() -> (CrushBuilder, u32)>;

/// A named growth scenario: factory and the new OSD's location.
type GrowthCase = (
    &'static str,
    MapFactory,
    &'static [(&'static str, &'static str)],
);

/// 12 one-OSD hosts (or, with `flat`, 12 OSDs straight under the root).
fn twelve(flat: bool) -> (CrushBuilder, u32) {
    let mut b = CrushBuilder::new();
    for id in 0..12 {
        let host = format!("host{id}");
        let loc: &[(&str, &str)] = if flat { &[] } else { &[("host", &host)] };
        b.add_osd(id, WEIGHT_ONE, Some("hdd"), loc).unwrap();
    }
    let fd = if flat { "osd" } else { "host" };
    let rule = b.add_replicated_rule("r", "default", fd, None).unwrap();
    (b, rule)
}

#[test]
fn adding_a_13th_osd_moves_near_the_minimum() {
    // The new OSD is its own failure domain (a new host, or a flat map):
    // straw2 only moves what the newcomer takes, plus a few collisions.
    let cases: [GrowthCase; 4] = [
        (
            "12 hosts + new host",
            Box::new(|| twelve(false)),
            &[("host", "host12")],
        ),
        ("12 flat + 1", Box::new(|| twelve(true)), &[]),
        (
            "4x3 + new host",
            Box::new(|| four_hosts([[1; 3]; 4])),
            &[("host", "host4")],
        ),
        (
            "4x3 unequal + new host",
            Box::new(|| four_hosts([[1, 2, 3], [2, 2, 2], [4, 1, 1], [3, 2, 1]])),
            &[("host", "host4")],
        ),
    ];
    for (what, build, loc) in cases {
        let (got, minimal) = growth(build, 1, loc);
        assert!(
            got * 2 <= minimal * 3,
            "{what}: moved {got} replicas; minimal is {minimal} (limit 1.5x)"
        );
    }
}

#[test]
fn adding_a_disk_to_an_existing_host_moves_under_twice_the_minimum() {
    // When the new disk joins an existing host, that host's weight grows,
    // so straw2 also moves host-level choices towards it, and 3/4 of those
    // land on the host's old disks: Ceph's hierarchy inherently moves
    // 1.6-1.9x the newcomer's share here (identical in Ceph, since the
    // mapping is bit-for-bit the same). Bound it at 2x.
    let cases: [(&str, [[u32; 3]; 4], u32, &str); 3] = [
        ("equal", [[1; 3]; 4], 1, "host0"),
        (
            "unequal",
            [[1, 2, 3], [2, 2, 2], [4, 1, 1], [3, 2, 1]],
            2,
            "host2",
        ),
        (
            "unequal, light disk",
            [[1, 2, 3], [2, 2, 2], [4, 1, 1], [3, 2, 1]],
            1,
            "host3",
        ),
    ];
    for (what, weights, w, host) in cases {
        let (got, minimal) = growth(|| four_hosts(weights), w, &[("host", host)]);
        assert!(
            got <= minimal * 2,
            "{what}: moved {got} replicas; minimal is {minimal} (limit 2x)"
        );
    }
}

#[test]
fn replicas_use_distinct_failure_domains() {
    let mut b = rack_map();
    let by_host = b
        .add_replicated_rule("by_host", "default", "host", None)
        .unwrap();
    let by_rack = b
        .add_replicated_rule("by_rack", "default", "rack", None)
        .unwrap();
    let map = b.build();
    let host = map.type_id("host").unwrap();
    let rack = map.type_id("rack").unwrap();
    let w = all_in(&map);
    for (rule, domain) in [(by_host, host), (by_rack, rack)] {
        for set in place_all(&map, rule, &w) {
            assert_eq!(set.len(), SIZE, "9 hosts / 3 racks are enough for 3");
            let domains: BTreeSet<i32> = set
                .iter()
                .map(|&osd| map.ancestor_of_type(osd, domain).unwrap())
                .collect();
            assert_eq!(domains.len(), SIZE, "rule {rule}: {set:?} shares a domain");
        }
    }
}

#[test]
fn class_rule_only_picks_that_class() {
    let mut b = rack_map();
    let ssd = b
        .add_replicated_rule("ssd", "default", "host", Some("ssd"))
        .unwrap();
    let hdd_rack = b
        .add_replicated_rule("hdd_rack", "default", "rack", Some("hdd"))
        .unwrap();
    let map = b.build();
    let host = map.type_id("host").unwrap();
    let rack = map.type_id("rack").unwrap();
    let w = all_in(&map);
    for (rule, class, domain) in [(ssd, "ssd", host), (hdd_rack, "hdd", rack)] {
        for set in place_all(&map, rule, &w) {
            assert_eq!(set.len(), SIZE);
            for &osd in &set {
                assert_eq!(map.device(osd).unwrap().class.as_deref(), Some(class));
            }
            let domains: BTreeSet<i32> = set
                .iter()
                .map(|&osd| map.ancestor_of_type(osd, domain).unwrap())
                .collect();
            assert_eq!(domains.len(), SIZE);
        }
    }
}

#[test]
fn out_osds_never_appear() {
    let mut b = rack_map();
    let by_host = b
        .add_replicated_rule("by_host", "default", "host", None)
        .unwrap();
    let ec = b.add_erasure_rule("ec", "default", "host", None).unwrap();
    let map = b.build();
    let mut w = all_in(&map);
    let out = [0, 5, 6, 13];
    for &o in &out {
        w[o as usize] = 0;
    }
    // A half-weighted OSD is out for about half the inputs, never all.
    w[8] = WEIGHT_ONE / 2;
    let mut half_hits = 0;
    for set in place_all(&map, by_host, &w) {
        assert_eq!(set.len(), SIZE);
        assert!(set.iter().all(|o| !out.contains(o)), "{set:?}");
        half_hits += usize::from(set.contains(&8));
    }
    let full: usize = place_all(&map, by_host, &all_in(&map))
        .iter()
        .filter(|s| s.contains(&8))
        .count();
    assert!(half_hits > 0 && half_hits < full, "{half_hits} vs {full}");
    // indep (erasure) keeps positions; an out OSD is replaced, not shifted.
    let p = PgPlacement {
        size: 5,
        ..pool(ec)
    };
    for seed in 0..PG_NUM {
        let set = p.pg_to_raw_osds(&map, seed, &w);
        assert_eq!(set.len(), 5);
        assert!(
            set.iter()
                .all(|o| !out.contains(o) && *o != CRUSH_ITEM_NONE)
        );
    }
}

#[test]
fn builder_round_trips_through_crushmap() {
    let mut b = rack_map();
    b.add_replicated_rule("ssd", "default", "host", Some("ssd"))
        .unwrap();
    let map = b.build();
    // The monitor keeps a CrushMap and edits it later.
    let mut again = CrushBuilder::from(map.clone());
    assert_eq!(again.map(), &map);
    again
        .add_osd(100, WEIGHT_ONE, Some("ssd"), &[("host", "r0h0")])
        .unwrap();
    again.set_weight(100, 2 * WEIGHT_ONE).unwrap();
    again.remove_osd(100).unwrap();
    // Net effect: nothing but the freed name; shadow ids are stable.
    assert_eq!(again.map(), &map);
    // Errors leave the map untouched.
    let before = again.map().clone();
    assert!(
        again
            .add_osd(0, WEIGHT_ONE, None, &[("host", "r0h0")])
            .is_err()
    );
    assert!(
        again
            .add_osd(200, WEIGHT_ONE, None, &[("nosuchtype", "x")])
            .is_err()
    );
    assert!(
        again
            .add_osd(201, WEIGHT_ONE, None, &[("rack", "r0h0")])
            .is_err()
    );
    assert!(again.set_weight(999, WEIGHT_ONE).is_err());
    assert!(
        again
            .add_replicated_rule("ssd", "default", "host", None)
            .is_err()
    );
    assert!(
        again
            .add_replicated_rule("x", "default", "host", Some("nvme"))
            .is_err()
    );
    assert_eq!(again.map(), &before);
}
