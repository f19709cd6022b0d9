//! Access control lists: canned ACLs, `x-amz-grant-*` headers and
//! AccessControlPolicy bodies in, the grants S3 reports out.
//!
//! An ACL is stored as a canned part (the group grants of `x-amz-acl`) plus
//! the grants beyond it; the owner's full control is implied, as RGW keeps
//! the owner able to manage a bucket or object whatever its ACL says.

use meridian_zone::{AclGrant, AclPermission, CannedAcl, Grantee as ZoneGrantee, ZoneError};
use s3s::dto::{AccessControlPolicy, Grant, Grantee, Permission, Type};
use s3s::{S3Result, s3_error};

const ALL_USERS: &str = "http://acs.amazonaws.com/groups/global/AllUsers";
const AUTHENTICATED_USERS: &str = "http://acs.amazonaws.com/groups/global/AuthenticatedUsers";
const LOG_DELIVERY: &str = "http://acs.amazonaws.com/groups/s3/LogDelivery";

/// An ACL as a request sets it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct RequestedAcl {
    /// The canned part.
    pub acl: CannedAcl,
    /// Grants beyond it.
    pub grants: Vec<AclGrant>,
}

/// The `x-amz-grant-*` headers of a request.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct GrantHeaders<'a> {
    pub full_control: Option<&'a str>,
    pub read: Option<&'a str>,
    pub read_acp: Option<&'a str>,
    pub write: Option<&'a str>,
    pub write_acp: Option<&'a str>,
}

/// The `x-amz-grant-*` headers of an S3 input (`no_write` for object
/// writes, whose inputs have no `grant_write`).
macro_rules! grant_headers {
    ($i:expr) => {
        $crate::s3::acl::GrantHeaders {
            write: $i.grant_write.as_deref(),
            ..$crate::s3::acl::grant_headers!($i, no_write)
        }
    };
    ($i:expr, no_write) => {
        $crate::s3::acl::GrantHeaders {
            full_control: $i.grant_full_control.as_deref(),
            read: $i.grant_read.as_deref(),
            read_acp: $i.grant_read_acp.as_deref(),
            write: None,
            write_acp: $i.grant_write_acp.as_deref(),
        }
    };
}
pub(super) use grant_headers;

impl GrantHeaders<'_> {
    fn any(&self) -> bool {
        self.full_control.is_some()
            || self.read.is_some()
            || self.read_acp.is_some()
            || self.write.is_some()
            || self.write_acp.is_some()
    }
}

/// The ACL a request asks for: a canned ACL, grant headers or (for
/// PutBucketAcl/PutObjectAcl) a body; None when it names none.
pub(super) fn requested(
    canned: Option<&str>,
    headers: GrantHeaders<'_>,
    body: Option<&AccessControlPolicy>,
    owner: &str,
) -> S3Result<Option<RequestedAcl>> {
    if canned.is_some() && headers.any() {
        return Err(s3_error!(
            InvalidRequest,
            "Specifying both Canned ACLs and Header Grants is not allowed"
        ));
    }
    if body.is_some() && (canned.is_some() || headers.any()) {
        return Err(s3_error!(
            UnexpectedContent,
            "This request does not support content"
        ));
    }
    if let Some(c) = canned {
        let acl = CannedAcl::parse(c)
            .ok_or_else(|| s3_error!(InvalidArgument, "unknown canned ACL {c:?}"))?;
        return Ok(Some(RequestedAcl {
            acl,
            grants: Vec::new(),
        }));
    }
    if headers.any() {
        let mut grants = Vec::new();
        for (value, permission) in [
            (headers.full_control, AclPermission::FullControl),
            (headers.read, AclPermission::Read),
            (headers.read_acp, AclPermission::ReadAcp),
            (headers.write, AclPermission::Write),
            (headers.write_acp, AclPermission::WriteAcp),
        ] {
            for grantee in value.map(parse_grantees).transpose()?.unwrap_or_default() {
                grants.push(AclGrant {
                    grantee,
                    permission,
                });
            }
        }
        return Ok(Some(fold(grants, owner)));
    }
    body.map(|p| from_policy(p, owner)).transpose()
}

/// `id="uid", uri="http://...", emailAddress="..."` as grantees.
fn parse_grantees(value: &str) -> S3Result<Vec<ZoneGrantee>> {
    let mut out = Vec::new();
    for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (kind, v) = item
            .split_once('=')
            .ok_or_else(|| s3_error!(InvalidArgument, "grantee {item:?} is not type=\"value\""))?;
        let v = v.trim().trim_matches('"');
        out.push(match kind.trim().to_ascii_lowercase().as_str() {
            "id" => user_grantee(v)?,
            "uri" => group_grantee(v)?,
            "emailaddress" => return Err(by_email()),
            other => {
                return Err(s3_error!(
                    InvalidArgument,
                    "unknown grantee type {other:?} (id, uri or emailAddress)"
                ));
            }
        });
    }
    Ok(out)
}

fn by_email() -> s3s::S3Error {
    s3_error!(
        UnresolvableGrantByEmailAddress,
        "grants by e-mail address are not supported; grant to the user's id"
    )
}

fn user_grantee(id: &str) -> S3Result<ZoneGrantee> {
    if id.is_empty() {
        return Err(s3_error!(InvalidArgument, "Invalid id"));
    }
    Ok(ZoneGrantee::User(id.to_string()))
}

fn group_grantee(uri: &str) -> S3Result<ZoneGrantee> {
    match uri {
        ALL_USERS => Ok(ZoneGrantee::AllUsers),
        AUTHENTICATED_USERS => Ok(ZoneGrantee::AuthenticatedUsers),
        LOG_DELIVERY => Err(s3_error!(
            NotImplemented,
            "grants to the LogDelivery group are not supported (no server access logging)"
        )),
        _ => Err(s3_error!(InvalidArgument, "Invalid group uri {uri:?}")),
    }
}

/// An AccessControlPolicy body as canned part and grants.
fn from_policy(p: &AccessControlPolicy, owner: &str) -> S3Result<RequestedAcl> {
    let mut grants = Vec::new();
    for g in p.grants.iter().flatten() {
        let Some(gr) = &g.grantee else {
            return Err(s3_error!(MalformedACLError, "a Grant has no Grantee"));
        };
        let permission = match g.permission.as_ref().map(|p| p.as_str()) {
            Some("FULL_CONTROL") => AclPermission::FullControl,
            Some("READ") => AclPermission::Read,
            Some("WRITE") => AclPermission::Write,
            Some("READ_ACP") => AclPermission::ReadAcp,
            Some("WRITE_ACP") => AclPermission::WriteAcp,
            other => {
                return Err(s3_error!(
                    MalformedACLError,
                    "unknown permission {:?}",
                    other.unwrap_or("")
                ));
            }
        };
        let grantee = match (gr.type_.as_str(), &gr.id, &gr.uri, &gr.email_address) {
            (Type::CANONICAL_USER, Some(id), _, _) => user_grantee(id)?,
            (Type::GROUP, _, Some(uri), _) => group_grantee(uri)?,
            (Type::AMAZON_CUSTOMER_BY_EMAIL, _, _, _) => return Err(by_email()),
            (t, ..) => {
                return Err(s3_error!(
                    MalformedACLError,
                    "grantee of type {t:?} without its ID or URI"
                ));
            }
        };
        grants.push(AclGrant {
            grantee,
            permission,
        });
    }
    Ok(fold(grants, owner))
}

/// Grants as the canned part they contain plus the rest, without the
/// owner's (implied) full control and without duplicates.
fn fold(mut grants: Vec<AclGrant>, owner: &str) -> RequestedAcl {
    grants.retain(|g| {
        !(g.grantee == ZoneGrantee::User(owner.to_string())
            && g.permission == AclPermission::FullControl)
    });
    grants.sort();
    grants.dedup();
    let acl = [
        CannedAcl::PublicReadWrite,
        CannedAcl::PublicRead,
        CannedAcl::AuthenticatedRead,
    ]
    .into_iter()
    .find(|c| c.group_grants().iter().all(|g| grants.contains(g)))
    .unwrap_or(CannedAcl::Private);
    grants.retain(|g| !acl.group_grants().contains(g));
    RequestedAcl { acl, grants }
}

/// The grants S3 reports for an ACL: the owner's full control, then the
/// canned part's, then the rest.
pub(super) fn report(owner_id: &str, acl: CannedAcl, grants: &[AclGrant]) -> Vec<Grant> {
    let owner = AclGrant {
        grantee: ZoneGrantee::User(owner_id.to_string()),
        permission: AclPermission::FullControl,
    };
    std::iter::once(&owner)
        .chain(acl.group_grants())
        .chain(grants)
        .map(|g| Grant {
            grantee: Some(match &g.grantee {
                ZoneGrantee::User(id) => Grantee {
                    display_name: Some(id.clone()),
                    id: Some(id.clone()),
                    type_: Type::from_static(Type::CANONICAL_USER),
                    email_address: None,
                    uri: None,
                },
                group => Grantee {
                    display_name: None,
                    id: None,
                    type_: Type::from_static(Type::GROUP),
                    email_address: None,
                    uri: Some(
                        if *group == ZoneGrantee::AllUsers {
                            ALL_USERS
                        } else {
                            AUTHENTICATED_USERS
                        }
                        .to_string(),
                    ),
                },
            }),
            permission: Some(Permission::from_static(match g.permission {
                AclPermission::Read => Permission::READ,
                AclPermission::Write => Permission::WRITE,
                AclPermission::ReadAcp => Permission::READ_ACP,
                AclPermission::WriteAcp => Permission::WRITE_ACP,
                AclPermission::FullControl => Permission::FULL_CONTROL,
            })),
        })
        .collect()
}

impl super::MeridianS3 {
    /// The ACL a request asks for (see [`requested`]), every user it grants
    /// to known here (AWS: "Invalid id").
    pub(super) async fn requested_acl(
        &self,
        canned: Option<&str>,
        headers: GrantHeaders<'_>,
        body: Option<&AccessControlPolicy>,
        owner: &str,
    ) -> S3Result<Option<RequestedAcl>> {
        let r = requested(canned, headers, body, owner)?;
        for g in r.iter().flat_map(|r| &r.grants) {
            if let ZoneGrantee::User(u) = &g.grantee {
                match self.zone.user(u).await {
                    Ok(_) => {}
                    Err(ZoneError::NoSuchUser(_)) => {
                        return Err(s3_error!(InvalidArgument, "Invalid id {u:?}"));
                    }
                    Err(e) => return Err(crate::convert::s3_error(e)),
                }
            }
        }
        Ok(r)
    }

    /// The ACL a Put*Acl request sets on bucket `b` or one of its objects
    /// (it must name one, and the bucket's controls must allow it).
    pub(super) async fn replacement_acl(
        &self,
        b: &meridian_zone::BucketInfo,
        canned: Option<&str>,
        headers: GrantHeaders<'_>,
        body: Option<&AccessControlPolicy>,
        owner: &str,
    ) -> S3Result<RequestedAcl> {
        let r = self
            .requested_acl(canned, headers, body, owner)
            .await?
            .ok_or_else(|| {
                s3_error!(
                    MissingSecurityHeader,
                    "send x-amz-acl, x-amz-grant-* or an AccessControlPolicy body"
                )
            })?;
        super::bucket_controls::check_acl(b, &r, canned)?;
        Ok(r)
    }

    /// Sets the ACL an object write into `b` asks for on its attributes.
    pub(super) async fn set_object_acl(
        &self,
        b: &meridian_zone::BucketInfo,
        attrs: &mut meridian_zone::ObjectAttrs,
        canned: Option<&str>,
        headers: GrantHeaders<'_>,
        owner: &str,
    ) -> S3Result<()> {
        let r = self
            .requested_acl(canned, headers, None, owner)
            .await?
            .unwrap_or_default();
        super::bucket_controls::check_acl(b, &r, canned)?;
        attrs.acl = r.acl;
        attrs.grants = r.grants;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(u: &str, p: AclPermission) -> AclGrant {
        AclGrant {
            grantee: ZoneGrantee::User(u.into()),
            permission: p,
        }
    }

    #[test]
    fn canned_acls_round_trip_through_reported_grants() {
        for acl in [
            CannedAcl::Private,
            CannedAcl::PublicRead,
            CannedAcl::PublicReadWrite,
            CannedAcl::AuthenticatedRead,
        ] {
            let extra = vec![user("bob", AclPermission::ReadAcp)];
            let p = AccessControlPolicy {
                grants: Some(report("u", acl, &extra)),
                owner: None,
            };
            assert_eq!(
                from_policy(&p, "u").unwrap(),
                RequestedAcl { acl, grants: extra }
            );
        }
    }

    #[test]
    fn grant_headers_parse_users_and_groups() {
        let h = GrantHeaders {
            read: Some(r#"id="bob", uri="http://acs.amazonaws.com/groups/global/AllUsers""#),
            write_acp: Some("id=carol"),
            ..Default::default()
        };
        let r = requested(None, h, None, "owner").unwrap().unwrap();
        assert_eq!(r.acl, CannedAcl::PublicRead);
        assert_eq!(
            r.grants,
            vec![
                user("bob", AclPermission::Read),
                user("carol", AclPermission::WriteAcp)
            ]
        );
    }

    #[test]
    fn bad_grant_requests_are_refused() {
        let h = GrantHeaders {
            read: Some("id=bob"),
            ..Default::default()
        };
        assert!(requested(Some("private"), h, None, "o").is_err());
        for bad in [
            "bob",
            "colour=\"red\"",
            "uri=\"http://example.com/group\"",
            "emailAddress=\"a@b\"",
            "id=\"\"",
        ] {
            let h = GrantHeaders {
                read: Some(bad),
                ..Default::default()
            };
            assert!(requested(None, h, None, "o").is_err(), "{bad}");
        }
        assert_eq!(
            requested(None, GrantHeaders::default(), None, "o").unwrap(),
            None
        );
    }

    #[test]
    fn a_write_grant_to_all_users_without_read_is_kept_as_a_grant() {
        let h = GrantHeaders {
            write: Some(r#"uri="http://acs.amazonaws.com/groups/global/AllUsers""#),
            ..Default::default()
        };
        let r = requested(None, h, None, "o").unwrap().unwrap();
        assert_eq!(r.acl, CannedAcl::Private);
        assert_eq!(r.grants.len(), 1);
    }
}
