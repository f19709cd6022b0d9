//! Peering and recovery, run by a PG's primary at the start of each interval.
//!
//! 1. Gather the info and log of every copy (acting members and any other up
//!    OSD that holds the PG, so data survives a remap).
//! 2. Pick the authoritative copy: newest `last_epoch_started`, then newest
//!    `last_update` (every acknowledged write is on every acting member of
//!    its interval, so any survivor of the newest interval has them all).
//! 3. Bring the primary up to date from it, then every replica: log-based
//!    recovery of the objects named after the copies' common point (which also
//!    undoes divergent, unacknowledged entries), or backfill when the log does
//!    not reach back far enough.
//! 4. Activate: every replica adopts the authoritative log; ops resume.
//! 5. Remove strays.
//!
//! Ops are refused (retryable) until activation, so recovery never races a write.

use crate::daemon::Osd;
use crate::error::OsdError;
use crate::objstate;
use crate::pg::{Pg, PgCore, Phase, Role};
use crate::pglog::{self, Ev, PgSummary, ev, pgref};
use meridian_objectstore::{ObjectKey, PgId, Transaction};
use meridian_proto::osd::{
    LogEntry, ObjectState, PgActivateRequest, PgInfo, PgListRequest, PgQueryRequest,
    PgRemoveRequest, PullRequest, PushRequest, ResultCode,
};
use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use std::time::Duration;

/// Largest batch of object data pushed in one message.
const PUSH_BATCH_BYTES: usize = 16 << 20;

/// How one copy is brought up to date.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecoveryPlan {
    /// Nothing to do.
    UpToDate,
    /// Copy these objects (log-based recovery).
    Objects(BTreeSet<String>),
    /// Copy everything and drop what the source lacks.
    Backfill,
}

/// Decides how `target` catches up with `auth` (pure; unit tested).
pub fn plan(target: Option<&PgInfo>, auth: &PgInfo) -> RecoveryPlan {
    let auth_lu = ev(&auth.last_update);
    let auth_tail = ev(&auth.log_tail);
    let auth_versions: HashSet<Ev> = auth.log.iter().map(|e| ev(&e.version)).collect();
    let Some(t) = target.filter(|t| t.exists) else {
        if auth_lu == (0, 0) {
            return RecoveryPlan::UpToDate;
        }
        if auth_tail == (0, 0) {
            return RecoveryPlan::Objects(auth.log.iter().map(|e| e.object.clone()).collect());
        }
        return RecoveryPlan::Backfill;
    };
    if t.backfilling {
        return RecoveryPlan::Backfill;
    }
    let t_lu = ev(&t.last_update);
    if t_lu == auth_lu {
        return RecoveryPlan::UpToDate;
    }
    // The newest version both logs share (or the target's head, if the auth log holds it).
    let common = if t_lu == (0, 0) || auth_versions.contains(&t_lu) {
        Some(t_lu)
    } else {
        t.log
            .iter()
            .rev()
            .map(|e| ev(&e.version))
            .find(|v| auth_versions.contains(v))
    };
    let common = match common {
        Some(c) if c >= auth_tail => c,
        Some(c) if c == (0, 0) && auth_tail == (0, 0) => c,
        _ => return RecoveryPlan::Backfill,
    };
    let mut objs: BTreeSet<String> = auth
        .log
        .iter()
        .filter(|e| ev(&e.version) > common)
        .map(|e| e.object.clone())
        .collect();
    // Divergent entries of the target (never acknowledged): undo by copying the auth state.
    objs.extend(
        t.log
            .iter()
            .filter(|e| ev(&e.version) > common && !auth_versions.contains(&ev(&e.version)))
            .map(|e| e.object.clone()),
    );
    RecoveryPlan::Objects(objs)
}

/// Spawns the peering task of a new interval.
pub fn start(osd: Arc<Osd>, pg: Arc<Pg>, interval: u64) {
    tokio::spawn(async move {
        let mut delay = Duration::from_millis(200);
        loop {
            match run(&osd, &pg, interval).await {
                Ok(()) => return,
                Err(OsdError::IntervalChanged(_)) => return,
                Err(e) => {
                    tracing::warn!(pg = %pg.id, interval, error = %e, "peering failed; retrying");
                    pg.set_routing(|r| {
                        if r.interval == interval {
                            r.phase = Phase::Incomplete
                        }
                    });
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(3));
                    if still_current(&pg, interval).is_err() {
                        return;
                    }
                }
            }
        }
    });
}

fn still_current(pg: &Pg, interval: u64) -> Result<(), OsdError> {
    let r = pg.routing();
    if r.interval != interval || r.role != Role::Primary {
        return Err(OsdError::IntervalChanged(interval));
    }
    Ok(())
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

async fn run(osd: &Arc<Osd>, pg: &Arc<Pg>, interval: u64) -> Result<(), OsdError> {
    let _slot = osd
        .recovery_slots
        .acquire()
        .await
        .map_err(|e| OsdError::Internal(e.to_string()))?;
    let mut core = pg.core.lock().await;
    still_current(pg, interval)?;
    pg.set_routing(|r| r.phase = Phase::Peering);
    let me = osd.id();
    let acting = pg.routing().acting;
    let view = osd.view();

    // 1. Gather infos.
    let mine = local_info(osd, pg.id, true).await?;
    let others: Vec<u32> = view
        .map
        .osds
        .iter()
        .filter(|o| o.up && o.id != me)
        .map(|o| o.id)
        .collect();
    let mut infos: Vec<(u32, PgInfo)> = vec![(me, mine)];
    let queries = others.iter().map(|&o| {
        let osd = osd.clone();
        let id = pg.id;
        async move {
            let r = async {
                let mut c = osd.peer(o)?;
                let req = PgQueryRequest {
                    pgs: vec![pgref(id).unwrap_or_default()],
                    map_epoch: interval,
                    from_osd: osd.id(),
                    with_log: true,
                };
                let reply = tokio::time::timeout(Duration::from_secs(5), c.pg_query(req))
                    .await
                    .map_err(|_| OsdError::Peer {
                        osd: o,
                        reason: "pg query timed out".into(),
                    })?
                    .map_err(|s| OsdError::Peer {
                        osd: o,
                        reason: s.message().to_string(),
                    })?;
                Ok::<_, OsdError>(reply.into_inner().infos.into_iter().next())
            }
            .await;
            (o, r)
        }
    });
    for (o, r) in futures::future::join_all(queries).await {
        match r {
            Ok(Some(info)) => infos.push((o, info)),
            Ok(None) => infos.push((
                o,
                PgInfo {
                    exists: false,
                    ..Default::default()
                },
            )),
            Err(e) if acting.contains(&o) => return Err(e),
            Err(e) => tracing::debug!(pg = %pg.id, error = %e, "stray probe failed"),
        }
    }
    still_current(pg, interval)?;

    // 2. Authoritative copy.
    let auth_idx = infos
        .iter()
        .enumerate()
        .filter(|(_, (_, i))| i.exists && !i.backfilling)
        .max_by_key(|(_, (o, i))| (i.last_epoch_started, ev(&i.last_update), *o == me))
        .map(|(idx, _)| idx);
    let (auth_osd, auth) = match auth_idx {
        Some(i) => (infos[i].0, infos[i].1.clone()),
        None => (
            me,
            PgInfo {
                pg: pgref(pg.id),
                exists: true,
                ..Default::default()
            },
        ),
    };

    // 3a. The primary first.
    let my_info = infos.iter().find(|(o, _)| *o == me).map(|(_, i)| i.clone());
    if auth_osd != me {
        let p = plan(my_info.as_ref(), &auth);
        if p != RecoveryPlan::UpToDate {
            tracing::info!(pg = %pg.id, from = auth_osd, plan = ?plan_kind(&p), "recovering primary");
            pg.set_routing(|r| r.phase = phase_of(&p));
            recover_self(osd, pg.id, auth_osd, interval, &p).await?;
        }
    }
    // Adopt the authoritative log locally.
    let summary = PgSummary {
        last_update: ev(&auth.last_update),
        log_tail: ev(&auth.log_tail),
        last_epoch_started: interval,
        backfilling: false,
    };
    {
        let (id, log, s) = (pg.id, auth.log.clone(), summary.clone());
        osd.blocking(move |st| {
            let mut txn = Transaction::new().touch(&ObjectKey::meta(id));
            txn = pglog::replace_log(txn, id, &log);
            txn = pglog::put_info(txn, id, &s);
            st.submit(txn).map_err(Into::into)
        })
        .await?;
    }

    // 3b. Every replica.
    for &r in acting.iter().filter(|&&o| o != me) {
        still_current(pg, interval)?;
        let info = infos.iter().find(|(o, _)| *o == r).map(|(_, i)| i.clone());
        let p = plan(info.as_ref(), &auth);
        let mut keep_only = Vec::new();
        if p != RecoveryPlan::UpToDate {
            tracing::info!(pg = %pg.id, replica = r, plan = ?plan_kind(&p), "recovering replica");
            pg.set_routing(|rt| rt.phase = phase_of(&p));
        }
        match &p {
            RecoveryPlan::UpToDate => {}
            RecoveryPlan::Objects(names) => {
                push_objects(osd, pg.id, r, interval, names.iter().cloned()).await?
            }
            RecoveryPlan::Backfill => {
                keep_only = list_local(osd, pg.id).await?;
                push_objects(osd, pg.id, r, interval, keep_only.iter().cloned()).await?;
            }
        }
        let req = PgActivateRequest {
            pg: pgref(pg.id),
            map_epoch: interval,
            from_osd: me,
            log: auth.log.clone(),
            last_update: auth.last_update,
            log_tail: auth.log_tail,
            prune_to_keep_only: p == RecoveryPlan::Backfill,
            keep_only,
        };
        let mut c = osd.peer(r)?;
        let reply = c
            .pg_activate(req)
            .await
            .map_err(|s| OsdError::Peer {
                osd: r,
                reason: s.message().to_string(),
            })?
            .into_inner();
        if reply.code != ResultCode::Ok as i32 {
            return Err(OsdError::Peer {
                osd: r,
                reason: format!("activate refused: {}", reply.message),
            });
        }
    }
    still_current(pg, interval)?;

    // 4. Active.
    reload_core(osd, pg.id, &mut core, summary, &auth.log).await?;
    pg.set_routing(|r| r.phase = Phase::Active);
    tracing::debug!(pg = %pg.id, interval, ?acting, "pg active");
    drop(core);

    // 5. Strays: copies outside the acting set are redundant now.
    for (o, i) in infos
        .iter()
        .filter(|(o, i)| i.exists && !acting.contains(o))
    {
        if let Ok(mut c) = osd.peer(*o) {
            let _ = c
                .pg_remove(PgRemoveRequest {
                    pg: pgref(pg.id),
                    map_epoch: interval,
                })
                .await;
            tracing::debug!(pg = %pg.id, stray = o, lu = ?ev(&i.last_update), "removed stray copy");
        }
    }
    Ok(())
}

fn plan_kind(p: &RecoveryPlan) -> String {
    match p {
        RecoveryPlan::UpToDate => "up-to-date".into(),
        RecoveryPlan::Objects(o) => format!("log recovery of {} objects", o.len()),
        RecoveryPlan::Backfill => "backfill".into(),
    }
}

fn phase_of(p: &RecoveryPlan) -> Phase {
    match p {
        RecoveryPlan::Backfill => Phase::Backfilling,
        _ => Phase::Recovering,
    }
}

/// Rebuilds the in-memory core (reqids for resent ops, log window, object count).
pub async fn reload_core(
    osd: &Osd,
    id: PgId,
    core: &mut PgCore,
    summary: PgSummary,
    log: &[LogEntry],
) -> Result<(), OsdError> {
    core.summary = summary;
    core.log_versions = log.iter().map(|e| ev(&e.version)).collect();
    core.reqids = log
        .iter()
        .filter_map(|e| {
            e.reqid
                .as_ref()
                .map(|r| ((r.client, r.tid), (ev(&e.version), e.user_version)))
        })
        .collect();
    core.objects = list_local(osd, id).await?.len() as u64;
    Ok(())
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

/// Pushes local object states to `target` in bounded batches.
async fn push_objects(
    osd: &Arc<Osd>,
    id: PgId,
    target: u32,
    interval: u64,
    names: impl Iterator<Item = String>,
) -> Result<(), OsdError> {
    let mut batch: Vec<ObjectState> = Vec::new();
    let mut bytes = 0usize;
    let c = osd.peer(target)?;
    let flush = |batch: Vec<ObjectState>| {
        let req = PushRequest {
            pg: pgref(id),
            map_epoch: interval,
            from_osd: osd.id(),
            objects: batch,
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
    for name in names {
        let key = ObjectKey::new(id, name);
        let state = osd.blocking(move |s| objstate::read_state(s, &key)).await?;
        bytes += state.data.len();
        batch.push(state);
        if bytes >= PUSH_BATCH_BYTES || batch.len() >= 256 {
            flush(std::mem::take(&mut batch)).await?;
            bytes = 0;
        }
    }
    if !batch.is_empty() {
        flush(batch).await?;
    }
    Ok(())
}

/// Brings the primary's own copy up to date from `source`.
async fn recover_self(
    osd: &Arc<Osd>,
    id: PgId,
    source: u32,
    interval: u64,
    p: &RecoveryPlan,
) -> Result<(), OsdError> {
    let names: Vec<String> = match p {
        RecoveryPlan::UpToDate => return Ok(()),
        RecoveryPlan::Objects(n) => n.iter().cloned().collect(),
        RecoveryPlan::Backfill => {
            let mut all = Vec::new();
            let mut after = String::new();
            let mut c = osd.peer(source)?;
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
                        osd: source,
                        reason: s.message().to_string(),
                    })?
                    .into_inner();
                if let Some(l) = r.objects.last() {
                    after = l.name.clone();
                }
                all.extend(r.objects.into_iter().map(|o| o.name));
                if !r.more {
                    break;
                }
            }
            // Drop local objects the source does not have.
            let keep: HashSet<String> = all.iter().cloned().collect();
            let local = list_local(osd, id).await?;
            let extra: Vec<String> = local.into_iter().filter(|n| !keep.contains(n)).collect();
            if !extra.is_empty() {
                osd.blocking(move |s| {
                    let mut txn = Transaction::new();
                    for n in &extra {
                        txn = txn.remove(&ObjectKey::new(id, n.clone()));
                    }
                    s.submit(txn).map_err(Into::into)
                })
                .await?;
            }
            all
        }
    };
    let mut c = osd.peer(source)?;
    for name in names {
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
                reason: format!("pull of {name} failed ({})", r.code),
            });
        }
        let state = r.state.unwrap_or_default();
        let key = ObjectKey::new(id, name);
        osd.blocking(move |s| {
            s.submit(objstate::write_state(Transaction::new(), &key, &state))
                .map_err(Into::into)
        })
        .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pglog::ver;
    use meridian_proto::osd::LogEntry;

    fn entry(e: u64, s: u64, obj: &str) -> LogEntry {
        LogEntry {
            version: ver((e, s)),
            object: obj.into(),
            ..Default::default()
        }
    }
    fn info(lu: Ev, tail: Ev, log: Vec<LogEntry>) -> PgInfo {
        PgInfo {
            exists: true,
            last_update: ver(lu),
            log_tail: ver(tail),
            log,
            ..Default::default()
        }
    }

    #[test]
    fn up_to_date_copy_needs_nothing() {
        let a = info((3, 2), (0, 0), vec![entry(3, 1, "a"), entry(3, 2, "b")]);
        assert_eq!(plan(Some(&a.clone()), &a), RecoveryPlan::UpToDate);
    }

    #[test]
    fn lagging_copy_recovers_only_newer_objects() {
        let auth = info(
            (4, 3),
            (0, 0),
            vec![entry(3, 1, "a"), entry(3, 2, "b"), entry(4, 3, "c")],
        );
        let t = info((3, 1), (0, 0), vec![entry(3, 1, "a")]);
        assert_eq!(
            plan(Some(&t), &auth),
            RecoveryPlan::Objects(["b".to_string(), "c".to_string()].into_iter().collect())
        );
    }

    #[test]
    fn divergent_entries_are_undone() {
        let auth = info(
            (5, 3),
            (0, 0),
            vec![entry(3, 1, "a"), entry(5, 2, "x"), entry(5, 3, "y")],
        );
        // The target logged (3,2) on "d" that no one else has: it must be replaced too.
        let t = info((3, 2), (0, 0), vec![entry(3, 1, "a"), entry(3, 2, "d")]);
        assert_eq!(
            plan(Some(&t), &auth),
            RecoveryPlan::Objects(["d", "x", "y"].iter().map(|s| s.to_string()).collect())
        );
    }

    #[test]
    fn copy_behind_the_log_tail_is_backfilled() {
        let auth = info((9, 900), (9, 100), vec![entry(9, 101, "a")]);
        let t = info((3, 5), (0, 0), vec![entry(3, 5, "z")]);
        assert_eq!(plan(Some(&t), &auth), RecoveryPlan::Backfill);
        assert_eq!(plan(None, &auth), RecoveryPlan::Backfill);
    }

    #[test]
    fn missing_copy_with_complete_log_recovers_from_log() {
        let auth = info((2, 2), (0, 0), vec![entry(2, 1, "a"), entry(2, 2, "b")]);
        assert_eq!(
            plan(None, &auth),
            RecoveryPlan::Objects(["a", "b"].iter().map(|s| s.to_string()).collect())
        );
        let empty = info((0, 0), (0, 0), vec![]);
        assert_eq!(plan(None, &empty), RecoveryPlan::UpToDate);
    }
}
