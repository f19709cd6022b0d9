//! `meridian pg query PGID`: why a PG is (not) active, from its primary —
//! its interval, past intervals, the OSDs peering waits for, what each peer
//! answered — like `ceph pg query`.

use super::Ctx;
use anyhow::bail;
use meridian_client::{Cluster, PgId};
use meridian_proto::osd::{PgDescribeReply, PgDescribeRequest, PgRef, Version};
use serde_json::json;
use std::fmt::Write as _;

fn v(x: &Option<Version>) -> String {
    x.as_ref()
        .map(|v| format!("{}'{}", v.epoch, v.seq))
        .unwrap_or_else(|| "0'0".into())
}

fn osd_list(ids: &[u32]) -> String {
    if ids.is_empty() {
        return "none".into();
    }
    ids.iter()
        .map(|o| format!("osd.{o}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Asks the PG's primary (or, with no OSD of the PG up, reports the monitors' last view).
pub async fn query(ctx: &Ctx, c: &Cluster, pg: PgId) -> anyhow::Result<()> {
    let view = c.map();
    let Some(pool) = view.pool(pg.pool) else {
        bail!(
            "pool {} does not exist (see `meridian osd pool ls`)",
            pg.pool
        );
    };
    if pg.seed >= pool.pg_num {
        bail!(
            "pool '{}' has {} PGs: {pg} does not exist",
            pool.name,
            pool.pg_num
        );
    }
    let acting = view.acting(pg);
    let Some(&primary) = acting.first() else {
        let raw = view.pg_raw(pool, pg.seed);
        let st = c.status().await?;
        let last = st
            .pg_stats
            .iter()
            .find(|s| s.pool == pg.pool && s.seed == pg.seed);
        let reason = format!(
            "no OSD of this PG is up (CRUSH maps it to {}); it is stale until one returns",
            osd_list(&raw)
        );
        ctx.print(
            &json!({"pgid": pg.to_string(), "state": "stale", "epoch": view.epoch(),
                    "up": raw, "acting": [], "reason": reason,
                    "last_reported_state": last.map(|s| s.state.clone())}),
            || format!("pg {pg}: stale\n  {reason}\n"),
        );
        return Ok(());
    };
    let mut osd = c.osd_direct(primary)?;
    let r = osd
        .pg_describe(PgDescribeRequest {
            pg: Some(PgRef {
                pool: pg.pool,
                seed: pg.seed,
            }),
        })
        .await
        .map_err(|s| anyhow::anyhow!("osd.{primary} (primary of {pg}): {}", s.message()))?
        .into_inner();
    ctx.print(&to_json(pg, &r), || to_text(pg, &r));
    Ok(())
}

fn to_json(pg: PgId, r: &PgDescribeReply) -> serde_json::Value {
    let info = r.info.clone().unwrap_or_default();
    json!({
        "pgid": pg.to_string(),
        "state": r.state,
        "epoch": r.map_epoch,
        "acting": r.acting,
        "acting_primary": r.primary,
        "info": {
            "last_update": v(&info.last_update),
            "log_tail": v(&info.log_tail),
            "last_epoch_started": info.last_epoch_started,
            "backfilling": info.backfilling,
            "history": {
                "epoch_created": info.epoch_created,
                "last_epoch_started": info.history_les,
                "last_epoch_clean": info.history_lec,
                "same_interval_since": r.same_interval_since,
            },
        },
        "recovery_state": {
            "reason": r.reason,
            "probing_osds": r.probe,
            "blocked_by": r.blocked_by,
            "down_osds_we_would_probe": r.blocked_by,
            "authoritative_osd": (r.authoritative_osd != u32::MAX).then_some(r.authoritative_osd),
            "objects_to_recover": r.objects_to_recover,
            "peers": r.peers.iter().map(|p| json!({
                "osd": p.osd, "exists": p.exists, "last_update": v(&p.last_update),
                "last_epoch_started": p.last_epoch_started, "backfilling": p.backfilling,
                "error": (!p.error.is_empty()).then(|| p.error.clone()),
            })).collect::<Vec<_>>(),
            "past_intervals": r.past_intervals.iter().map(|i| json!({
                "first": i.first, "last": i.last, "acting": i.acting,
                "primary": i.primary, "maybe_went_rw": i.maybe_went_rw,
            })).collect::<Vec<_>>(),
        },
        "ops_in_flight": r.ops_in_flight,
    })
}

fn to_text(pg: PgId, r: &PgDescribeReply) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "pg {pg}: {} (map e{}, interval since e{})",
        r.state, r.map_epoch, r.same_interval_since
    );
    let _ = writeln!(s, "  acting {:?}, primary osd.{}", r.acting, r.primary);
    if let Some(i) = &r.info {
        let _ = writeln!(
            s,
            "  last_update {}  log_tail {}  last_epoch_started {}  (PG: started {}, clean {}, created {})",
            v(&i.last_update),
            v(&i.log_tail),
            i.last_epoch_started,
            i.history_les,
            i.history_lec,
            i.epoch_created
        );
    }
    if !r.reason.is_empty() {
        let _ = writeln!(s, "  why: {}", r.reason);
    }
    if !r.blocked_by.is_empty() {
        let _ = writeln!(
            s,
            "  blocked by: {} (start one of them, or if its data is gone for good: `meridian osd lost ID --yes-i-really-mean-it`)",
            osd_list(&r.blocked_by)
        );
    }
    if !r.past_intervals.is_empty() {
        let _ = writeln!(s, "  past intervals:");
        for i in &r.past_intervals {
            let _ = writeln!(
                s,
                "    e{}..e{}  acting {:?}{}",
                i.first,
                i.last,
                i.acting,
                if i.maybe_went_rw {
                    "  may have accepted writes"
                } else {
                    ""
                }
            );
        }
    }
    if !r.peers.is_empty() {
        let _ = writeln!(s, "  peers:");
        for p in &r.peers {
            let what = if !p.error.is_empty() {
                p.error.clone()
            } else if !p.exists {
                "holds nothing".into()
            } else {
                format!(
                    "last_update {} last_epoch_started {}{}",
                    v(&p.last_update),
                    p.last_epoch_started,
                    if p.backfilling { " (backfilling)" } else { "" }
                )
            };
            let _ = writeln!(s, "    osd.{}: {what}", p.osd);
        }
    }
    if r.authoritative_osd != u32::MAX {
        let _ = writeln!(s, "  authoritative copy: osd.{}", r.authoritative_osd);
    }
    if r.objects_to_recover > 0 {
        let _ = writeln!(s, "  objects to recover: {}", r.objects_to_recover);
    }
    s
}
