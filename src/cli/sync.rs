//! Multi-site sync commands, with radosgw-admin's names: `sync status`,
//! `sync error ...`, `metadata sync ...`, `data sync ...`, `bucket sync ...`,
//! `metadata list|get`, and `sync agent` (a standalone sync agent, seed 001's
//! radosgw-agent).

use super::Ctx;
use super::rgw::{ZoneArg, open_zone, user_json};
use anyhow::{Context as _, bail};
use meridian_sync::agent::SyncPlan;
use meridian_sync::data::DataSync;
use meridian_sync::machine::Phase;
use meridian_sync::meta::MetaSync;
use meridian_sync::pair::AgentConfig;
use meridian_sync::report::{remotes, render, sync_report};
use meridian_sync::status::{META_STATUS, StatusStore, data_status};
use meridian_sync::{SyncSettings, remote::RemoteZone};
use meridian_zone::Zone;
use serde_json::{Value, json};
use std::io::Write as _;

/// `meridian sync ...`.
#[derive(clap::Subcommand, Debug)]
pub enum SyncCmd {
    /// Where metadata and data sync stand ("caught up" only when nothing committed is pending).
    Status {
        /// Also list every shard that is behind and the error log.
        #[arg(long)]
        detail: bool,
    },
    /// The sync error log.
    Error {
        #[command(subcommand)]
        cmd: SyncErrorCmd,
    },
    /// Changes that lost a conflict to another zone's newer write.
    Conflicts,
    /// Sync policies: what replicates between zones.
    Policy {
        #[command(subcommand)]
        cmd: super::syncpolicy::PolicyCmd,
    },
    /// Sync groups, with their flows and pipes.
    Group {
        #[command(subcommand)]
        cmd: super::syncpolicy::GroupCmd,
    },
    /// Which pipes apply: what this zone syncs from each other zone of its
    /// zonegroup and each syncs from it (for one bucket with --bucket).
    Info {
        #[arg(long)]
        bucket: Option<String>,
    },
    /// Run the sync of this zone in the foreground (an agent outside the
    /// gateways; several agents of a zone share the shards by lease).
    Agent {
        /// A source→destination pair file (seed 001's agent config: `source`,
        /// `src_access_key`, `src_secret_key`, `destination`,
        /// `dest_access_key`, `dest_secret_key`, `log_file`). Without it the
        /// agent runs every sync of the zone, as a gateway does.
        config: Option<std::path::PathBuf>,
        /// Metadata only (an agent between zonegroup masters).
        #[arg(long = "metadata-only")]
        metadata_only: bool,
        /// Print shard progress this often (seconds).
        #[arg(long = "progress-interval", default_value_t = 5)]
        progress_s: u64,
        /// Serve Prometheus metrics on this address (`host:port`).
        #[arg(long = "metrics-addr")]
        metrics_addr: Option<String>,
    },
}

/// `meridian sync error ...`.
#[derive(clap::Subcommand, Debug)]
pub enum SyncErrorCmd {
    /// Every entry (optionally of one bucket).
    List {
        #[arg(long)]
        bucket: Option<String>,
    },
    /// One entry.
    Get {
        #[arg(long = "error-marker")]
        marker: String,
    },
    /// Retry every entry (of one bucket) now; entries that succeed leave the log.
    Retry {
        #[arg(long)]
        bucket: Option<String>,
    },
    /// Drop one entry.
    Delete {
        #[arg(long = "error-marker")]
        marker: String,
    },
    /// Drop every entry.
    Trim,
}

/// `meridian metadata ...`.
#[derive(clap::Subcommand, Debug)]
pub enum MetadataCmd {
    /// Metadata sync.
    Sync {
        #[command(subcommand)]
        cmd: LogSyncCmd,
    },
    /// Names of a section: `bucket` or `user`.
    List {
        #[arg(value_parser = ["bucket", "user"])]
        section: String,
    },
    /// A record: `bucket:NAME` or `user:UID`.
    Get { key: String },
}

/// `meridian data ...`.
#[derive(clap::Subcommand, Debug)]
pub enum DataCmd {
    /// Data sync from one source zone.
    Sync {
        #[command(subcommand)]
        cmd: LogSyncCmd,
    },
}

/// `metadata sync ...` / `data sync ...`.
#[derive(clap::Subcommand, Debug)]
pub enum LogSyncCmd {
    /// Phase and per-shard markers.
    Status {
        /// Data sync: the source zone.
        #[arg(long = "source-zone")]
        source_zone: Option<String>,
        /// One shard only.
        #[arg(long = "shard-id")]
        shard: Option<u32>,
    },
    /// Start over with a full sync (the next sync run or gateway restart does it).
    Init {
        #[arg(long = "source-zone")]
        source_zone: Option<String>,
    },
    /// Metadata sync: fetch every record from the master now.
    Run,
}

/// `meridian bucket sync ...`.
#[derive(clap::Subcommand, Debug)]
pub enum BucketSyncCmd {
    /// Per shard and source: phase, marker, whether the source logged more.
    Status {
        #[arg(long)]
        bucket: String,
        #[arg(long = "source-zone")]
        source_zone: Option<String>,
    },
    /// Stop replicating the bucket: what each zone writes into it stays
    /// there (forwarded to the metadata master, so every zone learns it;
    /// returns once this zone's gateways act on it).
    Disable {
        #[arg(long)]
        bucket: String,
    },
    /// Replicate the bucket again: each zone brings it over by a full sync.
    Enable {
        #[arg(long)]
        bucket: String,
    },
    /// Bring every shard of the bucket up to date now.
    Run {
        #[arg(long)]
        bucket: String,
        #[arg(long = "source-zone")]
        source_zone: Option<String>,
    },
}

async fn local(ctx: &Ctx, z: &ZoneArg) -> anyhow::Result<(Zone, SyncSettings)> {
    let cfg = ctx.config()?;
    let zone = open_zone(ctx, z).await?;
    Ok((zone, SyncSettings::from_global(&cfg.global)))
}

fn plan(zone: &Zone) -> SyncPlan {
    SyncPlan::of(&zone.cluster().map().map, &zone.params().zone)
}

/// The data sources of this zone, or the one named.
fn sources(zone: &Zone, only: Option<&str>) -> anyhow::Result<Vec<RemoteZone>> {
    let p = plan(zone);
    if p.key.is_none() {
        bail!(
            "zone {} has no system key; sync needs one (zone modify --access-key --secret)",
            zone.params().zone
        );
    }
    let (_, all) = remotes(&p);
    match only {
        None => Ok(all),
        Some(name) => {
            let found: Vec<_> = all
                .into_iter()
                .filter(|r| r.name == name || r.id == name)
                .collect();
            if found.is_empty() {
                bail!(
                    "zone {name} is not a data sync source of zone {} (see `sync status`)",
                    zone.params().zone
                );
            }
            Ok(found)
        }
    }
}

/// `meridian sync ...`.
pub async fn sync(ctx: &Ctx, z: ZoneArg, cmd: SyncCmd) -> anyhow::Result<()> {
    if let SyncCmd::Agent {
        config,
        metadata_only,
        progress_s,
        metrics_addr,
    } = cmd
    {
        let args = AgentArgs {
            config,
            metadata_only,
            progress: std::time::Duration::from_secs(progress_s.max(1)),
            metrics_addr,
        };
        return agent(ctx, &z, args).await;
    }
    let cmd = match cmd {
        SyncCmd::Policy { cmd } => return super::syncpolicy::policy(ctx, &z, cmd).await,
        SyncCmd::Group { cmd } => return super::syncpolicy::group(ctx, &z, cmd).await,
        SyncCmd::Info { bucket } => return super::syncpolicy::info(ctx, &z, bucket).await,
        other => other,
    };
    let (zone, settings) = local(ctx, &z).await?;
    let status = StatusStore::new(zone.clone());
    match cmd {
        SyncCmd::Status { detail } => {
            let r = sync_report(&zone, &settings).await?;
            let errors = if detail {
                status.errors().await?
            } else {
                Vec::new()
            };
            let v = json!({ "status": r, "caught_up": r.caught_up(), "errors": errors.iter().map(|(m, e)| json!({"marker": m, "entry": e})).collect::<Vec<_>>() });
            ctx.print(&v, || {
                let mut s = render(&r);
                for (m, e) in &errors {
                    s.push_str(&format!(
                        "  error {m}: {} {}/{} ({}): {}\n",
                        e.kind, e.bucket, e.key, e.version_id, e.error
                    ));
                }
                s
            });
        }
        SyncCmd::Error { cmd } => error(ctx, &zone, &settings, &status, cmd).await?,
        SyncCmd::Conflicts => {
            let c = status.conflicts().await?;
            ctx.print(&json!(c), || {
                c.iter()
                    .map(|c| {
                        format!(
                            "{}/{}: zone {} (mtime {}) lost to zone {} (mtime {})\n",
                            c.bucket,
                            c.key,
                            c.loser_zone,
                            c.loser_mtime_ns,
                            c.winner_zone,
                            c.winner_mtime_ns
                        )
                    })
                    .collect()
            });
        }
        SyncCmd::Agent { .. }
        | SyncCmd::Policy { .. }
        | SyncCmd::Group { .. }
        | SyncCmd::Info { .. } => unreachable!("handled before the zone is opened"),
    }
    Ok(())
}

/// `meridian sync agent` arguments.
struct AgentArgs {
    config: Option<std::path::PathBuf>,
    metadata_only: bool,
    progress: std::time::Duration,
    metrics_addr: Option<String>,
}

/// `meridian sync agent [CONFIG]`: runs in the foreground, printing shard
/// progress (to the config's `log_file` when it names one).
async fn agent(ctx: &Ctx, z: &ZoneArg, args: AgentArgs) -> anyhow::Result<()> {
    let cfg = ctx.config()?;
    let settings = SyncSettings::from_global(&cfg.global);
    let pair = match &args.config {
        None => None,
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("read agent config {}", path.display()))?;
            let conf = AgentConfig::parse(&text)
                .with_context(|| format!("agent config {}", path.display()))?;
            let cluster = meridian_gateway::connect(&cfg, ctx.credentials(&cfg)?).await?;
            let map = cluster.map().map.clone();
            let pair = meridian_sync::pair::resolve(&conf, &map, args.metadata_only)
                .await
                .with_context(|| format!("agent config {}", path.display()))?;
            Some((conf, pair))
        }
    };
    let zone = match &pair {
        None => open_zone(ctx, z).await?,
        Some((_, p)) => {
            open_zone(
                ctx,
                &ZoneArg {
                    zone: Some(p.dest_zone.clone()),
                },
            )
            .await?
        }
    };
    let mut out: Box<dyn std::io::Write + Send> =
        match pair.as_ref().and_then(|(c, _)| c.log_file.as_ref()) {
            None => Box::new(std::io::stdout()),
            Some(f) => Box::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(f)
                    .with_context(|| format!("open log_file {}", f.display()))?,
            ),
        };
    if let Some(m) = &args.metrics_addr {
        let bound = meridian_common::metrics::serve(m)
            .await
            .with_context(|| format!("serve metrics on {m}"))?;
        writeln!(out, "metrics on http://{bound}/metrics")?;
    }
    let holder = format!("agent.{}.{}", hostname(), std::process::id());
    let what = if args.metadata_only {
        "metadata only"
    } else {
        "metadata and data"
    };
    let z2 = zone.clone();
    let s2 = settings.clone();
    let h2 = holder.clone();
    let narrow = pair.as_ref().map(|(_, p)| p.clone());
    match pair {
        None => {
            writeln!(
                out,
                "sync agent {holder} for zone {} ({what})",
                zone.params().zone
            )?;
            tokio::spawn(meridian_sync::agent::run(z2, s2, h2, args.metadata_only));
        }
        Some((_, pair)) => {
            let plan = pair.plan(&zone.cluster().map().map);
            let from = plan
                .master
                .iter()
                .chain(plan.sources.iter())
                .next()
                .map(|(n, _, eps)| format!("{n} at {}", eps.join(",")))
                .unwrap_or_default();
            writeln!(
                out,
                "sync agent {holder}: {from} -> zone {} ({what})",
                pair.dest_zone
            )?;
            tokio::spawn(meridian_sync::agent::run_plans(z2, s2, h2, move |map| {
                pair.plan(map)
            }));
        }
    }
    out.flush()?;
    loop {
        tokio::time::sleep(args.progress).await;
        // A pair agent reports only the syncs it runs.
        let plan = narrow.as_ref().map(|p| p.plan(&zone.cluster().map().map));
        let runs = |kind: &str, id: &str| {
            plan.as_ref().is_none_or(|p| match kind {
                "metadata" => p.master.as_ref().is_some_and(|m| m.1 == id),
                _ => p.sources.iter().any(|s| s.1 == id),
            })
        };
        match sync_report(&zone, &settings).await {
            Ok(r) => {
                let meta = r.metadata.iter().map(|l| ("metadata", l));
                let data = r.data.iter().map(|l| ("data", l));
                for (kind, l) in meta.chain(data) {
                    if !runs(kind, &l.source_id) {
                        continue;
                    }
                    writeln!(
                        out,
                        "{kind} from {}: {} {}/{} shards incremental, behind {:?}, {} recovering, {} errors{}",
                        l.source_name,
                        l.phase,
                        l.incremental_shards,
                        l.shards,
                        l.behind_shards,
                        l.recovering_shards,
                        l.errors,
                        if l.caught_up { " (caught up)" } else { "" }
                    )?;
                }
            }
            Err(e) => writeln!(out, "status unavailable: {e}")?,
        }
        out.flush()?;
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "localhost".into())
}

async fn error(
    ctx: &Ctx,
    zone: &Zone,
    settings: &SyncSettings,
    status: &StatusStore,
    cmd: SyncErrorCmd,
) -> anyhow::Result<()> {
    let entries = status.errors().await?;
    match cmd {
        SyncErrorCmd::List { bucket } => {
            let list: Vec<Value> = entries
                .iter()
                .filter(|(_, e)| bucket.as_ref().is_none_or(|b| &e.bucket == b))
                .map(|(m, e)| json!({"marker": m, "entry": e}))
                .collect();
            ctx.print(&json!(list), || {
                list.iter()
                    .map(|v| format!("{} {}\n", v["marker"].as_str().unwrap_or(""), v["entry"]))
                    .collect()
            });
        }
        SyncErrorCmd::Get { marker } => {
            let Some((_, e)) = entries.iter().find(|(m, _)| *m == marker) else {
                bail!("no sync error entry {marker:?} (see `sync error list`)");
            };
            ctx.print(&json!(e), || format!("{}", json!(e)));
        }
        SyncErrorCmd::Retry { bucket } => {
            let mut left = 0;
            for src in sources(zone, None)? {
                let ds = DataSync::new(zone.clone(), src, settings.clone(), "cli".into());
                left += ds.retry_errors().await?;
            }
            let n = entries
                .iter()
                .filter(|(_, e)| bucket.as_ref().is_none_or(|b| &e.bucket == b))
                .count();
            println!("retried {n} entries; {left} still failing");
        }
        SyncErrorCmd::Delete { marker } => {
            if !entries.iter().any(|(m, _)| *m == marker) {
                bail!("no sync error entry {marker:?} (see `sync error list`)");
            }
            status.remove_errors(vec![marker]).await?;
        }
        SyncErrorCmd::Trim => {
            let n = entries.len();
            status
                .remove_errors(entries.into_iter().map(|(m, _)| m).collect())
                .await?;
            println!("trimmed {n} entries");
        }
    }
    Ok(())
}

/// `meridian metadata ...`.
pub async fn metadata(ctx: &Ctx, z: ZoneArg, cmd: MetadataCmd) -> anyhow::Result<()> {
    let (zone, settings) = local(ctx, &z).await?;
    match cmd {
        MetadataCmd::List { section } => {
            let names: Vec<String> = if section == "user" {
                zone.list_users().await?
            } else {
                zone.list_buckets(None)
                    .await?
                    .into_iter()
                    .map(|b| b.name)
                    .collect()
            };
            ctx.print(&json!(names), || names.join("\n"));
        }
        MetadataCmd::Get { key } => {
            let Some((section, name)) = key.split_once(':') else {
                bail!("metadata get takes bucket:NAME or user:UID, not {key:?}");
            };
            let v = match section {
                "user" => user_json(&zone.user(name).await?),
                "bucket" => json!(zone.bucket_fresh(name).await?.0),
                s => bail!("unknown metadata section {s:?} (bucket, user)"),
            };
            ctx.print(&v, || serde_json::to_string_pretty(&v).unwrap_or_default());
        }
        MetadataCmd::Sync { cmd } => {
            let status = StatusStore::new(zone.clone());
            let p = plan(&zone);
            let (master, _) = remotes(&p);
            match cmd {
                LogSyncCmd::Status { shard, .. } => {
                    let g = status.global(META_STATUS).await?;
                    let shards = status.shards(META_STATUS).await?;
                    let v = json!({
                        "master": master.as_ref().map(|m| &m.name),
                        "global": g,
                        "shards": shards.iter().filter(|(n, _)| shard.is_none_or(|s| s == **n)).map(|(n, s)| json!({"shard": n, "status": s})).collect::<Vec<_>>(),
                    });
                    ctx.print(&v, || serde_json::to_string_pretty(&v).unwrap_or_default());
                }
                LogSyncCmd::Init { .. } => {
                    status.reset(META_STATUS).await?;
                    println!("metadata sync will start over with a full sync");
                }
                LogSyncCmd::Run => {
                    let Some(m) = master else {
                        bail!(
                            "zone {} is the metadata master: it syncs metadata from nobody",
                            zone.params().zone
                        );
                    };
                    let ms = MetaSync::new(zone.clone(), m, settings, "cli".into());
                    let mut n = 0;
                    for section in ["user", "bucket"] {
                        let mut after = String::new();
                        loop {
                            let (names, more) =
                                ms.master.list_metadata(section, &after, 500).await?;
                            for name in &names {
                                ms.apply(section, name).await?;
                                n += 1;
                            }
                            match names.last() {
                                Some(l) if more => after = l.clone(),
                                _ => break,
                            }
                        }
                    }
                    println!("synced {n} metadata records from {}", ms.master.name);
                }
            }
        }
    }
    Ok(())
}

/// `meridian data sync ...`.
pub async fn data(ctx: &Ctx, z: ZoneArg, cmd: DataCmd) -> anyhow::Result<()> {
    let (zone, _) = local(ctx, &z).await?;
    let status = StatusStore::new(zone.clone());
    let DataCmd::Sync { cmd } = cmd;
    match cmd {
        LogSyncCmd::Status { source_zone, shard } => {
            let Some(src) = source_zone else {
                bail!("data sync status needs --source-zone");
            };
            let src = sources(&zone, Some(&src))?.remove(0);
            let object = data_status(&src.id);
            let g = status.global(&object).await?;
            let shards = status.shards(&object).await?;
            let v = json!({
                "source_zone": {"id": src.id, "name": src.name},
                "global": g,
                "shards": shards.iter().filter(|(n, _)| shard.is_none_or(|s| s == **n)).map(|(n, s)| json!({"shard": n, "status": s})).collect::<Vec<_>>(),
            });
            ctx.print(&v, || serde_json::to_string_pretty(&v).unwrap_or_default());
        }
        LogSyncCmd::Init { source_zone } => {
            let Some(src) = source_zone else {
                bail!("data sync init needs --source-zone");
            };
            let src = sources(&zone, Some(&src))?.remove(0);
            status.reset(&data_status(&src.id)).await?;
            status
                .reset(&meridian_sync::status::bucket_status(&src.id))
                .await?;
            println!(
                "data sync from {} will start over with a full sync",
                src.name
            );
        }
        LogSyncCmd::Run => bail!(
            "use `bucket sync run --bucket=B` (data sync runs in the gateways or `sync agent`)"
        ),
    }
    Ok(())
}

/// `meridian bucket sync ...`.
pub async fn bucket_sync(ctx: &Ctx, z: &ZoneArg, cmd: BucketSyncCmd) -> anyhow::Result<()> {
    let (zone, settings) = local(ctx, z).await?;
    let status = StatusStore::new(zone.clone());
    match cmd {
        BucketSyncCmd::Status {
            bucket,
            source_zone,
        } => {
            let (info, _) = zone.bucket_fresh(&bucket).await?;
            if info.sync_disabled {
                let v = json!({"bucket": bucket, "bucket_id": info.id, "sync_disabled": true, "sources": []});
                ctx.print(&v, || format!("Sync is disabled for bucket {bucket}\n"));
                return Ok(());
            }
            let mut out = Vec::new();
            for src in sources(&zone, source_zone.as_deref())? {
                let ds = DataSync::new(zone.clone(), src.clone(), settings.clone(), "cli".into());
                if let meridian_zone::sync_policy::Verdict::NoSync(why) = ds.verdict(&info) {
                    out.push(json!({"source_zone": src.name, "source_id": src.id, "shards": [], "behind_shards": 0, "caught_up": true, "policy": why}));
                    continue;
                }
                let ask: Vec<_> = {
                    let mut v = Vec::new();
                    for s in 0..info.num_shards {
                        // Never synced: compared from the start of the log.
                        let st = status
                            .bucket_shard_if_any(&src.id, &info.id, s)
                            .await?
                            .unwrap_or(meridian_sync::machine::ShardStatus {
                                phase: Phase::Incremental,
                                ..Default::default()
                            });
                        v.push((info.clone(), s, st));
                    }
                    v
                };
                let pending = src
                    .bilog_pending(
                        &ask.iter()
                            .map(|(b, s, st)| (b.clone(), *s, st.marker.clone()))
                            .collect::<Vec<_>>(),
                        &zone.zone_id(),
                    )
                    .await
                    .context("ask the source zone")?;
                let shards: Vec<Value> = ask
                    .iter()
                    .zip(&pending)
                    .map(|((_, s, st), p)| json!({"shard": s, "status": st, "behind": *p || st.phase != Phase::Incremental || st.disabled}))
                    .collect();
                let behind = shards.iter().filter(|v| v["behind"] == json!(true)).count();
                out.push(json!({"source_zone": src.name, "source_id": src.id, "shards": shards, "behind_shards": behind, "caught_up": behind == 0}));
            }
            let v = json!({"bucket": bucket, "bucket_id": info.id, "sync_disabled": false, "sources": out});
            ctx.print(&v, || {
                let mut s = format!(
                    "          realm/zone: {}\n              bucket: {bucket} ({})\n",
                    zone.params().zone,
                    info.id
                );
                for o in &out {
                    s.push_str(&format!(
                        "    source zone {} ({}): {}\n",
                        o["source_zone"].as_str().unwrap_or(""),
                        o["source_id"].as_str().unwrap_or(""),
                        if let Some(why) = o["policy"].as_str() {
                            format!("not synced: {why}")
                        } else if o["caught_up"] == json!(true) {
                            "bucket is caught up with source".to_string()
                        } else {
                            format!("bucket is behind on {} shards", o["behind_shards"])
                        }
                    ));
                }
                s
            });
        }
        BucketSyncCmd::Disable { bucket } => set_bucket_sync(ctx, &zone, &bucket, false).await?,
        BucketSyncCmd::Enable { bucket } => set_bucket_sync(ctx, &zone, &bucket, true).await?,
        BucketSyncCmd::Run {
            bucket,
            source_zone,
        } => {
            let (info, _) = zone.bucket_fresh(&bucket).await?;
            if info.sync_disabled {
                bail!(
                    "sync is disabled for bucket {bucket} (bucket sync enable --bucket={bucket})"
                );
            }
            for src in sources(&zone, source_zone.as_deref())? {
                let ds = DataSync::new(zone.clone(), src.clone(), settings.clone(), "cli".into());
                if let meridian_zone::sync_policy::Verdict::NoSync(why) = ds.verdict(&info) {
                    println!("bucket {bucket} is not synced from {}: {why}", src.name);
                    continue;
                }
                for s in 0..info.num_shards {
                    ds.sync_bucket_shard(&info, s)
                        .await
                        .with_context(|| format!("bucket {bucket} shard {s} from {}", src.name))?;
                }
                println!("bucket {bucket} synced from {}", src.name);
            }
        }
    }
    Ok(())
}

/// `bucket sync enable|disable`.
async fn set_bucket_sync(ctx: &Ctx, zone: &Zone, bucket: &str, on: bool) -> anyhow::Result<()> {
    let info = super::rgw::change_bucket(
        zone,
        bucket,
        meridian_zone::bucket::BucketChange::SyncEnabled(on),
    )
    .await
    .with_context(|| format!("bucket {bucket}"))?;
    // Gateways keep bucket records for `rgw_cache_ttl_ms`: once this
    // returns, every gateway of this zone acts on the change. Other zones
    // follow when metadata sync brings the record (`sync status`).
    tokio::time::sleep(zone.params().cache_ttl).await;
    let v = json!({"bucket": bucket, "bucket_id": info.id, "sync_disabled": info.sync_disabled});
    ctx.print(&v, || {
        if on {
            format!("sync enabled for bucket {bucket}: other zones bring it over by a full sync\n")
        } else {
            format!("sync disabled for bucket {bucket}: it stays in each zone it is written in\n")
        }
    });
    Ok(())
}
