//! Execution of a client's compound op at the primary: guards, reads, and the
//! resolution of mutations into one logged transaction that is applied locally
//! and on every replica before the client hears back.

use crate::daemon::Osd;
use crate::error::OsdError;
use crate::objstate::{self, META_XATTR, ObjectMeta, USER_XATTR_PREFIX};
use crate::pg::pipeline::Resent;
use crate::pg::{Pg, PgState};
use crate::pglog::{self, Ev, pgref, ver};
use bytes::Bytes;
use meridian_client::MapView;
use meridian_objectstore::{ObjectKey, ObjectStore, PgId, StoreError, Transaction};
use meridian_proto::osd::mutation::M;
use meridian_proto::osd::sub_op::Op;
use meridian_proto::osd::*;
use std::sync::Arc;
use std::time::Duration;

/// True when any sub-op changes the object (the op needs the log and replicas).
pub fn is_mutating(ops: &[SubOp]) -> bool {
    ops.iter().any(|o| {
        matches!(
            o.op,
            Some(
                Op::WriteFull(_)
                    | Op::Write(_)
                    | Op::Append(_)
                    | Op::Truncate(_)
                    | Op::Remove(_)
                    | Op::Create(_)
                    | Op::SetXattr(_)
                    | Op::RmXattr(_)
                    | Op::OmapSet(_)
                    | Op::OmapSetSeq(_)
                    | Op::OmapRm(_)
                    | Op::OmapClear(_)
            )
        )
    })
}

/// The metrics label of a compound op: "write" if it mutates, else "read".
pub fn op_kind(ops: &[SubOp]) -> &'static str {
    if is_mutating(ops) { "write" } else { "read" }
}

fn reply(code: ResultCode, message: impl Into<String>) -> OpReply {
    OpReply {
        code: code as i32,
        message: message.into(),
        ..Default::default()
    }
}

fn store_code(e: &OsdError) -> ResultCode {
    match e {
        OsdError::Store(StoreError::NotFound { .. }) => ResultCode::NotFound,
        OsdError::Store(StoreError::Corrupt { .. }) => ResultCode::Corrupt,
        OsdError::Store(StoreError::NoSpace { .. }) => ResultCode::NoSpace,
        _ => ResultCode::IoError,
    }
}

/// Translates resolved mutations into store ops on `key` (shared by primary and replicas).
pub fn mutations_txn(mut txn: Transaction, key: &ObjectKey, muts: &[Mutation]) -> Transaction {
    for m in muts {
        let Some(m) = &m.m else { continue };
        txn = match m {
            M::Write(w) => txn.write(key, w.offset, w.data.clone()),
            M::WriteFull(d) => txn.write_full(key, d.clone()),
            M::Truncate(s) => txn.truncate(key, *s),
            M::Remove(_) => txn.remove(key),
            M::Touch(_) => txn.touch(key),
            M::SetXattrs(x) => txn.set_xattrs(
                key,
                x.xattrs
                    .iter()
                    .map(|x| (x.name.clone(), x.value.clone()))
                    .collect(),
            ),
            M::RmXattr(n) => txn.rm_xattr(key, n),
            M::OmapSet(kv) => txn.omap_set(
                key,
                kv.entries
                    .iter()
                    .map(|e| (e.key.clone(), e.value.clone()))
                    .collect(),
            ),
            M::OmapRm(k) => txn.omap_rm(key, k.keys.clone()),
            M::OmapClear(_) => txn.omap_clear(key),
        };
    }
    txn
}

/// The full logged transaction of one op: object mutations, PG log entry, info, trim.
pub fn logged_txn(
    pg: PgId,
    object: &str,
    muts: &[Mutation],
    entry: &LogEntry,
    summary: &pglog::PgSummary,
    trim: Option<Ev>,
) -> Transaction {
    let key = ObjectKey::new(pg, object);
    let mut txn = mutations_txn(Transaction::new(), &key, muts);
    txn = pglog::put_entry(txn, pg, entry);
    txn = pglog::put_info(txn, pg, summary);
    if let Some(t) = trim {
        txn = pglog::trim_to(txn, pg, t);
    }
    txn
}

fn cmp_ok(op: CmpOp, have: Option<&Bytes>, want: &Bytes) -> bool {
    let Some(have) = have else {
        return false;
    };
    let o = have.as_ref().cmp(want.as_ref());
    match op {
        CmpOp::CmpEq => o.is_eq(),
        CmpOp::CmpNe => !o.is_eq(),
        CmpOp::CmpGt => o.is_gt(),
        CmpOp::CmpGte => o.is_ge(),
        CmpOp::CmpLt => o.is_lt(),
        CmpOp::CmpLte => o.is_le(),
    }
}

/// Handles a client op end to end.
pub async fn handle_op(osd: &Arc<Osd>, req: OpRequest) -> OpReply {
    // Map checks: our map must be at least the client's.
    if req.map_epoch > osd.view().epoch()
        && !osd
            .wait_for_epoch(req.map_epoch, Duration::from_secs(2))
            .await
    {
        return reply(ResultCode::MapBehind, "osd map behind the client's; retry");
    }
    let view = osd.view();
    let Some(pool) = view.pool(req.pool).cloned() else {
        return reply(
            ResultCode::NoPool,
            format!("pool {} does not exist", req.pool),
        );
    };
    if req.object.is_empty() || req.object.len() > meridian_objectstore::MAX_OBJECT_NAME_LEN {
        return reply(
            ResultCode::Invalid,
            format!(
                "object names must be 1..={} bytes",
                meridian_objectstore::MAX_OBJECT_NAME_LEN
            ),
        );
    }
    let expect = MapView::object_pg(&pool, &req.object);
    if expect.seed != req.pg_seed {
        return reply(
            ResultCode::Invalid,
            format!("object maps to pg {expect}, not seed {:x}", req.pg_seed),
        );
    }
    let id = PgId::new(pool.id, req.pg_seed);
    let Some(pg) = osd.pg(id) else {
        return reply(ResultCode::WrongPrimary, "this OSD does not serve the PG");
    };
    let mutating = is_mutating(&req.ops);
    let reqid = req.reqid.as_ref().map(|r| (r.client, r.tid));
    let Admitted {
        activation,
        acting,
        interval,
    } = match admit(&pg, &expect, mutating, pool.min_size) {
        Ok(a) => a,
        Err(rep) => return rep,
    };
    if mutating && let Err(rep) = check_space(osd, &view, &acting, &req.ops) {
        return rep;
    }
    let resent = match reqid {
        Some(rid) if mutating => pg.core().ops.resent(rid),
        _ => None,
    };
    if let Some(found) = resent {
        return answer_resent(osd, &pg, &req, found, view.epoch()).await;
    }
    // Data in flight stays within the memory target: wait for room first.
    let _budget = osd.op_budget.admit(data_charge(&req.ops, pool.size)).await;
    // One op at a time per object: a read never sees a write that is not
    // yet durable everywhere, and each op prepares from its predecessor's result.
    let _object = pg.lock_object(&req.object).await;
    if let Err(rep) = still_active(&pg, activation) {
        return rep;
    }
    let key = ObjectKey::new(id, req.object.clone());
    let max_size = osd.tunables.max_object_size;
    let prepared = if reads_little(osd.store.as_ref(), &key, &req.ops) {
        prepare(osd.store.as_ref(), &key, &req.ops, max_size)
    } else {
        let (k2, ops) = (key.clone(), req.ops.clone());
        osd.blocking(move |s| Ok(prepare(s, &k2, &ops, max_size)))
            .await
            .unwrap_or_else(|e| Err(reply(store_code(&e), e.to_string())))
    };
    let mut prepared = match prepared {
        Ok(p) => p,
        Err(rep) => {
            if rep.code == ResultCode::Corrupt as i32 {
                drop(_object);
                return repair_and_retry(osd, &pg, key, req).await;
            }
            return rep;
        }
    };
    prepared.reply.map_epoch = view.epoch();
    if prepared.mutations.is_empty() {
        return prepared.reply;
    }
    let now = meridian_common::now_unix_ms();
    let user_version = prepared.old_user_version + 1;
    // Assign the version and hand the transaction to the store in version order.
    let (assigned, pending) = {
        let _order = pg.submit.lock().await;
        let (assigned, entry, txn) = {
            let mut core = pg.core();
            // Same activation: same interval and acting set as admitted.
            if core.peering.state() != PgState::Active || core.ops.activation() != activation {
                return reply(ResultCode::PgNotActive, "interval changed; retry");
            }
            let a = core.ops.assign(reqid, user_version, acting.iter().copied());
            let entry = LogEntry {
                version: ver(a.version),
                prior_version: ver(prepared.old_version),
                object: req.object.clone(),
                op: if prepared.deletes {
                    LogOp::Delete
                } else {
                    LogOp::Modify
                } as i32,
                reqid: req.reqid,
                user_version,
                mtime_unix_ms: now,
            };
            if !prepared.deletes {
                prepared.mutations.push(Mutation {
                    m: Some(M::SetXattrs(XattrList {
                        xattrs: vec![Xattr {
                            name: META_XATTR.into(),
                            value: objstate::meta_value(&ObjectMeta {
                                version: ver(a.version),
                                user_version,
                                mtime_unix_ms: now,
                            }),
                        }],
                    })),
                });
            }
            if prepared.creates {
                core.objects += 1;
            }
            if prepared.deletes && prepared.old_exists {
                core.objects = core.objects.saturating_sub(1);
            }
            let txn = logged_txn(
                id,
                &req.object,
                &prepared.mutations,
                &entry,
                &a.summary,
                a.trim,
            );
            (a, entry, txn)
        };
        let queued = match pg.queue(&osd.store, txn).await {
            Ok(q) => q,
            Err(e) => {
                fail_op(osd, &pg, activation, format!("queueing the commit: {e}"));
                return reply(ResultCode::IoError, format!("local commit failed: {e}"));
            }
        };
        pg.applied.send_replace(assigned.version);
        let reps = acting.iter().skip(1).map(|&o| {
            let rep = RepOpRequest {
                pg: pgref(id),
                map_epoch: interval,
                from_osd: osd.id(),
                mutations: prepared.mutations.clone(),
                entry: Some(entry.clone()),
                fsid: osd.ident.fsid.clone(),
                pg_prior: ver(assigned.prior),
                activation,
            };
            let osd = osd.clone();
            tokio::spawn(async move { (o, send_rep_op(&osd, o, rep).await) })
        });
        let reps: Vec<_> = reps.collect();
        (assigned, (queued, reps))
    };
    let (queued, reps) = pending;
    let local = queued.wait().await;
    let mut failure: Option<String> = None;
    match local {
        Ok(()) => {
            pg.core()
                .ops
                .committed(assigned.version, osd.id(), Some(&prepared.reply.results));
        }
        Err(e) => {
            tracing::error!(pg = %id, error = %e, "local commit failed");
            osd.check_store(&e);
            failure = Some(format!("local commit failed: {e}"));
        }
    }
    for r in reps {
        match r.await {
            Ok((o, Ok(()))) => {
                pg.core()
                    .ops
                    .committed(assigned.version, o, Some(&prepared.reply.results));
            }
            Ok((o, Err(e))) => {
                failure.get_or_insert(format!("replication to osd.{o} failed: {e}"));
            }
            Err(e) => {
                failure.get_or_insert(format!("replication task failed: {e}"));
            }
        }
    }
    if let Some(why) = failure {
        // Never acknowledge: a replica (or this copy) may lack the entry.
        // Peering again in this interval repairs every copy.
        tracing::warn!(pg = %id, version = ?assigned.version, acting = ?acting, "{why}; re-peering");
        fail_op(osd, &pg, activation, why.clone());
        return reply(ResultCode::ReplicaFailed, why);
    }
    let mut rep = prepared.reply;
    rep.user_version = user_version;
    rep.version = ver(assigned.version);
    rep
}

async fn send_rep_op(osd: &Arc<Osd>, o: u32, rep: RepOpRequest) -> Result<(), OsdError> {
    let mut c = osd.peer(o)?;
    let rr = tokio::time::timeout(Duration::from_secs(10), c.rep_op(rep))
        .await
        .map_err(|_| OsdError::Peer {
            osd: o,
            reason: "rep op timed out".into(),
        })?
        .map_err(|s| OsdError::Peer {
            osd: o,
            reason: s.message().to_string(),
        })?
        .into_inner();
    if rr.code != ResultCode::Ok as i32 {
        return Err(OsdError::Peer {
            osd: o,
            reason: rr.message,
        });
    }
    Ok(())
}

/// Bytes an op holds in the primary's memory while it runs, for the OSD's
/// op budget: a write's payload as received, once encoded per replica and
/// once in the store's buffers (`pool_size + 1` copies); a read's result in
/// the store's buffer and encoded (2 copies).
pub fn data_charge(ops: &[SubOp], pool_size: u32) -> u64 {
    let (mut written, mut read) = (0u64, 0u64);
    for o in ops.iter().filter_map(|o| o.op.as_ref()) {
        match o {
            Op::WriteFull(d) | Op::Append(d) => written += d.len() as u64,
            Op::Write(w) => written += w.data.len() as u64,
            Op::Read(r) if r.length == 0 => read += crate::daemon::WHOLE_READ_CHARGE,
            Op::Read(r) => read += r.length,
            _ => {}
        }
    }
    written.saturating_mul(u64::from(pool_size) + 1) + read.saturating_mul(2)
}

/// What an op's mutations do to space.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SpaceUse {
    /// Only removes or shrinks (always allowed: deleting is how space comes back).
    Frees,
    /// Adds metadata only (omap, xattrs): allowed up to the failsafe ratio,
    /// so an index can still record deletes on a full cluster.
    Metadata,
    /// Writes object data.
    Data,
}

/// Classifies an op's mutations.
pub fn space_use(ops: &[SubOp]) -> SpaceUse {
    ops.iter()
        .filter_map(|o| o.op.as_ref())
        .map(|o| match o {
            Op::WriteFull(_) | Op::Write(_) | Op::Append(_) | Op::Truncate(_) => SpaceUse::Data,
            Op::Create(_) | Op::SetXattr(_) | Op::OmapSet(_) | Op::OmapSetSeq(_) => {
                SpaceUse::Metadata
            }
            _ => SpaceUse::Frees,
        })
        .max()
        .unwrap_or(SpaceUse::Frees)
}

/// Refuses an op that would add data to a full OSD of the acting set (as
/// the map says, or as this OSD measured itself), at once and clearly.
fn check_space(osd: &Osd, view: &MapView, acting: &[u32], ops: &[SubOp]) -> Result<(), OpReply> {
    let (_, _, full_ratio) = meridian_proto::fullness::ratios(&view.map);
    let mine = osd.used_ratio();
    let full = |why: String| {
        Err(reply(
            ResultCode::Full,
            format!(
                "cluster is full: {why}; writes are refused until data is deleted or OSDs are added (reads and deletes still work)"
            ),
        ))
    };
    match space_use(ops) {
        SpaceUse::Frees => Ok(()),
        SpaceUse::Metadata if mine >= crate::daemon::FAILSAFE_FULL_RATIO => full(format!(
            "osd.{} is {:.0}% used, past the failsafe ratio",
            osd.id(),
            mine * 100.0
        )),
        SpaceUse::Metadata => Ok(()),
        SpaceUse::Data => {
            if mine >= full_ratio {
                return full(format!(
                    "osd.{} is {:.0}% used (full ratio {:.0}%)",
                    osd.id(),
                    mine * 100.0,
                    full_ratio * 100.0
                ));
            }
            for &o in acting {
                if view
                    .osd(o)
                    .is_some_and(|i| i.full_state == meridian_proto::mon::FullState::Full as i32)
                {
                    return full(format!(
                        "osd.{o} is past the full ratio ({:.0}%)",
                        full_ratio * 100.0
                    ));
                }
            }
            Ok(())
        }
    }
}

/// What an op was admitted under.
struct Admitted {
    activation: u64,
    acting: Vec<u32>,
    /// First epoch of the interval.
    interval: u64,
}

/// Checks that this OSD may serve the op now.
fn admit(
    pg: &Pg,
    expect: &meridian_client::PgId,
    mutating: bool,
    min_size: u32,
) -> Result<Admitted, OpReply> {
    let core = pg.core();
    let p = &core.peering;
    if !p.is_primary() {
        return Err(reply(
            ResultCode::WrongPrimary,
            format!("not primary for pg {expect}"),
        ));
    }
    if p.state() != PgState::Active {
        let why = if p.reason().is_empty() {
            p.state().as_str().to_string()
        } else {
            p.reason().to_string()
        };
        return Err(reply(
            ResultCode::PgNotActive,
            format!("pg {expect} is {why}"),
        ));
    }
    let acting = p.interval().placement.acting.len() as u32;
    if mutating && acting < min_size {
        return Err(reply(
            ResultCode::BelowMinSize,
            format!(
                "pg {expect} has {acting} of min_size {min_size} replicas up; writes wait for recovery"
            ),
        ));
    }
    Ok(Admitted {
        activation: core.ops.activation(),
        acting: p.interval().placement.acting.clone(),
        interval: p.interval().first,
    })
}

fn still_active(pg: &Pg, activation: u64) -> Result<(), OpReply> {
    let core = pg.core();
    if core.peering.state() != PgState::Active || core.ops.activation() != activation {
        return Err(reply(ResultCode::PgNotActive, "interval changed; retry"));
    }
    Ok(())
}

/// Peering restarts after a failed op (in this interval).
fn fail_op(osd: &Arc<Osd>, pg: &Arc<Pg>, activation: u64, why: String) {
    crate::peering::step(osd, pg, |m| m.on_op_failed(activation, why));
}

/// A resend of an op already applied (its reply was lost): answer with the
/// original reply if it is kept, else with the reads recomputed on the
/// current object (guards and mutations are not evaluated again).
async fn answer_resent(
    osd: &Arc<Osd>,
    pg: &Arc<Pg>,
    req: &OpRequest,
    found: Resent,
    epoch: u64,
) -> OpReply {
    let (version, user_version, results) = match found {
        Resent::InFlight => {
            return reply(
                ResultCode::PgNotActive,
                "the original of this resent op is still in flight; retry",
            );
        }
        Resent::Done {
            version,
            user_version,
            results,
        } => (version, user_version, results),
    };
    let results = match results {
        Some(r) => r.as_ref().clone(),
        None => {
            let _object = pg.lock_object(&req.object).await;
            let key = ObjectKey::new(pg.id, req.object.clone());
            let ops = req.ops.clone();
            let r = osd
                .blocking(move |s| Ok(reads_only(s, &key, &ops)))
                .await
                .unwrap_or_else(|e| Err(reply(store_code(&e), e.to_string())));
            match r {
                Ok(r) => r,
                Err(rep) => return rep,
            }
        }
    };
    OpReply {
        code: ResultCode::Ok as i32,
        results,
        user_version,
        version: ver(version),
        map_epoch: epoch,
        ..Default::default()
    }
}

/// True for a sub-op that only reads.
fn is_read(o: &SubOp) -> bool {
    matches!(
        o.op,
        Some(
            Op::Read(_)
                | Op::Stat(_)
                | Op::GetXattr(_)
                | Op::GetXattrs(_)
                | Op::OmapGetRange(_)
                | Op::OmapGetValues(_)
        )
    )
}

/// Evaluates only the read sub-ops of `ops` (for a resent op's reply); the
/// others get an OK result so positions match the original reply.
fn reads_only(
    s: &dyn ObjectStore,
    key: &ObjectKey,
    ops: &[SubOp],
) -> Result<Vec<SubOpResult>, OpReply> {
    let reads: Vec<SubOp> = ops.iter().filter(|o| is_read(o)).cloned().collect();
    let mut read_results = if reads.is_empty() {
        Vec::new()
    } else {
        prepare(s, key, &reads, u64::MAX)?.reply.results
    }
    .into_iter();
    Ok(ops
        .iter()
        .map(|o| {
            if is_read(o) {
                read_results.next().unwrap_or_default()
            } else {
                SubOpResult {
                    code: ResultCode::Ok as i32,
                    ..Default::default()
                }
            }
        })
        .collect())
}

/// A local copy failed its checksum: fetch the object from a replica whose
/// copy verifies, repair, retry once.
async fn repair_and_retry(osd: &Arc<Osd>, pg: &Arc<Pg>, key: ObjectKey, req: OpRequest) -> OpReply {
    tracing::warn!(object = %key, "checksum error on read; repairing from a replica");
    let (acting, interval) = {
        let core = pg.core();
        let i = core.peering.interval();
        (i.placement.acting.clone(), i.first)
    };
    for &o in acting.iter().skip(1) {
        let Ok(mut c) = osd.peer(o) else { continue };
        let pull = PullRequest {
            pg: pgref(key.pg),
            map_epoch: interval,
            object: key.name.clone(),
        };
        let Ok(r) = c.pull(pull).await else { continue };
        let r = r.into_inner();
        if r.code != ResultCode::Ok as i32 {
            continue;
        }
        let state = r.state.unwrap_or_default();
        let _object = pg.lock_object(&key.name).await;
        let txn = objstate::write_state(Transaction::new(), &key, &state);
        if crate::peering::commit_ordered(osd, pg, txn).await.is_ok() {
            tracing::info!(object = %key, from = o, "repaired object from replica");
            drop(_object);
            return Box::pin(handle_op(osd, req)).await;
        }
    }
    reply(
        ResultCode::Corrupt,
        format!("{key}: no intact replica found"),
    )
}

/// Result of evaluating an op against the current object.
struct Prepared {
    reply: OpReply,
    mutations: Vec<Mutation>,
    old_version: Ev,
    old_user_version: u64,
    old_exists: bool,
    creates: bool,
    deletes: bool,
}

/// Ops that read at most this much object data are prepared on their own
/// task: the store's default inline threshold, so such a read is a KV look-up
/// rather than a block-file read that would hold an async worker. A hop to a
/// blocking thread cost a 4 KiB write or read more CPU than the look-ups.
const INLINE_READ_MAX: u64 = 8 << 10;

/// True when `ops` read at most [`INLINE_READ_MAX`] bytes of object data
/// (a whole-object read counts the object's size).
fn reads_little(s: &dyn ObjectStore, key: &ObjectKey, ops: &[SubOp]) -> bool {
    let mut size = None;
    ops.iter().all(|op| match &op.op {
        Some(Op::Read(r)) if r.length > 0 => r.length <= INLINE_READ_MAX,
        Some(Op::Read(r)) => {
            let size = *size.get_or_insert_with(|| match s.stat(key) {
                Ok(st) => st.map_or(0, |st| st.size),
                Err(_) => u64::MAX,
            });
            size.saturating_sub(r.offset) <= INLINE_READ_MAX
        }
        _ => true,
    })
}

/// Evaluates guards and reads, and resolves mutations (pure over the store's current state).
fn prepare(
    s: &dyn ObjectStore,
    key: &ObjectKey,
    ops: &[SubOp],
    max_size: u64,
) -> Result<Prepared, OpReply> {
    let err = |e: OsdError| reply(store_code(&e), e.to_string());
    let meta = objstate::load_meta(s, key).map_err(err)?;
    let exists = meta.is_some();
    let meta = meta.unwrap_or_default();
    let mut size = match s.stat(key).map_err(|e| err(e.into()))? {
        Some(st) => st.size,
        None => 0,
    };
    let mut cur_exists = exists;
    let mut results = Vec::with_capacity(ops.len());
    let mut muts = Vec::new();
    let ok = |r: SubOpResult| SubOpResult {
        code: ResultCode::Ok as i32,
        ..r
    };
    let too_large = |n: u64| {
        reply(
            ResultCode::TooLarge,
            format!(
                "object would be {n} bytes, over the {max_size}-byte object size limit (osd_max_object_size)"
            ),
        )
    };
    for op in ops {
        let Some(op) = &op.op else {
            return Err(reply(ResultCode::Invalid, "empty sub-op"));
        };
        match op {
            Op::CmpXattr(c) => {
                let have = s
                    .getxattr(key, &format!("{USER_XATTR_PREFIX}{}", c.name))
                    .map_err(|e| err(e.into()))?;
                let cop = CmpOp::try_from(c.op).unwrap_or(CmpOp::CmpEq);
                if !cmp_ok(cop, have.as_ref(), &c.value) {
                    return Err(reply(
                        ResultCode::GuardFailed,
                        format!("cmpxattr {} failed", c.name),
                    ));
                }
                results.push(ok(SubOpResult::default()));
            }
            Op::AssertVersion(v) => {
                if meta.user_version != *v {
                    return Err(reply(
                        ResultCode::GuardFailed,
                        format!("version is {}, not {v}", meta.user_version),
                    ));
                }
                results.push(ok(SubOpResult::default()));
            }
            Op::OmapCmp(c) => {
                let have = if exists {
                    s.omap_get_values(key, std::slice::from_ref(&c.key))
                        .map_err(|e| err(e.into()))?
                        .into_iter()
                        .next()
                        .map(|(_, v)| v)
                } else {
                    None
                };
                let holds = match have {
                    None => c.absent,
                    Some(v) => !c.absent && v == c.value,
                };
                if !holds {
                    return Err(reply(
                        ResultCode::GuardFailed,
                        format!("omap_cmp on {:?} failed", String::from_utf8_lossy(&c.key)),
                    ));
                }
                results.push(ok(SubOpResult::default()));
            }
            Op::AssertExists(_) => {
                if !cur_exists {
                    return Err(reply(ResultCode::NotFound, "object does not exist"));
                }
                results.push(ok(SubOpResult::default()));
            }
            Op::Read(r) => {
                if !exists {
                    return Err(reply(ResultCode::NotFound, "object does not exist"));
                }
                let len = if r.length == 0 { None } else { Some(r.length) };
                let data = s.read(key, r.offset, len).map_err(|e| err(e.into()))?;
                results.push(ok(SubOpResult {
                    data,
                    ..Default::default()
                }));
            }
            Op::Stat(_) => {
                if !exists {
                    return Err(reply(ResultCode::NotFound, "object does not exist"));
                }
                results.push(ok(SubOpResult {
                    size,
                    mtime_unix_ms: meta.mtime_unix_ms,
                    ..Default::default()
                }));
            }
            Op::GetXattr(n) => {
                if !exists {
                    return Err(reply(ResultCode::NotFound, "object does not exist"));
                }
                match s
                    .getxattr(key, &format!("{USER_XATTR_PREFIX}{n}"))
                    .map_err(|e| err(e.into()))?
                {
                    Some(v) => results.push(ok(SubOpResult {
                        data: v,
                        ..Default::default()
                    })),
                    None => return Err(reply(ResultCode::NotFound, format!("no xattr {n}"))),
                }
            }
            Op::GetXattrs(_) => {
                if !exists {
                    return Err(reply(ResultCode::NotFound, "object does not exist"));
                }
                let xs = s.getxattrs(key).map_err(|e| err(e.into()))?;
                results.push(ok(SubOpResult {
                    xattrs: xs
                        .into_iter()
                        .filter_map(|(n, v)| {
                            n.strip_prefix(USER_XATTR_PREFIX).map(|n| Xattr {
                                name: n.to_string(),
                                value: v,
                            })
                        })
                        .collect(),
                    ..Default::default()
                }));
            }
            Op::OmapGetRange(g) => {
                if !exists {
                    return Err(reply(ResultCode::NotFound, "object does not exist"));
                }
                let max = if g.max == 0 { 1000 } else { g.max.min(10_000) } as usize;
                let after = (!g.start_after.is_empty()).then_some(g.start_after.as_ref());
                let mut entries = s
                    .omap_get(key, after, &g.prefix, max + 1)
                    .map_err(|e| err(e.into()))?;
                let more = entries.len() > max;
                entries.truncate(max);
                results.push(ok(SubOpResult {
                    entries: entries
                        .into_iter()
                        .map(|(key, value)| KeyValue { key, value })
                        .collect(),
                    more,
                    ..Default::default()
                }));
            }
            Op::OmapGetValues(k) => {
                if !exists {
                    return Err(reply(ResultCode::NotFound, "object does not exist"));
                }
                let entries = s.omap_get_values(key, &k.keys).map_err(|e| err(e.into()))?;
                results.push(ok(SubOpResult {
                    entries: entries
                        .into_iter()
                        .map(|(key, value)| KeyValue { key, value })
                        .collect(),
                    ..Default::default()
                }));
            }
            Op::WriteFull(d) => {
                if d.len() as u64 > max_size {
                    return Err(too_large(d.len() as u64));
                }
                size = d.len() as u64;
                cur_exists = true;
                muts.push(Mutation {
                    m: Some(M::WriteFull(d.clone())),
                });
                results.push(ok(SubOpResult::default()));
            }
            Op::Write(w) => {
                let end = w.offset.saturating_add(w.data.len() as u64);
                if end > max_size {
                    return Err(too_large(end));
                }
                size = size.max(end);
                cur_exists = true;
                muts.push(Mutation {
                    m: Some(M::Write(w.clone())),
                });
                results.push(ok(SubOpResult::default()));
            }
            Op::Append(d) => {
                let end = size.saturating_add(d.len() as u64);
                if end > max_size {
                    return Err(too_large(end));
                }
                muts.push(Mutation {
                    m: Some(M::Write(WriteAt {
                        offset: size,
                        data: d.clone(),
                    })),
                });
                size = end;
                cur_exists = true;
                results.push(ok(SubOpResult::default()));
            }
            Op::Truncate(t) => {
                if *t > max_size {
                    return Err(too_large(*t));
                }
                size = *t;
                cur_exists = true;
                muts.push(Mutation {
                    m: Some(M::Truncate(*t)),
                });
                results.push(ok(SubOpResult::default()));
            }
            Op::Remove(_) => {
                if !cur_exists {
                    return Err(reply(ResultCode::NotFound, "object does not exist"));
                }
                cur_exists = false;
                size = 0;
                muts.push(Mutation {
                    m: Some(M::Remove(Empty {})),
                });
                results.push(ok(SubOpResult::default()));
            }
            Op::Create(exclusive) => {
                if *exclusive && cur_exists {
                    return Err(reply(ResultCode::Exists, "object exists"));
                }
                cur_exists = true;
                muts.push(Mutation {
                    m: Some(M::Touch(Empty {})),
                });
                results.push(ok(SubOpResult::default()));
            }
            Op::SetXattr(x) => {
                if x.name.is_empty() {
                    return Err(reply(ResultCode::Invalid, "xattr names must not be empty"));
                }
                cur_exists = true;
                muts.push(Mutation {
                    m: Some(M::Touch(Empty {})),
                });
                muts.push(Mutation {
                    m: Some(M::SetXattrs(XattrList {
                        xattrs: vec![Xattr {
                            name: format!("{USER_XATTR_PREFIX}{}", x.name),
                            value: x.value.clone(),
                        }],
                    })),
                });
                results.push(ok(SubOpResult::default()));
            }
            Op::RmXattr(n) => {
                muts.push(Mutation {
                    m: Some(M::RmXattr(format!("{USER_XATTR_PREFIX}{n}"))),
                });
                results.push(ok(SubOpResult::default()));
            }
            Op::OmapSet(kv) => {
                cur_exists = true;
                muts.push(Mutation {
                    m: Some(M::Touch(Empty {})),
                });
                muts.push(Mutation {
                    m: Some(M::OmapSet(kv.clone())),
                });
                results.push(ok(SubOpResult::default()));
            }
            Op::OmapSetSeq(kv) => {
                let entries = kv
                    .entries
                    .iter()
                    .enumerate()
                    .map(|(i, e)| {
                        let seq = seq_suffix(meta.user_version, i, kv.entries.len());
                        let mut k = Vec::with_capacity(e.key.len() + seq.len());
                        k.extend_from_slice(&e.key);
                        k.extend_from_slice(seq.as_bytes());
                        KeyValue {
                            key: k.into(),
                            value: e.value.clone(),
                        }
                    })
                    .collect();
                cur_exists = true;
                muts.push(Mutation {
                    m: Some(M::Touch(Empty {})),
                });
                muts.push(Mutation {
                    m: Some(M::OmapSet(KvList { entries })),
                });
                results.push(ok(SubOpResult::default()));
            }
            Op::OmapRm(k) => {
                muts.push(Mutation {
                    m: Some(M::OmapRm(k.clone())),
                });
                results.push(ok(SubOpResult::default()));
            }
            Op::OmapClear(_) => {
                muts.push(Mutation {
                    m: Some(M::OmapClear(Empty {})),
                });
                results.push(ok(SubOpResult::default()));
            }
        }
    }
    if !muts.is_empty() && !cur_exists {
        // The op ends with the object deleted: one remove is the whole effect.
        muts = vec![Mutation {
            m: Some(M::Remove(Empty {})),
        }];
    }
    Ok(Prepared {
        reply: OpReply {
            code: ResultCode::Ok as i32,
            results,
            user_version: meta.user_version,
            version: ver(meta.ev()),
            ..Default::default()
        },
        deletes: !muts.is_empty() && !cur_exists,
        creates: !exists && cur_exists,
        old_exists: exists,
        mutations: muts,
        old_version: meta.ev(),
        old_user_version: meta.user_version,
    })
}

/// Applies a replicated op on a replica (after the caller checked the interval).
pub fn apply_rep_op(
    s: &dyn ObjectStore,
    pg: PgId,
    req: &RepOpRequest,
    summary: &pglog::PgSummary,
    trim: Option<Ev>,
) -> Result<(), OsdError> {
    let entry = req.entry.clone().unwrap_or_default();
    let txn = logged_txn(pg, &entry.object, &req.mutations, &entry, summary, trim);
    s.submit(txn).map_err(Into::into)
}

/// The log key suffix of entry `i` of `n` appended by one `omap_set_seq`
/// on an object at version `old`: the last entry gets the new version
/// (`old + 1`, 20 digits), earlier ones `old` plus `.` and their index, so
/// they sort after every entry and position of version `old` and before the
/// last one, which is the position the object reports afterwards.
fn seq_suffix(old: u64, i: usize, n: usize) -> String {
    if i + 1 == n {
        format!("{:020}", old + 1)
    } else {
        format!("{old:020}.{i:06}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use meridian_objectstore::MemStore;

    #[test]
    fn only_ops_reading_little_data_are_prepared_inline() {
        let s = MemStore::new();
        let pg = PgId { pool: 1, seed: 0 };
        let (small, big) = (ObjectKey::new(pg, "small"), ObjectKey::new(pg, "big"));
        s.submit(
            Transaction::new()
                .write_full(&small, vec![1u8; 4096])
                .write_full(&big, vec![2u8; 100_000]),
        )
        .unwrap();
        let read = |offset, length| SubOp {
            op: Some(Op::Read(ReadAt { offset, length })),
        };
        let stat = SubOp {
            op: Some(Op::Stat(Empty {})),
        };
        let write = SubOp {
            op: Some(Op::WriteFull(Bytes::from(vec![3u8; 1 << 20]))),
        };
        assert!(
            reads_little(&s, &small, &[read(0, 0)]),
            "a whole small object"
        );
        assert!(!reads_little(&s, &big, &[read(0, 0)]), "a whole big object");
        assert!(
            reads_little(&s, &big, &[read(96_000, 0)]),
            "the small tail of one"
        );
        assert!(reads_little(&s, &big, &[read(0, 8192), stat.clone()]));
        assert!(!reads_little(&s, &big, &[stat.clone(), read(0, 8193)]));
        assert!(reads_little(&s, &big, &[write, stat]), "no data read");
        let absent = ObjectKey::new(pg, "absent");
        assert!(reads_little(&s, &absent, &[read(0, 0)]), "nothing to read");
    }

    fn store_with_log_object(user_version: u64) -> (MemStore, ObjectKey) {
        let s = MemStore::new();
        let key = ObjectKey::new(PgId { pool: 1, seed: 0 }, "log");
        let meta = ObjectMeta {
            version: ver((1, user_version)),
            user_version,
            mtime_unix_ms: 1,
        };
        let txn = Transaction::new()
            .touch(&key)
            .set_xattrs(&key, vec![(META_XATTR.into(), objstate::meta_value(&meta))])
            .omap_set(&key, vec![(Bytes::from("a"), Bytes::from("1"))]);
        s.submit(txn).expect("seed object");
        (s, key)
    }

    fn op(o: Op) -> SubOp {
        SubOp { op: Some(o) }
    }

    #[test]
    fn several_log_entries_in_one_op_sort_between_the_versions() {
        let keys: Vec<String> = (0..3).map(|i| seq_suffix(7, i, 3)).collect();
        assert_eq!(
            keys,
            [
                "00000000000000000007.000000",
                "00000000000000000007.000001",
                "00000000000000000008"
            ]
        );
        let mut sorted = keys.clone();
        sorted.push(format!("{:020}", 7));
        sorted.push(format!("{:020}", 9));
        sorted.sort();
        assert_eq!(
            sorted.first().map(String::as_str),
            Some("00000000000000000007")
        );
        assert_eq!(&sorted[1..4], &keys[..], "in order, after version 7");
        assert_eq!(seq_suffix(7, 0, 1), "00000000000000000008");
    }

    #[test]
    fn omap_set_seq_appends_the_new_user_version() {
        let (s, key) = store_with_log_object(7);
        let p = prepare(
            &s,
            &key,
            &[op(Op::OmapSetSeq(KvList {
                entries: vec![KeyValue {
                    key: Bytes::from("log."),
                    value: Bytes::from("x"),
                }],
            }))],
            1 << 20,
        )
        .expect("prepare");
        let keys: Vec<Bytes> = p
            .mutations
            .iter()
            .filter_map(|m| match &m.m {
                Some(M::OmapSet(kv)) => Some(kv.entries[0].key.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(keys, vec![Bytes::from("log.00000000000000000008")]);
        assert_eq!(
            p.old_user_version + 1,
            8,
            "the key names the version the op gets"
        );
    }

    #[test]
    fn omap_cmp_guards_one_key() {
        let (s, key) = store_with_log_object(3);
        let cmp = |k: &str, v: Option<&str>| {
            op(Op::OmapCmp(OmapCmp {
                key: Bytes::from(k.to_string()),
                value: v.map(|v| Bytes::from(v.to_string())).unwrap_or_default(),
                absent: v.is_none(),
            }))
        };
        let set = op(Op::OmapSet(KvList {
            entries: vec![KeyValue {
                key: Bytes::from("b"),
                value: Bytes::from("2"),
            }],
        }));
        for (guard, holds) in [
            (cmp("a", Some("1")), true),
            (cmp("a", Some("2")), false),
            (cmp("a", None), false),
            (cmp("b", None), true),
            (cmp("b", Some("")), false),
        ] {
            let r = prepare(&s, &key, &[guard.clone(), set.clone()], 1 << 20);
            match r {
                Ok(p) => {
                    assert!(holds, "{guard:?} should have failed");
                    assert!(!p.mutations.is_empty());
                }
                Err(rep) => {
                    assert!(!holds, "{guard:?} should have held: {}", rep.message);
                    assert_eq!(rep.code, ResultCode::GuardFailed as i32);
                }
            }
        }
        // On an object that does not exist every key is absent.
        let missing = ObjectKey::new(PgId { pool: 1, seed: 0 }, "nothing");
        assert!(prepare(&s, &missing, &[cmp("a", None)], 1 << 20).is_ok());
        assert!(prepare(&s, &missing, &[cmp("a", Some("1"))], 1 << 20).is_err());
    }
}
