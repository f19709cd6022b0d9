//! What a sync policy says about one bucket between two zones, with Ceph
//! RGW's semantics: a zonegroup policy (committed through the period) and
//! a bucket's own policy each resolve to forbidden, enabled, allowed or
//! silent; the zonegroup's verdict bounds the bucket's.
//!
//! - A group *covers* (source, dest, bucket) when one of its flows lets
//!   dest sync from source (a symmetrical flow naming both, or a
//!   directional flow source → dest) and one of its pipes names the
//!   zones and the bucket. A bucket group without flows takes the
//!   zonegroup's.
//! - Of the groups that cover, forbidden wins over enabled, enabled over
//!   allowed.
//! - A zonegroup without groups enables everything (each zone's
//!   `sync_from` still applies), as before policies existed.
//! - Zonegroup forbidden or silent: no sync, whatever the bucket says.
//!   Zonegroup enabled: sync unless the bucket forbids it. Zonegroup
//!   allowed: sync only where a bucket group enables it.
//!
//! Objects sync into the bucket of the same name; an enabled pipe's prefix
//! filters them (several enabled pipes: any of their prefixes).

use meridian_proto::multisite::{SyncGroup, SyncPipe, SyncPolicy};

/// A group's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum GroupStatus {
    /// Sync may happen where another level enables it.
    Allowed,
    /// Sync happens.
    Enabled,
    /// Sync does not happen, whatever other groups say.
    Forbidden,
}

impl GroupStatus {
    /// Parses `enabled|allowed|forbidden`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "enabled" => Some(Self::Enabled),
            "allowed" => Some(Self::Allowed),
            "forbidden" => Some(Self::Forbidden),
            _ => None,
        }
    }
}

/// A zone as policies name it (by name or id).
#[derive(Debug, Clone, Copy)]
pub struct ZoneRef<'a> {
    /// Zone name.
    pub name: &'a str,
    /// Zone id.
    pub id: &'a str,
}

impl ZoneRef<'_> {
    fn named_in(&self, list: &[String]) -> bool {
        list.is_empty() || list.iter().any(|z| self.is(z))
    }
    fn is(&self, z: &str) -> bool {
        z == "*" || z == self.name || z == self.id
    }
}

/// The verdict for one bucket from one zone to another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The bucket syncs; objects whose key starts with one of `prefixes`
    /// (an empty one: all). `pipes` names the `group/pipe`s that apply.
    Sync {
        /// Key prefixes.
        prefixes: Vec<String>,
        /// Applying pipes.
        pipes: Vec<String>,
    },
    /// It does not, and why.
    NoSync(String),
}

impl Verdict {
    /// Whether an object key is synced under this verdict.
    pub fn syncs_key(&self, key: &str) -> bool {
        match self {
            Verdict::Sync { prefixes, .. } => prefixes.iter().any(|p| key.starts_with(p.as_str())),
            Verdict::NoSync(_) => false,
        }
    }

    /// Whether the bucket syncs at all.
    pub fn syncs(&self) -> bool {
        matches!(self, Verdict::Sync { .. })
    }
}

/// A glob with `*` (any run of characters) and nothing else.
pub fn glob_matches(pattern: &str, s: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == s;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !s.starts_with(first) || s.len() < first.len() + last.len() || !s.ends_with(last) {
        return false;
    }
    let mut rest = &s[first.len()..s.len() - last.len()];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(i) => rest = &rest[i + mid.len()..],
            None => return false,
        }
    }
    true
}

fn bucket_named(pattern: &str, bucket: &str) -> bool {
    pattern.is_empty() || glob_matches(pattern, bucket)
}

/// Whether a group's flows let `dest` sync from `source`.
fn flows_admit(g: &SyncGroup, source: ZoneRef, dest: ZoneRef) -> bool {
    g.symmetrical
        .iter()
        .any(|f| f.zones.iter().any(|z| source.is(z)) && f.zones.iter().any(|z| dest.is(z)))
        || g.directional
            .iter()
            .any(|f| source.is(&f.source_zone) && dest.is(&f.dest_zone))
}

/// Whether a pipe names these zones and this bucket. Only pipes into the
/// bucket of the same name apply (a pipe to another bucket name is
/// refused when it is created).
fn pipe_covers(p: &SyncPipe, source: ZoneRef, dest: ZoneRef, bucket: &str) -> bool {
    source.named_in(&p.source_zones)
        && dest.named_in(&p.dest_zones)
        && bucket_named(&p.source_bucket, bucket)
        && bucket_named(&p.dest_bucket, bucket)
}

/// One level's verdict: the strongest status among the groups that cover,
/// with the covering pipes of that status.
fn level<'a>(
    policy: &'a SyncPolicy,
    source: ZoneRef,
    dest: ZoneRef,
    bucket: &str,
    inherit_flows: bool,
) -> Option<(GroupStatus, Vec<(&'a SyncGroup, &'a SyncPipe)>)> {
    let mut best: Option<(GroupStatus, Vec<(&SyncGroup, &SyncPipe)>)> = None;
    for g in &policy.groups {
        let Some(status) = GroupStatus::parse(&g.status) else {
            continue;
        };
        let inherits = inherit_flows && g.symmetrical.is_empty() && g.directional.is_empty();
        if !(inherits || flows_admit(g, source, dest)) {
            continue;
        }
        let pipes: Vec<_> = g
            .pipes
            .iter()
            .filter(|p| pipe_covers(p, source, dest, bucket))
            .map(|p| (g, p))
            .collect();
        if pipes.is_empty() {
            continue;
        }
        match &mut best {
            Some((s, ps)) if *s == status => ps.extend(pipes),
            Some((s, _)) if *s > status => {}
            _ => best = Some((status, pipes)),
        }
    }
    best
}

fn sync_of(pipes: &[(&SyncGroup, &SyncPipe)]) -> Verdict {
    let mut prefixes: Vec<String> = pipes.iter().map(|(_, p)| p.prefix.clone()).collect();
    prefixes.sort();
    prefixes.dedup();
    Verdict::Sync {
        prefixes,
        pipes: pipes
            .iter()
            .map(|(g, p)| format!("{}/{}", g.id, p.id))
            .collect(),
    }
}

fn names(pipes: &[(&SyncGroup, &SyncPipe)]) -> String {
    pipes
        .iter()
        .map(|(g, p)| format!("{}/{}", g.id, p.id))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Whether `bucket` (with its own policy, if any) syncs from `source` into
/// `dest` under the zonegroup's policy.
pub fn verdict(
    zonegroup: Option<&SyncPolicy>,
    bucket_policy: Option<&SyncPolicy>,
    bucket: &str,
    source: ZoneRef,
    dest: ZoneRef,
) -> Verdict {
    let unset = SyncPolicy::default();
    let zg = zonegroup.unwrap_or(&unset);
    let zg_level = if zg.groups.is_empty() {
        None
    } else {
        match level(zg, source, dest, bucket, false) {
            None => {
                return Verdict::NoSync(format!(
                    "no zonegroup sync group has a flow {} → {} and a pipe for bucket {bucket}",
                    source.name, dest.name
                ));
            }
            Some((GroupStatus::Forbidden, p)) => {
                return Verdict::NoSync(format!("forbidden by zonegroup pipe {}", names(&p)));
            }
            some => some,
        }
    };
    let b_level = bucket_policy.and_then(|bp| level(bp, source, dest, bucket, true));
    match (zg_level, b_level) {
        (_, Some((GroupStatus::Forbidden, p))) => {
            Verdict::NoSync(format!("forbidden by bucket pipe {}", names(&p)))
        }
        (_, Some((GroupStatus::Enabled, p))) => sync_of(&p),
        (None, _) => Verdict::Sync {
            prefixes: vec![String::new()],
            pipes: Vec::new(),
        },
        (Some((GroupStatus::Enabled, p)), _) => sync_of(&p),
        (Some((_, p)), _) => Verdict::NoSync(format!(
            "zonegroup pipe {} only allows it: no bucket sync group enables it",
            names(&p)
        )),
    }
}

/// [`verdict`] for a bucket record: `bucket sync disable` keeps it local
/// whatever the policies say.
pub fn bucket_verdict(
    zonegroup: Option<&SyncPolicy>,
    bucket: &crate::BucketInfo,
    source: ZoneRef,
    dest: ZoneRef,
) -> Verdict {
    if bucket.sync_disabled {
        return Verdict::NoSync("bucket sync disable".into());
    }
    verdict(
        zonegroup,
        bucket.sync_policy.as_ref(),
        &bucket.name,
        source,
        dest,
    )
}

/// Whether a group, enabled or allowed, has a flow that lets `dest` sync
/// from `source`.
pub fn group_admits(g: &SyncGroup, source: ZoneRef, dest: ZoneRef) -> bool {
    matches!(
        GroupStatus::parse(&g.status),
        Some(GroupStatus::Enabled | GroupStatus::Allowed)
    ) && flows_admit(g, source, dest)
}

/// Whether any bucket can sync from `source` into `dest` under the
/// zonegroup's policy (its flows, ignoring pipes): decides whether data
/// sync from `source` runs at all and whether `dest` reads our logs.
pub fn pair_admitted(zonegroup: Option<&SyncPolicy>, source: ZoneRef, dest: ZoneRef) -> bool {
    let Some(zg) = zonegroup.filter(|p| !p.groups.is_empty()) else {
        return true;
    };
    zg.groups.iter().any(|g| group_admits(g, source, dest))
}

#[cfg(test)]
mod tests {
    use super::*;
    use meridian_proto::multisite::{DirectionalFlow, SymmetricalFlow};

    const A: ZoneRef = ZoneRef {
        name: "us-east",
        id: "id-a",
    };
    const B: ZoneRef = ZoneRef {
        name: "us-west",
        id: "id-b",
    };

    fn group(id: &str, status: &str, sym: bool, pipe_bucket: &str) -> SyncGroup {
        SyncGroup {
            id: id.into(),
            status: status.into(),
            symmetrical: if sym {
                vec![SymmetricalFlow {
                    id: "all".into(),
                    zones: vec!["*".into()],
                }]
            } else {
                vec![]
            },
            directional: vec![],
            pipes: vec![SyncPipe {
                id: "p".into(),
                source_zones: vec!["*".into()],
                dest_zones: vec!["*".into()],
                source_bucket: pipe_bucket.into(),
                dest_bucket: pipe_bucket.into(),
                prefix: String::new(),
            }],
        }
    }

    fn policy(groups: Vec<SyncGroup>) -> SyncPolicy {
        SyncPolicy { groups }
    }

    #[test]
    fn globs_match_as_shell_stars() {
        assert!(glob_matches("critical-*", "critical-1"));
        assert!(glob_matches("*", "x"));
        assert!(glob_matches("a*b*c", "aXbYc"));
        assert!(!glob_matches("a*b*c", "aXcYb"));
        assert!(!glob_matches("critical-*", "other"));
        assert!(glob_matches("exact", "exact") && !glob_matches("exact", "exact2"));
        assert!(!glob_matches("ab*ba", "aba"));
    }

    #[test]
    fn no_policy_syncs_everything() {
        assert!(verdict(None, None, "b", A, B).syncs_key("k"));
        assert!(pair_admitted(None, A, B));
    }

    #[test]
    fn a_directional_flow_syncs_one_way_and_a_pipe_names_the_buckets() {
        let mut g = group("critical-data", "enabled", false, "critical-*");
        g.directional.push(DirectionalFlow {
            id: "east-to-west".into(),
            source_zone: "us-east".into(),
            dest_zone: "us-west".into(),
        });
        let zg = policy(vec![g]);
        assert!(verdict(Some(&zg), None, "critical-1", A, B).syncs());
        assert!(!verdict(Some(&zg), None, "critical-1", B, A).syncs());
        assert!(!verdict(Some(&zg), None, "other", A, B).syncs());
        assert!(pair_admitted(Some(&zg), A, B));
        assert!(!pair_admitted(Some(&zg), B, A));
    }

    #[test]
    fn allowed_at_the_zonegroup_syncs_only_buckets_that_enable_it() {
        let zg = policy(vec![group("g", "allowed", true, "*")]);
        assert!(!verdict(Some(&zg), None, "b", A, B).syncs());
        let bp = policy(vec![group("b", "enabled", false, "")]);
        assert!(verdict(Some(&zg), Some(&bp), "b", A, B).syncs());
        assert!(verdict(Some(&zg), Some(&bp), "b", B, A).syncs());
    }

    #[test]
    fn forbidden_wins_at_either_level_and_a_bucket_cannot_exceed_its_zonegroup() {
        let zg = policy(vec![
            group("all", "enabled", true, "*"),
            group("no-tmp", "forbidden", true, "tmp-*"),
        ]);
        assert!(verdict(Some(&zg), None, "data", A, B).syncs());
        let enable = policy(vec![group("b", "enabled", false, "")]);
        assert!(!verdict(Some(&zg), Some(&enable), "tmp-1", A, B).syncs());
        let forbid = policy(vec![group("b", "forbidden", false, "")]);
        assert!(!verdict(Some(&zg), Some(&forbid), "data", A, B).syncs());
        // Nothing at the zonegroup covers the bucket: the bucket cannot enable it.
        let narrow = policy(vec![group("g", "allowed", true, "critical-*")]);
        assert!(!verdict(Some(&narrow), Some(&enable), "data", A, B).syncs());
    }

    #[test]
    fn prefixes_of_every_enabled_pipe_filter_keys() {
        let mut g = group("g", "enabled", true, "*");
        g.pipes[0].prefix = "logs/".into();
        let mut p2 = g.pipes[0].clone();
        p2.id = "p2".into();
        p2.prefix = "img/".into();
        g.pipes.push(p2);
        let v = verdict(Some(&policy(vec![g])), None, "b", A, B);
        assert!(v.syncs_key("logs/1") && v.syncs_key("img/2"));
        assert!(!v.syncs_key("other"));
    }

    #[test]
    fn zones_are_named_by_name_or_id() {
        let mut g = group("g", "enabled", false, "*");
        g.directional.push(DirectionalFlow {
            id: "f".into(),
            source_zone: "id-a".into(),
            dest_zone: "us-west".into(),
        });
        assert!(verdict(Some(&policy(vec![g])), None, "b", A, B).syncs());
    }
}
