//! CORS as S3 does it: a bucket's rules (PutBucketCors) answer browsers'
//! preflight `OPTIONS` requests, and add `Access-Control-*` headers to the
//! answers of cross-origin requests they allow. Pure: rules in, headers out.

use meridian_zone::CorsRule;

/// Methods a CORS rule may allow.
pub const METHODS: &[&str] = &["GET", "PUT", "HEAD", "POST", "DELETE"];
/// Most rules a bucket may have (AWS's limit).
pub const MAX_RULES: usize = 100;

/// Checks rules as PutBucketCors does; the error is the message of S3's
/// answer (InvalidRequest / MalformedXML).
pub fn validate(rules: &[CorsRule]) -> Result<(), String> {
    if rules.is_empty() {
        return Err("a CORS configuration needs at least one CORSRule".into());
    }
    if rules.len() > MAX_RULES {
        return Err(format!("at most {MAX_RULES} CORS rules"));
    }
    for r in rules {
        if r.allowed_methods.is_empty() || r.allowed_origins.is_empty() {
            return Err("each CORSRule needs an AllowedMethod and an AllowedOrigin".into());
        }
        if let Some(m) = r
            .allowed_methods
            .iter()
            .find(|m| !METHODS.contains(&m.as_str()))
        {
            return Err(format!(
                "Found unsupported HTTP method in CORS config. Unsupported method is {m}"
            ));
        }
        if let Some(o) = r
            .allowed_origins
            .iter()
            .find(|o| o.matches('*').count() > 1)
        {
            return Err(format!(
                "AllowedOrigin \"{o}\" can not have more than one wildcard."
            ));
        }
        if let Some(h) = r
            .allowed_headers
            .iter()
            .find(|h| h.matches('*').count() > 1)
        {
            return Err(format!(
                "AllowedHeader \"{h}\" can not have more than one wildcard."
            ));
        }
        if r.id.len() > 255 {
            return Err("a CORSRule ID is at most 255 characters".into());
        }
    }
    Ok(())
}

/// `*` matching (one wildcard at most, by [`validate`]).
fn wildcard(pattern: &str, s: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == s,
        Some((pre, post)) => {
            s.len() >= pre.len() + post.len() && s.starts_with(pre) && s.ends_with(post)
        }
    }
}

/// The first rule allowing `origin` to use `method` with the request
/// headers `headers` (lower-case names).
pub fn matching<'a>(
    rules: &'a [CorsRule],
    origin: &str,
    method: &str,
    headers: &[String],
) -> Option<&'a CorsRule> {
    rules.iter().find(|r| {
        r.allowed_origins.iter().any(|o| wildcard(o, origin))
            && r.allowed_methods.iter().any(|m| m == method)
            && headers.iter().all(|h| {
                r.allowed_headers
                    .iter()
                    .any(|a| wildcard(&a.to_ascii_lowercase(), h))
            })
    })
}

/// The `Access-Control-*` headers for a request from `origin` that `rule`
/// allows; `preflight` adds the method, header and max-age answers.
pub fn response_headers(
    rule: &CorsRule,
    origin: &str,
    preflight: bool,
    requested_headers: &[String],
) -> Vec<(&'static str, String)> {
    let any_origin = rule.allowed_origins.iter().any(|o| o == "*");
    let mut h = vec![(
        "access-control-allow-origin",
        if any_origin {
            "*".to_string()
        } else {
            origin.to_string()
        },
    )];
    if !any_origin {
        h.push(("access-control-allow-credentials", "true".into()));
    }
    h.push((
        "vary",
        "Origin, Access-Control-Request-Headers, Access-Control-Request-Method".into(),
    ));
    if preflight {
        h.push((
            "access-control-allow-methods",
            rule.allowed_methods.join(", "),
        ));
        if !requested_headers.is_empty() {
            h.push(("access-control-allow-headers", requested_headers.join(", ")));
        }
        if let Some(age) = rule.max_age_seconds {
            h.push(("access-control-max-age", age.to_string()));
        }
    }
    if !rule.expose_headers.is_empty() {
        h.push((
            "access-control-expose-headers",
            rule.expose_headers.join(", "),
        ));
    }
    h
}

/// The header names of `Access-Control-Request-Headers`, lower-case.
pub fn requested_headers(value: Option<&str>) -> Vec<String> {
    value
        .unwrap_or("")
        .split(',')
        .map(|h| h.trim().to_ascii_lowercase())
        .filter(|h| !h.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(origins: &[&str], methods: &[&str], headers: &[&str]) -> CorsRule {
        CorsRule {
            allowed_origins: origins.iter().map(|s| s.to_string()).collect(),
            allowed_methods: methods.iter().map(|s| s.to_string()).collect(),
            allowed_headers: headers.iter().map(|s| s.to_string()).collect(),
            expose_headers: vec!["ETag".into()],
            max_age_seconds: Some(600),
            ..Default::default()
        }
    }

    #[test]
    fn rules_match_origin_method_and_headers() {
        let rules = vec![
            rule(
                &["https://*.example.com"],
                &["GET", "PUT"],
                &["x-amz-*", "Content-Type"],
            ),
            rule(&["*"], &["GET"], &[]),
        ];
        let hs = requested_headers(Some("Content-Type, X-Amz-Date"));
        let r = matching(&rules, "https://app.example.com", "PUT", &hs).unwrap();
        assert_eq!(r.allowed_origins[0], "https://*.example.com");
        assert!(matching(&rules, "https://evil.com", "PUT", &[]).is_none());
        let any = matching(&rules, "https://evil.com", "GET", &[]).unwrap();
        let h = response_headers(any, "https://evil.com", true, &[]);
        assert!(h.contains(&("access-control-allow-origin", "*".into())));
        assert!(
            matching(
                &rules,
                "https://app.example.com",
                "PUT",
                &["x-custom".into()]
            )
            .is_none()
        );
        assert!(matching(&rules, "https://app.example.com", "DELETE", &[]).is_none());
        let h = response_headers(r, "https://app.example.com", true, &hs);
        assert!(h.contains(&(
            "access-control-allow-origin",
            "https://app.example.com".into()
        )));
        assert!(h.contains(&("access-control-allow-methods", "GET, PUT".into())));
        assert!(h.contains(&("access-control-max-age", "600".into())));
        assert!(h.contains(&(
            "access-control-allow-headers",
            "content-type, x-amz-date".into()
        )));
    }

    #[test]
    fn bad_rules_are_refused() {
        assert!(validate(&[]).is_err());
        assert!(
            validate(&[rule(&["*"], &["PATCH"], &[])])
                .unwrap_err()
                .contains("PATCH")
        );
        assert!(validate(&[rule(&["*.*.com"], &["GET"], &[])]).is_err());
        assert!(validate(&[rule(&[], &["GET"], &[])]).is_err());
        assert!(validate(&[rule(&["*"], &["GET"], &["*"])]).is_ok());
    }
}
