//! One placement group on this OSD: its state machine ([`PeeringState`]),
//! its op pipeline ([`OpPipeline`]), and what the daemon needs around them to
//! keep several ops in flight safely: store submissions in version order,
//! a count of local commits in flight (peering reads the local copy only
//! once they have landed), per-object op serialization, and the replica's
//! view of its newest applied entry (rep ops wait for their predecessor).

pub mod authority;
pub mod intervals;
pub mod peering_state;
pub mod pipeline;
#[cfg(test)]
mod sim;
#[cfg(test)]
pub(crate) mod testmaps;

pub use peering_state::{Effect, PeeringState, PgState};
pub use pipeline::OpPipeline;

use crate::error::OsdError;
use crate::pglog::Ev;
use meridian_objectstore::{ObjectStore, Pending, PgId, Transaction};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::watch;

/// The state of a PG guarded by one short-lived lock.
#[derive(Debug)]
pub struct PgCore {
    /// Peering, activation and recovery.
    pub peering: PeeringState,
    /// Ops of the current activation.
    pub ops: OpPipeline,
    /// Approximate object count (reported in PG stats).
    pub objects: u64,
}

impl PgCore {
    /// Newest version this copy has: the last op's, or what activation or
    /// recovery last wrote.
    pub fn last_update(&self) -> Ev {
        self.peering
            .local()
            .map(|s| s.last_update)
            .unwrap_or((0, 0))
            .max(self.ops.last_update())
    }
}

/// One PG on this OSD.
pub struct Pg {
    /// Its id.
    pub id: PgId,
    core: Mutex<PgCore>,
    /// Held while handing a transaction to the store, so the store applies
    /// this PG's transactions in version order.
    pub submit: tokio::sync::Mutex<()>,
    local_inflight: Arc<watch::Sender<usize>>,
    /// Newest entry handed to the store on this copy (replicas wait on it).
    pub applied: watch::Sender<Ev>,
    objects: ObjectLocks,
}

impl Pg {
    /// A PG this OSD holds (`local`) or is about to serve.
    pub fn new(id: PgId, me: u32, local: Option<crate::pglog::PgSummary>) -> Self {
        let applied = local.as_ref().map(|s| s.last_update).unwrap_or((0, 0));
        Self {
            id,
            core: Mutex::new(PgCore {
                peering: PeeringState::new(
                    meridian_client::PgId {
                        pool: id.pool,
                        seed: id.seed,
                    },
                    me,
                    local,
                ),
                ops: OpPipeline::default(),
                objects: 0,
            }),
            submit: tokio::sync::Mutex::new(()),
            local_inflight: Arc::new(watch::channel(0).0),
            applied: watch::channel(applied).0,
            objects: ObjectLocks::default(),
        }
    }

    /// Locks the core (never held across an await).
    pub fn core(&self) -> MutexGuard<'_, PgCore> {
        self.core.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts a local commit in flight until the guard drops.
    pub fn local_commit(&self) -> LocalCommit {
        self.local_inflight.send_modify(|n| *n += 1);
        LocalCommit(self.local_inflight.clone())
    }

    /// Waits until no local commit is in flight (peering then reads a copy
    /// that includes every op handed to the store).
    pub async fn drain_local(&self) {
        let mut rx = self.local_inflight.subscribe();
        let _ = rx.wait_for(|n| *n == 0).await;
    }

    /// Hands `txn` to the store; the caller holds [`Pg::submit`], so the
    /// store applies this PG's transactions in the order they were queued.
    /// The transaction counts as a local commit in flight until the returned
    /// [`QueuedCommit`] is waited for (or dropped).
    pub async fn queue(
        &self,
        store: &Arc<dyn ObjectStore>,
        txn: Transaction,
    ) -> Result<QueuedCommit, OsdError> {
        let inflight = self.local_commit();
        // On this thread unless the store's submit queue is full: a hop to a
        // blocking thread per write was a good share of a small write's CPU.
        let pending = match store.try_queue(txn) {
            Ok(pending) => pending,
            Err(txn) => {
                let store = store.clone();
                tokio::task::spawn_blocking(move || store.queue(txn))
                    .await
                    .map_err(|e| OsdError::Internal(e.to_string()))?
            }
        };
        Ok(QueuedCommit {
            pending,
            _inflight: inflight,
        })
    }

    /// Serializes ops on one object: the next op on it waits for this guard.
    pub async fn lock_object(&self, name: &str) -> ObjectGuard<'_> {
        self.objects.lock(name).await
    }
}

/// A transaction queued by [`Pg::queue`], not yet known to be durable.
pub struct QueuedCommit {
    pending: Pending,
    _inflight: LocalCommit,
}

impl QueuedCommit {
    /// Waits until the transaction is durable (or failed).
    pub async fn wait(self) -> Result<(), OsdError> {
        let QueuedCommit { pending, _inflight } = self;
        let r = pending.committed().await;
        drop(_inflight);
        r.map_err(OsdError::from)
    }
}

/// A local commit in flight (see [`Pg::local_commit`]).
pub struct LocalCommit(Arc<watch::Sender<usize>>);

impl Drop for LocalCommit {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n = n.saturating_sub(1));
    }
}

/// Per-object locks, created on demand and dropped when unused.
#[derive(Default)]
struct ObjectLocks {
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl ObjectLocks {
    async fn lock(&self, name: &str) -> ObjectGuard<'_> {
        let m = {
            let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
            locks
                .entry(name.to_string())
                .or_insert_with(|| Arc::new(tokio::sync::Mutex::new(())))
                .clone()
        };
        let guard = m.clone().lock_owned().await;
        ObjectGuard {
            owner: self,
            name: name.to_string(),
            lock: m,
            guard: Some(guard),
        }
    }
}

/// Holds one object's op lock.
pub struct ObjectGuard<'a> {
    owner: &'a ObjectLocks,
    name: String,
    lock: Arc<tokio::sync::Mutex<()>>,
    guard: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl Drop for ObjectGuard<'_> {
    fn drop(&mut self) {
        self.guard.take();
        let mut locks = self.owner.locks.lock().unwrap_or_else(|p| p.into_inner());
        // Only the table and this guard hold it: nobody waits, forget it.
        if Arc::strong_count(&self.lock) <= 2 {
            locks.remove(&self.name);
        }
    }
}
