//! `meridian`: one binary for every daemon, the admin CLI, the bench tool and
//! the local dev cluster. This file only parses arguments and dispatches.

mod cli;

use clap::{Parser, Subcommand};
use cli::{admin, dev, multisite, objects, rgw};
use std::path::PathBuf;

/// Meridian: a placement-aware, gRPC-native storage cluster.
#[derive(Parser, Debug)]
#[command(name = "meridian", version, about, propagate_version = true)]
struct Cli {
    /// Configuration file (else $MERIDIAN_CONF, else /etc/meridian/meridian.toml).
    #[arg(short = 'c', long = "conf", global = true)]
    conf: Option<PathBuf>,
    /// Entity to act as (Ceph's -n/--name).
    #[arg(
        id = "entity_name",
        short = 'n',
        long = "name",
        global = true,
        default_value = "client.admin"
    )]
    name: String,
    /// Keyring holding that entity's key (else [global] keyring).
    #[arg(id = "entity_keyring", short = 'k', long = "keyring", global = true)]
    keyring: Option<PathBuf>,
    /// Output format.
    #[arg(long, global = true, value_enum, default_value_t = cli::Format::Plain)]
    format: cli::Format,
    #[command(subcommand)]
    cmd: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a monitor daemon (`--id N`).
    Mon(cli::MonArgs),
    /// Run an OSD daemon (`--id N`), or administer OSDs, pools and CRUSH.
    Osd(cli::OsdArgs),
    /// Run an S3 gateway (`--id N`).
    Gateway(rgw::GatewayArgs),
    /// Realms (multi-site).
    Realm {
        #[command(subcommand)]
        cmd: multisite::RealmCmd,
    },
    /// Zonegroups (multi-site).
    Zonegroup {
        #[command(subcommand)]
        cmd: multisite::ZonegroupCmd,
    },
    /// Zones (multi-site).
    Zone {
        #[command(subcommand)]
        cmd: multisite::ZoneCmd,
    },
    /// Periods: staging, commit, pull (multi-site).
    Period {
        #[command(subcommand)]
        cmd: multisite::PeriodCmd,
    },
    /// S3 users (radosgw-admin user ...).
    User {
        #[command(flatten)]
        zone: rgw::ZoneArg,
        #[command(subcommand)]
        cmd: rgw::UserCmd,
    },
    /// Multi-site sync: status, error log, conflicts, a standalone agent.
    Sync {
        #[command(flatten)]
        zone: rgw::ZoneArg,
        #[command(subcommand)]
        cmd: cli::sync::SyncCmd,
    },
    /// Metadata: sync, list, get.
    Metadata {
        #[command(flatten)]
        zone: rgw::ZoneArg,
        #[command(subcommand)]
        cmd: cli::sync::MetadataCmd,
    },
    /// Data sync.
    Data {
        #[command(flatten)]
        zone: rgw::ZoneArg,
        #[command(subcommand)]
        cmd: cli::sync::DataCmd,
    },
    /// S3 access keys.
    Key {
        #[command(flatten)]
        zone: rgw::ZoneArg,
        #[command(subcommand)]
        cmd: rgw::KeyCmd,
    },
    /// S3 buckets: list, stats, check.
    Bucket {
        #[command(flatten)]
        zone: rgw::ZoneArg,
        #[command(subcommand)]
        cmd: rgw::BucketCmd,
    },
    /// Bucket lifecycle passes (RGW's `lc list|process`).
    Lc {
        #[command(flatten)]
        zone: rgw::ZoneArg,
        #[command(subcommand)]
        cmd: rgw::LcCmd,
    },
    /// The central configuration the monitors keep (`ceph config`).
    Config {
        #[command(subcommand)]
        cmd: cli::config::ConfigCmd,
    },
    /// Request limits of a user or a bucket (RGW's ratelimit).
    Ratelimit {
        #[command(flatten)]
        zone: rgw::ZoneArg,
        #[command(subcommand)]
        cmd: cli::ratelimit::RateLimitCmd,
    },
    /// Garbage collection of replaced and deleted object data.
    Gc {
        #[command(flatten)]
        zone: rgw::ZoneArg,
        #[command(subcommand)]
        cmd: rgw::GcCmd,
    },
    /// Bucket index logs.
    Bilog {
        #[command(flatten)]
        zone: rgw::ZoneArg,
        #[command(subcommand)]
        cmd: rgw::BilogCmd,
    },
    /// The zone's data log.
    Datalog {
        #[command(flatten)]
        zone: rgw::ZoneArg,
        #[command(subcommand)]
        cmd: rgw::LogCmd,
    },
    /// The zone's metadata log.
    Mdlog {
        #[command(flatten)]
        zone: rgw::ZoneArg,
        #[command(subcommand)]
        cmd: rgw::LogCmd,
    },
    /// Entities, keys and capabilities (as `ceph auth`).
    Auth {
        #[command(subcommand)]
        cmd: cli::auth::AuthCmd,
    },
    /// Cluster status summary.
    Status,
    /// HEALTH_OK / HEALTH_WARN / HEALTH_ERR, with `detail` for the reasons.
    Health {
        /// Show every reason.
        #[arg(value_parser = ["detail"])]
        detail: Option<String>,
    },
    /// Placement group commands.
    Pg {
        #[command(subcommand)]
        cmd: admin::PgCmd,
    },
    /// Store an object from a file (`-` for stdin), like `rados put`.
    Put(objects::PutArgs),
    /// Fetch an object into a file (`-` for stdout), like `rados get`.
    Get(objects::GetArgs),
    /// List a pool's objects.
    Ls(objects::PoolArg),
    /// Remove objects.
    Rm(objects::RmArgs),
    /// Show an object's size and mtime.
    Stat(objects::ObjArgs),
    /// Set an xattr on an object.
    Setxattr(objects::SetXattrArgs),
    /// List an object's xattrs.
    Listxattr(objects::ObjArgs),
    /// Set an omap entry on an object.
    Setomapval(objects::SetOmapArgs),
    /// List an object's omap entries.
    Listomapvals(objects::ObjArgs),
    /// Scrub every PG of a pool (compare replicas), like `ceph osd pool scrub`.
    Scrub(admin::ScrubArgs),
    /// rados-bench-style load: `bench -p POOL SECONDS write|seq|rand`.
    Bench(meridian_bench::BenchArgs),
    /// Remove objects a `bench --no-cleanup` run left behind.
    Cleanup(meridian_bench::CleanupArgs),
    /// Local development cluster.
    Dev {
        #[command(subcommand)]
        cmd: dev::DevCmd,
    },
}

/// mimalloc instead of glibc's malloc. With glibc, an OSD that had served
/// 16 writes of 4 MiB at once kept its per-thread arenas at that peak
/// (530-580 MiB resident after the load, against ~150 MiB really live);
/// a fixed mmap threshold returned the memory but cost 40% of 4 MiB
/// throughput in page faults. mimalloc keeps both: peak RSS ~250 MiB at
/// the same throughput (README, Performance).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `mi_option_purge_delay` (its place in `mi_option_e` of the
/// vendored mimalloc 3 header, which the `libmimalloc-sys` bindings do not name).
const MI_OPTION_PURGE_DELAY: std::ffi::c_int = 15;
/// How long a gateway's freed memory stays resident before mimalloc returns
/// it to the kernel. mimalloc 3 waits 1 s; a gateway allocates and frees a
/// 4 MiB wire buffer per stripe, and at 800 MB/s of GETs that second kept
/// ~60 MiB beyond its `memory_target` resident (peak 145–162 MiB with the
/// 64M of `dev up`, 106–124 MiB at 10 ms). The memory target wins over the
/// last of the speed: 4 MiB GETs ran at 600–840 MB/s at 10 ms against
/// 745–940 at 1 s (README, Performance). OSDs keep the 1 s: 10 ms cost
/// them a quarter of their 4 MiB throughput in page faults.
/// `MIMALLOC_PURGE_DELAY` in the environment overrides this.
const GATEWAY_PURGE_DELAY_MS: std::ffi::c_long = 10;

unsafe extern "C" {
    /// Sets a mimalloc option (linked in by the `mimalloc` crate).
    fn mi_option_set(option: std::ffi::c_int, value: std::ffi::c_long);
    /// Reads a mimalloc option.
    #[cfg(test)]
    fn mi_option_get(option: std::ffi::c_int) -> std::ffi::c_long;
}

/// Gives a gateway process its allocator purge delay (see [`GATEWAY_PURGE_DELAY_MS`]).
fn tune_gateway_allocator() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: mimalloc options may be set at any time; the value is a
        // plain integer option.
        unsafe { mi_option_set(MI_OPTION_PURGE_DELAY, GATEWAY_PURGE_DELAY_MS) };
    }
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let daemon = matches!(&cli.cmd, Command::Mon(a) if a.id.is_some())
        || matches!(&cli.cmd, Command::Osd(a) if a.id.is_some())
        || matches!(&cli.cmd, Command::Gateway(_))
        || matches!(
            &cli.cmd,
            Command::Sync {
                cmd: cli::sync::SyncCmd::Agent { .. },
                ..
            }
        );
    cli::init_tracing(daemon);
    if matches!(&cli.cmd, Command::Gateway(_)) {
        tune_gateway_allocator();
    }
    if !daemon {
        // A tool piped into `head` ends quietly, as Unix tools do (daemons keep
        // ignoring SIGPIPE: a peer closing a socket must not kill them).
        // SAFETY: setting a signal disposition before any thread is started.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let ctx = cli::Ctx {
        conf: cli.conf.clone(),
        format: cli.format,
        name: cli.name.clone(),
        keyring: cli.keyring.clone(),
    };
    let result = rt.block_on(async move {
        match cli.cmd {
            Command::Mon(a) => admin::mon(&ctx, a).await,
            Command::Osd(a) => admin::osd(&ctx, a).await,
            Command::Gateway(a) => rgw::gateway(&ctx, a).await,
            Command::Realm { cmd } => multisite::realm(&ctx, cmd).await,
            Command::Zonegroup { cmd } => multisite::zonegroup(&ctx, cmd).await,
            Command::Zone { cmd } => multisite::zone(&ctx, cmd).await,
            Command::Period { cmd } => multisite::period(&ctx, cmd).await,
            Command::User { zone, cmd } => rgw::user(&ctx, zone, cmd).await,
            Command::Key { zone, cmd } => rgw::key(&ctx, zone, cmd).await,
            Command::Sync { zone, cmd } => cli::sync::sync(&ctx, zone, cmd).await,
            Command::Metadata { zone, cmd } => cli::sync::metadata(&ctx, zone, cmd).await,
            Command::Data { zone, cmd } => cli::sync::data(&ctx, zone, cmd).await,
            Command::Bucket { zone, cmd } => rgw::bucket(&ctx, zone, cmd).await,
            Command::Gc { zone, cmd } => rgw::gc(&ctx, zone, cmd).await,
            Command::Lc { zone, cmd } => rgw::lc(&ctx, zone, cmd).await,
            Command::Config { cmd } => cli::config::config(&ctx, cmd).await,
            Command::Ratelimit { zone, cmd } => cli::ratelimit::ratelimit(&ctx, zone, cmd).await,
            Command::Bilog { zone, cmd } => rgw::bilog(&ctx, zone, cmd).await,
            Command::Datalog { zone, cmd } => rgw::log(&ctx, zone, false, cmd).await,
            Command::Mdlog { zone, cmd } => rgw::log(&ctx, zone, true, cmd).await,
            Command::Auth { cmd } => cli::auth::auth(&ctx, cmd).await,
            Command::Status => admin::status(&ctx).await,
            Command::Health { detail } => admin::health(&ctx, detail.is_some()).await,
            Command::Pg { cmd } => admin::pg(&ctx, cmd).await,
            Command::Put(a) => objects::put(&ctx, a).await,
            Command::Get(a) => objects::get(&ctx, a).await,
            Command::Ls(a) => objects::ls(&ctx, a).await,
            Command::Rm(a) => objects::rm(&ctx, a).await,
            Command::Stat(a) => objects::stat(&ctx, a).await,
            Command::Setxattr(a) => objects::setxattr(&ctx, a).await,
            Command::Listxattr(a) => objects::listxattr(&ctx, a).await,
            Command::Setomapval(a) => objects::setomapval(&ctx, a).await,
            Command::Listomapvals(a) => objects::listomapvals(&ctx, a).await,
            Command::Scrub(a) => admin::scrub(&ctx, a).await,
            Command::Bench(a) => {
                let target = meridian_bench::Target::from_args(&a, ctx.connect()).await?;
                meridian_bench::run(&target, a, ctx.format == cli::Format::Json).await
            }
            Command::Cleanup(a) => {
                let cluster = ctx.connect().await?;
                meridian_bench::cleanup(&cluster, a).await
            }
            Command::Dev { cmd } => dev::run(&ctx, cmd).await,
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    /// [`super::MI_OPTION_PURGE_DELAY`] is a bare index into mimalloc's
    /// option list: a mimalloc that moved it would have the gateway set
    /// another option. Its default (1 s in mimalloc 3, unique in the list)
    /// says the index still names the purge delay.
    #[test]
    fn the_purge_delay_option_index_names_mimallocs_purge_delay() {
        // mimalloc reads the option from the environment when it is set.
        let want = std::env::var("MIMALLOC_PURGE_DELAY")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(1000);
        // SAFETY: reading an integer option.
        let v = unsafe { super::mi_option_get(super::MI_OPTION_PURGE_DELAY) };
        assert_eq!(
            v,
            want,
            "mimalloc's option {} is not purge_delay",
            super::MI_OPTION_PURGE_DELAY
        );
    }
}
