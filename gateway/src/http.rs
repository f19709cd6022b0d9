//! The HTTP layer around s3s: request ids on every response (and inside every
//! error body), a bound on request header size answered with an S3 error,
//! request metrics, keep-alive, a graceful drain on shutdown, and CORS
//! (preflight answers and the headers of allowed cross-origin requests).

use crate::auth::{ZoneAuth, ZoneHost};
use crate::s3::MeridianS3;
use crate::site::Site;
use bytes::Bytes;
use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use meridian_zone::Zone;
use s3s::service::{S3Service, S3ServiceBuilder};
use s3s::{Body, HttpError};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Request headers larger than this (all names and values) are refused with
/// RequestHeaderSectionTooLarge; AWS's limit is 8 KiB, we allow presigned-URL
/// headroom.
pub const MAX_HEADER_BYTES: usize = 16 << 10;
/// hyper's own read buffer bound (a request over it is cut off with 431).
const MAX_HTTP_BUFFER: usize = 256 << 10;
/// Largest XML request body (DeleteObjects with 1,000 long keys fits).
const MAX_XML_BODY: usize = 4 << 20;
/// Largest file of an HTML-form POST upload (held in memory while checked).
const MAX_POST_OBJECT: u64 = 64 << 20;
/// Error bodies larger than this are passed through untouched.
const MAX_ERROR_BODY: usize = 64 << 10;

/// The gateway's request handler: S3 over HTTP/1.1 (and h2), and the
/// zone-to-zone gRPC service on the same port.
pub struct Gateway {
    s3: S3Service,
    grpc: tonic::service::Routes,
    /// Secrets for the gateway's own SigV2 check.
    keys: ZoneAuth,
    /// Virtual-host parsing (the SigV2 resource includes the bucket).
    vhost: Option<ZoneHost>,
    /// The zone's role, and the count of writes in flight.
    site: Site,
    /// Header naming the client's address when a proxy stands in front
    /// (`rgw_remote_addr_param`, e.g. `x-forwarded-for`).
    remote_addr_header: Option<http::HeaderName>,
    /// The zone (bucket CORS rules).
    zone: Zone,
}

/// Who is on the other end of a request's connection, put into the
/// request's extensions for bucket policies (`aws:SourceIp`,
/// `aws:SecureTransport`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientConn {
    /// The client's address (from `rgw_remote_addr_param` when set and present).
    pub ip: std::net::IpAddr,
    /// The request came over TLS.
    pub secure: bool,
}

/// The header `rgw_remote_addr_param` names, in RGW's CGI spelling
/// (`HTTP_X_FORWARDED_FOR`) or as a header name; `None` for the socket's address.
pub fn remote_addr_header(param: &str) -> Result<Option<http::HeaderName>, String> {
    let p = param.trim();
    if p.is_empty() || p.eq_ignore_ascii_case("REMOTE_ADDR") {
        return Ok(None);
    }
    let name = p
        .strip_prefix("HTTP_")
        .unwrap_or(p)
        .replace('_', "-")
        .to_ascii_lowercase();
    http::HeaderName::from_bytes(name.as_bytes())
        .map(Some)
        .map_err(|e| format!("rgw_remote_addr_param {param:?}: {e}"))
}

/// Builds the handler for one zone (`dns`: virtual-host base domain;
/// `remote_addr_header`: see [`remote_addr_header`]).
pub fn service(
    zone: Zone,
    site: Site,
    dns: Option<String>,
    remote_addr_header: Option<http::HeaderName>,
) -> Gateway {
    let grpc = tonic::service::Routes::new(
        meridian_proto::multisite::zone_service_server::ZoneServiceServer::new(
            crate::zone_service::ZoneEndpoint::new(zone.clone(), site.clone()),
        )
        .max_decoding_message_size(meridian_proto::MAX_MESSAGE_BYTES)
        .max_encoding_message_size(meridian_proto::MAX_MESSAGE_BYTES),
    )
    .add_service(meridian_proto::reflection_service());
    let limits = Arc::new(crate::ratelimit::RateLimiter::default());
    let mut b = S3ServiceBuilder::new(MeridianS3::new(zone.clone(), site.clone(), limits.clone()));
    b.set_auth(ZoneAuth::new(zone.clone()));
    b.set_access(crate::auth::RequestGate::new(
        zone.clone(),
        site.clone(),
        limits,
    ));
    if let Some(d) = &dns {
        b.set_host(ZoneHost::new(d.clone()));
    }
    let mut cfg = s3s::config::S3Config::default();
    cfg.xml_max_body_size = MAX_XML_BODY;
    // s3s holds a form upload's file in memory to check the policy's
    // content-length-range: bounded here (AWS allows 5 GB; use PUT or
    // multipart beyond this).
    cfg.post_object_max_file_size = MAX_POST_OBJECT;
    b.set_config(Arc::new(s3s::config::StaticConfigProvider::new(Arc::new(
        cfg,
    ))));
    Gateway {
        s3: b.build(),
        grpc,
        keys: ZoneAuth::new(zone.clone()),
        zone,
        vhost: dns.map(ZoneHost::new),
        site,
        remote_addr_header,
    }
}

/// A new request id (RGW style: `tx` + random + the time).
fn request_id() -> String {
    format!(
        "tx{:016x}-{:08x}",
        rand::random::<u64>(),
        meridian_common::now_unix_ms() / 1000
    )
}

fn xml_error(status: u16, code: &str, message: &str, rid: &str) -> http::Response<Body> {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code><Message>{}</Message><RequestId>{rid}</RequestId></Error>",
        escape(message)
    );
    let mut r = http::Response::new(Body::from(body));
    *r.status_mut() = http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::BAD_REQUEST);
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/xml"),
    );
    r
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Puts `<RequestId>` into an S3 error body that lacks one.
/// s3s answers a form whose fields break its policy with 400
/// InvalidPolicyDocument; AWS with 403 AccessDenied "Invalid according to
/// Policy". The rewritten body, for such an error.
fn as_aws_policy_refusal(body: &[u8]) -> Option<Bytes> {
    let text = std::str::from_utf8(body).ok()?;
    if !text.contains("<Code>InvalidPolicyDocument</Code>") {
        return None;
    }
    let start = text.find("<Message>")? + "<Message>".len();
    let end = text[start..].find("</Message>")? + start;
    let why = &text[start..end];
    if !why.starts_with("Policy condition") {
        return None;
    }
    Some(Bytes::from(format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>AccessDenied</Code><Message>Invalid according to Policy: {why}</Message></Error>"
    )))
}

fn with_request_id(body: &[u8], rid: &str) -> Option<Bytes> {
    let text = std::str::from_utf8(body).ok()?;
    if !text.contains("<Error>") || text.contains("<RequestId>") {
        return None;
    }
    let at = text.rfind("</Error>")?;
    Some(Bytes::from(format!(
        "{}<RequestId>{rid}</RequestId>{}",
        &text[..at],
        &text[at..]
    )))
}

impl Gateway {
    /// The bucket a request names (virtual host or first path segment).
    fn bucket_of<B>(&self, req: &http::Request<B>) -> Option<String> {
        if let (Some(v), Some(h)) = (
            &self.vhost,
            req.headers()
                .get(http::header::HOST)
                .and_then(|h| h.to_str().ok()),
        ) && let Ok(vh) = s3s::host::S3Host::parse_host_header(v, h)
            && let Some(b) = vh.bucket()
        {
            return Some(b.to_string());
        }
        let first = req.uri().path().trim_start_matches('/').split('/').next()?;
        (!first.is_empty())
            .then(|| urlencoding::decode(first).ok().map(|b| b.into_owned()))
            .flatten()
    }

    /// Answers a CORS preflight (`OPTIONS`) from the bucket's rules.
    async fn preflight<B>(&self, req: &http::Request<B>, rid: &str) -> http::Response<Body> {
        let header = |n: &str| req.headers().get(n).and_then(|v| v.to_str().ok());
        let Some(origin) = header("origin") else {
            return xml_error(
                400,
                "InvalidRequest",
                "Insufficient information. Origin request header needed.",
                rid,
            );
        };
        let Some(method) = header("access-control-request-method") else {
            return xml_error(
                400,
                "InvalidRequest",
                "Invalid Access-Control-Request-Method: null",
                rid,
            );
        };
        let Some(bucket) = self.bucket_of(req) else {
            return xml_error(400, "InvalidRequest", "a preflight names a bucket", rid);
        };
        let rules = match self.zone.bucket(&bucket).await {
            Ok(b) => b.cors.clone(),
            Err(meridian_zone::ZoneError::NoSuchBucket(_)) => {
                return xml_error(
                    404,
                    "NoSuchBucket",
                    "The specified bucket does not exist",
                    rid,
                );
            }
            Err(e) => return xml_error(503, "ServiceUnavailable", &e.to_string(), rid),
        };
        let wanted = crate::cors::requested_headers(header("access-control-request-headers"));
        let Some(rule) = crate::cors::matching(&rules, origin, method, &wanted) else {
            return xml_error(
                403,
                "AccessForbidden",
                "CORSResponse: This CORS request is not allowed. This is usually because the evalution of Origin, request method / Access-Control-Request-Method or Access-Control-Request-Headers are not whitelisted by the resource's CORS spec.",
                rid,
            );
        };
        let mut r = http::Response::new(Body::empty());
        for (k, v) in crate::cors::response_headers(rule, origin, true, &wanted) {
            if let Ok(v) = http::HeaderValue::from_str(&v) {
                r.headers_mut().insert(k, v);
            }
        }
        r
    }

    /// Adds the bucket's CORS answer to a cross-origin request's response.
    async fn add_cors_headers(
        &self,
        bucket: &str,
        origin: &str,
        method: &http::Method,
        resp: &mut http::Response<Body>,
    ) {
        let Ok(b) = self.zone.bucket(bucket).await else {
            return;
        };
        if let Some(rule) = crate::cors::matching(&b.cors, origin, method.as_str(), &[]) {
            for (k, v) in crate::cors::response_headers(rule, origin, false, &[]) {
                if let Ok(v) = http::HeaderValue::from_str(&v) {
                    resp.headers_mut().insert(k, v);
                }
            }
        }
    }

    /// Refuses a SigV2 request whose signature does not match (compared in
    /// constant time; see [`crate::sigv2`]). Anything else, including an
    /// unknown access key and HTML-form POST uploads (s3s checks their
    /// policy and signature), goes on to s3s.
    async fn check_sigv2<B>(&self, req: &http::Request<B>) -> Option<crate::auth::Refusal> {
        use crate::sigv2;
        // Cheap test first: nearly every request is SigV4.
        let maybe_v2 = req.uri().query().is_some_and(|q| q.contains("Signature="))
            || req
                .headers()
                .get(http::header::AUTHORIZATION)
                .is_some_and(|a| a.as_bytes().starts_with(b"AWS "));
        if !maybe_v2 {
            return None;
        }
        let host = req
            .headers()
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .or_else(|| req.uri().authority().map(|a| a.as_str()));
        let vhost = match (&self.vhost, host) {
            (Some(v), Some(h)) => s3s::host::S3Host::parse_host_header(v, h).ok(),
            _ => None,
        };
        let signed = sigv2::Signed::of(req, vhost.as_ref().and_then(|v| v.bucket()))?;
        let claim = signed.claim()?;
        let secret = self.keys.secret_of(&claim.access_key).await.ok()?;
        if sigv2::signature_matches(
            &secret,
            &signed.string_to_sign(claim.mode),
            &claim.signature,
        ) {
            return None;
        }
        Some(crate::auth::Refusal {
            status: 403,
            code: "SignatureDoesNotMatch",
            message: "The request signature we calculated does not match the signature you provided. Check your key and signing method.".into(),
        })
    }

    /// The chunk-signature checker of a signed aws-chunked upload by a
    /// known access key (see [`crate::chunked`]).
    async fn chunk_signer<B>(&self, req: &http::Request<B>) -> Option<crate::chunked::ChunkSigner> {
        let (access_key, ..) = crate::chunked::streaming_auth(req)?;
        let secret = self.keys.secret_of(access_key).await.ok()?;
        crate::chunked::ChunkSigner::for_request(req, &secret)
    }

    /// Handles one request.
    pub async fn handle(
        &self,
        req: http::Request<Incoming>,
    ) -> Result<http::Response<Body>, HttpError> {
        let mut req = req;
        if let Some(h) = &self.remote_addr_header
            && let Some(ip) = req
                .headers()
                .get(h)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split(',').next())
                .and_then(|v| v.trim().parse::<std::net::IpAddr>().ok())
            && let Some(conn) = req.extensions_mut().get_mut::<ClientConn>()
        {
            conn.ip = ip;
        }
        if req
            .headers()
            .get(http::header::CONTENT_TYPE)
            .is_some_and(|c| c.as_bytes().starts_with(b"application/grpc"))
        {
            use tower::ServiceExt as _;
            let resp = match self.grpc.clone().oneshot(req).await {
                Ok(r) => r,
                Err(never) => match never {},
            };
            return Ok(resp.map(Body::http_body_unsync));
        }
        let (req, unread_body) = crate::unread_body::watch(req);
        let started = Instant::now();
        let rid = request_id();
        let method = req.method().clone();
        // Counted for the whole request: a failover waits for these to end.
        let _write = (!matches!(
            method,
            http::Method::GET | http::Method::HEAD | http::Method::OPTIONS
        ))
        .then(|| self.site.write_started());
        let header_bytes: usize = req
            .headers()
            .iter()
            .map(|(n, v)| n.as_str().len() + v.len() + 4)
            .sum();
        let mut resp = if header_bytes > MAX_HEADER_BYTES {
            xml_error(
                400,
                "RequestHeaderSectionTooLarge",
                &format!(
                    "request headers are {header_bytes} bytes; the limit is {MAX_HEADER_BYTES}"
                ),
                &rid,
            )
        } else if let Some(r) =
            crate::auth::pre_signature_check(req.uri(), req.headers(), std::time::SystemTime::now())
        {
            xml_error(r.status, r.code, &r.message, &rid)
        } else if method == http::Method::OPTIONS {
            self.preflight(&req, &rid).await
        } else if let Some(r) = self.check_sigv2(&req).await {
            xml_error(r.status, r.code, &r.message, &rid)
        } else {
            let cross_origin = req
                .headers()
                .get("origin")
                .and_then(|o| o.to_str().ok())
                .map(str::to_string)
                .and_then(|o| Some((o, self.bucket_of(&req)?)));
            let req = match self.chunk_signer(&req).await {
                Some(signer) => {
                    req.map(|b| Body::http_body(crate::chunked::GuardedBody::new(b, signer)))
                }
                None => req.map(Body::http_body),
            };
            let form_post = crate::sigv2::is_form_post(&req);
            let resp = self.s3.call(req).await?;
            let mut resp = if resp.status().as_u16() >= 400 {
                let (mut parts, body) = resp.into_parts();
                let body = match hyper::body::Body::size_hint(&body).upper() {
                    Some(n) if n as usize <= MAX_ERROR_BODY => {
                        let mut bytes = body
                            .collect()
                            .await
                            .map(|c| c.to_bytes())
                            .unwrap_or_default();
                        if form_post && let Some(b) = as_aws_policy_refusal(&bytes) {
                            parts.status = http::StatusCode::FORBIDDEN;
                            parts.headers.remove(http::header::CONTENT_LENGTH);
                            bytes = b;
                        }
                        match with_request_id(&bytes, &rid) {
                            Some(b) => {
                                parts.headers.remove(http::header::CONTENT_LENGTH);
                                Body::from(b)
                            }
                            None => Body::from(bytes),
                        }
                    }
                    _ => body,
                };
                http::Response::from_parts(parts, body)
            } else {
                resp
            };
            if let Some((origin, bucket)) = cross_origin {
                self.add_cors_headers(&bucket, &origin, &method, &mut resp)
                    .await;
            }
            resp
        };
        unread_body.settle(&mut resp).await;
        let h = resp.headers_mut();
        if let Ok(v) = http::HeaderValue::from_str(&rid) {
            h.insert("x-amz-request-id", v.clone());
            h.insert("x-amz-id-2", v);
        }
        h.insert(
            http::header::SERVER,
            http::HeaderValue::from_static("Meridian"),
        );
        let status = resp.status().as_u16();
        let class = match status {
            200..=299 => "2xx",
            300..=399 => "3xx",
            400..=499 => "4xx",
            _ => "5xx",
        };
        metrics::counter!("meridian_gateway_requests_total", "method" => method.to_string(), "status" => class)
            .increment(1);
        metrics::histogram!("meridian_gateway_request_latency_seconds", "method" => method.to_string())
            .record(started.elapsed().as_secs_f64());
        if status >= 500 {
            tracing::warn!(request_id = %rid, %method, status, "request failed");
        }
        Ok(resp)
    }
}

/// One listening socket of a gateway, plain or TLS.
pub struct Listener {
    /// The bound socket.
    pub tcp: tokio::net::TcpListener,
    /// Set: every connection is a TLS one.
    pub tls: Option<tokio_rustls::TlsAcceptor>,
}

/// A TLS handshake that has not finished by then is dropped (a client that
/// connects and sends nothing must not hold a task forever).
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Accepts connections on every listener until `shutdown` completes, then
/// waits up to `drain` for requests in flight (no new ones are read;
/// keep-alive connections close).
pub async fn serve(
    listeners: Vec<Listener>,
    gw: Arc<Gateway>,
    shutdown: impl std::future::Future<Output = ()>,
    drain: Duration,
) {
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .max_buf_size(MAX_HTTP_BUFFER)
        .keep_alive(true)
        .timer(TokioTimer::new())
        .header_read_timeout(Some(Duration::from_secs(60)));
    let builder = Arc::new(builder);
    tokio::pin!(shutdown);
    loop {
        let accepts = listeners
            .iter()
            .map(|l| Box::pin(async move { (l.tcp.accept().await, l.tls.clone()) }));
        tokio::select! {
            ((accepted, tls), _, _) = futures::future::select_all(accepts) => {
                let (stream, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let gw = gw.clone();
                let conn = ClientConn { ip: peer.ip(), secure: tls.is_some() };
                let svc = hyper::service::service_fn(move |mut req: http::Request<Incoming>| {
                    let gw = gw.clone();
                    req.extensions_mut().insert(conn);
                    async move { gw.handle(req).await }
                });
                let watcher = graceful.watcher();
                let builder = builder.clone();
                tokio::spawn(async move {
                    match tls {
                        None => {
                            let conn = builder.serve_connection(TokioIo::new(stream), svc);
                            let _ = watcher.watch(conn.into_owned()).await;
                        }
                        Some(acceptor) => {
                            let stream = match tokio::time::timeout(
                                TLS_HANDSHAKE_TIMEOUT,
                                acceptor.accept(stream),
                            )
                            .await
                            {
                                Ok(Ok(s)) => s,
                                Ok(Err(e)) => {
                                    tracing::debug!(error = %e, "TLS handshake failed");
                                    return;
                                }
                                Err(_) => return,
                            };
                            let conn = builder.serve_connection(TokioIo::new(stream), svc);
                            let _ = watcher.watch(conn.into_owned()).await;
                        }
                    }
                });
            }
            _ = &mut shutdown => break,
        }
    }
    drop(listeners);
    tracing::info!("draining requests in flight");
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(drain) => tracing::warn!("drain timed out; closing remaining connections"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_addr_param_names_a_header() {
        assert_eq!(remote_addr_header("").unwrap(), None);
        assert_eq!(remote_addr_header("REMOTE_ADDR").unwrap(), None);
        assert_eq!(
            remote_addr_header("HTTP_X_FORWARDED_FOR").unwrap().unwrap(),
            "x-forwarded-for"
        );
        assert_eq!(
            remote_addr_header("X-Real-IP").unwrap().unwrap(),
            "x-real-ip"
        );
        assert!(remote_addr_header("bad header").is_err());
    }

    #[test]
    fn request_id_goes_inside_error_bodies() {
        let body = b"<?xml version=\"1.0\"?><Error><Code>NoSuchKey</Code></Error>";
        let out = with_request_id(body, "tx1").unwrap();
        assert_eq!(
            &out[..],
            b"<?xml version=\"1.0\"?><Error><Code>NoSuchKey</Code><RequestId>tx1</RequestId></Error>"
        );
        assert!(with_request_id(b"<Error><RequestId>a</RequestId></Error>", "b").is_none());
        assert!(with_request_id(b"not xml", "b").is_none());
    }
}
