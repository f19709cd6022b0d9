//! Shared helpers of the cluster tests: start a real cluster with `meridian
//! dev up` in a temporary directory, run CLI commands, kill daemons by PID.

#![allow(dead_code)]

pub mod python;

use meridian_auth::EntityName;
use meridian_client::{ClientOptions, Cluster, Credential, Credentials, TicketKeeper};
use meridian_common::Config;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

/// A running test cluster; its daemons are killed when it is dropped.
pub struct TestCluster {
    /// Directory with config, data, logs and pid files.
    pub dir: PathBuf,
    _tmp: std::sync::Arc<tempfile::TempDir>,
}

/// Path of the `meridian` binary under test: this build's, or
/// `$MERIDIAN_TEST_BIN` (to run a test against another build, e.g. to show
/// that it fails before a fix).
pub fn bin() -> &'static str {
    static BIN: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        std::env::var("MERIDIAN_TEST_BIN")
            .unwrap_or_else(|_| env!("CARGO_BIN_EXE_meridian").to_string())
    })
}

impl TestCluster {
    /// `dev up` with the given shape; panics with the daemon logs if it fails.
    pub fn start(mons: u32, osds: u32, osd_size: &str) -> TestCluster {
        Self::start_with(mons, osds, osd_size, &[])
    }

    /// `dev up ARGS --dir DIR EXTRA` for this cluster's directory; panics
    /// with the daemon logs if it fails.
    fn dev_up(&self, args: &[&str], extra: &[&str]) {
        let out = Command::new(bin())
            .args(["dev", "up"])
            .args(args)
            .arg("--dir")
            .arg(&self.dir)
            .args(extra)
            .output()
            .expect("run meridian dev up");
        if !out.status.success() {
            self.dump_logs();
            panic!(
                "dev up failed: {}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }

    /// A new single cluster in `sub` beside this zone's cluster (in the
    /// directory `start_zones` made), trusting the same CA, sharing its
    /// temporary directory: e.g. a zone re-created after its cluster was
    /// wiped. `extra` as for `start_with`.
    pub fn start_beside(&self, sub: &str, extra: &[&str]) -> TestCluster {
        let parent = self.dir.parent().expect("zones dir");
        let tc = TestCluster {
            dir: parent.join(sub),
            _tmp: self._tmp.clone(),
        };
        let ca = parent.join("tls").display().to_string();
        tc.dev_up(
            &[
                "--mons",
                "1",
                "--osds",
                "2",
                "--osd-size",
                "2G",
                "--pg-num",
                "16",
                "--s3-port",
                "0",
                "--ca-dir",
                &ca,
            ],
            extra,
        );
        tc
    }

    /// `dev up` with extra flags (`--engine pread`, `-o KEY=VALUE`). The
    /// gateway gets a port of its own unless `extra` names one: tests run
    /// side by side, and only one of them could have 7480.
    pub fn start_with(mons: u32, osds: u32, osd_size: &str, extra: &[&str]) -> TestCluster {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("cluster");
        let tc = TestCluster {
            dir,
            _tmp: std::sync::Arc::new(tmp),
        };
        let (mons, osds) = (mons.to_string(), osds.to_string());
        let mut args = vec![
            "--mons",
            &mons,
            "--osds",
            &osds,
            "--osd-size",
            osd_size,
            "--pg-num",
            "16",
        ];
        if !extra.contains(&"--s3-port") {
            args.extend(["--s3-port", "0"]);
        }
        tc.dev_up(&args, extra);
        tc
    }

    /// `dev up --zones 2`: two clusters joined into realm `dev` (zone dev-a,
    /// the master, and dev-b), one gateway each, replicating both ways.
    pub fn start_zones(osds: u32, extra: &[&str]) -> (TestCluster, TestCluster) {
        let tmp = std::sync::Arc::new(tempfile::tempdir().expect("tempdir"));
        let dir = tmp.path().join("zones");
        let mk = |sub: &str| TestCluster {
            dir: dir.join(sub),
            _tmp: tmp.clone(),
        };
        let (a, b) = (mk("zone-a"), mk("zone-b"));
        let out = Command::new(bin())
            .args([
                "dev",
                "up",
                "--zones",
                "2",
                "--osds",
                &osds.to_string(),
                "--osd-size",
                "2G",
                "--pg-num",
                "16",
                "--s3-port",
                "0",
                "--dir",
            ])
            .arg(&dir)
            .args(extra)
            .output()
            .expect("run meridian dev up --zones 2");
        if !out.status.success() {
            a.dump_logs();
            b.dump_logs();
            panic!(
                "dev up --zones 2 failed: {}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        (a, b)
    }

    /// The S3 endpoint of gateway 0.
    pub fn s3_endpoint(&self) -> String {
        format!("http://{}", self.config().gateway["0"].addr)
    }

    /// Restarts every stopped daemon and waits for HEALTH_OK.
    pub fn up_again(&self) {
        let out = Command::new(bin())
            .args(["dev", "up", "--dir"])
            .arg(&self.dir)
            .output()
            .expect("run meridian dev up");
        if !out.status.success() {
            self.dump_logs();
            panic!(
                "dev up (restart) failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }

    /// The cluster's config file.
    pub fn conf(&self) -> PathBuf {
        self.dir.join("meridian.toml")
    }

    /// The parsed config.
    pub fn config(&self) -> Config {
        Config::load(&self.conf()).expect("load config")
    }

    /// `client.admin`'s key, from the keyring `dev up` wrote.
    pub fn admin(&self) -> Credentials {
        Credentials::from_keyring(&self.config().client_keyring_path(), &EntityName::admin())
            .expect("client.admin keyring")
    }

    /// A credential for calling monitors and OSDs directly as `client.admin`.
    pub fn admin_cred(&self) -> Credential {
        Credential::Ticket(TicketKeeper::new(
            self.admin(),
            self.config().monitor_addrs(),
        ))
    }

    /// A connected client.
    pub async fn client(&self) -> Cluster {
        Cluster::connect(
            self.config().monitor_addrs(),
            ClientOptions {
                op_timeout: Duration::from_secs(60),
                credentials: Some(self.admin()),
                ..Default::default()
            },
        )
        .await
        .expect("connect")
    }

    /// Runs `meridian -c CONF args...`.
    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new(bin())
            .arg("-c")
            .arg(self.conf())
            .args(args)
            .output()
            .expect("run meridian")
    }

    /// Runs a CLI command that must succeed and print JSON; returns it.
    pub fn cli_json(&self, args: &[&str]) -> serde_json::Value {
        let out = self.cli(args);
        assert!(
            out.status.success(),
            "meridian {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "meridian {args:?} printed no JSON ({e}): {}",
                String::from_utf8_lossy(&out.stdout)
            )
        })
    }

    /// Creates a replicated pool and waits for HEALTH_OK.
    pub fn create_pool(&self, name: &str, pg_num: u32, size: u32, min_size: u32) {
        let (pg_num, size, min_size) = (pg_num.to_string(), size.to_string(), min_size.to_string());
        let out = self.cli(&[
            "osd",
            "pool",
            "create",
            name,
            &pg_num,
            "--size",
            &size,
            "--min-size",
            &min_size,
        ]);
        assert!(out.status.success(), "{out:?}");
        self.wait_healthy(Duration::from_secs(60));
    }

    /// The first S3 key pair of user `uid` (access key, secret).
    pub fn user_keys(&self, uid: &str) -> (String, String) {
        let u = self.cli_json(&["user", "info", &format!("--uid={uid}")]);
        (
            u["keys"][0]["access_key"]
                .as_str()
                .expect("access key")
                .into(),
            u["keys"][0]["secret_key"]
                .as_str()
                .expect("secret key")
                .into(),
        )
    }

    /// `meridian health detail` as text.
    pub fn health_detail(&self) -> String {
        String::from_utf8_lossy(&self.cli(&["health", "detail"]).stdout).to_string()
    }

    /// Waits until `health detail` satisfies `want` (panics after `timeout`).
    pub fn wait_health(
        &self,
        want: impl Fn(&str) -> bool,
        what: &str,
        timeout: Duration,
    ) -> String {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let h = self.health_detail();
            if want(&h) {
                return h;
            }
            if std::time::Instant::now() > deadline {
                self.dump_logs();
                panic!("health never showed {what} within {timeout:?}: {h}");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Waits until every PG of the cluster reports `state` to the monitors.
    pub fn wait_pg_states(&self, want: &str, timeout: Duration) -> serde_json::Value {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let st = self.cli_json(&["pg", "stat", "--format", "json"]);
            if st["pgs_by_state"][want].as_u64().is_some()
                && st["pgs_by_state"][want] == st["num_pgs"]
            {
                return st;
            }
            if std::time::Instant::now() > deadline {
                self.dump_logs();
                panic!("PGs not all {want} within {timeout:?}: {st}");
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    /// PID of a daemon (`mon.1`, `osd.3`).
    pub fn pid(&self, name: &str) -> i32 {
        std::fs::read_to_string(self.dir.join("run").join(format!("{name}.pid")))
            .expect("pid file")
            .trim()
            .parse()
            .expect("pid")
    }

    /// True while the daemon's process runs.
    pub fn running(&self, name: &str) -> bool {
        let pid = self.pid(name);
        Path::new(&format!("/proc/{pid}")).exists() && !is_zombie(pid)
    }

    /// kill -9 a daemon and wait until it is gone.
    pub fn kill9(&self, name: &str) {
        let pid = self.pid(name);
        // SAFETY: kill(2) on a process this test started.
        unsafe { libc::kill(pid, libc::SIGKILL) };
        // Exit can take a while (an io_uring being torn down, a loaded machine).
        for _ in 0..600 {
            if !Path::new(&format!("/proc/{pid}")).exists() || is_zombie(pid) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("{name} (pid {pid}) still runs 30 s after kill -9");
    }

    /// Starts one stopped daemon (`osd.2`, `mon.1`) alone, as `dev up` would.
    pub fn start_daemon(&self, name: &str) {
        self.start_daemon_env(name, &[]);
    }

    /// [`TestCluster::start_daemon`] with extra environment (e.g. `FAILPOINTS`).
    pub fn start_daemon_env(&self, name: &str, env: &[(&str, &str)]) {
        let (kind, id) = name.split_once('.').expect("name like osd.2");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("log").join(format!("{name}.log")))
            .expect("open daemon log");
        let mut cmd = Command::new(bin());
        cmd.arg("-c")
            .arg(self.conf())
            .args([kind, "--id", id])
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log);
        // SAFETY: setsid is async-signal-safe; it detaches the daemon like `dev up` does.
        unsafe {
            use std::os::unix::process::CommandExt as _;
            cmd.pre_exec(|| {
                libc::setsid();
                Ok(())
            });
        }
        let mut child = cmd.spawn().expect("start daemon");
        std::fs::write(
            self.dir.join("run").join(format!("{name}.pid")),
            child.id().to_string(),
        )
        .expect("pid file");
        // Reap it when it exits (killed or stopped), so no zombie is left.
        std::thread::spawn(move || {
            let _ = child.wait();
        });
    }

    /// Prints every daemon log (on failure).
    pub fn dump_logs(&self) {
        if let Ok(rd) = std::fs::read_dir(self.dir.join("log")) {
            for e in rd.flatten() {
                let text = std::fs::read_to_string(e.path()).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(60).collect();
                eprintln!("===== {} (last 60 lines) =====", e.path().display());
                for l in tail.into_iter().rev() {
                    eprintln!("{l}");
                }
            }
        }
    }

    /// Lines logged at ERROR by any daemon.
    pub fn error_lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Ok(rd) = std::fs::read_dir(self.dir.join("log")) {
            for e in rd.flatten() {
                let text = std::fs::read_to_string(e.path()).unwrap_or_default();
                out.extend(
                    text.lines()
                        .filter(|l| l.contains(" ERROR "))
                        .map(|l| format!("{}: {l}", e.file_name().to_string_lossy())),
                );
            }
        }
        out
    }

    /// `meridian scrub -p POOL --deep --format json`; asserts that every
    /// replica agrees and returns the report.
    pub fn deep_scrub_clean(&self, pool: &str) -> serde_json::Value {
        let out = self.cli(&["scrub", "-p", pool, "--deep", "--format", "json"]);
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
            panic!(
                "scrub output: {} {}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        });
        assert!(out.status.success(), "scrub failed: {report}");
        assert_eq!(report["inconsistent"], 0, "replicas differ: {report}");
        report
    }

    /// `GET /metrics` from a daemon's metrics address (plain HTTP/1.0 on loopback).
    pub fn scrape(&self, addr: Option<&str>) -> String {
        use std::io::{Read as _, Write as _};
        let addr = addr.expect("the daemon has a metrics_addr");
        let mut s = std::net::TcpStream::connect(addr).expect("connect to metrics");
        s.write_all(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n")
            .expect("send");
        let mut out = String::new();
        s.read_to_string(&mut out).expect("read metrics");
        assert!(
            out.starts_with("HTTP/1.0 200") || out.starts_with("HTTP/1.1 200"),
            "{out}"
        );
        out
    }

    /// Waits until `meridian health` prints HEALTH_OK.
    pub fn wait_healthy(&self, timeout: Duration) {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let out = self.cli(&["health"]);
            let s = String::from_utf8_lossy(&out.stdout).to_string();
            if s.starts_with("HEALTH_OK") {
                return;
            }
            if std::time::Instant::now() > deadline {
                self.dump_logs();
                panic!("not healthy within {timeout:?}: {s}");
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

fn is_zombie(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| s.split(' ').nth(2) == Some("Z"))
        .unwrap_or(true)
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        let _ = Command::new(bin())
            .args(["dev", "down", "--dir"])
            .arg(&self.dir)
            .output();
    }
}
