//! The central configuration the monitors keep (`meridian config set WHO
//! KEY VALUE`, Ceph's `ceph config set`): which sections exist, which keys
//! may be set there, and how a daemon lays the database over its file.
//!
//! Precedence, lowest first, as in Ceph: built-in defaults, the central
//! database (`global`, then the daemon type, then the daemon itself), then
//! the keys the host's file sets in `[global]`. A file therefore pins a
//! setting on its host; `meridian config set` changes everything else.
//! Gateways and OSDs read the database when they start; monitors follow
//! it as it changes.

use crate::config::{ConfigError, GlobalSection, canonical_key};

/// Keys a daemon needs before it can reach the monitors, so only the file
/// can set them.
const FILE_ONLY: &[&str] = &[
    "fsid",
    "mon_host",
    "keyring",
    "auth_required",
    "tls_ca_file",
    "internal_tls",
    "mon_tick_ms",
];

/// RGW options the operators' runbooks set that have no counterpart here,
/// each with the reason: accepted, not stored.
const NO_EFFECT: &[(&str, &str)] = &[
    (
        "rgw_data_log_changes",
        "the data log is always on: multi-site sync and log trimming read it",
    ),
    (
        "rgw_sync_trace_history_size",
        "sync keeps no trace ring; `sync status`, `sync error list` and the gateway log show its work",
    ),
    (
        "rgw_sync_checkpoint_interval",
        "sync saves a shard's position after every applied window, so a restart repeats at most one window",
    ),
    (
        "rgw_enable_apis",
        "a gateway always serves S3, and Prometheus metrics on rgw_prometheus_port or its metrics_addr; administration is the meridian CLI",
    ),
];

/// What a `config set` amounts to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CentralOption {
    /// Store `value` under the canonical `key`.
    Store {
        /// The key's canonical name (RGW aliases resolved).
        key: String,
        /// The value as given.
        value: String,
    },
    /// An RGW option with no effect here: nothing is stored, for this reason.
    NoEffect(&'static str),
}

/// Checks a section name: `global`, `mon`, `mon.ID`, `osd`, `osd.N`,
/// `client`, `client.rgw` or `client.rgw.ID` (a gateway's id).
pub fn check_who(who: &str) -> Result<(), ConfigError> {
    let bad = |why: &str| ConfigError::Option {
        key: who.to_string(),
        message: format!(
            "{why}; sections are global, mon, mon.ID, osd, osd.N, client, client.rgw and client.rgw.ID"
        ),
    };
    let id_ok = |id: &str, numeric: bool| {
        !id.is_empty()
            && id.len() <= 64
            && id.chars().all(|c| {
                if numeric {
                    c.is_ascii_digit()
                } else {
                    c.is_ascii_alphanumeric() || c == '-' || c == '_'
                }
            })
    };
    match who {
        "global" | "mon" | "osd" | "client" | "client.rgw" => Ok(()),
        _ => {
            let ok = if let Some(id) = who.strip_prefix("client.rgw.") {
                id_ok(id, false)
            } else if let Some(id) = who.strip_prefix("mon.") {
                id_ok(id, true)
            } else if let Some(id) = who.strip_prefix("osd.") {
                id_ok(id, true)
            } else {
                return Err(bad("unknown section"));
            };
            if ok {
                Ok(())
            } else {
                Err(bad("malformed daemon id"))
            }
        }
    }
}

/// Checks `config set WHO KEY VALUE`: the section, that the key may be set
/// centrally, and that the value has the key's type.
pub fn check_option(who: &str, key: &str, value: &str) -> Result<CentralOption, ConfigError> {
    check_who(who)?;
    let err = |message: String| ConfigError::Option {
        key: key.to_string(),
        message,
    };
    if let Some((_, why)) = NO_EFFECT.iter().find(|(k, _)| *k == key) {
        if key == "rgw_data_log_changes" && !matches!(value.trim(), "true" | "1") {
            return Err(err(format!("cannot be turned off: {why}")));
        }
        return Ok(CentralOption::NoEffect(why));
    }
    let canonical = canonical_key(key);
    if FILE_ONLY.contains(&canonical) {
        return Err(err(
            "a daemon needs it before it can reach the monitors: set it in the configuration file"
                .into(),
        ));
    }
    if value.contains('\n') {
        return Err(err("a value is one line".into()));
    }
    GlobalSection::default().set_option(&format!("{canonical}={value}"))?;
    match canonical {
        "rgw_crypt_default_encryption_key" => crate::crypt_keys::parse(value, ""),
        "rgw_crypt_s3_kms_encryption_keys" => crate::crypt_keys::parse("", value),
        _ => Ok(Default::default()),
    }
    .map_err(err)?;
    Ok(CentralOption::Store {
        key: canonical.to_string(),
        value: value.to_string(),
    })
}

/// The sections monitor `id` reads, most general first.
pub fn mon_chain(id: u64) -> Vec<String> {
    vec!["global".into(), "mon".into(), format!("mon.{id}")]
}

/// The sections OSD `id` reads, most general first.
pub fn osd_chain(id: u32) -> Vec<String> {
    vec!["global".into(), "osd".into(), format!("osd.{id}")]
}

/// The sections gateway `id` reads, most general first.
pub fn gateway_chain(id: &str) -> Vec<String> {
    vec![
        "global".into(),
        "client".into(),
        "client.rgw".into(),
        format!("client.rgw.{id}"),
    ]
}

/// The sections that apply to `who`, most general first (what `config
/// get WHO` resolves).
pub fn chain_of(who: &str) -> Vec<String> {
    let mut chain = vec!["global".to_string()];
    if who == "global" {
        return chain;
    }
    if who.starts_with("client") {
        chain.push("client".into());
        if who.starts_with("client.rgw") && who != "client" {
            chain.push("client.rgw".into());
        }
    } else if let Some((kind, _)) = who.split_once('.') {
        chain.push(kind.into());
    }
    if !chain.iter().any(|c| c == who) {
        chain.push(who.to_string());
    }
    chain
}

/// The built-in default of the `[global]` setting `key`, as TOML spells
/// it (strings bare).
pub fn default_value(key: &str) -> Option<String> {
    let table = toml::Table::try_from(GlobalSection::default()).ok()?;
    Some(match table.get(canonical_key(key))? {
        toml::Value::String(s) => s.clone(),
        other => other.to_string(),
    })
}

/// The sections a command-line tool reads.
pub fn client_chain() -> Vec<String> {
    vec!["global".into(), "client".into()]
}

/// What happened to one central option when a daemon laid it over its file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// Now in effect.
    Set {
        /// Section it came from.
        who: String,
        /// Key.
        key: String,
        /// Value.
        value: String,
    },
    /// The host's file sets the key; the file wins.
    Shadowed {
        /// Section it came from.
        who: String,
        /// Key.
        key: String,
    },
    /// This build refuses the value (a key it does not know, or a bad value).
    Refused {
        /// Section it came from.
        who: String,
        /// Key.
        key: String,
        /// Why.
        error: String,
    },
}

/// Lays the database `options` (`(who, key, value)`) for the sections of
/// `chain` over `global`, in chain order, skipping keys in `file_keys`.
pub fn apply_options(
    global: &mut GlobalSection,
    file_keys: &std::collections::BTreeSet<String>,
    chain: &[String],
    options: &[(String, String, String)],
) -> Vec<Applied> {
    let mut report = Vec::new();
    for section in chain {
        for (who, key, value) in options.iter().filter(|(w, _, _)| w == section) {
            let key = canonical_key(key).to_string();
            if file_keys.contains(&key) {
                report.push(Applied::Shadowed {
                    who: who.clone(),
                    key,
                });
                continue;
            }
            if FILE_ONLY.contains(&key.as_str()) {
                continue;
            }
            match global.set_option(&format!("{key}={value}")) {
                Ok(()) => report.push(Applied::Set {
                    who: who.clone(),
                    key,
                    value: value.clone(),
                }),
                Err(e) => report.push(Applied::Refused {
                    who: who.clone(),
                    key,
                    error: e.to_string(),
                }),
            }
        }
    }
    report
}

/// Logs what [`apply_options`] did, as a daemon starting up.
pub fn log_applied(daemon: &str, report: &[Applied]) {
    for a in report {
        match a {
            Applied::Set { who, key, value } => {
                tracing::info!(%daemon, section = %who, %key, %value, "central config applied");
            }
            Applied::Shadowed { who, key } => tracing::warn!(
                %daemon, section = %who, %key,
                "central config not applied: this host's configuration file sets it"
            ),
            Applied::Refused { who, key, error } => tracing::warn!(
                %daemon, section = %who, %key, %error,
                "central config refused by this build"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_and_keys_are_checked() {
        for ok in [
            "global",
            "mon",
            "mon.1",
            "osd.12",
            "client.rgw",
            "client.rgw.gw-a_1",
        ] {
            check_who(ok).unwrap();
        }
        for bad in [
            "",
            "rgw",
            "osd.x",
            "mon.",
            "client.rgw.",
            "client.rgw.a b",
            "client.admin",
        ] {
            assert!(check_who(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            check_option("client.rgw", "rgw_sync_lease_period", "120").unwrap(),
            CentralOption::Store {
                key: "rgw_sync_lease_s".into(),
                value: "120".into()
            }
        );
        assert!(matches!(
            check_option("client.rgw", "rgw_sync_checkpoint_interval", "300").unwrap(),
            CentralOption::NoEffect(_)
        ));
        assert!(check_option("client.rgw", "rgw_data_log_changes", "true").is_ok());
        assert!(check_option("client.rgw", "rgw_data_log_changes", "false").is_err());
        let e = check_option("global", "fsid", "x").unwrap_err();
        assert!(e.to_string().contains("configuration file"), "{e}");
        assert!(check_option("osd", "osd_max_pg_log_entries", "many").is_err());
        assert!(check_option("osd", "no_such_option", "1").is_err());
        assert!(check_option("bogus", "osd_max_pg_log_entries", "1").is_err());
    }

    #[test]
    fn chains_run_from_global_to_the_daemon() {
        assert_eq!(chain_of("global"), ["global"]);
        assert_eq!(chain_of("osd"), ["global", "osd"]);
        assert_eq!(chain_of("osd.3"), osd_chain(3));
        assert_eq!(chain_of("mon.1"), mon_chain(1));
        assert_eq!(chain_of("client.rgw"), ["global", "client", "client.rgw"]);
        assert_eq!(chain_of("client.rgw.a"), gateway_chain("a"));
        assert_eq!(chain_of("client"), client_chain());
    }

    #[test]
    fn the_most_specific_section_wins_and_the_file_pins_its_keys() {
        let options: Vec<(String, String, String)> = [
            ("client.rgw.a", "rgw_sync_window", "7"),
            ("global", "rgw_sync_window", "3"),
            ("client.rgw", "rgw_sync_lease_period", "120"),
            ("client.rgw", "rgw_gc_processor_period_s", "5"),
            ("osd", "rgw_sync_window", "99"),
        ]
        .iter()
        .map(|(w, k, v)| (w.to_string(), k.to_string(), v.to_string()))
        .collect();
        let file: std::collections::BTreeSet<String> =
            ["rgw_gc_processor_period_s".to_string()].into();
        let mut g = GlobalSection::default();
        let report = apply_options(&mut g, &file, &gateway_chain("a"), &options);
        assert_eq!(g.rgw_sync_window, 7);
        assert_eq!(g.rgw_sync_lease_s, 120);
        assert_eq!(
            g.rgw_gc_processor_period_s,
            GlobalSection::default().rgw_gc_processor_period_s
        );
        assert!(report.contains(&Applied::Shadowed {
            who: "client.rgw".into(),
            key: "rgw_gc_processor_period_s".into()
        }));
        let mut other = GlobalSection::default();
        apply_options(&mut other, &file, &gateway_chain("b"), &options);
        assert_eq!(
            other.rgw_sync_window, 3,
            "another gateway gets global's value"
        );
    }
}
