//! Bit-for-bit comparison with Ceph's own tools.
//!
//! Every vector under `testdata/golden/` was recorded by
//! `testdata/regen.sh` with Debian's `crushtool` / `osdmaptool`
//! (Ceph 16.2.15); these tests need no Ceph binaries.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use meridian_crush::binary;
use meridian_crush::text::{self, parse_weight};
use meridian_crush::{CrushBuilder, CrushMap, PgPlacement, object_to_pg};

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata")
}

fn read(rel: &str) -> String {
    let p = testdata().join(rel);
    fs::read_to_string(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
}

const MAPS: [&str; 7] = [
    "flat",
    "racks",
    "weighted",
    "classes",
    "legacy",
    "big",
    "builder_start",
];

/// Parse `[1,2,3]` as printed by crushtool/osdmaptool.
fn parse_vec(s: &str) -> Vec<i32> {
    let inner = s.trim().trim_start_matches('[').trim_end_matches(']');
    if inner.trim().is_empty() {
        return Vec::new();
    }
    inner
        .split(',')
        .map(|v| v.trim().parse::<i32>().expect("osd id"))
        .collect()
}

/// crushtool's device weights: 1.0 for every device placed in a bucket,
/// 0 for ids without one, then `--weight` overrides clamped to [0, 1].
fn tester_weights(map: &CrushMap, overrides: &[(usize, u32)]) -> Vec<u32> {
    let mut present = vec![false; map.max_devices() as usize];
    for b in map.buckets() {
        for &(item, _) in &b.items {
            if item >= 0 {
                present[item as usize] = true;
            }
        }
    }
    let mut w: Vec<u32> = present
        .iter()
        .map(|&p| if p { 0x10000 } else { 0 })
        .collect();
    for &(osd, v) in overrides {
        w[osd] = v.min(0x10000);
    }
    w
}

/// The map exactly as crushtool held it when recording: the source text
/// (its structure and ids are proven equal to crushtool's decompiled map
/// by `compiled_maps_decompile_like_crushtool`), or for "builder" the
/// replayed edits. The decompiled text itself only keeps three decimals
/// of each weight, so it is not used for mappings.
fn golden_map(name: &str) -> CrushMap {
    if name == "builder" {
        return replay_builder_ops(|_, _| {}).build();
    }
    text::parse(&read(&format!("maps/{name}.txt"))).expect("parse source map")
}

/// Same tree, ids, names, rules and classes; weights equal to within the
/// three decimals crushtool prints.
fn assert_same_up_to_printed_weights(a: &CrushMap, b: &CrushMap, what: &str) {
    assert_eq!(a.tunables, b.tunables, "{what}: tunables");
    assert!(a.devices().eq(b.devices()), "{what}: devices");
    assert!(a.types().eq(b.types()), "{what}: types");
    assert!(a.rules().eq(b.rules()), "{what}: rules");
    assert!(a.classes().eq(b.classes()), "{what}: classes");
    let (ba, bb): (Vec<_>, Vec<_>) = (a.buckets().collect(), b.buckets().collect());
    assert_eq!(ba.len(), bb.len(), "{what}: bucket count");
    for (x, y) in ba.iter().zip(&bb) {
        assert_eq!(
            (x.id, &x.name, x.type_id, &x.class),
            (y.id, &y.name, y.type_id, &y.class)
        );
        assert_eq!(x.items.len(), y.items.len(), "{what}: {} size", x.name);
        for (&(i, wi), &(j, wj)) in x.items.iter().zip(&y.items) {
            assert_eq!(i, j, "{what}: {} items", x.name);
            assert!(wi.abs_diff(wj) <= 34, "{what}: {} weight of {i}", x.name);
        }
    }
}

#[test]
fn compiled_maps_decompile_like_crushtool() {
    for name in MAPS {
        let src = read(&format!("maps/{name}.txt"));
        let expected = read(&format!("golden/{name}.decompiled.txt"));
        let from_src = text::parse(&src).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            text::format(&from_src),
            expected,
            "{name}: format(parse(source)) differs from crushtool -c | crushtool -d"
        );
        let from_decompiled = text::parse(&expected).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            text::format(&from_decompiled),
            read(&format!("golden/{name}.recompiled.txt")),
            "{name}: format(parse(decompiled)) differs from crushtool's recompile"
        );
        assert_same_up_to_printed_weights(&from_src, &from_decompiled, name);
    }
}

fn read_bytes(rel: &str) -> Vec<u8> {
    let p = testdata().join(rel);
    fs::read(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
}

#[test]
fn binary_encoding_matches_crushtool_bytes() {
    for name in MAPS.iter().copied().chain(["builder"]) {
        let bin = read_bytes(&format!("golden/{name}.bin"));
        let map = golden_map(name);
        assert!(
            binary::encode(&map) == bin,
            "{name}: encode differs from crushtool -c"
        );
        // Binary is lossless: decoding gives back the very same map.
        let decoded = binary::decode(&bin).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(decoded, map, "{name}: decode");
        assert!(binary::encode(&decoded) == bin, "{name}: re-encode");
    }
}

#[test]
fn crushtool_mappings_match() {
    let mut files: Vec<PathBuf> = fs::read_dir(testdata().join("golden"))
        .expect("golden dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "mappings"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 40,
        "expected the full golden set, got {}",
        files.len()
    );
    let mut maps: BTreeMap<String, CrushMap> = BTreeMap::new();
    let mut checked = 0usize;
    for path in files {
        let fname = path.file_name().unwrap().to_string_lossy().to_string();
        // <map>.r<R>.n<N>[.<tag>].mappings
        let parts: Vec<&str> = fname.split('.').collect();
        let map_name = parts[0].to_string();
        let rule: u32 = parts[1][1..].parse().expect("rule");
        let nrep: usize = parts[2][1..].parse().expect("num rep");
        let map = maps
            .entry(map_name.clone())
            .or_insert_with(|| golden_map(&map_name));
        let body = fs::read_to_string(&path).expect("read mappings");
        let mut overrides = Vec::new();
        let mut lines = 0;
        for line in body.lines() {
            if let Some(pairs) = line.strip_prefix("# weights:") {
                for pair in pairs.split_whitespace() {
                    let (osd, w) = pair.split_once('=').expect("osd=weight");
                    overrides.push((osd.parse().expect("osd"), parse_weight(w).expect("weight")));
                }
                continue;
            }
            if line.starts_with('#') {
                continue;
            }
            // CRUSH rule R x X [a,b,c]
            let rest = line.strip_prefix("CRUSH rule ").expect("mapping line");
            let (r, rest) = rest.split_once(" x ").expect("x");
            let (x, set) = rest.split_once(' ').expect("set");
            assert_eq!(r.parse::<u32>().unwrap(), rule);
            let x: u32 = x.parse().expect("x value");
            let weights = tester_weights(map, &overrides);
            let got = map.do_rule(rule, x, nrep, &weights);
            assert_eq!(got, parse_vec(set), "{fname}: x={x}");
            lines += 1;
        }
        assert_eq!(lines, 1024, "{fname}: x range 0..=1023");
        checked += lines;
    }
    assert!(checked >= 40 * 1024);
}

/// `### step N: op` sections of builder.steps.txt.
fn builder_steps() -> Vec<(String, String)> {
    let all = read("golden/builder.steps.txt");
    let mut steps = Vec::new();
    let mut cur: Option<(String, String)> = None;
    for line in all.split_inclusive('\n') {
        if let Some(title) = line.strip_prefix("### step ") {
            if let Some(s) = cur.take() {
                steps.push(s);
            }
            cur = Some((title.trim().to_string(), String::new()));
        } else if let Some((_, body)) = cur.as_mut() {
            body.push_str(line);
        }
    }
    steps.extend(cur);
    steps
}

/// Replay builder_ops.txt on a fresh builder, calling `after(op, map)`
/// after every operation.
fn replay_builder_ops(mut after: impl FnMut(&str, &CrushMap)) -> CrushBuilder {
    let ops: Vec<String> = read("builder_ops.txt")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect();
    let mut b = CrushBuilder::new();
    for op in &ops {
        let f: Vec<&str> = op.split_whitespace().collect();
        match f[0] {
            "add" => {
                let id: i32 = f[1].parse().unwrap();
                let w = parse_weight(f[2]).unwrap();
                let class = (f[3] != "-").then_some(f[3]);
                let loc: Vec<(&str, &str)> = f[4]
                    .split(',')
                    .map(|kv| kv.split_once('=').unwrap())
                    .collect();
                b.add_osd(id, w, class, &loc).unwrap();
            }
            "rule" => {
                let class = (f[4] != "-").then_some(f[4]);
                b.add_replicated_rule(f[1], f[2], f[3], class).unwrap();
            }
            "reweight" => {
                b.set_weight(f[1].parse().unwrap(), parse_weight(f[2]).unwrap())
                    .unwrap();
            }
            "remove" => b.remove_osd(f[1].parse().unwrap()).unwrap(),
            other => panic!("unknown op {other}"),
        }
        after(op, b.map());
    }
    b
}

#[test]
fn builder_edits_match_crushtool_step_by_step() {
    let steps = builder_steps();
    assert_eq!(
        text::format(CrushBuilder::new().map()),
        steps[0].1,
        "start map"
    );
    assert_eq!(
        text::format(CrushBuilder::new().map()),
        read("golden/builder_start.decompiled.txt")
    );
    let mut n = 0;
    let b = replay_builder_ops(|op, map| {
        n += 1;
        let (title, expected) = &steps[n];
        assert!(
            title.ends_with(op.split_whitespace().last().unwrap()),
            "{title} vs {op}"
        );
        assert_eq!(&text::format(map), expected, "after step {title}");
    });
    assert_eq!(n + 1, steps.len());
    // The builder's map and the parsed crushtool map are the same map.
    let parsed = text::parse(&steps.last().unwrap().1).unwrap();
    assert_same_up_to_printed_weights(&parsed, b.map(), "builder");
}

struct OsdmapGolden {
    crushmap: String,
    pg_num: u32,
    pgp_num: u32,
    hashpspool: bool,
    lines: Vec<String>,
}

fn read_osdmap_golden(rel: &str) -> OsdmapGolden {
    let body = read(rel);
    let mut g = OsdmapGolden {
        crushmap: String::new(),
        pg_num: 0,
        pgp_num: 0,
        hashpspool: false,
        lines: Vec::new(),
    };
    for line in body.lines() {
        if let Some(pool) = line.strip_prefix("# pool: ") {
            let words: Vec<&str> = pool.split_whitespace().collect();
            let after = |key: &str| -> u32 {
                let i = words.iter().position(|w| *w == key).expect(key);
                words[i + 1].parse().expect("number")
            };
            g.pg_num = after("pg_num");
            g.pgp_num = after("pgp_num");
            g.hashpspool = pool.contains("flags hashpspool");
            assert!(pool.contains("size 3 ") && pool.contains("crush_rule 0 "));
        } else if let Some(m) = line.strip_prefix("# crushmap: ") {
            g.crushmap = m.trim().to_string();
        } else if !line.starts_with('#') && !line.trim().is_empty() {
            g.lines.push(line.to_string());
        }
    }
    g
}

fn placement(g: &OsdmapGolden) -> PgPlacement {
    PgPlacement {
        pool_id: 1,
        pg_num: g.pg_num,
        pgp_num: g.pgp_num,
        hashpspool: g.hashpspool,
        crush_rule: 0,
        size: 3,
    }
}

#[test]
fn osdmaptool_objects_match() {
    for name in ["hashpspool", "legacy", "classes"] {
        let g = read_osdmap_golden(&format!("golden/osdmap-{name}.objects"));
        let map = golden_map(&g.crushmap);
        let weights = vec![0x10000u32; map.max_devices() as usize];
        let pool = placement(&g);
        assert!(g.lines.len() >= 30, "{name}: object count");
        for line in &g.lines {
            // object 'NAME' -> 1.PS -> [a,b,c]
            let rest = line.trim().strip_prefix("object '").expect("object line");
            let (obj, rest) = rest.split_once("' -> 1.").expect("pg");
            let (ps, set) = rest.split_once(" -> ").expect("set");
            let ps = u32::from_str_radix(ps, 16).expect("hex ps");
            assert_eq!(object_to_pg(1, g.pg_num, obj), ps, "{name}: pg of {obj}");
            assert_eq!(pool.object_to_pg(obj), ps);
            assert_eq!(
                pool.pg_to_raw_osds(&map, ps, &weights),
                parse_vec(set),
                "{name}: osds of {obj}"
            );
        }
    }
}

#[test]
fn osdmaptool_pgs_match() {
    for name in ["hashpspool", "legacy", "classes"] {
        let g = read_osdmap_golden(&format!("golden/osdmap-{name}.pgs"));
        let map = golden_map(&g.crushmap);
        let weights = vec![0x10000u32; map.max_devices() as usize];
        let pool = placement(&g);
        assert_eq!(g.lines.len(), g.pg_num as usize, "{name}: every PG");
        for line in &g.lines {
            // 1.PS <tab> [up] <tab> primary
            let mut cols = line.split('\t');
            let pgid = cols.next().unwrap();
            let up = parse_vec(cols.next().unwrap());
            let primary: i32 = cols.next().unwrap().trim().parse().unwrap();
            let ps = u32::from_str_radix(pgid.strip_prefix("1.").unwrap(), 16).unwrap();
            let got = pool.pg_to_raw_osds(&map, ps, &weights);
            assert_eq!(got, up, "{name}: pg {pgid}");
            assert_eq!(got.first().copied().unwrap_or(-1), primary);
        }
    }
}
