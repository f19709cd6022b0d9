//! Bucket policies applied to requests: the S3 action of each operation,
//! the facts of a request a policy can test, and the decision for one
//! bucket and key. The request gate decides for the request's own bucket
//! and key before the handler runs (a Deny ends the request; an Allow is
//! left in the request's extensions as [`PolicyGrant`] and stands in for
//! the ACL checks); handlers decide again where a request touches other
//! resources (a copy's source, each key of DeleteObjects).

use crate::http::ClientConn;
use crate::policy::{BucketPolicy, Decision, RequestContext};
use meridian_zone::BucketInfo;
use std::collections::BTreeMap;

/// Left in a request's extensions when the bucket policy allows it.
#[derive(Debug, Clone, Copy)]
pub struct PolicyGrant;

/// Actions the bucket owner may always take, whatever the policy says (so
/// a policy cannot lock its own owner out, as with AWS's account root).
const OWNER_ALWAYS: &[&str] = &[
    "s3:GetBucketPolicy",
    "s3:PutBucketPolicy",
    "s3:DeleteBucketPolicy",
];

/// The IAM action of the S3 operation `op` (`versioned`: the request names
/// a version).
pub fn s3_action(op: &str, versioned: bool) -> String {
    let a = match op {
        "GetObject" | "HeadObject" if versioned => "GetObjectVersion",
        "GetObject" | "HeadObject" | "GetObjectAttributes" => "GetObject",
        "DeleteObject" | "DeleteObjects" if versioned => "DeleteObjectVersion",
        "DeleteObjects" => "DeleteObject",
        "GetObjectAcl" if versioned => "GetObjectVersionAcl",
        "PutObjectAcl" if versioned => "PutObjectVersionAcl",
        "GetObjectTagging" if versioned => "GetObjectVersionTagging",
        "PutObjectTagging" if versioned => "PutObjectVersionTagging",
        "DeleteObjectTagging" if versioned => "DeleteObjectVersionTagging",
        "PutObject"
        | "PostObject"
        | "CopyObject"
        | "CreateMultipartUpload"
        | "UploadPart"
        | "UploadPartCopy"
        | "CompleteMultipartUpload" => "PutObject",
        "ListObjects" | "ListObjectsV2" | "HeadBucket" => "ListBucket",
        "ListObjectVersions" => "ListBucketVersions",
        "ListMultipartUploads" => "ListBucketMultipartUploads",
        "ListParts" => "ListMultipartUploadParts",
        "DeleteBucketTagging" => "PutBucketTagging",
        "GetBucketPolicyStatus" => "GetBucketPolicyStatus",
        other => other,
    };
    format!("s3:{a}")
}

/// What a policy can test about a request, apart from the action and key.
#[derive(Debug, Clone, Default)]
pub struct RequestFacts {
    user: Option<String>,
    system: bool,
    conn: Option<ClientConn>,
    query: BTreeMap<String, String>,
    acl: Option<String>,
    user_agent: Option<String>,
    referer: Option<String>,
}

impl RequestFacts {
    /// The facts of a request by `user` (`system`: a zone's system user,
    /// which policies never restrict).
    pub fn of(
        user: Option<(&str, bool)>,
        uri: &http::Uri,
        headers: &http::HeaderMap,
        conn: Option<ClientConn>,
    ) -> Self {
        let query = uri
            .query()
            .and_then(|q| serde_urlencoded::from_str::<Vec<(String, String)>>(q).ok())
            .unwrap_or_default()
            .into_iter()
            .collect();
        let header = |n: &str| {
            headers
                .get(n)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        Self {
            user: user.map(|(u, _)| u.to_string()),
            system: user.is_some_and(|(_, s)| s),
            conn,
            query,
            acl: header("x-amz-acl"),
            user_agent: header("user-agent"),
            referer: header("referer"),
        }
    }

    /// True if the request names a version (`?versionId=`).
    pub fn versioned(&self) -> bool {
        self.query.contains_key("versionId")
    }
}

/// `b`'s policy, parsed once per request (none stored, or a stored one
/// this build cannot parse, logged: `None`, and the ACLs decide).
pub fn policy_of(b: &BucketInfo) -> Option<BucketPolicy> {
    let text = b.policy.as_deref()?;
    BucketPolicy::parse(&b.name, text)
        .map_err(|e| {
            tracing::warn!(bucket = %b.name, error = %e, "stored bucket policy does not parse; ignored");
        })
        .ok()
}

/// What `policy` (of bucket `b`) says about `action` on `key` for the
/// request of `facts` (a system user: no opinion; under the bucket's
/// RestrictPublicBuckets, a public policy allows nobody but the owner).
pub fn decide(
    b: &BucketInfo,
    policy: &BucketPolicy,
    facts: &RequestFacts,
    action: &str,
    key: Option<&str>,
) -> Decision {
    if facts.system {
        return Decision::NoOpinion;
    }
    let cx = RequestContext {
        user: facts.user.as_deref(),
        action,
        bucket: &b.name,
        key,
        source_ip: facts.conn.map(|c| c.ip),
        secure: facts.conn.is_some_and(|c| c.secure),
        prefix: facts.query.get("prefix").map(String::as_str),
        delimiter: facts.query.get("delimiter").map(String::as_str),
        max_keys: facts.query.get("max-keys").and_then(|m| m.parse().ok()),
        acl: facts.acl.as_deref(),
        user_agent: facts.user_agent.as_deref(),
        referer: facts.referer.as_deref(),
    };
    match policy.evaluate(&cx) {
        Decision::Deny
            if facts.user.as_deref() == Some(b.owner.as_str())
                && OWNER_ALWAYS.contains(&action) =>
        {
            Decision::NoOpinion
        }
        // RestrictPublicBuckets: a public policy grants nothing beyond the owner.
        Decision::Allow
            if b.public_access_block
                .is_some_and(|p| p.restrict_public_buckets)
                && facts.user.as_deref() != Some(b.owner.as_str())
                && policy.is_public() =>
        {
            Decision::NoOpinion
        }
        d => d,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_map_to_iam_actions() {
        assert_eq!(s3_action("HeadObject", false), "s3:GetObject");
        assert_eq!(s3_action("GetObject", true), "s3:GetObjectVersion");
        assert_eq!(s3_action("UploadPart", false), "s3:PutObject");
        assert_eq!(s3_action("ListObjectsV2", false), "s3:ListBucket");
        assert_eq!(s3_action("DeleteObject", true), "s3:DeleteObjectVersion");
        assert_eq!(s3_action("PutBucketAcl", false), "s3:PutBucketAcl");
    }

    #[test]
    fn the_owner_keeps_the_policy_calls() {
        let b = BucketInfo {
            name: "b".into(),
            owner: "own".into(),
            policy: Some(
                r#"{"Statement":{"Effect":"Deny","Principal":"*","Action":"s3:*","Resource":["arn:aws:s3:::b","arn:aws:s3:::b/*"]}}"#
                    .into(),
            ),
            ..Default::default()
        };
        let uri: http::Uri = "/b?policy".parse().unwrap();
        let h = http::HeaderMap::new();
        let p = policy_of(&b).unwrap();
        let decide = |f: &RequestFacts, a: &str, k: Option<&str>| decide(&b, &p, f, a, k);
        let owner = RequestFacts::of(Some(("own", false)), &uri, &h, None);
        assert_eq!(
            decide(&owner, "s3:PutBucketPolicy", None),
            Decision::NoOpinion
        );
        assert_eq!(decide(&owner, "s3:GetObject", Some("k")), Decision::Deny);
        let system = RequestFacts::of(Some(("sys", true)), &uri, &h, None);
        assert_eq!(
            decide(&system, "s3:GetObject", Some("k")),
            Decision::NoOpinion
        );
    }
}
