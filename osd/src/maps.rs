//! Following the cluster map: every PG takes in every epoch (the history the
//! subscription skipped is fetched from the monitors), starts a new interval
//! when its placement changed at any of them, and copies outside the acting
//! set announce themselves to their primary, which tells them when they may
//! be removed.

use crate::daemon::Osd;
use crate::peering;
use crate::pg::intervals::{compute_intervals, placement_changed};
use crate::pg::{Pg, PgState};
use meridian_client::MapView;
use meridian_objectstore::PgId;
use meridian_proto::osd::PgNotifyRequest;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

fn cpg(id: PgId) -> meridian_client::PgId {
    meridian_client::PgId {
        pool: id.pool,
        seed: id.seed,
    }
}

/// Takes in map `view`: every PG sees every epoch since the last one taken in.
pub async fn advance(osd: &Arc<Osd>, view: Arc<MapView>) {
    let me = osd.id();
    if let Some(o) = view.osd(me)
        && (!o.up || o.boot_nonce != osd.boot_nonce)
    {
        // The monitors think we are down (or an older instance): boot again.
        if osd.fatal.borrow().is_none() {
            let osd = osd.clone();
            tokio::spawn(async move {
                if let Err(e) = osd.boot().await {
                    tracing::error!(error = %e, "re-boot failed");
                }
            });
        }
        return;
    }
    if osd.fatal.borrow().is_some() {
        return;
    }
    let processed = *osd.processed.borrow();
    let epoch = view.epoch();
    if epoch <= processed {
        return;
    }
    // The placement changes between the last map taken in and this one.
    let mut steps: Vec<Arc<MapView>> = Vec::new();
    if processed > 0 && epoch > processed + 1 {
        match fetch(osd, processed + 1, epoch - 1).await {
            Some(h) => steps.extend(h.into_iter().filter(|m| m.epoch() > processed)),
            None => return,
        }
    }
    steps.push(view.clone());

    let ids: BTreeSet<PgId> = {
        let pgs = osd.pgs.lock().unwrap_or_else(|p| p.into_inner());
        let mut ids: BTreeSet<PgId> = pgs.keys().copied().collect();
        for pool in &view.map.pools {
            for seed in 0..pool.pg_num {
                if view.pg_acting(pool, seed).contains(&me) {
                    ids.insert(PgId::new(pool.id, seed));
                }
            }
        }
        ids
    };
    let mut floor = u64::MAX;
    for id in ids {
        let Some(pool) = view.pool(id.pool).cloned() else {
            continue;
        };
        let pg = {
            let mut pgs = osd.pgs.lock().unwrap_or_else(|p| p.into_inner());
            pgs.entry(id)
                .or_insert_with(|| Arc::new(Pg::new(id, me, None)))
                .clone()
        };
        let (changed, pg_floor) = {
            let mut core = pg.core();
            // The floor of a PG no copy of ours knows anything about.
            core.peering.set_created(pool.created_epoch);
            let cur = core.peering.interval().placement.clone();
            let changed = core.peering.state() == PgState::Initial
                || placement_changed(cpg(id), &cur, steps.iter().map(|m| m.as_ref()));
            (changed, core.peering.history_floor())
        };
        floor = floor.min(pg_floor);
        if !changed {
            peering::step(osd, &pg, |m| m.on_map(&view));
            continue;
        }
        let mut maps: Vec<Arc<MapView>> = Vec::new();
        if pg_floor < epoch {
            match fetch(osd, pg_floor, epoch - 1).await {
                Some(h) => maps.extend(h.into_iter().filter(|m| m.epoch() < epoch)),
                None => return,
            }
        }
        maps.push(view.clone());
        let hist = compute_intervals(cpg(id), maps.iter().map(|m| m.as_ref()));
        tracing::debug!(pg = %id, first = hist.current_first, acting = ?hist.current.acting, past = hist.past.len(), "new interval");
        peering::step(osd, &pg, |m| m.on_new_interval(hist, &view));
    }
    remove_deleted_pools(osd, &view);
    osd.processed.send_replace(epoch);
    if floor != u64::MAX {
        osd.history.lock().await.trim(floor);
    }
    notify_strays(osd);
}

/// History between two epochs, retried while the monitors catch up (None
/// when a newer map arrived meanwhile: the caller takes that one in).
async fn fetch(osd: &Arc<Osd>, from: u64, to: u64) -> Option<Vec<Arc<MapView>>> {
    let mut warned = false;
    loop {
        let r = osd
            .history
            .lock()
            .await
            .range(&osd.mons, &osd.cred, from, to)
            .await;
        match r {
            Ok(h) => return Some(h),
            Err(e) => {
                if !warned {
                    tracing::warn!(error = %e, "map history unavailable; PGs wait for it");
                    warned = true;
                }
                tokio::time::sleep(Duration::from_millis(300)).await;
                if osd.view().epoch() > to + 1 {
                    return None;
                }
            }
        }
    }
}

fn remove_deleted_pools(osd: &Arc<Osd>, view: &MapView) {
    let gone: Vec<PgId> = {
        let mut pgs = osd.pgs.lock().unwrap_or_else(|p| p.into_inner());
        let gone: Vec<PgId> = pgs
            .keys()
            .filter(|id| view.pool(id.pool).is_none())
            .copied()
            .collect();
        for id in &gone {
            pgs.remove(id);
        }
        gone
    };
    for id in gone {
        let store = osd.store.clone();
        tokio::task::spawn_blocking(move || {
            let txn = meridian_objectstore::Transaction::new().remove_collection(id);
            if let Err(e) = store.submit(txn) {
                tracing::warn!(pg = ?id, error = %e, "removing PG of a deleted pool failed");
            }
        });
    }
}

/// Copies held outside the acting set tell their primary they exist; the
/// primary answers "remove" once the PG is clean without them.
pub fn notify_strays(osd: &Arc<Osd>) {
    let view = osd.view();
    let strays: Vec<(Arc<Pg>, u32, meridian_proto::osd::PgInfo)> = osd
        .pgs
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .values()
        .filter_map(|pg| {
            let core = pg.core();
            if core.peering.state() != PgState::Stray {
                return None;
            }
            let local = core.peering.local()?;
            let primary = core.peering.interval().placement.primary()?;
            Some((pg.clone(), primary, local.to_info(pg.id)))
        })
        .collect();
    for (pg, primary, info) in strays {
        let osd = osd.clone();
        let epoch = view.epoch();
        tokio::spawn(async move {
            let Ok(mut c) = osd.peer(primary) else {
                return;
            };
            let req = PgNotifyRequest {
                info: Some(info),
                from_osd: osd.id(),
                map_epoch: epoch,
            };
            let Ok(Ok(r)) = tokio::time::timeout(Duration::from_secs(5), c.pg_notify(req)).await
            else {
                return;
            };
            if r.into_inner().remove {
                let still_stray = pg.core().peering.state() == PgState::Stray;
                if still_stray {
                    match osd.remove_pg(pg.id).await {
                        Ok(()) => {
                            tracing::info!(pg = %pg.id, primary, "removed stray copy (the PG is clean)")
                        }
                        Err(e) => {
                            tracing::warn!(pg = %pg.id, error = %e, "removing stray copy failed")
                        }
                    }
                }
            }
        });
    }
}
