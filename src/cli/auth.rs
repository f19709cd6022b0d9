//! `meridian auth ...`: entities, keys and capabilities (Ceph's `ceph auth`).

use super::Ctx;
use anyhow::{Context as _, bail};
use meridian_proto::mon::mon_command::Cmd;
use meridian_proto::mon::{AuthAdd, AuthCaps, AuthEntity, AuthRemove};
use serde_json::json;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// `meridian auth` subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum AuthCmd {
    /// Print an entity's keyring, creating the entity with a new key and
    /// these caps if it does not exist: `auth get-or-create client.gw mon 'allow rw' osd 'allow rwx pool=data'`.
    #[command(name = "get-or-create")]
    GetOrCreate {
        /// Entity (`client.NAME`, `osd.N`).
        entity: String,
        /// Capabilities as SERVICE 'CAPS' pairs.
        caps: Vec<String>,
        /// Write the keyring to this file (mode 0600) instead of stdout.
        #[arg(short = 'o', long = "out-file")]
        out: Option<PathBuf>,
    },
    /// Create an entity with a new key; fails if it exists.
    Add {
        /// Entity.
        entity: String,
        /// Capabilities as SERVICE 'CAPS' pairs.
        caps: Vec<String>,
    },
    /// Print an entity's keyring.
    Get {
        /// Entity.
        entity: String,
        /// Write the keyring to this file (mode 0600) instead of stdout.
        #[arg(short = 'o', long = "out-file")]
        out: Option<PathBuf>,
    },
    /// Print only an entity's secret key.
    #[command(name = "print-key", alias = "print_key")]
    PrintKey {
        /// Entity.
        entity: String,
    },
    /// List every entity with its key and caps.
    #[command(alias = "list")]
    Ls,
    /// Replace an entity's capabilities.
    Caps {
        /// Entity.
        entity: String,
        /// Capabilities as SERVICE 'CAPS' pairs.
        caps: Vec<String>,
    },
    /// Write a keyring with a new key for an entity, without asking the
    /// cluster (ceph-authtool --create-keyring --gen-key): the `mon.` key
    /// the monitors share is made this way before they first start.
    #[command(name = "gen-keyring")]
    GenKeyring {
        /// Entity (`mon.` for the monitors' key).
        entity: String,
        /// Capabilities as SERVICE 'CAPS' pairs.
        caps: Vec<String>,
        /// Write the keyring to this file (mode 0600) instead of stdout.
        #[arg(short = 'o', long = "out-file")]
        out: Option<PathBuf>,
    },
    /// Remove an entity.
    #[command(alias = "del")]
    Rm {
        /// Entity.
        entity: String,
    },
}

/// Runs `meridian auth ...`.
pub async fn auth(ctx: &Ctx, cmd: AuthCmd) -> anyhow::Result<()> {
    if let AuthCmd::GenKeyring { entity, caps, out } = &cmd {
        let name: meridian_auth::EntityName = entity.parse()?;
        let mut caps = cap_pairs(caps)?;
        if caps.is_empty() && name.kind() == meridian_auth::EntityType::Mon {
            caps.insert("mon".into(), "allow *".into());
        }
        let e = AuthEntity {
            name: name.to_string(),
            key: meridian_auth::generate_key(),
            caps: meridian_auth::validate_caps(&caps.into_iter().collect())?
                .into_iter()
                .collect(),
        };
        return emit_keyring(ctx, &meridian_mon::auth::keyring_text(&e), out.as_deref());
    }
    let cluster = ctx.connect().await?;
    match cmd {
        AuthCmd::GetOrCreate { entity, caps, out } => {
            let add = AuthAdd {
                entity: Some(new_entity(&entity, &caps)?),
                get_or_create: true,
                if_absent: false,
            };
            let reply = cluster.mon_command(Cmd::AuthAdd(add)).await?;
            emit_keyring(ctx, &reply.message, out.as_deref())
        }
        AuthCmd::Add { entity, caps } => {
            let add = AuthAdd {
                entity: Some(new_entity(&entity, &caps)?),
                get_or_create: false,
                if_absent: false,
            };
            cluster.mon_command(Cmd::AuthAdd(add)).await?;
            ctx.print(&json!({ "added": entity }), || {
                format!("added key for {entity}")
            });
            Ok(())
        }
        AuthCmd::Get { entity, out } => {
            let e = one(&cluster, &entity).await?;
            emit_keyring(ctx, &meridian_mon::auth::keyring_text(&e), out.as_deref())
        }
        AuthCmd::PrintKey { entity } => {
            let e = one(&cluster, &entity).await?;
            ctx.print(&json!({ "key": e.key }), || e.key.clone());
            Ok(())
        }
        AuthCmd::Ls => {
            let all = cluster.auth_get("").await?;
            let dump: Vec<_> = all.iter().map(entity_json).collect();
            ctx.print(&json!({ "auth_dump": dump }), || {
                let mut s = String::new();
                for e in &all {
                    s += &format!("{}\n\tkey: {}\n", e.name, e.key);
                    for (service, cap) in sorted(&e.caps) {
                        s += &format!("\tcaps: [{service}] {cap}\n");
                    }
                }
                s
            });
            Ok(())
        }
        AuthCmd::Caps { entity, caps } => {
            let c = AuthCaps {
                name: entity,
                caps: cap_pairs(&caps)?,
            };
            let reply = cluster.mon_command(Cmd::AuthCaps(c)).await?;
            ctx.print(&json!({ "message": reply.message }), || {
                reply.message.clone()
            });
            Ok(())
        }
        AuthCmd::GenKeyring { .. } => unreachable!("handled before connecting"),
        AuthCmd::Rm { entity } => {
            let reply = cluster
                .mon_command(Cmd::AuthRm(AuthRemove { name: entity }))
                .await?;
            ctx.print(&json!({ "message": reply.message }), || {
                reply.message.clone()
            });
            Ok(())
        }
    }
}

/// The entity to create; the monitor makes its key.
fn new_entity(name: &str, caps: &[String]) -> anyhow::Result<AuthEntity> {
    Ok(AuthEntity {
        name: name.to_string(),
        key: String::new(),
        caps: cap_pairs(caps)?,
    })
}

/// `mon 'allow r' osd 'allow rw'` as a map; each service once.
fn cap_pairs(args: &[String]) -> anyhow::Result<HashMap<String, String>> {
    if !args.len().is_multiple_of(2) {
        bail!("capabilities come in pairs: SERVICE 'CAPS' (e.g. mon 'allow r')");
    }
    let mut caps = HashMap::new();
    for pair in args.chunks(2) {
        if caps.insert(pair[0].clone(), pair[1].clone()).is_some() {
            bail!("capabilities for {} given twice", pair[0]);
        }
    }
    Ok(caps)
}

async fn one(cluster: &meridian_client::Cluster, name: &str) -> anyhow::Result<AuthEntity> {
    cluster
        .auth_get(name)
        .await?
        .into_iter()
        .next()
        .with_context(|| format!("failed to find {name} in keyring"))
}

fn sorted(caps: &HashMap<String, String>) -> Vec<(&String, &String)> {
    let mut v: Vec<_> = caps.iter().collect();
    v.sort();
    v
}

fn entity_json(e: &AuthEntity) -> serde_json::Value {
    let caps: serde_json::Map<String, serde_json::Value> = sorted(&e.caps)
        .into_iter()
        .map(|(s, c)| (s.clone(), json!(c)))
        .collect();
    json!({ "entity": e.name, "key": e.key, "caps": caps })
}

/// Prints a keyring (or writes it, private, to `out`); JSON lists its entities.
fn emit_keyring(ctx: &Ctx, text: &str, out: Option<&Path>) -> anyhow::Result<()> {
    if let Some(path) = out {
        write_private(path, text)?;
        return Ok(());
    }
    let parsed = meridian_auth::Keyring::parse(text)
        .context("the monitor answered with a keyring that does not parse")?;
    let list: Vec<_> = parsed
        .entries
        .iter()
        .map(|e| json!({ "entity": e.name.to_string(), "key": e.key, "caps": e.caps }))
        .collect();
    ctx.print(&json!(list), || text.to_string());
    Ok(())
}

/// Writes `text` to `path` readable by its owner only.
fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    meridian_auth::write_keyring_file(path, text)
        .with_context(|| format!("write {}", path.display()))?;
    Ok(())
}
