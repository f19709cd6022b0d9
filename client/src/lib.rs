//! The Meridian cluster client (like librados): subscribes to the cluster map,
//! computes placement locally, sends each op straight to the PG's primary and
//! retries across map changes, with bounded timeouts and typed errors.

pub mod map;
pub mod ops;

pub use map::{MapView, PgId};
pub use meridian_auth::grpc::{Credential, Credentials, TicketKeeper};
use meridian_auth::grpc::{Signed, is_auth_refusal};
use meridian_proto::mon::mon_command::Cmd;
use meridian_proto::mon::mon_service_client::MonServiceClient;
use meridian_proto::mon::{
    ClusterMap, CommandReply, MonCommand, StatusReply, StatusRequest, SubscribeRequest,
};
use meridian_proto::osd::osd_service_client::OsdServiceClient;
use meridian_proto::osd::{OpReply, OpRequest, ReqId, ResultCode, SubOp};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tonic::transport::{Channel, Endpoint};

/// Errors a client call can end with.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ClientError {
    /// No monitor answered.
    #[error("cannot reach any monitor ({addrs}): {reason}")]
    NoMonitor { addrs: String, reason: String },
    /// The pool does not exist.
    #[error("pool '{0}' does not exist (see `meridian osd pool ls`)")]
    NoPool(String),
    /// The object does not exist.
    #[error("object '{0}' not found")]
    NotFound(String),
    /// Exclusive create of an existing object.
    #[error("object '{0}' already exists")]
    Exists(String),
    /// A guard (cmpxattr / assert-version / assert-exists) failed; nothing was applied.
    #[error("precondition failed on '{0}'; nothing was changed")]
    GuardFailed(String),
    /// The op exceeds the object size limit.
    #[error("{0}")]
    TooLarge(String),
    /// The request is malformed.
    #[error("invalid request: {0}")]
    Invalid(String),
    /// The cluster is out of space.
    #[error("no space left: {0}")]
    NoSpace(String),
    /// An OSD of the object's PG is past the full ratio: writes are refused
    /// until data is deleted (reads and deletes still work).
    #[error("cluster is full: {0}")]
    Full(String),
    /// Data could not be read intact from any replica.
    #[error("object '{0}' is corrupt on every replica that was tried")]
    Corrupt(String),
    /// The op did not complete within the client timeout.
    #[error("timed out after {secs}s: {last}")]
    Timeout { secs: u64, last: String },
    /// A monitor refused a command.
    #[error("{0}")]
    Command(String),
    /// The cluster did not accept who we are, or what we may do
    /// (`UNAUTHENTICATED` / `PERMISSION_DENIED`).
    #[error("{0}")]
    Auth(String),
    /// The monitors run a build without this call.
    #[error("the monitors do not support {0} (an older build)")]
    Unsupported(String),
    /// Anything else the cluster reported.
    #[error("{0}")]
    Other(String),
}

/// Client tuning.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Total time an op may take, retries included.
    pub op_timeout: Duration,
    /// Time one attempt may take before it is retried.
    pub attempt_timeout: Duration,
    /// Who this client is (its key from a keyring); `None` calls without
    /// a ticket, which only a cluster with `auth_required = false` serves.
    pub credentials: Option<Credentials>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            op_timeout: Duration::from_secs(30),
            attempt_timeout: Duration::from_secs(10),
            credentials: None,
        }
    }
}

/// A connection to a cluster.
#[derive(Clone)]
pub struct Cluster {
    inner: Arc<Inner>,
}

struct Inner {
    mons: Vec<String>,
    map: watch::Receiver<Arc<MapView>>,
    osds: Mutex<HashMap<(u32, String), OsdClient>>,
    cred: Credential,
    client_id: u64,
    tid: AtomicU64,
    opts: ClientOptions,
}

/// A channel to a monitor or OSD, with the transport's fixed HTTP/2
/// windows. Not hyper's adaptive window: it sizes the connection window
/// like one stream's (a bandwidth-delay estimate, small on loopback), so
/// one reply nobody reads yet (a read ahead of a GET or copy that waits
/// for write budget) could take the whole connection's window and stall
/// the small replies of the writes that would free that budget. With 8 MiB
/// streams in a 32 MiB connection, four such replies fit.
fn endpoint(addr: &str) -> Result<Endpoint, ClientError> {
    Ok(meridian_auth::transport::endpoint(addr)
        .map_err(|e| ClientError::Invalid(format!("monitor/OSD address {addr:?}: {e}")))?
        .connect_timeout(Duration::from_secs(2))
        .tcp_nodelay(true))
}

/// A monitor client whose calls carry a credential.
pub type MonClient = MonServiceClient<Signed<Channel>>;
/// An OSD client whose calls carry a credential.
pub type OsdClient = OsdServiceClient<Signed<Channel>>;

/// A monitor client with Meridian's message limits, calling as `cred`.
pub fn mon_client(addr: &str, cred: &Credential) -> Result<MonClient, ClientError> {
    let ch = Signed::new(endpoint(addr)?.connect_lazy(), cred.clone());
    Ok(MonServiceClient::new(ch)
        .max_decoding_message_size(meridian_proto::MAX_MESSAGE_BYTES)
        .max_encoding_message_size(meridian_proto::MAX_MESSAGE_BYTES))
}

/// An OSD client with Meridian's message limits, calling as `cred`.
pub fn osd_client(addr: &str, cred: &Credential) -> Result<OsdClient, ClientError> {
    let ch = Signed::new(endpoint(addr)?.connect_lazy(), cred.clone());
    Ok(OsdServiceClient::new(ch)
        .max_decoding_message_size(meridian_proto::MAX_MESSAGE_BYTES)
        .max_encoding_message_size(meridian_proto::MAX_MESSAGE_BYTES))
}

/// The zones' system keys this client fetched (with `mon 'allow x'`):
/// monitors serve maps without the secrets, so a client that needs them
/// (gateways, sync agents, the admin CLI) puts them back into its own copy.
#[derive(Default)]
struct ZoneSecrets {
    secrets: Vec<meridian_proto::mon::ZoneSecret>,
}

impl ZoneSecrets {
    /// Fetches the secrets again (every new map: a key may have changed)
    /// and puts them into `map`; a transient failure keeps the last ones.
    async fn fill(&mut self, map: &mut ClusterMap, mon: &mut MonClient) {
        let Some(ms) = map.multisite.as_mut() else {
            return;
        };
        if !ms.zones.iter().any(|z| z.system_key.is_some()) {
            return;
        }
        match mon
            .get_zone_secrets(meridian_proto::mon::ZoneSecretsRequest {})
            .await
        {
            Ok(r) => self.secrets = r.into_inner().zones,
            // Not ours to read (an OSD, a read-only client).
            Err(s) if is_auth_refusal(&s) => self.secrets.clear(),
            Err(s) => tracing::debug!(error = %s, "fetching zone system keys"),
        }
        for z in ms.zone_entries_mut() {
            let Some(k) = z.system_key.as_mut() else {
                continue;
            };
            if let Some(s) = self.secrets.iter().find(|s| {
                s.zone_id == z.id && s.key.as_ref().is_some_and(|x| x.access_key == k.access_key)
            }) && let Some(key) = &s.key
            {
                k.secret_key = key.secret_key.clone();
            }
        }
    }
}

/// Keeps a map subscription alive across monitor failures, publishing each newer map.
pub async fn subscribe_maps(mons: Vec<String>, tx: watch::Sender<Arc<MapView>>, cred: Credential) {
    let mut idx = rand::random::<usize>() % mons.len().max(1);
    let mut zone_secrets = ZoneSecrets::default();
    loop {
        if tx.is_closed() {
            return;
        }
        let addr = &mons[idx % mons.len()];
        idx += 1;
        let have = tx.borrow().epoch();
        let Ok(mut c) = mon_client(addr, &cred) else {
            continue;
        };
        match c.subscribe(SubscribeRequest { have_epoch: have }).await {
            Ok(resp) => {
                let mut stream = resp.into_inner();
                while let Ok(Some(mut map)) = stream.message().await {
                    if map.epoch > tx.borrow().epoch() {
                        zone_secrets.fill(&mut map, &mut c).await;
                        tx.send_replace(Arc::new(MapView::new(map)));
                    }
                }
            }
            Err(e) if is_auth_refusal(&e) => {
                tracing::warn!(mon = %addr, error = %e.message(), "map subscription refused")
            }
            Err(e) => tracing::debug!(mon = %addr, error = %e, "map subscription failed"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Lays central `options` for `chain` over `cfg.global` (the file's own
/// `[global]` keys win) and logs what it did as `daemon`.
pub fn lay_central_config(
    cfg: &mut meridian_common::Config,
    options: Vec<meridian_proto::mon::ConfigOption>,
    chain: &[String],
    daemon: &str,
) {
    let options: Vec<(String, String, String)> = options
        .into_iter()
        .map(|o| (o.who, o.key, o.value))
        .collect();
    let report = meridian_common::central::apply_options(
        &mut cfg.global,
        &cfg.file_global_keys,
        chain,
        &options,
    );
    meridian_common::central::log_applied(daemon, &report);
}

/// Fetches the central configuration of `chain` for a daemon that has no
/// [`Cluster`] yet, trying the monitors in turn until one answers (as a
/// Ceph daemon waits for its monitors). Monitors of a build without the
/// central configuration answer with nothing.
pub async fn fetch_central_config(
    mons: &[String],
    cred: &Credential,
    chain: &[String],
) -> Vec<meridian_proto::mon::ConfigOption> {
    let req = meridian_proto::mon::GetConfigRequest {
        who: chain.to_vec(),
    };
    let mut last_warned = Instant::now() - Duration::from_secs(60);
    loop {
        for addr in mons {
            let Ok(mut c) = mon_client(addr, cred) else {
                continue;
            };
            match tokio::time::timeout(Duration::from_secs(10), c.get_config(req.clone())).await {
                Ok(Ok(r)) => return r.into_inner().options,
                Ok(Err(s)) if s.code() == tonic::Code::Unimplemented => return Vec::new(),
                Ok(Err(s)) if last_warned.elapsed() >= Duration::from_secs(10) => {
                    last_warned = Instant::now();
                    tracing::warn!(mon = %addr, error = %s.message(), "waiting for the monitors' central configuration");
                }
                _ => {}
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

impl Cluster {
    /// Connects to the monitors and waits for the first cluster map.
    pub async fn connect(mons: Vec<String>, opts: ClientOptions) -> Result<Cluster, ClientError> {
        if mons.is_empty() {
            return Err(ClientError::NoMonitor {
                addrs: String::new(),
                reason: "no monitor addresses configured".into(),
            });
        }
        let cred = match &opts.credentials {
            Some(c) => Credential::Ticket(TicketKeeper::new(c.clone(), mons.clone())),
            None => Credential::Anonymous,
        };
        if let Credential::Ticket(k) = &cred {
            // Say now, clearly, when the key is refused (the map wait
            // below would only time out).
            k.ensure(Duration::from_secs(10))
                .await
                .map_err(|s| ClientError::Auth(s.message().to_string()))?;
        }
        let (tx, mut rx) = watch::channel(Arc::new(MapView::new(ClusterMap::default())));
        tokio::spawn(subscribe_maps(mons.clone(), tx, cred.clone()));
        let first = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                if rx.borrow_and_update().epoch() > 0 {
                    return true;
                }
                if rx.changed().await.is_err() {
                    return false;
                }
            }
        })
        .await;
        if !matches!(first, Ok(true)) {
            return Err(ClientError::NoMonitor {
                addrs: mons.join(","),
                reason: "no cluster map received within 10s (monitors down or no quorum?)".into(),
            });
        }
        Ok(Cluster {
            inner: Arc::new(Inner {
                mons,
                map: rx,
                osds: Mutex::new(HashMap::new()),
                cred,
                client_id: rand::random(),
                tid: AtomicU64::new(1),
                opts,
            }),
        })
    }

    /// How this client proves who it is (for other clients it makes).
    pub fn credential(&self) -> Credential {
        self.inner.cred.clone()
    }

    /// The newest map this client has.
    pub fn map(&self) -> Arc<MapView> {
        self.inner.map.borrow().clone()
    }

    /// Waits until the client's map is newer than `epoch`, or `timeout` passes.
    pub async fn wait_for_newer_map(&self, epoch: u64, timeout: Duration) -> bool {
        let mut rx = self.inner.map.clone();
        tokio::time::timeout(timeout, async {
            loop {
                if rx.borrow_and_update().epoch() > epoch {
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

    /// Sends an administrative command to the monitors (any one; it reaches the leader).
    pub async fn mon_command(&self, cmd: Cmd) -> Result<CommandReply, ClientError> {
        let reply = self
            .with_mon(|mut c| {
                let cmd = cmd.clone();
                async move { c.command(MonCommand { cmd: Some(cmd) }).await }
            })
            .await?;
        // Make the caller's next read see its own change.
        self.wait_for_newer_map(reply.epoch.saturating_sub(1), Duration::from_secs(5))
            .await;
        Ok(reply)
    }

    /// The central configuration of the sections `who` (all when empty).
    pub async fn config_get(
        &self,
        who: Vec<String>,
    ) -> Result<meridian_proto::mon::GetConfigReply, ClientError> {
        let req = meridian_proto::mon::GetConfigRequest { who };
        self.with_mon(|mut c| {
            let req = req.clone();
            async move { c.get_config(req).await }
        })
        .await
    }

    /// Lays the central configuration of `chain` over `cfg.global` (the
    /// file's own `[global]` keys win) and logs what it did as `daemon`.
    /// Monitors from before the central configuration leave `cfg` as is.
    pub async fn apply_central_config(
        &self,
        cfg: &mut meridian_common::Config,
        chain: &[String],
        daemon: &str,
    ) -> Result<(), ClientError> {
        match self.config_get(chain.to_vec()).await {
            Ok(r) => {
                lay_central_config(cfg, r.options, chain, daemon);
                Ok(())
            }
            Err(ClientError::Unsupported(_)) => {
                tracing::warn!(%daemon, "the monitors keep no central configuration: using the file alone");
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Cluster status from the monitor leader.
    pub async fn status(&self) -> Result<StatusReply, ClientError> {
        self.with_mon(|mut c| async move { c.status(StatusRequest {}).await })
            .await
    }

    /// Entities with their keys and caps: one (`name`) or all (empty name).
    pub async fn auth_get(
        &self,
        name: &str,
    ) -> Result<Vec<meridian_proto::mon::AuthEntity>, ClientError> {
        let req = meridian_proto::mon::AuthGetRequest {
            name: name.to_string(),
        };
        let reply = self
            .with_mon(|mut c| {
                let req = req.clone();
                async move { c.auth_get(req).await }
            })
            .await?;
        Ok(reply.entities)
    }

    async fn with_mon<T, F, Fut>(&self, f: F) -> Result<T, ClientError>
    where
        F: Fn(MonClient) -> Fut,
        Fut: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let mut last = String::new();
        let deadline = Instant::now() + self.inner.opts.op_timeout;
        while Instant::now() < deadline {
            for addr in &self.inner.mons {
                let c = mon_client(addr, &self.inner.cred)?;
                match tokio::time::timeout(Duration::from_secs(20), f(c)).await {
                    Ok(Ok(r)) => return Ok(r.into_inner()),
                    Ok(Err(s)) => match s.code() {
                        tonic::Code::Unavailable
                        | tonic::Code::DeadlineExceeded
                        | tonic::Code::Unknown => {
                            last = format!("mon {addr}: {}", s.message());
                        }
                        _ if is_auth_refusal(&s) => {
                            return Err(ClientError::Auth(s.message().to_string()));
                        }
                        tonic::Code::Unimplemented => {
                            return Err(ClientError::Unsupported(s.message().to_string()));
                        }
                        _ => return Err(ClientError::Command(s.message().to_string())),
                    },
                    Err(_) => last = format!("mon {addr}: timed out"),
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Err(ClientError::NoMonitor {
            addrs: self.inner.mons.join(","),
            reason: last,
        })
    }

    fn osd(&self, id: u32, addr: &str) -> Result<OsdClient, ClientError> {
        let mut osds = self.inner.osds.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = osds.get(&(id, addr.to_string())) {
            return Ok(c.clone());
        }
        let c = osd_client(addr, &self.inner.cred)?;
        osds.insert((id, addr.to_string()), c.clone());
        Ok(c)
    }

    fn drop_osd(&self, id: u32, addr: &str) {
        self.inner
            .osds
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&(id, addr.to_string()));
    }

    /// Executes a compound op on one object atomically at the PG's primary.
    pub async fn op(
        &self,
        pool: &str,
        object: &str,
        ops: Vec<SubOp>,
    ) -> Result<OpReply, ClientError> {
        if object.is_empty() {
            return Err(ClientError::Invalid(
                "object names must not be empty".into(),
            ));
        }
        let tid = self.inner.tid.fetch_add(1, Ordering::Relaxed);
        let started = Instant::now();
        let deadline = started + self.inner.opts.op_timeout;
        let mut last = String::from("no attempt made");
        let mut refreshed_for_pool = false;
        let mut refused_tickets = 0;
        loop {
            if Instant::now() >= deadline {
                return Err(ClientError::Timeout {
                    secs: self.inner.opts.op_timeout.as_secs(),
                    last,
                });
            }
            let view = self.map();
            let Some(p) = view.pool_by_name(pool).cloned() else {
                if !refreshed_for_pool {
                    // The pool may be newer than our map: give the subscription a moment.
                    refreshed_for_pool = true;
                    self.wait_for_newer_map(view.epoch(), Duration::from_secs(1))
                        .await;
                    continue;
                }
                return Err(ClientError::NoPool(pool.to_string()));
            };
            let pg = MapView::object_pg(&p, object);
            let acting = view.pg_acting(&p, pg.seed);
            let Some(&primary) = acting.first() else {
                last = format!("pg {pg} has no up OSD");
                self.wait_for_newer_map(view.epoch(), Duration::from_millis(500))
                    .await;
                continue;
            };
            let addr = view
                .osd(primary)
                .map(|o| o.addr.clone())
                .unwrap_or_default();
            let mut client = self.osd(primary, &addr)?;
            let req = OpRequest {
                pool: p.id,
                pg_seed: pg.seed,
                object: object.to_string(),
                map_epoch: view.epoch(),
                reqid: Some(ReqId {
                    client: self.inner.client_id,
                    tid,
                }),
                ops: ops.clone(),
                balance_reads: false,
            };
            let attempt =
                tokio::time::timeout(self.inner.opts.attempt_timeout, client.op(req)).await;
            let reply = match attempt {
                Ok(Ok(r)) => r.into_inner(),
                Ok(Err(s)) => {
                    last = format!("osd.{primary}: {}", s.message());
                    if s.code() == tonic::Code::InvalidArgument
                        || s.code() == tonic::Code::OutOfRange
                    {
                        return Err(ClientError::Invalid(s.message().to_string()));
                    }
                    // Refused caps never change by retrying; a refused
                    // ticket is renewed a few times (the OSD may not have
                    // fetched a just-rotated service secret yet).
                    if s.code() == tonic::Code::PermissionDenied
                        || (s.code() == tonic::Code::Unauthenticated && refused_tickets >= 3)
                    {
                        return Err(ClientError::Auth(last));
                    }
                    if s.code() == tonic::Code::Unauthenticated {
                        refused_tickets += 1;
                    }
                    self.drop_osd(primary, &addr);
                    self.wait_for_newer_map(view.epoch(), Duration::from_millis(500))
                        .await;
                    continue;
                }
                Err(_) => {
                    last = format!("osd.{primary}: attempt timed out");
                    self.drop_osd(primary, &addr);
                    continue;
                }
            };
            let code = ResultCode::try_from(reply.code).unwrap_or(ResultCode::IoError);
            match code {
                ResultCode::Ok => return Ok(reply),
                ResultCode::NotFound => return Err(ClientError::NotFound(object.into())),
                ResultCode::Exists => return Err(ClientError::Exists(object.into())),
                ResultCode::GuardFailed => return Err(ClientError::GuardFailed(object.into())),
                ResultCode::TooLarge => return Err(ClientError::TooLarge(reply.message)),
                ResultCode::Invalid => return Err(ClientError::Invalid(reply.message)),
                ResultCode::NoSpace => return Err(ClientError::NoSpace(reply.message)),
                ResultCode::Full => return Err(ClientError::Full(reply.message)),
                ResultCode::NoPool => {
                    self.wait_for_newer_map(view.epoch(), Duration::from_millis(500))
                        .await;
                    last = format!("osd.{primary}: pool unknown to the OSD");
                    if self.map().pool_by_name(pool).is_none() {
                        return Err(ClientError::NoPool(pool.into()));
                    }
                }
                ResultCode::Corrupt => return Err(ClientError::Corrupt(object.into())),
                ResultCode::WrongPrimary | ResultCode::MapBehind => {
                    last = format!("osd.{primary}: {}", reply.message);
                    if !self
                        .wait_for_newer_map(view.epoch(), Duration::from_millis(300))
                        .await
                    {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
                ResultCode::PgNotActive
                | ResultCode::BelowMinSize
                | ResultCode::ReplicaFailed
                | ResultCode::IoError => {
                    last = format!("osd.{primary}: {}", reply.message);
                    let wait = Duration::from_millis(50 + rand::random::<u64>() % 100);
                    self.wait_for_newer_map(view.epoch(), wait).await;
                }
            }
        }
    }

    /// Lists every object name in a pool (PG by PG, from each primary).
    pub async fn list(&self, pool: &str) -> Result<Vec<String>, ClientError> {
        let view = self.map();
        let p = view
            .pool_by_name(pool)
            .cloned()
            .ok_or_else(|| ClientError::NoPool(pool.into()))?;
        let mut names = Vec::new();
        for seed in 0..p.pg_num {
            let mut start_after = String::new();
            loop {
                let page = self
                    .pg_list(PgId { pool: p.id, seed }, &start_after, 1000)
                    .await?;
                let more = page.more;
                if let Some(last) = page.objects.last() {
                    start_after = last.name.clone();
                }
                names.extend(page.objects.into_iter().map(|o| o.name));
                if !more {
                    break;
                }
            }
        }
        names.sort();
        Ok(names)
    }

    /// One page of a PG's object listing from its primary (retrying across map changes).
    pub async fn pg_list(
        &self,
        pg: PgId,
        start_after: &str,
        max: u32,
    ) -> Result<meridian_proto::osd::PgListReply, ClientError> {
        let deadline = Instant::now() + self.inner.opts.op_timeout;
        let mut last = String::new();
        while Instant::now() < deadline {
            let view = self.map();
            let acting = view.acting(pg);
            let Some(&primary) = acting.first() else {
                last = format!("pg {pg} has no up OSD");
                self.wait_for_newer_map(view.epoch(), Duration::from_millis(500))
                    .await;
                continue;
            };
            let addr = view
                .osd(primary)
                .map(|o| o.addr.clone())
                .unwrap_or_default();
            let mut c = self.osd(primary, &addr)?;
            let req = meridian_proto::osd::PgListRequest {
                pg: Some(meridian_proto::osd::PgRef {
                    pool: pg.pool,
                    seed: pg.seed,
                }),
                start_after: start_after.into(),
                max,
                deep: false,
            };
            match c.pg_list(req).await {
                Ok(r) => {
                    let r = r.into_inner();
                    if r.code == ResultCode::Ok as i32 {
                        return Ok(r);
                    }
                    last = format!(
                        "osd.{primary}: pg {pg} not ready ({:?})",
                        ResultCode::try_from(r.code)
                    );
                }
                Err(s) if s.code() == tonic::Code::PermissionDenied => {
                    return Err(ClientError::Auth(s.message().to_string()));
                }
                Err(s) => {
                    last = format!("osd.{primary}: {}", s.message());
                    self.drop_osd(primary, &addr);
                }
            }
            self.wait_for_newer_map(view.epoch(), Duration::from_millis(200))
                .await;
        }
        Err(ClientError::Timeout {
            secs: self.inner.opts.op_timeout.as_secs(),
            last,
        })
    }

    /// A direct client to one OSD (admin tools: scrub, status).
    pub fn osd_direct(&self, id: u32) -> Result<OsdClient, ClientError> {
        let view = self.map();
        let addr = view
            .osd(id)
            .map(|o| o.addr.clone())
            .ok_or_else(|| ClientError::Invalid(format!("osd.{id} does not exist")))?;
        self.osd(id, &addr)
    }
}
