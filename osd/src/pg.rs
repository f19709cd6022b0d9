//! In-memory state of one placement group on this OSD.

use crate::pglog::{Ev, PgSummary};
use meridian_objectstore::PgId;
use std::collections::{HashMap, VecDeque};

/// What this OSD is for a PG in the current interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// First of the acting set: orders and replicates ops.
    Primary,
    /// Another member of the acting set.
    Replica,
    /// Holds data but is not in the acting set (removed once the PG is clean).
    Stray,
}

/// Where a PG is in its life cycle on this OSD.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Gathering infos and logs from peers.
    Peering,
    /// Copying missing objects to stale copies (log-based).
    Recovering,
    /// Copying every object to a copy whose log is too short.
    Backfilling,
    /// Serving ops.
    Active,
    /// Peering failed (e.g. no copy reachable); retried on the next map or timer.
    Incomplete,
}

impl Phase {
    /// Ceph-style state word.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Peering => "peering",
            Phase::Recovering => "recovering",
            Phase::Backfilling => "backfilling",
            Phase::Active => "active",
            Phase::Incomplete => "incomplete",
        }
    }
}

/// Routing state checked by every op without waiting for the PG lock.
#[derive(Debug, Clone)]
pub struct PgRouting {
    /// This OSD's role.
    pub role: Role,
    /// Life-cycle phase.
    pub phase: Phase,
    /// Map epoch at which the current interval started.
    pub interval: u64,
    /// Acting set of the current interval.
    pub acting: Vec<u32>,
    /// Pool size (to report degraded).
    pub size: u32,
    /// For replicas: the primary and interval that activated this copy.
    pub activated_by: Option<(u32, u64)>,
}

/// Serialized PG state: held across an op or a peering round.
#[derive(Debug, Default)]
pub struct PgCore {
    /// Persisted summary (mirrors the `info` record).
    pub summary: PgSummary,
    /// Oldest logged version still stored (for trimming).
    pub log_versions: VecDeque<Ev>,
    /// Recent request ids → (version, user version), to answer resent ops.
    pub reqids: HashMap<(u64, u64), (Ev, u64)>,
    /// Approximate object count (reported in PG stats).
    pub objects: u64,
    /// Log entries kept before the oldest is trimmed (osd_max_pg_log_entries).
    pub max_log_entries: usize,
}

impl PgCore {
    /// Records a logged entry in memory; returns versions to trim from the log.
    pub fn note_entry(
        &mut self,
        v: Ev,
        reqid: Option<(u64, u64)>,
        user_version: u64,
    ) -> Option<Ev> {
        self.summary.last_update = v;
        self.log_versions.push_back(v);
        if let Some(r) = reqid {
            self.reqids.insert(r, (v, user_version));
        }
        if self.log_versions.len() > self.max_log_entries {
            let old = self.log_versions.pop_front()?;
            self.summary.log_tail = old;
            self.reqids.retain(|_, (ver, _)| *ver > old);
            return Some(old);
        }
        None
    }
}

/// One PG on this OSD.
pub struct Pg {
    /// Its id.
    pub id: PgId,
    /// Routing state (short critical sections only).
    pub routing: std::sync::Mutex<PgRouting>,
    /// Serialized state (ops and peering).
    pub core: tokio::sync::Mutex<PgCore>,
}

impl Pg {
    /// A PG not yet peered.
    pub fn new(id: PgId, routing: PgRouting, max_log_entries: usize) -> Self {
        Self {
            id,
            routing: std::sync::Mutex::new(routing),
            core: tokio::sync::Mutex::new(PgCore {
                max_log_entries,
                ..PgCore::default()
            }),
        }
    }

    /// A copy of the routing state.
    pub fn routing(&self) -> PgRouting {
        self.routing
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Mutates the routing state.
    pub fn set_routing(&self, f: impl FnOnce(&mut PgRouting)) {
        f(&mut self.routing.lock().unwrap_or_else(|p| p.into_inner()));
    }
}
