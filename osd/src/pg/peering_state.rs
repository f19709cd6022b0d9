//! The PG state machine: peering, activation and recovery of one PG on one
//! OSD, as a pure function of (state, event) → (state, effects), the way
//! raft-rs separates `RawNode` from I/O. The daemon (`crate::peering`)
//! carries the effects out (queries, pulls, pushes, activations, writes to
//! the local store) and feeds their results back as events; the tests in
//! `crate::pg::sim` drive several machines over an in-memory network.
//!
//! A new interval (acting set or pool size change) resets the machine. Its
//! primary then:
//! 1. builds the prior set from the past intervals since the PG's last
//!    activation: if some interval that may have accepted writes has no
//!    member up (and none was declared lost), the PG is **down**;
//! 2. queries every OSD of the prior set (and strays that announced
//!    themselves) for its info and log (**GetInfo**);
//! 3. chooses the authoritative copy (`authority::choose_authoritative`);
//!    if none qualifies the PG is **incomplete**;
//! 4. makes sure the monitors raised its `up_thru` to the interval's first
//!    epoch (**WaitUpThru**), so that later peering knows this interval may
//!    have accepted writes;
//! 5. recovers itself from the authoritative copy, adopts its log, recovers
//!    every replica (log-based, or backfill with the copy marked
//!    backfilling), and activates each one (**Recovering**, **Activating**);
//! 6. is **Active**: ops are served; once the whole acting set of a full
//!    size is active the PG is clean and strays are removed.
//!
//! Any failure restarts peering within the interval (a new *activation*
//! number, so stale replies and rep ops are recognised and dropped).

use crate::pg::authority::{self, RecoveryPlan};
use crate::pg::intervals::{self, IntervalHistory, PastInterval, Placement, PriorSet};
use crate::pglog::{Ev, PgHistory, PgSummary, ev, pgref};
use meridian_client::{MapView, PgId};
use meridian_proto::mon::FullState;
use meridian_proto::osd::{LogEntry, PgActivateRequest, PgInfo};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// Where the PG is, on this OSD.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PgState {
    /// Not yet told its interval.
    Initial,
    /// Not in the acting set (it may hold an old copy).
    Stray,
    /// A replica waiting for its primary's activation.
    ReplicaPeering,
    /// A replica activated by its primary.
    ReplicaActive,
    /// Primary: gathering infos and logs.
    GetInfo,
    /// Primary: an interval that may have accepted writes has no member up.
    Down,
    /// Primary: no copy heard from can be authoritative.
    Incomplete,
    /// Primary: waiting for the monitors to raise its up_thru.
    WaitUpThru,
    /// Primary: copying objects into stale copies.
    Recovering,
    /// Primary: backfilling a copy whose log is too short.
    Backfilling,
    /// Primary: replicas are being activated.
    Activating,
    /// Primary: serving ops.
    Active,
    /// Primary: a copy to backfill is on a backfillfull OSD; waiting for space.
    BackfillToofull,
    /// Primary: a copy to recover is on a full OSD; waiting for space.
    RecoveryToofull,
}

impl PgState {
    /// Ceph-style state word.
    pub fn as_str(self) -> &'static str {
        match self {
            PgState::Initial => "unknown",
            PgState::Stray => "stray",
            PgState::ReplicaPeering => "replica+peering",
            PgState::ReplicaActive => "replica+active",
            PgState::GetInfo => "peering",
            PgState::Down => "down",
            PgState::Incomplete => "incomplete",
            PgState::WaitUpThru => "peering+wait_up_thru",
            PgState::Recovering => "recovering",
            PgState::Backfilling => "backfilling",
            PgState::Activating => "activating",
            PgState::Active => "active",
            PgState::BackfillToofull => "backfill_toofull",
            PgState::RecoveryToofull => "recovery_toofull",
        }
    }
}

/// What the daemon must do for the machine. Results come back as events
/// tagged with the activation number current when the effect was emitted.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Ask `osd` (possibly this one) for its info and log of the PG, after `delay`.
    Query {
        /// Whom to ask.
        osd: u32,
        /// Wait this long first (retries back off).
        delay: Duration,
    },
    /// Ask the monitors to raise this OSD's up_thru to `epoch`.
    RequestUpThru {
        /// The interval's first epoch.
        epoch: u64,
    },
    /// Bring `target`'s copy up to date from `source`'s (one of them is this OSD).
    Recover {
        /// Copy to update.
        target: u32,
        /// Copy to read from.
        source: u32,
        /// What to move.
        plan: RecoveryPlan,
    },
    /// Write the authoritative log and this summary to the local copy.
    AdoptLog {
        /// The authoritative log.
        log: Vec<LogEntry>,
        /// The new local summary.
        summary: PgSummary,
    },
    /// Activate a replica.
    Activate {
        /// The replica.
        osd: u32,
        /// The request to send.
        req: PgActivateRequest,
    },
    /// Persist the PG history (it moved on: activation, clean).
    PersistInfo {
        /// The newer history.
        history: PgHistory,
    },
    /// Tell `osd` to delete its copy (the PG is clean without it).
    RemoveStray {
        /// The stray holder.
        osd: u32,
    },
    /// Start peering again after `delay` (deliver `Event::Retry`).
    RetryAfter {
        /// How long to wait.
        delay: Duration,
    },
}

/// The current interval.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Interval {
    /// First epoch.
    pub first: u64,
    /// Acting set and pool sizes.
    pub placement: Placement,
}

/// What a queried peer answered.
#[derive(Debug, Clone, PartialEq)]
enum Answer {
    /// No answer yet (with the error of the last attempt, if one failed).
    Waiting(Option<String>),
    Info(Box<PgInfo>),
}

/// Largest retry backoff.
const MAX_BACKOFF: Duration = Duration::from_secs(3);

/// The state machine of one PG on one OSD.
#[derive(Debug, Clone)]
pub struct PeeringState {
    pg: PgId,
    me: u32,
    /// The local copy's persisted summary (`None` if this OSD holds nothing).
    local: Option<PgSummary>,
    interval: Interval,
    state: PgState,
    activation: u64,
    my_up_thru: u64,
    history: IntervalHistory,
    prior: PriorSet,
    since: u64,
    answers: BTreeMap<u32, Answer>,
    failures: u32,
    auth: Option<(u32, Box<PgInfo>)>,
    recovering: BTreeMap<u32, RecoveryPlan>,
    activating: BTreeSet<u32>,
    activated_by: Option<(u32, u64, u64)>,
    clean: bool,
    reason: String,
    created: u64,
    fullness: BTreeMap<u32, i32>,
    loss_accepted: bool,
}

impl PeeringState {
    /// A PG this OSD may hold (`local` is its persisted summary, if any).
    pub fn new(pg: PgId, me: u32, local: Option<PgSummary>) -> Self {
        Self {
            pg,
            me,
            local,
            interval: Interval::default(),
            state: PgState::Initial,
            activation: 0,
            my_up_thru: 0,
            history: IntervalHistory::default(),
            prior: PriorSet::default(),
            since: 0,
            answers: BTreeMap::new(),
            failures: 0,
            auth: None,
            recovering: BTreeMap::new(),
            activating: BTreeSet::new(),
            activated_by: None,
            clean: false,
            reason: String::new(),
            created: 0,
            fullness: BTreeMap::new(),
            loss_accepted: false,
        }
    }

    fn note_fullness(&mut self, view: &MapView) {
        self.fullness = view
            .map
            .osds
            .iter()
            .filter(|o| o.full_state != FullState::FullNone as i32)
            .map(|o| (o.id, o.full_state))
            .collect();
    }

    /// Copies that may not be filled now: (osd, state) of backfill targets
    /// on backfillfull OSDs and recovery targets on full OSDs.
    fn too_full(&self) -> Vec<(u32, PgState)> {
        self.recovering
            .iter()
            .filter_map(|(o, p)| {
                let f = self.fullness.get(o).copied().unwrap_or(0);
                match p {
                    RecoveryPlan::Backfill if f >= FullState::Backfillfull as i32 => {
                        Some((*o, PgState::BackfillToofull))
                    }
                    RecoveryPlan::Objects(_) if f >= FullState::Full as i32 => {
                        Some((*o, PgState::RecoveryToofull))
                    }
                    _ => None,
                }
            })
            .collect()
    }

    /// The epoch the PG's pool was created (the history floor of a PG no copy knows).
    pub fn set_created(&mut self, epoch: u64) {
        self.created = epoch;
    }

    /// The state.
    pub fn state(&self) -> PgState {
        self.state
    }

    /// Activation number: tags effects; events with another one are stale.
    pub fn activation(&self) -> u64 {
        self.activation
    }

    /// The current interval.
    pub fn interval(&self) -> &Interval {
        &self.interval
    }

    /// The local summary, if this OSD holds a copy.
    pub fn local(&self) -> Option<&PgSummary> {
        self.local.as_ref()
    }

    /// True when this OSD is the current primary.
    pub fn is_primary(&self) -> bool {
        self.interval.placement.primary() == Some(self.me)
    }

    /// True when active with a full-size acting set and nothing to recover.
    pub fn is_clean(&self) -> bool {
        self.state == PgState::Active && self.clean
    }

    /// Why the PG is not active (empty when it is).
    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// The prior set of the current peering round.
    pub fn prior(&self) -> &PriorSet {
        &self.prior
    }

    /// Past intervals considered by the current peering round.
    pub fn past_intervals(&self) -> &[PastInterval] {
        &self.history.past
    }

    /// The authoritative copy chosen in this round.
    pub fn auth_osd(&self) -> Option<u32> {
        self.auth.as_ref().map(|(o, _)| *o)
    }

    /// Objects still to recover (log-based plans only; backfills count 0).
    pub fn objects_to_recover(&self) -> u64 {
        self.recovering
            .values()
            .map(|p| p.object_count() as u64)
            .sum()
    }

    /// Peers asked in this round: (osd, info if it answered, error if it failed).
    pub fn peers(&self) -> Vec<(u32, Option<&PgInfo>, Option<&str>)> {
        self.answers
            .iter()
            .map(|(o, a)| match a {
                Answer::Waiting(e) => (*o, None, e.as_deref()),
                Answer::Info(i) => (*o, Some(i.as_ref()), None),
            })
            .collect()
    }

    /// The epoch from which past intervals matter for this copy: its last
    /// known full activation, else the PG's creation (0 if unknown).
    pub fn history_floor(&self) -> u64 {
        let known = self
            .local
            .as_ref()
            .map(|s| {
                if s.history.last_epoch_started > 0 {
                    s.history.last_epoch_started
                } else {
                    s.history.epoch_created
                }
            })
            .unwrap_or(0);
        if known > 0 { known } else { self.created }
    }

    /// The local copy changed on disk (activation, recovery, an op).
    pub fn set_local(&mut self, s: Option<PgSummary>) {
        self.local = s;
    }

    /// A new interval started. `history` holds the intervals since
    /// [`PeeringState::history_floor`] (or the pool's creation) up to now.
    pub fn on_new_interval(&mut self, history: IntervalHistory, view: &MapView) -> Vec<Effect> {
        self.interval = Interval {
            first: history.current_first,
            placement: history.current.clone(),
        };
        self.history = history;
        self.activated_by = None;
        self.note_fullness(view);
        self.my_up_thru = view.osd(self.me).map(|o| o.up_thru).unwrap_or(0);
        self.failures = 0;
        self.restart_round();
        let acting = &self.interval.placement.acting;
        if self.is_primary() {
            return self.start_peering(view);
        }
        if acting.contains(&self.me) {
            self.state = PgState::ReplicaPeering;
            self.reason = format!(
                "waiting for primary osd.{} to activate",
                acting.first().copied().unwrap_or(0)
            );
        } else {
            self.state = PgState::Stray;
            self.reason = String::new();
        }
        Vec::new()
    }

    fn restart_round(&mut self) {
        self.activation += 1;
        self.answers.clear();
        self.auth = None;
        self.recovering.clear();
        self.activating.clear();
        self.clean = false;
        self.prior = PriorSet::default();
    }

    fn start_peering(&mut self, view: &MapView) -> Vec<Effect> {
        self.since = self.merged_history().last_epoch_started;
        // An OSD of an interval we would need was declared lost: the
        // operator accepted losing what only it had.
        self.loss_accepted = self.history.past.iter().any(|i| {
            i.last >= self.since
                && i.acting
                    .iter()
                    .any(|o| view.osd(*o).is_some_and(|x| !x.up && x.lost_at > i.first))
        });
        self.prior = intervals::prior_set(
            &self.history.past,
            self.since,
            view,
            &self.interval.placement.acting,
        );
        if self.prior.pg_down {
            self.state = PgState::Down;
            let (a, b) = self.prior.blocking_interval.unwrap_or((0, 0));
            let who: Vec<String> = self
                .prior
                .blocked_by
                .iter()
                .map(|o| format!("osd.{o}"))
                .collect();
            self.reason = format!(
                "down: epochs {a}..{b} may have accepted writes and none of their OSDs is up; \
                 waiting for {} (bring one back, or declare it lost with `meridian osd lost`)",
                who.join(", ")
            );
            return Vec::new();
        }
        self.state = PgState::GetInfo;
        self.reason = "peering: gathering infos".into();
        let mut fx = Vec::new();
        let mut probe: BTreeSet<u32> = self.prior.probe.clone();
        probe.insert(self.me);
        for o in probe {
            self.answers.insert(o, Answer::Waiting(None));
            fx.push(Effect::Query {
                osd: o,
                delay: Duration::ZERO,
            });
        }
        fx
    }

    /// A map in the same interval: up_thru may have arrived, OSDs may have
    /// come up or been declared lost.
    pub fn on_map(&mut self, view: &MapView) -> Vec<Effect> {
        self.my_up_thru = view.osd(self.me).map(|o| o.up_thru).unwrap_or(0);
        self.note_fullness(view);
        if !self.is_primary() {
            return Vec::new();
        }
        match self.state {
            PgState::BackfillToofull | PgState::RecoveryToofull if self.too_full().is_empty() => {
                self.restart_round();
                self.start_peering(view)
            }
            PgState::WaitUpThru if self.my_up_thru >= self.interval.first => self.begin_recovery(),
            PgState::Down | PgState::GetInfo | PgState::Incomplete => {
                let prior = intervals::prior_set(
                    &self.history.past,
                    self.since,
                    view,
                    &self.interval.placement.acting,
                );
                if prior != self.prior {
                    self.restart_round();
                    self.start_peering(view)
                } else {
                    Vec::new()
                }
            }
            _ => Vec::new(),
        }
    }

    /// A stray copy announced itself: returns (remove it?, effects).
    pub fn on_notify(&mut self, from: u32) -> (bool, Vec<Effect>) {
        if !self.is_primary() || self.interval.placement.acting.contains(&from) {
            return (false, Vec::new());
        }
        match self.state {
            PgState::Active if self.clean => (true, Vec::new()),
            PgState::GetInfo if !self.answers.contains_key(&from) => {
                // A holder we did not know of: hear it out before choosing.
                self.answers.insert(from, Answer::Waiting(None));
                (
                    false,
                    vec![Effect::Query {
                        osd: from,
                        delay: Duration::ZERO,
                    }],
                )
            }
            _ => (false, Vec::new()),
        }
    }

    /// A queried OSD answered (`info.exists=false` if it holds nothing).
    pub fn on_info(&mut self, activation: u64, from: u32, info: PgInfo) -> Vec<Effect> {
        if activation != self.activation || self.state != PgState::GetInfo {
            return Vec::new();
        }
        self.answers.insert(from, Answer::Info(Box::new(info)));
        self.maybe_choose()
    }

    /// A query failed.
    pub fn on_query_failed(&mut self, activation: u64, from: u32, error: String) -> Vec<Effect> {
        if activation != self.activation || self.state != PgState::GetInfo {
            return Vec::new();
        }
        // A member of the acting set or the prior set must answer: ask again
        // (if it is really gone, the monitors will mark it down and the next
        // map re-plans the round).
        self.failures += 1;
        self.reason = format!("peering: waiting for osd.{from} to answer ({error})");
        self.answers.insert(from, Answer::Waiting(Some(error)));
        vec![Effect::Query {
            osd: from,
            delay: backoff(self.failures),
        }]
    }

    fn maybe_choose(&mut self) -> Vec<Effect> {
        if self
            .answers
            .values()
            .any(|a| matches!(a, Answer::Waiting(_)))
        {
            return Vec::new();
        }
        let infos: BTreeMap<u32, PgInfo> = self
            .answers
            .iter()
            .filter_map(|(o, a)| match a {
                Answer::Info(i) => Some((*o, (**i).clone())),
                Answer::Waiting(_) => None,
            })
            .collect();
        let auth = match authority::choose_authoritative(&infos, self.me, self.loss_accepted) {
            Ok(a) => a,
            Err(e) => {
                self.state = PgState::Incomplete;
                self.reason = format!("incomplete: {e}");
                return Vec::new();
            }
        };
        let mut auth_info = infos.get(&auth).cloned().unwrap_or_else(|| PgInfo {
            pg: pgref(meridian_objectstore::PgId::new(self.pg.pool, self.pg.seed)),
            exists: true,
            ..Default::default()
        });
        auth_info.exists = true;
        // Plans: this OSD first, then every replica.
        self.recovering.clear();
        for &o in &self.interval.placement.acting {
            let p = authority::plan(infos.get(&o), &auth_info);
            if p != RecoveryPlan::UpToDate || o == self.me {
                self.recovering.insert(o, p);
            }
        }
        self.auth = Some((auth, Box::new(auth_info)));
        let toofull = self.too_full();
        if let Some((_, state)) = toofull.first() {
            self.state = *state;
            let who: Vec<String> = toofull.iter().map(|(o, _)| format!("osd.{o}")).collect();
            self.reason = format!(
                "{}: {} too full to receive this PG's data; waiting until space is freed",
                state.as_str(),
                who.join(", ")
            );
            return Vec::new();
        }
        if self.my_up_thru < self.interval.first {
            self.state = PgState::WaitUpThru;
            self.reason = format!(
                "peering: waiting for the monitors to raise osd.{} up_thru to {}",
                self.me, self.interval.first
            );
            return vec![Effect::RequestUpThru {
                epoch: self.interval.first,
            }];
        }
        self.begin_recovery()
    }

    fn merged_history(&self) -> PgHistory {
        let mut h = self.local.as_ref().map(|s| s.history).unwrap_or_default();
        h.merge(&PgHistory {
            epoch_created: self.created,
            ..Default::default()
        });
        for a in self.answers.values() {
            if let Answer::Info(i) = a {
                h.merge(&PgHistory::of_info(i));
            }
        }
        h.same_interval_since = self.interval.first;
        h
    }

    fn begin_recovery(&mut self) -> Vec<Effect> {
        let Some((auth, _)) = &self.auth else {
            return Vec::new();
        };
        let auth = *auth;
        match self.recovering.get(&self.me).cloned() {
            Some(p) if p != RecoveryPlan::UpToDate && auth != self.me => {
                self.state = if p == RecoveryPlan::Backfill {
                    PgState::Backfilling
                } else {
                    PgState::Recovering
                };
                self.reason = format!("recovering this copy from osd.{auth}: {}", p.describe());
                vec![Effect::Recover {
                    target: self.me,
                    source: auth,
                    plan: p,
                }]
            }
            _ => self.adopt(),
        }
    }

    fn adopt(&mut self) -> Vec<Effect> {
        let Some((_, auth)) = &self.auth else {
            return Vec::new();
        };
        let summary = PgSummary {
            last_update: ev(&auth.last_update),
            log_tail: ev(&auth.log_tail),
            last_epoch_started: self.interval.first,
            backfilling: false,
            history: self.merged_history(),
        };
        self.state = PgState::Recovering;
        self.reason = "adopting the authoritative log".into();
        vec![Effect::AdoptLog {
            log: auth.log.clone(),
            summary,
        }]
    }

    /// A recovery effect finished.
    pub fn on_recovered(&mut self, activation: u64, target: u32) -> Vec<Effect> {
        if activation != self.activation {
            return Vec::new();
        }
        self.recovering.remove(&target);
        if target == self.me {
            return self.adopt();
        }
        let mut fx = Vec::new();
        if let Some(req) = self.activate_request() {
            fx.push(Effect::Activate { osd: target, req });
        }
        fx
    }

    /// The local copy now holds the authoritative log: recover replicas.
    pub fn on_adopted(&mut self, activation: u64, summary: PgSummary) -> Vec<Effect> {
        if activation != self.activation {
            return Vec::new();
        }
        self.local = Some(summary);
        self.recovering.remove(&self.me);
        let mut fx = Vec::new();
        let replicas: Vec<u32> = self
            .interval
            .placement
            .acting
            .iter()
            .copied()
            .filter(|o| *o != self.me)
            .collect();
        for r in replicas {
            self.activating.insert(r);
            match self.recovering.get(&r) {
                Some(p) => fx.push(Effect::Recover {
                    target: r,
                    source: self.me,
                    plan: p.clone(),
                }),
                None => {
                    if let Some(req) = self.activate_request() {
                        fx.push(Effect::Activate { osd: r, req });
                    }
                }
            }
        }
        if self
            .recovering
            .values()
            .any(|p| *p == RecoveryPlan::Backfill)
        {
            self.state = PgState::Backfilling;
        } else if !self.recovering.is_empty() {
            self.state = PgState::Recovering;
        } else {
            self.state = PgState::Activating;
        }
        self.reason = format!(
            "activating: waiting for {}",
            self.activating
                .iter()
                .map(|o| format!("osd.{o}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        fx.extend(self.maybe_active());
        fx
    }

    fn activate_request(&self) -> Option<PgActivateRequest> {
        let (_, auth) = self.auth.as_ref()?;
        let h = self.merged_history();
        Some(PgActivateRequest {
            pg: pgref(meridian_objectstore::PgId::new(self.pg.pool, self.pg.seed)),
            map_epoch: self.interval.first,
            from_osd: self.me,
            log: auth.log.clone(),
            last_update: auth.last_update,
            log_tail: auth.log_tail,
            keep_only: Vec::new(),
            // Backfill already pushed deletions of what the source lacks.
            prune_to_keep_only: false,
            epoch_created: h.epoch_created,
            history_les: h.last_epoch_started,
            history_lec: h.last_epoch_clean,
            activation: self.activation,
        })
    }

    /// A recovery or activation step failed: start the round again later.
    pub fn on_step_failed(&mut self, activation: u64, osd: u32, error: String) -> Vec<Effect> {
        if activation != self.activation {
            return Vec::new();
        }
        self.failures += 1;
        self.state = PgState::GetInfo;
        self.reason = format!("peering: osd.{osd} failed ({error}); retrying");
        self.restart_round();
        vec![Effect::RetryAfter {
            delay: backoff(self.failures),
        }]
    }

    /// The delay of a `RetryAfter` passed.
    pub fn on_retry(&mut self, activation: u64, view: &MapView) -> Vec<Effect> {
        if activation != self.activation || !self.is_primary() {
            return Vec::new();
        }
        self.start_peering(view)
    }

    /// A replica acknowledged its activation.
    pub fn on_activated(&mut self, activation: u64, osd: u32) -> Vec<Effect> {
        if activation != self.activation {
            return Vec::new();
        }
        self.activating.remove(&osd);
        self.maybe_active()
    }

    fn maybe_active(&mut self) -> Vec<Effect> {
        if !self.activating.is_empty() || !self.recovering.is_empty() {
            return Vec::new();
        }
        if !matches!(
            self.state,
            PgState::Activating | PgState::Recovering | PgState::Backfilling
        ) {
            return Vec::new();
        }
        self.state = PgState::Active;
        self.reason.clear();
        self.failures = 0;
        let p = &self.interval.placement;
        self.clean = p.acting.len() as u32 >= p.size;
        let mut fx = Vec::new();
        if let Some(local) = self.local.as_mut() {
            local.history.last_epoch_started = self.interval.first;
            if self.clean {
                local.history.last_epoch_clean = self.interval.first;
            }
            fx.push(Effect::PersistInfo {
                history: local.history,
            });
        }
        if self.clean {
            for (o, a) in &self.answers {
                if let Answer::Info(i) = a
                    && i.exists
                    && !p.acting.contains(o)
                {
                    fx.push(Effect::RemoveStray { osd: *o });
                }
            }
        }
        fx
    }

    /// An op could not be replicated or committed: peer again in this interval.
    pub fn on_op_failed(&mut self, activation: u64, error: String) -> Vec<Effect> {
        if activation != self.activation || self.state != PgState::Active {
            return Vec::new();
        }
        self.on_step_failed(activation, self.me, error)
    }

    /// Replica side: the primary asks to activate this copy. Returns the
    /// summary to persist with the log, or why not.
    pub fn on_activate(&mut self, req: &PgActivateRequest) -> Result<PgSummary, String> {
        let primary = self.interval.placement.primary();
        if primary != Some(req.from_osd) || req.map_epoch != self.interval.first {
            return Err(format!(
                "osd.{} is not primary of pg {} for interval {} here (primary {:?}, interval {})",
                req.from_osd, self.pg, req.map_epoch, primary, self.interval.first
            ));
        }
        if !self.interval.placement.acting.contains(&self.me) {
            return Err(format!("osd.{} is not in the acting set", self.me));
        }
        let mut history = self.local.as_ref().map(|s| s.history).unwrap_or_default();
        history.merge(&PgHistory {
            epoch_created: req.epoch_created,
            last_epoch_started: req.history_les,
            last_epoch_clean: req.history_lec,
            same_interval_since: self.interval.first,
        });
        Ok(PgSummary {
            last_update: ev(&req.last_update),
            log_tail: ev(&req.log_tail),
            last_epoch_started: req.map_epoch,
            backfilling: false,
            history,
        })
    }

    /// Replica side: the activation was persisted.
    pub fn on_activate_done(&mut self, req: &PgActivateRequest, summary: PgSummary) {
        self.local = Some(summary);
        self.activated_by = Some((req.from_osd, req.map_epoch, req.activation));
        self.state = PgState::ReplicaActive;
        self.reason.clear();
    }

    /// Replica side: true if a rep op from (`from`, `interval`, `activation`) may apply.
    pub fn accepts_rep_op(&self, from: u32, interval: u64, activation: u64) -> bool {
        self.state == PgState::ReplicaActive
            && self.activated_by == Some((from, interval, activation))
    }
}

fn backoff(failures: u32) -> Duration {
    let ms = 100u64.saturating_mul(1 << failures.min(5));
    Duration::from_millis(ms).min(MAX_BACKOFF)
}

/// Version of the next op after `last` in an interval starting at `first`.
pub fn next_version(first: u64, last: Ev) -> Ev {
    (first.max(last.0), last.1 + 1)
}
