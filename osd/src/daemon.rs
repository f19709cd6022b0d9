//! The OSD process: boots with the monitors, follows the cluster map, keeps
//! one `Pg` per placement group it serves, heartbeats and reports PG stats.

use crate::error::OsdError;
use crate::pg::{Pg, PgRouting, Phase, Role};
use crate::pglog;
use meridian_client::{MapView, mon_client, osd_client};
use meridian_objectstore::{ObjectStore, PgId};
use meridian_proto::mon::{OsdBootRequest, OsdHeartbeatRequest, PgStat};
use meridian_proto::osd::osd_service_client::OsdServiceClient;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Semaphore, watch};
use tonic::transport::Channel;

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
}

impl OsdTunables {
    /// Reads the OSD's settings from the cluster-wide section.
    pub fn from_global(g: &meridian_common::config::GlobalSection) -> Self {
        Self {
            max_object_size: g.osd_max_object_size,
            heartbeat_interval: Duration::from_millis(g.osd_heartbeat_interval_ms),
            max_pg_log_entries: g.osd_max_pg_log_entries.max(1),
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
    peers: std::sync::Mutex<HashMap<(u32, String), OsdServiceClient<Channel>>>,
    /// Settings from the config.
    pub tunables: OsdTunables,
    /// Monitor addresses.
    pub mons: Vec<String>,
    /// Bounds concurrent peering/recovery work.
    pub recovery_slots: Semaphore,
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
    ) -> Arc<Self> {
        Arc::new(Self {
            ident,
            boot_nonce: rand::random::<u64>() | 1,
            store,
            engine,
            map,
            pgs: std::sync::Mutex::new(HashMap::new()),
            peers: std::sync::Mutex::new(HashMap::new()),
            tunables,
            mons,
            recovery_slots: Semaphore::new(4),
        })
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
    pub fn peer(&self, id: u32) -> Result<OsdServiceClient<Channel>, OsdError> {
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
        let c = osd_client(&addr).map_err(|e| OsdError::Peer {
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
        };
        let mut attempt = 0usize;
        loop {
            let addr = &self.mons[attempt % self.mons.len()];
            attempt += 1;
            match mon_client(addr)?.osd_boot(req.clone()).await {
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

    /// Heartbeats to the monitors with PG stats; boots again if the monitors lost us.
    pub async fn heartbeat_loop(self: Arc<Self>) {
        let mut attempt = 0usize;
        loop {
            tokio::time::sleep(self.tunables.heartbeat_interval).await;
            let stats = self.pg_stats().await;
            publish_pg_state_gauges(&stats);
            let usage = self.store.statfs().ok();
            let req = OsdHeartbeatRequest {
                osd_id: self.ident.id,
                boot_nonce: self.boot_nonce,
                map_epoch: self.view().epoch(),
                pg_stats: stats,
                used_bytes: usage.as_ref().map(|u| u.used_bytes).unwrap_or(0),
                total_bytes: usage.as_ref().map(|u| u.total_bytes).unwrap_or(0),
                store_engine: self.engine.clone(),
            };
            let addr = &self.mons[attempt % self.mons.len()];
            let Ok(mut c) = mon_client(addr) else {
                continue;
            };
            match tokio::time::timeout(self.tunables.heartbeat_interval * 2, c.osd_heartbeat(req))
                .await
            {
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

    async fn pg_stats(&self) -> Vec<PgStat> {
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
            let r = pg.routing();
            if r.role != Role::Primary {
                continue;
            }
            let (objects, lu) = match pg.core.try_lock() {
                Ok(c) => (c.objects, c.summary.last_update),
                Err(_) => (0, (0, 0)),
            };
            let mut state = r.phase.as_str().to_string();
            if r.phase == Phase::Active {
                if (r.acting.len() as u32) < r.size {
                    state.push_str("+undersized+degraded");
                } else {
                    state.push_str("+clean");
                }
            }
            out.push(PgStat {
                pool: pg.id.pool,
                seed: pg.id.seed,
                state,
                objects,
                bytes: 0,
                acting: r.acting.clone(),
                last_update_epoch: lu.0,
                last_update_seq: lu.1,
                map_epoch: epoch,
            });
        }
        out
    }

    /// Reacts to a new map: new intervals start peering; PGs we left become strays.
    pub fn handle_map(self: &Arc<Self>, view: &Arc<MapView>) {
        let me = self.ident.id;
        if let Some(o) = view.osd(me)
            && (!o.up || o.boot_nonce != self.boot_nonce)
            && view.epoch() > 0
        {
            // The monitors think we are down (or an older instance): boot again.
            let osd = self.clone();
            tokio::spawn(async move {
                if let Err(e) = osd.boot().await {
                    tracing::error!(error = %e, "re-boot failed");
                }
            });
            return;
        }
        let mut pgs = self.pgs.lock().unwrap_or_else(|p| p.into_inner());
        for pool in &view.map.pools {
            for seed in 0..pool.pg_num {
                let acting = view.pg_acting(pool, seed);
                let id = PgId::new(pool.id, seed);
                let role = match acting.iter().position(|o| *o == me) {
                    Some(0) => Role::Primary,
                    Some(_) => Role::Replica,
                    None => {
                        if let Some(pg) = pgs.get(&id) {
                            pg.set_routing(|r| {
                                r.role = Role::Stray;
                                r.acting = acting.clone();
                                r.activated_by = None;
                            });
                        }
                        continue;
                    }
                };
                let pg = pgs
                    .entry(id)
                    .or_insert_with(|| {
                        Arc::new(Pg::new(
                            id,
                            PgRouting {
                                role,
                                phase: Phase::Peering,
                                interval: 0,
                                acting: Vec::new(),
                                size: pool.size,
                                activated_by: None,
                            },
                            self.tunables.max_pg_log_entries,
                        ))
                    })
                    .clone();
                let r = pg.routing();
                let new_interval = r.acting != acting || r.role != role || r.interval == 0;
                if !new_interval {
                    continue;
                }
                pg.set_routing(|r| {
                    r.role = role;
                    r.acting = acting.clone();
                    r.interval = view.epoch();
                    r.size = pool.size;
                    r.phase = Phase::Peering;
                    r.activated_by = None;
                });
                if role == Role::Primary {
                    crate::peering::start(self.clone(), pg.clone(), view.epoch());
                }
            }
        }
        // PGs of deleted pools.
        let gone: Vec<PgId> = pgs
            .keys()
            .filter(|id| view.pool(id.pool).is_none())
            .cloned()
            .collect();
        for id in gone {
            pgs.remove(&id);
            let store = self.store.clone();
            tokio::task::spawn_blocking(move || {
                let txn = meridian_objectstore::Transaction::new().remove_collection(id);
                if let Err(e) = store.submit(txn) {
                    tracing::warn!(pg = ?id, error = %e, "removing PG of a deleted pool failed");
                }
            });
        }
    }

    /// Loads PGs present on disk (as strays until the map says otherwise).
    pub fn load_local_pgs(&self) -> Result<usize, OsdError> {
        let colls = self.store.list_collections()?;
        let mut pgs = self.pgs.lock().unwrap_or_else(|p| p.into_inner());
        for id in &colls {
            if pglog::load_summary(self.store.as_ref(), *id)?.is_none() {
                continue;
            }
            pgs.entry(*id).or_insert_with(|| {
                Arc::new(Pg::new(
                    *id,
                    PgRouting {
                        role: Role::Stray,
                        phase: Phase::Peering,
                        interval: 0,
                        acting: Vec::new(),
                        size: 0,
                        activated_by: None,
                    },
                    self.tunables.max_pg_log_entries,
                ))
            });
        }
        Ok(pgs.len())
    }

    /// Follows map updates until the subscription ends.
    pub async fn map_loop(self: Arc<Self>) {
        let mut rx = self.map.clone();
        loop {
            let view = rx.borrow_and_update().clone();
            if view.epoch() > 0 {
                self.handle_map(&view);
            }
            if rx.changed().await.is_err() {
                return;
            }
        }
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
