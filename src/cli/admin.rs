//! Cluster administration: daemons, status, health, OSDs, pools, CRUSH, PGs, scrub.

use super::{Ctx, MonArgs, OsdArgs};
use anyhow::{Context as _, bail};
use meridian_client::{Cluster, MapView, PgId};
use meridian_proto::mon::mon_command::Cmd;
use meridian_proto::mon::*;
use meridian_proto::osd::{PgRef, ResultCode, ScrubRequest};
use serde_json::json;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// `meridian osd ...` admin subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum OsdCmd {
    /// The CRUSH hierarchy with each OSD's state.
    Tree,
    /// OSD ids.
    Ls,
    /// Mark OSDs out (their PGs move elsewhere).
    Out { ids: Vec<u32> },
    /// Mark OSDs in.
    In { ids: Vec<u32> },
    /// Set a cluster-wide flag: `noout` (down OSDs are not marked out; for maintenance).
    Set { flag: String },
    /// Clear a cluster-wide flag.
    Unset { flag: String },
    /// Whether OSDs can be destroyed without reducing durability (exit 1 if not).
    SafeToDestroy { ids: Vec<u32> },
    /// Remove a stopped OSD from the map, CRUSH and auth for good.
    Purge {
        id: u32,
        #[arg(long = "yes-i-really-mean-it")]
        yes: bool,
        /// Purge even when it is not safe to destroy.
        #[arg(long)]
        force: bool,
    },
    /// Where an object lives: PG, acting set, primary.
    Map { pool: String, object: String },
    /// Pool commands.
    Pool {
        #[command(subcommand)]
        cmd: PoolCmd,
    },
    /// CRUSH commands.
    Crush {
        #[command(subcommand)]
        cmd: CrushCmd,
    },
    /// Print the CRUSH map in crushtool's text format.
    Getcrushmap,
    /// Set the used fraction at which OSDs are nearfull (health warning).
    SetNearfullRatio { ratio: f64 },
    /// Set the used fraction at which backfill into an OSD stops.
    SetBackfillfullRatio { ratio: f64 },
    /// Set the used fraction at which writes that add data are refused.
    SetFullRatio { ratio: f64 },
    /// Declare a down OSD's data lost, so PGs stop waiting for it (Ceph's
    /// `osd lost`). Writes that only it held are gone: this is never done
    /// implicitly.
    Lost {
        id: u32,
        #[arg(long = "yes-i-really-mean-it")]
        yes: bool,
    },
}

/// `meridian osd pool ...`.
#[derive(clap::Subcommand, Debug)]
pub enum PoolCmd {
    /// Create a replicated pool.
    Create {
        name: String,
        pg_num: u32,
        /// Replicas (default: osd_pool_default_size).
        #[arg(long)]
        size: Option<u32>,
        /// Replicas needed to accept writes (default: size - size/2).
        #[arg(long = "min-size")]
        min_size: Option<u32>,
        /// CRUSH rule name.
        #[arg(long)]
        rule: Option<String>,
        /// Application tag.
        #[arg(long)]
        application: Option<String>,
    },
    /// List pools.
    Ls {
        /// Show every field.
        #[arg(value_parser = ["detail"])]
        detail: Option<String>,
    },
    /// Remove a pool: `pool rm NAME NAME --yes-i-really-really-mean-it`.
    Rm {
        name: String,
        confirm: Option<String>,
        #[arg(long = "yes-i-really-really-mean-it")]
        yes: bool,
    },
    /// Show a pool option (or `all`).
    Get { name: String, key: String },
    /// Set a pool option: size, min_size, crush_rule, application,
    /// compression_algorithm (lz4|zstd|none), compression_mode
    /// (none|passive|aggressive|force), compression_required_ratio.
    Set {
        name: String,
        key: String,
        value: String,
    },
}

/// `meridian osd crush ...`.
#[derive(clap::Subcommand, Debug)]
pub enum CrushCmd {
    /// CRUSH rules.
    Rule {
        #[command(subcommand)]
        cmd: RuleCmd,
    },
    /// Set an OSD's CRUSH weight: `crush reweight osd.N WEIGHT`.
    Reweight { osd: String, weight: f64 },
}

/// `meridian osd crush rule ...`.
#[derive(clap::Subcommand, Debug)]
pub enum RuleCmd {
    /// `create-replicated NAME ROOT FAILURE_DOMAIN [CLASS]`.
    CreateReplicated {
        name: String,
        root: String,
        failure_domain: String,
        class: Option<String>,
    },
    /// List rules.
    Ls,
}

/// `meridian pg ...`.
#[derive(clap::Subcommand, Debug)]
pub enum PgCmd {
    /// PG state counts.
    Stat,
    /// Every PG with state and acting set.
    Dump,
    /// Scrub one PG (`pool.seedhex`).
    Scrub { pgid: String },
    /// Deep-scrub one PG (compares data digests).
    DeepScrub { pgid: String },
    /// Deep-scrub one PG and repair bad copies.
    Repair { pgid: String },
    /// Why a PG is (not) active: interval, past intervals, OSDs it waits for.
    Query { pgid: String },
}

/// `meridian scrub -p POOL [--deep] [--repair]`.
#[derive(clap::Args, Debug)]
pub struct ScrubArgs {
    /// Pool to scrub.
    #[arg(short = 'p', long)]
    pub pool: String,
    /// Compare data digests, not only sizes and versions.
    #[arg(long)]
    pub deep: bool,
    /// Overwrite inconsistent copies with the majority's.
    #[arg(long)]
    pub repair: bool,
}

/// `meridian mon --id N`.
pub async fn mon(ctx: &Ctx, a: MonArgs) -> anyhow::Result<()> {
    let Some(id) = a.id else {
        bail!("`meridian mon` runs a monitor: pass --id N (see [mon.N] in the config)");
    };
    meridian_mon::run(ctx.config()?, id).await
}

/// `meridian osd --id N` or an OSD admin command.
pub async fn osd(ctx: &Ctx, a: OsdArgs) -> anyhow::Result<()> {
    if let Some(id) = a.id {
        return meridian_osd::run(ctx.config()?, id).await;
    }
    let Some(cmd) = a.cmd else {
        bail!(
            "`meridian osd` needs --id N (run the daemon) or a subcommand; see `meridian osd --help`"
        );
    };
    let c = ctx.connect().await?;
    match cmd {
        OsdCmd::Tree => osd_tree(ctx, &c),
        OsdCmd::Ls => {
            let v = c.map();
            let ids: Vec<u32> = v.map.osds.iter().map(|o| o.id).collect();
            ctx.print(&json!(ids), || {
                ids.iter().map(|i| format!("{i}\n")).collect()
            });
            Ok(())
        }
        OsdCmd::Out { ids } | OsdCmd::In { ids } if ids.is_empty() => {
            bail!("name at least one OSD id")
        }
        OsdCmd::Out { ids } => set_in(ctx, &c, ids, false).await,
        OsdCmd::In { ids } => set_in(ctx, &c, ids, true).await,
        OsdCmd::Set { flag } => super::osdlife::set_flag(ctx, &c, &flag, true).await,
        OsdCmd::Unset { flag } => super::osdlife::set_flag(ctx, &c, &flag, false).await,
        OsdCmd::SafeToDestroy { ids } => super::osdlife::safe_to_destroy(ctx, &c, &ids).await,
        OsdCmd::Purge { id, yes, force } => super::osdlife::purge(ctx, &c, id, yes, force).await,
        OsdCmd::Map { pool, object } => {
            let v = c.map();
            let p = v
                .pool_by_name(&pool)
                .ok_or_else(|| anyhow::anyhow!("pool '{pool}' does not exist"))?;
            let pg = MapView::object_pg(p, &object);
            let up = v.pg_raw(p, pg.seed);
            let acting = v.pg_acting(p, pg.seed);
            let primary = acting.first().map(|p| *p as i64).unwrap_or(-1);
            ctx.print(
                &json!({"epoch": v.epoch(), "pool": pool, "pool_id": p.id, "objname": object,
                        "pgid": pg.to_string(), "up": up, "acting": acting, "acting_primary": primary}),
                || {
                    format!(
                        "osdmap e{} pool '{pool}' ({}) object '{object}' -> pg {pg} -> up {up:?} acting ({:?}, p{primary})",
                        v.epoch(),
                        p.id,
                        acting
                    )
                },
            );
            Ok(())
        }
        OsdCmd::Pool { cmd } => pool(ctx, &c, cmd).await,
        OsdCmd::Crush { cmd } => crush(ctx, &c, cmd).await,
        OsdCmd::SetNearfullRatio { ratio } => set_ratio(ctx, &c, "nearfull", ratio).await,
        OsdCmd::SetBackfillfullRatio { ratio } => set_ratio(ctx, &c, "backfillfull", ratio).await,
        OsdCmd::SetFullRatio { ratio } => set_ratio(ctx, &c, "full", ratio).await,
        OsdCmd::Lost { id, yes } => {
            if !yes {
                bail!(
                    "marking osd.{id} lost gives up on every write only it holds; \
                     repeat with --yes-i-really-mean-it if that is what you want"
                );
            }
            let r = c.mon_command(Cmd::OsdLost(OsdLost { osd_id: id })).await?;
            ctx.print(
                &json!({"osd": id, "lost": true, "epoch": r.epoch, "message": r.message}),
                || r.message.clone(),
            );
            Ok(())
        }
        OsdCmd::Getcrushmap => {
            let v = c.map();
            let crush = v
                .crush()
                .ok_or_else(|| anyhow::anyhow!("the cluster map has no CRUSH map yet"))?;
            print!("{}", meridian_crush::text::format(crush));
            Ok(())
        }
    }
}

async fn set_ratio(ctx: &Ctx, c: &Cluster, which: &str, ratio: f64) -> anyhow::Result<()> {
    let r = c
        .mon_command(Cmd::OsdSetRatio(OsdSetRatio {
            which: which.into(),
            ratio,
        }))
        .await?;
    ctx.print(
        &json!({"ratio": which, "value": ratio, "epoch": r.epoch, "message": r.message}),
        || r.message.clone(),
    );
    Ok(())
}

async fn set_in(ctx: &Ctx, c: &Cluster, ids: Vec<u32>, r#in: bool) -> anyhow::Result<()> {
    for id in ids {
        let r = c
            .mon_command(Cmd::OsdSetIn(OsdSetIn { osd_id: id, r#in }))
            .await?;
        ctx.print(
            &json!({"osd": id, "in": r#in, "epoch": r.epoch, "message": r.message}),
            || r.message.clone(),
        );
    }
    Ok(())
}

fn osd_tree(ctx: &Ctx, c: &Cluster) -> anyhow::Result<()> {
    let v = c.map();
    let crush = v
        .crush()
        .cloned()
        .ok_or_else(|| anyhow::anyhow!("the cluster map has no CRUSH map yet"))?;
    let mut rows = Vec::new();
    let type_name = |t: i32| -> String {
        crush
            .type_name(t)
            .map(|s| s.to_string())
            .unwrap_or_else(|| t.to_string())
    };
    fn walk(
        crush: &meridian_crush::CrushMap,
        v: &MapView,
        id: i32,
        weight: u32,
        depth: usize,
        rows: &mut Vec<serde_json::Value>,
        tn: &dyn Fn(i32) -> String,
    ) {
        if id >= 0 {
            let o = v.osd(id as u32);
            rows.push(json!({
                "id": id, "name": format!("osd.{id}"), "type": "osd", "depth": depth,
                "crush_weight": weight as f64 / 65536.0,
                "device_class": o.map(|o| o.device_class.clone()).unwrap_or_default(),
                "status": if o.map(|o| o.up).unwrap_or(false) { "up" } else { "down" },
                "reweight": o.map(|o| o.reweight as f64 / 65536.0).unwrap_or(0.0),
            }));
            return;
        }
        let Some(b) = crush.bucket(id) else { return };
        if b.name.contains('~') {
            return; // device-class shadow trees are internal
        }
        let w: u64 = b.items.iter().map(|(_, w)| *w as u64).sum();
        rows.push(
            json!({"id": id, "name": b.name, "type": tn(b.type_id), "depth": depth,
                         "crush_weight": w as f64 / 65536.0}),
        );
        for (item, w) in &b.items {
            walk(crush, v, *item, *w, depth + 1, rows, tn);
        }
    }
    let roots: Vec<i32> = crush
        .buckets()
        .filter(|b| !b.is_shadow() && crush.parent_of(b.id).is_none())
        .map(|b| b.id)
        .collect();
    for b in roots {
        walk(&crush, &v, b, 0, 0, &mut rows, &type_name);
    }
    ctx.print(&json!({"nodes": rows}), || {
        let mut s = format!(
            "{:>4}  {:<6} {:>8}  {:<28} {:>7}  {:>8}\n",
            "ID", "CLASS", "WEIGHT", "TYPE NAME", "STATUS", "REWEIGHT"
        );
        for r in &rows {
            let depth = r["depth"].as_u64().unwrap_or(0) as usize;
            let name = format!(
                "{}{} {}",
                "    ".repeat(depth),
                r["type"].as_str().unwrap_or(""),
                r["name"].as_str().unwrap_or("")
            );
            let name = if r["type"] == "osd" {
                format!(
                    "{}{}",
                    "    ".repeat(depth),
                    r["name"].as_str().unwrap_or("")
                )
            } else {
                name
            };
            let _ = writeln!(
                s,
                "{:>4}  {:<6} {:>8.5}  {:<28} {:>7}  {:>8}",
                r["id"],
                r["device_class"].as_str().unwrap_or(""),
                r["crush_weight"].as_f64().unwrap_or(0.0),
                name,
                r["status"].as_str().unwrap_or(""),
                r["reweight"]
                    .as_f64()
                    .map(|w| format!("{w:.5}"))
                    .unwrap_or_default()
            );
        }
        s
    });
    Ok(())
}

fn pool_json(p: &Pool, v: &MapView) -> serde_json::Value {
    let rule = v
        .crush()
        .and_then(|c| c.rule(p.crush_rule).map(|r| r.name.clone()))
        .unwrap_or_else(|| p.crush_rule.to_string());
    let mut j = json!({"pool_id": p.id, "pool_name": p.name, "size": p.size, "min_size": p.min_size,
           "pg_num": p.pg_num, "pgp_num": p.pgp_num, "crush_rule": rule,
           "application": p.application, "created_epoch": p.created_epoch});
    // Options set on the pool (compression) show beside the fixed fields.
    let mut opts: Vec<_> = p.options.iter().collect();
    opts.sort();
    for (k, v) in opts {
        j[k.as_str()] = json!(v);
    }
    j
}

async fn pool(ctx: &Ctx, c: &Cluster, cmd: PoolCmd) -> anyhow::Result<()> {
    match cmd {
        PoolCmd::Create {
            name,
            pg_num,
            size,
            min_size,
            rule,
            application,
        } => {
            // The defaults come from the central configuration too (the
            // file's own keys win).
            let mut cfg = ctx.config()?;
            let chain = meridian_common::central::client_chain();
            let central: Vec<(String, String, String)> = c
                .config_get(chain.clone())
                .await
                .map(|r| r.options)
                .unwrap_or_default()
                .into_iter()
                .map(|o| (o.who, o.key, o.value))
                .collect();
            meridian_common::central::apply_options(
                &mut cfg.global,
                &cfg.file_global_keys,
                &chain,
                &central,
            );
            let g = cfg.global;
            let r = c
                .mon_command(Cmd::PoolCreate(PoolCreate {
                    name: name.clone(),
                    pg_num,
                    size: size.unwrap_or(g.osd_pool_default_size),
                    min_size: min_size.unwrap_or(g.osd_pool_default_min_size),
                    crush_rule: rule.unwrap_or_default(),
                    application: application.unwrap_or_default(),
                }))
                .await?;
            ctx.print(&json!({"pool": name, "epoch": r.epoch}), || {
                r.message.clone()
            });
        }
        PoolCmd::Ls { detail } => {
            let v = c.map();
            let pools: Vec<serde_json::Value> =
                v.map.pools.iter().map(|p| pool_json(p, &v)).collect();
            ctx.print(&json!(pools), || {
                v.map
                    .pools
                    .iter()
                    .map(|p| {
                        if detail.is_some() {
                            format!(
                                "pool {} '{}' replicated size {} min_size {} crush_rule {} pg_num {} application {}\n",
                                p.id, p.name, p.size, p.min_size, pool_json(p, &v)["crush_rule"].as_str().unwrap_or(""), p.pg_num, p.application
                            )
                        } else {
                            format!("{}\n", p.name)
                        }
                    })
                    .collect()
            });
        }
        PoolCmd::Rm { name, confirm, yes } => {
            if !yes || confirm.as_deref() != Some(name.as_str()) {
                bail!(
                    "removing pool '{name}' destroys all its data; to confirm run: meridian osd pool rm {name} {name} --yes-i-really-really-mean-it"
                );
            }
            let r = c
                .mon_command(Cmd::PoolRemove(PoolRemove {
                    name: name.clone(),
                    confirm: name.clone(),
                }))
                .await?;
            ctx.print(&json!({"pool": name, "epoch": r.epoch}), || {
                r.message.clone()
            });
        }
        PoolCmd::Get { name, key } => {
            let v = c.map();
            let p = v
                .pool_by_name(&name)
                .ok_or_else(|| anyhow::anyhow!("pool '{name}' does not exist"))?;
            let all = pool_json(p, &v);
            if key == "all" {
                ctx.print(&all, || {
                    all.as_object()
                        .map(|o| o.iter().map(|(k, v)| format!("{k}: {v}\n")).collect())
                        .unwrap_or_default()
                });
            } else {
                let val = all.get(&key).cloned().ok_or_else(|| {
                    if meridian_common::compression::OPTIONS.contains(&key.as_str()) {
                        anyhow::anyhow!("option '{key}' is not set on pool '{name}'")
                    } else {
                        anyhow::anyhow!("unknown pool option {key:?}: use size, min_size, pg_num, crush_rule, application, compression_algorithm, compression_mode, compression_required_ratio or all")
                    }
                })?;
                ctx.print(&json!({ key.clone(): val.clone() }), || {
                    format!("{key}: {}", val.to_string().trim_matches('"'))
                });
            }
        }
        PoolCmd::Set { name, key, value } => {
            let r = c
                .mon_command(Cmd::PoolSet(PoolSet {
                    name: name.clone(),
                    key: key.clone(),
                    value: value.clone(),
                }))
                .await?;
            ctx.print(&json!({"pool": name, key: value, "epoch": r.epoch}), || {
                r.message.clone()
            });
        }
    }
    Ok(())
}

async fn crush(ctx: &Ctx, c: &Cluster, cmd: CrushCmd) -> anyhow::Result<()> {
    match cmd {
        CrushCmd::Rule {
            cmd:
                RuleCmd::CreateReplicated {
                    name,
                    root,
                    failure_domain,
                    class,
                },
        } => {
            let r = c
                .mon_command(Cmd::CrushRuleCreate(CrushRuleCreate {
                    name: name.clone(),
                    root,
                    failure_domain,
                    device_class: class.unwrap_or_default(),
                }))
                .await?;
            ctx.print(&json!({"rule": name, "epoch": r.epoch}), || {
                r.message.clone()
            });
        }
        CrushCmd::Rule { cmd: RuleCmd::Ls } => {
            let v = c.map();
            let crush = v
                .crush()
                .ok_or_else(|| anyhow::anyhow!("the cluster map has no CRUSH map yet"))?;
            let names: Vec<String> = crush.rules().map(|r| r.name.clone()).collect();
            ctx.print(&json!(names), || {
                names.iter().map(|n| format!("{n}\n")).collect()
            });
        }
        CrushCmd::Reweight { osd, weight } => {
            let id: u32 = osd
                .trim_start_matches("osd.")
                .parse()
                .with_context(|| format!("{osd:?} is not an OSD name like osd.3"))?;
            if !(0.0..=1_000_000.0).contains(&weight) {
                bail!("weight {weight} out of range");
            }
            let r = c
                .mon_command(Cmd::OsdCrushReweight(OsdCrushReweight {
                    osd_id: id,
                    weight: (weight * 65536.0) as u32,
                }))
                .await?;
            ctx.print(
                &json!({"osd": id, "weight": weight, "epoch": r.epoch}),
                || r.message.clone(),
            );
        }
    }
    Ok(())
}

/// Summary counts derived from a status reply.
pub(crate) struct Summary {
    osds: usize,
    up: usize,
    r#in: usize,
    /// PGs of every pool.
    pub pgs_total: usize,
    /// PG count per reported state.
    pub states: BTreeMap<String, usize>,
    /// PGs with no report from their current acting set.
    pub unreported: usize,
}

/// Counts OSDs and PG states from a status reply.
pub(crate) fn summarize(st: &StatusReply) -> Summary {
    let map = st.map.clone().unwrap_or_default();
    let view = MapView::new(map.clone());
    let reported: std::collections::HashMap<(u64, u32), &PgStat> =
        st.pg_stats.iter().map(|p| ((p.pool, p.seed), p)).collect();
    let mut states = BTreeMap::new();
    let mut unreported = 0;
    let mut total = 0;
    for pg in view.all_pgs() {
        total += 1;
        // A report counts only if it describes the PG's current acting set (so a
        // stale "active+clean" from before an `osd out` does not read as healthy).
        let acting = view.acting(pg);
        match reported.get(&(pg.pool, pg.seed)) {
            Some(p) if !acting.is_empty() && p.acting == acting => {
                *states.entry(p.state.clone()).or_insert(0) += 1
            }
            _ => unreported += 1,
        }
    }
    Summary {
        osds: map.osds.len(),
        up: map.osds.iter().filter(|o| o.up).count(),
        r#in: map.osds.iter().filter(|o| o.r#in).count(),
        pgs_total: total,
        states,
        unreported,
    }
}

/// Health checks as Ceph names them.
pub fn health_checks(st: &StatusReply) -> (String, Vec<String>) {
    let s = summarize(st);
    let mut warn = Vec::new();
    let mut err = Vec::new();
    let down: Vec<u32> = st
        .map
        .as_ref()
        .map(|m| {
            m.osds
                .iter()
                .filter(|o| !o.up && o.r#in)
                .map(|o| o.id)
                .collect()
        })
        .unwrap_or_default();
    if !down.is_empty() {
        let reasons: Vec<String> = st
            .map
            .iter()
            .flat_map(|m| m.osds.iter())
            .filter(|o| down.contains(&o.id) && !o.down_reason.is_empty())
            .map(|o| format!("osd.{} {}", o.id, o.down_reason))
            .collect();
        let mut msg = format!("OSD_DOWN: {} osds down: {:?}", down.len(), down);
        if !reasons.is_empty() {
            let _ = write!(msg, " ({})", reasons.join("; "));
        }
        warn.push(msg);
    }
    if let Some(m) = &st.map {
        let (near, backfill, full) = meridian_proto::fullness::ratios(m);
        let pct = |id: u32| {
            st.osd_usage
                .iter()
                .find(|u| u.osd_id == id && u.total_bytes > 0)
                .map(|u| format!("{:.0}%", u.used_bytes as f64 * 100.0 / u.total_bytes as f64))
                .unwrap_or_else(|| "?".into())
        };
        for (state, check, ratio, is_err) in [
            (FullState::Full, "OSD_FULL", full, true),
            (FullState::Backfillfull, "OSD_BACKFILLFULL", backfill, false),
            (FullState::Nearfull, "OSD_NEARFULL", near, false),
        ] {
            let osds: Vec<String> = m
                .osds
                .iter()
                .filter(|o| o.up && o.full_state == state as i32)
                .map(|o| format!("osd.{} ({} used)", o.id, pct(o.id)))
                .collect();
            if osds.is_empty() {
                continue;
            }
            let msg = format!(
                "{check}: {} osd(s) past the {} ratio {:.0}%: {}{}",
                osds.len(),
                check.trim_start_matches("OSD_").to_lowercase(),
                ratio * 100.0,
                osds.join(", "),
                if is_err {
                    "; writes are refused: delete data or add OSDs"
                } else {
                    ""
                }
            );
            if is_err {
                err.push(msg)
            } else {
                warn.push(msg)
            }
        }
    }
    let out_of_quorum: Vec<u64> = st
        .mons
        .iter()
        .filter(|m| !m.reachable)
        .map(|m| m.id)
        .collect();
    if !out_of_quorum.is_empty() {
        warn.push(format!("MON_DOWN: mons {out_of_quorum:?} out of quorum"));
    }
    let mut degraded = 0;
    let mut inactive = 0;
    for (state, n) in &s.states {
        if !state.starts_with("active") {
            inactive += n;
        } else if state != "active+clean" {
            degraded += n;
        }
    }
    if degraded > 0 {
        warn.push(format!("PG_DEGRADED: {degraded} pgs degraded"));
    }
    if inactive + s.unreported > 0 {
        let msg = format!(
            "PG_AVAILABILITY: {} pgs inactive (peering, recovering or not reported)",
            inactive + s.unreported
        );
        if s.up == 0 && s.osds > 0 {
            err.push(msg);
        } else {
            warn.push(msg);
        }
    }
    for (word, check) in [("down", "PG_DOWN"), ("incomplete", "PG_INCOMPLETE")] {
        let pgs: Vec<&PgStat> = st
            .pg_stats
            .iter()
            .filter(|p| p.state.split('+').any(|w| w == word))
            .collect();
        if pgs.is_empty() {
            continue;
        }
        let waiting: std::collections::BTreeSet<u32> = pgs
            .iter()
            .flat_map(|p| p.blocked_by.iter().copied())
            .collect();
        let mut msg = format!("{check}: {} pgs {word}", pgs.len());
        if !waiting.is_empty() {
            let ids: Vec<String> = waiting.iter().map(|o| format!("osd.{o}")).collect();
            let _ = write!(
                msg,
                ", waiting for {} (start them; if their data is gone for good, `meridian osd lost ID --yes-i-really-mean-it`)",
                ids.join(", ")
            );
        } else if let Some(p) = pgs.first() {
            let _ = write!(msg, " (e.g. {}.{:x}: {})", p.pool, p.seed, p.reason);
        }
        err.push(msg);
    }
    if s.osds == 0 {
        warn.push("OSD_NONE: no OSDs".into());
    }
    if let Some(m) = st.map.as_ref().filter(|m| !m.flags.is_empty()) {
        warn.push(format!("OSDMAP_FLAGS: {} flag(s) set", m.flags.join(",")));
    }
    // What gateways report of their zone (e.g. a peer zone holding its logs).
    let from_gateways: std::collections::BTreeSet<&String> = st
        .gateways
        .iter()
        .flat_map(|g| g.health_warnings.iter())
        .collect();
    warn.extend(from_gateways.into_iter().cloned());
    let word = if !err.is_empty() {
        "HEALTH_ERR"
    } else if !warn.is_empty() {
        "HEALTH_WARN"
    } else {
        "HEALTH_OK"
    };
    err.extend(warn);
    (word.to_string(), err)
}

/// `meridian status`.
pub async fn status(ctx: &Ctx) -> anyhow::Result<()> {
    let c = ctx.connect().await?;
    let st = c.status().await?;
    let s = summarize(&st);
    let (health, checks) = health_checks(&st);
    let total_used: u64 = st.osd_usage.iter().map(|u| u.used_bytes).sum();
    let total: u64 = st.osd_usage.iter().map(|u| u.total_bytes).sum();
    let map = st.map.clone().unwrap_or_default();
    let quorum: Vec<u64> = st.quorum.clone();
    let engines: BTreeMap<String, usize> = st.osd_usage.iter().fold(BTreeMap::new(), |mut m, u| {
        *m.entry(u.store_engine.clone()).or_insert(0) += 1;
        m
    });
    ctx.print(
        &json!({"fsid": st.fsid, "health": {"status": health, "checks": checks},
                "monmap": {"epoch": st.epoch, "leader": st.leader_id, "quorum": quorum, "num_mons": st.mons.len(), "raft_term": st.raft_term},
                "osdmap": {"epoch": map.epoch, "num_osds": s.osds, "num_up_osds": s.up, "num_in_osds": s.r#in, "flags": map.flags},
                "pgmap": {"num_pools": map.pools.len(), "num_pgs": s.pgs_total, "pgs_by_state": s.states, "unreported": s.unreported,
                          "bytes_used": total_used, "bytes_total": total},
                "store_engines": engines,
                "rgw": st.gateways.iter().map(|g| json!({
                    "id": g.id, "addr": g.addr, "zone": g.zone, "zonegroup": g.zonegroup,
                    "realm": g.realm, "period": g.period, "period_epoch": g.period_epoch,
                    "master": g.master, "read_only": g.read_only, "last_seen_ms_ago": g.last_seen_ms_ago,
                })).collect::<Vec<_>>()}),
        || {
            let mut o = String::new();
            let _ = writeln!(o, "  cluster:\n    id:     {}\n    health: {health}", st.fsid);
            for c in &checks {
                let _ = writeln!(o, "            {c}");
            }
            let _ = writeln!(o, "\n  services:");
            let _ = writeln!(o, "    mon: {} daemons, quorum {:?}, leader mon.{} (term {})", st.mons.len(), quorum, st.leader_id, st.raft_term);
            let _ = writeln!(o, "    osd: {} osds: {} up, {} in; epoch e{}", s.osds, s.up, s.r#in, map.epoch);
            if !map.flags.is_empty() {
                let _ = writeln!(o, "         flags {}", map.flags.join(","));
            }
            if !st.gateways.is_empty() {
                let mut zones: BTreeMap<String, Vec<String>> = BTreeMap::new();
                for g in &st.gateways {
                    let role = if g.master { "master" } else { "secondary" };
                    let ro = if g.read_only { ", read-only" } else { "" };
                    let realm = if g.realm.is_empty() { String::new() } else { format!(" of realm {}", g.realm) };
                    zones
                        .entry(format!("zone {} ({role}{ro}){realm}", g.zone))
                        .or_default()
                        .push(format!("gateway.{}", g.id));
                }
                let desc: Vec<String> = zones.into_iter().map(|(z, g)| format!("{} for {z}", g.join(", "))).collect();
                let _ = writeln!(o, "    rgw: {} daemons active: {}", st.gateways.len(), desc.join("; "));
            }
            let _ = writeln!(o, "\n  data:\n    pools:   {} pools, {} pgs", map.pools.len(), s.pgs_total);
            let _ = writeln!(
                o,
                "    usage:   {} used, {} / {} avail",
                meridian_common::size::format_bytes(total_used),
                meridian_common::size::format_bytes(total.saturating_sub(total_used)),
                meridian_common::size::format_bytes(total)
            );
            let _ = write!(o, "    pgs:     ");
            let mut first = true;
            for (state, n) in &s.states {
                if !first {
                    o.push_str("\n             ");
                }
                first = false;
                let _ = write!(o, "{n} {state}");
            }
            if s.unreported > 0 {
                if !first {
                    o.push_str("\n             ");
                }
                let _ = write!(o, "{} unknown", s.unreported);
            }
            o.push('\n');
            o
        },
    );
    Ok(())
}

/// `meridian health [detail]`: the first word is HEALTH_OK, HEALTH_WARN or HEALTH_ERR.
pub async fn health(ctx: &Ctx, detail: bool) -> anyhow::Result<()> {
    let c = match ctx.connect().await {
        Ok(c) => c,
        Err(e) => {
            ctx.print(
                &json!({"status": "HEALTH_ERR", "checks": [format!("MON_UNREACHABLE: {e:#}")]}),
                || format!("HEALTH_ERR MON_UNREACHABLE: {e:#}"),
            );
            return Ok(());
        }
    };
    let st = c.status().await?;
    let (word, checks) = health_checks(&st);
    ctx.print(&json!({"status": word, "checks": checks}), || {
        if detail {
            let mut s = word.clone();
            for c in &checks {
                s.push_str(&format!(
                    "\n[{}] {c}",
                    if word == "HEALTH_ERR" { "ERR" } else { "WRN" }
                ));
            }
            s
        } else if checks.is_empty() {
            word.clone()
        } else {
            format!(
                "{word} {}",
                checks
                    .iter()
                    .map(|c| c.split(':').next().unwrap_or(""))
                    .collect::<Vec<_>>()
                    .join("; ")
            )
        }
    });
    Ok(())
}

fn parse_pgid(s: &str) -> anyhow::Result<PgId> {
    let (p, seed) = s
        .split_once('.')
        .ok_or_else(|| anyhow::anyhow!("{s:?} is not a PG id like 1.1f"))?;
    Ok(PgId {
        pool: p.parse().with_context(|| format!("bad pool id in {s:?}"))?,
        seed: u32::from_str_radix(seed, 16).with_context(|| format!("bad PG number in {s:?}"))?,
    })
}

/// `meridian pg ...`.
pub async fn pg(ctx: &Ctx, cmd: PgCmd) -> anyhow::Result<()> {
    let c = ctx.connect().await?;
    match cmd {
        PgCmd::Stat | PgCmd::Dump => {
            let st = c.status().await?;
            let s = summarize(&st);
            if matches!(cmd, PgCmd::Stat) {
                ctx.print(&json!({"num_pgs": s.pgs_total, "pgs_by_state": s.states, "unreported": s.unreported}), || {
                    let parts: Vec<String> = s.states.iter().map(|(k, v)| format!("{v} {k}")).collect();
                    let mut line = format!("{} pgs: {}", s.pgs_total, parts.join(", "));
                    if s.unreported > 0 {
                        line.push_str(&format!(", {} unknown", s.unreported));
                    }
                    line
                });
            } else {
                let rows: Vec<serde_json::Value> = st
                    .pg_stats
                    .iter()
                    .map(|p| json!({"pgid": format!("{}.{:x}", p.pool, p.seed), "state": p.state, "acting": p.acting,
                                    "objects": p.objects, "last_update": format!("{}'{}", p.last_update_epoch, p.last_update_seq)}))
                    .collect();
                ctx.print(&json!(rows), || {
                    rows.iter()
                        .map(|r| {
                            format!(
                                "{:<8} {:<28} {:>8} {:<14} {}\n",
                                r["pgid"].as_str().unwrap_or(""),
                                r["state"].as_str().unwrap_or(""),
                                r["objects"],
                                r["last_update"].as_str().unwrap_or(""),
                                r["acting"]
                            )
                        })
                        .collect()
                });
            }
        }
        PgCmd::Scrub { pgid } => scrub_one(ctx, &c, parse_pgid(&pgid)?, false, false).await?,
        PgCmd::DeepScrub { pgid } => scrub_one(ctx, &c, parse_pgid(&pgid)?, true, false).await?,
        PgCmd::Repair { pgid } => scrub_one(ctx, &c, parse_pgid(&pgid)?, true, true).await?,
        PgCmd::Query { pgid } => super::pgquery::query(ctx, &c, parse_pgid(&pgid)?).await?,
    }
    Ok(())
}

async fn scrub_pg(
    c: &Cluster,
    pg: PgId,
    deep: bool,
    repair: bool,
) -> anyhow::Result<meridian_proto::osd::ScrubReply> {
    for _ in 0..100 {
        let v = c.map();
        let primary = *v
            .acting(pg)
            .first()
            .ok_or_else(|| anyhow::anyhow!("pg {pg} has no up OSD"))?;
        let mut osd = c.osd_direct(primary)?;
        let r = osd
            .scrub(ScrubRequest {
                pg: Some(PgRef {
                    pool: pg.pool,
                    seed: pg.seed,
                }),
                deep,
                repair,
            })
            .await;
        match r {
            Ok(r) if r.get_ref().code == ResultCode::Ok as i32 => return Ok(r.into_inner()),
            _ => tokio::time::sleep(std::time::Duration::from_millis(200)).await,
        }
    }
    bail!("pg {pg} did not become active for scrub")
}

async fn scrub_one(
    ctx: &Ctx,
    c: &Cluster,
    pg: PgId,
    deep: bool,
    repair: bool,
) -> anyhow::Result<()> {
    let r = scrub_pg(c, pg, deep, repair).await?;
    ctx.print(&json!({"pgid": pg.to_string(), "objects": r.objects, "inconsistent": r.inconsistent, "repaired": r.repaired, "errors": r.errors}), || {
        let mut s = format!("pg {pg}: {} objects, {} inconsistent, {} repaired", r.objects, r.inconsistent, r.repaired);
        for e in &r.errors {
            s.push_str(&format!("\n  {e}"));
        }
        s
    });
    Ok(())
}

/// `meridian scrub -p POOL`: every PG; exits non-zero if inconsistencies remain.
pub async fn scrub(ctx: &Ctx, a: ScrubArgs) -> anyhow::Result<()> {
    let c = ctx.connect().await?;
    let v = c.map();
    let p = v
        .pool_by_name(&a.pool)
        .cloned()
        .ok_or_else(|| anyhow::anyhow!("pool '{}' does not exist", a.pool))?;
    let (mut objects, mut inconsistent, mut repaired) = (0, 0, 0);
    let mut errors = Vec::new();
    for seed in 0..p.pg_num {
        let r = scrub_pg(&c, PgId { pool: p.id, seed }, a.deep, a.repair).await?;
        objects += r.objects;
        inconsistent += r.inconsistent;
        repaired += r.repaired;
        errors.extend(
            r.errors
                .into_iter()
                .map(|e| format!("pg {}.{seed:x}: {e}", p.id)),
        );
    }
    ctx.print(&json!({"pool": a.pool, "pgs": p.pg_num, "objects": objects, "inconsistent": inconsistent, "repaired": repaired, "errors": errors}), || {
        let mut s = format!("pool '{}': {} pgs, {objects} objects, {inconsistent} inconsistent, {repaired} repaired", a.pool, p.pg_num);
        for e in &errors {
            s.push_str(&format!("\n  {e}"));
        }
        s
    });
    if inconsistent > repaired {
        bail!(
            "{} inconsistent objects remain; run with --repair",
            inconsistent - repaired
        );
    }
    Ok(())
}
