//! `meridian config set|get|rm|dump`: the central configuration the
//! monitors keep (Ceph's `ceph config`). Gateways and OSDs read it when they
//! start, monitors as it changes; a key the host's file sets in `[global]`
//! stays as the file says.

use super::Ctx;
use meridian_common::central::chain_of;
use meridian_common::config::canonical_key;
use meridian_proto::mon::mon_command::Cmd;
use meridian_proto::mon::{ConfigRemove, ConfigSet};
use serde_json::json;

/// `meridian config ...`.
#[derive(clap::Subcommand, Debug)]
pub enum ConfigCmd {
    /// Sets KEY for WHO (global, mon, mon.ID, osd, osd.N, client,
    /// client.rgw, client.rgw.ID).
    Set {
        who: String,
        key: String,
        value: String,
    },
    /// Shows what applies to WHO from the database, with the section it
    /// comes from (the built-in default where none sets it).
    Get { who: String, key: Option<String> },
    /// Removes KEY from WHO.
    Rm { who: String, key: String },
    /// Lists every option of the database.
    Dump,
}

/// Runs `meridian config ...`.
pub async fn config(ctx: &Ctx, cmd: ConfigCmd) -> anyhow::Result<()> {
    let c = ctx.connect().await?;
    match cmd {
        ConfigCmd::Set { who, key, value } => {
            meridian_common::central::check_who(&who)?;
            let r = c
                .mon_command(Cmd::ConfigSet(ConfigSet {
                    who: who.clone(),
                    key: key.clone(),
                    value: value.clone(),
                }))
                .await?;
            ctx.print(
                &json!({"who": who, "key": canonical_key(&key), "value": value, "message": r.message}),
                || r.message.clone(),
            );
        }
        ConfigCmd::Rm { who, key } => {
            meridian_common::central::check_who(&who)?;
            let r = c
                .mon_command(Cmd::ConfigRm(ConfigRemove {
                    who: who.clone(),
                    key: key.clone(),
                }))
                .await?;
            ctx.print(
                &json!({"who": who, "key": canonical_key(&key), "message": r.message}),
                || r.message.clone(),
            );
        }
        ConfigCmd::Dump => {
            let r = c.config_get(Vec::new()).await?;
            let rows: Vec<serde_json::Value> = r
                .options
                .iter()
                .map(|o| json!({"section": o.who, "name": o.key, "value": o.value}))
                .collect();
            ctx.print(&json!(rows), || {
                let mut out = format!("{:<24} {:<36} {}\n", "WHO", "OPTION", "VALUE");
                for o in &r.options {
                    out.push_str(&format!("{:<24} {:<36} {}\n", o.who, o.key, o.value));
                }
                out
            });
        }
        ConfigCmd::Get { who, key } => {
            meridian_common::central::check_who(&who)?;
            let chain = chain_of(&who);
            let r = c.config_get(chain.clone()).await?;
            // Later sections of the chain are more specific: they win.
            let mut resolved: std::collections::BTreeMap<String, (String, String)> =
                Default::default();
            for section in &chain {
                for o in r.options.iter().filter(|o| &o.who == section) {
                    resolved.insert(o.key.clone(), (o.value.clone(), o.who.clone()));
                }
            }
            match key {
                Some(key) => {
                    let key = canonical_key(&key).to_string();
                    let (value, from) = match resolved.get(&key) {
                        Some((v, w)) => (v.clone(), w.clone()),
                        None => (default_of(&key)?, "default".to_string()),
                    };
                    ctx.print(
                        &json!({"name": key, "value": value, "section": from}),
                        || value.clone(),
                    );
                }
                None => {
                    let rows: Vec<serde_json::Value> = resolved
                        .iter()
                        .map(|(k, (v, w))| json!({"name": k, "value": v, "section": w}))
                        .collect();
                    ctx.print(&json!(rows), || {
                        let mut out = format!("{:<36} {:<24} {}\n", "OPTION", "FROM", "VALUE");
                        for (k, (v, w)) in &resolved {
                            out.push_str(&format!("{k:<36} {w:<24} {v}\n"));
                        }
                        out
                    });
                }
            }
        }
    }
    Ok(())
}

/// The built-in default of a `[global]` setting.
fn default_of(key: &str) -> anyhow::Result<String> {
    meridian_common::central::default_value(key)
        .ok_or_else(|| anyhow::anyhow!("no such setting {key:?}"))
}
