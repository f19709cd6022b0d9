//! Multi-site sync between two real clusters (`dev up --zones 2`): users
//! created on either zone work on both; objects written, overwritten and
//! deleted in both zones arrive byte-identical with the same versions,
//! ETags and mtimes, through a kill -9 of the syncing gateway; concurrent
//! writes of one key converge to one winner; `sync status` never claims
//! "caught up" while applies are held back and writes go on; bad input is
//! refused; `bucket sync disable|enable`; the seed's planned failover with
//! writes in flight; logs trimmed through what the peer has applied, held
//! and reported while it is down; the sync bandwidth limit; sync policies;
//! emergency failover and the old master's return.

mod common;

use common::TestCluster;
use futures::StreamExt as _;
use meridian_bench::s3::S3Client;
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

fn cli_json(tc: &TestCluster, args: &[&str]) -> Value {
    let mut a = vec!["--format", "json"];
    a.extend_from_slice(args);
    tc.cli_json(&a)
}

fn keys(tc: &TestCluster, uid: &str) -> (String, String) {
    tc.user_keys(uid)
}

fn s3(tc: &TestCluster, k: &(String, String)) -> S3Client {
    S3Client::new(&tc.s3_endpoint(), &k.0, &k.1, "dev", None).expect("S3 client")
}

fn caught_up(tc: &TestCluster) -> bool {
    let out = tc.cli(&["--format", "json", "sync", "status"]);
    out.status.success()
        && serde_json::from_slice::<Value>(&out.stdout)
            .is_ok_and(|v| v["caught_up"] == Value::Bool(true))
}

/// Waits until both zones say they are caught up with each other.
fn wait_caught_up(a: &TestCluster, b: &TestCluster, within: Duration) {
    let deadline = Instant::now() + within;
    while !(caught_up(a) && caught_up(b)) {
        if Instant::now() > deadline {
            for tc in [a, b] {
                eprintln!(
                    "{}",
                    String::from_utf8_lossy(&tc.cli(&["sync", "status", "--detail"]).stdout)
                );
                tc.dump_logs();
            }
            panic!("zones not caught up within {within:?}");
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Every version of every key of `bucket` in a zone, as the index lists them.
fn versions(tc: &TestCluster, bucket: &str) -> BTreeMap<(String, String), Value> {
    let v = cli_json(
        tc,
        &[
            "bucket",
            "list",
            &format!("--bucket={bucket}"),
            "--max-entries=1000000",
        ],
    );
    v.as_array()
        .expect("bucket list is an array")
        .iter()
        .map(|e| {
            let mut m = e["meta"].clone();
            // The owner record is per zone; everything else must match.
            m.as_object_mut().map(|o| o.remove("owner"));
            (
                (
                    e["name"].as_str().unwrap().to_string(),
                    e["instance"].as_str().unwrap().to_string(),
                ),
                serde_json::json!({"exists": e["exists"], "current": e["current"], "meta": m}),
            )
        })
        .collect()
}

fn body(i: usize, generation: &str) -> bytes::Bytes {
    let len = [0usize, 1, 100, 4096, 65_537, 300_000][i % 6];
    let seed = format!("{generation}-{i}-");
    bytes::Bytes::from(seed.bytes().cycle().take(len).collect::<Vec<u8>>())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_zones_replicate_both_ways_through_kills_and_conflicts() {
    let (a, b) = TestCluster::start_zones(
        2,
        &["-o", "rgw_sync_reconcile_s=5", "-o", "rgw_sync_lease_s=6"],
    );
    // Everything below crosses between the zones over TLS: `dev up` gives
    // them HTTPS endpoints with certificates of its CA.
    let period = cli_json(&a, &["period", "get"]);
    let endpoints: Vec<&str> = period["period_map"]["zonegroups"][0]["zones"]
        .as_array()
        .expect("zones of the period")
        .iter()
        .flat_map(|z| z["endpoints"].as_array().into_iter().flatten())
        .filter_map(|e| e.as_str())
        .collect();
    assert!(
        endpoints.len() >= 2 && endpoints.iter().all(|e| e.starts_with("https://")),
        "zone endpoints are not all HTTPS: {endpoints:?}"
    );
    let dev = keys(&a, "dev");
    assert_eq!(
        keys(&b, "dev"),
        dev,
        "metadata sync brought the master's user"
    );

    // A user created on the master works on the secondary.
    let alice = keys(
        cli_wrap(
            &a,
            &["user", "create", "--uid=alice", "--display-name=Alice"],
        ),
        "alice",
    );
    let sa = s3(&b, &alice);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        // Created through the secondary: forwarded to the master.
        match sa.ensure_bucket("alice-b").await {
            Ok(()) => break,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("alice cannot use zone B: {e}"),
        }
    }
    sa.put("alice-b", "hello", bytes::Bytes::from_static(b"from b"))
        .await
        .unwrap();
    // A user created on the secondary is created on the master (forwarded).
    let bob = keys(
        cli_wrap(&b, &["user", "create", "--uid=bob", "--display-name=Bob"]),
        "bob",
    );
    assert_eq!(
        keys(&a, "bob"),
        bob,
        "user bob exists on the master with the same key"
    );
    s3(&a, &bob).ensure_bucket("bob-a").await.unwrap();

    // Objects written in both zones, some overwritten and deleted.
    let (ca, cb) = (s3(&a, &dev), s3(&b, &dev));
    ca.ensure_bucket("sync").await.unwrap();
    for i in 0..120 {
        ca.put("sync", &format!("a/{i:03}"), body(i, "a"))
            .await
            .unwrap();
    }
    // Kill B's gateway (it syncs from A) while A keeps writing, then restart it.
    let writer = {
        let ca = s3(&a, &dev);
        tokio::spawn(async move {
            for i in 120..240 {
                ca.put("sync", &format!("a/{i:03}"), body(i, "a"))
                    .await
                    .unwrap();
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    b.kill9("gateway.0");
    writer.await.unwrap();
    b.start_daemon("gateway.0");
    wait_s3(&b, &cb, "sync").await;
    for i in 0..60 {
        cb.put("sync", &format!("b/{i:03}"), body(i, "b"))
            .await
            .unwrap();
    }
    for i in (0..240).step_by(8) {
        ca.delete("sync", &format!("a/{i:03}")).await.unwrap();
    }
    for i in (1..240).step_by(10) {
        cb.put("sync", &format!("a/{i:03}"), body(i, "b-over"))
            .await
            .unwrap();
    }
    // The same key written in both zones at once, many times.
    let (h1, h2) = {
        let (x, y) = (s3(&a, &dev), s3(&b, &dev));
        (
            tokio::spawn(async move {
                for g in 0..25 {
                    x.put("sync", "hot", bytes::Bytes::from(format!("a{g}")))
                        .await
                        .unwrap();
                }
            }),
            tokio::spawn(async move {
                for g in 0..25 {
                    y.put("sync", "hot", bytes::Bytes::from(format!("b{g}")))
                        .await
                        .unwrap();
                }
            }),
        )
    };
    h1.await.unwrap();
    h2.await.unwrap();

    wait_caught_up(&a, &b, Duration::from_secs(120));
    let (va, vb) = (versions(&a, "sync"), versions(&b, "sync"));
    assert_eq!(va.len(), 240 - 30 + 60 + 1, "keys in zone A");
    assert_eq!(
        va, vb,
        "both zones list the same versions, ETags, sizes and mtimes"
    );
    for ((key, _), _) in va.iter() {
        let (x, y) = (
            ca.get("sync", key).await.unwrap(),
            cb.get("sync", key).await.unwrap(),
        );
        assert_eq!(x, y, "{key} differs between the zones");
    }
    let hot = ca.get("sync", "hot").await.unwrap();
    assert!(
        hot == "a24" || hot == "b24",
        "the winner is one zone's last write: {hot:?}"
    );
    assert_eq!(versions(&a, "alice-b"), versions(&b, "alice-b"));

    // Status never says caught up while applies are held back.
    b.kill9("gateway.0");
    b.start_daemon_env(
        "gateway.0",
        &[("FAILPOINTS", "sync::apply_delay=return(1500)")],
    );
    wait_s3(&b, &cb, "sync").await;
    // Each write takes at least 1.5 s to apply: right after it, it is pending.
    let end = Instant::now() + Duration::from_secs(5);
    let mut i = 0;
    while Instant::now() < end {
        ca.put("sync", &format!("late/{i}"), body(i, "late"))
            .await
            .unwrap();
        assert!(
            !caught_up(&b),
            "zone B claims caught up with write {i} pending"
        );
        i += 1;
    }
    b.kill9("gateway.0");
    b.start_daemon("gateway.0");
    wait_caught_up(&a, &b, Duration::from_secs(120));
    assert_eq!(versions(&a, "sync"), versions(&b, "sync"));

    // Bad input: a clear error, nothing applied.
    let out = b.cli(&["data", "sync", "status", "--source-zone=nowhere"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a data sync source"));
    let wrong = meridian_sync::remote::RemoteZone {
        name: "dev-a".into(),
        id: String::new(),
        endpoints: vec![a.s3_endpoint()],
        key: meridian_proto::multisite::SystemKey {
            access_key: dev.0.clone(),
            secret_key: "not-the-secret".into(),
        },
        links: Default::default(),
    };
    let e = wrong
        .log_positions(meridian_zone::log::LogKind::Data, &[], Duration::ZERO)
        .await
        .expect_err("a request signed with a wrong key is refused");
    assert!(
        e.to_string().contains("system key") || e.to_string().contains("signature"),
        "{e}"
    );
    let sys = meridian_sync::remote::RemoteZone {
        key: meridian_proto::multisite::SystemKey {
            access_key: keys(&a, "zone.user").0,
            secret_key: keys(&a, "zone.user").1,
        },
        ..wrong
    };
    let e = sys
        .list_log::<Value>(meridian_zone::log::LogKind::Data, 0, "not-a-marker", 10)
        .await
        .expect_err("a corrupt marker is refused");
    assert!(e.to_string().contains("not a log position"), "{e}");
    let e = sys
        .list_log::<Value>(meridian_zone::log::LogKind::Data, 9999, "", 10)
        .await
        .expect_err("an unknown shard is refused");
    assert!(e.to_string().contains("does not exist"), "{e}");
    for tc in [&a, &b] {
        let errs = tc.error_lines();
        assert!(errs.is_empty(), "ERROR lines:\n{}", errs.join("\n"));
    }
}

/// Runs a CLI command on `tc` and returns `tc` (for chaining a key lookup).
fn cli_wrap<'a>(tc: &'a TestCluster, args: &[&str]) -> &'a TestCluster {
    let out = tc.cli(args);
    assert!(
        out.status.success(),
        "meridian {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    tc
}

/// Waits until `tc`'s gateway answers S3 again (its logs and the last
/// error shown if it does not).
async fn wait_s3(tc: &TestCluster, c: &S3Client, bucket: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while let Err(e) = c.ensure_bucket(bucket).await {
        if Instant::now() > deadline {
            tc.dump_logs();
            panic!("the gateway does not answer within 30 s: {e:#}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The replication suite in `tests/s3sync/` (boto3): versioned and suspended
/// buckets, delete markers, multipart, copy, metadata, tags, ACLs, bucket
/// settings made on the secondary, bucket creation and deletion, encrypted
/// objects, and the application-level conflict resolver of RGW's runbook,
/// each compared across zones.
#[test]
fn replication_suite_with_real_clients() {
    let py = common::python::python().unwrap_or_else(|e| {
        panic!("the replication suite cannot run: no Python with the S3 clients:\n{e}")
    });
    let (a, b) = TestCluster::start_zones(
        2,
        &[
            "-o",
            "rgw_sync_reconcile_s=5",
            // Both zones hold the same master keys, as multi-site encryption needs.
            "-o",
            "rgw_crypt_default_encryption_key=4YSmvJtBv0aZ7geVgAsdpRnLBEwWSWlMIGnRS8a9TSA=",
            "-o",
            "rgw_crypt_s3_kms_encryption_keys=testkey-1=YmluCmJvb3N0CmJvb3N0LWJ1aWxkCmNlcGguY29uZgo=",
            // The suite's clients speak plain HTTP to the gateways.
            "-o",
            "rgw_crypt_require_ssl=false",
        ],
    );
    let dev = keys(&a, "dev");
    let junit = a.dir.join("sync-junit.xml");
    let out = std::process::Command::new(&py)
        .args(["-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider"])
        .arg(format!("--junitxml={}", junit.display()))
        .arg(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/s3sync"))
        .env("ZONE_A_ENDPOINT", a.s3_endpoint())
        .env("ZONE_B_ENDPOINT", b.s3_endpoint())
        .env("ZONE_A_CONF", a.conf())
        .env("ZONE_B_CONF", b.conf())
        .env("S3_ACCESS_KEY", &dev.0)
        .env("S3_SECRET_KEY", &dev.1)
        .env("MERIDIAN_BIN", common::bin())
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .expect("run pytest");
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("{stdout}");
    if !out.status.success() {
        a.dump_logs();
        b.dump_logs();
        panic!(
            "the replication suite failed:\n{}\n{}",
            common::python::tail(&stdout, 60),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let report = std::fs::read_to_string(&junit).expect("pytest's JUnit report");
    let count = |attr: &str| common::python::junit_count(&report, attr).unwrap_or(u64::MAX);
    assert!(
        count("tests") >= 6
            && count("skipped") == 0
            && count("failures") == 0
            && count("errors") == 0,
        "replication suite: {report}"
    );
}

/// A `meridian sync agent` this test started: killed -9 and reaped by
/// [`AgentProcess::kill`] or, should the test fail first, when dropped, so
/// no agent outlives its test.
struct AgentProcess(Option<std::process::Child>);

impl AgentProcess {
    /// SIGKILL, then reap (the process is this test's own child, so its
    /// PID cannot have been reused before the wait).
    fn kill(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The system key `dev up --zones` made for zones `tc` belongs to.
fn dev_system_key(tc: &TestCluster) -> (String, String) {
    let key_file = tc.dir.parent().expect("zones dir").join("system-key");
    let key = std::fs::read_to_string(&key_file).expect("system key");
    let (ak, sk) = key.trim().split_once(' ').expect("`AK SK`");
    (ak.into(), sk.into())
}

/// Writes a pair file for `meridian sync agent` (source `src`, destination
/// `dest`, both signed with `key`) and returns its path; `dest_secret`
/// replaces the destination's secret.
fn agent_config(
    src: &TestCluster,
    dest: &TestCluster,
    key: &(String, String),
    dest_secret: Option<&str>,
) -> std::path::PathBuf {
    let (ak, sk) = key;
    let path = dest.dir.join("sync-agent.conf");
    let log = dest.dir.join("log").join("sync-agent.progress");
    std::fs::write(
        &path,
        format!(
            "# {} -> {}\nsource: {}\nsrc_access_key: {ak}\nsrc_secret_key: {sk}\n\
             destination: {}\ndest_access_key: {ak}\ndest_secret_key: {}\nlog_file: {}\n",
            src.dir.display(),
            dest.dir.display(),
            src.s3_endpoint(),
            dest.s3_endpoint(),
            dest_secret.unwrap_or(sk),
            log.display()
        ),
    )
    .expect("write the agent config");
    path
}

/// Starts `meridian sync agent [extra] CONFIG` in the cluster of `dest`
/// (its output in the destination's log dir).
fn start_agent(dest: &TestCluster, config: &std::path::Path, extra: &[&str]) -> AgentProcess {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dest.dir.join("log").join("sync-agent.log"))
        .expect("agent log");
    let child = std::process::Command::new(common::bin())
        .arg("-c")
        .arg(dest.conf())
        .args(["sync", "agent", "--progress-interval", "1"])
        .args(extra)
        .arg(config)
        .env("RUST_LOG", "info")
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .expect("start the sync agent");
    AgentProcess(Some(child))
}

/// A pair file the agent cannot use is refused before anything runs, with
/// the reason.
fn agent_refuses(dest: &TestCluster, config: &std::path::Path, want: &str) {
    let out = dest.cli(&["sync", "agent", &config.display().to_string()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains(want),
        "want {want:?}: {err}"
    );
}

/// A zone that joins holding nothing gets 10,000 objects by full sync from
/// a standalone agent killed -9 in the middle, then keeps up incrementally.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_zone_full_syncs_ten_thousand_objects_through_an_agent_crash() {
    const N: usize = 10_000;
    let (a, b) = TestCluster::start_zones(
        2,
        &[
            "-o",
            "rgw_run_sync_thread=false",
            "-o",
            "rgw_sync_lease_s=4",
        ],
    );
    let dev = keys(&a, "dev");
    let ca = std::sync::Arc::new(s3(&a, &dev));
    ca.ensure_bucket("many").await.unwrap();
    let started = Instant::now();
    let puts = futures::stream::iter(0..N)
        .map(|i| {
            let ca = ca.clone();
            async move {
                ca.put("many", &format!("obj/{i:05}"), body(i % 5, "full"))
                    .await
                    .map_err(|e| format!("PUT {i}: {e}"))
            }
        })
        .buffer_unordered(64)
        .collect::<Vec<_>>()
        .await;
    assert!(
        puts.iter().all(|r| r.is_ok()),
        "{:?}",
        puts.iter().find(|r| r.is_err())
    );
    eprintln!("stored {N} objects in zone A in {:?}", started.elapsed());
    // 64 PUTs in flight over 11 index shards: changes of a shard that
    // start within 100 ms of each other share one pre-commit data log hint
    // (each used to write its own).
    let shared = gateway_counter(&a, "meridian_zone_datalog_hints_shared_total").unwrap_or(0.0);
    let written = gateway_counter(&a, "meridian_zone_datalog_hints_total").unwrap_or(0.0);
    eprintln!("data log hints: {written} written, {shared} changes shared one");
    assert!(
        shared >= (N / 10) as f64,
        "only {shared} of {N} PUTs shared a pre-commit data log hint ({written} written)"
    );

    // Pair files the agent cannot use are refused with the reason.
    let key = dev_system_key(&b);
    agent_refuses(
        &b,
        &agent_config(&a, &b, &key, Some("wrong")),
        "dest_access_key/dest_secret_key",
    );
    agent_refuses(&b, &b.dir.join("no-such.conf"), "read agent config");
    let bad = b.dir.join("bad.conf");
    std::fs::write(&bad, "destination http://x\n").unwrap();
    agent_refuses(&b, &bad, "line 1: expected `key: value`");
    let same = agent_config(&b, &b, &key, None);
    agent_refuses(&b, &same, "the same zone");

    // The bucket record reaches B by metadata sync (the agent does that too).
    let mut agent = start_agent(&b, &agent_config(&a, &b, &key, None), &[]);
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let listed = b.cli(&[
            "--format",
            "json",
            "bucket",
            "list",
            "--bucket=many",
            "--max-entries=1000000",
        ]);
        let n = serde_json::from_slice::<Value>(&listed.stdout)
            .ok()
            .and_then(|v| v.as_array().map(|a| a.len()))
            .unwrap_or(0);
        if n >= N / 5 {
            eprintln!("{n} objects copied when the agent is killed");
            break;
        }
        assert!(Instant::now() < deadline, "full sync made no progress");
        std::thread::sleep(Duration::from_millis(200));
    }
    agent.kill();
    let restarted = Instant::now();
    let mut agent = start_agent(&b, &agent_config(&a, &b, &key, None), &[]);
    let deadline = Instant::now() + Duration::from_secs(600);
    while !caught_up(&b) {
        if Instant::now() > deadline {
            agent.kill();
            b.dump_logs();
            panic!("zone B not caught up after a full sync of {N} objects");
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    eprintln!(
        "full sync finished {:?} after the restart",
        restarted.elapsed()
    );
    // Then incremental: new writes arrive through the same agent.
    for i in 0..50 {
        ca.put("many", &format!("late/{i:03}"), body(i, "late"))
            .await
            .unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if caught_up(&b) && versions(&a, "many").len() == versions(&b, "many").len() {
            break;
        }
        assert!(Instant::now() < deadline, "incremental sync did not follow");
        std::thread::sleep(Duration::from_millis(500));
    }
    agent.kill();
    // The agent printed its shard progress to the pair file's log_file.
    let progress =
        std::fs::read_to_string(b.dir.join("log").join("sync-agent.progress")).unwrap_or_default();
    assert!(
        progress.contains("data from ") && progress.contains("(caught up)"),
        "agent progress: {}",
        &progress[progress.len().saturating_sub(2000)..]
    );
    let (va, vb) = (versions(&a, "many"), versions(&b, "many"));
    assert_eq!(va.len(), N + 50);
    assert_eq!(va, vb, "zone B holds exactly zone A's versions");
    let cb = s3(&b, &dev);
    for i in (0..N).step_by(97) {
        let key = format!("obj/{i:05}");
        assert_eq!(
            cb.get("many", &key).await.unwrap(),
            body(i % 5, "full"),
            "{key}"
        );
    }
}

/// A TCP proxy the test can cut: while cut, live connections are dropped and
/// new ones closed at once.
struct CuttableProxy {
    addr: std::net::SocketAddr,
    cut: tokio::sync::watch::Sender<bool>,
}

impl CuttableProxy {
    async fn start(target: String) -> CuttableProxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind proxy");
        let addr = listener.local_addr().expect("proxy address");
        let (cut, watch) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    continue;
                };
                let mut watch = watch.clone();
                if *watch.borrow() {
                    drop(inbound);
                    continue;
                }
                let target = target.clone();
                tokio::spawn(async move {
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = watch.wait_for(|c| *c) => {}
                    }
                });
            }
        });
        CuttableProxy { addr, cut }
    }

    fn set_cut(&self, cut: bool) {
        let _ = self.cut.send(cut);
    }
}

/// The link between the zones is cut for 30 s while zone A takes writes:
/// zone B reports itself behind throughout, then converges with nothing
/// lost, and the sync error log empties on its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thirty_second_cut_between_the_zones_heals_on_its_own() {
    let (a, b) = TestCluster::start_zones(
        2,
        &["-o", "rgw_sync_reconcile_s=5", "-o", "rgw_sync_lease_s=6"],
    );
    let dev = keys(&a, "dev");
    let target = a.config().gateway["0"].addr.clone();
    let proxy = CuttableProxy::start(target).await;
    // Zone B reaches zone A only through the proxy.
    let url = format!("http://{}", proxy.addr);
    cli_wrap(
        &a,
        &[
            "zone",
            "modify",
            "--rgw-zone=dev-a",
            &format!("--endpoints={url}"),
        ],
    );
    cli_wrap(&a, &["period", "update", "--commit"]);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !String::from_utf8_lossy(&b.cli(&["period", "get"]).stdout).contains(&url) {
        assert!(
            Instant::now() < deadline,
            "zone B never got the period with the proxy"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    let ca = s3(&a, &dev);
    ca.ensure_bucket("steady").await.unwrap();
    wait_caught_up(&a, &b, Duration::from_secs(60));

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let ca = s3(&a, &dev);
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut n = 0usize;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                ca.put("steady", &format!("k/{n:05}"), body(n, "steady"))
                    .await
                    .unwrap();
                n += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            n
        })
    };
    tokio::time::sleep(Duration::from_secs(3)).await;
    proxy.set_cut(true);
    let cut_at = Instant::now();
    while cut_at.elapsed() < Duration::from_secs(30) {
        assert!(
            !caught_up(&b),
            "zone B claims caught up while cut off from zone A"
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    proxy.set_cut(false);
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let written = writer.await.unwrap();
    eprintln!("{written} objects written during the test");
    wait_caught_up(&a, &b, Duration::from_secs(180));
    let (va, vb) = (versions(&a, "steady"), versions(&b, "steady"));
    assert_eq!(va.len(), written);
    assert_eq!(
        va, vb,
        "nothing written during the cut is missing in zone B"
    );
    // Whatever failed during the cut was retried in the background.
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let errs = cli_json(&b, &["sync", "error", "list"]);
        if errs.as_array().is_some_and(|e| e.is_empty()) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "sync errors did not clear: {errs}"
        );
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// Runs a CLI command that must succeed.
fn must(tc: &TestCluster, args: &[&str]) {
    let out = tc.cli(args);
    assert!(
        out.status.success(),
        "meridian {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Polls `ok` every 250 ms until it holds; panics naming `what` after `within`.
fn wait_for(what: &str, within: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !ok() {
        assert!(Instant::now() < deadline, "{what} within {within:?}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Lists metadata of `kind` (user or bucket) in `tc`.
fn metadata_list(tc: &TestCluster, kind: &str) -> Vec<String> {
    let v = cli_json(tc, &["metadata", "list", kind]);
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// Two zonegroups of one realm (us with zone us-1, the metadata master, and
/// eu with zone eu-1), configured with the seed's commands: users with
/// their keys and bucket records reach eu through a `--metadata-only` pair
/// agent, also after the agent is killed -9; a bucket created in eu is
/// recorded in eu; data stays in its zonegroup.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_reaches_another_zonegroup_through_a_metadata_only_agent() {
    let start = |zone: &str, zonegroup: &str| {
        let (z, g) = (
            format!("rgw_zone={zone}"),
            format!("rgw_zonegroup={zonegroup}"),
        );
        TestCluster::start_with(
            1,
            2,
            "1G",
            &[
                "--s3-port",
                "0",
                "-o",
                &z,
                "-o",
                &g,
                "-o",
                "rgw_period_poll_s=1",
                "-o",
                "rgw_run_sync_thread=false",
                // The killed agent's leases are taken over after 4 s.
                "-o",
                "rgw_sync_lease_s=4",
            ],
        )
    };
    let (a, b) = (start("us-1", "us"), start("eu-1", "eu"));
    let (ea, eb) = (a.s3_endpoint(), b.s3_endpoint());
    let key = ("MZSYSTEMKEY000000001".to_string(), "mzsecret".repeat(5));
    let (ak, sk) = (
        format!("--access-key={}", key.0),
        format!("--secret={}", key.1),
    );
    let url = format!("--url={ea}");
    must(&a, &["realm", "create", "--rgw-realm=mz", "--default"]);
    must(
        &a,
        &[
            "zonegroup",
            "create",
            "--rgw-zonegroup=us",
            &format!("--endpoints={ea}"),
            "--rgw-realm=mz",
            "--master",
            "--default",
        ],
    );
    must(
        &a,
        &[
            "zone",
            "create",
            "--rgw-zonegroup=us",
            "--rgw-zone=us-1",
            &format!("--endpoints={ea}"),
            &ak,
            &sk,
            "--master",
            "--default",
        ],
    );
    must(
        &a,
        &[
            "user",
            "create",
            "--uid=zone.user",
            "--display-name=Sync",
            &ak,
            &sk,
            "--system",
        ],
    );
    must(&a, &["period", "update", "--commit"]);
    must(&b, &["realm", "pull", &url, &ak, &sk]);
    must(&b, &["realm", "default", "--rgw-realm=mz"]);
    must(&b, &["period", "pull", &url, &ak, &sk]);
    must(
        &b,
        &[
            "zonegroup",
            "create",
            "--rgw-zonegroup=eu",
            &format!("--endpoints={eb}"),
            "--rgw-realm=mz",
        ],
    );
    must(
        &b,
        &[
            "zone",
            "create",
            "--rgw-zonegroup=eu",
            "--rgw-zone=eu-1",
            &format!("--endpoints={eb}"),
            &ak,
            &sk,
            "--master",
        ],
    );
    must(&b, &["period", "update", "--commit"]);
    // The master learnt of zonegroup eu through the commit.
    let period = cli_json(&a, &["period", "get"]);
    let groups: Vec<&str> = period["period_map"]["zonegroups"]
        .as_array()
        .expect("zonegroups")
        .iter()
        .filter_map(|g| g["name"].as_str())
        .collect();
    assert!(groups.contains(&"eu") && groups.contains(&"us"), "{period}");

    // A user and a bucket with data in us.
    must(
        &a,
        &["user", "create", "--uid=alice", "--display-name=Alice"],
    );
    let alice = keys(&a, "alice");
    let ca = s3(&a, &alice);
    ca.ensure_bucket("usbucket").await.unwrap();
    ca.put("usbucket", "k", body(1, "us")).await.unwrap();

    let pair = agent_config(&a, &b, &key, None);
    // Data does not cross zonegroups: a data pair is refused.
    agent_refuses(&b, &pair, "data only syncs within a zonegroup");
    let mut agent = start_agent(&b, &pair, &["--metadata-only"]);
    wait_for("alice and usbucket in eu", Duration::from_secs(60), || {
        metadata_list(&b, "user").contains(&"alice".to_string())
            && metadata_list(&b, "bucket").contains(&"usbucket".to_string())
    });
    // Alice's key works in eu; her new bucket there is made on the master
    // and recorded in zonegroup eu; its data stays in eu.
    let cb = s3(&b, &alice);
    cb.ensure_bucket("eubucket").await.unwrap();
    cb.put("eubucket", "k", body(2, "eu")).await.unwrap();
    assert_eq!(cb.get("eubucket", "k").await.unwrap(), body(2, "eu"));
    for tc in [&a, &b] {
        let st = cli_json(tc, &["bucket", "stats", "--bucket=eubucket"]);
        assert_eq!(st["zonegroup"], "eu", "{st}");
    }
    let objects = |tc: &TestCluster, bucket: &str| {
        cli_json(tc, &["bucket", "stats", &format!("--bucket={bucket}")])["usage"]["rgw.main"]
            ["num_objects"]
            .as_u64()
            .unwrap_or(0)
    };
    assert_eq!(objects(&a, "eubucket"), 0, "eu data stayed in eu");
    assert_eq!(objects(&b, "usbucket"), 0, "us data stayed in us");
    // A request for the other zonegroup's bucket is sent there (RGW's 301
    // PermanentRedirect): nothing is read from or written to the wrong one.
    for (tc, client, bucket) in [(&b, &cb, "usbucket"), (&a, &ca, "eubucket")] {
        let get = client.get(bucket, "k").await.unwrap_err().to_string();
        let put = client
            .put(bucket, "wrong-zonegroup", body(9, "x"))
            .await
            .unwrap_err()
            .to_string();
        for err in [get, put] {
            assert!(
                err.contains("301") && err.contains("PermanentRedirect"),
                "{bucket}: {err}"
            );
        }
        assert_eq!(
            objects(tc, bucket),
            0,
            "{bucket} took a write in the wrong zonegroup"
        );
    }

    // Killed -9, the agent picks up where it left off after a restart.
    agent.kill();
    must(&a, &["user", "create", "--uid=bob", "--display-name=Bob"]);
    must(&a, &["user", "suspend", "--uid=alice"]);
    let mut agent = start_agent(&b, &pair, &["--metadata-only"]);
    let bob = keys(&a, "bob");
    wait_for(
        "bob in eu, alice suspended there",
        Duration::from_secs(60),
        || {
            let suspended = cli_json(&b, &["user", "info", "--uid=alice"])["suspended"] == 1;
            suspended && b.cli(&["user", "info", "--uid=bob"]).status.success()
        },
    );
    assert_eq!(keys(&b, "bob"), bob, "bob's keys are the master's");
    assert!(
        cb.put("eubucket", "k2", body(3, "eu")).await.is_err(),
        "a suspended user is refused in eu too"
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while !caught_up(&b) {
        if Instant::now() > deadline {
            let detail = b.cli(&["sync", "status", "--detail"]);
            panic!(
                "eu-1 not caught up with the metadata master: {}",
                String::from_utf8_lossy(&detail.stdout)
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    // The agent's own report (every second) comes to say so too.
    let progress_file = b.dir.join("log").join("sync-agent.progress");
    let read_progress = || std::fs::read_to_string(&progress_file).unwrap_or_default();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !read_progress().contains("(caught up)") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(250));
    }
    let progress = read_progress();
    assert!(
        progress.contains("\nmetadata from us-1")
            && progress.contains("(caught up)")
            && !progress.contains("\ndata from"),
        "agent progress: {progress}\nagent log: {}",
        std::fs::read_to_string(b.dir.join("log").join("sync-agent.log"))
            .unwrap_or_default()
            .lines()
            .filter(|l| !l.contains(" INFO "))
            .collect::<Vec<_>>()
            .join("\n")
    );
    agent.kill();
}

/// Whether `bucket sync status` on `tc` says the bucket is replicating and
/// caught up with every source.
fn bucket_caught_up(tc: &TestCluster, bucket: &str) -> bool {
    let out = tc.cli(&[
        "--format",
        "json",
        "bucket",
        "sync",
        "status",
        &format!("--bucket={bucket}"),
    ]);
    let Ok(v) = serde_json::from_slice::<Value>(&out.stdout) else {
        return false;
    };
    out.status.success()
        && v["sync_disabled"] == false
        && v["sources"]
            .as_array()
            .is_some_and(|s| !s.is_empty() && s.iter().all(|s| s["caught_up"] == true))
}

/// `bucket sync disable` (run on the secondary, so forwarded to the
/// master) keeps a bucket local in both zones while another bucket goes on
/// replicating and `sync status` still reaches "caught up"; `bucket sync
/// enable` brings over, both ways, everything written into it meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bucket_sync_disable_keeps_a_bucket_local_and_enable_brings_it_back() {
    let (a, b) = TestCluster::start_zones(2, &["-o", "rgw_sync_reconcile_s=3"]);
    let dev = keys(&a, "dev");
    let (ca, cb) = (s3(&a, &dev), s3(&b, &dev));
    ca.ensure_bucket("local").await.unwrap();
    ca.ensure_bucket("shared").await.unwrap();
    ca.put("local", "before", body(3, "a")).await.unwrap();
    wait_caught_up(&a, &b, Duration::from_secs(60));
    assert_eq!(cb.get("local", "before").await.unwrap(), body(3, "a"));

    // Disabled through the secondary: the master records it, both zones know.
    let v = cli_json(&b, &["bucket", "sync", "disable", "--bucket=local"]);
    assert_eq!(v["sync_disabled"], true, "{v}");
    for tc in [&a, &b] {
        wait_for(
            "both zones see the bucket's sync disabled",
            Duration::from_secs(30),
            || {
                cli_json(tc, &["bucket", "sync", "status", "--bucket=local"])["sync_disabled"]
                    == true
            },
        );
    }
    // Zone A learnt it by metadata sync; its gateway caches bucket records
    // for rgw_cache_ttl_ms (2 s). (Zone B's command waited that out itself.)
    tokio::time::sleep(Duration::from_millis(2500)).await;
    for i in 0..20 {
        ca.put("local", &format!("a/{i}"), body(i, "a"))
            .await
            .unwrap();
        ca.put("shared", &format!("a/{i}"), body(i, "a"))
            .await
            .unwrap();
    }
    for i in 0..6 {
        cb.put("local", &format!("b/{i}"), body(i, "b"))
            .await
            .unwrap();
    }
    // The other bucket replicates, and the disabled one does not hold
    // `sync status` back.
    wait_caught_up(&a, &b, Duration::from_secs(60));
    for i in 0..20 {
        assert_eq!(
            cb.get("shared", &format!("a/{i}")).await.unwrap(),
            body(i, "a")
        );
    }
    let out = b.cli(&["bucket", "sync", "run", "--bucket=local"]);
    assert!(
        !out.status.success(),
        "bucket sync run on a disabled bucket"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("sync is disabled for bucket local"), "{err}");
    // A few reconcile passes later the disabled bucket is still local.
    tokio::time::sleep(Duration::from_secs(7)).await;
    for i in 0..20 {
        assert!(
            cb.get("local", &format!("a/{i}")).await.is_err(),
            "a/{i} reached zone B while the bucket's sync was disabled"
        );
    }
    for i in 0..6 {
        assert!(
            ca.get("local", &format!("b/{i}")).await.is_err(),
            "b/{i} reached zone A while the bucket's sync was disabled"
        );
    }

    // Enabled on the master: each zone brings the other's writes over.
    let v = cli_json(&a, &["bucket", "sync", "enable", "--bucket=local"]);
    assert_eq!(v["sync_disabled"], false, "{v}");
    wait_for(
        "the bucket caught up in both zones",
        Duration::from_secs(90),
        || bucket_caught_up(&a, "local") && bucket_caught_up(&b, "local"),
    );
    wait_caught_up(&a, &b, Duration::from_secs(60));
    for i in 0..20 {
        assert_eq!(
            cb.get("local", &format!("a/{i}")).await.unwrap(),
            body(i, "a"),
            "a/{i} in zone B after enable"
        );
    }
    for i in 0..6 {
        assert_eq!(
            ca.get("local", &format!("b/{i}")).await.unwrap(),
            body(i, "b"),
            "b/{i} in zone A after enable"
        );
    }
    assert_eq!(cb.get("local", "before").await.unwrap(), body(3, "a"));

    // Bad input is refused, naming what is wrong.
    let out = b.cli(&["bucket", "sync", "disable", "--bucket=no-such-bucket"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no-such-bucket"), "{err}");
}

/// The seed's planned failover, steps 1–8, with sync running and a client
/// writing to the master throughout: once the master refuses writes
/// (read-only) and the secondary has caught up, the secondary is promoted
/// and the period committed there; every write the old master acknowledged
/// is in the new master, byte for byte, and both zones keep replicating
/// under the new period without a gateway restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn planned_failover_with_writes_in_flight_loses_nothing_acknowledged() {
    let (a, b) = TestCluster::start_zones(2, &["-o", "rgw_sync_reconcile_s=5"]);
    let dev = keys(&a, "dev");
    let (ca, cb) = (s3(&a, &dev), s3(&b, &dev));
    ca.ensure_bucket("orders").await.unwrap();

    // A client writes to the master until the master refuses it.
    let acked = std::sync::Arc::new(std::sync::Mutex::new(Vec::<usize>::new()));
    let writer = {
        let (ca, acked) = (s3(&a, &dev), acked.clone());
        tokio::spawn(async move {
            let mut refused = 0;
            for i in 0.. {
                match ca.put("orders", &format!("o/{i:05}"), body(i, "a")).await {
                    Ok(()) => acked.lock().unwrap().push(i),
                    Err(_) => {
                        refused += 1;
                        // Refused for good: the zone is read-only.
                        if refused >= 20 {
                            return i;
                        }
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }
            unreachable!()
        })
    };
    // Enough writes in flight to count, however loaded the machine is.
    tokio::time::sleep(Duration::from_secs(3)).await;
    wait_for(
        "the master to acknowledge 20 writes",
        Duration::from_secs(60),
        || acked.lock().unwrap().len() > 20,
    );
    // Steps 1-2 (the seed checks sync status, then stops writes; with writes
    // in flight the check is what step 3 repeats): stop writes to the master.
    must(&a, &["zone", "modify", "--rgw-zone=dev-a", "--read-only"]);
    let tried = tokio::time::timeout(Duration::from_secs(60), writer)
        .await
        .expect("the master still accepts writes 60 s after --read-only")
        .unwrap();
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() > 20,
        "too few writes before the failover: {}",
        acked.len()
    );
    // Step 3: wait for the final sync.
    wait_caught_up(&a, &b, Duration::from_secs(90));
    // Steps 4-7 on the secondary's cluster: promote, demote, zonegroup, commit.
    let old_period = cli_json(&b, &["period", "get"])["id"].clone();
    must(
        &b,
        &[
            "zone",
            "modify",
            "--rgw-zone=dev-b",
            "--master",
            "--default",
        ],
    );
    must(
        &b,
        &["zone", "modify", "--rgw-zone=dev-a", "--master=false"],
    );
    must(
        &b,
        &[
            "zonegroup",
            "modify",
            "--rgw-zonegroup=dev",
            "--master-zone=dev-b",
        ],
    );
    let p = cli_json(&b, &["period", "update", "--commit"]);
    assert_ne!(p["id"], old_period, "the commit made a new period");
    // Step 8: the old master accepts writes again, now as a secondary.
    must(
        &a,
        &["zone", "modify", "--rgw-zone=dev-a", "--read-only=false"],
    );

    // Recovery point zero: every acknowledged write is in the new master.
    for i in &acked {
        let got = cb
            .get("orders", &format!("o/{i:05}"))
            .await
            .unwrap_or_else(|e| {
                panic!("acknowledged write o/{i:05} is not in the new master: {e}")
            });
        assert_eq!(got, body(*i, "a"), "o/{i:05} differs in the new master");
    }
    // The new master takes metadata writes; both zones go on replicating
    // under the new period, their gateways never restarted.
    let mut created = false;
    for _ in 0..60 {
        if cb.ensure_bucket("after-failover").await.is_ok() {
            created = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(created, "the new master does not create buckets");
    cb.put("after-failover", "from-b", body(4, "b"))
        .await
        .unwrap();
    let mut ok = false;
    for _ in 0..60 {
        if ca.put("orders", "from-a", body(5, "a")).await.is_ok() {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(
        ok,
        "the old master does not accept writes after --read-only=false"
    );
    wait_caught_up(&a, &b, Duration::from_secs(90));
    assert_eq!(
        ca.get("after-failover", "from-b").await.unwrap(),
        body(4, "b")
    );
    assert_eq!(cb.get("orders", "from-a").await.unwrap(), body(5, "a"));
    assert!(
        cli_json(&a, &["period", "get"])["master_zone"] == p["master_zone"],
        "the old master did not learn the new period"
    );
    eprintln!(
        "planned failover: {} writes acknowledged of {tried} tried before read-only",
        acked.len()
    );
}

/// `zone failover --to=ZONE` does the planned runbook in one command while a
/// client keeps writing to the master: every write acknowledged before the
/// master refused writes is in the new master the moment the command
/// returns; the old master takes writes again when it returns; both zones
/// go on replicating under the new period. It refuses, changing nothing,
/// when the master is unreachable or the zone already is the master.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zone_failover_command_moves_the_master_with_recovery_point_zero() {
    let (a, b) = TestCluster::start_zones(2, &["-o", "rgw_sync_reconcile_s=5"]);
    let dev = keys(&a, "dev");
    let (ca, cb) = (s3(&a, &dev), s3(&b, &dev));
    ca.ensure_bucket("orders").await.unwrap();

    // A client writes to the master throughout; it notes the first refusal.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let log = std::sync::Arc::new(std::sync::Mutex::new((Vec::<usize>::new(), None::<usize>)));
    let writer = {
        let (ca, log, stop) = (s3(&a, &dev), log.clone(), stop.clone());
        tokio::spawn(async move {
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                match ca.put("orders", &format!("o/{i:05}"), body(i, "a")).await {
                    Ok(()) => log.lock().unwrap().0.push(i),
                    Err(_) => {
                        log.lock().unwrap().1.get_or_insert(i);
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
                i += 1;
            }
        })
    };
    tokio::time::sleep(Duration::from_secs(3)).await;
    wait_for(
        "the master to acknowledge 20 writes",
        Duration::from_secs(60),
        || log.lock().unwrap().0.len() > 20,
    );

    let old_period = cli_json(&b, &["period", "get"])["id"].clone();
    let out = {
        let conf = b.conf();
        tokio::task::spawn_blocking(move || {
            std::process::Command::new(common::bin())
                .arg("-c")
                .arg(conf)
                .args(["--format", "json", "zone", "failover", "--to=dev-b"])
                .output()
                .expect("run meridian")
        })
        .await
        .unwrap()
    };
    assert!(
        out.status.success(),
        "zone failover failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).expect("failover JSON");
    eprintln!("zone failover: {report:#}");
    assert_eq!(report["new_master"], "dev-b");
    assert_eq!(
        report["steps"].as_array().map(Vec::len),
        Some(7),
        "{report}"
    );
    assert!(report["write_unavailable_seconds"].as_f64().unwrap() > 0.0);

    // Recovery point zero, checked at once: every write acknowledged before
    // the first refusal is in the new master.
    let (acked, first_refused) = log.lock().unwrap().clone();
    let first_refused =
        first_refused.expect("the master never refused a write during the failover");
    let before: Vec<usize> = acked
        .iter()
        .copied()
        .filter(|i| *i < first_refused)
        .collect();
    assert!(
        before.len() > 20,
        "too few writes before the failover: {}",
        before.len()
    );
    for i in &before {
        let got = cb
            .get("orders", &format!("o/{i:05}"))
            .await
            .unwrap_or_else(|e| {
                panic!("acknowledged write o/{i:05} is not in the new master: {e}")
            });
        assert_eq!(got, body(*i, "a"), "o/{i:05} differs in the new master");
    }
    // The command returned once the old master took writes again, and the
    // new master takes metadata writes, with no retry.
    ca.put("orders", "after", body(7, "a")).await.unwrap();
    cb.ensure_bucket("after-failover").await.unwrap();
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    writer.await.unwrap();
    for tc in [&a, &b] {
        let p = cli_json(tc, &["period", "get"]);
        assert_ne!(p["id"], old_period);
        assert_eq!(
            p["id"], report["period"]["id"],
            "both zones have the new period"
        );
    }
    assert_eq!(
        cli_json(&a, &["zone", "get", "--rgw-zone=dev-a"])["read_only"],
        false
    );

    // Everything the old master acknowledged, before and after, arrives.
    wait_caught_up(&a, &b, Duration::from_secs(120));
    let acked = log.lock().unwrap().0.clone();
    for i in &acked {
        assert_eq!(
            cb.get("orders", &format!("o/{i:05}")).await.unwrap(),
            body(*i, "a")
        );
    }
    assert_eq!(cb.get("orders", "after").await.unwrap(), body(7, "a"));
    let out = a.cli(&["zone", "failover", "--to=dev-a"]);
    assert!(
        out.status.success(),
        "failing back: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let back = cli_json(&a, &["period", "get"]);

    // Refusals change nothing: the zone already is the master; the master
    // cannot be reached.
    let out = a.cli(&["zone", "failover", "--to=dev-a"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("already the master"));
    a.kill9("gateway.0");
    let out = b.cli(&["zone", "failover", "--to=dev-b", "--timeout=10"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "failover with the master down succeeded"
    );
    assert!(
        err.contains("unreachable") && err.contains("nothing was changed"),
        "{err}"
    );
    assert_eq!(cli_json(&b, &["period", "get"])["id"], back["id"]);
    assert_eq!(
        cli_json(&b, &["zone", "get", "--rgw-zone=dev-b"])["read_only"],
        false
    );
}

/// Entries left in a zone's metadata log, data log and `bucket`'s index log.
fn log_entries(tc: &TestCluster, bucket: &str) -> (usize, usize, usize) {
    let n = |args: &[&str]| cli_json(tc, args).as_array().map_or(usize::MAX, Vec::len);
    (
        n(&["mdlog", "list"]),
        n(&["datalog", "list"]),
        n(&["bilog", "list", &format!("--bucket={bucket}")]),
    )
}

/// Bounded logs: once the other zone has applied them, a zone's metadata,
/// data and bucket index logs are trimmed by themselves. While the peer's
/// gateway is down, zone A keeps every entry written meanwhile and its
/// health names the peer; when the peer returns and catches up, the logs
/// are trimmed back, the warning clears, and nothing written during the
/// outage is missing from the peer. The operator commands refuse bad input.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_are_trimmed_once_every_peer_has_them_and_a_missing_peer_is_named() {
    let (a, b) = TestCluster::start_zones(
        2,
        &[
            "-o",
            "rgw_sync_log_trim_interval_s=2",
            "-o",
            "rgw_sync_reconcile_s=5",
        ],
    );
    let dev = keys(&a, "dev");
    let (ca, cb) = (s3(&a, &dev), s3(&b, &dev));
    ca.ensure_bucket("logs").await.unwrap();
    for i in 0..30 {
        ca.put("logs", &format!("k{i}"), body(i, "a"))
            .await
            .unwrap();
    }
    must(
        &a,
        &["user", "create", "--uid=trim-user", "--display-name=T"],
    );
    wait_caught_up(&a, &b, Duration::from_secs(90));
    for tc in [&a, &b] {
        wait_for(
            "every log trimmed once the other zone applied it",
            Duration::from_secs(60),
            || log_entries(tc, "logs") == (0, 0, 0),
        );
    }
    let detail = a.health_detail();
    assert!(!detail.contains("SYNC_PEER"), "{detail}");

    // Zone B's gateway is gone: A cannot learn how far B has read.
    b.kill9("gateway.0");
    for i in 30..60 {
        ca.put("logs", &format!("k{i}"), body(i, "a"))
            .await
            .unwrap();
    }
    wait_for(
        "zone A's health names the unreachable zone dev-b",
        Duration::from_secs(60),
        || {
            let d = a.health_detail();
            d.starts_with("HEALTH_WARN") && d.contains("SYNC_PEER_UNREACHABLE: zone dev-b")
        },
    );
    // Several trim passes later, nothing B has not read is gone.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let (_, datalog, bilog) = log_entries(&a, "logs");
    assert!(
        datalog >= 1 && bilog >= 30,
        "zone A trimmed entries zone B has not read: datalog {datalog}, bilog {bilog}"
    );
    // The operator's trim, without a marker, is just as careful.
    let r = cli_json(&a, &["bilog", "trim", "--bucket=logs"]);
    assert_eq!(r["bilog_trimmed"], 0, "{r}");
    assert_eq!(r["readers"][0]["zone"], "dev-b", "{r}");
    assert_eq!(r["readers"][0]["reachable"], false, "{r}");

    b.start_daemon("gateway.0");
    wait_caught_up(&a, &b, Duration::from_secs(120));
    wait_for(
        "zone A's logs trimmed back once dev-b caught up",
        Duration::from_secs(60),
        || log_entries(&a, "logs") == (0, 0, 0),
    );
    wait_for("the warning clears", Duration::from_secs(60), || {
        !a.health_detail().contains("SYNC_PEER")
    });
    for i in 0..60 {
        assert_eq!(
            cb.get("logs", &format!("k{i}")).await.unwrap(),
            body(i, "a"),
            "k{i} in zone B"
        );
    }

    // Explicit markers: a marker of another form is refused, a shard out
    // of range is named, and --shard-id alone is not a trim.
    for (args, want) in [
        (
            vec!["datalog", "trim", "--end-marker=zzz"],
            "give a marker as `list` prints it",
        ),
        (
            vec!["mdlog", "trim", "--shard-id=999", "--end-marker=5"],
            "--shard-id 999 is out of range",
        ),
        (
            vec!["bilog", "trim", "--bucket=logs", "--shard-id=0"],
            "--shard-id needs --end-marker",
        ),
        (
            vec!["bilog", "trim", "--bucket=no-such-bucket"],
            "no-such-bucket",
        ),
    ] {
        let out = a.cli(&args);
        assert!(!out.status.success(), "{args:?} succeeded");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(want), "{args:?}: {err}");
    }
    // An explicit marker trims through it, whatever peers have read (zone
    // B's gateway is stopped so that the zone's own trimming stays out).
    b.kill9("gateway.0");
    ca.put("logs", "last", body(1, "a")).await.unwrap();
    let listed = cli_json(&a, &["bilog", "list", "--bucket=logs"]);
    let last = listed
        .as_array()
        .and_then(|v| v.last())
        .and_then(|e| e["marker"].as_str())
        .expect("the new write's bilog entry")
        .to_string();
    let r = cli_json(
        &a,
        &[
            "bilog",
            "trim",
            "--bucket=logs",
            &format!("--end-marker={last}"),
        ],
    );
    assert!(r["bilog_trimmed"].as_u64().is_some_and(|n| n >= 1), "{r}");
    assert_eq!(log_entries(&a, "logs").2, 0);
}

/// A counter of a gateway's metrics (0 before it was first counted).
fn gateway_counter(tc: &TestCluster, series: &str) -> Option<f64> {
    let cfg = tc.config();
    let addr = cfg.gateway["0"].metrics_addr.clone()?;
    let s = std::net::TcpStream::connect(&addr).ok()?;
    drop(s);
    let scrape = tc.scrape(Some(&addr));
    Some(
        scrape
            .lines()
            .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
            .unwrap_or(0.0),
    )
}

/// `rgw_sync_max_bandwidth` (the seed's "Rate Limiting", set as it says
/// with `config set client.rgw`) holds: zone B full-syncs 80 MiB from zone
/// A at a 2 MiB/s limit, and the bytes its gateway receives over 30 s of
/// that sync stay within 10% of the limit; then every object is there,
/// byte for byte. RGW's names for the batch size and lease settings are
/// accepted in the file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sync_bandwidth_limit_holds_through_a_full_sync() {
    const LIMIT: f64 = 2.0 * 1024.0 * 1024.0;
    let (a, b) = TestCluster::start_zones(
        2,
        &[
            "-o",
            "rgw_sync_obj_batch_size=32",
            "-o",
            "rgw_sync_lease_period=6",
        ],
    );
    let cfg = b.config();
    assert_eq!(cfg.global.rgw_sync_full_window, 32);
    assert_eq!(cfg.global.rgw_sync_lease_s, 6);
    let dev = keys(&a, "dev");
    let (ca, cb) = (s3(&a, &dev), s3(&b, &dev));
    ca.ensure_bucket("bwlimit").await.unwrap();
    wait_caught_up(&a, &b, Duration::from_secs(60));
    // Zone B's gateway (its sync) is down while zone A takes the data.
    b.kill9("gateway.0");
    let big = |i: usize| bytes::Bytes::from(vec![(i % 251) as u8; 1 << 20]);
    const OBJECTS: usize = 80;
    let puts = futures::stream::iter(0..OBJECTS)
        .map(|i| {
            let ca = &ca;
            async move { ca.put("bwlimit", &format!("o{i}"), big(i)).await }
        })
        .buffer_unordered(4)
        .collect::<Vec<_>>()
        .await;
    assert!(puts.iter().all(Result::is_ok), "{puts:?}");
    must(&b, &["data", "sync", "init", "--source-zone=dev-a"]);
    must(
        &b,
        &[
            "config",
            "set",
            "client.rgw",
            "rgw_sync_max_bandwidth",
            "2097152",
        ],
    );
    b.start_daemon("gateway.0");
    let series = "meridian_sync_bytes_received_total ";
    wait_for(
        "zone B's gateway receives object bytes",
        Duration::from_secs(60),
        || gateway_counter(&b, series).is_some_and(|v| v > 0.0),
    );
    // Past the start, over 30 s of the ~40 s transfer.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (t0, v0) = (Instant::now(), gateway_counter(&b, series).unwrap());
    tokio::time::sleep(Duration::from_secs(30)).await;
    let (t1, v1) = (Instant::now(), gateway_counter(&b, series).unwrap());
    let rate = (v1 - v0) / (t1 - t0).as_secs_f64();
    println!(
        "sync fetched {:.3} MiB/s under a 2 MiB/s limit",
        rate / LIMIT * 2.0
    );
    assert!(
        (0.9 * LIMIT..=1.1 * LIMIT).contains(&rate),
        "sync fetched {:.2} MiB/s under a 2 MiB/s limit",
        rate / LIMIT * 2.0
    );
    wait_caught_up(&a, &b, Duration::from_secs(120));
    for i in 0..OBJECTS {
        assert_eq!(
            cb.get("bwlimit", &format!("o{i}")).await.unwrap(),
            big(i),
            "o{i}"
        );
    }
}

/// `sync info --bucket=B` on `tc`: whether B syncs from the other zone
/// (sources) and to it (dests).
fn policy_says(tc: &TestCluster, bucket: &str) -> (bool, bool) {
    let v = cli_json(tc, &["sync", "info", &format!("--bucket={bucket}")]);
    (
        v["sources"][0]["sync"] == true,
        v["dests"][0]["sync"] == true,
    )
}

/// The seed's "Configuring Sync Policies" runbook, word for word with our
/// zone names, then Ceph's bucket-level pattern: a zonegroup policy with a
/// directional flow dev-a → dev-b and a pipe for `critical-*` replicates
/// exactly those buckets, one way; turned `allowed`, only a bucket whose
/// own policy enables it replicates (and catches up by full sync); a
/// bucket policy `forbidden` stops it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_policies_replicate_exactly_the_buckets_and_directions_they_name() {
    let (a, b) = TestCluster::start_zones(2, &["-o", "rgw_sync_reconcile_s=3"]);
    let dev = keys(&a, "dev");
    let (ca, cb) = (s3(&a, &dev), s3(&b, &dev));
    let empty = cli_json(&a, &["sync", "policy", "get", "--rgw-zonegroup=dev"]);
    assert_eq!(empty["groups"], serde_json::json!([]), "{empty}");
    must(
        &a,
        &[
            "sync",
            "group",
            "create",
            "--rgw-zonegroup=dev",
            "--group-id=critical-data",
            "--status=enabled",
        ],
    );
    must(
        &a,
        &[
            "sync",
            "group",
            "flow",
            "create",
            "--rgw-zonegroup=dev",
            "--group-id=critical-data",
            "--flow-id=east-to-west",
            "--flow-type=directional",
            "--source-zone=dev-a",
            "--dest-zone=dev-b",
        ],
    );
    must(
        &a,
        &[
            "sync",
            "group",
            "pipe",
            "create",
            "--rgw-zonegroup=dev",
            "--group-id=critical-data",
            "--pipe-id=critical-buckets",
            "--source-zones=dev-a",
            "--dest-zones=dev-b",
            "--bucket=critical-*",
        ],
    );
    // A flow naming a zone that is not in the zonegroup is refused.
    let out = a.cli(&[
        "sync",
        "group",
        "flow",
        "create",
        "--group-id=critical-data",
        "--flow-id=bad",
        "--flow-type=directional",
        "--source-zone=dev-a",
        "--dest-zone=nowhere",
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("'nowhere' is not in the zonegroup"), "{err}");
    let staged = cli_json(&a, &["sync", "policy", "get"]);
    let g = &staged["groups"][0];
    assert_eq!(g["status"], "enabled", "{staged}");
    assert_eq!(g["data_flow"]["directional"][0]["dest_zone"], "dev-b");
    assert_eq!(g["pipes"][0]["source"]["bucket"], "critical-*");
    // Staged only: nothing changes until the period is committed.
    assert_eq!(
        cli_json(&a, &["sync", "info"])["policy"]["groups"],
        serde_json::json!([])
    );
    must(&a, &["period", "update", "--commit"]);
    for tc in [&a, &b] {
        wait_for(
            "the policy is in both zones' current period",
            Duration::from_secs(60),
            || cli_json(tc, &["sync", "info"])["policy"]["groups"][0]["id"] == "critical-data",
        );
    }
    // Gateways act on the map they were sent; give them a moment.
    tokio::time::sleep(Duration::from_secs(2)).await;

    for bucket in ["critical-1", "other-1"] {
        ca.ensure_bucket(bucket).await.unwrap();
    }
    wait_for(
        "zone B knows the buckets (metadata still syncs)",
        Duration::from_secs(60),
        || metadata_list(&b, "bucket").len() >= 2,
    );
    for i in 0..10 {
        ca.put("critical-1", &format!("k{i}"), body(i, "a"))
            .await
            .unwrap();
        ca.put("other-1", &format!("k{i}"), body(i, "a"))
            .await
            .unwrap();
    }
    cb.put("critical-1", "from-b", body(1, "b")).await.unwrap();
    assert_eq!(policy_says(&b, "critical-1"), (true, false));
    assert_eq!(policy_says(&a, "critical-1"), (false, true));
    assert_eq!(policy_says(&b, "other-1"), (false, false));
    wait_caught_up(&a, &b, Duration::from_secs(60));
    for i in 0..10 {
        assert_eq!(
            cb.get("critical-1", &format!("k{i}")).await.unwrap(),
            body(i, "a")
        );
    }
    // Reconcile passes later, the rest has still not moved.
    tokio::time::sleep(Duration::from_secs(7)).await;
    for i in 0..10 {
        assert!(
            cb.get("other-1", &format!("k{i}")).await.is_err(),
            "other-1/k{i} reached zone B: no pipe names other-1"
        );
    }
    assert!(
        ca.get("critical-1", "from-b").await.is_err(),
        "critical-1/from-b reached zone A against the directional flow"
    );
    let st = cli_json(&b, &["bucket", "sync", "status", "--bucket=other-1"]);
    assert!(
        st["sources"][0]["policy"]
            .as_str()
            .is_some_and(|s| s.contains("no zonegroup sync group")),
        "{st}"
    );

    // Ceph's bucket-level pattern: the zonegroup only allows, for every
    // bucket; a bucket's own group (set through the secondary, so
    // forwarded to the master) enables one.
    must(
        &a,
        &[
            "sync",
            "group",
            "modify",
            "--group-id=critical-data",
            "--status=allowed",
        ],
    );
    must(
        &a,
        &[
            "sync",
            "group",
            "pipe",
            "modify",
            "--group-id=critical-data",
            "--pipe-id=critical-buckets",
            "--source-bucket=*",
            "--dest-bucket=*",
        ],
    );
    must(&a, &["period", "update", "--commit"]);
    for tc in [&a, &b] {
        wait_for(
            "the allowed policy is in both zones' current period",
            Duration::from_secs(60),
            || cli_json(tc, &["sync", "info"])["policy"]["groups"][0]["status"] == "allowed",
        );
    }
    must(
        &b,
        &[
            "sync",
            "group",
            "create",
            "--bucket=other-1",
            "--group-id=other-1-sync",
            "--status=enabled",
        ],
    );
    must(
        &b,
        &[
            "sync",
            "group",
            "pipe",
            "create",
            "--bucket=other-1",
            "--group-id=other-1-sync",
            "--pipe-id=all",
            "--source-zones=*",
            "--dest-zones=*",
        ],
    );
    let bp = cli_json(&a, &["sync", "policy", "get", "--bucket=other-1"]);
    assert_eq!(bp["groups"][0]["id"], "other-1-sync", "{bp}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    ca.put("critical-1", "after-allowed", body(2, "a"))
        .await
        .unwrap();
    cb.put("other-1", "from-b", body(2, "b")).await.unwrap();
    wait_for(
        "other-1 caught up by full sync in zone B",
        Duration::from_secs(90),
        || bucket_caught_up(&b, "other-1"),
    );
    wait_caught_up(&a, &b, Duration::from_secs(60));
    for i in 0..10 {
        assert_eq!(
            cb.get("other-1", &format!("k{i}")).await.unwrap(),
            body(i, "a"),
            "other-1/k{i} in zone B once its bucket policy enables it"
        );
    }
    tokio::time::sleep(Duration::from_secs(7)).await;
    assert!(
        cb.get("critical-1", "after-allowed").await.is_err(),
        "critical-1 still replicates with the zonegroup group only allowed"
    );
    assert!(
        ca.get("other-1", "from-b").await.is_err(),
        "other-1/from-b reached zone A: the only flow is dev-a → dev-b"
    );

    // Forbidden at the bucket: it stops again.
    must(
        &a,
        &[
            "sync",
            "group",
            "modify",
            "--bucket=other-1",
            "--group-id=other-1-sync",
            "--status=forbidden",
        ],
    );
    wait_for(
        "zone B sees the bucket's forbidden group",
        Duration::from_secs(30),
        || policy_says(&b, "other-1") == (false, false),
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    ca.put("other-1", "late", body(3, "a")).await.unwrap();
    wait_caught_up(&a, &b, Duration::from_secs(60));
    tokio::time::sleep(Duration::from_secs(7)).await;
    assert!(
        cb.get("other-1", "late").await.is_err(),
        "other-1/late reached zone B with its bucket group forbidden"
    );
}

/// Waits until `tc`'s gateway serves `bucket/key` (a read: with the
/// master down a secondary cannot create buckets).
async fn wait_get(tc: &TestCluster, c: &S3Client, bucket: &str, key: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while let Err(e) = c.get(bucket, key).await {
        if Instant::now() > deadline {
            tc.dump_logs();
            panic!("the gateway does not serve {bucket}/{key} within 30 s: {e:#}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The seed's emergency failover (steps 1-3 and 6), then its "Recovering
/// the Failed Zone" runbook. What the master acknowledged while zone B's
/// sync was down is only there when the master's gateway dies; zone B
/// promotes itself, commits a period locally and takes writes; when the old
/// master returns it learns the newer period by itself (before the runbook's
/// `realm pull` / `period pull`, which then change nothing), becomes a
/// secondary, and both zones converge: nothing acknowledged on either side
/// is lost, and a key written on both sides ends as its newest write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emergency_failover_then_the_old_master_returns_and_both_converge() {
    let (a, b) = TestCluster::start_zones(2, &["-o", "rgw_sync_reconcile_s=3"]);
    let dev = keys(&a, "dev");
    let (ca, cb) = (s3(&a, &dev), s3(&b, &dev));
    ca.ensure_bucket("orders").await.unwrap();
    ca.put("orders", "base", body(0, "a")).await.unwrap();
    wait_caught_up(&a, &b, Duration::from_secs(60));

    // Zone B's sync is down: what the master acknowledges now is only there.
    b.kill9("gateway.0");
    for i in 0..10 {
        ca.put("orders", &format!("a-only/{i}"), body(i, "a"))
            .await
            .unwrap();
    }
    ca.put("orders", "both-1", body(1, "a-old")).await.unwrap();
    // The master's site fails.
    a.kill9("gateway.0");
    b.start_daemon("gateway.0");
    wait_get(&b, &cb, "orders", "base").await;

    // Steps 1-3 on the secondary: promote, zonegroup, commit locally.
    must(
        &b,
        &[
            "zone",
            "modify",
            "--rgw-zone=dev-b",
            "--master",
            "--yes-i-really-mean-it",
        ],
    );
    must(
        &b,
        &[
            "zonegroup",
            "modify",
            "--rgw-zonegroup=dev",
            "--master-zone=dev-b",
        ],
    );
    let out = b.cli(&["period", "update", "--commit"]);
    assert!(
        out.status.success(),
        "emergency commit: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("zone dev-a unreachable"), "{err}");
    let new_period = cli_json(&b, &["period", "get"]);
    let b_id = cli_json(&b, &["zone", "get", "--rgw-zone=dev-b"])["id"].clone();
    assert_eq!(new_period["master_zone"], b_id, "{new_period}");

    // Step 6: the new master serves; writes and metadata during the split.
    tokio::time::sleep(Duration::from_secs(2)).await;
    for i in 0..10 {
        cb.put("orders", &format!("b-split/{i}"), body(i, "b"))
            .await
            .unwrap();
    }
    cb.put("orders", "both-1", body(1, "b-new")).await.unwrap();
    cb.put("orders", "both-2", body(2, "b-old")).await.unwrap();
    must(
        &b,
        &["user", "create", "--uid=split-user", "--display-name=Split"],
    );

    // The old master returns and learns the newer period by itself.
    a.start_daemon("gateway.0");
    wait_get(&a, &ca, "orders", "base").await;
    wait_for(
        "the old master installs the new master's period",
        Duration::from_secs(60),
        || cli_json(&a, &["period", "get"])["id"] == new_period["id"],
    );
    // The runbook, word for word: pull the realm and the period from the
    // new master, check the zone.
    let (ak, sk) = dev_system_key(&b);
    for what in ["realm", "period"] {
        must(
            &a,
            &[
                what,
                "pull",
                &format!("--url={}", b.s3_endpoint()),
                &format!("--access-key={ak}"),
                &format!("--secret={sk}"),
            ],
        );
    }
    let zone = cli_json(&a, &["zone", "get", "--rgw-zone=dev-a"]);
    assert_eq!(zone["name"], "dev-a", "{zone}");
    assert_eq!(
        cli_json(&a, &["period", "get"])["master_zone"],
        b_id,
        "dev-a is a secondary now"
    );
    // Written on the old master after it returned: newer than B's write.
    tokio::time::sleep(Duration::from_secs(2)).await;
    ca.put("orders", "both-2", body(2, "a-new")).await.unwrap();

    // Step 5 of the recovery: sync status until caught up; then nothing
    // acknowledged on either side is missing, in either zone.
    wait_caught_up(&a, &b, Duration::from_secs(180));
    for (name, c) in [("dev-a", &ca), ("dev-b", &cb)] {
        assert_eq!(c.get("orders", "base").await.unwrap(), body(0, "a"));
        for i in 0..10 {
            assert_eq!(
                c.get("orders", &format!("a-only/{i}")).await.unwrap(),
                body(i, "a"),
                "a-only/{i} (acknowledged by the old master before it failed) in {name}"
            );
            assert_eq!(
                c.get("orders", &format!("b-split/{i}")).await.unwrap(),
                body(i, "b"),
                "b-split/{i} (acknowledged by the new master) in {name}"
            );
        }
        assert_eq!(
            c.get("orders", "both-1").await.unwrap(),
            body(1, "b-new"),
            "both-1: the newest write wins in {name}"
        );
        assert_eq!(
            c.get("orders", "both-2").await.unwrap(),
            body(2, "a-new"),
            "both-2: the newest write wins in {name}"
        );
    }
    // Metadata made on the new master reached the old one.
    wait_for(
        "the user created during the split exists on dev-a",
        Duration::from_secs(60),
        || {
            a.cli(&["user", "info", "--uid=split-user"])
                .status
                .success()
        },
    );
    // Step 6: data integrity, every bucket of both zones.
    for tc in [&a, &b] {
        let v = cli_json(tc, &["bucket", "check", "--all"]);
        let reports = v.as_array().expect("one report per bucket");
        assert!(!reports.is_empty(), "{v}");
        for r in reports {
            assert_eq!(r["missing"], serde_json::json!([]), "{r}");
        }
    }
}

/// Failed-zone recovery: zone B's cluster is wiped; a new cluster takes
/// its place with the runbook's commands (realm pull, period pull, zone
/// create, period update --commit); the zone gets a new id, so the master
/// syncs it afresh, and it gets everything back by full sync: objects
/// (overwritten and deleted ones as the master has them), versions, users.
/// Then it replicates both ways again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wiped_secondary_is_re_created_and_gets_everything_back_by_full_sync() {
    let (a, b) = TestCluster::start_zones(2, &["-o", "rgw_sync_reconcile_s=3"]);
    let dev = keys(&a, "dev");
    let ca = s3(&a, &dev);
    ca.ensure_bucket("keep").await.unwrap();
    for i in 0..20 {
        ca.put("keep", &format!("k{i}"), body(i, "a"))
            .await
            .unwrap();
    }
    ca.put("keep", "k0", body(0, "a2")).await.unwrap();
    ca.delete("keep", "k1").await.unwrap();
    must(&a, &["user", "create", "--uid=app", "--display-name=App"]);
    wait_caught_up(&a, &b, Duration::from_secs(60));
    let lost_id = cli_json(&b, &["zone", "get", "--rgw-zone=dev-b"])["id"].clone();

    // Zone B's cluster is lost with everything on it.
    let b_dir = b.dir.clone();
    drop(b);
    std::fs::remove_dir_all(&b_dir).expect("wipe zone B's cluster");
    // The master takes writes meanwhile.
    for i in 0..5 {
        ca.put("keep", &format!("during/{i}"), body(i, "a"))
            .await
            .unwrap();
    }

    // A new cluster for zone dev-b, set up with the runbook's commands.
    let nb = a.start_beside(
        "zone-b",
        &[
            "-o",
            "rgw_zone=dev-b",
            "-o",
            "rgw_zonegroup=dev",
            "-o",
            "rgw_period_poll_s=5",
            "-o",
            "rgw_sync_reconcile_s=3",
        ],
    );
    let (ak, sk) = dev_system_key(&a);
    let master_url = format!("--url={}", a.config().gateway["0"].endpoint_url());
    let (ak, sk) = (format!("--access-key={ak}"), format!("--secret={sk}"));
    must(&nb, &["realm", "pull", &master_url, &ak, &sk, "--default"]);
    must(&nb, &["period", "pull", &master_url, &ak, &sk]);
    let endpoint = nb.config().gateway["0"].endpoint_url();
    let out = nb.cli(&[
        "zone",
        "create",
        "--rgw-zonegroup=dev",
        "--rgw-zone=dev-b",
        &format!("--endpoints={endpoint}"),
        &ak,
        &sk,
        "--default",
    ]);
    assert!(
        out.status.success(),
        "zone create: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    must(&nb, &["period", "update", "--commit"]);
    let new_id = cli_json(&nb, &["zone", "get", "--rgw-zone=dev-b"])["id"].clone();
    assert_ne!(new_id, lost_id, "a re-created zone is a new zone");
    wait_for(
        "the master's period names the re-created zone",
        Duration::from_secs(60),
        || {
            let p = cli_json(&a, &["period", "get"]);
            let zones = p["period_map"]["zonegroups"][0]["zones"].clone();
            zones.as_array().is_some_and(|z| {
                z.iter().any(|z| z["id"] == new_id) && !z.iter().any(|z| z["id"] == lost_id)
            })
        },
    );

    wait_caught_up(&a, &nb, Duration::from_secs(180));
    let cb = s3(&nb, &dev);
    assert_eq!(cb.get("keep", "k0").await.unwrap(), body(0, "a2"));
    assert!(cb.get("keep", "k1").await.is_err(), "k1 was deleted");
    for i in 2..20 {
        assert_eq!(
            cb.get("keep", &format!("k{i}")).await.unwrap(),
            body(i, "a")
        );
    }
    for i in 0..5 {
        assert_eq!(
            cb.get("keep", &format!("during/{i}")).await.unwrap(),
            body(i, "a")
        );
    }
    assert_eq!(versions(&nb, "keep"), versions(&a, "keep"));
    assert!(
        nb.cli(&["user", "info", "--uid=app"]).status.success(),
        "the user came back by metadata sync"
    );
    // And it replicates both ways again.
    cb.put("keep", "from-new-b", body(7, "b")).await.unwrap();
    wait_caught_up(&a, &nb, Duration::from_secs(60));
    assert_eq!(ca.get("keep", "from-new-b").await.unwrap(), body(7, "b"));
}
