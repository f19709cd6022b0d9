//! The central configuration database in the monitors' replicated state
//! (`meridian config set|rm`): options by section and key. The monitor that
//! takes a command checks it fully (`meridian_common::central`); applying it
//! only re-checks its shape, so every monitor applies the same log alike.

use crate::state::CommandError;
use meridian_proto::mon::{ConfigOption, ConfigRemove, ConfigSet};
use std::collections::BTreeMap;

/// Most options the database holds (a bound on what every daemon fetches).
pub const MAX_OPTIONS: usize = 4096;

/// Options by `(section, key)`, and a counter bumped by every change.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigDb {
    /// `(who, key) -> value`.
    pub options: BTreeMap<(String, String), String>,
    /// Bumped by every applied change.
    pub version: u64,
}

impl ConfigDb {
    /// Restores the database from a snapshot image's fields.
    pub fn from_image(options: Vec<ConfigOption>, version: u64) -> Self {
        Self {
            options: options
                .into_iter()
                .map(|o| ((o.who, o.key), o.value))
                .collect(),
            version,
        }
    }

    /// Every option, in section then key order.
    pub fn to_options(&self) -> Vec<ConfigOption> {
        self.select(&[])
    }

    /// The options of the sections `who` (all when empty).
    pub fn select(&self, who: &[String]) -> Vec<ConfigOption> {
        self.options
            .iter()
            .filter(|((w, _), _)| who.is_empty() || who.contains(w))
            .map(|((w, k), v)| ConfigOption {
                who: w.clone(),
                key: k.clone(),
                value: v.clone(),
            })
            .collect()
    }

    /// Applies `config set`.
    pub fn set(&mut self, s: &ConfigSet) -> Result<String, CommandError> {
        shape(&s.who, &s.key)?;
        if s.value.contains('\n') {
            return Err(CommandError::Invalid(format!(
                "{}: a value is one line",
                s.key
            )));
        }
        let slot = (s.who.clone(), s.key.clone());
        if !self.options.contains_key(&slot) && self.options.len() >= MAX_OPTIONS {
            return Err(CommandError::Invalid(format!(
                "the central configuration holds at most {MAX_OPTIONS} options"
            )));
        }
        if self.options.get(&slot) == Some(&s.value) {
            return Ok(format!("{} {} is already {}", s.who, s.key, s.value));
        }
        self.options.insert(slot, s.value.clone());
        self.version += 1;
        Ok(format!("set {} {} = {}", s.who, s.key, s.value))
    }

    /// Applies `config rm` (removing what is not set is not an error, as in Ceph).
    pub fn remove(&mut self, r: &ConfigRemove) -> Result<String, CommandError> {
        shape(&r.who, &r.key)?;
        if self
            .options
            .remove(&(r.who.clone(), r.key.clone()))
            .is_none()
        {
            return Ok(format!("{} {} was not set", r.who, r.key));
        }
        self.version += 1;
        Ok(format!("removed {} {}", r.who, r.key))
    }
}

fn shape(who: &str, key: &str) -> Result<(), CommandError> {
    meridian_common::central::check_who(who).map_err(|e| CommandError::Invalid(e.to_string()))?;
    if key.is_empty()
        || key.len() > 128
        || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        return Err(CommandError::Invalid(format!(
            "{key:?} is not an option name"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(who: &str, key: &str, value: &str) -> ConfigSet {
        ConfigSet {
            who: who.into(),
            key: key.into(),
            value: value.into(),
        }
    }

    #[test]
    fn set_replace_remove_and_select() {
        let mut db = ConfigDb::default();
        db.set(&set("client.rgw", "rgw_sync_lease_s", "120"))
            .unwrap();
        db.set(&set("osd", "osd_max_pg_log_entries", "50")).unwrap();
        assert_eq!(db.version, 2);
        db.set(&set("client.rgw", "rgw_sync_lease_s", "120"))
            .unwrap();
        assert_eq!(db.version, 2, "an unchanged value is no change");
        db.set(&set("client.rgw", "rgw_sync_lease_s", "90"))
            .unwrap();
        assert_eq!(db.select(&["client.rgw".into()]).len(), 1);
        assert_eq!(db.select(&["client.rgw".into()])[0].value, "90");
        assert!(db.set(&set("nobody", "x", "1")).is_err());
        assert!(db.set(&set("osd", "bad key", "1")).is_err());
        db.remove(&ConfigRemove {
            who: "osd".into(),
            key: "osd_max_pg_log_entries".into(),
        })
        .unwrap();
        assert_eq!(db.to_options().len(), 1);
        let again = ConfigDb::from_image(db.to_options(), db.version);
        assert_eq!(again, db);
    }
}
