//! Cluster tests: real `meridian` processes on loopback, broken on purpose.

mod common;

use bytes::Bytes;
use common::TestCluster;
use meridian_client::ops::sub;
use meridian_client::{ClientError, Cluster};
use meridian_proto::mon::PoolCreate;
use meridian_proto::mon::mon_command::Cmd;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const POOL: &str = "t";

/// Deterministic content for object `i` (sizes from 0 B to 8 MiB, mostly small).
fn content(i: u64) -> Bytes {
    let size = match i % 100 {
        0 => 8 << 20,
        1 => 0,
        n if n % 10 == 0 => (i * 7919 % (1 << 20)) as usize,
        _ => (i * 104_729 % 20_000) as usize,
    };
    let mut v = vec![0u8; size];
    let mut x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    for b in v.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    Bytes::from(v)
}

async fn create_pool(c: &Cluster, name: &str, pg_num: u32) {
    c.mon_command(Cmd::PoolCreate(PoolCreate {
        name: name.into(),
        pg_num,
        size: 3,
        min_size: 2,
        crush_rule: String::new(),
        application: String::new(),
    }))
    .await
    .expect("create pool");
}

async fn write_object(c: &Cluster, i: u64) -> Result<(), ClientError> {
    let name = format!("obj-{i}");
    c.op(
        POOL,
        &name,
        vec![
            sub::write_full(content(i)),
            sub::set_xattr("idx", Bytes::from(i.to_string())),
            sub::omap_set(vec![
                (Bytes::from("k1"), Bytes::from(format!("v1-{i}"))),
                (Bytes::from("k2"), Bytes::from(format!("v2-{i}"))),
            ]),
        ],
    )
    .await
    .map(|_| ())
}

async fn verify_object(c: &Cluster, i: u64) {
    let name = format!("obj-{i}");
    let data = c
        .read(POOL, &name)
        .await
        .unwrap_or_else(|e| panic!("read {name}: {e}"));
    assert!(
        data == content(i),
        "{name}: content differs ({} vs {} bytes)",
        data.len(),
        content(i).len()
    );
    let xs = c.get_xattrs(POOL, &name).await.expect("xattrs");
    assert_eq!(
        xs,
        vec![("idx".to_string(), Bytes::from(i.to_string()))],
        "{name} xattrs"
    );
    let om = c.omap_get_all(POOL, &name).await.expect("omap");
    assert_eq!(om.len(), 2, "{name} omap");
    assert_eq!(om[1].1, Bytes::from(format!("v2-{i}")));
}

/// 3 monitors, 4 OSDs, pool of size 3: 2,000 objects written while the
/// monitor leader and then an OSD are killed with SIGKILL; every acknowledged
/// write reads back identical, and after the OSD returns every replica agrees.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_writes_survive_leader_and_osd_kills() {
    let tc = TestCluster::start(3, 4, "2G");
    let c = tc.client().await;
    create_pool(&c, POOL, 16).await;
    let acked: Arc<Mutex<BTreeMap<u64, ()>>> = Arc::default();
    let next = Arc::new(std::sync::atomic::AtomicU64::new(0));
    const N: u64 = 2000;
    let mut workers = Vec::new();
    for _ in 0..8 {
        let (c, acked, next) = (c.clone(), acked.clone(), next.clone());
        workers.push(tokio::spawn(async move {
            let mut failures = Vec::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= N {
                    return failures;
                }
                match write_object(&c, i).await {
                    Ok(()) => {
                        acked.lock().unwrap().insert(i, ());
                    }
                    Err(e) => failures.push(format!("obj-{i}: {e}")),
                }
            }
        }));
    }
    // Kill the monitor leader once a quarter is written, then an OSD at half.
    let wait_for = |n: usize| {
        let acked = acked.clone();
        async move {
            while acked.lock().unwrap().len() < n {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    wait_for(500).await;
    let leader = c.status().await.expect("status").leader_id;
    eprintln!("killing mon.{leader} (leader)");
    tc.kill9(&format!("mon.{leader}"));
    wait_for(1000).await;
    eprintln!("killing osd.3");
    tc.kill9("osd.3");
    let mut failures = Vec::new();
    for w in workers {
        failures.extend(w.await.expect("worker"));
    }
    let acked: Vec<u64> = acked.lock().unwrap().keys().cloned().collect();
    eprintln!("{} acknowledged, {} failed", acked.len(), failures.len());
    assert!(
        acked.len() as u64 >= N * 9 / 10,
        "too few writes acknowledged: {failures:?}"
    );
    for i in &acked {
        verify_object(&c, *i).await;
    }
    // Bring the dead back; PGs recover; every replica agrees (deep scrub).
    tc.up_again();
    tc.wait_healthy(Duration::from_secs(180));
    for i in &acked {
        verify_object(&c, *i).await;
    }
    let report = tc.deep_scrub_clean(POOL);
    assert!(
        report["objects"].as_u64().unwrap() >= acked.len() as u64,
        "{report}"
    );
    // Every PG has 3 replicas again.
    let st = c.status().await.expect("status");
    for p in st
        .pg_stats
        .iter()
        .filter(|p| p.pool == c.map().pool_by_name(POOL).unwrap().id)
    {
        assert_eq!(
            p.acting.len(),
            3,
            "pg {}.{:x} acting {:?}",
            p.pool,
            p.seed,
            p.acting
        );
    }

    // All monitors stopped and started again: same maps, same epochs, same pools.
    // Every monitor is asked directly, before and after, so no subscriber lag hides a change.
    let mon_addrs = tc.config().monitor_addrs();
    let maps_of_all = || async {
        let mut maps = Vec::new();
        for a in &mon_addrs {
            let m = meridian_client::mon_client(a, &tc.admin_cred())
                .unwrap()
                .get_map(meridian_proto::mon::GetMapRequest {})
                .await
                .map(|r| r.into_inner());
            maps.push(m);
        }
        maps
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let before = loop {
        let maps = maps_of_all().await;
        if let [Ok(a), Ok(b), Ok(c)] = &maps[..]
            && a == b
            && b == c
        {
            break a.clone();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "monitors do not agree on one map"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    for m in 1..=3 {
        tc.kill9(&format!("mon.{m}"));
    }
    tc.up_again();
    for (i, m) in maps_of_all().await.into_iter().enumerate() {
        let m = m.unwrap_or_else(|e| panic!("mon #{i} after restart: {e}"));
        assert_eq!(
            m.epoch, before.epoch,
            "a restarted monitor reports another epoch"
        );
        assert_eq!(m, before, "a restarted monitor reports another map");
    }
    let c2 = tc.client().await;
    assert_eq!(c2.map().map, before);
    verify_object(&c2, acked[0]).await;
    let errors = tc.error_lines();
    assert!(
        errors.is_empty(),
        "daemons logged errors:\n{}",
        errors.join("\n")
    );
}

/// A byte flipped in an OSD's block file is caught by the checksum and the
/// client still gets the right bytes (the primary repairs from a replica).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flipped_byte_is_detected_and_repaired() {
    let tc = TestCluster::start(1, 3, "1G");
    let c = tc.client().await;
    create_pool(&c, POOL, 8).await;
    // A recognisable 256 KiB pattern (far above any inline threshold).
    let marker = b"MERIDIAN-CORRUPTION-TEST-PATTERN";
    let data: Vec<u8> = marker.iter().cycle().take(256 << 10).cloned().collect();
    c.write_full(POOL, "victim", Bytes::from(data.clone()))
        .await
        .expect("write");
    let view = c.map();
    let pool = view.pool_by_name(POOL).unwrap().clone();
    let pg = meridian_client::MapView::object_pg(&pool, "victim");
    let primary = view.pg_acting(&pool, pg.seed)[0];
    let block = tc.config().osd_section(primary).unwrap().data.join("block");
    let mut raw = std::fs::read(&block).expect("read block file");
    let pos = raw
        .windows(marker.len())
        .position(|w| w == marker)
        .expect("pattern on disk");
    raw[pos + 3] ^= 0xff;
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&block)
        .unwrap();
    std::os::unix::fs::FileExt::write_all_at(&f, &raw[pos..pos + marker.len()], pos as u64)
        .unwrap();
    f.sync_all().unwrap();
    drop(raw);
    let back = c.read(POOL, "victim").await.expect("read after corruption");
    assert!(
        back.as_ref() == data.as_slice(),
        "wrong bytes returned after corruption"
    );
    // The repair rewrote the primary's copy: a deep scrub finds nothing.
    tc.deep_scrub_clean(POOL);

    // Every daemon's Prometheus endpoint reports what just happened.
    let cfg = tc.config();
    let primary_metrics = tc.scrape(cfg.osd_section(primary).unwrap().metrics_addr.as_deref());
    assert!(
        metric_sum(
            &primary_metrics,
            "meridian_osd_ops_total{",
            "kind=\"write\",result=\"OK\""
        ) >= 1.0,
        "the primary counted no successful write:\n{primary_metrics}"
    );
    assert!(
        metric_sum(
            &primary_metrics,
            "meridian_osd_op_latency_seconds_count{",
            "kind=\"read\""
        ) >= 1.0,
        "no read latency recorded:\n{primary_metrics}"
    );
    let mon_metrics = tc.scrape(cfg.mon_section(1).unwrap().metrics_addr.as_deref());
    assert_eq!(
        metric_sum(&mon_metrics, "meridian_mon_osds{", "state=\"up\""),
        3.0,
        "{mon_metrics}"
    );
    assert_eq!(metric_sum(&mon_metrics, "meridian_mon_is_leader", ""), 1.0);
    assert!(metric_sum(&mon_metrics, "meridian_mon_map_epoch", "") >= c.map().epoch() as f64 - 1.0);
}

/// Sums the samples of `name_prefix` whose labels contain `labels`.
fn metric_sum(text: &str, name_prefix: &str, labels: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name_prefix) && l.contains(labels))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Bad input gets a clear error and changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_clearly() {
    let tc = TestCluster::start(1, 3, "1G");
    let c = tc.client().await;
    create_pool(&c, POOL, 8).await;
    c.write_full(POOL, "keep", Bytes::from_static(b"safe"))
        .await
        .unwrap();

    // Unknown pool.
    let e = c.write_full("nope", "x", Bytes::new()).await.unwrap_err();
    assert!(matches!(e, ClientError::NoPool(_)), "{e}");
    let out = tc.cli(&["get", "-p", "nope", "x", "-"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("pool 'nope' does not exist"));

    // Object over the size limit.
    let big = Bytes::from(vec![0u8; (64 << 20) + 1]);
    let e = c.write_full(POOL, "keep", big).await.unwrap_err();
    assert!(matches!(e, ClientError::TooLarge(_)), "{e}");
    assert_eq!(
        c.read(POOL, "keep").await.unwrap(),
        Bytes::from_static(b"safe")
    );

    // Malformed requests straight to an OSD: wrong PG, empty name, empty sub-op.
    let view = c.map();
    let pool = view.pool_by_name(POOL).unwrap().clone();
    let pg = meridian_client::MapView::object_pg(&pool, "keep");
    let primary = view.pg_acting(&pool, pg.seed)[0];
    let mut osd = c.osd_direct(primary).unwrap();
    let base = meridian_proto::osd::OpRequest {
        pool: pool.id,
        pg_seed: pg.seed,
        object: "keep".into(),
        map_epoch: view.epoch(),
        reqid: None,
        ops: vec![sub::write_full(Bytes::from_static(b"evil"))],
        balance_reads: false,
    };
    for bad in [
        meridian_proto::osd::OpRequest {
            pg_seed: pg.seed ^ 1,
            ..base.clone()
        },
        meridian_proto::osd::OpRequest {
            object: String::new(),
            ..base.clone()
        },
        meridian_proto::osd::OpRequest {
            ops: vec![meridian_proto::osd::SubOp { op: None }],
            ..base.clone()
        },
    ] {
        let r = osd.op(bad).await.unwrap().into_inner();
        assert_ne!(r.code, 0, "malformed op accepted");
        assert!(!r.message.is_empty());
    }
    assert_eq!(
        c.read(POOL, "keep").await.unwrap(),
        Bytes::from_static(b"safe")
    );

    // A bad CLI flag.
    let out = tc.cli(&["osd", "pool", "create", "x", "8", "--sise", "3"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--sise"));
    let out = tc.cli(&["osd", "pool", "create", "x", "0"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("pg_num"));

    // An OSD data dir of another cluster: refused, data untouched.
    let other = TestCluster::start(1, 1, "1G");
    other.kill9("osd.0");
    let other_dir = other.config().osd_section(0).unwrap().data.clone();
    let before: Vec<_> = std::fs::read_dir(&other_dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    let mut cfg = tc.config();
    let mut sec = cfg.osd_section(0).unwrap().clone();
    sec.data = other_dir.clone();
    cfg.osd.insert("0".into(), sec);
    let alt = tc.dir.join("alt.toml");
    std::fs::write(&alt, cfg.to_toml()).unwrap();
    let out = std::process::Command::new(common::bin())
        .arg("-c")
        .arg(&alt)
        .args(["osd", "--id", "0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("fsid"), "{err}");
    let after: Vec<_> = std::fs::read_dir(&other_dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(before, after);
    assert_eq!(
        c.read(POOL, "keep").await.unwrap(),
        Bytes::from_static(b"safe")
    );
}

/// Body of generation `generation` of object `slot` in the every-OSD kill
/// test: mostly 4 KiB, some 256 KiB and 4 MiB, each byte tied to both.
fn generation_body(slot: u64, generation: u64) -> Bytes {
    let size = match (slot + generation) % 16 {
        0 => 4 << 20,
        1..=3 => 256 << 10,
        _ => 4 << 10,
    };
    let seed = (slot << 32 | generation).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut x = seed;
    let mut v = vec![0u8; size];
    for b in v.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    Bytes::from(v)
}

/// 16 writers overwrite their own objects as fast as the cluster takes them;
/// all three OSDs are killed with SIGKILL at the same moment, mid-load. After
/// they restart, every object holds its last acknowledged generation, or the
/// one that was in flight when the OSDs died (written but not yet answered),
/// never an older one, and the three copies agree.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writes_acknowledged_just_before_every_osd_is_killed_survive_restart() {
    use std::sync::atomic::{AtomicU64, Ordering};
    const WRITERS: u64 = 16;
    const SLOTS_PER_WRITER: u64 = 8;
    let tc = TestCluster::start(1, 3, "2G");
    let c = tc.client().await;
    create_pool(&c, POOL, 8).await;
    // Last acknowledged generation per object (0 = never acknowledged).
    let acked: Arc<Vec<AtomicU64>> = Arc::new(
        (0..WRITERS * SLOTS_PER_WRITER)
            .map(|_| AtomicU64::new(0))
            .collect(),
    );
    // Highest generation whose write was started.
    let attempted: Arc<Vec<AtomicU64>> = Arc::new(
        (0..WRITERS * SLOTS_PER_WRITER)
            .map(|_| AtomicU64::new(0))
            .collect(),
    );
    let total = Arc::new(AtomicU64::new(0));
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let (c, acked, attempted, total) =
            (c.clone(), acked.clone(), attempted.clone(), total.clone());
        writers.push(tokio::spawn(async move {
            for generation in 1.. {
                for slot in w * SLOTS_PER_WRITER..(w + 1) * SLOTS_PER_WRITER {
                    let name = format!("gen-{slot}");
                    let body = generation_body(slot, generation);
                    attempted[slot as usize].store(generation, Ordering::SeqCst);
                    if c.write_full(POOL, &name, body).await.is_ok() {
                        acked[slot as usize].store(generation, Ordering::SeqCst);
                        total.fetch_add(1, Ordering::SeqCst);
                    }
                }
            }
        }));
    }
    // Kill once every object has been overwritten a few times.
    while total.load(Ordering::SeqCst) < WRITERS * SLOTS_PER_WRITER * 3 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let before_kill = total.load(Ordering::SeqCst);
    let pids: Vec<i32> = (0..3).map(|o| tc.pid(&format!("osd.{o}"))).collect();
    for pid in &pids {
        // SAFETY: kill(2) on processes this test started.
        unsafe { libc::kill(*pid, libc::SIGKILL) };
    }
    for o in 0..3 {
        tc.kill9(&format!("osd.{o}"));
    }
    // Every ack counted by now was sent before its OSDs died; stop the
    // writers before reading what they recorded.
    for w in &writers {
        w.abort();
    }
    for w in writers {
        let _ = w.await;
    }
    let last: Vec<u64> = acked.iter().map(|a| a.load(Ordering::SeqCst)).collect();
    let started: Vec<u64> = attempted.iter().map(|a| a.load(Ordering::SeqCst)).collect();
    eprintln!(
        "{} writes acknowledged ({before_kill} when the kill started); all OSDs killed",
        total.load(Ordering::SeqCst)
    );

    tc.up_again();
    tc.wait_healthy(Duration::from_secs(180));
    let mut ahead = 0;
    for (slot, &generation) in last.iter().enumerate() {
        let slot = slot as u64;
        let name = format!("gen-{slot}");
        assert!(generation > 0, "{name} was never acknowledged");
        let back = c
            .read(POOL, &name)
            .await
            .unwrap_or_else(|e| panic!("read {name} after restart: {e}"));
        if back == generation_body(slot, generation) {
            continue;
        }
        // A later write may have committed without its answer arriving
        // (the one in flight at the kill, or one whose answer was an error).
        let newer =
            (generation + 1..=started[slot as usize]).any(|g| back == generation_body(slot, g));
        assert!(
            newer,
            "{name}: holds neither acknowledged generation {generation} nor a later one \
             (up to {}; {} bytes read)",
            started[slot as usize],
            back.len()
        );
        ahead += 1;
    }
    eprintln!("{ahead} objects hold the generation that was in flight at the kill");
    let report = tc.deep_scrub_clean(POOL);
    assert!(
        report["objects"].as_u64().unwrap_or(0) >= WRITERS * SLOTS_PER_WRITER,
        "{report}"
    );
}

/// Another process takes a port of a stopped OSD before `dev up` starts it
/// again (what parallel test clusters did to each other): `dev up` moves the
/// OSD to a free port, restarts it, and the cluster comes back healthy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_up_moves_an_osd_off_a_port_another_process_took() {
    let tc = TestCluster::start(1, 3, "1G");
    let before = tc.config().osd_section(0).unwrap().metrics_addr.clone();
    let taken = before.clone().expect("dev up gives OSDs a metrics address");
    tc.kill9("osd.0");
    // The killed OSD's socket can hold the port for a moment after it exits.
    let mut squatter = None;
    for _ in 0..100 {
        match std::net::TcpListener::bind(&taken) {
            Ok(l) => {
                squatter = Some(l);
                break;
            }
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
    let squatter = squatter.expect("take osd.0's metrics port within 10 s");
    tc.up_again();
    let after = tc.config().osd_section(0).unwrap().metrics_addr.clone();
    assert_ne!(after, before, "osd.0 still configured on the taken port");
    assert!(tc.running("osd.0"), "osd.0 is not running after dev up");
    tc.wait_healthy(Duration::from_secs(60));
    drop(squatter);
}
