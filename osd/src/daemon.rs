//! The OSD process: boots with the monitors, follows the cluster map, keeps
//! one `Pg` per placement group it serves, heartbeats and reports PG stats.

use crate::error::OsdError;
use crate::history::HistoryCache;
use crate::pg::{Pg, PgState};
use crate::pglog::{self, pgref};
use meridian_client::{Credential, MapView, OsdClient, mon_client, osd_client};
use meridian_objectstore::{ObjectStore, PgId, StoreError};
use meridian_proto::mon::{OsdAlive, OsdBootRequest, OsdHeartbeatRequest, PgStat};
use meridian_proto::osd::{PastIntervalInfo, PeerInfoSummary, PgDescribeReply};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Semaphore, watch};

/// Identity and location an OSD boots with.
#[derive(Debug, Clone)]
pub struct OsdIdentity {
    /// OSD id.
    pub id: u32,
    /// Cluster fsid.
    pub fsid: String,
    /// Advertised gRPC address.
    pub addr: String,
    /// CRUSH weight (16.16).
    pub weight: u32,
    /// Device class.
    pub device_class: String,
    /// CRUSH host.
    pub host: String,
    /// CRUSH rack.
    pub rack: String,
    /// CRUSH datacenter.
    pub datacenter: String,
}

/// Settings of the running OSD taken from the cluster config's `[global]`.
#[derive(Debug, Clone)]
pub struct OsdTunables {
    /// Largest object a client may create.
    pub max_object_size: u64,
    /// How often heartbeats go to the monitors.
    pub heartbeat_interval: Duration,
    /// PG log entries kept per PG before the oldest are trimmed.
    pub max_pg_log_entries: usize,
    /// Client op data held at once (a quarter of the memory target).
    pub client_op_bytes: u64,
}

impl OsdTunables {
    /// Reads the OSD's settings from the cluster-wide section.
    pub fn from_global(g: &meridian_common::config::GlobalSection) -> Self {
        Self {
            max_object_size: g.osd_max_object_size,
            heartbeat_interval: Duration::from_millis(g.osd_heartbeat_interval_ms),
            max_pg_log_entries: g.osd_max_pg_log_entries.max(1),
            client_op_bytes: 256 << 20,
        }
    }
}

/// Shared state of the running OSD.
pub struct Osd {
    /// Who we are.
    pub ident: OsdIdentity,
    /// Random per process start, so the monitors tell restarts apart.
    pub boot_nonce: u64,
    /// The local object store.
    pub store: Arc<dyn ObjectStore>,
    /// Name of the store's I/O engine.
    pub engine: String,
    /// The newest map.
    pub map: watch::Receiver<Arc<MapView>>,
    /// PGs this OSD holds or serves.
    pub pgs: std::sync::Mutex<HashMap<PgId, Arc<Pg>>>,
    peers: std::sync::Mutex<HashMap<(u32, String), OsdClient>>,
    /// How this OSD proves it is `osd.N` to monitors and other OSDs.
    pub cred: Credential,
    /// Settings from the config.
    pub tunables: OsdTunables,
    /// Monitor addresses.
    pub mons: Vec<String>,
    /// Bounds concurrent peering/recovery work.
    pub recovery_slots: Semaphore,
    /// Bounds client op data in flight.
    pub op_budget: OpBudget,
    /// Newest map epoch whose intervals every PG has taken in.
    pub processed: watch::Sender<u64>,
    /// Past maps, for intervals.
    pub history: tokio::sync::Mutex<HistoryCache>,
    up_thru: std::sync::Mutex<UpThruRequest>,
    /// Set when the OSD must stop serving (its store failed); `run` returns.
    pub fatal: watch::Sender<Option<String>>,
    /// Used fraction of the store as of the last heartbeat (f64 bits).
    used_ratio: std::sync::atomic::AtomicU64,
}

/// Past this used fraction an OSD refuses anything but deletes, whatever
/// the map says (Ceph's `osd_failsafe_full_ratio`): the last line before
/// the disk itself runs out.
pub const FAILSAFE_FULL_RATIO: f64 = 0.97;

/// Client op data an OSD holds at once: an op takes its share before it
/// runs and gives it back when answered, so a burst of large ops waits
/// (back-pressure on the clients) instead of growing the heap. Only client
/// ops are counted: replica ops wait on no budget, since a primary holding
/// its budget while its replicas wait on theirs could deadlock, and what
/// reaches a replica is already bounded by its primaries' budgets.
pub struct OpBudget {
    kib: Semaphore,
    capacity_kib: u32,
}

/// What a read of a whole object (length 0, size unknown before it runs)
/// is charged: large enough to slow a flood of large reads, small enough
/// not to throttle small ones (most large reads, the gateway's, name a length).
pub const WHOLE_READ_CHARGE: u64 = 1 << 20;

impl OpBudget {
    /// A budget of `bytes` (at least 16 MiB, so one large op always fits).
    pub fn new(bytes: u64) -> Self {
        let capacity_kib = (bytes >> 10).clamp(16 << 10, u64::from(u32::MAX >> 4)) as u32;
        Self {
            kib: Semaphore::new(capacity_kib as usize),
            capacity_kib,
        }
    }

    /// Waits until `bytes` fit (an op larger than the whole budget waits for
    /// all of it) and holds them until the permit drops.
    pub async fn admit(&self, bytes: u64) -> Option<tokio::sync::SemaphorePermit<'_>> {
        let kib = bytes.div_ceil(1024).clamp(1, u64::from(self.capacity_kib)) as u32;
        if let Ok(p) = self.kib.try_acquire_many(kib) {
            return Some(p);
        }
        metrics::counter!("meridian_osd_op_budget_waits_total").increment(1);
        // The semaphore is never closed; without a permit the op just runs.
        self.kib.acquire_many(kib).await.ok()
    }

    /// Bytes of the budget held by ops right now.
    pub fn in_use(&self) -> u64 {
        u64::from(self.capacity_kib - self.kib.available_permits() as u32) << 10
    }
}

/// The up_thru this OSD wants and whether a request is on its way.
#[derive(Default)]
struct UpThruRequest {
    wanted: u64,
    sending: bool,
}

impl Osd {
    /// Creates the OSD state around an opened store and a map subscription.
    pub fn new(
        ident: OsdIdentity,
        store: Arc<dyn ObjectStore>,
        engine: String,
        map: watch::Receiver<Arc<MapView>>,
        mons: Vec<String>,
        tunables: OsdTunables,
        cred: Credential,
    ) -> Arc<Self> {
        let op_budget = OpBudget::new(tunables.client_op_bytes);
        Arc::new(Self {
            ident,
            boot_nonce: rand::random::<u64>() | 1,
            store,
            engine,
            map,
            pgs: std::sync::Mutex::new(HashMap::new()),
            peers: std::sync::Mutex::new(HashMap::new()),
            cred,
            tunables,
            mons,
            recovery_slots: Semaphore::new(4),
            op_budget,
            processed: watch::channel(0).0,
            history: tokio::sync::Mutex::new(HistoryCache::default()),
            up_thru: std::sync::Mutex::new(UpThruRequest::default()),
            fatal: watch::channel(None).0,
            used_ratio: std::sync::atomic::AtomicU64::new(0f64.to_bits()),
        })
    }

    /// Used fraction of the store (refreshed every heartbeat).
    pub fn used_ratio(&self) -> f64 {
        f64::from_bits(self.used_ratio.load(std::sync::atomic::Ordering::Relaxed))
    }

    /// Measures the store's use now.
    pub fn refresh_usage(&self) -> Option<meridian_objectstore::StoreUsage> {
        let u = self.store.statfs().ok()?;
        if u.total_bytes > 0 {
            let r = u.used_bytes as f64 / u.total_bytes as f64;
            self.used_ratio
                .store(r.to_bits(), std::sync::atomic::Ordering::Relaxed);
        }
        Some(u)
    }

    /// Waits until the PGs have taken in map `epoch` (bounded).
    pub async fn wait_for_processed(&self, epoch: u64, timeout: Duration) -> bool {
        let mut rx = self.processed.subscribe();
        tokio::time::timeout(timeout, rx.wait_for(|e| *e >= epoch))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Asks the monitors (once at a time) to raise this OSD's up_thru to `epoch`.
    pub fn request_up_thru(self: &Arc<Self>, epoch: u64) {
        {
            let mut st = self.up_thru.lock().unwrap_or_else(|p| p.into_inner());
            if epoch <= st.wanted {
                return;
            }
            st.wanted = epoch;
            if st.sending {
                return;
            }
            st.sending = true;
        }
        let osd = self.clone();
        tokio::spawn(async move {
            let mut attempt = 0usize;
            loop {
                let want = osd.up_thru.lock().unwrap_or_else(|p| p.into_inner()).wanted;
                let have = osd.view().osd(osd.id()).map(|o| o.up_thru).unwrap_or(0);
                let sent = have >= want || {
                    let addr = &osd.mons[attempt % osd.mons.len().max(1)];
                    let req = OsdAlive {
                        osd_id: osd.id(),
                        boot_nonce: osd.boot_nonce,
                        want_up_thru: want,
                    };
                    match mon_client(addr, &osd.cred) {
                        Ok(mut c) => c.osd_alive(req).await.is_ok(),
                        Err(_) => false,
                    }
                };
                if !sent {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
                let mut st = osd.up_thru.lock().unwrap_or_else(|p| p.into_inner());
                if st.wanted <= want {
                    st.sending = false;
                    return;
                }
            }
        });
    }

    /// After a store error: if the store is poisoned (a failed sync or
    /// commit: the disk is failing), stop serving and have the monitors
    /// mark this OSD down, as Ceph's OSD aborts on EIO.
    pub fn check_store(&self, e: &OsdError) {
        let reason = match e {
            OsdError::Store(StoreError::Poisoned(r)) => Some(r.clone()),
            _ => self.store.poisoned(),
        };
        if let Some(r) = reason {
            self.stop(format!("object store failed: {r}"));
        }
    }

    /// Stops serving for good (the first reason wins).
    pub fn stop(&self, reason: String) {
        self.fatal.send_if_modified(|f| {
            if f.is_some() {
                return false;
            }
            tracing::error!(osd = self.id(), reason = %reason, "stopping: this OSD can no longer serve");
            *f = Some(reason);
            true
        });
    }

    /// Deletes this OSD's copy of a PG (a stray no longer needed).
    pub async fn remove_pg(&self, id: PgId) -> Result<(), OsdError> {
        let pg = self.pg(id);
        if let Some(pg) = &pg {
            let _order = pg.submit.lock().await;
            pg.drain_local().await;
        }
        self.blocking(move |s| {
            s.submit(meridian_objectstore::Transaction::new().remove_collection(id))
                .map_err(Into::into)
        })
        .await?;
        self.pgs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
        Ok(())
    }

    /// This OSD's id.
    pub fn id(&self) -> u32 {
        self.ident.id
    }

    /// The newest map.
    pub fn view(&self) -> Arc<MapView> {
        self.map.borrow().clone()
    }

    /// Waits until the local map reaches `epoch` (bounded).
    pub async fn wait_for_epoch(&self, epoch: u64, timeout: Duration) -> bool {
        let mut rx = self.map.clone();
        tokio::time::timeout(timeout, async {
            loop {
                if rx.borrow_and_update().epoch() >= epoch {
                    return;
                }
                if rx.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
        })
        .await
        .is_ok()
    }

    /// A gRPC client to a peer OSD (cached).
    pub fn peer(&self, id: u32) -> Result<OsdClient, OsdError> {
        let view = self.view();
        let addr = view
            .osd(id)
            .map(|o| o.addr.clone())
            .ok_or_else(|| OsdError::Peer {
                osd: id,
                reason: "not in the map".into(),
            })?;
        let mut peers = self.peers.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = peers.get(&(id, addr.clone())) {
            return Ok(c.clone());
        }
        let c = osd_client(&addr, &self.cred).map_err(|e| OsdError::Peer {
            osd: id,
            reason: e.to_string(),
        })?;
        peers.insert((id, addr), c.clone());
        Ok(c)
    }

    /// Runs a blocking store call off the async runtime.
    pub async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn ObjectStore) -> Result<T, OsdError> + Send + 'static,
    ) -> Result<T, OsdError> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || f(store.as_ref()))
            .await
            .map_err(|e| OsdError::Internal(e.to_string()))?
    }

    /// The PG object, creating its in-memory state if needed.
    pub fn pg(&self, id: PgId) -> Option<Arc<Pg>> {
        self.pgs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&id)
            .cloned()
    }

    /// Boots with the monitors (retrying until a quorum answers).
    pub async fn boot(&self) -> anyhow::Result<u64> {
        let req = OsdBootRequest {
            osd_id: self.ident.id,
            addr: self.ident.addr.clone(),
            fsid: self.ident.fsid.clone(),
            weight: self.ident.weight,
            device_class: self.ident.device_class.clone(),
            host: self.ident.host.clone(),
            rack: self.ident.rack.clone(),
            datacenter: self.ident.datacenter.clone(),
            boot_nonce: self.boot_nonce,
            empty_store: self
                .store
                .list_collections()
                .map(|c| c.is_empty())
                .unwrap_or(false),
        };
        let mut attempt = 0usize;
        loop {
            let addr = &self.mons[attempt % self.mons.len()];
            attempt += 1;
            match mon_client(addr, &self.cred)?.osd_boot(req.clone()).await {
                Ok(r) => return Ok(r.into_inner().epoch),
                Err(s) if s.code() == tonic::Code::FailedPrecondition => {
                    anyhow::bail!("monitors refused boot: {}", s.message())
                }
                Err(s) => {
                    if attempt.is_multiple_of(self.mons.len()) {
                        tracing::warn!(error = %s.message(), "boot not acknowledged yet; retrying");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                }
            }
        }
    }

    /// Heartbeats to the monitors with PG stats; boots again if the monitors
    /// lost us; once the OSD must stop, reports why and stops heartbeating.
    pub async fn heartbeat_loop(self: Arc<Self>) {
        let mut attempt = 0usize;
        let mut beats = 0u64;
        loop {
            tokio::time::sleep(self.tunables.heartbeat_interval).await;
            let failure = self.fatal.borrow().clone();
            if failure.is_none()
                && let Some(r) = self.store.poisoned()
            {
                self.stop(format!("object store failed: {r}"));
                continue;
            }
            beats += 1;
            let stats = self.pg_stats();
            publish_pg_state_gauges(&stats);
            if beats.is_multiple_of(10) {
                crate::maps::notify_strays(&self);
            }
            let usage = self.refresh_usage();
            let req = OsdHeartbeatRequest {
                osd_id: self.ident.id,
                boot_nonce: self.boot_nonce,
                map_epoch: self.view().epoch(),
                pg_stats: stats,
                used_bytes: usage.as_ref().map(|u| u.used_bytes).unwrap_or(0),
                total_bytes: usage.as_ref().map(|u| u.total_bytes).unwrap_or(0),
                store_engine: self.engine.clone(),
                failure: failure.clone().unwrap_or_default(),
            };
            let addr = &self.mons[attempt % self.mons.len()];
            let Ok(mut c) = mon_client(addr, &self.cred) else {
                continue;
            };
            match tokio::time::timeout(self.tunables.heartbeat_interval * 2, c.osd_heartbeat(req))
                .await
            {
                Ok(Ok(_)) if failure.is_some() => return,
                Ok(Ok(r)) if r.get_ref().reboot => {
                    tracing::warn!("monitors marked this OSD down; booting again");
                    if let Err(e) = self.boot().await {
                        tracing::error!(error = %e, "re-boot failed");
                    }
                }
                Ok(Ok(_)) => {}
                _ => attempt += 1,
            }
        }
    }

    /// Stats of the PGs this OSD is primary for.
    pub fn pg_stats(&self) -> Vec<PgStat> {
        let pgs: Vec<Arc<Pg>> = self
            .pgs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect();
        let epoch = self.view().epoch();
        let mut out = Vec::new();
        for pg in pgs {
            let core = pg.core();
            let p = &core.peering;
            if !p.is_primary() {
                continue;
            }
            let lu = core.last_update();
            let lec = p.local().map(|s| s.history.last_epoch_clean).unwrap_or(0);
            out.push(PgStat {
                pool: pg.id.pool,
                seed: pg.id.seed,
                state: state_words(&core),
                objects: core.objects,
                bytes: 0,
                acting: p.interval().placement.acting.clone(),
                last_update_epoch: lu.0,
                last_update_seq: lu.1,
                map_epoch: epoch,
                last_epoch_clean: lec,
                blocked_by: p.prior().blocked_by.iter().copied().collect(),
                reason: p.reason().to_string(),
            });
        }
        out
    }

    /// Loads PGs present on disk (as strays until the map says otherwise).
    pub fn load_local_pgs(&self) -> Result<usize, OsdError> {
        let colls = self.store.list_collections()?;
        let mut pgs = self.pgs.lock().unwrap_or_else(|p| p.into_inner());
        for id in &colls {
            let Some(summary) = pglog::load_summary(self.store.as_ref(), *id)? else {
                continue;
            };
            pgs.entry(*id)
                .or_insert_with(|| Arc::new(Pg::new(*id, self.ident.id, Some(summary))));
        }
        Ok(pgs.len())
    }

    /// Follows map updates until the subscription ends.
    pub async fn map_loop(self: Arc<Self>) {
        let mut rx = self.map.clone();
        loop {
            let view = rx.borrow_and_update().clone();
            if view.epoch() > 0 {
                crate::maps::advance(&self, view).await;
            }
            if rx.changed().await.is_err() {
                return;
            }
        }
    }
}

/// Ceph-style state words of a PG on its primary.
pub fn state_words(core: &crate::pg::PgCore) -> String {
    let p = &core.peering;
    let mut s = p.state().as_str().to_string();
    if p.state() == PgState::Active {
        if p.is_clean() {
            s.push_str("+clean");
        } else {
            s.push_str("+undersized+degraded");
        }
    }
    s
}

/// `pg query`: the peering state of a PG as its primary (or any holder) sees it.
pub fn describe(osd: &Osd, pg: &Pg) -> PgDescribeReply {
    let core = pg.core();
    let p = &core.peering;
    let interval = p.interval();
    PgDescribeReply {
        pg: pgref(pg.id),
        state: state_words(&core),
        map_epoch: osd.view().epoch(),
        same_interval_since: interval.first,
        acting: interval.placement.acting.clone(),
        primary: interval.placement.primary().unwrap_or(u32::MAX),
        info: p.local().map(|s| s.to_info(pg.id)),
        past_intervals: p
            .past_intervals()
            .iter()
            .map(|i| PastIntervalInfo {
                first: i.first,
                last: i.last,
                acting: i.acting.clone(),
                primary: i.primary().unwrap_or(u32::MAX),
                maybe_went_rw: i.maybe_went_rw,
            })
            .collect(),
        probe: p.prior().probe.iter().copied().collect(),
        blocked_by: p.prior().blocked_by.iter().copied().collect(),
        peers: p
            .peers()
            .into_iter()
            .map(|(o, info, err)| PeerInfoSummary {
                osd: o,
                exists: info.is_some_and(|i| i.exists),
                last_update: info.and_then(|i| i.last_update),
                last_epoch_started: info.map(|i| i.last_epoch_started).unwrap_or(0),
                backfilling: info.is_some_and(|i| i.backfilling),
                error: match (info, err) {
                    (_, Some(e)) => e.to_string(),
                    (None, None) => "no answer yet".into(),
                    _ => String::new(),
                },
            })
            .collect(),
        reason: p.reason().to_string(),
        authoritative_osd: p.auth_osd().unwrap_or(u32::MAX),
        objects_to_recover: p.objects_to_recover(),
        ops_in_flight: core.ops.in_flight() as u64,
    }
}

/// `meridian_osd_pgs{state}`: PGs this OSD leads, by state (a state that
/// disappears is set to 0 so a dashboard does not keep the last value).
fn publish_pg_state_gauges(stats: &[PgStat]) {
    use std::collections::BTreeMap;
    static SEEN: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for p in stats {
        *counts.entry(p.state.as_str()).or_default() += 1;
    }
    let mut seen = SEEN.lock().unwrap_or_else(|p| p.into_inner());
    for s in seen.iter() {
        if !counts.contains_key(s.as_str()) {
            metrics::gauge!("meridian_osd_pgs", "state" => s.clone()).set(0.0);
        }
    }
    for (state, n) in &counts {
        metrics::gauge!("meridian_osd_pgs", "state" => state.to_string()).set(*n as f64);
        if !seen.iter().any(|s| s == state) {
            seen.push(state.to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::OpBudget;
    use std::time::Duration;

    #[tokio::test]
    async fn op_budget_makes_ops_past_it_wait_until_earlier_ones_finish() {
        let budget = OpBudget::new(16 << 20);
        let first = budget.admit(10 << 20).await;
        assert_eq!(budget.in_use(), 10 << 20);
        // 10 + 10 MiB do not fit in 16: the second waits.
        let waited = tokio::time::timeout(Duration::from_millis(100), budget.admit(10 << 20)).await;
        assert!(
            waited.is_err(),
            "a second 10 MiB op was admitted past 16 MiB"
        );
        drop(first);
        let second = tokio::time::timeout(Duration::from_secs(1), budget.admit(10 << 20))
            .await
            .expect("admitted once the first op finished");
        // An op larger than the whole budget waits for all of it, then runs.
        let big = tokio::time::timeout(Duration::from_millis(100), budget.admit(64 << 20)).await;
        assert!(big.is_err(), "a 64 MiB op ran beside a 10 MiB one");
        drop(second);
        let big = budget.admit(64 << 20).await;
        assert!(big.is_some());
        assert_eq!(budget.in_use(), 16 << 20);
        drop(big);
        assert_eq!(budget.in_use(), 0);
    }
}
