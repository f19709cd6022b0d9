//! The monitors' entity database: every entity's key and capabilities,
//! changed only through Raft (`auth get-or-create|add|caps|rm`) and kept in
//! the monitor image next to the cluster map, never inside it, so nothing
//! that hands out maps can leak a key.

use crate::state::CommandError;
use meridian_auth::{EntityName, KeyringEntry, validate_caps, validate_key};
use meridian_proto::mon::{AuthAdd, AuthCaps, AuthEntity, AuthRemove, AuthRotate, ServiceSecret};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// Entities by name.
pub type AuthDb = BTreeMap<String, AuthEntity>;

/// Service secrets kept: the newest signs tickets, the others still verify
/// tickets issued before the last rotations.
pub const SERVICE_SECRETS_KEPT: usize = 3;

/// The monitors' authentication state.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AuthState {
    /// Every entity.
    pub entities: AuthDb,
    /// Ticket-signing secrets, oldest first.
    pub secrets: Vec<ServiceSecret>,
}

impl AuthState {
    /// The secrets as the ticket code takes them (malformed ones skipped).
    pub fn ticket_secrets(&self) -> Vec<meridian_auth::ticket::ServiceSecret> {
        self.secrets
            .iter()
            .filter_map(|s| meridian_auth::ticket::ServiceSecret::from_parts(s.id, &s.secret))
            .collect()
    }
}

/// The monitors' ticket-signing secrets, for the [`meridian_auth::grpc::AuthLayer`].
pub struct MonSecrets(pub tokio::sync::watch::Receiver<std::sync::Arc<AuthState>>);

impl meridian_auth::grpc::SecretSource for MonSecrets {
    fn secrets(&self) -> Vec<meridian_auth::ticket::ServiceSecret> {
        self.0.borrow().ticket_secrets()
    }
}

/// The leader's rotation: a new newest secret, the oldest beyond
/// [`SERVICE_SECRETS_KEPT`] dropped.
pub fn rotate(st: &mut AuthState, r: &AuthRotate, now_ms: u64) -> Result<String, CommandError> {
    if r.secret.len() != meridian_auth::KEY_BYTES {
        return Err(CommandError::Invalid(format!(
            "a service secret is {} bytes, not {}",
            meridian_auth::KEY_BYTES,
            r.secret.len()
        )));
    }
    let id = st.secrets.last().map_or(1, |s| s.id + 1);
    st.secrets.push(ServiceSecret {
        id,
        secret: r.secret.clone(),
        created_ms: now_ms,
    });
    let extra = st.secrets.len().saturating_sub(SERVICE_SECRETS_KEPT);
    st.secrets.drain(..extra);
    Ok(format!("service secret {id}"))
}

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
/// the operator. Written under a temporary name, synced, then hard-linked
/// into place (which fails if the file appeared meanwhile), so a crash
/// never leaves a truncated keyring and no keyring is ever replaced.
pub fn write_admin_keyring(path: &Path, admin: &AuthEntity) -> std::io::Result<bool> {
    if path.exists() {
        return Ok(false);
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = meridian_auth::stage_keyring_file(path, &keyring_text(admin))?;
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

/// Why a caller got no ticket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthFailure {
    /// The request is malformed.
    Invalid(String),
    /// The caller did not prove a key (the message does not say whether the
    /// entity exists).
    Refused(String),
    /// No service secret yet (a cluster that just bootstrapped).
    NotReady(String),
}

/// Most clock difference an authentication request may have.
pub const AUTH_MAX_SKEW_MS: u64 = 5 * 60 * 1000;

/// Checks the caller's proof of key against `st` and issues a ticket with
/// the entity's current caps, valid for `ttl_ms` and signed with the newest
/// service secret.
pub fn authenticate(
    st: &AuthState,
    r: &meridian_proto::mon::AuthenticateRequest,
    now_ms: u64,
    ttl_ms: u64,
) -> Result<meridian_proto::mon::AuthenticateReply, AuthFailure> {
    use meridian_auth::ticket;
    let name = checked_name(&r.entity).map_err(|e| AuthFailure::Invalid(e.to_string()))?;
    let nonce: ticket::Nonce = r.nonce[..]
        .try_into()
        .map_err(|_| AuthFailure::Invalid("the nonce is 16 bytes".into()))?;
    // A monitor that has not applied its state yet (just restarted) knows
    // no secret: it must not call anyone's key wrong.
    let secrets = st.ticket_secrets();
    let service = secrets
        .last()
        .ok_or_else(|| AuthFailure::NotReady("no service secret yet; retry".into()))?;
    let refused = || AuthFailure::Refused(format!("{name}: unknown entity or wrong key"));
    let entity = st.entities.get(&name.to_string()).ok_or_else(refused)?;
    let key = ticket::key_bytes(&entity.name, &entity.key).map_err(|_| refused())?;
    ticket::check_proof(
        &key,
        &entity.name,
        r.unix_ms,
        &nonce,
        &r.proof,
        now_ms,
        AUTH_MAX_SKEW_MS,
    )
    .map_err(|e| match e {
        meridian_auth::AuthError::Skew { .. } => AuthFailure::Refused(format!("{name}: {e}")),
        _ => refused(),
    })?;
    let claims = ticket::Claims {
        entity: entity.name.clone(),
        caps: entity.caps.clone().into_iter().collect(),
        issued_ms: now_ms,
        expires_ms: now_ms.saturating_add(ttl_ms),
    };
    let issued = ticket::issue(
        service,
        &key,
        &claims,
        ticket::fresh_nonce(),
        ticket::fresh_secret(),
    )
    .map_err(|e| AuthFailure::Invalid(e.to_string()))?;
    Ok(meridian_proto::mon::AuthenticateReply {
        ticket: issued.ticket.into(),
        sealed_session: issued.sealed_session.to_vec().into(),
        expires_ms: claims.expires_ms,
    })
}

/// Writes `client.admin`'s keyring to `path` once it exists (see
/// [`write_admin_keyring`]); ends when done or when the monitor stops.
pub async fn publish_admin_keyring(
    mut db: tokio::sync::watch::Receiver<std::sync::Arc<AuthState>>,
    path: std::path::PathBuf,
) {
    loop {
        let admin = db.borrow_and_update().entities.get("client.admin").cloned();
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
    fn a_caller_that_proves_its_key_gets_a_ticket_with_its_caps() {
        use meridian_auth::ticket;
        use meridian_proto::mon::AuthenticateRequest;
        let mut st = AuthState::default();
        add(
            &mut st.entities,
            &add_cmd("client.gw", &[("mon", "allow r")], false),
        )
        .unwrap();
        let key = ticket::key_bytes("client.gw", &st.entities["client.gw"].key).unwrap();
        let now = 1_000_000;
        let ask = |entity: &str, key: &ticket::SecretBytes, ts: u64| {
            let nonce = ticket::fresh_nonce();
            AuthenticateRequest {
                entity: entity.into(),
                unix_ms: ts,
                nonce: nonce.to_vec().into(),
                proof: ticket::proof(key, entity, ts, &nonce).to_vec().into(),
            }
        };
        assert!(matches!(
            authenticate(&st, &ask("client.gw", &key, now), now, 60_000),
            Err(AuthFailure::NotReady(_))
        ));
        for (n, fill) in [(1u64, 1u8), (2, 2), (3, 3), (4, 4)] {
            let r = AuthRotate {
                secret: vec![fill; 32].into(),
            };
            assert_eq!(
                rotate(&mut st, &r, now).unwrap(),
                format!("service secret {n}")
            );
        }
        let ids: Vec<u64> = st.secrets.iter().map(|s| s.id).collect();
        assert_eq!(ids, [2, 3, 4], "the newest {SERVICE_SECRETS_KEPT} are kept");
        let short = AuthRotate {
            secret: vec![0; 8].into(),
        };
        assert!(rotate(&mut st, &short, now).is_err());

        let reply = authenticate(&st, &ask("client.gw", &key, now), now + 10, 60_000).unwrap();
        assert_eq!(reply.expires_ms, now + 10 + 60_000);
        let v = ticket::verify(&st.ticket_secrets(), &reply.ticket, now + 20).unwrap();
        assert_eq!(v.claims.entity, "client.gw");
        assert_eq!(v.claims.caps["mon"], "allow r");
        let issued = ticket::Issued {
            ticket: reply.ticket.to_vec(),
            sealed_session: reply.sealed_session[..].try_into().unwrap(),
        };
        assert_eq!(ticket::open_session(&key, &issued).unwrap(), v.session);

        let other = ticket::key_bytes("x", &generate_key()).unwrap();
        for (req, want) in [
            (ask("client.gw", &other, now), "unknown entity or wrong key"),
            (
                ask("client.nobody", &key, now),
                "unknown entity or wrong key",
            ),
            (
                ask("client.gw", &key, now - AUTH_MAX_SKEW_MS - 1),
                "clock skew",
            ),
        ] {
            match authenticate(&st, &req, now, 60_000) {
                Err(AuthFailure::Refused(m)) => assert!(m.contains(want), "{m}"),
                other => panic!("{other:?}"),
            }
        }
        let mut bad_nonce = ask("client.gw", &key, now);
        bad_nonce.nonce = vec![1, 2, 3].into();
        assert!(matches!(
            authenticate(&st, &bad_nonce, now, 60_000),
            Err(AuthFailure::Invalid(_))
        ));
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
