//! Authentication (secret keys from the zone's users, for s3s's SigV4
//! verification) and virtual-host parsing. Authorization is decided in the
//! handlers, where the bucket and object ACLs are known.

use meridian_zone::{Zone, ZoneError};
use s3s::access::{S3Access, S3AccessContext};
use s3s::auth::{S3Auth, SecretKey};
use s3s::host::{S3Host, VirtualHost};
use s3s::{S3Result, s3_error};

/// Looks secret keys up in the zone's users.
pub struct ZoneAuth {
    zone: Zone,
}

impl ZoneAuth {
    /// Authentication against `zone`'s users.
    pub fn new(zone: Zone) -> Self {
        Self { zone }
    }
}

#[async_trait::async_trait]
impl S3Auth for ZoneAuth {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<SecretKey> {
        match self.zone.user_by_key(access_key).await {
            Ok(user) => {
                let key = user
                    .keys
                    .iter()
                    .find(|k| k.access_key == access_key)
                    .ok_or_else(|| s3_error!(InvalidAccessKeyId))?;
                Ok(SecretKey::from(key.secret_key.as_str()))
            }
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

/// Lets every request through to its handler (anonymous ones included):
/// each handler checks ownership and ACLs itself.
pub struct OwnerChecksInHandlers;

#[async_trait::async_trait]
impl S3Access for OwnerChecksInHandlers {
    async fn check(&self, _cx: &mut S3AccessContext<'_>) -> S3Result<()> {
        Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

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
