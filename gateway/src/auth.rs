//! Authentication (secret keys from the zone's users, for s3s's SigV4
//! verification), virtual-host parsing, the redirect of requests for
//! another zonegroup's bucket, and bucket policies. ACLs are checked in the
//! handlers, where the bucket and object records are at hand.

use meridian_zone::{Zone, ZoneError};
use s3s::access::{S3Access, S3AccessContext};
use s3s::auth::{S3Auth, SecretKey};
use s3s::host::{S3Host, VirtualHost};
use s3s::{S3Result, s3_error};
use std::time::{Duration, SystemTime};

/// Looks secret keys up in the zone's users.
pub struct ZoneAuth {
    zone: Zone,
}

impl ZoneAuth {
    /// Authentication against `zone`'s users.
    pub fn new(zone: Zone) -> Self {
        Self { zone }
    }

    /// The secret of `access_key`.
    pub async fn secret_of(&self, access_key: &str) -> S3Result<String> {
        match self.zone.user_by_key(access_key).await {
            Ok(user) => user
                .keys
                .iter()
                .find(|k| k.access_key == access_key)
                .map(|k| k.secret_key.clone())
                .ok_or_else(|| s3_error!(InvalidAccessKeyId)),
            Err(ZoneError::NoSuchAccessKey(_)) => Err(s3_error!(
                InvalidAccessKeyId,
                "The AWS Access Key Id you provided does not exist in our records."
            )),
            Err(e) => {
                tracing::warn!(error = %e, "cannot look up access key");
                Err(s3_error!(ServiceUnavailable, "cannot read users: {}", e))
            }
        }
    }
}

#[async_trait::async_trait]
impl S3Auth for ZoneAuth {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<SecretKey> {
        Ok(SecretKey::from(self.secret_of(access_key).await?))
    }
}

/// What runs after authentication and before any handler: a request for
/// a bucket of another zonegroup is sent there, as RGW does (301
/// PermanentRedirect naming the zonegroup's endpoint, with
/// `x-amz-bucket-region`; bucket names are global in a realm, but data
/// stays in the zonegroup the bucket was created in; CreateBucket and
/// GetBucketLocation are answered here); a request past its user's or its
/// bucket's rate limit gets 503 SlowDown. Ownership and ACLs are checked
/// by each handler.
pub struct RequestGate {
    zone: Zone,
    site: crate::site::Site,
    limits: std::sync::Arc<crate::ratelimit::RateLimiter>,
}

impl RequestGate {
    /// The gate of `zone`, whose period `site` follows.
    pub fn new(
        zone: Zone,
        site: crate::site::Site,
        limits: std::sync::Arc<crate::ratelimit::RateLimiter>,
    ) -> Self {
        Self { zone, site, limits }
    }

    /// 503 SlowDown when the caller or the bucket is past a limit.
    async fn rate_limit(&self, cx: &S3AccessContext<'_>, bucket: Option<&str>) -> S3Result<()> {
        use crate::ratelimit::Request;
        let req = if matches!(*cx.method(), http::Method::GET | http::Method::HEAD) {
            Request::Read
        } else {
            let len = ["x-amz-decoded-content-length", "content-length"]
                .iter()
                .find_map(|h| cx.headers().get(*h)?.to_str().ok()?.parse().ok())
                .unwrap_or(0);
            Request::Write(len)
        };
        let slow = |what: &str, past: &str| {
            s3_error!(
                SlowDown,
                "Please reduce your request rate: {what} is past its {past} limit"
            )
        };
        if let Some(c) = cx.credentials()
            && let Ok(u) = self.zone.user_by_key(&c.access_key).await
        {
            self.limits
                .admit(&format!("user:{}", u.user_id), &u.ratelimit, req)
                .map_err(|past| slow(&format!("user {}", u.user_id), past))?;
        }
        if let Some(b) = bucket
            && let Ok(info) = self.zone.bucket(b).await
        {
            self.limits
                .admit(&format!("bucket:{b}"), &info.ratelimit, req)
                .map_err(|past| slow(&format!("bucket {b}"), past))?;
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl S3Access for RequestGate {
    async fn check(&self, cx: &mut S3AccessContext<'_>) -> S3Result<()> {
        let bucket = match cx.s3_path() {
            s3s::path::S3Path::Bucket { bucket } | s3s::path::S3Path::Object { bucket, .. } => {
                bucket.to_string()
            }
            s3s::path::S3Path::Root => return self.rate_limit(cx, None).await,
        };
        self.rate_limit(cx, Some(&bucket)).await?;
        if matches!(cx.s3_op().name(), "CreateBucket" | "GetBucketLocation") {
            return Ok(());
        }
        // A missing bucket is the handler's answer (NoSuchBucket).
        let Ok(b) = self.zone.bucket(&bucket).await else {
            return Ok(());
        };
        self.redirect_elsewhere(&bucket, &b)?;
        self.bucket_policy(cx, &b).await
    }
}

impl RequestGate {
    /// Applies the bucket's policy to the request's own bucket and key:
    /// a Deny refuses it here; an Allow is left for the handler as
    /// [`crate::s3::access::PolicyGrant`]. DeleteObjects is decided key by
    /// key in its handler.
    async fn bucket_policy(
        &self,
        cx: &mut S3AccessContext<'_>,
        b: &meridian_zone::BucketInfo,
    ) -> S3Result<()> {
        use crate::policy::Decision;
        use crate::s3::access;
        let op = cx.s3_op().name().to_string();
        if op == "DeleteObjects" {
            return Ok(());
        }
        let Some(policy) = access::policy_of(b) else {
            return Ok(());
        };
        let user = match cx.credentials() {
            Some(c) => self.zone.user_by_key(&c.access_key).await.ok(),
            None => None,
        };
        let conn = cx
            .extensions_mut()
            .get::<crate::http::ClientConn>()
            .copied();
        let facts = access::RequestFacts::of(
            user.as_ref().map(|u| (u.user_id.as_str(), u.system)),
            cx.uri(),
            cx.headers(),
            conn,
        );
        let action = access::s3_action(&op, facts.versioned());
        let key = match cx.s3_path() {
            s3s::path::S3Path::Object { key, .. } => Some(key.to_string()),
            _ => None,
        };
        match access::decide(b, &policy, &facts, &action, key.as_deref()) {
            Decision::Deny => Err(s3_error!(AccessDenied, "Access Denied")),
            Decision::Allow => {
                cx.extensions_mut().insert(access::PolicyGrant);
                Ok(())
            }
            Decision::NoOpinion => Ok(()),
        }
    }

    /// 301 PermanentRedirect for a bucket of another zonegroup.
    fn redirect_elsewhere(&self, bucket: &str, b: &meridian_zone::BucketInfo) -> S3Result<()> {
        if b.zonegroup.is_empty() || b.zonegroup == self.zone.params().zonegroup {
            return Ok(());
        }
        // Only a zonegroup of the current period without this zone in it
        // is elsewhere (a name the period does not know stays served here).
        let role = self.site.role();
        let Some(group) = role.period.as_ref().and_then(|p| {
            p.zonegroups
                .iter()
                .find(|g| g.name == b.zonegroup || g.id == b.zonegroup)
        }) else {
            return Ok(());
        };
        if group.zones.iter().any(|z| z.id == role.zone_id) {
            return Ok(());
        }
        let endpoint = group
            .endpoints
            .first()
            .or_else(|| {
                group
                    .zones
                    .iter()
                    .find(|z| z.id == group.master_zone)
                    .or(group.zones.first())
                    .and_then(|z| z.endpoints.first())
            })
            .cloned()
            .unwrap_or_default();
        let mut e = s3_error!(
            PermanentRedirect,
            "The bucket you are attempting to access must be addressed using the specified endpoint: \
             bucket {bucket} is in zonegroup {}{}",
            b.zonegroup,
            if endpoint.is_empty() {
                String::new()
            } else {
                format!(" at {endpoint}")
            }
        );
        let mut h = http::HeaderMap::new();
        let region = Some(group.api_name.as_str())
            .filter(|n| !n.is_empty())
            .unwrap_or(&b.zonegroup);
        if let Ok(v) = http::HeaderValue::from_str(region) {
            h.insert("x-amz-bucket-region", v);
        }
        e.set_headers(h);
        Err(e)
    }
}

/// Virtual-host-style addressing under one DNS name (`rgw_dns_name`):
/// `BUCKET.<name>[:port]` names a bucket; any other host is path style.
pub struct ZoneHost {
    domain: String,
}

impl ZoneHost {
    /// Virtual hosts under `domain`.
    pub fn new(domain: String) -> Self {
        Self {
            domain: domain.to_ascii_lowercase(),
        }
    }
}

impl S3Host for ZoneHost {
    fn parse_host_header<'a>(&'a self, host: &'a str) -> S3Result<VirtualHost<'a>> {
        let name = host.rsplit_once(':').map_or(host, |(h, p)| {
            if p.bytes().all(|b| b.is_ascii_digit()) {
                h
            } else {
                host
            }
        });
        let lower = name.to_ascii_lowercase();
        if let Some(bucket) = lower.strip_suffix(&format!(".{}", self.domain))
            && !bucket.is_empty()
        {
            return Ok(VirtualHost::new(self.domain.as_str()).with_bucket(bucket.to_string()));
        }
        Ok(VirtualHost::new(name))
    }
}

/// Longest a presigned URL may be valid (AWS's and RGW's rule: 7 days).
pub const MAX_PRESIGNED_EXPIRES_S: u64 = 604_800;
/// Largest difference between a SigV2 request's Date and this clock (as S3's).
pub const MAX_V2_SKEW: Duration = Duration::from_secs(15 * 60);

/// An answer given before the signature is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// HTTP status.
    pub status: u16,
    /// S3 error code.
    pub code: &'static str,
    /// Message.
    pub message: String,
}

/// Rules s3s does not enforce, checked on the raw request: a presigned
/// SigV4 URL valid for more than [`MAX_PRESIGNED_EXPIRES_S`], and a
/// header-signed SigV2 request whose `Date` (or `x-amz-date`) is missing,
/// unparsable or more than [`MAX_V2_SKEW`] from `now` (SigV2 signs the date
/// but s3s never compares it with the clock, so a captured request could be
/// replayed forever).
pub fn pre_signature_check(
    uri: &http::Uri,
    headers: &http::HeaderMap,
    now: SystemTime,
) -> Option<Refusal> {
    let query = uri.query().unwrap_or("");
    let expires = query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == "X-Amz-Expires")
        .and_then(|(_, v)| v.parse::<u64>().ok());
    if let Some(e) = expires.filter(|e| *e > MAX_PRESIGNED_EXPIRES_S) {
        return Some(Refusal {
            status: 403,
            code: "AccessDenied",
            message: format!(
                "X-Amz-Expires must be less than a week (in seconds) that is {MAX_PRESIGNED_EXPIRES_S}; got {e}"
            ),
        });
    }
    let v2 = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|a| a.to_str().ok())
        .is_some_and(|a| a.starts_with("AWS ") && a.contains(':'));
    if !v2 {
        return None;
    }
    let date = headers
        .get("x-amz-date")
        .or_else(|| headers.get(http::header::DATE))
        .and_then(|d| d.to_str().ok())
        .and_then(|d| httpdate::parse_http_date(d).ok());
    let Some(date) = date else {
        return Some(Refusal {
            status: 403,
            code: "AccessDenied",
            message: "AWS authentication requires a valid Date or x-amz-date header".into(),
        });
    };
    let off = now
        .duration_since(date)
        .or_else(|_| date.duration_since(now))
        .unwrap_or_default();
    (off > MAX_V2_SKEW).then(|| Refusal {
        status: 403,
        code: "RequestTimeTooSkewed",
        message: format!(
            "The difference between the request time and the current time is too large ({} s; at most {} s)",
            off.as_secs(),
            MAX_V2_SKEW.as_secs()
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presigned_week_and_sigv2_clock_rules() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let uri = |q: &str| format!("/b/k?{q}").parse::<http::Uri>().unwrap();
        let none = http::HeaderMap::new();
        let presigned = "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Expires=";
        assert_eq!(
            pre_signature_check(&uri(&format!("{presigned}604800")), &none, now),
            None
        );
        let r = pre_signature_check(&uri(&format!("{presigned}604801")), &none, now).unwrap();
        assert_eq!((r.status, r.code), (403, "AccessDenied"));
        assert!(r.message.contains("604800"), "{}", r.message);

        let v2 = |date: Option<&str>, amz: Option<&str>| {
            let mut h = http::HeaderMap::new();
            h.insert(
                http::header::AUTHORIZATION,
                "AWS AKID:c2ln".parse().unwrap(),
            );
            if let Some(d) = date {
                h.insert(http::header::DATE, d.parse().unwrap());
            }
            if let Some(d) = amz {
                h.insert("x-amz-date", d.parse().unwrap());
            }
            pre_signature_check(&uri("acl"), &h, now)
        };
        let at =
            |secs: u64| httpdate::fmt_http_date(SystemTime::UNIX_EPOCH + Duration::from_secs(secs));
        assert_eq!(v2(Some(&at(1_700_000_000 - 14 * 60)), None), None);
        assert_eq!(v2(Some(&at(1_700_000_000 + 14 * 60)), None), None);
        for skewed in [1_700_000_000 - 16 * 60, 1_700_000_000 + 16 * 60] {
            let r = v2(Some(&at(skewed)), None).unwrap();
            assert_eq!((r.status, r.code), (403, "RequestTimeTooSkewed"));
        }
        // x-amz-date wins over Date, as in SigV2's string to sign.
        assert_eq!(v2(Some(&at(1)), Some(&at(1_700_000_000))), None);
        for missing in [v2(None, None), v2(Some("yesterday"), None)] {
            assert_eq!(missing.unwrap().code, "AccessDenied");
        }
        // SigV4 header auth is s3s's to check.
        let mut h = http::HeaderMap::new();
        h.insert(
            http::header::AUTHORIZATION,
            "AWS4-HMAC-SHA256 Credential=x".parse().unwrap(),
        );
        assert_eq!(pre_signature_check(&uri("acl"), &h, now), None);
    }

    #[test]
    fn virtual_hosts_under_the_dns_name_name_buckets() {
        let h = ZoneHost::new("s3.localhost".into());
        let vh = h.parse_host_header("photos.s3.localhost:7480").unwrap();
        assert_eq!(vh.bucket(), Some("photos"));
        let vh = h.parse_host_header("s3.localhost:7480").unwrap();
        assert_eq!(vh.bucket(), None);
        let vh = h.parse_host_header("localhost:7480").unwrap();
        assert_eq!(vh.bucket(), None);
        let vh = h.parse_host_header("a.b.S3.LOCALHOST").unwrap();
        assert_eq!(vh.bucket(), Some("a.b"));
    }
}
