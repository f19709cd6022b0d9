//! A standalone agent bound to one source→destination pair, configured as
//! seed 001's `radosgw-agent` is: a small file of `key: value` lines with the
//! source and destination endpoints and the system keys for each.
//!
//! ```text
//! source: http://us-east.example.net:7480     # optional (see below)
//! src_access_key: DG8RE354EFPZBICHIAF0
//! src_secret_key: i3U0HiRP8CXaBWrcF8bbh6CbsxGYuPPwRkixfFSb
//! destination: http://us-west.example.net:7480
//! dest_access_key: U60RFI6B08F32T2PD30G
//! dest_secret_key: W3HuUor7Gl1Ee93pA2pq2wFk1JMQ7hTrSDecYExl
//! log_file: /var/log/meridian/sync-us-east-us-west.log
//! ```
//!
//! The agent writes through the destination zone's cluster (it runs with
//! that cluster's `meridian.toml`), so the destination endpoint serves to
//! name and check the destination: the agent asks it, signed with the
//! `dest_*` key, which zone it is. The source is asked the same with the
//! `src_*` key, and every request to it is signed with that key. Without
//! `source:` the source is chosen as RGW's agent chose it: the master zone of
//! the destination's zonegroup, or with `--metadata-only` the realm's
//! metadata master; its endpoints then come from the period.

use crate::SyncError;
use crate::agent::SyncPlan;
use crate::remote::RemoteZone;
use meridian_proto::mon::ClusterMap;
use meridian_proto::multisite::{Period, SystemKey};
use std::path::PathBuf;

/// Why an agent config cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PairError {
    /// A line is not `key: value`, or names an unknown key.
    #[error("line {line}: {msg}")]
    Syntax {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        msg: String,
    },
    /// A required key is absent.
    #[error("missing `{0}`")]
    Missing(&'static str),
    /// The endpoints or keys do not describe a pair this agent can run.
    #[error("{0}")]
    Invalid(String),
}

/// An agent config file, parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentConfig {
    /// Source endpoints (empty: chosen from the period).
    pub source: Vec<String>,
    /// Key requests to the source are signed with.
    pub src_key: SystemKey,
    /// Destination endpoints (to identify and check the destination zone).
    pub destination: Vec<String>,
    /// Key the destination is asked with.
    pub dest_key: SystemKey,
    /// Where progress lines go (None: standard output).
    pub log_file: Option<PathBuf>,
}

const KEYS: [&str; 7] = [
    "source",
    "src_access_key",
    "src_secret_key",
    "destination",
    "dest_access_key",
    "dest_secret_key",
    "log_file",
];

impl AgentConfig {
    /// Parses `text`: `key: value` lines, `#` comments and blank lines.
    /// Endpoints may be comma-separated lists.
    pub fn parse(text: &str) -> Result<AgentConfig, PairError> {
        let mut seen: std::collections::BTreeMap<&'static str, String> = Default::default();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.split_once(" #").map_or(raw, |(l, _)| l).trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let syntax = |msg: String| PairError::Syntax { line: i + 1, msg };
            // A key is one word, so `destination http://x` (no colon after
            // the key) is a syntax error, not an unknown key `destination http`.
            let (k, v) = line
                .split_once(':')
                .map(|(k, v)| (k.trim(), v))
                .filter(|(k, _)| !k.is_empty() && !k.contains(char::is_whitespace))
                .ok_or_else(|| syntax(format!("expected `key: value`, got {line:?}")))?;
            let key = KEYS
                .iter()
                .find(|x| **x == k)
                .ok_or_else(|| syntax(format!("unknown key {k:?} (known: {})", KEYS.join(", "))))?;
            let v = v.trim().trim_matches('"').to_string();
            if seen.insert(key, v).is_some() {
                return Err(syntax(format!("`{k}` given twice")));
            }
        }
        let mut take = |k: &'static str| seen.remove(k).filter(|v| !v.is_empty());
        let endpoints = |v: Option<String>, what: &str| -> Result<Vec<String>, PairError> {
            let eps: Vec<String> = v
                .unwrap_or_default()
                .split(',')
                .map(|e| e.trim().trim_end_matches('/').to_string())
                .filter(|e| !e.is_empty())
                .collect();
            match eps
                .iter()
                .find(|e| !e.starts_with("http://") && !e.starts_with("https://"))
            {
                Some(bad) => Err(PairError::Invalid(format!(
                    "{what} endpoint {bad:?} is not an http:// or https:// URL"
                ))),
                None => Ok(eps),
            }
        };
        let source = endpoints(take("source"), "source")?;
        let destination = endpoints(take("destination"), "destination")?;
        if destination.is_empty() {
            return Err(PairError::Missing("destination"));
        }
        let src_key = SystemKey {
            access_key: take("src_access_key").ok_or(PairError::Missing("src_access_key"))?,
            secret_key: take("src_secret_key").ok_or(PairError::Missing("src_secret_key"))?,
        };
        let dest_key = SystemKey {
            access_key: take("dest_access_key").ok_or(PairError::Missing("dest_access_key"))?,
            secret_key: take("dest_secret_key").ok_or(PairError::Missing("dest_secret_key"))?,
        };
        Ok(AgentConfig {
            source,
            src_key,
            destination,
            dest_key,
            log_file: take("log_file").map(PathBuf::from),
        })
    }
}

/// The pair an agent runs, resolved against the zones' answers and the map.
#[derive(Debug, Clone, PartialEq)]
pub struct Pair {
    /// Destination zone name (opened in the local cluster).
    pub dest_zone: String,
    /// Source zone id.
    pub source_id: String,
    /// Source endpoints from the config (empty: the period's).
    pub source_endpoints: Vec<String>,
    /// Key requests to the source are signed with.
    pub src_key: SystemKey,
    /// Metadata only.
    pub metadata_only: bool,
}

impl Pair {
    /// What this pair syncs in `map`: the zone's plan narrowed to the source.
    /// A period in which the source no longer feeds the destination leaves
    /// the plan empty (the agent idles and says so).
    pub fn plan(&self, map: &ClusterMap) -> SyncPlan {
        let mut plan = SyncPlan::of(map, &self.dest_zone);
        let ours = |(n, id, eps): (String, String, Vec<String>)| {
            (id == self.source_id).then(|| {
                let eps = if self.source_endpoints.is_empty() {
                    eps
                } else {
                    self.source_endpoints.clone()
                };
                (n, id, eps)
            })
        };
        plan.master = plan.master.and_then(ours);
        plan.sources = if self.metadata_only {
            Vec::new()
        } else {
            plan.sources.into_iter().filter_map(ours).collect()
        };
        plan.key = Some((
            self.src_key.access_key.clone(),
            self.src_key.secret_key.clone(),
        ));
        plan
    }
}

fn current_period(map: &ClusterMap, zone_id: &str) -> Option<Period> {
    let ms = map.multisite.as_ref()?;
    let realm = ms.realms.iter().find(|r| {
        ms.zones
            .iter()
            .any(|z| z.id == zone_id && z.realm_id == r.id)
    })?;
    ms.periods
        .iter()
        .find(|p| p.id == realm.current_period)
        .cloned()
}

/// Resolves `conf` into a pair: asks the destination and the source who
/// they are (checking both keys), finds the destination among the local
/// cluster's zones, and checks the source feeds it in the current period.
pub async fn resolve(
    conf: &AgentConfig,
    map: &ClusterMap,
    metadata_only: bool,
) -> Result<Pair, PairError> {
    let dest_id = whoami("destination", &conf.destination, &conf.dest_key, "dest").await?;
    let ms = map.multisite.clone().unwrap_or_default();
    let dest = ms.zones.iter().find(|z| z.id == dest_id).ok_or_else(|| {
        PairError::Invalid(format!(
            "the destination answers as zone {dest_id}, which is not a zone of this cluster: \
             run the agent with the destination cluster's config"
        ))
    })?;
    let period = current_period(map, &dest_id).ok_or_else(|| {
        PairError::Invalid(format!(
            "zone {} has no committed period (period update --commit)",
            dest.name
        ))
    })?;
    let zonegroup = period
        .zonegroups
        .iter()
        .find(|g| g.zones.iter().any(|z| z.id == dest_id))
        .ok_or_else(|| {
            PairError::Invalid(format!(
                "zone {} is in no zonegroup of the current period",
                dest.name
            ))
        })?;
    let source_id = if conf.source.is_empty() {
        let (id, what) = if metadata_only {
            (&period.master_zone, "the realm's metadata master")
        } else {
            (&zonegroup.master_zone, "its zonegroup's master")
        };
        if id.is_empty() || *id == dest_id {
            return Err(PairError::Invalid(format!(
                "zone {} is {what}: name the zone to sync from with `source:`",
                dest.name
            )));
        }
        id.clone()
    } else {
        whoami("source", &conf.source, &conf.src_key, "src").await?
    };
    if source_id == dest_id {
        return Err(PairError::Invalid(format!(
            "source and destination are the same zone ({})",
            dest.name
        )));
    }
    let name_of = |id: &str| {
        period
            .zonegroups
            .iter()
            .flat_map(|g| g.zones.iter())
            .find(|z| z.id == id)
            .map(|z| z.name.clone())
    };
    let source_name = name_of(&source_id).ok_or_else(|| {
        PairError::Invalid(format!(
            "the source answers as zone {source_id}, which is not in the realm's current period"
        ))
    })?;
    if metadata_only && period.master_zone != source_id {
        return Err(PairError::Invalid(format!(
            "metadata comes from the realm's metadata master ({}), not from {source_name}",
            name_of(&period.master_zone).unwrap_or_else(|| period.master_zone.clone())
        )));
    }
    if !metadata_only && !zonegroup.zones.iter().any(|z| z.id == source_id) {
        return Err(PairError::Invalid(format!(
            "{source_name} is not in zonegroup {} of {}: data only syncs within a zonegroup \
             (use --metadata-only between zonegroup masters)",
            zonegroup.name, dest.name
        )));
    }
    let pair = Pair {
        dest_zone: dest.name.clone(),
        source_id,
        source_endpoints: conf.source.clone(),
        src_key: conf.src_key.clone(),
        metadata_only,
    };
    let plan = pair.plan(map);
    if plan.master.is_none() && plan.sources.is_empty() {
        return Err(PairError::Invalid(format!(
            "zone {} does not sync from {source_name} in the current period \
             (sync_from, or no endpoints for {source_name})",
            dest.name
        )));
    }
    Ok(pair)
}

/// Asks the zone at `endpoints` (the pair's `side`, keys `{prefix}_*`)
/// which zone it is, with the key check that implies.
async fn whoami(
    side: &str,
    endpoints: &[String],
    key: &SystemKey,
    prefix: &str,
) -> Result<String, PairError> {
    let zone = RemoteZone {
        name: String::new(),
        id: String::new(),
        endpoints: endpoints.to_vec(),
        key: key.clone(),
        links: Default::default(),
    };
    zone.whoami().await.map_err(|e| {
        // Without the "source zone" prefix, which would mislead for the destination.
        let reason = match e {
            SyncError::Remote(m) => m,
            e => e.to_string(),
        };
        PairError::Invalid(format!(
            "{side} {}: {reason} (check the endpoint and {prefix}_access_key/{prefix}_secret_key)",
            endpoints.join(",")
        ))
    })
}

impl From<SyncError> for PairError {
    fn from(e: SyncError) -> Self {
        PairError::Invalid(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED: &str = "\
src_access_key: DG8RE354EFPZBICHIAF0
src_secret_key: i3U0HiRP8CXaBWrcF8bbh6CbsxGYuPPwRkixfFSb
destination: https://us-west.storage.net:80
dest_access_key: U60RFI6B08F32T2PD30G
dest_secret_key: W3HuUor7Gl1Ee93pA2pq2wFk1JMQ7hTrSDecYExl
log_file: /var/log/radosgw/radosgw-sync-us-east-west.log
";

    #[test]
    fn the_seed_example_parses() {
        let c = AgentConfig::parse(SEED).unwrap();
        assert!(c.source.is_empty());
        assert_eq!(c.destination, ["https://us-west.storage.net:80"]);
        assert_eq!(c.src_key.access_key, "DG8RE354EFPZBICHIAF0");
        assert_eq!(
            c.dest_key.secret_key,
            "W3HuUor7Gl1Ee93pA2pq2wFk1JMQ7hTrSDecYExl"
        );
        assert_eq!(
            c.log_file.as_deref(),
            Some(std::path::Path::new(
                "/var/log/radosgw/radosgw-sync-us-east-west.log"
            ))
        );
    }

    #[test]
    fn endpoint_lists_and_comments() {
        let c = AgentConfig::parse(&format!(
            "# pair us-east -> us-west\nsource: http://a:1/, http://b:2  # two gateways\n\n{SEED}"
        ))
        .unwrap();
        assert_eq!(c.source, ["http://a:1", "http://b:2"]);
    }

    fn zone(id: &str, eps: &[&str]) -> meridian_proto::multisite::Zone {
        meridian_proto::multisite::Zone {
            id: id.into(),
            name: format!("name-{id}"),
            endpoints: eps.iter().map(|e| e.to_string()).collect(),
            realm_id: "r".into(),
            sync_from_all: true,
            ..Default::default()
        }
    }

    /// Realm master `a` in zonegroup us with `b`; `c` in zonegroup eu.
    fn map() -> ClusterMap {
        use meridian_proto::multisite::*;
        let (a, b, c) = (
            zone("a", &["http://a:1"]),
            zone("b", &["http://b:1"]),
            zone("c", &["http://c:1"]),
        );
        let period = Period {
            id: "p".into(),
            epoch: 1,
            realm_id: "r".into(),
            master_zonegroup: "us".into(),
            master_zone: "a".into(),
            zonegroups: vec![
                Zonegroup {
                    id: "us".into(),
                    name: "us".into(),
                    master_zone: "a".into(),
                    zones: vec![a.clone(), b.clone()],
                    ..Default::default()
                },
                Zonegroup {
                    id: "eu".into(),
                    name: "eu".into(),
                    master_zone: "c".into(),
                    zones: vec![c.clone()],
                    ..Default::default()
                },
            ],
            ..Default::default()
        };
        ClusterMap {
            multisite: Some(MultisiteState {
                realms: vec![Realm {
                    id: "r".into(),
                    name: "r".into(),
                    current_period: "p".into(),
                    epoch: 1,
                }],
                zones: vec![a, b, c],
                periods: vec![period],
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn pair(dest: &str, source: &str, eps: &[&str], metadata_only: bool) -> Pair {
        Pair {
            dest_zone: format!("name-{dest}"),
            source_id: source.into(),
            source_endpoints: eps.iter().map(|e| e.to_string()).collect(),
            src_key: SystemKey {
                access_key: "AK".into(),
                secret_key: "SK".into(),
            },
            metadata_only,
        }
    }

    #[test]
    fn a_pair_narrows_the_zone_plan_to_its_source() {
        let m = map();
        let full = pair("b", "a", &[], false).plan(&m);
        assert_eq!(full.master.as_ref().map(|m| m.1.as_str()), Some("a"));
        assert_eq!(full.sources.len(), 1);
        assert_eq!(full.sources[0].2, ["http://a:1"]);
        assert_eq!(full.key, Some(("AK".into(), "SK".into())));
        let routed = pair("b", "a", &["http://proxy:9"], false).plan(&m);
        assert_eq!(routed.sources[0].2, ["http://proxy:9"]);
        assert_eq!(routed.master.unwrap().2, ["http://proxy:9"]);
        let meta = pair("b", "a", &[], true).plan(&m);
        assert!(meta.master.is_some() && meta.sources.is_empty());
        // The master of zonegroup eu: metadata from a, no data source.
        let eu = pair("c", "a", &[], true).plan(&m);
        assert_eq!(eu.master.unwrap().1, "a");
        assert!(eu.sources.is_empty());
        // A source that does not feed the destination leaves nothing to run.
        let none = pair("b", "c", &[], false).plan(&m);
        assert!(none.master.is_none() && none.sources.is_empty());
    }

    #[test]
    fn bad_files_name_the_problem() {
        let e = AgentConfig::parse("destination http://x\n").unwrap_err();
        assert!(
            e.to_string().contains("line 1: expected `key: value`"),
            "{e}"
        );
        let e = AgentConfig::parse(&format!("{SEED}dest_zone: x\n")).unwrap_err();
        assert!(
            e.to_string().contains("line 7: unknown key \"dest_zone\""),
            "{e}"
        );
        let e = AgentConfig::parse(&format!("{SEED}log_file: y\n")).unwrap_err();
        assert!(e.to_string().contains("given twice"), "{e}");
        let e = AgentConfig::parse(&SEED.replace("destination: https://", "destination: ftp://"))
            .unwrap_err();
        assert!(e.to_string().contains("not an http"), "{e}");
        let no_secret: String = SEED
            .lines()
            .filter(|l| !l.starts_with("src_secret_key"))
            .map(|l| format!("{l}\n"))
            .collect();
        assert_eq!(
            AgentConfig::parse(&no_secret).unwrap_err().to_string(),
            "missing `src_secret_key`"
        );
        assert_eq!(
            AgentConfig::parse("").unwrap_err().to_string(),
            "missing `destination`"
        );
    }
}
