//! Object lock: a bucket's lock configuration, the retention and legal
//! hold of each version, and who may bypass a GOVERNANCE retention.
//!
//! The zone refuses removing a protected version inside the index
//! transaction (every delete path: DeleteObject, DeleteObjects, lifecycle);
//! this module turns S3 requests into those records.

use super::{Caller, MeridianS3, OrS3, denied};
use crate::convert::{timestamp, timestamp_ns};
use meridian_zone::bucket::BucketChange;
use meridian_zone::{
    BucketInfo, ObjectAttrs, ObjectLockConfig, Retention, RetentionMode, Versioning, ZoneError,
};
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

const DAY_MS: u64 = 86_400_000;

fn no_lock_configuration() -> s3s::S3Error {
    s3_error!(
        InvalidRequest,
        "Bucket is missing Object Lock Configuration"
    )
}

fn version_not_locked() -> s3s::S3Error {
    s3_error!(
        NoSuchObjectLockConfiguration,
        "The specified object does not have a ObjectLock configuration"
    )
}

fn hold_status(on: bool) -> ObjectLockLegalHoldStatus {
    ObjectLockLegalHoldStatus::from(if on { "ON" } else { "OFF" }.to_string())
}

fn now_ms() -> u64 {
    meridian_common::now_unix_ms()
}

/// A retain-until date as Unix ms (dates before the epoch are in the past).
fn until_ms(t: &Timestamp) -> u64 {
    u64::try_from(timestamp_ns(t) / 1_000_000).unwrap_or(0)
}

fn mode_of(s: &str) -> S3Result<RetentionMode> {
    RetentionMode::parse(s).ok_or_else(|| {
        s3_error!(
            MalformedXML,
            "object lock mode must be GOVERNANCE or COMPLIANCE"
        )
    })
}

fn legal_hold_of(s: &str) -> S3Result<bool> {
    match s {
        "ON" => Ok(true),
        "OFF" => Ok(false),
        _ => Err(s3_error!(
            MalformedXML,
            "legal hold status must be ON or OFF"
        )),
    }
}

/// The object lock headers of a write (PUT, copy, multipart upload).
pub(super) struct LockHeaders<'a> {
    pub mode: Option<&'a ObjectLockMode>,
    pub until: Option<&'a Timestamp>,
    pub legal_hold: Option<&'a ObjectLockLegalHoldStatus>,
}

/// The object lock headers of an S3 write input.
macro_rules! lock_headers {
    ($i:expr) => {
        $crate::s3::object_lock::LockHeaders {
            mode: $i.object_lock_mode.as_ref(),
            until: $i.object_lock_retain_until_date.as_ref(),
            legal_hold: $i.object_lock_legal_hold_status.as_ref(),
        }
    };
}
pub(super) use lock_headers;

/// Sets the retention and legal hold a new version of bucket `b` gets: the
/// write's own headers, else the bucket's default retention.
pub(super) fn set_write_lock(
    b: &BucketInfo,
    h: LockHeaders<'_>,
    attrs: &mut ObjectAttrs,
) -> S3Result<()> {
    let named = h.mode.is_some() || h.until.is_some() || h.legal_hold.is_some();
    let Some(cfg) = &b.object_lock else {
        if named {
            return Err(no_lock_configuration());
        }
        attrs.retention = None;
        attrs.legal_hold = None;
        return Ok(());
    };
    let now = now_ms();
    attrs.retention = match (h.mode, h.until) {
        (Some(m), Some(t)) => {
            let until = until_ms(t);
            if until <= now {
                return Err(s3_error!(
                    InvalidArgument,
                    "The retain until date must be in the future!"
                ));
            }
            Some(Retention {
                mode: mode_of(m.as_str())?,
                until_ms: until,
            })
        }
        (None, None) => cfg.default_retention.map(|d| Retention {
            mode: d.mode,
            until_ms: now + u64::from(d.days) * DAY_MS,
        }),
        _ => {
            return Err(s3_error!(
                InvalidArgument,
                "x-amz-object-lock-retain-until-date and x-amz-object-lock-mode must both be supplied"
            ));
        }
    };
    attrs.legal_hold = h
        .legal_hold
        .map(|s| legal_hold_of(s.as_str()))
        .transpose()?;
    Ok(())
}

/// The object lock response headers of a version (GET, HEAD).
pub(super) fn lock_fields(
    a: &ObjectAttrs,
) -> (
    Option<ObjectLockMode>,
    Option<Timestamp>,
    Option<ObjectLockLegalHoldStatus>,
) {
    (
        a.retention
            .map(|r| ObjectLockMode::from(r.mode.as_str().to_string())),
        a.retention.map(|r| timestamp(r.until_ms * 1_000_000)),
        a.legal_hold.map(hold_status),
    )
}

/// A PutObjectLockConfiguration body as the bucket's configuration.
fn config_of(c: &ObjectLockConfiguration) -> S3Result<ObjectLockConfig> {
    if c.object_lock_enabled.as_ref().map(|e| e.as_str()) != Some("Enabled") {
        return Err(s3_error!(
            MalformedXML,
            "ObjectLockEnabled must be Enabled (object lock cannot be turned off)"
        ));
    }
    let Some(d) = c.rule.as_ref().and_then(|r| r.default_retention.as_ref()) else {
        return Ok(ObjectLockConfig::default());
    };
    let mode = mode_of(d.mode.as_ref().map(|m| m.as_str()).unwrap_or(""))?;
    let (days, in_years) = match (d.days, d.years) {
        (Some(n), None) => (n, false),
        (None, Some(y)) => (y.saturating_mul(365), true),
        _ => {
            return Err(s3_error!(
                MalformedXML,
                "a DefaultRetention has exactly one of Days and Years"
            ));
        }
    };
    let days = u32::try_from(days)
        .ok()
        .filter(|d| *d > 0 && *d <= 36_500)
        .ok_or_else(|| {
            s3_error!(
                InvalidArgument,
                "Default retention period must be a positive integer value (at most 100 years)"
            )
        })?;
    Ok(ObjectLockConfig {
        default_retention: Some(meridian_zone::DefaultRetention {
            mode,
            days,
            in_years,
        }),
    })
}

fn configuration_of(c: &ObjectLockConfig) -> ObjectLockConfiguration {
    ObjectLockConfiguration {
        object_lock_enabled: Some(ObjectLockEnabled::from_static(ObjectLockEnabled::ENABLED)),
        rule: c.default_retention.map(|d| ObjectLockRule {
            default_retention: Some(DefaultRetention {
                mode: Some(ObjectLockRetentionMode::from(d.mode.as_str().to_string())),
                days: (!d.in_years).then_some(d.days as i32),
                years: d.in_years.then_some((d.days / 365) as i32),
            }),
        }),
    }
}

impl MeridianS3 {
    /// Turns object lock on for a bucket just created with it (versioning first).
    pub(super) async fn enable_object_lock(&self, bucket: &str, uid: &str) -> S3Result<()> {
        self.change_bucket(bucket, uid, BucketChange::Versioning(Versioning::Enabled))
            .await
            .or_s3()?;
        self.change_bucket(
            bucket,
            uid,
            BucketChange::ObjectLock(ObjectLockConfig::default()),
        )
        .await
        .or_s3()?;
        Ok(())
    }

    /// The caller asked to bypass GOVERNANCE retention and may: the bucket
    /// owner, or a bucket policy allowing s3:BypassGovernanceRetention.
    pub(super) fn may_bypass_governance<T>(
        &self,
        req: &S3Request<T>,
        caller: &Caller,
        b: &BucketInfo,
        key: &str,
        asked: bool,
    ) -> bool {
        if !asked {
            return false;
        }
        caller.is(&b.owner)
            || super::access::policy_of(b).is_some_and(|p| {
                super::access::decide(
                    b,
                    &p,
                    &caller.facts(req),
                    "s3:BypassGovernanceRetention",
                    Some(key),
                ) == crate::policy::Decision::Allow
            })
    }

    /// The bucket and version a retention or legal hold request is about,
    /// if the caller may manage it (bucket owner, version owner, or a
    /// bucket policy grant).
    async fn lock_target<T>(
        &self,
        req: &S3Request<T>,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
    ) -> S3Result<(
        Caller,
        std::sync::Arc<BucketInfo>,
        meridian_zone::IndexEntry,
    )> {
        let caller = self.caller(req).await?;
        let b = self.bucket(bucket).await?;
        let granted = req.extensions.get::<super::access::PolicyGrant>().is_some();
        if !granted && !caller.is(&b.owner) && !caller.can_read_bucket(&b) {
            return Err(denied());
        }
        if b.object_lock.is_none() {
            return Err(no_lock_configuration());
        }
        let e = self.zone.lookup(&b, key, version_id).await.or_s3()?;
        if !granted && !caller.owns_object(&b, &e) {
            return Err(denied());
        }
        Ok((caller, b, e))
    }

    pub(super) async fn do_put_object_lock_configuration(
        &self,
        req: S3Request<PutObjectLockConfigurationInput>,
    ) -> S3Result<S3Response<PutObjectLockConfigurationOutput>> {
        let (_, b) = self.owned_writable_bucket(&req, &req.input.bucket).await?;
        let c = req
            .input
            .object_lock_configuration
            .as_ref()
            .ok_or_else(|| s3_error!(MalformedXML, "no ObjectLockConfiguration"))?;
        let cfg = config_of(c)?;
        self.change_bucket(&b.name, &b.owner, BucketChange::ObjectLock(cfg))
            .await
            .or_s3()?;
        Ok(S3Response::new(PutObjectLockConfigurationOutput::default()))
    }

    pub(super) async fn do_get_object_lock_configuration(
        &self,
        req: S3Request<GetObjectLockConfigurationInput>,
    ) -> S3Result<S3Response<GetObjectLockConfigurationOutput>> {
        let (_, b) = self.owned_bucket(&req, &req.input.bucket).await?;
        let c = b.object_lock.as_ref().ok_or_else(|| {
            s3_error!(
                ObjectLockConfigurationNotFoundError,
                "Object Lock configuration does not exist for this bucket"
            )
        })?;
        Ok(S3Response::new(GetObjectLockConfigurationOutput {
            object_lock_configuration: Some(configuration_of(c)),
        }))
    }

    pub(super) async fn do_put_object_retention(
        &self,
        req: S3Request<PutObjectRetentionInput>,
    ) -> S3Result<S3Response<PutObjectRetentionOutput>> {
        self.refuse_if_read_only()?;
        let i = &req.input;
        let (caller, b, e) = self
            .lock_target(&req, &i.bucket, &i.key, i.version_id.as_deref())
            .await?;
        let new = match i.retention.as_ref() {
            Some(ObjectLockRetention {
                mode: Some(m),
                retain_until_date: Some(t),
            }) => {
                let until = until_ms(t);
                if until <= now_ms() {
                    return Err(s3_error!(
                        InvalidArgument,
                        "The retain until date must be in the future!"
                    ));
                }
                Some(Retention {
                    mode: mode_of(m.as_str())?,
                    until_ms: until,
                })
            }
            Some(ObjectLockRetention {
                mode: None,
                retain_until_date: None,
            }) => None,
            _ => {
                return Err(s3_error!(
                    MalformedXML,
                    "a Retention has both Mode and RetainUntilDate, or neither (to remove it)"
                ));
            }
        };
        let bypass = self.may_bypass_governance(
            &req,
            &caller,
            &b,
            &i.key,
            i.bypass_governance_retention.unwrap_or(false),
        );
        // Checked against the stored retention inside the index update.
        self.zone
            .update_attrs(&b, &i.key, Some(&e.version_id), |a| {
                Retention::may_replace(a.retention, new, now_ms(), bypass)
                    .map_err(ZoneError::ObjectLocked)?;
                a.retention = new;
                Ok(())
            })
            .await
            .or_s3()?;
        Ok(S3Response::new(PutObjectRetentionOutput::default()))
    }

    pub(super) async fn do_get_object_retention(
        &self,
        req: S3Request<GetObjectRetentionInput>,
    ) -> S3Result<S3Response<GetObjectRetentionOutput>> {
        let i = &req.input;
        let (_, _, e) = self
            .lock_target(&req, &i.bucket, &i.key, i.version_id.as_deref())
            .await?;
        let r = e.attrs.retention.ok_or_else(version_not_locked)?;
        Ok(S3Response::new(GetObjectRetentionOutput {
            retention: Some(ObjectLockRetention {
                mode: Some(ObjectLockRetentionMode::from(r.mode.as_str().to_string())),
                retain_until_date: Some(timestamp(r.until_ms * 1_000_000)),
            }),
        }))
    }

    pub(super) async fn do_put_object_legal_hold(
        &self,
        req: S3Request<PutObjectLegalHoldInput>,
    ) -> S3Result<S3Response<PutObjectLegalHoldOutput>> {
        self.refuse_if_read_only()?;
        let i = &req.input;
        let (_, b, e) = self
            .lock_target(&req, &i.bucket, &i.key, i.version_id.as_deref())
            .await?;
        let on = legal_hold_of(
            i.legal_hold
                .as_ref()
                .and_then(|h| h.status.as_ref())
                .map(|s| s.as_str())
                .unwrap_or(""),
        )?;
        self.zone
            .update_attrs(&b, &i.key, Some(&e.version_id), |a| {
                a.legal_hold = Some(on);
                Ok(())
            })
            .await
            .or_s3()?;
        Ok(S3Response::new(PutObjectLegalHoldOutput::default()))
    }

    pub(super) async fn do_get_object_legal_hold(
        &self,
        req: S3Request<GetObjectLegalHoldInput>,
    ) -> S3Result<S3Response<GetObjectLegalHoldOutput>> {
        let i = &req.input;
        let (_, _, e) = self
            .lock_target(&req, &i.bucket, &i.key, i.version_id.as_deref())
            .await?;
        let on = e.attrs.legal_hold.ok_or_else(version_not_locked)?;
        Ok(S3Response::new(GetObjectLegalHoldOutput {
            legal_hold: Some(ObjectLockLegalHold {
                status: Some(hold_status(on)),
            }),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_configurations_parse_and_render_back() {
        let c = ObjectLockConfiguration {
            object_lock_enabled: Some(ObjectLockEnabled::from_static(ObjectLockEnabled::ENABLED)),
            rule: Some(ObjectLockRule {
                default_retention: Some(DefaultRetention {
                    mode: Some(ObjectLockRetentionMode::from_static(
                        ObjectLockRetentionMode::GOVERNANCE,
                    )),
                    days: None,
                    years: Some(2),
                }),
            }),
        };
        let cfg = config_of(&c).unwrap();
        assert_eq!(cfg.default_retention.unwrap().days, 730);
        assert_eq!(configuration_of(&cfg), c);
        let mut both = c.clone();
        both.rule
            .as_mut()
            .unwrap()
            .default_retention
            .as_mut()
            .unwrap()
            .days = Some(3);
        assert!(config_of(&both).is_err());
        let disabled = ObjectLockConfiguration {
            object_lock_enabled: None,
            rule: None,
        };
        assert!(config_of(&disabled).is_err());
    }
}
