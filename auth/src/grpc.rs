//! Authentication on the wire. Callers keep a ticket ([`TicketKeeper`])
//! and stamp every call with it ([`Signed`] around a channel); monitors and
//! OSDs check the ticket, the request signature and the method's capability
//! before a handler runs ([`AuthLayer`]), and hand the handler the
//! [`Caller`] in the request's extensions for checks that need the body
//! (the pool of an op, the id of an OSD that boots).

use crate::access::{self, Caller, Need, Presented};
use crate::ticket::{self, SecretBytes, ServiceSecret};
use crate::{AuthError, EntityName, Keyring};
use futures::future::{Either, Ready, ready};
use http::HeaderValue;
use meridian_proto::mon::AuthenticateRequest;
use meridian_proto::mon::mon_service_client::MonServiceClient;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tonic::Status;
use tonic::body::Body;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// An entity's name and secret key, as read from its keyring.
#[derive(Clone)]
pub struct Credentials {
    /// Who.
    pub name: EntityName,
    /// Its key.
    pub key: SecretBytes,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials({})", self.name)
    }
}

impl Credentials {
    /// Reads `name`'s key from the keyring file at `path`.
    pub fn from_keyring(path: &Path, name: &EntityName) -> Result<Credentials, AuthError> {
        let file = |why: String| AuthError::KeyringFile {
            path: path.display().to_string(),
            why,
        };
        let text = std::fs::read_to_string(path).map_err(|e| file(e.to_string()))?;
        let ring = Keyring::parse(&text).map_err(|e| file(e.to_string()))?;
        let entry = ring
            .get(name)
            .ok_or_else(|| file(format!("holds no key for {name}")))?;
        Ok(Credentials {
            name: name.clone(),
            key: ticket::key_bytes(&name.to_string(), &entry.key)
                .map_err(|_| file(format!("bad key for {name}")))?,
        })
    }
}

/// A lazily connected channel to the monitor at `addr`, with the short
/// timeouts of the calls made here (getting tickets and secrets).
fn mon_channel(addr: &str) -> Result<tonic::transport::Channel, String> {
    Ok(crate::transport::endpoint(addr)
        .map_err(|e| e.to_string())?
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(5))
        .connect_lazy())
}

/// A ticket in hand.
struct Held {
    ticket: HeaderValue,
    session: SecretBytes,
    renew_at: Instant,
    expires_at: Instant,
}

/// Keeps one entity's ticket: gets it from any monitor when first needed,
/// renews it in the background after two thirds of its life, and gets a
/// new one at once when it expired (or a service no longer knows its
/// signing secret).
pub struct TicketKeeper {
    creds: Credentials,
    mons: Vec<String>,
    held: RwLock<Option<Arc<Held>>>,
    refreshing: Arc<tokio::sync::Mutex<()>>,
}

impl TicketKeeper {
    /// A keeper for `creds`, authenticating with the monitors at `mons`.
    pub fn new(creds: Credentials, mons: Vec<String>) -> Arc<TicketKeeper> {
        Arc::new(TicketKeeper {
            creds,
            mons,
            held: RwLock::new(None),
            refreshing: Arc::new(tokio::sync::Mutex::new(())),
        })
    }

    /// Whose ticket this keeps.
    pub fn name(&self) -> &EntityName {
        &self.creds.name
    }

    fn held(&self) -> Option<Arc<Held>> {
        self.held.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Drops the held ticket, so the next call authenticates again.
    pub fn forget(&self) {
        *self.held.write().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// Gets a ticket now, retrying while no monitor can issue one (no
    /// quorum or no service secret yet) for up to `patience`; a refused key
    /// fails at once.
    pub async fn ensure(self: &Arc<Self>, patience: Duration) -> Result<(), Status> {
        let deadline = Instant::now() + patience;
        loop {
            match self.current().await {
                Ok(_) => return Ok(()),
                Err(s) if s.code() == tonic::Code::Unauthenticated => return Err(s),
                Err(s) if Instant::now() >= deadline => return Err(s),
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }

    async fn current(self: &Arc<Self>) -> Result<Arc<Held>, Status> {
        let now = Instant::now();
        if let Some(h) = self.held() {
            if now < h.renew_at {
                return Ok(h);
            }
            if now < h.expires_at {
                if let Ok(guard) = self.refreshing.clone().try_lock_owned() {
                    let me = self.clone();
                    tokio::spawn(async move {
                        match me.authenticate().await {
                            Ok(h) => me.keep(h),
                            Err(e) => {
                                tracing::warn!(entity = %me.creds.name, error = %e.message(), "renewing ticket")
                            }
                        }
                        drop(guard);
                    });
                }
                return Ok(h);
            }
        }
        let _guard = self.refreshing.lock().await;
        if let Some(h) = self.held().filter(|h| Instant::now() < h.renew_at) {
            return Ok(h);
        }
        let h = self.authenticate().await?;
        self.keep(h);
        self.held()
            .ok_or_else(|| Status::internal("ticket vanished"))
    }

    fn keep(&self, h: Held) {
        *self.held.write().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(h));
    }

    /// Proves the key to a monitor (each in turn) and opens the ticket. A
    /// refusal counts only when every monitor refused: one that is behind
    /// (just restarted) may not know a new entity yet.
    async fn authenticate(&self) -> Result<Held, Status> {
        let name = self.creds.name.to_string();
        let mut last = Status::unavailable("no monitor addresses configured");
        let mut refusals = 0;
        let start = rand::random::<u32>() as usize;
        for i in 0..self.mons.len() {
            let addr = &self.mons[(start + i) % self.mons.len()];
            let Ok(ch) = mon_channel(addr) else {
                last = Status::invalid_argument(format!("bad monitor address {addr:?}"));
                continue;
            };
            let mut mon = MonServiceClient::new(ch);
            let (unix_ms, nonce) = (now_ms(), ticket::fresh_nonce());
            let req = AuthenticateRequest {
                entity: name.clone(),
                unix_ms,
                nonce: nonce.to_vec().into(),
                proof: ticket::proof(&self.creds.key, &name, unix_ms, &nonce)
                    .to_vec()
                    .into(),
            };
            let asked = Instant::now();
            match mon.authenticate(req).await {
                Ok(r) => return self.open(r.into_inner(), asked),
                Err(s)
                    if matches!(
                        s.code(),
                        tonic::Code::Unauthenticated | tonic::Code::InvalidArgument
                    ) =>
                {
                    refusals += 1;
                    last = Status::unauthenticated(format!(
                        "monitor at {addr} refused {name}'s key: {} (check the keyring)",
                        s.message()
                    ));
                }
                Err(s) => last = s,
            }
        }
        if refusals == self.mons.len() {
            return Err(last);
        }
        Err(Status::unavailable(format!(
            "cannot get a ticket for {name} from any monitor ({}): {}",
            self.mons.join(","),
            last.message()
        )))
    }

    fn open(
        &self,
        r: meridian_proto::mon::AuthenticateReply,
        asked: Instant,
    ) -> Result<Held, Status> {
        let bad = |e: AuthError| Status::unauthenticated(format!("unusable ticket: {e}"));
        let sealed: SecretBytes = r.sealed_session[..]
            .try_into()
            .map_err(|_| Status::unauthenticated("unusable ticket: bad sealed session"))?;
        let issued = ticket::Issued {
            ticket: r.ticket.to_vec(),
            sealed_session: sealed,
        };
        let claims = ticket::claims_of(&issued.ticket).map_err(bad)?;
        let session = ticket::open_session(&self.creds.key, &issued).map_err(bad)?;
        // Lifetimes on this clock, counted from when we asked (the monitor's
        // clock may differ from ours).
        let ttl = Duration::from_millis(claims.expires_ms.saturating_sub(claims.issued_ms));
        let ticket = HeaderValue::from_str(&base64_simd::STANDARD.encode_to_string(&issued.ticket))
            .map_err(|_| Status::internal("ticket does not fit a header"))?;
        Ok(Held {
            ticket,
            session,
            renew_at: asked + ttl * 2 / 3,
            expires_at: asked + ttl * 9 / 10,
        })
    }
}

/// How a process proves who it is on its calls.
#[derive(Clone, Default)]
pub enum Credential {
    /// Nothing (a cluster with `auth_required = false`, or getting a ticket).
    #[default]
    Anonymous,
    /// A ticket kept by a [`TicketKeeper`].
    Ticket(Arc<TicketKeeper>),
    /// A monitor calling another monitor, with the `mon.` key.
    MonPeer(Arc<SecretBytes>),
}

impl Credential {
    async fn stamp(&self, req: &mut http::Request<Body>) -> Result<(), Status> {
        let path = req.uri().path().to_string();
        let now = now_ms();
        let (time, sig) = match self {
            Credential::Anonymous => return Ok(()),
            Credential::Ticket(k) => {
                let h = k.current().await?;
                req.headers_mut()
                    .insert(access::TICKET_HEADER, h.ticket.clone());
                access::sign(&h.session, &path, now)
            }
            Credential::MonPeer(key) => {
                req.headers_mut()
                    .insert(access::PEER_HEADER, HeaderValue::from_static("mon."));
                access::sign_as_peer(key, &path, now)
            }
        };
        let header = |v: String| {
            HeaderValue::try_from(v)
                .map_err(|_| Status::internal("signature does not fit a header"))
        };
        req.headers_mut().insert(access::TIME_HEADER, header(time)?);
        req.headers_mut()
            .insert(access::SIGNATURE_HEADER, header(sig)?);
        Ok(())
    }
}

/// A gRPC channel that stamps every call with a [`Credential`].
#[derive(Clone)]
pub struct Signed<S> {
    inner: S,
    cred: Credential,
}

impl<S> Signed<S> {
    /// Wraps `inner`.
    pub fn new(inner: S, cred: Credential) -> Self {
        Signed { inner, cred }
    }
}

impl<S> tower::Service<http::Request<Body>> for Signed<S>
where
    S: tower::Service<http::Request<Body>, Response = http::Response<Body>>
        + Clone
        + Send
        + 'static,
    S::Future: Send,
    S::Error: Into<BoxError>,
{
    type Response = http::Response<Body>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut req: http::Request<Body>) -> Self::Future {
        // The ready service goes with this call; a clone waits for the next.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let cred = self.cred.clone();
        Box::pin(async move {
            cred.stamp(&mut req).await.map_err(Box::new)?;
            let resp = inner.call(req).await.map_err(Into::into)?;
            // A service that does not know our ticket's secret (rotated
            // past it) or found it expired: get a fresh one for next time.
            if let Credential::Ticket(k) = &cred
                && let Some(status) = tonic::Status::from_header_map(resp.headers())
                && status.code() == tonic::Code::Unauthenticated
            {
                k.forget();
            }
            Ok(resp)
        })
    }
}

/// Where a monitor or OSD finds the secrets that sign tickets.
pub trait SecretSource: Send + Sync + 'static {
    /// The secrets held now.
    fn secrets(&self) -> Vec<ServiceSecret>;
    /// A ticket named secret `id`, which is not held: fetch them again.
    fn missing(&self, _id: u64) {}
}

/// The ticket secrets an OSD fetched from the monitors with its own key:
/// again every minute (the leader rotates them hourly), and at once
/// (at most once a second) when a ticket names one it does not hold.
#[derive(Default)]
pub struct FetchedSecrets {
    held: RwLock<Vec<ServiceSecret>>,
    wake: tokio::sync::Notify,
}

impl SecretSource for FetchedSecrets {
    fn secrets(&self) -> Vec<ServiceSecret> {
        self.held.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn missing(&self, id: u64) {
        let newest = self.secrets().iter().map(|s| s.id).max().unwrap_or(0);
        if id > newest {
            self.wake.notify_one();
        }
    }
}

impl FetchedSecrets {
    /// Fetches the secrets until the process ends.
    pub async fn keep_fetched(self: Arc<Self>, mons: Vec<String>, cred: Credential) {
        let mut quick = true;
        loop {
            match self.fetch(&mons, &cred).await {
                Ok(n) => {
                    if quick {
                        tracing::info!(secrets = n, "fetched ticket secrets from the monitors");
                    }
                    quick = false;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "fetching ticket secrets from the monitors");
                    quick = true;
                }
            }
            let pause = if quick { 1 } else { 60 };
            let _ = tokio::time::timeout(Duration::from_secs(pause), self.wake.notified()).await;
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    async fn fetch(&self, mons: &[String], cred: &Credential) -> Result<usize, String> {
        let mut last = String::from("no monitor addresses configured");
        for addr in mons {
            let ch = mon_channel(addr)?;
            let mut mon = MonServiceClient::new(Signed::new(ch, cred.clone()));
            match mon
                .get_service_secrets(meridian_proto::mon::ServiceSecretsRequest {})
                .await
            {
                Ok(r) => {
                    let got: Vec<ServiceSecret> = r
                        .into_inner()
                        .secrets
                        .iter()
                        .filter_map(|s| ServiceSecret::from_parts(s.id, &s.secret))
                        .collect();
                    let n = got.len();
                    *self.held.write().unwrap_or_else(|p| p.into_inner()) = got;
                    return Ok(n);
                }
                Err(s) => last = format!("mon {addr}: {}", s.message()),
            }
        }
        Err(last)
    }
}

/// Tickets a service verified recently, so a caller's next requests cost
/// one HMAC (its request signature) instead of parsing and verifying the
/// ticket again. Keyed by the whole ticket; emptied when full.
const ADMITTED_CACHE: usize = 4096;

struct Gate {
    source: Arc<dyn SecretSource>,
    mon_key: Option<SecretBytes>,
    required: bool,
    admitted: std::sync::Mutex<std::collections::HashMap<Vec<u8>, access::Admitted>>,
}

impl Gate {
    fn admit(&self, path: &str, headers: &http::HeaderMap) -> Result<Caller, Status> {
        if !self.required {
            // Nothing is enforced, but a monitor still knows its peers.
            return Ok(self.identify(path, headers).unwrap_or(Caller::Unchecked));
        }
        let method = access::method_name(path);
        let need = access::need_of(path).ok_or_else(|| {
            Status::permission_denied(format!("{path}: no capability grants this method"))
        })?;
        if need == Need::Anyone {
            return Ok(Caller::Unchecked);
        }
        let caller = self.identify(path, headers).map_err(|e| {
            if let AuthError::UnknownServiceSecret(id) = e {
                self.source.missing(id);
            }
            Status::unauthenticated(format!("{method}: {e}"))
        })?;
        caller
            .check(method, need, None)
            .map_err(Status::permission_denied)?;
        Ok(caller)
    }

    fn identify(&self, path: &str, headers: &http::HeaderMap) -> Result<Caller, AuthError> {
        let h = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let presented = Presented {
            ticket: h(access::TICKET_HEADER),
            peer: h(access::PEER_HEADER),
            time: h(access::TIME_HEADER),
            signature: h(access::SIGNATURE_HEADER),
        };
        let now = now_ms();
        access::authenticate_with(path, presented, self.mon_key.as_ref(), now, |raw| {
            let cached = self
                .admitted
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(raw)
                .cloned();
            if let Some(a) = cached {
                return Ok(a);
            }
            let a = access::admit_ticket(raw, &self.source.secrets(), now)?;
            let mut cache = self.admitted.lock().unwrap_or_else(|p| p.into_inner());
            if cache.len() >= ADMITTED_CACHE {
                cache.clear();
            }
            cache.insert(raw.to_vec(), a.clone());
            Ok(a)
        })
    }
}

/// The server side: refuses calls without a valid ticket and signature
/// (`UNAUTHENTICATED`) or without the method's capability
/// (`PERMISSION_DENIED`, naming it), and gives handlers the [`Caller`].
#[derive(Clone)]
pub struct AuthLayer {
    gate: Arc<Gate>,
}

impl AuthLayer {
    /// A layer checking tickets against `source`; `mon_key` (monitors
    /// only) admits other monitors; `required = false` checks nothing.
    pub fn new(
        source: Arc<dyn SecretSource>,
        mon_key: Option<SecretBytes>,
        required: bool,
    ) -> AuthLayer {
        AuthLayer {
            gate: Arc::new(Gate {
                source,
                mon_key,
                required,
                admitted: Default::default(),
            }),
        }
    }
}

impl<S> tower::Layer<S> for AuthLayer {
    type Service = Checked<S>;

    fn layer(&self, inner: S) -> Checked<S> {
        Checked {
            inner,
            gate: self.gate.clone(),
        }
    }
}

/// A service behind an [`AuthLayer`].
#[derive(Clone)]
pub struct Checked<S> {
    inner: S,
    gate: Arc<Gate>,
}

impl<S, B> tower::Service<http::Request<B>> for Checked<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<Body>>,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = Either<Ready<Result<http::Response<Body>, S::Error>>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        match self.gate.admit(req.uri().path(), req.headers()) {
            Ok(caller) => {
                req.extensions_mut().insert(caller);
                Either::Right(self.inner.call(req))
            }
            Err(status) => Either::Left(ready(Ok(status.into_http()))),
        }
    }
}

/// Whether a status says who we are or what we may do was refused.
pub fn is_auth_refusal(s: &Status) -> bool {
    matches!(
        s.code(),
        tonic::Code::Unauthenticated | tonic::Code::PermissionDenied
    )
}

/// The caller a handler serves (from the [`AuthLayer`]); a service run
/// without the layer (unit tests) serves everyone.
pub fn caller_of<T>(req: &tonic::Request<T>) -> Caller {
    req.extensions()
        .get::<Caller>()
        .cloned()
        .unwrap_or(Caller::Unchecked)
}

/// Checks a handler-level need (a pool, a narrower permission) for the
/// caller of `req`, as `PERMISSION_DENIED` naming the capability.
pub fn require<T>(
    req: &tonic::Request<T>,
    method: &str,
    need: Need,
    pool: Option<&str>,
) -> Result<(), Status> {
    caller_of(req)
        .check(method, need, pool)
        .map_err(Status::permission_denied)
}
