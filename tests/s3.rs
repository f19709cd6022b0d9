//! The S3 gateway driven by real S3 clients: a `dev up` cluster with two
//! gateways, and the pytest suite in `tests/s3/` (boto3, botocore-signed raw
//! requests, the AWS CLI) run against it, crash tests included (they kill -9
//! a gateway mid-PUT and mid-multipart and check that nothing partial is
//! visible and nothing is orphaned).
//!
//! The Python side needs boto3, awscli, pytest and requests
//! (`tests/s3/requirements.txt`). `.ci/run` installs them into
//! `target/s3venv`; elsewhere the test uses `$MERIDIAN_PYTHON`, that venv, or
//! `python3`, and skips with a printed reason when the clients are missing
//! (but fails under CI, where they must be there).

mod common;

use common::{TestCluster, bin};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Low enough that the crash tests can wait for a killed write's intent to expire.
const PENDING_EXPIRY_S: &str = "4";

fn python() -> Option<PathBuf> {
    let candidates: Vec<PathBuf> = std::env::var_os("MERIDIAN_PYTHON")
        .map(PathBuf::from)
        .into_iter()
        .chain([
            Path::new(env!("CARGO_MANIFEST_DIR")).join("target/s3venv/bin/python"),
            PathBuf::from("python3"),
        ])
        .collect();
    candidates.into_iter().find(|p| {
        Command::new(p)
            .args(["-c", "import boto3, botocore, pytest, requests, awscli"])
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

fn json(out: &std::process::Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "command failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

fn first_key(user: &serde_json::Value) -> (String, String) {
    let k = &user["keys"][0];
    (
        k["access_key"].as_str().expect("access key").to_string(),
        k["secret_key"].as_str().expect("secret").to_string(),
    )
}

#[test]
fn s3_clients_against_two_gateways() {
    let Some(py) = python() else {
        let msg = "boto3/awscli/pytest/requests not found (set MERIDIAN_PYTHON, or: python3 -m venv target/s3venv && target/s3venv/bin/pip install -r tests/s3/requirements.txt)";
        if std::env::var_os("CI").is_some() {
            panic!("{msg}");
        }
        eprintln!("SKIPPED s3_clients_against_two_gateways: {msg}");
        return;
    };
    let tc = TestCluster::start_with(
        1,
        3,
        "2G",
        &[
            "--gateways",
            "2",
            "--s3-port",
            "0",
            "-o",
            &format!("rgw_pending_expiry_s={PENDING_EXPIRY_S}"),
            // No background GC pass in the middle of a test's own checks.
            "-o",
            "rgw_gc_processor_period_s=3600",
            "-o",
            "rgw_dns_name=s3.localhost",
        ],
    );
    let cfg = tc.config();
    let endpoints: Vec<String> = cfg
        .gateway
        .values()
        .map(|g| format!("http://{}", g.addr))
        .collect();
    let (ak, sk) = first_key(&json(&tc.cli(&["user", "info", "--uid=dev"])));
    let (ak2, sk2) = first_key(&json(&tc.cli(&[
        "user",
        "create",
        "--uid=other",
        "--display-name=Another owner",
    ])));
    let out = Command::new(&py)
        .args(["-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider"])
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/s3"))
        .env("S3_ENDPOINTS", endpoints.join(","))
        .env("S3_ACCESS_KEY", &ak)
        .env("S3_SECRET_KEY", &sk)
        .env("S3_ACCESS_KEY2", &ak2)
        .env("S3_SECRET_KEY2", &sk2)
        .env("S3_ZONEGROUP", &cfg.global.rgw_zonegroup)
        .env("S3_VHOST_DOMAIN", "s3.localhost")
        .env("MERIDIAN_BIN", bin())
        .env("MERIDIAN_CONF", tc.conf())
        .env("MERIDIAN_DEV_DIR", &tc.dir)
        .env("MERIDIAN_PENDING_EXPIRY_S", PENDING_EXPIRY_S)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .expect("run pytest");
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("{stdout}");
    if !out.status.success() {
        tc.dump_logs();
        panic!(
            "the S3 suite failed:\n{}\n{}",
            stdout.lines().rev().take(40).collect::<Vec<_>>().join("\n"),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // The suite must really have run against Meridian, not skipped its way through.
    let summary = stdout
        .lines()
        .rev()
        .find(|l| l.contains(" passed"))
        .unwrap_or_default();
    let passed: u32 = summary
        .split_whitespace()
        .zip(summary.split_whitespace().skip(1))
        .find(|(_, w)| w.starts_with("passed"))
        .and_then(|(n, _)| n.parse().ok())
        .unwrap_or(0);
    assert!(passed >= 150, "only {passed} S3 tests passed: {summary}");
    // The bench's own SigV4 client against the gateway: a write run, then a
    // read run that checks every byte.
    for mode in [
        &["2", "write", "-b", "64K", "-t", "4", "--no-cleanup"][..],
        &["2", "seq", "-t", "4"],
    ] {
        let out = Command::new(bin())
            .arg("-c")
            .arg(tc.conf())
            .args([
                "--format",
                "json",
                "bench",
                "--s3",
                &endpoints[1],
                "--access-key",
                &ak,
                "--secret",
                &sk,
            ])
            .args(mode)
            .output()
            .expect("run meridian bench --s3");
        let report = json(&out);
        assert_eq!(report["errors"], 0, "{report}");
        assert!(report["ops"].as_u64().unwrap_or(0) > 0, "{report}");
    }
    // A zone without peers trims its logs in every GC pass (they stay bounded).
    assert!(
        !json(&tc.cli(&["datalog", "list"]))
            .as_array()
            .unwrap()
            .is_empty()
    );
    let gc = json(&tc.cli(&["gc", "process"]));
    assert!(gc["log_entries_trimmed"].as_u64().unwrap_or(0) > 0, "{gc}");
    assert_eq!(json(&tc.cli(&["datalog", "list"])), serde_json::json!([]));
    assert_eq!(json(&tc.cli(&["mdlog", "list"])), serde_json::json!([]));
    let errors = tc.error_lines();
    assert!(
        errors.is_empty(),
        "daemons logged errors:\n{}",
        errors.join("\n")
    );
}
