//! Bucket operations.

use super::acl::grant_headers;
use super::{Caller, MeridianS3, OrS3, owner};
use crate::convert::{timestamp, validate_tags};
use meridian_zone::bucket::BucketChange;
use meridian_zone::{CannedAcl, CorsRule, Versioning};
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

fn tag_set(tags: &[(String, String)]) -> TagSet {
    tags.iter()
        .map(|(k, v)| Tag {
            key: Some(k.clone()),
            value: Some(v.clone()),
        })
        .collect()
}

/// A TagSet as pairs, validated.
pub(super) fn tags_of(t: &Tagging) -> S3Result<Vec<(String, String)>> {
    let tags: Vec<(String, String)> = t
        .tag_set
        .iter()
        .map(|t| {
            (
                t.key.clone().unwrap_or_default(),
                t.value.clone().unwrap_or_default(),
            )
        })
        .collect();
    validate_tags(&tags)?;
    Ok(tags)
}

pub(super) fn tag_set_of(tags: &[(String, String)]) -> TagSet {
    tag_set(tags)
}

impl MeridianS3 {
    pub(super) async fn do_create_bucket(
        &self,
        req: S3Request<CreateBucketInput>,
    ) -> S3Result<S3Response<CreateBucketOutput>> {
        let caller = self.caller(&req).await?;
        let user = caller.require()?;
        let input = &req.input;
        let zonegroup = &self.zone.params().zonegroup;
        if let Some(lc) = input
            .create_bucket_configuration
            .as_ref()
            .and_then(|c| c.location_constraint.as_ref())
            && !lc.as_str().is_empty()
            && lc.as_str() != zonegroup
        {
            return Err(s3_error!(
                InvalidLocationConstraint,
                "this zonegroup is {zonegroup:?}; the LocationConstraint {:?} names another",
                lc.as_str()
            ));
        }
        let requested = self
            .requested_acl(
                input.acl.as_ref().map(|a| a.as_str()),
                grant_headers!(input),
                None,
                &user.user_id,
            )
            .await?
            .unwrap_or_default();
        if input
            .object_ownership
            .as_ref()
            .is_some_and(|o| o.as_str() == ObjectOwnership::BUCKET_OWNER_ENFORCED)
            && requested != Default::default()
        {
            return Err(s3_error!(
                InvalidBucketAclWithObjectOwnership,
                "Bucket cannot have ACLs set with ObjectOwnership's BucketOwnerEnforced setting"
            ));
        }
        let acl = requested.acl;
        self.refuse_if_read_only()?;
        if self.site.role().is_master {
            self.zone
                .create_bucket(&input.bucket, &user.user_id, acl)
                .await
                .or_s3()?;
        } else {
            // Bucket names are global: the metadata master decides, and this
            // zone stores the same instance.
            meridian_zone::bucket::validate_bucket_name(&input.bucket).or_s3()?;
            let info = self
                .forward_bucket(
                    meridian_proto::multisite::forward_bucket_request::Op::Create,
                    &input.bucket,
                    &user.user_id,
                    acl,
                )
                .await
                .or_s3()?
                .ok_or_else(|| {
                    s3_error!(ServiceUnavailable, "the master zone sent no bucket record")
                })?;
            self.zone.adopt_bucket(&info).await.or_s3()?;
        }
        self.set_initial_ownership(
            &input.bucket,
            &user.user_id,
            input.object_ownership.as_ref().map(|o| o.as_str()),
        )
        .await?;
        if input.object_lock_enabled_for_bucket == Some(true) {
            self.enable_object_lock(&input.bucket, &user.user_id)
                .await?;
        }
        if !requested.grants.is_empty() {
            // Created private first: a crash in between leaves it closed, not open.
            let change = BucketChange::AclGrants {
                acl,
                grants: requested.grants,
            };
            self.change_bucket(&input.bucket, &user.user_id, change)
                .await
                .or_s3()?;
        }
        Ok(S3Response::new(CreateBucketOutput {
            location: Some(format!("/{}", input.bucket)),
        }))
    }

    pub(super) async fn do_head_bucket(
        &self,
        req: S3Request<HeadBucketInput>,
    ) -> S3Result<S3Response<HeadBucketOutput>> {
        let (_, b) = self.readable_bucket(&req, &req.input.bucket).await?;
        Ok(S3Response::new(HeadBucketOutput {
            bucket_region: Some(b.zonegroup.clone()),
            ..Default::default()
        }))
    }

    pub(super) async fn do_list_buckets(
        &self,
        req: S3Request<ListBucketsInput>,
    ) -> S3Result<S3Response<ListBucketsOutput>> {
        let caller = self.caller(&req).await?;
        let user = caller.require()?;
        let prefix = req.input.prefix.clone().unwrap_or_default();
        let buckets = self
            .zone
            .list_buckets(Some(&user.user_id))
            .await
            .or_s3()?
            .into_iter()
            .filter(|b| b.name.starts_with(&prefix))
            .map(|b| Bucket {
                name: Some(b.name),
                creation_date: Some(timestamp(b.created_ms * 1_000_000)),
                bucket_region: Some(self.zone.params().zonegroup.clone()),
            })
            .collect();
        Ok(S3Response::new(ListBucketsOutput {
            buckets: Some(buckets),
            owner: Some(owner(&user.user_id)),
            prefix: req.input.prefix.clone(),
            continuation_token: None,
        }))
    }

    pub(super) async fn do_delete_bucket(
        &self,
        req: S3Request<DeleteBucketInput>,
    ) -> S3Result<S3Response<DeleteBucketOutput>> {
        let (caller, b) = self.owned_writable_bucket(&req, &req.input.bucket).await?;
        if self.site.role().is_master {
            self.zone.delete_bucket(&req.input.bucket).await.or_s3()?;
        } else {
            let uid = caller.uid().unwrap_or(&b.owner).to_string();
            let name = req.input.bucket.clone();
            self.zone
                .delete_bucket_with(&name, || async {
                    self.forward_bucket(
                        meridian_proto::multisite::forward_bucket_request::Op::Delete,
                        &name,
                        &uid,
                        CannedAcl::Private,
                    )
                    .await
                    .map(|_| ())
                })
                .await
                .or_s3()?;
        }
        Ok(S3Response::new(DeleteBucketOutput {}))
    }

    pub(super) async fn do_get_bucket_location(
        &self,
        req: S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        let (_, b) = self.owned_bucket(&req, &req.input.bucket).await?;
        Ok(S3Response::new(GetBucketLocationOutput {
            location_constraint: Some(BucketLocationConstraint::from(b.zonegroup.clone())),
        }))
    }

    pub(super) async fn do_get_bucket_versioning(
        &self,
        req: S3Request<GetBucketVersioningInput>,
    ) -> S3Result<S3Response<GetBucketVersioningOutput>> {
        let _ = self.owned_bucket(&req, &req.input.bucket).await?;
        let (b, _) = self.zone.bucket_fresh(&req.input.bucket).await.or_s3()?;
        let status = match b.versioning {
            Versioning::Off => None,
            Versioning::Enabled => Some(BucketVersioningStatus::from_static(
                BucketVersioningStatus::ENABLED,
            )),
            Versioning::Suspended => Some(BucketVersioningStatus::from_static(
                BucketVersioningStatus::SUSPENDED,
            )),
        };
        Ok(S3Response::new(GetBucketVersioningOutput {
            status,
            mfa_delete: None,
        }))
    }

    pub(super) async fn do_put_bucket_versioning(
        &self,
        req: S3Request<PutBucketVersioningInput>,
    ) -> S3Result<S3Response<PutBucketVersioningOutput>> {
        let (_, owned) = self.owned_writable_bucket(&req, &req.input.bucket).await?;
        let owner_uid = owned.owner.clone();
        let cfg = &req.input.versioning_configuration;
        if cfg
            .mfa_delete
            .as_ref()
            .is_some_and(|m| m.as_str() == MFADelete::ENABLED)
        {
            return Err(s3_error!(NotImplemented, "MFA delete is not supported"));
        }
        let state = match cfg.status.as_ref().map(|s| s.as_str()) {
            Some(BucketVersioningStatus::ENABLED) => Versioning::Enabled,
            Some(BucketVersioningStatus::SUSPENDED) => Versioning::Suspended,
            _ => {
                return Err(s3_error!(
                    MalformedXML,
                    "versioning Status must be Enabled or Suspended"
                ));
            }
        };
        self.change_bucket(
            &req.input.bucket,
            &owner_uid,
            BucketChange::Versioning(state),
        )
        .await
        .or_s3()?;
        Ok(S3Response::new(PutBucketVersioningOutput {}))
    }

    pub(super) async fn do_get_bucket_acl(
        &self,
        req: S3Request<GetBucketAclInput>,
    ) -> S3Result<S3Response<GetBucketAclOutput>> {
        let (_, b) = self
            .checked_bucket(&req, &req.input.bucket, Caller::can_read_bucket_acl)
            .await?;
        Ok(S3Response::new(GetBucketAclOutput {
            grants: Some(super::acl::report(&b.owner, b.acl, &b.grants)),
            owner: Some(owner(&b.owner)),
        }))
    }

    pub(super) async fn do_put_bucket_acl(
        &self,
        req: S3Request<PutBucketAclInput>,
    ) -> S3Result<S3Response<PutBucketAclOutput>> {
        self.refuse_if_read_only()?;
        let i = &req.input;
        let (_, b) = self
            .checked_bucket(&req, &i.bucket, Caller::can_write_bucket_acl)
            .await?;
        let requested = self
            .replacement_acl(
                &b,
                i.acl.as_ref().map(|a| a.as_str()),
                grant_headers!(i),
                i.access_control_policy.as_ref(),
                &b.owner,
            )
            .await?;
        let change = if requested.grants.is_empty() {
            // The shape every release understands (rolling upgrades).
            BucketChange::Acl(requested.acl)
        } else {
            BucketChange::AclGrants {
                acl: requested.acl,
                grants: requested.grants,
            }
        };
        self.change_bucket(&i.bucket, &b.owner, change)
            .await
            .or_s3()?;
        Ok(S3Response::new(PutBucketAclOutput::default()))
    }

    pub(super) async fn do_put_bucket_cors(
        &self,
        req: S3Request<PutBucketCorsInput>,
    ) -> S3Result<S3Response<PutBucketCorsOutput>> {
        let (_, owned) = self.owned_writable_bucket(&req, &req.input.bucket).await?;
        let rules: Vec<CorsRule> = req
            .input
            .cors_configuration
            .cors_rules
            .iter()
            .map(|r| CorsRule {
                id: r.id.clone().unwrap_or_default(),
                allowed_origins: r.allowed_origins.clone(),
                allowed_methods: r.allowed_methods.clone(),
                allowed_headers: r.allowed_headers.clone().unwrap_or_default(),
                expose_headers: r.expose_headers.clone().unwrap_or_default(),
                max_age_seconds: r.max_age_seconds,
            })
            .collect();
        crate::cors::validate(&rules).map_err(|m| s3_error!(InvalidRequest, "{m}"))?;
        let owner_uid = owned.owner.clone();
        self.change_bucket(&req.input.bucket, &owner_uid, BucketChange::Cors(rules))
            .await
            .or_s3()?;
        Ok(S3Response::new(PutBucketCorsOutput {}))
    }

    pub(super) async fn do_get_bucket_cors(
        &self,
        req: S3Request<GetBucketCorsInput>,
    ) -> S3Result<S3Response<GetBucketCorsOutput>> {
        let _ = self.owned_bucket(&req, &req.input.bucket).await?;
        let (b, _) = self.zone.bucket_fresh(&req.input.bucket).await.or_s3()?;
        if b.cors.is_empty() {
            return Err(s3_error!(
                NoSuchCORSConfiguration,
                "The CORS configuration does not exist"
            ));
        }
        let rules = b
            .cors
            .into_iter()
            .map(|r| CORSRule {
                allowed_headers: (!r.allowed_headers.is_empty()).then_some(r.allowed_headers),
                allowed_methods: r.allowed_methods,
                allowed_origins: r.allowed_origins,
                expose_headers: (!r.expose_headers.is_empty()).then_some(r.expose_headers),
                id: (!r.id.is_empty()).then_some(r.id),
                max_age_seconds: r.max_age_seconds,
            })
            .collect();
        Ok(S3Response::new(GetBucketCorsOutput {
            cors_rules: Some(rules),
        }))
    }

    pub(super) async fn do_delete_bucket_cors(
        &self,
        req: S3Request<DeleteBucketCorsInput>,
    ) -> S3Result<S3Response<DeleteBucketCorsOutput>> {
        let (_, owned) = self.owned_writable_bucket(&req, &req.input.bucket).await?;
        let owner_uid = owned.owner.clone();
        self.change_bucket(
            &req.input.bucket,
            &owner_uid,
            BucketChange::Cors(Vec::new()),
        )
        .await
        .or_s3()?;
        Ok(S3Response::new(DeleteBucketCorsOutput {}))
    }

    pub(super) async fn do_get_bucket_policy(
        &self,
        req: S3Request<GetBucketPolicyInput>,
    ) -> S3Result<S3Response<GetBucketPolicyOutput>> {
        let _ = self.owned_bucket(&req, &req.input.bucket).await?;
        let (b, _) = self.zone.bucket_fresh(&req.input.bucket).await.or_s3()?;
        match b.policy {
            Some(policy) => Ok(S3Response::new(GetBucketPolicyOutput {
                policy: Some(policy),
            })),
            None => Err(s3_error!(
                NoSuchBucketPolicy,
                "The bucket policy does not exist"
            )),
        }
    }

    pub(super) async fn do_put_bucket_policy(
        &self,
        req: S3Request<PutBucketPolicyInput>,
    ) -> S3Result<S3Response<PutBucketPolicyOutput>> {
        let (_, owned) = self.owned_writable_bucket(&req, &req.input.bucket).await?;
        let policy = crate::policy::BucketPolicy::parse(&owned.name, &req.input.policy)
            .map_err(|e| s3_error!(MalformedPolicy, "{e}"))?;
        if owned
            .public_access_block
            .is_some_and(|p| p.block_public_policy)
            && policy.is_public()
        {
            return Err(s3_error!(
                AccessDenied,
                "Access Denied (the bucket's public access block refuses public policies)"
            ));
        }
        let owner_uid = owned.owner.clone();
        self.change_bucket(
            &req.input.bucket,
            &owner_uid,
            BucketChange::AccessPolicy(Some(req.input.policy.clone())),
        )
        .await
        .or_s3()?;
        Ok(S3Response::new(PutBucketPolicyOutput {}))
    }

    pub(super) async fn do_delete_bucket_policy(
        &self,
        req: S3Request<DeleteBucketPolicyInput>,
    ) -> S3Result<S3Response<DeleteBucketPolicyOutput>> {
        let (_, owned) = self.owned_writable_bucket(&req, &req.input.bucket).await?;
        let owner_uid = owned.owner.clone();
        self.change_bucket(
            &req.input.bucket,
            &owner_uid,
            BucketChange::AccessPolicy(None),
        )
        .await
        .or_s3()?;
        Ok(S3Response::new(DeleteBucketPolicyOutput {}))
    }

    pub(super) async fn do_get_bucket_policy_status(
        &self,
        req: S3Request<GetBucketPolicyStatusInput>,
    ) -> S3Result<S3Response<GetBucketPolicyStatusOutput>> {
        let _ = self.owned_bucket(&req, &req.input.bucket).await?;
        let (b, _) = self.zone.bucket_fresh(&req.input.bucket).await.or_s3()?;
        let Some(text) = b.policy else {
            return Err(s3_error!(
                NoSuchBucketPolicy,
                "The bucket policy does not exist"
            ));
        };
        let public = crate::policy::BucketPolicy::parse(&b.name, &text)
            .map(|p| p.is_public())
            .unwrap_or(false);
        Ok(S3Response::new(GetBucketPolicyStatusOutput {
            policy_status: Some(PolicyStatus {
                is_public: Some(public),
            }),
        }))
    }

    pub(super) async fn do_get_bucket_tagging(
        &self,
        req: S3Request<GetBucketTaggingInput>,
    ) -> S3Result<S3Response<GetBucketTaggingOutput>> {
        let _ = self.owned_bucket(&req, &req.input.bucket).await?;
        let (b, _) = self.zone.bucket_fresh(&req.input.bucket).await.or_s3()?;
        if b.tags.is_empty() {
            return Err(s3_error!(NoSuchTagSet, "The TagSet does not exist"));
        }
        Ok(S3Response::new(GetBucketTaggingOutput {
            tag_set: tag_set(&b.tags),
        }))
    }

    pub(super) async fn do_put_bucket_tagging(
        &self,
        req: S3Request<PutBucketTaggingInput>,
    ) -> S3Result<S3Response<PutBucketTaggingOutput>> {
        let (_, owned) = self.owned_writable_bucket(&req, &req.input.bucket).await?;
        let owner_uid = owned.owner.clone();
        let tags = tags_of(&req.input.tagging)?;
        self.change_bucket(&req.input.bucket, &owner_uid, BucketChange::Tags(tags))
            .await
            .or_s3()?;
        Ok(S3Response::new(PutBucketTaggingOutput {}))
    }

    pub(super) async fn do_delete_bucket_tagging(
        &self,
        req: S3Request<DeleteBucketTaggingInput>,
    ) -> S3Result<S3Response<DeleteBucketTaggingOutput>> {
        let (_, owned) = self.owned_writable_bucket(&req, &req.input.bucket).await?;
        let owner_uid = owned.owner.clone();
        self.change_bucket(
            &req.input.bucket,
            &owner_uid,
            BucketChange::Tags(Vec::new()),
        )
        .await
        .or_s3()?;
        Ok(S3Response::new(DeleteBucketTaggingOutput {}))
    }
}
