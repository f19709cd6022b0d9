//! Thrashing: writers keep writing and verifying objects while OSDs and the
//! monitor leader are killed (-9) and restarted at random. Afterwards every
//! acknowledged write reads back and a deep scrub finds identical copies.
//!
//! The run lasts `MERIDIAN_THRASH_SECS` seconds (default 60, the CI run); the
//! README records a longer one:
//! `MERIDIAN_THRASH_SECS=600 cargo test --release --test thrash -- --nocapture`.

mod common;

use bytes::Bytes;
use common::TestCluster;
use meridian_client::{ClientError, ClientOptions, Cluster};
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const POOL: &str = "thrash";
const OSDS: u32 = 4;
const MONS: u32 = 3;
const WRITERS: usize = 3;
const OBJECTS_PER_WRITER: usize = 60;

fn body(name: &str, generation: u64) -> Bytes {
    let head = format!("{name}:{generation}:");
    let len = 512 + (generation as usize * 7919) % (96 << 10);
    Bytes::from(head.bytes().cycle().take(len).collect::<Vec<u8>>())
}

fn generation_of(name: &str, data: &[u8]) -> Option<u64> {
    let s = std::str::from_utf8(&data[..data.len().min(64)]).ok()?;
    let rest = s.strip_prefix(name)?.strip_prefix(':')?;
    rest.split(':').next()?.parse().ok()
}

/// What a writer knows of one object: its last acknowledged generation,
/// and later generations whose outcome is unknown (the op failed or timed out).
#[derive(Default, Clone)]
struct Known {
    acked: Option<u64>,
    unknown: BTreeSet<u64>,
}

impl Known {
    fn allows(&self, have: Option<u64>) -> bool {
        match have {
            Some(g) => self.acked == Some(g) || self.unknown.contains(&g),
            None => self.acked.is_none(),
        }
    }
}

type Model = Arc<Mutex<BTreeMap<String, Known>>>;

async fn writer(c: Cluster, id: usize, model: Model, stop: Instant, seed: u64) -> (u64, u64) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let (mut acked, mut verified) = (0u64, 0u64);
    let mut generation = 0u64;
    while Instant::now() < stop {
        let name = format!("w{id}-{}", rng.gen_range(0..OBJECTS_PER_WRITER));
        generation += 1;
        if rng.gen_bool(0.25) {
            // Verify the object against what was acknowledged.
            let known = model
                .lock()
                .unwrap()
                .get(&name)
                .cloned()
                .unwrap_or_default();
            match c.read(POOL, &name).await {
                Ok(d) => {
                    let g = generation_of(&name, &d);
                    assert!(g.is_some(), "{name}: unreadable content");
                    assert!(
                        known.allows(g),
                        "{name}: read generation {g:?}, acknowledged {:?}, unknown {:?}",
                        known.acked,
                        known.unknown
                    );
                    assert_eq!(d, body(&name, g.unwrap_or(0)), "{name}: wrong bytes");
                    verified += 1;
                }
                Err(ClientError::NotFound(_)) => {
                    assert!(known.allows(None), "{name}: acknowledged but not found");
                    verified += 1;
                }
                Err(_) => {} // unavailable for now (PG peering): fine
            }
            continue;
        }
        model
            .lock()
            .unwrap()
            .entry(name.clone())
            .or_default()
            .unknown
            .insert(generation);
        if c.write_full(POOL, &name, body(&name, generation))
            .await
            .is_ok()
        {
            let mut m = model.lock().unwrap();
            let k = m.entry(name).or_default();
            // Acknowledged: older unknown generations can no longer appear.
            k.unknown.retain(|g| *g > generation);
            k.acked = Some(generation);
            acked += 1;
        }
    }
    (acked, verified)
}

fn leader(tc: &TestCluster) -> Option<u64> {
    let out = tc.cli(&["status", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    v["monmap"]["leader"].as_u64().filter(|l| *l > 0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writers_survive_random_osd_and_monitor_kills() {
    let secs: u64 = std::env::var("MERIDIAN_THRASH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let seed: u64 = std::env::var("MERIDIAN_THRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("thrash: {secs}s, seed {seed} (MERIDIAN_THRASH_SEED to replay)");
    let tc = TestCluster::start(MONS, OSDS, "2G");
    tc.create_pool(POOL, 16, 3, 2);
    let opts = ClientOptions {
        op_timeout: Duration::from_secs(20),
        attempt_timeout: Duration::from_secs(5),
        credentials: Some(tc.admin()),
    };
    let model: Model = Arc::new(Mutex::new(BTreeMap::new()));
    let stop = Instant::now() + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let c = Cluster::connect(tc.config().monitor_addrs(), opts.clone())
            .await
            .expect("connect");
        tasks.push(tokio::spawn(writer(
            c,
            w,
            model.clone(),
            stop,
            seed + w as u64,
        )));
    }

    // The thrasher: kill -9 an OSD or the monitor leader, restart it a few
    // seconds later; never more than two OSDs or one monitor down at once.
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ 0x5eed);
    let mut down: Vec<(String, Instant)> = Vec::new();
    let (mut osd_kills, mut mon_kills) = (0, 0);
    while Instant::now() < stop {
        tokio::time::sleep(Duration::from_millis(rng.gen_range(1500..4000))).await;
        let now = Instant::now();
        let (back, still): (Vec<_>, Vec<_>) = down.into_iter().partition(|(_, t)| *t <= now);
        down = still;
        for (name, _) in back {
            tc.start_daemon(&name);
        }
        let osds_down = down.iter().filter(|(n, _)| n.starts_with("osd.")).count();
        let mons_down = down.iter().filter(|(n, _)| n.starts_with("mon.")).count();
        let target = if rng.gen_bool(0.2) && mons_down == 0 {
            leader(&tc).map(|l| format!("mon.{l}"))
        } else if osds_down < 2 {
            let o = rng.gen_range(0..OSDS);
            Some(format!("osd.{o}"))
        } else {
            None
        };
        if let Some(t) = target.filter(|t| !down.iter().any(|(n, _)| n == t)) {
            tc.kill9(&t);
            if t.starts_with("mon.") {
                mon_kills += 1;
            } else {
                osd_kills += 1;
            }
            let back = now + Duration::from_millis(rng.gen_range(1000..8000));
            down.push((t, back));
        }
    }
    let mut acked = 0;
    let mut verified = 0;
    for t in tasks {
        let (a, v) = t.await.expect("writer panicked");
        acked += a;
        verified += v;
    }
    for (name, _) in down {
        tc.start_daemon(&name);
    }
    eprintln!(
        "thrash: {osd_kills} OSD kills, {mon_kills} monitor-leader kills, {acked} writes acknowledged, {verified} reads verified"
    );
    assert!(acked > 0 && osd_kills > 0, "the thrash did nothing");
    tc.wait_healthy(Duration::from_secs(180));

    // Every acknowledged write reads back (or a later one whose outcome was unknown).
    let c = tc.client().await;
    let model = model.lock().unwrap().clone();
    for (name, known) in &model {
        let have = match c.read(POOL, name).await {
            Ok(d) => {
                let g = generation_of(name, &d);
                assert_eq!(d, body(name, g.unwrap_or(0)), "{name}: wrong bytes");
                g
            }
            Err(ClientError::NotFound(_)) => None,
            Err(e) => panic!("{name}: {e}"),
        };
        assert!(
            known.allows(have),
            "{name}: holds generation {have:?}, acknowledged {:?} (unknown {:?})",
            known.acked,
            known.unknown
        );
    }
    // Three identical copies of every object.
    let report = tc.deep_scrub_clean(POOL);
    assert!(report["objects"].as_u64().unwrap_or(0) > 0, "{report}");
}
