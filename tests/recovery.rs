//! Recovery paths the first cluster test does not reach: backfill of an OSD
//! that was away longer than the PG log remembers, and data moving off and
//! back onto an OSD with `osd out` / `osd in` (strays removed). Runs on the
//! pread engine so the fallback path carries a real cluster too.

mod common;

use bytes::Bytes;
use common::TestCluster;
use meridian_client::{ClientError, Cluster};
use meridian_proto::mon::PoolCreate;
use meridian_proto::mon::mon_command::Cmd;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const POOL: &str = "r";
/// PG log length for this cluster: tiny, so a short absence needs backfill.
const LOG_LEN: usize = 16;

fn body(name: &str, generation: u32) -> Bytes {
    let seed = name.bytes().fold(generation as u64 + 1, |h, b| {
        h.wrapping_mul(1_099_511_628_211) ^ b as u64
    });
    let len = (seed % 40_000) as usize;
    Bytes::from(
        (0..len)
            .map(|i| (seed.wrapping_add(i as u64 * 31) >> 3) as u8)
            .collect::<Vec<u8>>(),
    )
}

/// What the pool must hold: object name → content (`None` = deleted).
type Model = BTreeMap<String, Option<Bytes>>;

async fn put(c: &Cluster, model: &mut Model, name: &str, generation: u32) {
    let data = body(name, generation);
    c.write_full(POOL, name, data.clone())
        .await
        .unwrap_or_else(|e| panic!("write {name}: {e}"));
    model.insert(name.to_string(), Some(data));
}

async fn verify(c: &Cluster, model: &Model) {
    for (name, want) in model {
        match (c.read(POOL, name).await, want) {
            (Ok(got), Some(w)) => assert!(got == *w, "{name}: wrong content"),
            (Err(ClientError::NotFound(_)), None) => {}
            (got, want) => panic!(
                "{name}: got {:?}, want {:?}",
                got.map(|b| b.len()),
                want.as_ref().map(|b| b.len())
            ),
        }
    }
    let mut listed = c.list(POOL).await.expect("list");
    listed.sort();
    let live: Vec<String> = model
        .iter()
        .filter(|(_, v)| v.is_some())
        .map(|(k, _)| k.clone())
        .collect();
    assert_eq!(listed, live, "listing differs from what was written");
}

/// Waits until every PG of the pool reports active+clean for `epoch` or later
/// with the acting set the map gives it.
async fn wait_clean(tc: &TestCluster, c: &Cluster, epoch: u64) {
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let st = c.status().await.expect("status");
        let view = c.map();
        let pool = view.pool_by_name(POOL).expect("pool").clone();
        let stats: BTreeMap<u32, _> = st
            .pg_stats
            .iter()
            .filter(|p| p.pool == pool.id)
            .map(|p| (p.seed, p))
            .collect();
        let clean = (0..pool.pg_num).all(|seed| {
            stats.get(&seed).is_some_and(|p| {
                p.state == "active+clean"
                    && p.map_epoch >= epoch
                    && p.acting == view.pg_acting(&pool, seed)
            })
        });
        if clean && view.epoch() >= epoch {
            return;
        }
        if Instant::now() > deadline {
            tc.dump_logs();
            panic!("pool not clean at epoch {epoch}: {:?}", st.pg_stats);
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// PGs of the test pool that `osd` holds on disk, by its own account.
async fn pgs_on(c: &Cluster, osd: u32) -> usize {
    let pool = c.map().pool_by_name(POOL).expect("pool").id;
    let st = c
        .osd_direct(osd)
        .expect("osd client")
        .status(meridian_proto::osd::OsdStatusRequest {})
        .await
        .expect("osd status")
        .into_inner();
    st.pgs
        .iter()
        .filter(|p| p.pg.as_ref().is_some_and(|r| r.pool == pool))
        .count()
}

/// What `osd` still holds of the pool, each PG as it and its primary see
/// it, and the OSD logs' lines about strays (a failure's diagnosis).
async fn stray_report(tc: &TestCluster, c: &Cluster, osd: u32) -> String {
    let pool = c.map().pool_by_name(POOL).expect("pool").id;
    let status = |o: u32| async move {
        c.osd_direct(o)
            .expect("osd client")
            .status(meridian_proto::osd::OsdStatusRequest {})
            .await
            .map(|r| r.into_inner())
    };
    let mut out = String::new();
    let Ok(st) = status(osd).await else {
        return "osd status failed".into();
    };
    for p in st
        .pgs
        .iter()
        .filter(|p| p.pg.as_ref().is_some_and(|r| r.pool == pool))
    {
        let seed = p.pg.as_ref().map(|r| r.seed).unwrap_or_default();
        out.push_str(&format!(
            "pg {pool}.{seed:x} on osd.{osd} (epoch {}): {} acting {:?}\n",
            st.map_epoch, p.state, p.acting
        ));
        if let Some(primary) = p.acting.first()
            && let Ok(ps) = status(*primary).await
        {
            for q in ps.pgs.iter().filter(|q| q.pg == p.pg) {
                out.push_str(&format!(
                    "  on its primary osd.{primary} (epoch {}): {} acting {:?}\n",
                    ps.map_epoch, q.state, q.acting
                ));
            }
        }
    }
    for o in 0..4 {
        let log = std::fs::read_to_string(tc.dir.join("log").join(format!("osd.{o}.log")))
            .unwrap_or_default();
        for l in log.lines().filter(|l| l.contains("stray")) {
            out.push_str(&format!("osd.{o}: {l}\n"));
        }
    }
    out
}

fn osd_logs_mention(tc: &TestCluster, needle: &str) -> bool {
    (0..4).any(|o| {
        std::fs::read_to_string(tc.dir.join("log").join(format!("osd.{o}.log")))
            .unwrap_or_default()
            .contains(needle)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn backfill_after_log_trim_and_data_moves_on_out_and_in() {
    let tc = TestCluster::start_with(
        1,
        4,
        "1G",
        &[
            "--engine",
            "pread",
            "-o",
            &format!("osd_max_pg_log_entries={LOG_LEN}"),
        ],
    );
    let c = tc.client().await;
    c.mon_command(Cmd::PoolCreate(PoolCreate {
        name: POOL.into(),
        pg_num: 8,
        size: 3,
        min_size: 2,
        crush_rule: String::new(),
        application: String::new(),
    }))
    .await
    .expect("create pool");
    let mut model = Model::new();
    for i in 0..120 {
        put(&c, &mut model, &format!("o{i}"), 0).await;
    }

    // osd.1 goes away; the cluster notices and keeps writing (min_size 2).
    tc.kill9("osd.1");
    let deadline = Instant::now() + Duration::from_secs(60);
    while c.map().osd(1).is_some_and(|o| o.up) {
        assert!(Instant::now() < deadline, "osd.1 never marked down");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Far more than LOG_LEN changes per PG while it is away: overwrites,
    // deletions and new objects.
    for i in 0..60 {
        put(&c, &mut model, &format!("o{i}"), 1).await;
    }
    for i in 60..90 {
        let name = format!("o{i}");
        c.remove(POOL, &name)
            .await
            .unwrap_or_else(|e| panic!("remove {name}: {e}"));
        model.insert(name, None);
    }
    for i in 120..300 {
        put(&c, &mut model, &format!("o{i}"), 0).await;
    }
    verify(&c, &model).await;

    // It returns: its PGs are too far behind the log and are backfilled.
    tc.up_again();
    let epoch = c.map().epoch();
    wait_clean(&tc, &c, epoch).await;
    assert!(
        osd_logs_mention(&tc, "plan=backfill"),
        "no PG took the backfill path"
    );
    verify(&c, &model).await;
    tc.deep_scrub_clean(POOL);
    assert!(pgs_on(&c, 1).await > 0);

    // `osd out 1`: its PGs move to the other three, and it drops its copies.
    let out = tc.cli(&["osd", "out", "1"]);
    assert!(out.status.success(), "{out:?}");
    assert!(c.wait_for_newer_map(epoch, Duration::from_secs(10)).await);
    let epoch = c.map().epoch();
    wait_clean(&tc, &c, epoch).await;
    let view = c.map();
    let pool = view.pool_by_name(POOL).unwrap().clone();
    for seed in 0..pool.pg_num {
        assert!(!view.pg_acting(&pool, seed).contains(&1));
    }
    verify(&c, &model).await;
    tc.deep_scrub_clean(POOL);
    let deadline = Instant::now() + Duration::from_secs(60);
    while pgs_on(&c, 1).await > 0 {
        if Instant::now() > deadline {
            panic!(
                "osd.1 still holds stray PGs after it was marked out:\n{}",
                stray_report(&tc, &c, 1).await
            );
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    // `osd in 1`: data moves back.
    let out = tc.cli(&["osd", "in", "1"]);
    assert!(out.status.success(), "{out:?}");
    assert!(c.wait_for_newer_map(epoch, Duration::from_secs(10)).await);
    let epoch = c.map().epoch();
    wait_clean(&tc, &c, epoch).await;
    let view = c.map();
    let with_1 = (0..pool.pg_num)
        .filter(|s| view.pg_acting(&pool, *s).contains(&1))
        .count();
    assert!(with_1 > 0, "CRUSH put nothing back on osd.1");
    assert_eq!(pgs_on(&c, 1).await, with_1);
    verify(&c, &model).await;
    tc.deep_scrub_clean(POOL);
    let errors = tc.error_lines();
    assert!(
        errors.is_empty(),
        "daemons logged errors:\n{}",
        errors.join("\n")
    );
}
