//! The S3 operations, one module per family. Every handler resolves the
//! caller (anonymous or a zone user), checks ownership / ACLs, then calls the
//! zone layer and maps its errors to S3's.

pub(crate) mod access;
mod acl;
mod bucket;
mod bucket_controls;
mod lifecycle;
mod multipart;
mod object;
mod object_lock;
mod sse;

use crate::convert::s3_error;
use crate::site::Site;
use meridian_zone::{
    AclGrant, AclPermission, BucketInfo, CannedAcl, IndexEntry, ObjectOwnership, User, Zone,
    ZoneError,
};
use s3s::dto::*;
use s3s::{S3, S3Error, S3ErrorCode, S3Request, S3Response, S3Result, s3_error};
use std::sync::Arc;

/// The S3 service of one zone.
pub struct MeridianS3 {
    zone: Zone,
    site: Site,
    limits: std::sync::Arc<crate::ratelimit::RateLimiter>,
}

impl MeridianS3 {
    /// Serves `zone`, in the role `site` says it has, charging bytes sent
    /// to the rate limits in `limits`.
    pub fn new(
        zone: Zone,
        site: Site,
        limits: std::sync::Arc<crate::ratelimit::RateLimiter>,
    ) -> Self {
        Self { zone, site, limits }
    }

    /// Charges the bytes of a GET to its caller's and its bucket's limits.
    async fn charge_read(&self, access_key: Option<&str>, bucket: &str, bytes: u64) {
        if let Some(ak) = access_key
            && let Ok(u) = self.zone.user_by_key(ak).await
        {
            self.limits
                .charge_read(&format!("user:{}", u.user_id), &u.ratelimit, bytes);
        }
        if let Ok(b) = self.zone.bucket(bucket).await {
            self.limits
                .charge_read(&format!("bucket:{bucket}"), &b.ratelimit, bytes);
        }
    }

    /// AccessDenied while the zone is read-only (`zone modify --read-only`).
    fn refuse_if_read_only(&self) -> S3Result<()> {
        let role = self.site.role();
        if role.read_only {
            return Err(s3_error(ZoneError::ReadOnly(role.zone.clone())));
        }
        Ok(())
    }

    /// A bucket metadata write: made here on the metadata master; on a
    /// secondary, made on the master first and the master's record stored
    /// here (as RGW forwards them), so metadata sync never undoes it.
    pub(crate) async fn change_bucket(
        &self,
        bucket: &str,
        uid: &str,
        change: meridian_zone::bucket::BucketChange,
    ) -> Result<BucketInfo, ZoneError> {
        if self.site.role().is_master {
            return self.zone.change_bucket(bucket, &change).await;
        }
        let info = self
            .forward_bucket_with(
                meridian_proto::multisite::forward_bucket_request::Op::Update,
                bucket,
                uid,
                CannedAcl::Private,
                serde_json::to_vec(&change).unwrap_or_default(),
            )
            .await?
            .ok_or_else(|| ZoneError::Corrupt {
                what: "bucket record from the master zone".into(),
                reason: "missing".into(),
            })?;
        self.zone.apply_bucket(&info).await?;
        Ok(info)
    }

    /// Sends a bucket metadata write to the metadata master zone (this zone is a secondary).
    async fn forward_bucket(
        &self,
        op: meridian_proto::multisite::forward_bucket_request::Op,
        bucket: &str,
        uid: &str,
        acl: CannedAcl,
    ) -> Result<Option<BucketInfo>, ZoneError> {
        self.forward_bucket_with(op, bucket, uid, acl, Vec::new())
            .await
    }

    async fn forward_bucket_with(
        &self,
        op: meridian_proto::multisite::forward_bucket_request::Op,
        bucket: &str,
        uid: &str,
        acl: CannedAcl,
        change: Vec<u8>,
    ) -> Result<Option<BucketInfo>, ZoneError> {
        use meridian_proto::multisite::ForwardBucketRequest;
        let role = self.site.role();
        let key = role.system_key.clone().ok_or_else(|| {
            ZoneError::MasterUnreachable(format!(
                "zone {} has no system key to sign with (zone modify --access-key=.. --secret=..)",
                role.zone
            ))
        })?;
        let req = ForwardBucketRequest {
            auth: None,
            op: op as i32,
            bucket: bucket.into(),
            uid: uid.into(),
            acl: acl.as_str().into(),
            change: change.into(),
            zonegroup: role.zonegroup.clone(),
        };
        let reply = crate::peer::on_any(&role.master_endpoints, |mut c| {
            let req = crate::peer::sign(req.clone(), &key);
            async move { c.forward_bucket(req).await }
        })
        .await
        .map_err(|s| match s.code() {
            tonic::Code::Unavailable if !s.message().starts_with("ServiceUnavailable:") => {
                ZoneError::MasterUnreachable(format!(
                    "{} at {}: {}",
                    role.master_zone,
                    role.master_endpoints.join(", "),
                    s.message()
                ))
            }
            _ => {
                let (code, message) = s
                    .message()
                    .split_once(": ")
                    .map(|(c, m)| (c.to_string(), m.to_string()))
                    .unwrap_or_else(|| ("AccessDenied".into(), s.message().to_string()));
                ZoneError::Refused { code, message }
            }
        })?;
        if reply.bucket_info.is_empty() {
            return Ok(None);
        }
        serde_json::from_slice(&reply.bucket_info)
            .map(Some)
            .map_err(|e| ZoneError::Corrupt {
                what: "bucket record from the master zone".into(),
                reason: e.to_string(),
            })
    }
}

/// Who is asking.
pub(crate) struct Caller {
    user: Option<Arc<User>>,
}

impl Caller {
    /// What a bucket policy can test about `req` made by this caller.
    fn facts<T>(&self, req: &S3Request<T>) -> access::RequestFacts {
        access::RequestFacts::of(
            self.user.as_ref().map(|u| (u.user_id.as_str(), u.system)),
            &req.uri,
            &req.headers,
            req.extensions.get::<crate::http::ClientConn>().copied(),
        )
    }

    fn uid(&self) -> Option<&str> {
        self.user.as_ref().map(|u| u.user_id.as_str())
    }

    fn is(&self, uid: &str) -> bool {
        self.user
            .as_ref()
            .is_some_and(|u| u.user_id == uid || u.system)
    }

    /// The authenticated user, or AccessDenied for anonymous requests.
    fn require(&self) -> S3Result<&User> {
        self.user
            .as_deref()
            .ok_or_else(|| s3_error!(AccessDenied, "anonymous requests may not do this"))
    }

    /// The caller holds `want` through this ACL of bucket `b` or one of its
    /// objects (the owner's implied control aside), as the bucket's
    /// ownership controls and public access block let ACLs count.
    fn granted(
        &self,
        b: &BucketInfo,
        (acl, grants): (CannedAcl, &[AclGrant]),
        want: AclPermission,
    ) -> bool {
        if self.user.as_ref().is_some_and(|u| u.system) {
            return true;
        }
        if b.ownership == Some(ObjectOwnership::BucketOwnerEnforced) {
            return false;
        }
        if b.public_access_block.is_some_and(|p| p.ignore_public_acls) {
            let own: Vec<AclGrant> = grants
                .iter()
                .filter(|g| matches!(g.grantee, meridian_zone::Grantee::User(_)))
                .cloned()
                .collect();
            return meridian_zone::acl_permits(CannedAcl::Private, &own, self.uid(), want);
        }
        meridian_zone::acl_permits(acl, grants, self.uid(), want)
    }

    /// The caller owns object version `e` of bucket `b` (with the bucket
    /// owner enforced as every object's owner, only the bucket owner does).
    fn owns_object(&self, b: &BucketInfo, e: &IndexEntry) -> bool {
        self.is(&b.owner)
            || (b.ownership != Some(ObjectOwnership::BucketOwnerEnforced) && self.is(&e.owner))
    }

    /// List / head the bucket.
    fn can_read_bucket(&self, b: &BucketInfo) -> bool {
        self.is(&b.owner) || self.granted(b, (b.acl, &b.grants), AclPermission::Read)
    }

    /// Create / delete objects in the bucket.
    fn can_write_bucket(&self, b: &BucketInfo) -> bool {
        self.is(&b.owner) || self.granted(b, (b.acl, &b.grants), AclPermission::Write)
    }

    /// Read the bucket's ACL.
    fn can_read_bucket_acl(&self, b: &BucketInfo) -> bool {
        self.is(&b.owner) || self.granted(b, (b.acl, &b.grants), AclPermission::ReadAcp)
    }

    /// Replace the bucket's ACL.
    fn can_write_bucket_acl(&self, b: &BucketInfo) -> bool {
        self.is(&b.owner) || self.granted(b, (b.acl, &b.grants), AclPermission::WriteAcp)
    }

    /// Read an object version.
    fn can_read_object(&self, b: &BucketInfo, e: &IndexEntry) -> bool {
        self.owns_object(b, e)
            || self.granted(b, (e.attrs.acl, &e.attrs.grants), AclPermission::Read)
    }

    /// Read (`write` false) or replace an object version's ACL.
    fn can_object_acl(&self, b: &BucketInfo, e: &IndexEntry, write: bool) -> bool {
        let want = if write {
            AclPermission::WriteAcp
        } else {
            AclPermission::ReadAcp
        };
        self.owns_object(b, e) || self.granted(b, (e.attrs.acl, &e.attrs.grants), want)
    }
}

fn denied() -> S3Error {
    s3_error!(AccessDenied, "Access Denied")
}

/// Maps zone errors inside handlers.
trait OrS3<T> {
    fn or_s3(self) -> S3Result<T>;
}

impl<T> OrS3<T> for Result<T, ZoneError> {
    fn or_s3(self) -> S3Result<T> {
        self.map_err(s3_error)
    }
}

impl MeridianS3 {
    async fn caller<T>(&self, req: &S3Request<T>) -> S3Result<Caller> {
        let Some(c) = &req.credentials else {
            return Ok(Caller { user: None });
        };
        let user = self.zone.user_by_key(&c.access_key).await.or_s3()?;
        if user.suspended {
            let mut e = S3Error::with_message(
                S3ErrorCode::Custom("UserSuspended".into()),
                "the user is suspended",
            );
            e.set_status_code(http::StatusCode::FORBIDDEN);
            return Err(e);
        }
        Ok(Caller { user: Some(user) })
    }

    async fn bucket(&self, name: &str) -> S3Result<Arc<BucketInfo>> {
        self.zone.bucket(name).await.or_s3()
    }

    /// The bucket, if `allow` lets the caller at it.
    async fn checked_bucket<T>(
        &self,
        req: &S3Request<T>,
        name: &str,
        allow: fn(&Caller, &BucketInfo) -> bool,
    ) -> S3Result<(Caller, Arc<BucketInfo>)> {
        let caller = self.caller(req).await?;
        let b = self.bucket(name).await?;
        // The gate found the bucket policy allows this request.
        let granted = req.extensions.get::<access::PolicyGrant>().is_some();
        if !granted && !allow(&caller, &b) {
            return Err(denied());
        }
        Ok((caller, b))
    }

    /// The bucket, if the caller may read it.
    async fn readable_bucket<T>(
        &self,
        req: &S3Request<T>,
        name: &str,
    ) -> S3Result<(Caller, Arc<BucketInfo>)> {
        self.checked_bucket(req, name, Caller::can_read_bucket)
            .await
    }

    /// The bucket, if the caller owns it and the zone takes writes (bucket configuration changes).
    async fn owned_writable_bucket<T>(
        &self,
        req: &S3Request<T>,
        name: &str,
    ) -> S3Result<(Caller, Arc<BucketInfo>)> {
        self.refuse_if_read_only()?;
        self.owned_bucket(req, name).await
    }

    /// The bucket, if the caller may write objects into it (and the zone takes writes).
    async fn writable_bucket<T>(
        &self,
        req: &S3Request<T>,
        name: &str,
    ) -> S3Result<(Caller, Arc<BucketInfo>)> {
        self.refuse_if_read_only()?;
        self.checked_bucket(req, name, Caller::can_write_bucket)
            .await
    }

    /// The bucket, if the caller owns it (bucket configuration).
    async fn owned_bucket<T>(
        &self,
        req: &S3Request<T>,
        name: &str,
    ) -> S3Result<(Caller, Arc<BucketInfo>)> {
        self.checked_bucket(req, name, |c, b| c.is(&b.owner)).await
    }
}

fn owner(uid: &str) -> Owner {
    Owner {
        display_name: Some(uid.to_string()),
        id: Some(uid.to_string()),
    }
}

/// Percent-encodes for `encoding-type=url` (all but unreserved characters and '/').
fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn encoder(t: &Option<EncodingType>) -> S3Result<fn(&str) -> String> {
    match t.as_ref().map(|e| e.as_str()) {
        None => Ok(str::to_string),
        Some("url") => Ok(url_encode),
        Some(o) => Err(s3_error!(
            InvalidArgument,
            "Invalid Encoding Method specified: {o}"
        )),
    }
}

fn max_keys(m: Option<i32>) -> S3Result<usize> {
    match m {
        None => Ok(1000),
        Some(n) if n < 0 => Err(s3_error!(InvalidArgument, "max-keys must not be negative")),
        Some(n) => Ok((n as usize).min(1000)),
    }
}

#[async_trait::async_trait]
impl S3 for MeridianS3 {
    async fn create_bucket(
        &self,
        req: S3Request<CreateBucketInput>,
    ) -> S3Result<S3Response<CreateBucketOutput>> {
        self.do_create_bucket(req).await
    }
    async fn head_bucket(
        &self,
        req: S3Request<HeadBucketInput>,
    ) -> S3Result<S3Response<HeadBucketOutput>> {
        self.do_head_bucket(req).await
    }
    async fn list_buckets(
        &self,
        req: S3Request<ListBucketsInput>,
    ) -> S3Result<S3Response<ListBucketsOutput>> {
        self.do_list_buckets(req).await
    }
    async fn delete_bucket(
        &self,
        req: S3Request<DeleteBucketInput>,
    ) -> S3Result<S3Response<DeleteBucketOutput>> {
        self.do_delete_bucket(req).await
    }
    async fn get_bucket_location(
        &self,
        req: S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        self.do_get_bucket_location(req).await
    }
    async fn get_bucket_versioning(
        &self,
        req: S3Request<GetBucketVersioningInput>,
    ) -> S3Result<S3Response<GetBucketVersioningOutput>> {
        self.do_get_bucket_versioning(req).await
    }
    async fn put_bucket_versioning(
        &self,
        req: S3Request<PutBucketVersioningInput>,
    ) -> S3Result<S3Response<PutBucketVersioningOutput>> {
        self.do_put_bucket_versioning(req).await
    }
    async fn get_bucket_acl(
        &self,
        req: S3Request<GetBucketAclInput>,
    ) -> S3Result<S3Response<GetBucketAclOutput>> {
        self.do_get_bucket_acl(req).await
    }
    async fn put_public_access_block(
        &self,
        req: S3Request<PutPublicAccessBlockInput>,
    ) -> S3Result<S3Response<PutPublicAccessBlockOutput>> {
        self.do_put_public_access_block(req).await
    }
    async fn get_public_access_block(
        &self,
        req: S3Request<GetPublicAccessBlockInput>,
    ) -> S3Result<S3Response<GetPublicAccessBlockOutput>> {
        self.do_get_public_access_block(req).await
    }
    async fn delete_public_access_block(
        &self,
        req: S3Request<DeletePublicAccessBlockInput>,
    ) -> S3Result<S3Response<DeletePublicAccessBlockOutput>> {
        self.do_delete_public_access_block(req).await
    }
    async fn put_bucket_ownership_controls(
        &self,
        req: S3Request<PutBucketOwnershipControlsInput>,
    ) -> S3Result<S3Response<PutBucketOwnershipControlsOutput>> {
        self.do_put_bucket_ownership_controls(req).await
    }
    async fn get_bucket_ownership_controls(
        &self,
        req: S3Request<GetBucketOwnershipControlsInput>,
    ) -> S3Result<S3Response<GetBucketOwnershipControlsOutput>> {
        self.do_get_bucket_ownership_controls(req).await
    }
    async fn delete_bucket_ownership_controls(
        &self,
        req: S3Request<DeleteBucketOwnershipControlsInput>,
    ) -> S3Result<S3Response<DeleteBucketOwnershipControlsOutput>> {
        self.do_delete_bucket_ownership_controls(req).await
    }
    async fn put_bucket_encryption(
        &self,
        req: S3Request<PutBucketEncryptionInput>,
    ) -> S3Result<S3Response<PutBucketEncryptionOutput>> {
        self.do_put_bucket_encryption(req).await
    }
    async fn get_bucket_encryption(
        &self,
        req: S3Request<GetBucketEncryptionInput>,
    ) -> S3Result<S3Response<GetBucketEncryptionOutput>> {
        self.do_get_bucket_encryption(req).await
    }
    async fn delete_bucket_encryption(
        &self,
        req: S3Request<DeleteBucketEncryptionInput>,
    ) -> S3Result<S3Response<DeleteBucketEncryptionOutput>> {
        self.do_delete_bucket_encryption(req).await
    }
    async fn put_object_lock_configuration(
        &self,
        req: S3Request<PutObjectLockConfigurationInput>,
    ) -> S3Result<S3Response<PutObjectLockConfigurationOutput>> {
        self.do_put_object_lock_configuration(req).await
    }
    async fn get_object_lock_configuration(
        &self,
        req: S3Request<GetObjectLockConfigurationInput>,
    ) -> S3Result<S3Response<GetObjectLockConfigurationOutput>> {
        self.do_get_object_lock_configuration(req).await
    }
    async fn put_object_retention(
        &self,
        req: S3Request<PutObjectRetentionInput>,
    ) -> S3Result<S3Response<PutObjectRetentionOutput>> {
        self.do_put_object_retention(req).await
    }
    async fn get_object_retention(
        &self,
        req: S3Request<GetObjectRetentionInput>,
    ) -> S3Result<S3Response<GetObjectRetentionOutput>> {
        self.do_get_object_retention(req).await
    }
    async fn put_object_legal_hold(
        &self,
        req: S3Request<PutObjectLegalHoldInput>,
    ) -> S3Result<S3Response<PutObjectLegalHoldOutput>> {
        self.do_put_object_legal_hold(req).await
    }
    async fn get_object_legal_hold(
        &self,
        req: S3Request<GetObjectLegalHoldInput>,
    ) -> S3Result<S3Response<GetObjectLegalHoldOutput>> {
        self.do_get_object_legal_hold(req).await
    }
    async fn put_bucket_acl(
        &self,
        req: S3Request<PutBucketAclInput>,
    ) -> S3Result<S3Response<PutBucketAclOutput>> {
        self.do_put_bucket_acl(req).await
    }
    async fn get_bucket_tagging(
        &self,
        req: S3Request<GetBucketTaggingInput>,
    ) -> S3Result<S3Response<GetBucketTaggingOutput>> {
        self.do_get_bucket_tagging(req).await
    }
    async fn put_bucket_tagging(
        &self,
        req: S3Request<PutBucketTaggingInput>,
    ) -> S3Result<S3Response<PutBucketTaggingOutput>> {
        self.do_put_bucket_tagging(req).await
    }
    async fn delete_bucket_tagging(
        &self,
        req: S3Request<DeleteBucketTaggingInput>,
    ) -> S3Result<S3Response<DeleteBucketTaggingOutput>> {
        self.do_delete_bucket_tagging(req).await
    }
    async fn put_bucket_lifecycle_configuration(
        &self,
        req: S3Request<PutBucketLifecycleConfigurationInput>,
    ) -> S3Result<S3Response<PutBucketLifecycleConfigurationOutput>> {
        self.do_put_bucket_lifecycle_configuration(req).await
    }
    async fn get_bucket_lifecycle_configuration(
        &self,
        req: S3Request<GetBucketLifecycleConfigurationInput>,
    ) -> S3Result<S3Response<GetBucketLifecycleConfigurationOutput>> {
        self.do_get_bucket_lifecycle_configuration(req).await
    }
    async fn delete_bucket_lifecycle(
        &self,
        req: S3Request<DeleteBucketLifecycleInput>,
    ) -> S3Result<S3Response<DeleteBucketLifecycleOutput>> {
        self.do_delete_bucket_lifecycle(req).await
    }
    async fn put_bucket_cors(
        &self,
        req: S3Request<PutBucketCorsInput>,
    ) -> S3Result<S3Response<PutBucketCorsOutput>> {
        self.do_put_bucket_cors(req).await
    }
    async fn get_bucket_cors(
        &self,
        req: S3Request<GetBucketCorsInput>,
    ) -> S3Result<S3Response<GetBucketCorsOutput>> {
        self.do_get_bucket_cors(req).await
    }
    async fn delete_bucket_cors(
        &self,
        req: S3Request<DeleteBucketCorsInput>,
    ) -> S3Result<S3Response<DeleteBucketCorsOutput>> {
        self.do_delete_bucket_cors(req).await
    }
    async fn get_bucket_policy(
        &self,
        req: S3Request<GetBucketPolicyInput>,
    ) -> S3Result<S3Response<GetBucketPolicyOutput>> {
        self.do_get_bucket_policy(req).await
    }
    async fn put_bucket_policy(
        &self,
        req: S3Request<PutBucketPolicyInput>,
    ) -> S3Result<S3Response<PutBucketPolicyOutput>> {
        self.do_put_bucket_policy(req).await
    }
    async fn delete_bucket_policy(
        &self,
        req: S3Request<DeleteBucketPolicyInput>,
    ) -> S3Result<S3Response<DeleteBucketPolicyOutput>> {
        self.do_delete_bucket_policy(req).await
    }
    async fn get_bucket_policy_status(
        &self,
        req: S3Request<GetBucketPolicyStatusInput>,
    ) -> S3Result<S3Response<GetBucketPolicyStatusOutput>> {
        self.do_get_bucket_policy_status(req).await
    }
    async fn list_objects(
        &self,
        req: S3Request<ListObjectsInput>,
    ) -> S3Result<S3Response<ListObjectsOutput>> {
        self.do_list_objects(req).await
    }
    async fn list_objects_v2(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        self.do_list_objects_v2(req).await
    }
    async fn list_object_versions(
        &self,
        req: S3Request<ListObjectVersionsInput>,
    ) -> S3Result<S3Response<ListObjectVersionsOutput>> {
        self.do_list_object_versions(req).await
    }
    async fn put_object(
        &self,
        req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        self.do_put_object(req).await
    }
    async fn get_object(
        &self,
        req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        let ak = req.credentials.as_ref().map(|c| c.access_key.clone());
        let bucket = req.input.bucket.clone();
        let r = self.do_get_object(req).await?;
        if let Some(n) = r.output.content_length {
            self.charge_read(ak.as_deref(), &bucket, n.max(0) as u64)
                .await;
        }
        Ok(r)
    }
    async fn head_object(
        &self,
        req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        self.do_head_object(req).await
    }
    async fn delete_object(
        &self,
        req: S3Request<DeleteObjectInput>,
    ) -> S3Result<S3Response<DeleteObjectOutput>> {
        self.do_delete_object(req).await
    }
    async fn delete_objects(
        &self,
        req: S3Request<DeleteObjectsInput>,
    ) -> S3Result<S3Response<DeleteObjectsOutput>> {
        self.do_delete_objects(req).await
    }
    async fn copy_object(
        &self,
        req: S3Request<CopyObjectInput>,
    ) -> S3Result<S3Response<CopyObjectOutput>> {
        self.do_copy_object(req).await
    }
    async fn get_object_tagging(
        &self,
        req: S3Request<GetObjectTaggingInput>,
    ) -> S3Result<S3Response<GetObjectTaggingOutput>> {
        self.do_get_object_tagging(req).await
    }
    async fn put_object_tagging(
        &self,
        req: S3Request<PutObjectTaggingInput>,
    ) -> S3Result<S3Response<PutObjectTaggingOutput>> {
        self.do_put_object_tagging(req).await
    }
    async fn delete_object_tagging(
        &self,
        req: S3Request<DeleteObjectTaggingInput>,
    ) -> S3Result<S3Response<DeleteObjectTaggingOutput>> {
        self.do_delete_object_tagging(req).await
    }
    async fn get_object_attributes(
        &self,
        req: S3Request<GetObjectAttributesInput>,
    ) -> S3Result<S3Response<GetObjectAttributesOutput>> {
        self.do_get_object_attributes(req).await
    }
    async fn get_object_acl(
        &self,
        req: S3Request<GetObjectAclInput>,
    ) -> S3Result<S3Response<GetObjectAclOutput>> {
        self.do_get_object_acl(req).await
    }
    async fn put_object_acl(
        &self,
        req: S3Request<PutObjectAclInput>,
    ) -> S3Result<S3Response<PutObjectAclOutput>> {
        self.do_put_object_acl(req).await
    }
    async fn create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        self.do_create_multipart_upload(req).await
    }
    async fn upload_part(
        &self,
        req: S3Request<UploadPartInput>,
    ) -> S3Result<S3Response<UploadPartOutput>> {
        self.do_upload_part(req).await
    }
    async fn upload_part_copy(
        &self,
        req: S3Request<UploadPartCopyInput>,
    ) -> S3Result<S3Response<UploadPartCopyOutput>> {
        self.do_upload_part_copy(req).await
    }
    async fn complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        self.do_complete_multipart_upload(req).await
    }
    async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        self.do_abort_multipart_upload(req).await
    }
    async fn list_parts(
        &self,
        req: S3Request<ListPartsInput>,
    ) -> S3Result<S3Response<ListPartsOutput>> {
        self.do_list_parts(req).await
    }
    async fn list_multipart_uploads(
        &self,
        req: S3Request<ListMultipartUploadsInput>,
    ) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
        self.do_list_multipart_uploads(req).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_encoding_keeps_slashes_and_unreserved() {
        assert_eq!(url_encode("a b/c+d%e~f"), "a%20b/c%2Bd%25e~f");
        assert_eq!(url_encode("ü"), "%C3%BC");
    }
}
