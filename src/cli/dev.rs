//! `meridian dev up|status|down`: a complete local cluster on loopback,
//! run by this same binary as background processes under one directory.

use super::Ctx;
use anyhow::{Context as _, bail};
use meridian_auth::{EntityName, Keyring};
use meridian_client::Credentials;
use meridian_client::{ClientOptions, Cluster};
use meridian_common::{Config, GatewaySection, GlobalSection, MonSection, OsdSection};
use meridian_proto::mon::mon_command::Cmd;
use meridian_proto::mon::{AuthAdd, AuthEntity, PoolCreate};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Name of the pool `dev up` creates.
pub const DEV_POOL: &str = "data";

/// `meridian dev ...`.
#[derive(clap::Subcommand, Debug)]
pub enum DevCmd {
    /// Start a local cluster (or restart the one in --dir) and wait until it is healthy.
    Up {
        /// Number of monitors (1, 3 or 5).
        #[arg(long, default_value_t = 1)]
        mons: u32,
        /// Number of OSDs.
        #[arg(long, default_value_t = 3)]
        osds: u32,
        /// Directory holding the config, data, logs and pids.
        #[arg(long, default_value = ".meridian-dev")]
        dir: PathBuf,
        /// Size of each OSD's block file.
        #[arg(long, default_value = "16G")]
        osd_size: String,
        /// PGs of the default pool.
        #[arg(long, default_value_t = 32)]
        pg_num: u32,
        /// I/O engine of the OSDs: auto, io_uring or pread.
        #[arg(long, default_value = "auto")]
        engine: String,
        /// Override a [global] setting of the new cluster's config, e.g.
        /// `-o osd_heartbeat_grace_ms=3000` (repeatable; like vstart's -o).
        #[arg(short = 'o', long = "option", value_name = "KEY=VALUE")]
        options: Vec<String>,
        /// S3 gateways (all serving the zone `default`).
        #[arg(long, default_value_t = 1)]
        gateways: u32,
        /// S3 port of the first gateway (0: any free port); the others get free ports.
        #[arg(long = "s3-port", default_value_t = 7480)]
        s3_port: u16,
        /// 2: two clusters joined into realm `dev` (zones dev-a, master, and dev-b).
        #[arg(long, default_value_t = 1)]
        zones: u32,
        /// Issue the daemons' certificates from the CA in this directory
        /// (made if missing) instead of the cluster's own: clusters that
        /// share a CA trust each other's gateways (`dev up --zones 2` puts
        /// one in DIR/tls; a zone re-created beside them passes it here).
        #[arg(long = "ca-dir")]
        ca_dir: Option<PathBuf>,
    },
    /// Show the daemons of a dev cluster and whether they run.
    Status {
        /// Directory of the dev cluster.
        #[arg(long, default_value = ".meridian-dev")]
        dir: PathBuf,
    },
    /// Stop the daemons of a dev cluster (data is kept; `--purge` deletes it).
    Down {
        /// Directory of the dev cluster.
        #[arg(long, default_value = ".meridian-dev")]
        dir: PathBuf,
        /// Delete the directory after stopping.
        #[arg(long)]
        purge: bool,
    },
}

/// Runs a dev subcommand.
pub async fn run(_ctx: &Ctx, cmd: DevCmd) -> anyhow::Result<()> {
    match cmd {
        DevCmd::Up {
            mons,
            osds,
            dir,
            osd_size,
            pg_num,
            engine,
            options,
            gateways,
            s3_port,
            zones,
            ca_dir,
        } => {
            let shape = Shape {
                mons,
                osds,
                osd_size,
                engine,
                options,
                gateways,
                s3_port,
                ca_dir: ca_dir.map(std::path::absolute).transpose()?,
            };
            match zones {
                1 => up(&dir, &shape, pg_num).await,
                2 => super::devzones::up_zones(&dir, &shape, pg_num).await,
                n => bail!("--zones {n}: use 1, or 2 for a two-zone realm"),
            }
        }
        DevCmd::Status { dir } => {
            let subs = super::devzones::zone_dirs(&dir);
            if subs.is_empty() {
                return status(&dir);
            }
            for d in subs {
                println!("== {} ==", d.display());
                status(&d)?;
            }
            Ok(())
        }
        DevCmd::Down { dir, purge } => {
            for d in super::devzones::zone_dirs(&dir) {
                down(&d, false)?;
            }
            down(&dir, purge)
        }
    }
}

/// A loopback port that is free now, chosen at random below the kernel's
/// ephemeral range (32768+ on Linux): ports the kernel hands out for `:0`
/// and for outgoing connections would be taken by some other socket between
/// this choice and the daemon's bind, as happened with tests running side
/// by side.
fn free_port() -> anyhow::Result<u16> {
    // Never the same port twice in one `dev up` (the daemons bind later).
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|p| p.into_inner());
    for _ in 0..200 {
        let port = 10_000 + rand::random::<u16>() % 22_000;
        if !given.contains(&port) && std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            given.push(port);
            return Ok(port);
        }
    }
    let l = std::net::TcpListener::bind("127.0.0.1:0").context("find a free loopback port")?;
    Ok(l.local_addr()?.port())
}

fn random_fsid() -> String {
    let a: u128 = rand::random();
    let h = format!("{a:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// What a fresh dev cluster is made of.
#[derive(Debug, Clone)]
pub struct Shape {
    /// Monitors (1, 3 or 5).
    pub mons: u32,
    /// OSDs, one simulated host each.
    pub osds: u32,
    /// Block file size per OSD.
    pub osd_size: String,
    /// OSD I/O engine.
    pub engine: String,
    /// `KEY=VALUE` overrides of [global].
    pub options: Vec<String>,
    /// S3 gateways.
    pub gateways: u32,
    /// Port of the first gateway (0 = free port).
    pub s3_port: u16,
    /// Directory of the CA that signs the gateways' certificates (default
    /// `DIR/tls`; `--zones 2` shares one between its clusters).
    pub ca_dir: Option<PathBuf>,
}

/// Writes a fresh cluster config into `dir`.
pub fn write_config(dir: &Path, shape: &Shape) -> anyhow::Result<Config> {
    let Shape {
        mons,
        osds,
        ref osd_size,
        ref engine,
        ref options,
        gateways,
        s3_port,
        ref ca_dir,
    } = *shape;
    if ![1, 3, 5].contains(&mons) {
        bail!("--mons must be 1, 3 or 5 (a Raft majority needs an odd count)");
    }
    if osds == 0 {
        bail!("--osds must be at least 1");
    }
    meridian_common::size::parse_size(osd_size).map_err(anyhow::Error::msg)?;
    let dir = std::path::absolute(dir)?;
    let mut cfg = Config {
        global: GlobalSection {
            fsid: random_fsid(),
            keyring: dir.join("client.admin.keyring").display().to_string(),
            osd_heartbeat_interval_ms: 500,
            osd_heartbeat_grace_ms: 4000,
            mon_osd_down_out_interval_s: 120,
            // Small zone pools and a prompt GC suit a laptop-sized cluster.
            rgw_pool_pg_num: 8,
            osd_pool_default_size: osds.min(3),
            rgw_gc_processor_period_s: 60,
            rgw_gc_obj_min_wait_s: 60,
            ..Default::default()
        },
        ..Default::default()
    };
    for o in options {
        cfg.global.set_option(o)?;
    }
    // Every daemon gets a certificate from the directory's own CA: gateways
    // serve HTTPS beside HTTP, and monitors and OSDs serve TLS when
    // `-o internal_tls=true`. The cluster's tools trust the CA.
    let tls_dir = dir.join("tls");
    let ca = super::devtls::DevCa::ensure(ca_dir.as_deref().unwrap_or(&tls_dir))?;
    cfg.global.tls_ca_file = ca.cert_path.display().to_string();
    let local = ["127.0.0.1", "localhost"];
    for m in 1..=mons as u64 {
        let (cert, key) = ca.issue(&tls_dir, &format!("mon.{m}"), &local)?;
        cfg.mon.insert(
            m.to_string(),
            MonSection {
                addr: format!("127.0.0.1:{}", free_port()?),
                data: dir.join(format!("mon.{m}")),
                keyring: None,
                metrics_addr: Some(format!("127.0.0.1:{}", free_port()?)),
                tls_cert: Some(cert),
                tls_key: Some(key),
            },
        );
    }
    for o in 0..osds {
        let (cert, key) = ca.issue(&tls_dir, &format!("osd.{o}"), &local)?;
        cfg.osd.insert(
            o.to_string(),
            OsdSection {
                addr: format!("127.0.0.1:{}", free_port()?),
                data: dir.join(format!("osd.{o}")),
                keyring: None,
                tls_cert: Some(cert),
                tls_key: Some(key),
                // One simulated host per OSD, so the default rule (failure domain host) spreads replicas.
                host: Some(format!("dev-host-{o}")),
                rack: None,
                datacenter: None,
                device_class: Some("ssd".into()),
                weight: Some(1.0),
                block_size: osd_size.into(),
                // Sparse: a dev cluster takes only the disk it uses.
                preallocate: false,
                engine: engine.into(),
                // Three OSDs, a monitor and a gateway in a small VM.
                memory_target: "512M".into(),
                cache_size: None,
                metrics_addr: Some(format!("127.0.0.1:{}", free_port()?)),
            },
        );
    }
    for g in 0..gateways {
        let port = if g == 0 && s3_port != 0 {
            s3_port
        } else {
            free_port()?
        };
        let (cert, key) = ca.issue(&tls_dir, &format!("gateway.{g}"), &local)?;
        cfg.gateway.insert(
            g.to_string(),
            GatewaySection {
                addr: format!("127.0.0.1:{port}"),
                tls_addr: Some(format!("127.0.0.1:{}", free_port()?)),
                tls_cert: Some(cert),
                tls_key: Some(key),
                zone: None,
                keyring: Some(dir.join(format!("gateway.{g}.keyring"))),
                metrics_addr: Some(format!("127.0.0.1:{}", free_port()?)),
                // As the OSDs': small enough for a laptop.
                memory_target: "64M".into(),
            },
        );
    }
    cfg.global.mon_host = cfg.mon.values().map(|m| m.addr.clone()).collect();
    cfg.path = dir.join("meridian.toml");
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    std::fs::write(&cfg.path, cfg.to_toml())
        .with_context(|| format!("write {}", cfg.path.display()))?;
    Ok(cfg)
}

fn pid_alive(pid: i32) -> bool {
    // Only count it if it is still one of ours (pids are recycled).
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| String::from_utf8_lossy(&c).contains("meridian"))
        .unwrap_or(false)
}

fn read_pid(path: &Path) -> Option<i32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Starts one daemon in the background (own session, logs to `dir/log`).
pub fn spawn_daemon(cfg: &Config, dir: &Path, kind: &str, id: &str) -> anyhow::Result<i32> {
    let exe = std::env::current_exe().context("locate the meridian binary")?;
    std::fs::create_dir_all(dir.join("log"))?;
    std::fs::create_dir_all(dir.join("run"))?;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("log").join(format!("{kind}.{id}.log")))?;
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("-c")
        .arg(&cfg.path)
        .arg(kind)
        .arg("--id")
        .arg(id)
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    if std::env::var_os("RUST_LOG").is_none() {
        cmd.env("RUST_LOG", "info");
    }
    // SAFETY: setsid is async-signal-safe; it detaches the daemon from our terminal.
    unsafe {
        use std::os::unix::process::CommandExt as _;
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    let child = cmd.spawn().with_context(|| format!("start {kind}.{id}"))?;
    let pid = child.id() as i32;
    std::fs::write(
        dir.join("run").join(format!("{kind}.{id}.pid")),
        pid.to_string(),
    )?;
    Ok(pid)
}

pub async fn up(dir: &Path, shape: &Shape, pg_num: u32) -> anyhow::Result<()> {
    let started = Instant::now();
    let conf_path = dir.join("meridian.toml");
    let (mut cfg, fresh) = if conf_path.exists() {
        if !shape.options.is_empty() {
            bail!(
                "{} exists: -o applies to a new cluster only; edit the file and restart instead",
                conf_path.display()
            );
        }
        (Config::load(&conf_path)?, false)
    } else {
        (write_config(dir, shape)?, true)
    };
    let dir = std::path::absolute(dir)?;
    super::use_tls_settings(&cfg)?;
    ensure_mon_keyrings(&cfg)?;
    let mut started_now = Vec::new();
    for id in cfg.mon.keys() {
        let pidf = dir.join("run").join(format!("mon.{id}.pid"));
        if read_pid(&pidf).map(pid_alive).unwrap_or(false) {
            continue;
        }
        started_now.push(format!(
            "mon.{id} (pid {})",
            spawn_daemon(&cfg, &dir, "mon", id)?
        ));
    }
    for s in started_now.drain(..) {
        eprintln!("started {s}");
    }
    let admin = wait_admin_keyring(&cfg, &dir).await?;
    let opts = ClientOptions {
        credentials: Some(Credentials::from_keyring(&admin, &EntityName::admin())?),
        ..Default::default()
    };
    let cluster = Cluster::connect(cfg.monitor_addrs(), opts)
        .await
        .with_context(|| format!("monitors did not form a quorum; see {}/log/", dir.display()))?;
    // An OSD started now counts as up once it has booted after this epoch
    // (after a restart the map may still show its previous life as up).
    let epoch_before = cluster.map().epoch();
    let mut spawned = Vec::new();
    for (id, o) in &cfg.osd {
        let keyring = Config::osd_keyring_path(o);
        ensure_daemon_key(&cluster, &keyring, &format!("osd.{id}"), OSD_CAPS).await?;
        let pidf = dir.join("run").join(format!("osd.{id}.pid"));
        if read_pid(&pidf).map(pid_alive).unwrap_or(false) {
            continue;
        }
        started_now.push(format!(
            "osd.{id} (pid {})",
            spawn_daemon(&cfg, &dir, "osd", id)?
        ));
        spawned.push(id.parse::<u32>().unwrap_or(u32::MAX));
    }
    for s in &started_now {
        eprintln!("started {s}");
    }
    // All OSDs up.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut port_moves = 0;
    loop {
        // Ports were chosen free when the config was written; a dev cluster
        // starting beside this one can take one before the OSD binds it.
        for id in cfg.osd.keys().cloned().collect::<Vec<_>>() {
            let name = format!("osd.{id}");
            // Exited for another reason: that is an error, with its log's end.
            if !exited_on_taken_port(&dir, &name)? {
                continue;
            }
            if port_moves == 3 {
                bail!(
                    "{name} cannot bind its ports (address already in use); see {}/log/{name}.log",
                    dir.display()
                );
            }
            port_moves += 1;
            let o = cfg
                .osd
                .get_mut(&id)
                .with_context(|| format!("{name} is not in the config"))?;
            let moved = move_taken_ports(
                std::iter::once(&mut o.addr).chain(o.metrics_addr.as_mut()),
                0,
            )?;
            std::fs::write(&cfg.path, cfg.to_toml())
                .with_context(|| format!("write {}", cfg.path.display()))?;
            let pid = spawn_daemon(&cfg, &dir, "osd", &id)?;
            eprintln!(
                "{name}: a port was taken by another process; moved [{}] and restarted (pid {pid})",
                moved.join(", ")
            );
        }
        let v = cluster.map();
        let up = v
            .map
            .osds
            .iter()
            .filter(|o| o.up && (!spawned.contains(&o.id) || o.up_from > epoch_before))
            .count();
        if up == cfg.osd.len() {
            break;
        }
        if Instant::now() > deadline {
            bail!(
                "only {up} of {} OSDs came up within 60s; see {}/log/",
                cfg.osd.len(),
                dir.display()
            );
        }
        eprintln!("waiting for OSDs: {up}/{} up", cfg.osd.len());
        cluster
            .wait_for_newer_map(v.epoch(), Duration::from_secs(2))
            .await;
    }
    if fresh || cluster.map().pool_by_name(DEV_POOL).is_none() {
        let size = (cfg.osd.len() as u32).min(3);
        cluster
            .mon_command(Cmd::PoolCreate(PoolCreate {
                name: DEV_POOL.into(),
                pg_num,
                size,
                min_size: 0,
                crush_rule: String::new(),
                application: String::new(),
            }))
            .await
            .context("create the default pool")?;
    }
    wait_healthy(&cluster, &dir).await?;
    let s3 = if cfg.gateway.is_empty() {
        None
    } else {
        Some(start_s3(&cfg, &dir, &cluster, shape.s3_port).await?)
    };
    let keyring = format!("{} (client.admin; `meridian auth ls`)", admin.display());
    let conf = cfg.path.display();
    println!(
        "Meridian dev cluster is up (HEALTH_OK) in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    println!("  directory: {}", dir.display());
    println!("  keyring:   {keyring}");
    println!("  monitors:  {}", cfg.monitor_addrs().join(", "));
    println!(
        "  osds:      {}",
        cfg.osd
            .values()
            .map(|o| o.addr.clone())
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "  pool:      {DEV_POOL} (replicated, size {})",
        (cfg.osd.len()).min(3)
    );
    println!();
    println!("Talk to it:");
    println!("  export MERIDIAN_CONF={conf}");
    println!("  meridian status");
    println!(
        "  echo hello | meridian put -p {DEV_POOL} greeting - && meridian get -p {DEV_POOL} greeting -"
    );
    println!(
        "  meridian bench -p {DEV_POOL} 10 write --no-cleanup && meridian bench -p {DEV_POOL} 10 seq"
    );
    if let Some(s3) = &s3 {
        s3.print();
    }
    println!("Stop it:  meridian dev down --dir {}", dir.display());
    Ok(())
}

/// Caps of an OSD daemon's key.
const OSD_CAPS: &[(&str, &str)] = &[("mon", "allow profile osd"), ("osd", "allow profile osd")];
/// Caps of a gateway's key: it reads maps, sends beacons and multi-site
/// commands, reads the zone system keys (x), and reads and writes the
/// zone's pools.
const GATEWAY_CAPS: &[(&str, &str)] = &[("mon", "allow rwx"), ("osd", "allow rwx")];

/// Gives every monitor the cluster's `mon.` key: the one a monitor already
/// has, else a new one.
fn ensure_mon_keyrings(cfg: &Config) -> anyhow::Result<()> {
    let paths: Vec<PathBuf> = cfg.mon.values().map(Config::mon_keyring_path).collect();
    let text = match paths.iter().find(|p| p.exists()) {
        Some(p) => std::fs::read_to_string(p).with_context(|| format!("read {}", p.display()))?,
        None => format!(
            "[mon.]\n\tkey = {}\n\tcaps mon = \"allow *\"\n",
            meridian_auth::generate_key()
        ),
    };
    for p in paths.iter().filter(|p| !p.exists()) {
        if let Some(d) = p.parent() {
            std::fs::create_dir_all(d).with_context(|| format!("create {}", d.display()))?;
        }
        meridian_auth::write_keyring_file(p, &text)
            .with_context(|| format!("write {}", p.display()))?;
    }
    Ok(())
}

/// Waits until the monitors wrote `client.admin`'s keyring (the leader
/// creates the key right after bootstrap).
async fn wait_admin_keyring(cfg: &Config, dir: &Path) -> anyhow::Result<PathBuf> {
    let mon = cfg
        .mon
        .values()
        .next()
        .context("the config has no monitor")?;
    let path = cfg.admin_keyring_path(mon);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !path.exists() {
        if Instant::now() > deadline {
            bail!(
                "the monitors did not write {} within 60s (no quorum?); see {}/log/",
                path.display(),
                dir.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(path)
}

/// Makes sure the keyring at `path` holds `name`'s key: gets (or creates,
/// with `caps`) the entity and adds it to the file when it is not there.
async fn ensure_daemon_key(
    cluster: &Cluster,
    path: &Path,
    name: &str,
    caps: &[(&str, &str)],
) -> anyhow::Result<()> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e).with_context(|| format!("read {}", path.display())),
    };
    let ring = Keyring::parse(&text).with_context(|| format!("keyring {}", path.display()))?;
    if ring.get(&name.parse()?).is_some() {
        return Ok(());
    }
    let add = AuthAdd {
        entity: Some(AuthEntity {
            name: name.into(),
            key: String::new(),
            caps: caps
                .iter()
                .map(|(s, c)| (s.to_string(), c.to_string()))
                .collect(),
        }),
        get_or_create: true,
        if_absent: false,
    };
    let reply = cluster
        .mon_command(Cmd::AuthAdd(add))
        .await
        .with_context(|| format!("create {name}'s key"))?;
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d).with_context(|| format!("create {}", d.display()))?;
    }
    meridian_auth::write_keyring_file(path, &format!("{text}{}", reply.message))
        .with_context(|| format!("write {}", path.display()))
}

/// Waits until every PG is active+clean.
async fn wait_healthy(cluster: &Cluster, dir: &Path) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut last = String::new();
    loop {
        let st = cluster.status().await?;
        let (word, checks) = super::admin::health_checks(&st);
        if word == "HEALTH_OK" {
            break;
        }
        let now = checks.join("; ");
        if now != last {
            eprintln!("waiting for health: {word} {now}");
            last = now;
        }
        if Instant::now() > deadline {
            bail!(
                "cluster not healthy within 120s: {word} {last}; see {}/log/",
                dir.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    Ok(())
}

/// The dev user's uid.
pub const DEV_USER: &str = "dev";

/// What `dev up` tells the user about S3.
struct S3Info {
    endpoints: Vec<String>,
    /// HTTPS endpoints and the CA file that verifies them.
    tls: Option<(Vec<String>, String)>,
    access_key: String,
    secret: String,
    zonegroup: String,
}

impl S3Info {
    fn print(&self) {
        println!();
        println!("S3:");
        for (i, e) in self.endpoints.iter().enumerate() {
            println!("  gateway.{i}: {e}");
        }
        println!(
            "  user {DEV_USER}: access key {}  secret {}",
            self.access_key, self.secret
        );
        println!(
            "  export AWS_ACCESS_KEY_ID={} AWS_SECRET_ACCESS_KEY={} AWS_DEFAULT_REGION={}",
            self.access_key, self.secret, self.zonegroup
        );
        println!(
            "  aws --endpoint-url {} s3 mb s3://demo && aws --endpoint-url {} s3 ls",
            self.endpoints[0], self.endpoints[0]
        );
        if let Some((urls, ca)) = &self.tls {
            println!("HTTPS (certificates from the dev CA {ca}):");
            for (i, e) in urls.iter().enumerate() {
                println!("  gateway.{i}: {e}");
            }
            println!(
                "  aws --endpoint-url {} --ca-bundle {ca} s3 ls   # boto3: verify={ca:?}",
                urls[0]
            );
        }
    }
}

/// Opens the zone (its pools), makes sure the dev user exists, starts the
/// gateways that are not running and waits until each answers HTTP. A
/// gateway that dies because a port of its was taken meanwhile gets new
/// ports (never `s3_port`, which the user chose) and starts again.
async fn start_s3(
    cfg: &Config,
    dir: &Path,
    cluster: &Cluster,
    s3_port: u16,
) -> anyhow::Result<S3Info> {
    let params = meridian_zone::ZoneParams::from_global(
        &cfg.global,
        &cfg.global.rgw_zone,
        &cfg.global.rgw_zonegroup,
    );
    let zonegroup = params.zonegroup.clone();
    let zone = meridian_zone::Zone::open(cluster.clone(), params)
        .await
        .context("create the zone pools")?;
    let user = match zone.user(DEV_USER).await {
        Ok(u) => u,
        Err(meridian_zone::ZoneError::NoSuchUser(_)) => zone
            .create_user(meridian_zone::user::NewUser {
                uid: DEV_USER.into(),
                display_name: "dev cluster user".into(),
                max_buckets: 1000,
                ..Default::default()
            })
            .await
            .context("create the dev user")?,
        Err(e) => return Err(e).context("read the dev user"),
    };
    for (id, g) in &cfg.gateway {
        let keyring = cfg.gateway_keyring_path(g);
        ensure_daemon_key(
            cluster,
            &keyring,
            &format!("client.gateway.{id}"),
            GATEWAY_CAPS,
        )
        .await?;
        let pidf = dir.join("run").join(format!("gateway.{id}.pid"));
        if read_pid(&pidf).map(pid_alive).unwrap_or(false) {
            continue;
        }
        let pid = spawn_daemon(cfg, dir, "gateway", id)?;
        eprintln!("started gateway.{id} (pid {pid})");
    }
    let mut cfg = cfg.clone();
    let mut endpoints = Vec::new();
    let ids: Vec<String> = cfg.gateway.keys().cloned().collect();
    for id in &ids {
        let mut moves = 0;
        loop {
            let addr = cfg.gateway[id].addr.clone();
            let started = wait_gateway(dir, id, &addr).await.with_context(|| {
                format!(
                    "gateway.{id} does not answer on {addr}; see {}/log/gateway.{id}.log",
                    dir.display()
                )
            })?;
            if started == GatewayStart::Up {
                endpoints.push(format!("http://{addr}"));
                break;
            }
            // Ports were chosen free when the config was written; a dev
            // cluster starting beside this one can take one before the
            // gateway binds it.
            let moved = move_taken_gateway_ports(&mut cfg, id, s3_port)?;
            if moved.is_empty() || moves == 3 {
                bail!(
                    "gateway.{id} cannot bind its ports (address already in use); see {}/log/gateway.{id}.log",
                    dir.display()
                );
            }
            moves += 1;
            std::fs::write(&cfg.path, cfg.to_toml())
                .with_context(|| format!("write {}", cfg.path.display()))?;
            let pid = spawn_daemon(&cfg, dir, "gateway", id)?;
            eprintln!(
                "gateway.{id}: a port was taken by another process; moved {} and restarted (pid {pid})",
                moved.join(", ")
            );
        }
    }
    let https: Vec<String> = cfg
        .gateway
        .values()
        .filter_map(|g| g.tls_addr.as_ref().map(|a| format!("https://{a}")))
        .collect();
    let tls = (!https.is_empty()).then(|| (https, cfg.global.tls_ca_file.clone()));
    wait_healthy(cluster, dir).await?;
    let key = user
        .keys
        .first()
        .cloned()
        .context("the dev user has no S3 key")?;
    Ok(S3Info {
        endpoints,
        tls,
        access_key: key.access_key,
        secret: key.secret_key,
        zonegroup,
    })
}

/// How a gateway's start ended.
#[derive(Debug, PartialEq, Eq)]
enum GatewayStart {
    /// It answers HTTP.
    Up,
    /// It exited because an address it binds is in use.
    PortTaken,
}

/// Waits until gateway `id` answers HTTP on `addr`; fails early (with the
/// end of its log) when its process exits for another reason than a taken
/// port.
async fn wait_gateway(dir: &Path, id: &str, addr: &str) -> anyhow::Result<GatewayStart> {
    let pidf = dir.join("run").join(format!("gateway.{id}.pid"));
    let alive = || read_pid(&pidf).map(pid_alive).unwrap_or(false);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if exited_on_taken_port(dir, &format!("gateway.{id}"))? {
            return Ok(GatewayStart::PortTaken);
        }
        // Another cluster's gateway on a taken port answers too: the
        // answer counts only while ours still runs.
        if wait_http(addr, Duration::from_secs(1)).await.is_ok() {
            tokio::time::sleep(Duration::from_millis(300)).await;
            if alive() {
                return Ok(GatewayStart::Up);
            }
            continue;
        }
        if Instant::now() > deadline {
            bail!("no HTTP answer within 60 s");
        }
    }
}

/// Whether daemon `name` (`osd.2`, `gateway.0`) exited because another
/// process holds one of its ports: `false` while it runs; an error carrying
/// the end of its log if it exited for another reason.
fn exited_on_taken_port(dir: &Path, name: &str) -> anyhow::Result<bool> {
    let pidf = dir.join("run").join(format!("{name}.pid"));
    if read_pid(&pidf).map(pid_alive).unwrap_or(false) {
        return Ok(false);
    }
    let log =
        std::fs::read_to_string(dir.join("log").join(format!("{name}.log"))).unwrap_or_default();
    let tail: Vec<&str> = log.lines().rev().take(5).collect();
    if tail.iter().any(|l| l.contains("Address already in use")) {
        return Ok(true);
    }
    let tail: Vec<&str> = tail.into_iter().rev().collect();
    bail!("{name} exited: {}", tail.join("\n"))
}

/// Gives gateway `id` a new port for each of its addresses that something
/// else holds now (except port `keep`); returns what moved.
fn move_taken_gateway_ports(cfg: &mut Config, id: &str, keep: u16) -> anyhow::Result<Vec<String>> {
    let g = cfg
        .gateway
        .get_mut(id)
        .with_context(|| format!("gateway.{id} is not in the config"))?;
    move_taken_ports(
        std::iter::once(&mut g.addr)
            .chain(g.tls_addr.as_mut())
            .chain(g.metrics_addr.as_mut()),
        keep,
    )
}

/// Moves each of `addrs` that something else holds now (except port `keep`)
/// to a free loopback port; returns what moved.
fn move_taken_ports<'a>(
    addrs: impl Iterator<Item = &'a mut String>,
    keep: u16,
) -> anyhow::Result<Vec<String>> {
    let mut moved = Vec::new();
    for a in addrs {
        let port = a.rsplit(':').next().and_then(|p| p.parse::<u16>().ok());
        if port == Some(keep) || std::net::TcpListener::bind(a.as_str()).is_ok() {
            continue;
        }
        let new = format!("127.0.0.1:{}", free_port()?);
        moved.push(format!("{a} -> {new}"));
        *a = new;
    }
    Ok(moved)
}

/// Waits until `addr` answers an HTTP request (any status).
async fn wait_http(addr: &str, timeout: Duration) -> anyhow::Result<()> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(mut s) = tokio::net::TcpStream::connect(addr).await {
            let _ = s
                .write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                .await;
            let mut buf = [0u8; 12];
            if let Ok(Ok(n)) = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await
                && buf[..n].starts_with(b"HTTP/1.1")
            {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            bail!("no HTTP answer within {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn daemons(dir: &Path) -> Vec<(String, Option<i32>)> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir.join("run")) {
        for e in rd.flatten() {
            let name = e
                .file_name()
                .to_string_lossy()
                .trim_end_matches(".pid")
                .to_string();
            out.push((name, read_pid(&e.path())));
        }
    }
    out.sort();
    out
}

fn status(dir: &Path) -> anyhow::Result<()> {
    let list = daemons(dir);
    if list.is_empty() {
        bail!(
            "no dev cluster in {} (start one with `meridian dev up`)",
            dir.display()
        );
    }
    for (name, pid) in list {
        let state = match pid {
            Some(p) if pid_alive(p) => format!("running (pid {p})"),
            _ => "stopped".into(),
        };
        println!("{name:<8} {state}");
    }
    println!(
        "config: {}",
        std::path::absolute(dir.join("meridian.toml"))?.display()
    );
    Ok(())
}

fn down(dir: &Path, purge: bool) -> anyhow::Result<()> {
    let list = daemons(dir);
    if list.is_empty() && !dir.exists() {
        bail!("no dev cluster in {}", dir.display());
    }
    let mut alive: Vec<(String, i32)> = Vec::new();
    for (name, pid) in list {
        if let Some(p) = pid.filter(|p| pid_alive(*p)) {
            // SAFETY: plain kill(2) on a pid we started and verified is still a meridian process.
            unsafe { libc::kill(p, libc::SIGTERM) };
            alive.push((name, p));
        }
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while alive.iter().any(|(_, p)| pid_alive(*p)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    for (name, p) in &alive {
        if pid_alive(*p) {
            // SAFETY: as above; the daemon ignored SIGTERM for 10s.
            unsafe { libc::kill(*p, libc::SIGKILL) };
        }
        println!("stopped {name} (pid {p})");
    }
    if purge {
        std::fs::remove_dir_all(dir).with_context(|| format!("remove {}", dir.display()))?;
        println!("removed {}", dir.display());
    }
    Ok(())
}
