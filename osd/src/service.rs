//! The OsdService gRPC handlers: client ops, replication, peering, recovery
//! transfers, listing and scrub.

use crate::daemon::Osd;
use crate::error::OsdError;
use crate::objstate;
use crate::pg::{OpPipeline, PgState};
use crate::pglog::{self, ev, pgid, pgref};
use crate::{exec, peering};
use meridian_auth::Perms;
use meridian_auth::access::{Caller, Need, Service};
use meridian_auth::grpc::caller_of;
use meridian_objectstore::{ObjectKey, PgId, Transaction};
use meridian_proto::osd::osd_service_server::OsdService;
use meridian_proto::osd::*;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tonic::{Request, Response, Status};

/// How long a rep op waits for its predecessor entry before refusing.
const REP_OP_ORDER_WAIT: Duration = Duration::from_secs(5);

/// The gRPC face of an OSD.
#[derive(Clone)]
pub struct OsdServer {
    osd: Arc<Osd>,
}

impl OsdServer {
    /// Wraps the running OSD.
    pub fn new(osd: Arc<Osd>) -> Self {
        Self { osd }
    }

    /// Refuses a caller whose `osd` caps do not cover `need` on `pool`
    /// (by id; a pool this OSD does not know yet matches only
    /// unrestricted grants).
    fn require_pool<T>(
        &self,
        req: &Request<T>,
        method: &str,
        need: Perms,
        pool: u64,
    ) -> Result<(), Status> {
        let caller = caller_of(req);
        if !matches!(caller, Caller::Entity { .. }) {
            return Ok(());
        }
        let view = self.osd.view();
        let name = view.pool(pool).map(|p| p.name.as_str());
        caller
            .check(method, Need::Perms(Service::Osd, need), name)
            .map_err(Status::permission_denied)
    }

    /// True if `from` is the primary of `pg` in our map (after catching up to `epoch`).
    async fn sender_is_primary(&self, pg: PgId, from: u32, epoch: u64) -> bool {
        self.osd.wait_for_epoch(epoch, Duration::from_secs(3)).await;
        let view = self.osd.view();
        view.acting(meridian_client::PgId {
            pool: pg.pool,
            seed: pg.seed,
        })
        .first()
        .copied()
            == Some(from)
    }
}

fn code_of(e: &OsdError) -> ResultCode {
    match e {
        OsdError::Store(meridian_objectstore::StoreError::Corrupt { .. }) => ResultCode::Corrupt,
        OsdError::Store(meridian_objectstore::StoreError::NoSpace { .. }) => ResultCode::NoSpace,
        _ => ResultCode::IoError,
    }
}

#[tonic::async_trait]
impl OsdService for OsdServer {
    async fn op(&self, req: Request<OpRequest>) -> Result<Response<OpReply>, Status> {
        let started = std::time::Instant::now();
        let need = if exec::is_mutating(&req.get_ref().ops) {
            Perms::W
        } else {
            Perms::R
        };
        self.require_pool(&req, "Op", need, req.get_ref().pool)?;
        let req = req.into_inner();
        let kind = crate::exec::op_kind(&req.ops);
        let reply = exec::handle_op(&self.osd, req).await;
        let result = ResultCode::try_from(reply.code)
            .map(|c| c.as_str_name())
            .unwrap_or("UNKNOWN");
        metrics::histogram!("meridian_osd_op_latency_seconds", "kind" => kind)
            .record(started.elapsed().as_secs_f64());
        metrics::counter!("meridian_osd_ops_total", "kind" => kind, "result" => result)
            .increment(1);
        Ok(Response::new(reply))
    }

    async fn rep_op(&self, req: Request<RepOpRequest>) -> Result<Response<RepOpReply>, Status> {
        let req = req.into_inner();
        let refuse = |m: String| {
            Ok(Response::new(RepOpReply {
                code: ResultCode::PgNotActive as i32,
                message: m,
            }))
        };
        if req.fsid != self.osd.ident.fsid {
            return Err(Status::permission_denied("rep op from another cluster"));
        }
        let id = pgid(&req.pg);
        let Some(pg) = self.osd.pg(id) else {
            return refuse(format!("osd.{} does not hold pg {id}", self.osd.id()));
        };
        let writes_data = req.mutations.iter().any(|m| {
            matches!(
                m.m,
                Some(mutation::M::Write(_) | mutation::M::WriteFull(_) | mutation::M::Truncate(_))
            )
        });
        if writes_data && self.osd.used_ratio() >= crate::daemon::FAILSAFE_FULL_RATIO {
            return Ok(Response::new(RepOpReply {
                code: ResultCode::Full as i32,
                message: format!(
                    "osd.{} is past its failsafe full ratio; refusing data",
                    self.osd.id()
                ),
            }));
        }
        let entry = req.entry.clone().unwrap_or_default();
        let v = ev(&entry.version);
        let prior = ev(&req.pg_prior);
        let rid = entry.reqid.as_ref().map(|r| (r.client, r.tid));
        // Entries apply in version order: wait (bounded) for the predecessor.
        let mut applied = pg.applied.subscribe();
        let deadline = tokio::time::Instant::now() + REP_OP_ORDER_WAIT;
        let queued = loop {
            let order = pg.submit.lock().await;
            let step = {
                let mut core = pg.core();
                if !core
                    .peering
                    .accepts_rep_op(req.from_osd, req.map_epoch, req.activation)
                {
                    return refuse(format!(
                        "pg {id} on osd.{} not activated by osd.{} for interval {} (activation {})",
                        self.osd.id(),
                        req.from_osd,
                        req.map_epoch,
                        req.activation
                    ));
                }
                let last = core.ops.last_update();
                if last == prior {
                    match core.ops.replicate(prior, v, rid, entry.user_version) {
                        Ok((summary, trim)) => Some(Ok(exec::logged_txn(
                            id,
                            &entry.object,
                            &req.mutations,
                            &entry,
                            &summary,
                            trim,
                        ))),
                        Err(e) => Some(Err(e)),
                    }
                } else if last > prior {
                    Some(Err(format!(
                        "pg {id} log gap: this copy is at {last:?}, the entry follows {prior:?}"
                    )))
                } else {
                    None
                }
            };
            match step {
                Some(Ok(txn)) => {
                    let queued = pg
                        .queue(&self.osd.store, txn)
                        .await
                        .map_err(|e| Status::internal(e.to_string()))?;
                    pg.applied.send_replace(v);
                    drop(order);
                    break queued;
                }
                Some(Err(m)) => return refuse(m),
                None => {
                    drop(order);
                    let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                    let waited = tokio::time::timeout(left, applied.changed()).await;
                    if !matches!(waited, Ok(Ok(()))) {
                        return refuse(format!(
                            "pg {id}: entry {v:?} waited too long for its predecessor {prior:?}"
                        ));
                    }
                }
            }
        };
        match queued.wait().await {
            Ok(()) => Ok(Response::new(RepOpReply {
                code: ResultCode::Ok as i32,
                message: String::new(),
            })),
            Err(e) => {
                tracing::error!(pg = %id, error = %e, "replica commit failed");
                self.osd.check_store(&e);
                Ok(Response::new(RepOpReply {
                    code: code_of(&e) as i32,
                    message: e.to_string(),
                }))
            }
        }
    }

    async fn pg_query(
        &self,
        req: Request<PgQueryRequest>,
    ) -> Result<Response<PgQueryReply>, Status> {
        let req = req.into_inner();
        if req.pgs.len() > 1024 {
            return Err(Status::invalid_argument("at most 1024 PGs per query"));
        }
        let mut infos = Vec::new();
        for r in &req.pgs {
            let id = PgId::new(r.pool, r.seed);
            if let Some(pg) = self.osd.pg(id) {
                pg.drain_local().await;
            }
            let info = peering::local_info(&self.osd, id, req.with_log)
                .await
                .map_err(|e| Status::internal(e.to_string()))?;
            infos.push(info);
        }
        Ok(Response::new(PgQueryReply { infos }))
    }

    async fn pg_activate(
        &self,
        req: Request<PgActivateRequest>,
    ) -> Result<Response<PgActivateReply>, Status> {
        let req = req.into_inner();
        let id = pgid(&req.pg);
        let refuse = |code: ResultCode, message: String| {
            Ok(Response::new(PgActivateReply {
                code: code as i32,
                message,
            }))
        };
        // Our view of the interval must be at least the primary's.
        self.osd
            .wait_for_processed(req.map_epoch, Duration::from_secs(3))
            .await;
        let Some(pg) = self.osd.pg(id) else {
            return refuse(ResultCode::PgNotActive, format!("pg {id} unknown here yet"));
        };
        let summary = match pg.core().peering.on_activate(&req) {
            Ok(s) => s,
            Err(m) => return refuse(ResultCode::WrongPrimary, m),
        };
        // Entries of an earlier activation still landing must land first.
        pg.drain_local().await;
        let mut txn = Transaction::new().touch(&ObjectKey::meta(id));
        txn = pglog::replace_log(txn, id, &req.log);
        txn = pglog::put_info(txn, id, &summary);
        if let Err(e) = peering::commit_ordered(&self.osd, &pg, txn).await {
            return refuse(code_of(&e), e.to_string());
        }
        let objects = peering::list_local(&self.osd, id)
            .await
            .map_err(|e| Status::internal(e.to_string()))?
            .len() as u64;
        {
            let mut core = pg.core();
            if core.peering.interval().first != req.map_epoch {
                return refuse(
                    ResultCode::PgNotActive,
                    format!("pg {id}: the interval changed during activation"),
                );
            }
            core.peering.on_activate_done(&req, summary.clone());
            core.ops = OpPipeline::new(
                req.activation,
                req.map_epoch,
                summary.clone(),
                &req.log,
                self.osd.tunables.max_pg_log_entries,
            );
            core.objects = objects;
        }
        pg.applied.send_replace(summary.last_update);
        Ok(Response::new(PgActivateReply {
            code: ResultCode::Ok as i32,
            message: String::new(),
        }))
    }

    async fn push(&self, req: Request<PushRequest>) -> Result<Response<PushReply>, Status> {
        let req = req.into_inner();
        let id = pgid(&req.pg);
        if !self
            .sender_is_primary(id, req.from_osd, req.map_epoch)
            .await
        {
            return Ok(Response::new(PushReply {
                code: ResultCode::WrongPrimary as i32,
                message: format!("osd.{} is not primary of pg {id}", req.from_osd),
            }));
        }
        let Some(pg) = self.osd.pg(id) else {
            return Ok(Response::new(PushReply {
                code: ResultCode::PgNotActive as i32,
                message: format!("pg {id} unknown here yet"),
            }));
        };
        if req.objects.iter().any(|o| o.exists)
            && self.osd.used_ratio() >= crate::daemon::FAILSAFE_FULL_RATIO
        {
            return Ok(Response::new(PushReply {
                code: ResultCode::Full as i32,
                message: format!(
                    "osd.{} is past its failsafe full ratio; refusing recovery data",
                    self.osd.id()
                ),
            }));
        }
        let mut txn = Transaction::new();
        let mut marked = None;
        if req.start_backfill {
            // From now until activation this copy is incomplete.
            let mut s = pg.core().peering.local().cloned().unwrap_or_default();
            s.backfilling = true;
            txn = pglog::put_info(txn.touch(&ObjectKey::meta(id)), id, &s);
            marked = Some(s);
        }
        for o in &req.objects {
            txn = objstate::write_state(txn, &ObjectKey::new(id, o.name.clone()), o);
        }
        let r = peering::commit_ordered(&self.osd, &pg, txn).await;
        if r.is_ok()
            && let Some(s) = marked
        {
            pg.core().peering.set_local(Some(s));
        }
        Ok(Response::new(match r {
            Ok(()) => PushReply {
                code: ResultCode::Ok as i32,
                message: String::new(),
            },
            Err(e) => PushReply {
                code: code_of(&e) as i32,
                message: e.to_string(),
            },
        }))
    }

    async fn pull(&self, req: Request<PullRequest>) -> Result<Response<PullReply>, Status> {
        let req = req.into_inner();
        let key = ObjectKey::new(pgid(&req.pg), req.object);
        let r = self
            .osd
            .blocking(move |s| objstate::read_state(s, &key))
            .await;
        Ok(Response::new(match r {
            Ok(state) => PullReply {
                code: ResultCode::Ok as i32,
                state: Some(state),
            },
            Err(e) => PullReply {
                code: code_of(&e) as i32,
                state: None,
            },
        }))
    }

    async fn pg_list(&self, req: Request<PgListRequest>) -> Result<Response<PgListReply>, Status> {
        let pool = req.get_ref().pg.as_ref().map(|p| p.pool).unwrap_or(0);
        self.require_pool(&req, "PgList", Perms::R, pool)?;
        let req = req.into_inner();
        let id = pgid(&req.pg);
        if let Some(pg) = self.osd.pg(id) {
            let core = pg.core();
            if core.peering.is_primary() && core.peering.state() != PgState::Active {
                return Ok(Response::new(PgListReply {
                    code: ResultCode::PgNotActive as i32,
                    ..Default::default()
                }));
            }
        }
        let max = if req.max == 0 {
            1000
        } else {
            req.max.min(10_000)
        } as usize;
        let (deep, after) = (req.deep, req.start_after);
        let r = self
            .osd
            .blocking(move |s| {
                let after = (!after.is_empty()).then_some(after);
                let mut names = s.list_objects(id, after.as_deref(), max + 1)?;
                let more = names.len() > max;
                names.truncate(max);
                let mut objects = Vec::with_capacity(names.len());
                for name in names {
                    let key = ObjectKey::new(id, name.clone());
                    let size = s.stat(&key)?.map(|st| st.size).unwrap_or(0);
                    let meta = objstate::load_meta(s, &key)?.unwrap_or_default();
                    let mut d = ObjectDigest {
                        name,
                        size,
                        version: meta.version,
                        ..Default::default()
                    };
                    if deep {
                        match objstate::read_state(s, &key) {
                            Ok(state) => {
                                let (dd, md) = objstate::digests(&state);
                                d.data_digest = dd;
                                d.meta_digest = md;
                            }
                            Err(OsdError::Store(meridian_objectstore::StoreError::Corrupt {
                                ..
                            })) => d.corrupt = true,
                            Err(e) => return Err(e),
                        }
                    }
                    objects.push(d);
                }
                Ok((objects, more))
            })
            .await;
        match r {
            Ok((objects, more)) => Ok(Response::new(PgListReply {
                code: ResultCode::Ok as i32,
                objects,
                more,
            })),
            Err(e) => Err(Status::internal(e.to_string())),
        }
    }

    async fn scrub(&self, req: Request<ScrubRequest>) -> Result<Response<ScrubReply>, Status> {
        let req = req.into_inner();
        let id = pgid(&req.pg);
        let Some(pg) = self.osd.pg(id) else {
            return Err(Status::not_found(format!(
                "osd.{} does not hold pg {id}",
                self.osd.id()
            )));
        };
        let acting = {
            let core = pg.core();
            if !core.peering.is_primary() || core.peering.state() != PgState::Active {
                return Ok(Response::new(ScrubReply {
                    code: ResultCode::PgNotActive as i32,
                    message: format!("pg {id} is not active on its primary here; retry"),
                    ..Default::default()
                }));
            }
            core.peering.interval().placement.acting.clone()
        };
        crate::scrub::scrub_pg(&self.osd, &pg, acting, req.deep, req.repair)
            .await
            .map(Response::new)
            .map_err(|e| Status::internal(e.to_string()))
    }

    async fn pg_remove(
        &self,
        req: Request<PgRemoveRequest>,
    ) -> Result<Response<PgRemoveReply>, Status> {
        let req = req.into_inner();
        let id = pgid(&req.pg);
        self.osd
            .wait_for_processed(req.map_epoch, Duration::from_secs(3))
            .await;
        let view = self.osd.view();
        let acting = view.acting(meridian_client::PgId {
            pool: id.pool,
            seed: id.seed,
        });
        if acting.contains(&self.osd.id()) {
            return Err(Status::failed_precondition(format!(
                "osd.{} is in the acting set of pg {id}; not removing",
                self.osd.id()
            )));
        }
        self.osd
            .remove_pg(id)
            .await
            .map_err(|e| Status::internal(e.to_string()))?;
        Ok(Response::new(PgRemoveReply {}))
    }

    async fn pg_notify(
        &self,
        req: Request<PgNotifyRequest>,
    ) -> Result<Response<PgNotifyReply>, Status> {
        let req = req.into_inner();
        let id = pgid(&req.info.unwrap_or_default().pg);
        self.osd
            .wait_for_processed(req.map_epoch, Duration::from_secs(3))
            .await;
        let Some(pg) = self.osd.pg(id) else {
            return Ok(Response::new(PgNotifyReply { remove: false }));
        };
        let (remove, activation, fx) = {
            let mut core = pg.core();
            let (remove, fx) = core.peering.on_notify(req.from_osd);
            (remove, core.peering.activation(), fx)
        };
        peering::dispatch(&self.osd, &pg, activation, fx);
        Ok(Response::new(PgNotifyReply { remove }))
    }

    async fn pg_describe(
        &self,
        req: Request<PgDescribeRequest>,
    ) -> Result<Response<PgDescribeReply>, Status> {
        let req = req.into_inner();
        let id = pgid(&req.pg);
        let Some(pg) = self.osd.pg(id) else {
            return Err(Status::not_found(format!(
                "osd.{} holds nothing of pg {id}",
                self.osd.id()
            )));
        };
        Ok(Response::new(crate::daemon::describe(&self.osd, &pg)))
    }

    async fn status(
        &self,
        _req: Request<OsdStatusRequest>,
    ) -> Result<Response<OsdStatusReply>, Status> {
        let pgs: BTreeMap<PgId, _> = self
            .osd
            .pgs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(k, v)| (*k, v.clone()))
            .collect();
        let mut out = Vec::new();
        for (id, pg) in pgs {
            let core = pg.core();
            let lu = core.last_update();
            out.push(PgStatus {
                pg: pgref(id),
                state: core.peering.state().as_str().to_string(),
                acting: core.peering.interval().placement.acting.clone(),
                last_update: pglog::ver(lu),
            });
        }
        Ok(Response::new(OsdStatusReply {
            osd_id: self.osd.id(),
            map_epoch: self.osd.view().epoch(),
            store_engine: self.osd.engine.clone(),
            pgs: out,
        }))
    }
}
