//! A bucket's controls over ACLs and policies: the public access block
//! (refuse or ignore public ACLs, refuse or restrict public policies) and
//! object ownership (`BucketOwnerEnforced` turns ACLs off and makes the
//! bucket owner the owner of every object).

use super::acl::RequestedAcl;
use super::{Caller, MeridianS3, OrS3};
use meridian_zone::bucket::BucketChange;
use meridian_zone::{BucketInfo, CannedAcl, Grantee, ObjectOwnership, PublicAccessBlock};
use s3s::dto::*;
use s3s::{S3Error, S3ErrorCode, S3Request, S3Response, S3Result, s3_error};

/// The ACL grants anyone beyond named users.
fn is_public(r: &RequestedAcl) -> bool {
    r.acl != CannedAcl::Private
        || r.grants
            .iter()
            .any(|g| !matches!(g.grantee, Grantee::User(_)))
}

/// Refuses an ACL the bucket's controls do not allow to be set.
pub(super) fn check_acl(b: &BucketInfo, r: &RequestedAcl, canned: Option<&str>) -> S3Result<()> {
    let owner_full_control = canned == Some("bucket-owner-full-control");
    if b.ownership == Some(ObjectOwnership::BucketOwnerEnforced)
        && !owner_full_control
        && *r != RequestedAcl::default()
    {
        let mut e = S3Error::with_message(
            S3ErrorCode::AccessControlListNotSupported,
            "The bucket does not allow ACLs",
        );
        e.set_status_code(http::StatusCode::BAD_REQUEST);
        return Err(e);
    }
    if b.public_access_block.is_some_and(|p| p.block_public_acls) && is_public(r) {
        return Err(s3_error!(
            AccessDenied,
            "Access Denied (the bucket's public access block refuses public ACLs)"
        ));
    }
    Ok(())
}

/// Who owns an object `caller` writes into `b` with canned ACL `canned`.
pub(super) fn object_owner(caller: &Caller, b: &BucketInfo, canned: Option<&str>) -> String {
    let to_bucket_owner = match b.ownership {
        Some(ObjectOwnership::BucketOwnerEnforced) => true,
        Some(ObjectOwnership::BucketOwnerPreferred) => canned == Some("bucket-owner-full-control"),
        _ => false,
    };
    match caller.uid() {
        Some(u) if !to_bucket_owner => u.to_string(),
        _ => b.owner.clone(),
    }
}

fn not_found(code: &'static str, message: &'static str) -> S3Error {
    let mut e = S3Error::with_message(S3ErrorCode::Custom(code.into()), message);
    e.set_status_code(http::StatusCode::NOT_FOUND);
    e
}

type S3Ownership = s3s::dto::ObjectOwnership;

fn ownership_of(s: &str) -> S3Result<ObjectOwnership> {
    match s {
        S3Ownership::BUCKET_OWNER_ENFORCED => Ok(ObjectOwnership::BucketOwnerEnforced),
        S3Ownership::BUCKET_OWNER_PREFERRED => Ok(ObjectOwnership::BucketOwnerPreferred),
        S3Ownership::OBJECT_WRITER => Ok(ObjectOwnership::ObjectWriter),
        other => Err(s3_error!(
            MalformedXML,
            "ObjectOwnership {other:?}: BucketOwnerEnforced, BucketOwnerPreferred or ObjectWriter"
        )),
    }
}

fn ownership_name(o: ObjectOwnership) -> &'static str {
    match o {
        ObjectOwnership::BucketOwnerEnforced => S3Ownership::BUCKET_OWNER_ENFORCED,
        ObjectOwnership::BucketOwnerPreferred => S3Ownership::BUCKET_OWNER_PREFERRED,
        ObjectOwnership::ObjectWriter => S3Ownership::OBJECT_WRITER,
    }
}

impl MeridianS3 {
    /// Sets the ownership a CreateBucket's `x-amz-object-ownership` names.
    pub(super) async fn set_initial_ownership(
        &self,
        bucket: &str,
        uid: &str,
        requested: Option<&str>,
    ) -> S3Result<()> {
        if let Some(o) = requested {
            let o = ownership_of(o)?;
            self.change_bucket(bucket, uid, BucketChange::Ownership(Some(o)))
                .await
                .or_s3()?;
        }
        Ok(())
    }

    pub(super) async fn do_put_public_access_block(
        &self,
        req: S3Request<PutPublicAccessBlockInput>,
    ) -> S3Result<S3Response<PutPublicAccessBlockOutput>> {
        let (_, b) = self.owned_writable_bucket(&req, &req.input.bucket).await?;
        let c = &req.input.public_access_block_configuration;
        let block = PublicAccessBlock {
            block_public_acls: c.block_public_acls.unwrap_or(false),
            ignore_public_acls: c.ignore_public_acls.unwrap_or(false),
            block_public_policy: c.block_public_policy.unwrap_or(false),
            restrict_public_buckets: c.restrict_public_buckets.unwrap_or(false),
        };
        self.change_bucket(
            &b.name,
            &b.owner,
            BucketChange::PublicAccessBlock(Some(block)),
        )
        .await
        .or_s3()?;
        Ok(S3Response::new(PutPublicAccessBlockOutput::default()))
    }

    pub(super) async fn do_get_public_access_block(
        &self,
        req: S3Request<GetPublicAccessBlockInput>,
    ) -> S3Result<S3Response<GetPublicAccessBlockOutput>> {
        let (_, b) = self.owned_bucket(&req, &req.input.bucket).await?;
        let p = b.public_access_block.ok_or_else(|| {
            not_found(
                "NoSuchPublicAccessBlockConfiguration",
                "The public access block configuration was not found",
            )
        })?;
        Ok(S3Response::new(GetPublicAccessBlockOutput {
            public_access_block_configuration: Some(PublicAccessBlockConfiguration {
                block_public_acls: Some(p.block_public_acls),
                block_public_policy: Some(p.block_public_policy),
                ignore_public_acls: Some(p.ignore_public_acls),
                restrict_public_buckets: Some(p.restrict_public_buckets),
            }),
        }))
    }

    pub(super) async fn do_delete_public_access_block(
        &self,
        req: S3Request<DeletePublicAccessBlockInput>,
    ) -> S3Result<S3Response<DeletePublicAccessBlockOutput>> {
        let (_, b) = self.owned_writable_bucket(&req, &req.input.bucket).await?;
        self.change_bucket(&b.name, &b.owner, BucketChange::PublicAccessBlock(None))
            .await
            .or_s3()?;
        Ok(S3Response::new(DeletePublicAccessBlockOutput::default()))
    }

    pub(super) async fn do_put_bucket_ownership_controls(
        &self,
        req: S3Request<PutBucketOwnershipControlsInput>,
    ) -> S3Result<S3Response<PutBucketOwnershipControlsOutput>> {
        let (_, b) = self.owned_writable_bucket(&req, &req.input.bucket).await?;
        let [rule] = req.input.ownership_controls.rules.as_slice() else {
            return Err(s3_error!(
                MalformedXML,
                "OwnershipControls has exactly one Rule"
            ));
        };
        let o = ownership_of(rule.object_ownership.as_str())?;
        self.change_bucket(&b.name, &b.owner, BucketChange::Ownership(Some(o)))
            .await
            .or_s3()?;
        Ok(S3Response::new(PutBucketOwnershipControlsOutput::default()))
    }

    pub(super) async fn do_get_bucket_ownership_controls(
        &self,
        req: S3Request<GetBucketOwnershipControlsInput>,
    ) -> S3Result<S3Response<GetBucketOwnershipControlsOutput>> {
        let (_, b) = self.owned_bucket(&req, &req.input.bucket).await?;
        let o = b.ownership.ok_or_else(|| {
            let mut e = s3_error!(
                OwnershipControlsNotFoundError,
                "The bucket ownership controls were not found"
            );
            e.set_status_code(http::StatusCode::NOT_FOUND);
            e
        })?;
        Ok(S3Response::new(GetBucketOwnershipControlsOutput {
            ownership_controls: Some(OwnershipControls {
                rules: vec![OwnershipControlsRule {
                    object_ownership: S3Ownership::from_static(ownership_name(o)),
                }],
            }),
        }))
    }

    pub(super) async fn do_delete_bucket_ownership_controls(
        &self,
        req: S3Request<DeleteBucketOwnershipControlsInput>,
    ) -> S3Result<S3Response<DeleteBucketOwnershipControlsOutput>> {
        let (_, b) = self.owned_writable_bucket(&req, &req.input.bucket).await?;
        self.change_bucket(&b.name, &b.owner, BucketChange::Ownership(None))
            .await
            .or_s3()?;
        Ok(S3Response::new(
            DeleteBucketOwnershipControlsOutput::default(),
        ))
    }
}
