//! Zone-to-zone calls: a ZoneService client for a zone's endpoints and the
//! request signature (HMAC-SHA256 with a system key over the method, the
//! time, a nonce and the SHA-256 of the request encoded without its
//! signature), with the receiver's memory of nonces against replays.

use hmac::{Hmac, KeyInit, Mac};
use meridian_proto::multisite::zone_service_client::ZoneServiceClient;
use meridian_proto::multisite::*;
use sha2::{Digest as _, Sha256};
use std::time::Duration;
use tonic::transport::Channel;

/// Largest clock difference a signed request may have. Short, because the
/// receiver remembers every nonce for that long (see [`ReplayGuard`]).
pub const MAX_SKEW_MS: u64 = 5 * 60 * 1000;

/// Most nonces a receiver remembers (about 34 MB; over 3,000 requests a
/// second for a whole window). Past it, requests are refused until the
/// oldest expire, rather than let a replay through.
pub const REPLAY_CAPACITY: usize = 1 << 20;

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The signature of a request body.
pub fn signature(secret: &str, method: &str, unix_ms: u64, nonce: u64, payload: &[u8]) -> String {
    let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes())
        .expect("HMAC takes any key length");
    m.update(
        format!(
            "{method}\n{unix_ms}\n{nonce:016x}\n{}",
            hex(&Sha256::digest(payload))
        )
        .as_bytes(),
    );
    hex(&m.finalize().into_bytes())
}

/// A request that carries a [`ZoneAuth`].
pub trait Signed: prost::Message + Clone {
    /// gRPC method name (part of what is signed, so a signature fits one method).
    const METHOD: &'static str;
    /// The auth field.
    fn auth_mut(&mut self) -> &mut Option<ZoneAuth>;
    /// The auth field.
    fn auth(&self) -> Option<&ZoneAuth>;
}

macro_rules! signed {
    ($t:ty, $m:literal) => {
        impl Signed for $t {
            const METHOD: &'static str = $m;
            fn auth_mut(&mut self) -> &mut Option<ZoneAuth> {
                &mut self.auth
            }
            fn auth(&self) -> Option<&ZoneAuth> {
                self.auth.as_ref()
            }
        }
    };
}
signed!(PullRealmRequest, "PullRealm");
signed!(GetPeriodRequest, "GetPeriod");
signed!(PushPeriodRequest, "PushPeriod");
signed!(CommitPeriodRequest, "CommitPeriod");
signed!(ForwardBucketRequest, "ForwardBucket");
signed!(ForwardUserRequest, "ForwardUser");
signed!(LogPositionsRequest, "LogPositions");
signed!(ListLogRequest, "ListLog");
signed!(ListBilogRequest, "ListBilog");
signed!(ListShardRequest, "ListShard");
signed!(BilogPendingRequest, "BilogPending");
signed!(ListMetadataRequest, "ListMetadata");
signed!(GetMetadataRequest, "GetMetadata");
signed!(FetchObjectRequest, "FetchObject");
signed!(GatewayStateRequest, "GatewayState");
signed!(SetZoneReadOnlyRequest, "SetZoneReadOnly");
signed!(SyncMarkersRequest, "SyncMarkers");

/// Signs `msg` with `key` now.
pub fn sign<T: Signed>(mut msg: T, key: &SystemKey) -> T {
    *msg.auth_mut() = None;
    let payload = msg.encode_to_vec();
    let now = meridian_common::now_unix_ms();
    let nonce = rand::random::<u64>() | 1;
    *msg.auth_mut() = Some(ZoneAuth {
        access_key: key.access_key.clone(),
        unix_ms: now,
        signature: signature(&key.secret_key, T::METHOD, now, nonce, &payload),
        nonce,
    });
    msg
}

/// Why a signed request is refused.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// No signature.
    #[error("the request is not signed with a system key")]
    Missing,
    /// Too far from our clock.
    #[error("the request time is {0} ms away from this zone's clock (limit 5 minutes)")]
    Skewed(u64),
    /// A request already accepted once.
    #[error("request replayed: nonce {0:016x} was already used")]
    Replayed(u64),
    /// Too many requests within the window to remember them all.
    #[error("too many zone requests within {} minutes; retry", MAX_SKEW_MS / 60_000)]
    Busy,
    /// Not a system key of this zone.
    #[error("access key {0} is not a system key of this zone")]
    UnknownKey(String),
    /// The signature does not match.
    #[error("the signature does not match (wrong secret for access key {0}?)")]
    BadSignature(String),
}

/// Checks `msg`'s signature; `secret_of` gives the secret of a system access key.
pub fn verify<T: Signed>(
    msg: &T,
    secret_of: impl FnOnce(&str) -> Option<String>,
) -> Result<String, AuthError> {
    let auth = msg.auth().cloned().ok_or(AuthError::Missing)?;
    let now = meridian_common::now_unix_ms();
    let skew = now.abs_diff(auth.unix_ms);
    if skew > MAX_SKEW_MS {
        return Err(AuthError::Skewed(skew));
    }
    let secret = secret_of(&auth.access_key)
        .ok_or_else(|| AuthError::UnknownKey(auth.access_key.clone()))?;
    let mut bare = msg.clone();
    *bare.auth_mut() = None;
    let want = signature(
        &secret,
        T::METHOD,
        auth.unix_ms,
        auth.nonce,
        &bare.encode_to_vec(),
    );
    // Constant-time enough for hex of equal length: compare every byte.
    let same = want.len() == auth.signature.len()
        && want
            .bytes()
            .zip(auth.signature.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
    if !same {
        return Err(AuthError::BadSignature(auth.access_key));
    }
    Ok(auth.access_key)
}

/// The nonces of the requests a zone accepted, each kept while its request
/// time is within [`MAX_SKEW_MS`] of now: a request sent twice is refused
/// the second time.
#[derive(Default)]
pub struct ReplayGuard {
    seen: std::sync::Mutex<Seen>,
}

#[derive(Default)]
struct Seen {
    /// Nonce → the time after which its request is too old anyway.
    expiry: std::collections::HashMap<u64, u64>,
    /// Nonces in the order they were accepted, with their expiry.
    order: std::collections::VecDeque<(u64, u64)>,
}

impl ReplayGuard {
    /// Accepts `auth` (already verified) unless its nonce was accepted before.
    pub fn admit(&self, auth: &ZoneAuth, now_ms: u64) -> Result<(), AuthError> {
        let mut s = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        while let Some(&(n, exp)) = s.order.front() {
            if exp >= now_ms {
                break;
            }
            s.order.pop_front();
            if s.expiry.get(&n) == Some(&exp) {
                s.expiry.remove(&n);
            }
        }
        if s.expiry.contains_key(&auth.nonce) {
            return Err(AuthError::Replayed(auth.nonce));
        }
        if s.expiry.len() >= REPLAY_CAPACITY {
            return Err(AuthError::Busy);
        }
        let exp = auth.unix_ms.saturating_add(MAX_SKEW_MS);
        s.expiry.insert(auth.nonce, exp);
        s.order.push_back((auth.nonce, exp));
        Ok(())
    }
}

/// Longest wait for an answer of [`on_any`]'s calls.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// A client of a zone endpoint (`http://host:port`, the gateway's S3 port)
/// on a connection of its own.
pub fn client(endpoint: &str) -> Result<ZoneServiceClient<Channel>, tonic::Status> {
    Ok(zone_client(channel(endpoint)?))
}

/// CAs this process trusts for `https://` zone endpoints (`[global]
/// tls_ca_file`) instead of the system's roots, as the AWS CLI's
/// `--ca-bundle` does. Process-wide, like the system trust store it
/// replaces: every zone client of a process trusts the same.
static TRUSTED_CAS: std::sync::RwLock<Vec<tonic::transport::Certificate>> =
    std::sync::RwLock::new(Vec::new());

/// Trusts the CA certificates in PEM file `path` for zone endpoints
/// (empty path: the system's roots).
pub fn trust_ca_file(path: &std::path::Path) -> Result<(), String> {
    let mut cas = Vec::new();
    if !path.as_os_str().is_empty() {
        let pem =
            std::fs::read(path).map_err(|e| format!("read CA file {}: {e}", path.display()))?;
        if !pem.windows(27).any(|w| w == b"-----BEGIN CERTIFICATE-----") {
            return Err(format!("{} holds no PEM certificate", path.display()));
        }
        cas.push(tonic::transport::Certificate::from_pem(pem));
    }
    *TRUSTED_CAS.write().unwrap_or_else(|p| p.into_inner()) = cas;
    Ok(())
}

/// TLS settings of a zone client: [`trust_ca_file`]'s CAs, else the system roots.
fn zone_tls() -> tonic::transport::ClientTlsConfig {
    let cas = TRUSTED_CAS
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let tls = tonic::transport::ClientTlsConfig::new();
    if cas.is_empty() {
        tls.with_native_roots()
    } else {
        tls.ca_certificates(cas)
    }
}

/// Flow-control window of one zone-to-zone stream (hyper's client
/// default): what a fetched object not being read yet may hold in memory.
const ZONE_STREAM_WINDOW_BYTES: u32 = 2 << 20;
/// Flow-control window of a zone-to-zone connection: the largest HTTP/2
/// allows, so the streams sync has not started reading (fetched versions
/// waiting for their group commit) can never use up the connection's window
/// and stall the streams it is reading. With a 32 MiB connection window,
/// 32 fetches of 1 MiB waiting in a group did exactly that under load.
/// Memory stays bounded by the stream windows times the fetches in flight.
const ZONE_CONNECTION_WINDOW_BYTES: u32 = (1 << 31) - 1;

/// A lazily connected channel to a zone endpoint, HTTP/2 with the internal
/// transport's frame size and the windows above.
fn channel(endpoint: &str) -> Result<Channel, tonic::Status> {
    use meridian_auth::transport::H2_MAX_FRAME_BYTES;
    let url = if endpoint.starts_with("http://") || endpoint.starts_with("https://") {
        endpoint.to_string()
    } else {
        format!("http://{endpoint}")
    };
    let ep = tonic::transport::Endpoint::from_shared(url.trim_end_matches('/').to_string())
        .map_err(|e| tonic::Status::invalid_argument(format!("bad endpoint {endpoint:?}: {e}")))?
        .connect_timeout(Duration::from_secs(3))
        .tcp_keepalive(Some(Duration::from_secs(30)))
        .http2_keep_alive_interval(Duration::from_secs(15))
        .keep_alive_timeout(Duration::from_secs(10))
        .max_frame_size(H2_MAX_FRAME_BYTES)
        .initial_stream_window_size(ZONE_STREAM_WINDOW_BYTES)
        .initial_connection_window_size(ZONE_CONNECTION_WINDOW_BYTES);
    let ep = if url.starts_with("https://") {
        ep.tls_config(zone_tls()).map_err(|e| {
            tonic::Status::invalid_argument(format!("TLS for endpoint {endpoint:?}: {e}"))
        })?
    } else {
        ep
    };
    Ok(ep.connect_lazy())
}

fn zone_client(c: Channel) -> ZoneServiceClient<Channel> {
    ZoneServiceClient::new(c)
        .max_decoding_message_size(meridian_proto::MAX_MESSAGE_BYTES)
        .max_encoding_message_size(meridian_proto::MAX_MESSAGE_BYTES)
}

/// Connections to one zone's endpoints, kept for the calls that follow.
/// Without them every call opened a connection of its own: a TCP and, on
/// `https://` endpoints, a TLS handshake per sync request (the handshakes'
/// key exchange and signatures were the largest CPU cost of both gateways
/// at 200 replicated PUTs a second). A channel lives in the tokio runtime
/// that first used it, so links belong to a long-lived owner (a
/// [`crate::remote::RemoteZone`]), not to the process.
#[derive(Clone, Default)]
pub struct ZoneLinks(std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, Channel>>>);

impl std::fmt::Debug for ZoneLinks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let open = self.0.lock().map(|m| m.len()).unwrap_or_default();
        f.debug_struct("ZoneLinks").field("open", &open).finish()
    }
}

impl ZoneLinks {
    /// The client of `endpoint`, on its kept connection (opened if none).
    fn client(&self, endpoint: &str) -> Result<ZoneServiceClient<Channel>, tonic::Status> {
        let mut open = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = open.get(endpoint) {
            return Ok(zone_client(c.clone()));
        }
        let c = channel(endpoint)?;
        open.insert(endpoint.to_string(), c.clone());
        Ok(zone_client(c))
    }

    /// Forgets `endpoint`'s connection (it failed: the next call opens another).
    fn drop_link(&self, endpoint: &str) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(endpoint);
    }
}

/// Tries `call` on each endpoint in turn, each on a connection of its own;
/// the first success wins, else the last error (every endpoint's failure
/// named). Calls wait at most [`CALL_TIMEOUT`] for an answer.
pub async fn on_any<T, F, Fut>(endpoints: &[String], call: F) -> Result<T, tonic::Status>
where
    F: FnMut(ZoneServiceClient<Channel>) -> Fut,
    Fut: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
{
    on_any_with(endpoints, Some(CALL_TIMEOUT), call).await
}

/// [`on_any`] with a per-call timeout (None: none; for streams of large
/// objects and long polls, whose callers bound them themselves).
pub async fn on_any_with<T, F, Fut>(
    endpoints: &[String],
    timeout: Option<Duration>,
    call: F,
) -> Result<T, tonic::Status>
where
    F: FnMut(ZoneServiceClient<Channel>) -> Fut,
    Fut: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
{
    on_any_via(&ZoneLinks::default(), endpoints, timeout, call).await
}

/// [`on_any_with`] on the connections kept in `links`.
pub async fn on_any_via<T, F, Fut>(
    links: &ZoneLinks,
    endpoints: &[String],
    timeout: Option<Duration>,
    mut call: F,
) -> Result<T, tonic::Status>
where
    F: FnMut(ZoneServiceClient<Channel>) -> Fut,
    Fut: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
{
    if endpoints.is_empty() {
        return Err(tonic::Status::failed_precondition(
            "the zone has no endpoints (zone modify --endpoints=...)",
        ));
    }
    let mut errors = Vec::new();
    for e in endpoints {
        let c = match links.client(e) {
            Ok(c) => c,
            Err(s) => {
                errors.push(format!("{e}: {}", s.message()));
                continue;
            }
        };
        let answer = match timeout {
            Some(t) => tokio::time::timeout(t, call(c)).await.unwrap_or_else(|_| {
                Err(tonic::Status::deadline_exceeded(format!(
                    "no answer within {} s",
                    t.as_secs_f64()
                )))
            }),
            None => call(c).await,
        };
        match answer {
            Ok(r) => return Ok(r.into_inner()),
            // A refusal is an answer: do not ask the next endpoint.
            Err(s)
                if !matches!(
                    s.code(),
                    tonic::Code::Unavailable
                        | tonic::Code::Unknown
                        | tonic::Code::DeadlineExceeded
                        | tonic::Code::Cancelled
                ) =>
            {
                return Err(s);
            }
            Err(s) => {
                links.drop_link(e);
                errors.push(format!("{e}: {}", s.message()));
            }
        }
    }
    Err(tonic::Status::unavailable(format!(
        "no endpoint answered ({})",
        errors.join("; ")
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_bind_the_key_the_method_and_the_body() {
        let key = SystemKey {
            access_key: "AK".into(),
            secret_key: "SK".into(),
        };
        let req = sign(
            PullRealmRequest {
                auth: None,
                realm: "production".into(),
            },
            &key,
        );
        let good = |ak: &str| (ak == "AK").then(|| "SK".to_string());
        assert_eq!(verify(&req, good).unwrap(), "AK");
        assert!(matches!(
            verify(&req, |_| Some("other".into())),
            Err(AuthError::BadSignature(_))
        ));
        assert!(matches!(
            verify(&req, |_| None),
            Err(AuthError::UnknownKey(_))
        ));
        let mut tampered = req.clone();
        tampered.realm = "staging".into();
        assert!(matches!(
            verify(&tampered, good),
            Err(AuthError::BadSignature(_))
        ));
        let unsigned = PullRealmRequest::default();
        assert!(matches!(verify(&unsigned, good), Err(AuthError::Missing)));
        let mut old = req.clone();
        old.auth.as_mut().unwrap().unix_ms -= MAX_SKEW_MS + 1000;
        assert!(matches!(verify(&old, good), Err(AuthError::Skewed(_))));
        let mut renonced = req;
        renonced.auth.as_mut().unwrap().nonce ^= 2;
        assert!(matches!(
            verify(&renonced, good),
            Err(AuthError::BadSignature(_))
        ));
    }

    #[test]
    fn a_request_is_accepted_once_within_its_window() {
        let key = SystemKey {
            access_key: "AK".into(),
            secret_key: "SK".into(),
        };
        let req = sign(PullRealmRequest::default(), &key);
        let again = sign(PullRealmRequest::default(), &key);
        let auth = req.auth.clone().unwrap();
        assert_ne!(auth.nonce, again.auth.as_ref().unwrap().nonce);
        let guard = ReplayGuard::default();
        let now = auth.unix_ms;
        guard.admit(&auth, now).unwrap();
        assert!(matches!(
            guard.admit(&auth, now + 1000),
            Err(AuthError::Replayed(_))
        ));
        guard.admit(again.auth.as_ref().unwrap(), now).unwrap();

        // Once its time is out of the window a nonce is forgotten (the
        // signature check refuses such a request by then).
        let guard = ReplayGuard::default();
        let at = |nonce, unix_ms| ZoneAuth {
            nonce,
            unix_ms,
            ..Default::default()
        };
        guard.admit(&at(1, 1_000), 1_000).unwrap();
        guard.admit(&at(2, 1_000), 1_000).unwrap();
        assert!(matches!(
            guard.admit(&at(1, 1_000), 2_000),
            Err(AuthError::Replayed(1))
        ));
        let later = 1_000 + MAX_SKEW_MS + 1;
        guard.admit(&at(3, later), later).unwrap();
        assert_eq!(guard.seen.lock().unwrap().expiry.len(), 1);
    }
}
