//! Carries out the PG state machine's effects (`crate::pg::Effect`): queries
//! to peers, up_thru requests, recovery pulls and pushes, writes of the
//! adopted log, activations and stray removal; each result goes back to the
//! machine as an event tagged with the activation that asked for it.

use crate::daemon::Osd;
use crate::error::OsdError;
use crate::objstate;
use crate::pg::authority::RecoveryPlan;
use crate::pg::{Effect, OpPipeline, PeeringState, Pg};
use crate::pglog::{self, PgHistory, PgSummary, pgref};
use meridian_objectstore::{ObjectKey, PgId, Transaction};
use meridian_proto::osd::{
    LogEntry, ObjectState, PgInfo, PgListRequest, PgQueryRequest, PgRemoveRequest, PullRequest,
    PushRequest, ResultCode,
};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

/// Largest batch of object data pushed in one message.
const PUSH_BATCH_BYTES: usize = 16 << 20;
/// How long one peer query may take.
const QUERY_TIMEOUT: Duration = Duration::from_secs(5);

/// Applies `f` to the PG's state machine and carries out what it asks.
pub fn step(osd: &Arc<Osd>, pg: &Arc<Pg>, f: impl FnOnce(&mut PeeringState) -> Vec<Effect>) {
    let (activation, effects) = {
        let mut core = pg.core();
        let fx = f(&mut core.peering);
        (core.peering.activation(), fx)
    };
    dispatch(osd, pg, activation, effects);
}

/// Carries out effects emitted under `activation`.
pub fn dispatch(osd: &Arc<Osd>, pg: &Arc<Pg>, activation: u64, effects: Vec<Effect>) {
    for e in effects {
        let (osd, pg) = (osd.clone(), pg.clone());
        match e {
            Effect::Query { osd: peer, delay } => {
                tokio::spawn(async move {
                    if !delay.is_zero() {
                        tokio::time::sleep(delay).await;
                    }
                    let r = query(&osd, &pg, peer).await;
                    step(&osd, &pg, |m| match r {
                        Ok(info) => m.on_info(activation, peer, info),
                        Err(e) => m.on_query_failed(activation, peer, e.to_string()),
                    });
                });
            }
            Effect::RequestUpThru { epoch } => osd.request_up_thru(epoch),
            Effect::Recover {
                target,
                source,
                plan,
            } => {
                tokio::spawn(async move {
                    let r = if target == osd.id() {
                        recover_self(&osd, &pg, source, activation, &plan).await
                    } else {
                        push_to(&osd, &pg, target, activation, &plan).await
                    };
                    step(&osd, &pg, |m| match r {
                        Ok(()) => m.on_recovered(activation, target),
                        Err(e) => {
                            tracing::warn!(pg = %pg.id, target, source, error = %e, "recovery failed");
                            m.on_step_failed(activation, target, e.to_string())
                        }
                    });
                });
            }
            Effect::AdoptLog { log, summary } => {
                tokio::spawn(async move {
                    let r = adopt(&osd, &pg, activation, log, summary.clone()).await;
                    step(&osd, &pg, |m| match r {
                        Ok(()) => m.on_adopted(activation, summary),
                        Err(e) => m.on_step_failed(activation, osd.id(), e.to_string()),
                    });
                });
            }
            Effect::Activate { osd: peer, req } => {
                tokio::spawn(async move {
                    let r = async {
                        let mut c = osd.peer(peer)?;
                        let reply = tokio::time::timeout(QUERY_TIMEOUT * 2, c.pg_activate(req))
                            .await
                            .map_err(|_| OsdError::Peer {
                                osd: peer,
                                reason: "activation timed out".into(),
                            })?
                            .map_err(|s| OsdError::Peer {
                                osd: peer,
                                reason: s.message().to_string(),
                            })?
                            .into_inner();
                        if reply.code != ResultCode::Ok as i32 {
                            return Err(OsdError::Peer {
                                osd: peer,
                                reason: format!("activation refused: {}", reply.message),
                            });
                        }
                        Ok(())
                    }
                    .await;
                    step(&osd, &pg, |m| match r {
                        Ok(()) => m.on_activated(activation, peer),
                        Err(e) => m.on_step_failed(activation, peer, e.to_string()),
                    });
                });
            }
            Effect::PersistInfo { history } => {
                tokio::spawn(async move {
                    if let Err(e) = persist_history(&osd, &pg, activation, history).await {
                        tracing::warn!(pg = %pg.id, error = %e, "persisting PG history failed");
                    }
                });
            }
            Effect::RemoveStray { osd: peer } => {
                tokio::spawn(async move {
                    let interval = pg.core().peering.interval().first;
                    if let Ok(mut c) = osd.peer(peer) {
                        match c
                            .pg_remove(PgRemoveRequest {
                                pg: pgref(pg.id),
                                map_epoch: interval,
                            })
                            .await
                        {
                            Ok(_) => {
                                tracing::debug!(pg = %pg.id, stray = peer, "removed stray copy")
                            }
                            Err(s) => {
                                tracing::debug!(pg = %pg.id, stray = peer, error = %s.message(), "stray not removed")
                            }
                        }
                    }
                });
            }
            Effect::RetryAfter { delay } => {
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    let view = osd.view();
                    step(&osd, &pg, |m| m.on_retry(activation, &view));
                });
            }
        }
    }
}

/// The info and log of `peer`'s copy (this OSD's own from its store).
async fn query(osd: &Arc<Osd>, pg: &Arc<Pg>, peer: u32) -> Result<PgInfo, OsdError> {
    if peer == osd.id() {
        pg.drain_local().await;
        return local_info(osd, pg.id, true).await;
    }
    let interval = pg.core().peering.interval().first;
    let mut c = osd.peer(peer)?;
    let req = PgQueryRequest {
        pgs: vec![pgref(pg.id).unwrap_or_default()],
        map_epoch: interval,
        from_osd: osd.id(),
        with_log: true,
    };
    let reply = tokio::time::timeout(QUERY_TIMEOUT, c.pg_query(req))
        .await
        .map_err(|_| OsdError::Peer {
            osd: peer,
            reason: "pg query timed out".into(),
        })?
        .map_err(|s| OsdError::Peer {
            osd: peer,
            reason: s.message().to_string(),
        })?;
    Ok(reply
        .into_inner()
        .infos
        .into_iter()
        .next()
        .unwrap_or(PgInfo {
            pg: pgref(pg.id),
            exists: false,
            ..Default::default()
        }))
}

/// The local copy's info with its log (`exists=false` if absent).
pub async fn local_info(osd: &Osd, pg: PgId, with_log: bool) -> Result<PgInfo, OsdError> {
    osd.blocking(move |s| {
        let Some(sum) = pglog::load_summary(s, pg)? else {
            return Ok(PgInfo {
                pg: pgref(pg),
                exists: false,
                ..Default::default()
            });
        };
        let mut info = sum.to_info(pg);
        if with_log {
            info.log = pglog::load_log(s, pg)?;
        }
        Ok(info)
    })
    .await
}

/// Submits `txn` for the PG in order with its ops and waits for the commit.
pub async fn commit_ordered(osd: &Osd, pg: &Pg, txn: Transaction) -> Result<(), OsdError> {
    let queued = {
        let _order = pg.submit.lock().await;
        pg.queue(&osd.store, txn).await?
    };
    let r = queued.wait().await;
    if let Err(e) = &r {
        osd.check_store(e);
    }
    r
}

/// Writes the authoritative log and the new summary to the local copy, and
/// opens the op pipeline of this activation.
async fn adopt(
    osd: &Arc<Osd>,
    pg: &Arc<Pg>,
    activation: u64,
    log: Vec<LogEntry>,
    summary: PgSummary,
) -> Result<(), OsdError> {
    pg.drain_local().await;
    let id = pg.id;
    let mut txn = Transaction::new().touch(&ObjectKey::meta(id));
    txn = pglog::replace_log(txn, id, &log);
    txn = pglog::put_info(txn, id, &summary);
    commit_ordered(osd, pg, txn).await?;
    let objects = list_local(osd, id).await?.len() as u64;
    let mut core = pg.core();
    if core.peering.activation() != activation {
        return Err(OsdError::IntervalChanged(activation));
    }
    let first = core.peering.interval().first;
    core.ops = OpPipeline::new(
        activation,
        first,
        summary.clone(),
        &log,
        osd.tunables.max_pg_log_entries,
    );
    core.objects = objects;
    pg.applied.send_replace(summary.last_update);
    Ok(())
}

/// Records a newer PG history in the pipeline's summary and on disk.
async fn persist_history(
    osd: &Arc<Osd>,
    pg: &Arc<Pg>,
    activation: u64,
    history: PgHistory,
) -> Result<(), OsdError> {
    let queued = {
        // Under the order lock: the summary is the newest op's.
        let _order = pg.submit.lock().await;
        let summary = {
            let mut core = pg.core();
            if core.ops.activation() != activation {
                return Ok(());
            }
            core.ops.set_history(history);
            let s = core.ops.summary().clone();
            core.peering.set_local(Some(s.clone()));
            s
        };
        pg.queue(
            &osd.store,
            pglog::put_info(Transaction::new(), pg.id, &summary),
        )
        .await?
    };
    queued.wait().await
}

/// Every object name of the local copy.
pub async fn list_local(osd: &Osd, id: PgId) -> Result<Vec<String>, OsdError> {
    osd.blocking(move |s| {
        let mut out = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = s.list_objects(id, after.as_deref(), 1024)?;
            let n = page.len();
            after = page.last().cloned();
            out.extend(page);
            if n < 1024 {
                return Ok(out);
            }
        }
    })
    .await
}

/// Every object name of `peer`'s copy.
async fn list_remote(osd: &Arc<Osd>, id: PgId, peer: u32) -> Result<Vec<String>, OsdError> {
    let mut all = Vec::new();
    let mut after = String::new();
    let mut c = osd.peer(peer)?;
    loop {
        let r = c
            .pg_list(PgListRequest {
                pg: pgref(id),
                start_after: after.clone(),
                max: 1000,
                deep: false,
            })
            .await
            .map_err(|s| OsdError::Peer {
                osd: peer,
                reason: s.message().to_string(),
            })?
            .into_inner();
        if r.code != ResultCode::Ok as i32 {
            return Err(OsdError::Peer {
                osd: peer,
                reason: format!("pg list refused ({})", r.code),
            });
        }
        if let Some(l) = r.objects.last() {
            after = l.name.clone();
        }
        all.extend(r.objects.into_iter().map(|o| o.name));
        if !r.more {
            return Ok(all);
        }
    }
}

/// Pushes local object states (and deletions of `extra`) to `target`.
async fn push_states(
    osd: &Arc<Osd>,
    id: PgId,
    target: u32,
    interval: u64,
    names: impl Iterator<Item = String>,
    start_backfill: bool,
) -> Result<(), OsdError> {
    let c = osd.peer(target)?;
    let mut batch: Vec<ObjectState> = Vec::new();
    let mut bytes = 0usize;
    let mut first = start_backfill;
    let send = |batch: Vec<ObjectState>, start: bool| {
        let req = PushRequest {
            pg: pgref(id),
            map_epoch: interval,
            from_osd: osd.id(),
            objects: batch,
            start_backfill: start,
        };
        let mut c = c.clone();
        let (n, b) = (
            req.objects.len() as u64,
            req.objects.iter().map(|o| o.data.len() as u64).sum::<u64>(),
        );
        async move {
            metrics::counter!("meridian_osd_recovery_pushed_objects_total").increment(n);
            metrics::counter!("meridian_osd_recovery_pushed_bytes_total").increment(b);
            let r = c
                .push(req)
                .await
                .map_err(|s| OsdError::Peer {
                    osd: target,
                    reason: s.message().to_string(),
                })?
                .into_inner();
            if r.code != ResultCode::Ok as i32 {
                return Err(OsdError::Peer {
                    osd: target,
                    reason: format!("push refused: {}", r.message),
                });
            }
            Ok(())
        }
    };
    if first {
        // Mark the copy backfilling before any object lands in it.
        send(Vec::new(), true).await?;
        first = false;
    }
    for name in names {
        let key = ObjectKey::new(id, name);
        let state = osd.blocking(move |s| objstate::read_state(s, &key)).await?;
        bytes += state.data.len();
        batch.push(state);
        if bytes >= PUSH_BATCH_BYTES || batch.len() >= 256 {
            send(std::mem::take(&mut batch), first).await?;
            bytes = 0;
        }
    }
    if !batch.is_empty() {
        send(batch, first).await?;
    }
    Ok(())
}

/// Brings replica `target` up to date from this OSD's copy.
async fn push_to(
    osd: &Arc<Osd>,
    pg: &Arc<Pg>,
    target: u32,
    activation: u64,
    plan: &RecoveryPlan,
) -> Result<(), OsdError> {
    let (_slot, interval) = recovery_slot(osd, pg, activation).await?;
    tracing::info!(pg = %pg.id, replica = target, plan = %plan.describe(), "recovering replica");
    match plan {
        RecoveryPlan::UpToDate => Ok(()),
        RecoveryPlan::Objects(names) => {
            push_states(osd, pg.id, target, interval, names.iter().cloned(), false).await
        }
        RecoveryPlan::Backfill => {
            let mine = list_local(osd, pg.id).await?;
            let keep: BTreeSet<&String> = mine.iter().collect();
            let theirs = list_remote(osd, pg.id, target).await?;
            // What the target holds and we do not is pushed as "absent".
            let extra: Vec<String> = theirs.into_iter().filter(|n| !keep.contains(n)).collect();
            push_states(
                osd,
                pg.id,
                target,
                interval,
                mine.iter().cloned().chain(extra),
                true,
            )
            .await
        }
    }
}

/// Waits for one of the OSD's recovery slots (they bound concurrent
/// recovery), then checks the activation is still current; returns the
/// slot and the interval's first epoch.
async fn recovery_slot<'a>(
    osd: &'a Osd,
    pg: &Pg,
    activation: u64,
) -> Result<(tokio::sync::SemaphorePermit<'a>, u64), OsdError> {
    let slot = osd
        .recovery_slots
        .acquire()
        .await
        .map_err(|e| OsdError::Internal(e.to_string()))?;
    Ok((slot, current(pg, activation)?))
}

fn current(pg: &Pg, activation: u64) -> Result<u64, OsdError> {
    let core = pg.core();
    if core.peering.activation() != activation {
        return Err(OsdError::IntervalChanged(activation));
    }
    Ok(core.peering.interval().first)
}

/// Brings this OSD's copy up to date from `source`.
async fn recover_self(
    osd: &Arc<Osd>,
    pg: &Arc<Pg>,
    source: u32,
    activation: u64,
    plan: &RecoveryPlan,
) -> Result<(), OsdError> {
    let (_slot, interval) = recovery_slot(osd, pg, activation).await?;
    tracing::info!(pg = %pg.id, from = source, plan = %plan.describe(), "recovering primary");
    let id = pg.id;
    let names: Vec<String> = match plan {
        RecoveryPlan::UpToDate => return Ok(()),
        RecoveryPlan::Objects(n) => n.iter().cloned().collect(),
        RecoveryPlan::Backfill => {
            // Mark this copy backfilling first: if we stop half way it must
            // never be taken as authoritative.
            pg.drain_local().await;
            let mut s = osd
                .blocking(move |st| Ok(pglog::load_summary(st, id)?.unwrap_or_default()))
                .await?;
            s.backfilling = true;
            commit_ordered(
                osd,
                pg,
                pglog::put_info(Transaction::new().touch(&ObjectKey::meta(id)), id, &s),
            )
            .await?;
            pg.core().peering.set_local(Some(s));
            let all = list_remote(osd, id, source).await?;
            let keep: BTreeSet<&String> = all.iter().collect();
            let extra: Vec<String> = list_local(osd, id)
                .await?
                .into_iter()
                .filter(|n| !keep.contains(n))
                .collect();
            if !extra.is_empty() {
                let mut txn = Transaction::new();
                for n in &extra {
                    txn = txn.remove(&ObjectKey::new(id, n.clone()));
                }
                commit_ordered(osd, pg, txn).await?;
            }
            all
        }
    };
    let mut c = osd.peer(source)?;
    for name in names {
        current(pg, activation)?;
        let r = c
            .pull(PullRequest {
                pg: pgref(id),
                map_epoch: interval,
                object: name.clone(),
            })
            .await
            .map_err(|s| OsdError::Peer {
                osd: source,
                reason: s.message().to_string(),
            })?
            .into_inner();
        if r.code != ResultCode::Ok as i32 {
            return Err(OsdError::Peer {
                osd: source,
                reason: format!(
                    "pull of {name} failed ({})",
                    ResultCode::try_from(r.code)
                        .map(|c| c.as_str_name())
                        .unwrap_or("unknown")
                ),
            });
        }
        let state = r.state.unwrap_or_default();
        let key = ObjectKey::new(id, name);
        commit_ordered(
            osd,
            pg,
            objstate::write_state(Transaction::new(), &key, &state),
        )
        .await?;
    }
    Ok(())
}
