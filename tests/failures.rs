//! Faults inside one OSD, with real processes: a disk that fails a sync
//! takes its OSD down (with the reason in `health detail`) instead of
//! leaving it up and failing every write; scrub repair never deletes good
//! copies or copies from one it could not verify; a resent op gets the
//! reply of the original, not an empty one.

mod common;

use bytes::Bytes;
use common::TestCluster;
use meridian_client::MapView;
use meridian_objectstore::{ObjectKey, ObjectStore as _, PgId, Transaction};
use meridian_proto::osd::{KeyValue, KvList, OpRequest, ReqId, ResultCode, SubOp, sub_op::Op};
use std::time::{Duration, Instant};

/// Flips one byte of the first copy of `marker` in an OSD's block file.
fn flip_byte(tc: &TestCluster, osd: u32, marker: &[u8]) {
    let block = tc.config().osd_section(osd).unwrap().data.join("block");
    let raw = std::fs::read(&block).expect("read block file");
    let pos = raw
        .windows(marker.len())
        .position(|w| w == marker)
        .expect("pattern on disk");
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&block)
        .unwrap();
    std::os::unix::fs::FileExt::write_all_at(&f, &[raw[pos + 3] ^ 0xff], pos as u64 + 3).unwrap();
    f.sync_all().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scrub_repair_never_deletes_good_copies_or_trusts_a_bad_one() {
    let tc = TestCluster::start(1, 3, "1G");
    tc.create_pool("rp", 1, 2, 1);
    let c = tc.client().await;
    let marker = b"MERIDIAN-REPAIR-TEST-PATTERN-123";
    let data: Vec<u8> = marker.iter().cycle().take(256 << 10).cloned().collect();
    c.write_full("rp", "victim", Bytes::from(data.clone()))
        .await
        .expect("write");
    let view = c.map();
    let pool = view.pool_by_name("rp").unwrap().clone();
    let acting = view.pg_acting(&pool, 0);
    let (primary, replica) = (acting[0], acting[1]);
    let pgid = format!("{}.0", pool.id);

    // The primary's copy of the object vanishes (a lost object on disk).
    tc.kill9(&format!("osd.{primary}"));
    {
        // The killed OSD's lock goes with its last file descriptor.
        let deadline = Instant::now() + Duration::from_secs(30);
        let store = loop {
            match meridian_osd::open_store(&tc.config(), primary) {
                Ok(s) => break s,
                Err(e) if Instant::now() < deadline => {
                    eprintln!("store not free yet: {e:#}");
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(e) => panic!("open store: {e:#}"),
            }
        };
        store
            .submit(Transaction::new().remove(&ObjectKey::new(PgId::new(pool.id, 0), "victim")))
            .expect("remove");
    }
    tc.start_daemon(&format!("osd.{primary}"));
    tc.wait_healthy(Duration::from_secs(60));
    // Repair restores it from the replica (it used to delete the replica's
    // copy: the missing primary copy won the 1-1 vote).
    let r = tc.cli_json(&["pg", "repair", &pgid, "--format", "json"]);
    assert_eq!(r["inconsistent"], 1, "{r}");
    assert_eq!(r["repaired"], 1, "{r}");
    let back = c.read("rp", "victim").await.expect("read after repair");
    assert!(back.as_ref() == data.as_slice(), "repair lost the object");
    tc.deep_scrub_clean("rp");

    // Both copies corrupt: nothing verifies, so nothing is changed.
    flip_byte(&tc, primary, marker);
    flip_byte(&tc, replica, marker);
    let r = tc.cli_json(&["pg", "repair", &pgid, "--format", "json"]);
    assert_eq!(r["repaired"], 0, "{r}");
    assert!(r.to_string().contains("no verified copy"), "{r}");
    match c.read("rp", "victim").await {
        Err(meridian_client::ClientError::Corrupt(_)) => {}
        other => panic!("a corrupt object must read as corrupt, got {other:?}"),
    }
    // Undo the damage: the object is still there on both OSDs, untouched.
    flip_byte(&tc, primary, b"MER\xb6");
    flip_byte(&tc, replica, b"MER\xb6");
    let back = c
        .read("rp", "victim")
        .await
        .expect("read after undoing the flips");
    assert!(back.as_ref() == data.as_slice());
    tc.deep_scrub_clean("rp");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_disk_takes_its_osd_down_with_the_reason() {
    let tc = TestCluster::start(1, 3, "1G");
    tc.create_pool("fd", 8, 3, 2);
    // osd.1's next data sync fails: its store is poisoned.
    tc.kill9("osd.1");
    tc.start_daemon_env("osd.1", &[("FAILPOINTS", "store::data_sync=return")]);
    tc.wait_healthy(Duration::from_secs(60));
    let c = tc.client().await;
    let body = |i: u32| Bytes::from(vec![b'a' + (i % 26) as u8; 64 << 10]);
    for i in 0..16 {
        c.write_full("fd", &format!("o{i}"), body(i))
            .await
            .unwrap_or_else(|e| panic!("o{i}: {e}"));
    }
    // The OSD stopped serving, told the monitors why and exited.
    let deadline = Instant::now() + Duration::from_secs(30);
    while tc.running("osd.1") {
        assert!(
            Instant::now() < deadline,
            "osd.1 kept running on a failed disk"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let detail = tc.health_detail();
    assert!(detail.contains("OSD_DOWN"), "{detail}");
    assert!(detail.contains("osd.1 object store failed"), "{detail}");
    let log = std::fs::read_to_string(tc.dir.join("log/osd.1.log")).unwrap();
    assert!(
        log.contains("stopping: this OSD can no longer serve"),
        "{log}"
    );
    for i in 0..16 {
        assert_eq!(c.read("fd", &format!("o{i}")).await.expect("read"), body(i));
    }
    // A healthy restart (the disk "replaced"): back in, nothing lost.
    tc.start_daemon("osd.1");
    tc.wait_healthy(Duration::from_secs(90));
    tc.deep_scrub_clean("fd");
}

fn omap_set(k: &str, v: &str) -> SubOp {
    SubOp {
        op: Some(Op::OmapSet(KvList {
            entries: vec![KeyValue {
                key: Bytes::from(k.to_string()),
                value: Bytes::from(v.to_string()),
            }],
        })),
    }
}

fn omap_get(k: &str) -> SubOp {
    SubOp {
        op: Some(Op::OmapGetValues(meridian_proto::osd::KeyList {
            keys: vec![Bytes::from(k.to_string()), Bytes::from_static(b"hdr")],
        })),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resent_op_gets_the_original_reply() {
    let tc = TestCluster::start(1, 3, "1G");
    tc.create_pool("rs", 4, 3, 2);
    let c = tc.client().await;
    c.op("rs", "shard", vec![omap_set("hdr", "H")])
        .await
        .expect("seed");
    let view = c.map();
    let pool = view.pool_by_name("rs").unwrap().clone();
    let pg = MapView::object_pg(&pool, "shard");
    let req = |epoch: u64| OpRequest {
        pool: pool.id,
        pg_seed: pg.seed,
        object: "shard".into(),
        map_epoch: epoch,
        reqid: Some(ReqId {
            client: 0xfeed,
            tid: 1,
        }),
        ops: vec![omap_set("k", "v1"), omap_get("k")],
        balance_reads: false,
    };
    let primary = view.pg_acting(&pool, pg.seed)[0];
    let first = c
        .osd_direct(primary)
        .unwrap()
        .op(req(view.epoch()))
        .await
        .expect("op")
        .into_inner();
    assert_eq!(first.code, ResultCode::Ok as i32, "{}", first.message);
    // Reads in a compound op see the object as it was before the op.
    assert_eq!(first.results[1].entries.len(), 1, "{first:?}");
    // The reply was "lost": the client sends it again to the same primary.
    let again = c
        .osd_direct(primary)
        .unwrap()
        .op(req(view.epoch()))
        .await
        .expect("op")
        .into_inner();
    assert_eq!(again.code, ResultCode::Ok as i32);
    assert_eq!(
        again.results, first.results,
        "a resend must get the same reply"
    );
    assert_eq!(again.version, first.version);
    // The primary dies; the resend reaches the new primary, which finds the
    // op in the PG log and answers with the reads evaluated on the object as
    // it is now (the original reply died with the old primary), not an
    // empty reply (the gateway used to read "no shard header" from one).
    tc.kill9(&format!("osd.{primary}"));
    let deadline = Instant::now() + Duration::from_secs(60);
    let reply = loop {
        assert!(
            Instant::now() < deadline,
            "the PG never became active again"
        );
        let view = c.map();
        let acting = view.pg_acting(&pool, pg.seed);
        if let Some(&p) = acting.first().filter(|p| **p != primary)
            && let Ok(mut osd) = c.osd_direct(p)
            && let Ok(r) = osd.op(req(view.epoch())).await
        {
            let r = r.into_inner();
            if r.code == ResultCode::Ok as i32 {
                break r;
            }
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert_eq!(reply.results.len(), 2, "{reply:?}");
    let keys: Vec<&[u8]> = reply.results[1]
        .entries
        .iter()
        .map(|e| e.key.as_ref())
        .collect();
    assert_eq!(keys, vec![&b"hdr"[..], &b"k"[..]], "{reply:?}");
    assert_eq!(reply.user_version, first.user_version, "applied once");
}
