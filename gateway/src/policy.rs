//! Bucket policies: the part of AWS's JSON access-policy language S3 bucket
//! policies use (`Effect`, `Principal`/`NotPrincipal`, `Action`/`NotAction`,
//! `Resource`/`NotResource`, `Condition`), checked when stored and evaluated
//! on every request. Pure: a request is described by a [`RequestContext`].
//!
//! Evaluation as AWS's: an explicit Deny wins, else an Allow grants, else
//! the policy has no opinion and the ACLs decide.

use serde_json::Value;
use std::net::IpAddr;

/// Largest policy document (AWS: 20 KB).
pub const MAX_POLICY_BYTES: usize = 20 * 1024;

/// Why a policy was refused (S3's MalformedPolicy).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PolicyError(pub String);

fn malformed<T>(msg: impl Into<String>) -> Result<T, PolicyError> {
    Err(PolicyError(msg.into()))
}

/// What a policy says about one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// A statement allows it (and none denies it).
    Allow,
    /// A statement denies it: refused whatever the ACLs say.
    Deny,
    /// No statement applies: the ACLs decide.
    NoOpinion,
}

/// One request as a policy sees it.
#[derive(Debug, Clone, Default)]
pub struct RequestContext<'a> {
    /// The authenticated user id (`None`: anonymous).
    pub user: Option<&'a str>,
    /// The S3 action, e.g. `s3:GetObject`.
    pub action: &'a str,
    /// The bucket.
    pub bucket: &'a str,
    /// The object key, for object actions.
    pub key: Option<&'a str>,
    /// The client's address (`aws:SourceIp`).
    pub source_ip: Option<IpAddr>,
    /// Whether the request came over TLS (`aws:SecureTransport`).
    pub secure: bool,
    /// Listing parameters (`s3:prefix`, `s3:delimiter`, `s3:max-keys`).
    pub prefix: Option<&'a str>,
    /// `s3:delimiter`.
    pub delimiter: Option<&'a str>,
    /// `s3:max-keys`.
    pub max_keys: Option<i64>,
    /// The canned ACL the request sets (`s3:x-amz-acl`).
    pub acl: Option<&'a str>,
    /// `aws:UserAgent`.
    pub user_agent: Option<&'a str>,
    /// `aws:Referer`.
    pub referer: Option<&'a str>,
}

impl RequestContext<'_> {
    fn resource(&self) -> String {
        match self.key {
            Some(k) => format!("arn:aws:s3:::{}/{k}", self.bucket),
            None => format!("arn:aws:s3:::{}", self.bucket),
        }
    }

    /// The value of a condition key (lower-case), if the request has one.
    fn value(&self, key: &str) -> Option<String> {
        match key {
            "aws:sourceip" => self.source_ip.map(|ip| ip.to_string()),
            "aws:securetransport" => Some(self.secure.to_string()),
            "aws:username" | "aws:userid" => self.user.map(str::to_string),
            "aws:principaltype" => Some(
                if self.user.is_some() {
                    "User"
                } else {
                    "Anonymous"
                }
                .into(),
            ),
            "aws:useragent" => self.user_agent.map(str::to_string),
            "aws:referer" => self.referer.map(str::to_string),
            "s3:prefix" => self.prefix.map(str::to_string),
            "s3:delimiter" => self.delimiter.map(str::to_string),
            "s3:max-keys" => self.max_keys.map(|n| n.to_string()),
            "s3:x-amz-acl" => self.acl.map(str::to_string),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Effect {
    Allow,
    Deny,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Principal {
    Anyone,
    Users(Vec<String>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    StringEquals,
    StringEqualsIgnoreCase,
    StringLike,
    IpAddress,
    Bool,
    NumericEquals,
    NumericLessThan,
    NumericLessThanEquals,
    NumericGreaterThan,
    NumericGreaterThanEquals,
    Null,
}

#[derive(Debug, Clone)]
struct Condition {
    op: Op,
    negated: bool,
    if_exists: bool,
    key: String,
    values: Vec<String>,
}

#[derive(Debug, Clone)]
struct Statement {
    effect: Effect,
    principal: Principal,
    not_principal: bool,
    actions: Vec<String>,
    not_action: bool,
    resources: Vec<String>,
    not_resource: bool,
    conditions: Vec<Condition>,
}

/// A parsed, checked bucket policy.
#[derive(Debug, Clone)]
pub struct BucketPolicy {
    statements: Vec<Statement>,
}

/// A string or a list of strings (policy elements take either).
fn strings(v: &Value, what: &str) -> Result<Vec<String>, PolicyError> {
    match v {
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Array(a) if !a.is_empty() => a
            .iter()
            .map(|x| match x {
                Value::String(s) => Ok(s.clone()),
                Value::Bool(b) => Ok(b.to_string()),
                Value::Number(n) => Ok(n.to_string()),
                _ => malformed(format!("{what} must be strings")),
            })
            .collect(),
        Value::Bool(b) => Ok(vec![b.to_string()]),
        Value::Number(n) => Ok(vec![n.to_string()]),
        _ => malformed(format!("{what} must be a string or a list of strings")),
    }
}

fn principal(v: &Value) -> Result<Principal, PolicyError> {
    let entries = match v {
        Value::String(s) if s == "*" => return Ok(Principal::Anyone),
        Value::Object(o) => {
            if let Some(k) = o.keys().find(|k| *k != "AWS") {
                return malformed(format!(
                    "Invalid principal in policy: unsupported principal type {k:?}"
                ));
            }
            match o.get("AWS") {
                Some(a) => strings(a, "Principal AWS")?,
                None => return malformed("Invalid principal in policy: no AWS principal"),
            }
        }
        _ => return malformed("Invalid principal in policy"),
    };
    if entries.iter().any(|e| e == "*") {
        return Ok(Principal::Anyone);
    }
    let mut users = Vec::new();
    for e in entries {
        // arn:aws:iam::ACCOUNT:user/UID (RGW leaves the account empty), or a bare uid.
        let uid = match e.strip_prefix("arn:aws:iam::") {
            Some(rest) => match rest.split_once(":user/") {
                Some((_, uid)) if !uid.is_empty() => uid.to_string(),
                _ => return malformed(format!("Invalid principal in policy: {e:?}")),
            },
            None if !e.is_empty() && !e.contains(':') && !e.contains('/') => e,
            None => return malformed(format!("Invalid principal in policy: {e:?}")),
        };
        users.push(uid);
    }
    Ok(Principal::Users(users))
}

fn condition_op(name: &str) -> Result<(Op, bool, bool), PolicyError> {
    let name = name
        .strip_prefix("ForAnyValue:")
        .or_else(|| name.strip_prefix("ForAllValues:"))
        .unwrap_or(name);
    let (base, if_exists) = match name.strip_suffix("IfExists") {
        Some(b) => (b, true),
        None => (name, false),
    };
    let (op, negated) = match base {
        "StringEquals" => (Op::StringEquals, false),
        "StringNotEquals" => (Op::StringEquals, true),
        "StringEqualsIgnoreCase" => (Op::StringEqualsIgnoreCase, false),
        "StringNotEqualsIgnoreCase" => (Op::StringEqualsIgnoreCase, true),
        "StringLike" => (Op::StringLike, false),
        "StringNotLike" => (Op::StringLike, true),
        "IpAddress" => (Op::IpAddress, false),
        "NotIpAddress" => (Op::IpAddress, true),
        "Bool" => (Op::Bool, false),
        "NumericEquals" => (Op::NumericEquals, false),
        "NumericNotEquals" => (Op::NumericEquals, true),
        "NumericLessThan" => (Op::NumericLessThan, false),
        "NumericLessThanEquals" => (Op::NumericLessThanEquals, false),
        "NumericGreaterThan" => (Op::NumericGreaterThan, false),
        "NumericGreaterThanEquals" => (Op::NumericGreaterThanEquals, false),
        "Null" => (Op::Null, false),
        _ => return malformed(format!("Invalid Condition type : {name}")),
    };
    Ok((op, negated, if_exists))
}

fn conditions(v: &Value) -> Result<Vec<Condition>, PolicyError> {
    let Value::Object(ops) = v else {
        return malformed("Condition must be an object");
    };
    let mut out = Vec::new();
    for (name, body) in ops {
        let (op, negated, if_exists) = condition_op(name)?;
        let Value::Object(keys) = body else {
            return malformed(format!("Condition {name} must map keys to values"));
        };
        for (key, values) in keys {
            let values = strings(values, "condition values")?;
            if op == Op::IpAddress {
                for v in &values {
                    if parse_cidr(v).is_none() {
                        return malformed(format!("Invalid IP address or range in {name}: {v:?}"));
                    }
                }
            }
            out.push(Condition {
                op,
                negated,
                if_exists,
                key: key.to_ascii_lowercase(),
                values,
            });
        }
    }
    Ok(out)
}

fn check_action(a: &str) -> Result<(), PolicyError> {
    if a == "*" || (a.len() > 3 && a[..3].eq_ignore_ascii_case("s3:")) {
        Ok(())
    } else {
        malformed(format!("Policy has invalid action: {a:?}"))
    }
}

fn check_resource(bucket: &str, r: &str) -> Result<(), PolicyError> {
    let Some(rest) = r.strip_prefix("arn:aws:s3:::") else {
        return malformed(format!("Policy has invalid resource: {r:?}"));
    };
    let target = rest.split('/').next().unwrap_or("");
    // The bucket itself, or a pattern that covers it (`*`, `buck*`).
    if glob(target, bucket, false) {
        Ok(())
    } else {
        malformed(format!(
            "Policy has invalid resource: {r:?} is not in bucket {bucket}"
        ))
    }
}

impl BucketPolicy {
    /// Parses and checks the policy of `bucket` as PutBucketPolicy does.
    pub fn parse(bucket: &str, text: &str) -> Result<Self, PolicyError> {
        if text.len() > MAX_POLICY_BYTES {
            return malformed(format!("Policies must be at most {MAX_POLICY_BYTES} bytes"));
        }
        let doc: Value = serde_json::from_str(text)
            .map_err(|e| PolicyError(format!("This policy contains invalid Json: {e}")))?;
        let Value::Object(top) = doc else {
            return malformed("A policy is a JSON object");
        };
        for k in top.keys() {
            if !["Version", "Id", "Statement"].contains(&k.as_str()) {
                return malformed(format!("Unknown field {k}"));
            }
        }
        match top.get("Version").and_then(Value::as_str) {
            Some("2012-10-17" | "2008-10-17") | None => {}
            Some(v) => return malformed(format!("Invalid policy version {v:?}")),
        }
        let list = match top.get("Statement") {
            Some(Value::Array(a)) if !a.is_empty() => a.clone(),
            Some(o @ Value::Object(_)) => vec![o.clone()],
            _ => return malformed("Missing required field Statement"),
        };
        let mut statements = Vec::new();
        for st in &list {
            let Value::Object(st) = st else {
                return malformed("Each statement is a JSON object");
            };
            for k in st.keys() {
                if ![
                    "Sid",
                    "Effect",
                    "Principal",
                    "NotPrincipal",
                    "Action",
                    "NotAction",
                    "Resource",
                    "NotResource",
                    "Condition",
                ]
                .contains(&k.as_str())
                {
                    return malformed(format!("Unknown field {k}"));
                }
            }
            let effect = match st.get("Effect").and_then(Value::as_str) {
                Some("Allow") => Effect::Allow,
                Some("Deny") => Effect::Deny,
                _ => return malformed("Effect must be Allow or Deny"),
            };
            let (principal, not_principal) = match (st.get("Principal"), st.get("NotPrincipal")) {
                (Some(p), None) => (principal(p)?, false),
                (None, Some(p)) => (principal(p)?, true),
                _ => {
                    return malformed(
                        "A statement needs exactly one of Principal and NotPrincipal",
                    );
                }
            };
            let (actions, not_action) = match (st.get("Action"), st.get("NotAction")) {
                (Some(a), None) => (strings(a, "Action")?, false),
                (None, Some(a)) => (strings(a, "NotAction")?, true),
                _ => return malformed("A statement needs exactly one of Action and NotAction"),
            };
            for a in &actions {
                check_action(a)?;
            }
            let (resources, not_resource) = match (st.get("Resource"), st.get("NotResource")) {
                (Some(r), None) => (strings(r, "Resource")?, false),
                (None, Some(r)) => (strings(r, "NotResource")?, true),
                _ => return malformed("A statement needs exactly one of Resource and NotResource"),
            };
            for r in &resources {
                check_resource(bucket, r)?;
            }
            let conditions = match st.get("Condition") {
                Some(c) => conditions(c)?,
                None => Vec::new(),
            };
            statements.push(Statement {
                effect,
                principal,
                not_principal,
                actions,
                not_action,
                resources,
                not_resource,
                conditions,
            });
        }
        Ok(Self { statements })
    }

    /// What the policy says about `ctx`.
    pub fn evaluate(&self, ctx: &RequestContext<'_>) -> Decision {
        let resource = ctx.resource();
        let mut allowed = false;
        for st in &self.statements {
            if !st.applies(ctx, &resource) {
                continue;
            }
            match st.effect {
                Effect::Deny => return Decision::Deny,
                Effect::Allow => allowed = true,
            }
        }
        if allowed {
            Decision::Allow
        } else {
            Decision::NoOpinion
        }
    }

    /// True if the policy lets anyone (anonymous callers included) do
    /// something without conditions (GetBucketPolicyStatus's IsPublic).
    pub fn is_public(&self) -> bool {
        self.statements.iter().any(|s| {
            s.effect == Effect::Allow
                && !s.not_principal
                && s.principal == Principal::Anyone
                && s.conditions.is_empty()
        })
    }
}

impl Statement {
    fn applies(&self, ctx: &RequestContext<'_>, resource: &str) -> bool {
        let who = match &self.principal {
            Principal::Anyone => true,
            Principal::Users(users) => ctx.user.is_some_and(|u| users.iter().any(|x| x == u)),
        };
        if who == self.not_principal {
            return false;
        }
        let action = self.actions.iter().any(|a| glob(a, ctx.action, true));
        if action == self.not_action {
            return false;
        }
        let res = self.resources.iter().any(|r| glob(r, resource, false));
        if res == self.not_resource {
            return false;
        }
        self.conditions.iter().all(|c| c.holds(ctx))
    }
}

impl Condition {
    fn holds(&self, ctx: &RequestContext<'_>) -> bool {
        let value = ctx.value(&self.key);
        if self.op == Op::Null {
            // "Null": "true" means the key must be absent.
            let want_absent = self.values.iter().any(|v| v.eq_ignore_ascii_case("true"));
            return value.is_none() == want_absent;
        }
        let Some(value) = value else {
            // A missing key: only IfExists and the negated operators hold.
            return self.if_exists || self.negated;
        };
        let any = self.values.iter().any(|want| match self.op {
            Op::StringEquals => *want == value,
            Op::StringEqualsIgnoreCase => want.eq_ignore_ascii_case(&value),
            Op::StringLike => glob(want, &value, false),
            Op::IpAddress => match (parse_cidr(want), value.parse::<IpAddr>()) {
                (Some(net), Ok(ip)) => in_cidr(net, ip),
                _ => false,
            },
            Op::Bool => want.eq_ignore_ascii_case(&value),
            Op::NumericEquals
            | Op::NumericLessThan
            | Op::NumericLessThanEquals
            | Op::NumericGreaterThan
            | Op::NumericGreaterThanEquals => match (value.parse::<f64>(), want.parse::<f64>()) {
                (Ok(v), Ok(w)) => match self.op {
                    Op::NumericEquals => v == w,
                    Op::NumericLessThan => v < w,
                    Op::NumericLessThanEquals => v <= w,
                    Op::NumericGreaterThan => v > w,
                    _ => v >= w,
                },
                _ => false,
            },
            Op::Null => false,
        });
        any != self.negated
    }
}

/// `*` (any run) and `?` (one character) matching, as policy patterns do.
fn glob(pattern: &str, s: &str, ignore_case: bool) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = if ignore_case {
        (
            pattern.to_lowercase().chars().collect(),
            s.to_lowercase().chars().collect(),
        )
    } else {
        (pattern.chars().collect(), s.chars().collect())
    };
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// `1.2.3.0/24`, `::1/128` or a bare address.
fn parse_cidr(s: &str) -> Option<(IpAddr, u8)> {
    let (addr, len) = match s.split_once('/') {
        Some((a, l)) => (a.parse::<IpAddr>().ok()?, l.parse::<u8>().ok()?),
        None => {
            let a = s.parse::<IpAddr>().ok()?;
            (a, if a.is_ipv4() { 32 } else { 128 })
        }
    };
    let max = if addr.is_ipv4() { 32 } else { 128 };
    (len <= max).then_some((addr, len))
}

fn in_cidr((net, len): (IpAddr, u8), ip: IpAddr) -> bool {
    let ip = match (net, ip) {
        // An IPv4 client seen through an IPv6 socket.
        (IpAddr::V4(_), IpAddr::V6(v6)) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        _ => ip,
    };
    match (net, ip) {
        (IpAddr::V4(n), IpAddr::V4(a)) => {
            let mask = if len == 0 {
                0
            } else {
                u32::MAX << (32 - len as u32)
            };
            u32::from(n) & mask == u32::from(a) & mask
        }
        (IpAddr::V6(n), IpAddr::V6(a)) => {
            let mask = if len == 0 {
                0
            } else {
                u128::MAX << (128 - len as u32)
            };
            u128::from(n) & mask == u128::from(a) & mask
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx<'a>(user: Option<&'a str>, action: &'a str, key: Option<&'a str>) -> RequestContext<'a> {
        RequestContext {
            user,
            action,
            bucket: "pub",
            key,
            source_ip: Some("10.1.2.3".parse().unwrap()),
            ..Default::default()
        }
    }

    #[test]
    fn public_read_allows_anyone_to_get_and_nothing_else() {
        let p = BucketPolicy::parse(
            "pub",
            r#"{"Version":"2012-10-17","Statement":[{"Sid":"PublicRead","Effect":"Allow",
               "Principal":"*","Action":["s3:GetObject"],"Resource":["arn:aws:s3:::pub/*"]}]}"#,
        )
        .unwrap();
        assert!(p.is_public());
        assert_eq!(
            p.evaluate(&ctx(None, "s3:GetObject", Some("a/b"))),
            Decision::Allow
        );
        assert_eq!(
            p.evaluate(&ctx(None, "s3:PutObject", Some("a"))),
            Decision::NoOpinion
        );
        assert_eq!(
            p.evaluate(&ctx(None, "s3:ListBucket", None)),
            Decision::NoOpinion
        );
    }

    #[test]
    fn deny_wins_and_conditions_decide() {
        let p = BucketPolicy::parse(
            "pub",
            r#"{"Statement":[
              {"Effect":"Allow","Principal":{"AWS":["arn:aws:iam:::user/bob"]},"Action":"s3:*","Resource":["arn:aws:s3:::pub","arn:aws:s3:::pub/*"]},
              {"Effect":"Deny","Principal":"*","Action":"s3:*","Resource":"arn:aws:s3:::pub/*",
               "Condition":{"NotIpAddress":{"aws:SourceIp":"10.0.0.0/8"}}},
              {"Effect":"Deny","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::pub/*",
               "Condition":{"Bool":{"aws:SecureTransport":"false"}}},
              {"Effect":"Allow","Principal":{"AWS":"carol"},"Action":"s3:ListBucket","Resource":"arn:aws:s3:::pub",
               "Condition":{"StringLike":{"s3:prefix":["home/carol/*"]}}}]}"#,
        )
        .unwrap();
        assert!(!p.is_public());
        let mut c = ctx(Some("bob"), "s3:PutObject", Some("k"));
        assert_eq!(p.evaluate(&c), Decision::Allow);
        c.source_ip = Some("192.168.0.1".parse().unwrap());
        assert_eq!(p.evaluate(&c), Decision::Deny, "outside the network");
        let mut g = ctx(Some("bob"), "s3:GetObject", Some("k"));
        assert_eq!(p.evaluate(&g), Decision::Deny, "plain HTTP");
        g.secure = true;
        assert_eq!(p.evaluate(&g), Decision::Allow);
        assert_eq!(
            p.evaluate(&ctx(Some("eve"), "s3:PutObject", Some("k"))),
            Decision::NoOpinion
        );
        let mut l = ctx(Some("carol"), "s3:ListBucket", None);
        assert_eq!(p.evaluate(&l), Decision::NoOpinion, "no prefix given");
        l.prefix = Some("home/carol/docs");
        assert_eq!(p.evaluate(&l), Decision::Allow);
        l.prefix = Some("home/bob/");
        assert_eq!(p.evaluate(&l), Decision::NoOpinion);
    }

    #[test]
    fn not_elements_invert() {
        let p = BucketPolicy::parse(
            "pub",
            r#"{"Statement":{"Effect":"Deny","NotPrincipal":{"AWS":"admin"},"NotAction":"s3:Get*","Resource":"arn:aws:s3:::pub/*"}}"#,
        )
        .unwrap();
        assert_eq!(
            p.evaluate(&ctx(Some("x"), "s3:DeleteObject", Some("k"))),
            Decision::Deny
        );
        assert_eq!(
            p.evaluate(&ctx(Some("x"), "s3:GetObject", Some("k"))),
            Decision::NoOpinion
        );
        assert_eq!(
            p.evaluate(&ctx(Some("admin"), "s3:DeleteObject", Some("k"))),
            Decision::NoOpinion
        );
    }

    #[test]
    fn malformed_policies_are_refused_with_a_reason() {
        let bad = [
            ("not json", "invalid Json"),
            (r#"{"Statement":[]}"#, "Statement"),
            (
                r#"{"Version":"2020-01-01","Statement":{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::pub/*"}}"#,
                "version",
            ),
            (
                r#"{"Statement":{"Effect":"Maybe","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::pub/*"}}"#,
                "Effect",
            ),
            (
                r#"{"Statement":{"Effect":"Allow","Principal":"*","Action":"ec2:Run","Resource":"arn:aws:s3:::pub/*"}}"#,
                "action",
            ),
            (
                r#"{"Statement":{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::other/*"}}"#,
                "resource",
            ),
            (
                r#"{"Statement":{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::pub/*","Condition":{"IpAddress":{"aws:SourceIp":"999.1.1.1/8"}}}}"#,
                "IP",
            ),
            (
                r#"{"Statement":{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::pub/*","Condition":{"StringSorta":{"s3:prefix":"a"}}}}"#,
                "Condition type",
            ),
            (
                r#"{"Statement":{"Effect":"Allow","Principal":{"Service":"x"},"Action":"s3:GetObject","Resource":"arn:aws:s3:::pub/*"}}"#,
                "principal",
            ),
            (
                r#"{"Statement":{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::pub/*"}}"#,
                "Principal",
            ),
        ];
        for (text, why) in bad {
            let e = BucketPolicy::parse("pub", text).unwrap_err();
            assert!(
                e.0.to_lowercase().contains(&why.to_lowercase()),
                "{text}: {e}"
            );
        }
        assert!(BucketPolicy::parse("pub", &"x".repeat(MAX_POLICY_BYTES + 1)).is_err());
    }

    #[test]
    fn globs_and_networks() {
        assert!(glob("s3:Get*", "s3:getobject", true));
        assert!(glob("arn:aws:s3:::b/*/x?", "arn:aws:s3:::b/a/b/xy", false));
        assert!(!glob("arn:aws:s3:::b/*/x?", "arn:aws:s3:::b/a/b/x", false));
        assert!(glob("*", "", false));
        let net = parse_cidr("10.0.0.0/8").unwrap();
        assert!(in_cidr(net, "10.255.0.1".parse().unwrap()));
        assert!(in_cidr(net, "::ffff:10.1.1.1".parse().unwrap()));
        assert!(!in_cidr(net, "11.0.0.1".parse().unwrap()));
        assert!(in_cidr(parse_cidr("::1").unwrap(), "::1".parse().unwrap()));
        assert!(in_cidr(
            parse_cidr("0.0.0.0/0").unwrap(),
            "8.8.8.8".parse().unwrap()
        ));
        assert!(parse_cidr("1.2.3.4/33").is_none());
    }
}
