//! The monitors' pure state machine: every command's effect on the map, its
//! refusals (which must leave the map untouched), and determinism (the same
//! log applied twice gives byte-identical maps, as every monitor and every
//! replay must).

use meridian_mon::state::{self, CommandError, MonState, proposal};
use meridian_proto::mon::mon_command::Cmd;
use meridian_proto::mon::{
    Bootstrap, ClusterMap, CrushRuleCreate, MapHistoryTrim, MonImage, MonInfo, OsdAlive,
    OsdBootRequest, OsdCrushReweight, OsdLost, OsdMarkDown, OsdMarkOut, OsdPurge, OsdSetFlag,
    OsdSetIn, PoolCreate, PoolRemove, PoolSet,
};
use prost::Message as _;

const FSID: &str = "6f1c1c52-0000-4000-8000-000000000001";

fn apply(st: &mut MonState, now_ms: u64, cmd: Cmd) -> Result<String, CommandError> {
    st.apply(&proposal(1, 1, now_ms, cmd))
}

fn bootstrap(fd: &str) -> Cmd {
    Cmd::Bootstrap(Bootstrap {
        fsid: FSID.into(),
        mons: vec![MonInfo {
            id: 1,
            addr: "127.0.0.1:6789".into(),
        }],
        default_failure_domain: fd.into(),
    })
}

fn boot(id: u32, host: &str, nonce: u64) -> Cmd {
    Cmd::OsdBoot(OsdBootRequest {
        osd_id: id,
        addr: format!("127.0.0.1:{}", 6800 + id),
        fsid: FSID.into(),
        weight: 0x10000,
        device_class: if id.is_multiple_of(2) { "ssd" } else { "hdd" }.into(),
        host: host.into(),
        rack: String::new(),
        datacenter: String::new(),
        boot_nonce: nonce,
        empty_store: false,
    })
}

fn pool(name: &str, pg_num: u32, size: u32, min_size: u32, rule: &str) -> Cmd {
    Cmd::PoolCreate(PoolCreate {
        name: name.into(),
        pg_num,
        size,
        min_size,
        crush_rule: rule.into(),
        application: String::new(),
    })
}

/// A bootstrapped cluster with 6 OSDs on 3 hosts (two per host).
fn cluster() -> MonState {
    let mut st = MonState::default();
    apply(&mut st, 1_000, bootstrap("host")).expect("bootstrap");
    for id in 0..6 {
        apply(
            &mut st,
            2_000,
            boot(id, &format!("h{}", id / 2), 100 + id as u64),
        )
        .expect("boot");
    }
    st
}

fn encoded(m: &ClusterMap) -> Vec<u8> {
    m.encode_to_vec()
}

/// Applies a command that must be refused and checks the map did not move.
fn refused(st: &mut MonState, cmd: Cmd) -> CommandError {
    let before = encoded(&st.map);
    let e = apply(st, 9_000, cmd).expect_err("command should be refused");
    assert_eq!(
        encoded(&st.map),
        before,
        "a refused command changed the map"
    );
    assert!(!e.to_string().is_empty());
    e
}

fn crush(st: &MonState) -> meridian_crush::CrushMap {
    meridian_crush::binary::decode(&st.map.crush).expect("map's CRUSH decodes")
}

#[test]
fn nothing_applies_before_bootstrap_and_bootstrap_is_once() {
    let mut st = MonState::default();
    let e = refused(&mut st, pool("p", 8, 3, 0, ""));
    assert!(e.to_string().contains("not bootstrapped"), "{e}");
    apply(&mut st, 1, bootstrap("")).unwrap();
    assert_eq!(st.map.epoch, 1);
    assert_eq!(st.map.fsid, FSID);
    let c = crush(&st);
    let rule = c.rule_by_name("replicated_rule").expect("default rule");
    assert_eq!(rule.id, 0);
    // A second bootstrap (a new leader proposing it again) is a no-op.
    let before = encoded(&st.map);
    let msg = apply(
        &mut st,
        2,
        Cmd::Bootstrap(Bootstrap {
            fsid: "other".into(),
            ..Default::default()
        }),
    )
    .unwrap();
    assert!(msg.contains("already"), "{msg}");
    assert_eq!(encoded(&st.map), before);
    // An empty proposal is refused.
    let e = st
        .apply(&meridian_proto::mon::MonProposal::default())
        .unwrap_err();
    assert!(matches!(e, CommandError::Invalid(_)));
}

#[test]
fn osd_boot_places_the_osd_and_bumps_the_epoch() {
    let st = cluster();
    assert_eq!(st.map.epoch, 1 + 6);
    assert_eq!(st.map.osds.len(), 6);
    for (i, o) in st.map.osds.iter().enumerate() {
        assert_eq!(o.id, i as u32, "osds are kept sorted by id");
        assert!(o.up && o.r#in);
        assert_eq!(o.reweight, 0x10000);
        assert_eq!(
            o.up_from,
            2 + i as u64,
            "up_from is the epoch that booted it"
        );
    }
    let c = crush(&st);
    for id in 0..6 {
        let host = c.parent_of(id).expect("osd has a parent bucket");
        assert_eq!(
            c.item_name(host),
            Some(format!("h{}", id / 2).as_str()),
            "osd.{id} placed under its host"
        );
        assert_eq!(
            c.device(id).and_then(|d| d.class.clone()).as_deref(),
            Some(if id % 2 == 0 { "ssd" } else { "hdd" })
        );
    }
}

#[test]
fn boot_from_another_cluster_is_refused() {
    let mut st = cluster();
    let e = refused(
        &mut st,
        Cmd::OsdBoot(OsdBootRequest {
            osd_id: 9,
            fsid: "someone-else".into(),
            ..Default::default()
        }),
    );
    assert!(e.to_string().contains("belongs to cluster"), "{e}");
}

#[test]
fn a_resent_boot_does_not_publish_a_new_epoch() {
    let mut st = cluster();
    let before = encoded(&st.map);
    let msg = apply(&mut st, 3_000, boot(3, "h1", 103)).unwrap();
    assert!(msg.contains("already up"), "{msg}");
    assert_eq!(encoded(&st.map), before);
    // A restarted process (new nonce) is a real boot.
    apply(&mut st, 3_000, boot(3, "h1", 999)).unwrap();
    assert_eq!(st.map.epoch, 8);
    assert_eq!(st.map.osds[3].boot_nonce, 999);
    assert_eq!(st.map.osds[3].up_from, 8);
}

#[test]
fn mark_down_then_out_then_boot_again() {
    let mut st = cluster();
    // A mark-down aimed at an older instance (stale nonce) is ignored.
    let before = encoded(&st.map);
    apply(
        &mut st,
        5_000,
        Cmd::OsdMarkDown(OsdMarkDown {
            osd_id: 2,
            boot_nonce: 1,
            reason: "stale".into(),
        }),
    )
    .unwrap();
    assert_eq!(encoded(&st.map), before);
    // Marking out an up OSD is refused quietly (the failure detector only outs down OSDs).
    apply(&mut st, 5_000, Cmd::OsdMarkOut(OsdMarkOut { osd_id: 2 })).unwrap();
    assert_eq!(encoded(&st.map), before);

    apply(
        &mut st,
        5_000,
        Cmd::OsdMarkDown(OsdMarkDown {
            osd_id: 2,
            boot_nonce: 102,
            reason: "grace".into(),
        }),
    )
    .unwrap();
    let o = &st.map.osds[2];
    assert!(!o.up && o.r#in);
    assert_eq!(o.down_at, st.map.epoch);
    assert_eq!(
        o.down_since_unix, 5,
        "the proposal's clock, not the applier's"
    );
    apply(&mut st, 6_000, Cmd::OsdMarkOut(OsdMarkOut { osd_id: 2 })).unwrap();
    let o = &st.map.osds[2];
    assert!(!o.r#in);
    assert_eq!(o.reweight, 0);
    // Booting again brings it back up and in (it was not an admin out).
    apply(&mut st, 7_000, boot(2, "h1", 555)).unwrap();
    let o = &st.map.osds[2];
    assert!(o.up && o.r#in);
    assert_eq!(o.reweight, 0x10000);
    assert_eq!(o.down_since_unix, 0);
    // Unknown OSD.
    let e = refused(
        &mut st,
        Cmd::OsdMarkDown(OsdMarkDown {
            osd_id: 77,
            boot_nonce: 0,
            reason: String::new(),
        }),
    );
    assert!(matches!(e, CommandError::NotFound(_)));
}

#[test]
fn admin_out_survives_a_reboot_until_marked_in() {
    let mut st = cluster();
    let out = |v| Cmd::OsdSetIn(OsdSetIn { osd_id: 4, r#in: v });
    apply(&mut st, 1, out(false)).unwrap();
    assert!(!st.map.osds[4].r#in && st.map.osds[4].admin_out);
    let e1 = st.map.epoch;
    let msg = apply(&mut st, 1, out(false)).unwrap();
    assert!(msg.contains("already out"), "{msg}");
    assert_eq!(st.map.epoch, e1);
    apply(&mut st, 1, boot(4, "h2", 4444)).unwrap();
    assert!(
        !st.map.osds[4].r#in,
        "an operator's `osd out` must survive the OSD restarting"
    );
    apply(&mut st, 1, out(true)).unwrap();
    assert!(st.map.osds[4].r#in && !st.map.osds[4].admin_out);
    assert_eq!(st.map.osds[4].reweight, 0x10000);
}

#[test]
fn pool_create_validates_and_defaults_min_size() {
    let mut st = cluster();
    let e0 = st.map.epoch;
    apply(&mut st, 1, pool("rbd", 32, 3, 0, "")).unwrap();
    let p = &st.map.pools[0];
    assert_eq!(
        (p.id, p.pg_num, p.pgp_num, p.size, p.min_size),
        (1, 32, 32, 3, 2)
    );
    assert_eq!(p.crush_rule, 0);
    assert_eq!(p.created_epoch, e0 + 1);
    assert_eq!(st.map.epoch, e0 + 1);
    apply(&mut st, 1, pool("two", 8, 2, 0, "")).unwrap();
    assert_eq!(st.map.pools[1].min_size, 1);
    assert_eq!(st.map.pools[1].id, 2, "pool ids are never reused");

    assert!(matches!(
        refused(&mut st, pool("rbd", 8, 3, 0, "")),
        CommandError::Exists(_)
    ));
    for bad in [
        pool("z", 0, 3, 0, ""),
        pool("z", 65_537, 3, 0, ""),
        pool("z", 8, 0, 0, ""),
        pool("z", 8, 11, 0, ""),
        pool("z", 8, 3, 4, ""),
        pool("", 8, 3, 0, ""),
        pool("a/b", 8, 3, 0, ""),
    ] {
        assert!(matches!(refused(&mut st, bad), CommandError::Invalid(_)));
    }
    let e = refused(&mut st, pool("z", 8, 3, 0, "no-such-rule"));
    assert!(matches!(e, CommandError::NotFound(_)), "{e}");
    // Removing a pool leaves the id counter where it was.
    apply(
        &mut st,
        1,
        Cmd::PoolRemove(PoolRemove {
            name: "two".into(),
            confirm: "two".into(),
        }),
    )
    .unwrap();
    apply(&mut st, 1, pool("three", 8, 3, 0, "")).unwrap();
    assert_eq!(st.map.pools.last().unwrap().id, 3);
}

#[test]
fn pool_remove_needs_the_name_twice() {
    let mut st = cluster();
    apply(&mut st, 1, pool("keep", 8, 3, 0, "")).unwrap();
    let e = refused(
        &mut st,
        Cmd::PoolRemove(PoolRemove {
            name: "keep".into(),
            confirm: String::new(),
        }),
    );
    assert!(e.to_string().contains("repeat the pool name"), "{e}");
    let e = refused(
        &mut st,
        Cmd::PoolRemove(PoolRemove {
            name: "nope".into(),
            confirm: "nope".into(),
        }),
    );
    assert!(matches!(e, CommandError::NotFound(_)));
}

#[test]
fn pool_set_keeps_size_and_min_size_consistent() {
    let mut st = cluster();
    apply(&mut st, 1, pool("p", 8, 3, 0, "")).unwrap();
    let set = |k: &str, v: &str| {
        Cmd::PoolSet(PoolSet {
            name: "p".into(),
            key: k.into(),
            value: v.into(),
        })
    };
    apply(&mut st, 1, set("size", "1")).unwrap();
    assert_eq!((st.map.pools[0].size, st.map.pools[0].min_size), (1, 1));
    apply(&mut st, 1, set("size", "3")).unwrap();
    apply(&mut st, 1, set("min_size", "2")).unwrap();
    assert_eq!((st.map.pools[0].size, st.map.pools[0].min_size), (3, 2));
    apply(&mut st, 1, set("application", "rgw")).unwrap();
    assert_eq!(st.map.pools[0].application, "rgw");
    for bad in [
        set("size", "0"),
        set("size", "x"),
        set("min_size", "4"),
        set("pg_num", "16"),
        set("colour", "blue"),
        set("crush_rule", "missing"),
        set("compression_algorithm", "snappy"),
        set("compression_mode", "sometimes"),
        set("compression_required_ratio", "2"),
    ] {
        refused(&mut st, bad);
    }
    // Compression settings land in the pool's options, normalised, where
    // every gateway's map shows them.
    apply(&mut st, 1, set("compression_algorithm", "ZSTD")).unwrap();
    apply(&mut st, 1, set("compression_mode", "aggressive")).unwrap();
    let opts = &st.map.pools[0].options;
    assert_eq!(
        opts.get("compression_algorithm").map(String::as_str),
        Some("zstd")
    );
    assert_eq!(
        opts.get("compression_mode").map(String::as_str),
        Some("aggressive")
    );
    assert!(!opts.contains_key("compression_required_ratio"));
}

#[test]
fn rules_with_device_classes_and_reweight() {
    let mut st = cluster();
    let rule = |name: &str, fd: &str, class: &str| {
        Cmd::CrushRuleCreate(CrushRuleCreate {
            name: name.into(),
            root: "default".into(),
            failure_domain: fd.into(),
            device_class: class.into(),
        })
    };
    apply(&mut st, 1, rule("fast", "host", "ssd")).unwrap();
    assert!(matches!(
        refused(&mut st, rule("fast", "host", "")),
        CommandError::Exists(_)
    ));
    refused(&mut st, rule("bad-domain", "galaxy", ""));
    let mut bad_root = rule("x", "host", "");
    if let Cmd::CrushRuleCreate(r) = &mut bad_root {
        r.root = "nowhere".into();
    }
    refused(&mut st, bad_root);
    apply(&mut st, 1, pool("ssd", 64, 3, 0, "fast")).unwrap();
    // Every PG of the class-restricted pool maps to ssd OSDs only, one per host.
    let c = crush(&st);
    let p = &st.map.pools[0];
    let weights: Vec<u32> = st.map.osds.iter().map(|o| o.reweight).collect();
    for seed in 0..p.pg_num {
        let pps = meridian_crush::raw_pg_to_pps(p.id, seed, p.pgp_num, true);
        let osds = c.do_rule(p.crush_rule, pps, p.size as usize, &weights);
        assert_eq!(osds.len(), 3, "pg {seed}: {osds:?}");
        for o in &osds {
            assert_eq!(o % 2, 0, "pg {seed} placed on hdd osd.{o}");
        }
    }
    // Reweight changes both the OSD record and the CRUSH item weight.
    apply(
        &mut st,
        1,
        Cmd::OsdCrushReweight(OsdCrushReweight {
            osd_id: 1,
            weight: 0x8000,
        }),
    )
    .unwrap();
    assert_eq!(st.map.osds[1].weight, 0x8000);
    let c = crush(&st);
    let host = c.parent_of(1).unwrap();
    assert_eq!(
        c.bucket(host)
            .unwrap()
            .items
            .iter()
            .find(|(i, _)| *i == 1)
            .map(|(_, w)| *w),
        Some(0x8000)
    );
}

#[test]
fn the_same_log_gives_the_same_map() {
    let log: Vec<(u64, Cmd)> = {
        let mut v = vec![(1, bootstrap("host"))];
        for id in 0..5 {
            v.push((2, boot(id, &format!("h{id}"), id as u64 + 1)));
        }
        v.push((3, pool("a", 16, 3, 0, "")));
        v.push((4, pool("a", 16, 3, 0, ""))); // refused: still occupies a slot
        v.push((
            5,
            Cmd::OsdMarkDown(OsdMarkDown {
                osd_id: 1,
                boot_nonce: 2,
                reason: "r".into(),
            }),
        ));
        v.push((6_000_000, Cmd::OsdMarkOut(OsdMarkOut { osd_id: 1 })));
        v.push((7, boot(1, "h1", 77)));
        v
    };
    let run = || {
        let mut st = MonState::default();
        let results: Vec<bool> = log
            .iter()
            .map(|(t, c)| apply(&mut st, *t, c.clone()).is_ok())
            .collect();
        (encoded(&st.map), results, st.image().encode_to_vec())
    };
    let (a, ra, image) = run();
    let (b, rb, image_b) = run();
    assert_eq!(a, b);
    assert_eq!(ra, rb);
    assert_eq!(image, image_b, "the history is deterministic too");
    assert_eq!(ra.iter().filter(|ok| !**ok).count(), 1);
    // And a state restored from a snapshot image continues identically.
    let restore = || MonState::from_image(MonImage::decode(image.as_slice()).unwrap());
    let (mut st, mut st2) = (restore(), restore());
    assert_eq!(encoded(&st.map), a);
    apply(&mut st, 9, pool("b", 8, 2, 0, "")).unwrap();
    apply(&mut st2, 9, pool("b", 8, 2, 0, "")).unwrap();
    assert_eq!(encoded(&st.map), encoded(&st2.map));
    assert_eq!(st.image().encode_to_vec(), st2.image().encode_to_vec());
}

#[test]
fn osd_ids_are_bounded() {
    let mut st = cluster();
    let e = refused(&mut st, boot(state::MAX_OSD_ID, "h9", 1));
    assert!(e.to_string().contains("out of range"), "{e}");
    let e = refused(&mut st, boot(4_000_000, "h9", 1));
    assert!(matches!(e, CommandError::Invalid(_)), "{e}");
}

#[test]
fn up_thru_is_raised_once_and_only_for_the_running_instance() {
    let mut st = cluster();
    let e0 = st.map.epoch;
    let alive = |nonce: u64, want: u64| {
        Cmd::OsdAlive(OsdAlive {
            osd_id: 2,
            boot_nonce: nonce,
            want_up_thru: want,
        })
    };
    apply(&mut st, 3_000, alive(102, e0)).unwrap();
    assert_eq!(st.map.epoch, e0 + 1);
    assert_eq!(st.map.osds[2].up_thru, e0);
    // A resend, or an older interval, changes nothing.
    let before = encoded(&st.map);
    apply(&mut st, 3_000, alive(102, e0)).unwrap();
    apply(&mut st, 3_000, alive(102, e0 - 1)).unwrap();
    assert_eq!(encoded(&st.map), before);
    // An interval cannot start in the future; another instance is refused.
    apply(&mut st, 3_000, alive(102, e0 + 100)).unwrap();
    assert_eq!(st.map.osds[2].up_thru, e0 + 1);
    refused(&mut st, alive(999, e0 + 5));
    apply(
        &mut st,
        3_000,
        Cmd::OsdMarkDown(OsdMarkDown {
            osd_id: 2,
            boot_nonce: 0,
            reason: "t".into(),
        }),
    )
    .unwrap();
    let now = st.map.epoch;
    refused(&mut st, alive(102, now));
}

#[test]
fn only_a_down_osd_can_be_declared_lost() {
    let mut st = cluster();
    let e = refused(&mut st, Cmd::OsdLost(OsdLost { osd_id: 1 }));
    assert!(e.to_string().contains("is up"), "{e}");
    refused(&mut st, Cmd::OsdLost(OsdLost { osd_id: 77 }));
    apply(
        &mut st,
        3_000,
        Cmd::OsdMarkDown(OsdMarkDown {
            osd_id: 1,
            boot_nonce: 0,
            reason: "disk died".into(),
        }),
    )
    .unwrap();
    assert_eq!(st.map.osds[1].down_reason, "disk died");
    apply(&mut st, 4_000, Cmd::OsdLost(OsdLost { osd_id: 1 })).unwrap();
    assert_eq!(st.map.osds[1].lost_at, st.map.epoch);
}

#[test]
fn noout_is_the_only_flag_and_setting_it_twice_changes_nothing() {
    let mut st = cluster();
    let flag = |f: &str, set| {
        Cmd::OsdSetFlag(OsdSetFlag {
            flag: f.into(),
            set,
        })
    };
    let e = refused(&mut st, flag("nosuch", true));
    assert!(e.to_string().contains("known flags are noout"), "{e}");
    apply(&mut st, 3_000, flag("noout", true)).unwrap();
    assert_eq!(st.map.flags, vec!["noout".to_string()]);
    let epoch = st.map.epoch;
    apply(&mut st, 3_000, flag("noout", true)).unwrap();
    assert_eq!(st.map.epoch, epoch, "a repeated set publishes nothing");
    apply(&mut st, 3_000, flag("noout", false)).unwrap();
    assert!(st.map.flags.is_empty());
}

#[test]
fn only_a_down_osd_is_purged_and_it_leaves_map_crush_and_auth() {
    let mut st = cluster();
    let key = Cmd::AuthAdd(meridian_proto::mon::AuthAdd {
        entity: Some(meridian_proto::mon::AuthEntity {
            name: "osd.1".into(),
            key: meridian_auth::generate_key(),
            caps: [("mon".to_string(), "allow profile osd".to_string())].into(),
        }),
        get_or_create: true,
        if_absent: false,
    });
    apply(&mut st, 2_500, key).unwrap();
    assert!(st.auth.entities.contains_key("osd.1"));
    let e = refused(&mut st, Cmd::OsdPurge(OsdPurge { osd_id: 1 }));
    assert!(e.to_string().contains("is up"), "{e}");
    apply(
        &mut st,
        3_000,
        Cmd::OsdMarkDown(OsdMarkDown {
            osd_id: 1,
            boot_nonce: 0,
            reason: "retired".into(),
        }),
    )
    .unwrap();
    apply(&mut st, 4_000, Cmd::OsdPurge(OsdPurge { osd_id: 1 })).unwrap();
    assert!(st.map.osds.iter().all(|o| o.id != 1));
    let crush = meridian_crush::binary::decode(&st.map.crush).unwrap();
    assert!(crush.device(1).is_none(), "osd.1 is still in CRUSH");
    assert!(crush.device(0).is_some());
    assert!(!st.auth.entities.contains_key("osd.1"));
    // Purging what is gone already is not an error (the playbook may rerun).
    let epoch = st.map.epoch;
    apply(&mut st, 4_000, Cmd::OsdPurge(OsdPurge { osd_id: 1 })).unwrap();
    assert_eq!(st.map.epoch, epoch);
}

#[test]
fn placement_history_records_changes_and_trims_to_a_floor() {
    let mut st = cluster();
    apply(&mut st, 3_000, pool("p", 8, 3, 2, "")).unwrap();
    let created = st.map.epoch;
    assert!(st.history.contains_key(&created));
    // A multisite-only change bumps the epoch but not the placement history.
    let n = st.history.len();
    apply(
        &mut st,
        3_000,
        Cmd::Multisite(meridian_proto::multisite::MultisiteCommand {
            cmd: Some(
                meridian_proto::multisite::multisite_command::Cmd::RealmCreate(
                    meridian_proto::multisite::RealmCreate {
                        name: "r".into(),
                        id: "rid".into(),
                        period_id: "pid".into(),
                        default: true,
                    },
                ),
            ),
        }),
    )
    .unwrap();
    assert_eq!(st.history.len(), n);
    for i in 0..(state::MIN_HISTORY_EPOCHS + 20) {
        let id = (i % 6) as u32;
        apply(
            &mut st,
            5_000,
            Cmd::OsdMarkDown(OsdMarkDown {
                osd_id: id,
                boot_nonce: 0,
                reason: "t".into(),
            }),
        )
        .unwrap();
        apply(&mut st, 5_000, boot(id, &format!("h{}", id / 2), 200 + i)).unwrap();
    }
    let (page, more) = state::history_page(&st.history, created, created + 10, 1000);
    assert!(
        page[0].epoch < created,
        "the map in force before the range comes first"
    );
    assert_eq!(page[1].epoch, created);
    assert!(!more);
    assert!(page.iter().all(|m| m.multisite.is_none()));
    // Trimming keeps the newest MIN_HISTORY_EPOCHS and the map in force at the cut.
    let newest = st.map.epoch;
    apply(
        &mut st,
        6_000,
        Cmd::MapHistoryTrim(MapHistoryTrim { before: newest }),
    )
    .unwrap();
    let first = st.history_first();
    assert!(first <= newest - state::MIN_HISTORY_EPOCHS, "{first}");
    assert!(first > created);
    let (page, _) = state::history_page(&st.history, first + 1, first + 3, 1000);
    assert_eq!(page[0].epoch, first, "the base map at the cut is kept");
}

#[test]
fn a_snapshot_of_the_previous_format_still_loads() {
    let mut st = cluster();
    apply(&mut st, 3_000, pool("p", 8, 3, 2, "")).unwrap();
    // Before the history existed, a snapshot was the bare cluster map.
    let old = encoded(&st.map);
    let restored = MonState::decode_image(&old).expect("old snapshot");
    assert_eq!(encoded(&restored.map), old);
    assert_eq!(restored.history_first(), st.map.epoch);
    // And the current format round-trips with its history.
    let now = st.image().encode_to_vec();
    let back = MonState::decode_image(&now).expect("new snapshot");
    assert_eq!(back.history.len(), st.history.len());
    assert_eq!(back.image().encode_to_vec(), now);
}

#[test]
fn an_empty_store_records_when_it_was_born() {
    let mut st = cluster();
    assert_eq!(
        st.map.osds[3].store_born, 0,
        "booted with data: unknown age"
    );
    apply(
        &mut st,
        3_000,
        Cmd::OsdMarkDown(OsdMarkDown {
            osd_id: 3,
            boot_nonce: 0,
            reason: "disk replaced".into(),
        }),
    )
    .unwrap();
    let mut b = boot(3, "h1", 900);
    if let Cmd::OsdBoot(r) = &mut b {
        r.empty_store = true;
    }
    apply(&mut st, 4_000, b).unwrap();
    assert_eq!(st.map.osds[3].store_born, st.map.epoch);
    // A later boot with data keeps the birth epoch.
    let born = st.map.epoch;
    apply(
        &mut st,
        5_000,
        Cmd::OsdMarkDown(OsdMarkDown {
            osd_id: 3,
            boot_nonce: 0,
            reason: "restart".into(),
        }),
    )
    .unwrap();
    apply(&mut st, 6_000, boot(3, "h1", 901)).unwrap();
    assert_eq!(st.map.osds[3].store_born, born);
}
