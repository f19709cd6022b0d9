//! Sync policies, with radosgw-admin's commands: `sync policy get`,
//! `sync group create|modify|get|remove`, `sync group flow create|remove`,
//! `sync group pipe create|modify|remove` and `sync info`. Without
//! `--bucket` they edit the zonegroup's policy, which `period update
//! --commit` puts into effect; with `--bucket` the bucket's own policy,
//! which takes effect once the bucket record reaches the zones (it is
//! changed on the metadata master, as every bucket record is).

use super::Ctx;
use super::multisite::{run, state};
use super::rgw::{ZoneArg, change_bucket, open_zone};
use anyhow::{Context as _, bail};
use meridian_proto::multisite::multisite_command::Cmd as M;
use meridian_proto::multisite::{
    DirectionalFlow, SymmetricalFlow, SyncGroup, SyncPipe, SyncPolicy, Zonegroup,
    ZonegroupSyncPolicy,
};
use meridian_sync::agent::SyncPlan;
use meridian_zone::Zone;
use meridian_zone::bucket::BucketChange;
use meridian_zone::sync_policy::{self, Verdict, ZoneRef};
use serde_json::{Value, json};

/// Which policy a command reads or edits.
#[derive(clap::Args, Debug, Clone)]
pub struct PolicyAt {
    /// Zonegroup (default: the one holding this zone).
    #[arg(long = "rgw-zonegroup", visible_alias = "zonegroup")]
    pub zonegroup: Option<String>,
    /// A bucket's own policy instead of the zonegroup's. For `pipe
    /// create|modify`, a glob (`critical-*`), or a bucket without the named
    /// group when the zonegroup has it, is the pipe's bucket instead.
    #[arg(long)]
    pub bucket: Option<String>,
}

/// `meridian sync policy ...`.
#[derive(clap::Subcommand, Debug)]
pub enum PolicyCmd {
    /// The zonegroup's sync policy as staged (`period update --commit`
    /// applies it), or a bucket's.
    Get {
        #[command(flatten)]
        at: PolicyAt,
    },
}

/// A group's status.
#[derive(clap::ValueEnum, Debug, Clone, Copy)]
pub enum Status {
    /// Sync happens.
    Enabled,
    /// Sync may happen where a bucket policy enables it.
    Allowed,
    /// Sync does not happen.
    Forbidden,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::Enabled => "enabled",
            Status::Allowed => "allowed",
            Status::Forbidden => "forbidden",
        }
    }
}

/// A flow's type.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlowType {
    /// Every zone listed syncs from the others.
    Symmetrical,
    /// The dest zone syncs from the source zone only.
    Directional,
}

/// `meridian sync group ...`.
#[derive(clap::Subcommand, Debug)]
pub enum GroupCmd {
    /// Create a sync group (or set the status of an existing one).
    Create {
        #[command(flatten)]
        at: PolicyAt,
        #[arg(long = "group-id")]
        group_id: String,
        #[arg(long, value_enum)]
        status: Status,
    },
    /// Change a sync group's status.
    Modify {
        #[command(flatten)]
        at: PolicyAt,
        #[arg(long = "group-id")]
        group_id: String,
        #[arg(long, value_enum)]
        status: Status,
    },
    /// Show one sync group, or all.
    Get {
        #[command(flatten)]
        at: PolicyAt,
        #[arg(long = "group-id")]
        group_id: Option<String>,
    },
    /// Remove a sync group.
    Remove {
        #[command(flatten)]
        at: PolicyAt,
        #[arg(long = "group-id")]
        group_id: String,
    },
    /// Data flows: which zones sync from which.
    Flow {
        #[command(subcommand)]
        cmd: FlowCmd,
    },
    /// Pipes: which buckets (and keys) use the flows.
    Pipe {
        #[command(subcommand)]
        cmd: PipeCmd,
    },
}

/// `meridian sync group flow ...`.
#[derive(clap::Subcommand, Debug)]
pub enum FlowCmd {
    /// Create a flow (a symmetrical one that exists gets the zones added).
    Create {
        #[command(flatten)]
        at: PolicyAt,
        #[arg(long = "group-id")]
        group_id: String,
        #[arg(long = "flow-id")]
        flow_id: String,
        #[arg(long = "flow-type", value_enum)]
        flow_type: FlowType,
        /// Symmetrical: the zones, comma-separated (`*`: all).
        #[arg(long)]
        zones: Option<String>,
        /// Directional: the zone synced from.
        #[arg(long = "source-zone")]
        source_zone: Option<String>,
        /// Directional: the zone that syncs.
        #[arg(long = "dest-zone")]
        dest_zone: Option<String>,
    },
    /// Remove a flow (or, with --zones, those zones from a symmetrical one).
    Remove {
        #[command(flatten)]
        at: PolicyAt,
        #[arg(long = "group-id")]
        group_id: String,
        #[arg(long = "flow-id")]
        flow_id: String,
        #[arg(long = "flow-type", value_enum)]
        flow_type: Option<FlowType>,
        #[arg(long)]
        zones: Option<String>,
    },
}

/// A pipe's fields as flags.
#[derive(clap::Args, Debug, Clone)]
pub struct PipeArgs {
    #[arg(long = "group-id")]
    group_id: String,
    #[arg(long = "pipe-id")]
    pipe_id: String,
    /// Zones synced from, comma-separated (`*`: all).
    #[arg(long = "source-zones")]
    source_zones: Option<String>,
    /// Bucket synced from (`*` or a glob).
    #[arg(long = "source-bucket")]
    source_bucket: Option<String>,
    /// Zones that sync, comma-separated (`*`: all).
    #[arg(long = "dest-zones")]
    dest_zones: Option<String>,
    /// Bucket synced into: `*` or the source bucket's name.
    #[arg(long = "dest-bucket")]
    dest_bucket: Option<String>,
    /// Only objects whose key starts with it.
    #[arg(long)]
    prefix: Option<String>,
}

/// `meridian sync group pipe ...`.
#[derive(clap::Subcommand, Debug)]
pub enum PipeCmd {
    /// Create a pipe (or change the fields given of an existing one).
    Create {
        #[command(flatten)]
        at: PolicyAt,
        #[command(flatten)]
        pipe: PipeArgs,
    },
    /// Change the fields given of a pipe.
    Modify {
        #[command(flatten)]
        at: PolicyAt,
        #[command(flatten)]
        pipe: PipeArgs,
    },
    /// Remove a pipe.
    Remove {
        #[command(flatten)]
        at: PolicyAt,
        #[arg(long = "group-id")]
        group_id: String,
        #[arg(long = "pipe-id")]
        pipe_id: String,
    },
}

fn list(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|z| !z.is_empty())
        .map(str::to_string)
        .collect()
}

fn bucket_of(b: &str) -> &str {
    if b.is_empty() { "*" } else { b }
}

/// radosgw-admin's JSON of a sync group.
pub fn group_json(g: &SyncGroup) -> Value {
    json!({
        "id": g.id,
        "data_flow": {
            "symmetrical": g.symmetrical.iter().map(|f| json!({"id": f.id, "zones": f.zones})).collect::<Vec<_>>(),
            "directional": g.directional.iter().map(|f| json!({"id": f.id, "source_zone": f.source_zone, "dest_zone": f.dest_zone})).collect::<Vec<_>>(),
        },
        "pipes": g.pipes.iter().map(|p| json!({
            "id": p.id,
            "source": {"bucket": bucket_of(&p.source_bucket), "zones": p.source_zones},
            "dest": {"bucket": bucket_of(&p.dest_bucket), "zones": p.dest_zones},
            "params": {"source": {"filter": {"prefix": p.prefix}}},
        })).collect::<Vec<_>>(),
        "status": g.status,
    })
}

/// radosgw-admin's JSON of a sync policy.
pub fn policy_json(p: &SyncPolicy) -> Value {
    json!({"groups": p.groups.iter().map(group_json).collect::<Vec<_>>()})
}

/// The zonegroup a command addresses (`--rgw-zonegroup`, else the one
/// holding this zone).
async fn zonegroup_of(zone: &Zone, at: &PolicyAt) -> anyhow::Result<Zonegroup> {
    let ms = state(zone.cluster()).await;
    let name = match &at.zonegroup {
        Some(n) => n.clone(),
        None => {
            let me = &zone.params().zone;
            match ms
                .zonegroups
                .iter()
                .find(|g| g.zones.iter().any(|z| &z.name == me))
            {
                Some(g) => g.name.clone(),
                None => String::new(),
            }
        }
    };
    meridian_mon::multisite::zonegroup(&ms, &name)
        .cloned()
        .map_err(|e| anyhow::anyhow!("{e}"))
}

/// Where a policy lives.
enum Target {
    Zonegroup(Box<Zonegroup>),
    Bucket(String),
}

async fn current(zone: &Zone, t: &Target) -> anyhow::Result<SyncPolicy> {
    Ok(match t {
        Target::Zonegroup(g) => g.sync_policy.clone().unwrap_or_default(),
        Target::Bucket(b) => zone
            .bucket_fresh(b)
            .await
            .with_context(|| format!("bucket {b}"))?
            .0
            .sync_policy
            .unwrap_or_default(),
    })
}

async fn target(zone: &Zone, at: &PolicyAt) -> anyhow::Result<Target> {
    Ok(match &at.bucket {
        Some(b) => Target::Bucket(b.clone()),
        None => Target::Zonegroup(Box::new(zonegroup_of(zone, at).await?)),
    })
}

/// Edits a policy: read, change, check, store; returns the new one.
async fn edit(
    zone: &Zone,
    t: &Target,
    f: impl FnOnce(&mut SyncPolicy) -> anyhow::Result<()>,
) -> anyhow::Result<SyncPolicy> {
    let before = current(zone, t).await?;
    let mut p = before.clone();
    f(&mut p)?;
    match t {
        Target::Zonegroup(g) => {
            meridian_mon::multisite::validate_sync_policy(&p, Some(&g.zones))
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            run(
                zone.cluster(),
                M::ZonegroupSyncPolicy(ZonegroupSyncPolicy {
                    zonegroup: g.name.clone(),
                    policy: Some(p.clone()),
                    expect: Some(before),
                }),
            )
            .await?;
            eprintln!(
                "zonegroup {}: policy staged; `period update --commit` puts it into effect",
                g.name
            );
        }
        Target::Bucket(b) => {
            meridian_mon::multisite::validate_sync_policy(&p, None)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            change_bucket(zone, b, BucketChange::SyncPolicy(Some(p.clone())))
                .await
                .with_context(|| format!("bucket {b}"))?;
            // Every gateway of this zone acts on it once its cached record
            // expires; other zones when metadata sync brings the record.
            tokio::time::sleep(zone.params().cache_ttl).await;
        }
    }
    Ok(p)
}

fn group_mut<'a>(p: &'a mut SyncPolicy, id: &str) -> anyhow::Result<&'a mut SyncGroup> {
    p.groups
        .iter_mut()
        .find(|g| g.id == id)
        .with_context(|| format!("sync group '{id}' does not exist (sync group create)"))
}

/// `meridian sync policy ...`.
pub async fn policy(ctx: &Ctx, z: &ZoneArg, cmd: PolicyCmd) -> anyhow::Result<()> {
    let zone = open_zone(ctx, z).await?;
    let PolicyCmd::Get { at } = cmd;
    let t = target(&zone, &at).await?;
    let p = current(&zone, &t).await?;
    println!("{}", serde_json::to_string_pretty(&policy_json(&p))?);
    Ok(())
}

/// Decides whether a pipe command's `--bucket` names the pipe's bucket (a
/// glob, or a bucket that lacks the group the zonegroup has) rather than
/// a bucket policy.
async fn pipe_target(
    zone: &Zone,
    at: &PolicyAt,
    group: &str,
) -> anyhow::Result<(Target, Option<String>)> {
    let Some(b) = &at.bucket else {
        return Ok((target(zone, at).await?, None));
    };
    let in_zonegroup = || async {
        let g = zonegroup_of(zone, at).await?;
        let has = g
            .sync_policy
            .as_ref()
            .is_some_and(|p| p.groups.iter().any(|x| x.id == group));
        anyhow::Ok((g, has))
    };
    if b.contains('*') {
        let (g, _) = in_zonegroup().await?;
        return Ok((Target::Zonegroup(Box::new(g)), Some(b.clone())));
    }
    let bucket_has = match zone.bucket_fresh(b).await {
        Ok((info, _)) => info
            .sync_policy
            .is_some_and(|p| p.groups.iter().any(|x| x.id == group)),
        Err(meridian_zone::ZoneError::NoSuchBucket(_)) => false,
        Err(e) => return Err(e).with_context(|| format!("bucket {b}")),
    };
    if bucket_has {
        return Ok((Target::Bucket(b.clone()), None));
    }
    match in_zonegroup().await? {
        (g, true) => Ok((Target::Zonegroup(Box::new(g)), Some(b.clone()))),
        _ => bail!(
            "sync group '{group}' is neither in bucket {b}'s policy nor in the zonegroup's (sync group create)"
        ),
    }
}

/// `meridian sync group ...`.
pub async fn group(ctx: &Ctx, z: &ZoneArg, cmd: GroupCmd) -> anyhow::Result<()> {
    let zone = open_zone(ctx, z).await?;
    let show = |p: &SyncPolicy, id: &str| {
        if let Some(g) = p.groups.iter().find(|g| g.id == id) {
            println!(
                "{}",
                serde_json::to_string_pretty(&group_json(g)).unwrap_or_default()
            );
        }
    };
    match cmd {
        GroupCmd::Create {
            at,
            group_id,
            status,
        } => {
            let t = target(&zone, &at).await?;
            let p = edit(&zone, &t, |p| {
                match p.groups.iter_mut().find(|g| g.id == group_id) {
                    Some(g) => g.status = status.as_str().into(),
                    None => p.groups.push(SyncGroup {
                        id: group_id.clone(),
                        status: status.as_str().into(),
                        ..Default::default()
                    }),
                }
                Ok(())
            })
            .await?;
            show(&p, &group_id);
        }
        GroupCmd::Modify {
            at,
            group_id,
            status,
        } => {
            let t = target(&zone, &at).await?;
            let p = edit(&zone, &t, |p| {
                group_mut(p, &group_id)?.status = status.as_str().into();
                Ok(())
            })
            .await?;
            show(&p, &group_id);
        }
        GroupCmd::Get { at, group_id } => {
            let t = target(&zone, &at).await?;
            let p = current(&zone, &t).await?;
            let groups: Vec<Value> = p
                .groups
                .iter()
                .filter(|g| group_id.as_ref().is_none_or(|id| &g.id == id))
                .map(|g| json!({"key": g.id, "val": group_json(g)}))
                .collect();
            if let Some(id) = &group_id
                && groups.is_empty()
            {
                bail!("sync group '{id}' does not exist");
            }
            println!("{}", serde_json::to_string_pretty(&groups)?);
        }
        GroupCmd::Remove { at, group_id } => {
            let t = target(&zone, &at).await?;
            edit(&zone, &t, |p| {
                let before = p.groups.len();
                p.groups.retain(|g| g.id != group_id);
                if p.groups.len() == before {
                    bail!("sync group '{group_id}' does not exist");
                }
                Ok(())
            })
            .await?;
            println!("removed sync group {group_id}");
        }
        GroupCmd::Flow { cmd } => flow(&zone, cmd).await?,
        GroupCmd::Pipe { cmd } => pipe(&zone, cmd).await?,
    }
    Ok(())
}

async fn flow(zone: &Zone, cmd: FlowCmd) -> anyhow::Result<()> {
    let (at, group_id) = match &cmd {
        FlowCmd::Create { at, group_id, .. } | FlowCmd::Remove { at, group_id, .. } => {
            (at.clone(), group_id.clone())
        }
    };
    let t = target(zone, &at).await?;
    let p = edit(zone, &t, |p| {
        let g = group_mut(p, &group_id)?;
        match cmd {
            FlowCmd::Create {
                flow_id,
                flow_type: FlowType::Symmetrical,
                zones,
                ..
            } => {
                let zones = list(&zones.context("a symmetrical flow needs --zones=A,B")?);
                if g.directional.iter().any(|f| f.id == flow_id) {
                    bail!("flow '{flow_id}' exists as a directional flow");
                }
                match g.symmetrical.iter_mut().find(|f| f.id == flow_id) {
                    Some(f) => {
                        for z in zones {
                            if !f.zones.contains(&z) {
                                f.zones.push(z);
                            }
                        }
                    }
                    None => g.symmetrical.push(SymmetricalFlow { id: flow_id, zones }),
                }
            }
            FlowCmd::Create {
                flow_id,
                flow_type: FlowType::Directional,
                source_zone,
                dest_zone,
                ..
            } => {
                let (Some(source_zone), Some(dest_zone)) = (source_zone, dest_zone) else {
                    bail!("a directional flow needs --source-zone and --dest-zone");
                };
                if g.symmetrical.iter().any(|f| f.id == flow_id) {
                    bail!("flow '{flow_id}' exists as a symmetrical flow");
                }
                g.directional.retain(|f| f.id != flow_id);
                g.directional.push(DirectionalFlow {
                    id: flow_id,
                    source_zone,
                    dest_zone,
                });
            }
            FlowCmd::Remove {
                flow_id,
                flow_type,
                zones,
                ..
            } => {
                let sym = flow_type != Some(FlowType::Directional);
                let dir = flow_type != Some(FlowType::Symmetrical);
                let found = (sym && g.symmetrical.iter().any(|f| f.id == flow_id))
                    || (dir && g.directional.iter().any(|f| f.id == flow_id));
                if !found {
                    bail!("flow '{flow_id}' does not exist in sync group {}", g.id);
                }
                match zones.map(|z| list(&z)) {
                    Some(drop) if sym => {
                        for f in g.symmetrical.iter_mut().filter(|f| f.id == flow_id) {
                            f.zones.retain(|z| !drop.contains(z));
                        }
                        g.symmetrical.retain(|f| !f.zones.is_empty());
                    }
                    _ => {
                        if sym {
                            g.symmetrical.retain(|f| f.id != flow_id);
                        }
                        if dir {
                            g.directional.retain(|f| f.id != flow_id);
                        }
                    }
                }
            }
        }
        Ok(())
    })
    .await?;
    if let Some(g) = p.groups.iter().find(|g| g.id == group_id) {
        println!("{}", serde_json::to_string_pretty(&group_json(g))?);
    }
    Ok(())
}

async fn pipe(zone: &Zone, cmd: PipeCmd) -> anyhow::Result<()> {
    let (at, group_id) = match &cmd {
        PipeCmd::Create { at, pipe } | PipeCmd::Modify { at, pipe } => {
            (at.clone(), pipe.group_id.clone())
        }
        PipeCmd::Remove { at, group_id, .. } => (at.clone(), group_id.clone()),
    };
    let (t, pipe_bucket) = match &cmd {
        PipeCmd::Remove { .. } => (target(zone, &at).await?, None),
        _ => pipe_target(zone, &at, &group_id).await?,
    };
    let create = matches!(cmd, PipeCmd::Create { .. });
    let p = edit(zone, &t, |p| {
        let g = group_mut(p, &group_id)?;
        match cmd {
            PipeCmd::Create { pipe: a, .. } | PipeCmd::Modify { pipe: a, .. } => {
                let pos = match g.pipes.iter().position(|x| x.id == a.pipe_id) {
                    Some(i) => i,
                    None if create => {
                        g.pipes.push(SyncPipe {
                            id: a.pipe_id.clone(),
                            source_zones: vec!["*".into()],
                            dest_zones: vec!["*".into()],
                            ..Default::default()
                        });
                        g.pipes.len() - 1
                    }
                    None => bail!(
                        "pipe '{}' does not exist in sync group {} (sync group pipe create)",
                        a.pipe_id,
                        g.id
                    ),
                };
                let x = &mut g.pipes[pos];
                if let Some(z) = &a.source_zones {
                    x.source_zones = list(z);
                }
                if let Some(z) = &a.dest_zones {
                    x.dest_zones = list(z);
                }
                if let Some(b) = &pipe_bucket {
                    x.source_bucket = b.clone();
                    x.dest_bucket = b.clone();
                }
                if let Some(b) = &a.source_bucket {
                    x.source_bucket = b.clone();
                }
                if let Some(b) = &a.dest_bucket {
                    x.dest_bucket = b.clone();
                }
                if let Some(pre) = &a.prefix {
                    x.prefix = pre.clone();
                }
            }
            PipeCmd::Remove { pipe_id, .. } => {
                let before = g.pipes.len();
                g.pipes.retain(|x| x.id != pipe_id);
                if g.pipes.len() == before {
                    bail!("pipe '{pipe_id}' does not exist in sync group {}", g.id);
                }
            }
        }
        Ok(())
    })
    .await?;
    if let Some(g) = p.groups.iter().find(|g| g.id == group_id) {
        println!("{}", serde_json::to_string_pretty(&group_json(g))?);
    }
    Ok(())
}

fn verdict_json(zone: &str, v: &Verdict) -> Value {
    match v {
        Verdict::Sync { prefixes, pipes } => json!({
            "zone": zone, "sync": true, "pipes": pipes,
            "prefixes": prefixes.iter().filter(|p| !p.is_empty()).collect::<Vec<_>>(),
        }),
        Verdict::NoSync(why) => json!({"zone": zone, "sync": false, "reason": why}),
    }
}

/// `meridian sync info [--bucket]`: what the policies in effect (the
/// current period's zonegroup policy, the bucket's own) make this zone
/// sync from each other zone of its zonegroup, and each other zone sync
/// from it.
pub async fn info(ctx: &Ctx, z: &ZoneArg, bucket: Option<String>) -> anyhow::Result<()> {
    let zone = open_zone(ctx, z).await?;
    let me = zone.params().zone.clone();
    let my_id = zone.zone_id();
    let map = zone.cluster().map().map.clone();
    let plan = SyncPlan::of(&map, &me);
    let zg = SyncPlan::zonegroup_policy(&map, &me);
    let peers: Vec<(String, String)> = SyncPlan::current_zonegroup(&map, &me)
        .iter()
        .flat_map(|g| g.zones.iter())
        .filter(|x| x.id != my_id)
        .map(|x| (x.name.clone(), x.id.clone()))
        .collect();
    let info = match &bucket {
        Some(b) => Some(
            zone.bucket_fresh(b)
                .await
                .with_context(|| format!("bucket {b}"))?
                .0,
        ),
        None => None,
    };
    let here = ZoneRef {
        name: &me,
        id: &my_id,
    };
    let mut sources = Vec::new();
    let mut dests = Vec::new();
    for (name, id) in &peers {
        let there = ZoneRef { name, id };
        match &info {
            Some(b) => {
                let check = |from: ZoneRef, to: ZoneRef| {
                    sync_policy::bucket_verdict(zg.as_ref(), b, from, to)
                };
                let mut src = verdict_json(name, &check(there, here));
                if src["sync"] == json!(true) && !plan.sources.iter().any(|s| &s.1 == id) {
                    src = json!({"zone": name, "sync": false, "reason": format!("zone {me} does not sync from {name} (sync_from, or no endpoints)")});
                }
                sources.push(src);
                dests.push(verdict_json(name, &check(here, there)));
            }
            None => {
                let pair = |from: ZoneRef, to: ZoneRef| {
                    let pipes: Vec<Value> = zg
                        .iter()
                        .flat_map(|p| p.groups.iter())
                        .filter(|g| sync_policy::group_admits(g, from, to))
                        .flat_map(|g| {
                            g.pipes.iter().map(move |p| {
                                json!({"group": g.id, "status": g.status, "pipe": p.id,
                                    "bucket": bucket_of(&p.source_bucket), "prefix": p.prefix})
                            })
                        })
                        .collect();
                    json!({
                        "zone": name,
                        "admitted": sync_policy::pair_admitted(zg.as_ref(), from, to),
                        "pipes": pipes,
                    })
                };
                sources.push(pair(there, here));
                dests.push(pair(here, there));
            }
        }
    }
    let v = json!({
        "zone": me,
        "bucket": bucket,
        "policy": zg.as_ref().map(policy_json).unwrap_or(json!({"groups": []})),
        "sources": sources,
        "dests": dests,
    });
    println!("{}", serde_json::to_string_pretty(&v)?);
    Ok(())
}
