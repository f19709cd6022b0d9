//! The MonService gRPC front: map subscription, OSD boot/heartbeat,
//! administrative commands (forwarded to the leader), status; plus the
//! leader's failure detector that marks silent OSDs down and then out.

use crate::multisite::without_secrets;
use crate::node::{NodeHandle, NodeInput, ProposeError};
use crate::state::{self, CommandError};
use meridian_auth::Perms;
use meridian_auth::access::{Caller, Need, Service};
use meridian_auth::grpc::{Credential, Signed, caller_of};
use meridian_common::GlobalSection;
use meridian_proto::mon::mon_command::Cmd;
use meridian_proto::mon::mon_service_client::MonServiceClient;
use meridian_proto::mon::mon_service_server::MonService;
use meridian_proto::mon::*;
use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

/// A gateway silent for this long drops out of `status`.
const GATEWAY_BEACON_GRACE: Duration = Duration::from_secs(30);
/// How long a command may wait for a leader and its commit.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(15);
/// How often the leader considers trimming the map history.
const HISTORY_TRIM_PERIOD: Duration = Duration::from_secs(30);
/// Most history maps sent in one `GetMapHistory` reply.
const HISTORY_PAGE: usize = 256;

/// What the leader knows about one OSD from its heartbeats (not replicated).
#[derive(Debug, Clone)]
struct OsdLiveness {
    last_seen: Instant,
    nonce: u64,
    pg_stats: Vec<PgStat>,
    used: u64,
    total: u64,
    engine: String,
}

/// The monitor's gRPC service.
#[derive(Clone)]
pub struct MonServer {
    id: u64,
    fsid: String,
    node: NodeHandle,
    peers: Arc<HashMap<u64, String>>,
    settings: Arc<MonSettings>,
    live: Arc<Mutex<HashMap<u32, OsdLiveness>>>,
    gateways: Arc<Mutex<HashMap<String, (Instant, GatewayBeacon)>>>,
    clients: Arc<Mutex<HashMap<u64, PeerClient>>>,
    /// How this monitor proves itself to the others (the `mon.` key).
    peer_cred: Credential,
}

/// This monitor's settings: its file's `[global]` with the central
/// configuration laid over it, recomputed whenever the database changes.
struct MonSettings {
    file: GlobalSection,
    file_keys: std::collections::BTreeSet<String>,
    chain: Vec<String>,
    effective: Mutex<(u64, Arc<GlobalSection>)>,
}

type PeerClient = MonServiceClient<Signed<tonic::transport::Channel>>;

fn to_status(e: CommandError) -> Status {
    match e {
        CommandError::NotFound(m) => Status::not_found(m),
        CommandError::Exists(m) => Status::already_exists(m),
        CommandError::Invalid(m) => Status::invalid_argument(m),
    }
}

impl MonServer {
    /// Creates the service; `peers` maps every monitor id (including this one) to its address.
    pub fn new(
        id: u64,
        fsid: String,
        node: NodeHandle,
        peers: HashMap<u64, String>,
        global: GlobalSection,
        file_keys: std::collections::BTreeSet<String>,
        peer_cred: Credential,
    ) -> Self {
        let settings = MonSettings {
            effective: Mutex::new((0, Arc::new(global.clone()))),
            file: global,
            file_keys,
            chain: meridian_common::central::mon_chain(id),
        };
        Self {
            id,
            fsid,
            node,
            peers: Arc::new(peers),
            settings: Arc::new(settings),
            live: Arc::new(Mutex::new(HashMap::new())),
            gateways: Arc::new(Mutex::new(HashMap::new())),
            clients: Arc::new(Mutex::new(HashMap::new())),
            peer_cred,
        }
    }

    /// The settings in effect now (the file, under the central configuration).
    fn global(&self) -> Arc<GlobalSection> {
        let db = self.node.config.borrow().clone();
        let s = &self.settings;
        let mut eff = s.effective.lock().unwrap_or_else(|p| p.into_inner());
        if eff.0 != db.version {
            let options: Vec<(String, String, String)> = db
                .options
                .iter()
                .map(|((w, k), v)| (w.clone(), k.clone(), v.clone()))
                .collect();
            let mut g = s.file.clone();
            let report =
                meridian_common::central::apply_options(&mut g, &s.file_keys, &s.chain, &options);
            meridian_common::central::log_applied(&format!("mon.{}", self.id), &report);
            *eff = (db.version, Arc::new(g));
        }
        eff.1.clone()
    }

    fn is_leader(&self) -> bool {
        self.node.status.borrow().is_leader
    }

    fn leader_client(&self, leader: u64) -> Result<PeerClient, Status> {
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = clients.get(&leader) {
            return Ok(c.clone());
        }
        let addr = self.peers.get(&leader).ok_or_else(|| {
            Status::unavailable(format!("leader mon.{leader} has no known address"))
        })?;
        let ch = meridian_auth::transport::endpoint(addr)
            .map_err(|e| Status::internal(e.to_string()))?
            .connect_timeout(Duration::from_secs(1))
            .timeout(COMMAND_TIMEOUT)
            .connect_lazy();
        let c = MonServiceClient::new(Signed::new(ch, self.peer_cred.clone()))
            .max_decoding_message_size(meridian_proto::MAX_MESSAGE_BYTES)
            .max_encoding_message_size(meridian_proto::MAX_MESSAGE_BYTES);
        clients.insert(leader, c.clone());
        Ok(c)
    }

    /// Waits (bounded) until some monitor is known to lead; returns its id.
    async fn wait_leader(&self, deadline: Instant) -> Result<u64, Status> {
        let mut rx = self.node.status.clone();
        loop {
            let leader = rx.borrow().leader;
            if leader != 0 {
                return Ok(leader);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Status::unavailable(
                    "no monitor quorum: fewer than a majority of monitors are reachable",
                ));
            }
            let _ = tokio::time::timeout(left, rx.changed()).await;
        }
    }

    /// Proposes a command on the leader (forwarding if needed) and waits for it to apply.
    pub async fn propose(&self, cmd: Cmd, forwarded: bool) -> Result<CommandReply, Status> {
        let deadline = Instant::now() + COMMAND_TIMEOUT;
        loop {
            let leader = self.wait_leader(deadline).await?;
            if leader != self.id {
                if forwarded {
                    return Err(Status::unavailable("leadership is changing; retry"));
                }
                let mut client = self.leader_client(leader)?;
                // Signed with the mon. key: the leader knows it is forwarded
                // and that this monitor checked the caller's caps.
                let req = Request::new(MonCommand {
                    cmd: Some(cmd.clone()),
                });
                match client.command(req).await {
                    Ok(r) => return Ok(r.into_inner()),
                    Err(s) if s.code() == tonic::Code::Unavailable && Instant::now() < deadline => {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                    Err(s) => return Err(s),
                }
            }
            let (tx, rx) = oneshot::channel();
            let p = state::proposal(
                rand::random(),
                self.id,
                meridian_common::now_unix_ms(),
                cmd.clone(),
            );
            self.node
                .tx
                .send(NodeInput::Propose(Box::new(p), tx))
                .await
                .map_err(|_| Status::internal("raft loop stopped"))?;
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, rx).await {
                Ok(Ok(Ok(Ok((epoch, message))))) => return Ok(CommandReply { epoch, message }),
                Ok(Ok(Ok(Err(e)))) => return Err(to_status(e)),
                Ok(Ok(Err(ProposeError::NotLeader { .. })))
                | Ok(Ok(Err(ProposeError::Dropped(_)))) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    if Instant::now() >= deadline {
                        return Err(Status::unavailable("command not committed in time; retry"));
                    }
                }
                Ok(Err(_)) => return Err(Status::internal("raft loop dropped the proposal")),
                Err(_) => {
                    return Err(Status::deadline_exceeded(
                        "command not committed in time; retry",
                    ));
                }
            }
        }
    }

    /// Runs the leader's periodic duties: bootstrap, mark silent OSDs down, then out.
    pub async fn leader_duties(self) {
        let mut was_leader = false;
        let mut last_trim = Instant::now();
        let mut interval = tokio::time::interval(Duration::from_millis(250));
        loop {
            interval.tick().await;
            let leader = self.is_leader();
            if !leader {
                was_leader = false;
                continue;
            }
            let map = self.node.map.borrow().clone();
            if map.fsid.is_empty() {
                let mons = self
                    .peers
                    .iter()
                    .map(|(id, addr)| MonInfo {
                        id: *id,
                        addr: addr.clone(),
                    })
                    .collect::<Vec<_>>();
                let mut mons = mons;
                mons.sort_by_key(|m| m.id);
                let fd = self.global().osd_crush_chooseleaf_type.clone();
                let _ = self
                    .propose(
                        Cmd::Bootstrap(Bootstrap {
                            fsid: self.fsid.clone(),
                            mons,
                            default_failure_domain: fd,
                        }),
                        false,
                    )
                    .await;
                continue;
            }
            if !self
                .node
                .auth
                .borrow()
                .entities
                .contains_key("client.admin")
            {
                // A new cluster (or one from before entities existed): make
                // the administrator whose keyring the monitors hand out.
                let admin = AuthAdd {
                    entity: Some(AuthEntity {
                        name: "client.admin".into(),
                        key: meridian_auth::generate_key(),
                        caps: crate::auth::admin_caps(),
                    }),
                    get_or_create: false,
                    if_absent: true,
                };
                if let Err(e) = self.propose(Cmd::AuthAdd(admin), false).await {
                    tracing::warn!(error = %e.message(), "creating client.admin");
                }
                continue;
            }
            let newest = self.node.auth.borrow().secrets.last().map(|s| s.created_ms);
            let period_ms = self.global().auth_service_ticket_ttl_s.max(1) * 1000;
            if newest.is_none_or(|t| t + period_ms <= meridian_common::now_unix_ms()) {
                let secret = meridian_auth::ticket::fresh_secret().to_vec();
                let rotate = Cmd::AuthRotate(AuthRotate {
                    secret: secret.into(),
                });
                if let Err(e) = self.propose(rotate, false).await {
                    tracing::warn!(error = %e.message(), "rotating the service secret");
                }
                continue;
            }
            let now = Instant::now();
            if !was_leader {
                // A new leader has no heartbeat history: give every OSD a full grace period.
                was_leader = true;
                let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
                for o in &map.osds {
                    live.entry(o.id)
                        .or_insert(OsdLiveness {
                            last_seen: now,
                            nonce: o.boot_nonce,
                            pg_stats: vec![],
                            used: 0,
                            total: 0,
                            engine: String::new(),
                        })
                        .last_seen = now;
                }
                continue;
            }
            let grace = Duration::from_millis(self.global().osd_heartbeat_grace_ms);
            let mut to_mark_down = Vec::new();
            {
                let live = self.live.lock().unwrap_or_else(|p| p.into_inner());
                for o in map.osds.iter().filter(|o| o.up) {
                    let silent = live
                        .get(&o.id)
                        .map(|l| now.duration_since(l.last_seen) > grace)
                        .unwrap_or(true);
                    if silent {
                        to_mark_down.push((o.id, o.boot_nonce));
                    }
                }
            }
            for (id, nonce) in to_mark_down {
                tracing::info!(osd = id, "no heartbeat within grace; marking down");
                if let Err(e) = self
                    .propose(
                        Cmd::OsdMarkDown(OsdMarkDown {
                            osd_id: id,
                            boot_nonce: nonce,
                            reason: "heartbeat grace expired".into(),
                        }),
                        false,
                    )
                    .await
                {
                    tracing::warn!(osd = id, error = %e, "mark down failed");
                }
            }
            if now.duration_since(last_trim) >= HISTORY_TRIM_PERIOD {
                last_trim = now;
                self.maybe_trim_history(&map).await;
            }
            let now_s = meridian_common::now_unix_ms() / 1000;
            let noout = map.flags.iter().any(|f| f == "noout");
            for o in map.osds.iter().filter(|o| !o.up && o.r#in && !noout) {
                if o.down_since_unix > 0
                    && now_s >= o.down_since_unix + self.global().mon_osd_down_out_interval_s
                {
                    tracing::info!(
                        osd = o.id,
                        "down longer than down_out_interval; marking out"
                    );
                    let _ = self
                        .propose(Cmd::OsdMarkOut(OsdMarkOut { osd_id: o.id }), false)
                        .await;
                }
            }
        }
    }

    /// Trims the map history below the oldest `last_epoch_clean` any PG
    /// reports: peering never looks further back than a PG's last clean
    /// epoch. Nothing is trimmed while any PG has no report (its primary is
    /// down, or it has never been clean).
    async fn maybe_trim_history(&self, map: &ClusterMap) {
        let mut lec: HashMap<(u64, u32), (u64, u64)> = HashMap::new();
        {
            let live = self.live.lock().unwrap_or_else(|p| p.into_inner());
            for o in map.osds.iter().filter(|o| o.up) {
                let Some(l) = live.get(&o.id).filter(|l| l.nonce == o.boot_nonce) else {
                    continue;
                };
                for s in &l.pg_stats {
                    let e = lec.entry((s.pool, s.seed)).or_insert((0, 0));
                    if s.map_epoch >= e.0 {
                        *e = (s.map_epoch, s.last_epoch_clean);
                    }
                }
            }
        }
        let mut floor = u64::MAX;
        for p in &map.pools {
            for seed in 0..p.pg_num {
                match lec.get(&(p.id, seed)) {
                    Some((_, l)) if *l > 0 => floor = floor.min(*l),
                    _ => return,
                }
            }
        }
        let first = self
            .node
            .history
            .borrow()
            .keys()
            .next()
            .copied()
            .unwrap_or(0);
        let floor = floor.min(map.epoch.saturating_sub(state::MIN_HISTORY_EPOCHS));
        if floor == u64::MAX || floor <= first + 50 {
            return;
        }
        match self
            .propose(Cmd::MapHistoryTrim(MapHistoryTrim { before: floor }), false)
            .await
        {
            Ok(r) => tracing::debug!(before = floor, msg = %r.message, "map history trimmed"),
            Err(e) => tracing::warn!(error = %e, "map history trim failed"),
        }
    }

    async fn forward_status(&self) -> Result<StatusReply, Status> {
        let leader = self.wait_leader(Instant::now() + COMMAND_TIMEOUT).await?;
        let mut c = self.leader_client(leader)?;
        Ok(c.status(Request::new(StatusRequest {})).await?.into_inner())
    }
}

/// Whether another monitor sent this (proved by the `mon.` key): a
/// forwarded request, whose caller that monitor already checked.
fn is_forwarded<T>(r: &Request<T>) -> bool {
    caller_of(r) == Caller::MonPeer
}

/// Refuses a request of OSD `id` sent by anyone but that OSD (or a monitor
/// forwarding it): nobody may boot, heartbeat or report for another OSD.
fn require_osd<T>(r: &Request<T>, id: u32) -> Result<(), Status> {
    let caller = caller_of(r);
    if caller.is_osd_daemon(id) {
        return Ok(());
    }
    Err(Status::permission_denied(format!(
        "{} may not speak for osd.{id}",
        caller.name()
    )))
}

/// What a monitor command needs beyond `mon r`: internal commands only
/// monitors send; entity changes and what destroys data (pool rm, osd
/// lost, osd purge) need `mon 'allow *'`; the rest `mon w`.
fn command_need(cmd: &Cmd) -> Need {
    match cmd {
        Cmd::Bootstrap(_)
        | Cmd::OsdBoot(_)
        | Cmd::OsdMarkDown(_)
        | Cmd::OsdMarkOut(_)
        | Cmd::OsdAlive(_)
        | Cmd::OsdFullness(_)
        | Cmd::MapHistoryTrim(_)
        | Cmd::AuthRotate(_) => Need::MonPeer,
        Cmd::AuthAdd(_)
        | Cmd::AuthCaps(_)
        | Cmd::AuthRm(_)
        | Cmd::PoolRemove(_)
        | Cmd::OsdLost(_)
        | Cmd::OsdPurge(_) => Need::Perms(Service::Mon, Perms::ALL),
        _ => Need::Perms(Service::Mon, Perms::W),
    }
}

type MapStream = Pin<Box<dyn Stream<Item = Result<ClusterMap, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl MonService for MonServer {
    type SubscribeStream = MapStream;

    async fn subscribe(
        &self,
        req: Request<SubscribeRequest>,
    ) -> Result<Response<MapStream>, Status> {
        let mut have = req.into_inner().have_epoch;
        let mut rx = self.node.map.clone();
        let stream = async_stream(move |tx| async move {
            loop {
                let map = rx.borrow_and_update().clone();
                if map.epoch > have && !map.fsid.is_empty() {
                    have = map.epoch;
                    if tx.send(Ok(without_secrets(&map))).await.is_err() {
                        return;
                    }
                }
                if rx.changed().await.is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(stream))
    }

    async fn get_map(&self, _req: Request<GetMapRequest>) -> Result<Response<ClusterMap>, Status> {
        let map = self.node.map.borrow().clone();
        if map.fsid.is_empty() {
            return Err(Status::unavailable("cluster not bootstrapped yet; retry"));
        }
        Ok(Response::new(without_secrets(&map)))
    }

    async fn get_zone_secrets(
        &self,
        _req: Request<ZoneSecretsRequest>,
    ) -> Result<Response<ZoneSecretsReply>, Status> {
        let map = self.node.map.borrow().clone();
        Ok(Response::new(ZoneSecretsReply {
            zones: crate::multisite::zone_secrets(&map),
        }))
    }

    async fn get_map_history(
        &self,
        req: Request<MapHistoryRequest>,
    ) -> Result<Response<MapHistoryReply>, Status> {
        let r = req.into_inner();
        if r.to_epoch < r.from_epoch {
            return Err(Status::invalid_argument(format!(
                "to_epoch {} is before from_epoch {}",
                r.to_epoch, r.from_epoch
            )));
        }
        let history = self.node.history.borrow().clone();
        let first_epoch = history.keys().next().copied().unwrap_or(0);
        let (maps, more) = state::history_page(&history, r.from_epoch, r.to_epoch, HISTORY_PAGE);
        let last_epoch = self.node.map.borrow().epoch;
        Ok(Response::new(MapHistoryReply {
            maps: maps.iter().map(|m| without_secrets(m)).collect(),
            first_epoch,
            more,
            last_epoch,
        }))
    }

    async fn osd_alive(&self, req: Request<OsdAlive>) -> Result<Response<CommandReply>, Status> {
        require_osd(&req, req.get_ref().osd_id)?;
        let forwarded = is_forwarded(&req);
        let a = req.into_inner();
        Ok(Response::new(
            self.propose(Cmd::OsdAlive(a), forwarded).await?,
        ))
    }

    async fn osd_boot(
        &self,
        req: Request<OsdBootRequest>,
    ) -> Result<Response<OsdBootReply>, Status> {
        require_osd(&req, req.get_ref().osd_id)?;
        let forwarded = is_forwarded(&req);
        let b = req.into_inner();
        if b.fsid != self.fsid {
            return Err(Status::failed_precondition(format!(
                "osd.{} belongs to cluster {} but this monitor serves cluster {}",
                b.osd_id, b.fsid, self.fsid
            )));
        }
        let (id, nonce) = (b.osd_id, b.boot_nonce);
        let reply = self.propose(Cmd::OsdBoot(b), forwarded).await?;
        if self.is_leader() {
            self.live.lock().unwrap_or_else(|p| p.into_inner()).insert(
                id,
                OsdLiveness {
                    last_seen: Instant::now(),
                    nonce,
                    pg_stats: vec![],
                    used: 0,
                    total: 0,
                    engine: String::new(),
                },
            );
        }
        Ok(Response::new(OsdBootReply { epoch: reply.epoch }))
    }

    async fn osd_heartbeat(
        &self,
        req: Request<OsdHeartbeatRequest>,
    ) -> Result<Response<OsdHeartbeatReply>, Status> {
        require_osd(&req, req.get_ref().osd_id)?;
        if !self.is_leader() {
            if is_forwarded(&req) {
                return Err(Status::unavailable("not the leader"));
            }
            let leader = self
                .wait_leader(Instant::now() + Duration::from_secs(3))
                .await?;
            let mut c = self.leader_client(leader)?;
            return c.osd_heartbeat(Request::new(req.into_inner())).await;
        }
        let hb = req.into_inner();
        if !hb.failure.is_empty() {
            tracing::warn!(osd = hb.osd_id, failure = %hb.failure, "osd reports it stopped serving; marking down");
            self.live
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&hb.osd_id);
            let r = self
                .propose(
                    Cmd::OsdMarkDown(OsdMarkDown {
                        osd_id: hb.osd_id,
                        boot_nonce: hb.boot_nonce,
                        reason: hb.failure.clone(),
                    }),
                    false,
                )
                .await?;
            return Ok(Response::new(OsdHeartbeatReply {
                epoch: r.epoch,
                reboot: false,
            }));
        }
        let map = self.node.map.borrow().clone();
        let known = map
            .osds
            .iter()
            .find(|o| o.id == hb.osd_id)
            .map(|o| o.up && o.boot_nonce == hb.boot_nonce)
            .unwrap_or(false);
        if known {
            let state = meridian_proto::fullness::state_of(&map, hb.used_bytes, hb.total_bytes);
            let recorded = map
                .osds
                .iter()
                .find(|o| o.id == hb.osd_id)
                .map(|o| o.full_state)
                .unwrap_or(0);
            if state as i32 != recorded {
                let me = self.clone();
                let id = hb.osd_id;
                // Not awaited: a heartbeat must not wait on a Raft commit.
                tokio::spawn(async move {
                    let cmd = Cmd::OsdFullness(OsdFullness {
                        osd_id: id,
                        state: state as i32,
                    });
                    if let Err(e) = me.propose(cmd, false).await {
                        tracing::warn!(osd = id, error = %e, "recording OSD fullness failed");
                    }
                });
            }
            self.live.lock().unwrap_or_else(|p| p.into_inner()).insert(
                hb.osd_id,
                OsdLiveness {
                    last_seen: Instant::now(),
                    nonce: hb.boot_nonce,
                    pg_stats: hb.pg_stats,
                    used: hb.used_bytes,
                    total: hb.total_bytes,
                    engine: hb.store_engine,
                },
            );
        }
        Ok(Response::new(OsdHeartbeatReply {
            epoch: map.epoch,
            reboot: !known,
        }))
    }

    async fn command(&self, req: Request<MonCommand>) -> Result<Response<CommandReply>, Status> {
        let forwarded = is_forwarded(&req);
        let caller = caller_of(&req);
        let mut cmd = req
            .into_inner()
            .cmd
            .ok_or_else(|| Status::invalid_argument("empty command"))?;
        match command_need(&cmd) {
            Need::MonPeer if !forwarded => {
                return Err(Status::permission_denied(
                    "internal command: use `osd out`/`osd in` to change an OSD's state",
                ));
            }
            need => caller
                .check("Command", need, None)
                .map_err(Status::permission_denied)?,
        }
        // Keys are made here, once: every monitor applies the same one.
        if let Cmd::AuthAdd(AuthAdd {
            entity: Some(e), ..
        }) = &mut cmd
            && e.key.is_empty()
        {
            e.key = meridian_auth::generate_key();
        }
        // Central options are checked here, by this build's schema; the
        // log carries the canonical key.
        match &mut cmd {
            Cmd::ConfigSet(c) if !forwarded => {
                use meridian_common::central::{CentralOption, check_option};
                match check_option(&c.who, &c.key, &c.value)
                    .map_err(|e| Status::invalid_argument(e.to_string()))?
                {
                    CentralOption::Store { key, value } => {
                        c.key = key;
                        c.value = value;
                    }
                    CentralOption::NoEffect(why) => {
                        return Ok(Response::new(CommandReply {
                            epoch: self.node.map.borrow().epoch,
                            message: format!("{} not stored: no effect in Meridian: {why}", c.key),
                        }));
                    }
                }
            }
            Cmd::ConfigRm(r) => r.key = meridian_common::config::canonical_key(&r.key).to_string(),
            _ => {}
        }
        Ok(Response::new(self.propose(cmd, forwarded).await?))
    }

    async fn get_config(
        &self,
        req: Request<GetConfigRequest>,
    ) -> Result<Response<GetConfigReply>, Status> {
        let who = req.into_inner().who;
        let db = self.node.config.borrow().clone();
        Ok(Response::new(GetConfigReply {
            options: db.select(&who),
            version: db.version,
        }))
    }

    async fn auth_get(
        &self,
        req: Request<AuthGetRequest>,
    ) -> Result<Response<AuthGetReply>, Status> {
        let name = req.into_inner().name;
        let db = self.node.auth.borrow().entities.clone();
        let entities = if name.is_empty() {
            db.values().cloned().collect()
        } else {
            let checked: meridian_auth::EntityName = name
                .parse()
                .map_err(|e: meridian_auth::AuthError| Status::invalid_argument(e.to_string()))?;
            let e = db
                .get(&checked.to_string())
                .ok_or_else(|| Status::not_found(format!("failed to find {checked} in keyring")))?;
            vec![e.clone()]
        };
        Ok(Response::new(AuthGetReply { entities }))
    }

    async fn authenticate(
        &self,
        req: Request<AuthenticateRequest>,
    ) -> Result<Response<AuthenticateReply>, Status> {
        let r = req.into_inner();
        let now = meridian_common::now_unix_ms();
        let issued = crate::auth::authenticate(
            &self.node.auth.borrow(),
            &r,
            now,
            self.global().auth_service_ticket_ttl_s.saturating_mul(1000),
        );
        let issued = issued.map_err(|e| match e {
            crate::auth::AuthFailure::Invalid(m) => Status::invalid_argument(m),
            crate::auth::AuthFailure::Refused(m) => Status::unauthenticated(m),
            crate::auth::AuthFailure::NotReady(m) => Status::unavailable(m),
        })?;
        Ok(Response::new(issued))
    }

    async fn get_service_secrets(
        &self,
        _req: Request<ServiceSecretsRequest>,
    ) -> Result<Response<ServiceSecretsReply>, Status> {
        let secrets = self.node.auth.borrow().secrets.clone();
        Ok(Response::new(ServiceSecretsReply { secrets }))
    }

    async fn status(&self, req: Request<StatusRequest>) -> Result<Response<StatusReply>, Status> {
        if !self.is_leader() {
            if is_forwarded(&req) {
                return Err(Status::unavailable("not the leader"));
            }
            return Ok(Response::new(self.forward_status().await?));
        }
        let map = self.node.map.borrow().clone();
        let st = self.node.status.borrow().clone();
        let now = Instant::now();
        let live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        let mut pg_stats = Vec::new();
        let mut osd_usage = Vec::new();
        for o in map.osds.iter() {
            if let Some(l) = live.get(&o.id) {
                if o.up && l.nonce == o.boot_nonce {
                    pg_stats.extend(l.pg_stats.iter().cloned());
                }
                osd_usage.push(OsdUsage {
                    osd_id: o.id,
                    used_bytes: l.used,
                    total_bytes: l.total,
                    store_engine: l.engine.clone(),
                    last_heartbeat_ms_ago: now.duration_since(l.last_seen).as_millis() as u64,
                });
            }
        }
        // Keep only the newest report per PG (a PG may be reported by an old primary too).
        pg_stats.sort_by(|a, b| (a.pool, a.seed, b.map_epoch).cmp(&(b.pool, b.seed, a.map_epoch)));
        pg_stats.dedup_by(|a, b| a.pool == b.pool && a.seed == b.seed);
        let matched: HashMap<u64, u64> = st.progress.iter().cloned().collect();
        let last = matched.get(&self.id).cloned().unwrap_or(0);
        let mut mons: Vec<MonPeerStatus> = self
            .peers
            .iter()
            .map(|(id, addr)| {
                let m = matched.get(id).cloned().unwrap_or(0);
                MonPeerStatus {
                    id: *id,
                    addr: addr.clone(),
                    reachable: *id == self.id || (m > 0 && last.saturating_sub(m) < 1000),
                    matched_index: m,
                }
            })
            .collect();
        mons.sort_by_key(|m| m.id);
        let quorum = mons.iter().filter(|m| m.reachable).map(|m| m.id).collect();
        let gateways = {
            let mut g = self.gateways.lock().unwrap_or_else(|p| p.into_inner());
            g.retain(|_, (seen, _)| now.duration_since(*seen) < GATEWAY_BEACON_GRACE);
            let mut v: Vec<GatewayBeacon> = g
                .values()
                .map(|(seen, b)| GatewayBeacon {
                    last_seen_ms_ago: now.duration_since(*seen).as_millis() as u64,
                    ..b.clone()
                })
                .collect();
            v.sort_by(|a, b| a.id.cmp(&b.id));
            v
        };
        Ok(Response::new(StatusReply {
            fsid: map.fsid.clone(),
            epoch: map.epoch,
            leader_id: st.leader,
            quorum,
            raft_term: st.term,
            pg_stats,
            osd_usage,
            map: Some(without_secrets(&map)),
            mons,
            gateways,
        }))
    }

    async fn beacon(
        &self,
        req: Request<GatewayBeacon>,
    ) -> Result<Response<GatewayBeaconReply>, Status> {
        let b = req.into_inner();
        if b.id.is_empty() {
            return Err(Status::invalid_argument("a beacon needs the gateway id"));
        }
        let mut g = self.gateways.lock().unwrap_or_else(|p| p.into_inner());
        if g.len() > 10_000 {
            g.clear();
        }
        g.insert(b.id.clone(), (Instant::now(), b));
        Ok(Response::new(GatewayBeaconReply {}))
    }

    async fn raft(&self, req: Request<RaftEnvelope>) -> Result<Response<RaftAck>, Status> {
        let env = req.into_inner();
        if env.fsid != self.fsid {
            return Err(Status::permission_denied(format!(
                "raft message from cluster {} rejected by cluster {}",
                env.fsid, self.fsid
            )));
        }
        let m = crate::node::decode_raft_message(&env.message)
            .map_err(|e| Status::invalid_argument(format!("bad raft message: {e}")))?;
        self.node
            .tx
            .send(NodeInput::Raft(Box::new(m)))
            .await
            .map_err(|_| Status::unavailable("raft loop stopped"))?;
        Ok(Response::new(RaftAck {}))
    }
}

/// A small channel-backed stream (avoids pulling in async-stream).
fn async_stream<F, Fut>(f: F) -> MapStream
where
    F: FnOnce(tokio::sync::mpsc::Sender<Result<ClusterMap, Status>>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    tokio::spawn(f(tx));
    Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))
}
