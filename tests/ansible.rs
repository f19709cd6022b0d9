//! Deployment with the playbooks in `ansible/`, on containers standing in for
//! bare-metal hosts: three storage hosts (a monitor and two OSDs each, the
//! third also a gateway), a gateway host, and a control host that runs
//! `ansible-playbook` (ansible-core from PyPI) over SSH. Each host runs
//! systemd as init, so the daemons run under the units the playbooks install.
//! A third test deploys two one-host clusters, joins them as zones with
//! `multisite.yml` and cuts the link between them.
//!
//! The host image is built from Debian's archive (`tests/ansible/build-image.sh`,
//! debootstrap; nothing is pulled from a registry) and reused by later runs.
//! The test needs Docker and root (debootstrap); without them it fails and
//! says why.

mod common;

use common::bin;
use common::python::{tail, target_dir};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// The S3 user the inventory creates.
const ACCESS_KEY: &str = "DEPLOYTESTACCESSKEY1";
const SECRET_KEY: &str = "deploy/test/secret/key/0123456789abcdefghij";

/// The AWS CLI on the control host, as the S3 user the inventory creates.
fn aws_cli() -> String {
    format!(
        "AWS_ACCESS_KEY_ID={ACCESS_KEY} AWS_SECRET_ACCESS_KEY='{SECRET_KEY}' AWS_DEFAULT_REGION=us-east-1 /opt/ansible/bin/aws"
    )
}

/// The inventory's `meridian_s3_users` entry for that user.
fn s3_user_entry() -> String {
    format!(
        "      - {{ uid: tester, display_name: Deploy tester, access_key: {ACCESS_KEY}, secret_key: {SECRET_KEY} }}"
    )
}

/// Storage hosts (monitor + OSDs), then the gateway-only host.
const STORAGE: [&str; 3] = ["stor1", "stor2", "stor3"];
const GATEWAY_HOST: &str = "gw1";
const CONTROL: &str = "ctl";

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn output_text(o: &Output) -> String {
    format!(
        "{}\n{}",
        tail(&String::from_utf8_lossy(&o.stdout), 60),
        tail(&String::from_utf8_lossy(&o.stderr), 30)
    )
}

fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {:?}: {e}", cmd.get_program()))
}

fn docker(args: &[&str]) -> Output {
    run(Command::new("docker").args(args))
}

/// Freezes a container, retrying: the cgroup v1 freezer gives up ("unable
/// to freeze") when a task will not stop in time, e.g. one in an fsync under
/// load, and runc thaws the group before it reports that, so a retry is safe.
fn pause_container(container: &str) {
    let mut last = None;
    for _ in 0..10 {
        let o = docker(&["pause", container]);
        if o.status.success() {
            return;
        }
        last = Some(output_text(&o));
        std::thread::sleep(Duration::from_millis(500));
    }
    panic!(
        "docker pause {container} failed 10 times: {}",
        last.unwrap_or_default()
    );
}

fn docker_ok(args: &[&str]) -> String {
    let o = docker(args);
    assert!(
        o.status.success(),
        "docker {}: {}",
        args.join(" "),
        output_text(&o)
    );
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

/// The containers of one test run, their network and their data
/// directories; all removed on drop, pass or fail.
struct Hosts {
    prefix: String,
    network: String,
    dir: PathBuf,
    /// The hosts Ansible deploys onto (the control host aside).
    machines: Vec<&'static str>,
    names: Vec<String>,
}

impl Hosts {
    fn start(image: &str, dir: &Path, tag: &str, machines: &[&'static str]) -> Hosts {
        let prefix = format!("meridian-deploy-{}-{tag}", std::process::id());
        let network = prefix.clone();
        docker_ok(&["network", "create", &network]);
        let mut hosts = Hosts {
            prefix,
            network,
            dir: dir.to_path_buf(),
            machines: machines.to_vec(),
            names: Vec::new(),
        };
        for name in machines.iter().chain([&CONTROL]) {
            hosts.boot(image, name);
        }
        for name in &hosts.names {
            // systemd is up when it answers; "degraded" is fine (no units of ours yet).
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                let o = docker(&["exec", name, "systemctl", "is-system-running"]);
                let s = String::from_utf8_lossy(&o.stdout);
                if s.contains("running") || s.contains("degraded") {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "{name}: systemd did not start: {s}"
                );
                std::thread::sleep(Duration::from_millis(500));
            }
        }
        hosts
    }

    fn container(&self, host: &str) -> String {
        format!("{}-{host}", self.prefix)
    }

    fn boot(&mut self, image: &str, host: &str) {
        let name = self.container(host);
        let data = self.dir.join(host);
        std::fs::create_dir_all(&data).expect("host data dir");
        let srv = format!("{}:/srv", data.display());
        let mut args = vec![
            "run",
            "-d",
            "--name",
            &name,
            "--hostname",
            host,
            "--network",
            &self.network,
            "--network-alias",
            host,
            // Blackhole routes cut a host off while it keeps its address.
            "--cap-add",
            "NET_ADMIN",
            "--tmpfs",
            "/run",
            "--tmpfs",
            "/run/lock",
            "-v",
            "/sys/fs/cgroup:/sys/fs/cgroup:ro",
            "-v",
            &srv,
        ];
        let (ansible, tools, wheels, release, inventory);
        if host == CONTROL {
            ansible = format!("{}:/ansible:ro", repo().join("ansible").display());
            tools = format!("{}:/tools:ro", repo().join("tests/ansible").display());
            wheels = format!("{}:/wheels:ro", wheel_dir().display());
            release = format!("{}:/release:ro", self.dir.join("release").display());
            inventory = format!("{}:/inventory:ro", self.dir.join("inventory").display());
            for v in [&ansible, &tools, &wheels, &release, &inventory] {
                args.extend(["-v", v.as_str()]);
            }
        }
        args.push(image);
        docker_ok(&args);
        self.names.push(name);
    }

    /// Runs a shell script on a host.
    fn sh(&self, host: &str, script: &str) -> Output {
        docker(&["exec", &self.container(host), "sh", "-c", script])
    }

    fn sh_ok(&self, host: &str, script: &str) -> String {
        let o = self.sh(host, script);
        assert!(o.status.success(), "{host}: {script}: {}", output_text(&o));
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    }

    /// `ansible-playbook PLAYBOOK ARGS` with the inventory `hosts.yml`.
    fn playbook(&self, playbook: &str, args: &str) -> String {
        self.playbook_in("hosts.yml", playbook, args)
    }

    /// `ansible-playbook -i INVENTORY PLAYBOOK ARGS` on the control host;
    /// returns the output, panicking with it when the playbook fails.
    fn playbook_in(&self, inventory: &str, playbook: &str, args: &str) -> String {
        let started = Instant::now();
        let o = self.sh(
            CONTROL,
            &format!(
                "cd /ansible && ANSIBLE_CONFIG=/ansible/ansible.cfg ANSIBLE_FORCE_COLOR=0 \
                 /opt/ansible/bin/ansible-playbook -i /inventory/{inventory} {playbook} {args}"
            ),
        );
        let out = String::from_utf8_lossy(&o.stdout).to_string();
        assert!(
            o.status.success(),
            "{playbook} failed after {:?}:\n{}\n{}",
            started.elapsed(),
            tail(&out, 80),
            String::from_utf8_lossy(&o.stderr)
        );
        eprintln!("{inventory} {playbook} {args}: {:.0?}", started.elapsed());
        out
    }

    /// `meridian ARGS` as an administrator on the first host.
    fn meridian(&self, args: &str) -> String {
        self.sh_ok(self.machines[0], &format!("meridian {args}"))
    }

    fn health(&self) -> serde_json::Value {
        serde_json::from_str(&self.meridian("--format json health")).expect("health JSON")
    }

    /// The main PID of a unit on a host (0 when it is not running).
    fn main_pid(&self, host: &str, unit: &str) -> u32 {
        self.sh_ok(host, &format!("systemctl show -p MainPID --value {unit}"))
            .parse()
            .unwrap_or(0)
    }

    fn dump_journal(&self) {
        for host in &self.machines {
            let o = self.sh(host, "journalctl -u 'meridian-*' --no-pager -n 40");
            eprintln!("--- {host}\n{}", String::from_utf8_lossy(&o.stdout));
        }
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.dump_journal();
        }
        for name in &self.names {
            let _ = docker(&["rm", "-f", "-v", name]);
        }
        let _ = docker(&["network", "rm", &self.network]);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn wheel_dir() -> PathBuf {
    target_dir().join("ansible-test").join("wheels")
}

/// Wheels of ansible-core and the AWS CLI for the control host's Python
/// (Debian bookworm's 3.11), downloaded once from PyPI.
fn download_wheels() {
    // Both tests of this file start at once: one downloads, the other waits.
    static ONCE: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _once = ONCE.lock().unwrap_or_else(|p| p.into_inner());
    let dir = wheel_dir();
    let stamp = dir.join(".requirements");
    let req = repo().join("tests/ansible/requirements.txt");
    let want = std::fs::read_to_string(&req).expect("tests/ansible/requirements.txt");
    if std::fs::read_to_string(&stamp).is_ok_and(|s| s == want) {
        return;
    }
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("wheel dir");
    let o = run(Command::new("python3")
        .args(["-m", "pip", "download", "-q", "--only-binary=:all:"])
        .args(["--python-version", "3.11", "--implementation", "cp"])
        .args([
            "--platform",
            "manylinux_2_28_x86_64",
            "--platform",
            "manylinux_2_17_x86_64",
            "--platform",
            "manylinux2014_x86_64",
        ])
        .arg("-d")
        .arg(&dir)
        .arg("-r")
        .arg(&req));
    assert!(
        o.status.success(),
        "downloading the control host's wheels from PyPI failed:\n{}",
        output_text(&o)
    );
    std::fs::write(&stamp, want).expect("stamp");
}

fn build_image(work: &Path) -> String {
    let o = run(Command::new(repo().join("tests/ansible/build-image.sh")).arg(work));
    assert!(
        o.status.success(),
        "building the host image failed:\n{}",
        output_text(&o)
    );
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

/// What every test inventory sets besides the cluster's own: the binary the
/// test built, small block files, and what unprivileged containers allow.
const CONTAINER_VARS: &str = "    ansible_user: root
    meridian_binary_src: /release/meridian
    meridian_data_dir: /srv/meridian
    meridian_osd_block_size: 2G
    meridian_osd_preallocate: false
    meridian_osd_memory_target: 512M
    meridian_health_timeout: 300
    # Unprivileged containers: no mount namespaces, and the engine's limits.
    meridian_systemd_hardening: false
    meridian_limit_nofile: 20000
    meridian_limit_memlock: 8M
";

/// A gateway option the test changes (to see that only gateways restart).
const GATEWAY_OPTION: &str = "\n      rgw_gc_processor_period_s: 1200";

/// The storage hosts' OSD ids at the start: two per host.
const FIRST_OSDS: [&[u32]; 3] = [&[0, 1], &[2, 3], &[4, 5]];

fn inventory(extra_gateway_options: &str, osds_of: [&[u32]; 3]) -> String {
    let osds = |host: usize| {
        let mut s = "          meridian_osds:\n".to_string();
        for id in osds_of[host] {
            s.push_str(&format!("            - {{ id: {id} }}\n"));
        }
        s
    };
    format!(
        r#"all:
  vars:
    meridian_fsid: 2f1c3b7e-5d9a-4c1e-8f00-7a6b5c4d3e21
{CONTAINER_VARS}    meridian_options:
      osd_heartbeat_interval_ms: 500
      osd_heartbeat_grace_ms: 4000
      # Longer than the 60 s cut: the cut host's OSDs come back still in
      # (at 60 s they were sometimes marked out just before, and healing
      # then waited for the data to move back).
      mon_osd_down_out_interval_s: 120
    meridian_gateway_options:
      rgw_pool_pg_num: 8{extra_gateway_options}
    meridian_pools:
      - {{ name: data, pg_num: 16 }}
    meridian_s3_users:
{s3_users}
  children:
    mons:
      hosts:
        stor1:
        stor2:
        stor3:
    osds:
      hosts:
        stor1:
{}        stor2:
{}        stor3:
{}    gateways:
      hosts:
        stor3:
        gw1:
"#,
        osds(0),
        osds(1),
        osds(2),
        s3_users = s3_user_entry()
    )
}

/// Every host's line of the PLAY RECAP, asserting `changed=0`.
fn assert_nothing_changed(out: &str, what: &str) {
    let recap: Vec<&str> = out
        .lines()
        .skip_while(|l| !l.starts_with("PLAY RECAP"))
        .skip(1)
        .filter(|l| l.contains("changed="))
        .collect();
    assert!(
        !recap.is_empty(),
        "{what}: no PLAY RECAP:\n{}",
        tail(out, 40)
    );
    let changed: Vec<&&str> = recap.iter().filter(|l| !l.contains("changed=0 ")).collect();
    if !changed.is_empty() {
        let tasks: Vec<&str> = out
            .lines()
            .filter(|l| l.starts_with("changed:") || l.starts_with("TASK ["))
            .collect();
        panic!(
            "{what} changed something:\n{}\n{}",
            changed
                .iter()
                .map(|l| l.to_string())
                .collect::<Vec<_>>()
                .join("\n"),
            tasks.join("\n")
        );
    }
}

/// The gateways of the five-host cluster, as the writer reaches them.
const GATEWAYS: &str = "http://gw1:7480,http://stor3:7480";

/// `s3load.py MODE` against `endpoints` (comma-separated URLs).
fn s3_load_on(hosts: &Hosts, mode: &str, endpoints: &str) -> Output {
    hosts.sh(
        CONTROL,
        &format!(
            "AWS_ACCESS_KEY_ID={ACCESS_KEY} AWS_SECRET_ACCESS_KEY='{SECRET_KEY}' \
             /opt/ansible/bin/python /tools/s3load.py {mode} \
             --endpoints {endpoints} --bucket load --state /srv/load"
        ),
    )
}

/// Starts the S3 writer on the control host (see `tests/ansible/s3load.py`).
fn start_writer(hosts: &Hosts) {
    start_writer_on(hosts, GATEWAYS);
}

fn start_writer_on(hosts: &Hosts, endpoints: &str) {
    hosts.sh_ok(
        CONTROL,
        &format!(
            "mkdir -p /srv/load && (AWS_ACCESS_KEY_ID={ACCESS_KEY} AWS_SECRET_ACCESS_KEY='{SECRET_KEY}' \
             nohup /opt/ansible/bin/python /tools/s3load.py write \
             --endpoints {endpoints} --bucket load --state /srv/load \
             > /srv/load/writer.log 2>&1 &)"
        ),
    );
}

/// Stops the writer and reads back every write it had acknowledged: the
/// report, with nothing missing or corrupt.
fn stop_writer_and_verify(hosts: &Hosts) -> serde_json::Value {
    stop_writer(hosts);
    verify_on(hosts, GATEWAYS)
}

/// Reads back through `endpoints` every write the writer acknowledged.
fn verify_on(hosts: &Hosts, endpoints: &str) -> serde_json::Value {
    let report = s3_load_on(hosts, "verify", endpoints);
    assert!(report.status.success(), "verify: {}", output_text(&report));
    let report: serde_json::Value =
        serde_json::from_slice(&report.stdout).expect("verify report JSON");
    assert_eq!(
        report["missing"],
        serde_json::json!([]),
        "{endpoints}: {report}"
    );
    assert_eq!(
        report["corrupt"],
        serde_json::json!([]),
        "{endpoints}: {report}"
    );
    report
}

/// Tells the writer to stop and waits until it has.
fn stop_writer(hosts: &Hosts) {
    hosts.sh_ok(CONTROL, "touch /srv/load/stop");
    let deadline = Instant::now() + Duration::from_secs(90);
    while hosts
        .sh(CONTROL, "pgrep -f '[s]3load.py write'")
        .status
        .success()
    {
        assert!(Instant::now() < deadline, "the writer did not stop");
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Five containers with the control host ready (Ansible, the AWS CLI, an
/// SSH key every host trusts) and the inventory written; returns them and
/// the run's directory.
fn deploy(tag: &str) -> (Hosts, PathBuf) {
    let machines: Vec<&'static str> = STORAGE.iter().chain([&GATEWAY_HOST]).copied().collect();
    hosts_with(tag, &machines, &[("hosts.yml", inventory("", FIRST_OSDS))])
}

/// Containers for `machines` and the control host (Ansible, the AWS CLI, an
/// SSH key every host trusts), with `inventories` written as named; returns
/// them and the run's directory.
fn hosts_with(
    tag: &str,
    machines: &[&'static str],
    inventories: &[(&str, String)],
) -> (Hosts, PathBuf) {
    let docker_info = Command::new("docker").arg("info").output();
    assert!(
        docker_info.as_ref().is_ok_and(|o| o.status.success()),
        "this test deploys onto Docker containers and needs a running Docker engine: {:?}",
        docker_info.map(|o| String::from_utf8_lossy(&o.stderr).to_string())
    );
    let work = target_dir().join("ansible-test");
    let image = build_image(&work);
    download_wheels();
    let dir = work.join(format!("run-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    for sub in ["release", "inventory"] {
        std::fs::create_dir_all(dir.join(sub)).expect("run dir");
    }
    std::fs::copy(bin(), dir.join("release/meridian")).expect("copy the binary");
    for (name, text) in inventories {
        std::fs::write(dir.join("inventory").join(name), text).expect("inventory");
    }
    let hosts = Hosts::start(&image, &dir, tag, machines);

    // The control host: Ansible and the AWS CLI from the wheels, and an SSH
    // key every host trusts.
    hosts.sh_ok(
        CONTROL,
        "python3 -m venv /opt/ansible && /opt/ansible/bin/pip install -q --no-index \
         --find-links /wheels -r /tools/requirements.txt && \
         ssh-keygen -q -t ed25519 -N '' -f /root/.ssh/id_ed25519",
    );
    let key = hosts.sh_ok(CONTROL, "cat /root/.ssh/id_ed25519.pub");
    for host in machines {
        hosts.sh_ok(
            host,
            &format!(
                "echo '{key}' > /root/.ssh/authorized_keys && chmod 600 /root/.ssh/authorized_keys"
            ),
        );
    }

    (hosts, dir)
}

#[test]
fn ansible_deploys_upgrades_and_shrinks_a_cluster_on_container_hosts() {
    let (hosts, dir) = deploy("deploy");
    let release = dir.join("release");
    // A new cluster, from nothing to HEALTH_OK.
    hosts.playbook("site.yml", "");
    let health = hosts.health();
    assert_eq!(health["status"], "HEALTH_OK", "{health}");
    let status: serde_json::Value =
        serde_json::from_str(&hosts.meridian("--format json status")).expect("status JSON");
    assert_eq!(status["osdmap"]["num_up_osds"], 6, "{status}");
    for (i, host) in STORAGE.iter().enumerate() {
        let units = [
            format!("meridian-mon@{}", i + 1),
            format!("meridian-osd@{}", i * 2),
            format!("meridian-osd@{}", i * 2 + 1),
        ];
        for unit in &units {
            assert_eq!(
                hosts.sh_ok(host, &format!("systemctl is-enabled {unit}")),
                "enabled",
                "{host} {unit}"
            );
            let pid = hosts.main_pid(host, unit);
            assert!(pid > 0, "{host}: {unit} is not running");
            // Daemons run as the dedicated user, not root.
            let user = hosts.sh_ok(host, &format!("ps -o user= -p {pid}"));
            assert_eq!(user, "meridian", "{host} {unit}");
        }
    }
    // S3 with the AWS CLI from the control host, through both gateways.
    let aws = aws_cli();
    hosts.sh_ok(
        CONTROL,
        &format!(
            "head -c 3000000 /dev/urandom > /tmp/obj && \
             {aws} --endpoint-url http://gw1:7480 s3 mb s3://deployed && \
             {aws} --endpoint-url http://gw1:7480 s3 cp /tmp/obj s3://deployed/obj && \
             {aws} --endpoint-url http://stor3:7480 s3 cp s3://deployed/obj /tmp/back && cmp /tmp/obj /tmp/back"
        ),
    );
    let listing = hosts.sh_ok(
        CONTROL,
        &format!("{aws} --endpoint-url http://stor3:7480 s3 ls s3://deployed"),
    );
    assert!(listing.contains("3000000 obj"), "{listing}");

    // Converged: a second run changes nothing.
    let again = hosts.playbook("site.yml", "");
    assert_nothing_changed(&again, "a second site.yml");

    // A gateway-only option restarts the gateways and nothing else.
    let pids = |hosts: &Hosts| -> Vec<(String, u32)> {
        let mut v = Vec::new();
        for (i, host) in STORAGE.iter().enumerate() {
            for unit in [
                format!("meridian-mon@{}", i + 1),
                format!("meridian-osd@{}", i * 2),
            ] {
                v.push((format!("{host} {unit}"), hosts.main_pid(host, &unit)));
            }
        }
        for (host, id) in [(STORAGE[2], "stor3"), (GATEWAY_HOST, "gw1")] {
            let unit = format!("meridian-gateway@{id}");
            v.push((format!("{host} {unit}"), hosts.main_pid(host, &unit)));
        }
        v
    };
    let before = pids(&hosts);
    std::fs::write(
        dir.join("inventory/hosts.yml"),
        inventory(GATEWAY_OPTION, FIRST_OSDS),
    )
    .expect("inventory");
    hosts.playbook("site.yml", "");
    let after = pids(&hosts);
    for ((what, b), (_, a)) in before.iter().zip(&after) {
        if what.contains("gateway") {
            assert_ne!(a, b, "{what} was not restarted for its option");
        } else {
            assert_eq!(a, b, "{what} was restarted for a gateway option");
        }
    }

    // A rolling upgrade to a rebuilt binary while a writer keeps writing
    // through both gateways: no write fails, every daemon ends on the new
    // binary, and a rerun restarts nothing.
    let mut next = std::fs::read(bin()).expect("read the binary");
    next.extend_from_slice(b"\nmeridian-deploy-test-rebuild\n");
    std::fs::write(release.join("meridian-next"), &next).expect("write the rebuilt binary");
    start_writer(&hosts);
    std::thread::sleep(Duration::from_secs(3));
    let upgrade = "-e meridian_binary_src=/release/meridian-next";
    hosts.playbook("rolling-upgrade.yml", upgrade);
    let sum = hosts.sh_ok(CONTROL, "sha256sum /release/meridian-next | cut -d' ' -f1");
    for host in STORAGE.iter().chain([&GATEWAY_HOST]) {
        assert_eq!(
            hosts.sh_ok(host, "sha256sum /usr/local/bin/meridian | cut -d' ' -f1"),
            sum,
            "{host} has not the new binary"
        );
        let stale = hosts.sh_ok(
            host,
            "for p in $(pgrep -x meridian); do readlink /proc/$p/exe; done | grep -c deleted || true",
        );
        assert_eq!(stale, "0", "{host} still runs the old binary");
    }
    let rerun = hosts.playbook("rolling-upgrade.yml", upgrade);
    assert_nothing_changed(&rerun, "a second rolling-upgrade.yml");

    // Retire osd.5 while the writer goes on: its data moves first.
    hosts.playbook("remove-osd.yml", "-e osd_ids=5");
    let ls: Vec<u32> =
        serde_json::from_str(&hosts.meridian("--format json osd ls")).expect("osd ls JSON");
    assert_eq!(ls, vec![0, 1, 2, 3, 4], "osd.5 is still in the map");
    assert!(
        !hosts
            .sh(STORAGE[2], "test -e /srv/meridian/osd.5")
            .status
            .success(),
        "osd.5's data directory is still there"
    );
    let report = stop_writer_and_verify(&hosts);
    assert!(report["acked"].as_u64().unwrap_or(0) > 50, "{report}");
    assert_eq!(report["missing"], serde_json::json!([]), "{report}");
    assert_eq!(report["corrupt"], serde_json::json!([]), "{report}");
    assert_eq!(report["write_errors"], serde_json::json!([]), "{report}");
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let h = hosts.health();
        if h["status"] == "HEALTH_OK" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not healthy after remove-osd: {h}"
        );
        std::thread::sleep(Duration::from_secs(2));
    }
    eprintln!("writer: {report}");

    // A new disk on stor3 (osd.6; ids are never reused), added by a run
    // limited to that host.
    std::fs::write(
        dir.join("inventory/hosts.yml"),
        inventory(GATEWAY_OPTION, [&[0, 1], &[2, 3], &[4, 6]]),
    )
    .expect("inventory");
    hosts.playbook("add-osd.yml", "--limit stor3");
    let status: serde_json::Value =
        serde_json::from_str(&hosts.meridian("--format json status")).expect("status JSON");
    assert_eq!(status["osdmap"]["num_up_osds"], 6, "{status}");
    assert_eq!(hosts.health()["status"], "HEALTH_OK");
    let again = hosts.playbook("site.yml", "");
    assert_nothing_changed(&again, "site.yml after add-osd");
    verify_on(&hosts, GATEWAYS);

    // purge.yml refuses without confirmation, then removes everything.
    let refused = hosts.sh(
        CONTROL,
        "cd /ansible && ANSIBLE_CONFIG=/ansible/ansible.cfg /opt/ansible/bin/ansible-playbook \
         -i /inventory/hosts.yml purge.yml",
    );
    assert!(
        !refused.status.success(),
        "purge.yml ran without purge_confirm"
    );
    hosts.playbook("purge.yml", "-e purge_confirm=yes");
    for host in STORAGE.iter().chain([&GATEWAY_HOST]) {
        assert!(
            !hosts.sh(host, "pgrep -x meridian").status.success(),
            "{host} still runs meridian"
        );
        let left = hosts.sh_ok(
            host,
            "ls -d /srv/meridian /etc/meridian /usr/local/bin/meridian \
             /etc/systemd/system/meridian-* 2>/dev/null || true",
        );
        assert_eq!(left, "", "{host} keeps {left}");
    }
}

impl Hosts {
    /// A host's address on the test network.
    fn ip(&self, host: &str) -> String {
        docker_ok(&[
            "inspect",
            "-f",
            "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
            &self.container(host),
        ])
    }

    /// Cuts `host` off from every other host (blackhole routes to their
    /// addresses): unlike `docker network disconnect`, it keeps its own
    /// address, so what runs there can still be asked what it does.
    fn cut(&self, host: &str, add: bool) {
        let others: Vec<&str> = self
            .machines
            .iter()
            .chain([&CONTROL])
            .copied()
            .filter(|o| *o != host)
            .collect();
        self.cut_between(host, &others, add);
    }

    /// Cuts (or mends) the link between `host` and each of `others`:
    /// `host` drops what it would send them, so no connection either way
    /// completes.
    fn cut_between(&self, host: &str, others: &[&str], add: bool) {
        let verb = if add { "add" } else { "del" };
        let script: String = others
            .iter()
            .map(|o| format!("ip route {verb} blackhole {}/32; ", self.ip(o)))
            .collect();
        self.sh_ok(host, &script);
    }

    /// `meridian --format json status`, asked on `host`.
    fn status_on(&self, host: &str) -> Option<serde_json::Value> {
        let o = self.sh(host, "timeout 20 meridian --format json status");
        serde_json::from_slice(&o.stdout).ok()
    }
}

/// Polls `ready` every half second until it holds; returns how long it took.
fn wait_until(what: &str, timeout: Duration, mut ready: impl FnMut() -> bool) -> Duration {
    let started = Instant::now();
    while !ready() {
        assert!(
            started.elapsed() < timeout,
            "{what}: not within {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    started.elapsed()
}

/// The storage host of a monitor id or an OSD id (ids as the inventory gives them).
fn host_of_mon(id: u64) -> &'static str {
    STORAGE[(id - 1) as usize]
}

fn host_of_osd(id: u64) -> &'static str {
    STORAGE[(id / 2) as usize]
}

#[test]
fn faults_across_hosts_heal_without_losing_acknowledged_writes() {
    let (hosts, _dir) = deploy("faults");
    hosts.playbook("site.yml", "");
    start_writer(&hosts);
    std::thread::sleep(Duration::from_secs(5));
    let healthy = |hosts: &Hosts| hosts.health()["status"] == "HEALTH_OK";
    let mut findings = Vec::new();

    // 1. The monitor leader's host cut off for 60 s.
    let status = hosts.status_on(STORAGE[0]).expect("status");
    let leader = status["monmap"]["leader"].as_u64().expect("a leader");
    let cut = host_of_mon(leader);
    let observer = STORAGE
        .iter()
        .find(|h| **h != cut)
        .copied()
        .unwrap_or(STORAGE[0]);
    let started = Instant::now();
    hosts.cut(cut, true);
    // The majority elects another leader and goes on.
    let elected = wait_until(
        "a new leader on the majority side",
        Duration::from_secs(60),
        || {
            hosts.status_on(observer).is_some_and(|s| {
                s["monmap"]["leader"]
                    .as_u64()
                    .is_some_and(|l| l != leader && l != 0)
            })
        },
    );
    // The cut monitor serves no write.
    let probe = hosts.sh(
        cut,
        "timeout 20 meridian -c /etc/meridian/meridian.toml osd pool create cut-probe 8",
    );
    assert!(
        !probe.status.success(),
        "the cut-off monitor accepted a write: {}",
        output_text(&probe)
    );
    std::thread::sleep(Duration::from_secs(60).saturating_sub(started.elapsed()));
    hosts.cut(cut, false);
    let healed = wait_until("HEALTH_OK after the cut", Duration::from_secs(180), || {
        healthy(&hosts)
    });
    let quorum = hosts.status_on(observer).expect("status")["monmap"]["quorum"].clone();
    assert_eq!(quorum.as_array().map(Vec::len), Some(3), "quorum {quorum}");
    findings.push(format!(
        "leader mon.{leader} ({cut}) cut 60 s: new leader after {elected:.1?}, HEALTH_OK {healed:.1?} after the cut ended"
    ));

    // 2. A primary OSD's host frozen past the heartbeat grace, then resumed.
    let map: serde_json::Value = serde_json::from_str(
        &hosts.meridian("--format json osd map default.meridian.buckets.data probe"),
    )
    .expect("osd map JSON");
    let primary = map["acting_primary"].as_u64().expect("a primary");
    let frozen = host_of_osd(primary);
    let watcher = STORAGE
        .iter()
        .find(|h| **h != frozen)
        .copied()
        .unwrap_or(STORAGE[0]);
    pause_container(&hosts.container(frozen));
    let paused = Instant::now();
    let osd_down = || {
        let tree = hosts.sh(watcher, "timeout 20 meridian --format json osd tree");
        serde_json::from_slice::<serde_json::Value>(&tree.stdout)
            .ok()
            .and_then(|t| {
                t["nodes"].as_array().map(|n| {
                    n.iter()
                        .any(|o| o["id"] == primary && o["status"] == "down")
                })
            })
            .unwrap_or(false)
    };
    let detected = wait_until(
        "the frozen OSD marked down",
        Duration::from_secs(60),
        osd_down,
    );
    std::thread::sleep(Duration::from_secs(20).saturating_sub(paused.elapsed()));
    docker_ok(&["unpause", &hosts.container(frozen)]);
    let recovered = wait_until(
        "HEALTH_OK after the freeze",
        Duration::from_secs(180),
        || healthy(&hosts),
    );
    findings.push(format!(
        "osd.{primary}'s host {frozen} paused 20 s: marked down after {detected:.1?}, HEALTH_OK {recovered:.1?} after resuming"
    ));

    // 3. A host's clock stepped forward by a minute while its daemons
    // run: stor3's monitor, OSDs and gateway read the time through
    // libfaketime (monotonic clocks untouched, as a real step leaves them).
    // A minute, not five: from 300 s of skew on, peers refuse the host's
    // signed requests outright (a separate, documented limit).
    let stepped = STORAGE[2];
    let dropin = "[Service]\n\
        Environment=LD_PRELOAD=/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1\n\
        Environment=FAKETIME_TIMESTAMP_FILE=/srv/faketime\n\
        Environment=FAKETIME_DONT_FAKE_MONOTONIC=1\n\
        Environment=FAKETIME_CACHE_DURATION=1\n";
    hosts.sh_ok(
        stepped,
        &format!(
            "echo +0 > /srv/faketime && chmod 644 /srv/faketime && \
             for k in mon osd gateway; do mkdir -p /etc/systemd/system/meridian-$k@.service.d && \
             printf '{dropin}' > /etc/systemd/system/meridian-$k@.service.d/faketime.conf; done && \
             systemctl daemon-reload && \
             systemctl restart meridian-mon@3 meridian-osd@4 meridian-osd@5 meridian-gateway@stor3"
        ),
    );
    wait_until(
        "HEALTH_OK after restarting under libfaketime",
        Duration::from_secs(180),
        || healthy(&hosts),
    );
    hosts.sh_ok(stepped, "echo +60 > /srv/faketime");
    let stepped_at = Instant::now();
    // The step took effect: an object written through stor3's gateway is
    // stamped a minute ahead of the control host's clock.
    let aws = format!("{} --endpoint-url http://stor3:7480", aws_cli());
    std::thread::sleep(Duration::from_secs(3));
    let ahead = hosts.sh_ok(
        CONTROL,
        &format!(
            "echo clock > /tmp/clock && {aws} s3 cp /tmp/clock s3://load/clock-probe >/dev/null && \
             t=$({aws} s3api head-object --bucket load --key clock-probe --query LastModified --output text) && \
             echo $(( $(date -d \"$t\" +%s) - $(date +%s) ))"
        ),
    );
    let ahead: i64 = ahead
        .parse()
        .unwrap_or_else(|_| panic!("clock probe: {ahead}"));
    assert!(
        (45..=80).contains(&ahead),
        "stor3's clock is {ahead} s ahead, not ~60"
    );
    // Writes go on for a while with one host a minute ahead, then the
    // cluster must be (or become again) healthy by itself.
    std::thread::sleep(Duration::from_secs(20));
    wait_until(
        "HEALTH_OK with a host's clock ahead",
        Duration::from_secs(180),
        || healthy(&hosts),
    );
    findings.push(format!(
        "stor3's clock stepped 60 s ahead: objects written through it are stamped {ahead} s ahead; \
         HEALTH_OK {:.0?} after the step (first checked after 20 s of writes)",
        stepped_at.elapsed()
    ));

    // Nothing acknowledged is lost, and every replica of every object agrees.
    let report = stop_writer_and_verify(&hosts);
    assert!(report["acked"].as_u64().unwrap_or(0) > 50, "{report}");
    for pool in hosts.meridian("osd pool ls").lines() {
        let out = hosts.sh(
            STORAGE[0],
            &format!("meridian --format json scrub -p {pool} --deep"),
        );
        let scrub: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|_| panic!("scrub {pool}: {}", output_text(&out)));
        assert!(out.status.success(), "scrub {pool}: {scrub}");
        assert_eq!(scrub["inconsistent"], 0, "{pool}: replicas differ: {scrub}");
    }
    findings.push(format!(
        "writer: {} acknowledged, none lost; failed writes seen by the client: {}",
        report["acked"],
        report["write_errors"].as_array().map(Vec::len).unwrap_or(0)
    ));
    eprintln!("{}", findings.join("\n"));
}

/// The two zones' hosts: one single-host cluster each.
const EAST: &str = "east1";
const WEST: &str = "west1";

/// The zones' system key, which both inventories carry (operators keep it
/// in ansible-vault).
const SYSTEM_ACCESS_KEY: &str = "ZONESYSTEMACCESSKEY1";
const SYSTEM_SECRET_KEY: &str = "zone/system/secret/0123456789abcdefghijk";

/// A one-host cluster serving `zone` of realm `geo`: a monitor, two OSDs
/// (replicas on distinct OSDs, since there is one host) and a gateway.
/// `zone_vars` adds the zone's multi-site variables; with `agent`, a
/// standalone sync agent (the sync role) replicates instead of the gateway.
fn zone_inventory(host: &str, zone: &str, fsid: &str, zone_vars: &str, agent: bool) -> String {
    let (gateway_sync, syncs) = if agent {
        (
            "\n      rgw_run_sync_thread: false",
            format!(
                "    syncs:\n      hosts:\n        {host}:\n          meridian_sync_agents:\n            - {{ id: {host} }}\n"
            ),
        )
    } else {
        ("", String::new())
    };
    format!(
        r#"all:
  vars:
    meridian_fsid: {fsid}
{CONTAINER_VARS}    meridian_options:
      osd_crush_chooseleaf_type: osd
      osd_pool_default_size: 2
      rgw_zone: {zone}
      rgw_zonegroup: geo
      rgw_period_poll_s: 2
      rgw_sync_reconcile_s: 5
    meridian_gateway_options:
      rgw_pool_pg_num: 8{gateway_sync}
    meridian_realm: geo
    meridian_system_access_key: {SYSTEM_ACCESS_KEY}
    meridian_system_secret_key: {SYSTEM_SECRET_KEY}
{zone_vars}
  children:
    mons:
      hosts:
        {host}:
    osds:
      hosts:
        {host}:
          meridian_osds:
            - {{ id: 0 }}
            - {{ id: 1 }}
    gateways:
      hosts:
        {host}:
{syncs}"#
    )
}

#[test]
fn two_zones_joined_by_multisite_yml_catch_up_after_their_link_is_cut_for_60_s() {
    let east = zone_inventory(
        EAST,
        "east",
        "6a0e1d52-93b4-4f57-a0d2-0c1f4b8e7a11",
        &format!(
            "    meridian_zone_master: true\n    meridian_s3_users:\n{}",
            s3_user_entry()
        ),
        false,
    );
    let west = zone_inventory(
        WEST,
        "west",
        "b37c9f04-1e2d-4c8a-9b6f-5d4e3c2b1a22",
        &format!("    meridian_master_url: http://{EAST}:7480"),
        true,
    );
    let (hosts, _dir) = hosts_with(
        "zones",
        &[EAST, WEST],
        &[("east.yml", east), ("west.yml", west)],
    );
    // Two clusters at once, each from nothing to HEALTH_OK.
    std::thread::scope(|s| {
        for inv in ["east.yml", "west.yml"] {
            let hosts = &hosts;
            s.spawn(move || hosts.playbook_in(inv, "site.yml", ""));
        }
    });
    // The master zone first, then the secondary joins through it; a rerun
    // of either changes nothing.
    hosts.playbook_in("east.yml", "multisite.yml", "");
    hosts.playbook_in("west.yml", "multisite.yml", "");
    for inv in ["east.yml", "west.yml"] {
        let again = hosts.playbook_in(inv, "multisite.yml", "");
        assert_nothing_changed(&again, &format!("multisite.yml -i {inv}, run again"));
    }
    let period: serde_json::Value =
        serde_json::from_str(&hosts.sh_ok(WEST, "meridian --format json period get"))
            .expect("period JSON");
    let zones: Vec<&str> = period["period_map"]["zonegroups"][0]["zones"]
        .as_array()
        .map(|z| z.iter().filter_map(|z| z["name"].as_str()).collect())
        .unwrap_or_default();
    assert!(
        zones.contains(&"east") && zones.contains(&"west"),
        "the period zone west sees: {period}"
    );
    // West replicates through the sync role's agent, a systemd unit.
    assert_eq!(
        hosts.sh_ok(WEST, "systemctl is-active meridian-sync@west1"),
        "active"
    );

    let sync_status = |host: &str| -> Option<serde_json::Value> {
        let o = hosts.sh(host, "timeout 20 meridian --format json sync status");
        serde_json::from_slice(&o.stdout).ok()
    };
    let caught_up = |host: &str| sync_status(host).is_some_and(|s| s["caught_up"] == true);
    // Metadata sync brings the master's S3 user to west; an object written
    // in east reaches west.
    let aws = |host: &str| format!("{} --endpoint-url http://{host}:7480", aws_cli());
    hosts.sh_ok(
        CONTROL,
        &format!(
            "{} s3 mb s3://load && echo first > /tmp/first && {} s3 cp /tmp/first s3://load/first",
            aws(EAST),
            aws(EAST)
        ),
    );
    let first_sync = wait_until(
        "the first object readable in zone west",
        Duration::from_secs(180),
        || {
            hosts
                .sh(CONTROL, &format!("{} s3 cp s3://load/first -", aws(WEST)))
                .status
                .success()
        },
    );
    wait_until("zone west caught up", Duration::from_secs(120), || {
        caught_up(WEST)
    });

    // West cut off from east for 60 s while a client keeps writing to east.
    let east_gw = format!("http://{EAST}:7480");
    start_writer_on(&hosts, &east_gw);
    std::thread::sleep(Duration::from_secs(5));
    hosts.cut_between(WEST, &[EAST], true);
    let cut_at = Instant::now();
    let mut behind_seen = None;
    while cut_at.elapsed() < Duration::from_secs(60) {
        let status = sync_status(WEST);
        assert!(
            !status.as_ref().is_some_and(|s| s["caught_up"] == true),
            "zone west claims to be caught up while cut off from east: {status:?}"
        );
        if behind_seen.is_none() {
            let o = hosts.sh(WEST, "timeout 20 meridian sync status");
            if o.status.success() {
                behind_seen = Some(String::from_utf8_lossy(&o.stdout).into_owned());
            }
        }
        std::thread::sleep(Duration::from_secs(3));
    }
    hosts.cut_between(WEST, &[EAST], false);
    let mended = Instant::now();
    std::thread::sleep(Duration::from_secs(5));
    stop_writer(&hosts);
    wait_until(
        "both zones caught up after the cut",
        Duration::from_secs(240),
        || caught_up(WEST) && caught_up(EAST),
    );
    let healed = mended.elapsed();
    // Every acknowledged write is in both zones, byte for byte.
    let in_east = verify_on(&hosts, &east_gw);
    let in_west = verify_on(&hosts, &format!("http://{WEST}:7480"));
    assert!(in_east["acked"].as_u64().unwrap_or(0) > 50, "{in_east}");
    assert_eq!(in_east["acked"], in_west["acked"]);
    // Nothing the cut broke is left for an operator to retry.
    wait_until(
        "zone west's sync error log empty",
        Duration::from_secs(120),
        || {
            let o = hosts.sh(WEST, "meridian --format json sync error list");
            serde_json::from_slice::<serde_json::Value>(&o.stdout)
                .is_ok_and(|e| e.as_array().is_some_and(|e| e.is_empty()))
        },
    );
    eprintln!(
        "first object in west {first_sync:.1?} after its PUT in east; west cut 60 s: \
         `sync status` never said caught up, and said during the cut:\n{}\n\
         both zones caught up {healed:.1?} after the link came back \
         (writer stopped 5 s after); {} writes acknowledged, all in both zones; \
         failed writes seen by the client: {}",
        behind_seen.unwrap_or_default(),
        in_east["acked"],
        in_east["write_errors"]
            .as_array()
            .map(Vec::len)
            .unwrap_or(0)
    );
}
