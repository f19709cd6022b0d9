//! A Python with the S3 clients of `tests/s3/requirements.txt` (boto3,
//! botocore, the AWS CLI, pytest, requests) for the suites that drive the
//! gateways with real clients: `$MERIDIAN_PYTHON` if set, else the venv
//! `s3venv` in the cargo target directory, else a `python3` that has them;
//! when none does, the venv is created from PyPI (under a lock file, so
//! concurrent test processes install it once) and reused by later runs.

use std::path::{Path, PathBuf};
use std::process::Command;

/// What the suite imports.
pub const CLIENT_CHECK: &str = "import boto3, botocore, pytest, requests, awscli";

pub fn has_clients(python: &Path) -> bool {
    Command::new(python)
        .args(["-c", CLIENT_CHECK])
        .output()
        .is_ok_and(|o| o.status.success())
}

pub fn requirements() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/s3/requirements.txt")
}

/// The cargo target directory (`CARGO_TARGET_TMPDIR` is its `tmp/`).
pub fn target_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"))
}

/// Runs a setup command; on failure returns its output for the message.
pub fn run(what: &str, cmd: &mut Command) -> Result<(), String> {
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

pub fn tail(s: &str, lines: usize) -> String {
    let v: Vec<&str> = s.lines().collect();
    v[v.len().saturating_sub(lines)..].join("\n")
}

/// The venv `target/s3venv` with the pinned clients, created (or re-created,
/// when `requirements.txt` changed or a previous install was interrupted)
/// from PyPI. A lock file serializes concurrent test processes; the stamp
/// (a copy of `requirements.txt`) is written last, so only a complete
/// install is ever reused.
pub fn client_venv() -> Result<PathBuf, String> {
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
pub fn python() -> Result<PathBuf, String> {
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
pub fn junit_count(xml: &str, attr: &str) -> Option<u64> {
    let suite = &xml[xml.find("<testsuite ")?..];
    let suite = &suite[..suite.find('>')?];
    let needle = format!(" {attr}=\"");
    let from = suite.find(&needle)? + needle.len();
    let len = suite[from..].find('"')?;
    suite[from..from + len].parse().ok()
}
