//! Multi-site configuration on two real clusters: the seed runbook's
//! "Configuring the Realm, Zonegroups, and Zones" and "Configuring the
//! Secondary Zone" step by step with `meridian`, each command's JSON checked;
//! the refusals (commit without the master, stale staging period, unknown
//! zonegroup, duplicate zone, wrong keys) changing nothing; the master's
//! Raft leader killed during a commit; and the planned failover.

mod common;

use common::TestCluster;
use meridian_bench::s3::S3Client;
use serde_json::Value;
use std::time::{Duration, Instant};

const AK: &str = "SYSTEMACCESSKEY00001";
const SK: &str = "systemSecretKey0000000000000000000000001";

fn start(mons: u32, zone: &str) -> TestCluster {
    TestCluster::start_with(
        mons,
        3,
        "1G",
        &[
            "--s3-port",
            "0",
            "-o",
            &format!("rgw_zone={zone}"),
            "-o",
            "rgw_zonegroup=us",
            "-o",
            "rgw_period_poll_s=2",
        ],
    )
}

/// Runs a CLI command; Ok(JSON) or Err(stderr).
fn try_cli(tc: &TestCluster, args: &[&str]) -> Result<Value, String> {
    let out = tc.cli(args);
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let text = String::from_utf8_lossy(&out.stdout);
    if text.trim().is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_str(&text).map_err(|e| format!("not JSON ({e}): {text}"))
}

fn cli(tc: &TestCluster, args: &[&str]) -> Value {
    try_cli(tc, args).unwrap_or_else(|e| {
        tc.dump_logs();
        panic!("meridian {} failed: {e}", args.join(" "))
    })
}

fn cli_err(tc: &TestCluster, args: &[&str]) -> String {
    match try_cli(tc, args) {
        Ok(v) => panic!(
            "meridian {} should have failed, printed {v}",
            args.join(" ")
        ),
        Err(e) => e,
    }
}

fn endpoint(tc: &TestCluster) -> String {
    let cfg = tc.config();
    format!("http://{}", cfg.gateway["0"].addr)
}

/// (id, epoch, realm epoch) of the current period.
fn current(tc: &TestCluster) -> (String, u64, u64) {
    let p = cli(tc, &["period", "get"]);
    (
        p["id"].as_str().unwrap().to_string(),
        p["epoch"].as_u64().unwrap(),
        p["realm_epoch"].as_u64().unwrap(),
    )
}

/// Waits until both clusters report the same current period.
fn wait_agree(a: &TestCluster, b: &TestCluster) -> (String, u64, u64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (pa, pb) = (current(a), current(b));
        if pa == pb {
            return pa;
        }
        assert!(
            Instant::now() < deadline,
            "clusters disagree: {pa:?} vs {pb:?}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

fn dev_keys(tc: &TestCluster) -> (String, String) {
    let u = cli(tc, &["user", "info", "--uid=dev"]);
    (
        u["keys"][0]["access_key"].as_str().unwrap().into(),
        u["keys"][0]["secret_key"].as_str().unwrap().into(),
    )
}

fn key_args() -> [String; 2] {
    [format!("--access-key={AK}"), format!("--secret={SK}")]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_runbook_on_two_clusters_with_failures_and_failover() {
    let a = start(3, "us-east");
    let b = start(1, "us-west");
    let (ea, eb) = (endpoint(&a), endpoint(&b));
    let key = key_args();

    // --- Master site: realm, master zonegroup, master zone, system user, commit.
    let realm = cli(
        &a,
        &["realm", "create", "--rgw-realm=production", "--default"],
    );
    assert_eq!(realm["name"], "production");
    assert_eq!(realm["epoch"], 1);
    let realm_id = realm["id"].as_str().unwrap().to_string();
    let first_period = realm["current_period"].as_str().unwrap().to_string();
    assert!(!first_period.is_empty());
    assert_eq!(cli(&a, &["realm", "get", "--rgw-realm=production"]), realm);

    let zg = cli(
        &a,
        &[
            "zonegroup",
            "create",
            "--rgw-zonegroup=us",
            &format!("--endpoints={ea}"),
            "--rgw-realm=production",
            "--master",
            "--default",
        ],
    );
    assert_eq!(zg["name"], "us");
    assert_eq!(zg["api_name"], "us");
    assert_eq!(zg["is_master"], true);
    assert_eq!(zg["endpoints"][0], ea.as_str());
    assert_eq!(zg["realm_id"], realm_id.as_str());
    assert_eq!(cli(&a, &["zonegroup", "list"])["zonegroups"][0], "us");

    let east = cli(
        &a,
        &[
            "zone",
            "create",
            "--rgw-zonegroup=us",
            "--rgw-zone=us-east",
            &format!("--endpoints={ea}"),
            &key[0],
            &key[1],
            "--master",
            "--default",
        ],
    );
    assert_eq!(east["name"], "us-east");
    assert_eq!(east["system_key"]["access_key"], AK);
    assert_eq!(
        east["placement_pools"][0]["val"]["index_pool"],
        "us-east.meridian.buckets.index"
    );
    let east_id = east["id"].as_str().unwrap().to_string();
    assert_eq!(cli(&a, &["zone", "get", "--rgw-zone=us-east"]), east);
    let zg = cli(&a, &["zonegroup", "get", "--rgw-zonegroup=us"]);
    assert_eq!(zg["master_zone"], east_id.as_str());
    assert_eq!(zg["zones"][0]["name"], "us-east");

    let user = cli(
        &a,
        &[
            "user",
            "create",
            "--uid=zone.user",
            "--display-name=Zone Sync User",
            &key[0],
            &key[1],
            "--system",
        ],
    );
    assert_eq!(user["system"], true);
    assert_eq!(user["keys"][0]["access_key"], AK);

    let p = cli(&a, &["period", "update", "--commit"]);
    let period_id = p["id"].as_str().unwrap().to_string();
    assert_ne!(
        period_id, first_period,
        "a new master zone makes a new period"
    );
    assert_eq!(p["predecessor_uuid"], first_period.as_str());
    assert_eq!(
        (p["epoch"].as_u64(), p["realm_epoch"].as_u64()),
        (Some(1), Some(2))
    );
    assert_eq!(p["master_zone"], east_id.as_str());
    assert_eq!(
        p["period_map"]["zonegroups"][0]["zones"][0]["name"],
        "us-east"
    );
    assert_eq!(
        cli(&a, &["realm", "get"])["current_period"],
        period_id.as_str()
    );
    assert_eq!(
        cli(&a, &["period", "get-current"])["current_period"],
        period_id.as_str()
    );

    // Refusals on the master site change nothing.
    let before = cli(&a, &["period", "get"]);
    let zones_before = cli(&a, &["zone", "list"]);
    let e = cli_err(
        &a,
        &["zone", "create", "--rgw-zonegroup=nope", "--rgw-zone=eu-1"],
    );
    assert!(e.contains("zonegroup 'nope' does not exist"), "{e}");
    let e = cli_err(
        &a,
        &["zone", "create", "--rgw-zonegroup=us", "--rgw-zone=us-east"],
    );
    assert!(e.contains("already exists"), "{e}");
    assert_eq!(cli(&a, &["zone", "list"]), zones_before);
    assert_eq!(cli(&a, &["period", "get"]), before);

    // --- Secondary site: pull the realm (wrong keys first), the period, add the zone, commit.
    let e = cli_err(
        &b,
        &[
            "realm",
            "pull",
            &format!("--url={ea}"),
            &key[0],
            "--secret=not-the-secret",
        ],
    );
    assert!(e.contains("refused the keys"), "{e}");
    assert_eq!(cli(&b, &["realm", "list"])["realms"], Value::Array(vec![]));

    let pulled = cli(
        &b,
        &["realm", "pull", &format!("--url={ea}"), &key[0], &key[1]],
    );
    assert_eq!(pulled["id"], realm_id.as_str());
    assert_eq!(pulled["current_period"], period_id.as_str());
    cli(&b, &["realm", "default", "--rgw-realm=production"]);
    let pp = cli(
        &b,
        &["period", "pull", &format!("--url={ea}"), &key[0], &key[1]],
    );
    assert_eq!(pp["id"], period_id.as_str());
    assert_eq!(current(&b), current(&a));

    let west = cli(
        &b,
        &[
            "zone",
            "create",
            "--rgw-zonegroup=us",
            "--rgw-zone=us-west",
            &format!("--endpoints={eb}"),
            &key[0],
            &key[1],
        ],
    );
    let west_id = west["id"].as_str().unwrap().to_string();
    assert_eq!(west["realm_id"], realm_id.as_str());
    let zg = cli(
        &b,
        &[
            "zonegroup",
            "modify",
            "--rgw-zonegroup=us",
            &format!("--endpoints={ea},{eb}"),
        ],
    );
    assert_eq!(zg["endpoints"].as_array().unwrap().len(), 2);
    let p = cli(&b, &["period", "update", "--commit"]);
    assert_eq!(p["id"], period_id.as_str(), "same master zone: same period");
    assert_eq!(p["epoch"], 2);
    let agreed = wait_agree(&a, &b);
    assert_eq!(agreed, (period_id.clone(), 2, 2));
    let on_a = cli(&a, &["period", "get"]);
    let names: Vec<&str> = on_a["period_map"]["zonegroups"][0]["zones"]
        .as_array()
        .unwrap()
        .iter()
        .map(|z| z["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["us-east", "us-west"]);

    // --- Commit from a cluster without the master zone while the master is unreachable.
    a.kill9("gateway.0");
    let before = (current(&a), current(&b));
    cli(
        &b,
        &["zone", "modify", "--rgw-zone=us-west", "--read-only=false"],
    );
    let e = cli_err(&b, &["period", "update", "--commit"]);
    assert!(
        e.contains("does not hold the metadata master zone") && e.contains("nothing was committed"),
        "{e}"
    );
    assert_eq!((current(&a), current(&b)), before);
    a.up_again();

    // --- A stale staging period: built on epoch 2; the master moves on while
    // the secondary's gateway (which would pull the news) is down.
    cli(&b, &["period", "update"]);
    b.kill9("gateway.0");
    cli(
        &a,
        &[
            "zone",
            "modify",
            "--rgw-zone=us-east",
            &format!("--endpoints={ea}"),
        ],
    );
    let p = cli(&a, &["period", "update", "--commit"]);
    assert_eq!(p["epoch"], 3);
    let before = (current(&a), current(&b));
    assert_eq!(before.1.1, 2, "the secondary missed epoch 3");
    let e = cli_err(&b, &["period", "commit"]);
    assert!(e.contains("period pull"), "{e}");
    assert_eq!((current(&a), current(&b)), before);
    b.up_again();
    cli(
        &b,
        &["period", "pull", &format!("--url={ea}"), &key[0], &key[1]],
    );
    assert_eq!(current(&b).1, 3);
    let p = cli(&b, &["period", "update", "--commit"]);
    assert_eq!(p["epoch"], 4);
    assert_eq!(wait_agree(&a, &b).1, 4);

    // --- The master's Raft leader killed in the middle of a commit.
    let leader = cli(&a, &["status", "--format", "json"])["monmap"]["leader"]
        .as_u64()
        .unwrap();
    let mut commit = std::process::Command::new(common::bin())
        .arg("-c")
        .arg(a.conf())
        .args(["period", "update", "--commit"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start commit");
    std::thread::sleep(Duration::from_millis(40));
    a.kill9(&format!("mon.{leader}"));
    let status = commit.wait().expect("commit finished");
    eprintln!("commit while the leader died: {status}");
    // Whatever happened, the surviving monitors agree on one period epoch.
    let after_kill = current(&a);
    assert!(
        after_kill.1 == 4 || after_kill.1 == 5,
        "epoch {after_kill:?} after one commit attempt"
    );
    a.up_again();
    // Every monitor, the restarted one included, holds the same period epoch.
    let mon_addrs = a.config().monitor_addrs();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut seen = Vec::new();
        for addr in &mon_addrs {
            let m = meridian_client::mon_client(addr, &a.admin_cred())
                .unwrap()
                .get_map(meridian_proto::mon::GetMapRequest {})
                .await
                .map(|r| r.into_inner());
            let Ok(m) = m else { continue };
            // The zone system key's secret is never in a map a monitor serves.
            assert!(
                !format!("{m:?}").contains(SK),
                "mon {addr} served the secret"
            );
            assert!(
                format!("{m:?}").contains(AK),
                "the access key names the key"
            );
            let ms = m.multisite.unwrap_or_default();
            let r = ms.realms.iter().find(|r| r.id == realm_id).unwrap();
            let p = ms
                .periods
                .iter()
                .find(|p| p.id == r.current_period)
                .unwrap();
            seen.push((p.id.clone(), p.epoch));
        }
        seen.dedup();
        if seen.len() == 1 && seen[0].1 >= after_kill.1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "monitors disagree after the kill: {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Status carries the map too, without the secret; the admin CLI (mon
    // 'allow *') still shows the key, as radosgw-admin does.
    let status = meridian_client::mon_client(&mon_addrs[0], &a.admin_cred())
        .unwrap()
        .status(meridian_proto::mon::StatusRequest {})
        .await
        .expect("status");
    assert!(!format!("{status:?}").contains(SK));
    let z = cli(&a, &["zone", "get", "--rgw-zone=us-east"]);
    assert_eq!(z["system_key"]["secret_key"], SK);
    // A captured zone-to-zone request is served once, never twice.
    let key = meridian_proto::multisite::SystemKey {
        access_key: AK.into(),
        secret_key: SK.into(),
    };
    let pull = meridian_sync::peer::sign(
        meridian_proto::multisite::PullRealmRequest {
            auth: None,
            realm: "production".into(),
        },
        &key,
    );
    let mut zc = meridian_sync::peer::client(&ea).expect("zone client");
    zc.pull_realm(pull.clone()).await.expect("signed pull");
    let s = zc.pull_realm(pull).await.expect_err("replayed pull");
    assert_eq!(s.code(), tonic::Code::Unauthenticated, "{s:?}");
    assert!(s.message().contains("replayed"), "{}", s.message());
    // Running the command again converges: both clusters on one new epoch.
    cli(&a, &["period", "update", "--commit"]);
    let converged = wait_agree(&a, &b);
    assert_eq!(converged.0, period_id);
    assert!(converged.1 > after_kill.1);

    // --- Read-only zone: writes refused, reads served.
    let (dak, dsk) = dev_keys(&a);
    let s3a = S3Client::new(&ea, &dak, &dsk, "us", None).unwrap();
    s3a.ensure_bucket("before-failover")
        .await
        .expect("create bucket on the master");
    s3a.put("before-failover", "k", bytes::Bytes::from_static(b"v1"))
        .await
        .unwrap();
    cli(&a, &["zone", "modify", "--rgw-zone=us-east", "--read-only"]);
    // The gateway learns of the change within its period poll: a write in
    // that window is accepted (and stays); once one is refused, all are.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut stored: &[u8] = b"v1";
    loop {
        match s3a
            .put("before-failover", "k", bytes::Bytes::from_static(b"v2"))
            .await
        {
            Err(e) if e.to_string().contains("403") => break,
            Ok(()) => stored = b"v2",
            Err(e) => panic!("write to a zone turning read-only: {e:#}"),
        }
        assert!(
            Instant::now() < deadline,
            "the zone still accepts writes 10 s after --read-only"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let refused = s3a
        .put("before-failover", "k", bytes::Bytes::from_static(b"v3"))
        .await
        .expect_err("a read-only zone accepted a write");
    assert!(refused.to_string().contains("403"), "{refused:#}");
    assert_eq!(&s3a.get("before-failover", "k").await.unwrap()[..], stored);
    cli(
        &a,
        &["zone", "modify", "--rgw-zone=us-east", "--read-only=false"],
    );
    // A zone with peers keeps its logs for them: GC does not trim them.
    let gc = cli(&a, &["gc", "process", "--include-all"]);
    assert_eq!(gc["log_entries_trimmed"], 0, "{gc}");
    assert!(
        !cli(&a, &["bilog", "list", "--bucket=before-failover"])
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert!(!cli(&a, &["datalog", "list"]).as_array().unwrap().is_empty());

    // --- Planned failover, the seed's steps 4-7, run on the secondary's cluster.
    // The seed's step 1: the secondary has caught up on metadata (the dev
    // user the old master's clients use must be known to the new master).
    let deadline = Instant::now() + Duration::from_secs(60);
    while try_cli(&b, &["user", "info", "--uid=dev"])
        .ok()
        .map(|u| u["keys"][0]["access_key"] == dak.as_str())
        != Some(true)
    {
        assert!(
            Instant::now() < deadline,
            "metadata sync did not bring user dev to us-west within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let old = current(&a);
    cli(&b, &["zone", "modify", "--rgw-zone=us-west", "--master"]);
    let _ = try_cli(
        &b,
        &["zone", "modify", "--rgw-zone=us-east", "--master=false"],
    )
    .expect("demote");
    let zg = cli(
        &b,
        &[
            "zonegroup",
            "modify",
            "--rgw-zonegroup=us",
            "--master-zone=us-west",
        ],
    );
    assert_eq!(zg["master_zone"], west_id.as_str());
    let p = cli(&b, &["period", "update", "--commit"]);
    let new_id = p["id"].as_str().unwrap().to_string();
    assert_ne!(new_id, old.0, "a new master zone makes a new period");
    assert_eq!(p["predecessor_uuid"], old.0.as_str());
    assert_eq!(p["realm_epoch"].as_u64(), Some(old.2 + 1));
    assert_eq!(p["master_zone"], west_id.as_str());
    let agreed = wait_agree(&a, &b);
    assert_eq!(agreed.0, new_id);
    assert_eq!(cli(&a, &["period", "get"])["master_zone"], west_id.as_str());
    // A bucket created through the old master's gateway is created by the new master.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match s3a.ensure_bucket("after-failover").await {
            Ok(()) => break,
            Err(e) => assert!(
                Instant::now() < deadline,
                "create through the old master: {e}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let on_b = cli(&b, &["bucket", "stats", "--bucket=after-failover"]);
    let on_a = cli(&a, &["bucket", "stats", "--bucket=after-failover"]);
    assert_eq!(
        on_b["id"], on_a["id"],
        "both zones hold the master's bucket instance"
    );
    assert_eq!(on_b["owner"], "dev");
    // The old master now reports itself as a secondary.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let st = cli(&a, &["status", "--format", "json"]);
        if st["rgw"][0]["master"] == false && st["rgw"][0]["zone"] == "us-east" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "status still shows the old role: {}",
            st["rgw"]
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    for tc in [&a, &b] {
        let errors = tc.error_lines();
        assert!(
            errors.is_empty(),
            "daemons logged errors:\n{}",
            errors.join("\n")
        );
    }
}

/// `dev up --zones 2` runs the same runbook and leaves two zones that agree.
#[test]
fn dev_up_two_zones_joins_a_realm() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("dev");
    let run = |args: &[&str]| {
        std::process::Command::new(common::bin())
            .args(args)
            .output()
            .expect("run meridian")
    };
    let dir_s = dir.to_str().unwrap();
    let out = run(&[
        "dev",
        "up",
        "--zones",
        "2",
        "--osds",
        "1",
        "--s3-port",
        "0",
        "--dir",
        dir_s,
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let down = || run(&["dev", "down", "--dir", dir_s]);
    if !out.status.success() {
        down();
        panic!(
            "dev up --zones 2 failed: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert!(
        stdout.contains("Realm dev: zone dev-a (master)"),
        "{stdout}"
    );
    let period = |sub: &str| {
        let o = run(&[
            "-c",
            dir.join(sub).join("meridian.toml").to_str().unwrap(),
            "period",
            "get",
        ]);
        let v: Value = serde_json::from_slice(&o.stdout).expect("period JSON");
        (
            v["id"].clone(),
            v["epoch"].clone(),
            v["period_map"]["zonegroups"][0]["zones"]
                .as_array()
                .map(|z| z.len()),
        )
    };
    let (pa, pb) = (period("zone-a"), period("zone-b"));
    down();
    assert_eq!(pa, pb, "the two dev zones disagree");
    assert_eq!(pa.2, Some(2));
}
