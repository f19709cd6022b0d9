//! Peering over an in-memory network, deterministic for a seed: several
//! OSDs, each holding the state machine of one PG over its own `MemStore`;
//! the monitors' real state machine publishing the maps; a message queue
//! that carries every effect (queries, recovery, activation, rep ops) and
//! delivers them in FIFO or shuffled order. Tests kill OSDs (memory lost,
//! store kept, queued messages dropped), restart them, cut replies, and check
//! that no acknowledged write is ever lost and that a PG stays down or
//! incomplete (saying why) rather than going active without the data.

use super::authority::RecoveryPlan;
use super::intervals::{compute_intervals, placement_changed};
use super::testmaps::TestMon;
use super::{Effect, OpPipeline, PeeringState, PgState};
use crate::exec::logged_txn;
use crate::objstate;
use crate::pglog::{self, Ev, PgHistory, PgSummary, ev, ver};
use bytes::Bytes;
use meridian_client::PgId as Cpg;
use meridian_objectstore::{MemStore, ObjectKey, ObjectStore, PgId, Transaction};
use meridian_proto::osd::mutation::M;
use meridian_proto::osd::{LogEntry, LogOp, Mutation, PgActivateRequest, PgInfo, Xattr, XattrList};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

const PG: PgId = PgId { pool: 1, seed: 0 };
const CPG: Cpg = Cpg { pool: 1, seed: 0 };
const MAX_LOG: usize = 8;

#[derive(Debug, Clone)]
enum Msg {
    Map(u32),
    Query {
        from: u32,
        to: u32,
        act: u64,
    },
    Info {
        to: u32,
        from: u32,
        act: u64,
        info: Result<PgInfo, String>,
    },
    UpThru {
        osd: u32,
        epoch: u64,
    },
    Recover {
        primary: u32,
        act: u64,
        target: u32,
        source: u32,
        plan: RecoveryPlan,
    },
    Adopt {
        osd: u32,
        act: u64,
        log: Vec<LogEntry>,
        summary: PgSummary,
    },
    Activate {
        from: u32,
        to: u32,
        req: PgActivateRequest,
    },
    Activated {
        to: u32,
        from: u32,
        act: u64,
        ok: Result<(), String>,
    },
    Persist {
        osd: u32,
        act: u64,
        history: PgHistory,
    },
    RemoveStray {
        from: u32,
        to: u32,
    },
    Retry {
        osd: u32,
        act: u64,
    },
    RepOp {
        from: u32,
        to: u32,
        act: u64,
        interval: u64,
        prior: Ev,
        entry: LogEntry,
        muts: Vec<Mutation>,
    },
    RepAck {
        to: u32,
        from: u32,
        act: u64,
        v: Ev,
        ok: bool,
    },
}

impl Msg {
    fn touches(&self, o: u32) -> bool {
        match self {
            Msg::Map(to) => *to == o,
            Msg::Query { from, to, .. }
            | Msg::Info { to, from, .. }
            | Msg::Activate { from, to, .. }
            | Msg::Activated { to, from, .. }
            | Msg::RemoveStray { from, to }
            | Msg::RepOp { from, to, .. }
            | Msg::RepAck { to, from, .. } => *from == o || *to == o,
            Msg::UpThru { osd, .. }
            | Msg::Adopt { osd, .. }
            | Msg::Persist { osd, .. }
            | Msg::Retry { osd, .. } => *osd == o,
            Msg::Recover {
                primary,
                target,
                source,
                ..
            } => *primary == o || *target == o || *source == o,
        }
    }
}

struct SimOsd {
    store: MemStore,
    up: bool,
    processed: u64,
    m: Option<PeeringState>,
    ops: OpPipeline,
}

/// A write in flight at a primary.
struct Pending {
    object: String,
    value: u64,
    primary: u32,
    act: u64,
}

/// The simulated cluster.
struct Sim {
    mon: TestMon,
    osds: BTreeMap<u32, SimOsd>,
    queue: VecDeque<Msg>,
    rng: StdRng,
    shuffle: bool,
    /// Probability that a rep op's reply is lost.
    drop_rep_acks: f64,
    pending: BTreeMap<Ev, Pending>,
    /// Per object: last acknowledged value, and values written after it
    /// whose outcome is unknown (never acknowledged).
    acked: BTreeMap<String, (Option<u64>, BTreeSet<u64>)>,
    next_value: u64,
    /// Recovery of a copy stops after this many objects (a crash mid-backfill).
    recover_limit: Option<usize>,
}

impl Sim {
    fn new(osds: u32, size: u32, min_size: u32, seed: u64) -> Self {
        let mon = TestMon::new(osds, 1, size, min_size);
        let mut sim = Self {
            mon,
            osds: BTreeMap::new(),
            queue: VecDeque::new(),
            rng: StdRng::seed_from_u64(seed),
            shuffle: false,
            drop_rep_acks: 0.0,
            pending: BTreeMap::new(),
            acked: BTreeMap::new(),
            next_value: 1,
            recover_limit: None,
        };
        for o in 0..osds {
            sim.osds.insert(
                o,
                SimOsd {
                    store: MemStore::with_identity("sim", o),
                    up: true,
                    processed: 0,
                    m: None,
                    ops: OpPipeline::default(),
                },
            );
        }
        sim.broadcast_map();
        sim
    }

    fn broadcast_map(&mut self) {
        let view = self.mon.view();
        for (o, s) in &self.osds {
            if s.up && view.is_up(*o) {
                self.queue.push_back(Msg::Map(*o));
            }
        }
    }

    fn acting(&self) -> Vec<u32> {
        let view = self.mon.view();
        super::intervals::placement_at(&view, CPG)
            .map(|p| p.acting)
            .unwrap_or_default()
    }

    fn state(&self, o: u32) -> Option<PgState> {
        self.osds[&o].m.as_ref().map(|m| m.state())
    }

    fn machine(&self, o: u32) -> &PeeringState {
        self.osds[&o].m.as_ref().expect("machine")
    }

    /// The current primary, if it is active.
    fn active_primary(&self) -> Option<u32> {
        let p = *self.acting().first()?;
        (self.state(p) == Some(PgState::Active)).then_some(p)
    }

    // ---- faults ----

    fn kill(&mut self, o: u32) {
        let s = self.osds.get_mut(&o).expect("osd");
        s.up = false;
        s.m = None;
        s.processed = 0;
        self.queue.retain(|m| !m.touches(o));
        self.pending.retain(|_, p| p.primary != o);
        self.mon.down(o);
        self.broadcast_map();
    }

    fn restart(&mut self, o: u32) {
        let created = self.pool_created();
        let s = self.osds.get_mut(&o).expect("osd");
        s.up = true;
        s.processed = 0;
        s.ops = OpPipeline::default();
        let local = pglog::load_summary(&s.store, PG).expect("load summary");
        let mut m = PeeringState::new(CPG, o, local);
        m.set_created(created);
        s.m = Some(m);
        let empty = s
            .store
            .list_collections()
            .map(|c| c.is_empty())
            .unwrap_or(false);
        self.mon.boot_store(o, empty);
        self.broadcast_map();
    }

    /// The OSD's disk is replaced: it comes back under the same id, empty.
    fn wipe(&mut self, o: u32) {
        self.osds.get_mut(&o).expect("osd").store = MemStore::with_identity("sim", o);
    }

    fn pool_created(&self) -> u64 {
        self.mon
            .view()
            .pool(1)
            .map(|p| p.created_epoch)
            .unwrap_or(0)
    }

    // ---- the message loop ----

    fn run(&mut self, max_steps: usize) {
        for _ in 0..max_steps {
            let msg = if self.shuffle && self.queue.len() > 1 {
                let i = self.rng.gen_range(0..self.queue.len().min(4));
                self.queue.remove(i)
            } else {
                self.queue.pop_front()
            };
            let Some(msg) = msg else {
                return;
            };
            self.deliver(msg);
        }
        panic!("the simulation did not settle in {max_steps} steps");
    }

    fn dispatch(&mut self, o: u32, act: u64, fx: Vec<Effect>) {
        for e in fx {
            let msg = match e {
                Effect::Query { osd, .. } => Msg::Query {
                    from: o,
                    to: osd,
                    act,
                },
                Effect::RequestUpThru { epoch } => Msg::UpThru { osd: o, epoch },
                Effect::Recover {
                    target,
                    source,
                    plan,
                } => Msg::Recover {
                    primary: o,
                    act,
                    target,
                    source,
                    plan,
                },
                Effect::AdoptLog { log, summary } => Msg::Adopt {
                    osd: o,
                    act,
                    log,
                    summary,
                },
                Effect::Activate { osd, req } => Msg::Activate {
                    from: o,
                    to: osd,
                    req,
                },
                Effect::PersistInfo { history } => Msg::Persist {
                    osd: o,
                    act,
                    history,
                },
                Effect::RemoveStray { osd } => Msg::RemoveStray { from: o, to: osd },
                Effect::RetryAfter { .. } => Msg::Retry { osd: o, act },
            };
            self.queue.push_back(msg);
        }
    }

    fn with_machine(&mut self, o: u32, f: impl FnOnce(&mut PeeringState) -> Vec<Effect>) {
        let Some(s) = self.osds.get_mut(&o) else {
            return;
        };
        let Some(m) = s.m.as_mut() else {
            return;
        };
        let fx = f(m);
        let act = m.activation();
        self.dispatch(o, act, fx);
    }

    fn is_up(&self, o: u32) -> bool {
        self.osds.get(&o).is_some_and(|s| s.up)
    }

    fn deliver(&mut self, msg: Msg) {
        match msg {
            Msg::Map(o) => self.take_map(o),
            Msg::Query { from, to, act } => {
                let info = if self.is_up(to) {
                    local_info(&self.osds[&to].store)
                } else {
                    Err(format!("osd.{to} unreachable"))
                };
                self.queue.push_back(Msg::Info {
                    to: from,
                    from: to,
                    act,
                    info,
                });
            }
            Msg::Info {
                to,
                from,
                act,
                info,
            } => self.with_machine(to, |m| match info {
                Ok(i) => m.on_info(act, from, i),
                Err(e) => m.on_query_failed(act, from, e),
            }),
            Msg::UpThru { osd, epoch } => {
                if self.is_up(osd) {
                    self.mon.alive(osd, epoch);
                    self.broadcast_map();
                }
            }
            Msg::Recover {
                primary,
                act,
                target,
                source,
                plan,
            } => {
                let r = self.recover(target, source, &plan);
                self.with_machine(primary, |m| match r {
                    Ok(()) => m.on_recovered(act, target),
                    Err(e) => m.on_step_failed(act, target, e),
                });
            }
            Msg::Adopt {
                osd,
                act,
                log,
                summary,
            } => {
                let s = self.osds.get_mut(&osd).expect("osd");
                let mut txn = Transaction::new().touch(&ObjectKey::meta(PG));
                txn = pglog::replace_log(txn, PG, &log);
                txn = pglog::put_info(txn, PG, &summary);
                s.store.submit(txn).expect("adopt");
                let first = s.m.as_ref().map(|m| m.interval().first).unwrap_or(0);
                if s.m.as_ref().is_some_and(|m| m.activation() == act) {
                    s.ops = OpPipeline::new(act, first, summary.clone(), &log, MAX_LOG);
                }
                self.with_machine(osd, |m| m.on_adopted(act, summary));
            }
            Msg::Activate { from, to, req } => {
                let ok = self.activate(to, &req);
                self.queue.push_back(Msg::Activated {
                    to: from,
                    from: to,
                    act: req.activation,
                    ok,
                });
            }
            Msg::Activated { to, from, act, ok } => self.with_machine(to, |m| match ok {
                Ok(()) => m.on_activated(act, from),
                Err(e) => m.on_step_failed(act, from, e),
            }),
            Msg::Persist { osd, act, history } => {
                let s = self.osds.get_mut(&osd).expect("osd");
                if s.ops.activation() == act {
                    s.ops.set_history(history);
                    let summary = s.ops.summary().clone();
                    s.store
                        .submit(pglog::put_info(Transaction::new(), PG, &summary))
                        .expect("persist");
                    if let Some(m) = s.m.as_mut() {
                        m.set_local(Some(summary));
                    }
                }
            }
            Msg::RemoveStray { to, .. } => {
                let acting = self.acting();
                if !acting.contains(&to) && self.is_up(to) {
                    let s = self.osds.get_mut(&to).expect("osd");
                    s.store
                        .submit(Transaction::new().remove_collection(PG))
                        .expect("remove");
                    if let Some(m) = s.m.as_mut() {
                        m.set_local(None);
                    }
                }
            }
            Msg::Retry { osd, act } => {
                let view = self.mon.view();
                self.with_machine(osd, |m| m.on_retry(act, &view));
            }
            Msg::RepOp {
                from,
                to,
                act,
                interval,
                prior,
                entry,
                muts,
            } => {
                let v = ev(&entry.version);
                let ok = self.rep_op(from, to, act, interval, prior, &entry, &muts);
                let lost = self.rng.gen_bool(self.drop_rep_acks);
                self.queue.push_back(Msg::RepAck {
                    to: from,
                    from: to,
                    act,
                    v,
                    ok: ok && !lost,
                });
            }
            Msg::RepAck {
                to,
                from,
                act,
                v,
                ok,
            } => self.rep_ack(to, from, act, v, ok),
        }
    }

    /// An OSD takes in the newest map, as `maps::advance` does.
    fn take_map(&mut self, o: u32) {
        if !self.is_up(o) {
            return;
        }
        let view = self.mon.view();
        let epoch = view.epoch();
        if !view.is_up(o) {
            return;
        }
        let created = self.pool_created();
        let s = self.osds.get_mut(&o).expect("osd");
        if s.processed >= epoch {
            return;
        }
        let acting = super::intervals::placement_at(&view, CPG)
            .map(|p| p.acting)
            .unwrap_or_default();
        if s.m.is_none() {
            let local = pglog::load_summary(&s.store, PG).expect("load summary");
            if local.is_none() && !acting.contains(&o) {
                s.processed = epoch;
                return;
            }
            let mut m = PeeringState::new(CPG, o, local);
            m.set_created(created);
            s.m = Some(m);
        }
        let processed = s.processed;
        let m = s.m.as_ref().expect("machine");
        let steps: Vec<_> = self
            .mon
            .maps
            .range(processed + 1..=epoch)
            .map(|(_, v)| v.clone())
            .collect();
        let changed = m.state() == PgState::Initial
            || placement_changed(CPG, &m.interval().placement, steps.iter());
        let floor = m.history_floor();
        self.osds.get_mut(&o).expect("osd").processed = epoch;
        if changed {
            let maps = self.mon.history_from(floor);
            let hist = compute_intervals(CPG, maps.iter());
            self.with_machine(o, |m| m.on_new_interval(hist, &view));
        } else {
            self.with_machine(o, |m| m.on_map(&view));
        }
    }

    fn recover(&mut self, target: u32, source: u32, plan: &RecoveryPlan) -> Result<(), String> {
        if !self.is_up(target) || !self.is_up(source) {
            return Err("peer unreachable".into());
        }
        let src = self.osds[&source].store.clone();
        let dst = self.osds[&target].store.clone();
        let names: Vec<String> = match plan {
            RecoveryPlan::UpToDate => return Ok(()),
            RecoveryPlan::Objects(n) => n.iter().cloned().collect(),
            RecoveryPlan::Backfill => {
                let mut s = pglog::load_summary(&dst, PG)
                    .map_err(|e| e.to_string())?
                    .unwrap_or_default();
                s.backfilling = true;
                dst.submit(pglog::put_info(
                    Transaction::new().touch(&ObjectKey::meta(PG)),
                    PG,
                    &s,
                ))
                .map_err(|e| e.to_string())?;
                if let Some(m) = self.osds.get_mut(&target).and_then(|t| t.m.as_mut()) {
                    m.set_local(Some(s));
                }
                let theirs = dst
                    .list_objects(PG, None, 100_000)
                    .map_err(|e| e.to_string())?;
                let mine = src
                    .list_objects(PG, None, 100_000)
                    .map_err(|e| e.to_string())?;
                let keep: BTreeSet<&String> = mine.iter().collect();
                let mut all = mine.clone();
                all.extend(theirs.into_iter().filter(|n| !keep.contains(n)));
                all
            }
        };
        for (i, name) in names.into_iter().enumerate() {
            if self.recover_limit.is_some_and(|l| i >= l) {
                // The source dies half way through.
                self.recover_limit = None;
                self.kill(source);
                return Err("source died mid-recovery".into());
            }
            let key = ObjectKey::new(PG, name);
            let state = objstate::read_state(&src, &key).map_err(|e| e.to_string())?;
            dst.submit(objstate::write_state(Transaction::new(), &key, &state))
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    fn activate(&mut self, to: u32, req: &PgActivateRequest) -> Result<(), String> {
        if !self.is_up(to) {
            return Err("unreachable".into());
        }
        self.take_map(to);
        let s = self.osds.get_mut(&to).expect("osd");
        let m = s.m.as_mut().ok_or("no pg")?;
        let summary = m.on_activate(req)?;
        let mut txn = Transaction::new().touch(&ObjectKey::meta(PG));
        txn = pglog::replace_log(txn, PG, &req.log);
        txn = pglog::put_info(txn, PG, &summary);
        s.store.submit(txn).map_err(|e| e.to_string())?;
        m.on_activate_done(req, summary.clone());
        s.ops = OpPipeline::new(req.activation, req.map_epoch, summary, &req.log, MAX_LOG);
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn rep_op(
        &mut self,
        from: u32,
        to: u32,
        act: u64,
        interval: u64,
        prior: Ev,
        entry: &LogEntry,
        muts: &[Mutation],
    ) -> bool {
        let Some(s) = self.osds.get_mut(&to).filter(|s| s.up) else {
            return false;
        };
        let Some(m) = s.m.as_ref() else {
            return false;
        };
        if !m.accepts_rep_op(from, interval, act) {
            return false;
        }
        let rid = entry.reqid.as_ref().map(|r| (r.client, r.tid));
        let Ok((summary, trim)) =
            s.ops
                .replicate(prior, ev(&entry.version), rid, entry.user_version)
        else {
            return false;
        };
        let txn = logged_txn(PG, &entry.object, muts, entry, &summary, trim);
        s.store.submit(txn).expect("replica commit");
        true
    }

    fn rep_ack(&mut self, to: u32, from: u32, act: u64, v: Ev, ok: bool) {
        let Some(p) = self.pending.get_mut(&v) else {
            return;
        };
        if p.primary != to || p.act != act {
            return;
        }
        if !ok {
            self.pending.remove(&v);
            self.with_machine(to, |m| m.on_op_failed(act, "replica failed".into()));
            return;
        }
        let s = self.osds.get_mut(&to).expect("osd");
        if s.ops.committed(v, from, None) {
            let p = self.pending.remove(&v).expect("pending");
            let slot = self.acked.entry(p.object.clone()).or_default();
            // Acknowledged: every later unknown write of this object is older.
            slot.1.retain(|x| *x > p.value);
            slot.1.remove(&p.value);
            slot.0 = Some(p.value);
        }
    }

    /// A client write at the current primary; false if it is not active.
    fn write(&mut self, object: &str) -> bool {
        let acting = self.acting();
        let Some(&primary) = acting.first() else {
            return false;
        };
        if self.state(primary) != Some(PgState::Active) || (acting.len() as u32) < 2 {
            return false;
        }
        // One write per object in flight (the daemon's per-object lock).
        if self.pending.values().any(|p| p.object == object) {
            return false;
        }
        let value = self.next_value;
        self.next_value += 1;
        let s = self.osds.get_mut(&primary).expect("osd");
        let m = s.m.as_ref().expect("machine");
        let act = m.activation();
        let interval = m.interval().first;
        if s.ops.activation() != act {
            return false;
        }
        let a = s.ops.assign(None, value, acting.iter().copied());
        let entry = LogEntry {
            version: ver(a.version),
            prior_version: None,
            object: object.to_string(),
            op: LogOp::Modify as i32,
            reqid: None,
            user_version: value,
            mtime_unix_ms: 0,
        };
        let muts = vec![
            Mutation {
                m: Some(M::WriteFull(Bytes::from(value.to_le_bytes().to_vec()))),
            },
            Mutation {
                m: Some(M::SetXattrs(XattrList {
                    xattrs: vec![Xattr {
                        name: objstate::META_XATTR.into(),
                        value: objstate::meta_value(&objstate::ObjectMeta {
                            version: ver(a.version),
                            user_version: value,
                            mtime_unix_ms: 0,
                        }),
                    }],
                })),
            },
        ];
        let txn = logged_txn(PG, object, &muts, &entry, &a.summary, a.trim);
        s.store.submit(txn).expect("local commit");
        s.ops.committed(a.version, primary, None);
        self.acked
            .entry(object.to_string())
            .or_default()
            .1
            .insert(value);
        self.pending.insert(
            a.version,
            Pending {
                object: object.to_string(),
                value,
                primary,
                act,
            },
        );
        for &r in acting.iter().skip(1) {
            self.queue.push_back(Msg::RepOp {
                from: primary,
                to: r,
                act,
                interval,
                prior: a.prior,
                entry: entry.clone(),
                muts: muts.clone(),
            });
        }
        true
    }

    /// Writes `n` objects and runs until they are acknowledged.
    fn write_all(&mut self, names: &[&str]) {
        for n in names {
            assert!(self.write(n), "pg not writable: {}", self.describe());
        }
        self.run(10_000);
        assert!(self.pending.is_empty(), "writes not acknowledged");
    }

    fn value_on(&self, o: u32, object: &str) -> Option<u64> {
        let key = ObjectKey::new(PG, object);
        let data = self.osds[&o].store.read(&key, 0, None).ok()?;
        Some(u64::from_le_bytes(data.as_ref().try_into().ok()?))
    }

    /// Every acknowledged write is what the active primary and every acting
    /// replica hold (or a later write whose outcome was unknown).
    fn check_no_acked_write_lost(&self) {
        let p = self
            .active_primary()
            .unwrap_or_else(|| panic!("no active primary: {}", self.describe()));
        for o in self.acting() {
            for (name, (acked, unknown)) in &self.acked {
                let have = self.value_on(o, name);
                let ok = match acked {
                    Some(a) => have == Some(*a) || have.is_some_and(|h| unknown.contains(&h)),
                    None => have.is_none() || have.is_some_and(|h| unknown.contains(&h)),
                };
                assert!(
                    ok,
                    "{name}: osd.{o} (primary osd.{p}) holds {have:?}, acknowledged {acked:?} \
                     (unknown later writes {unknown:?})\n{}",
                    self.describe()
                );
            }
        }
        // And the copies agree with each other.
        let acting = self.acting();
        for name in self.acked.keys() {
            let vals: BTreeSet<Option<u64>> =
                acting.iter().map(|o| self.value_on(*o, name)).collect();
            assert_eq!(
                vals.len(),
                1,
                "{name}: copies differ: {vals:?}\n{}",
                self.describe()
            );
        }
    }

    fn describe(&self) -> String {
        let mut out = format!("epoch {} acting {:?}\n", self.mon.epoch(), self.acting());
        for (o, s) in &self.osds {
            match &s.m {
                Some(m) => out.push_str(&format!(
                    "  osd.{o} up={} {} interval {} reason {:?} local {:?}\n",
                    s.up,
                    m.state().as_str(),
                    m.interval().first,
                    m.reason(),
                    m.local()
                        .map(|l| (l.last_update, l.last_epoch_started, l.backfilling)),
                )),
                None => out.push_str(&format!("  osd.{o} up={} (no pg)\n", s.up)),
            }
        }
        out
    }
}

fn local_info(store: &MemStore) -> Result<PgInfo, String> {
    let Some(sum) = pglog::load_summary(store, PG).map_err(|e| e.to_string())? else {
        return Ok(PgInfo {
            pg: pglog::pgref(PG),
            exists: false,
            ..Default::default()
        });
    };
    let mut info = sum.to_info(PG);
    info.log = pglog::load_log(store, PG).map_err(|e| e.to_string())?;
    Ok(info)
}

fn names(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i}")).collect()
}

fn refs(v: &[String]) -> Vec<&str> {
    v.iter().map(|s| s.as_str()).collect()
}

#[test]
fn a_new_pool_goes_active_clean_empty() {
    let mut sim = Sim::new(3, 3, 2, 1);
    sim.run(10_000);
    let p = sim.active_primary().expect("active");
    assert!(sim.machine(p).is_clean());
    let objs = names("o", 5);
    sim.write_all(&refs(&objs));
    sim.check_no_acked_write_lost();
}

/// The sequence: C down; writes acknowledged on A and B; A and B
/// down; C returns alone. C must stay down (waiting for A or B), not serve
/// its old data; when A and B return every acknowledged write is there.
#[test]
fn a_stale_copy_returning_first_does_not_win() {
    let mut sim = Sim::new(3, 3, 2, 2);
    sim.run(10_000);
    let objs = names("o", 20);
    sim.write_all(&refs(&objs));
    let acting = sim.acting();
    let (a, b, c) = (acting[0], acting[1], acting[2]);
    sim.kill(c);
    sim.run(10_000);
    assert!(sim.active_primary().is_some(), "{}", sim.describe());
    sim.write_all(&refs(&objs)); // overwrite all 20 on A and B
    sim.kill(a);
    sim.kill(b);
    sim.restart(c);
    sim.run(10_000);
    assert_eq!(sim.acting(), vec![c]);
    let m = sim.machine(c);
    assert_eq!(m.state(), PgState::Down, "{}", sim.describe());
    assert_eq!(m.prior().blocked_by, [a, b].into_iter().collect());
    assert!(m.reason().contains(&format!("osd.{a}")), "{}", m.reason());
    assert!(!sim.write("o1"), "a down PG takes no writes");
    sim.restart(a);
    sim.restart(b);
    sim.run(10_000);
    sim.check_no_acked_write_lost();
    assert!(sim.machine(sim.acting()[0]).is_clean());
}

/// Every holder of a PG is down long enough to be marked out: the PG maps
/// to empty OSDs, which must not go active empty; once the old holders are
/// up again (still out) the new acting set is filled from them.
#[test]
fn a_remap_to_empty_osds_waits_for_the_old_holders() {
    let mut sim = Sim::new(6, 3, 2, 3);
    sim.run(10_000);
    let objs = names("o", 12);
    sim.write_all(&refs(&objs));
    let old = sim.acting();
    for &o in &old {
        sim.kill(o);
    }
    for &o in &old {
        sim.mon.out(o);
    }
    sim.broadcast_map();
    sim.run(10_000);
    let new = sim.acting();
    assert_eq!(new.len(), 3);
    assert!(new.iter().all(|o| !old.contains(o)), "{new:?} vs {old:?}");
    let p = new[0];
    assert_eq!(sim.machine(p).state(), PgState::Down, "{}", sim.describe());
    assert_eq!(
        sim.machine(p).prior().blocked_by,
        old.iter().copied().collect()
    );
    // The old holders come back but stay out (an operator keeps them out).
    for &o in &old {
        sim.restart(o);
        sim.mon.set_in(o, false);
    }
    sim.broadcast_map();
    sim.run(20_000);
    assert_eq!(sim.acting(), new, "the PG stays on the new OSDs");
    sim.check_no_acked_write_lost();
    // Clean: the strays were removed.
    for &o in &old {
        assert!(
            sim.value_on(o, "o0").is_none(),
            "stray copy on osd.{o} not removed\n{}",
            sim.describe()
        );
    }
}

/// A disk replaced under the same OSD id holds none of the writes of the
/// intervals before it: it must not count as the member that answered for
/// them, or the PG would go active on a stale copy.
#[test]
fn a_replaced_disk_does_not_answer_for_older_intervals() {
    let mut sim = Sim::new(3, 3, 2, 10);
    sim.run(10_000);
    let objs = names("o", 6);
    sim.write_all(&refs(&objs));
    let acting = sim.acting();
    let (a, b, c) = (acting[0], acting[1], acting[2]);
    sim.kill(c);
    sim.run(10_000);
    sim.write_all(&refs(&objs)); // acknowledged on A and B only
    sim.kill(a);
    sim.kill(b);
    sim.wipe(a); // A's disk is replaced; B stays dead
    sim.restart(a);
    sim.restart(c);
    sim.run(20_000);
    let p = sim.acting()[0];
    assert_ne!(sim.state(p), Some(PgState::Active), "{}", sim.describe());
    assert!(
        sim.machine(p).prior().blocked_by.contains(&b),
        "{}",
        sim.describe()
    );
    // B returns: everything acknowledged is there.
    sim.restart(b);
    sim.run(20_000);
    sim.check_no_acked_write_lost();
}

/// An operator declares the missing OSDs lost: the PG goes active with
/// what it has, explicitly, never implicitly.
#[test]
fn osd_lost_unblocks_a_down_pg() {
    let mut sim = Sim::new(3, 3, 2, 4);
    sim.run(10_000);
    let objs = names("o", 4);
    sim.write_all(&refs(&objs));
    let acting = sim.acting();
    let (a, b, c) = (acting[0], acting[1], acting[2]);
    sim.kill(c);
    sim.run(10_000);
    sim.write_all(&refs(&objs));
    sim.kill(a);
    sim.kill(b);
    sim.restart(c);
    sim.run(10_000);
    assert_eq!(sim.machine(c).state(), PgState::Down);
    sim.mon.lost(a);
    sim.broadcast_map();
    sim.run(10_000);
    assert_eq!(
        sim.machine(c).state(),
        PgState::Down,
        "b may still hold the writes"
    );
    sim.mon.lost(b);
    sim.broadcast_map();
    sim.run(10_000);
    assert_eq!(
        sim.machine(c).state(),
        PgState::Active,
        "{}",
        sim.describe()
    );
}

/// A copy that was being backfilled when its source died is never taken as
/// authoritative: the PG waits for a complete copy.
#[test]
fn a_half_backfilled_copy_is_never_authoritative() {
    let mut sim = Sim::new(6, 3, 2, 5);
    sim.run(10_000);
    let objs = names("o", 10);
    sim.write_all(&refs(&objs));
    let old = sim.acting();
    // Two holders are gone for good; the third is out but up, so the PG
    // backfills the new acting set from it, and it dies half way.
    sim.kill(old[1]);
    sim.kill(old[2]);
    sim.mon.out(old[1]);
    sim.mon.out(old[2]);
    sim.mon.set_in(old[0], false);
    sim.recover_limit = Some(4);
    sim.broadcast_map();
    sim.run(20_000);
    let p = sim.acting()[0];
    assert!(
        matches!(sim.machine(p).state(), PgState::Down | PgState::Incomplete),
        "{}",
        sim.describe()
    );
    assert!(sim.active_primary().is_none());
    // The complete copy returns: everything is recovered from it.
    sim.restart(old[0]);
    sim.mon.set_in(old[0], false);
    sim.broadcast_map();
    sim.run(20_000);
    sim.check_no_acked_write_lost();
}

/// The primary dies after its own commit, before any replica got the op:
/// the op was never acknowledged, and when the old primary returns its
/// divergent entry is undone so every copy agrees.
#[test]
fn a_divergent_entry_of_a_dead_primary_is_undone() {
    let mut sim = Sim::new(3, 3, 2, 6);
    sim.run(10_000);
    let objs = names("o", 3);
    sim.write_all(&refs(&objs));
    let a = sim.acting()[0];
    assert!(sim.write("o1"));
    // Only the primary applied it; the rep ops die with it.
    sim.kill(a);
    sim.run(10_000);
    sim.write_all(&["o2"]);
    sim.restart(a);
    sim.run(10_000);
    sim.check_no_acked_write_lost();
}

/// The primary dies mid-replication: one replica has the op, one not.
#[test]
fn a_primary_dying_mid_replication_leaves_consistent_copies() {
    let mut sim = Sim::new(3, 3, 2, 7);
    sim.run(10_000);
    sim.write_all(&["x", "y"]);
    let acting = sim.acting();
    assert!(sim.write("x"));
    // Deliver the rep op to the first replica only.
    let i = sim
        .queue
        .iter()
        .position(|m| matches!(m, Msg::RepOp { to, .. } if *to == acting[1]))
        .expect("rep op");
    let m = sim.queue.remove(i).expect("msg");
    sim.deliver(m);
    sim.kill(acting[0]);
    sim.run(10_000);
    sim.restart(acting[0]);
    sim.run(10_000);
    sim.check_no_acked_write_lost();
}

/// An OSD that flaps, and one that returns after its PG moved twice.
#[test]
fn flapping_and_a_pg_that_moved_twice() {
    let mut sim = Sim::new(5, 3, 2, 8);
    sim.run(10_000);
    let objs = names("o", 6);
    sim.write_all(&refs(&objs));
    let first = sim.acting();
    for round in 0..4 {
        let o = first[round % 3];
        sim.kill(o);
        sim.run(10_000);
        if sim.active_primary().is_some() {
            sim.write_all(&refs(&objs[..3]));
        }
        sim.restart(o);
        sim.run(10_000);
    }
    sim.check_no_acked_write_lost();
    // Move it twice while one holder sleeps.
    let sleeper = sim.acting()[2];
    sim.kill(sleeper);
    sim.mon.out(sleeper);
    sim.broadcast_map();
    sim.run(20_000);
    sim.write_all(&refs(&objs));
    let moved = sim.acting();
    let victim = moved[1];
    sim.kill(victim);
    sim.mon.out(victim);
    sim.broadcast_map();
    sim.run(20_000);
    sim.write_all(&refs(&objs[..2]));
    sim.restart(sleeper);
    sim.restart(victim);
    sim.broadcast_map();
    sim.run(20_000);
    sim.check_no_acked_write_lost();
}

/// Backfill never pushes into a backfillfull OSD: the PG waits, saying
/// why, and proceeds once the OSD has room again.
#[test]
fn backfill_waits_for_a_backfillfull_target() {
    use meridian_proto::mon::FullState;
    let mut sim = Sim::new(4, 3, 2, 9);
    sim.run(10_000);
    // More writes than the log keeps: a new copy must be backfilled.
    let objs = names("o", 2 * MAX_LOG);
    sim.write_all(&refs(&objs));
    let old = sim.acting();
    // One holder leaves for good; its replacement is nearly full.
    sim.kill(old[2]);
    sim.mon.out(old[2]);
    let spare = (0..4).find(|o| !old.contains(o)).expect("spare osd");
    sim.mon.fullness(spare, FullState::Backfillfull);
    sim.broadcast_map();
    sim.run(20_000);
    assert!(sim.acting().contains(&spare));
    let p = sim.acting()[0];
    assert_eq!(
        sim.machine(p).state(),
        PgState::BackfillToofull,
        "{}",
        sim.describe()
    );
    assert!(sim.machine(p).reason().contains(&format!("osd.{spare}")));
    assert_eq!(
        sim.value_on(spare, "o0"),
        None,
        "nothing was pushed into it"
    );
    // Space is freed: backfill goes ahead and the PG is clean.
    sim.mon.fullness(spare, FullState::Nearfull);
    sim.broadcast_map();
    sim.run(20_000);
    sim.check_no_acked_write_lost();
    assert!(sim.machine(sim.acting()[0]).is_clean());
}

/// Random kills, restarts, lost replies and reordered messages, many seeds:
/// after everything returns, no acknowledged write is lost and the copies agree.
#[test]
fn random_faults_never_lose_an_acknowledged_write() {
    for seed in 0..40u64 {
        let mut sim = Sim::new(5, 3, 2, 1000 + seed);
        sim.shuffle = true;
        sim.drop_rep_acks = 0.05;
        sim.run(10_000);
        let objs = names("o", 8);
        for _step in 0..60 {
            let r: f64 = sim.rng.gen_range(0.0..1.0);
            let ups: Vec<u32> = sim
                .osds
                .iter()
                .filter(|(_, s)| s.up)
                .map(|(o, _)| *o)
                .collect();
            let downs: Vec<u32> = sim
                .osds
                .iter()
                .filter(|(_, s)| !s.up)
                .map(|(o, _)| *o)
                .collect();
            if r < 0.2 && ups.len() > 1 {
                let o = ups[sim.rng.gen_range(0..ups.len())];
                sim.kill(o);
            } else if r < 0.3 && !downs.is_empty() {
                let o = downs[sim.rng.gen_range(0..downs.len())];
                sim.restart(o);
            } else {
                let n = sim.rng.gen_range(1..4);
                for _ in 0..n {
                    let i = sim.rng.gen_range(0..objs.len());
                    sim.write(&objs[i]);
                }
            }
            let k = sim.rng.gen_range(0..40);
            for _ in 0..k {
                match sim.queue.pop_front() {
                    Some(m) => sim.deliver(m),
                    None => break,
                }
            }
        }
        let downs: Vec<u32> = sim
            .osds
            .iter()
            .filter(|(_, s)| !s.up)
            .map(|(o, _)| *o)
            .collect();
        for o in downs {
            sim.restart(o);
        }
        sim.run(50_000);
        // Out-of-date maps may leave nothing to do: one more map settles it.
        sim.broadcast_map();
        sim.run(50_000);
        let p = sim
            .active_primary()
            .unwrap_or_else(|| panic!("seed {seed}: not active\n{}", sim.describe()));
        assert!(sim.machine(p).is_clean(), "seed {seed}: {}", sim.describe());
        sim.check_no_acked_write_lost();
    }
}
