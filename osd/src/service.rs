//! The OsdService gRPC handlers: client ops, replication, peering, recovery
//! transfers, listing and scrub.

use crate::daemon::Osd;
use crate::error::OsdError;
use crate::objstate;
use crate::pg::{Phase, Role};
use crate::pglog::{self, PgSummary, ev, pgid, pgref};
use crate::{exec, peering};
use meridian_objectstore::{ObjectKey, PgId, Transaction};
use meridian_proto::osd::osd_service_server::OsdService;
use meridian_proto::osd::*;
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tonic::{Request, Response, Status};

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
        if pg.routing().activated_by != Some((req.from_osd, req.map_epoch)) {
            return refuse(format!(
                "pg {id} on osd.{} not activated by osd.{} for interval {}",
                self.osd.id(),
                req.from_osd,
                req.map_epoch
            ));
        }
        let mut core = pg.core.lock().await;
        if core.summary.last_update != ev(&req.pg_prior) {
            return refuse(format!(
                "pg {id} log gap: have {:?}, primary had {:?}",
                core.summary.last_update,
                ev(&req.pg_prior)
            ));
        }
        let entry = req.entry.clone().unwrap_or_default();
        let v = ev(&entry.version);
        let mut summary = core.summary.clone();
        summary.last_update = v;
        let trim = if core.log_versions.len() >= core.max_log_entries {
            core.log_versions.front().copied()
        } else {
            None
        };
        if let Some(t) = trim {
            summary.log_tail = t;
        }
        let s2 = summary.clone();
        let r = self
            .osd
            .blocking(move |s| exec::apply_rep_op(s, id, &req, &s2, trim))
            .await;
        match r {
            Ok(()) => {
                let rid = entry.reqid.as_ref().map(|r| (r.client, r.tid));
                core.note_entry(v, rid, entry.user_version);
                core.summary = summary;
                Ok(Response::new(RepOpReply {
                    code: ResultCode::Ok as i32,
                    message: String::new(),
                }))
            }
            Err(e) => {
                tracing::error!(pg = %id, error = %e, "replica commit failed");
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
        let mut infos = Vec::new();
        for r in &req.pgs {
            let id = PgId::new(r.pool, r.seed);
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
        if !self
            .sender_is_primary(id, req.from_osd, req.map_epoch)
            .await
        {
            return Ok(Response::new(PgActivateReply {
                code: ResultCode::WrongPrimary as i32,
                message: format!("osd.{} is not primary of pg {id} in our map", req.from_osd),
            }));
        }
        let Some(pg) = self.osd.pg(id) else {
            return Ok(Response::new(PgActivateReply {
                code: ResultCode::PgNotActive as i32,
                message: format!("pg {id} unknown here yet"),
            }));
        };
        let mut core = pg.core.lock().await;
        let summary = PgSummary {
            last_update: ev(&req.last_update),
            log_tail: ev(&req.log_tail),
            last_epoch_started: req.map_epoch,
            backfilling: false,
        };
        let (s2, log) = (summary.clone(), req.log.clone());
        let keep: Option<HashSet<String>> = req
            .prune_to_keep_only
            .then(|| req.keep_only.iter().cloned().collect());
        let r = self
            .osd
            .blocking(move |st| {
                let mut txn = Transaction::new().touch(&ObjectKey::meta(id));
                if let Some(keep) = keep {
                    let mut after: Option<String> = None;
                    loop {
                        let page = st.list_objects(id, after.as_deref(), 1024)?;
                        let n = page.len();
                        after = page.last().cloned();
                        for name in page.into_iter().filter(|n| !keep.contains(n)) {
                            txn = txn.remove(&ObjectKey::new(id, name));
                        }
                        if n < 1024 {
                            break;
                        }
                    }
                }
                txn = pglog::replace_log(txn, id, &log);
                txn = pglog::put_info(txn, id, &s2);
                st.submit(txn).map_err(OsdError::from)
            })
            .await;
        if let Err(e) = r {
            return Ok(Response::new(PgActivateReply {
                code: code_of(&e) as i32,
                message: e.to_string(),
            }));
        }
        peering::reload_core(&self.osd, id, &mut core, summary, &req.log)
            .await
            .map_err(|e| Status::internal(e.to_string()))?;
        pg.set_routing(|r| {
            r.activated_by = Some((req.from_osd, req.map_epoch));
            r.phase = Phase::Active;
        });
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
        let objects = req.objects;
        let r = self
            .osd
            .blocking(move |st| {
                let mut txn = Transaction::new();
                for o in &objects {
                    txn = objstate::write_state(txn, &ObjectKey::new(id, o.name.clone()), o);
                }
                st.submit(txn).map_err(OsdError::from)
            })
            .await;
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
        let req = req.into_inner();
        let id = pgid(&req.pg);
        if let Some(pg) = self.osd.pg(id) {
            let r = pg.routing();
            if r.role == Role::Primary && r.phase != Phase::Active {
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
        let r = pg.routing();
        if r.role != Role::Primary || r.phase != Phase::Active {
            return Ok(Response::new(ScrubReply {
                code: ResultCode::PgNotActive as i32,
                message: format!("pg {id} is not active on its primary here; retry"),
                ..Default::default()
            }));
        }
        crate::scrub::scrub_pg(&self.osd, &pg, r.acting, req.deep, req.repair)
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
            .wait_for_epoch(req.map_epoch, Duration::from_secs(3))
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
        if let Some(pg) = self.osd.pg(id) {
            let _core = pg.core.lock().await;
            self.osd
                .blocking(move |s| {
                    s.submit(Transaction::new().remove_collection(id))
                        .map_err(Into::into)
                })
                .await
                .map_err(|e| Status::internal(e.to_string()))?;
            self.osd
                .pgs
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&id);
        } else {
            self.osd
                .blocking(move |s| {
                    s.submit(Transaction::new().remove_collection(id))
                        .map_err(Into::into)
                })
                .await
                .map_err(|e| Status::internal(e.to_string()))?;
        }
        Ok(Response::new(PgRemoveReply {}))
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
            let r = pg.routing();
            let lu = pg
                .core
                .try_lock()
                .map(|c| c.summary.last_update)
                .unwrap_or((0, 0));
            out.push(PgStatus {
                pg: pgref(id),
                state: format!("{:?}+{}", r.role, r.phase.as_str()).to_lowercase(),
                acting: r.acting,
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
