//! Capabilities: what an entity may do on one service, in Ceph's grammar.
//!
//! ```text
//! caps  := grant ( ',' grant )*
//! grant := 'allow' ( '*' | PERMS | 'profile' NAME ) [ 'pool=' NAME | 'pool_prefix=' PREFIX ]
//! PERMS := any of r, w, x (e.g. r, rw, rwx)
//! ```
//!
//! `r` reads (maps, status, objects), `w` changes (commands, object
//! writes), `x` calls methods beyond plain reads and writes; `*` is all of
//! them plus administration (auth). `profile osd` grants what an OSD daemon
//! needs for its internal calls and nothing a client could ask for. A pool
//! clause is only meaningful for the `osd` service.

use crate::AuthError;
use std::collections::BTreeMap;
use std::fmt;

/// Services capabilities are granted for.
pub const SERVICES: [&str; 2] = ["mon", "osd"];
/// Profiles a grant may name.
pub const PROFILES: [&str; 1] = ["osd"];

/// A set of permission letters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Perms(u8);

impl Perms {
    /// Read.
    pub const R: Perms = Perms(1);
    /// Write.
    pub const W: Perms = Perms(2);
    /// Execute (methods beyond plain reads and writes).
    pub const X: Perms = Perms(4);
    /// Everything, administration included (`*`).
    pub const ALL: Perms = Perms(0xff);

    /// Whether every permission in `need` is in `self`.
    pub fn contains(self, need: Perms) -> bool {
        self.0 & need.0 == need.0
    }

    /// The union of both sets.
    pub fn union(self, other: Perms) -> Perms {
        Perms(self.0 | other.0)
    }

    fn parse(s: &str) -> Option<Perms> {
        if s == "*" {
            return Some(Perms::ALL);
        }
        let mut p = Perms::default();
        for c in s.chars() {
            let bit = match c {
                'r' => Perms::R,
                'w' => Perms::W,
                'x' => Perms::X,
                _ => return None,
            };
            if p.contains(bit) {
                return None;
            }
            p = p.union(bit);
        }
        (p != Perms::default()).then_some(p)
    }
}

impl fmt::Display for Perms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if *self == Perms::ALL {
            return f.write_str("*");
        }
        for (bit, c) in [(Perms::R, 'r'), (Perms::W, 'w'), (Perms::X, 'x')] {
            if self.contains(bit) {
                write!(f, "{c}")?;
            }
        }
        Ok(())
    }
}

/// Which pools a grant covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PoolMatch {
    /// Every pool.
    Any,
    /// Exactly this pool.
    Named(String),
    /// Pools whose name starts with this.
    Prefix(String),
}

impl PoolMatch {
    fn covers(&self, pool: Option<&str>) -> bool {
        match (self, pool) {
            (PoolMatch::Any, _) => true,
            (_, None) => false,
            (PoolMatch::Named(n), Some(p)) => n == p,
            (PoolMatch::Prefix(x), Some(p)) => p.starts_with(x.as_str()),
        }
    }
}

/// One `allow ...` clause.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// The permissions granted (none for a profile grant).
    pub perms: Perms,
    /// The profile named, if any.
    pub profile: Option<String>,
    /// Which pools it covers.
    pub pool: PoolMatch,
}

/// Everything an entity may do on one service.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ServiceCaps {
    /// The grants, in the order written.
    pub grants: Vec<Grant>,
}

impl ServiceCaps {
    /// Parses the capability string of `service`.
    pub fn parse(service: &str, cap: &str) -> Result<ServiceCaps, AuthError> {
        let bad = |why: String| AuthError::BadCaps {
            service: service.to_string(),
            cap: cap.to_string(),
            why,
        };
        if !SERVICES.contains(&service) {
            return Err(bad(format!(
                "unknown service (known: {})",
                SERVICES.join(", ")
            )));
        }
        let mut grants = Vec::new();
        for clause in cap.split(',') {
            let words: Vec<&str> = clause.split_whitespace().collect();
            let (first, rest) = match words.split_first() {
                Some((&"allow", rest)) => (rest.first().copied(), rest.get(1..).unwrap_or(&[])),
                Some((w, _)) => return Err(bad(format!("expected 'allow', found '{w}'"))),
                None => return Err(bad("empty grant".into())),
            };
            let (perms, profile, rest) = match first {
                Some("profile") => {
                    let name = rest
                        .first()
                        .ok_or_else(|| bad("'profile' needs a name".into()))?;
                    if !PROFILES.contains(name) {
                        return Err(bad(format!(
                            "unknown profile '{name}' (known: {})",
                            PROFILES.join(", ")
                        )));
                    }
                    (Perms::default(), Some(name.to_string()), &rest[1..])
                }
                Some(p) => {
                    let perms = Perms::parse(p)
                        .ok_or_else(|| bad(format!("'{p}' is not '*' or a set of r, w, x")))?;
                    (perms, None, rest)
                }
                None => return Err(bad("'allow' needs permissions".into())),
            };
            let pool = match rest {
                [] => PoolMatch::Any,
                [spec] if service == "osd" => {
                    if let Some(n) = spec.strip_prefix("pool=").filter(|n| !n.is_empty()) {
                        PoolMatch::Named(n.to_string())
                    } else if let Some(p) =
                        spec.strip_prefix("pool_prefix=").filter(|p| !p.is_empty())
                    {
                        PoolMatch::Prefix(p.to_string())
                    } else {
                        return Err(bad(format!(
                            "'{spec}': expected pool=NAME or pool_prefix=PREFIX"
                        )));
                    }
                }
                [_] => return Err(bad("a pool clause is only meaningful for osd".into())),
                more => return Err(bad(format!("unexpected '{}'", more.join(" ")))),
            };
            grants.push(Grant {
                perms,
                profile,
                pool,
            });
        }
        Ok(ServiceCaps { grants })
    }

    /// Whether some grant gives all of `need` on `pool` (`None`: an
    /// operation on no particular pool, which only unrestricted grants cover).
    pub fn allows(&self, need: Perms, pool: Option<&str>) -> bool {
        self.grants
            .iter()
            .any(|g| g.perms.contains(need) && g.pool.covers(pool))
    }

    /// Whether some grant names `profile` (or is `allow *`).
    pub fn has_profile(&self, profile: &str) -> bool {
        self.grants.iter().any(|g| {
            g.profile.as_deref() == Some(profile)
                || (g.perms == Perms::ALL && g.pool == PoolMatch::Any)
        })
    }
}

impl fmt::Display for ServiceCaps {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, g) in self.grants.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            match &g.profile {
                Some(p) => write!(f, "allow profile {p}")?,
                None => write!(f, "allow {}", g.perms)?,
            }
            match &g.pool {
                PoolMatch::Any => {}
                PoolMatch::Named(n) => write!(f, " pool={n}")?,
                PoolMatch::Prefix(p) => write!(f, " pool_prefix={p}")?,
            }
        }
        Ok(())
    }
}

/// Checks every service's capability string and returns them in the
/// canonical spelling (what `auth get` prints).
pub fn validate_caps(
    caps: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, AuthError> {
    caps.iter()
        .map(|(service, cap)| {
            Ok((
                service.clone(),
                ServiceCaps::parse(service, cap)?.to_string(),
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(service: &str, s: &str) -> ServiceCaps {
        ServiceCaps::parse(service, s).unwrap()
    }

    #[test]
    fn grants_cover_what_they_name_and_nothing_more() {
        let all = caps("mon", "allow *");
        assert!(all.allows(Perms::ALL, None));
        assert!(all.has_profile("osd"));
        let r = caps("mon", "allow r");
        assert!(r.allows(Perms::R, None));
        assert!(!r.allows(Perms::W, None));
        assert!(!r.allows(Perms::ALL, None));
        let rw = caps("mon", "allow rw");
        assert!(rw.allows(Perms::R.union(Perms::W), None));
        assert!(!rw.allows(Perms::ALL, None), "rw is not administration");

        let pools = caps("osd", "allow rwx pool=data, allow r pool_prefix=logs-");
        assert!(pools.allows(Perms::W, Some("data")));
        assert!(!pools.allows(Perms::W, Some("data2")));
        assert!(pools.allows(Perms::R, Some("logs-1")));
        assert!(!pools.allows(Perms::W, Some("logs-1")));
        assert!(
            !pools.allows(Perms::R, None),
            "a pool grant is not a global one"
        );
        assert!(!pools.has_profile("osd"));
        assert!(caps("osd", "allow profile osd").has_profile("osd"));
        assert!(!caps("osd", "allow profile osd").allows(Perms::R, Some("data")));
    }

    #[test]
    fn canonical_spelling_round_trips() {
        for (svc, s, canon) in [
            ("mon", "allow *", "allow *"),
            ("mon", "allow  rw", "allow rw"),
            (
                "osd",
                "allow rwx pool=data,allow r",
                "allow rwx pool=data, allow r",
            ),
            ("osd", "allow profile osd", "allow profile osd"),
            ("osd", "allow xr pool_prefix=t", "allow rx pool_prefix=t"),
        ] {
            let c = caps(svc, s);
            assert_eq!(c.to_string(), canon);
            assert_eq!(caps(svc, canon), c);
        }
    }

    #[test]
    fn bad_caps_say_what_is_wrong() {
        for (svc, s, why) in [
            ("mgr", "allow *", "unknown service"),
            ("mon", "", "empty grant"),
            ("mon", "permit r", "expected 'allow'"),
            ("mon", "allow", "needs permissions"),
            ("mon", "allow rwz", "set of r, w, x"),
            ("mon", "allow rr", "set of r, w, x"),
            ("mon", "allow r pool=data", "only meaningful for osd"),
            ("osd", "allow r pool=", "expected pool=NAME"),
            ("osd", "allow r pool=a b", "unexpected"),
            ("osd", "allow profile rbd", "unknown profile"),
            ("osd", "allow r,", "empty grant"),
        ] {
            let e = ServiceCaps::parse(svc, s).unwrap_err().to_string();
            assert!(e.contains(why), "{svc} '{s}': {e}");
        }
        let m = BTreeMap::from([("mon".to_string(), "allow  r".to_string())]);
        assert_eq!(validate_caps(&m).unwrap()["mon"], "allow r");
    }
}
