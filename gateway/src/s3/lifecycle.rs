//! PutBucketLifecycleConfiguration / GetBucketLifecycleConfiguration /
//! DeleteBucketLifecycle: S3's rule documents to and from the rules the
//! zone stores and runs (`meridian_zone::lifecycle`).

use super::{MeridianS3, OrS3};
use crate::convert::{timestamp, timestamp_ns};
use meridian_zone::bucket::BucketChange;
use meridian_zone::lifecycle::{LifecycleRule as Rule, validate_rules};
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

fn days(d: Option<i32>, what: &str) -> S3Result<Option<u32>> {
    d.map(|n| {
        u32::try_from(n)
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| s3_error!(InvalidArgument, "'{what}' must be a positive integer"))
    })
    .transpose()
}

fn size(n: Option<i64>) -> S3Result<Option<u64>> {
    n.map(|n| {
        u64::try_from(n).map_err(|_| s3_error!(InvalidArgument, "object sizes are not negative"))
    })
    .transpose()
}

fn tag_pairs(tags: &[Tag]) -> S3Result<Vec<(String, String)>> {
    tags.iter()
        .map(|t| match (&t.key, &t.value) {
            (Some(k), v) if !k.is_empty() => Ok((k.clone(), v.clone().unwrap_or_default())),
            _ => Err(s3_error!(MalformedXML, "a lifecycle Tag needs a Key")),
        })
        .collect()
}

/// One S3 rule as the zone stores it.
fn rule_of(r: &LifecycleRule) -> S3Result<Rule> {
    if r.transitions.as_ref().is_some_and(|t| !t.is_empty())
        || r.noncurrent_version_transitions
            .as_ref()
            .is_some_and(|t| !t.is_empty())
    {
        return Err(s3_error!(
            NotImplemented,
            "lifecycle transitions are not supported (one storage class)"
        ));
    }
    let enabled = match r.status.as_str() {
        ExpirationStatus::ENABLED => true,
        ExpirationStatus::DISABLED => false,
        other => {
            return Err(s3_error!(
                MalformedXML,
                "Status must be Enabled or Disabled, not {other:?}"
            ));
        }
    };
    let (prefix, tags, gt, lt) = match &r.filter {
        Some(LifecycleRuleFilter { and: Some(a), .. }) => (
            a.prefix.clone().unwrap_or_default(),
            tag_pairs(a.tags.as_deref().unwrap_or_default())?,
            a.object_size_greater_than,
            a.object_size_less_than,
        ),
        Some(f) => (
            f.prefix
                .clone()
                .or_else(|| r.prefix.clone())
                .unwrap_or_default(),
            tag_pairs(f.tag.as_slice())?,
            f.object_size_greater_than,
            f.object_size_less_than,
        ),
        None => (r.prefix.clone().unwrap_or_default(), Vec::new(), None, None),
    };
    let exp = r.expiration.clone().unwrap_or_default();
    let nc = r.noncurrent_version_expiration.clone().unwrap_or_default();
    let rule = Rule {
        id: r.id.clone().unwrap_or_default(),
        enabled,
        prefix,
        tags,
        size_greater_than: size(gt)?,
        size_less_than: size(lt)?,
        expiration_days: days(exp.days, "Days")?,
        expiration_date_ms: exp
            .date
            .as_ref()
            .map(|d| (timestamp_ns(d) / 1_000_000).max(0) as u64),
        expired_delete_marker: exp.expired_object_delete_marker.unwrap_or(false),
        noncurrent_days: days(nc.noncurrent_days, "NoncurrentDays")?,
        newer_noncurrent_versions: nc
            .newer_noncurrent_versions
            .map(|n| {
                u32::try_from(n).map_err(|_| {
                    s3_error!(InvalidArgument, "NewerNoncurrentVersions is not negative")
                })
            })
            .transpose()?,
        abort_upload_days: days(
            r.abort_incomplete_multipart_upload
                .as_ref()
                .and_then(|a| a.days_after_initiation),
            "DaysAfterInitiation",
        )?,
    };
    Ok(rule)
}

/// A stored rule as S3 shows it.
fn s3_rule(r: &Rule) -> LifecycleRule {
    let tags: Vec<Tag> = r
        .tags
        .iter()
        .map(|(k, v)| Tag {
            key: Some(k.clone()),
            value: Some(v.clone()),
        })
        .collect();
    let sizes = r.size_greater_than.is_some() || r.size_less_than.is_some();
    let filter = if tags.len() > 1
        || (!tags.is_empty() && !r.prefix.is_empty())
        || (sizes && (!tags.is_empty() || !r.prefix.is_empty()))
    {
        LifecycleRuleFilter {
            and: Some(LifecycleRuleAndOperator {
                prefix: Some(r.prefix.clone()),
                tags: Some(tags),
                object_size_greater_than: r.size_greater_than.map(|n| n as i64),
                object_size_less_than: r.size_less_than.map(|n| n as i64),
            }),
            ..Default::default()
        }
    } else {
        LifecycleRuleFilter {
            prefix: tags.is_empty().then(|| r.prefix.clone()),
            tag: tags.into_iter().next(),
            object_size_greater_than: r.size_greater_than.map(|n| n as i64),
            object_size_less_than: r.size_less_than.map(|n| n as i64),
            ..Default::default()
        }
    };
    let expiration =
        (r.expiration_days.is_some() || r.expiration_date_ms.is_some() || r.expired_delete_marker)
            .then(|| LifecycleExpiration {
                days: r.expiration_days.map(|d| d as i32),
                date: r
                    .expiration_date_ms
                    .map(|ms| timestamp(ms.saturating_mul(1_000_000))),
                expired_object_delete_marker: r.expired_delete_marker.then_some(true),
            });
    let noncurrent =
        (r.noncurrent_days.is_some() || r.newer_noncurrent_versions.is_some()).then(|| {
            NoncurrentVersionExpiration {
                noncurrent_days: r.noncurrent_days.map(|d| d as i32),
                newer_noncurrent_versions: r.newer_noncurrent_versions.map(|n| n as i32),
            }
        });
    LifecycleRule {
        abort_incomplete_multipart_upload: r.abort_upload_days.map(|d| {
            AbortIncompleteMultipartUpload {
                days_after_initiation: Some(d as i32),
            }
        }),
        expiration,
        filter: Some(filter),
        id: (!r.id.is_empty()).then(|| r.id.clone()),
        noncurrent_version_expiration: noncurrent,
        noncurrent_version_transitions: None,
        prefix: None,
        status: ExpirationStatus::from_static(if r.enabled {
            ExpirationStatus::ENABLED
        } else {
            ExpirationStatus::DISABLED
        }),
        transitions: None,
    }
}

impl MeridianS3 {
    pub(super) async fn do_put_bucket_lifecycle_configuration(
        &self,
        req: S3Request<PutBucketLifecycleConfigurationInput>,
    ) -> S3Result<S3Response<PutBucketLifecycleConfigurationOutput>> {
        let (_, owned) = self.owned_writable_bucket(&req, &req.input.bucket).await?;
        let Some(cfg) = &req.input.lifecycle_configuration else {
            return Err(s3_error!(
                MalformedXML,
                "a LifecycleConfiguration body is required"
            ));
        };
        let rules = cfg
            .rules
            .iter()
            .map(rule_of)
            .collect::<S3Result<Vec<Rule>>>()?;
        validate_rules(&rules).map_err(|m| s3_error!(InvalidArgument, "{m}"))?;
        let owner_uid = owned.owner.clone();
        self.change_bucket(
            &req.input.bucket,
            &owner_uid,
            BucketChange::Lifecycle(rules),
        )
        .await
        .or_s3()?;
        Ok(S3Response::new(
            PutBucketLifecycleConfigurationOutput::default(),
        ))
    }

    pub(super) async fn do_get_bucket_lifecycle_configuration(
        &self,
        req: S3Request<GetBucketLifecycleConfigurationInput>,
    ) -> S3Result<S3Response<GetBucketLifecycleConfigurationOutput>> {
        let _ = self.owned_bucket(&req, &req.input.bucket).await?;
        let (b, _) = self.zone.bucket_fresh(&req.input.bucket).await.or_s3()?;
        if b.lifecycle.is_empty() {
            return Err(s3_error!(
                NoSuchLifecycleConfiguration,
                "The lifecycle configuration does not exist"
            ));
        }
        Ok(S3Response::new(GetBucketLifecycleConfigurationOutput {
            rules: Some(b.lifecycle.iter().map(s3_rule).collect()),
            ..Default::default()
        }))
    }

    pub(super) async fn do_delete_bucket_lifecycle(
        &self,
        req: S3Request<DeleteBucketLifecycleInput>,
    ) -> S3Result<S3Response<DeleteBucketLifecycleOutput>> {
        let (_, owned) = self.owned_writable_bucket(&req, &req.input.bucket).await?;
        let owner_uid = owned.owner.clone();
        self.change_bucket(
            &req.input.bucket,
            &owner_uid,
            BucketChange::Lifecycle(Vec::new()),
        )
        .await
        .or_s3()?;
        Ok(S3Response::new(DeleteBucketLifecycleOutput {}))
    }
}
