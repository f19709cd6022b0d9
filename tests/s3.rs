//! The S3 gateway driven by real S3 clients: `dev up` clusters with two
//! gateways each, and the pytest suite in `tests/s3/` (boto3, botocore-signed raw
//! requests, the AWS CLI) run against them, split over two clusters that run
//! in parallel, crash tests included (they kill -9
//! a gateway mid-PUT and mid-multipart and check that nothing partial is
//! visible and nothing is orphaned).
//!
//! The Python side needs boto3, awscli, pytest and requests
//! (`tests/s3/requirements.txt`). The test uses `$MERIDIAN_PYTHON` if set
//! (it must have them), else the venv `s3venv` in the cargo target directory,
//! else a `python3` that has them; when none does, it creates that venv from
//! PyPI itself (under a lock file, so concurrent test processes install it
//! once) and reuses it on later runs. It never skips: without the clients,
//! or with any pytest case failing or skipped, it fails.

mod common;

use common::python::{junit_count, python, tail};
use common::{TestCluster, bin};
use std::path::Path;
use std::process::Command;

/// Low enough that the crash tests can wait for a killed write's intent to
/// expire; high enough that each PUT of the suite stores its data within its
/// write budget (the expiry less a quarter: 9 s). At 8 s, a 64 MiB upload by
/// the AWS CLI once failed in CI after 9 s, most likely a part past its 6 s
/// budget (the error itself was buried under the CLI's progress lines).
const PENDING_EXPIRY_S: &str = "12";

/// The zone's default encryption key (the RGW runbook's example value).
const DEFAULT_KEY: &str = "4YSmvJtBv0aZ7geVgAsdpRnLBEwWSWlMIGnRS8a9TSA=";
/// Two named SSE-KMS keys.
const KMS_KEYS: &str = "testkey-1=YmluCmJvb3N0CmJvb3N0LWJ1aWxkCmNlcGguY29uZgo= testkey-2=MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

/// A lifecycle "day" in the suite (seconds).
const LC_DAY_S: &str = "5";

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

/// The suite's slowest files (lifecycle days, crash recovery with restarts,
/// a large listing, 64 MiB CLI transfers) run against a second cluster, in
/// parallel with the rest: the suite waits more than it computes.
const SECOND_CLUSTER: &[&str] = &[
    "test_crash.py",
    "test_lifecycle.py",
    "test_listing.py",
    "test_awscli.py",
];

/// The suite's files for one of the two clusters.
fn suite_files(second: bool) -> Vec<std::path::PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/s3");
    let mut all: Vec<String> = std::fs::read_dir(&dir)
        .expect("tests/s3")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with("test_") && n.ends_with(".py"))
        .collect();
    all.sort();
    for f in SECOND_CLUSTER {
        assert!(
            all.iter().any(|n| n == f),
            "SECOND_CLUSTER names {f}, which is not in tests/s3"
        );
    }
    all.into_iter()
        .filter(|n| SECOND_CLUSTER.contains(&n.as_str()) == second)
        .map(|n| dir.join(n))
        .collect()
}

#[test]
fn s3_clients_against_two_gateways() {
    suite(false);
}

#[test]
fn s3_slow_cases_against_a_second_cluster() {
    suite(true);
}

/// Starts a cluster with two gateways and runs one part of the suite against it
/// (the first part also runs the bench's S3 client and checks log trimming).
fn suite(second: bool) {
    let py = python().unwrap_or_else(|e| {
        panic!(
            "the S3 suite cannot run: no Python with its clients, and installing them from PyPI failed:\n{e}"
        )
    });
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
            // As behind a proxy: policies see the address X-Forwarded-For names.
            "-o",
            "rgw_remote_addr_param=HTTP_X_FORWARDED_FOR",
            // Lifecycle days of a few seconds (RGW's testing knob).
            "-o",
            &format!("rgw_lc_debug_interval={LC_DAY_S}"),
            // Encryption at rest as the RGW runbook configures it: every
            // object of the suite is sealed with the default key.
            "-o",
            &format!("rgw_crypt_default_encryption_key={DEFAULT_KEY}"),
            "-o",
            &format!("rgw_crypt_s3_kms_encryption_keys={KMS_KEYS}"),
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
    let junit = tc.dir.join("s3-junit.xml");
    let out = Command::new(&py)
        .args([
            "-m",
            "pytest",
            "-q",
            "-rs",
            "-p",
            "no:cacheprovider",
            "--durations=12",
        ])
        .arg(format!("--junitxml={}", junit.display()))
        // Its temporary files (a 64 MiB upload source, CLI config) go with the cluster's directory.
        .arg(format!("--basetemp={}", tc.dir.join("pytest").display()))
        .args(suite_files(second))
        .env("S3_ENDPOINTS", endpoints.join(","))
        .env("S3_ACCESS_KEY", &ak)
        .env("S3_SECRET_KEY", &sk)
        .env("S3_ACCESS_KEY2", &ak2)
        .env("S3_SECRET_KEY2", &sk2)
        .env("S3_ZONEGROUP", &cfg.global.rgw_zonegroup)
        .env("S3_VHOST_DOMAIN", "s3.localhost")
        .env(
            "S3_TLS_ENDPOINT",
            format!(
                "https://{}",
                cfg.gateway["0"]
                    .tls_addr
                    .as_deref()
                    .expect("dev up gives every gateway an HTTPS listener")
            ),
        )
        .env("S3_CA_BUNDLE", &cfg.global.tls_ca_file)
        .env("MERIDIAN_BIN", bin())
        .env("MERIDIAN_CONF", tc.conf())
        .env("MERIDIAN_DEV_DIR", &tc.dir)
        .env("MERIDIAN_PENDING_EXPIRY_S", PENDING_EXPIRY_S)
        .env("MERIDIAN_LC_DAY_S", LC_DAY_S)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .expect("run pytest");
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("{stdout}");
    if !out.status.success() {
        tc.dump_logs();
        panic!(
            "the S3 suite failed:\n{}\n{}",
            tail(&stdout, 40),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // The suite must really have run against Meridian: every case collected
    // ran and passed (against Meridian nothing has a reason to skip).
    let report = std::fs::read_to_string(&junit).expect("pytest's JUnit report");
    let count = |attr: &str| {
        junit_count(&report, attr)
            .unwrap_or_else(|| panic!("no {attr}= in the JUnit report: {}", tail(&report, 5)))
    };
    let (tests, skipped) = (count("tests"), count("skipped"));
    let (failures, errors) = (count("failures"), count("errors"));
    assert!(
        tests > 0 && skipped == 0 && failures == 0 && errors == 0,
        "S3 suite: {tests} cases, {skipped} skipped, {failures} failed, {errors} errors:\n{}",
        tail(&stdout, 40)
    );
    if second {
        return assert_no_daemon_errors(&tc);
    }
    // The bench's own SigV4 client against the gateway, over HTTP and over
    // HTTPS with the dev CA: a write run, then a read run that checks every
    // byte.
    let https = format!(
        "https://{}",
        cfg.gateway["0"]
            .tls_addr
            .as_deref()
            .expect("HTTPS listener")
    );
    let ca = cfg.global.tls_ca_file.clone();
    for (endpoint, ca_bundle) in [(&endpoints[1], None), (&https, Some(&ca))] {
        for mode in [
            &["2", "write", "-b", "64K", "-t", "4", "--no-cleanup"][..],
            &["2", "seq", "-t", "4"],
        ] {
            let mut bench = Command::new(bin());
            bench.arg("-c").arg(tc.conf()).args([
                "--format",
                "json",
                "bench",
                "--s3",
                endpoint,
                "--access-key",
                &ak,
                "--secret",
                &sk,
            ]);
            if let Some(ca) = ca_bundle {
                bench.args(["--ca-bundle", ca]);
            }
            let out = bench.args(mode).output().expect("run meridian bench --s3");
            let report = json(&out);
            assert_eq!(report["errors"], 0, "{endpoint}: {report}");
            assert!(
                report["ops"].as_u64().unwrap_or(0) > 0,
                "{endpoint}: {report}"
            );
        }
    }
    // `--max-objects` ends a write run at that count, well before its time.
    let out = Command::new(bin())
        .arg("-c")
        .arg(tc.conf())
        .args(["--format", "json", "bench", "--s3", &endpoints[1]])
        .args(["--access-key", &ak, "--secret", &sk, "--bucket", "capped"])
        .args(["60", "write", "-b", "4K", "-t", "4", "--max-objects", "7"])
        .output()
        .expect("run meridian bench --s3 --max-objects");
    let report = json(&out);
    assert_eq!(report["ops"], 7, "{report}");
    assert!(
        report["total_time_s"].as_f64().unwrap_or(60.0) < 30.0,
        "{report}"
    );
    // HTTPS without the CA is refused before any request, with the reason
    // (AWS_CA_BUNDLE, which the bench reads as the AWS CLI does, removed:
    // some machines point it at the system roots).
    let out = Command::new(bin())
        .arg("-c")
        .arg(tc.conf())
        .args([
            "bench",
            "--s3",
            &https,
            "--access-key",
            &ak,
            "--secret",
            &sk,
            "1",
            "write",
        ])
        .env_remove("AWS_CA_BUNDLE")
        .output()
        .expect("run meridian bench --s3");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--ca-bundle"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A zone without peers writes no data log (nobody reads it) and trims
    // its bucket index logs in every GC pass (they stay bounded).
    assert_eq!(json(&tc.cli(&["datalog", "list"])), serde_json::json!([]));
    let gc = json(&tc.cli(&["gc", "process"]));
    assert!(gc["log_entries_trimmed"].as_u64().unwrap_or(0) > 0, "{gc}");
    assert_eq!(
        json(&tc.cli(&["bilog", "list", "--bucket=meridian-bench"])),
        serde_json::json!([])
    );
    assert_eq!(json(&tc.cli(&["datalog", "list"])), serde_json::json!([]));
    assert_eq!(json(&tc.cli(&["mdlog", "list"])), serde_json::json!([]));
    assert_no_daemon_errors(&tc);
}

fn assert_no_daemon_errors(tc: &TestCluster) {
    let errors = tc.error_lines();
    assert!(
        errors.is_empty(),
        "daemons logged errors:\n{}",
        errors.join("\n")
    );
}

#[test]
fn junit_counts_are_read_from_the_testsuite() {
    let xml = r#"<?xml version="1.0" encoding="utf-8"?><testsuites name="pytest tests"><testsuite name="pytest" errors="0" failures="1" skipped="2" tests="195" time="88.1"><testcase classname="t" name="x" /></testsuite></testsuites>"#;
    assert_eq!(junit_count(xml, "tests"), Some(195));
    assert_eq!(junit_count(xml, "skipped"), Some(2));
    assert_eq!(junit_count(xml, "failures"), Some(1));
    assert_eq!(junit_count(xml, "errors"), Some(0));
    assert_eq!(junit_count(xml, "nonsense"), None);
    assert_eq!(junit_count("<testsuites></testsuites>", "tests"), None);
}
