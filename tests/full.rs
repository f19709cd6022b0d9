//! A cluster filling up: health goes nearfull then full, writes that add
//! data fail at once with "cluster is full" (S3: 507), reads and deletes
//! keep working, and deleting data brings HEALTH_OK back without a restart.
//! Nothing acknowledged is lost on the way.

mod common;

use bytes::Bytes;
use common::TestCluster;
use meridian_client::ClientError;
use std::process::Command;
use std::time::{Duration, Instant};

const MIB: usize = 1 << 20;

fn body(i: usize) -> Bytes {
    let mut v = vec![(i % 251) as u8; MIB];
    v[..8].copy_from_slice(&(i as u64).to_le_bytes());
    Bytes::from(v)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_cluster_refuses_writes_fast_and_recovers_after_deletes() {
    let tc = TestCluster::start_with(
        1,
        3,
        "192M",
        &["--s3-port", "0", "-o", "osd_heartbeat_interval_ms=300"],
    );
    tc.create_pool("full", 8, 3, 2);
    let c = tc.client().await;

    let mut acked = Vec::new();
    let mut saw_nearfull = false;
    let mut refusal = None;
    for i in 0..400 {
        match c.write_full("full", &format!("o{i}"), body(i)).await {
            Ok(_) => acked.push(i),
            Err(ClientError::Full(m)) => {
                refusal = Some(m);
                break;
            }
            Err(e) => panic!("o{i}: unexpected error {e}"),
        }
        let h = tc.health_detail();
        saw_nearfull |= h.contains("OSD_NEARFULL");
        // Near the edge, write one object per usage report (heartbeat), so
        // health is seen passing through every band rather than jumping.
        let used = |tc: &TestCluster| {
            let st = tc.cli_json(&["status", "--format", "json"]);
            let (u, t) = (
                st["pgmap"]["bytes_used"].as_f64().unwrap_or(0.0),
                st["pgmap"]["bytes_total"].as_f64().unwrap_or(1.0),
            );
            (u, u / t.max(1.0))
        };
        let (before, ratio) = used(&tc);
        if ratio >= 0.8 {
            let deadline = Instant::now() + Duration::from_secs(5);
            while used(&tc).0 == before && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
    let refusal = refusal.expect("the cluster never filled up");
    assert!(
        refusal.contains("cluster is full") || refusal.contains("full ratio"),
        "{refusal}"
    );
    assert!(
        saw_nearfull,
        "health never warned OSD_NEARFULL before the cluster was full"
    );
    assert!(acked.len() > 20, "only {} objects fit", acked.len());
    let h = tc.wait_health(
        |h| h.contains("OSD_FULL"),
        "OSD_FULL",
        Duration::from_secs(60),
    );
    assert!(h.starts_with("HEALTH_ERR"), "{h}");
    assert!(h.contains("osd.0") && h.contains("used"), "{h}");

    // Writes fail fast and clearly, again and again.
    for j in 0..5 {
        let t0 = Instant::now();
        let r = c.write_full("full", &format!("late{j}"), body(j)).await;
        assert!(matches!(r, Err(ClientError::Full(_))), "{r:?}");
        assert!(
            t0.elapsed() < Duration::from_secs(2),
            "refusal took {:?}",
            t0.elapsed()
        );
    }
    // S3 PUTs get 507, and the bench stops at once saying why.
    let (ak, sk) = {
        let u = tc.cli_json(&["user", "info", "--uid=dev"]);
        let k = &u["keys"][0];
        (
            k["access_key"].as_str().unwrap().to_string(),
            k["secret_key"].as_str().unwrap().to_string(),
        )
    };
    let gw = tc
        .config()
        .gateway
        .values()
        .next()
        .expect("gateway")
        .addr
        .clone();
    let t0 = Instant::now();
    let out = Command::new(common::bin())
        .arg("-c")
        .arg(tc.conf())
        .args([
            "bench",
            "--s3",
            &format!("http://{gw}"),
            "--access-key",
            &ak,
            "--secret",
            &sk,
            "20",
            "write",
            "-b",
            "1M",
            "-t",
            "4",
        ])
        .output()
        .expect("bench");
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success());
    assert!(
        err.contains("507") && err.contains("InsufficientStorage"),
        "{err}"
    );
    assert!(
        t0.elapsed() < Duration::from_secs(15),
        "the bench ran on for {:?}",
        t0.elapsed()
    );

    // Reads work; every acknowledged write is intact.
    for &i in &acked {
        assert_eq!(
            c.read("full", &format!("o{i}")).await.expect("read"),
            body(i)
        );
    }
    // Deletes work on a full cluster, and bring it back to health.
    let keep: Vec<usize> = acked.iter().copied().filter(|i| i % 4 == 0).collect();
    for &i in acked.iter().filter(|i| *i % 4 != 0) {
        c.remove("full", &format!("o{i}"))
            .await
            .expect("delete on a full cluster");
    }
    tc.wait_healthy(Duration::from_secs(60));
    c.write_full("full", "after", body(7))
        .await
        .expect("write after freeing space");
    for &i in &keep {
        assert_eq!(
            c.read("full", &format!("o{i}")).await.expect("read"),
            body(i)
        );
    }
    tc.deep_scrub_clean("full");
}
