//! Shared plumbing of the CLI: configuration lookup, connection, output.

pub mod admin;
pub mod auth;
pub mod config;
pub mod dev;
pub mod devtls;
pub mod devzones;
pub mod failover;
pub mod multisite;
pub mod objects;
pub mod osdlife;
pub mod pgquery;
pub mod ratelimit;
pub mod rgw;
pub mod sync;
pub mod syncpolicy;

use anyhow::Context as _;
use meridian_client::{ClientOptions, Cluster, Credentials};
use meridian_common::Config;
use std::path::PathBuf;
use std::time::Duration;

/// Output format of every command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Human-readable text.
    Plain,
    /// JSON (stable field names).
    Json,
}

/// What every command gets: where the config is and how to print.
pub struct Ctx {
    /// `-c/--conf`.
    pub conf: Option<PathBuf>,
    /// `--format`.
    pub format: Format,
    /// `-n/--name`: the entity to act as.
    pub name: String,
    /// `-k/--keyring`.
    pub keyring: Option<PathBuf>,
}

/// Makes this process's zone calls trust `tls_ca_file`, and its monitor and
/// OSD channels use TLS when the cluster runs with `internal_tls`.
pub fn use_tls_settings(cfg: &Config) -> anyhow::Result<()> {
    let ca = std::path::Path::new(&cfg.global.tls_ca_file);
    meridian_sync::peer::trust_ca_file(ca)
        .map_err(|e| anyhow::anyhow!("{}: tls_ca_file: {e}", cfg.path.display()))?;
    meridian_auth::transport::configure(cfg.global.internal_tls.then_some(ca))
        .map_err(|e| anyhow::anyhow!("{}: internal_tls: {e}", cfg.path.display()))?;
    Ok(())
}

impl Ctx {
    /// Loads the configuration the way Ceph tools do: flag, env, default path.
    /// Also applies its TLS settings ([`use_tls_settings`]).
    pub fn config(&self) -> anyhow::Result<Config> {
        let path = Config::resolve_path(self.conf.as_deref());
        let cfg = Config::load(&path)?;
        use_tls_settings(&cfg)?;
        Ok(cfg)
    }

    /// The key this tool acts with: `-n` from `-k` or `[global] keyring`.
    /// Without a keyring the tool calls unauthenticated, which only a
    /// cluster with `auth_required = false` serves.
    pub fn credentials(&self, cfg: &Config) -> anyhow::Result<Option<Credentials>> {
        let name: meridian_auth::EntityName = self
            .name
            .parse()
            .with_context(|| format!("-n/--name {:?}", self.name))?;
        let path = self
            .keyring
            .clone()
            .unwrap_or_else(|| cfg.client_keyring_path());
        if self.keyring.is_none() && !path.exists() && !cfg.global.auth_required {
            return Ok(None);
        }
        if path.as_os_str().is_empty() {
            anyhow::bail!(
                "no keyring for {name}: pass -k/--keyring or set [global] keyring in {}",
                cfg.path.display()
            );
        }
        Ok(Some(Credentials::from_keyring(&path, &name)?))
    }

    /// Connects a client to the configured monitors.
    pub async fn connect(&self) -> anyhow::Result<Cluster> {
        let cfg = self.config()?;
        let opts = ClientOptions {
            op_timeout: Duration::from_millis(cfg.global.client_op_timeout_ms),
            credentials: self.credentials(&cfg)?,
            ..Default::default()
        };
        Cluster::connect(cfg.monitor_addrs(), opts)
            .await
            .with_context(|| format!("connect to the cluster of {}", cfg.path.display()))
    }

    /// Prints `value` as JSON, or `plain` as text.
    pub fn print(&self, value: &serde_json::Value, plain: impl FnOnce() -> String) {
        match self.format {
            Format::Json => println!(
                "{}",
                serde_json::to_string_pretty(value).unwrap_or_default()
            ),
            Format::Plain => {
                let s = plain();
                if !s.is_empty() {
                    println!("{}", s.trim_end());
                }
            }
        }
    }
}

/// `meridian mon` arguments.
#[derive(clap::Args, Debug)]
pub struct MonArgs {
    /// Run the monitor with this id (its [mon.ID] config section).
    #[arg(long)]
    pub id: Option<u64>,
}

/// `meridian osd` arguments: `--id N` runs the daemon, a subcommand administers.
#[derive(clap::Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct OsdArgs {
    /// Run the OSD daemon with this id (its [osd.ID] config section).
    #[arg(long)]
    pub id: Option<u32>,
    #[command(subcommand)]
    pub cmd: Option<admin::OsdCmd>,
}

/// Logs go to stderr; daemons default to `info`, tools to `warn` (override
/// with RUST_LOG). s3s logs every S3 error response at ERROR; those are
/// client errors, answered and counted, so its target stays quiet unless
/// RUST_LOG names it.
pub fn init_tracing(daemon: bool) {
    let default = if daemon { "info" } else { "warn" };
    let env = std::env::var("RUST_LOG").unwrap_or_default();
    let mut filter =
        tracing_subscriber::EnvFilter::try_new(if env.is_empty() { default } else { &env })
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    if !env.contains("s3s")
        && let Ok(d) = "s3s=off".parse()
    {
        filter = filter.add_directive(d);
    }
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .try_init();
}
