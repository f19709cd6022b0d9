//! The S3 gateway driven by real S3 clients: a `dev up` cluster with two
//! gateways, and the pytest suite in `tests/s3/` (boto3, botocore-signed raw
//! requests, the AWS CLI) run against it, crash tests included (they kill -9
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

use common::{TestCluster, bin};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Low enough that the crash tests can wait for a killed write's intent to
/// expire; high enough that each PUT of the suite stores its data within its
/// write budget (the expiry less a quarter).
const PENDING_EXPIRY_S: &str = "8";

/// What the suite imports.
const CLIENT_CHECK: &str = "import boto3, botocore, pytest, requests, awscli";

fn has_clients(python: &Path) -> bool {
    Command::new(python)
        .args(["-c", CLIENT_CHECK])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn requirements() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/s3/requirements.txt")
}

/// The cargo target directory (`CARGO_TARGET_TMPDIR` is its `tmp/`).
fn target_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"))
}

/// Runs a setup command; on failure returns its output for the message.
fn run(what: &str, cmd: &mut Command) -> Result<(), String> {
    match cmd.output() {
        Ok(o) if o.status.success() => Ok(()),
        Ok(o) => Err(format!(
            "{what} failed ({}):\n{}\n{}",
            o.status,
            tail(&String::from_utf8_lossy(&o.stdout), 20),
            tail(&String::from_utf8_lossy(&o.stderr), 40)
        )),
        Err(e) => Err(format!("{what}: cannot run {:?}: {e}", cmd.get_program())),
    }
}

fn tail(s: &str, lines: usize) -> String {
    let v: Vec<&str> = s.lines().collect();
    v[v.len().saturating_sub(lines)..].join("\n")
}

/// The venv `target/s3venv` with the pinned clients, created (or re-created,
/// when `requirements.txt` changed or a previous install was interrupted)
/// from PyPI. A lock file serializes concurrent test processes; the stamp
/// (a copy of `requirements.txt`) is written last, so only a complete
/// install is ever reused.
fn client_venv() -> Result<PathBuf, String> {
    let target = target_dir();
    std::fs::create_dir_all(&target).map_err(|e| format!("create {}: {e}", target.display()))?;
    let venv = target.join("s3venv");
    let python = venv.join("bin/python");
    let stamp = venv.join(".meridian-requirements");
    let wanted = std::fs::read_to_string(requirements())
        .map_err(|e| format!("read tests/s3/requirements.txt: {e}"))?;
    let lock_path = target.join("s3venv.lock");
    let lock = std::fs::File::create(&lock_path)
        .map_err(|e| format!("create {}: {e}", lock_path.display()))?;
    lock.lock()
        .map_err(|e| format!("lock {}: {e}", lock_path.display()))?;
    // Held until return (the lock goes with the file handle).
    let ready =
        || std::fs::read_to_string(&stamp).is_ok_and(|s| s == wanted) && has_clients(&python);
    if ready() {
        return Ok(python);
    }
    eprintln!(
        "installing the S3 clients from PyPI into {} (once; reused by later runs)",
        venv.display()
    );
    run(
        "creating the venv",
        Command::new("python3")
            .args(["-m", "venv", "--clear"])
            .arg(&venv),
    )
    .map_err(|e| {
        format!("{e}\n(needs python3 with its venv module; on Debian/Ubuntu: apt-get install python3-venv)")
    })?;
    run(
        "pip install -r tests/s3/requirements.txt",
        Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "-r",
            ])
            .arg(requirements()),
    )?;
    if !has_clients(&python) {
        return Err(format!(
            "{} still cannot `{CLIENT_CHECK}`",
            python.display()
        ));
    }
    std::fs::write(&stamp, &wanted).map_err(|e| format!("write {}: {e}", stamp.display()))?;
    drop(lock);
    Ok(python)
}

/// A Python that can run the suite, or why there is none.
fn python() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("MERIDIAN_PYTHON") {
        let p = PathBuf::from(p);
        return if has_clients(&p) {
            Ok(p)
        } else {
            Err(format!(
                "MERIDIAN_PYTHON={} cannot `{CLIENT_CHECK}` (install tests/s3/requirements.txt into it, or unset it to let the test make its own venv)",
                p.display()
            ))
        };
    }
    let venv_python = target_dir().join("s3venv/bin/python");
    if venv_python.exists() || !has_clients(Path::new("python3")) {
        return client_venv();
    }
    Ok(PathBuf::from("python3"))
}

/// A count attribute (`tests`, `skipped`, ...) of the first `<testsuite>` of
/// a JUnit XML report.
fn junit_count(xml: &str, attr: &str) -> Option<u64> {
    let suite = &xml[xml.find("<testsuite ")?..];
    let suite = &suite[..suite.find('>')?];
    let needle = format!(" {attr}=\"");
    let from = suite.find(&needle)? + needle.len();
    let len = suite[from..].find('"')?;
    suite[from..from + len].parse().ok()
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
        .args(["-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider"])
        .arg(format!("--junitxml={}", junit.display()))
        // Its temporary files (a 64 MiB upload source, CLI config) go with the cluster's directory.
        .arg(format!("--basetemp={}", tc.dir.join("pytest").display()))
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
