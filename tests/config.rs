//! The central configuration (`meridian config set|get|rm|dump`), following
//! the operators' runbook's `ceph config set client.rgw ...` lines ("Sync
//! Optimization", "Rate Limiting") on a secondary zone: the options are
//! stored under their canonical names, RGW options without a counterpart
//! are accepted and named as such, bad input is refused, a restarted
//! gateway and OSD take the values, a monitor follows a change as it
//! happens, and a key the host's file sets stays as the file says.

mod common;

use common::TestCluster;
use serde_json::Value;
use std::time::{Duration, Instant};

fn cli_json(tc: &TestCluster, args: &[&str]) -> Value {
    let mut a = vec!["--format", "json"];
    a.extend_from_slice(args);
    tc.cli_json(&a)
}

fn must(tc: &TestCluster, args: &[&str]) -> String {
    let out = tc.cli(args);
    assert!(
        out.status.success(),
        "meridian {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn refused(tc: &TestCluster, args: &[&str]) -> String {
    let out = tc.cli(args);
    assert!(!out.status.success(), "meridian {args:?} must fail");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn log_of(tc: &TestCluster, daemon: &str) -> String {
    std::fs::read_to_string(tc.dir.join("log").join(format!("{daemon}.log"))).unwrap_or_default()
}

fn wait_for(tc: &TestCluster, what: &str, within: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !ok() {
        if Instant::now() > deadline {
            tc.dump_logs();
            panic!("{what} within {within:?}");
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// Sync leases of zone dev-b held by `holder_prefix`, with the time each
/// has left (ms).
fn leases_left(tc: &TestCluster, holder_prefix: &str) -> Vec<u64> {
    let out = tc.cli(&[
        "--format",
        "json",
        "listomapvals",
        "-p",
        "dev-b.meridian.log",
        "sync.leases",
    ]);
    if !out.status.success() {
        return Vec::new();
    }
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    let now = now_ms();
    v.as_object()
        .into_iter()
        .flatten()
        .filter_map(|(_, raw)| serde_json::from_str::<Value>(raw.as_str()?).ok())
        .filter(|l| {
            l["holder"]
                .as_str()
                .is_some_and(|h| h.starts_with(holder_prefix))
        })
        .filter_map(|l| l["until_ms"].as_u64())
        .map(|until| until.saturating_sub(now))
        .collect()
}

#[test]
fn central_configuration_follows_the_runbook_and_takes_effect() {
    let (_a, b) = TestCluster::start_zones(1, &[]);

    // The runbook's lines, word for word with `meridian` for `ceph`.
    for (key, value) in [
        ("rgw_sync_data_inject_threads", "16"),
        ("rgw_sync_trace_history_size", "100"),
        ("rgw_sync_checkpoint_interval", "300"),
        ("rgw_sync_obj_batch_size", "64"),
        ("rgw_sync_lease_period", "120"),
        ("rgw_sync_max_bandwidth", "104857600"),
    ] {
        must(&b, &["config", "set", "client.rgw", key, value]);
    }
    let said = must(
        &b,
        &[
            "config",
            "set",
            "client.rgw",
            "rgw_sync_trace_history_size",
            "100",
        ],
    );
    assert!(said.contains("no effect"), "{said}");

    // Bad input names what is wrong and changes nothing.
    let e = refused(
        &b,
        &[
            "config",
            "set",
            "client.rgw",
            "rgw_sync_lease_period",
            "soon",
        ],
    );
    assert!(e.contains("rgw_sync_lease_s"), "{e}");
    let e = refused(&b, &["config", "set", "rgw", "rgw_sync_window", "3"]);
    assert!(e.contains("unknown section"), "{e}");
    let e = refused(&b, &["config", "set", "global", "fsid", "x"]);
    assert!(e.contains("configuration file"), "{e}");
    let e = refused(
        &b,
        &["config", "set", "client.rgw", "rgw_no_such_option", "1"],
    );
    assert!(e.contains("no such"), "{e}");
    let e = refused(
        &b,
        &[
            "config",
            "set",
            "client.rgw",
            "rgw_data_log_changes",
            "false",
        ],
    );
    assert!(e.contains("cannot be turned off"), "{e}");

    // Stored under the canonical names; the no-effect options are not.
    let dump = cli_json(&b, &["config", "dump"]);
    let rows: Vec<(String, String, String)> = dump
        .as_array()
        .expect("dump is a list")
        .iter()
        .map(|r| {
            (
                r["section"].as_str().unwrap().to_string(),
                r["name"].as_str().unwrap().to_string(),
                r["value"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let want: Vec<(String, String, String)> = [
        ("client.rgw", "rgw_sync_full_window", "64"),
        ("client.rgw", "rgw_sync_lease_s", "120"),
        ("client.rgw", "rgw_sync_max_bandwidth", "104857600"),
        ("client.rgw", "rgw_sync_window", "16"),
    ]
    .iter()
    .map(|(w, k, v)| (w.to_string(), k.to_string(), v.to_string()))
    .collect();
    assert_eq!(rows, want);
    let got = cli_json(
        &b,
        &["config", "get", "client.rgw.0", "rgw_sync_lease_period"],
    );
    assert_eq!(got["value"], "120");
    assert_eq!(got["section"], "client.rgw");
    let got = cli_json(
        &b,
        &["config", "get", "client.rgw.0", "rgw_sync_reconcile_s"],
    );
    assert_eq!(got["section"], "default");

    // A more specific section wins; `config rm` takes it back.
    must(
        &b,
        &["config", "set", "client.rgw.0", "rgw_sync_window", "8"],
    );
    let got = cli_json(&b, &["config", "get", "client.rgw.0", "rgw_sync_window"]);
    assert_eq!(
        (got["value"].as_str(), got["section"].as_str()),
        (Some("8"), Some("client.rgw.0"))
    );
    must(&b, &["config", "rm", "client.rgw.0", "rgw_sync_window"]);
    let got = cli_json(&b, &["config", "get", "client.rgw.0", "rgw_sync_window"]);
    assert_eq!(got["value"], "16");

    // The gateway takes its values when it starts (as the runbook's
    // `ceph orch restart rgw`): its sync leases now last 120 s, not 30.
    let before = b.pid("gateway.0");
    b.kill9("gateway.0");
    b.start_daemon("gateway.0");
    let holder = format!("gateway.0.{}", b.pid("gateway.0"));
    assert_ne!(b.pid("gateway.0"), before);
    // The killed gateway's 30 s leases run out first.
    wait_for(
        &b,
        "the restarted gateway holds sync leases",
        Duration::from_secs(90),
        || !leases_left(&b, &holder).is_empty(),
    );
    let left = leases_left(&b, &holder);
    assert!(
        left.iter().all(|ms| *ms > 60_000),
        "leases of a gateway with rgw_sync_lease_period 120 have more than 60 s left: {left:?}"
    );
    let log = log_of(&b, "gateway.0");
    assert!(
        log.contains("central config applied") && log.contains("rgw_sync_lease_s"),
        "the gateway logs what it applied"
    );

    // An OSD reads its sections when it starts.
    must(
        &b,
        &["config", "set", "osd.0", "osd_max_pg_log_entries", "200"],
    );
    b.kill9("osd.0");
    b.start_daemon("osd.0");
    wait_for(
        &b,
        "osd.0 applies its central option",
        Duration::from_secs(60),
        || {
            log_of(&b, "osd.0").lines().any(|l| {
                l.contains("central config applied") && l.contains("osd_max_pg_log_entries")
            })
        },
    );

    // Monitors follow a change as it happens, and a key their file sets
    // stays as the file says (dev up writes mon_osd_down_out_interval_s).
    must(
        &b,
        &["config", "set", "mon", "mon_osd_down_out_interval_s", "5"],
    );
    wait_for(
        &b,
        "the monitor reports the file's key wins",
        Duration::from_secs(30),
        || {
            log_of(&b, "mon.1").lines().any(|l| {
                l.contains("configuration file sets it")
                    && l.contains("mon_osd_down_out_interval_s")
            })
        },
    );
    must(
        &b,
        &["config", "set", "mon", "auth_service_ticket_ttl_s", "1800"],
    );
    wait_for(
        &b,
        "the monitor applies a change live",
        Duration::from_secs(30),
        || {
            log_of(&b, "mon.1").lines().any(|l| {
                l.contains("central config applied") && l.contains("auth_service_ticket_ttl_s")
            })
        },
    );
    // The cluster still serves after all of it.
    b.wait_healthy(Duration::from_secs(60));
}
