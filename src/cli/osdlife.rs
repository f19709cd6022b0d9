//! An OSD's life cycle as an operator drives it: cluster flags for
//! maintenance (`osd set noout`), and retiring an OSD (`osd safe-to-destroy`,
//! `osd purge`).

use super::Ctx;
use super::admin::summarize;
use anyhow::bail;
use meridian_client::{Cluster, MapView};
use meridian_proto::mon::mon_command::Cmd;
use meridian_proto::mon::{OsdPurge, OsdSetFlag, StatusReply};
use serde_json::json;

/// `osd set FLAG` / `osd unset FLAG`.
pub async fn set_flag(ctx: &Ctx, c: &Cluster, flag: &str, set: bool) -> anyhow::Result<()> {
    let r = c
        .mon_command(Cmd::OsdSetFlag(OsdSetFlag {
            flag: flag.into(),
            set,
        }))
        .await?;
    ctx.print(
        &json!({"flag": flag, "set": set, "epoch": r.epoch, "message": r.message}),
        || r.message.clone(),
    );
    Ok(())
}

/// Why destroying `id` now would reduce durability (empty: it is safe).
/// Safe means: no PG maps to it any more, and every PG is active+clean
/// with a report from its current acting set, so each object has its full
/// set of copies elsewhere.
pub fn destroy_blockers(st: &StatusReply, id: u32) -> Vec<String> {
    let map = st.map.clone().unwrap_or_default();
    if !map.osds.iter().any(|o| o.id == id) {
        return Vec::new();
    }
    let view = MapView::new(map);
    let mapped = view
        .all_pgs()
        .filter(|pg| {
            view.pool(pg.pool)
                .is_some_and(|p| view.pg_raw(p, pg.seed).contains(&id))
        })
        .count();
    let mut why = Vec::new();
    if mapped > 0 {
        why.push(format!(
            "osd.{id} has {mapped} pgs currently mapped to it (mark it out and wait)"
        ));
    }
    let s = summarize(st);
    let not_clean: usize = s
        .states
        .iter()
        .filter(|(state, _)| state.as_str() != "active+clean")
        .map(|(_, n)| n)
        .sum::<usize>()
        + s.unreported;
    if not_clean > 0 {
        why.push(format!(
            "{not_clean} of {} pgs are not active+clean yet (data is still moving)",
            s.pgs_total
        ));
    }
    why
}

/// `osd safe-to-destroy ID...`: fails (exit 1) unless every OSD named is safe.
pub async fn safe_to_destroy(ctx: &Ctx, c: &Cluster, ids: &[u32]) -> anyhow::Result<()> {
    if ids.is_empty() {
        bail!("name at least one OSD id");
    }
    let st = c.status().await?;
    let mut safe = Vec::new();
    let mut blocked = serde_json::Map::new();
    for &id in ids {
        let why = destroy_blockers(&st, id);
        if why.is_empty() {
            safe.push(id);
        } else {
            blocked.insert(format!("osd.{id}"), json!(why));
        }
    }
    ctx.print(&json!({"safe_to_destroy": safe, "unsafe": blocked}), || {
        if safe.is_empty() {
            String::new()
        } else {
            format!(
                "OSD(s) {} are safe to destroy without reducing data durability.",
                list(&safe)
            )
        }
    });
    if !blocked.is_empty() {
        let reasons: Vec<String> = blocked
            .values()
            .flat_map(|v| v.as_array().cloned().unwrap_or_default())
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect();
        bail!("not safe to destroy: {}", reasons.join("; "));
    }
    Ok(())
}

/// `osd purge ID --yes-i-really-mean-it [--force]`.
pub async fn purge(ctx: &Ctx, c: &Cluster, id: u32, yes: bool, force: bool) -> anyhow::Result<()> {
    if !yes {
        bail!(
            "purging osd.{id} removes it from the map, CRUSH and auth for good; \
             repeat with --yes-i-really-mean-it if that is what you want"
        );
    }
    if !force {
        let why = destroy_blockers(&c.status().await?, id);
        if !why.is_empty() {
            bail!(
                "osd.{id} is not safe to destroy: {} (--force purges anyway and loses what only it holds)",
                why.join("; ")
            );
        }
    }
    let r = c
        .mon_command(Cmd::OsdPurge(OsdPurge { osd_id: id }))
        .await?;
    ctx.print(
        &json!({"osd": id, "purged": true, "epoch": r.epoch, "message": r.message}),
        || r.message.clone(),
    );
    Ok(())
}

fn list(ids: &[u32]) -> String {
    ids.iter().map(u32::to_string).collect::<Vec<_>>().join(",")
}
