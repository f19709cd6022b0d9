//! The monitors' entity database: every entity's key and capabilities,
//! changed only through Raft (`auth get-or-create|add|caps|rm`) and kept in
//! the monitor image next to the cluster map, never inside it, so nothing
//! that hands out maps can leak a key.

use crate::state::CommandError;
use meridian_auth::{EntityName, KeyringEntry, validate_caps, validate_key};
use meridian_proto::mon::{AuthAdd, AuthCaps, AuthEntity, AuthRemove};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// Entities by name.
pub type AuthDb = BTreeMap<String, AuthEntity>;

/// Capabilities of the bootstrap administrator (everything the CLI does).
pub fn admin_caps() -> HashMap<String, String> {
    HashMap::from([
        ("mon".to_string(), "allow *".to_string()),
        ("osd".to_string(), "allow *".to_string()),
    ])
}

fn checked_name(name: &str) -> Result<EntityName, CommandError> {
    name.parse()
        .map_err(|e: meridian_auth::AuthError| CommandError::Invalid(e.to_string()))
}

/// Validates `caps` and returns them in canonical spelling.
fn checked_caps(caps: &HashMap<String, String>) -> Result<HashMap<String, String>, CommandError> {
    let sorted: BTreeMap<String, String> = caps.clone().into_iter().collect();
    validate_caps(&sorted)
        .map(|c| c.into_iter().collect())
        .map_err(|e| CommandError::Invalid(e.to_string()))
}

/// The keyring text of one entity (what `auth get` prints).
pub fn keyring_text(e: &AuthEntity) -> String {
    match checked_name(&e.name) {
        Ok(name) => KeyringEntry {
            name,
            key: e.key.clone(),
            caps: e.caps.clone().into_iter().collect(),
        }
        .to_string(),
        Err(_) => String::new(),
    }
}

/// `auth add` / `auth get-or-create`; answers with the entity's keyring.
pub fn add(db: &mut AuthDb, a: &AuthAdd) -> Result<String, CommandError> {
    let want = a
        .entity
        .as_ref()
        .ok_or_else(|| CommandError::Invalid("no entity".into()))?;
    let name = checked_name(&want.name)?.to_string();
    validate_key(&name, &want.key).map_err(|e| CommandError::Invalid(e.to_string()))?;
    let caps = checked_caps(&want.caps)?;
    if let Some(have) = db.get(&name) {
        if a.if_absent {
            return Ok(String::new());
        }
        if a.get_or_create {
            if have.caps == caps {
                return Ok(keyring_text(have));
            }
            return Err(CommandError::Exists(format!(
                "key for {name} exists but its caps do not match (use `auth caps` to change them)"
            )));
        }
        return Err(CommandError::Exists(format!("entity {name} exists")));
    }
    let e = AuthEntity {
        name: name.clone(),
        key: want.key.clone(),
        caps,
    };
    let text = keyring_text(&e);
    db.insert(name, e);
    Ok(text)
}

/// `auth caps`: replaces an entity's capabilities.
pub fn set_caps(db: &mut AuthDb, c: &AuthCaps) -> Result<String, CommandError> {
    let name = checked_name(&c.name)?.to_string();
    let caps = checked_caps(&c.caps)?;
    let mut after = db.clone();
    let e = after
        .get_mut(&name)
        .ok_or_else(|| CommandError::NotFound(format!("entity {name} does not exist")))?;
    e.caps = caps;
    keep_an_administrator(&after)?;
    *db = after;
    Ok(format!("updated caps for {name}"))
}

/// `auth rm`.
pub fn remove(db: &mut AuthDb, r: &AuthRemove) -> Result<String, CommandError> {
    let name = checked_name(&r.name)?.to_string();
    let mut after = db.clone();
    if after.remove(&name).is_none() {
        return Err(CommandError::NotFound(format!(
            "entity {name} does not exist"
        )));
    }
    keep_an_administrator(&after)?;
    *db = after;
    Ok("updated".into())
}

/// Refuses a change that would leave nobody able to administer the cluster.
fn keep_an_administrator(db: &AuthDb) -> Result<(), CommandError> {
    let admin = |e: &AuthEntity| {
        e.name.starts_with("client.") && e.caps.get("mon").is_some_and(|c| c == "allow *")
    };
    if db.values().any(admin) {
        Ok(())
    } else {
        Err(CommandError::Invalid(
            "refusing to leave no client with mon 'allow *': give another entity those caps first"
                .into(),
        ))
    }
}

/// Writes `client.admin`'s keyring to `path` (mode 0600) unless the file
/// exists: the first monitor to see the key after bootstrap leaves it for
/// the operator. Written under a temporary name and renamed, so a crash
/// never leaves a truncated keyring.
pub fn write_admin_keyring(path: &Path, admin: &AuthEntity) -> std::io::Result<bool> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    if path.exists() {
        return Ok(false);
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(keyring_text(admin).as_bytes())?;
    f.sync_all()?;
    drop(f);
    // Never replace a keyring someone wrote meanwhile.
    match std::fs::hard_link(&tmp, path) {
        Ok(()) => {
            std::fs::remove_file(&tmp)?;
            Ok(true)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            std::fs::remove_file(&tmp)?;
            Ok(false)
        }
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// Writes `client.admin`'s keyring to `path` once it exists (see
/// [`write_admin_keyring`]); ends when done or when the monitor stops.
pub async fn publish_admin_keyring(
    mut db: tokio::sync::watch::Receiver<std::sync::Arc<AuthDb>>,
    path: std::path::PathBuf,
) {
    loop {
        let admin = db.borrow_and_update().get("client.admin").cloned();
        if let Some(admin) = admin {
            match write_admin_keyring(&path, &admin) {
                Ok(true) => tracing::info!(path = %path.display(), "wrote client.admin keyring"),
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "cannot write client.admin keyring")
                }
            }
            return;
        }
        if db.changed().await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use meridian_auth::generate_key;

    fn add_cmd(name: &str, caps: &[(&str, &str)], get_or_create: bool) -> AuthAdd {
        AuthAdd {
            entity: Some(AuthEntity {
                name: name.into(),
                key: generate_key(),
                caps: caps
                    .iter()
                    .map(|(s, c)| (s.to_string(), c.to_string()))
                    .collect(),
            }),
            get_or_create,
            if_absent: false,
        }
    }

    #[test]
    fn entities_are_created_checked_and_kept_administrable() {
        let mut db = AuthDb::new();
        let admin = add_cmd(
            "client.admin",
            &[("mon", "allow *"), ("osd", "allow *")],
            false,
        );
        let text = add(&mut db, &admin).unwrap();
        assert!(text.starts_with("[client.admin]\n\tkey = "), "{text}");
        // The leader's bootstrap proposal changes nothing once it exists.
        let again = AuthAdd {
            if_absent: true,
            ..add_cmd("client.admin", &[("mon", "allow r")], false)
        };
        assert_eq!(add(&mut db, &again).unwrap(), "");
        assert_eq!(db["client.admin"].key, admin.entity.as_ref().unwrap().key);

        let gw = add_cmd(
            "client.gateway.0",
            &[("mon", "allow  rw"), ("osd", "allow rwx pool=data")],
            true,
        );
        let first = add(&mut db, &gw).unwrap();
        assert!(
            first.contains("caps mon = \"allow rw\""),
            "canonical: {first}"
        );
        // get-or-create answers with the existing key, not the new one.
        let second = add(
            &mut db,
            &add_cmd(
                "client.gateway.0",
                &[("mon", "allow rw"), ("osd", "allow rwx pool=data")],
                true,
            ),
        )
        .unwrap();
        assert_eq!(first, second);
        let e = add(
            &mut db,
            &add_cmd("client.gateway.0", &[("mon", "allow r")], true),
        )
        .unwrap_err();
        assert!(e.to_string().contains("caps do not match"), "{e}");
        let e = add(&mut db, &add_cmd("client.gateway.0", &[], false)).unwrap_err();
        assert_eq!(
            e,
            CommandError::Exists("entity client.gateway.0 exists".into())
        );

        for (bad, why) in [
            (add_cmd("gateway", &[], false), "bad entity name"),
            (
                add_cmd("client.x", &[("mon", "allow q")], false),
                "bad capability",
            ),
            (
                add_cmd("client.x", &[("mgr", "allow *")], false),
                "unknown service",
            ),
        ] {
            let e = add(&mut db, &bad).unwrap_err().to_string();
            assert!(e.contains(why), "{e}");
        }
        let mut short = add_cmd("client.x", &[], false);
        short.entity.as_mut().unwrap().key = "abc".into();
        assert!(
            add(&mut db, &short)
                .unwrap_err()
                .to_string()
                .contains("bad key")
        );
        assert!(!db.contains_key("client.x"), "nothing refused is kept");

        let caps = AuthCaps {
            name: "client.gateway.0".into(),
            caps: HashMap::from([("mon".to_string(), "allow r".to_string())]),
        };
        assert_eq!(
            set_caps(&mut db, &caps).unwrap(),
            "updated caps for client.gateway.0"
        );
        assert_eq!(db["client.gateway.0"].caps.len(), 1);

        // The last administrator can lose neither its entity nor its caps.
        let rm_admin = AuthRemove {
            name: "client.admin".into(),
        };
        assert!(
            remove(&mut db, &rm_admin)
                .unwrap_err()
                .to_string()
                .contains("refusing")
        );
        let demote = AuthCaps {
            name: "client.admin".into(),
            caps: HashMap::from([("mon".to_string(), "allow r".to_string())]),
        };
        assert!(set_caps(&mut db, &demote).is_err());
        assert_eq!(db["client.admin"].caps["mon"], "allow *");
        let promote = AuthCaps {
            name: "client.gateway.0".into(),
            caps: admin_caps(),
        };
        set_caps(&mut db, &promote).unwrap();
        assert_eq!(remove(&mut db, &rm_admin).unwrap(), "updated");
        assert_eq!(
            remove(&mut db, &rm_admin).unwrap_err(),
            CommandError::NotFound("entity client.admin does not exist".into())
        );
    }

    #[test]
    fn the_admin_keyring_is_private_and_never_overwritten() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("etc/client.admin.keyring");
        let mut db = AuthDb::new();
        add(
            &mut db,
            &add_cmd("client.admin", &[("mon", "allow *")], false),
        )
        .unwrap();
        let admin = &db["client.admin"];
        assert!(write_admin_keyring(&path, admin).unwrap());
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let text = std::fs::read_to_string(&path).unwrap();
        let k = meridian_auth::Keyring::parse(&text).unwrap();
        assert_eq!(k.get(&EntityName::admin()).unwrap().key, admin.key);
        let other = AuthEntity {
            key: generate_key(),
            ..admin.clone()
        };
        assert!(!write_admin_keyring(&path, &other).unwrap());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
        assert_eq!(
            std::fs::read_dir(path.parent().unwrap()).unwrap().count(),
            1,
            "no temp file left"
        );
    }
}
