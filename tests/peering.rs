//! Peering with real OSD processes: the sequence that used to lose
//! acknowledged writes (a stale replica returning first won peering) must
//! now keep the PGs down until a copy with the writes returns, say why in
//! `pg query` and `health detail`, and then serve every acknowledged write.

mod common;

use bytes::Bytes;
use common::TestCluster;
use meridian_client::{ClientOptions, Cluster};
use std::time::{Duration, Instant};

const POOL: &str = "peer";

fn body(i: u32, generation: &str) -> Bytes {
    Bytes::from(format!("{generation}-{i}-").repeat(1 + i as usize % 7))
}

async fn quick_client(tc: &TestCluster) -> Cluster {
    Cluster::connect(
        tc.config().monitor_addrs(),
        ClientOptions {
            op_timeout: Duration::from_secs(3),
            attempt_timeout: Duration::from_secs(2),
            credentials: Some(tc.admin()),
        },
    )
    .await
    .expect("connect")
}

/// The sequence on a fresh cluster: `n` objects written ("old"),
/// osd.2 killed, all overwritten ("new", acknowledged by osd.0 and osd.1),
/// osd.0 and osd.1 killed, osd.2 started alone; returns once every PG is
/// down, with the cluster, a client and the last `pg stat`.
async fn stale_copy_returns_alone(
    pg_num: u32,
    n: u32,
) -> (TestCluster, Cluster, serde_json::Value) {
    let tc = TestCluster::start(1, 3, "1G");
    tc.create_pool(POOL, pg_num, 3, 2);
    let c = tc.client().await;
    for i in 0..n {
        c.write_full(POOL, &format!("obj{i}"), body(i, "old"))
            .await
            .expect("first write");
    }
    // osd.2 goes away; every overwrite is acknowledged by osd.0 and osd.1.
    tc.kill9("osd.2");
    let deadline = Instant::now() + Duration::from_secs(60);
    for i in 0..n {
        while let Err(e) = c.write_full(POOL, &format!("obj{i}"), body(i, "new")).await {
            assert!(
                Instant::now() < deadline,
                "overwrite never acknowledged: {e}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    // Both holders of the overwrites die; the stale copy comes back alone.
    tc.kill9("osd.0");
    tc.kill9("osd.1");
    tc.start_daemon("osd.2");
    let st = tc.wait_pg_states("down", Duration::from_secs(90));
    (tc, c, st)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_replica_returning_first_does_not_win() {
    let (tc, c, st) = stale_copy_returns_alone(8, 20).await;
    assert!(st.to_string().contains("down"), "{st}");
    // No read may return the old data: the PGs are down, not serving.
    let q = quick_client(&tc).await;
    for i in 0..20 {
        let r = q.read(POOL, &format!("obj{i}")).await;
        assert!(r.is_err(), "obj{i} read from a stale copy: {r:?}");
    }
    // `health detail` and `pg query` say what the PG waits for.
    let text = tc.health_detail();
    assert!(text.starts_with("HEALTH_ERR"), "{text}");
    assert!(text.contains("PG_DOWN"), "{text}");
    assert!(text.contains("osd.0") && text.contains("osd.1"), "{text}");
    let view = c.map();
    let pool = view.pool_by_name(POOL).expect("pool").clone();
    let pgid = format!("{}.0", pool.id);
    let q = tc.cli_json(&["pg", "query", &pgid, "--format", "json"]);
    assert_eq!(q["state"], "down", "{q}");
    let blocked: Vec<u64> = q["recovery_state"]["blocked_by"]
        .as_array()
        .expect("blocked_by")
        .iter()
        .filter_map(|v| v.as_u64())
        .collect();
    assert_eq!(blocked, vec![0, 1], "{q}");
    assert!(
        q["recovery_state"]["past_intervals"]
            .as_array()
            .is_some_and(|a| a.iter().any(|i| i["maybe_went_rw"] == true)),
        "{q}"
    );
    let text = String::from_utf8_lossy(&tc.cli(&["pg", "query", &pgid]).stdout).to_string();
    assert!(text.contains("blocked by: osd.0, osd.1"), "{text}");

    // The holders return: every acknowledged overwrite is served, and the
    // stale copy has been brought up to date.
    tc.start_daemon("osd.0");
    tc.start_daemon("osd.1");
    tc.wait_healthy(Duration::from_secs(90));
    for i in 0..20 {
        let got = c.read(POOL, &format!("obj{i}")).await.expect("read");
        assert_eq!(
            got,
            body(i, "new"),
            "obj{i} lost its acknowledged overwrite"
        );
    }
    tc.deep_scrub_clean(POOL);
    let errors = tc.error_lines();
    assert!(
        errors.is_empty(),
        "daemons logged errors:\n{}",
        errors.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn osd_lost_is_explicit_and_unblocks() {
    let (tc, c, _) = stale_copy_returns_alone(4, 8).await;
    // Refused without the confirmation, and for an OSD that is up.
    let out = tc.cli(&["osd", "lost", "0"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--yes-i-really-mean-it"));
    let out = tc.cli(&["osd", "lost", "2", "--yes-i-really-mean-it"]);
    assert!(!out.status.success(), "an up OSD cannot be lost");
    for o in ["0", "1"] {
        let out = tc.cli(&["osd", "lost", o, "--yes-i-really-mean-it"]);
        assert!(out.status.success(), "{out:?}");
    }
    // The operator accepted the loss: the PGs serve what osd.2 has.
    tc.wait_pg_states("active+undersized+degraded", Duration::from_secs(90));
    for i in 0..8 {
        let got = c.read(POOL, &format!("obj{i}")).await.expect("read");
        assert_eq!(got, body(i, "old"), "osd.2's copy is the one left");
    }
}
