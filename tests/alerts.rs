//! The Prometheus alert rules shipped in `monitoring/prometheus/`: promtool
//! accepts them, their unit tests pass (each alert fires on its condition,
//! after its `for:`, and not on a healthy series), and every metric they
//! name is served by a running two-zone deployment. The test then cuts zone
//! A off (its gateway killed) and checks that zone B's reachability series,
//! which `MeridianSyncSourceUnreachable` reads, drops to 0, and goes back to
//! 1 when the gateway returns.
//!
//! promtool comes from `$MERIDIAN_PROMTOOL`, else `promtool` on the PATH,
//! else Debian's `prometheus` package, downloaded with `apt-get download`
//! and unpacked into `target/promtool/` (no root needed once the package
//! lists are there). If none of these works the test fails with the reason.

mod common;

use common::TestCluster;
use common::python::{run, target_dir};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn rules_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("monitoring/prometheus")
}

fn works(promtool: &Path) -> bool {
    Command::new(promtool)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// A working promtool, installed from Debian's archive when there is none.
fn promtool() -> Result<PathBuf, String> {
    if let Ok(p) = std::env::var("MERIDIAN_PROMTOOL") {
        let p = PathBuf::from(p);
        return if works(&p) {
            Ok(p)
        } else {
            Err(format!("$MERIDIAN_PROMTOOL={} does not run", p.display()))
        };
    }
    if works(Path::new("promtool")) {
        return Ok("promtool".into());
    }
    let dir = target_dir().join("promtool");
    let unpacked = dir.join("root/usr/bin/promtool");
    if works(&unpacked) {
        return Ok(unpacked);
    }
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    let download = |dir: &Path| {
        run(
            "apt-get download prometheus",
            Command::new("apt-get")
                .args(["download", "prometheus"])
                .current_dir(dir),
        )
    };
    if let Err(first) = download(&dir) {
        // A fresh machine may have no package lists yet.
        run("apt-get update", Command::new("apt-get").arg("update"))
            .map_err(|e| format!("{first}\nthen {e}"))?;
        download(&dir)?;
    }
    let deb = std::fs::read_dir(&dir)
        .map_err(|e| format!("read {}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .ok_or("apt-get download left no .deb")?;
    run(
        "dpkg-deb -x",
        Command::new("dpkg-deb")
            .arg("-x")
            .arg(&deb)
            .arg(dir.join("root")),
    )?;
    if works(&unpacked) {
        Ok(unpacked)
    } else {
        Err(format!("{} does not run", unpacked.display()))
    }
}

/// `promtool ARGS` in the rules directory; panics with its output on failure.
fn promtool_ok(promtool: &Path, args: &[&str]) -> String {
    let out = Command::new(promtool)
        .args(args)
        .current_dir(rules_dir())
        .output()
        .expect("run promtool");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool {args:?} failed:\n{text}");
    text
}

/// Metric names in the rules' expressions (`meridian_*`, and Prometheus'
/// own `up`, which no exporter serves).
fn named_metrics() -> BTreeSet<String> {
    let text = std::fs::read_to_string(rules_dir().join("meridian.rules.yml")).expect("rules");
    let mut names = BTreeSet::new();
    for line in text.lines() {
        let Some(expr) = line.trim().strip_prefix("expr:") else {
            continue;
        };
        let mut word = String::new();
        for c in expr.chars().chain([' ']) {
            if c.is_ascii_alphanumeric() || c == '_' {
                word.push(c);
            } else {
                if word.starts_with("meridian_") || word == "up" {
                    names.insert(std::mem::take(&mut word));
                }
                word.clear();
            }
        }
    }
    names
}

/// Names of the series in a Prometheus text exposition.
fn exposed(scrape: &str) -> BTreeSet<String> {
    scrape
        .lines()
        .filter(|l| l.starts_with("meridian_"))
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_string)
        .collect()
}

/// The value of `name{labels}` in a scrape, if served.
fn value(scrape: &str, series: &str) -> Option<f64> {
    scrape
        .lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
}

fn gateway_scrape(tc: &TestCluster) -> String {
    let cfg = tc.config();
    tc.scrape(cfg.gateway["0"].metrics_addr.as_deref())
}

fn wait_for_value(tc: &TestCluster, series: &str, want: f64, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let got = value(&gateway_scrape(tc), series);
        if got == Some(want) {
            return;
        }
        if Instant::now() > deadline {
            tc.dump_logs();
            panic!("{series} is {got:?}, not {want}, after {within:?}");
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn alert_rules_load_pass_their_unit_tests_and_name_served_metrics() {
    let promtool = promtool().unwrap_or_else(|e| panic!("no promtool: {e}"));
    let checked = promtool_ok(&promtool, &["check", "rules", "meridian.rules.yml"]);
    assert!(checked.contains("SUCCESS: 8 rules found"), "{checked}");
    promtool_ok(&promtool, &["test", "rules", "meridian.rules.test.yml"]);

    let names = named_metrics();
    assert!(names.len() >= 8, "rules name too few metrics: {names:?}");

    // Two zones replicating: zone B's gateway syncs from zone A.
    let (a, b) = TestCluster::start_zones(2, &["-o", "rgw_sync_lease_s=6"]);
    let mut served = BTreeSet::new();
    for tc in [&a, &b] {
        let cfg = tc.config();
        for addr in cfg
            .gateway
            .values()
            .map(|g| g.metrics_addr.as_deref())
            .chain(cfg.osd.values().map(|o| o.metrics_addr.as_deref()))
        {
            served.extend(exposed(&tc.scrape(addr)));
        }
    }
    let missing: Vec<&String> = names
        .iter()
        .filter(|n| *n != "up" && !served.contains(*n))
        .collect();
    assert!(
        missing.is_empty(),
        "the rules name metrics no daemon serves: {missing:?} (served: {served:?})"
    );

    // Zone B reaches zone A; kill A's gateway and the series says so.
    let zone_a = a.config().global.rgw_zone;
    let series = format!("meridian_sync_source_reachable{{source_zone=\"{zone_a}\"}}");
    wait_for_value(&b, &series, 1.0, Duration::from_secs(30));
    a.kill9("gateway.0");
    wait_for_value(&b, &series, 0.0, Duration::from_secs(60));
    a.start_daemon("gateway.0");
    wait_for_value(&b, &series, 1.0, Duration::from_secs(60));
}
